"""probes.ebpf: the eBPF meter, for real, plus its pure parts.

Privileged tests build three network namespaces, attach the programs and send known traffic:

    lan ns                         gw ns (forwarding)                    wan ns
    lan0 10.99.1.2, .3   <->  gwlan 10.99.1.1     gwwan 10.99.2.1  <->  wan0 10.99.2.2, 10.99.3.2
         fd00:99:1::2, ::3         fd00:99:1::1        fd00:99:2::1          fd00:99:2::2, 3::2
                           XDP here (ingress)   TC here (egress)

home_net is 10.99.1.0/24 + fd00:99:1::/64; 10.99.2/3.x and fd00:99:2/3:: are "external".
Neighbours are static and addresses skip DAD, so the only IP packets from the lan are the ones
the test sends. Every namespace, program, pin and mount is removed even when a test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from probes.ebpf import bpf_syscall as sysbpf
from probes.ebpf.counters import (
    BLOCK_SCAN,
    CounterDeltas,
    HostCounter,
    PairCounter,
    RawDeltas,
    decode_addr,
    decode_dst_net,
    dst_net_bytes,
    encode_addr,
    encode_blockctl,
    encode_config,
    encode_dst_net,
    pair_key,
    parse_cpu_list,
    parse_home_nets,
    source_bytes,
    sum_percpu_counts,
)
from probes.ebpf.kernel_build import HeadersMissing, find_build_env
from probes.ebpf.loader import EbpfError, EbpfProbe, pin_path, probe_unavailable_reason
from probes.ebpf.netns import inside_netns
from tests.conftest import ROOT, cannot_run, require_root_netns

HOME_NETS = ["10.99.1.0/24", "fd00:99:1::/64"]
H4A, H4B = "10.99.1.2", "10.99.1.3"
H6A, H6B = "fd00:99:1::2", "fd00:99:1::3"
SINK4, SINK4_OTHER_NET = "10.99.2.2", "10.99.3.2"
SINK6, SINK6_OTHER_NET = "fd00:99:2::2", "fd00:99:3::2"
PORT = 9999
MTU = 1500
UDP4_OVERHEAD = 20 + 8
UDP6_OVERHEAD = 40 + 8
DEADLINE_S = 10.0
MAC = {
    "lan0": "02:99:01:00:00:02",
    "gwlan": "02:99:01:00:00:01",
    "gwwan": "02:99:02:00:00:01",
    "wan0": "02:99:02:00:00:02",
}


# -- pure parts (no root needed) -----------------------------------------------------------


def test_addresses_round_trip_through_the_16_byte_key() -> None:
    assert encode_addr("10.99.1.2") == bytes(10) + b"\xff\xff" + bytes([10, 99, 1, 2])
    assert str(decode_addr(encode_addr("10.99.1.2"))) == "10.99.1.2"
    assert str(decode_addr(encode_addr("fd00:99:1::2"))) == "fd00:99:1::2"
    # An IPv4-mapped IPv6 address is the IPv4 host, not a second identity for it.
    assert encode_addr("::ffff:10.99.1.2") == encode_addr("10.99.1.2")
    assert decode_dst_net(encode_dst_net("198.51.100.77"), v4=True) == "198.51.100.0/24"
    assert encode_dst_net("198.51.100.77") == bytes([0, 0, 255, 255, 198, 51, 100, 0])
    assert decode_dst_net(encode_dst_net("2001:db8:1:2::9"), v4=False) == "2001:db8:1:2::/64"
    with pytest.raises(ValueError, match="not an IP address"):
        encode_addr("10.99.1")


def test_home_nets_become_the_config_block_and_bad_prefixes_are_clear_errors() -> None:
    raw = encode_config(parse_home_nets(["10.0.0.0/8", "fd00::/8", "192.168.0.0/16"]))
    assert len(raw) == 8 + 32 * 8 + 32 * 32  # struct sluice_config
    assert raw[:8] == (2).to_bytes(4, sys.byteorder) + (1).to_bytes(4, sys.byteorder)
    assert raw[8:24] == bytes([10, 0, 0, 0, 255, 0, 0, 0, 192, 168, 0, 0, 255, 255, 0, 0])
    v6 = 8 + 32 * 8
    assert raw[v6 : v6 + 32] == encode_addr("fd00::") + encode_addr("ff00::")
    with pytest.raises(ValueError, match="at most 32 IPv4"):
        encode_config(parse_home_nets([f"10.{i}.0.0/16" for i in range(33)]))
    with pytest.raises(ValueError, match=r"bad home_net prefix '10\.0\.0\.1/8'"):
        parse_home_nets(["10.0.0.1/8"])
    with pytest.raises(ValueError, match="empty"):
        parse_home_nets([])
    with pytest.raises(ValueError, match="home_net"):
        EbpfProbe("eth0", home_nets=["not-a-net"])
    with pytest.raises(ValueError, match="pin_dir"):
        EbpfProbe("eth0", pin_dir="/sys/fs/bpf/a:b")
    with pytest.raises(ValueError, match="mode"):
        EbpfProbe("eth0", mode="kprobe")  # type: ignore[arg-type]


def test_short_block_lists_are_copied_for_a_scan_and_long_ones_looked_up() -> None:
    a, b = encode_addr("10.99.1.3"), encode_addr("fd00:99:1::3")
    raw = encode_blockctl([a, b])
    assert len(raw) == 8 + 16 * BLOCK_SCAN  # struct sluice_blockctl
    assert raw[:8] == (1).to_bytes(4, sys.byteorder) + (2).to_bytes(4, sys.byteorder)
    assert raw[8:40] == a + b and raw[40:] == bytes(len(raw) - 40)
    assert encode_blockctl([])[:4] == (0).to_bytes(4, sys.byteorder)
    long = [encode_addr(f"10.0.0.{i}") for i in range(BLOCK_SCAN + 1)]
    assert encode_blockctl(long)[:4] == (2).to_bytes(4, sys.byteorder)


def test_per_cpu_values_are_summed_and_cpu_lists_parsed() -> None:
    raw = b"".join((p).to_bytes(8, sys.byteorder) + (b).to_bytes(8, sys.byteorder)
                   for p, b in [(1, 100), (0, 0), (5, 7000)])  # fmt: skip
    assert sum_percpu_counts(raw, 3) == (6, 7100)
    assert parse_cpu_list("0-3,5,8-9\n") == [0, 1, 2, 3, 5, 8, 9]
    assert parse_cpu_list("0") == [0]


def test_counter_deltas_handle_new_hosts_growth_and_lru_resets() -> None:
    deltas: CounterDeltas[HostCounter] = CounterDeltas()
    assert deltas.update([HostCounter("10.0.0.1", 3, 300)]) == [HostCounter("10.0.0.1", 3, 300)]
    assert deltas.update([HostCounter("10.0.0.1", 3, 300)]) == []
    assert deltas.update([HostCounter("10.0.0.1", 5, 450), HostCounter("10.0.0.2", 1, 60)]) == [
        HostCounter("10.0.0.1", 2, 150),
        HostCounter("10.0.0.2", 1, 60),
    ]
    # Evicted from the LRU and back from zero: the new value is all new traffic.
    assert deltas.update([HostCounter("10.0.0.1", 1, 40)]) == [HostCounter("10.0.0.1", 1, 40)]
    # Absent from one read (evicted), back later: counted again from its new start.
    assert deltas.update([]) == []
    assert deltas.update([HostCounter("10.0.0.1", 2, 80)]) == [HostCounter("10.0.0.1", 2, 80)]


def test_counter_deltas_work_for_pairs_too() -> None:
    deltas: CounterDeltas[PairCounter] = CounterDeltas()
    a = PairCounter("10.0.0.1", "198.51.100.0/24", 2, 200)
    b = PairCounter("10.0.0.1", "203.0.113.0/24", 1, 60)
    assert deltas.update([a, b]) == [a, b]
    assert deltas.update([PairCounter("10.0.0.1", "198.51.100.0/24", 3, 260), b]) == [
        PairCounter("10.0.0.1", "198.51.100.0/24", 1, 60)
    ]


def test_raw_deltas_report_changed_keys_and_treat_a_drop_as_a_new_series() -> None:
    a, b = pair_key("10.0.0.1", "198.51.100.9"), pair_key("fd00::1", "2001:db8:1:2::9")
    deltas = RawDeltas()
    assert deltas.update([(a, 2, 200), (b, 0, 0)]) == [(a, 2, 200)]
    assert deltas.update([(a, 2, 200), (b, 1, 60)]) == [(b, 1, 60)]
    assert deltas.update([(a, 1, 50), (b, 1, 60)]) == [(a, 1, 50)]  # LRU evicted, came back
    deltas.seed({a: (10, 1000)})  # totals an earlier run saved
    assert deltas.update([(a, 12, 1100)]) == [(a, 2, 100)]
    assert deltas.totals == {a: (12, 1100)}


def test_raw_keys_decode_to_packed_source_and_destination_network() -> None:
    v4 = pair_key("10.0.0.1", "198.51.100.77")
    v6 = pair_key("fd00::1", "2001:db8:1:2:3:4:5:6")
    assert source_bytes(v4) == bytes([10, 0, 0, 1])
    assert dst_net_bytes(v4) == bytes([198, 51, 100, 0])
    assert source_bytes(v6) == ipaddress.ip_address("fd00::1").packed
    assert dst_net_bytes(v6) == ipaddress.ip_address("2001:db8:1:2::").packed
    assert source_bytes(encode_addr("192.168.1.2")) == bytes([192, 168, 1, 2])
    for key in (v4, v6):  # the same as the typed decoders say
        src = decode_addr(key[:16])
        net = decode_dst_net(key[16:], src.version == 4)
        assert source_bytes(key) == src.packed
        assert dst_net_bytes(key) == ipaddress.ip_network(net).network_address.packed


def test_missing_kernel_headers_are_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    with pytest.raises(HeadersMissing, match=r"no kernel headers for 9\.9\.9-test"):
        find_build_env("9.9.9-test", modules_dir=tmp_path)
    (tmp_path / "9.9.9-test" / "build").mkdir(parents=True)
    with pytest.raises(HeadersMissing, match="holds no kernel headers bcc can use"):
        find_build_env("9.9.9-test", modules_dir=tmp_path)


def test_debian_split_headers_are_joined_for_bcc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    common = tmp_path / "linux-headers-6.1.0-57-common"
    flavour = tmp_path / "linux-headers-6.1.0-57-amd64"
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "kconfig.h").write_text("")
    (flavour / "include" / "generated").mkdir(parents=True)
    (flavour / "include" / "generated" / "autoconf.h").write_text("")
    (flavour / "Makefile").write_text(f"include {common}/Makefile\n")
    (tmp_path / "mods" / "6.18-custom").mkdir(parents=True)
    (tmp_path / "mods" / "6.18-custom" / "build").symlink_to(flavour)
    env = find_build_env("6.18-custom", modules_dir=tmp_path / "mods")
    assert env.env == {"BCC_KERNEL_SOURCE": str(common)}
    assert f"-I{flavour}/include/generated/uapi" in env.cflags


# -- the lab ------------------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Lab:
    lan: str
    gw: str
    wan: str
    bpffs: str

    def pin_dir(self, name: str) -> str:
        return f"{self.bpffs}/sluice/{name}"

    def probe(self, name: str, mode: str, **kw: object) -> EbpfProbe:
        iface = "gwlan" if mode == "xdp" else "gwwan"
        return EbpfProbe(iface, mode, HOME_NETS, self.pin_dir(name), netns=self.gw, **kw)  # type: ignore[arg-type]


def _build_lab(lab: Lab) -> None:
    lan, gw, wan = lab.lan, lab.gw, lab.wan
    for ns in (lan, gw, wan):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    # Created inside the namespaces: the root namespace is never touched.
    _ip("-n", lan, "link", "add", "lan0", "address", MAC["lan0"], "type", "veth",
        "peer", "name", "gwlan", "address", MAC["gwlan"], "netns", gw)  # fmt: skip
    _ip("-n", wan, "link", "add", "wan0", "address", MAC["wan0"], "type", "veth",
        "peer", "name", "gwwan", "address", MAC["gwwan"], "netns", gw)  # fmt: skip
    addrs = {
        (lan, "lan0"): [f"{H4A}/24", f"{H4B}/24", f"{H6A}/64", f"{H6B}/64"],
        (gw, "gwlan"): ["10.99.1.1/24", "fd00:99:1::1/64"],
        (gw, "gwwan"): ["10.99.2.1/24", "fd00:99:2::1/64"],
        (wan, "wan0"): [f"{SINK4}/24", f"{SINK4_OTHER_NET}/24", f"{SINK6}/64",
                        f"{SINK6_OTHER_NET}/64"],
    }  # fmt: skip
    for (ns, dev), cidrs in addrs.items():
        for cidr in cidrs:
            _ip("-n", ns, "addr", "add", cidr, "dev", dev, *(["nodad"] if ":" in cidr else []))
        _ip("-n", ns, "link", "set", dev, "up")
    _ip("-n", lan, "route", "add", "default", "via", "10.99.1.1")
    _ip("-n", lan, "-6", "route", "add", "default", "via", "fd00:99:1::1")
    _ip("-n", wan, "route", "add", "default", "via", "10.99.2.1")
    _ip("-n", wan, "-6", "route", "add", "default", "via", "fd00:99:2::1")
    _ip("-n", gw, "route", "add", "10.99.3.0/24", "via", SINK4)
    _ip("-n", gw, "-6", "route", "add", "fd00:99:3::/64", "via", SINK6)
    for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
        subprocess.run(["ip", "netns", "exec", gw, "sysctl", "-qw", key], check=True)
    # Static neighbours: no ARP/NDP races, no first packets parked in a resolution queue.
    neigh = [
        (lan, "lan0", ["10.99.1.1", "fd00:99:1::1"], MAC["gwlan"]),
        (gw, "gwlan", [H4A, H4B, H6A, H6B], MAC["lan0"]),
        (gw, "gwwan", [SINK4, SINK6], MAC["wan0"]),
        (wan, "wan0", ["10.99.2.1", "fd00:99:2::1"], MAC["gwwan"]),
    ]
    for ns, dev, ips, mac in neigh:
        for ip in ips:
            _ip("-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with ebpf_lab("slb") as made:
        yield made


@contextlib.contextmanager
def ebpf_lab(prefix: str) -> Iterator[Lab]:
    """The three namespaces and a private bpffs (tests/verdicts/test_ebpfblock.py too)."""
    require_root_netns()
    reason = probe_unavailable_reason()
    if reason is not None:
        cannot_run(reason)
    if shutil.which("tc") is None:
        cannot_run("needs `tc` (iproute2) for the clsact fallback")
    tag = f"{os.getpid() % 100000}"
    bpffs = tempfile.mkdtemp(prefix="sluice-bpffs-")
    lab = Lab(f"{prefix}-lan-{tag}", f"{prefix}-gw-{tag}", f"{prefix}-wan-{tag}", bpffs)
    mounted = False
    try:
        # A private bpffs: pins made by the tests never land in the host's /sys/fs/bpf.
        subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True, capture_output=True)
        mounted = True
        _build_lab(lab)
        yield lab
    finally:
        for ns in (lab.lan, lab.gw, lab.wan):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        if mounted:
            shutil.rmtree(os.path.join(bpffs, "sluice"), ignore_errors=True)
            subprocess.run(["umount", bpffs], check=False, capture_output=True)
        os.rmdir(bpffs)


class Sink:
    """UDP receivers in the wan namespace; counts datagrams per source address."""

    def __init__(self, ns: str) -> None:
        self.sel = selectors.DefaultSelector()
        self.got: Counter[str] = Counter()
        with inside_netns(ns):
            for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                s = socket.socket(family, socket.SOCK_DGRAM)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                s.bind((addr, PORT))
                s.setblocking(False)
                self.sel.register(s, selectors.EVENT_READ)

    def wait_for(self, expected: Counter[str], deadline_s: float = DEADLINE_S) -> Counter[str]:
        """Receive until `expected` is reached or the deadline passes; returns what came."""
        deadline = time.monotonic() + deadline_s
        while +(expected - self.got) and time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.05):
                self._read_all(key.fileobj)  # type: ignore[arg-type]
        return self.got

    def drain_quiet(self, quiet_s: float = 0.3) -> None:
        """Collect stragglers: stop once nothing has come for `quiet_s`."""
        while events := self.sel.select(timeout=quiet_s):
            for key, _ in events:
                self._read_all(key.fileobj)  # type: ignore[arg-type]

    def _read_all(self, sock: socket.socket) -> None:
        while True:
            try:
                _, peer = sock.recvfrom(65535)
            except BlockingIOError:
                return
            self.got[str(ipaddress.ip_address(peer[0]))] += 1

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


@pytest.fixture
def sink(lab: Lab) -> Iterator[Sink]:
    s = Sink(lab.wan)
    try:
        yield s
    finally:
        s.close()


def send_udp(lab: Lab, src: str, dst: str, count: int, payload: int) -> None:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    with inside_netns(lab.lan):
        s = socket.socket(family, socket.SOCK_DGRAM)
    with s:
        s.bind((src, 0))
        data = b"x" * payload
        for _ in range(count):
            s.sendto(data, (dst, PORT))


def ip_bytes_udp(src: str, count: int, payload: int) -> tuple[int, int]:
    """(packets, IP bytes) on the wire for `count` UDP datagrams, fragments included."""
    v6 = ":" in src
    l3 = 40 if v6 else 20
    frag_hdr = 8 if v6 else 0
    udp = 8 + payload
    if l3 + udp <= MTU:
        return count, count * (l3 + udp)
    per_frag = (MTU - l3 - frag_hdr) // 8 * 8
    frags = -(-udp // per_frag)
    return count * frags, count * (udp + frags * (l3 + frag_hdr))


# Known traffic: (source, destination, datagrams, payload bytes). Host A of each family talks
# to two external networks; 3000-byte datagrams are fragmented (each fragment counts).
TRAFFIC = [
    (H4A, SINK4, 37, 100),
    (H4A, SINK4_OTHER_NET, 11, 1000),
    (H4B, SINK4, 53, 700),
    (H4B, SINK4, 5, 3000),
    (H6A, SINK6, 41, 200),
    (H6A, SINK6_OTHER_NET, 7, 1200),
    (H6B, SINK6, 29, 1400),
    (H6B, SINK6, 4, 3000),
]


def expected_hosts(traffic: list[tuple[str, str, int, int]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for src, _dst, count, payload in traffic:
        p, b = ip_bytes_udp(src, count, payload)
        old = out.get(src, (0, 0))
        out[src] = (old[0] + p, old[1] + b)
    return out


def send_all(lab: Lab, sink: Sink, traffic: list[tuple[str, str, int, int]]) -> None:
    want: Counter[str] = Counter()
    for src, dst, count, payload in traffic:
        send_udp(lab, src, dst, count, payload)
        want[src] += count
    got = sink.wait_for(want)
    assert got >= want, f"traffic did not arrive: sent {dict(want)}, received {dict(got)}"


def host_map(probe: EbpfProbe) -> dict[str, tuple[int, int]]:
    return {c.ip: (c.packets, c.bytes) for c in probe.read_counters()}


# struct tcp_info (include/uapi/linux/tcp.h): tcpi_segs_out and tcpi_bytes_sent (Linux 4.19+).
_TCPI_LEN = 232
_TCPI_SEGS_OUT = 136
_TCPI_BYTES_SENT = 200


def tcp_sent(sock: socket.socket) -> tuple[int, int]:
    """(segments, payload bytes incl. retransmissions) this TCP socket has sent."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_LEN)
    (segs,) = struct.unpack_from("=I", info, _TCPI_SEGS_OUT)
    (sent,) = struct.unpack_from("=Q", info, _TCPI_BYTES_SENT)
    return segs, sent


def xdp_attached(lab: Lab, iface: str) -> bool:
    out = subprocess.run(["ip", "-n", lab.gw, "-j", "link", "show", "dev", iface],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return "xdp" in json.loads(out)[0]


def tcx_count(lab: Lab, iface: str, hook: sysbpf.AttachType) -> int:
    with inside_netns(lab.gw):
        return sysbpf.prog_query_count(socket.if_nametoindex(iface), hook)


def clsact_filters(lab: Lab, iface: str) -> str:
    return subprocess.run(["tc", "-n", lab.gw, "filter", "show", "dev", iface, "egress"],
                          capture_output=True, text=True).stdout  # fmt: skip


def nothing_attached(lab: Lab) -> bool:
    return (
        not xdp_attached(lab, "gwlan")
        and tcx_count(lab, "gwwan", sysbpf.AttachType.TCX_EGRESS) == 0
        and not clsact_filters(lab, "gwwan").strip()
    )


def poll(condition: object, deadline_s: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(condition())  # type: ignore[operator]


# -- privileged tests -----------------------------------------------------------------------


@pytest.mark.privileged
def test_probe_is_available_here(lab: Lab) -> None:
    assert probe_unavailable_reason() is None


@pytest.mark.privileged
@pytest.mark.parametrize(("mode", "tc_attach"), [("xdp", "auto"), ("tc", "tcx"), ("tc", "clsact")])
def test_counts_are_exact_per_host_ipv4_and_ipv6(
    lab: Lab, sink: Sink, mode: str, tc_attach: str
) -> None:
    name = f"exact-{mode}-{tc_attach}"
    probe = lab.probe(name, mode, tc_attach=tc_attach)
    try:
        with probe:
            assert probe.attach_kind == ("xdp" if mode == "xdp" else tc_attach)
            # Internal destinations are not egress: never counted.
            send_udp(lab, H4A, "10.99.1.1", 9, 64)
            send_udp(lab, H6A, "fd00:99:1::1", 9, 64)
            send_all(lab, sink, TRAFFIC)
            assert host_map(probe) == expected_hosts(TRAFFIC)

            pairs = {(p.src, p.dst_net): (p.packets, p.bytes) for p in probe.read_pairs()}
            assert pairs[(H4A, "10.99.2.0/24")] == ip_bytes_udp(H4A, 37, 100)
            assert pairs[(H4A, "10.99.3.0/24")] == ip_bytes_udp(H4A, 11, 1000)
            assert pairs[(H6A, "fd00:99:2::/64")] == ip_bytes_udp(H6A, 41, 200)
            assert pairs[(H6A, "fd00:99:3::/64")] == ip_bytes_udp(H6A, 7, 1200)
            assert len(pairs) == 6
            # The runtime's raw reads carry the same counts under undecoded keys.
            raw = {key: (p, b) for key, p, b in probe.read_raw("pairs")}
            assert raw == {pair_key(s, d.split("/")[0]): v for (s, d), v in pairs.items()}
            raw_hosts = {key: (p, b) for key, p, b in probe.read_raw("hosts")}
            assert raw_hosts == {encode_addr(h): v for h, v in host_map(probe).items()}
            stats = probe.read_stats()
            assert stats.counted == sum(p for p, _ in expected_hosts(TRAFFIC).values())
            if mode == "xdp":
                assert stats.not_outbound >= 18
            assert stats.dropped == stats.map_full == stats.malformed == 0
        assert nothing_attached(lab)
    finally:
        probe.remove_pins()


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["xdp", "tc"])
def test_tcp_stream_counts_every_wire_segment(lab: Lab, mode: str) -> None:
    """A TCP upload: with TC the gateway forwards 64 KiB GSO skbs; each must count as the
    segments that go on the wire (headers repeated), not as one packet."""
    payload = 4 << 20
    with inside_netns(lab.wan):
        server = socket.create_server((SINK4, PORT))
    with inside_netns(lab.lan):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    received: list[int] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(DEADLINE_S)
            total = 0
            while chunk := conn.recv(1 << 20):
                total += len(chunk)
            received.append(total)

    probe = lab.probe(f"tcp-{mode}", mode)
    try:
        with probe, server, client:
            server.settimeout(DEADLINE_S)
            client.settimeout(DEADLINE_S)
            reader = threading.Thread(target=serve, daemon=True)
            reader.start()
            client.bind((H4A, 0))
            client.connect((SINK4, PORT))
            client.sendall(b"y" * payload)
            client.shutdown(socket.SHUT_WR)
            reader.join(DEADLINE_S)
            assert received == [payload]

            # Exact, retransmissions included: the counters must equal what the client's TCP
            # says it put on the wire. Every segment carries 52 B of headers (IP 20 + TCP 20 +
            # timestamps 12); the SYN has 8 B more (MSS, SACK-permitted, window scale). Polled:
            # the ACK of the server's FIN may still be on its way.
            def settled() -> bool:
                return host_map(probe).get(H4A, (0, 0))[0] == tcp_sent(client)[0]

            assert poll(settled), (host_map(probe), tcp_sent(client))
            packets, total = host_map(probe)[H4A]
            _, bytes_sent = tcp_sent(client)
            assert bytes_sent >= payload
            assert total == bytes_sent + 52 * packets + 8, (packets, total, bytes_sent)
            stats = probe.read_stats()
            assert packets >= payload // 1448
            if mode == "tc":
                assert stats.seen < packets, "no GSO skb reached TC: the test proves nothing"
    finally:
        probe.remove_pins()


# A short block list is scanned from the program's copy; a long one is looked up in the map.
BLOCK_PADDING = {"short": [], "long": [f"10.99.1.{100 + i}" for i in range(BLOCK_SCAN + 4)]}


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["xdp", "tc"])
@pytest.mark.parametrize("length", ["short", "long"])
def test_block_map_drops_a_host_and_unblock_restores_it(
    lab: Lab, sink: Sink, mode: str, length: str
) -> None:
    probe = lab.probe(f"block-{mode}-{length}", mode)
    traffic = [(H4A, SINK4, 20, 300), (H4B, SINK4, 20, 300),
               (H6A, SINK6, 20, 300), (H6B, SINK6, 20, 300)]  # fmt: skip
    padding = dict.fromkeys(BLOCK_PADDING[length], 0)
    try:
        with probe:
            for ip in padding:
                probe.block(ip)
            probe.block(H4B)
            probe.block(ipaddress.ip_address(H6B))
            probe.block(H6B)  # idempotent
            for src, dst, count, size in traffic:
                send_udp(lab, src, dst, count, size)
            sink.wait_for(Counter({H4A: 20, H6A: 20}))
            assert poll(lambda: probe.blocked() == {H4B: 20, H6B: 20} | padding), probe.blocked()
            sink.drain_quiet()
            assert sink.got == Counter({H4A: 20, H6A: 20})
            assert set(host_map(probe)) == {H4A, H6A}
            assert probe.read_stats().dropped == 40

            assert probe.unblock(H4B) and probe.unblock(H6B)
            assert not probe.unblock(H6B)
            assert probe.blocked() == padding
            send_all(lab, sink, traffic)
            hosts = host_map(probe)
            assert hosts[H4B] == ip_bytes_udp(H4B, 20, 300)
            assert hosts[H6B] == ip_bytes_udp(H6B, 20, 300)
            assert hosts[H4A] == ip_bytes_udp(H4A, 40, 300)
    finally:
        probe.remove_pins()


@pytest.mark.privileged
def test_counters_and_block_list_survive_a_restart(lab: Lab, sink: Sink) -> None:
    first = lab.probe("restart", "xdp")
    second = lab.probe("restart", "xdp")
    try:
        with first:
            send_all(lab, sink, [(H4A, SINK4, 10, 500)])
            first.block(H6B)
        assert not xdp_attached(lab, "gwlan")
        assert os.path.exists(pin_path(first.pin_dir, "hosts"))
        with second:
            assert host_map(second) == {H4A: ip_bytes_udp(H4A, 10, 500)}
            assert second.blocked() == {H6B: 0}
            send_all(lab, sink, [(H4A, SINK4, 5, 500)])
            assert host_map(second) == {H4A: ip_bytes_udp(H4A, 15, 500)}
        second.remove_pins()
        assert not os.path.exists(second.pin_dir)
    finally:
        first.remove_pins()


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["xdp", "tc"])
def test_program_is_detached_when_the_block_raises(lab: Lab, mode: str) -> None:
    probe = lab.probe(f"raise-{mode}", mode)
    try:
        with pytest.raises(RuntimeError, match="boom"), probe:
            if mode == "xdp":
                assert xdp_attached(lab, "gwlan")
            else:
                assert tcx_count(lab, "gwwan", sysbpf.AttachType.TCX_EGRESS) == 1
            raise RuntimeError("boom")
        assert nothing_attached(lab)
        assert not probe.attached
        probe.detach()  # idempotent
    finally:
        probe.remove_pins()


KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from probes.ebpf.loader import EbpfProbe
    netns, pin_root, tc_attach = sys.argv[1:4]
    xdp = EbpfProbe("gwlan", "xdp", {home!r}, pin_root + "/xdp", netns=netns).attach()
    tc = EbpfProbe("gwwan", "tc", {home!r}, pin_root + "/tc", netns=netns,
                   tc_attach=tc_attach).attach()
    print(xdp.attach_kind, tc.attach_kind, flush=True)
    time.sleep(120)
    """
)


def _start_and_kill(lab: Lab, tc_attach: str) -> None:
    code = KILLED_CHILD.format(root=str(ROOT), home=HOME_NETS)
    child = subprocess.Popen(
        [sys.executable, "-c", code, lab.gw, lab.pin_dir("killed"), tc_attach],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["xdp", tc_attach]
        assert xdp_attached(lab, "gwlan")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.privileged
def test_sigkill_leaves_no_program_attached(lab: Lab) -> None:
    """BPF links die with the process: no stale XDP or tcx program after a SIGKILL."""
    try:
        _start_and_kill(lab, "tcx")
        assert poll(lambda: nothing_attached(lab)), "programs outlived the killed sensor"
    finally:
        for sub in ("xdp", "tc"):
            EbpfProbe("x", pin_dir=lab.pin_dir(f"killed/{sub}")).remove_pins()


@pytest.mark.privileged
def test_stale_clsact_filter_is_taken_over_and_removed(lab: Lab) -> None:
    """A clsact filter (kernels without tcx) survives SIGKILL; the next start replaces it
    and its detach leaves the interface clean."""
    probe = lab.probe("killed/tc", "tc", tc_attach="clsact")
    try:
        _start_and_kill(lab, "clsact")
        assert "sluice_tc" in clsact_filters(lab, "gwwan")
        with probe:
            assert clsact_filters(lab, "gwwan").count("sluice_tc") == 1
        assert poll(lambda: nothing_attached(lab))
    finally:
        subprocess.run(["tc", "-n", lab.gw, "qdisc", "del", "dev", "gwwan", "clsact"],
                       capture_output=True)  # fmt: skip
        probe.remove_pins()
        EbpfProbe("x", pin_dir=lab.pin_dir("killed/xdp")).remove_pins()


@pytest.mark.privileged
def test_pins_of_another_layout_are_refused_clearly(lab: Lab) -> None:
    donor = lab.probe("layout-donor", "xdp")
    probe = lab.probe("layout", "xdp")
    try:
        with donor:
            pass
        # Put the block list (key 16 B, value 8 B) where the host counters belong.
        os.makedirs(probe.pin_dir, exist_ok=True)
        fd = sysbpf.obj_get(pin_path(donor.pin_dir, "blocked"))
        try:
            sysbpf.obj_pin(fd, pin_path(probe.pin_dir, "hosts"))
        finally:
            os.close(fd)
        with pytest.raises(EbpfError, match=r"hosts_v1 has another layout .* value 8 B"):
            probe.attach()
        assert not probe.attached
        assert not xdp_attached(lab, "gwlan")
    finally:
        probe.remove_pins()
        donor.remove_pins()


@pytest.mark.privileged
def test_unknown_interface_is_a_clear_error(lab: Lab) -> None:
    probe = EbpfProbe("nope0", "xdp", HOME_NETS, lab.pin_dir("nope"), netns=lab.gw)
    try:
        with pytest.raises(EbpfError, match=f"no interface 'nope0' in network namespace {lab.gw}"):
            probe.attach()
    finally:
        probe.remove_pins()
