"""What the metering stage hands out: plain, immutable values.

`VolumeSummary` is one internal host's traffic in one closed bucket (with its per-destination
break-down and its sliding-window totals); the storage module writes them, outputs may show them.
`Finding` is a fact for the policy stage; its `kind` is a stable snake_case name from `KINDS`
(the metering counterpart of `sensor.anomaly.KINDS`). Addresses are text here: these values are
meant for outputs, the store and firewall block lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# Counter layout shared by every mutable accumulator in this package (lists of ints).
OUT_BYTES, OUT_PACKETS, OUT_PAYLOAD, IN_BYTES, IN_PACKETS, IN_PAYLOAD = range(6)
N_COUNTERS = 6

OTHER = "other"  # destination label of everything beyond a cap

# (probe, [((kind, key), (packets, bytes)), ...]): the eBPF probe's cumulative totals, saved
# in the same transaction as the bucket they were handed out for.
KernelTotals = tuple[str, list[tuple[tuple[str, str], tuple[int, int]]]]


@dataclass(frozen=True, slots=True)
class Volume:
    """Wire bytes (IP lengths), packets and unique payload bytes, both ways, seen from the
    internal host: out = sent by it, in = received by it."""

    out_bytes: int = 0
    out_packets: int = 0
    out_payload: int = 0
    in_bytes: int = 0
    in_packets: int = 0
    in_payload: int = 0

    @classmethod
    def of(cls, counters: list[int]) -> Volume:
        return cls(*counters[:N_COUNTERS])

    def __add__(self, other: Volume) -> Volume:
        return Volume(
            self.out_bytes + other.out_bytes,
            self.out_packets + other.out_packets,
            self.out_payload + other.out_payload,
            self.in_bytes + other.in_bytes,
            self.in_packets + other.in_packets,
            self.in_payload + other.in_payload,
        )


@dataclass(frozen=True, slots=True)
class DestVolume:
    """One destination of a host within a summary. `ip` is "other" for the folded rest."""

    ip: str
    name: str | None
    volume: Volume
    port: int = 0  # first destination port seen from the host (0: unknown)
    country: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeSummary:
    host: str
    ts: float  # bucket start, packet time
    duration: float  # bucket length
    volume: Volume  # this bucket
    destinations: tuple[DestVolume, ...]  # this bucket, largest outbound first
    windows: tuple[tuple[float, Volume], ...]  # (seconds, total) of each sliding window


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a key of KINDS
    host: str  # the internal host
    ts: float  # packet time at which the meter could tell (end of a bucket)
    window: float  # seconds the value was measured over
    value: float  # what was measured (bytes, unless the kind says otherwise)
    threshold: float  # what it was compared with
    detail: str  # for humans; never payload
    destinations: tuple[str, ...] = ()  # "name (ip)" or "ip", largest first
    severity: str = ""  # low, medium, high, critical; "": the kind's (SEVERITY)

    def __post_init__(self) -> None:
        if not self.severity:
            object.__setattr__(self, "severity", SEVERITY.get(self.kind, "medium"))


# kind -> what it means. Tests check that every kind the meter can emit is registered here.
KINDS = MappingProxyType(
    {
        "volume_threshold": "a host sent more outbound wire bytes within a configured time "
        "than a [[metering.thresholds]] rule allows (value/threshold in bytes)",
        "volume_spike": "a host's outbound bytes in the current hour of day far exceed its "
        "learnt baseline (EWMA per hour of day) for that hour",
        "slow_exfiltration": "upload-heavy traffic to one destination on many days within a "
        "long window adds up to a large volume (small nightly uploads)",
        "novel_destination": "a destination not contacted by any internal host within the "
        "retention period received a large volume soon after first contact",
        "non_eu_transfer": "payload sent to a destination whose country is outside the "
        "allowed list (EU/EEA by default, GDPR Art. 44-49); detail names the country",
        "category_upload": "payload sent to a destination in a category of "
        "signatures/categories.toml (file hosting, paste site, personal mail)",
        "upload_asymmetry": "a host sent far more payload to a destination than it received "
        "from it (threshold = max(min bytes, ratio x payload received))",
    }
)


# kind -> severity (low < medium < high < critical) of a volume finding. Volume says that
# something left, not what: none of these is above "high" on its own; content findings
# (classification) carry their own. Tests check every kind has one.
SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY = MappingProxyType(
    {
        "volume_threshold": "medium",  # the site's own limit: it chose to be told
        "volume_spike": "medium",
        "slow_exfiltration": "high",  # the Clinical Diagnostics pattern: days of uploads
        "novel_destination": "medium",
        "non_eu_transfer": "medium",  # GDPR Art. 44-49: needs a legal basis
        "category_upload": "medium",
        "upload_asymmetry": "low",  # backups and uploads to partners are asymmetric too
    }
)
