"""Discovery of what the sensor must never block: the parsers on fixed samples of each
source, then `discover_protected` for real inside network namespaces this test makes (nothing
changes in the root namespace)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.ebpf.netns import inside_netns
from sensor.verdicts.guards import PROTECTED, GuardConfig, Guards, ProtectedSet
from sensor.verdicts.protect import (
    discover_protected,
    parse_ip_addr,
    parse_ip_route,
    parse_ipv6_route,
    parse_proc_route,
    parse_resolv_conf,
)
from tests.conftest import require_root_netns
from tests.verdicts.test_guards import T0, verdict

PROC_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth1\t00000000\tFE00000A\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth2\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
"""

IPV6_ROUTE = """\
fd770000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
fd770000000000000000000000000001 00000400 00000003 00000000 00000003 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
"""


def test_proc_route_gives_the_default_gateways_in_host_byte_order() -> None:
    # little-endian hosts write 10.0.0.1 as 0100000A; the test runs on one (x86-64, arm64)
    assert parse_proc_route(PROC_ROUTE) == ["10.0.0.1", "10.0.0.254"]


def test_ipv6_route_gives_default_next_hops_and_skips_the_unreachable_default() -> None:
    assert parse_ipv6_route(IPV6_ROUTE) == ["fd77::1"]


def test_ip_json_parsers() -> None:
    addr = (
        '[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"}]},'
        '{"ifname":"eth0","addr_info":[{"family":"inet6","local":"fe80::1"}]},{"ifname":"x"}]'
    )
    assert parse_ip_addr(addr) == ["127.0.0.1", "fe80::1"]
    route = (
        '[{"dst":"default","gateway":"10.0.0.1"},'
        '{"dst":"default","nexthops":[{"gateway":"10.0.1.1"},{"gateway":"10.0.2.1"}]}]'
    )
    assert parse_ip_route(route) == ["10.0.0.1", "10.0.1.1", "10.0.2.1"]
    assert parse_ip_route("") == []


def test_resolv_conf_nameservers() -> None:
    text = "# comment\nsearch corp.example\nnameserver 10.0.0.53 # main\n;nameserver 9.9.9.9\n"
    text += "nameserver fe80::53%eth0\noptions edns0\n"
    assert parse_resolv_conf(text) == ["10.0.0.53", "fe80::53%eth0"]


def test_missing_sources_are_reported_not_raised(tmp_path: Path) -> None:
    found = discover_protected(
        resolv_confs=(str(tmp_path / "none.conf"),),
        proc_net=str(tmp_path),
        ip=str(tmp_path / "no-ip"),
    )
    assert found.addresses == found.gateways == found.dns_servers == ()
    problems = "\n".join(found.problems)
    assert "route" in problems and "ipv6_route" in problems
    assert "no-ip" in problems and "no nameserver" in problems


@pytest.fixture
def namespaces() -> Iterator[str]:
    """A sensor namespace `ns` wired by a veth pair to a gateway namespace `gw`, with an IPv4
    default route (two next hops of different metric) and an IPv6 one."""
    require_root_netns()
    tag = os.getpid() % 100000
    ns, gw = f"slc-prot-{tag}", f"slc-protgw-{tag}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("netns", "add", gw)
        # created inside the namespaces: nothing appears in the root namespace
        ip("-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", gw)
        ip("-n", ns, "link", "set", "va", "addrgenmode", "none")  # no random link-local
        ip("-n", gw, "link", "set", "vb", "addrgenmode", "none")
        ip("-n", ns, "addr", "add", "10.77.0.2/24", "dev", "va")
        ip("-n", ns, "addr", "add", "fd77::2/64", "dev", "va", "nodad")
        ip("-n", gw, "addr", "add", "10.77.0.1/24", "dev", "vb")
        ip("-n", gw, "addr", "add", "fd77::1/64", "dev", "vb", "nodad")
        for name, link in ((ns, "va"), (gw, "vb")):
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "link", "set", link, "up")
        ip("-n", ns, "route", "add", "default", "via", "10.77.0.1")
        ip("-n", ns, "route", "add", "default", "via", "10.77.0.254", "metric", "200")
        ip("-n", ns, "-6", "route", "add", "default", "via", "fd77::1")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", gw], check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_discovery_inside_a_namespace_finds_exactly_its_addresses_gateways_and_dns(
    namespaces: str, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search lab.example\nnameserver 10.77.0.53\nnameserver fd77::53\n")
    with inside_netns(namespaces):
        found = discover_protected(resolv_confs=(str(resolv),))
    assert found.problems == ()
    assert found.addresses == ("10.77.0.2", "127.0.0.1", "::1", "fd77::2")
    assert found.gateways == ("10.77.0.1", "10.77.0.254", "fd77::1")
    assert found.dns_servers == ("10.77.0.53", "fd77::53")

    # and the guards built from it refuse to block any of them, or the subnet around them
    protected = ProtectedSet.of(own=found.addresses, gateways=found.gateways, dns=found.dns_servers)
    g = Guards(GuardConfig(), protected)
    for target in ("10.77.0.1", "10.77.0.254", "10.77.0.53", "10.77.0.0/24", "fd77::/64"):
        result = g.check(verdict(target, "block_host"), T0)
        assert result.rule == PROTECTED, target
    assert g.check(verdict("10.77.1.9", "block_host"), T0).allowed
