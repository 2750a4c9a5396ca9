"""Half-open connection attempts (the flows stage, beside the table): a SYN flood stays cheap.

Under pressure (the pipeline's HOLD_AFTER embryonic flows waiting for payload), a plain SYN
(Ethernet, IPv4 without options or fragments, TCP flags exactly SYN, no payload) to a tuple
that has no flow yet does not make a flow: its frame is held here, keyed by the
addresses and ports as they stand in the frame (`ETH_IP4_TUPLE`), a few hundred bytes each.
The first other packet of the tuple, either direction (the SYN-ACK, data, an RST), takes the
held frames back and the pipeline runs them through the full path first, at their own
times: the flow is then exactly what it would have been. Attempts that nothing ever answers
expire after `flows.tcp_new_timeout` (or earlier, oldest first, when the table is over its
byte cap, `flows.half_open_memcap`) and are summed per client and server into one `flow`
record with state "half_open" (sensor/pipeline.py): a port scan or a SYN flood is one record
per pair and expiry, not one per SYN. Everything else takes the normal path.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from sensor.decode.decoder import ETH_IP4_TUPLE, ETH_IP4_WORD
from sensor.decode.packet import PROTO_TCP, TCP_SYN

# Ethernet type + IPv4 version/IHL, total length, fragment word, protocol, TCP data offset and
# flags, from an Ethernet frame.
_SYN_FIELDS = struct.Struct("!12xIH2xHxB22xBB")
_PORTS = struct.Struct("!HH")
_IP_LEN = struct.Struct("!H")
SYN_FLAGS_AT = 47  # the TCP flags byte of an Ethernet/IPv4 frame without IP options
MAX_SYNS = 6  # SYNs held per tuple (retransmissions); one more takes the full path
ENTRY_COST = 180  # bytes one held tuple costs besides its frames (key, list, dict slot)
FRAME_COST = 90  # bytes one held frame costs besides its bytes (tuple, float, bytes object)
EVICT_TO = 0.9  # over the cap, the oldest are summed until the table is at this share of it


def syn_key(data: bytes) -> bytes | None:
    """The frame's tuple key if it is a plain SYN the table may hold, else None. The caller
    checked the link type (Ethernet) and that `data` holds `ETH_IP4_TCP_MIN` bytes."""
    head, ip_len, frag, proto, doff, flags = _SYN_FIELDS.unpack_from(data)
    if (
        flags & 0x3F != TCP_SYN  # SYN alone (ECE and CWR may ride along: ECN)
        or head & 0xFFFFFF00 != ETH_IP4_WORD
        or proto != PROTO_TCP
        or frag & 0x3FFF
        or doff < 0x50  # a TCP header shorter than 20 bytes: the decoder says so
        or ip_len != 20 + ((doff & 0xF0) >> 2)  # no payload
        or len(data) < 14 + ip_len
    ):
        return None
    return data[ETH_IP4_TUPLE]


def flow_key(data: bytes) -> tuple[int, bytes, int, bytes, int]:
    """The flow table's key of a frame `syn_key` accepted."""
    sport, dport = _PORTS.unpack_from(data, 34)
    return (PROTO_TCP, data[26:30], sport, data[30:34], dport)


def cut(data: bytes) -> bytes:
    """The frame without Ethernet padding (held frames keep only what the IP length says)."""
    return data[: 14 + _IP_LEN.unpack_from(data, 16)[0]]


@dataclass(slots=True)
class Attempts:
    """Unanswered attempts of one client to one server, summed for their `flow` record."""

    client: bytes
    server: bytes
    first_port: tuple[int, int]  # (client port, server port) of the first attempt
    start: float
    last: float
    tuples: int = 0
    syns: int = 0
    ip_bytes: int = 0
    ports: set[int] = field(default_factory=set)
    clients: list[bytes] = field(default_factory=list)  # merged singles: the first clients
    client_count: int = 1


class HalfOpen:
    """The held attempts, oldest first (a retransmitted SYN moves its tuple to the end)."""

    __slots__ = ("aggregated", "cap", "cost", "index", "peak", "timeout")

    def __init__(self, timeout: float, memcap: int) -> None:
        self.timeout = timeout
        self.cap = memcap  # bytes, as `cost` counts them
        self.index: dict[bytes, list[tuple[float, bytes]]] = {}
        self.cost = 0  # bytes the held attempts take (ENTRY_COST, FRAME_COST and the frames)
        self.peak = 0
        self.aggregated = 0  # attempts summed into half_open records so far

    def hold(self, key: bytes, ts: float, data: bytes) -> bool:
        """Keep a SYN; False when the tuple already holds MAX_SYNS (take them back first)."""
        index = self.index
        frames = index.get(key)
        if frames is None:
            index[key] = [(ts, data)]
            self.cost += ENTRY_COST
            if len(index) > self.peak:
                self.peak = len(index)
        elif len(frames) < MAX_SYNS:
            del index[key]  # to the end: ordered by the last SYN
            index[key] = frames
            frames.append((ts, data))
        else:
            return False
        self.cost += FRAME_COST + len(data)
        return True

    def take(self, key: bytes) -> list[tuple[float, bytes]] | None:
        frames = self.index.pop(key, None)
        if frames is not None:
            self.cost -= ENTRY_COST + sum(FRAME_COST + len(data) for _, data in frames)
        return frames

    def over_cap(self) -> bool:
        return self.cost > self.cap

    def expired(self, now: float, every: bool = False) -> Iterator[list[tuple[float, bytes]]]:
        """Held attempts whose last SYN is older than the timeout (all with `every`), and the
        oldest beyond the cap, removed as they are handed out."""
        index = self.index
        limit = now - self.timeout
        # Over the cap: down to EVICT_TO of it at once, so a flood is summed in batches.
        excess = self.cost - int(self.cap * EVICT_TO) if self.cost > self.cap else 0
        due = []
        for key, frames in index.items():  # one pass: popping at the front while iterating
            if not (every or excess > 0 or frames[-1][0] < limit):  # would be quadratic
                break
            due.append(key)
            excess -= ENTRY_COST + sum(FRAME_COST + len(data) for _, data in frames)
        for key in due:
            taken = self.take(key)
            if taken is not None:
                yield taken


MAX_LISTED = 16  # clients and ports listed by name in a record (all are counted)


def merge_singles(pairs: list[Attempts]) -> list[Attempts]:
    """Clients with a single attempt to a server (a flood from spoofed sources, a sweep) are
    summed once more, per server: one record, `client_count` clients, the first listed. The
    entries of `pairs` are reused (meter them before)."""
    out: list[Attempts] = []
    singles: dict[bytes, Attempts] = {}
    for entry in pairs:
        if entry.tuples > 1:
            out.append(entry)
            continue
        merged = singles.get(entry.server)
        if merged is None:
            singles[entry.server] = entry
            entry.clients.append(entry.client)
            out.append(entry)
            continue
        merged.client_count += 1
        if len(merged.clients) < MAX_LISTED:
            merged.clients.append(entry.client)
        merged.tuples += 1
        merged.syns += entry.syns
        merged.ip_bytes += entry.ip_bytes
        merged.start = min(merged.start, entry.start)
        merged.last = max(merged.last, entry.last)
        merged.ports |= entry.ports
    return out


def summarize(groups: Iterator[list[tuple[float, bytes]]]) -> list[Attempts]:
    """Expired attempts summed per (client, server), in the order of their first attempt."""
    out: dict[bytes, Attempts] = {}
    for frames in groups:
        data = frames[0][1]
        pair = data[26:34]
        sport, dport = _PORTS.unpack_from(data, 34)
        entry = out.get(pair)
        if entry is None:
            entry = out[pair] = Attempts(
                data[26:30], data[30:34], (sport, dport), frames[0][0], frames[-1][0]
            )
        entry.tuples += 1
        entry.syns += len(frames)
        entry.ip_bytes += sum(_IP_LEN.unpack_from(f, 16)[0] for _, f in frames)  # no padding
        entry.start = min(entry.start, frames[0][0])
        entry.last = max(entry.last, frames[-1][0])
        entry.ports.add(dport)
    return list(out.values())


__all__ = [
    "MAX_LISTED",
    "MAX_SYNS",
    "SYN_FLAGS_AT",
    "Attempts",
    "HalfOpen",
    "cut",
    "flow_key",
    "merge_singles",
    "summarize",
    "syn_key",
]
