"""Re-record the snapshots: `.venv/bin/python -m tests.snapshots` (see __init__.py)."""

from __future__ import annotations

from tests.replays import all_inputs, replay
from tests.snapshots import OUTPUTS, normalised, snapshot_path


def main() -> None:
    for capture in all_inputs():
        result = replay(capture)
        for output in OUTPUTS:
            path = snapshot_path(capture, output)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(normalised(result, output), encoding="utf-8")
            print(path)


if __name__ == "__main__":
    main()
