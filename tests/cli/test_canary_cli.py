"""sensor/cli/canary.py: `sluice canary new|list` through its own parser."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest
from stdnum import iban as stdnum_iban
from stdnum.nl import bsn as stdnum_bsn

from sensor.classify.canary import KINDS, CanaryStore
from sensor.classify.secret import load_secret
from sensor.cli import canary as canary_cli


def sluice(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sluice")
    canary_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return canary_cli.run(parser.parse_args(argv))


def test_new_prints_once_and_list_never(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "lib" / "canaries.json"
    secret = tmp_path / "lib" / "secret.key"
    common = ["--store", str(store), "--secret", str(secret)]
    tokens = {}
    for kind in KINDS:
        status = sluice(
            [
                "canary",
                "new",
                "--kind",
                kind,
                "--label",
                f"lab export {kind}",
                "--domain",
                "canary.zorg.example",
                *common,
            ]
        )
        out, err = capsys.readouterr()
        assert status == 0
        assert out.count("\n") == 1  # the token alone on stdout
        tokens[kind] = out.strip()
        assert tokens[kind] not in err and "shown this once" in err
    assert stdnum_bsn.is_valid(tokens["bsn"]) and stdnum_iban.is_valid(tokens["iban"])
    assert tokens["email"].endswith("@canary.zorg.example")
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    data = store.read_text()
    assert not any(token in data for token in tokens.values())
    assert sluice(["canary", "list", *common]) == 0
    out, err = capsys.readouterr()
    for kind, token in tokens.items():
        assert f"lab export {kind}" in out
        assert token not in out + err
        assert token.split("@")[0].removeprefix("https://") not in out
    loaded = CanaryStore.load(store, load_secret(secret))
    for kind, token in tokens.items():
        hit = loaded.check(None, token)
        assert hit is not None and hit.kind == kind


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "canaries.json"
    secret = tmp_path / "secret.key"
    common = ["--store", str(store), "--secret", str(secret)]
    assert sluice(["canary", "list", *common]) == 2  # no key yet: list creates none
    assert "no secret key file" in capsys.readouterr().err
    assert not secret.exists()
    bad = ["canary", "new", "--kind", "email", "--label", "x", "--domain", "not a domain"]
    assert sluice([*bad, *common]) == 2
    assert "not a host name" in capsys.readouterr().err
    assert not store.exists()
    assert sluice(["canary", "new", "--kind", "string", "--label", "a\tb", *common]) == 2
    assert "label" in capsys.readouterr().err
    assert sluice(["canary", "new", "--kind", "string", "--label", "ok", *common]) == 0
    capsys.readouterr()
    assert sluice(["canary", "list", *common]) == 0
    assert "ok" in capsys.readouterr().out
    other = tmp_path / "other.key"
    assert sluice(["canary", "list", "--store", str(store), "--secret", str(other)]) == 2
    load_secret(other)
    assert sluice(["canary", "list", "--store", str(store), "--secret", str(other)]) == 2
    assert "another secret key" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    assert sluice(["canary", "list", "--store", str(empty), "--secret", str(secret)]) == 0
    assert "no canaries" in capsys.readouterr().out
