"""The lines `sluice run` writes to the journal for findings, for every kind of finding."""

from __future__ import annotations

import json
from pathlib import Path

from sensor.cli.live import finding_line

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "encrypted-uploads"


def test_a_content_finding_has_a_journal_line() -> None:
    records = [
        json.loads(line)
        for line in (SNAPSHOT / "input.events.jsonl").read_text().splitlines()
        if '"event_type":"finding"' in line
    ]
    assert records
    for record in records:
        line = finding_line(record)
        assert line is not None
        assert line.startswith("finding ") and "encrypted_upload host 10.10.0.10: " in line
        assert record["finding"]["scheme"] in line


def test_a_volume_finding_line_names_its_destinations() -> None:
    record = {
        "event_type": "finding",
        "finding": {"kind": "volume_threshold", "severity": "medium", "host": "10.0.0.5",
                    "detail": "5 GB in 1 h", "destinations": ["a (192.0.2.1)", "192.0.2.2"]},
    }  # fmt: skip
    assert finding_line(record) == (
        "finding MEDIUM volume_threshold host 10.0.0.5: 5 GB in 1 h -> a (192.0.2.1), 192.0.2.2"
    )
    assert finding_line({"event_type": "flow"}) is None
