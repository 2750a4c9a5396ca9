"""sensor/cli/edm.py: `sluice edm load|info` through its own parser."""

from __future__ import annotations

import argparse
import random
import stat
from pathlib import Path

import pytest

from sensor.classify.edm import EdmIndex
from sensor.classify.secret import load_secret
from sensor.cli import edm as edm_cli


def sluice(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sluice")
    edm_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return edm_cli.run(parser.parse_args(argv))


def fake_bsn(rng: random.Random) -> str:
    while True:
        digits = str(rng.randrange(10_000_000, 100_000_000))
        check = sum((9 - i) * int(d) for i, d in enumerate(digits)) % 11
        if check < 10:
            return digits + str(check)


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, list[str]]:
    rng = random.Random(3)
    numbers = sorted({fake_bsn(rng) for _ in range(40)})
    lines = ["\ufeffbsn;geboortedatum;postcode;achternaam"]
    lines += [f"{n};01-03-1985;2511 CV;Zwanenburgqx{i}" for i, n in enumerate(numbers)]
    lines.append("123456781;01-03-1985;2511 CV;Ongeldig")
    path = tmp_path / "patients.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, numbers


def test_load_then_info(
    tmp_path: Path, export: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source, numbers = export
    secret = tmp_path / "lib" / "secret.key"
    index_dir = tmp_path / "index"
    status = sluice(
        [
            "edm",
            "load",
            str(source),
            "--primary",
            "bsn",
            "--fields",
            "geboortedatum,postcode,achternaam",
            "--index",
            str(index_dir),
            "--secret",
            str(secret),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert f"{len(numbers)} records from {len(numbers) + 1} rows" in out
    assert "1 rows without a valid bsn skipped" in out
    assert "1 rows had no valid primary" in err
    index_file = index_dir / "edm.idx"
    assert stat.S_IMODE(index_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    for n in numbers:
        assert n not in out + err
    with EdmIndex.open(index_file, load_secret(secret)) as index:
        record = index.primary(numbers[0])
        assert record is not None and index.corroborates(record, "achternaam", "ZWANENBURGQX0")
    assert sluice(["edm", "info", "--index", str(index_dir), "--secret", str(secret)]) == 0
    out, _ = capsys.readouterr()
    assert "checksum and key ok" in out and f"records: {len(numbers)}" in out
    assert "achternaam (name)" in out and "geboortedatum (date)" in out


def test_errors_are_one_line_and_status_2(
    tmp_path: Path, export: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source, numbers = export
    secret = tmp_path / "secret.key"
    base = ["edm", "load", str(source), "--index", str(tmp_path), "--secret", str(secret)]
    assert sluice([*base, "--fields", "postcode,woonplaats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sluice: error: ") and "no column named 'woonplaats'" in err
    assert err.count("\n") == 1
    assert sluice([*base, "--fields", "postcode", "--kind", "postcode=zip"]) == 2
    assert "--kind" in capsys.readouterr().err
    secret.chmod(0o644)
    assert sluice([*base, "--fields", "postcode"]) == 2
    assert "open to group or others" in capsys.readouterr().err
    secret.chmod(0o600)
    assert sluice(["edm", "info", "--index", str(tmp_path), "--secret", str(secret)]) == 2
    assert "cannot open the EDM index" in capsys.readouterr().err
    assert sluice([*base, "--fields", "postcode"]) == 0
    (tmp_path / "edm.idx").write_bytes((tmp_path / "edm.idx").read_bytes()[:-3])
    assert sluice(["edm", "info", "--index", str(tmp_path), "--secret", str(secret)]) == 2
    err = capsys.readouterr().err
    assert "truncated or damaged" in err
    assert not any(n in err for n in numbers)
    assert sluice(["edm", "info", "--index", str(tmp_path), "--secret", str(tmp_path / "x")]) == 2
    assert "no secret key file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # info never creates a key
