"""`sluice signatures check [DIR]`: one line per file, exit 0 when all are fine, 2 otherwise;
a broken file in each position is reported by name and does not hide the others."""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import pytest

from sensor.cli import signatures as cli

SHIPPED = Path(__file__).resolve().parents[2] / "signatures"
NAMES = ("categories.toml", "filetypes.toml", "detectors.toml", "policy.toml")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sluice")
    cli.add_parser(top.add_subparsers(dest="command", required=True))
    return top


def check(argv: list[str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = cli.run(parser().parse_args(argv), out)
    return status, out.getvalue().splitlines()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in NAMES:
        shutil.copy(SHIPPED / name, tmp_path / name)
    return tmp_path


def test_shipped_directory_is_fine(copy: Path) -> None:
    status, lines = check(["signatures", "check", str(copy)])
    assert status == 0
    assert len(lines) == 4
    for line, name in zip(lines, NAMES, strict=True):
        assert line.startswith(f"ok {copy / name} (")
    assert "(sluice-destination-categories, version " in lines[0]
    assert "(sluice-file-types, version " in lines[1]
    assert "(sluice-detectors, version " in lines[2]
    assert " detectors, " in lines[2] and " severity rules" in lines[2]
    assert "(mode enforce, 7 rules, " in lines[3]


def test_default_directory_is_the_resolved_one(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_SIGNATURES", str(copy))
    status, lines = check(["signatures", "check"])
    assert status == 0
    assert lines[0].startswith(f"ok {copy / 'categories.toml'}")


BREAKS = {
    "categories.toml": ("[[category]]", "[[category]]\ncolour = 1", "unknown key 'colour'"),
    "filetypes.toml": ('mime = "application/zip"', 'mime = "zip"', "mime must be a media type"),
    "detectors.toml": ('validator = "bsn"', 'validator = "bsn2"', "[[detector]] #1 (bsn)"),
    "policy.toml": ('ttl = "24h"', 'ttl = "1w"', ":20: rule 'canary': '1w' is no duration"),
}


@pytest.mark.parametrize("broken", NAMES)
def test_a_broken_file_in_each_position(copy: Path, broken: str) -> None:
    old, new, rule = BREAKS[broken]
    path = copy / broken
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    status, lines = check(["signatures", "check", str(copy)])
    assert status == 2
    assert len(lines) == 4
    for line, name in zip(lines, NAMES, strict=True):
        if name == broken:
            assert line.startswith(f"error {path}:"), line
            assert rule in line, line
        else:
            assert line.startswith(f"ok {copy / name} "), line


@pytest.mark.parametrize("missing", NAMES)
def test_a_missing_file(copy: Path, missing: str) -> None:
    (copy / missing).unlink()
    status, lines = check(["signatures", "check", str(copy)])
    assert status == 2
    assert f"error {copy / missing}: missing" in lines
    assert sum(line.startswith("ok ") for line in lines) == len(NAMES) - 1


def test_not_utf8(copy: Path) -> None:
    (copy / "detectors.toml").write_bytes(b"id = \xff\n")
    status, lines = check(["signatures", "check", str(copy)])
    assert status == 2
    assert lines[2].startswith(f"error {copy / 'detectors.toml'}: cannot read it")


def test_missing_directory(tmp_path: Path) -> None:
    status, lines = check(["signatures", "check", str(tmp_path / "nowhere")])
    assert status == 2
    assert lines == [f"error signatures directory {tmp_path / 'nowhere'} (from the DIR argument) "
                     "does not exist"]  # fmt: skip


def test_action_is_required() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["signatures"])
