"""Flow bypass (the flows stage, beside the table): flows that are only counted skip decoding.

Suricata's idea: once a flow needs nothing but its counters (TLS and SSH after their handshakes,
unknown protocols, flows whose parser detached), its plain Ethernet/IPv4/TCP packets without
SYN, FIN or RST are counted straight from the header bytes: one dict lookup on the addresses and
ports as they stand in the frame, one unpack (the decoder's frame layout, `ETH_IP4_TCP_COUNTS`),
the counters of the flow's `Side`. Everything else (IPv6, VLAN tags, IP options, fragments,
state-changing flags, packets due a timeout scan) takes the decoder and the flow table, which
give the same counts; a test checks that the events are identical either way.
"""

from __future__ import annotations

import struct
from typing import Any

from sensor.decode.decoder import (
    ETH_IP4_TCP_COUNTS,
    ETH_IP4_TCP_MIN,
    ETH_IP4_TUPLE,
    ETH_IP4_WORD,
)
from sensor.decode.packet import PROTO_TCP, TCP_FIN, TCP_RST, TCP_SYN
from sensor.flows.table import Flow, Side

_STATE_FLAGS = TCP_FIN | TCP_SYN | TCP_RST  # the flags that can change a flow's TCP state
_PORTS = struct.Struct("!HH")


Hit = tuple[Flow[Any], Side]


class Bypass:
    """The index of bypassed flows. The pipeline looks frames up in `index` itself (one dict
    lookup is all a frame of another flow may cost) and calls `count` on a hit; every frame
    that is not counted here goes to the decoder, so the decoder's frame count tells how many
    were (no counter per packet here)."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        # Addresses and ports as they stand in a frame of either direction (`ETH_IP4_TUPLE`
        # of the frame) -> (flow, side).
        self.index: dict[bytes, Hit] = {}

    def add(self, flow: Flow[Any]) -> None:
        """From now on count this flow's plain IPv4 packets here (IPv6 flows keep the full
        path: their header layout varies)."""
        if flow.ip_version != 4:
            return
        index = self.index
        index[tuple_key(flow.client, flow.client_port, flow.server, flow.server_port)] = (
            flow,
            flow.toserver,
        )
        index[tuple_key(flow.server, flow.server_port, flow.client, flow.client_port)] = (
            flow,
            flow.toclient,
        )

    def remove(self, flow: Flow[Any]) -> None:
        if flow.ip_version != 4:
            return
        index = self.index
        index.pop(tuple_key(flow.client, flow.client_port, flow.server, flow.server_port), None)
        index.pop(tuple_key(flow.server, flow.server_port, flow.client, flow.client_port), None)


def count(hit: Hit, data: bytes, ts: float) -> bool:
    """Count an Ethernet frame whose addresses and ports found `hit` in the index; False when
    it needs the full path after all. The caller checked the link type and that `data` holds
    at least `ETH_IP4_TCP_MIN` bytes. A plain function: this runs for most packets."""
    head, ip_len, frag, proto, seq, doff, flags = ETH_IP4_TCP_COUNTS.unpack_from(data)
    if (
        head & 0xFFFFFF00 != ETH_IP4_WORD
        or proto != PROTO_TCP
        or flags & _STATE_FLAGS
        or frag & 0x3FFF
        or ip_len < 40
    ):
        return False
    flow, side = hit
    if ts > flow.last:  # a capture's time may step back: a flow's never does
        flow.last = ts
    side.pkts += 1
    side.bytes += ip_len
    size = ip_len - 20 - ((doff & 0xF0) >> 2)
    if size > 0:
        side.advance(seq, size)
    return True


def tuple_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """Addresses and ports as `ETH_IP4_TUPLE` cuts them from a frame of that direction."""
    return src + dst + _PORTS.pack(sport, dport)


__all__ = ["ETH_IP4_TCP_MIN", "ETH_IP4_TUPLE", "Bypass", "Hit", "count", "tuple_key"]
