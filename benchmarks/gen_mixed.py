#!/usr/bin/env python3
"""Write a deterministic mixed egress capture for the replay benchmark.

Usage: gen_mixed.py [--packets N] [--seed S] [--mix egress|inspected|objects]
                   [--summary-json PATH] OUT.pcap

The default mix ("egress") is what an egress SPAN port of a small organisation might see, by
packet count roughly 80% TLS bulk transfers (mostly uploads), 12% HTTP/1.1 on ports 80 and 8080
(uploads with Content-Length or chunked bodies, downloads, keep-alive), 5% DNS over UDP and 3%
SSH/SMTP. Most of it rides Sluice's flow bypass once the TLS handshakes are seen. The
"inspected" mix turns that round (70% HTTP, 20% SSH/SMTP, 5% DNS, 5% TLS): nearly every packet
takes the full path (reassembly, parsers, content), the case a favourable mix hides. The
"objects" mix stresses the per-object cost of the content stage instead of bulk bytes: 85% HTTP
keep-alive connections carrying many small bodies in both directions (200 B - 20 KB: JSON API
calls, HTML pages, PNG/JPEG images, CSV, form posts, multipart uploads of small files, and small
ZIP and gzip uploads, so containers get opened), 10% SMTP mails with 1-3 small attachments, 5%
DNS, no TLS. Its documents are complete files (real zlib/zipfile/gzip output, valid PNG and JPEG
headers), built once per run into small pools and picked by the seeded generator.
Internal clients live in 10.20.0.0/16, servers in the documentation ranges 198.51.100.0/24 and
203.0.113.0/24. Nothing is sent; this only writes a file.

Why hand-built frames and not scapy: a benchmark input of a million packets has to be cheap to
regenerate, so every header is packed with a precompiled `struct.Struct` and payloads are
memoryview slices of a few seeded pools. The output is a classic pcap (microsecond timestamps,
Ethernet linktype), byte-for-byte identical for the same `--packets` and `--seed`; timestamps
start at 2026-01-05T08:00:00Z and advance on a seeded jitter, never the wall clock.

Every TCP flow is complete (handshake, payload with correct seq/ack, FIN close), and the packet
budget is planned up front so the file holds exactly N packets without cutting a flow: near the
end flows are shrunk, and the last few packets are DNS exchanges. IPv4 and TCP/UDP checksums
are zero (the sensor does not verify them, as on a SPAN port with checksum offload).

TLS application data is written as one 1448-byte record per full segment (as stacks with dynamic
record sizing do at the start of a connection), so every bulk segment starts with 17 03 03.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import gzip
import io
import json
import math
import random
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Bump when the output for the same parameters changes; replay_bench.py caches by it.
GENERATOR_VERSION = 1

START_EPOCH = calendar.timegm((2026, 1, 5, 8, 0, 0, 0, 0, 0))
MSS = 1448
SNAPLEN = 65535
LINKTYPE_ETHERNET = 1
CONCURRENT_FLOWS = 48  # flows interleaved at any moment
FLUSH_BYTES = 8 << 20

# Target share of packets per category; the scheduler starts the flow with the largest deficit.
MIXES: dict[str, dict[str, float]] = {
    "egress": {"tls": 0.80, "http": 0.12, "dns": 0.05, "other": 0.03},
    "inspected": {"tls": 0.05, "http": 0.70, "dns": 0.05, "other": 0.20},
    # Many small objects: "http" and "other" get their own planners (MIX_PLANNERS below).
    "objects": {"tls": 0.0, "http": 0.85, "dns": 0.05, "other": 0.10},
}
MIX = MIXES["egress"]  # the categories (every mix has the same ones) and the default shares

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP_DOFF_PLAIN = 5 << 4
TCP_DOFF_SYN = 7 << 4
# MSS 1460, window scale 7, two NOPs: the 12 option bytes are padded to 8 by dropping SACK/TS.
SYN_OPTIONS = b"\x02\x04\x05\xb4\x01\x03\x03\x07"
WINDOW_SYN = 64240
WINDOW = 502  # scaled by 2**7

PCAP_GLOBAL = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")
# Ethernet II, IPv4 without options, then TCP or UDP; network byte order throughout.
ETH_IP_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")
ETH_IP_UDP = struct.Struct("!6s6sH BBHHHBBH4s4s HHHH")
ETH_IP_TCP_LEN = ETH_IP_TCP.size  # 54
ETH_IP_UDP_LEN = ETH_IP_UDP.size  # 42
ETHERTYPE_IPV4 = 0x0800
IP_DF = 0x4000

GATEWAY_MAC = b"\x02\x00\x00\x00\x00\x01"

TLS_RECORD_BODY = MSS - 5
TLS_FULL_HEADER = b"\x17\x03\x03" + TLS_RECORD_BODY.to_bytes(2, "big")
TLS_POOL_RECORDS = 4096
BINARY_POOL_BYTES = 8 << 20
TEXT_POOL_BYTES = 6 << 20

HTTP_BODY_MIN = 10 * 1024
HTTP_BODY_MAX = 5 * 1024 * 1024

# The "objects" mix: sizes of its small documents, and how many of each kind are pre-built.
OBJECT_BODY_MIN = 200
OBJECT_BODY_MAX = 20 * 1024
OBJECT_CONTAINER_MAX = 8 * 1024  # ZIP and gzip uploads: "a few KB"
OBJECT_POOL_DOCS = 64
OBJECT_REQUESTS_MIN = 4  # requests per keep-alive connection
OBJECT_REQUESTS_MAX = 12
ZIP_DATE = (2026, 1, 5, 8, 0, 0)  # fixed member timestamps keep zipfile's output deterministic

TLS_HOSTS = (
    "drive.example.com",
    "sync.example.net",
    "backup.example.org",
    "api.example.com",
    "mail.example.net",
    "share.example.org",
    "storage.example.com",
    "telemetry.example.net",
)
HTTP_HOSTS = (
    "upload.example.com",
    "files.example.net",
    "intranet-mirror.example.org",
    "api.example.net",
    "cdn.example.com",
)
DNS_NAMES = (
    "www.example.com",
    "api.example.net",
    "drive.example.com",
    "mail.example.org",
    "updates.example.net",
    "cdn.example.com",
    "time.example.org",
    "login.example.com",
)
WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
)

Payload = bytes | memoryview
Step = tuple[bool, int, Payload]  # (from_client, tcp flags, payload); UDP ignores the flags


@dataclass(frozen=True, slots=True)
class Pools:
    """Seeded byte pools that payloads are sliced from, so no packet allocates its own bytes."""

    binary: bytes
    text: bytes
    tls: bytes  # TLS_POOL_RECORDS full application-data records back to back

    @classmethod
    def build(cls, rng: random.Random) -> Pools:
        binary = rng.randbytes(BINARY_POOL_BYTES)
        records = bytearray()
        cipher = rng.randbytes(TLS_RECORD_BODY * 64)
        for i in range(TLS_POOL_RECORDS):
            start = (i * 997) % (len(cipher) - TLS_RECORD_BODY)
            records += TLS_FULL_HEADER
            records += cipher[start : start + TLS_RECORD_BODY]
        lines: list[str] = ["record_id,site,department,quantity,note\n"]
        size = len(lines[0])
        i = 0
        while size < TEXT_POOL_BYTES:
            i += 1
            line = (
                f"{i},{rng.choice(WORDS)}-{rng.randrange(100)},{rng.choice(WORDS)},"
                f"{rng.randrange(1, 500)},{rng.choice(WORDS)} {rng.choice(WORDS)}\n"
            )
            lines.append(line)
            size += len(line)
        return cls(binary=binary, text="".join(lines).encode(), tls=bytes(records))

    def slice(self, text: bool, size: int, rng: random.Random) -> memoryview:
        pool = self.text if text else self.binary
        start = rng.randrange(0, len(pool) - size + 1)
        return memoryview(pool)[start : start + size]


@dataclass(slots=True)
class Hosts:
    """Internal clients, external servers and per-client ephemeral port counters."""

    clients: list[bytes]
    tcp_servers: list[bytes]
    resolvers: list[bytes]
    next_port: list[int]

    @classmethod
    def build(cls, rng: random.Random, n_clients: int = 600, n_servers: int = 48) -> Hosts:
        picked: set[tuple[int, int]] = set()
        while len(picked) < n_clients:
            picked.add((rng.randrange(0, 256), rng.randrange(1, 255)))
        clients = [bytes((10, 20, a, b)) for a, b in sorted(picked)]
        servers = [
            bytes((198, 51, 100, h)) if i % 2 else bytes((203, 0, 113, h))
            for i, h in enumerate(rng.sample(range(1, 255), n_servers))
        ]
        resolvers = [bytes((198, 51, 100, 53)), bytes((203, 0, 113, 53))]
        ports = [32768 + rng.randrange(20000) for _ in clients]
        return cls(clients, servers, resolvers, ports)

    def client(self, rng: random.Random) -> tuple[bytes, int]:
        i = rng.randrange(len(self.clients))
        port = self.next_port[i]
        self.next_port[i] = port + 1 if port < 60999 else 32768
        return self.clients[i], port


def client_mac(ip: bytes) -> bytes:
    return b"\x02\x00" + ip


class TcpFlow:
    """Emits a planned TCP conversation frame by frame, keeping seq/ack numbers consistent."""

    __slots__ = (
        "c_ip",
        "c_ipid",
        "c_mac",
        "c_next",
        "c_port",
        "plan",
        "pos",
        "s_ip",
        "s_ipid",
        "s_next",
        "s_port",
    )

    def __init__(
        self,
        plan: list[Step],
        c_ip: bytes,
        c_port: int,
        s_ip: bytes,
        s_port: int,
        rng: random.Random,
    ) -> None:
        self.plan = plan
        self.pos = 0
        self.c_ip, self.c_port, self.s_ip, self.s_port = c_ip, c_port, s_ip, s_port
        self.c_mac = client_mac(c_ip)
        self.c_next = rng.getrandbits(32)
        self.s_next = rng.getrandbits(32)
        self.c_ipid = rng.getrandbits(16)
        self.s_ipid = rng.getrandbits(16)

    def emit(self) -> tuple[bytes, Payload]:
        from_client, flags, payload = self.plan[self.pos]
        self.pos += 1
        n = len(payload)
        step = n + 1 if flags & (SYN | FIN) else n
        if from_client:
            seq, ack = self.c_next, self.s_next
            self.c_next = (seq + step) & 0xFFFFFFFF
            ipid = self.c_ipid
            self.c_ipid = (ipid + 1) & 0xFFFF
            dst_mac, src_mac, ttl = GATEWAY_MAC, self.c_mac, 64
            src_ip, dst_ip, sport, dport = self.c_ip, self.s_ip, self.c_port, self.s_port
        else:
            seq, ack = self.s_next, self.c_next
            self.s_next = (seq + step) & 0xFFFFFFFF
            ipid = self.s_ipid
            self.s_ipid = (ipid + 1) & 0xFFFF
            dst_mac, src_mac, ttl = self.c_mac, GATEWAY_MAC, 52
            src_ip, dst_ip, sport, dport = self.s_ip, self.c_ip, self.s_port, self.c_port
        if not flags & ACK:
            ack = 0
        if flags & SYN:
            header = ETH_IP_TCP.pack(
                dst_mac, src_mac, ETHERTYPE_IPV4,
                0x45, 0, 48 + n, ipid, IP_DF, ttl, 6, 0, src_ip, dst_ip,
                sport, dport, seq, ack, TCP_DOFF_SYN, flags, WINDOW_SYN, 0, 0,
            )  # fmt: skip
            return header + SYN_OPTIONS, payload
        header = ETH_IP_TCP.pack(
            dst_mac, src_mac, ETHERTYPE_IPV4,
            0x45, 0, 40 + n, ipid, IP_DF, ttl, 6, 0, src_ip, dst_ip,
            sport, dport, seq, ack, TCP_DOFF_PLAIN, flags, WINDOW, 0, 0,
        )  # fmt: skip
        return header, payload


class UdpFlow:
    """Emits a planned UDP exchange (DNS query and response)."""

    __slots__ = ("c_ip", "c_mac", "c_port", "ipid", "plan", "pos", "s_ip", "s_port")

    def __init__(
        self,
        plan: list[Step],
        c_ip: bytes,
        c_port: int,
        s_ip: bytes,
        s_port: int,
        rng: random.Random,
    ) -> None:
        self.plan = plan
        self.pos = 0
        self.c_ip, self.c_port, self.s_ip, self.s_port = c_ip, c_port, s_ip, s_port
        self.c_mac = client_mac(c_ip)
        self.ipid = rng.getrandbits(16)

    def emit(self) -> tuple[bytes, Payload]:
        from_client, _flags, payload = self.plan[self.pos]
        self.pos += 1
        n = len(payload)
        if from_client:
            macs = (GATEWAY_MAC, self.c_mac)
            src_ip, dst_ip, sport, dport, ttl = self.c_ip, self.s_ip, self.c_port, self.s_port, 64
        else:
            macs = (self.c_mac, GATEWAY_MAC)
            src_ip, dst_ip, sport, dport, ttl = self.s_ip, self.c_ip, self.s_port, self.c_port, 52
        self.ipid = (self.ipid + 1) & 0xFFFF
        header = ETH_IP_UDP.pack(
            macs[0], macs[1], ETHERTYPE_IPV4,
            0x45, 0, 28 + n, self.ipid, IP_DF, ttl, 17, 0, src_ip, dst_ip,
            sport, dport, 8 + n, 0,
        )  # fmt: skip
        return header, payload


Flow = TcpFlow | UdpFlow


def segment(parts: Sequence[Payload], mss: int = MSS) -> list[Payload]:
    """Cut a byte stream given as parts into MSS-sized segments, copying only at part joins."""
    out: list[Payload] = []
    pending: list[Payload] = []
    pending_len = 0
    for part in parts:
        view = memoryview(part)
        off, end = 0, len(view)
        while off < end:
            take = min(mss - pending_len, end - off)
            piece = view[off : off + take]
            off += take
            if pending_len == 0 and take == mss:
                out.append(piece)
                continue
            pending.append(piece)
            pending_len += take
            if pending_len == mss:
                out.append(b"".join(pending))
                pending, pending_len = [], 0
    if pending:
        out.append(b"".join(pending))
    return out


class TcpScript:
    """Builds the step list of one TCP conversation; seq/ack are filled in by `TcpFlow`."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def handshake(self) -> None:
        self.steps += [(True, SYN, b""), (False, SYN | ACK, b""), (True, ACK, b"")]

    def send(self, from_client: bool, segments: Sequence[Payload], ack_tail: bool = False) -> None:
        """Send segments; the receiver answers with a pure ACK every second segment."""
        steps = self.steps
        last = len(segments)
        for i, seg in enumerate(segments, 1):
            steps.append((from_client, PSH | ACK if i == last else ACK, seg))
            if i % 2 == 0:
                steps.append((not from_client, ACK, b""))
        if ack_tail and last % 2:
            steps.append((not from_client, ACK, b""))

    def message(self, from_client: bool, parts: Sequence[Payload], ack_tail: bool = False) -> None:
        self.send(from_client, segment(parts), ack_tail)

    def close(self, from_client: bool = True) -> None:
        self.steps += [
            (from_client, FIN | ACK, b""),
            (not from_client, FIN | ACK, b""),
            (from_client, ACK, b""),
        ]


@dataclass(slots=True)
class Planned:
    """One planned flow with the facts the summary reports about it."""

    category: str
    flow: Flow
    http_bodies: list[int] = field(default_factory=list)
    http_upload_bodies: int = 0
    http_chunked: int = 0
    smtp_messages: int = 0
    smtp_attachments: int = 0
    containers: int = 0  # ZIP/gzip documents written (HTTP bodies, parts, attachments)


@dataclass(slots=True)
class Context:
    rng: random.Random
    pools: Pools
    hosts: Hosts
    objects: ObjectPools | None = None  # the "objects" mix only


def log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


# -- TLS ---------------------------------------------------------------------------------------


def tls_client_hello(rng: random.Random, sni: str) -> bytes:
    """A structurally valid TLS 1.3 ClientHello (RFC 8446 4.1.2) in a 0x16 0x03 0x01 record."""
    host = sni.encode()
    ciphers = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    alpn = b"\x02h2\x08http/1.1"
    extensions = b"".join(
        (
            struct.pack("!HHHBH", 0x0000, len(host) + 5, len(host) + 3, 0, len(host)) + host,
            struct.pack("!HHH3H", 0x000A, 8, 6, 0x001D, 0x0017, 0x0018),
            b"\x00\x0b\x00\x02\x01\x00",
            struct.pack(
                f"!HHH{len(sigalgs)}H", 0x000D, 2 + 2 * len(sigalgs), 2 * len(sigalgs), *sigalgs
            ),
            struct.pack("!HHH", 0x0010, len(alpn) + 2, len(alpn)) + alpn,
            b"\x00\x2b\x00\x05\x04\x03\x04\x03\x03",
            b"\x00\x2d\x00\x02\x01\x01",
            struct.pack("!HHHHH", 0x0033, 38, 36, 0x001D, 32) + rng.randbytes(32),
        )
    )
    body = b"".join(
        (
            b"\x03\x03",
            rng.randbytes(32),
            b"\x20",
            rng.randbytes(32),
            struct.pack(f"!H{len(ciphers)}H", 2 * len(ciphers), *ciphers),
            b"\x01\x00",
            struct.pack("!H", len(extensions)),
            extensions,
        )
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def tls_server_flight(rng: random.Random, session_id: bytes) -> bytes:
    """ServerHello (TLS 1.3 via supported_versions), ChangeCipherSpec, encrypted handshake."""
    extensions = (
        b"\x00\x2b\x00\x02\x03\x04" + b"\x00\x33\x00\x24\x00\x1d\x00\x20" + rng.randbytes(32)
    )
    body = b"".join(
        (
            b"\x03\x03",
            rng.randbytes(32),
            b"\x20",
            session_id,
            b"\x13\x01\x00",
            struct.pack("!H", len(extensions)),
            extensions,
        )
    )
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    encrypted = rng.randbytes(rng.randrange(2400, 4200))
    return b"".join(
        (
            b"\x16\x03\x03" + struct.pack("!H", len(handshake)) + handshake,
            b"\x14\x03\x03\x00\x01\x01",
            b"\x17\x03\x03" + struct.pack("!H", len(encrypted)) + encrypted,
        )
    )


def tls_record(rng: random.Random, size: int, content_type: int = 0x17) -> bytes:
    return bytes((content_type, 3, 3)) + struct.pack("!H", size) + rng.randbytes(size)


def tls_bulk(pools: Pools, rng: random.Random, total: int) -> list[Payload]:
    """Application data as one record per segment: full 1448-byte segments from the pool."""
    full, rest = divmod(total, MSS)
    view = memoryview(pools.tls)
    first = rng.randrange(TLS_POOL_RECORDS)
    out: list[Payload] = []
    for i in range(full):
        start = ((first + i) % TLS_POOL_RECORDS) * MSS
        out.append(view[start : start + MSS])
    if rest or not out:
        out.append(tls_record(rng, max(rest - 5, 24)))
    return out


def plan_tls(ctx: Context, scale: float) -> Planned | None:
    rng = ctx.rng
    upload = rng.random() < 0.8
    total = int(log_uniform(rng, 4 * 1024, 16 * 1024 * 1024) * scale)
    if total < 4 * 1024:
        return None
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    hello = tls_client_hello(rng, rng.choice(TLS_HOSTS))
    script = TcpScript()
    script.handshake()
    script.message(True, [hello])
    script.message(False, [tls_server_flight(rng, hello[44:76])])
    script.message(True, [b"\x14\x03\x03\x00\x01\x01", tls_record(rng, 53)])
    if upload:
        script.send(True, tls_bulk(ctx.pools, rng, total), ack_tail=True)
        script.message(False, [tls_record(rng, rng.randrange(80, 600))])
    else:
        script.message(True, [tls_record(rng, rng.randrange(200, 700))])
        script.send(False, tls_bulk(ctx.pools, rng, total), ack_tail=True)
    script.message(True, [tls_record(rng, 19, content_type=0x15)])
    script.close(from_client=True)
    return Planned("tls", TcpFlow(script.steps, c_ip, c_port, s_ip, 443, rng))


# -- HTTP --------------------------------------------------------------------------------------


def chunked(body: memoryview, rng: random.Random) -> list[Payload]:
    """RFC 9112 7.1 chunked coding with varied chunk sizes and an empty trailer section."""
    parts: list[Payload] = []
    off = 0
    while off < len(body):
        size = min(rng.choice((4096, 8192, 16384, 32768)), len(body) - off)
        parts += [b"%x\r\n" % size, body[off : off + size], b"\r\n"]
        off += size
    parts.append(b"0\r\n\r\n")
    return parts


def plan_http(ctx: Context, scale: float) -> Planned | None:
    rng, pools = ctx.rng, ctx.pools
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    port = 8080 if rng.random() < 0.3 else 80
    host = rng.choice(HTTP_HOSTS)
    authority = host if port == 80 else f"{host}:{port}"
    planned = Planned("http", TcpFlow([], c_ip, c_port, s_ip, port, rng))
    script = TcpScript()
    script.handshake()
    n_requests = rng.choice((2, 2, 3)) if scale > 0.2 else 1
    for i in range(n_requests):
        size = max(HTTP_BODY_MIN, int(log_uniform(rng, HTTP_BODY_MIN, HTTP_BODY_MAX) * scale))
        roll = rng.random()
        text = rng.random() < 0.3
        use_chunked = rng.random() < 0.08
        name = f"{rng.choice(WORDS)}-{rng.randrange(10**6):06d}-{i}"
        content_type = b"text/csv" if text else b"application/octet-stream"
        head = [b"Host: " + authority.encode(), b"User-Agent: sluice-bench/1 (+example)"]
        if roll < 0.7:  # upload
            body = pools.slice(text, size, rng)
            if roll < 0.25:
                boundary = b"----sluicebench%08x" % rng.getrandbits(32)
                filename = name.encode() + (b".csv" if text else b".bin")
                preamble = (
                    b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                    b'filename="' + filename + b'"\r\nContent-Type: ' + content_type + b"\r\n\r\n"
                )
                epilogue = b"\r\n--" + boundary + b"--\r\n"
                body_parts: list[Payload] = [preamble, body, epilogue]
                body_len = len(preamble) + len(body) + len(epilogue)
                content_type = b"multipart/form-data; boundary=" + boundary
                target = b"/upload"
            else:
                body_parts, body_len = [body], len(body)
                target = b"/api/v1/objects/" + name.encode()
            if use_chunked:
                joined = memoryview(b"".join(body_parts))
                body_parts = chunked(joined, rng)
                framing = b"Transfer-Encoding: chunked"
                planned.http_chunked += 1
            else:
                framing = b"Content-Length: %d" % body_len
            head += [b"Content-Type: " + content_type, framing]
            request = b"POST " + target + b" HTTP/1.1\r\n" + b"\r\n".join(head) + b"\r\n\r\n"
            script.message(True, [request, *body_parts], ack_tail=False)
            planned.http_bodies.append(body_len)
            planned.http_upload_bodies += 1
            response = (
                b"HTTP/1.1 201 Created\r\nServer: nginx\r\nLocation: /api/v1/objects/"
                + name.encode()
                + b"\r\nContent-Length: 0\r\n\r\n"
            )
            script.message(False, [response])
        else:  # download
            target = b"/downloads/" + name.encode() + (b".csv" if text else b".bin")
            request = b"GET " + target + b" HTTP/1.1\r\n" + b"\r\n".join(head) + b"\r\n\r\n"
            script.message(True, [request])
            body = pools.slice(text, size, rng)
            if use_chunked:
                framing = b"Transfer-Encoding: chunked"
                body_parts = chunked(body, rng)
                planned.http_chunked += 1
            else:
                framing = b"Content-Length: %d" % size
                body_parts = [body]
            response = (
                b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: " + content_type + b"\r\n"
                + framing + b"\r\n\r\n"
            )  # fmt: skip
            script.message(False, [response, *body_parts], ack_tail=True)
            planned.http_bodies.append(size)
    script.close(from_client=True)
    planned.flow.plan = script.steps
    return planned


# -- DNS ---------------------------------------------------------------------------------------


def dns_name(name: str) -> bytes:
    return b"".join(bytes((len(label),)) + label.encode() for label in name.split(".")) + b"\x00"


def plan_dns(ctx: Context, scale: float, answered: bool = True) -> Planned:
    """A query and its response (RFC 1035 4.1), A or AAAA, answer name compressed to 0xc00c."""
    rng = ctx.rng
    c_ip, c_port = ctx.hosts.client(rng)
    name = rng.choice(DNS_NAMES)
    if rng.random() < 0.4:
        name = f"{rng.choice(WORDS)}{rng.randrange(100)}.{name}"
    qtype = 28 if rng.random() < 0.3 else 1
    txid = rng.getrandbits(16)
    question = dns_name(name) + struct.pack("!HH", qtype, 1)
    query = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + question
    steps: list[Step] = [(True, 0, query)]
    if answered:
        if qtype == 1:
            rdata = bytes((203, 0, 113, rng.randrange(1, 255)))
        else:
            rdata = b"\x20\x01\x0d\xb8" + bytes(10) + struct.pack("!H", rng.randrange(1, 65535))
        answer = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(rdata)) + rdata
        response = struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + question + answer
        steps.append((False, 0, response))
    s_ip = rng.choice(ctx.hosts.resolvers)
    return Planned("dns", UdpFlow(steps, c_ip, c_port, s_ip, 53, rng))


# -- SSH and SMTP ------------------------------------------------------------------------------


def plan_ssh(ctx: Context, scale: float) -> Planned | None:
    """Banner exchange (RFC 4253 4.2), then opaque bytes standing in for the encrypted session."""
    rng, pools = ctx.rng, ctx.pools
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    script = TcpScript()
    script.handshake()
    script.message(False, [b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"])
    script.message(True, [b"SSH-2.0-OpenSSH_9.6\r\n"])
    for _ in range(rng.randrange(2, 5)):  # key exchange and auth round trips
        script.message(True, [pools.slice(False, rng.randrange(40, 1600), rng)])
        script.message(False, [pools.slice(False, rng.randrange(40, 1600), rng)])
    total = max(1024, int(log_uniform(rng, 2 * 1024, 2 * 1024 * 1024) * scale))
    script.message(True, [pools.slice(False, total, rng)], ack_tail=True)
    script.message(False, [pools.slice(False, 52, rng)])
    script.close(from_client=True)
    return Planned("other", TcpFlow(script.steps, c_ip, c_port, s_ip, 22, rng))


def plan_smtp(ctx: Context, scale: float) -> Planned | None:
    """A short ESMTP session (RFC 5321 3.3) delivering one message, sometimes with a PDF."""
    rng, pools = ctx.rng, ctx.pools
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    sender = f"{rng.choice(WORDS)}@corp.example"
    rcpt = f"{rng.choice(WORDS)}@example.org"
    boundary = f"=_sluicebench_{rng.getrandbits(32):08x}"
    lines = [
        f"From: <{sender}>",
        f"To: <{rcpt}>",
        f"Subject: weekly {rng.choice(WORDS)} report",
        "Date: Mon, 05 Jan 2026 08:00:00 +0000",
        f"Message-ID: <{rng.getrandbits(64):016x}@corp.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Hello, please find the report attached.",
    ]
    if rng.random() < 0.6:
        attachment = bytes(pools.slice(False, rng.randrange(2048, 48 * 1024), rng))
        encoded = base64.encodebytes(b"%PDF-1.7\n" + attachment).decode().rstrip("\n")
        lines += [
            f"--{boundary}",
            'Content-Type: application/pdf; name="report.pdf"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="report.pdf"',
            "",
            *encoded.split("\n"),
        ]
    lines += [f"--{boundary}--", "."]
    message = ("\r\n".join(lines) + "\r\n").encode()
    script = TcpScript()
    script.handshake()
    exchanges: list[tuple[bytes, bytes]] = [
        (b"", b"220 mx.example.net ESMTP Postfix (Debian/GNU)\r\n"),
        (
            b"EHLO ws.corp.example\r\n",
            b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
            b"250 SMTPUTF8\r\n",
        ),
        (f"MAIL FROM:<{sender}>\r\n".encode(), b"250 2.1.0 Ok\r\n"),
        (f"RCPT TO:<{rcpt}>\r\n".encode(), b"250 2.1.5 Ok\r\n"),
        (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (message, b"250 2.0.0 Ok: queued as %X\r\n" % rng.getrandbits(40)),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ]
    for command, reply in exchanges:
        if command:
            script.message(True, [command])
        script.message(False, [reply])
    script.close(from_client=False)
    return Planned("other", TcpFlow(script.steps, c_ip, c_port, s_ip, 25, rng), smtp_messages=1)


def plan_other(ctx: Context, scale: float) -> Planned | None:
    return plan_ssh(ctx, scale) if ctx.rng.random() < 0.5 else plan_smtp(ctx, scale)


PLANNERS: dict[str, Callable[[Context, float], Planned | None]] = {
    "tls": plan_tls,
    "http": plan_http,
    "dns": plan_dns,
    "other": plan_other,
}


def plan_within(ctx: Context, category: str, budget: int) -> Planned:
    """Plan a flow of `category` with at most `budget` packets, shrinking it or falling back."""
    scale = 1.0
    planner = PLANNERS[category]
    if ctx.objects is not None:
        planner = MIX_PLANNERS["objects"].get(category, planner)
    for _ in range(6):
        planned = planner(ctx, scale)
        if planned is None:
            break
        size = len(planned.flow.plan)
        if size <= budget:
            return planned
        scale *= 0.9 * budget / size
    return plan_dns(ctx, 1.0, answered=budget >= 2)


# -- the "objects" mix -------------------------------------------------------------------------

# kind -> (Content-Type, file extension)
OBJECT_KINDS: dict[str, tuple[bytes, bytes]] = {
    "json": (b"application/json", b".json"),
    "html": (b"text/html; charset=utf-8", b".html"),
    "csv": (b"text/csv", b".csv"),
    "txt": (b"text/plain; charset=utf-8", b".txt"),
    "png": (b"image/png", b".png"),
    "jpeg": (b"image/jpeg", b".jpg"),
    "pdf": (b"application/pdf", b".pdf"),
    "form": (b"application/x-www-form-urlencoded", b""),
    "zip": (b"application/zip", b".zip"),
    "gzip": (b"application/gzip", b".csv.gz"),
}


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def doc_json(rng: random.Random, size: int) -> bytes:
    records: list[dict[str, object]] = []
    total = 40
    while total < size:
        record: dict[str, object] = {
            "id": rng.randrange(10**9),
            "name": f"{rng.choice(WORDS)}-{rng.randrange(1000)}",
            "site": rng.choice(WORDS),
            "quantity": rng.randrange(1, 500),
            "active": rng.random() < 0.5,
            "tags": [rng.choice(WORDS) for _ in range(rng.randrange(0, 4))],
        }
        records.append(record)
        total += 110
    return json.dumps({"status": "ok", "count": len(records), "items": records}).encode()


def doc_html(rng: random.Random, size: int) -> bytes:
    title = _words(rng, 3)
    head = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
    )
    parts = [head]
    total = len(head)
    while total < size:
        para = f"<p>{_words(rng, rng.randrange(8, 40))}</p>\n"
        parts.append(para)
        total += len(para)
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode()


def doc_csv(rng: random.Random, size: int, text: bytes) -> bytes:
    """A header line and whole lines cut from the text pool."""
    header_end = text.index(b"\n") + 1
    start = text.index(b"\n", rng.randrange(header_end, len(text) - size - 1)) + 1
    end = text.index(b"\n", start + max(size - header_end, 1)) + 1
    return text[:header_end] + text[start:end]


def doc_txt(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        line = _words(rng, rng.randrange(5, 14)).capitalize() + ".\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def doc_form(rng: random.Random, size: int) -> bytes:
    fields = [f"user={rng.choice(WORDS)}{rng.randrange(100)}", f"site={rng.choice(WORDS)}"]
    total = 40
    while total < size:
        fields.append(f"{rng.choice(WORDS)}={'+'.join(rng.choice(WORDS) for _ in range(6))}")
        total += len(fields[-1]) + 1
    return "&".join(fields).encode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))


def doc_png(rng: random.Random, size: int) -> bytes:
    """A valid 8-bit RGB PNG (PNG spec 11.2): noisy pixels, so it stays about `size` bytes."""
    width = rng.randrange(8, 64)
    height = max(1, size // (3 * width + 1))
    raw = b"".join(b"\x00" + rng.randbytes(3 * width) for _ in range(height))
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            _png_chunk(b"tEXt", b"Software\x00sluice-bench"),
            _png_chunk(b"IDAT", zlib.compress(raw, 6)),
            _png_chunk(b"IEND", b""),
        )
    )


# The standard DC luminance Huffman table (ITU T.81 Annex K.3): 16 code counts, 12 symbols.
JPEG_DHT = (
    b"\xff\xc4\x00\x1f\x00"
    + bytes((0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0))
    + bytes(range(12))
)


def doc_jpeg(rng: random.Random, size: int) -> bytes:
    """Baseline JFIF headers (SOI, APP0, DQT, SOF0, DHT, SOS), then byte-stuffed scan data."""
    width, height = rng.randrange(16, 640), rng.randrange(16, 480)
    scan = rng.randbytes(max(size - 200, 64)).replace(b"\xff", b"\xff\x00")
    return b"".join(
        (
            b"\xff\xd8",
            b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
            b"\xff\xdb\x00\x43\x00" + bytes(rng.randrange(1, 100) for _ in range(64)),
            b"\xff\xc0\x00\x11\x08" + struct.pack("!HH", height, width),
            b"\x03\x01\x22\x00\x02\x11\x00\x03\x11\x00",
            JPEG_DHT,
            b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00",
            scan,
            b"\xff\xd9",
        )
    )


def doc_pdf(rng: random.Random, size: int) -> bytes:
    """A one-page PDF 1.4 with an uncompressed text stream and a correct xref table."""
    lines = [b"BT /F1 11 Tf 72 760 Td 14 TL"]
    total = 400
    while total < size:
        line = b"(" + _words(rng, 9).encode() + b") '"
        lines.append(line)
        total += len(line) + 1
    lines.append(b"ET")
    stream = b"\n".join(lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ObjectPools:
    """Complete small documents of each kind in OBJECT_KINDS, built once per run."""

    docs: dict[str, tuple[bytes, ...]]

    @classmethod
    def build(cls, rng: random.Random, text: bytes) -> ObjectPools:
        def sizes(high: int = OBJECT_BODY_MAX) -> list[int]:
            return [log_uniform(rng, OBJECT_BODY_MIN, high) for _ in range(OBJECT_POOL_DOCS)]

        docs: dict[str, tuple[bytes, ...]] = {
            "json": tuple(doc_json(rng, n) for n in sizes()),
            "html": tuple(doc_html(rng, n) for n in sizes()),
            "csv": tuple(doc_csv(rng, n, text) for n in sizes()),
            "txt": tuple(doc_txt(rng, n) for n in sizes()),
            "png": tuple(doc_png(rng, n) for n in sizes()),
            "jpeg": tuple(doc_jpeg(rng, n) for n in sizes()),
            "pdf": tuple(doc_pdf(rng, n) for n in sizes()),
            "form": tuple(doc_form(rng, n) for n in sizes(4096)),
        }
        docs["gzip"] = tuple(
            gzip.compress(doc_csv(rng, n * 4, text), compresslevel=6, mtime=0)
            for n in sizes(OBJECT_CONTAINER_MAX)
        )
        zips: list[bytes] = []
        for n in sizes(OBJECT_CONTAINER_MAX):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as archive:
                for j in range(rng.randrange(1, 5)):
                    kind = rng.choice(("csv", "json", "txt", "png"))
                    info = zipfile.ZipInfo(
                        f"{rng.choice(WORDS)}-{j}{OBJECT_KINDS[kind][1].decode()}", ZIP_DATE
                    )
                    info.compress_type = (
                        zipfile.ZIP_STORED if kind == "png" else zipfile.ZIP_DEFLATED
                    )
                    member = rng.choice(docs[kind])
                    archive.writestr(info, member[: n * 3] if kind != "png" else member)
            zips.append(buf.getvalue())
        docs["zip"] = tuple(zips)
        return cls(docs)

    def pick(self, kind: str, rng: random.Random) -> bytes:
        pool = self.docs[kind]
        return pool[rng.randrange(len(pool))]


# What a keep-alive connection of the objects mix does per request: (cumulative share, action).
OBJECT_ACTIONS: tuple[tuple[float, str], ...] = (
    (0.28, "get-json"),
    (0.42, "get-html"),
    (0.56, "get-image"),
    (0.72, "post-json"),
    (0.77, "post-form"),
    (0.81, "post-csv"),
    (0.91, "multipart"),
    (1.00, "container"),
)


def _action(roll: float) -> str:
    for share, action in OBJECT_ACTIONS:
        if roll < share:
            return action
    return OBJECT_ACTIONS[-1][1]


def plan_http_objects(ctx: Context, scale: float) -> Planned | None:
    """One HTTP/1.1 keep-alive connection with many small bodies in both directions."""
    rng = ctx.rng
    objects = ctx.objects
    assert objects is not None
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    port = 8080 if rng.random() < 0.3 else 80
    host = rng.choice(HTTP_HOSTS)
    authority = (host if port == 80 else f"{host}:{port}").encode()
    planned = Planned("http", TcpFlow([], c_ip, c_port, s_ip, port, rng))
    script = TcpScript()
    script.handshake()
    n_requests = max(1, int(rng.randint(OBJECT_REQUESTS_MIN, OBJECT_REQUESTS_MAX) * scale))
    head = b"Host: " + authority + b"\r\nUser-Agent: sluice-bench/1 (+example)\r\n"

    def respond(status: bytes, kind: str | None) -> None:
        if kind is None:
            script.message(False, [b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n"])
            return
        body = objects.pick(kind, rng)
        ctype = OBJECT_KINDS[kind][0]
        planned.http_bodies.append(len(body))
        if rng.random() < 0.05:
            parts = chunked(memoryview(body), rng)
            framing = b"Transfer-Encoding: chunked"
            planned.http_chunked += 1
        else:
            parts, framing = [body], b"Content-Length: %d" % len(body)
        response = b"HTTP/1.1 " + status + b"\r\nServer: nginx\r\nContent-Type: " + ctype
        script.message(False, [response + b"\r\n" + framing + b"\r\n\r\n", *parts], True)

    def post(target: bytes, ctype: bytes, body_parts: list[Payload], length: int) -> None:
        request = (
            b"POST " + target + b" HTTP/1.1\r\n" + head + b"Content-Type: " + ctype
            + b"\r\nContent-Length: %d\r\n\r\n" % length
        )  # fmt: skip
        script.message(True, [request, *body_parts])
        planned.http_bodies.append(length)
        planned.http_upload_bodies += 1

    for i in range(n_requests):
        action = _action(rng.random())
        name = f"{rng.choice(WORDS)}-{rng.randrange(10**6):06d}-{i}".encode()
        if action.startswith("get-"):
            if action == "get-json":
                kind, target = "json", b"/api/v2/" + name
            elif action == "get-html":
                kind, target = "html", b"/pages/" + name + b".html"
            else:
                kind = "png" if rng.random() < 0.5 else "jpeg"
                target = b"/static/img/" + name + OBJECT_KINDS[kind][1]
            script.message(True, [b"GET " + target + b" HTTP/1.1\r\n" + head + b"\r\n"])
            respond(b"200 OK", kind)
        elif action in ("post-json", "post-form", "post-csv"):
            kind = action[5:]
            body = objects.pick(kind, rng)
            post(b"/api/v2/" + name, OBJECT_KINDS[kind][0], [body], len(body))
            respond(b"200 OK", "json" if action != "post-csv" else None)
        elif action == "multipart":
            boundary = b"----sluicebench%08x" % rng.getrandbits(32)
            parts: list[Payload] = [
                b"--" + boundary + b'\r\nContent-Disposition: form-data; name="comment"\r\n\r\n'
                + _words(rng, 6).encode() + b"\r\n"
            ]  # fmt: skip
            for j in range(rng.randint(1, 2)):
                kind = rng.choice(("csv", "png", "jpeg", "txt", "pdf", "zip"))
                planned.containers += kind == "zip"
                ctype, ext = OBJECT_KINDS[kind]
                parts += [
                    b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file%d"; '
                    b'filename="' % j + name + ext + b'"\r\nContent-Type: ' + ctype + b"\r\n\r\n",
                    objects.pick(kind, rng),
                    b"\r\n",
                ]  # fmt: skip
            parts.append(b"--" + boundary + b"--\r\n")
            length = sum(len(p) for p in parts)
            post(b"/upload", b"multipart/form-data; boundary=" + boundary, parts, length)
            respond(b"201 Created", "json")
        else:  # a small ZIP or gzip file uploaded as the raw body
            kind = "zip" if rng.random() < 0.6 else "gzip"
            planned.containers += 1
            body = objects.pick(kind, rng)
            target = b"/api/v2/files/" + name + OBJECT_KINDS[kind][1]
            post(target, OBJECT_KINDS[kind][0], [body], len(body))
            respond(b"201 Created", None)
    script.close(from_client=True)
    planned.flow.plan = script.steps
    return planned


def plan_smtp_objects(ctx: Context, scale: float) -> Planned | None:
    """An ESMTP session (RFC 5321 3.3) delivering one mail with 1-3 small base64 attachments."""
    rng = ctx.rng
    objects = ctx.objects
    assert objects is not None
    boundary = f"=_sluicebench_{rng.getrandbits(32):08x}"
    sender = f"{rng.choice(WORDS)}@corp.example"
    rcpt = f"{rng.choice(WORDS)}@example.org"
    lines = [
        f"From: <{sender}>",
        f"To: <{rcpt}>",
        f"Subject: {_words(rng, 3)}",
        "Date: Mon, 05 Jan 2026 08:00:00 +0000",
        f"Message-ID: <{rng.getrandbits(64):016x}@corp.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        _words(rng, 12).capitalize() + ".",
    ]
    attachments = rng.randint(1, 3)
    containers = 0
    for j in range(attachments):
        kind = rng.choice(("zip", "zip", "csv", "pdf", "png", "jpeg", "txt", "gzip"))
        containers += kind in ("zip", "gzip")
        ctype, ext = OBJECT_KINDS[kind]
        filename = f"{rng.choice(WORDS)}-{j}{ext.decode()}"
        encoded = base64.encodebytes(objects.pick(kind, rng)).decode().rstrip("\n")
        lines += [
            f"--{boundary}",
            f'Content-Type: {ctype.decode()}; name="{filename}"',
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{filename}"',
            "",
            *encoded.split("\n"),
        ]
    lines += [f"--{boundary}--", "."]
    planned = plan_smtp_message(ctx, ("\r\n".join(lines) + "\r\n").encode(), sender, rcpt)
    planned.smtp_attachments = attachments
    planned.containers = containers
    return planned


def plan_smtp_message(ctx: Context, message: bytes, sender: str, rcpt: str) -> Planned:
    """The SMTP conversation around one message (DATA ends with the message's own dot line)."""
    rng = ctx.rng
    c_ip, c_port = ctx.hosts.client(rng)
    s_ip = rng.choice(ctx.hosts.tcp_servers)
    script = TcpScript()
    script.handshake()
    exchanges: list[tuple[bytes, bytes]] = [
        (b"", b"220 mx.example.net ESMTP Postfix (Debian/GNU)\r\n"),
        (b"EHLO ws.corp.example\r\n", b"250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        (f"MAIL FROM:<{sender}>\r\n".encode(), b"250 2.1.0 Ok\r\n"),
        (f"RCPT TO:<{rcpt}>\r\n".encode(), b"250 2.1.5 Ok\r\n"),
        (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (message, b"250 2.0.0 Ok: queued as %X\r\n" % rng.getrandbits(40)),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ]
    for command, reply in exchanges:
        if command:
            script.message(True, [command])
        script.message(False, [reply])
    script.close(from_client=False)
    return Planned("other", TcpFlow(script.steps, c_ip, c_port, s_ip, 25, rng), smtp_messages=1)


MIX_PLANNERS: dict[str, dict[str, Callable[[Context, float], Planned | None]]] = {
    "objects": {"http": plan_http_objects, "other": plan_smtp_objects},
}


# -- writer ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Summary:
    packets: int = 0
    captured_bytes: int = 0
    file_bytes: int = 0
    seconds: float = 0.0
    flows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MIX, 0))
    packets_by_category: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MIX, 0))
    http_bodies: int = 0
    http_body_bytes: int = 0
    http_upload_bodies: int = 0
    http_chunked_bodies: int = 0
    smtp_messages: int = 0
    smtp_attachments: int = 0
    containers: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0

    def add(self, planned: Planned) -> None:
        self.smtp_attachments += planned.smtp_attachments
        self.containers += planned.containers
        self.flows[planned.category] += 1
        self.packets_by_category[planned.category] += len(planned.flow.plan)
        self.http_bodies += len(planned.http_bodies)
        self.http_body_bytes += sum(planned.http_bodies)
        self.http_upload_bodies += planned.http_upload_bodies
        self.http_chunked_bodies += planned.http_chunked
        self.smtp_messages += planned.smtp_messages


def next_category(committed: dict[str, int], total: int, mix: dict[str, float]) -> str:
    return max(mix, key=lambda c: mix[c] * (total + 1) - committed[c])


def generate(out_path: Path, packets: int, seed: int, mix: str = "egress") -> Summary:
    shares = MIXES[mix]
    rng = random.Random(seed)
    ctx = Context(rng=rng, pools=Pools.build(rng), hosts=Hosts.build(rng))
    jitter = [rng.randrange(4, 37) for _ in range(1024)]  # mean ~20 us between packets
    if mix == "objects":  # built after the shared draws, so the other mixes stay byte-identical
        ctx.objects = ObjectPools.build(rng, ctx.pools.text)
    summary = Summary()
    committed = dict.fromkeys(MIX, 0)
    planned_total = 0
    active: list[Flow] = []
    ts_us = START_EPOCH * 1_000_000
    emitted = captured = 0
    randrange = rng.randrange
    pack_record = PCAP_RECORD.pack
    started = time.perf_counter()
    with open(out_path, "wb") as f:
        f.write(PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        buf = bytearray()
        while True:
            while len(active) < CONCURRENT_FLOWS and planned_total < packets:
                category = next_category(committed, planned_total, shares)
                planned = plan_within(ctx, category, packets - planned_total)
                summary.add(planned)
                committed[planned.category] += len(planned.flow.plan)
                planned_total += len(planned.flow.plan)
                active.append(planned.flow)
            if not active:
                break
            i = randrange(len(active))
            flow = active[i]
            header, payload = flow.emit()
            if flow.pos == len(flow.plan):
                active[i] = active[-1]
                active.pop()
            length = len(header) + len(payload)
            ts_us += jitter[emitted & 1023]
            buf += pack_record(ts_us // 1_000_000, ts_us % 1_000_000, length, length)
            buf += header
            buf += payload
            emitted += 1
            captured += length
            if len(buf) >= FLUSH_BYTES:
                f.write(buf)
                buf.clear()
        f.write(buf)
    summary.seconds = time.perf_counter() - started
    summary.packets = emitted
    summary.captured_bytes = captured
    summary.file_bytes = out_path.stat().st_size
    summary.first_ts = float(START_EPOCH)
    summary.last_ts = ts_us / 1_000_000
    return summary


def format_summary(s: Summary) -> str:
    mix = ", ".join(
        f"{c} {s.packets_by_category[c] / max(s.packets, 1):.1%}" for c in s.packets_by_category
    )
    flows = ", ".join(f"{c} {n}" for c, n in s.flows.items())
    return "\n".join(
        (
            f"packets        {s.packets:,} ({mix})",
            f"bytes          {s.captured_bytes:,} captured, {s.file_bytes:,} file",
            f"flows          {sum(s.flows.values()):,} ({flows})",
            f"http bodies    {s.http_bodies:,} ({s.http_upload_bodies} uploads, "
            f"{s.http_chunked_bodies} chunked), {s.http_body_bytes:,} bytes",
            f"smtp messages  {s.smtp_messages:,} ({s.smtp_attachments:,} attachments)",
            f"containers     {s.containers:,} ZIP/gzip documents",
            f"capture span   {s.last_ts - s.first_ts:.1f} s of packet time",
            f"generated in   {s.seconds:.1f} s ({s.packets / max(s.seconds, 1e-9):,.0f} packets/s)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, metavar="OUT.pcap")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", choices=sorted(MIXES), default="egress", help="traffic mix")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON")
    args = parser.parse_args(argv)
    if args.packets < 1:
        parser.error("--packets must be at least 1")
    summary = generate(args.out, args.packets, args.seed, args.mix)
    print(format_summary(summary))
    if args.summary_json:
        record = {
            "generator_version": GENERATOR_VERSION,
            "seed": args.seed,
            "mix": args.mix,
            "pcap": str(args.out),
        }
        record.update(asdict(summary))
        args.summary_json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
