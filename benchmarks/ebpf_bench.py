#!/usr/bin/env python3
"""Cost of the eBPF meter: kernel run time per packet, and what a veth sustains with and without it.

Usage (root): ebpf_bench.py [--packets N] [--repeat R] [--hosts H] [--dests D] [--keep]

Builds two network namespaces joined by one veth pair (tx `sbtx` <-> rx `sbrx`) and replays a
generated capture of 64-byte frames with `tcpreplay --topspeed` (pinned to CPU 0) from the tx
side. The frames come from H internal hosts (10.99.0.0/17 and fd00:99:1::/64, 3:1 IPv4:IPv6) to D
external destinations each (10.99.128.0/17, fd00:99:2::/48), so the maps hold H host keys and
H x D pair keys; the destination MAC is not the receiver's, so the receiving stack drops each
frame as early as it can (PACKET_OTHERHOST) and the program's share of the cost shows.

Scenarios, interleaved, each R times (best rate kept):

  baseline        no program
  xdp             sluice_xdp on the rx veth (native veth XDP), counting, XDP_PASS
  xdp+blocklist   the same with one unrelated address blocked, so every packet also looks up
                  the block list (skipped while nothing is blocked)
  xdp-drop        every source blocked: XDP_DROP, the kernel verdict path
  tc              sluice_tc on the tx veth, tcx egress, counting
  tc+blocklist    the same with one unrelated address blocked
  (floor)         cost runs only: an empty XDP / TC program, the bpf_stats measurement floor

- **sent pps**: packets tcpreplay sent / its own elapsed time (it reports both).
- **delivered pps**: packets the rx veth received (XDP: packets the program ran on) / the same
  time. A veth hands frames over on the sending CPU, so this is the one-core rate of the whole
  path: tcpreplay's syscalls, the veth, the program and the receive stack.
- **ns/packet**: run_time_ns / run_cnt of the program from the kernel's BPF statistics
  (BPF_ENABLE_STATS, same as sysctl kernel.bpf_stats_enabled=1), measured in separate runs (R
  per program, median and range), because the statistics add two clock reads per packet to the
  rate runs. The clock reads are inside the measured interval: the empty program's figure is
  that floor.

Prints a Markdown table; writes benchmarks/out/ebpf-results.json. Never fails on timing: the exit
status is non-zero only when the benchmark cannot run (not root, no tcpreplay, no eBPF here).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from probes.ebpf import bpf_syscall as sysbpf  # noqa: E402
from probes.ebpf.loader import (  # noqa: E402
    EbpfProbe,
    compile_program,
    load_function,
    probe_unavailable_reason,
)
from probes.ebpf.netns import inside_netns  # noqa: E402

OUT_DIR = BENCH_DIR / "out"
RESULTS = OUT_DIR / "ebpf-results.json"
TARGET_NS_PER_PACKET = 200
HOME_NETS = ["10.99.0.0/17", "fd00:99:1::/64"]
FRAME_LEN = 64  # minimum Ethernet frame without FCS: the packet-rate worst case
TX_MAC = bytes.fromhex("029900000001")
RX_MAC = bytes.fromhex("029900000002")
OTHER_MAC = bytes.fromhex("0299000000ff")  # not the receiver: dropped early by its stack
UDP_PORT = 9
UNRELATED = "10.99.127.254"  # in home_net, never a source in the capture


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # "", "xdp", "tc"
    block: str = "none"  # "none", "unrelated", "all"
    empty: bool = False  # the floor: an empty program instead of the meter


SCENARIOS = (
    Scenario("baseline", ""),
    Scenario("xdp", "xdp"),
    Scenario("xdp+blocklist", "xdp", "unrelated"),
    Scenario("xdp-drop", "xdp", "all"),
    Scenario("tc", "tc"),
    Scenario("tc+blocklist", "tc", "unrelated"),
)
FLOORS = (Scenario("empty xdp (floor)", "xdp", empty=True),
          Scenario("empty tc (floor)", "tc", empty=True))  # fmt: skip
EMPTY_PROGRAM = """\
#include <uapi/linux/bpf.h>
int sluice_xdp(struct xdp_md *ctx) { return XDP_PASS; }
int sluice_tc(struct __sk_buff *skb) { return -1; }
"""


def _csum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frames(hosts: int, dests: int) -> list[bytes]:
    """One 64-byte frame per (host, destination); every fourth host is IPv6."""
    out = []
    for h in range(hosts):
        v6 = h % 4 == 3
        for d in range(dests):
            eth = OTHER_MAC + TX_MAC + struct.pack("!H", 0x86DD if v6 else 0x0800)
            if v6:
                src = ipaddress.IPv6Address(f"fd00:99:1::{h + 1:x}").packed
                dst = ipaddress.IPv6Address(f"fd00:99:2:{d:x}::1").packed
                payload = bytes(FRAME_LEN - 14 - 40 - 8)
                udp = struct.pack("!HHHH", 40000 + h, UDP_PORT, 8 + len(payload), 0)
                ip = struct.pack("!IHBB", 6 << 28, len(udp) + len(payload), 17, 64) + src + dst
            else:
                src = ipaddress.IPv4Address(f"10.99.{h // 250}.{h % 250 + 1}").packed
                dst = ipaddress.IPv4Address(f"10.99.{128 + d // 250}.{d % 250 + 1}").packed
                payload = bytes(FRAME_LEN - 14 - 20 - 8)
                udp = struct.pack("!HHHH", 40000 + h, UDP_PORT, 8 + len(payload), 0)
                hdr = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp) + len(payload), h, 0,
                                  64, 17, 0) + src + dst  # fmt: skip
                ip = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
            out.append(eth + ip + udp + payload)
    return out


def write_pcap(path: Path, packets: list[bytes]) -> None:
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, data in enumerate(packets):
            fh.write(struct.pack("<IIII", 1_767_600_000, i, len(data), len(data)) + data)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Lab:
    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.tx, self.rx = f"sbench-tx-{tag}", f"sbench-rx-{tag}"

    def __enter__(self) -> Lab:
        try:
            for ns in (self.tx, self.rx):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.tx, "link", "add", "sbtx", "address", TX_MAC.hex(":"), "type", "veth",
                "peer", "name", "sbrx", "address", RX_MAC.hex(":"), "netns", self.rx)  # fmt: skip
            _ip("-n", self.tx, "link", "set", "sbtx", "up")
            _ip("-n", self.rx, "link", "set", "sbrx", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.tx, self.rx):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)

    def link_stats(self, ns: str, dev: str) -> dict[str, int]:
        out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        s = json.loads(out)[0]["stats64"]
        return {"rx_packets": s["rx"]["packets"], "rx_dropped": s["rx"]["dropped"],
                "tx_packets": s["tx"]["packets"], "tx_dropped": s["tx"]["dropped"]}  # fmt: skip


@dataclass
class Run:
    scenario: str
    sent: int
    seconds: float
    delivered: int
    run_cnt: int = 0
    run_time_ns: int = 0

    @property
    def sent_pps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


_ACTUAL = re.compile(r"Actual:\s+(\d+) packets .* sent in ([\d.]+) seconds")


def replay(lab: Lab, pcap: Path, loops: int) -> tuple[int, float]:
    argv = ["ip", "netns", "exec", lab.tx]
    if shutil.which("taskset"):
        argv += ["taskset", "-c", "0"]
    argv += ["tcpreplay", "-q", "-i", "sbtx", "--topspeed", "--preload-pcap",
             f"--loop={loops}", str(pcap)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    match = _ACTUAL.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"tcpreplay failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return int(match.group(1)), float(match.group(2))


class EmptyProgram:
    """The floor: an empty program attached by link, like the meter."""

    def __init__(self, mode: str, iface: str, netns: str, source: Path) -> None:
        self.mode, self.iface, self.netns, self.source = mode, iface, netns, source
        self.bpf: object = None
        self.fd = self.link = -1

    def attach(self) -> None:
        self.bpf = compile_program([], source=self.source)
        self.fd = load_function(self.bpf, self.mode)
        hook = sysbpf.AttachType.XDP if self.mode == "xdp" else sysbpf.AttachType.TCX_EGRESS
        with inside_netns(self.netns):
            self.link = sysbpf.link_create(self.fd, socket.if_nametoindex(self.iface), hook)

    def detach(self) -> None:
        if self.link >= 0:
            sysbpf.link_detach(self.link)
            os.close(self.link)
        if self.bpf is not None:
            self.bpf.cleanup()  # type: ignore[attr-defined]


def run_scenario(
    lab: Lab, sc: Scenario, pcap: Path, loops: int, pin_root: str, stats: bool, hosts: list[str]
) -> Run:
    probe: EbpfProbe | None = None
    empty: EmptyProgram | None = None
    iface, netns = ("sbrx", lab.rx) if sc.mode == "xdp" else ("sbtx", lab.tx)
    if sc.empty:
        empty = EmptyProgram(sc.mode, iface, netns, pcap.with_name("ebpf-bench-empty.c"))
    elif sc.mode:
        probe = EbpfProbe(iface, sc.mode, HOME_NETS, f"{pin_root}/{sc.mode}", netns=netns)  # type: ignore[arg-type]
    stats_fd = sysbpf.enable_run_time_stats() if stats else -1
    try:
        if empty is not None:
            empty.attach()
        if probe is not None:
            probe.attach()
            for h in {"none": [], "unrelated": [UNRELATED], "all": hosts}[sc.block]:
                probe.block(h)
        before = lab.link_stats(lab.rx, "sbrx")
        sent, seconds = replay(lab, pcap, loops)
        after = lab.link_stats(lab.rx, "sbrx")
        run = Run(sc.name, sent, seconds, after["rx_packets"] - before["rx_packets"])
        if probe is not None:
            prog = probe.program_run_stats()
            run.run_cnt, run.run_time_ns = prog.run_count, prog.run_time_ns
            if sc.mode == "xdp":  # XDP_DROP never reaches the rx counters
                run.delivered = probe.read_stats().seen
        if empty is not None:
            run.run_cnt, run.run_time_ns = sysbpf.prog_run_stats(empty.fd)
        return run
    finally:
        if empty is not None:
            empty.detach()
        if probe is not None:
            probe.detach()
            probe.remove_pins()
        if stats_fd >= 0:
            os.close(stats_fd)


def machine() -> dict[str, object]:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    tcpreplay = subprocess.run(["tcpreplay", "-V"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tcpreplay": (tcpreplay.stdout or tcpreplay.stderr).splitlines()[0],
        "git": rev,
        "loadavg_before": os.getloadavg()[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=3_000_000, help="frames per rate run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=256)
    ap.add_argument("--dests", type=int, default=16)
    ap.add_argument("--keep", action="store_true", help="keep the generated capture")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("ebpf_bench: needs root (network namespaces, eBPF)", file=sys.stderr)
        return 2
    if shutil.which("tcpreplay") is None:
        print("ebpf_bench: needs tcpreplay (`make setup`)", file=sys.stderr)
        return 2
    reason = probe_unavailable_reason()
    if reason is not None:
        print(f"ebpf_bench: {reason}", file=sys.stderr)
        return 2

    OUT_DIR.mkdir(exist_ok=True)
    packets = frames(args.hosts, args.dests)
    pcap = OUT_DIR / f"ebpf-bench-h{args.hosts}-d{args.dests}.pcap"
    write_pcap(pcap, packets)
    empty_src = pcap.with_name("ebpf-bench-empty.c")
    empty_src.write_text(EMPTY_PROGRAM)
    loops = max(1, args.packets // len(packets))
    sources = sorted({str(ipaddress.ip_address(p[26:30])) if p[12:14] == b"\x08\x00"
                      else str(ipaddress.ip_address(p[22:38])) for p in packets})  # fmt: skip
    info = machine()
    bpffs = tempfile.mkdtemp(prefix="sluice-bench-bpffs-")
    best: dict[str, Run] = {}
    cost_runs: dict[str, list[Run]] = {}
    try:
        subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True, capture_output=True)
        with Lab() as lab:
            for _ in range(args.repeat):
                for sc in SCENARIOS:
                    run = run_scenario(lab, sc, pcap, loops, bpffs, False, sources)
                    if sc.name not in best or run.delivered_pps > best[sc.name].delivered_pps:
                        best[sc.name] = run
            for _ in range(args.repeat):
                for sc in (*SCENARIOS[1:], *FLOORS):
                    run = run_scenario(lab, sc, pcap, max(1, loops // 2), bpffs, True, sources)
                    cost_runs.setdefault(sc.name, []).append(run)
    finally:
        subprocess.run(["umount", bpffs], check=False, capture_output=True)
        os.rmdir(bpffs)
        empty_src.unlink(missing_ok=True)
        if not args.keep:
            pcap.unlink(missing_ok=True)

    def ns_values(name: str) -> list[float]:
        return sorted(r.run_time_ns / r.run_cnt for r in cost_runs.get(name, []) if r.run_cnt)

    def ns_per_packet(name: str) -> float | None:
        values = ns_values(name)
        return statistics.median(values) if values else None

    def ns_text(name: str) -> str:
        values = ns_values(name)
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.1f}"
        return f"{statistics.median(values):.0f} ({values[0]:.0f}-{values[-1]:.0f})"

    base = best["baseline"].delivered_pps
    print(f"\n{len(packets)} distinct 64-byte frames ({args.hosts} hosts x {args.dests} "
          f"destinations), {loops} loops per run, best of {args.repeat}; "
          f"{info['cpu']}, kernel {info['kernel']}\n")  # fmt: skip
    print("| scenario | sent pps | delivered pps | vs baseline | ns/packet, median (range) |")
    print("|---|---:|---:|---:|---:|")
    for sc in (*SCENARIOS, *FLOORS):
        if sc.name not in best:
            print(f"| {sc.name} | - | - | - | {ns_text(sc.name)} |")
            continue
        r = best[sc.name]
        ratio = r.delivered_pps / base if base else 0.0
        print(f"| {sc.name} | {r.sent_pps:,.0f} | {r.delivered_pps:,.0f} | {ratio:.2f}x | "
              f"{ns_text(sc.name)} |")  # fmt: skip
    print()
    for name in ("xdp", "xdp+blocklist", "tc", "tc+blocklist"):
        ns = ns_per_packet(name)
        if ns is None:
            continue
        verdict = "met" if ns < TARGET_NS_PER_PACKET else "MISSED"
        runs = sum(r.run_cnt for r in cost_runs[name])
        print(f"target {name} < {TARGET_NS_PER_PACKET} ns/packet: median {ns:.1f} ns "
              f"({runs:,} program runs) {verdict}")  # fmt: skip

    RESULTS.write_text(json.dumps({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info | {"loadavg_after": os.getloadavg()[0]},
        "args": vars(args),
        "frames": len(packets),
        "loops": loops,
        "rate_runs": {name: asdict(r) | {"sent_pps": r.sent_pps, "delivered_pps": r.delivered_pps}
                      for name, r in best.items()},
        "cost_runs": {name: {"runs": [asdict(r) for r in runs],
                             "ns_per_packet_median": ns_per_packet(name)}
                      for name, runs in cost_runs.items()},
    }, indent=2) + "\n")  # fmt: skip
    print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
