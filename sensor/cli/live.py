"""`sluice run --iface IF --out DIR`: the live sensor (see sensor/runtime.py).

It writes what a replay writes, continuously: DIR/events.jsonl (appended), DIR/sluice.db (the
meter's time series, kept across restarts), so `sluice top --db DIR` and `sluice host` show a
running sensor's view. Status lines go to stderr; a stop by SIGTERM/SIGINT ends every flow,
writes the last bucket and detaches the eBPF probe (its maps stay pinned).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from sensor.cli.config import CONFIG_HELP, origin_line, summary_line
from sensor.cli.screen import warn
from sensor.metering.units import printable
from sensor.outputs.eve import Record
from sensor.runtime import PROBE_CHOICES, LiveError, LiveOptions, LiveSensor

EXIT_USAGE = 2


def add_parser(sub: Any, signatures_help: str, formatter: type[argparse.HelpFormatter]) -> None:
    run = sub.add_parser(
        "run",
        help="capture live from an interface, write DIR/events.jsonl and DIR/sluice.db",
        description="Capture live from IFACE through the whole pipeline until SIGTERM/SIGINT "
        "(or --duration). With --probe auto the eBPF probe counts outbound bytes in the "
        "kernel; where it cannot run, Sluice says why once and meters from packets. Status "
        "lines and one line per finding go to stderr (the journal under systemd).",
        formatter_class=formatter,
    )
    run.add_argument("--iface", required=True, metavar="IFACE", help="interface to capture on")
    run.add_argument(
        "--out", required=True, metavar="DIR", help="events.jsonl and sluice.db go here"
    )
    run.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    run.add_argument("--geoip", metavar="FILE", help="MaxMind-format country database")
    run.add_argument("--signatures", metavar="DIR", help=signatures_help)
    run.add_argument(
        "--probe",
        choices=PROBE_CHOICES,
        default="auto",
        help="eBPF meter: xdp (SPAN port, LAN side of a gateway), tc (egress of a gateway's WAN "
        "side), auto (xdp, else packets), off",
    )
    run.add_argument(
        "--pin-dir",
        metavar="DIR",
        help="bpffs directory for the probe's maps (default: "
        "the probe's own directory under /sys/fs/bpf)",
    )
    run.add_argument("--filter", metavar="BPF", help="libpcap capture filter (tcpdump syntax)")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    run.add_argument(
        "--buffer-mb",
        type=int,
        default=64,
        metavar="MB",
        help="libpcap's kernel buffer, which absorbs bursts",
    )
    run.add_argument(
        "--stats-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a stats event this often (0: only at the end)",
    )


def _status(line: str) -> None:
    print(f"sluice run: {line}", file=sys.stderr, flush=True)


def finding_line(record: Record) -> str | None:
    """One line per finding for stderr (the journal): severity, kind, host, what, where."""
    if record["event_type"] != "finding":
        return None
    f = record["finding"]
    # Volume findings list destinations; a content finding names its one (in its detail).
    dests = ", ".join(f.get("destinations", [])[:2])
    return printable(
        f"finding {f['severity'].upper()} {f['kind']} host {f['host']}: {f['detail']}"
        + (f" -> {dests}" if dests else "")
    )


def _finding(record: Record) -> None:
    line = finding_line(record)
    if line is not None:
        print(f"sluice run: {line}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    from sensor.cli.main import (
        UsageError,
        classify_assets,
        decider,
        detectors,
        file_types,
        load_config_or_fail,
        meter_data,
        prepare_out,
        private_umask,
    )

    try:
        if args.duration is not None and not 0 < args.duration < math.inf:
            raise UsageError(
                f"--duration must be a positive number of seconds, not {args.duration}"
            )
        if not 1 <= args.buffer_mb <= 4096:
            raise UsageError("--buffer-mb must be between 1 and 4096")
        if not 0 <= args.stats_interval < math.inf:
            raise UsageError(
                f"--stats-interval must be a number of seconds (0: only at the end), not "
                f"{args.stats_interval}"
            )
        loaded = load_config_or_fail(args.config)
        config = loaded.config
        private_umask(config)
        _status(f"config: {origin_line(loaded)}")
        _status(summary_line(config))
        out = prepare_out(args.out, config)
        categories, geo = meter_data(config, args.geoip, args.signatures)
        table = file_types(config, args.signatures)
        detector_set = detectors(config, args.signatures)
        assets = classify_assets(config)
        if config.classify.enabled or assets.canaries is not None or assets.edm is not None:
            _status(f"classification: {assets.describe()}")
        options = LiveOptions(
            iface=args.iface,
            out=out,
            probe=args.probe,
            duration=args.duration,
            stats_interval=args.stats_interval,
            bpf_filter=args.filter,
            buffer_bytes=args.buffer_mb << 20,
            pin_dir=args.pin_dir,
        )
        sensor = LiveSensor(
            config,
            options,
            categories,
            geo,
            warn=warn,
            status=_status,
            notify=_finding,
            file_types=table,
            detectors=detector_set,
            classify=assets,
            decider=decider(
                config, args.signatures, "enforce" if config.verdicts.backends else "dry-run"
            ),
        )
        try:
            report = sensor.run()
        finally:
            assets.close()
    except (UsageError, LiveError) as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    s, c = report.summary, report.capture
    _status(
        f"stopped after {report.seconds:.1f} s: {s.packets:,} packets, {s.flows:,} flows, "
        f"{s.events['finding']:,} findings; capture received {c.received:,}, dropped {c.dropped:,} "
        f"(interface {c.if_dropped:,}), left unread at the stop {c.unread:,}; eBPF probe: "
        f"{report.probe}"
    )
    if report.kernel_skipped != (0, 0):
        _status(
            f"pinned counters of an earlier run without saved totals were not attributed: "
            f"{report.kernel_skipped[1]:,} bytes in {report.kernel_skipped[0]:,} packets"
        )
    for error in report.errors:
        warn(error)
    return 1 if report.errors else 0
