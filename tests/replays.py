"""Run Sluice over the bundled sample captures once per test session and share the results."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sensor.cli.main import run
from sensor.config import ClassifyConfig, Config
from sensor.pipeline import Summary

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
# Anomaly kinds that mean a bug was contained (a parser or the decoder raised): the sensor went
# on, so only an assertion notices them.
INTERNAL_ERRORS = frozenset({"parser_error", "decode_internal_error"})


def internal_errors(events: list[dict[str, Any]]) -> dict[str, int]:
    """Contained bugs in a run's events: internal-error anomalies counted in its last `stats`
    event (also those not written because of the per-flow cap or the rate limit)."""
    stats = [e["stats"] for e in events if e["event_type"] == "stats"]
    found = {k: v for k, v in stats[-1]["anomalies"].items() if k in INTERNAL_ERRORS}
    if stats[-1]["decoder"]["internal_error"]:
        found["decoder.internal_error"] = stats[-1]["decoder"]["internal_error"]
    return found


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


@cache
def _workdir() -> Path:
    """One scratch directory per test session, removed when the interpreter exits."""
    path = Path(tempfile.mkdtemp(prefix="sluice-replays-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@cache
def replay(path: Path, classify: bool = False) -> Replay:
    """`sluice extract` on one capture (in-process), cached for the session; `classify`: with
    classification on (`[classify] enabled = true`), which the default config leaves off."""
    out = _workdir() / path.parent.name / (path.stem + ("-classified" if classify else ""))
    out.mkdir(parents=True, exist_ok=True)
    config = Config(classify=ClassifyConfig(enabled=True)) if classify else Config()
    summary, _ = run([str(path)], out, config, extract=True)
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    files = [json.loads(line) for line in (out / "files.jsonl").open()]
    return Replay(summary, events, files, out)
