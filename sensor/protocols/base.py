"""Contracts shared by every protocol parser (the protocols stage).

A parser is sans-IO (STYLE.md habit 1, DESIGN.md "Parsers are sans-IO"): one instance per flow,
fed reassembled bytes per direction, returning events. It never touches sockets, files or the
clock. Something odd but survivable is an `Anomaly` event ("weird" in Zeek's words); something
the parser cannot go on with is a `ProtocolViolation` exception, after which the dispatcher
detaches the parser from that flow and keeps metering it.
"""

from __future__ import annotations

import enum
from typing import Protocol

from sensor.anomaly import Anomaly

__all__ = ["Anomaly", "Direction", "Parser", "ProtocolViolation"]


class Direction(enum.IntEnum):
    TO_SERVER = 0  # client -> server: "upload" payload
    TO_CLIENT = 1  # server -> client


class ProtocolViolation(Exception):
    """The parser cannot continue on this flow; `reason` is an anomaly kind. `events` holds
    what the failing call produced before it gave up (e.g. the end of a body), so nothing the
    parser already knew is lost."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.events: list[object] = []


class ProtocolEvent(Protocol):
    """Marker for parser events; concrete ones are dataclasses named as nouns."""


class Parser(Protocol):
    """What the pipeline drives. Every method returns the events that became known."""

    name: str

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[object]: ...

    def gap(self, direction: Direction, size: int, ts: float) -> list[object]: ...

    def eof(self, direction: Direction, ts: float) -> list[object]: ...
