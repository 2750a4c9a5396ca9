"""Which configuration is in effect (`--config`, $SLUICE_CONFIG, /etc/sluice/sluice.toml,
built-in defaults) and `sluice config show`, which says where every value came from."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import sensor.config as config_module
from sensor.cli.main import main
from sensor.config import Config, ConfigError, load_config, locate_config, read_config


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "sluice.toml"
    path.write_text(
        'home_net = ["10.20.0.0/16"]\n'
        "[metering]\ntimezone = 'Europe/Amsterdam'\n"
        "thresholds = [{ name = 'bulk', mb = 5, minutes = 10 }]\n"
    )
    return path


def test_the_file_is_chosen_in_order(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.toml"
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert locate_config(None, {}) == (None, "")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", site)
    assert locate_config(None, {}) == (site, "default path")
    assert locate_config(None, {"SLUICE_CONFIG": str(other)}) == (other, "$SLUICE_CONFIG")
    assert locate_config(str(other), {"SLUICE_CONFIG": str(site)}) == (other, "--config")


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        read_config(None, {"SLUICE_CONFIG": str(tmp_path / "gone.toml")})
    with pytest.raises(ConfigError, match="no such config file"):
        read_config(tmp_path / "gone.toml", {})


def test_read_config_knows_which_keys_the_file_set(site: Path) -> None:
    loaded = read_config(site, {})
    assert loaded.config.metering.timezone == "Europe/Amsterdam"
    assert loaded.keys == {"home_net", "metering.timezone", "metering.thresholds"}
    assert loaded.source("metering.timezone") == str(site)
    assert loaded.source("flows.max_flows") == "default"


def test_show_prints_loadable_toml_with_sources(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", "--config", str(site)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# effective configuration: {site} (chosen by --config)")
    lines = text.splitlines()
    assert f'timezone = "Europe/Amsterdam"  # {site}' in lines
    assert "max_flows = 250000  # default" in lines
    assert any(line.startswith('thresholds = [{ name = "bulk"') for line in lines)
    shown = tmp_path / "shown.toml"
    shown.write_text(text)
    assert load_config(shown) == load_config(site)  # the printout is itself the config
    assert tomllib.loads(text)["history"]["hour_days"] == Config().history.hour_days


def test_show_json(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--config", str(site), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["file"] == str(site) and shown["chosen_by"] == "--config"
    assert shown["settings"]["home_net"] == {"value": ["10.20.0.0/16"], "source": str(site)}
    assert shown["settings"]["metering.thresholds"]["value"] == [
        {"name": "bulk", "mb": 5.0, "minutes": 10.0}
    ]
    assert shown["settings"]["output.group"] == {"value": "", "source": "default"}


def test_show_of_a_broken_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[history]\nhour_days = 0\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sluice: error: config:") and "history.hour_days" in err
    assert err.count("\n") == 1


def test_without_any_file_the_defaults_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    monkeypatch.delenv("SLUICE_CONFIG", raising=False)
    assert main(["config", "show"]) == 0
    assert "built-in defaults" in capsys.readouterr().out.splitlines()[0]


def test_show_keeps_non_ascii_text_loadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "sluice.toml"
    site.write_text(
        "[metering]\nthresholds = [{ name = 'röntgen \U0001f680 \"quoted\" \\\\ x', mb = 1, "
        "minutes = 5, hosts = ['10.1.0.0/16'] }]\n",
        encoding="utf-8",
    )
    assert main(["config", "show", "--config", str(site)]) == 0
    shown = tmp_path / "shown.toml"
    shown.write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_config(shown) == load_config(site)
