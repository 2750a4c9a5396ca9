from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sensor.cli.main import main
from tests.replays import PCAPS

SAMPLE = PCAPS / "http-post-raw" / "input.pcap"
SLUICE = str(Path(sys.executable).parent / "sluice")


def _fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str], words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sluice: error:") and words in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        ["replay", str(tmp_path / "nope.pcap"), "--out", str(tmp_path / "o")], capsys, "nope.pcap"
    )


def test_not_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are not packets\n" * 10)
    _fails_cleanly(["replay", str(bogus), "--out", str(tmp_path / "o")], capsys, "notes.txt")
    assert not (tmp_path / "o").exists()  # nothing written for a refused input


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails_cleanly(
        ["extract", str(SAMPLE), "--out", str(blocker / "sub")],
        capsys,
        "cannot write to output directory",
    )


def test_broken_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[flows]\nmax_flows = 'lots'\n")
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--config", str(config)],
        capsys,
        "flows.max_flows must be a number",
    )


def test_replay_prints_a_summary_and_is_deterministic(tmp_path: Path) -> None:
    outputs = []
    for run_no in range(2):
        out = tmp_path / f"run{run_no}"
        done = subprocess.run(
            [SLUICE, "replay", str(SAMPLE), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "packets/s" in done.stdout and "uploads (client -> server)" in done.stdout
        outputs.append((out / "events.jsonl").read_bytes())
    assert outputs[0] == outputs[1] and outputs[0]


def test_extract_writes_objects_named_by_hash(tmp_path: Path) -> None:
    out = tmp_path / "x"
    assert main(["extract", str(SAMPLE), "--out", str(out), "--quiet"]) == 0
    lines = (out / "files.jsonl").read_text().splitlines()
    assert lines
    import hashlib
    import json

    for line in lines:
        record = json.loads(line)
        for key in (
            "timestamp",
            "flow_id",
            "community_id",
            "proto",
            "direction",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "filename",
            "mime_type",
            "size",
            "sha256",
            "complete",
            "missing_bytes",
        ):
            assert key in record
        data = (out / "files" / record["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert len(data) == record["size"]
