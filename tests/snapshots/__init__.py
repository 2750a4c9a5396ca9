"""Recorded outputs of every sample capture: `events.jsonl` and `files.jsonl` of `sluice extract`
with the default config, as the code produced them when they were recorded.

These are regression snapshots, not ground truth (that is `pcaps/*/expected.json`): they pin
down every field of every event, so that a change meant to keep behaviour (a refactoring) can
show that it did. A change meant to alter the output re-records them and the diff is reviewed:

    .venv/bin/python -m tests.snapshots          # re-record every snapshot

Paths inside the outputs (a damaged capture names its file) are stored relative to the
checkout, written as `$ROOT`, so the snapshots do not depend on where the checkout lives.
"""

from __future__ import annotations

from pathlib import Path

from tests.replays import PCAPS, ROOT, Replay

SNAPSHOTS = Path(__file__).resolve().parent
OUTPUTS = ("events.jsonl", "files.jsonl")


def snapshot_path(capture: Path, output: str) -> Path:
    """tests/snapshots/<case>/<capture stem>.<output>"""
    relative = capture.relative_to(PCAPS)
    return SNAPSHOTS / relative.parent / f"{relative.stem}.{output}"


def normalised(result: Replay, output: str) -> str:
    return (result.out / output).read_text(encoding="utf-8").replace(str(ROOT), "$ROOT")
