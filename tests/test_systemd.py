"""The shipped unit files are valid for systemd (`systemd-analyze verify`), start what the CLI
really offers, stay hardened (`systemd-analyze security`), and agree with the sysusers.d and
tmpfiles.d files on the user and the bpffs directory the probe pins its maps in."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from sensor.cli.main import _build_parser
from tests.conftest import ROOT, cannot_run, require_tool

SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "sluice@.service"
SYSUSERS = SYSTEMD / "sluice.sysusers"
TMPFILES = SYSTEMD / "sluice.tmpfiles"
INSTALLED_SLUICE = "/opt/sluice/venv/bin/sluice"  # where `make install` puts the executable
MAX_EXPOSURE = 2.0  # `systemd-analyze security`: 3.1 as root, before the hardening
SYSUSERS_TYPES = {"u", "g", "m", "r"}
# tmpfiles.d(5) line types (with their "+" and "!" / "-" modifiers stripped).
TMPFILES_TYPES = set("fwdDevqQpLcbCxXrRzZtThHaA")
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


def service_settings(text: str) -> dict[str, list[str]]:
    """Every Key=Value of the [Service] section, values of repeated keys in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def config_lines(path: Path) -> list[list[str]]:
    """The non-comment lines of a sysusers.d/tmpfiles.d file, split as systemd splits them."""
    lines = path.read_text().splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


def exec_start_argv() -> list[str]:
    return service_settings(UNIT.read_text())["ExecStart"][0].split()


def test_the_sensor_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        cannot_run("needs systemd-analyze (Debian package systemd)")
    sluice = Path(sys.executable).parent / "sluice"
    text = UNIT.read_text()
    assert INSTALLED_SLUICE in text
    unit = tmp_path / "sluice@eth1.service"
    unit.write_text(text.replace(INSTALLED_SLUICE, str(sluice)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_units_command_line_is_one_the_cli_accepts() -> None:
    argv = exec_start_argv()
    assert argv[0] == INSTALLED_SLUICE
    args = _build_parser().parse_args([a.replace("%i", "eth1") for a in argv[1:]])
    assert (args.command, args.iface, args.config, args.out, args.probe, args.pin_dir) == (
        "run", "eth1", "/etc/sluice/sluice.toml", "/var/lib/sluice/eth1", "auto",
        "/run/sluice/bpf/eth1",
    )  # fmt: skip


def test_the_units_exposure_is_at_most_two(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        cannot_run("needs systemd-analyze (Debian package systemd)")
    unit = tmp_path / "sluice@eth1.service"
    shutil.copyfile(UNIT, unit)
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = _EXPOSURE.search(done.stdout)
    assert found is not None, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_pins_go_to_the_users_own_bpffs_directory() -> None:
    """--pin-dir lies in the BindPaths= target, whose source tmpfiles.d gives to User=, the user
    sysusers.d creates: else the probe could not pin as a non-root user."""
    settings = service_settings(UNIT.read_text())
    user = settings["User"][0]
    (bind,) = settings["BindPaths"]
    source, _, target = bind.removeprefix("-").partition(":")
    argv = exec_start_argv()
    pin_dir = argv[argv.index("--pin-dir") + 1]
    assert pin_dir.startswith(target + "/")
    assert source.startswith("/sys/fs/bpf/")
    assert ["d", source, "0700", user, user, "-"] in config_lines(TMPFILES)
    assert [line[:2] for line in config_lines(SYSUSERS)] == [["u", user]]
    assert "ReadWritePaths" not in settings  # the bind mount is the only writable bpffs place


def test_the_sysusers_and_tmpfiles_lines_are_well_formed() -> None:
    users = {"root"}
    for fields in config_lines(SYSUSERS):
        assert fields[0] in SYSUSERS_TYPES and 2 <= len(fields) <= 6, fields
        assert re.fullmatch(r"[a-z_][a-z0-9_-]*", fields[1]), fields
        users.add(fields[1])
    tmpfiles = config_lines(TMPFILES)
    assert tmpfiles
    for fields in tmpfiles:
        assert 2 <= len(fields) <= 7, fields
        kind, path = fields[0].rstrip("+!-"), fields[1]
        assert kind in TMPFILES_TYPES and path.startswith("/"), fields
        mode, user, group = (fields[2:5] + ["-"] * 3)[:3]
        assert mode == "-" or re.fullmatch(r"[~:]?[0-7]{3,4}", mode), fields
        assert user in users | {"-"} and group in users | {"-"}, fields


def test_systemd_applies_the_sysusers_and_tmpfiles_files(tmp_path: Path) -> None:
    """systemd's own parsers, on a scratch root: the user exists, the directories get their
    owners and modes (an existing config's group is fixed, a missing one is not created)."""
    sysusers = require_tool("systemd-sysusers")
    tmpfiles = require_tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        cannot_run("needs root: systemd-tmpfiles gives the directories to user sluice")
    root = tmp_path / "root"
    for source, directory in ((SYSUSERS, "usr/lib/sysusers.d"), (TMPFILES, "usr/lib/tmpfiles.d")):
        (root / directory).mkdir(parents=True)
        shutil.copyfile(source, root / directory / "sluice.conf")
    (root / "etc/sluice").mkdir(parents=True)
    (root / "etc/sluice/sluice.toml").write_text("")
    for argv in ([sysusers, f"--root={root}"], [tmpfiles, f"--root={root}", "--create"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    passwd = (root / "etc/passwd").read_text().splitlines()
    uid, gid = next(line.split(":")[2:4] for line in passwd if line.startswith("sluice:"))
    want = {
        "sys/fs/bpf/sluice": (0o700, uid, gid),
        "run/sluice": (0o755, "0", "0"),
        "etc/sluice": (0o750, "0", gid),
        "etc/sluice/sluice.toml": (0o640, "0", gid),
    }
    for path, (mode, owner, group) in want.items():
        st = (root / path).stat()
        assert (st.st_mode & 0o7777, str(st.st_uid), str(st.st_gid)) == (mode, owner, group), path
