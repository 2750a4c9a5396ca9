"""`sluice blocks list|add|remove` on a real outbox file (no sensor running: the rows stay
pending, which `list` shows); the guards refuse what they must; removal touches only what it
names. tests/e2e/test_enforce.py drives the same commands against a live sensor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensor.cli.main import main
from sensor.verdicts.outbox import Outbox


@pytest.fixture
def setup(tmp_path: Path) -> tuple[list[str], Path]:
    Outbox(tmp_path / "outbox.db").close()  # what a live sensor with backends creates
    config = tmp_path / "sluice.toml"
    config.write_text(
        '[verdicts]\nbackends = ["nftables"]\ntreat_as_external = ["203.0.113.0/24"]\n'
    )
    return ["--db", str(tmp_path), "--config", str(config)], tmp_path


def listed(common: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert main(["blocks", "list", "--json", *common]) == 0
    return json.loads(capsys.readouterr().out)


def test_add_list_remove(setup: tuple[list[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    common, _ = setup
    assert (
        main(["blocks", "add", "10.20.30.40", "--ttl", "30m", "--reason", "lab test", *common]) == 0
    )
    assert "block_host 10.20.30.40 until" in capsys.readouterr().out
    assert main(["blocks", "add", "203.0.113.0/24", "--reason", "C2", *common]) == 0
    capsys.readouterr()
    rows = listed(common, capsys)
    assert [(r["action"], r["target"]) for r in rows] == [
        ("block_host", "10.20.30.40"), ("block_destination", "203.0.113.0/24"),
    ]  # fmt: skip
    assert rows[0]["reason"] == "by hand: lab test" and rows[0]["policy_rule"] == "manual"
    assert rows[0]["delivery"] == {
        "nftables": {"state": "pending", "attempts": 0, "last_error": None}
    }
    assert main(["blocks", "list", *common]) == 0
    text = capsys.readouterr().out
    assert "2 block(s) in force" in text and "[nftables pending]" in text
    assert main(["blocks", "remove", "10.20.30.40", *common]) == 0
    assert "removed verdict" in capsys.readouterr().out
    assert [r["target"] for r in listed(common, capsys)] == ["203.0.113.0/24"]
    assert main(["blocks", "remove", "10.20.30.40", *common]) == 2
    assert "no block in force for 10.20.30.40" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "rule"),
    [("127.0.0.1", "protected"), ("198.51.100.0/23", "prefix"), ("198.51.0.0/16", "prefix"),
     ("fe80::1", "scope"), ("198.51.100.7", "scope")],
)  # fmt: skip
def test_the_guards_refuse_what_they_must(
    setup: tuple[list[str], Path], capsys: pytest.CaptureFixture[str], target: str, rule: str
) -> None:
    common, _ = setup
    config = Path(common[3])
    config.write_text(config.read_text() + 'never_block = ["10.9.9.9"]\n')
    assert main(["blocks", "add", target, "--reason", "x", *common]) == 2
    err = capsys.readouterr().err
    assert f"refused by the guards ({rule})" in err
    assert listed(common, capsys) == []


def test_a_protected_address_is_never_blocked(
    setup: tuple[list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    common, _ = setup
    config = Path(common[3])
    config.write_text(config.read_text() + 'never_block = ["10.9.9.9"]\n')
    for target in ("10.9.9.9", "10.9.9.0/24"):  # containment, both ways
        assert main(["blocks", "add", target, "--reason", "x", *common]) == 2
        err = capsys.readouterr().err
        assert "refused by the guards (protected)" in err and "10.9.9.9" in err


def test_without_backends_or_outbox_it_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["blocks", "list", "--db", str(tmp_path)]) == 2
    assert "no verdict outbox at" in capsys.readouterr().err
    Outbox(tmp_path / "outbox.db").close()
    assert main(["blocks", "add", "10.1.1.1", "--reason", "x", "--db", str(tmp_path)]) == 2
    assert "no [verdicts] backends" in capsys.readouterr().err


def test_sluice_verdicts_finds_an_outbox_the_config_names(tmp_path: Path) -> None:
    from sensor.cli.top import _outbox_of

    database = tmp_path / "live" / "sluice.db"
    assert _outbox_of(database, None) == tmp_path / "live" / "outbox.db"
    config = tmp_path / "sluice.toml"
    config.write_text(f'[verdicts]\noutbox = "{tmp_path / "elsewhere.db"}"\n')
    assert _outbox_of(database, str(config)) == tmp_path / "elsewhere.db"
