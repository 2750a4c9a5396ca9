"""Volume accounting at full size: the issue's 10 MB / 500 MB / 2 GB capture.

Writes the `exact_volumes` capture of tests/e2e/volume_captures.py (whole frames, 1448-byte
segments, exact retransmissions, one IPv6 host) with the given outbound payload per IPv4 host
into a temporary directory, replays it with `sluice replay`, reads `sluice top --window all
--json` by host and by (host, destination), and compares every counter with what the generator
tallied while writing. The temporary directory (capture, events, database) is deleted at the
end, also on failure or Ctrl-C.

    .venv/bin/python benchmarks/volume_accuracy.py                   # 10 MB, 500 MB, 2 GB
    .venv/bin/python benchmarks/volume_accuracy.py --mb 10 50 200 --ipv6-mb 8 --tmp /var/tmp

Prints the comparison and the cost (generation and replay wall time, packets/s, peak RSS of
the replay), and writes the same to benchmarks/out/volume-accuracy.json. Exit status 1 when a
counter differs; timing never fails it (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import volume_captures as vc  # noqa: E402

SLUICE = Path(sys.executable).parent / "sluice"
RESULTS = ROOT / "benchmarks" / "out" / "volume-accuracy.json"


def run(args: list[str]) -> tuple[str, float, int]:
    """stdout, wall seconds and peak RSS (KiB) of one `sluice` child. Output goes through
    files, not pipes: the child never blocks on a full pipe while we wait for it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([str(SLUICE), *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"sluice {' '.join(args)} failed: {err.read().decode().strip()}")
        return out.read().decode(), seconds, usage.ru_maxrss


def top(db: Path, by: str) -> list[dict[str, Any]]:
    out, _, _ = run(
        ["top", "--db", str(db), "--window", "all", "--by", by, "--limit", "100000", "--json"]
    )
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mb",
        type=int,
        nargs="+",
        default=[10, 500, 2000],
        help="outbound payload per IPv4 host, MB (10^6 bytes)",
    )
    parser.add_argument("--ipv6-mb", type=int, default=50, help="the IPv6 host's upload, MB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tmp", help="parent of the temporary directory (default: system)")
    args = parser.parse_args()

    uploads = tuple(mb * vc.MB for mb in args.mb)
    work = Path(tempfile.mkdtemp(prefix="sluice-volume-", dir=args.tmp))
    try:
        pcap = work / "volumes.pcap"
        started = time.perf_counter()
        plan = vc.exact_volumes(uploads, ipv6_upload=args.ipv6_mb * vc.MB, seed=args.seed)
        totals = vc.write_capture(pcap, plan.transfers)
        generated = time.perf_counter() - started
        _, replayed, rss = run(["replay", str(pcap), "--out", str(work / "out"), "--quiet"])
        pcap.unlink()  # the big file goes first; the database is small
        hosts = {row["host"]: row for row in top(work / "out", "host")}
        pairs = {(row["host"], row["dest"]): row for row in top(work / "out", "pair")}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    mismatches = 0
    for host in plan.hosts:
        expected = totals.host_record(host)
        got: dict[str, int | None] = {key: hosts.get(host, {}).get(key) for key in vc.TOP_KEYS}
        for key in vc.TOP_KEYS:
            value = got[key]
            diff = None if value is None else value - expected[key]
            mismatches += diff != 0
            rows.append(
                {
                    "host": host,
                    "counter": key,
                    "expected": expected[key],
                    "reported": got[key],
                    "diff": diff,
                }
            )
    pair_mismatches = sum(
        1
        for pair, counters in totals.pairs.items()
        if pair not in pairs
        or [pairs[pair][key] for key in vc.TOP_KEYS] != [counters[i] for i in range(6)]
    ) + len(set(pairs) - set(totals.pairs))
    mismatches += pair_mismatches

    print(
        f"capture: {totals.packets:,} packets, {totals.file_bytes / 1e9:.2f} GB, "
        f"{totals.retransmissions:,} retransmissions, "
        f"{totals.last_ts - totals.first_ts:.0f} s of packet time"
    )
    print(f"{'host':<12} {'counter':<18} {'expected':>15} {'reported':>15} {'diff':>6}")
    for row in rows:
        reported = "missing" if row["reported"] is None else f"{row['reported']:,}"
        print(
            f"{row['host']:<12} {row['counter']:<18} {row['expected']:>15,} {reported:>15} "
            f"{row['diff'] if row['diff'] is not None else '-':>6}"
        )
    print(
        f"(host, destination) pairs: {len(totals.pairs)} expected, {len(pairs)} reported, "
        f"{pair_mismatches} differing"
    )
    rate = totals.packets / replayed
    print(
        f"generate {generated:.1f} s; sluice replay {replayed:.1f} s = {rate:,.0f} packets/s, "
        f"peak RSS {rss / 1024:.0f} MiB"
    )
    print("result:", "exact" if not mismatches else f"{mismatches} MISMATCHES")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": {
                    "nproc": os.cpu_count(),
                    "python": platform.python_version(),
                    "kernel": platform.release(),
                },
                "uploads_mb": args.mb,
                "ipv6_mb": args.ipv6_mb,
                "seed": args.seed,
                "packets": totals.packets,
                "file_bytes": totals.file_bytes,
                "retransmissions": totals.retransmissions,
                "generate_seconds": round(generated, 2),
                "replay_seconds": round(replayed, 2),
                "replay_packets_per_second": round(rate),
                "replay_peak_rss_kib": rss,
                "pairs": len(totals.pairs),
                "pair_mismatches": pair_mismatches,
                "rows": rows,
                "exact": not mismatches,
            },
            indent=2,
        )
        + "\n"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
