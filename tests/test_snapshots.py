"""Every sample capture's outputs equal the recorded snapshots (tests/snapshots/__init__.py),
line by line: a refactoring that is meant to keep behaviour must keep every field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.replays import all_inputs, replay
from tests.snapshots import OUTPUTS, normalised, snapshot_path


def _first_difference(want: list[str], have: list[str]) -> str:
    for number, (a, b) in enumerate(zip(want, have, strict=False), 1):
        if a != b:
            return f"line {number}:\n  recorded: {a}\n  now:      {b}"
    return f"recorded {len(want)} lines, now {len(have)}"


@pytest.mark.parametrize("capture", all_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("output", OUTPUTS)
def test_outputs_equal_the_recorded_snapshot(capture: Path, output: str) -> None:
    recorded = snapshot_path(capture, output)
    assert recorded.is_file(), f"no snapshot {recorded}: record with python -m tests.snapshots"
    want = recorded.read_text(encoding="utf-8").splitlines()
    have = normalised(replay(capture), output).splitlines()
    assert have == want, f"{capture.parent.name}/{capture.name} {output} " + _first_difference(
        want, have
    )
