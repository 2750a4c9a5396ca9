#!/usr/bin/env python3
"""Detection-to-enforcement latency of the live sensor through nftables or a CrowdSec LAPI
(issue 14 target: p99 under 1 s for nftables).

Usage (root, network namespaces): enforce_bench.py [--hosts N] [--backend nftables|crowdsec]

Builds the gateway lab of pcaps/_lib/gatewaylab.py with N client addresses, starts `sluice
run` in the gateway namespace with `[verdicts] backends = ["nftables"]` (guards widened to N
hosts and N blocks a minute, so that the breakers do not engage), then, one client address
after another, POSTs a 7z with encrypted member names and polls the gateway's `inet sluice`
host set every millisecond until that address is in it. Latency = element present minus the
upload's last byte sent: capture, reassembly, fingerprint, finding, policy, guards, outbox
commit (fsync), worker wake-up and the nft batch. With `--backend crowdsec` a real LAPI
(Debian's crowdsec, its own config, in the gateway namespace) receives the decisions and the
latency ends when a bouncer's query (`GET /v1/decisions?ip=`) returns the ban; a real bouncer
adds its own poll interval (10 s by default in Debian's firewall bouncer). Prints
p50/p90/p99/max as Markdown with the command. Never fails on timing; the environment is
cleaned up always.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pcaps._lib.gatewaylab import gateway_lab, wait  # noqa: E402

SLUICE = str(Path(sys.executable).parent / "sluice")
ARCHIVE = REPO / "tests" / "data" / "fingerprint" / "corpus" / "7z-aes-hidden-names.7z"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50, help="client addresses, one upload each")
    parser.add_argument("--backend", choices=("nftables", "crowdsec"), default="nftables")
    args = parser.parse_args()
    clients = [f"10.10.0.{10 + i}" for i in range(args.hosts)]
    body = ARCHIVE.read_bytes()
    latencies: list[float] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        lab = stack.enter_context(gateway_lab("bench", clients[1:]))
        config = Path(tmp) / "sluice.toml"
        text = (
            f'[verdicts]\nbackends = ["{args.backend}"]\ninterval = 0.2\n'
            f"max_blocked_hosts = {args.hosts + 1}\nburst = {args.hosts + 1}\n"
            f"rate_per_minute = {args.hosts * 60}\n"
        )
        present = lab.blocked_hosts
        if args.backend == "crowdsec":
            from tests.verdicts.test_crowdsec import MACHINE, Lapi

            lapi = Lapi(Path(tmp) / "lapi", netns=lab.gateway)
            lapi.prepare()
            lapi.start()
            stack.callback(lapi.stop)
            (Path(tmp) / "password").write_text(lapi.password)
            text += (
                f'crowdsec_url = "{lapi.url}"\ncrowdsec_machine_id = "{MACHINE}"\n'
                f'crowdsec_password_file = "{Path(tmp) / "password"}"\n'
            )

            def present() -> list[str]:
                return [c for c in clients if c == waiting[0] and lapi.decisions(c)]

        config.write_text(text)
        waiting = [""]
        out = Path(tmp) / "live"
        argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out",
                str(out), "--probe", "off", "--config", str(config)]  # fmt: skip
        sensor = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            if not wait(lambda: out.joinpath("events.jsonl").exists(), 60):
                raise SystemExit("the sensor did not start")
            time.sleep(1.0)
            for client in clients:
                waiting[0] = client
                sent = lab.post(body, source=client)
                if not wait(lambda c=client: c in present(), 20, step=0.001):
                    print(f"{client}: no block within 20 s", file=sys.stderr)
                    continue
                latencies.append(time.monotonic() - sent)
        finally:
            sensor.terminate()
            sensor.wait(timeout=60)
    command = shlex.join([sys.executable, *sys.argv])
    if not latencies:
        print("no block arrived")
        return 1
    ms = [v * 1000 for v in latencies]
    print(f"Detection to enforcement ({args.backend}), {len(ms)} of {args.hosts} uploads blocked\n")
    print("| p50 | p90 | p99 | max | mean |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {percentile(ms, 0.5):.0f} ms | {percentile(ms, 0.9):.0f} ms | "
        f"{percentile(ms, 0.99):.0f} ms | {max(ms):.0f} ms | {statistics.fmean(ms):.0f} ms |"
    )
    print(f"\nCommand: `{command}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
