"""`sluice` command line (the runtime edge): parses arguments, opens files, runs the pipeline.

Errors a user can cause (a missing file, a file that is not a capture, an unwritable output
directory, a broken config) end with one clear line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from probes.pcap import PcapError, PcapReader
from sensor.cli import live as live_cli
from sensor.cli import top as top_view
from sensor.config import Config, ConfigError, load_config
from sensor.content.objects import ObjectStore
from sensor.metering.categories import CategoryDb, CategoryError, load_categories
from sensor.metering.geo import GeoDb, GeoError, open_geo
from sensor.metering.meter import Meter
from sensor.metering.store import MeterStore, StoreError
from sensor.outputs import eve
from sensor.outputs.digest import Digest
from sensor.outputs.files import extracted_record
from sensor.pipeline import Pipeline, Summary

EXIT_USAGE = 2
EXIT_OUTPUT = 3  # the output could not be written (the run's results are incomplete)
METER_DB = "sluice.db"  # in a replay's --out directory
SIGNATURES_HELP = (
    "signatures data directory (default: signatures_dir in the config, else $SLUICE_SIGNATURES, "
    "else the installed or checkout copy)"
)


class UsageError(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="Sluice: network DLP sensor for health-data egress"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser(
        "replay", help="run the whole pipeline over captures, write DIR/events.jsonl"
    )
    replay.add_argument("pcaps", nargs="+", metavar="PCAP")
    replay.add_argument("--out", required=True, metavar="DIR")
    replay.add_argument("--config", metavar="FILE")
    replay.add_argument("--geoip", metavar="FILE", help="MaxMind-format country database")
    replay.add_argument("--signatures", metavar="DIR", help=SIGNATURES_HELP)
    replay.add_argument("--quiet", action="store_true", help="no summary on stdout")
    extract = sub.add_parser(
        "extract", help="write every transferred object to DIR/files/<sha256> + DIR/files.jsonl"
    )
    extract.add_argument("pcaps", nargs="+", metavar="PCAP")
    extract.add_argument("--out", required=True, metavar="DIR")
    extract.add_argument("--config", metavar="FILE")
    extract.add_argument("--geoip", metavar="FILE", help="MaxMind-format country database")
    extract.add_argument("--signatures", metavar="DIR", help=SIGNATURES_HELP)
    extract.add_argument("--quiet", action="store_true", help="no summary on stdout")
    top_view.add_parsers(sub)
    live_cli.add_parser(sub, SIGNATURES_HELP)
    return parser


def _check_inputs(paths: Sequence[str]) -> None:
    for path in paths:
        try:
            with PcapReader(path):
                pass
        except PcapError as exc:
            raise UsageError(str(exc)) from None


def prepare_out(out: str) -> Path:
    directory = Path(out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".sluice-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None
    return directory


def load_config_or_fail(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None


def open_meter(config: Config, geoip: str | None, signatures: str | None = None) -> Meter:
    """The volume meter with its data: destination categories from the signatures directory
    (`--signatures`, else the config's signatures_dir, else the search in
    sensor/config/signatures.py), countries from the operator's MaxMind file or the bundled
    registry data."""
    categories, geo = meter_data(config, geoip, signatures)
    return Meter(config.metering, config.home_net, categories, geo)


def meter_data(
    config: Config, geoip: str | None, signatures: str | None
) -> tuple[CategoryDb, GeoDb | None]:
    """The meter's data files: destination categories and the country database."""
    chosen: str | Path | None = signatures if signatures is not None else config.signatures_dir
    origin = "--signatures" if signatures is not None else "signatures_dir in the config"
    try:
        return load_categories(signatures=chosen, origin=origin), open_geo(geoip)
    except (CategoryError, GeoError) as exc:
        raise UsageError(str(exc)) from None


def run(
    paths: Sequence[str],
    out: Path,
    config: Config,
    extract: bool,
    geoip: str | None = None,
    signatures: str | None = None,
    digest: Digest | None = None,
) -> tuple[Summary, float]:
    """Replay `paths` in order through one pipeline; returns the summary and wall seconds.
    The volume meter's time series go to DIR/sluice.db, which `sluice top --db DIR` reads;
    `digest` keeps what the printed summary lists."""
    meter = open_meter(config, geoip, signatures) if config.metering.enabled else None
    database = out / METER_DB
    for stale in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)  # a replay describes its captures only
    meter_store = None
    if meter is not None:
        try:
            meter_store = MeterStore(database)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    events_file = (out / "events.jsonl").open("w", encoding="utf-8")
    files_file: IO[str] | None = None
    sinks: list[eve.Sink] = [eve.JsonlWriter(events_file)]
    store = None
    if extract:
        store = ObjectStore(str(out))
        files_file = (out / "files.jsonl").open("w", encoding="utf-8")
        files_writer = eve.JsonlWriter(files_file)

        def write_file(record: eve.Record) -> None:
            if record["event_type"] == "file":
                files_writer(extracted_record(record))

        sinks.append(write_file)
    if digest is not None:
        sinks.append(digest)
    started = time.perf_counter()
    try:
        pipeline = Pipeline(config, sinks, store, meter, meter_store)
        process = pipeline.process
        for path in paths:
            reader = PcapReader(path)
            with reader:
                for frame in reader:
                    process(frame)
            report = reader.report
            if report.error:
                where = f" at byte {report.error_offset}" if report.error_offset is not None else ""
                pipeline.capture_error(
                    path, f"{report.error}{where}; {report.frames} frames read before it"
                )
        summary = pipeline.finish()
    finally:
        events_file.close()
        if meter_store is not None:
            meter_store.close()
        if files_file is not None:
            files_file.close()
    return summary, time.perf_counter() - started


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def print_summary(
    command: str,
    paths: Sequence[str],
    summary: Summary,
    digest: Digest,
    seconds: float,
    out: Path,
    stream: IO[str],
) -> None:
    rate = summary.packets / seconds if seconds > 0 else 0.0
    w = stream.write
    w(
        f"sluice {command}: {len(paths)} capture(s), {summary.packets:,} packets "
        f"({_human_bytes(summary.bytes)}) in {seconds:.2f} s = {rate:,.0f} packets/s\n"
    )
    anomalies = sum(summary.anomalies.values())
    top = ", ".join(f"{k} {v}" for k, v in summary.anomalies.most_common(4))
    w(
        f"  flows {summary.flows:,}   objects {summary.objects:,} "
        f"({digest.uploads.total:,} uploads)   anomalies {anomalies:,}"
        + (f" ({top})" if top else "")
        + "\n"
    )
    for error in summary.capture_errors:
        w(f"  capture damaged: {error}\n")
    uploads = digest.uploads
    if uploads.records:
        w("  uploads (client -> server):\n")
        for record in uploads.records:
            f = record["file"]
            where = f"{record['src_ip']} -> {record['dest_ip']}:{record['dest_port']}"
            if f["proto"] == "smtp":
                mail = record.get("smtp", {})
                rcpts = ", ".join(mail.get("rcpt_to", [])[:3])
                what = f"mail {mail.get('mail_from') or '?'} -> {rcpts or '?'}"
            elif f["proto"] == "ftp":
                ftp = record.get("ftp", {})
                what = f"{ftp.get('command', '')} ({ftp.get('mode', '')})"
            else:
                ctx = record.get("http", {})
                what = f"{ctx.get('http_method', '')} {ctx.get('url', '')}".strip()
            state = "complete" if f["complete"] else f"INCOMPLETE ({f['missing_bytes']} B missing)"
            w(
                f"    {record['timestamp'][:19]}  {where}  {f['proto']} {what}  "
                f"{f['filename'] or '-'}  {f['mime_type'] or '-'}  {f['size']:,} B  "
                f"sha256 {f['sha256'][:16]}  {state}\n"
            )
        if uploads.total > len(uploads.records):
            w(f"    ... {uploads.total - len(uploads.records)} more in {out / 'events.jsonl'}\n")
    if digest.messages.records:
        w("  mail (SMTP transactions):\n")
        for record in digest.messages.records:
            m = record["smtp"]
            rcpts = ", ".join(m["rcpt_to"][:3]) + (" ..." if len(m["rcpt_to"]) > 3 else "")
            subject = m.get("headers", {}).get("subject")
            seen = "" if m["content_visible"] else "  (TLS: content not visible)"
            w(
                f"    {record['timestamp'][:19]}  {record['src_ip']} -> "
                f"{record['dest_ip']}:{record['dest_port']}  {m['mail_from'] or '-'} -> "
                f"{rcpts or '-'}  {subject!r}  {m['attachments']} attachment(s)  "
                f"{m['status']}{seen}\n"
            )
    w(f"  events: {out / 'events.jsonl'}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command in ("top", "host"):
        return top_view.run(args)
    if args.command == "run":
        return live_cli.main(args)
    try:
        config = load_config_or_fail(args.config)
        _check_inputs(args.pcaps)
        out = prepare_out(args.out)
        digest = Digest()
        summary, seconds = run(
            args.pcaps,
            out,
            config,
            extract=args.command == "extract",
            geoip=args.geoip,
            signatures=args.signatures,
            digest=digest,
        )
    except UsageError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as exc:  # writing the output: disk full, I/O error
        print(f"sluice: error: writing to {args.out} failed: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        print("sluice: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        try:
            print_summary(args.command, args.pcaps, summary, digest, seconds, out, sys.stdout)
            if args.command == "extract":
                print(f"  files: {out / 'files.jsonl'} and {out / 'files'}{os.sep}")
            sys.stdout.flush()
        except BrokenPipeError:  # `sluice replay ... | head`: the reader left, that is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if summary.capture_errors:
        print("sluice: warning: " + "; ".join(summary.capture_errors), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
