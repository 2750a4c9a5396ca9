"""What the sensor must never block, found on the machine it runs on (verdict delivery stage,
runtime edge: this module reads files and runs `ip`).

`discover_protected()` returns the sensor's own addresses, its default gateways and its DNS
servers, from the network namespace of the calling thread:

- own addresses: `ip -j addr show` (every address of every interface, loopback included);
- default gateways: `/proc/thread-self/net/route` (IPv4) and `ipv6_route` (IPv6), plus
  `ip -j route show default` for each family, which also lists every next hop of a multipath
  default (the proc file shows only the first);
- DNS servers: the `nameserver` lines of resolv.conf; with systemd-resolved the stub
  (127.0.0.53) sits in /etc/resolv.conf and the real upstreams in
  /run/systemd/resolve/resolv.conf, so both are read by default.

The guards then refuse any verdict touching these (`ProtectedSet.of(own=..., gateways=...,
dns=...)`). Discovery never raises for a missing file or tool: what it could not read is
listed in `problems`, which the runtime logs at start, so a sensor without `ip` says so
instead of silently protecting less. Zone ids (fe80::1%eth0) are dropped.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC_NET = "/proc/thread-self/net"  # this thread's namespace (ip netns / setns aware)
RESOLV_CONFS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")
RTF_UP = 0x1
RTF_GATEWAY = 0x2
IP_TIMEOUT = 10.0  # seconds for one `ip` call
MAX_ENTRIES = 1024  # per kind: a machine with more addresses than this is misconfigured


@dataclass(frozen=True, slots=True)
class Discovered:
    addresses: tuple[str, ...]  # the sensor's own addresses
    gateways: tuple[str, ...]  # default-route next hops
    dns_servers: tuple[str, ...]
    problems: tuple[str, ...]  # what could not be read, one line each


def _address(text: str) -> str | None:
    """Canonical text of an address (zone id dropped), None when it is none."""
    try:
        return str(ipaddress.ip_address(text.strip().split("%", 1)[0]))
    except ValueError:
        return None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    seen = {v for v in values if v}
    return tuple(sorted(seen, key=lambda v: (":" in v, ipaddress.ip_address(v))))[:MAX_ENTRIES]


def parse_proc_route(text: str) -> list[str]:
    """IPv4 default gateways from /proc/net/route: destination and mask 0, flags UP and
    GATEWAY; addresses are hex in host byte order."""
    gateways: list[str] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags = (int(fields[i], 16) for i in (1, 2, 3))
            mask = int(fields[7], 16)
        except ValueError:
            continue
        if destination == 0 and mask == 0 and flags & RTF_UP and flags & RTF_GATEWAY:
            gateways.append(socket.inet_ntoa(struct.pack("=I", gateway)))
    return gateways


def parse_ipv6_route(text: str) -> list[str]:
    """IPv6 default gateways from /proc/net/ipv6_route: ::/0 with a next hop and the flags
    UP and GATEWAY (the kernel's unreachable defaults on `lo` have neither)."""
    gateways: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            destination, prefix = int(fields[0], 16), int(fields[1], 16)
            next_hop, flags = int(fields[4], 16), int(fields[8], 16)
        except ValueError:
            continue
        if destination == 0 and prefix == 0 and next_hop and flags & RTF_UP and flags & RTF_GATEWAY:
            gateways.append(str(ipaddress.IPv6Address(next_hop)))
    return gateways


def parse_ip_addr(text: str) -> list[str]:
    """Every address in `ip -j addr show` output."""
    addresses: list[str] = []
    for link in json.loads(text or "[]"):
        for info in link.get("addr_info", []):
            address = _address(str(info.get("local", "")))
            if address:
                addresses.append(address)
    return addresses


def parse_ip_route(text: str) -> list[str]:
    """Next hops in `ip -j route show default` output, multipath ones included."""
    gateways: list[str] = []
    for route in json.loads(text or "[]"):
        hops = [route, *route.get("nexthops", [])]
        gateways += [str(hop["gateway"]) for hop in hops if "gateway" in hop]
    return gateways


def parse_resolv_conf(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf (comments start with # or ;)."""
    servers: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def discover_protected(
    *,
    resolv_confs: Sequence[str] = RESOLV_CONFS,
    proc_net: str = PROC_NET,
    ip: str = "ip",
) -> Discovered:
    """The own addresses, default gateways and DNS servers of the calling thread's network
    namespace. `resolv_confs`: the files to read nameservers from (missing ones are skipped
    silently: the systemd one exists only with systemd-resolved)."""
    problems: list[str] = []

    def read(path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            problems.append(f"cannot read {path}: {exc.strerror or exc}")
            return ""

    def run(args: list[str]) -> str:
        try:
            done = subprocess.run(
                [ip, "-j", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"cannot run {ip} {' '.join(args)}: {exc}")
            return ""
        if done.returncode != 0:
            problems.append(f"{ip} {' '.join(args)} failed: {done.stderr.strip()}")
            return ""
        return done.stdout

    def parsed(what: str, parse: Callable[[str], list[str]], text: str) -> list[str]:
        try:
            return parse(text)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"cannot parse {what}: {exc}")
            return []

    addresses = parsed("ip addr", parse_ip_addr, run(["addr", "show"]))
    gateways = parsed("route", parse_proc_route, read(f"{proc_net}/route"))
    gateways += parsed("ipv6_route", parse_ipv6_route, read(f"{proc_net}/ipv6_route"))
    for family in ("-4", "-6"):
        gateways += parsed("ip route", parse_ip_route, run([family, "route", "show", "default"]))
    servers: list[str] = []
    for path in resolv_confs:
        if Path(path).exists():
            servers += parse_resolv_conf(read(path))
    if not servers:
        problems.append(f"no nameserver in {', '.join(resolv_confs)}")
    return Discovered(
        addresses=_unique(_address(a) for a in addresses),
        gateways=_unique(_address(g) for g in gateways),
        dns_servers=_unique(_address(s) for s in servers),
        problems=tuple(problems),
    )
