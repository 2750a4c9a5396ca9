"""Run Sluice over the bundled sample captures once per test session and share the results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sensor.cli.main import run
from sensor.config import Config
from sensor.pipeline import Summary

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"


def case_dirs() -> list[Path]:
    return sorted(p.parent for p in PCAPS.glob("*/expected.json"))


def case_inputs(case: Path) -> list[Path]:
    return sorted(
        p for p in case.iterdir() if p.name.startswith("input") and p.suffix in (".pcap", ".pcapng")
    )


def all_inputs() -> list[Path]:
    return [i for c in case_dirs() for i in case_inputs(c)]


@dataclass
class Replay:
    summary: Summary
    events: list[dict[str, Any]]
    files: list[dict[str, Any]]
    out: Path

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]


_WORK: list[Path] = []


def set_workdir(path: Path) -> None:
    _WORK.append(path)


@cache
def replay(path: Path) -> Replay:
    """`sluice extract` on one capture (in-process), cached for the session."""
    assert _WORK, "the replay_workdir fixture sets the scratch directory"
    out = _WORK[0] / path.parent.name / path.stem
    out.mkdir(parents=True, exist_ok=True)
    summary, _ = run([str(path)], out, Config(), extract=True)
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    files = [json.loads(line) for line in (out / "files.jsonl").open()]
    return Replay(summary, events, files, out)
