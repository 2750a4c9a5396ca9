"""`sluice config show`: the effective configuration and where each value came from.

The same resolution every command uses (sensor/config: `--config`, else $SLUICE_CONFIG, else
/etc/sluice/sluice.toml when present, else the built-in defaults). The text form is itself
valid TOML that loads to the same configuration, each value commented with its source; the
JSON form is for tools.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from sensor.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    MEGABYTE,
    SECTIONS,
    Config,
    LoadedConfig,
    VolumeThreshold,
)

CONFIG_HELP = (
    f"configuration file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH} when it exists, "
    "else built-in defaults)"
)


def add_parser(sub: Any) -> None:
    config = sub.add_parser(
        "config",
        help="show the effective configuration and where each value came from",
        description="Print the configuration a sensor started now would use, as TOML with "
        "the source of every value (the file, or the built-in default).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the effective configuration",
        description="Print the effective configuration as TOML (each value commented with "
        "its source) or JSON. Exit status 2 when the file is missing or invalid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    show.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    show.add_argument("--json", action="store_true", help="JSON instead of TOML")


def run(args: argparse.Namespace, loaded: LoadedConfig, out: IO[str] | None = None) -> int:
    stream = out if out is not None else sys.stdout
    if args.json:
        stream.write(json.dumps(config_json(loaded), indent=2) + "\n")
    else:
        stream.write(render_toml(loaded))
    return 0


def origin_line(loaded: LoadedConfig) -> str:
    """One line saying which file is in effect (for `config show` and the sensor's start)."""
    if loaded.path is None:
        return f"built-in defaults (no --config, no ${CONFIG_ENV}, no {DEFAULT_CONFIG_PATH})"
    return f"{loaded.path} (chosen by {loaded.origin})"


def summary_line(config: Config) -> str:
    """The settings an operator checks first, in one line."""
    m = config.metering
    thresholds = ", ".join(
        f"{t.name} {t.bytes / MEGABYTE:g} MB/{t.seconds / 60:g} min" for t in m.thresholds
    )
    return (
        f"home_net {', '.join(str(n) for n in config.home_net)}; "
        f"metering {'on' if m.enabled else 'off'}, timezone {m.timezone}, "
        f"thresholds {thresholds or 'none'}; history {config.history.hour_days:g} days"
    )


def _values(config: Config) -> list[tuple[str, str, Any]]:
    """(section or "", key, TOML-ready value) for every setting, top-level keys first."""
    out: list[tuple[str, str, Any]] = [
        ("", "home_net", [str(n) for n in config.home_net]),
    ]
    if config.signatures_dir is not None:
        out.append(("", "signatures_dir", str(config.signatures_dir)))
    for section in SECTIONS:
        values = getattr(config, section)
        for f in fields(values):
            out.append((section, f.name, _plain(getattr(values, f.name))))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, VolumeThreshold):
        rule: dict[str, Any] = {
            "name": value.name,
            "mb": value.bytes / MEGABYTE,
            "minutes": value.seconds / 60,
        }
        if value.hosts:
            rule["hosts"] = [str(h) for h in value.hosts]
        return rule
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network | Path):
        return str(value)
    return value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, given no \uXXXX surrogate pairs (TOML has
        # none): non-ASCII text stays as it is.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def render_toml(loaded: LoadedConfig) -> str:
    lines = [f"# effective configuration: {origin_line(loaded)}"]
    current = ""
    for section, key, value in _values(loaded.config):
        if section != current:
            lines += ["", f"[{section}]"]
            current = section
        dotted = f"{section}.{key}" if section else key
        lines.append(f"{key} = {_toml(value)}  # {loaded.source(dotted)}")
    return "\n".join(lines) + "\n"


def config_json(loaded: LoadedConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for section, key, value in _values(loaded.config):
        dotted = f"{section}.{key}" if section else key
        settings[dotted] = {"value": value, "source": loaded.source(dotted)}
    return {
        "file": str(loaded.path) if loaded.path is not None else None,
        "chosen_by": loaded.origin or None,
        "settings": settings,
    }
