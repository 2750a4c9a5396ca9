"""Cost of `Meter.observe()` per packet (sensor/metering). Prints numbers; never fails on timing.

    .venv/bin/python benchmarks/meter_bench.py [--packets 1000000] [--hosts 2000]
        [--destinations 5000] [--rate 50000] [--seed 1] [--repeat 3]

A seeded list of packets is generated first (not timed): internal hosts in 10.0.0.0/8 talking
to external addresses, half the packets outbound, half inbound, every 50th an IPv6 pair,
each host talking to 3 destinations at a time (a new set every minute), timestamps advancing
at `--rate` packets/s of packet time, so bucket closes (every 10 s of packet time: windows,
detectors, summaries) happen inside the loop and are included in the cost as the pipeline will
pay them. Each meter first sees the whole list once (warm-up: hosts and pairs created), then the
same packets shifted by their duration are timed. Three figures, best of `--repeat`:

* loop: the same `for` over the packet list calling a no-op method (the floor);
* observe, one bucket: all packets in one bucket (the per-packet dict path alone);
* observe, with closes: the realistic run, bucket closes included; plus tick() drained.
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import random
import time

from sensor.config import Config, MeteringConfig
from sensor.metering import Meter, load_categories
from sensor.metering.geo import BundledGeoDb

Packet = tuple[float, bytes, bytes, int, int, int]


class Noop:
    def observe(self, ts: float, s: bytes, d: bytes, n: int, p: int, port: int) -> None:
        pass


def packets(n: int, hosts: int, dests: int, rate: float, seed: int) -> list[Packet]:
    rng = random.Random(seed)
    inside = [ipaddress.ip_address(0x0A000000 + 256 + i).packed for i in range(hosts)]
    outside = [ipaddress.ip_address(0xC0000000 + 7 * i + 1).packed for i in range(dests)]
    inside6 = [ipaddress.ip_address((0xFD << 120) + i).packed for i in range(hosts)]
    outside6 = [ipaddress.ip_address((0x2001_0DB8 << 96) + i).packed for i in range(dests)]
    out: list[Packet] = []
    t0 = 1_767_225_600.0
    for i in range(n):
        ts = t0 + i / rate
        h = rng.randrange(hosts)
        # Each host talks to 3 destinations at a time, a new set every minute of packet time.
        d = (h * 31 + int(ts // 60) * 7 + rng.randrange(3)) % dests
        a, b = (inside6[h], outside6[d]) if i % 50 == 0 else (inside[h], outside[d])
        if i % 2:
            out.append((ts, a, b, 1500, 1448, 443))
        else:
            out.append((ts, b, a, 52, 0, 50000))
    return out


def run(target: Meter | Noop, pkts: list[Packet], warm: bool = False) -> float:
    if warm and isinstance(target, Meter):
        run(target, pkts)
        shift = pkts[-1][0] - pkts[0][0] + 10
        pkts = [(p[0] + shift, *p[1:]) for p in pkts]
    observe = target.observe
    start = time.perf_counter()
    for ts, s, d, n, p, port in pkts:
        observe(ts, s, d, n, p, port)
    if isinstance(target, Meter):
        target.tick(pkts[-1][0] + 3600)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--destinations", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=20_000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    pkts = packets(args.packets, args.hosts, args.destinations, args.rate, args.seed)
    one_bucket = [(pkts[0][0], *p[1:]) for p in pkts]
    home = Config().home_net
    config = MeteringConfig()

    def meter() -> Meter:
        return Meter(config, home, load_categories(), BundledGeoDb())

    rows: dict[str, float] = {"loop": 1e9, "one bucket": 1e9, "with closes": 1e9}
    last: Meter | None = None
    for _ in range(args.repeat):
        rows["loop"] = min(rows["loop"], run(Noop(), pkts))
        rows["one bucket"] = min(rows["one bucket"], run(meter(), one_bucket, warm=True))
        last = meter()
        rows["with closes"] = min(rows["with closes"], run(last, pkts, warm=True))
    n = len(pkts)
    seconds = pkts[-1][0] - pkts[0][0]
    print(f"Python {platform.python_version()}, {n:,} packets, {args.hosts} hosts, "
          f"{args.destinations} destinations, {seconds:.0f} s of packet time "
          f"({args.rate:,.0f} packets/s), best of {args.repeat}")  # fmt: skip
    print("| run | ns/packet | minus loop | packets/s |")
    print("|---|---:|---:|---:|")
    for name, secs in rows.items():
        ns = secs / n * 1e9
        extra = "-" if name == "loop" else f"{ns - rows['loop'] / n * 1e9:.0f}"
        print(f"| {name} | {ns:.0f} | {extra} | {n / secs:,.0f} |")
    assert last is not None
    stats = last.stats_dict()
    print(
        f"after the run: {stats['hosts']} hosts, {stats['pairs']} pairs, {stats['buckets']} "
        f"buckets closed, {stats['findings']} findings"
    )


if __name__ == "__main__":
    main()
