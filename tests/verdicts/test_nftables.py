"""The nftables backend against the real kernel, in network namespaces.

Lab (built once per module, torn down always)::

    client ns                      gateway ns (nft, forwarding)        server ns
    10.77.1.2, 10.77.1.3  --veth-- 10.77.1.1 | 10.77.2.1  --veth--     10.77.2.2
    fd77:1::2, fd77:1::3           fd77:1::1 | fd77:2::1               fd77:2::2
                                                                       203.0.113.10, .11
                                                                       198.51.100.7
                                                                       2001:db8:1::10, ::11

A TCP listener in the server namespace answers on every address; "reachable" is a real TCP
connect from a chosen client address through the gateway. Every test starts from an empty
gateway ruleset. Nothing here touches the root namespace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pcaps._lib.gatewaylab import accept_in_thread
from probes.ebpf.netns import inside_netns
from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError
from sensor.verdicts.nftables import NftablesBackend, SetSizes
from tests.conftest import require_module, require_root_netns, require_tool

PORT = 8080
HOST_A, HOST_B = "10.77.1.2", "10.77.1.3"
HOST_A6, HOST_B6 = "fd77:1::2", "fd77:1::3"
DEST_1, DEST_2, DEST_NET_MEMBER = "203.0.113.10", "203.0.113.11", "198.51.100.7"
DEST6_1, DEST6_2 = "2001:db8:1::10", "2001:db8:1::11"


@dataclass
class Lab:
    client: str
    gateway: str
    server: str

    def nft(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.gateway, "nft", *args],
            input=stdin, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, f"nft {' '.join(args)}: {done.stderr}"
        return done.stdout


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _build(lab: Lab) -> None:
    c, g, s = lab.client, lab.gateway, lab.server
    for ns in (c, g, s):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", g)
    _ip("-n", g, "link", "add", "g1", "type", "veth", "peer", "name", "s0", "netns", s)
    addrs = {
        (c, "c0"): [f"{HOST_A}/24", f"{HOST_B}/24", f"{HOST_A6}/64", f"{HOST_B6}/64"],
        (g, "g0"): ["10.77.1.1/24", "fd77:1::1/64"],
        (g, "g1"): ["10.77.2.1/24", "fd77:2::1/64"],
        (s, "s0"): ["10.77.2.2/24", "fd77:2::2/64", f"{DEST_1}/32", f"{DEST_2}/32",
                    f"{DEST_NET_MEMBER}/32", f"{DEST6_1}/128", f"{DEST6_2}/128"],
    }  # fmt: skip
    for (ns, dev), items in addrs.items():
        for addr in items:
            _ip("-n", ns, "addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
        _ip("-n", ns, "link", "set", dev, "up")
    _ip("-n", c, "route", "add", "default", "via", "10.77.1.1")
    _ip("-n", c, "-6", "route", "add", "default", "via", "fd77:1::1")
    _ip("-n", s, "route", "add", "default", "via", "10.77.2.1")
    _ip("-n", s, "-6", "route", "add", "default", "via", "fd77:2::1")
    for net in ("203.0.113.0/24", "198.51.100.0/24"):
        _ip("-n", g, "route", "add", net, "via", "10.77.2.2")
    _ip("-n", g, "-6", "route", "add", "2001:db8:1::/64", "via", "fd77:2::2")
    # forwarding inside the gateway namespace only (per-netns sysctls)
    subprocess.run(
        ["ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv4.ip_forward=1",
         "net.ipv6.conf.all.forwarding=1"], check=True, capture_output=True,
    )  # fmt: skip


def _serve(lab: Lab) -> socket.socket:
    """A dual-stack listener in the server namespace, accepting and closing in a thread."""
    with inside_netns(lab.server):
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", PORT))
    listener.listen(128)

    accept_in_thread(listener, socket.socket.close)
    return listener


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root_netns()
    require_tool("nft")
    require_module("nftables")
    tag = os.getpid() % 100000
    lab = Lab(f"slnft-c-{tag}", f"slnft-g-{tag}", f"slnft-s-{tag}")
    listener: socket.socket | None = None
    try:
        _build(lab)
        listener = _serve(lab)
        for src, dst in ((HOST_A, DEST_1), (HOST_A6, DEST6_1)):  # neighbours resolved
            assert _wait_reachable(lab, src, dst), f"lab broken: {src} cannot reach {dst}"
        yield lab
    finally:
        if listener is not None:
            listener.close()
        for ns in (lab.client, lab.gateway, lab.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def backend(lab: Lab) -> Iterator[NftablesBackend]:
    lab.nft("flush", "ruleset")
    nft = NftablesBackend(netns=lab.gateway)
    try:
        yield nft
    finally:
        nft.close()
        lab.nft("flush", "ruleset")


def reachable(lab: Lab, src: str, dst: str, timeout: float = 1.0) -> bool:
    """A TCP connect from `src` in the client namespace to `dst`:PORT through the gateway."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    with inside_netns(lab.client):
        sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.bind((src, 0))
        sock.settimeout(timeout)
        return sock.connect_ex((dst, PORT)) == 0


def _wait_reachable(lab: Lab, src: str, dst: str, deadline_s: float = 8.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if reachable(lab, src, dst, timeout=0.5):
            return True
    return False


def verdict(vid: str, action: str, target: str, ttl: float = 600.0) -> Verdict:
    return Verdict(
        id=vid, action=action, target=target, target_kind=target_kind(target), ttl=ttl,
        decided_at=time.time(), reason="test", severity="high", confidence=1.0,
        finding_ids=(), incident_id="inc-1", policy_rule="test", mode="enforce",
    )  # fmt: skip


def counter(lab: Lab, name: str) -> int:
    listing = json.loads(lab.nft("-j", "list", "counter", "inet", "sluice", name))
    return int(next(o["counter"]["packets"] for o in listing["nftables"] if "counter" in o))


def rules(lab: Lab) -> list[str]:
    listing = json.loads(lab.nft("-j", "list", "table", "inet", "sluice"))
    return [json.dumps(o["rule"]["expr"]) for o in listing["nftables"] if "rule" in o]


def held_ids(nft: NftablesBackend) -> dict[str, str | None]:
    return {h.target: h.verdict_id for h in nft.held()}


# -- enforcement ---------------------------------------------------------------------------


def test_blocked_host_stops_and_another_host_keeps_flowing(
    lab: Lab, backend: NftablesBackend
) -> None:
    assert reachable(lab, HOST_A, DEST_1)
    backend.block(verdict("v-host", "block_host", HOST_A), 600)
    assert not reachable(lab, HOST_A, DEST_1)
    assert not reachable(lab, HOST_A, DEST_2)  # a blocked host reaches nowhere
    assert reachable(lab, HOST_B, DEST_1)
    assert counter(lab, "blocked_hosts") > 0
    assert counter(lab, "blocked_destinations") == 0
    (held,) = backend.held()
    assert (held.target, held.kind, held.verdict_id) == (HOST_A, "hosts", "v-host")
    assert 590 <= held.remaining <= 600


def test_destination_blocks_ipv4_and_ipv6(lab: Lab, backend: NftablesBackend) -> None:
    backend.block(verdict("v-d4", "block_destination", DEST_1), 600)
    backend.block(verdict("v-d6", "block_destination", DEST6_1), 600)
    assert not reachable(lab, HOST_A, DEST_1)
    assert not reachable(lab, HOST_B6, DEST6_1)
    assert reachable(lab, HOST_A, DEST_2)
    assert reachable(lab, HOST_A6, DEST6_2)
    assert counter(lab, "blocked_destinations") > 0
    assert held_ids(backend) == {DEST_1: "v-d4", DEST6_1: "v-d6"}


def test_ipv6_host_block(lab: Lab, backend: NftablesBackend) -> None:
    backend.block(verdict("v-h6", "block_host", HOST_A6), 600)
    assert not reachable(lab, HOST_A6, DEST6_2)
    assert reachable(lab, HOST_B6, DEST6_2)
    assert reachable(lab, HOST_A, DEST_2)  # its IPv4 address is another target
    assert held_ids(backend) == {HOST_A6: "v-h6"}


def test_block_lifts_at_expiry(lab: Lab, backend: NftablesBackend) -> None:
    backend.block(verdict("v-short", "block_host", HOST_A, ttl=2), 2)
    started = time.monotonic()
    assert not reachable(lab, HOST_A, DEST_1, timeout=0.5)
    assert _wait_reachable(lab, HOST_A, DEST_1, deadline_s=8.0)
    assert time.monotonic() - started >= 1.0  # lifted by the timeout, not at once
    assert backend.held() == []


def test_cidr_destination_and_overlaps(lab: Lab, backend: NftablesBackend) -> None:
    backend.block(verdict("v-24", "block_destination", "198.51.100.0/24"), 300)
    assert not reachable(lab, HOST_A, DEST_NET_MEMBER)
    assert reachable(lab, HOST_A, DEST_1)
    # inside the /24 and no longer: already enforced, nothing added
    backend.block(verdict("v-25", "block_destination", "198.51.100.0/25"), 100)
    assert held_ids(backend) == {"198.51.100.0/24": "v-24"}
    # inside and longer: the kernel cannot hold both; refused as worth retrying later
    with pytest.raises(BackendError, match=r"lies inside 198\.51\.100\.0/24") as exc:
        backend.block(verdict("v-25", "block_destination", "198.51.100.0/25"), 900)
    assert exc.value.transient
    # a wider network lasting longer replaces the narrower one in the same batch
    backend.block(verdict("v-23", "block_destination", "198.51.100.0/23"), 900)
    assert held_ids(backend) == {"198.51.100.0/23": "v-23"}
    assert not reachable(lab, HOST_A, DEST_NET_MEMBER)
    # a wider one that would cut a longer block short is refused
    with pytest.raises(BackendError, match="outlasts"):
        backend.block(verdict("v-22", "block_destination", "198.51.100.0/22"), 60)
    backend.block(verdict("v-n6", "block_destination", "2001:db8:1::/64"), 300)
    assert not reachable(lab, HOST_A6, DEST6_2)


def test_refresh_extends_timeout_and_replaces_comment(lab: Lab, backend: NftablesBackend) -> None:
    backend.block(verdict("v-old", "block_destination", DEST_1, ttl=30), 30)
    backend.block(verdict("v-new", "block_destination", DEST_1, ttl=900), 900)
    (held,) = backend.held()
    assert held.verdict_id == "v-new"
    assert held.remaining > 800
    backend.block(verdict("v-net", "block_destination", "198.51.100.0/24", ttl=30), 30)
    backend.block(verdict("v-net2", "block_destination", "198.51.100.0/24"), 900)
    net = next(h for h in backend.held() if h.target == "198.51.100.0/24")
    assert (net.verdict_id, net.remaining > 800) == ("v-net2", True)


def test_unblock_removes_only_its_element(lab: Lab, backend: NftablesBackend) -> None:
    host, dest = verdict("v-a", "block_host", HOST_A), verdict("v-b", "block_destination", DEST_1)
    net = verdict("v-c", "block_destination", "198.51.100.0/24")
    for v in (host, dest, net):
        backend.block(v, 600)
    backend.unblock(host)
    assert held_ids(backend) == {DEST_1: "v-b", "198.51.100.0/24": "v-c"}
    assert reachable(lab, HOST_A, DEST_2)
    assert not reachable(lab, HOST_A, DEST_1)
    backend.unblock(host)  # absent: success
    # a verdict whose element a later verdict has taken over removes nothing
    backend.unblock(verdict("v-stale", "block_destination", DEST_1))
    backend.unblock(verdict("v-stale", "block_destination", "198.51.100.0/24"))
    assert held_ids(backend) == {DEST_1: "v-b", "198.51.100.0/24": "v-c"}
    backend.unblock(net)
    assert held_ids(backend) == {DEST_1: "v-b"}
    assert reachable(lab, HOST_A, DEST_NET_MEMBER)


# -- table ownership, bootstrap, reconcile -------------------------------------------------


def test_bootstrap_twice_keeps_one_copy_of_each_rule(lab: Lab, backend: NftablesBackend) -> None:
    backend.bootstrap()
    first = rules(lab)
    assert len(first) == 16  # forward 8, input 4, output 4
    backend.block(verdict("v-a", "block_host", HOST_A), 600)
    backend.bootstrap()
    backend.bootstrap()
    assert rules(lab) == first
    assert held_ids(backend) == {HOST_A: "v-a"}  # elements survive a bootstrap
    assert not reachable(lab, HOST_A, DEST_1)


def test_flush_ruleset_is_repaired_by_reconcile(lab: Lab, backend: NftablesBackend) -> None:
    host = verdict("v-host", "block_host", HOST_A, ttl=500)
    dest = verdict("v-d6", "block_destination", DEST6_1, ttl=400)
    net = verdict("v-net", "block_destination", "198.51.100.0/24", ttl=300)
    for v in (host, dest, net):
        backend.block(v, v.remaining(time.time()))
    lab.nft("flush", "ruleset")  # what nftables.service start/reload/stop does
    assert reachable(lab, HOST_A, DEST_1)
    assert backend.held() == []

    report = backend.reconcile([(v, v.remaining(time.time())) for v in (host, dest, net)])
    assert (report.added, report.removed, report.failed) == (3, 0, [])
    held = {h.target: h for h in backend.held()}
    assert {t: h.verdict_id for t, h in held.items()} == {
        HOST_A: "v-host", DEST6_1: "v-d6", "198.51.100.0/24": "v-net"}  # fmt: skip
    # the remaining TTL, not the original one again
    assert host.remaining(time.time()) - 2 <= held[HOST_A].remaining <= 500
    assert net.remaining(time.time()) - 2 <= held["198.51.100.0/24"].remaining <= 300
    assert not reachable(lab, HOST_A, DEST_2)
    assert not reachable(lab, HOST_B6, DEST6_1)
    assert len(rules(lab)) == 16

    again = backend.reconcile([(v, v.remaining(time.time())) for v in (host, dest, net)])
    assert (again.kept, again.added, again.refreshed, again.removed) == (3, 0, 0, 0)


def test_reconcile_removes_only_sluice_elements_not_desired(
    lab: Lab, backend: NftablesBackend
) -> None:
    lab.nft("-f", "-", stdin=(
        "table inet site { set mine { type ipv4_addr; flags timeout; "
        f"elements = {{ {HOST_A} timeout 1h comment \"v=v-host\" }}; }}; }}\n"))  # fmt: skip
    host = verdict("v-host", "block_host", HOST_A)
    gone = verdict("v-gone", "block_destination", DEST_1)
    backend.block(host, 600)
    backend.block(gone, 600)
    backend.block(verdict("v-net", "block_destination", "198.51.100.0/24"), 600)
    report = backend.reconcile([(host, 600), (verdict("v-new", "block_destination", DEST_2), 60)])
    assert (report.removed, report.added) == (2, 1)
    assert held_ids(backend) == {HOST_A: "v-host", DEST_2: "v-new"}
    assert HOST_A in lab.nft("list", "set", "inet", "site", "mine")  # not Sluice's: untouched
    assert reachable(lab, HOST_B, DEST_1)


def test_held_reads_only_sluice_table(lab: Lab, backend: NftablesBackend) -> None:
    lab.nft("-f", "-", stdin=(
        "table ip other { set s { type ipv4_addr; flags timeout; "
        f"elements = {{ {DEST_1} timeout 1h comment \"v=x\" }}; }}; }}\n"))  # fmt: skip
    assert backend.held() == []  # no table yet: nothing held, no error
    backend.block(verdict("v-b", "block_destination", DEST_2), 60)
    assert held_ids(backend) == {DEST_2: "v-b"}


def test_full_set_is_a_clear_non_transient_error(lab: Lab) -> None:
    lab.nft("flush", "ruleset")
    with NftablesBackend(netns=lab.gateway, sizes=SetSizes(hosts=2)) as nft:
        nft.block(verdict("v-1", "block_host", "10.77.1.20"), 60)
        nft.block(verdict("v-2", "block_host", "10.77.1.21"), 60)
        with pytest.raises(BackendError, match=r"hosts_v4 \(2 elements\) is full") as exc:
            nft.block(verdict("v-3", "block_host", "10.77.1.22"), 60)
        assert not exc.value.transient
        nft.block(verdict("v-1b", "block_host", "10.77.1.20"), 120)  # a refresh still fits
        assert len(nft.held()) == 2
    lab.nft("flush", "ruleset")


# -- refusals that need no kernel ----------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target", "message"),
    [
        ("block_destination", "transfer.example", "not names"),
        ("alert", "203.0.113.9", "only alerts"),
    ],
)
def test_what_nftables_cannot_block_is_refused_for_good(
    action: str, target: str, message: str
) -> None:
    nft = NftablesBackend(netns="slnft-never-created")
    with pytest.raises(BackendError, match=message) as exc:
        nft.block(verdict("v-x", action, target), 60)
    assert not exc.value.transient
    nft.close()


def test_missing_namespace_is_a_non_transient_error() -> None:
    with NftablesBackend(netns="slnft-never-created") as nft:
        with pytest.raises(BackendError, match="cannot enter network namespace") as exc:
            nft.held()
        assert not exc.value.transient
