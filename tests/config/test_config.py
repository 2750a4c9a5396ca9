from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sensor.config import Config, ConfigError, load_config


def test_defaults_without_file() -> None:
    config = load_config(None)
    assert config == Config()
    assert ipaddress.ip_network("10.0.0.0/8") in config.home_net


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "sluice.toml"
    path.write_text(
        'home_net = ["10.20.0.0/16", "fd00::/8"]\n'
        "[flows]\nmax_flows = 10\ntcp_idle_timeout = 30\n"
        "[stream]\ndepth = 1048576\n"
    )
    config = load_config(path)
    assert config.home_net == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert config.flows.max_flows == 10
    assert config.flows.tcp_idle_timeout == 30.0
    assert isinstance(config.flows.tcp_idle_timeout, float)
    assert config.stream.depth == 1048576


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[flows]\nmax_flow = 1\n", "unknown key flows.max_flow"),
        ("[flows]\nmax_flows = 'many'\n", "flows.max_flows must be a number"),
        ("[flows]\nmax_flows = -1\n", "must not be negative"),
        ("[decode]\nverify_checksums = 1\n", "must be true or false"),
        ('home_net = ["10.0.0.0/33"]\n', "is not a network"),
        ("home_net = []\n", "non-empty list"),
        ("[nonsense]\n", "unknown key 'nonsense'"),
        ("flows = 3\n", "[flows] must be a table"),
        ("[flows\n", "not valid TOML"),
        ("[flows]\nmax_flows = nan\n", "flows.max_flows must be a finite number"),
        ("[flows]\nmax_flows = inf\n", "flows.max_flows must be a finite number"),
        ("[flows]\nmax_flows = 1.5\n", "flows.max_flows must be a whole number"),
        ("[stream]\nmemcap = 1e99\n", "stream.memcap must be a whole number"),
        ("[flows]\ntcp_idle_timeout = inf\n", "must be a finite number"),
        ("[flows]\nmax_flows = 100000000000000000000\n", "beyond any sensible setting"),
        ("[metering]\nwindows = [60, inf]\n", "is not a positive number of seconds"),
        ("[history]\nhour_days = nan\n", "history.hour_days must be a finite number"),
    ],
)
def test_broken_configs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")
