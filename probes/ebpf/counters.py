"""Values the eBPF meter hands to user space, and the byte layouts of its map keys and values.

Capture side (probes/ebpf/). Pure: raw map bytes come in, `HostCounter`/`PairCounter` values go
out; `RawDeltas` (on raw keys, for the runtime) and `CounterDeltas` (on decoded values) turn
the kernel's cumulative counters into increments for the meter. No
syscalls here, so all of it is tested without root.

Layouts (must match `sluice_meter.bpf.c`):
- address: 16 bytes, IPv4 stored IPv4-mapped (``::ffff:a.b.c.d``, RFC 4291 2.5.5.2);
- pair key: source address + 8 bytes of destination network, 24 bytes: the first 8 bytes of
  an IPv6 destination (its /64) or bytes 8-15 of the IPv4-mapped destination with the last
  byte zeroed (its /24); the source address tells the family;
- counter: ``{u64 packets; u64 bytes}`` in host byte order, one copy per possible CPU in the
  per-CPU maps (each copy padded to 8 bytes, which 16 already is);
- LPM trie key: ``u32 prefixlen`` (host order) + 16 address bytes; IPv4 prefixes become /96+len.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ADDR_LEN = 16
DST_NET_LEN = 8
PAIR_KEY_LEN = ADDR_LEN + DST_NET_LEN
COUNT_LEN = 16  # struct sluice_count
DROP_COUNT_LEN = 8  # u64 per blocked source
STAT_LEN = 8  # u64 per stats slot and CPU
IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
# Destination aggregation of the pair map: an IPv4 /24 or an IPv6 /64 (one site, one LAN).
PAIR_PREFIX_V4 = 24
PAIR_PREFIX_V6 = 64

# DESIGN.md "Direction": RFC 1918 + ULA + loopback.
DEFAULT_HOME_NETS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "::1/128",
)

_COUNT = struct.Struct("=QQ")
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")

# Order of the slots in the `stats` per-CPU array (enum sluice_stat in the C source). Every
# packet lands in exactly one of the first five; map_full is extra.
STAT_NAMES: tuple[str, ...] = (
    "not_ip",
    "malformed",
    "not_outbound",
    "counted",
    "dropped",
    "map_full",
)
# home_net prefixes per address family (SLUICE_MAX_HOME_NETS in the C source).
MAX_HOME_NETS_PER_FAMILY = 32
# Block lists up to this long are copied into `blockctl` and scanned (SLUICE_BLOCK_SCAN).
BLOCK_SCAN = 16
BLOCKCTL_LEN = 8 + BLOCK_SCAN * ADDR_LEN
_BLOCK_NONE, _BLOCK_SCAN_LIST, _BLOCK_LOOKUP = 0, 1, 2


@dataclass(frozen=True, slots=True)
class HostCounter:
    """Outbound packets and IP bytes of one internal source, cumulative since the map was made."""

    ip: str
    packets: int
    bytes: int

    @property
    def key(self) -> str:
        return self.ip


@dataclass(frozen=True, slots=True)
class PairCounter:
    """Outbound packets and IP bytes from one internal source to one destination /24 or /64."""

    src: str
    dst_net: str
    packets: int
    bytes: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.src, self.dst_net)


C = TypeVar("C", HostCounter, PairCounter)
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class ProbeStats:
    """What the program did with the packets it saw, summed over CPUs."""

    not_ip: int
    malformed: int
    not_outbound: int
    counted: int
    dropped: int
    map_full: int

    @property
    def seen(self) -> int:
        return self.not_ip + self.malformed + self.not_outbound + self.counted + self.dropped


def parse_ip(value: str | IpAddress) -> IpAddress:
    """An address from text or an address object; a clear ValueError for anything else."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def encode_addr(value: str | IpAddress) -> bytes:
    addr = parse_ip(value)
    if isinstance(addr, ipaddress.IPv4Address):
        return IPV4_MAPPED_PREFIX + addr.packed
    return addr.packed


def decode_addr(raw: bytes) -> IpAddress:
    if len(raw) != ADDR_LEN:
        raise ValueError(f"address key must be {ADDR_LEN} bytes, got {len(raw)}")
    if raw[:12] == IPV4_MAPPED_PREFIX:
        return ipaddress.IPv4Address(raw[12:])
    return ipaddress.IPv6Address(raw)


def decode_dst_net(raw: bytes, v4: bool) -> str:
    """The destination network of a pair key (its last 8 bytes), as ``198.51.100.0/24`` or
    ``2001:db8:1:2::/64``."""
    if len(raw) != DST_NET_LEN:
        raise ValueError(f"destination network must be {DST_NET_LEN} bytes, got {len(raw)}")
    if v4:
        return f"{ipaddress.IPv4Address(raw[4:7] + bytes(1))}/{PAIR_PREFIX_V4}"
    return f"{ipaddress.IPv6Address(raw + bytes(8))}/{PAIR_PREFIX_V6}"


def encode_dst_net(value: str | IpAddress) -> bytes:
    """The 8 destination bytes of a pair key for an address (the inverse of decode_dst_net)."""
    raw = encode_addr(value)
    if raw[:12] == IPV4_MAPPED_PREFIX:
        return raw[8:15] + b"\0"
    return raw[:8]


def parse_home_nets(
    nets: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Validate home_net prefixes; host bits set or junk is a clear ValueError."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for net in nets:
        try:
            out.append(ipaddress.ip_network(net))
        except ValueError as exc:
            raise ValueError(f"bad home_net prefix {net!r}: {exc}") from None
    if not out:
        raise ValueError("home_nets is empty: no source would ever be counted")
    return out


def encode_config(nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bytes:
    """`struct sluice_config`: prefix counts, then (net, mask) per family as raw network-order
    bytes, which is what the program compares against addresses copied from the packet."""
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    for label, family in (("IPv4", v4), ("IPv6", v6)):
        if len(family) > MAX_HOME_NETS_PER_FAMILY:
            raise ValueError(f"at most {MAX_HOME_NETS_PER_FAMILY} {label} home_net prefixes")
    out = bytearray(_U32.pack(len(v4)) + _U32.pack(len(v6)))
    for i in range(MAX_HOME_NETS_PER_FAMILY):
        out += v4[i].network_address.packed + v4[i].netmask.packed if i < len(v4) else bytes(8)
    for i in range(MAX_HOME_NETS_PER_FAMILY):
        out += v6[i].network_address.packed + v6[i].netmask.packed if i < len(v6) else bytes(32)
    return bytes(out)


def encode_blockctl(blocked: list[bytes]) -> bytes:
    """`struct sluice_blockctl` for a block list given as 16-byte address keys."""
    if not blocked:
        return _U32.pack(_BLOCK_NONE) + _U32.pack(0) + bytes(BLOCK_SCAN * ADDR_LEN)
    if len(blocked) > BLOCK_SCAN:
        return _U32.pack(_BLOCK_LOOKUP) + _U32.pack(0) + bytes(BLOCK_SCAN * ADDR_LEN)
    pad = bytes((BLOCK_SCAN - len(blocked)) * ADDR_LEN)
    return _U32.pack(_BLOCK_SCAN_LIST) + _U32.pack(len(blocked)) + b"".join(blocked) + pad


def sum_percpu_counts(raw: bytes, ncpus: int) -> tuple[int, int]:
    """(packets, bytes) summed over the per-CPU copies of one `struct sluice_count`."""
    packets = total = 0
    for cpu in range(ncpus):
        p, b = _COUNT.unpack_from(raw, cpu * COUNT_LEN)
        packets += p
        total += b
    return packets, total


def source_bytes(key: bytes) -> bytes:
    """The packed address (4 or 16 bytes) of a host key or of a pair key's source."""
    return key[12:16] if key[:12] == IPV4_MAPPED_PREFIX else key[:ADDR_LEN]


def dst_net_bytes(pair_key: bytes) -> bytes:
    """The packed network address (4 or 16 bytes) of a pair key's destination /24 or /64,
    without going through `ipaddress` (the runtime reads up to the whole map every bucket)."""
    dst = pair_key[ADDR_LEN:]
    if pair_key[:12] == IPV4_MAPPED_PREFIX:
        return dst[4:7] + b"\0"
    return dst + bytes(8)


def pair_key(src: str | IpAddress, dst: str | IpAddress) -> bytes:
    """The pair map's key for a source and any address of the destination network."""
    return encode_addr(src) + encode_dst_net(dst)


class RawDeltas(Generic[K]):
    """Cumulative (packets, bytes) per raw map key in, increments of the keys that changed out.

    The kernel maps are LRUs: a quiet key can be evicted and come back from zero, and a
    restarted sensor finds the pinned totals of its predecessor. A counter that went down is
    therefore a new series and its whole value is the increment; the first read of a key
    reports everything counted so far (`seed` says what an earlier run already reported).
    Nothing is decoded here, so a read of a full map costs a dict comparison per entry; the
    caller decodes only what changed."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[K, tuple[int, int]] = {}

    @property
    def totals(self) -> dict[K, tuple[int, int]]:
        return dict(self._last)

    def seed(self, totals: dict[K, tuple[int, int]]) -> None:
        self._last = dict(totals)

    def update(self, entries: Iterable[tuple[K, int, int]]) -> list[tuple[K, int, int]]:
        last = self._last
        seen: dict[K, tuple[int, int]] = {}
        out = []
        for key, packets, size in entries:
            seen[key] = (packets, size)
            old = last.get(key)
            if old is None or packets < old[0] or size < old[1]:  # new key, or a new series
                if packets or size:
                    out.append((key, packets, size))
            elif packets != old[0] or size != old[1]:
                out.append((key, packets - old[0], size - old[1]))
        self._last = seen
        return out


def sum_percpu_u64(raw: bytes, ncpus: int) -> int:
    return sum(_U64.unpack_from(raw, cpu * STAT_LEN)[0] for cpu in range(ncpus))


def decode_u64(raw: bytes) -> int:
    return int(_U64.unpack_from(raw)[0])


def parse_cpu_list(text: str) -> list[int]:
    """CPUs from a kernel CPU list (``/sys/devices/system/cpu/possible``: ``0-3,5``)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


class CounterDeltas(Generic[C]):
    """`RawDeltas` for decoded counters (hosts or pairs): the increments as counter values."""

    __slots__ = ("_raw",)

    def __init__(self) -> None:
        self._raw: RawDeltas[Hashable] = RawDeltas()

    def update(self, counters: Iterable[C]) -> list[C]:
        by_key: dict[Hashable, C] = {c.key: c for c in counters}
        changed = self._raw.update((k, c.packets, c.bytes) for k, c in by_key.items())
        return [replace(by_key[k], packets=p, bytes=b) for k, p, b in changed]
