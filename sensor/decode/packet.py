"""Decoded packet: what the decode stage hands to the flow table.

Addresses stay packed bytes (4 or 16 bytes) on the hot path; they become text only at output.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

# TCP flag bits (RFC 9293 section 3.1).
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10


@dataclass(slots=True)
class Packet:
    ts: float
    ip_version: int  # 4 or 6
    src: bytes  # packed address
    dst: bytes
    proto: int  # IP protocol number (after IPv6 extension headers)
    ip_len: int  # wire bytes of the IP packet: IPv4 total length, IPv6 payload length + 40
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0
    payload: bytes = b""  # transport payload (TCP/UDP data), possibly shorter than claimed
    payload_missing: int = 0  # bytes the headers claim but the capture does not hold (snaplen)
    vlan: int | None = None  # outermost 802.1Q VLAN id, if any
