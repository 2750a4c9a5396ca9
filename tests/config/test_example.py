"""The shipped example configuration (systemd/sluice.toml) cannot drift from the code: it
loads, it sets every setting the code has, and every value is the built-in default."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from sensor.config import SECTIONS, Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "sluice.toml"


def test_the_example_is_the_defaults() -> None:
    assert load_config(EXAMPLE) == Config()


def test_the_example_names_every_setting() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    assert "home_net" in raw
    for section, cls in SECTIONS.items():
        assert section in raw, f"[{section}] missing from {EXAMPLE}"
        missing = {f.name for f in fields(cls)} - set(raw[section])
        assert not missing, f"[{section}] of {EXAMPLE} lacks {sorted(missing)}"
    assert "signatures_dir" in EXAMPLE.read_text()  # documented, commented out
