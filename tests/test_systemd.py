"""The shipped unit files are valid for systemd (`systemd-analyze verify`), and start what
the CLI really offers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sensor.cli.main import _build_parser
from tests.conftest import cannot_run

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "sluice@.service"


def test_the_sensor_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        cannot_run("needs systemd-analyze (Debian package systemd)")
    sluice = Path(sys.executable).parent / "sluice"
    text = UNIT.read_text().replace("/opt/sluice/.venv/bin/sluice", str(sluice))
    unit = tmp_path / "sluice@eth1.service"
    unit.write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_units_command_line_is_one_the_cli_accepts() -> None:
    exec_start = next(
        line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart=")
    )
    argv = exec_start.split()[1:]
    args = _build_parser().parse_args([a.replace("%i", "eth1") for a in argv])
    assert (args.command, args.iface, args.out, args.probe) == (
        "run", "eth1", "/var/lib/sluice/eth1", "auto",
    )  # fmt: skip
