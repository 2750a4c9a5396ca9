"""Hand-built TCP conversations for cases no real stack produces on demand.

A `TcpConversation` hands out sequence numbers like a sender would (`segments`), and the case
decides what the capture shows: which segments, in which order, duplicated, overlapping with
other bytes, or missing (`emit`). Timestamps advance a fixed step per packet from a fixed start,
so a regenerated capture is byte-identical. Checksums are computed by scapy (all valid).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, PadN
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from pcaps._lib.netns import CLIENT_MAC, CLIENT_V4, CLIENT_V6, SERVER_MAC, SERVER_V4, SERVER_V6

T0 = 1751364000.0  # 2025-07-01T10:00:00Z
STEP = 0.000250
MOD = 2**32
PEER = {"client": "server", "server": "client"}


@dataclass(frozen=True, slots=True)
class Segment:
    sender: str  # "client" or "server"
    seq: int  # absolute, already modulo 2**32
    payload: bytes
    flags: str = "PA"

    @property
    def end(self) -> int:
        return (self.seq + len(self.payload)) % MOD


class TcpConversation:
    def __init__(
        self,
        *,
        client_port: int = 49152,
        server_port: int = 8080,
        client_isn: int = 0x1A2B3C4D,
        server_isn: int = 0x5E6F7081,
        ipv6: bool = False,
        v6_destopts: bool = False,
        t0: float = T0,
    ) -> None:
        self.addr = {
            "client": (CLIENT_V6 if ipv6 else CLIENT_V4, client_port),
            "server": (SERVER_V6 if ipv6 else SERVER_V4, server_port),
        }
        self.ipv6, self.v6_destopts = ipv6, v6_destopts
        self.next_seq = {"client": client_isn % MOD, "server": server_isn % MOD}
        self.packets: list[tuple[float, Packet]] = []  # (ts, IP packet), in capture order
        self._ts = t0
        self._ip_id = {"client": 0x4000, "server": 0x7000}

    # -- sequence space ------------------------------------------------------------------
    def segments(self, sender: str, data: bytes, sizes: int | list[int] = 1460) -> list[Segment]:
        """Cut `data` into segments (fixed size or a size list, the last takes the rest)."""
        out, pos, i = [], 0, 0
        while pos < len(data):
            if isinstance(sizes, int):
                size = sizes
            else:
                size = sizes[i] if i < len(sizes) else len(data) - pos
            out.append(Segment(sender, self.next_seq[sender], data[pos : pos + size]))
            self.next_seq[sender] = (self.next_seq[sender] + len(out[-1].payload)) % MOD
            pos, i = pos + size, i + 1
        return out

    # -- what the capture shows ----------------------------------------------------------
    def packet(self, sender: str, seq: int, ack: int | None, flags: str, payload: bytes) -> None:
        (src, sport), (dst, dport) = self.addr[sender], self.addr[PEER[sender]]
        tcp = TCP(sport=sport, dport=dport, seq=seq, ack=ack or 0, flags=flags, window=64240)
        if "S" in flags:
            tcp.options = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
        if self.ipv6:
            ip: Packet = IPv6(src=src, dst=dst, hlim=64)
            if self.v6_destopts:
                ip = ip / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        else:
            self._ip_id[sender] += 1
            ip = IP(src=src, dst=dst, ttl=64, id=self._ip_id[sender], flags="DF")
        pkt = ip / tcp / Raw(payload) if payload else ip / tcp
        self.packets.append((round(self._ts, 6), pkt))
        self._ts += STEP

    def emit(self, seg: Segment, ack: int | None = None) -> None:
        """Put one data segment on the wire; by default it ACKs everything the peer sent."""
        peer_next = self.next_seq[PEER[seg.sender]]
        self.packet(seg.sender, seg.seq, peer_next if ack is None else ack, seg.flags, seg.payload)

    def emit_all(self, segs: list[Segment]) -> None:
        for seg in segs:
            self.emit(seg)

    def ack(self, sender: str, ack: int | None = None) -> None:
        """A pure ACK from `sender` (default: everything the peer has sent so far)."""
        peer_next = self.next_seq[PEER[sender]]
        self.packet(sender, self.next_seq[sender], peer_next if ack is None else ack, "A", b"")

    def handshake(self) -> None:
        c_isn, s_isn = self.next_seq["client"], self.next_seq["server"]
        self.packet("client", c_isn, None, "S", b"")
        self.next_seq["client"] = (c_isn + 1) % MOD
        self.packet("server", s_isn, self.next_seq["client"], "SA", b"")
        self.next_seq["server"] = (s_isn + 1) % MOD
        self.ack("client")

    def close(self, first: str = "client") -> None:
        """FIN from `first`, FIN+ACK from the other side, last ACK."""
        for sender in (first, PEER[first]):
            self.packet(sender, self.next_seq[sender], self.next_seq[PEER[sender]], "FA", b"")
            self.next_seq[sender] = (self.next_seq[sender] + 1) % MOD
        self.ack(first)

    # -- output --------------------------------------------------------------------------
    def ether_frames(self) -> list[tuple[float, Packet]]:
        out = []
        for ts, ip in self.packets:
            from_client = ip.src in (CLIENT_V4, CLIENT_V6)
            src, dst = (CLIENT_MAC, SERVER_MAC) if from_client else (SERVER_MAC, CLIENT_MAC)
            out.append((ts, Ether(src=src, dst=dst) / ip))
        return out


def write_ether_pcap(path: Path, frames: list[tuple[float, Packet]]) -> None:
    """Ethernet pcap (microsecond timestamps) from (ts, frame) pairs, in the given order."""
    pkts = []
    for ts, frame in frames:
        frame.time = ts
        pkts.append(frame)
    wrpcap(str(path), pkts, linktype=1)


def write_conversations(path: Path, *convs: TcpConversation) -> None:
    frames = sorted((f for c in convs for f in c.ether_frames()), key=lambda f: f[0])
    write_ether_pcap(path, frames)


def http_request(
    method: str, uri: str, host: str, body: bytes = b"", headers: list[tuple[str, str]] = ()
) -> bytes:
    lines = [f"{method} {uri} HTTP/1.1", f"Host: {host}", "User-Agent: sluice-crafted/1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_response(
    status: int, reason: str, body: bytes, headers: list[tuple[str, str]] = ()
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "Server: sluice-crafted/1"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


HOST = f"{SERVER_V4}:8080"


def upload_exchange(
    body: bytes, uri: str = "/upload", host: str = HOST
) -> tuple[bytes, bytes, bytes]:
    """(request bytes, response bytes, response body) of a text/csv POST answered with JSON."""
    request = http_request("POST", uri, host, body, [("Content-Type", "text/csv")])
    answer = b'{"stored": %d}' % len(body)
    response = http_response(200, "OK", answer, [("Content-Type", "application/json")])
    return request, response, answer


def play(
    conv: TcpConversation, turns: list[tuple[str, bytes]], sizes: int | list[int] = 1460
) -> None:
    """A lock-step dialogue (SMTP-style): each (sender, data) turn goes out in segments of
    `sizes`, then the peer ACKs it before the next turn."""
    for sender, data in turns:
        conv.emit_all(conv.segments(sender, data, sizes))
        conv.ack(PEER[sender])


def case_module(name: str) -> ModuleType:
    """pcaps/<name>/generate.py as a module: crafted cases that share another case's byte
    builders (the SSH ones share ssh-v1's) load them with this."""
    path = Path(__file__).resolve().parents[1] / name / "generate.py"
    spec = importlib.util.spec_from_file_location(f"case_{name.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
