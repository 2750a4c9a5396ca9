#!/usr/bin/env python3
"""Cost of the nftables backend with many active blocks: start-up load and per-call cost.

Usage (root): nft_bench.py [--blocks N] [--calls C]

Everything runs in a throw-away network namespace (`slnft-bench-<pid>`, deleted at the end,
also after an error) through `NftablesBackend(netns=...)`, the code path the sensor uses.

Steps, in one run so the ratios compare like with like:

  empty          per-call cost of `block` (one add/delete/add refresh), `unblock` and `held`
                 on an empty table: the peer every later figure is divided by
  load           `reconcile` of N destination blocks into the empty hash set `dests_v4` (what a
                 restart does: bootstrap, list, bulk adds of `BULK_ELEMENTS` per transaction)
  hash N         the same per-call costs with N elements in the hash set; plus `held` (lists
                 every element) and a steady-state `reconcile` (nothing to change)
  interval N     N /24 networks loaded with `nft -f` into a second, interval+timeout set in the
                 same table (Sluice keeps its own interval sets small; this shows why), then the
                 per-call cost of `block` on a single address again

Per-call figures are the median and the worst of C calls. Prints a Markdown table. Never fails
on timing: the exit status is non-zero only when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.nftables import NftablesBackend, SetSizes

FIRST_DEST = int(ipaddress.IPv4Address("44.0.0.0"))  # N consecutive addresses from here
FIRST_NET = int(ipaddress.IPv4Address("45.0.0.0"))  # N consecutive /24s from here


def verdict(vid: str, action: str, target: str, ttl: float, now: float) -> Verdict:
    return Verdict(
        id=vid, action=action, target=target, target_kind=target_kind(target), ttl=ttl,
        decided_at=now, reason="bench", severity="high", confidence=1.0, finding_ids=(),
        incident_id="bench", policy_rule="bench", mode="enforce",
    )  # fmt: skip


def _discard(_: object) -> None:
    return None


def per_call(fn: Callable[[int], None], calls: int) -> tuple[float, float]:
    """Median and worst seconds of `calls` calls of fn(i)."""
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def measure_calls(nft: NftablesBackend, calls: int, now: float) -> dict[str, tuple[float, float]]:
    probe = [verdict(f"probe-{i}", "block_host", f"10.200.0.{i % 250 + 1}", 600, now)
             for i in range(calls)]  # fmt: skip
    return {
        "block (refresh)": per_call(lambda i: nft.block(probe[i], 600), calls),
        "unblock": per_call(lambda i: nft.unblock(probe[i]), calls),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("nft_bench: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    n, calls = args.blocks, args.calls
    ns = f"slnft-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    rows: list[tuple[str, str, float, float]] = []  # (state, operation, median/total, worst)
    try:
        sizes = SetSizes(destinations=max(262_144, 2 * n), destination_networks=4_096)
        with NftablesBackend(netns=ns, sizes=sizes) as nft:
            now = time.time()
            nft.bootstrap()
            for op, (med, worst) in measure_calls(nft, calls, now).items():
                rows.append(("empty", op, med, worst))
            rows.append(("empty", "held", *per_call(lambda i: _discard(nft.held()), calls)))

            desired = [
                (verdict(f"d{i}", "block_destination",
                         str(ipaddress.IPv4Address(FIRST_DEST + i)), 3600, now), 3600.0)
                for i in range(n)
            ]  # fmt: skip
            start = time.perf_counter()
            report = nft.reconcile(desired)
            load = time.perf_counter() - start
            assert report.added == n and not report.failed, report
            rows.append((f"hash {n}", f"load {n} blocks (reconcile)", load, load))
            for op, (med, worst) in measure_calls(nft, calls, now).items():
                rows.append((f"hash {n}", op, med, worst))
            rows.append((f"hash {n}", "held", *per_call(lambda i: _discard(nft.held()), 3)))
            start = time.perf_counter()
            steady = nft.reconcile([(v, v.remaining(time.time())) for v, _ in desired])
            rows.append((f"hash {n}", "reconcile, nothing to change",
                         time.perf_counter() - start, 0.0))  # fmt: skip
            assert steady.kept == n, steady

            # the interval set, loaded directly (Sluice itself never fills one this much)
            with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as batch:
                batch.write(f"add set inet sluice bench_nets {{ type ipv4_addr; "
                            f"flags interval, timeout; size {2 * n}; }}\n")  # fmt: skip
                for start_i in range(0, n, 5000):
                    nets = ", ".join(
                        f"{ipaddress.IPv4Address(FIRST_NET + (i << 8))}/24 timeout 1h"
                        for i in range(start_i, min(n, start_i + 5000))
                    )
                    batch.write(f"add element inet sluice bench_nets {{ {nets} }}\n")
            start = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", batch.name], check=True)
            rows.append((f"+interval {n}", f"load {n} /24 (nft -f)",
                         time.perf_counter() - start, 0.0))  # fmt: skip
            os.unlink(batch.name)
            few = max(3, calls // 10)
            for op, (med, worst) in measure_calls(nft, few, now).items():
                rows.append((f"+interval {n}", op, med, worst))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    peer = {op: med for state, op, med, _ in rows if state == "empty"}
    print(f"nftables backend, {n} blocks, {calls} calls per figure (netns {ns})\n")
    print("| state | operation | median ms | worst ms | x empty |")
    print("|---|---|---:|---:|---:|")
    for state, op, med, worst in rows:
        ratio = f"{med / peer[op]:.0f}x" if op in peer and state != "empty" else ""
        worst_ms = f"{worst * 1e3:.1f}" if worst else ""
        print(f"| {state} | {op} | {med * 1e3:.1f} | {worst_ms} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
