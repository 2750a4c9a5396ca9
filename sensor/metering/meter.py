"""Metering stage: flows' counts in, volume summaries and findings out.

Theory of operation
-------------------
* `add(ts, src, dst, ip_bytes, packets, payload_new, dst_port)` adds to the open bucket: one
  dict entry per (internal host, external address), a list of counters in the `values.py`
  layout. Which side is internal comes from `home_net`, cached per address. Packets between two
  internal hosts (east-west) and between two external ones (transit) are only counted: this is
  an egress meter. Unique payload (retransmissions excluded) comes from the flows stage, which
  knows what is new. `observe` is the same for one packet.
* The pipeline does not meter packet by packet: when its packet clock reaches `next_close` it
  calls `close_bucket(now, flows)`, and the meter takes from every flow what each `Side`
  carried since the last close (`meter_flow`, remembered per side, so a flip changes nothing);
  a flow's last counts come with `flow_ended`. Right before the bucket closes the meter asks its
  `BucketFeed`, if it has one (the live runtime's eBPF probe: `add_kernel`), and hands back what
  the feed says must be saved with the bucket (`MeterOutput.kernel_totals`).
* Time is the packet clock. Buckets are fixed (`bucket_seconds`, aligned to the epoch); when a
  count or `tick(ts)` passes the end of the open bucket, the bucket is closed: its entries go
  into per-host and per-pair sliding windows (`windows.py`), the detectors run, and one
  `VolumeSummary` per active host is queued. `tick()` hands out what was queued; `finish()`
  closes the open bucket at the end of input. A replay therefore gives the same output as the
  live sensor, whatever the tick rate.
* Detectors run at bucket close, so a finding comes at most one bucket after the crossing
  packet (`Finding.ts` is the bucket end). Each (kind, host, subject) is reported at most once
  per cooldown (`finding_cooldown`; a threshold rule's own duration; `slow_days`).
    - volume_threshold: host's outbound wire bytes within a rule's window > rule bytes.
    - volume_spike: outbound wire bytes of the current local hour against an EWMA per hour of
      day (one sample per day; days without traffic count as 0, applied lazily as decay);
      armed after `baseline_min_days` days; fires above max(factor x expected,
      expected + spike_min_bytes).
    - slow_exfiltration: per (host, destination name or IP) daily payload totals over
      `slow_days`: at least `slow_min_days` days with `slow_min_daily_bytes`, a total of
      `slow_min_bytes`, and out >= `slow_min_ratio` x in.
    - novel_destination: the destination (name when known, else IP) was not contacted by any
      internal host within `retention_days` (after a learning period, or after the caller
      seeded `learn_destinations` from the store) and received `novel_min_bytes` of payload
      within `novel_window` of first contact.
    - non_eu_transfer / category_upload: payload within `transfer_window` to a destination
      whose country is not allowed / that has a category.
    - upload_asymmetry: payload out >= ratio x payload in within `asymmetry_window`.
* Memory is bounded: hosts, pairs, slow-exfiltration tracks, names and remembered destinations
  are capped; beyond a cap the least recently seen 1% are evicted and counted in `stats`. Idle
  entries are pruned on the packet clock at every hour. The open bucket is capped too; pairs
  beyond `max_bucket_entries` fold into the host's "other" destination.
"""

from __future__ import annotations

import heapq
import math
import zoneinfo
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sensor.config import IPNetwork, MeteringConfig, VolumeThreshold
from sensor.flows.table import Flow, Side
from sensor.metering.categories import Category, CategoryDb
from sensor.metering.geo import GeoDb
from sensor.metering.units import human_bytes, human_duration
from sensor.metering.values import (
    IN_BYTES,
    IN_PAYLOAD,
    N_COUNTERS,
    OTHER,
    OUT_BYTES,
    OUT_PAYLOAD,
    DestVolume,
    Finding,
    KernelTotals,
    Volume,
    VolumeSummary,
)
from sensor.metering.windows import Windows, WindowSpec, window_specs

_OTHER_KEY = b""  # destination of the entries folded in beyond max_bucket_entries
_PORT = N_COUNTERS  # index of the destination port in a bucket entry
# With kernel_out, packet-derived outbound bytes and packets are kept aside in these slots of a
# bucket entry: `use_packet_counts` puts them back if the probe turns out not to see them.
_PKT_OUT_BYTES, _PKT_OUT_PACKETS = N_COUNTERS + 1, N_COUNTERS + 2
# A destination known by its network (as the eBPF probe aggregates: /24, /64) is not novel
# when later metered by address.
NETWORK_LABEL_PREFIX = (24, 64)
_MAX_ADDRESS_CACHE = 1 << 18  # addresses whose home_net membership is cached
_DAY = 86400.0
_TOP = 5  # destinations named in a host-level finding
_NOTHING = (0, 0, 0)


class BucketFeed(Protocol):
    """Counts from outside the packets, handed to the meter right before each bucket closes
    (`Meter.add_kernel`); returns what must be saved with that bucket, if anything."""

    def before_close(self, meter: Meter, now: float) -> KernelTotals | None: ...


@dataclass(frozen=True, slots=True)
class MeterOutput:
    """What a bucket close gave: summaries and findings, and the feed's totals that must be
    saved in the same transaction as them."""

    results: list[VolumeSummary | Finding]
    kernel_totals: KernelTotals | None = None


def ip_text(ip: bytes) -> str:
    from ipaddress import ip_address

    return str(ip_address(ip)) if ip else OTHER


@dataclass(frozen=True, slots=True)
class DestinationFacts:
    name: str | None
    name_source: str | None  # "dns" (an answer seen on the wire), "sni" or "http" (the client's)
    category: str | None  # a category id of signatures/categories.toml
    country: str | None  # ISO 3166 alpha-2, when a country database knows it
    outside_allowed: bool  # the country is known and not in transfer_allowed_countries
    novel: bool


@dataclass(slots=True, eq=False)
class Pair:
    """One internal host's traffic with one external address."""

    ip: bytes
    text: str
    name: str | None
    port: int
    country: str | None
    category: Category | None
    first_ts: float
    last_ts: float
    windows: Windows
    out_payload: int = 0  # since first contact (for novelty)
    novel: bool = False  # first contact was novel and the novelty window is still open

    @property
    def label(self) -> str:
        return self.name or self.text

    def display(self) -> str:
        return f"{self.name} ({self.text})" if self.name else self.text


@dataclass(slots=True, eq=False)
class Host:
    ip: bytes
    text: str
    first_ts: float
    last_ts: float
    first_hour: int  # local hour index (hours since the epoch) of the first bucket
    windows: Windows
    rules: tuple[tuple[int, VolumeThreshold], ...]  # (host window index, rule)
    pairs: dict[bytes, Pair] = field(default_factory=dict)
    hour: int = -1  # local hour index being accumulated
    hour_out: int = 0
    spike_hour: int = -1  # hour of the last spike finding
    means: list[float] = field(default_factory=lambda: [0.0] * 24)  # EWMA per hour of day
    last_day: list[int] = field(default_factory=lambda: [-1] * 24)  # day of its last sample


@dataclass(slots=True, eq=False)
class SlowTrack:
    last_ts: float
    days: dict[int, list[int]] = field(default_factory=dict)  # day -> [out, in] payload
    out: int = 0  # sums over `days`
    back: int = 0


@dataclass(slots=True)
class MeterStats:
    packets: int = 0
    east_west_packets: int = 0  # both ends internal: not metered
    transit_packets: int = 0  # neither end internal: not metered
    buckets: int = 0
    hosts_evicted: int = 0
    pairs_evicted: int = 0
    slow_tracks_evicted: int = 0
    names_evicted: int = 0
    destinations_evicted: int = 0
    bucket_overflow: int = 0  # new pairs folded into "other" because the bucket was full
    address_cache_resets: int = 0
    findings: int = 0
    kernel_foreign: int = 0  # probe packets whose source is not internal by our home_net
    packet_out_packets: int = 0  # with kernel_out: outbound packets the packets showed


class Meter:
    def __init__(
        self,
        config: MeteringConfig,
        home_net: tuple[IPNetwork, ...],
        categories: CategoryDb,
        geo: GeoDb | None,
        *,
        kernel_out: bool = False,
        dest_prefix: tuple[int, int] | None = None,
        feed: BucketFeed | None = None,
    ) -> None:
        """`kernel_out`: outbound wire bytes and packets come from the eBPF probe's counters
        (`add_kernel`), so `add` takes only payload and inbound counts from packets.
        `dest_prefix` (IPv4, IPv6 prefix lengths): destinations are networks, not addresses,
        e.g. (24, 64) to match the probe's per-destination aggregation. `feed` is asked for
        its counts right before every bucket closes (the live runtime's eBPF probe reader)."""
        self.config = config
        self._feed = feed
        # What each flow side had carried when it was last metered: (bytes, packets, payload).
        self._metered: dict[Side, tuple[int, int, int]] = {}
        self.kernel_out = kernel_out
        self.dest_prefix = dest_prefix
        self._masks: dict[bytes, bytes] = {}
        self._categories = categories
        self._geo = geo
        self._tz = zoneinfo.ZoneInfo(config.timezone)
        self._home = tuple((n.version, int(n.network_address), int(n.netmask)) for n in home_net)
        self._bucket = config.bucket_seconds
        self._host_specs = window_specs(
            (*config.windows, *(rule.seconds for rule in config.thresholds)),
            self._bucket,
            config.window_slots,
        )
        self._pair_specs = window_specs(
            (*config.windows, config.transfer_window, config.asymmetry_window),
            self._bucket,
            config.window_slots,
        )
        self._summary_windows = tuple(
            i for i, s in enumerate(self._host_specs) if s.seconds in config.windows
        )
        self._transfer = _index(self._pair_specs, config.transfer_window)
        self._asymmetry = _index(self._pair_specs, config.asymmetry_window)
        self._allowed = frozenset(config.transfer_allowed_countries)
        self._retention = config.retention_days * _DAY
        self._pair_idle = max(s.seconds for s in self._pair_specs)
        self._pair_idle = max(self._pair_idle, config.novel_window)
        self._decay = 1.0 - config.baseline_alpha

        self._internal: dict[bytes, bool] = {}
        self._cur: dict[tuple[bytes, bytes], list[int]] = {}
        self._open = False
        self._bucket_start = 0.0
        self._bucket_end = -math.inf
        self._closed = 0.0  # start of the last closed bucket: "now" for the window queries
        self._hour = -1  # local hour index of the last closed bucket (prune once per hour)
        self._learning_until: float | None = None  # set at the first bucket
        self.hosts: dict[bytes, Host] = {}
        self._npairs = 0
        self._slow: dict[tuple[bytes, str], SlowTrack] = {}
        self._names: dict[bytes, tuple[str, str]] = {}
        self._seen: dict[str, float] = {}  # destination label -> last contact
        self._fired: dict[tuple[str, str, str], float] = {}  # (kind, host, subject) -> until
        self._pending: list[VolumeSummary | Finding] = []
        self.stats = MeterStats()

    # -- inputs ---------------------------------------------------------------------------

    def observe(
        self, ts: float, src: bytes, dst: bytes, ip_len: int, payload_new: int, dst_port: int
    ) -> None:
        """One packet. Hot path: dict updates only (a bucket close every bucket_seconds)."""
        self.add(ts, src, dst, ip_len, 1, payload_new, dst_port)

    def add(
        self,
        ts: float,
        src: bytes,
        dst: bytes,
        ip_bytes: int,
        packets: int,
        payload_new: int,
        dst_port: int,
    ) -> None:
        """`packets` packets of one direction at once, e.g. what a flow sent since the last
        bucket close (the pipeline meters flows this way, not packet by packet)."""
        if ts >= self._bucket_end:
            self._roll(ts)
        internal = self._internal
        src_in = internal.get(src)
        if src_in is None:
            src_in = self._classify(src)
        dst_in = internal.get(dst)
        if dst_in is None:
            dst_in = self._classify(dst)
        if src_in:
            if dst_in:
                self.stats.east_west_packets += packets
                return
            if self.dest_prefix is not None:
                dst = self._mask(dst)
            key = (src, dst)
            entry = self._cur.get(key)
            if entry is None:
                entry = self._entry(key, dst_port)
            elif not entry[_PORT]:
                entry[_PORT] = dst_port
            if self.kernel_out:
                entry[_PKT_OUT_BYTES] += ip_bytes
                entry[_PKT_OUT_PACKETS] += packets
                self.stats.packet_out_packets += packets
            else:
                entry[0] += ip_bytes
                entry[1] += packets
            entry[2] += payload_new
        elif dst_in:
            if self.dest_prefix is not None:
                src = self._mask(src)
            key = (dst, src)
            entry = self._cur.get(key)
            if entry is None:
                entry = self._entry(key, 0)
            entry[3] += ip_bytes
            entry[4] += packets
            entry[5] += payload_new
        else:
            self.stats.transit_packets += packets

    def add_kernel(self, ts: float, src: bytes, dst: bytes, ip_bytes: int, packets: int) -> None:
        """Outbound wire bytes and packets counted by the eBPF probe since its last read, from
        internal `src` to destination network `dst` (b"" = not attributed to a destination,
        e.g. what the probe's LRU pair map lost). Only with `kernel_out`."""
        if ts >= self._bucket_end:
            self._roll(ts)
        src_in = self._internal.get(src)
        if src_in is None:
            src_in = self._classify(src)
        if not src_in:  # the probe's home_net differs from ours: not an outbound count
            self.stats.kernel_foreign += packets
            return
        if dst and self.dest_prefix is not None:
            dst = self._mask(dst)
        key = (src, dst)
        entry = self._cur.get(key)
        if entry is None:
            entry = self._entry(key, 0)
        entry[0] += ip_bytes
        entry[1] += packets

    def use_packet_counts(self) -> None:
        """Stop taking outbound counts from the probe: from now on, and for the open bucket,
        outbound wire bytes and packets are the packets' (kept aside until now)."""
        self.kernel_out = False
        for entry in self._cur.values():
            entry[0] += entry[_PKT_OUT_BYTES]
            entry[1] += entry[_PKT_OUT_PACKETS]
            entry[_PKT_OUT_BYTES] = entry[_PKT_OUT_PACKETS] = 0

    def _mask(self, ip: bytes) -> bytes:
        """`ip` reduced to its network address under `dest_prefix` (cached)."""
        masked = self._masks.get(ip)
        if masked is None:
            assert self.dest_prefix is not None
            masked = network_of(ip, self.dest_prefix)
            if len(self._masks) >= _MAX_ADDRESS_CACHE:
                self._masks.clear()
            self._masks[ip] = masked
        return masked

    def name(self, ip: bytes, name: str, source: str) -> None:
        """A name for a destination address (`source` "sni", "http" or "dns"). The last name
        seen wins, except that a DNS answer never replaces a name the connection itself gave
        (SNI, Host): a CDN address serves many names, and any host's lookup of a harmless one
        must not relabel a file-hosting destination. With `dest_prefix` the name goes to the
        address's network."""
        if self.dest_prefix is not None:
            ip = self._mask(ip)
        names = self._names
        if source == "dns":
            known = names.get(ip)
            if known is not None and known[1] != "dns":
                return
        if ip not in names and len(names) >= self.config.max_names:
            for victim in list(names)[: max(1, len(names) // 100)]:
                del names[victim]
                self.stats.names_evicted += 1
        names[ip] = (name.lower().rstrip("."), source)

    def learn_destinations(self, contacts: Iterable[tuple[str, float]]) -> None:
        """Seed novelty with (destination label, last contact) pairs, e.g. from the store
        after a restart; the learning period is then over."""
        for label, ts in contacts:
            if ts > self._seen.get(label, -math.inf):
                self._remember(label, ts)
        self._learning_until = -math.inf

    # -- flows and buckets on the packet clock --------------------------------------------

    @property
    def next_close(self) -> float:
        """Packet time at which the open bucket closes (-inf before the first one, so the first
        packet opens it): the pipeline calls `close_bucket` once its clock gets there."""
        return self._bucket_end

    def bucket_time(self, ts: float) -> float:
        """A time inside the open bucket: counts gathered since the last close were all seen
        before the bucket ended, so they belong to it (`ts` itself before the first bucket)."""
        return self._bucket_start + self._bucket / 2 if self._open else ts

    def meter_flow(self, flow: Flow[Any], ts: float) -> None:
        """What each side of `flow` carried since it was last metered, at `ts`. Flows are
        metered at bucket closes and when they end, never per packet."""
        metered = self._metered
        for side, src, dst, port in (
            (flow.toserver, flow.client, flow.server, flow.server_port),
            (flow.toclient, flow.server, flow.client, flow.client_port),
        ):
            before = metered.get(side, _NOTHING)
            if side.pkts != before[1]:
                metered[side] = (side.bytes, side.pkts, side.payload)
                self.add(ts, src, dst, side.bytes - before[0], side.pkts - before[1],
                         side.payload - before[2], port)  # fmt: skip

    def flow_ended(self, flow: Flow[Any], ts: float) -> None:
        """The flow's last counts go to the open bucket; the meter forgets the flow."""
        self.meter_flow(flow, self.bucket_time(ts))
        self._metered.pop(flow.toserver, None)
        self._metered.pop(flow.toclient, None)

    def close_bucket(self, now: float, flows: Iterable[Flow[Any]]) -> MeterOutput:
        """The packet clock reached `next_close`: every flow's counts since the last close
        belong to the closing bucket (all were seen before `now`), then the bucket feed's
        (the eBPF probe's kernel counts, when the runtime gave one), then the bucket closes.
        The first call opens the first bucket and closes nothing."""
        inside = self.bucket_time(now)
        for flow in flows:
            self.meter_flow(flow, inside)
        totals = None
        if self._open and self._feed is not None:
            totals = self._feed.before_close(self, now)
        return MeterOutput(self.tick(now), totals)

    def end(self, now: float, flows: Iterable[Flow[Any]]) -> MeterOutput:
        """End of input: the flows' counts and the feed's last ones into the open bucket,
        which then closes."""
        inside = self.bucket_time(now)
        for flow in flows:
            self.meter_flow(flow, inside)
        totals = self._feed.before_close(self, now) if self._feed is not None else None
        return MeterOutput(self.finish(), totals)

    def tick(self, ts: float) -> list[VolumeSummary | Finding]:
        """Advance the packet clock; what closed buckets produced since the last call."""
        if ts >= self._bucket_end:
            self._roll(ts)
        out, self._pending = self._pending, []
        return out

    def finish(self) -> list[VolumeSummary | Finding]:
        """End of input: close the open bucket."""
        if self._open:
            self._close(self._bucket_start)
            self._open = False
            self._bucket_end = -math.inf
        out, self._pending = self._pending, []
        return out

    # -- queries (live view for operators) --------------------------------------------------

    def host_windows(self, ip: bytes) -> tuple[tuple[float, Volume], ...]:
        host = self.hosts.get(ip)
        if host is None:
            return ()
        host.windows.advance(self._closed)
        return tuple(
            (self._host_specs[i].seconds, Volume.of(host.windows.sums[i]))
            for i in self._summary_windows
        )

    def top_destinations(self, ip: bytes, seconds: float, limit: int = 10) -> list[DestVolume]:
        host = self.hosts.get(ip)
        if host is None:
            return []
        index = _covering(self._pair_specs, seconds)
        rows = []
        for pair in host.pairs.values():
            pair.windows.advance(self._closed)
            volume = Volume.of(pair.windows.sums[index])
            if volume != Volume():
                rows.append(_dest(pair, volume))
        rows.sort(key=lambda d: -d.volume.out_bytes)
        return rows[:limit]

    def pair_count(self) -> int:
        return self._npairs

    def stats_dict(self) -> dict[str, int]:
        values = asdict(self.stats)
        values.update(
            hosts=len(self.hosts),
            pairs=self._npairs,
            slow_tracks=len(self._slow),
            names=len(self._names),
            destinations=len(self._seen),
        )
        return values

    def destination(self, host: bytes, dest: bytes, t: float) -> DestinationFacts:
        """What the meter knows of `dest` as `host`'s destination at packet time `t`: its
        name, category, country, whether the country is outside the allowed list, and
        whether it is novel (never contacted within the retention, after the learning
        period). For the policy, at the moment a finding is made."""
        key = self._mask(dest) if self.dest_prefix is not None else dest
        named = self._names.get(key)
        source = named[1] if named else None
        pair = self.hosts[host].pairs.get(key) if host in self.hosts else None
        if pair is not None:
            name, category, country, novel = pair.name, pair.category, pair.country, pair.novel
        else:  # a destination of this very bucket: not summarised yet
            name = named[0] if named else None
            category = self._categories.match(dest, name)
            country = self._geo.country(dest) if self._geo is not None else None
            label = name or ip_text(dest)
            last = self._seen.get(label)
            learning = self._learning_until is None or t < self._learning_until
            novel = not learning and (last is None or t - last > self._retention)
        return DestinationFacts(
            name=name,
            name_source=source if name is not None else None,
            category=category.id if category is not None else None,
            country=country,
            outside_allowed=country is not None and country not in self._allowed,
            novel=novel,
        )

    def is_internal(self, ip: bytes) -> bool:
        """Whether `ip` (packed) is in home_net."""
        found = self._internal.get(ip)
        return found if found is not None else self._classify(ip)

    # -- per packet helpers -----------------------------------------------------------------

    def _classify(self, ip: bytes) -> bool:
        version = 4 if len(ip) == 4 else 6
        value = int.from_bytes(ip, "big")
        inside = any(v == version and value & mask == net for v, net, mask in self._home)
        if len(self._internal) >= _MAX_ADDRESS_CACHE:
            self._internal.clear()
            self.stats.address_cache_resets += 1
        self._internal[ip] = inside
        return inside

    def _entry(self, key: tuple[bytes, bytes], port: int) -> list[int]:
        cur = self._cur
        if len(cur) >= self.config.max_bucket_entries:
            self.stats.bucket_overflow += 1
            key = (key[0], _OTHER_KEY)
            entry = cur.get(key)
            if entry is not None:
                return entry
        entry = cur[key] = [0, 0, 0, 0, 0, 0, port, 0, 0]
        return entry

    def _roll(self, ts: float) -> None:
        if self._open:
            self._close(self._bucket_start)
        self._open = True
        self._bucket_start = math.floor(ts / self._bucket) * self._bucket
        self._bucket_end = self._bucket_start + self._bucket
        self._closed = self._bucket_start - self._bucket  # empty buckets in between count

    # -- bucket close ---------------------------------------------------------------------

    def _local_hour(self, t: float) -> int:
        offset = self._tz.utcoffset(datetime.fromtimestamp(t, UTC))
        seconds = offset.total_seconds() if offset is not None else 0.0
        return int((t + seconds) // 3600)

    def _close(self, t: float) -> None:
        cur, self._cur = self._cur, {}
        self._closed = t
        end = t + self._bucket
        self.stats.buckets += 1
        hour = self._local_hour(t)
        if self._learning_until is None:
            self._learning_until = t + self.config.novel_learning_days * _DAY
        if hour != self._hour:
            self._hour = hour
            self._prune(t)
        self.stats.packets += sum(e[1] + e[4] for e in cur.values())
        hosts = self.hosts
        for host_ip, dest_ip in cur:  # touch first: eviction below spares this bucket's
            host = hosts.get(host_ip)
            if host is not None:
                host.last_ts = end
                pair = host.pairs.get(dest_ip)
                if pair is not None:
                    pair.last_ts = end
        active: dict[bytes, tuple[Host, list[int], list[tuple[Pair | None, list[int]]]]] = {}
        for (host_ip, dest_ip), counters in cur.items():
            item = active.get(host_ip)
            if item is None:
                host = hosts.get(host_ip)
                if host is None:
                    host = self._new_host(host_ip, t, hour)
                item = active[host_ip] = (host, [0] * N_COUNTERS, [])
            host, totals, dests = item
            for i in range(N_COUNTERS):
                totals[i] += counters[i]
            if dest_ip == _OTHER_KEY:
                dests.append((None, counters))
                continue
            pair = host.pairs.get(dest_ip)
            if pair is None:
                pair = self._new_pair(host, dest_ip, counters[_PORT], t)
            pair.windows.add(t, counters)
            pair.out_payload += counters[OUT_PAYLOAD]
            if pair.name is None:
                self._attach_name(pair)
            self._pair_detectors(host, pair, counters, t, end, hour)
            dests.append((pair, counters))
        for host, totals, dests in active.values():
            host.windows.add(t, totals)
            self._host_detectors(host, totals, end, hour)
            self._pending.append(self._summary(host, totals, dests, t))

    def _new_host(self, ip: bytes, t: float, hour: int) -> Host:
        if len(self.hosts) >= self.config.max_hosts:
            self._evict_hosts(max(1, self.config.max_hosts // 100))
        rules = []
        for rule in self.config.thresholds:
            if not rule.hosts or _inside(ip, rule.hosts):
                rules.append((_index(self._host_specs, rule.seconds), rule))
        host = Host(
            ip=ip,
            text=ip_text(ip),
            first_ts=t,
            last_ts=t + self._bucket,
            first_hour=hour,
            windows=Windows(self._host_specs),
            rules=tuple(rules),
        )
        self.hosts[ip] = host
        return host

    def _new_pair(self, host: Host, ip: bytes, port: int, t: float) -> Pair:
        if self._npairs >= self.config.max_pairs:
            self._evict_pairs(max(1, self.config.max_pairs // 100))
        named = self._names.get(ip)
        name = named[0] if named else None
        pair = Pair(
            ip=ip,
            text=ip_text(ip) if self.dest_prefix is None else network_label(ip, self.dest_prefix),
            name=name,
            port=port,
            country=self._geo.country(ip) if self._geo is not None else None,
            category=self._categories.match(ip, name),
            first_ts=t,
            last_ts=t + self._bucket,
            windows=Windows(self._pair_specs),
        )
        label = pair.label
        last = self._seen.get(label)
        if last is None and name is None and self.dest_prefix is None:
            last = self._seen.get(network_label(ip, NETWORK_LABEL_PREFIX))
        learning = self._learning_until is not None and t < self._learning_until
        pair.novel = not learning and (last is None or t - last > self._retention)
        host.pairs[ip] = pair
        self._npairs += 1
        return pair

    def _attach_name(self, pair: Pair) -> None:
        named = self._names.get(pair.ip)
        if named is not None:
            pair.name = named[0]
            pair.category = self._categories.match(pair.ip, pair.name) or pair.category

    # -- detectors --------------------------------------------------------------------------

    def _fire(
        self,
        kind: str,
        host: Host,
        subject: str,
        end: float,
        cooldown: float,
        window: float,
        value: float,
        threshold: float,
        detail: str,
        destinations: tuple[str, ...],
    ) -> None:
        key = (kind, host.text, subject)
        until = self._fired.get(key)
        if until is not None and end < until:
            return
        self._fired[key] = end + cooldown
        self.stats.findings += 1
        self._pending.append(
            Finding(kind, host.text, end, window, value, threshold, detail, destinations)
        )

    def _pair_detectors(
        self, host: Host, pair: Pair, counters: list[int], t: float, end: float, hour: int
    ) -> None:
        config = self.config
        label = pair.label
        self._remember(label, t)
        if pair.novel:
            if t - pair.first_ts > config.novel_window:
                pair.novel = False
            elif pair.out_payload >= config.novel_min_bytes:
                pair.novel = False
                self._fire(
                    "novel_destination", host, label, end, config.finding_cooldown,
                    end - pair.first_ts, pair.out_payload, config.novel_min_bytes,
                    f"first contact with {pair.display()} in {config.retention_days:g} days "
                    f"at {datetime.fromtimestamp(pair.first_ts, UTC):%Y-%m-%d %H:%M:%S}Z; "
                    f"{human_bytes(pair.out_payload)} payload sent since (port {pair.port})",
                    (pair.display(),),
                )  # fmt: skip
        if not counters[OUT_PAYLOAD]:
            if counters[IN_PAYLOAD]:
                # What comes back counts against slow exfiltration's upload ratio, even in a
                # bucket without uploads (a sync client downloads on other connections).
                self._slow_track(host, pair, counters, t, end, hour // 24)
            return
        sent = pair.windows.sums[self._transfer][OUT_PAYLOAD]
        window = self._pair_specs[self._transfer].seconds
        country = pair.country
        if (
            country is not None
            and country not in self._allowed
            and sent >= config.transfer_min_bytes
        ):
            source = self._geo.source if self._geo is not None else "no database"
            self._fire(
                "non_eu_transfer", host, label, end, config.finding_cooldown,
                window, sent, config.transfer_min_bytes,
                f"{human_bytes(sent)} payload to {pair.display()} in {country} within "
                f"{human_duration(window)} (country from {source})",
                (pair.display(),),
            )  # fmt: skip
        category = pair.category
        if category is not None:
            minimum = (
                category.min_bytes if category.min_bytes is not None else config.category_min_bytes
            )
            if sent >= minimum:
                self._fire(
                    "category_upload", host, f"{category.id}:{label}", end,
                    config.finding_cooldown, window, sent, minimum,
                    f"{human_bytes(sent)} payload to {pair.display()} ({category.id}, "
                    f"{self._categories.id} v{self._categories.version}) within "
                    f"{human_duration(window)}",
                    (pair.display(),),
                )  # fmt: skip
        sums = pair.windows.sums[self._asymmetry]
        out, back = sums[OUT_PAYLOAD], sums[IN_PAYLOAD]
        limit = max(config.asymmetry_min_bytes, config.asymmetry_ratio * back)
        if out >= limit:
            window = self._pair_specs[self._asymmetry].seconds
            self._fire(
                "upload_asymmetry", host, label, end, config.finding_cooldown,
                window, out, limit,
                f"{human_bytes(out)} payload sent to {pair.display()}, {human_bytes(back)} "
                f"received, within {human_duration(window)} "
                f"(ratio limit {config.asymmetry_ratio:g})",
                (pair.display(),),
            )  # fmt: skip
        self._slow_track(host, pair, counters, t, end, hour // 24)

    def _slow_track(
        self, host: Host, pair: Pair, counters: list[int], t: float, end: float, day: int
    ) -> None:
        config = self.config
        key = (host.ip, pair.label)
        slow = self._slow
        track = slow.get(key)
        if track is None:
            if len(slow) >= config.max_pairs:
                victims = heapq.nsmallest(
                    max(1, len(slow) // 100), slow.items(), key=lambda kv: kv[1].last_ts
                )
                for victim, _ in victims:
                    del slow[victim]
                self.stats.slow_tracks_evicted += len(victims)
            track = slow[key] = SlowTrack(end)
        track.last_ts = end
        today = track.days.get(day)
        if today is None:
            today = track.days[day] = [0, 0]
            for old in [d for d in track.days if d <= day - config.slow_days]:
                gone = track.days.pop(old)
                track.out -= gone[0]
                track.back -= gone[1]
        today[0] += counters[OUT_PAYLOAD]
        today[1] += counters[IN_PAYLOAD]
        track.out += counters[OUT_PAYLOAD]
        track.back += counters[IN_PAYLOAD]
        out, back = track.out, track.back
        if out < config.slow_min_bytes or out < config.slow_min_ratio * max(back, 1):
            return
        days = sum(1 for v in track.days.values() if v[0] >= config.slow_min_daily_bytes)
        # "Slow" means spread out: one heavy day (a spike, caught by its own detector) must not
        # carry the total.
        heaviest = max(v[0] for v in track.days.values())
        if days >= config.slow_min_days and heaviest <= config.slow_max_day_share * out:
            window = config.slow_days * _DAY
            self._fire(
                "slow_exfiltration", host, pair.label, end, window, window, out,
                config.slow_min_bytes,
                f"{human_bytes(out)} payload to {pair.display()} on {days} of the last "
                f"{config.slow_days} days ({human_bytes(back)} received)",
                (pair.display(),),
            )  # fmt: skip

    def _host_detectors(self, host: Host, totals: list[int], end: float, hour: int) -> None:
        config = self.config
        for index, rule in host.rules:
            sent = host.windows.sums[index][OUT_BYTES]
            if sent > rule.bytes:
                self._fire(
                    "volume_threshold", host, rule.name, end, rule.seconds, rule.seconds,
                    sent, rule.bytes,
                    f"rule {rule.name!r}: {human_bytes(sent)} outbound within "
                    f"{human_duration(rule.seconds)} (limit {human_bytes(rule.bytes)})",
                    self._top(host, rule.seconds),
                )  # fmt: skip
        if host.hour != hour:
            if host.hour >= 0:
                self._learn_hour(host, host.hour, host.hour_out)
            host.hour = hour
            host.hour_out = 0
        host.hour_out += totals[OUT_BYTES]
        if host.spike_hour == hour:
            return
        expected, armed = self._expected(host, hour)
        if not armed:
            return
        limit = max(expected * config.spike_factor, expected + config.spike_min_bytes)
        if host.hour_out > limit:
            host.spike_hour = hour
            self._fire(
                "volume_spike", host, str(hour), end, 0.0, 3600.0, host.hour_out, limit,
                f"{human_bytes(host.hour_out)} outbound in local hour {hour % 24:02d}:00, "
                f"baseline {human_bytes(expected)} for that hour",
                self._top(host, 3600.0),
            )  # fmt: skip

    def _slot_first_day(self, host: Host, hour_of_day: int) -> int:
        """First local day on which this hour of day was observed for the host."""
        return -((hour_of_day - host.first_hour) // 24)

    def _expected(self, host: Host, hour: int) -> tuple[float, bool]:
        day, h = divmod(hour, 24)
        armed = day - self._slot_first_day(host, h) >= self.config.baseline_min_days
        last = host.last_day[h]
        if last < 0:
            return 0.0, armed
        return host.means[h] * self._decay ** max(0, day - 1 - last), armed

    def _learn_hour(self, host: Host, hour: int, value: int) -> None:
        day, h = divmod(hour, 24)
        last = host.last_day[h]
        if last < 0:
            prior: float | None = 0.0 if day > self._slot_first_day(host, h) else None
        else:
            prior = host.means[h] * self._decay ** max(0, day - 1 - last)
        alpha = self.config.baseline_alpha
        host.means[h] = float(value) if prior is None else prior + alpha * (value - prior)
        host.last_day[h] = day

    def _top(self, host: Host, seconds: float) -> tuple[str, ...]:
        index = _covering(self._pair_specs, seconds)
        ranked = []
        for pair in host.pairs.values():
            pair.windows.advance(self._closed)
            sent = pair.windows.sums[index][OUT_BYTES]
            if sent:
                ranked.append((sent, pair.display()))
        return tuple(name for _, name in heapq.nlargest(_TOP, ranked))

    # -- output and housekeeping ------------------------------------------------------------

    def _summary(
        self,
        host: Host,
        totals: list[int],
        dests: list[tuple[Pair | None, list[int]]],
        t: float,
    ) -> VolumeSummary:
        dests.sort(key=lambda d: (-d[1][OUT_BYTES], -d[1][IN_BYTES]))
        keep = self.config.summary_destinations
        rows: list[DestVolume] = []
        rest = [0] * N_COUNTERS
        folded = False
        for pair, counters in dests:
            if pair is not None and len(rows) < keep:
                rows.append(_dest(pair, Volume.of(counters)))
            else:
                folded = True
                for i in range(N_COUNTERS):
                    rest[i] += counters[i]
        if folded:
            rows.append(DestVolume(OTHER, None, Volume.of(rest)))
        windows = tuple(
            (self._host_specs[i].seconds, Volume.of(host.windows.sums[i]))
            for i in self._summary_windows
        )
        return VolumeSummary(host.text, t, self._bucket, Volume.of(totals), tuple(rows), windows)

    def _remember(self, label: str, t: float) -> None:
        seen = self._seen
        if label not in seen and len(seen) >= self.config.max_destinations:
            victims = heapq.nsmallest(max(1, len(seen) // 100), seen.items(), key=lambda kv: kv[1])
            for victim, _ in victims:
                del seen[victim]
            self.stats.destinations_evicted += len(victims)
        seen[label] = t

    def _prune(self, t: float) -> None:
        """Once per packet-clock hour: forget what has been idle for too long."""
        for ip in [ip for ip, h in self.hosts.items() if t - h.last_ts > self._retention]:
            self._drop_host(ip)
        for host in self.hosts.values():
            idle = [ip for ip, p in host.pairs.items() if t - p.last_ts > self._pair_idle]
            for ip in idle:
                del host.pairs[ip]
            self._npairs -= len(idle)
        horizon = self.config.slow_days * _DAY
        for key in [k for k, s in self._slow.items() if t - s.last_ts > horizon]:
            del self._slow[key]
        for fired in [k for k, until in self._fired.items() if until <= t]:
            del self._fired[fired]
        for label in [k for k, last in self._seen.items() if t - last > self._retention]:
            del self._seen[label]

    def _drop_host(self, ip: bytes) -> None:
        host = self.hosts.pop(ip)
        self._npairs -= len(host.pairs)

    def _evict_hosts(self, count: int) -> None:
        victims = heapq.nsmallest(count, self.hosts.values(), key=lambda h: h.last_ts)
        for host in victims:
            self._drop_host(host.ip)
        self.stats.hosts_evicted += len(victims)

    def _evict_pairs(self, count: int) -> None:
        every = ((p.last_ts, h, p) for h in self.hosts.values() for p in h.pairs.values())
        victims = heapq.nsmallest(count, every, key=lambda v: v[0])
        for _, host, pair in victims:
            del host.pairs[pair.ip]
        self._npairs -= len(victims)
        self.stats.pairs_evicted += len(victims)


def network_of(ip: bytes, prefix: tuple[int, int]) -> bytes:
    """The network address of packed `ip` under (IPv4, IPv6) prefix lengths."""
    bits = prefix[0] if len(ip) == 4 else prefix[1]
    size = len(ip) * 8
    value = int.from_bytes(ip, "big") >> (size - bits) << (size - bits) if bits else 0
    return value.to_bytes(len(ip), "big")


def network_label(ip: bytes, prefix: tuple[int, int]) -> str:
    """ "198.51.100.0/24" for 198.51.100.20: how the meter names the address's network."""
    return f"{ip_text(network_of(ip, prefix))}/{prefix[0] if len(ip) == 4 else prefix[1]}"


def _dest(pair: Pair, volume: Volume) -> DestVolume:
    category = pair.category.id if pair.category is not None else None
    return DestVolume(pair.text, pair.name, volume, pair.port, pair.country, category)


def _index(specs: tuple[WindowSpec, ...], seconds: float) -> int:
    for i, spec in enumerate(specs):
        if spec.seconds == seconds:
            return i
    raise ValueError(f"no window of {seconds} s")


def _covering(specs: tuple[WindowSpec, ...], seconds: float) -> int:
    """The shortest window at least `seconds` long (else the longest)."""
    for i, spec in enumerate(specs):
        if spec.seconds >= seconds:
            return i
    return len(specs) - 1


def _inside(ip: bytes, networks: tuple[IPNetwork, ...]) -> bool:
    version = 4 if len(ip) == 4 else 6
    value = int.from_bytes(ip, "big")
    return any(
        n.version == version and value & int(n.netmask) == int(n.network_address) for n in networks
    )
