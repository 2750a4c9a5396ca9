"""The [metering] section of sensor/config (kept here so the metering change stays in one
place; tests/config covers the loader itself)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sensor.config import Config, ConfigError, MeteringConfig, VolumeThreshold, load_config


def test_defaults() -> None:
    config = Config()
    assert config.metering == MeteringConfig()
    assert "NL" in config.metering.transfer_allowed_countries
    assert "US" not in config.metering.transfer_allowed_countries


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "sluice.toml"
    path.write_text(
        "[metering]\nwindows = [600, 60]\ntimezone = 'Europe/Amsterdam'\nmax_hosts = 10\n"
        "transfer_allowed_countries = ['NL', 'CH']\n"
        "thresholds = [{name = 'lab', mb = 500, minutes = 60, hosts = ['10.1.0.0/16']},\n"
        "              {name = 'all', mb = 2.5, minutes = 1}]\n"
    )
    m = load_config(path).metering
    assert m.windows == (60.0, 600.0) and m.timezone == "Europe/Amsterdam" and m.max_hosts == 10
    assert m.transfer_allowed_countries == ("NL", "CH")
    assert m.thresholds == (
        VolumeThreshold("lab", 500_000_000, 3600.0, (ipaddress.ip_network("10.1.0.0/16"),)),
        VolumeThreshold("all", 2_500_000, 60.0),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("windows = []", "metering.windows must be a non-empty list"),
        ("windows = [60, -1]", "not a positive number"),
        ("timezone = 'Mars/Olympus'", "unknown time zone"),
        ("transfer_allowed_countries = ['nl']", "not an ISO 3166 alpha-2 code"),
        ("thresholds = [{mb = 1, minutes = 1}]", "thresholds[0].name"),
        ("thresholds = [{name = 'x', mb = 0, minutes = 1}]", "mb must be positive"),
        ("thresholds = [{name = 'x', mb = 1, minute = 1}]", "unknown key 'minute'"),
        ("thresholds = [{name = 'x', mb = 1, minutes = 1, hosts = ['x']}]", "is not a network"),
        ("bucket_seconds = 0", "bucket_seconds must be positive"),
        ("bucket_seconds = 120", "shorter than bucket_seconds"),
        ("baseline_alpha = 2", "baseline_alpha"),
        ("max_pair = 1", "unknown key metering.max_pair"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[metering]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)
