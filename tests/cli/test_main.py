from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensor.cli.main import main
from tests.conftest import cannot_run
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


# -- where the signatures come from -----------------------------------------------------------


def _signatures(directory: Path, db_id: str) -> Path:
    """A signatures dir whose categories put the sample's server (198.51.100.20) in one."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "categories.toml").write_text(
        f'id = "{db_id}"\nversion = 1\n[[category]]\nid = "file_hosting"\nmin_bytes = 1\n'
        'cidrs = ["198.51.100.0/24"]\n'
    )
    return directory


def _category_source(out: Path) -> str:
    """The categories id named by the replay's category finding."""
    for line in (out / "events.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event_type"] == "finding" and record["finding"]["kind"] == "category_upload":
            return str(record["finding"]["detail"]).split("(file_hosting, ")[1].split(" v")[0]
    return ""


def test_signatures_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "etc" / "sluice.toml"
    config.parent.mkdir()
    config.write_text('signatures_dir = "sigs"\n')  # relative to the config file
    _signatures(tmp_path / "etc" / "sigs", "from-config")
    option = _signatures(tmp_path / "option", "from-option")
    monkeypatch.setenv("SLUICE_SIGNATURES", str(_signatures(tmp_path / "env", "from-env")))
    base = ["replay", str(SAMPLE), "--quiet", "--out"]
    runs = {
        "from-option": ["--config", str(config), "--signatures", str(option)],
        "from-config": ["--config", str(config)],
        "from-env": [],
    }
    for expected, extra in runs.items():
        out = tmp_path / expected
        assert main([*base, str(out), *extra]) == 0
        assert _category_source(out) == expected


def test_missing_signatures_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    _fails_cleanly(
        ["extract", str(SAMPLE), "--out", str(tmp_path / "o"), "--signatures", str(missing)],
        capsys,
        f"signatures directory {missing} (from --signatures) does not exist",
    )


def test_signatures_dir_without_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--signatures", str(empty)],
        capsys,
        f"no categories.toml in signatures directory {empty} from --signatures",
    )


def test_broken_categories_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sigs = _signatures(tmp_path / "sigs", "x")
    (sigs / "categories.toml").write_text("id = 'x'\nversion = 1\n")
    config = tmp_path / "sluice.toml"
    config.write_text(f'signatures_dir = "{sigs}"\n')
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--config", str(config)],
        capsys,
        f"{sigs / 'categories.toml'}: needs at least one [[category]]",
    )


def test_bad_signatures_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_SIGNATURES", str(tmp_path / "typo"))
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o")],
        capsys,
        "(from $SLUICE_SIGNATURES) does not exist",
    )


def test_a_full_disk_during_an_extraction_is_one_clear_error(tmp_path: Path) -> None:
    """A real full filesystem (a 1 MiB tmpfs) under --out, filled by the extracted objects of a
    10 MB capture: one line, exit status 3, no traceback."""
    if os.geteuid() != 0:
        cannot_run("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        capture = next(Path(__file__).resolve().parents[2].glob("pcaps/office-egress/input.pcap"))
        done = subprocess.run(
            [sys.executable, "-m", "sensor.cli.main", "extract", str(capture), "--out",
             str(small / "out"), "--quiet"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert done.stderr.startswith("sluice: error: writing to ")
        assert "No space left on device" in done.stderr or "full" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        if subprocess.run(["umount", str(small)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], check=False)
