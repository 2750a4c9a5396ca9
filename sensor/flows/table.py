"""Flow table (the flows stage): decoded packets in, (flow, direction) out, and ended flows.

Theory of operation
-------------------
* A flow is a bidirectional 5-tuple (IP protocol, two addresses, two ports) on the packet clock.
  Both orientations of the tuple are keys of one dict pointing at the same `Flow`, so a packet
  costs one dict lookup whichever way it travels.
* Client and server: the sender of a SYN (without ACK) is the client, the sender of a SYN+ACK
  the server. When the handshake was not captured (mid-stream pickup) the port heuristic below
  decides, and a protocol parser that recognises a response coming from the "client" may flip
  the flow later (`Flow.flip`), before any of its events were written.
* Timeouts run on the packet clock: `expire(now)` ends flows idle for longer than their state's
  timeout (new, established, closed after FIN/FIN or RST, UDP, other), and flows older than the
  active timeout get an interim record (NetFlow-style) but live on.
* Memory cap: at `max_flows`, the least recently seen 1% are evicted (reason `evicted`), found
  with one partial sort, so eviction stays cheap and rare rather than per packet.
* Each direction is a `Side`: packets, wire bytes (IP lengths: IPv4 total length, IPv6 payload
  length + 40) and unique payload with its one rule (`Side.advance`), so a flip swaps two
  objects. Flows that are only counted skip decoding through the bypass index beside this
  table (`bypass.py`).
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sensor.config import FlowConfig
from sensor.decode.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
)

TO_SERVER = 0
TO_CLIENT = 1

# TCP flow states as far as a passive observer can tell.
STATE_NEW = "new"
STATE_ESTABLISHED = "established"
STATE_CLOSED = "closed"

# End reasons written into `flow.reason`.
REASON_TIMEOUT = "timeout"
REASON_CLOSED = "closed"
REASON_EVICTED = "evicted"
REASON_ACTIVE = "active_timeout"
REASON_REUSED = "port_reused"
REASON_SHUTDOWN = "shutdown"

_EPHEMERAL_START = 1024

A = TypeVar("A")  # what the pipeline keeps per flow


# A segment this far beyond the highest sequence number seen (plus its own length) counts only
# its own payload: a corrupt or forged sequence number must not add gigabytes.
MAX_PAYLOAD_HOLE = 16 << 20


@dataclass(slots=True, eq=False)
class Side:
    """One direction of a flow: what it carried. A flip of the flow swaps its two sides.

    Wire bytes are IP lengths. `payload` counts unique payload bytes: for TCP, only sequence
    space beyond the highest sequence number seen (`advance`), so retransmissions do not count.
    """

    pkts: int = 0
    bytes: int = 0
    payload: int = 0
    seq_high: int = -1  # TCP: end of the highest segment seen; -1 before any payload
    fin: bool = False

    def advance(self, seq: int, size: int) -> None:
        """`size` payload bytes at sequence number `seq` (the one copy of the unique-payload
        rule; serial arithmetic, RFC 1982). A segment that jumps ahead counts the hole before
        it too, up to `MAX_PAYLOAD_HOLE`: the sender sent those bytes, and the reordered (or
        uncaptured) segment filling it later lies below the high-water mark."""
        end = (seq + size) & 0xFFFFFFFF
        high = self.seq_high
        if high < 0:
            self.payload += size
            self.seq_high = end
            return
        ahead = (end - high) & 0xFFFFFFFF
        if 0 < ahead < 0x80000000:
            self.payload += ahead if ahead <= size + MAX_PAYLOAD_HOLE else size
            self.seq_high = end


@dataclass(slots=True, eq=False)
class Flow(Generic[A]):
    """One bidirectional flow. `analysis` is the slot for whatever the stages after this one
    keep per flow (the pipeline's per-flow state); the flow table never looks into it."""

    key: tuple[int, bytes, int, bytes, int]  # (proto, client ip, client port, server ip, port)
    flow_id: int
    proto: int
    ip_version: int
    client: bytes
    client_port: int
    server: bytes
    server_port: int
    start: float
    last: float
    midstream: bool = False  # no SYN from the client seen: orientation came from a heuristic
    state: str = STATE_NEW
    toserver: Side = field(default_factory=Side)
    toclient: Side = field(default_factory=Side)
    rst: bool = False
    report_start: float = 0.0  # start of the current active-timeout interval
    app_proto: str | None = None
    analysis: A | None = None
    _community_id: str | None = field(default=None, repr=False)

    def side(self, direction: int) -> Side:
        return self.toserver if direction == TO_SERVER else self.toclient

    def flip(self) -> None:
        """Swap client and server (a parser found the orientation was wrong)."""
        self.client, self.server = self.server, self.client
        self.client_port, self.server_port = self.server_port, self.client_port
        self.toserver, self.toclient = self.toclient, self.toserver
        self.key = (self.proto, self.client, self.client_port, self.server, self.server_port)


def _guess_sender_is_client(pkt: Packet) -> bool:
    """Orientation without a handshake: the lower, well-known-looking port is the server's."""
    sport, dport = pkt.sport, pkt.dport
    if pkt.proto == PROTO_TCP and pkt.tcp_flags & TCP_SYN:
        return not pkt.tcp_flags & TCP_ACK
    if dport < _EPHEMERAL_START <= sport:
        return True
    if sport < _EPHEMERAL_START <= dport:
        return False
    return dport <= sport


def _flow_id(pkt: Packet, serial: int) -> int:
    """A stable 53-bit id (fits a JSON number exactly): same capture, same ids."""
    h = hashlib.blake2b(digest_size=8)
    h.update(
        pkt.src + pkt.dst + struct.pack("!HHBdQ", pkt.sport, pkt.dport, pkt.proto, pkt.ts, serial)
    )
    return int.from_bytes(h.digest(), "big") & ((1 << 53) - 1)


class FlowTable(Generic[A]):
    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        # Both orientations of every flow's tuple -> the flow; and the flows themselves in
        # creation order (deterministic iteration for timeouts and the final drain).
        # `index` is read directly by the pipeline's per-packet fast path.
        self.index: dict[tuple[int, bytes, int, bytes, int], Flow[A]] = {}
        self._flows: dict[int, Flow[A]] = {}
        self._serial = 0
        self.next_scan = 0.0  # packet time of the next timeout scan (read by the pipeline)
        self.active = 0
        self.created = 0
        self.evicted = 0
        self.timed_out = 0
        self.peak = 0

    def __len__(self) -> int:
        return self.active

    def __iter__(self) -> Iterator[Flow[A]]:
        return iter(self._flows.values())

    def lookup(self, pkt: Packet) -> tuple[Flow[A], int, tuple[tuple[Flow[A], str], ...]]:
        """The packet's flow and direction, creating it if new; plus flows this packet ended
        (a reused port, or eviction to make room)."""
        key = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        flow = self.index.get(key)
        if flow is not None:
            direction = (
                TO_SERVER if pkt.sport == flow.client_port and pkt.src == flow.client else TO_CLIENT
            )
            if (
                pkt.proto == PROTO_TCP
                and pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
                and flow.state == STATE_CLOSED
            ):
                # A fresh SYN on a closed connection's tuple starts a new connection.
                self._remove(flow)
                new, direction = self._create(pkt, key)
                return new, direction, ((flow, REASON_REUSED),)
            return flow, direction, ()
        ended: tuple[tuple[Flow[A], str], ...] = ()
        if self.active >= self.config.max_flows:
            ended = self._evict(max(1, self.config.max_flows // 100))
        new, direction = self._create(pkt, key)
        return new, direction, ended

    def _create(self, pkt: Packet, key: tuple[int, bytes, int, bytes, int]) -> tuple[Flow[A], int]:
        self._serial += 1
        sender_is_client = _guess_sender_is_client(pkt)
        if sender_is_client:
            client, cport, server, sport = pkt.src, pkt.sport, pkt.dst, pkt.dport
        else:
            client, cport, server, sport = pkt.dst, pkt.dport, pkt.src, pkt.sport
        midstream = pkt.proto == PROTO_TCP and not (
            pkt.tcp_flags & TCP_SYN and not pkt.tcp_flags & TCP_ACK
        )
        flow: Flow[A] = Flow(
            key=(pkt.proto, client, cport, server, sport),
            flow_id=_flow_id(pkt, self._serial),
            proto=pkt.proto,
            ip_version=pkt.ip_version,
            client=client,
            client_port=cport,
            server=server,
            server_port=sport,
            start=pkt.ts,
            last=pkt.ts,
            midstream=midstream,
            report_start=pkt.ts,
        )
        self.index[key] = flow
        self.index[(pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)] = flow
        self._flows[flow.flow_id] = flow
        self.active += 1
        self.created += 1
        self.peak = max(self.peak, self.active)
        return flow, TO_SERVER if sender_is_client else TO_CLIENT

    def _remove(self, flow: Flow[A]) -> None:
        proto, a, ap, b, bp = flow.key
        self.index.pop((proto, a, ap, b, bp), None)
        self.index.pop((proto, b, bp, a, ap), None)
        if self._flows.pop(flow.flow_id, None) is not None:
            self.active -= 1

    def update_tcp_state(self, flow: Flow[A], direction: int, flags: int) -> None:
        if flags & TCP_RST:
            flow.rst = True
            flow.state = STATE_CLOSED
            return
        if flags & TCP_FIN:
            flow.side(direction).fin = True
            if flow.toserver.fin and flow.toclient.fin:
                flow.state = STATE_CLOSED
                return
        if flow.state == STATE_NEW and flags & TCP_ACK and not flags & TCP_SYN:
            flow.state = STATE_ESTABLISHED

    def _timeout(self, flow: Flow[A]) -> float:
        cfg = self.config
        if flow.proto == PROTO_TCP:
            if flow.state == STATE_CLOSED:
                return cfg.tcp_closed_timeout
            if flow.state == STATE_NEW:
                return cfg.tcp_new_timeout
            return cfg.tcp_idle_timeout
        if flow.proto == PROTO_UDP:
            return cfg.udp_idle_timeout
        return cfg.other_idle_timeout

    def expire(self, now: float) -> tuple[list[Flow[A]], list[Flow[A]]]:
        """Flows that timed out (removed) and flows due an interim active-timeout record."""
        self.next_scan = now + self.config.scan_interval
        ended: list[Flow[A]] = []
        interim: list[Flow[A]] = []
        active_timeout = self.config.active_timeout
        for flow in list(self):
            if now - flow.last > self._timeout(flow):
                ended.append(flow)
            elif active_timeout and now - flow.report_start >= active_timeout:
                interim.append(flow)
        for flow in ended:
            self._remove(flow)
        self.timed_out += len(ended)
        return ended, interim

    def _evict(self, count: int) -> tuple[tuple[Flow[A], str], ...]:
        victims = heapq.nsmallest(count, self, key=lambda f: f.last)
        for flow in victims:
            self._remove(flow)
        self.evicted += len(victims)
        return tuple((flow, REASON_EVICTED) for flow in victims)

    def drain(self) -> list[Flow[A]]:
        """Every remaining flow, in creation order, removed from the table (end of input)."""
        flows = list(self._flows.values())
        self._flows.clear()
        self.index.clear()
        self.active = 0
        return flows
