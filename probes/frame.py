"""The one value probes hand to the sensor: a captured frame on the packet clock."""

from __future__ import annotations

from typing import NamedTuple

# Link-layer header types (https://www.tcpdump.org/linktypes.html) that the decoder understands.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW as some platforms write it into pcap headers instead of LINKTYPE_RAW.
DLT_RAW_ALIASES = (12, 14)


class Frame(NamedTuple):
    """A captured frame. `ts` is seconds since the epoch from the capture, never the wall clock."""

    ts: float
    data: bytes
    linktype: int
    iface: str | None = None
    wire_len: int = 0  # original length on the wire (0 = same as len(data))
