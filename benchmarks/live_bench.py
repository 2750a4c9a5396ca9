#!/usr/bin/env python3
"""Live capture under load: does `sluice run` count every outbound byte, with and without the
eBPF probe, when packets arrive faster than the pipeline can take them?

Usage (root): live_bench.py [--packets N] [--rates 50000,150000,top] [--buffer-mb MB] [--keep]

The mixed benchmark capture (benchmarks/gen_mixed.py: internal 10.x hosts sending to external
servers, 80% TLS bulk) is replayed with tcpreplay from one end of a veth pair in a network
namespace; `sluice run` listens on the other end (a SPAN-like receiving side) in its own
namespace. Ground truth is `sluice replay` of the same file: its per-host outbound IP bytes are
exact. The sensor's libpcap buffer is kept small (--buffer-mb, 2 MB by default, against the
64 MB `sluice run` uses) so that drops show at rates this 2-core machine can generate. For each
rate, two runs:

  packets   --probe off: the meter counts what libpcap delivers; drops lose bytes
  xdp       --probe xdp: the kernel counts every frame that arrives, whatever libpcap drops

Reported per run: the rate tcpreplay achieved, libpcap's received/dropped counts, and the
outbound bytes and packets `sluice top --json --window all` shows, as a share of the truth.
Prints a Markdown table and writes benchmarks/out/live-results.json. Never fails on numbers;
the exit status is non-zero only when the benchmark cannot run (not root, no tcpreplay, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
SLUICE = str(Path(sys.executable).parent / "sluice")
sys.path.insert(0, str(REPO))

from benchmarks.replay_bench import ensure_capture  # noqa: E402
from pcaps._lib.netns import NetnsPair  # noqa: E402

STOPPED = re.compile(
    rb"capture received ([\d,]+), dropped ([\d,]+) \(interface ([\d,]+)\); eBPF probe: (.*)"
)
TCPREPLAY_RATE = re.compile(rb"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps")
TCPREPLAY_SENT = re.compile(rb"Actual: (\d+) packets")


def totals(db: Path) -> tuple[int, int]:
    done = subprocess.run(
        [SLUICE, "top", "--db", str(db), "--json", "--window", "all", "--limit", "100000"],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    rows = json.loads(done.stdout)
    return sum(r["bytes_out"] for r in rows), sum(r["packets_out"] for r in rows)


def truth(pcap: Path, work: Path) -> tuple[int, int]:
    out = work / "truth"
    subprocess.run([SLUICE, "replay", str(pcap), "--out", str(out), "--quiet"], check=True)
    return totals(out)


def wait_for(proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """stderr of `proc` up to the line containing `marker`."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sluice run did not start: {seen.decode(errors='replace')}")
        seen += proc.stderr.readline()
    return seen


def one_run(
    pcap: Path, work: Path, bpffs: str, probe: str, rate: str, buffer_mb: int
) -> dict[str, Any]:
    out = work / f"live-{probe}-{rate}"
    with NetnsPair("lbench") as net:
        sensor = subprocess.Popen(
            ["ip", "netns", "exec", net.ns["server"], SLUICE, "run", "--iface", "veth-s",
             "--out", str(out), "--probe", "xdp" if probe == "xdp" else "off",
             "--pin-dir", f"{bpffs}/sluice-{probe}-{rate}", "--stats-interval", "0",
             "--buffer-mb", str(buffer_mb)],
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(sensor, b"capturing on", 120)
            speed = ["--topspeed"] if rate == "top" else [f"--pps={rate}"]
            replay = subprocess.run(
                ["ip", "netns", "exec", net.ns["client"], "tcpreplay", "-q", "-i", "veth-c",
                 *speed, str(pcap)],
                capture_output=True, timeout=3600,
            )  # fmt: skip
            time.sleep(2.0)  # the sensor's queue empties (no control API to ask yet)
        finally:
            sensor.send_signal(signal.SIGTERM)
            _, err = sensor.communicate(timeout=300)
    report = STOPPED.search(err or b"")
    achieved = TCPREPLAY_RATE.search(replay.stdout + replay.stderr)
    sent = TCPREPLAY_SENT.search(replay.stdout + replay.stderr)
    received, dropped, if_dropped = (
        (int(report.group(i).replace(b",", b"")) for i in (1, 2, 3)) if report else (0, 0, 0)
    )
    out_bytes, out_packets = totals(out)
    return {
        "probe": probe,
        "rate": rate,
        "tcpreplay_pps": float(achieved.group(1)) if achieved else None,
        "sent": int(sent.group(1)) if sent else None,
        "received": received,
        "dropped": dropped,
        "if_dropped": if_dropped,
        "probe_state": report.group(4).decode(errors="replace") if report else "?",
        "bytes_out": out_bytes,
        "packets_out": out_packets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rates", default="50000,150000,top", help="pps values or 'top'")
    parser.add_argument(
        "--buffer-mb", type=int, default=2, help="the sensor's libpcap buffer (small: drops)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the output directories")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("live_bench: needs root (network namespaces, eBPF)", file=sys.stderr)
        return 2
    for tool in ("tcpreplay", "ip"):
        if shutil.which(tool) is None:
            print(f"live_bench: needs {tool} (`make setup`)", file=sys.stderr)
            return 2
    pcap, _info = ensure_capture(args.packets, args.seed)
    work = Path(tempfile.mkdtemp(prefix="sluice-live-bench-"))
    bpffs = tempfile.mkdtemp(prefix="sluice-live-bench-bpffs-")
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    try:
        true_bytes, true_packets = truth(pcap, work)
        print(f"truth (sluice replay): {true_bytes:,} outbound bytes in {true_packets:,} packets")
        results = []
        for rate in args.rates.split(","):
            for probe in ("packets", "xdp"):
                result = one_run(pcap, work, bpffs, probe, rate, args.buffer_mb)
                result["bytes_share"] = result["bytes_out"] / true_bytes if true_bytes else None
                result["packets_share"] = (
                    result["packets_out"] / true_packets if true_packets else None
                )
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        subprocess.run(["umount", bpffs], check=False)
        shutil.rmtree(bpffs, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"Capture: {pcap.relative_to(REPO)} ({args.packets:,} packets); truth "
          f"{true_bytes:,} outbound bytes, {true_packets:,} packets; libpcap buffer "
          f"{args.buffer_mb} MB.")  # fmt: skip
    print()
    print("| rate asked | metering | tcpreplay pps | libpcap received | libpcap dropped | "
          "outbound bytes seen | outbound packets seen |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        pps = f"{r['tcpreplay_pps']:,.0f}" if r["tcpreplay_pps"] else "?"
        print(
            f"| {r['rate']} | {r['probe']} | {pps} | {r['received']:,} | {r['dropped']:,} | "
            f"{r['bytes_share']:.4%} | {r['packets_share']:.4%} |"
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "live-results.json").write_text(
        json.dumps({"truth": [true_bytes, true_packets], "runs": results}, indent=2)
    )
    print("\nWrote benchmarks/out/live-results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
