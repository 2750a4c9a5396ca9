"""The safety guards: the last check a verdict passes before anything is sent (verdict
delivery stage, pure).

In: a `Verdict`, the packet time `now`, whether the kill-switch file exists (the runtime looks;
this module never touches the file system or a clock). Out: a `GuardResult` saying whether the
verdict may be sent, the seconds to send, and, when refused, one line an operator understands,
the rule that refused it, whether alert-only is the right fallback and whether the refusal is
LOUD (a circuit breaker tripped: the caller turns it into a finding).

Why the guards sit here, after the policy and just before the wire: every firewall that gets
this wrong gets it wrong by checking its allowlist earlier than the last hop. fail2ban's manual
`banip` skips `ignoreip` by design (fail2ban #3853) and its `ignoreself` leaves admins locked
out of their own server (#1718, #3916); CrowdSec users saw their own allowlisted addresses
banned after an upgrade, once triggered by large uploads (crowdsec #3655, #3656), exactly the
traffic a DLP sensor reacts to. So no policy, operator command or replay reaches a backend
without passing `Guards.check`.

Theory of operation: `check` runs the rules below in this order and stops at the first that
refuses. The static rules (2-7) depend only on the verdict and the configuration; the
stateful ones (8-11) run only for verdicts that passed every static rule, so a refused verdict
never spends a token or a slot.

 1. `alert` verdicts block nothing and always pass.
 2. kill switch: the file exists, nothing is blocked (fallback alert; loud once per streak).
 3. target: it parses as what `target_kind` says (an IPv4-mapped IPv6 address or network is
    read as the IPv4 it names; scope ids are dropped).
 4. ttl: below `ttl_min` (or not a number) is refused: a block that short is churn, not
    protection; above `ttl_max` it is clamped, with a note (no permanent automated blocks);
    a verdict whose (clamped) time is over at `now` is refused as expired.
 5. protected: the never-block set (`ProtectedSet`) with containment both ways: a target that
    equals, contains or lies inside a protected network is refused; IPv4 entries are also
    protected in their IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 spellings. Domains match by
    label suffix both ways (fallback alert: the detection stands, enforcement would hurt).
 6. prefix floor: a network wider than `/min_prefix_v4` or `/min_prefix_v6` is refused.
 7. scope: `block_destination` must be public address space (no private, shared, loopback,
    link-local, documentation, benchmarking, multicast, reserved or unspecified range, and for
    IPv6 inside 2000::/3 or NAT64 of a public IPv4) or a public name; `block_host` must lie
    inside `home_net` and be a unicast host range (no loopback, link-local, multicast).
 8. refresh: a target already blocked is re-asserted (its expiry extended) without spending a
    token or a slot: re-blocking an active target extends it.
 9. table cap: at most `max_active_blocks` targets blocked at once (below the 65,536-element
    nft sets and a 50,000-entry EDL); beyond it, fallback alert, loud once per streak.
10. host cap: at most `max_blocked_hosts` internal hosts quarantined at once; beyond it,
    fallback alert, loud once per streak (more hosts than that at once is likelier a policy
    fault than an incident, and quarantining hosts is what hurts a hospital most).
11. rate limit: a token bucket on the packet clock, `rate_per_minute` new blocks per minute
    with bursts of `burst`; an empty bucket falls back to alert, loud once per streak.

Fallback: `fallback == "alert"` means "send this as an alert instead": the verdict was sound
but enforcing it now is unsafe or not possible (kill switch, a protected target, a breaker).
A verdict that is itself wrong (an unreadable target, a too-short TTL, a network too wide, a
private range as an external destination, an external host as an internal one) gets
`fallback=None`: the refusal event is the record and the policy is what needs fixing.

State and memory: the guards remember the blocks they let through (target -> expiry) until
`release(target)` or until the expiry passes on the packet clock, capped at
`max_active_blocks`; an expiry heap with lazy deletion is compacted when it grows past twice
the table (`_HEAP_SLACK`). Breaker streaks and refusal counters are keyed by the fixed rule
names. Nothing grows with the number of verdicts seen.
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sensor.config import DEFAULT_HOME_NET
from sensor.outputs.eve import iso_time
from sensor.policy.verdict import Verdict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Rule names: the `rule` of a GuardResult and the keys of `Guards.counters` (a closed set,
# like an anomaly enum: operators and tests match on these, never on the reason text).
ALLOWED = "allowed"
NOT_A_BLOCK = "not_a_block"
KILL_SWITCH = "kill_switch"
TARGET = "target"
TTL = "ttl"
EXPIRED = "expired"
PROTECTED = "protected"
PREFIX = "prefix"
SCOPE = "scope"
TABLE_CAP = "table_cap"
HOST_CAP = "host_cap"
RATE_LIMIT = "rate_limit"
RULES = (
    ALLOWED,
    NOT_A_BLOCK,
    KILL_SWITCH,
    TARGET,
    TTL,
    EXPIRED,
    PROTECTED,
    PREFIX,
    SCOPE,
    TABLE_CAP,
    HOST_CAP,
    RATE_LIMIT,
)
BREAKERS = (KILL_SWITCH, TABLE_CAP, HOST_CAP, RATE_LIMIT)  # loud once per streak
_BREAKER_NAMES = {
    KILL_SWITCH: "kill switch",
    TABLE_CAP: "active-block cap",
    HOST_CAP: "host quarantine cap",
    RATE_LIMIT: "rate limit",
}

MAX_PROTECTED_ENTRIES = 4096  # never-block networks and domains together
MAX_CONFIG_NETWORKS = 1024  # home_net and treat_as_external, each
_HEAP_SLACK = 2  # the expiry heap is compacted when longer than this times the table + 64

# Not public address space, from the IANA IPv4 and IPv6 Special-Purpose Address Registries
# (RFC 6890 and successors): entries not globally reachable, plus multicast and the reserved
# 240/4. Whole blocks are listed; the few globally reachable anycast exceptions inside them
# (e.g. 192.0.0.9/32) are refused too, on purpose: no verdict has reason to block them.
_NON_PUBLIC_V4 = (
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved and limited broadcast (RFC 1112, RFC 919)"),
)
# IPv6 public unicast lives in 2000::/3 (RFC 4291 section 2.4); these are the special blocks
# inside it. NAT64 (64:ff9b::/96, RFC 6052) is outside it and judged by the IPv4 it embeds.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NON_PUBLIC_V6 = (
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)"),
    ("3fff::/20", "documentation (RFC 9637)"),
)
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")
_MAPPED_V6 = ipaddress.IPv6Network("::ffff:0:0/96")
# Ranges that are no host to quarantine even when home_net covers them (its default does).
_NOT_A_HOST = (
    ("0.0.0.0/8", "'this network'"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved or broadcast"),
    ("::/127", "unspecified or loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
# RFC 6761 / RFC 8375 special-use names, and ICANN's .internal: never a public destination.
_NON_PUBLIC_DOMAINS = frozenset(
    {"localhost", "local", "internal", "invalid", "home.arpa", "in-addr.arpa", "ip6.arpa"}
)


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """The guards' limits (all have safe defaults; the site file overrides).

    `never_block`: addresses or networks (config) that are never blocked, on top of what the
    runtime discovers. `treat_as_external`: special-purpose ranges this site routes as the
    outside world (a lab using the documentation ranges as "internet"); a destination must lie
    wholly inside one to pass the scope rule. `kill_switch_path` only names the file in
    reasons; the runtime checks whether it exists.
    """

    never_block: tuple[str, ...] = ()
    never_block_domains: tuple[str, ...] = ()
    home_net: tuple[str, ...] = DEFAULT_HOME_NET
    treat_as_external: tuple[str, ...] = ()
    min_prefix_v4: int = 24
    min_prefix_v6: int = 48
    ttl_min: float = 60.0
    ttl_max: float = 7 * 86400.0
    rate_per_minute: float = 30.0
    burst: int = 20
    max_blocked_hosts: int = 3
    max_active_blocks: int = 50_000
    kill_switch_path: str = "/etc/sluice/kill-switch"

    def __post_init__(self) -> None:
        if not 0 <= self.min_prefix_v4 <= 32 or not 0 <= self.min_prefix_v6 <= 128:
            raise ValueError("min_prefix_v4 must be 0..32 and min_prefix_v6 0..128")
        if not 0 < self.ttl_min <= self.ttl_max or not math.isfinite(self.ttl_max):
            raise ValueError("need 0 < ttl_min <= ttl_max, both finite")
        if not (self.rate_per_minute > 0 and math.isfinite(self.rate_per_minute)):
            raise ValueError("rate_per_minute must be a positive number")
        if self.burst < 1 or self.max_blocked_hosts < 0 or self.max_active_blocks < 1:
            raise ValueError("burst and max_active_blocks must be >= 1, max_blocked_hosts >= 0")
        for name in ("home_net", "treat_as_external"):
            if len(getattr(self, name)) > MAX_CONFIG_NETWORKS:
                raise ValueError(f"{name}: more than {MAX_CONFIG_NETWORKS} networks")


@dataclass(frozen=True, slots=True)
class GuardResult:
    """What `Guards.check` decided. `ttl`: seconds to send (the remaining, clamped time) when
    allowed, 0 when refused. `loud`: the first refusal of a breaker streak (the caller raises
    a finding). `streak`: how many verdicts this breaker has refused in a row, this one
    included. `note`: something the operator should see even though the verdict passed (a
    clamped TTL, a breaker that closed again)."""

    allowed: bool
    rule: str  # one of RULES
    reason: str
    ttl: float = 0.0
    fallback: str | None = None  # "alert" when alert-only is the right fallback
    loud: bool = False
    streak: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Span:
    """One network as an integer range of one address family."""

    version: int
    lo: int
    hi: int
    label: str


def _span(net: IPNetwork, label: str) -> _Span:
    return _Span(net.version, int(net.network_address), int(net.broadcast_address), label)


def _unmapped(net: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (::ffff:a.b.c.d/n, n >= 96) is the IPv4 network it names."""
    if net.version == 6 and net.prefixlen >= 96 and net.subnet_of(_MAPPED_V6):
        low = int(net.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((low, net.prefixlen - 96))
    return net


def _net_key(net: IPNetwork) -> str:
    """The canonical spelling of a target network: the bare address for a single one."""
    return str(net.network_address) if net.num_addresses == 1 else net.with_prefixlen


def parse_network(text: str) -> IPNetwork:
    """An address or network as written by a person or a policy: host bits allowed, scope ids
    dropped, IPv4-mapped IPv6 read as IPv4. ValueError when it is neither."""
    text = text.strip()
    address, _, prefix = text.partition("/")
    address = address.split("%", 1)[0]  # fe80::1%eth0: the zone is no part of the address
    net = ipaddress.ip_network(f"{address}/{prefix}" if prefix else address, strict=False)
    return _unmapped(net)


def normalise_domain(name: str) -> str:
    """Lower case, no trailing dot, no leading wildcard label; IDNA names in their A-label."""
    name = name.strip().rstrip(".").lower()
    if name.startswith("*."):
        name = name[2:]
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


def _domain(text: str) -> str | None:
    """`text` as a normalised host name of two labels or more (letters, digits, hyphens;
    a top-level label that is not all digits, RFC 3696 section 2), else None."""
    try:
        name = normalise_domain(text)
    except UnicodeError:
        return None
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or labels[-1].isdigit():
        return None
    if not all(0 < len(x) <= 63 and x.replace("-", "").isalnum() and x.isascii() for x in labels):
        return None
    return name


def endpoint_host(endpoint: str) -> str:
    """The host of a backend endpoint as configured: a URL, host:port, [v6]:port or a bare
    host or address."""
    endpoint = endpoint.strip()
    if "://" in endpoint:
        return urlsplit(endpoint).hostname or ""
    try:
        parse_network(endpoint)  # a bare address (v6 ones contain colons) or network
        return endpoint
    except ValueError:
        pass
    return urlsplit(f"//{endpoint}").hostname or ""


class _SpanIndex:
    """Which stored network overlaps a query range, in O(log n): spans sorted by start, with
    the running maximum of their ends. Two CIDR blocks overlap exactly when one contains the
    other, so "overlaps" is the containment-both-ways test."""

    def __init__(self, spans: Iterable[_Span]) -> None:
        self._spans = sorted(spans, key=lambda s: (s.lo, -s.hi))
        self._starts = [s.lo for s in self._spans]
        self._reach: list[int] = []
        reach = -1
        for span in self._spans:
            reach = max(reach, span.hi)
            self._reach.append(reach)

    def __len__(self) -> int:
        return len(self._spans)

    def overlapping(self, lo: int, hi: int) -> _Span | None:
        last = bisect.bisect_right(self._starts, hi) - 1  # spans starting at or before hi
        if last < 0 or self._reach[last] < lo:
            return None
        for index in range(last, -1, -1):  # one exists; find it (only on the refusal path)
            if self._spans[index].hi >= lo:
                return self._spans[index]
        return None  # unreachable: _reach says one exists


class ProtectedSet:
    """The never-block set: networks and domain names, each with why it is protected.

    Build it with `ProtectedSet.of(...)` from the configuration and from what the runtime
    discovered (`sensor.verdicts.protect.discover_protected`) and knows (its backends'
    endpoints). Endpoint host names are protected as domains (with their subdomains); the
    runtime should also pass the addresses it resolved them to, since the guards resolve
    nothing. Every IPv4 entry is also stored in its IPv4-mapped and NAT64 IPv6 forms, so a
    target written in IPv6 cannot slip past it.
    """

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        """`entries`: (address, network or domain name, why) pairs. ValueError on an entry
        that is none of these, or on more than MAX_PROTECTED_ENTRIES."""
        spans: list[_Span] = []
        domains: dict[str, str] = {}
        count = 0
        for value, why in entries:
            count += 1
            if count > MAX_PROTECTED_ENTRIES:
                raise ValueError(f"never-block set: more than {MAX_PROTECTED_ENTRIES} entries")
            try:
                net = parse_network(value)
            except ValueError:
                name = _domain(value)
                if name is None:
                    raise ValueError(f"never-block entry {value!r} is no address or name") from None
                domains.setdefault(name, f"{name} ({why})")
                continue
            label = f"{net.with_prefixlen if net.num_addresses > 1 else net.network_address}"
            label = f"{label} ({why})"
            spans.append(_span(net, label))
            if net.version == 4:
                low, high = int(net.network_address), int(net.broadcast_address)
                for base in (_MAPPED_V6, _NAT64_V6):
                    base_int = int(base.network_address)
                    spans.append(_Span(6, base_int | low, base_int | high, label))
        self._v4 = _SpanIndex(s for s in spans if s.version == 4)
        self._v6 = _SpanIndex(s for s in spans if s.version == 6)
        self._domains = domains
        # every parent of a protected name (and the name): blocking "example.org" would also
        # block "lapi.example.org" wherever a block list matches subdomains
        self._ancestors: dict[str, str] = {}
        for name, label in domains.items():
            labels = name.split(".")
            for start in range(len(labels)):
                self._ancestors.setdefault(".".join(labels[start:]), label)

    @classmethod
    def of(
        cls,
        *,
        networks: Iterable[str] = (),
        domains: Iterable[str] = (),
        own: Iterable[str] = (),
        gateways: Iterable[str] = (),
        dns: Iterable[str] = (),
        endpoints: Iterable[str] = (),
    ) -> ProtectedSet:
        """The never-block set from its sources, each entry labelled by where it came from.
        `endpoints`: the firewall/API endpoints the backends talk to (URLs, host:port, hosts
        or addresses)."""
        entries: list[tuple[str, str]] = []
        entries += [(n, "never_block") for n in networks]
        entries += [(d, "never_block") for d in domains]
        entries += [(a, "sensor address") for a in own]
        entries += [(g, "default gateway") for g in gateways]
        entries += [(d, "DNS server") for d in dns]
        for endpoint in endpoints:
            host = endpoint_host(endpoint)
            if not host:
                raise ValueError(f"backend endpoint {endpoint!r} names no host")
            entries.append((host, "backend endpoint"))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._v4) + len(self._v6) + len(self._domains)

    def network_conflict(self, net: IPNetwork) -> str | None:
        """The protected entry `net` equals, contains or lies inside, else None."""
        index = self._v4 if net.version == 4 else self._v6
        hit = index.overlapping(int(net.network_address), int(net.broadcast_address))
        return hit.label if hit else None

    def domain_conflict(self, name: str) -> str | None:
        """The protected name `name` equals, is a parent of, or lies under, else None."""
        if name in self._ancestors:
            return self._ancestors[name]
        labels = name.split(".")
        for start in range(1, len(labels)):
            hit = self._domains.get(".".join(labels[start:]))
            if hit:
                return hit
        return None


@dataclass(frozen=True, slots=True)
class _Target:
    kind: str  # "ip" | "cidr" | "domain"
    key: str  # the canonical spelling: what the active-block table is keyed by
    net: IPNetwork | None
    name: str  # the domain name, "" for addresses


def _parse_target(target: str, declared: str) -> _Target:
    """The target as the guards see it; ValueError (with the why) when it is unreadable or
    not what `declared` says it is."""
    if declared not in ("ip", "cidr", "domain"):
        raise ValueError(f"unknown target kind {declared!r}")
    try:
        net = parse_network(target)
    except ValueError:
        net = None
    if net is not None:
        kind = "cidr" if "/" in target else "ip"
        if kind != declared:
            raise ValueError(f"{target!r} is an {kind}, not a {declared}")
        return _Target(kind, _net_key(net), net, "")
    if declared != "domain":
        raise ValueError(f"{target!r} is not an {declared}")
    name = _domain(target)
    if name is None:
        raise ValueError(f"{target!r} is no valid domain name")
    return _Target("domain", name, None, name)


def _first_overlap(net: IPNetwork, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for special, label in table:
        if special.version == net.version and special.overlaps(net):
            return f"{special} {label}"
    return None


def _inside(net: IPNetwork, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `net` lies wholly inside one of `networks`."""
    return any(
        net.subnet_of(outer)  # type: ignore[arg-type]
        for outer in networks
        if outer.version == net.version
    )


def _networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(parse_network(item) for item in items)


def _labelled(table: tuple[tuple[str, str], ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), label) for net, label in table)


_NON_PUBLIC_V4_NETS = _labelled(_NON_PUBLIC_V4)
_NON_PUBLIC_V6_NETS = _labelled(_NON_PUBLIC_V6)
_NOT_A_HOST_NETS = _labelled(_NOT_A_HOST)


def _duration(seconds: float) -> str:
    """A TTL for humans: 3600 -> "1h", 90 -> "1m30s"."""
    if not math.isfinite(seconds):
        return "forever"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or f"{seconds:g}s"


@dataclass(slots=True)
class _Active:
    expires_at: float
    host: bool  # a block_host (counts against max_blocked_hosts)


@dataclass(slots=True)
class _Bucket:
    """A token bucket on the packet clock. Time that runs backwards (interleaved captures)
    refills nothing and is not remembered."""

    capacity: float
    per_second: float
    tokens: float
    stamp: float | None = None

    def refill(self, now: float) -> None:
        if self.stamp is None or now > self.stamp:
            if self.stamp is not None:
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
            self.stamp = now


@dataclass(slots=True)
class _Counters:
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    streak: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BREAKERS, 0))


class Guards:
    """The guards of one sensor: static rules from `config` and `protected`, plus the state
    of the breakers (active blocks, the token bucket, streaks). Not thread-safe: the delivery
    stage calls it from one place."""

    def __init__(self, config: GuardConfig, protected: ProtectedSet) -> None:
        self.config = config
        self.protected = protected
        self._home = _networks(config.home_net)
        self._external = _networks(config.treat_as_external)
        self._active: dict[str, _Active] = {}
        self._expiry: list[tuple[float, str]] = []  # (expires_at, key), lazily deleted
        self._hosts = 0  # active entries with host=True
        self._bucket = _Bucket(
            float(config.burst), config.rate_per_minute / 60.0, float(config.burst)
        )
        self._counters = _Counters()
        self._notes: list[str] = []  # notes of the check in progress

    # -- the decision -------------------------------------------------------------------

    def check(self, verdict: Verdict, now: float, *, killed: bool = False) -> GuardResult:
        """Decide whether `verdict` may be sent at packet time `now`. `killed`: whether the
        kill-switch file exists. An allowed block is remembered as active until its expiry
        or `release`."""
        if not verdict.blocks:
            return GuardResult(True, NOT_A_BLOCK, "alert only: nothing to block")
        self._notes = notes = []  # a fresh list per check: results keep theirs
        if killed:
            return self._trip(KILL_SWITCH, f"kill switch {self.config.kill_switch_path}")
        self._close(KILL_SWITCH)

        try:
            target = _parse_target(verdict.target, verdict.target_kind)
        except ValueError as exc:
            return self._refuse(TARGET, f"unreadable target: {exc}")

        cfg = self.config
        ttl = verdict.ttl
        if math.isnan(ttl) or ttl < cfg.ttl_min:
            return self._refuse(
                TTL,
                f"ttl {ttl:g}s is below the minimum {_duration(cfg.ttl_min)}: churn, not a block",
            )
        if ttl > cfg.ttl_max:
            notes.append(f"ttl {_duration(ttl)} clamped to the maximum {_duration(cfg.ttl_max)}")
            ttl = cfg.ttl_max
        expires_at = verdict.decided_at + ttl
        remaining = expires_at - now
        if not remaining > 0:
            return self._refuse(
                EXPIRED, f"expired: decided at {verdict.decided_at:.3f} for {_duration(ttl)}"
            )

        refusal = self._static(verdict.action, target)
        if refusal is not None:
            return refusal

        # The stateful rules: first forget what has expired on the packet clock.
        self._expire(now)
        active = self._active.get(target.key)
        if active is not None:
            active.expires_at = max(active.expires_at, expires_at)
            heapq.heappush(self._expiry, (active.expires_at, target.key))
            self._compact()
            notes.append("refresh of an active block")
            return self._allow(remaining)

        if len(self._active) >= cfg.max_active_blocks:
            return self._trip(
                TABLE_CAP,
                f"active-block cap: {len(self._active)} targets blocked (max "
                f"{cfg.max_active_blocks}), falling back to alert-only",
            )
        self._close(TABLE_CAP)
        host = verdict.action == "block_host"
        if host:
            if self._hosts >= cfg.max_blocked_hosts:
                return self._trip(
                    HOST_CAP,
                    f"host quarantine cap: {self._hosts} internal hosts blocked (max "
                    f"{cfg.max_blocked_hosts}), falling back to alert-only",
                )
            self._close(HOST_CAP)
        self._bucket.refill(now)
        if self._bucket.tokens < 1.0:
            return self._trip(
                RATE_LIMIT,
                f"rate limit: more than {cfg.rate_per_minute:g} new blocks a minute (bursts "
                f"of {cfg.burst}), falling back to alert-only",
            )
        self._close(RATE_LIMIT)
        self._bucket.tokens -= 1.0

        self._active[target.key] = _Active(expires_at, host)
        self._hosts += host
        heapq.heappush(self._expiry, (expires_at, target.key))
        self._compact()
        return self._allow(remaining)

    def _static(self, action: str, target: _Target) -> GuardResult | None:
        """Rules 5-7: protected, prefix floor, scope. None when all pass."""
        if target.net is None:
            conflict = self.protected.domain_conflict(target.name)
            if conflict is not None:
                return self._refuse(
                    PROTECTED, f"protected: {target.key} overlaps never-block {conflict}", "alert"
                )
            if action == "block_host":
                return self._refuse(
                    SCOPE, f"block_host needs an address, not the name {target.key}"
                )
            labels = target.name.split(".")
            for start in range(len(labels)):
                if ".".join(labels[start:]) in _NON_PUBLIC_DOMAINS:
                    return self._refuse(SCOPE, f"{target.key} is a special-use name, not external")
            return None

        net = target.net
        conflict = self.protected.network_conflict(net)
        if conflict is not None:
            how = "is" if net.num_addresses == 1 else "overlaps"
            return self._refuse(
                PROTECTED, f"protected: {target.key} {how} never-block {conflict}", "alert"
            )
        floor = self.config.min_prefix_v4 if net.version == 4 else self.config.min_prefix_v6
        if net.prefixlen < floor:
            return self._refuse(
                PREFIX, f"{target.key} is wider than the /{floor} floor for IPv{net.version}"
            )
        if action == "block_host":
            if not _inside(net, self._home):
                return self._refuse(SCOPE, f"block_host {target.key} is outside home_net")
            special = _first_overlap(net, _NOT_A_HOST_NETS)
            if special is not None:
                return self._refuse(SCOPE, f"block_host {target.key} is no host: {special}")
            return None
        why = self._not_public(net)
        if why is not None:
            return self._refuse(
                SCOPE, f"block_destination {target.key} is not public address space: {why}"
            )
        return None

    def _not_public(self, net: IPNetwork) -> str | None:
        if _inside(net, self._external):
            return None
        if net.version == 6:
            if net.subnet_of(_NAT64_V6):
                low = int(net.network_address) & 0xFFFFFFFF
                return self._not_public(ipaddress.IPv4Network((low, net.prefixlen - 96)))
            if not net.subnet_of(_GLOBAL_UNICAST_V6):
                return "outside IPv6 global unicast 2000::/3 (RFC 4291)"
            return _first_overlap(net, _NON_PUBLIC_V6_NETS)
        return _first_overlap(net, _NON_PUBLIC_V4_NETS)

    # -- results, streaks and counters -------------------------------------------------

    def _allow(self, ttl: float) -> GuardResult:
        self._counters.refused[ALLOWED] += 1
        return GuardResult(True, ALLOWED, "allowed", ttl=ttl, note="; ".join(self._notes))

    def _refuse(self, rule: str, reason: str, fallback: str | None = None) -> GuardResult:
        self._counters.refused[rule] += 1
        return GuardResult(False, rule, reason, fallback=fallback, note="; ".join(self._notes))

    def _trip(self, breaker: str, reason: str) -> GuardResult:
        """A breaker refuses: alert-only fallback, loud on the first refusal of a streak."""
        self._counters.refused[breaker] += 1
        streak = self._counters.streak[breaker] + 1
        self._counters.streak[breaker] = streak
        return GuardResult(
            False,
            breaker,
            reason,
            fallback="alert",
            loud=streak == 1,
            streak=streak,
            note="; ".join(self._notes),
        )

    def _close(self, breaker: str) -> None:
        """A verdict got past `breaker`: end its streak, saying how long it was."""
        streak = self._counters.streak[breaker]
        if streak:
            self._counters.streak[breaker] = 0
            self._notes.append(
                f"{_BREAKER_NAMES[breaker]} closed after {streak} verdicts fell back to alert-only"
            )

    @property
    def counters(self) -> dict[str, int]:
        """Verdicts per rule (ALLOWED for the allowed blocks) since start."""
        return dict(self._counters.refused)

    def streaks(self) -> dict[str, int]:
        """The current refusal streak of each breaker (0: closed)."""
        return dict(self._counters.streak)

    # -- the active-block table ----------------------------------------------------------

    def release(self, target: str) -> bool:
        """Forget an active block (unblocked, or expired at the backend). True if it was
        held. Spellings are normalised as in `check`."""
        try:
            key = _net_key(parse_network(target))
        except ValueError:
            name = _domain(target)
            if name is None:
                return False
            key = name
        entry = self._active.pop(key, None)
        if entry is None:
            return False
        self._hosts -= entry.host
        return True

    def active(self, now: float) -> dict[str, float]:
        """The targets held as blocked at `now`, with their expiry."""
        self._expire(now)
        return {key: entry.expires_at for key, entry in self._active.items()}

    def footprint(self) -> dict[str, int]:
        """Sizes of every structure that holds state (for the bounded-memory tests and the
        stats): none grows with the number of verdicts, only with the active blocks."""
        return {
            "active": len(self._active),
            "active_hosts": self._hosts,
            "expiry_heap": len(self._expiry),
            "counters": len(self._counters.refused) + len(self._counters.streak),
            "protected": len(self.protected),
        }

    def _expire(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = self._active.get(key)
            if entry is not None and entry.expires_at <= now:
                del self._active[key]
                self._hosts -= entry.host

    def _compact(self) -> None:
        """Drop stale heap entries (refreshed or released targets) once they dominate."""
        if len(self._expiry) > _HEAP_SLACK * len(self._active) + 64:
            self._expiry = [(entry.expires_at, key) for key, entry in self._active.items()]
            heapq.heapify(self._expiry)


def refusal_record(verdict: Verdict, result: GuardResult, now: float) -> dict[str, Any]:
    """The `verdict_refused` event for a refused verdict (packet time `now`). The lead's
    output stage adds flow fields; the target is an address, network or domain, never a
    content identifier, so nothing here needs masking."""
    return {
        "timestamp": iso_time(now),
        "event_type": "verdict_refused",
        "verdict_refused": {
            "verdict_id": verdict.id,
            "action": verdict.action,
            "target": verdict.target,
            "target_kind": verdict.target_kind,
            "rule": result.rule,
            "reason": result.reason,
            "fallback": result.fallback,
            "loud": result.loud,
            "streak": result.streak,
            "severity": verdict.severity,
            "incident_id": verdict.incident_id,
            "policy_rule": verdict.policy_rule,
            "finding_ids": list(verdict.finding_ids),
            "mode": verdict.mode,
        },
    }
