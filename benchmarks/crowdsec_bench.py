#!/usr/bin/env python3
"""Cost of the CrowdSec backend against a real LAPI (Debian's crowdsec 1.4.6, SQLite).

Usage: crowdsec_bench.py [--verdicts N]

Starts a LAPI of its own on 127.0.0.1 (the test fixture of tests/verdicts/test_crowdsec.py:
temporary config and database, never the system's), then for N fresh verdicts measures, in
the same run:

- ``block``: what the outbox pays per new verdict, from the call to the decision committed
  in the LAPI (read Sluice's decisions of the verdict, then POST the alert);
- ``bare POST``: the peer, one ``POST /v1/alerts`` of the same alert without the read that
  makes retries safe, so ``block / bare POST`` is the price of idempotency;
- ``visible``: after ``block`` returned, until a bouncer's ``GET /v1/decisions?ip=`` lists
  the decision (a firewall bouncer adds its poll interval on top: 10 s in Debian's config);
- ``block again`` (a retry that finds the decision and posts nothing), ``unblock`` and one
  ``held`` listing all N.

Prints p50/p99/max in ms as Markdown with the command. Never fails on timing; the LAPI is
stopped and its directory removed always.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.verdicts.test_crowdsec import Lapi, _verdict  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verdicts", type=int, default=200, help="fresh verdicts to time")
    args = parser.parse_args()
    timings: dict[str, list[float]] = {
        k: [] for k in ("block", "bare POST", "visible", "block again", "unblock")
    }
    with tempfile.TemporaryDirectory() as tmp:
        lapi = Lapi(Path(tmp) / "lapi")
        lapi.prepare()
        lapi.start()
        try:
            backend = lapi.backend()
            started = time.perf_counter()
            backend.held()  # logs in
            login = time.perf_counter() - started
            verdicts = []
            for i in range(args.verdicts):
                target = f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"
                verdict, peer = _verdict(target), _verdict(target)
                verdicts.append(verdict)
                t0 = time.perf_counter()
                backend.block(verdict, 3600.0)
                t1 = time.perf_counter()
                while not any(d.get("scenario") == f"sluice/v={verdict.id}"
                              for d in lapi.decisions(target)):  # fmt: skip
                    pass
                t2 = time.perf_counter()
                backend.block(verdict, 3600.0 - (t2 - t0))
                t3 = time.perf_counter()
                backend._post_alert(peer, "Ip", target, 3600)  # the peer: no read first
                t4 = time.perf_counter()
                timings["block"].append(t1 - t0)
                timings["visible"].append(t2 - t1)
                timings["block again"].append(t3 - t2)
                timings["bare POST"].append(t4 - t3)
            t0 = time.perf_counter()
            held = backend.held()
            listing = time.perf_counter() - t0
            for verdict in verdicts:
                t0 = time.perf_counter()
                backend.unblock(verdict)
                timings["unblock"].append(time.perf_counter() - t0)
        finally:
            lapi.stop()
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    print(f"`{command}` (Debian crowdsec 1.4.6, SQLite, 127.0.0.1, {args.verdicts} verdicts)\n")
    print("| step | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
    for name, values in timings.items():
        p50, p99, top = (1000 * x for x in (percentile(values, 0.5), percentile(values, 0.99),
                                            max(values)))  # fmt: skip
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {top:.1f} |")
    ratio = percentile(timings["block"], 0.5) / percentile(timings["bare POST"], 0.5)
    print(f"\nblock / bare POST (p50): {ratio:.2f}; login {1000 * login:.0f} ms; "
          f"held() of {len(held)} decisions (the blocks and the peers'): "
          f"{1000 * listing:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
