"""The one "note it and go on" value every stage can produce (Zeek's "weird").

`kind` is a stable snake_case name (documented in sensor/outputs/events.schema.json under
anomaly.kind); `detail` is free text for humans and never carries payload or credentials.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Anomaly:
    kind: str
    detail: str = ""
    ts: float = 0.0
