"""`sluice` command line (the runtime edge): parses arguments, opens files, runs the pipeline.

Errors a user can cause (a missing file, a file that is not a capture, an unwritable output
directory, a broken config) end with one clear line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import ipaddress
import itertools
import os
import shutil
import sqlite3
import stat
import sys
import time
import warnings
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from probes.pcap import CaptureSet, PcapError, PcapReader
from sensor.classify.assets import AssetError, ClassifyAssets, load_assets
from sensor.classify.detectors import DetectorError, DetectorSet, load_detectors
from sensor.cli import blocks as blocks_cli
from sensor.cli import canary as canary_cli
from sensor.cli import config as config_cli
from sensor.cli import edm as edm_cli
from sensor.cli import live as live_cli
from sensor.cli import policy as policy_cli
from sensor.cli import screen, version
from sensor.cli import signatures as signatures_cli
from sensor.cli import top as top_view
from sensor.cli.config import CONFIG_HELP
from sensor.cli.screen import make_console
from sensor.config import Config, ConfigError, LoadedConfig, read_config
from sensor.content.fingerprint.table import FileTypeError, FileTypeTable, load_file_types
from sensor.content.objects import ObjectStore
from sensor.metering.categories import CategoryDb, CategoryError, load_categories
from sensor.metering.geo import GeoDb, GeoError, open_geo
from sensor.metering.meter import Meter
from sensor.metering.store import MeterStore, StoreError
from sensor.metering.units import human_bytes, printable
from sensor.outputs import eve
from sensor.outputs.activity import ActivityLog, mail_text, ssh_text, upload_text
from sensor.outputs.digest import SEVERITY_ORDER, Digest, Kept
from sensor.outputs.eve import open_private
from sensor.outputs.files import extracted_record
from sensor.pipeline import Pipeline, Summary
from sensor.policy.decide import Decider
from sensor.policy.policy import PolicyError, load_policy

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_OUTPUT = 3  # the output could not be written (the run's results are incomplete)
EXIT_INTERRUPTED = 130
METER_DB = "sluice.db"  # in a replay's --out directory
SIGNATURES_HELP = (
    "signatures data directory (default: signatures_dir in the config, else $SLUICE_SIGNATURES, "
    "else the installed or checkout copy)"
)
EXIT_CODES = """exit status:
  0    done (for `run`: stopped by SIGTERM/SIGINT or --duration)
  1    `run` stopped by an error it could not recover from (the capture went away)
  2    usage error: a bad argument, a missing or unreadable capture, a broken config
  3    an output could not be written (disk full, I/O error): results are incomplete
  130  interrupted (Ctrl-C) during a replay"""
PROGRESS_EVERY = 4096  # frames between progress updates


class UsageError(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each argument's help; descriptions keep their line breaks."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Sluice: network data-loss-prevention sensor for the egress of holders "
        "of health data. It reconstructs SMTP, HTTP, FTP, SSH and TLS, meters outbound volume "
        "per host, finds what leaves and keeps the evidence.",
        epilog=EXIT_CODES,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sluice {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, extract in (("replay", False), ("extract", True)):
        command = sub.add_parser(
            name,
            help="write every transferred object to DIR/files/ and DIR/files.jsonl too"
            if extract
            else "run the whole pipeline over captures, write DIR/events.jsonl and DIR/sluice.db",
            description=(
                "Like replay, and also store every transferred object (HTTP bodies, mail "
                "attachments, FTP files) as DIR/files/<sha256> (mode 0600), listed in "
                "DIR/files.jsonl."
                if extract
                else "Run the whole pipeline over capture files, exactly as the live sensor "
                "would: events to DIR/events.jsonl, the volume meter's time series and "
                "findings to DIR/sluice.db (read it with `sluice top/host/findings --db DIR`)."
            )
            + " Several captures are merged by packet time, whatever their order on the "
            "command line. A summary goes to stdout, a progress bar to stderr on a terminal.",
            epilog=EXIT_CODES,
            formatter_class=Formatter,
        )
        command.add_argument("pcaps", nargs="+", metavar="PCAP", help="pcap or pcapng files")
        command.add_argument("--out", required=True, metavar="DIR", help="output directory")
        command.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
        command.add_argument("--geoip", metavar="FILE", help="MaxMind-format country database")
        command.add_argument("--signatures", metavar="DIR", help=SIGNATURES_HELP)
        command.add_argument("--quiet", action="store_true", help="no summary on stdout")
        command.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        command.add_argument("--no-color", action="store_true", help="no colour (also $NO_COLOR)")
    top_view.add_parsers(sub, Formatter)
    live_cli.add_parser(sub, SIGNATURES_HELP, Formatter)
    config_cli.add_parser(sub)
    signatures_cli.add_parser(sub)
    edm_cli.add_parser(sub)
    canary_cli.add_parser(sub)
    policy_cli.add_parser(sub)
    blocks_cli.add_parser(sub)
    return parser


def _check_inputs(paths: Sequence[str]) -> None:
    for path in paths:
        try:
            with PcapReader(path):
                pass
        except PcapError as exc:
            raise UsageError(str(exc)) from None


def private_umask(config: Config) -> None:
    """Everything Sluice creates is the operator's alone (0600 files, 0700 directories), or
    also readable by `output.group` when the config names one (0640/0750)."""
    os.umask(0o027 if config.output.group else 0o077)


def prepare_out(out: str, config: Config | None = None) -> Path:
    """The output directory, created private (0700, or 0750 with group `output.group` and
    the set-group-ID bit, so that files created in it belong to that group)."""
    directory = Path(out)
    group = config.output.group if config is not None else ""
    try:
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if created:
            directory.chmod(0o750 if group else 0o700)
        if group and directory.stat().st_gid != grp.getgrnam(group).gr_gid:
            # Under the unit the directory is already the group's (Group= or a state
            # directory made for it) and this is never needed: it may not chown or set SGID.
            shutil.chown(directory, group=group)
            directory.chmod(directory.stat().st_mode | stat.S_ISGID)
        probe = directory / ".sluice-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except LookupError:
        raise UsageError(f"output.group: no group {group!r} on this system") from None
    except PermissionError as exc:
        raise UsageError(
            f"output.group: cannot give {out} to group {group!r} ({exc.strerror}): the sensor's "
            "user must be a member (under systemd: Group= in the unit, which makes the state "
            "directory the group's)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None
    return directory


def load_config_or_fail(path: str | None) -> LoadedConfig:
    try:
        return read_config(path)
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


def file_types(config: Config, signatures: str | None) -> FileTypeTable:
    """The fingerprint's signature table from the same signatures directory as the meter's
    data (a broken file is a usage error naming the file and the entry)."""
    chosen: str | Path | None = signatures if signatures is not None else config.signatures_dir
    origin = "--signatures" if signatures is not None else "signatures_dir in the config"
    try:
        return load_file_types(signatures=chosen, origin=origin)
    except FileTypeError as exc:
        raise UsageError(str(exc)) from None


def detectors(config: Config, signatures: str | None) -> DetectorSet | None:
    """The classification detectors, when classification is on, from the same signatures
    directory as the rest (a broken file is a usage error naming the file and the entry)."""
    if not config.classify.enabled:
        return None
    chosen: str | Path | None = signatures if signatures is not None else config.signatures_dir
    origin = "--signatures" if signatures is not None else "signatures_dir in the config"
    try:
        return load_detectors(signatures=chosen, origin=origin)
    except DetectorError as exc:
        raise UsageError(str(exc)) from None


def decider(config: Config, signatures: str | None, run_mode: str = "dry-run") -> Decider | None:
    """The policy's decider for this run (a replay: dry-run, nothing is sent anywhere), when
    the policy is on; a broken policy file is a usage error naming the file and the line."""
    if not config.policy.enabled:
        return None
    chosen: str | Path | None = signatures if signatures is not None else config.signatures_dir
    origin = "--signatures" if signatures is not None else "signatures_dir in the config"
    try:
        policy = load_policy(config.policy.file or None, chosen, origin)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    networks = config.home_net

    def internal(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in networks)

    return Decider(policy, run_mode, internal, config.policy.incident_window)


def classify_assets(config: Config) -> ClassifyAssets:
    """The key, canary store and EDM index `[classify]` names (a store or an index that
    cannot be used is a usage error naming the file)."""
    try:
        return load_assets(config.classify)
    except AssetError as exc:
        raise UsageError(str(exc)) from None


def run(
    paths: Sequence[str],
    out: Path,
    config: Config,
    extract: bool,
    geoip: str | None = None,
    signatures: str | None = None,
    digest: Digest | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[Summary, float]:
    """Replay `paths` merged by packet time through one pipeline; returns the summary and
    wall seconds. The volume meter's time series, findings and host activity go to
    DIR/sluice.db, which `sluice top/host/findings --db DIR` read; `digest` keeps what the
    printed summary lists; `progress(frames, bytes_read, bytes_total)` is called now and then."""
    meter = open_meter(config, geoip, signatures) if config.metering.enabled else None
    database = out / METER_DB
    for stale in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)  # a replay describes its captures only
    meter_store = None
    activity = None
    if meter is not None:
        try:
            meter_store = MeterStore(database, config.history)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    try:
        captures = CaptureSet(paths)
    except PcapError as exc:
        raise UsageError(str(exc)) from None
    assets = classify_assets(config)
    for note in assets.notes:
        screen.warn(note)
    events_file = open_private(out / "events.jsonl")
    files_file: IO[str] | None = None
    sinks: list[eve.Sink] = [eve.JsonlWriter(events_file)]
    store = None
    if extract:
        store = ObjectStore(
            str(out), config.content.max_extract_bytes, config.content.max_extract_total
        )
        files_file = open_private(out / "files.jsonl")
        files_writer = eve.JsonlWriter(files_file)

        def write_file(record: eve.Record) -> None:
            if record["event_type"] == "file":
                files_writer(extracted_record(record))

        sinks.append(write_file)
    if meter_store is not None:
        activity = ActivityLog(meter_store, warn=screen.warn)
        sinks.append(activity)
    if digest is not None:
        sinks.append(digest)
    started = time.perf_counter()
    try:
        pipeline = Pipeline(
            config,
            sinks,
            store,
            meter,
            meter_store,
            file_types=file_types(config, signatures),
            detectors=detectors(config, signatures),
            classify=assets,
            decider=decider(config, signatures),
        )
        process = pipeline.process
        with captures:
            if progress is None:
                for frame in captures:
                    process(frame)
            else:
                frames = iter(captures)
                count = 0
                while batch := list(itertools.islice(frames, PROGRESS_EVERY)):
                    for frame in batch:
                        process(frame)
                    count += len(batch)
                    progress(count, captures.bytes_read(), captures.size)
        for report in captures.reports:
            if report.error:
                where = f" at byte {report.error_offset}" if report.error_offset is not None else ""
                pipeline.capture_error(
                    report.path, f"{report.error}{where}; {report.frames} frames read before it"
                )
        summary = pipeline.finish()
        if activity is not None:
            activity.flush()
    finally:
        assets.close()
        events_file.close()
        if meter_store is not None:
            meter_store.close(settle=True)
        if files_file is not None:
            files_file.close()
    return summary, time.perf_counter() - started


class ReplayProgress:
    """A progress bar on stderr (packets, bytes, rate, ETA) for replays on a terminal; it
    disappears when done, so the summary starts on a clean screen."""

    def __init__(self, stream: IO[str], no_color: bool) -> None:
        self.console = make_console(stream, no_color)
        self.bar = Progress(
            TextColumn("replay"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[packets]:>12,} packets"),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            auto_refresh=False,
        )
        self.task = self.bar.add_task("replay", total=None, packets=0)
        self._next = 0.0

    def __enter__(self) -> ReplayProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, frames: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.25
        self.bar.update(self.task, completed=done, total=total, packets=frames)
        self.bar.refresh()


def print_summary(
    command: str,
    paths: Sequence[str],
    summary: Summary,
    digest: Digest,
    seconds: float,
    out: Path,
    console: Console,
    tz: tzinfo = UTC,
) -> None:
    rate = summary.packets / seconds if seconds > 0 else 0.0
    say = console.print
    say(
        f"sluice {command}: {len(paths)} capture(s), {summary.packets:,} packets "
        f"({human_bytes(summary.bytes)}) in {seconds:.2f} s = {rate:,.0f} packets/s"
    )
    anomalies = sum(summary.anomalies.values())
    top = ", ".join(f"{k} {v:,}" for k, v in summary.anomalies.most_common(4))
    unwritten = (
        f"; {summary.anomalies_unwritten:,} over the per-flow cap not written"
        if summary.anomalies_unwritten
        else ""
    )
    members = f", {summary.members:,} members opened" if summary.members else ""
    say(
        f"  flows {summary.flows:,}   objects {summary.objects:,} "
        f"({digest.uploads.total:,} uploads{members})   anomalies {anomalies:,}"
        + (f" ({top}{unwritten})" if top else "")
    )
    fp = summary.fingerprints
    if fp:
        undecided = ", ".join(
            f"{fp[k]:,} {k}" for k in ("short", "damaged", "high-entropy") if fp[k]
        )
        say(
            f"  fingerprints: {fp['encrypted']:,} encrypted"
            + (f"; encryption unknown: {undecided}" if undecided else "")
        )
    for error in summary.capture_errors:
        say(Text(f"  capture damaged: {printable(error)}", style="yellow"))
    if digest.cut:
        say(
            Text(
                f"extraction cut {digest.cut:,} object(s) at content.max_extract_bytes or "
                "max_extract_total: their files are files/<sha256>.cut (the first bytes)",
                style="yellow",
            )
        )
    _findings_table(digest, console, out)
    _verdicts_table(console, digest.verdicts, out)
    _sensitive_table(console, digest.sensitive, out)
    _encrypted_table(console, digest.encrypted, out)
    kept = (
        ("uploads (client -> server)", digest.uploads, ["PROTO", "WHAT"],
         lambda r: [r["file"]["proto"], upload_text(r)]),
        ("mail (SMTP transactions)", digest.messages, ["MAIL"], lambda r: [mail_text(r)]),
        ("SSH sessions", digest.sessions, ["SESSION"], lambda r: [ssh_text(r)]),
    )  # fmt: skip
    for title, records, headers, what in kept:
        _kept_table(console, title, records, out, tz, headers, what)
    say(f"events: {out / 'events.jsonl'}", soft_wrap=True)


def _kept_table(
    console: Console,
    title: str,
    kept: Kept,
    out: Path,
    tz: tzinfo,
    headers: list[str],
    what: Callable[[eve.Record], list[str]],
) -> None:
    """Time (local) and flow, then what the record is, one row each."""
    if not kept.records:
        return
    t = screen.table(f"{title}: {kept.total:,}")
    for i, header in enumerate([f"TIME ({tz})", "FLOW", *headers]):
        screen.column(t, header, ratio=1 if i == len(headers) + 1 else None)
    for r in kept.records:
        when = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).astimezone(tz)
        flow = f"{r['src_ip']} -> {r['dest_ip']}:{r['dest_port']}"
        t.add_row(*(screen.cell(v) for v in [f"{when:%Y-%m-%d %H:%M:%S}", flow, *what(r)]))
    console.print(screen.freeze(t, console.width))
    if kept.total > len(kept.records):
        console.print(
            f"... {kept.total - len(kept.records):,} more in {out / 'events.jsonl'}",
            soft_wrap=True,
        )


def _verdicts_table(console: Console, kept: Kept, out: Path) -> None:
    """What the policy decided on the findings (a replay decides in dry-run: nothing was sent
    anywhere): the action, its target and how long, and the reason, wrapped at 80 columns."""
    if not kept.records:
        return
    modes = sorted({r["verdict"]["mode"] for r in kept.records})
    t = screen.table(f"verdicts ({', '.join(modes)}): {kept.total:,}")
    screen.column(t, "ACTION")
    screen.column(t, "TARGET")
    screen.column(t, "FOR")
    screen.column(t, "RULE: REASON", ratio=1, min_width=24, wrap=True)
    for r in kept.records:
        v = r["verdict"]
        ttl = int(v["ttl"])
        span = f"{ttl // 3600}h{ttl % 3600 // 60:02d}m" if ttl else "-"
        t.add_row(
            screen.cell(v["action"]),
            screen.cell(v["target"]),
            screen.cell(span),
            screen.wrapped(printable(v["reason"]), ""),
        )
    console.print(screen.freeze(t, console.width))
    if kept.total > len(kept.records):
        console.print(
            f"... {kept.total - len(kept.records):,} more in {out / 'events.jsonl'}",
            soft_wrap=True,
        )


def _sensitive_table(console: Console, kept: Kept, out: Path) -> None:
    """Sensitive uploads (the `sensitive_content` findings), before the encrypted ones and the
    most severe on top: who sent what to where, and what classification found in it
    (categories, records, distinct values per identifier type; never a value). At 80 columns
    the description wraps under the file's name rather than being cut: its counts are what a
    DPO reports."""
    if not kept.records:
        return
    t = screen.table(f"sensitive uploads: {kept.total:,}")
    screen.column(t, "SEVERITY")
    screen.column(t, "HOST")
    screen.column(t, "TO")
    screen.column(t, "FILE, WHAT IT HOLDS", ratio=1, min_width=24, wrap=True)
    records = sorted(kept.records, key=lambda r: SEVERITY_ORDER.get(r["finding"]["severity"], 9))
    for r in records:
        f = r["finding"]
        path = f.get("container_path")
        name = " / ".join(p or "-" for p in path) if path else (f.get("filename") or "-")
        counts = sorted(f["identifiers"].items(), key=lambda item: (-item[1]["distinct"], item[0]))
        held = ", ".join(f"{n['distinct']:,} {kind}" for kind, n in counts)
        what = screen.wrapped(name, "bold")
        what.append(
            "\n" + printable(f"{f['records']:,} records; {', '.join(f['categories'])}; {held}")
        )
        t.add_row(
            screen.severity(f["severity"]),
            screen.cell(f["host"]),
            screen.cell(f"{f['destination']}:{f['destination_port']} {f['proto']}"),
            what,
        )
    console.print(screen.freeze(t, console.width))
    console.print("counts are distinct values; `sluice findings` lists them with the time")
    if kept.total > len(kept.records):
        console.print(
            f"... {kept.total - len(kept.records):,} more in {out / 'events.jsonl'}",
            soft_wrap=True,
        )


def _encrypted_table(console: Console, kept: Kept, out: Path) -> None:
    """Encrypted uploads first, narrow enough for 80 columns: who sent what to where, and the
    scheme (the time and the rest are in the events)."""
    if not kept.records:
        return
    t = screen.table(f"encrypted uploads: {kept.total:,}")
    screen.column(t, "HOST")
    screen.column(t, "TO")
    screen.column(t, "ENCRYPTION")
    screen.column(t, "SIZE", right=True)
    screen.column(t, "FILE", ratio=1, min_width=12)
    for r in kept.records:
        f = r["file"]
        fp = f["fingerprint"]
        path = f.get("container_path")
        name = " / ".join(p or "-" for p in path) if path else (f["filename"] or "-")
        t.add_row(
            screen.cell(r["src_ip"]),
            screen.cell(f"{r['dest_ip']}:{r['dest_port']} {f['proto']}"),
            screen.cell(
                (fp.get("encryption") or "?") + ("*" if fp.get("hides_names") else ""), "bold"
            ),
            screen.cell(human_bytes(f["size"])),
            screen.cell(name),
        )
    console.print(screen.freeze(t, console.width))
    if any(r["file"]["fingerprint"].get("hides_names") for r in kept.records):
        console.print("* the member names are encrypted too")
    if kept.total > len(kept.records):
        console.print(
            f"... {kept.total - len(kept.records):,} more in {out / 'events.jsonl'}",
            soft_wrap=True,
        )


def _findings_table(digest: Digest, console: Console, out: Path) -> None:
    """Findings grouped by kind, the most severe first, with their hosts."""
    if not digest.finding_groups:
        console.print("findings: none")
        return
    t = screen.table(f"findings: {digest.findings.total:,}")
    screen.column(t, "SEVERITY")
    screen.column(t, "KIND")
    screen.column(t, "COUNT", right=True)
    screen.column(t, "HOSTS (FIRST)", ratio=1)
    for group in digest.finding_groups:
        hosts = ", ".join(group.hosts[:3]) + (
            f" (+{len(group.hosts) - 3})" if len(group.hosts) > 3 else ""
        )
        t.add_row(
            screen.severity(group.severity),
            screen.cell(group.kind),
            screen.cell(f"{group.count:,}"),
            screen.cell(f"{hosts}: {group.first_detail}"),
        )
    console.print(screen.freeze(t, console.width))
    console.print(f"list them: sluice findings --db {out}", soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # before anything is created; relaxed below if the config names a group
    warnings.simplefilter("ignore", DeprecationWarning)  # libraries' housekeeping, not ours
    args = _build_parser().parse_args(argv)
    if args.command == "signatures":
        return signatures_cli.run(args)
    if args.command == "edm":
        return edm_cli.run(args)
    if args.command == "canary":
        return canary_cli.run(args)
    if args.command == "policy":
        return policy_cli.run(args)
    if args.command == "blocks":
        return blocks_cli.run(args)
    if args.command in ("top", "host", "findings", "verdicts"):
        return top_view.run(args)
    if args.command == "run":
        return live_cli.main(args)
    try:
        loaded = load_config_or_fail(args.config)
        if args.command == "config":
            return config_cli.run(args, loaded)
        config = loaded.config
        private_umask(config)
        _check_inputs(args.pcaps)
        out = prepare_out(args.out, config)
        digest = Digest()
        show = not args.no_progress and sys.stderr.isatty()
        with contextlib.ExitStack() as stack:
            progress = (
                stack.enter_context(ReplayProgress(sys.stderr, args.no_color)) if show else None
            )
            summary, seconds = run(
                args.pcaps,
                out,
                config,
                extract=args.command == "extract",
                geoip=args.geoip,
                signatures=args.signatures,
                digest=digest,
                progress=progress,
            )
    except UsageError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as exc:  # writing the output: disk full, I/O error
        print(f"sluice: error: writing to {args.out} failed: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        print("sluice: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        try:
            console = make_console(sys.stdout, args.no_color)
            console.print(f"config: {config_cli.origin_line(loaded)}", soft_wrap=True)
            tz = zoneinfo.ZoneInfo(config.metering.timezone)
            print_summary(args.command, args.pcaps, summary, digest, seconds, out, console, tz)
            if args.command == "extract":
                console.print(
                    f"files: {out / 'files.jsonl'} and {out / 'files'}{os.sep}", soft_wrap=True
                )
            sys.stdout.flush()
        except BrokenPipeError:  # `sluice replay ... | head`: the reader left, that is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if summary.capture_errors:
        print("sluice: warning: " + "; ".join(summary.capture_errors), file=sys.stderr)
    unknown = summary.anomalies["decode_unknown_linktype"]
    if unknown:
        print(
            f"sluice: warning: frames of {unknown} link type(s) Sluice does not decode were only "
            "counted (the decode_unknown_linktype anomalies in events.jsonl name them)",
            file=sys.stderr,
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
