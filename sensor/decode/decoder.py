"""Decode stage: link layer, IPv4/IPv6 and TCP/UDP headers, IP fragment reassembly.

In: `probes.frame.Frame` values (link type + captured bytes, packet-clock `ts`).
Out: one `sensor.decode.packet.Packet` per IP packet (or per reassembled datagram) for the flow
table, `None` for anything the flow table cannot use (non-IP, broken IP header, a fragment
held for reassembly), plus `Anomaly` values: `decode`, `tick` and `finish` note them, and
`take_anomalies()` is the one way they leave.

Theory of operation
-------------------
- Hot path: Ethernet -> IPv4 -> TCP is a handful of `struct.Struct.unpack_from` calls on the
  frame bytes and one `Packet`; no per-packet dicts or intermediate objects. Everything else
  (VLAN stacks, cooked/raw/loopback link types, IPv6 extension headers, fragments) branches
  off that path.
- Lengths come from the IP header, never from the frame: Ethernet padding is not payload, and
  a frame shorter than the IP total length yields `Packet.payload_missing` (snaplen cut).
- Fragments (RFC 791 section 3.2, RFC 8200 section 4.5) are held per datagram as sorted,
  non-overlapping pieces; coverage is tracked in the spirit of RFC 815's hole list (covered
  byte count against the total known from the last fragment). Overlaps keep the first copy
  (a later copy cannot rewrite bytes the sensor already accepted) and raise `frag_overlap`.
  State is bounded by `DecodeCaps` and expires on the packet clock.
- `decode` never raises: every length is checked; a last-resort handler counts
  `internal_error` so tests can prove it stays at zero.
- Checksums are only verified when asked (SPAN ports see NIC-offloaded, wrong checksums);
  bad ones are counted, never dropped.
- Anomalies are rate-limited per kind on the packet clock (`ANOMALY_BURST` per second);
  the counters in `DecodeStats` stay exact.
"""

from __future__ import annotations

import struct
from bisect import insort
from dataclasses import dataclass

from probes.frame import (
    DLT_RAW_ALIASES,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Frame,
)
from sensor.anomaly import Anomaly
from sensor.decode.packet import PROTO_TCP, PROTO_UDP, Packet

# Anomaly kinds (stable names, see sensor/outputs/events.schema.json anomaly.kind).
DECODE_TRUNCATED = "decode_truncated"  # a header is cut short by the capture
DECODE_BAD_IP_HEADER = "decode_bad_ip_header"
DECODE_BAD_L4_HEADER = "decode_bad_l4_header"  # TCP data offset / UDP length impossible
DECODE_UNKNOWN_LINKTYPE = "decode_unknown_linktype"  # once per link type
DECODE_INTERNAL_ERROR = "decode_internal_error"  # a decoder bug; should never appear
FRAG_OVERLAP = "frag_overlap"
FRAG_INVALID = "frag_invalid"  # impossible offsets/lengths, conflicting last fragment
FRAG_TIMEOUT = "frag_timeout"
FRAG_CAP = "frag_cap"

# Named caps.
ANOMALY_BURST = 10  # anomalies of one kind per second of packet time
MAX_PENDING_ANOMALIES = 4096  # held between take_anomalies() calls
MAX_FRAGMENTS_PER_DATAGRAM = 256  # ~64 KiB over a 576-byte MTU needs ~120
MAX_UNKNOWN_LINKTYPES_NOTED = 64
MAX_IP_DATAGRAM = 65535  # RFC 791 total length / RFC 8200 payload length are 16-bit

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# 802.1Q, 802.1ad (QinQ) and the pre-standard QinQ tag; may be stacked.
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))

# BSD loopback address families: AF_INET everywhere; AF_INET6 differs per OS
# (NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30).
_AF_INET = 2
_AF_INET6 = frozenset((24, 28, 30))

# IPv6 extension headers walked to reach the upper layer (RFC 8200 section 4; 135 mobility
# RFC 6275, 139 HIP, 140 shim6 share the generic 8-octet length format).
_IP6_HOPOPTS = 0
_IP6_ROUTING = 43
_IP6_FRAGMENT = 44
_IP6_AH = 51  # RFC 4302: length in 4-octet units minus 2
_IP6_DSTOPTS = 60
_IP6_NONE = 59
_IP6_EXT = frozenset(
    (_IP6_HOPOPTS, _IP6_ROUTING, _IP6_FRAGMENT, _IP6_AH, _IP6_DSTOPTS, 135, 139, 140)
)

# Ethernet + option-less IPv4 + TCP in one unpack: the shape of nearly every packet at egress.
# Ethertype, version/IHL, total length, flags/fragment offset, protocol, addresses, ports,
# sequence and acknowledgement numbers, data offset, flags.
_ETH_IP4_TCP = struct.Struct("!12xHBxH2xHxB2x4s4sHHIIBB")
_ETH_IP4_TCP_LEN = _ETH_IP4_TCP.size  # 48: Ethernet 14 + IPv4 20 + TCP up to its flags
# The same frame layout as the flow bypass reads it (sensor/flows/bypass.py): only what counting
# needs, without making bytes objects. Ethertype + version/IHL + TOS as one word, total length,
# flags/fragment offset, protocol, sequence number, data offset, flags.
ETH_IP4_TCP_COUNTS = struct.Struct("!12xIH2xHxB2x8x4xI4xBB")
ETH_IP4_TCP_MIN = 54  # Ethernet 14 + IPv4 20 + a whole option-less TCP header 20
ETH_IP4_WORD = 0x08004500  # the first word above without TOS: Ethernet IPv4, 20-byte header
ETH_IP4_TUPLE = slice(26, 38)  # source and destination address, source and destination port
_IP4 = struct.Struct("!B1xH2xH1xB2x4s4s")  # ver/ihl, total length, flags/offset, proto, src, dst
_IP4_ID = struct.Struct("!H")
_IP6 = struct.Struct("!B3xHB1x16s16s")  # ver/tc, payload length, next header, src, dst
_IP6_FRAG = struct.Struct("!BxHI")  # next header, offset/flags, identification
_TCP = struct.Struct("!HHIIBB")  # ports, seq, ack, data offset, flags
_UDP = struct.Struct("!HHH")  # ports, length
_U16 = struct.Struct("!H")
_VLAN = struct.Struct("!HH")  # TCI, inner ethertype
_PSEUDO4 = struct.Struct("!xBH")  # zero, protocol, TCP/UDP length (RFC 9293 3.1, RFC 768)
_PSEUDO6 = struct.Struct("!I3xB")  # upper-layer length, zeros, next header (RFC 8200 8.1)


@dataclass(frozen=True, slots=True)
class DecodeCaps:
    """Bounds on the decoder's state. Time is the packet clock."""

    max_frag_bytes: int = 64 * 1024 * 1024  # fragment bytes held across all datagrams
    max_frag_datagrams: int = 10000  # datagrams under reassembly
    frag_timeout: float = 30.0  # seconds from a datagram's first fragment (Linux default)


class DecodeStats:
    """Exact decode counters (plain ints; `as_dict()` for the stats event)."""

    __slots__ = (  # noqa: RUF023 - logical order is the order of the stats event
        "frames",
        "decoded",
        "non_ip",
        "truncated",
        "bad_ip_header",
        "bad_l4_header",
        "unknown_linktype",
        "ip_len_zero",
        "payload_missing",
        "ipv4_checksum_bad",
        "tcp_checksum_bad",
        "udp_checksum_bad",
        "fragments",
        "reassembled",
        "frag_overlap",
        "frag_invalid",
        "frag_timeout",
        "frag_cap",
        "ipv6_ext_headers",
        "other_proto",
        "anomalies_suppressed",
        "anomalies_dropped",
        "internal_error",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    # Attributes for type checkers (values are set in __init__).
    frames: int
    decoded: int  # Packets returned (reassembled datagrams included)
    non_ip: int  # ARP, LLDP, unknown ethertype or address family
    truncated: int  # a link/IP/transport header cut short by the capture
    bad_ip_header: int
    bad_l4_header: int
    unknown_linktype: int
    ip_len_zero: int  # IP length 0 (TSO/GSO capture on the sending host): used captured length
    payload_missing: int  # Packets whose payload is shorter than the headers claim
    ipv4_checksum_bad: int
    tcp_checksum_bad: int
    udp_checksum_bad: int
    fragments: int
    reassembled: int
    frag_overlap: int
    frag_invalid: int
    frag_timeout: int
    frag_cap: int
    ipv6_ext_headers: int  # extension headers walked
    other_proto: int  # IP packets that are neither TCP nor UDP (ICMP, ESP, ...)
    anomalies_suppressed: int  # over ANOMALY_BURST (still counted above)
    anomalies_dropped: int  # over MAX_PENDING_ANOMALIES
    internal_error: int


class _Datagram:
    """One IP datagram under reassembly."""

    __slots__ = (
        "covered",
        "csum_dst",
        "first_ts",
        "header_len",
        "held",
        "nxt",
        "pieces",
        "total",
        "vlan",
    )

    def __init__(self, ts: float, vlan: int | None) -> None:
        self.first_ts = ts
        self.header_len = -1  # IPv4 header / IPv6 unfragmentable part of the offset-0 fragment
        self.nxt = -1  # IPv6: next header from the offset-0 fragment's fragment header
        self.total = -1  # fragmentable length, known once the last fragment arrived
        # Sorted, non-overlapping (start, end, data); len(data) < end - start when the capture
        # cut the fragment short.
        self.pieces: list[tuple[int, int, bytes]] = []
        self.covered = 0
        self.held = 0
        self.vlan = vlan
        self.csum_dst: bytes | None = None  # IPv6 routing header's final destination


_FragKey = tuple[int, bytes, bytes, int, int]


class Decoder:
    """Frames in, `Packet`s out. One instance per packet stream (it holds fragment state)."""

    def __init__(self, caps: DecodeCaps = DecodeCaps(), verify_checksums: bool = False) -> None:
        self.caps = caps
        self.verify_checksums = verify_checksums
        self.stats = DecodeStats()
        # Anomalies not yet taken; truthy when take_anomalies() has something (read, never
        # mutate: a cheap per-packet check for the pipeline).
        self.pending_anomalies: list[Anomaly] = []
        self._anomaly_window: dict[str, list[float]] = {}  # kind -> [window start, count]
        self._unknown_linktypes: set[int] = set()
        self._frags: dict[_FragKey, _Datagram] = {}  # insertion order = age
        self._frag_bytes = 0

    # -- public API --------------------------------------------------------------------------

    def decode(self, frame: Frame) -> Packet | None:
        """Decode one frame; None when there is nothing for the flow table. Never raises."""
        stats = self.stats
        stats.frames += 1
        try:
            ts, data, linktype, _iface, _wire_len = frame
            if linktype == LINKTYPE_ETHERNET and len(data) >= _ETH_IP4_TCP_LEN:
                # Fast path (same result as the general one below, measured ~30% cheaper):
                # untagged Ethernet, IPv4 without options or fragmentation, TCP with a sane
                # data offset, the whole datagram captured, checksums not verified.
                etype, vihl, tot_len, frag, proto, src, dst, sport, dport, seq, ack, doff, flags = (
                    _ETH_IP4_TCP.unpack_from(data)
                )
                if (
                    etype == ETHERTYPE_IPV4
                    and vihl == 0x45
                    and proto == PROTO_TCP
                    and not frag & 0x3FFF
                    and doff >= 0x50
                    and 20 + ((doff >> 4) << 2) <= tot_len <= len(data) - 14
                    and not self.verify_checksums
                ):
                    stats.decoded += 1
                    return Packet(
                        ts,
                        4,
                        src,
                        dst,
                        PROTO_TCP,
                        tot_len,
                        sport,
                        dport,
                        flags,
                        seq,
                        ack,
                        data[34 + ((doff >> 4) << 2) : 14 + tot_len],
                        0,
                        None,
                    )
            if linktype == LINKTYPE_ETHERNET:
                if len(data) < 14:
                    return self._truncated(ts, "ethernet header")
                etype = (data[12] << 8) | data[13]
                if etype == ETHERTYPE_IPV4:
                    return self._ip4(ts, data, 14, None)
                return self._ethertype(ts, data, 14, etype, None)
            return self._other_link(ts, data, linktype)
        except Exception as exc:  # last resort: decode must never take the sensor down
            stats.internal_error += 1
            self._note(DECODE_INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", _ts_of(frame))
            return None

    def tick(self, ts: float) -> None:
        """Expire fragment state older than `frag_timeout` on the packet clock."""
        if self._frags:
            self._expire(ts - self.caps.frag_timeout, ts)

    def finish(self, ts: float) -> None:
        """End of input: every datagram still held expires, noted at `ts` (with a rate-limit
        window of its own, so the end does not depend on the timeouts just before it)."""
        if self._frags:
            self._anomaly_window.pop(FRAG_TIMEOUT, None)
            self._expire(float("inf"), ts)

    def take_anomalies(self) -> list[Anomaly]:
        """Anomalies noted since the last call, by `decode`, `tick` and `finish` alike: the one
        way they leave the decoder (`pending_anomalies` is truthy while there are some)."""
        if not self.pending_anomalies:
            return []
        taken = self.pending_anomalies
        self.pending_anomalies = []
        return taken

    @property
    def held_fragment_bytes(self) -> int:
        return self._frag_bytes

    @property
    def held_datagrams(self) -> int:
        return len(self._frags)

    # -- anomalies ---------------------------------------------------------------------------

    def _note(self, kind: str, detail: str, ts: float) -> None:
        window = self._anomaly_window.get(kind)
        if window is None or ts - window[0] >= 1.0 or ts < window[0]:
            self._anomaly_window[kind] = [ts, 1.0]
        elif window[1] < ANOMALY_BURST:
            window[1] += 1
        else:
            self.stats.anomalies_suppressed += 1
            return
        if len(self.pending_anomalies) >= MAX_PENDING_ANOMALIES:
            self.stats.anomalies_dropped += 1
            return
        self.pending_anomalies.append(Anomaly(kind, detail, ts))

    # The rejection helpers always return None; they are typed so `return self._x(...)` reads
    # as "note it and hand nothing to the flow table".

    def _truncated(self, ts: float, what: str) -> Packet | None:
        self.stats.truncated += 1
        self._note(DECODE_TRUNCATED, f"{what} cut short by the capture", ts)
        return None

    def _bad_ip(self, ts: float, detail: str) -> Packet | None:
        self.stats.bad_ip_header += 1
        self._note(DECODE_BAD_IP_HEADER, detail, ts)
        return None

    # -- link layer --------------------------------------------------------------------------

    def _other_link(self, ts: float, data: bytes, linktype: int) -> Packet | None:
        n = len(data)
        if linktype == LINKTYPE_RAW or linktype in DLT_RAW_ALIASES:
            if not n:
                return self._truncated(ts, "raw IP header")
            version = data[0] >> 4
            if version == 4:
                return self._ip4(ts, data, 0, None)
            if version == 6:
                return self._ip6(ts, data, 0, None)
            return self._bad_ip(ts, f"raw link type with IP version {version}")
        if linktype == LINKTYPE_LINUX_SLL:
            # 16-byte cooked header; protocol (an ethertype) in the last two bytes.
            if n < 16:
                return self._truncated(ts, "Linux cooked (SLL) header")
            return self._ethertype(ts, data, 16, (data[14] << 8) | data[15], None)
        if linktype == LINKTYPE_LINUX_SLL2:
            # 20-byte cooked v2 header; protocol in the first two bytes.
            if n < 20:
                return self._truncated(ts, "Linux cooked (SLL2) header")
            return self._ethertype(ts, data, 20, (data[0] << 8) | data[1], None)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if n < 4:
                return self._truncated(ts, "loopback header")
            if linktype == LINKTYPE_LOOP:
                family = int.from_bytes(data[:4], "big")
            else:
                # Host byte order of the capturing machine, which we do not know.
                family = int.from_bytes(data[:4], "little")
                if family > 0xFFFF:
                    family = int.from_bytes(data[:4], "big")
            if family == _AF_INET:
                return self._ip4(ts, data, 4, None)
            if family in _AF_INET6:
                return self._ip6(ts, data, 4, None)
            self.stats.non_ip += 1
            return None
        if linktype == LINKTYPE_IPV4:
            return self._ip4(ts, data, 0, None)
        if linktype == LINKTYPE_IPV6:
            return self._ip6(ts, data, 0, None)
        self.stats.unknown_linktype += 1
        if (
            linktype not in self._unknown_linktypes
            and len(self._unknown_linktypes) < MAX_UNKNOWN_LINKTYPES_NOTED
        ):
            self._unknown_linktypes.add(linktype)
            self._note(DECODE_UNKNOWN_LINKTYPE, f"link type {linktype} is not decoded", ts)
        return None

    def _ethertype(
        self, ts: float, data: bytes, off: int, etype: int, vlan: int | None
    ) -> Packet | None:
        while etype in VLAN_TPIDS:
            if off + 4 > len(data):
                return self._truncated(ts, "VLAN tag")
            tci, etype = _VLAN.unpack_from(data, off)
            if vlan is None:
                vlan = tci & 0x0FFF  # outermost tag
            off += 4
        if etype == ETHERTYPE_IPV4:
            return self._ip4(ts, data, off, vlan)
        if etype == ETHERTYPE_IPV6:
            return self._ip6(ts, data, off, vlan)
        self.stats.non_ip += 1
        return None

    # -- IPv4 (RFC 791) ----------------------------------------------------------------------

    def _ip4(self, ts: float, data: bytes, off: int, vlan: int | None) -> Packet | None:
        n = len(data)
        if n - off < 20:
            if n > off and data[off] >> 4 != 4:
                return self._bad_ip(ts, f"IPv4 header with version {data[off] >> 4}")
            return self._truncated(ts, "IPv4 header")
        vihl, tot_len, frag, proto, src, dst = _IP4.unpack_from(data, off)
        hl = 20
        if vihl != 0x45:
            if vihl >> 4 != 4:
                return self._bad_ip(ts, f"IPv4 header with version {vihl >> 4}")
            hl = (vihl & 0x0F) << 2
            if hl < 20:
                return self._bad_ip(ts, f"IPv4 header length {hl} < 20")
            if off + hl > n:
                return self._truncated(ts, "IPv4 options")
        if tot_len < hl:
            if tot_len == 0 and n - off > hl:
                # Captured on the sending host before TSO/GSO split it: no length on the wire
                # yet, so the captured length is the best we have.
                self.stats.ip_len_zero += 1
                tot_len = min(n - off, MAX_IP_DATAGRAM)
            else:
                return self._bad_ip(ts, f"IPv4 total length {tot_len} < header length {hl}")
        end = off + tot_len
        missing = 0
        if end > n:
            missing = end - n
            end = n
        if self.verify_checksums and int.from_bytes(data[off : off + hl], "big") % 0xFFFF:
            self.stats.ipv4_checksum_bad += 1
        if frag & 0x3FFF:  # MF set or offset non-zero
            return self._ip4_fragment(ts, data, off, hl, end, missing, frag, proto, src, dst, vlan)
        return self._transport(ts, 4, src, dst, proto, tot_len, data, off + hl, end, missing, vlan)

    def _ip4_fragment(
        self,
        ts: float,
        data: bytes,
        off: int,
        hl: int,
        end: int,
        missing: int,
        frag: int,
        proto: int,
        src: bytes,
        dst: bytes,
        vlan: int | None,
    ) -> Packet | None:
        ident = _IP4_ID.unpack_from(data, off + 4)[0]
        key = (4, src, dst, proto, ident)  # RFC 791 section 3.2: src, dst, protocol, id
        start = off + hl
        dg = self._add_fragment(
            key,
            ts,
            (frag & 0x1FFF) << 3,
            bool(frag & 0x2000),
            data[start:end],
            end - start + missing,
            hl,
            -1,
            MAX_IP_DATAGRAM - hl,
            vlan,
            None,
        )
        if dg is None:
            return None
        payload, lacking = _assemble(dg)
        return self._transport(
            ts,
            4,
            src,
            dst,
            proto,
            dg.header_len + dg.total,
            payload,
            0,
            len(payload),
            lacking,
            dg.vlan,
        )

    # -- IPv6 (RFC 8200) ---------------------------------------------------------------------

    def _ip6(self, ts: float, data: bytes, off: int, vlan: int | None) -> Packet | None:
        n = len(data)
        if n - off < 40:
            if n > off and data[off] >> 4 != 6:
                return self._bad_ip(ts, f"IPv6 header with version {data[off] >> 4}")
            return self._truncated(ts, "IPv6 header")
        vtc, plen, nxt, src, dst = _IP6.unpack_from(data, off)
        if vtc >> 4 != 6:
            return self._bad_ip(ts, f"IPv6 header with version {vtc >> 4}")
        if plen == 0 and nxt != _IP6_NONE and n - off > 40:
            # Jumbogram (RFC 2675) or a GSO capture on the sending host: use what we have.
            self.stats.ip_len_zero += 1
            plen = min(n - off - 40, MAX_IP_DATAGRAM)
        ip_len = plen + 40
        end = off + ip_len
        missing = 0
        if end > n:
            missing = end - n
            end = n
        pos = off + 40
        stats = self.stats
        csum_dst: bytes | None = None
        while nxt in _IP6_EXT:
            stats.ipv6_ext_headers += 1
            if nxt == _IP6_ROUTING and self.verify_checksums and pos + 4 <= end:
                csum_dst = _routing_final_destination(data, pos, end)
            if nxt == _IP6_FRAGMENT:
                if pos + 8 > end:
                    return self._ext_short(ts, pos + 8, end, missing, "IPv6 fragment header")
                fnxt, foff, ident = _IP6_FRAG.unpack_from(data, pos)
                if foff & 0xFFF9 == 0:
                    # Atomic fragment (RFC 6946): offset 0 and no more fragments.
                    nxt = fnxt
                    pos += 8
                    continue
                return self._ip6_fragment(
                    ts, data, off, pos, end, missing, fnxt, foff, ident, src, dst, vlan, csum_dst
                )
            if pos + 2 > end:
                return self._ext_short(ts, pos + 2, end, missing, "IPv6 extension header")
            # AH counts 4-octet units minus 2 (RFC 4302), the others 8-octet units minus 1.
            hlen = (data[pos + 1] + 2) << 2 if nxt == _IP6_AH else (data[pos + 1] + 1) << 3
            nxt = data[pos]
            pos += hlen
            if pos > end:
                return self._ext_short(ts, pos, end, missing, "IPv6 extension header")
        return self._transport(
            ts, 6, src, dst, nxt, ip_len, data, pos, end, missing, vlan, csum_dst
        )

    def _ext_short(self, ts: float, need: int, end: int, missing: int, what: str) -> Packet | None:
        if need <= end + missing:
            return self._truncated(ts, what)
        return self._bad_ip(ts, f"{what} runs past the IPv6 payload length")

    def _ip6_fragment(
        self,
        ts: float,
        data: bytes,
        off: int,
        fpos: int,
        end: int,
        missing: int,
        fnxt: int,
        foff: int,
        ident: int,
        src: bytes,
        dst: bytes,
        vlan: int | None,
        csum_dst: bytes | None,
    ) -> Packet | None:
        key = (6, src, dst, 0, ident)  # RFC 8200 section 4.5: src, dst, identification
        start = fpos + 8
        unfrag_len = fpos - off  # IPv6 header plus extension headers before the fragment header
        dg = self._add_fragment(
            key,
            ts,
            foff & 0xFFF8,
            bool(foff & 1),
            data[start:end],
            end - start + missing,
            unfrag_len,
            fnxt,
            MAX_IP_DATAGRAM + 40 - unfrag_len,
            vlan,
            csum_dst,
        )
        if dg is None:
            return None
        payload, lacking = _assemble(dg)
        # The fragmentable part may start with more extension headers (RFC 8200 section 4.1).
        nxt = dg.nxt
        pos = 0
        pend = len(payload)
        stats = self.stats
        while nxt in _IP6_EXT:
            stats.ipv6_ext_headers += 1
            if nxt == _IP6_FRAGMENT:
                stats.frag_invalid += 1
                self._note(FRAG_INVALID, "IPv6 fragment header inside a reassembled payload", ts)
                return None
            if pos + 2 > pend:
                return self._ext_short(ts, pos + 2, pend, lacking, "IPv6 extension header")
            # AH counts 4-octet units minus 2 (RFC 4302), the others 8-octet units minus 1.
            hlen = (payload[pos + 1] + 2) << 2 if nxt == _IP6_AH else (payload[pos + 1] + 1) << 3
            nxt = payload[pos]
            pos += hlen
            if pos > pend:
                return self._ext_short(ts, pos, pend, lacking, "IPv6 extension header")
        return self._transport(
            ts,
            6,
            src,
            dst,
            nxt,
            dg.header_len + dg.total,
            payload,
            pos,
            pend,
            lacking,
            dg.vlan,
            dg.csum_dst,
        )

    # -- fragment reassembly (RFC 791 3.2, RFC 815, RFC 8200 4.5) ----------------------------

    def _add_fragment(
        self,
        key: _FragKey,
        ts: float,
        foff: int,
        more: bool,
        piece: bytes,
        length: int,
        header_len: int,
        nxt: int,
        limit: int,
        vlan: int | None,
        csum_dst: bytes | None,
    ) -> _Datagram | None:
        """Hold one fragment; return the datagram when this fragment completes it."""
        stats = self.stats
        stats.fragments += 1
        self._expire(ts - self.caps.frag_timeout, ts)
        fend = foff + length
        v = key[0]
        if length <= 0 or (more and length & 7) or fend > limit:
            # RFC 8200 4.5: non-last fragments are multiples of 8 octets; offsets past the
            # 16-bit length field are the "ping of death" shape.
            stats.frag_invalid += 1
            self._note(
                FRAG_INVALID,
                f"IPv{v} fragment offset {foff} length {length} more={more} is impossible",
                ts,
            )
            return None
        frags = self._frags
        dg = frags.get(key)
        if dg is None:
            if frags and len(frags) >= self.caps.max_frag_datagrams:
                self._evict_oldest(ts, "too many datagrams under reassembly")
            dg = _Datagram(ts, vlan)
            frags[key] = dg
        pieces = dg.pieces
        if not more:
            if dg.total >= 0 and dg.total != fend:
                stats.frag_invalid += 1
                self._note(
                    FRAG_INVALID,
                    f"IPv{v} last fragments disagree on length ({dg.total}/{fend})",
                    ts,
                )
                return None
            if pieces and pieces[-1][1] > fend:
                stats.frag_invalid += 1
                self._note(FRAG_INVALID, f"IPv{v} data held beyond the last fragment", ts)
                return None
        elif dg.total >= 0 and fend > dg.total:
            stats.frag_invalid += 1
            self._note(FRAG_INVALID, f"IPv{v} fragment beyond the datagram end", ts)
            return None

        # First copy wins: only the parts of [foff, fend) not held yet are added.
        added: list[tuple[int, int, bytes]] = []
        cur = foff
        overlap = conflict = False
        for s, e, d in pieces:
            if e <= cur:
                continue
            if s >= fend:
                break
            if s > cur:
                added.append((cur, s, piece[cur - foff : s - foff]))
            overlap = True
            lo = max(s, foff)
            hi = min(e, fend)
            old = d[lo - s : hi - s]
            new = piece[lo - foff : hi - foff]
            m = min(len(old), len(new))
            if old[:m] != new[:m]:
                conflict = True
            cur = e
            if cur >= fend:
                break
        if cur < fend:
            added.append((cur, fend, piece[cur - foff :]))
        if overlap:
            stats.frag_overlap += 1
            self._note(
                FRAG_OVERLAP,
                f"IPv{v} fragment [{foff},{fend}) overlaps held data "
                f"({'conflicting' if conflict else 'identical'} bytes; first copy kept)",
                ts,
            )
        if not more:
            dg.total = fend
        if foff == 0 and dg.header_len < 0:
            dg.header_len = header_len
            dg.nxt = nxt
            dg.csum_dst = csum_dst
        if added:
            if len(pieces) + len(added) > MAX_FRAGMENTS_PER_DATAGRAM:
                self._drop(key, dg)
                stats.frag_cap += 1
                self._note(
                    FRAG_CAP,
                    f"IPv{v} datagram exceeds {MAX_FRAGMENTS_PER_DATAGRAM} fragments; dropped",
                    ts,
                )
                return None
            grow = 0
            for part in added:
                insort(pieces, part)
                dg.covered += part[1] - part[0]
                grow += len(part[2])
            dg.held += grow
            self._frag_bytes += grow
            if self._frag_bytes > self.caps.max_frag_bytes:
                while self._frag_bytes > self.caps.max_frag_bytes and self._frags:
                    oldest = next(iter(self._frags))
                    self._evict_oldest(ts, "fragment memory cap reached")
                    if oldest == key:
                        return None
        if dg.total >= 0 and dg.covered == dg.total and dg.header_len >= 0:
            self._drop(key, dg)
            stats.reassembled += 1
            return dg
        return None

    def _drop(self, key: _FragKey, dg: _Datagram) -> None:
        del self._frags[key]
        self._frag_bytes -= dg.held

    def _evict_oldest(self, ts: float, why: str) -> None:
        key = next(iter(self._frags))
        self._drop(key, self._frags[key])
        self.stats.frag_cap += 1
        self._note(FRAG_CAP, f"IPv{key[0]} datagram evicted: {why}", ts)

    def _expire(self, deadline: float, ts: float) -> None:
        """Drop datagrams whose first fragment came at or before `deadline`, noted at `ts`."""
        # Datagrams sit in creation order on the packet clock, so the scan stops at the first
        # one still inside its timeout (RFC 791 reassembly timer; RFC 8200 4.5: 60 s max).
        frags = self._frags
        while frags:
            key = next(iter(frags))
            dg = frags[key]
            if dg.first_ts > deadline:
                break
            self._drop(key, dg)
            self.stats.frag_timeout += 1
            self._note(
                FRAG_TIMEOUT,
                f"IPv{key[0]} datagram incomplete after {self.caps.frag_timeout:g}s "
                f"({dg.covered} bytes held)",
                ts,
            )

    # -- transport (RFC 9293, RFC 768) -------------------------------------------------------

    def _transport(
        self,
        ts: float,
        version: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ip_len: int,
        buf: bytes,
        l4: int,
        end: int,
        missing: int,
        vlan: int | None,
        csum_dst: bytes | None = None,
    ) -> Packet | None:
        """Parse TCP/UDP in buf[l4:end]; `missing` bytes the IP header claims are not captured."""
        stats = self.stats
        if proto == PROTO_TCP:
            if end - l4 < 20:
                return self._short_l4(
                    ts, version, src, dst, proto, ip_len, buf, l4, end, missing, vlan, 20
                )
            sport, dport, seq, ack, doff, flags = _TCP.unpack_from(buf, l4)
            start = l4 + ((doff >> 4) << 2)
            if start > end or doff < 0x50:
                if doff >= 0x50 and start <= end + missing:
                    self._truncated(ts, "TCP options")
                    lacking = end + missing - start
                else:
                    stats.bad_l4_header += 1
                    self._note(DECODE_BAD_L4_HEADER, f"TCP data offset {doff >> 4}", ts)
                    lacking = 0
                stats.decoded += 1
                return Packet(
                    ts,
                    version,
                    src,
                    dst,
                    proto,
                    ip_len,
                    sport,
                    dport,
                    flags,
                    seq,
                    ack,
                    b"",
                    lacking,
                    vlan,
                )
            if missing:
                stats.payload_missing += 1
            elif self.verify_checksums and not _l4_checksum_ok(
                version, src, csum_dst or dst, proto, buf[l4:end]
            ):
                stats.tcp_checksum_bad += 1
            stats.decoded += 1
            return Packet(
                ts,
                version,
                src,
                dst,
                proto,
                ip_len,
                sport,
                dport,
                flags,
                seq,
                ack,
                buf[start:end],
                missing,
                vlan,
            )
        if proto == PROTO_UDP:
            if end - l4 < 8:
                return self._short_l4(
                    ts, version, src, dst, proto, ip_len, buf, l4, end, missing, vlan, 8
                )
            sport, dport, ulen = _UDP.unpack_from(buf, l4)
            claimed = end + missing - l4  # what IP says the datagram holds
            if ulen < 8 or ulen > claimed:
                # Bound the payload by IP instead (RFC 768 length is redundant with IP's).
                stats.bad_l4_header += 1
                self._note(DECODE_BAD_L4_HEADER, f"UDP length {ulen} vs IP {claimed}", ts)
                ulen = claimed
            pend = l4 + ulen
            lacking = 0
            if pend > end:
                lacking = pend - end
                pend = end
                stats.payload_missing += 1
            elif self.verify_checksums:
                if version == 4 and _U16.unpack_from(buf, l4 + 6)[0] == 0:
                    pass  # RFC 768: zero means the sender computed no checksum
                elif not _l4_checksum_ok(version, src, csum_dst or dst, proto, buf[l4:pend]):
                    # IPv6 forbids a zero UDP checksum (RFC 8200 section 8.1): counted bad too.
                    stats.udp_checksum_bad += 1
            stats.decoded += 1
            return Packet(
                ts,
                version,
                src,
                dst,
                proto,
                ip_len,
                sport,
                dport,
                0,
                0,
                0,
                buf[l4 + 8 : pend],
                lacking,
                vlan,
            )
        # ICMP, ESP, GRE, ...: no ports; the payload is the whole upper-layer message so that
        # content inspection still sees tunnels over it.
        stats.other_proto += 1
        if missing:
            stats.payload_missing += 1
        stats.decoded += 1
        return Packet(
            ts, version, src, dst, proto, ip_len, 0, 0, 0, 0, 0, buf[l4:end], missing, vlan
        )

    def _short_l4(
        self,
        ts: float,
        version: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ip_len: int,
        buf: bytes,
        l4: int,
        end: int,
        missing: int,
        vlan: int | None,
        header: int,
    ) -> Packet:
        """A TCP/UDP header that is not all there: still a Packet (it counts for volume)."""
        claimed = end + missing - l4
        name = "TCP" if proto == PROTO_TCP else "UDP"
        if claimed >= header:
            self._truncated(ts, f"{name} header")
        else:
            self.stats.bad_l4_header += 1
            self._note(DECODE_BAD_L4_HEADER, f"{name} segment of {claimed} bytes", ts)
        sport = dport = 0
        if end - l4 >= 4:
            sport, dport = _VLAN.unpack_from(buf, l4)
        self.stats.decoded += 1
        return Packet(
            ts,
            version,
            src,
            dst,
            proto,
            ip_len,
            sport,
            dport,
            0,
            0,
            0,
            b"",
            max(claimed - header, 0),
            vlan,
        )


def _routing_final_destination(data: bytes, pos: int, end: int) -> bytes | None:
    """Final destination named by an IPv6 routing header, for the upper-layer pseudo-header
    (RFC 8200 section 8.1); None when the header is already exhausted or not understood."""
    hdr_end = pos + ((data[pos + 1] + 1) << 3)
    if data[pos + 3] == 0 or hdr_end > end:  # segments left 0: the header dst is final
        return None
    rtype = data[pos + 2]
    if rtype in (0, 2):  # RFC 5095 (deprecated) / RFC 6275: last address listed
        final = data[hdr_end - 16 : hdr_end] if hdr_end - pos >= 24 else b""
    elif rtype == 4:  # Segment Routing (RFC 8754): Segment List[0] is the last segment
        final = data[pos + 8 : pos + 24]
    else:
        return None
    return final if len(final) == 16 else None


def _assemble(dg: _Datagram) -> tuple[bytes, int]:
    """Join held pieces up to the first one the capture cut short; return (bytes, lacking)."""
    parts = []
    for s, e, d in dg.pieces:
        parts.append(d)
        if len(d) < e - s:
            break
    payload = b"".join(parts)
    return payload, dg.total - len(payload)


def _l4_checksum_ok(version: int, src: bytes, dst: bytes, proto: int, segment: bytes) -> bool:
    """TCP/UDP checksum over the pseudo-header (RFC 9293 3.1, RFC 768, RFC 8200 8.1).

    The ones' complement sum of 16-bit words is congruent to the big integer modulo 0xFFFF
    (2**16 = 1 mod 0xFFFF), so a correct checksum leaves a remainder of zero.
    """
    if version == 4:
        pseudo = src + dst + _PSEUDO4.pack(proto, len(segment))
    else:
        pseudo = src + dst + _PSEUDO6.pack(len(segment), proto)
    blob = pseudo + segment
    if len(blob) & 1:
        blob += b"\0"
    return int.from_bytes(blob, "big") % 0xFFFF == 0


def _ts_of(frame: object) -> float:
    try:
        ts = frame[0]  # type: ignore[index]
        return float(ts)
    except Exception:
        return 0.0
