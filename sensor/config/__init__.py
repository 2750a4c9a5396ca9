"""Sensor configuration: frozen values read once from TOML and passed to constructors.

Nothing here is mutable or global (STYLE.md habit 3). `load_config(path)` validates the file
strictly: an unknown key, a wrong type or a bad network is a `ConfigError` naming the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1918, RFC 4193 (ULA), loopback, link-local: "internal" unless the operator says otherwise.
DEFAULT_HOME_NET = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "::1/128",
    "fe80::/10",
)


class ConfigError(Exception):
    """A configuration file or value is unusable; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    verify_checksums: bool = False
    max_frag_bytes: int = 64 * 1024 * 1024
    max_frag_datagrams: int = 10_000
    frag_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class FlowConfig:
    tcp_idle_timeout: float = 600.0  # established TCP without packets
    tcp_new_timeout: float = 60.0  # handshake not completed
    tcp_closed_timeout: float = 10.0  # after both FINs or an RST: room for trailing packets
    udp_idle_timeout: float = 120.0
    other_idle_timeout: float = 60.0
    active_timeout: float = 3600.0  # long flows report an interim `flow` record this often
    max_flows: int = 250_000  # memory cap: beyond it the least recently seen flows are evicted
    scan_interval: float = 5.0  # packet-clock seconds between timeout scans
    # Counted-only flows (encrypted or unknown) skip decoding: same counters, less work.
    bypass: bool = True


@dataclass(frozen=True, slots=True)
class StreamConfig:
    max_pending_bytes: int = 4 * 1024 * 1024  # out-of-order bytes per direction
    max_pending_segments: int = 2048
    memcap: int = 256 * 1024 * 1024  # out-of-order bytes for all flows together
    depth: int = 0  # bytes reassembled per direction; 0 = unlimited
    detect_bytes: int = 4096  # bytes per direction inspected before giving up on detection


@dataclass(frozen=True, slots=True)
class HttpConfig:
    max_header_bytes: int = 65536
    max_headers: int = 256


@dataclass(frozen=True, slots=True)
class ContentConfig:
    max_decoded_bytes: int = 4 * 1024**3
    max_ratio: int = 1000
    max_parts: int = 1000
    max_part_header_bytes: int = 16384


@dataclass(frozen=True, slots=True)
class OutputConfig:
    # Cap on anomaly events per flow: a hostile flow can produce thousands of oddities; after
    # the cap they are only counted (stats event), so the log stays readable.
    max_anomalies_per_flow: int = 32


@dataclass(frozen=True, slots=True)
class Config:
    home_net: tuple[IPNetwork, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in DEFAULT_HOME_NET)
    )
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    flows: FlowConfig = field(default_factory=FlowConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


_SECTIONS: dict[str, type[Any]] = {
    "decode": DecodeConfig,
    "flows": FlowConfig,
    "stream": StreamConfig,
    "http": HttpConfig,
    "content": ContentConfig,
    "output": OutputConfig,
}


def _section(name: str, cls: type[Any], raw: object) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        default = getattr(cls(), key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false, not {value!r}")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name}.{key} must be a number, not {value!r}")
            if value < 0:
                raise ConfigError(f"{name}.{key} must not be negative")
            value = type(default)(value)
        values[key] = value
    return cls(**values)


def parse_networks(items: object, key: str = "home_net") -> tuple[IPNetwork, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{key} must be a non-empty list of networks")
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            raise ConfigError(f"{key}: {item!r} is not a network ({exc})") from None
    return tuple(nets)


def config_from_dict(raw: dict[str, Any]) -> Config:
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "home_net":
            kwargs["home_net"] = parse_networks(value)
        elif key in _SECTIONS:
            kwargs[key] = _section(key, _SECTIONS[key], value)
        else:
            raise ConfigError(f"unknown key {key!r} (known: home_net, {', '.join(_SECTIONS)})")
    return Config(**kwargs)


def load_config(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
