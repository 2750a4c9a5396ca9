"""Sensor configuration: frozen values read once from TOML and passed to constructors.

Nothing here is mutable or global (STYLE.md habit 3). `load_config(path)` validates the file
strictly: an unknown key, a wrong type or a bad network is a `ConfigError` naming the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Where the sensor looks for its configuration when no --config is given: $SLUICE_CONFIG, else
# this path if it exists, else the built-in defaults (said at start, never silently).
DEFAULT_CONFIG_PATH = Path("/etc/sluice/sluice.toml")
CONFIG_ENV = "SLUICE_CONFIG"

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
    # Unanswered SYNs held as frames, not flows (sensor/flows/halfopen.py); over this many
    # bytes the oldest are summed early into their half_open record. 0: every SYN is a flow.
    half_open_memcap: int = 128 * 1024 * 1024
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
    # Young flows' delivered bytes kept so that a reading forked at a TCP overlap conflict
    # starts at the flow's first byte (all flows together; 0: readings start at the fork).
    readings_memcap: int = 32 * 1024 * 1024
    # Receivers' OS per destination ("CIDR=policy", policy first|windows|macos|linux|bsd):
    # overlaps towards them are read that way only; elsewhere every diverging reading is kept.
    os_policy: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClassifyConfig:
    # Classify what uploads contain (identifiers, health data: sensor/classify/, detectors in
    # signatures/detectors.toml). Off by default: scanning dense identifier tables does not
    # meet the replay throughput targets yet (README, "Not yet").
    enabled: bool = False
    # Canary tokens (`sluice canary new`) and the exact-data-match index (`sluice edm load`):
    # each is used when its path is set and the file exists; both need the secret key file
    # they were made with. "": none (replays of sample traffic by default).
    secret: str = ""  # the sensor's secret key file (0600), e.g. /var/lib/sluice/secret.key
    canaries: str = ""  # the canary store, e.g. /var/lib/sluice/canaries.json
    edm_index: str = ""  # the directory holding edm.idx, e.g. /var/lib/sluice
    # Characters between an EDM primary (a BSN) and a corroborating field of the same record
    # when they are not in one table row (Purview's patternsProximity is 300).
    edm_window: int = 300


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    # Findings become verdicts (sensor/policy/): `sluice replay` decides them in dry-run
    # (nothing is sent anywhere), `sluice run` enforces them through [verdicts] backends.
    # The policy is `file`, else policy.toml of the signatures directory; `sluice policy
    # check FILE` validates one.
    enabled: bool = True
    file: str = ""
    incident_window: float = 3600.0  # seconds between findings of one incident


BACKENDS = ("nftables", "ebpf", "crowdsec", "opnsense", "feed", "webhook")  # `backends`


@dataclass(frozen=True, slots=True)
class VerdictsConfig:
    # Delivery of the live sensor's block verdicts (sensor/verdicts/). No backend: the
    # verdicts are decided and recorded in dry-run, nothing is sent anywhere.
    backends: tuple[str, ...] = ()  # "nftables" (gateway mode: the sensor's own ruleset)
    outbox: str = ""  # the durable outbox (SQLite); "": outbox.db in the --out directory
    nftables_netns: str = ""  # act in this network namespace (tests, a routing namespace)
    # "crowdsec": decisions pushed to a CrowdSec LAPI as a registered machine
    # (`cscli machines add sluice --password ...`); every bouncer of that LAPI enforces them
    crowdsec_url: str = "http://127.0.0.1:8080"  # http only to loopback; else https
    crowdsec_machine_id: str = ""
    crowdsec_password_file: str = ""
    crowdsec_ca_file: str = ""  # "": the system's CAs
    # "opnsense": the firewall's API (alias_util) with an API key; the secret in a file (0600)
    opnsense_url: str = ""  # e.g. https://fw.example/ (the API is under /api/)
    opnsense_key: str = ""
    opnsense_secret_file: str = ""
    opnsense_alias_hosts: str = "sluice_hosts"  # External (advanced) aliases to create
    opnsense_alias_destinations: str = "sluice_destinations"
    opnsense_ca_file: str = ""  # "": the system's CAs
    # "feed": plain-text block lists served for firewalls to poll (EDL, threat feeds)
    feed_listen: str = "127.0.0.1:8473"  # ADDRESS:PORT ([v6]:port for IPv6)
    feed_token_file: str = ""  # the token pollers send (Bearer, Basic password or ?token=)
    feed_cert_file: str = ""  # TLS certificate and key (PEM); "": plain HTTP
    feed_key_file: str = ""
    # "webhook": a signed JSON POST (HMAC-SHA256) per block and unblock
    webhook_url: str = ""
    webhook_secret_file: str = ""
    interval: float = 0.2  # seconds between delivery passes (a new verdict wakes it at once)
    reconcile_interval: float = 60.0  # seconds between re-assertions of the desired state
    # Safety guards, applied last (sensor/verdicts/guards.py).
    never_block: tuple[str, ...] = ()  # addresses/networks never blocked (besides discovered)
    treat_as_external: tuple[str, ...] = ()  # special-purpose ranges routed as the outside
    min_prefix_v4: int = 24
    min_prefix_v6: int = 48
    max_blocked_hosts: int = 3  # internal hosts blocked at once; beyond: alert-only, loudly
    rate_per_minute: float = 30.0  # blocks per minute (burst below); beyond: alert-only
    burst: int = 20
    kill_switch: str = "/etc/sluice/kill-switch"  # while this file exists nothing is blocked


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
    # Containers opened under one transferred object (ZIP, gzip, bzip2, xz, zstd, tar,
    # OOXML/ODF): nesting levels, members, and decoded member bytes in its whole tree.
    max_archive_depth: int = 4
    max_archive_members: int = 10_000
    max_archive_bytes: int = 4 * 1024**3
    # `sluice extract` stores each object up to this many bytes, and a run's objects up to
    # max_extract_total; beyond, files/<sha256>.cut holds the first bytes (hashing and
    # typing still see everything up to max_decoded_bytes).
    max_extract_bytes: int = 256 * 1024**2
    max_extract_total: int = 4 * 1024**3


SECRET_PARAMETERS = (
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "client_secret", "token",
    "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "key",
    "auth", "authorization", "session", "sessionid", "session_id", "sid", "phpsessid",
    "jsessionid", "code", "otp", "signature", "sig", "jwt", "credential", "credentials",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutputConfig:
    # Cap on anomaly events per flow: a hostile flow can produce thousands of oddities; after
    # the cap they are only counted (stats event), so the log stays readable.
    max_anomalies_per_flow: int = 32
    # Output files are the operator's alone (0600, directories 0700); name a group here to
    # make them readable by it too (0640/0750, set-group-ID output directory).
    group: str = ""
    # URL query parameters whose values never reach an output (matched case-insensitively
    # after percent-decoding); the name stays, the value becomes REDACTED. Userinfo
    # (user:password@) is always removed.
    secret_parameters: tuple[str, ...] = SECRET_PARAMETERS


# GDPR Art. 44-49: transfers outside the EU/EEA need a legal basis. The 27 EU member states,
# the three EEA EFTA states, and "EU", which registries use for EU-wide allocations.
EU_EEA_COUNTRIES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    "IS", "LI", "NO",
    "EU",
)  # fmt: skip

MEGABYTE = 1_000_000  # thresholds are written in MB = 10^6 bytes
MAX_SETTING = 2**53  # larger numbers are typos (or attacks on the parser), not settings


@dataclass(frozen=True, slots=True)
class VolumeThreshold:
    """More than `bytes` outbound wire bytes within `seconds` from one host of `hosts`
    (every internal host when empty). TOML: `{name, mb, minutes, hosts}`."""

    name: str
    bytes: int
    seconds: float
    hosts: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class MeteringConfig:
    enabled: bool = True  # the volume meter (off: no volume/finding events, no sluice.db)
    bucket_seconds: float = 10.0  # fixed time buckets every window is built from
    volume_event_interval: float = 60.0  # a `volume` event per active host this often; 0 = none
    windows: tuple[float, ...] = (60.0, 600.0, 3600.0, 86400.0)  # sliding windows, seconds
    window_slots: int = 60  # slots per window: granularity = max(bucket, window / slots)
    timezone: str = "UTC"  # hour of day for baselines and days for slow exfiltration
    # Memory caps; beyond them the least recently seen entries are evicted and counted.
    max_hosts: int = 20_000
    max_pairs: int = 200_000  # (internal host, destination IP)
    max_bucket_entries: int = 100_000  # pairs within one bucket; the rest fold into "other"
    max_names: int = 200_000  # destination IP -> name learnt from SNI/Host/DNS
    max_destinations: int = 500_000  # destinations remembered for novelty
    summary_destinations: int = 50  # per host summary; the rest summed as "other"
    retention_days: float = 30.0  # idle hosts/pairs forgotten; novelty looks back this far
    finding_cooldown: float = 3600.0  # the same finding is not repeated sooner
    # Baseline: EWMA per hour of day of outbound wire bytes; spike when the current hour
    # exceeds factor x expected and expected + min_bytes.
    baseline_alpha: float = 0.2
    baseline_min_days: int = 3
    spike_factor: float = 4.0
    spike_min_bytes: int = 50 * MEGABYTE
    thresholds: tuple[VolumeThreshold, ...] = ()
    # Slow exfiltration: upload-heavy traffic to one destination over many days.
    slow_days: int = 14
    slow_min_days: int = 5
    slow_min_daily_bytes: int = 1 * MEGABYTE
    slow_min_bytes: int = 200 * MEGABYTE
    slow_min_ratio: float = 3.0
    slow_max_day_share: float = 0.5  # no single day may carry more than this share of the total
    # Novel destination: first contact in retention_days, then volume within novel_window.
    novel_learning_days: float = 7.0
    novel_window: float = 3600.0
    novel_min_bytes: int = 10 * MEGABYTE
    # Transfers to countries outside transfer_allowed_countries / to categorised destinations,
    # unique payload bytes within transfer_window.
    transfer_allowed_countries: tuple[str, ...] = EU_EEA_COUNTRIES
    transfer_window: float = 3600.0
    transfer_min_bytes: int = 1 * MEGABYTE
    category_min_bytes: int = 1 * MEGABYTE
    # Upload-heavy asymmetry: payload out >= ratio x payload in, and >= min_bytes.
    asymmetry_window: float = 600.0
    asymmetry_min_bytes: int = 20 * MEGABYTE
    asymmetry_ratio: float = 10.0

    def __post_init__(self) -> None:
        for key in ("bucket_seconds", "transfer_window", "asymmetry_window", "novel_window"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"metering.{key} must be positive")
        for key in ("window_slots", "max_hosts", "max_pairs", "max_bucket_entries", "slow_days"):
            if getattr(self, key) < 1:
                raise ConfigError(f"metering.{key} must be at least 1")
        if not 0 < self.baseline_alpha <= 1:
            raise ConfigError("metering.baseline_alpha must be in (0, 1]")
        durations = [*self.windows, self.transfer_window, self.asymmetry_window]
        durations += [t.seconds for t in self.thresholds]
        for seconds in durations:
            if seconds < self.bucket_seconds:
                raise ConfigError(
                    f"metering: a window of {seconds:g} s is shorter than bucket_seconds"
                )


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """How long sluice.db keeps what it stored, counted back from its newest data (packet
    time, so an old capture's replay keeps its own history). Finer tiers answer recent
    windows, coarser ones long ones; `sluice top`/`host` say when a window reaches past what
    was pruned."""

    ten_second_days: float = 1.0  # 10 s buckets
    minute_days: float = 7.0  # 1 min buckets
    hour_days: float = 400.0  # 1 h buckets: a year and a season, for year-on-year baselines
    findings_days: float = 730.0  # findings are evidence (GDPR Art. 33(5) documentation)
    activity_days: float = 90.0  # uploads, mails, SSH sessions and requests per host
    max_rows: int = 5_000_000  # per tier, a disk bound; the oldest buckets go first

    def __post_init__(self) -> None:
        for key in ("ten_second_days", "minute_days", "hour_days", "findings_days",
                    "activity_days", "max_rows"):  # fmt: skip
            if not getattr(self, key) > 0:
                raise ConfigError(f"history.{key} must be positive")
        if not self.ten_second_days <= self.minute_days <= self.hour_days:
            raise ConfigError(
                "history: ten_second_days <= minute_days <= hour_days (finer tiers are shorter)"
            )


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
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    verdicts: VerdictsConfig = field(default_factory=VerdictsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    metering: MeteringConfig = field(default_factory=MeteringConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    # The signatures/ data directory; None = search (sensor/config/signatures.py). A relative
    # path in a config file is relative to that file's directory.
    signatures_dir: Path | None = None


SECTIONS: dict[str, type[Any]] = {
    "decode": DecodeConfig,
    "flows": FlowConfig,
    "stream": StreamConfig,
    "http": HttpConfig,
    "content": ContentConfig,
    "classify": ClassifyConfig,
    "policy": PolicyConfig,
    "verdicts": VerdictsConfig,
    "output": OutputConfig,
    "metering": MeteringConfig,
    "history": HistoryConfig,
}


def _positive_numbers(value: object, key: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list of seconds")
    out = []
    for item in value:
        if (
            isinstance(item, bool)
            or not isinstance(item, int | float)
            or not 0 < item <= MAX_SETTING
        ):
            raise ConfigError(f"{key}: {item!r} is not a positive number of seconds")
        out.append(float(item))
    return tuple(sorted(set(out)))


def _timezone(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a time zone name such as 'Europe/Amsterdam'")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: unknown time zone {value!r}") from None
    return value


def _countries(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of ISO 3166 alpha-2 codes")
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[A-Z]{2}", item):
            raise ConfigError(f"{key}: {item!r} is not an ISO 3166 alpha-2 code such as 'NL'")
    return tuple(value)


# Overlap policies by the names operators know receivers by (sensor/reassembly/tcp.py).
OS_POLICIES = {"first": "first", "windows": "first", "macos": "first", "linux": "linux",
               "bsd": "bsd"}  # fmt: skip


def _backends(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(v in BACKENDS for v in value):
        raise ConfigError(f"{key} must be a list of backends, each one of {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(value))


def _network_list(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of addresses or networks")
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{key}: {item!r} is not an address or network") from None
    return tuple(value)


def _os_policy(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{key} must be a list of "CIDR=policy" strings')
    out = []
    for item in value:
        cidr, sep, policy = item.partition("=")
        if not sep or policy.strip().lower() not in OS_POLICIES:
            raise ConfigError(
                f"{key}: {item!r} is not CIDR=policy with policy one of "
                f"{', '.join(sorted(OS_POLICIES))}"
            )
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(f"{key}: {item!r}: {exc}") from None
        out.append(f"{cidr.strip()}={policy.strip().lower()}")
    return tuple(out)


def _names(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key} must be a list of names")
    return tuple(v.lower() for v in value)


def _thresholds(value: object, key: str) -> tuple[VolumeThreshold, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of tables {{name, mb, minutes, hosts}}")
    rules = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table {{name, mb, minutes, hosts}}")
        unknown = set(item) - {"name", "mb", "minutes", "hosts"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name must be a non-empty string")
        numbers = {}
        for unit in ("mb", "minutes"):
            number = item.get(unit)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ConfigError(f"{where}.{unit} must be a number")
            if not number > 0 or not math.isfinite(number):
                raise ConfigError(f"{where}.{unit} must be positive")
            numbers[unit] = float(number)
        hosts = parse_networks(item["hosts"], f"{where}.hosts") if "hosts" in item else ()
        rules.append(
            VolumeThreshold(
                name=name,
                bytes=round(numbers["mb"] * MEGABYTE),
                seconds=numbers["minutes"] * 60.0,
                hosts=hosts,
            )
        )
    return tuple(rules)


# Keys whose values are not plain numbers or booleans: (section, key) -> converter.
_CONVERTERS: dict[tuple[str, str], Callable[[object, str], Any]] = {
    ("metering", "windows"): _positive_numbers,
    ("metering", "timezone"): _timezone,
    ("metering", "transfer_allowed_countries"): _countries,
    ("metering", "thresholds"): _thresholds,
    ("output", "secret_parameters"): _names,
    ("stream", "os_policy"): _os_policy,
    ("verdicts", "backends"): _backends,
    ("verdicts", "never_block"): _network_list,
    ("verdicts", "treat_as_external"): _network_list,
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
        convert = _CONVERTERS.get((name, key))
        if convert is not None:
            value = convert(value, f"{name}.{key}")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{name}.{key} must be a string, not {value!r}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false, not {value!r}")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name}.{key} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{name}.{key} must be a finite number, not {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"{name}.{key} must be a whole number, not {value!r}")
            if value < 0:
                raise ConfigError(f"{name}.{key} must not be negative")
            if value > MAX_SETTING:
                raise ConfigError(f"{name}.{key}: {value!r} is beyond any sensible setting")
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


def _directory(value: object, key: str, base: Path | None) -> Path:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ConfigError(f"{key} must be a directory path (a non-empty string)")
    path = Path(value)
    return base / path if base is not None and not path.is_absolute() else path


def config_from_dict(raw: dict[str, Any], base: Path | None = None) -> Config:
    """`base`: the directory relative paths are taken from (the config file's), else the cwd."""
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "home_net":
            kwargs["home_net"] = parse_networks(value)
        elif key == "signatures_dir":
            kwargs["signatures_dir"] = _directory(value, key, base)
        elif key in SECTIONS:
            kwargs[key] = _section(key, SECTIONS[key], value)
        else:
            known = ", ".join(["home_net", "signatures_dir", *SECTIONS])
            raise ConfigError(f"unknown key {key!r} (known: {known})")
    return Config(**kwargs)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The effective configuration and where it came from, for `sluice config show` and the
    line the sensor logs at start."""

    config: Config
    path: Path | None  # the file read; None: built-in defaults only
    origin: str  # how the file was chosen: "--config", "$SLUICE_CONFIG", "default path", ""
    keys: frozenset[str] = frozenset()  # dotted keys the file set ("metering.timezone")

    def source(self, key: str) -> str:
        """Where the value of the dotted `key` came from."""
        return str(self.path) if key in self.keys else "default"


def locate_config(
    arg: str | Path | None, environ: Mapping[str, str] = os.environ
) -> tuple[Path | None, str]:
    """The file to read and how it was chosen: `--config` (must exist), else $SLUICE_CONFIG
    (must exist), else DEFAULT_CONFIG_PATH when present, else none (built-in defaults)."""
    if arg is not None:
        return Path(arg), "--config"
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]), f"${CONFIG_ENV}"
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH, "default path"
    return None, ""


def read_config(arg: str | Path | None, environ: Mapping[str, str] = os.environ) -> LoadedConfig:
    path, origin = locate_config(arg, environ)
    if path is None:
        return LoadedConfig(Config(), None, "")
    raw = _read_toml(path)
    try:
        config = config_from_dict(raw, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    keys = {key for key, value in raw.items() if not isinstance(value, dict)}
    keys |= {f"{key}.{k}" for key, value in raw.items() if isinstance(value, dict) for k in value}
    return LoadedConfig(config, path, origin, frozenset(keys))


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None


def load_config(path: str | Path | None) -> Config:
    """Exactly `path`, or the built-in defaults for None (no search: tests and tools)."""
    if path is None:
        return Config()
    p = Path(path)
    raw = _read_toml(p)
    try:
        return config_from_dict(raw, p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
