"""Deterministic captures with known per-host volumes, for the metering end-to-end tests.

What comes out: a classic pcap (Ethernet, microsecond timestamps) of planned TCP connections
between internal hosts (10.0.0.0/8, fd00::/8) and external servers (198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32), and the exact totals the sensor must report for it, tallied
packet by packet while writing: per host and per (host, destination) the six counters of
`sensor/metering/values.py` (wire bytes = IP lengths: IPv4 total length, IPv6 payload length
+ 40; packets; unique payload bytes, retransmissions excluded), optionally per time bucket.

Every connection is complete: handshake (SYN with MSS/window-scale options), data segments with
consistent seq/ack numbers (sequence numbers start at seeded random ISNs, so some wrap), a pure
ACK every second segment, exact retransmissions (the same segment, same seq, same bytes) of
every Nth segment when asked, then a FIN close. A connection uploads first, then downloads
(request, response). Checksums are zero (the sensor does not verify them by default, as on a
SPAN port with checksum offload).

Why hand-built frames (ideas from benchmarks/gen_mixed.py, not its code): the multi-day
scenarios hold hundreds of thousands of packets and must be cheap to regenerate in a test, so
headers are packed with precompiled `struct.Struct`s and payloads are memoryview slices of one
seeded pool. Two knobs keep the long scenarios small without changing what the meter sees:
`segment` (payload bytes per data segment: 1448 as on the wire, or up to 45 x 1448 as a
capture on a Linux gateway with GRO shows bulk TCP) and `snaplen` (a headers-only capture, as
`tcpdump -s 128` writes it; the meter counts IP lengths, never captured lengths).

Scenarios (plans only; `write_capture` turns a plan into a file and its totals):
- `exact_volumes`: hosts with given outbound payload totals, IPv4 and IPv6, retransmissions.
- `office_days`: regular working-day traffic of several hosts (the "normal" baseline).
- `slow_exfiltration`: office days plus one host's small nightly uploads to one server.
- `volume_spike`: office days, then one hour with a large upload from one host.
- `threshold_hosts`: uploads that probe a `[[metering.thresholds]]` rule's sliding window at
  its edges, and uploads of exactly the rule's bytes and of one byte more.
"""

from __future__ import annotations

import calendar
import heapq
import ipaddress
import math
import random
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_EPOCH = calendar.timegm((2026, 1, 5, 0, 0, 0, 0, 0, 0))  # Monday 00:00 UTC
DAY = 86400
HOUR = 3600
MB = 1_000_000  # as sensor.config.MEGABYTE
MSS = 1448
GRO_SEGMENT = 45 * MSS  # 65160: the largest multiple of the MSS under the 64 KiB IP limit
FULL_SNAPLEN = 262144  # tcpdump's default: whole frames
HEADERS_SNAPLEN = 128  # `tcpdump -s 128`: headers and a few payload bytes
RTT_US = 20_000
FLUSH_BYTES = 8 << 20
POOL_BYTES = 4 << 20

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
SYN_OPTIONS = b"\x02\x04\x05\xb4\x01\x03\x03\x07"  # MSS 1460, NOP, window scale 7
WINDOW_SYN = 64240
WINDOW = 502

PCAP_GLOBAL = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")
ETH_IP4_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")  # 54 bytes
ETH_IP6_TCP = struct.Struct("!6s6sH IHBB16s16s HHIIBBHHH")  # 74 bytes
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
LINKTYPE_ETHERNET = 1
IP_DF = 0x4000
GATEWAY_MAC = b"\x02\x00\x00\x00\x00\x01"

# Counter layout of sensor/metering/values.py, and the `sluice top --json` keys for it.
OUT_BYTES, OUT_PACKETS, OUT_PAYLOAD, IN_BYTES, IN_PACKETS, IN_PAYLOAD = range(6)
TOP_KEYS = (
    "bytes_out",
    "packets_out",
    "payload_bytes_out",
    "bytes_in",
    "packets_in",
    "payload_bytes_in",
)


@dataclass(frozen=True, slots=True)
class TcpTransfer:
    """One planned TCP connection from an internal client to an external server."""

    client: str
    server: str
    start: float  # packet time of the SYN, seconds since the epoch
    upload: int  # payload bytes client -> server
    download: int = 0  # payload bytes server -> client, after the upload
    duration: float = 1.0  # seconds the data segments are spread over
    port: int = 443
    segment: int = MSS  # payload bytes per full data segment
    retransmit_every: int = 0  # every Nth data segment of each direction is sent twice


@dataclass(slots=True)
class CaptureTotals:
    """What the sensor must count, tallied while writing (values.py counter layout)."""

    hosts: dict[str, list[int]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # (host, destination) -> bucket index (packet time // series_seconds) -> counters
    series: dict[tuple[str, str], dict[int, list[int]]] = field(default_factory=dict)
    series_seconds: int = 0
    packets: int = 0
    retransmissions: int = 0
    file_bytes: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0

    def host_record(self, host: str) -> dict[str, int]:
        return dict(zip(TOP_KEYS, self.hosts[host], strict=True))

    def pair_record(self, host: str, dest: str) -> dict[str, int]:
        return dict(zip(TOP_KEYS, self.pairs[(host, dest)], strict=True))


def canonical(ip: str) -> str:
    """The address text the sensor and its store use."""
    return str(ipaddress.ip_address(ip))


# One frame as the flows hand it to the writer: (packet time in microseconds, sent by the client,
# Ethernet+IP+TCP header, payload, IP length, unique payload bytes it adds).
Frame = tuple[int, bool, bytes, memoryview, int, int]


class _Flow:
    """Emits one planned connection frame by frame, keeping seq/ack numbers consistent."""

    __slots__ = (
        "c_ip",
        "c_mac",
        "c_port",
        "c_seq",
        "ipid_c",
        "ipid_s",
        "pool",
        "s_ip",
        "s_port",
        "s_seq",
        "transfer",
        "v6",
    )

    def __init__(self, t: TcpTransfer, c_port: int, pool: memoryview, rng: random.Random) -> None:
        self.transfer = t
        c = ipaddress.ip_address(t.client)
        s = ipaddress.ip_address(t.server)
        if c.version != s.version:
            raise ValueError(f"{t.client} -> {t.server}: mixed address families")
        self.v6 = c.version == 6
        self.c_ip, self.s_ip = c.packed, s.packed
        self.c_mac = b"\x02\x00" + c.packed[-4:]
        self.c_port, self.s_port = c_port, t.port
        self.c_seq = rng.getrandbits(32)
        self.s_seq = rng.getrandbits(32)
        self.ipid_c = rng.getrandbits(16)
        self.ipid_s = rng.getrandbits(16)
        self.pool = pool

    def frame(self, from_client: bool, flags: int, seq: int, ack: int, size: int) -> bytes:
        """Ethernet + IP + TCP header of one segment (SYN options included)."""
        options = SYN_OPTIONS if flags & SYN else b""
        doff = (20 + len(options)) << 2
        window = WINDOW_SYN if flags & SYN else WINDOW
        if from_client:
            macs = (GATEWAY_MAC, self.c_mac)
            src, dst, sport, dport, ttl = self.c_ip, self.s_ip, self.c_port, self.s_port, 64
        else:
            macs = (self.c_mac, GATEWAY_MAC)
            src, dst, sport, dport, ttl = self.s_ip, self.c_ip, self.s_port, self.c_port, 52
        tcp_len = 20 + len(options) + size
        if self.v6:
            header = ETH_IP6_TCP.pack(
                macs[0], macs[1], ETHERTYPE_IPV6,
                0x60000000, tcp_len, 6, ttl, src, dst,
                sport, dport, seq, ack, doff, flags, window, 0, 0,
            )  # fmt: skip
        else:
            if from_client:
                ipid = self.ipid_c = (self.ipid_c + 1) & 0xFFFF
            else:
                ipid = self.ipid_s = (self.ipid_s + 1) & 0xFFFF
            header = ETH_IP4_TCP.pack(
                macs[0], macs[1], ETHERTYPE_IPV4,
                0x45, 0, 20 + tcp_len, ipid, IP_DF, ttl, 6, 0, src, dst,
                sport, dport, seq, ack, doff, flags, window, 0, 0,
            )  # fmt: skip
        return header + options

    def packets(self) -> Iterator[Frame]:
        """(ts_us, from_client, header, payload, ip_len, new payload bytes) per frame."""
        t = self.transfer
        empty = self.pool[:0]
        span = len(self.pool) - t.segment
        ts = round(t.start * 1_000_000)
        c_next, s_next = self.c_seq, self.s_seq

        def bare(from_client: bool, flags: int, seq: int, ack: int) -> Frame:
            header = self.frame(from_client, flags, seq, ack, 0)
            return ts, from_client, header, empty, len(header) - 14, 0

        yield bare(True, SYN, c_next, 0)
        c_next = (c_next + 1) & 0xFFFFFFFF
        ts += RTT_US // 2
        yield bare(False, SYN | ACK, s_next, c_next)
        s_next = (s_next + 1) & 0xFFFFFFFF
        ts += RTT_US // 2
        yield bare(True, ACK, c_next, s_next)

        seg = t.segment
        n_up = -(-t.upload // seg)
        n_down = -(-t.download // seg)
        every = t.retransmit_every
        slots = n_up + n_down + (((n_up + n_down) // every) if every else 0)
        gap = max(1, round(t.duration * 1_000_000 / max(1, slots)))
        for from_client, total in ((True, t.upload), (False, t.download)):
            offset = 0
            count = 0
            while offset < total:
                size = min(seg, total - offset)
                count += 1
                last = offset + size == total
                flags = PSH | ACK if last else ACK
                seq = c_next if from_client else s_next
                ack = s_next if from_client else c_next
                start = offset % span
                payload = self.pool[start : start + size]
                header = self.frame(from_client, flags, seq, ack, size)
                ip_len = len(header) - 14 + size
                ts += gap
                yield ts, from_client, header, payload, ip_len, size
                if every and count % every == 0:
                    # The first copy is "lost" downstream of the sensor: the same segment
                    # (seq, ack, bytes) again, with the next IP ID as a real stack would.
                    ts += gap
                    again = self.frame(from_client, flags, seq, ack, size)
                    yield ts, from_client, again, payload, ip_len, 0
                if from_client:
                    c_next = (c_next + size) & 0xFFFFFFFF
                else:
                    s_next = (s_next + size) & 0xFFFFFFFF
                offset += size
                if count % 2 == 0 or last:
                    # The receiver's pure ACK for every second segment and the last one.
                    if from_client:
                        yield bare(False, ACK, s_next, c_next)
                    else:
                        yield bare(True, ACK, c_next, s_next)
        ts += RTT_US
        yield bare(True, FIN | ACK, c_next, s_next)
        c_next = (c_next + 1) & 0xFFFFFFFF
        ts += RTT_US // 2
        yield bare(False, FIN | ACK, s_next, c_next)
        s_next = (s_next + 1) & 0xFFFFFFFF
        ts += RTT_US // 2
        yield bare(True, ACK, c_next, s_next)


def write_capture(
    path: Path,
    transfers: Iterable[TcpTransfer],
    *,
    seed: int = 1,
    snaplen: int = FULL_SNAPLEN,
    series_seconds: int = 0,
) -> CaptureTotals:
    """Write the transfers (interleaved by packet time) to `path`; return the exact totals.
    With `series_seconds`, totals per (host, destination) and time bucket are kept too."""
    rng = random.Random(seed)
    pool = memoryview(rng.randbytes(POOL_BYTES))
    plan = sorted(transfers, key=lambda t: t.start)
    starts = [round(t.start * 1_000_000) for t in plan]
    totals = CaptureTotals(series_seconds=series_seconds)
    ports: dict[str, int] = {}
    # (packet time of the flow's next frame, plan index, that frame, the rest of the flow)
    heap: list[tuple[int, int, Frame, Iterator[Frame]]] = []
    tallies: dict[int, tuple[list[int], list[int], dict[int, list[int]] | None]] = {}
    record = PCAP_RECORD.pack
    buf = bytearray(PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
    written = 0
    first_us = last_us = -1
    bucket_us = series_seconds * 1_000_000
    index = 0
    with path.open("wb") as out:
        while heap or index < len(plan):
            if index < len(plan) and (not heap or starts[index] <= heap[0][0]):
                t = plan[index]
                client, server = canonical(t.client), canonical(t.server)
                port = ports.get(client)
                if port is None:
                    port = 32768 + rng.randrange(20000)
                ports[client] = port + 1 if port < 60999 else 32768
                tallies[index] = (
                    totals.hosts.setdefault(client, [0] * 6),
                    totals.pairs.setdefault((client, server), [0] * 6),
                    totals.series.setdefault((client, server), {}) if bucket_us else None,
                )
                frames = _Flow(t, port, pool, rng).packets()
                head = next(frames)
                heapq.heappush(heap, (head[0], index, head, frames))
                index += 1
                continue
            _, key, head, frames = heap[0]
            ts, from_client, header, payload, ip_len, new = head
            host, pair, series = tallies[key]
            captured = min(len(header) + len(payload), snaplen)
            buf += record(ts // 1_000_000, ts % 1_000_000, captured, ip_len + 14)
            buf += header
            if captured > len(header):
                buf += payload[: captured - len(header)]
            base = 0 if from_client else 3
            host[base] += ip_len
            host[base + 1] += 1
            host[base + 2] += new
            pair[base] += ip_len
            pair[base + 1] += 1
            pair[base + 2] += new
            if series is not None:
                cell = series.get(ts // bucket_us)
                if cell is None:
                    cell = series[ts // bucket_us] = [0] * 6
                cell[base] += ip_len
                cell[base + 1] += 1
                cell[base + 2] += new
            if payload and not new:
                totals.retransmissions += 1
            totals.packets += 1
            if first_us < 0:
                first_us = ts
            last_us = ts
            following = next(frames, None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following[0], key, following, frames))
            if len(buf) >= FLUSH_BYTES:
                out.write(buf)
                written += len(buf)
                buf.clear()
        out.write(buf)
        written += len(buf)
    totals.file_bytes = written
    totals.first_ts = first_us / 1e6
    totals.last_ts = last_us / 1e6
    return totals


# -- scenarios ---------------------------------------------------------------------------------


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` in `parts` positive pieces of seeded, uneven size that add up exactly."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = total / sum(weights)
    pieces = [max(1, int(w * scale)) for w in weights]
    pieces[-1] += total - sum(pieces)
    if pieces[-1] < 1:
        raise ValueError(f"cannot split {total} into {parts} pieces")
    return pieces


def log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


EXTERNAL_V4 = tuple(f"198.51.100.{i}" for i in range(10, 40)) + tuple(
    f"203.0.113.{i}" for i in range(10, 40)
)
EXTERNAL_V6 = tuple(f"2001:db8:{i:x}::443" for i in range(1, 16))


@dataclass(frozen=True, slots=True)
class Plan:
    transfers: list[TcpTransfer]
    hosts: tuple[str, ...]  # internal hosts of the plan, canonical text


def exact_volumes(
    uploads: Sequence[int] = (10 * MB, 50 * MB, 200 * MB),
    ipv6_upload: int = 8 * MB,
    seed: int = 7,
    flow_bytes: int = 25 * MB,
    segment: int = MSS,
) -> Plan:
    """One IPv4 host per entry of `uploads` (10.1.0.11, .12, ...) and one IPv6 host
    (fd00:1::20) send exactly that much payload, in connections of at most about
    `flow_bytes`, to 3-5 servers each (one server is shared by every IPv4 host); each
    connection also downloads 1-5% of its upload; every 97th segment of each direction (IPv6:
    every 61st) is retransmitted. Connections overlap; the whole capture spans minutes."""
    rng = random.Random(seed)
    transfers: list[TcpTransfer] = []
    hosts: list[str] = []
    shared = "203.0.113.200"
    senders = [(f"10.1.0.{11 + i}", size, 97) for i, size in enumerate(uploads)]
    if ipv6_upload:
        senders.append(("fd00:1::20", ipv6_upload, 61))
    for n, (client, total, every) in enumerate(senders):
        hosts.append(canonical(client))
        v6 = ":" in client
        pool = EXTERNAL_V6 if v6 else EXTERNAL_V4
        servers = rng.sample(pool, rng.randint(3, 5))
        if not v6:
            servers[0] = shared
        flows = max(len(servers), -(-total // flow_bytes))
        start: float = START_EPOCH + 9 * HOUR + 20 * n
        for i, size in enumerate(split(total, flows, rng)):
            duration = max(0.5, size / (2 * MB))  # 16 Mbit/s per connection
            transfers.append(
                TcpTransfer(
                    client=client,
                    server=servers[i % len(servers)],
                    start=start,
                    upload=size,
                    download=max(1, size * rng.randint(1, 5) // 100),
                    duration=duration,
                    port=rng.choice((443, 443, 8443, 22)),
                    segment=segment,
                    retransmit_every=every,
                )
            )
            start += duration * rng.uniform(0.3, 0.9)  # the next one overlaps this one
    return Plan(transfers, tuple(hosts))


SYNC_SERVER = "198.51.100.80"
SYNC_SERVER_V6 = "2001:db8:80::443"
OFFICE_HOSTS = ("10.2.0.21", "10.2.0.22", "10.2.0.23", "10.2.0.24", "fd00:2::25")


def office_days(
    days: int,
    hosts: Sequence[str] = OFFICE_HOSTS,
    seed: int = 11,
    first_day: int = 0,
    hourly_upload: tuple[int, int] = (2 * MB, 8 * MB),
    sync_daily: tuple[int, int] | None = None,
) -> Plan:
    """Regular working days: every host works 08:00-18:00 UTC on weekdays (a little on
    weekends) with 3-6 connections an hour to its own fixed 4-6 servers, each contacted on the
    first day. Each hour uploads `hourly_upload` (log-uniform) and downloads 1-3 times that:
    moderate volumes, more in than out, no new destination after the first day. Headers-only
    GRO-sized segments keep the files small.

    With `sync_daily`, every host also runs a file-sync client against SYNC_SERVER (IPv6:
    SYNC_SERVER_V6) on weekdays: it pushes that much (uniform) in 4-8 upload connections
    (files as they change) and pulls 0.8-1.2 times as much in 4-8 separate download
    connections, at random working hours: balanced per day, but never both directions in
    the same connection."""
    rng = random.Random(seed)
    sync_rng = random.Random(seed + 1000)
    transfers: list[TcpTransfer] = []
    servers: dict[str, list[str]] = {}
    for host in hosts:
        pool = EXTERNAL_V6 if ":" in host else EXTERNAL_V4[:40]
        servers[host] = rng.sample(pool, rng.randint(4, 6))
    for day in range(first_day, first_day + days):
        weekend = day % 7 >= 5
        for host in hosts:
            mine = servers[host]
            if day == first_day:  # every server this host will ever use, on day one
                for k, server in enumerate(mine):
                    transfers.append(
                        TcpTransfer(
                            host,
                            server,
                            START_EPOCH + day * DAY + 8 * HOUR + 60 * k,
                            200_000,
                            400_000,
                            5.0,
                            segment=GRO_SEGMENT,
                        )
                    )
            if weekend and rng.random() < 0.5:
                continue
            hours = sorted(rng.sample(range(10, 16), 2)) if weekend else range(8, 18)
            for hour in hours:
                count = rng.randint(3, 6)
                ups = split(log_uniform(rng, *hourly_upload), count, rng)
                base = START_EPOCH + day * DAY + hour * HOUR
                offsets = sorted(rng.uniform(0, HOUR - 120) for _ in range(count))
                for up, offset in zip(ups, offsets, strict=True):
                    transfers.append(
                        TcpTransfer(
                            client=host,
                            server=rng.choice(mine),
                            start=base + offset,
                            upload=up,
                            download=int(up * rng.uniform(1.0, 3.0)),
                            duration=rng.uniform(5, 60),
                            segment=GRO_SEGMENT,
                            retransmit_every=rng.choice((0, 0, 41)),
                        )
                    )
            if sync_daily is not None and not weekend:
                day_start = START_EPOCH + day * DAY
                pushed = sync_rng.randint(*sync_daily)
                pulled = int(pushed * sync_rng.uniform(0.8, 1.2))
                for up, down in (
                    *((size, 0) for size in split(pushed, sync_rng.randint(4, 8), sync_rng)),
                    *((0, size) for size in split(pulled, sync_rng.randint(4, 8), sync_rng)),
                ):
                    at = day_start + sync_rng.uniform(8 * HOUR, 18 * HOUR - 300)
                    transfers.append(
                        TcpTransfer(
                            host,
                            SYNC_SERVER_V6 if ":" in host else SYNC_SERVER,
                            at,
                            upload=up or 600,  # a pull starts with a small request
                            download=down or 300,  # a push ends with a small status
                            duration=sync_rng.uniform(10, 120),
                            segment=GRO_SEGMENT,
                        )
                    )
    return Plan(transfers, tuple(canonical(h) for h in hosts))


@dataclass(frozen=True, slots=True)
class SlowExfiltration:
    plan: Plan
    host: str
    server: str
    nightly: dict[int, int]  # day index -> payload bytes uploaded that night (UTC day)


def slow_exfiltration(
    days: int = 21,
    nightly: tuple[int, int] = (20 * MB, 40 * MB),
    seed: int = 13,
) -> SlowExfiltration:
    """Office days for `days` days; the office host 10.2.0.23 also uploads `nightly`
    (uniform) payload bytes to 203.0.113.66:443 every night from about 01:00 UTC for one to
    two hours, in connections of 1-3 MB three to five minutes apart (under 10 MB in any 10
    minutes: never a burst), with almost nothing coming back."""
    rng = random.Random(seed)
    office = office_days(days, seed=seed + 1)
    host, server = "10.2.0.23", "203.0.113.66"
    transfers = list(office.transfers)
    nights: dict[int, int] = {}
    for day in range(days):
        total = rng.randint(*nightly)
        nights[day] = total
        pieces = split(total, max(1, -(-total // (2 * MB))), rng)
        start = START_EPOCH + day * DAY + HOUR + rng.uniform(0, 600)
        for size in pieces:
            transfers.append(
                TcpTransfer(
                    host, server, start, size, 2_000, rng.uniform(20, 90), segment=GRO_SEGMENT
                )
            )
            start += rng.uniform(180, 300)
        if start >= START_EPOCH + day * DAY + 4 * HOUR:
            raise AssertionError("a night's upload must stay within its UTC day and hours")
    return SlowExfiltration(Plan(transfers, office.hosts), host, server, nights)


@dataclass(frozen=True, slots=True)
class VolumeSpike:
    plan: Plan
    host: str
    server: str
    spike_start: float  # packet time of the first spike connection
    spike_bytes: int


def volume_spike(
    days: int = 5, spike: int = 400 * MB, spike_hour: int = 14, seed: int = 17
) -> VolumeSpike:
    """Office days for `days` days (more than baseline_min_days learnt), then on the last
    day, from five past `spike_hour` (UTC), 10.2.0.22 uploads `spike` payload bytes to one of
    its usual servers in four connections ten minutes apart, on top of its usual traffic."""
    office = office_days(days, seed=seed)
    host = "10.2.0.22"
    server = next(t.server for t in office.transfers if t.client == host)
    day = days - 1
    if day % 7 >= 5:
        raise ValueError("let the spike fall on a weekday")
    start = START_EPOCH + day * DAY + spike_hour * HOUR + 300
    transfers = list(office.transfers)
    for i, size in enumerate(split(spike, 4, random.Random(seed))):
        transfers.append(
            TcpTransfer(host, server, start + i * 600, size, 50_000, 400.0, segment=GRO_SEGMENT)
        )
    return VolumeSpike(Plan(transfers, office.hosts), canonical(host), server, start, spike)


def pure_upload_for_wire(target: int, v6: bool = False, mss: int = MSS) -> tuple[int, int]:
    """(upload, segment) such that a transfer with only that upload (no download, no
    retransmission) puts exactly `target` outbound wire bytes on the wire: the client's SYN
    (with 8 option bytes), handshake ACK, n data segments, FIN and last ACK."""
    ip = 40 if v6 else 20
    fixed = (ip + 28) + 3 * (ip + 20)
    rest = target - fixed
    n = -(-rest // (mss + ip + 20))
    upload = rest - n * (ip + 20)
    segment = -(-upload // n)
    if upload <= 0 or -(-upload // segment) != n:
        raise ValueError(f"no pure upload of {target} wire bytes")
    return upload, segment


@dataclass(frozen=True, slots=True)
class ThresholdHosts:
    plan: Plan
    sliding: str  # probes the window's edges; crosses the rule once, late
    exact: str  # sends exactly the rule's bytes within minutes: no finding
    over: str  # one byte more: a finding


def threshold_hosts(rule_bytes: int, minutes: int = 10) -> ThresholdHosts:
    """For a rule "more than `rule_bytes` outbound within `minutes`", four hosts:

    - 10.4.0.41 probes the window's edges: a burst of 0.75 x rule bytes within one bucket,
      then 0.02 x a minute; as the burst leaves the window, 0.3 x more within half a minute.
      A window one bucket too long fires there; the right one only fires during the last
      upload, 1.1 x rule bytes over two minutes, 25 minutes after the burst.
    - 10.4.0.42 sends exactly `rule_bytes` outbound wire bytes in one connection (no finding),
      10.4.0.43 (IPv4) and fd00:4::44 (IPv6) one byte more; an hour after the first host."""
    base = START_EPOCH + 10 * HOUR + 1  # one second into a 10 s bucket
    window = minutes * 60
    sliding, server = "10.4.0.41", "198.51.100.50"
    transfers = [TcpTransfer(sliding, server, base, int(0.7 * rule_bytes), 10_000, 5.0)]
    for minute in range(1, 25):
        transfers.append(
            TcpTransfer(sliding, server, base + 60 * minute, int(0.02 * rule_bytes), 2_000, 40.0)
        )
    transfers.append(
        TcpTransfer(
            sliding,
            server,
            base + window - 6,
            int(0.3 * rule_bytes),
            5_000,
            30.0,
            retransmit_every=53,
        )
    )
    transfers.append(
        TcpTransfer(
            sliding,
            server,
            base + 25 * 60,
            int(1.1 * rule_bytes),
            5_000,
            120.0,
            retransmit_every=53,
        )
    )
    for k, (host, server, extra) in enumerate(
        (
            ("10.4.0.42", "198.51.100.51", 0),
            ("10.4.0.43", "198.51.100.52", 1),
            ("fd00:4::44", "2001:db8:4::52", 1),
        )
    ):
        upload, segment = pure_upload_for_wire(rule_bytes + extra, v6=":" in host)
        transfers.append(
            TcpTransfer(host, server, base + HOUR + k * 120, upload, 0, 20.0, segment=segment)
        )
    hosts = ("10.4.0.41", "10.4.0.42", "10.4.0.43", "fd00:4::44")
    return ThresholdHosts(
        Plan(transfers, tuple(canonical(h) for h in hosts)),
        sliding,
        "10.4.0.42",
        "10.4.0.43",
    )
