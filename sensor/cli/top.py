"""`sluice top` and `sluice host`: the operator's view of the metering database (CLI edge).

In: a `MeterStore` file (`sluice replay PCAP --out DIR` writes DIR/sluice.db). Out: plain-text
tables and terminal charts, or JSON, on stdout. Nothing here writes to the database.

Time is the packet clock. Every window ends at the end of the newest bucket in the database
(`store.newest` is that bucket's start; the finest tier's step is added), never at the wall
clock, so an old replay reads as it was when it was captured. Volume rows are counted by their
bucket start in [start, end); findings, stamped with the end of the bucket they were found in,
in (start, end].

The store keeps neither country nor category: both are looked up at display time from the
destination address and name, with the bundled registry data (or `--geoip FILE`) and
signatures/categories.toml (or `--categories FILE`), so a newer list also relabels old traffic.

Both commands build JSON-ready records first; the text, HTML and JSON views only render those
records, so they cannot disagree. Text shows local time per `metering.timezone` of the
configuration (`--utc` for UTC); JSON keeps UTC. `sluice findings` lists the findings table.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import re
import select
import signal
import sys
import time
import zoneinfo
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any, Literal

from rich.console import Console, Group, RenderableType
from rich.text import Text

from sensor.cli import html, screen
from sensor.cli.config import CONFIG_HELP
from sensor.config import ConfigError, read_config
from sensor.metering.categories import CategoryDb, CategoryError, load_categories
from sensor.metering.geo import GeoDb, GeoError, open_geo
from sensor.metering.store import MeterStore, StoreError, TopRow
from sensor.metering.units import human_bytes, human_duration, human_rate, printable
from sensor.metering.values import SEVERITIES, Finding, Volume
from sensor.outputs.eve import iso_time
from sensor.outputs.eve import open_private as eve_open
from sensor.outputs.meter import volume_fields
from sensor.verdicts.delivery import OUTBOX_FILE
from sensor.verdicts.outbox import Outbox, OutboxError

EXIT_USAGE = 2
DB_NAME = "sluice.db"  # inside a replay's --out directory
SENSORS_DIR = Path("/var/lib/sluice")  # the unit's state directories, one per interface
WINDOW_FORMS = "all, or a whole number with s, m, h or d (e.g. 30s, 10m, 1h, 24h, 7d)"
TOP_DESTINATIONS = 3  # per row of `sluice top`
HOST_DESTINATIONS = 20  # in `sluice host`
HOST_ACTIVITY = 50  # newest uploads, mails, sessions and requests in `sluice host`
SPARK = "▁▂▃▄▅▆▇█"
SPARK_STEPS = 60  # one-minute steps: the host's last hour
SPARK_STEP = 60
NOW_SECONDS = 60  # "current" rate: the last minute of data
CHART_STEPS = 60  # at most this many columns in `sluice host`'s chart
CHART_HEIGHT = 6  # rows of the chart
EIGHTHS = " ▁▂▃▄▅▆▇"  # partial blocks, bottom up, index = eighths of a row
# Chart steps a human reads easily; each is a multiple of the store tier it will be read from
# (10 s, 1 min, 1 h), so no step gets one row more than its neighbour.
NICE_STEPS = (10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600,
              43200, 86400)  # fmt: skip
CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase screen (ANSI)
_EVERYTHING = 1 << 31  # a row limit meaning "all of them"
MAX_WINDOW_DAYS = 36500  # a century: any longer window is `all`
EXIT_CODES = """exit status:
  0  done (an empty database too: it says so)
  2  usage error: a bad window or address, no database at --db, a broken config or data file"""
_WINDOW = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Record = dict[str, Any]
By = Literal["host", "dest", "pair"]


class CliError(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


# -- arguments --------------------------------------------------------------------------------


def add_parsers(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Register `top`, `host` and `findings` on the subparsers action of `sluice`'s parser."""
    top = sub.add_parser(
        "top",
        epilog=EXIT_CODES,
        help="hosts (or destinations) sending the most, from a metering database",
        description="Rank internal hosts (or destinations, or host-destination pairs) by "
        "outbound bytes in a window ending at the newest data (packet time). NOW is the "
        "rate over the last minute of data, AVG the window's average.",
        formatter_class=formatter,
    )
    _common(top)
    top.add_argument(
        "--window", default="10m", help=f"how far back from the newest data: {WINDOW_FORMS}"
    )
    top.add_argument("--by", choices=("host", "dest", "pair"), default="host", help="what to rank")
    top.add_argument("--limit", type=int, default=10, metavar="N", help="rows")
    top.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (2 when given without a number) until q or Ctrl-C",
    )
    top.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    host = sub.add_parser(
        "host",
        epilog=EXIT_CODES,
        help="one host's outbound volume, destinations, uploads, mails and findings",
        description="One internal host over a period ending at the newest data: a chart of "
        "its outbound bytes, its destinations, findings, and its uploads, mails, SSH "
        "sessions and requests with a body.",
        formatter_class=formatter,
    )
    host.add_argument("ip", metavar="IP", help="the host's IPv4 or IPv6 address")
    _common(host)
    host.add_argument("--since", default="24h", help=f"period shown: {WINDOW_FORMS}")
    host.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    findings = sub.add_parser(
        "findings",
        epilog=EXIT_CODES,
        help="list the findings in a metering database",
        description="List findings (volume thresholds, spikes, slow exfiltration, transfers "
        "outside the EU/EEA, ...) newest last, with severity, host and what was measured.",
        formatter_class=formatter,
    )
    _common(findings)
    _since_and_limit(findings)
    findings.add_argument("--host", metavar="IP", help="only this internal host")
    findings.add_argument("--kind", metavar="KIND", help="only this kind of finding")
    findings.add_argument(
        "--severity", choices=SEVERITIES, default="low", help="only this severity or above"
    )
    verdicts = sub.add_parser(
        "verdicts",
        epilog=EXIT_CODES,
        help="list the policy's verdicts in a sensor's database",
        description="List the verdicts the policy decided (block a host, block a destination, "
        "alert), newest last: target, how long, the rule and its reason, and whether they "
        "were enforced (a replay decides in dry-run: nothing is sent anywhere).",
        formatter_class=formatter,
    )
    _common(verdicts)
    _since_and_limit(verdicts)


def _since_and_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", default="all", help=f"how far back from the newest data: {WINDOW_FORMS}"
    )
    parser.add_argument("--limit", type=int, default=500, metavar="N", help="newest N")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"a replay's --out directory, a live sensor's --out directory or the database "
        f"file (default: ./{DB_NAME}, else the one sensor's under {SENSORS_DIR})",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of text")
    parser.add_argument("--geoip", metavar="FILE", help="a MaxMind .mmdb country database")
    parser.add_argument(
        "--categories",
        metavar="FILE",
        help="destination categories file (default: categories.toml of the signatures "
        "directory: $SLUICE_SIGNATURES, else the installed or checkout copy)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help=CONFIG_HELP + "; its metering.timezone is used"
    )
    parser.add_argument("--utc", action="store_true", help="times in UTC, not the local zone")
    parser.add_argument("--no-color", action="store_true", help="no colour (also $NO_COLOR)")


def parse_window(text: str) -> float | None:
    """Seconds of a window such as `10m`; None for `all`. At most MAX_WINDOW_DAYS."""
    if text == "all":
        return None
    match = _WINDOW.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise CliError(f"bad window {text!r}: use {WINDOW_FORMS}")
    seconds = float(int(match[1]) * _UNITS[match[2]])
    if seconds > MAX_WINDOW_DAYS * 86400:
        raise CliError(f"window {text!r} is longer than {MAX_WINDOW_DAYS} days: use all")
    return seconds


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Dispatch `top`/`host`/`findings`; returns the exit status. User errors: one line,
    status 2."""
    stream = out if out is not None else sys.stdout
    try:
        if args.command == "top":
            return _top_command(args, stream)
        if args.command == "findings":
            return _findings_command(args, stream)
        if args.command == "verdicts":
            return _verdicts_command(args, stream)
        return _host_command(args, stream)
    except CliError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `sluice top | head`: the reader left, that is fine
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return 0


# -- opening --------------------------------------------------------------------------------


def database_path(arg: str | None) -> Path:
    """--db as given; without it ./sluice.db, else the one sensor's database under
    SENSORS_DIR (the unit's /var/lib/sluice/<iface>/), so that on an appliance with one
    sensor `sluice top` needs no option."""
    if arg is None:
        if Path(DB_NAME).is_file():
            return Path(DB_NAME)
        found = sorted(SENSORS_DIR.glob(f"*/{DB_NAME}"))
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(str(p.parent) for p in found)
            raise CliError(f"several sensors' databases ({names}): pass --db DIR")
        arg = DB_NAME
    path = Path(arg)
    if path.is_dir():
        path = path / DB_NAME
    if not path.is_file():
        raise CliError(
            f"no metering database at {path} (`sluice replay PCAP --out DIR` writes "
            f"DIR/{DB_NAME}; pass --db DIR or --db FILE)"
        )
    return path


def open_store(path: Path) -> MeterStore:
    try:
        return MeterStore(path, readonly=True)
    except StoreError as exc:
        raise CliError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class View:
    """How times are shown and where text goes."""

    tz: tzinfo
    tz_name: str
    no_color: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> View:
        name = "UTC"
        if not args.utc:
            try:
                name = read_config(args.config).config.metering.timezone
            except ConfigError as exc:
                if args.config is not None:
                    raise CliError(f"config: {exc}") from None
                # The site's config (root:sluice 0640) only lends its time zone here: an
                # operator who cannot read it still gets the data, in UTC.
                print(f"sluice: warning: config: {exc}; times in UTC", file=sys.stderr)
        return cls(zoneinfo.ZoneInfo(name), name, args.no_color)

    def clock(self, ts: float, seconds: bool = True) -> str:
        moment = datetime.fromtimestamp(ts, UTC).astimezone(self.tz)
        return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def short(self, ts: float, day: bool) -> str:
        moment = datetime.fromtimestamp(ts, UTC).astimezone(self.tz)
        return moment.strftime("%m-%d %H:%M" if day else "%H:%M")

    def span(self, start: float, end: float) -> str:
        """`2026-11-29 12:00:00 .. 15:01:50 CET`: the end's date only when it differs."""
        first, last = self.clock(start), self.clock(end)
        if first[:10] == last[:10]:
            last = last[11:]
        return f"{first} .. {last} {self.zone(end)}"

    def stamp(self, ts: float) -> str:
        """Month, day and time: rows under a header that gives the year and zone."""
        return datetime.fromtimestamp(ts, UTC).astimezone(self.tz).strftime("%m-%d %H:%M:%S")

    def zone(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).astimezone(self.tz).strftime("%Z")

    def iso_local(self, iso: str) -> str:
        return self.stamp(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())

    def console(self, stream: IO[str]) -> Console:
        return screen.make_console(stream, self.no_color)


class Labeller:
    """Country and category of a destination, looked up now (the store keeps neither)."""

    def __init__(self, geo: GeoDb | None, categories: CategoryDb) -> None:
        self._geo = geo
        self._categories = categories
        self._cache: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}

    @classmethod
    def open(cls, geoip: str | None, categories: str | None) -> Labeller:
        try:
            geo = open_geo(geoip)
        except GeoError as exc:
            raise CliError(f"geoip: {exc}") from None
        try:
            db = load_categories(categories) if categories is not None else load_categories()
        except CategoryError as exc:
            raise CliError(f"categories: {exc}") from None
        return cls(geo, db)

    def describe(self, ip: str, name: str | None) -> Record:
        key = (ip, name)
        if key not in self._cache:
            try:
                packed = ipaddress.ip_address(ip).packed
            except ValueError:  # "other": the meter's folded rest
                packed = b""
            country = self._geo.country(packed) if packed and self._geo is not None else None
            match = self._categories.match(packed, name) if packed or name else None
            self._cache[key] = (country, match.id if match is not None else None)
        country, category = self._cache[key]
        return {"ip": ip, "name": name, "country": country, "category": category}


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float  # exclusive for volume rows, inclusive for findings
    label: str

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1.0)

    def findings(self, store: MeterStore, host: str | None = None) -> list[Finding]:
        return store.findings(
            math.nextafter(self.start, math.inf),
            math.nextafter(self.end, math.inf),
            host=host,
            limit=_EVERYTHING,
        )


def data_end(store: MeterStore) -> float:
    """End of the newest bucket: `newest` is its start, rows are stamped with their start."""
    return float(store.newest + min(t.step for t in store.tiers))


def window_of(store: MeterStore, text: str) -> Window:
    length = parse_window(text)
    end = data_end(store)
    if length is None:
        oldest = store.oldest()
        return Window(float(oldest if oldest is not None else store.newest), end, "all")
    return Window(end - length, end, text)


def pruned_in(
    store: MeterStore, window: Window, what: Sequence[str] = ("volume", "findings")
) -> float | None:
    """Where retention or the row bound deleted data of `what` ("volume", "findings",
    "activity") that the window asks for. For volume, the tier the query reads counts: a
    finer tier's cut costs only resolution (queries fall back to a coarser tier that holds
    the window); for `all`, the coarsest tier's cut is what was lost."""
    cuts = []
    for part in what:
        if part == "volume":
            tier = (
                max(store.tiers, key=lambda t: t.step)
                if window.label == "all"
                else store.tier_for(window.start)
            )
            cuts.append(store.pruned_before(tier.name))
        else:
            cuts.append(store.pruned_before(part))
    reached = [c for c in cuts if c is not None and (window.label == "all" or window.start < c)]
    return max(reached) if reached else None


def _pruned_note(pruned: float | None, view: View) -> Text | None:
    if pruned is None:
        return None
    return Text(
        f"note: history before {view.clock(pruned, False)} {view.zone(pruned)} was pruned "
        "([history] in the config)",
        style="yellow",
    )


def _write_html(path: str, page: str) -> None:
    try:
        with eve_open(Path(path)) as f:
            f.write(page)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _html_meta(title: str, path: Path, window: Window, view: View, pruned: float | None) -> Record:
    from sensor.cli import version

    return {
        "title": title,
        "generated": iso_time(time.time()),
        "database": str(path),
        "window_label": window.label,
        "window_start": iso_time(window.start),
        "window_end": iso_time(window.end),
        "timezone": view.tz_name,
        "sluice_version": version(),
        "pruned_before": iso_time(pruned) if pruned is not None else None,
    }


# -- sluice top -----------------------------------------------------------------------------


def _top_command(args: argparse.Namespace, out: IO[str]) -> int:
    parse_window(args.window)  # bad syntax fails before any file is touched
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
    if args.watch is not None and args.json:
        raise CliError("--watch redraws a table; it does not go with --json")
    if args.watch is not None and not 0 < args.watch < math.inf:
        raise CliError(f"--watch needs a positive number of seconds, not {args.watch:g}")
    view = View.of(args)
    path = database_path(args.db)
    labeller = Labeller.open(args.geoip, args.categories)
    if args.watch is None:
        return _top_once(args, path, labeller, view, out)
    console = view.console(out)
    try:
        with _keys() as key:
            while True:
                # Reopened on every redraw: `newest` moves while the sensor writes.
                frame = _top_screen(args, path, labeller, view, console.width)
                out.write(CLEAR)
                console.print(frame)
                out.flush()
                if key(args.watch) in ("q", "Q"):
                    return 0
    except KeyboardInterrupt:
        out.write("\n")
        return 0


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """`wait(seconds) -> key or None`: sleeps, returning early on a key press when stdin is a
    terminal (read in cbreak mode, restored on exit)."""
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():

        def nap(seconds: float) -> str | None:
            time.sleep(seconds)
            return None

        yield nap
        return
    import termios
    import tty

    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)

    def wait(seconds: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], seconds)
        return os.read(fd, 1).decode("latin-1") if ready else None

    def terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the loop like Ctrl-C: the terminal is restored

    old = signal.signal(signal.SIGTERM, terminated)
    try:
        tty.setcbreak(fd)
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGTERM, old)


def _top_screen(
    args: argparse.Namespace, path: Path, labeller: Labeller, view: View, width: int
) -> RenderableType:
    with open_store(path) as store:
        if not store.newest:
            body: RenderableType = Text(f"sluice top: no traffic recorded in {path} yet")
        else:
            window = window_of(store, args.window)
            rows = top_records(store, window, args.by, args.limit, labeller)
            body = render_top(rows, window, args.by, path, view, width, pruned_in(store, window))
    clock = datetime.now(view.tz).strftime("%H:%M:%S %Z")
    hints = Text(f"updated {clock}, every {args.watch:g} s   q or Ctrl-C: quit", style="reverse")
    return Group(hints, body)


def _top_once(
    args: argparse.Namespace, path: Path, labeller: Labeller, view: View, out: IO[str]
) -> int:
    console = view.console(out)
    with open_store(path) as store:
        if not store.newest:
            return _nothing_recorded(path, args.json, "[]", out)
        window = window_of(store, args.window)
        rows = top_records(store, window, args.by, args.limit, labeller)
        pruned = pruned_in(store, window)
    if args.html:
        meta = _html_meta(f"Sluice top by {args.by}", path, window, view, pruned) | {"by": args.by}
        _write_html(args.html, html.top_page(rows, meta))
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        console.print(render_top(rows, window, args.by, path, view, console.width, pruned))
    return 0


def _nothing_recorded(path: Path, as_json: bool, empty: str, out: IO[str]) -> int:
    """An empty database is not an error: the JSON reader gets an empty value, the person a
    line saying so (on stderr when stdout is JSON)."""
    if as_json:
        out.write(empty + "\n")
    print(f"sluice: no traffic recorded in {path}", file=sys.stderr if as_json else out)
    return 0


def _mentions(finding: Finding, dest: str) -> bool:
    """Finding destinations are "name (ip)" or "ip"."""
    return any(d == dest or d.endswith(f"({dest})") for d in finding.destinations)


def top_records(
    store: MeterStore, window: Window, by: By, limit: int, labeller: Labeller
) -> list[Record]:
    start, end = window.start, window.end
    total = sum(r.volume.out_bytes for r in store.top(start, end, "host", _EVERYTHING))
    ranked = store.top(start, end, by, limit)
    pairs = store.top(start, end, "pair", _EVERYTHING) if by != "pair" else []
    recent = {
        (r.host, r.dest): r.volume.out_bytes
        for r in store.top(max(start, end - NOW_SECONDS), end, by, _EVERYTHING)
    }
    findings = window.findings(store)
    per_host = Counter(f.host for f in findings)
    records = []
    for rank, row in enumerate(ranked, 1):
        record: Record = {"rank": rank}
        if row.host is not None:
            record["host"] = row.host
        if row.dest is not None:
            record["dest"] = row.dest
        record.update(volume_fields(row.volume))
        out_bytes = row.volume.out_bytes
        record["rate_bps"] = round(out_bytes * 8 / window.seconds, 1)
        now_seconds = min(NOW_SECONDS, window.seconds)
        record["rate_now_bps"] = round(recent.get((row.host, row.dest), 0) * 8 / now_seconds, 1)
        record["share"] = round(out_bytes / total, 4) if total else 0.0
        record["window_start"] = iso_time(start)
        record["window_end"] = iso_time(end)
        if by == "host":
            assert row.host is not None
            mine = [p for p in pairs if p.host == row.host][:TOP_DESTINATIONS]
            record["destinations"] = [_destination(p, labeller) for p in mine]
            record["findings"] = per_host[row.host]
            record["last_hour"] = last_hour(store, row.host, end)
        else:
            assert row.dest is not None
            record["destinations"] = [_destination(row, labeller)]
            if by == "dest":
                senders = [p for p in pairs if p.dest == row.dest][:TOP_DESTINATIONS]
                record["hosts"] = [
                    {"host": p.host, "bytes_out": p.volume.out_bytes} for p in senders
                ]
            record["findings"] = sum(
                1
                for f in findings
                if (row.host is None or f.host == row.host) and _mentions(f, row.dest)
            )
        records.append(record)
    return records


def _destination(row: TopRow, labeller: Labeller) -> Record:
    assert row.dest is not None
    return labeller.describe(row.dest, row.name) | {
        "bytes_out": row.volume.out_bytes,
        "payload_bytes_out": row.volume.out_payload,
        "bytes_in": row.volume.in_bytes,
    }


def last_hour(store: MeterStore, host: str, end: float) -> list[int]:
    """Outbound bytes per minute over the 60 whole minutes up to the one holding `end`."""
    until = math.ceil(end / SPARK_STEP) * SPARK_STEP
    since = until - SPARK_STEPS * SPARK_STEP
    values = [0] * SPARK_STEPS
    for bucket, volume in store.host_series(host, since, until, SPARK_STEP):
        index = (bucket - since) // SPARK_STEP
        if 0 <= index < SPARK_STEPS:
            values[index] += volume.out_bytes
    return values


def sparkline(values: Sequence[int]) -> str:
    """One block per value, scaled to the largest; a space where nothing was sent."""
    peak = max(values, default=0)
    if peak <= 0:
        return " " * len(values)
    return "".join(
        " " if v <= 0 else SPARK[min(len(SPARK), math.ceil(v * len(SPARK) / peak)) - 1]
        for v in values
    )


def fold(values: Sequence[int], width: int) -> list[int]:
    """`values` summed into `width` equal groups (len(values) a multiple of width)."""
    size = max(1, len(values) // width)
    return [sum(values[i : i + size]) for i in range(0, len(values), size)]


def _label(d: Record) -> str:
    return f"{d['name']} ({d['ip']})" if d["name"] else str(d["ip"])


def _where(d: Record) -> str:
    return ", ".join([d["country"] or "??", *([d["category"]] if d["category"] else [])])


def _top_header(window: Window, by: By, path: Path, view: View) -> Text:
    return Text(
        f"top by {by}, window {window.label}: {view.span(window.start, window.end)} "
        f"(packet time)\n{path}",
        style="bold",
    )


def render_top(
    rows: list[Record],
    window: Window,
    by: By,
    path: Path,
    view: View,
    width: int = 80,
    pruned: float | None = None,
) -> RenderableType:
    """The ranking as a table sized to `width` columns: on narrow terminals the sparkline
    folds (5 minutes a character at 80 columns) and only the first destination shows."""
    parts: list[RenderableType] = [_top_header(window, by, path, view)]
    note = _pruned_note(pruned, view)
    if note is not None:
        parts.append(note)
    if not rows:
        parts.append(Text("no traffic in this window"))
        return Group(*parts)
    wide = width >= 120
    t = screen.table()
    screen.column(t, "#", right=True)
    if by != "dest":
        screen.column(t, "HOST", min_width=7)
    if by != "host":
        screen.column(t, "DESTINATION", ratio=2, min_width=12)
        screen.column(t, "CC")
        screen.column(t, "CATEGORY", max_width=14)
    screen.column(t, "OUT", right=True)
    screen.column(t, "NOW", right=True)
    if wide:
        screen.column(t, "AVG", right=True)
    if width >= 100:
        screen.column(t, "SHARE", right=True)
    screen.column(t, "FIND", right=True)
    spark_chars = 60 if width >= 160 else 30 if width >= 120 else 12
    if by == "host":
        screen.column(t, f"LAST HOUR ({60 // spark_chars} min/char)" if wide else "LAST HOUR")
        screen.column(t, "TOP DESTINATIONS", ratio=3, min_width=12)
    elif by == "dest":
        screen.column(t, "TOP HOSTS", ratio=1, min_width=9)
    for r in rows:
        cells: list[Text] = [screen.cell(r["rank"])]
        if by != "dest":
            cells.append(screen.cell(r["host"], "bold" if r["findings"] else ""))
        if by != "host":
            d = r["destinations"][0]
            cells += [
                screen.cell(_label(d)),
                screen.cell(d["country"] or "??"),
                screen.cell(d["category"] or "-", "magenta" if d["category"] else ""),
            ]
        cells += [
            screen.cell(human_bytes(r["bytes_out"])),
            screen.cell(human_rate(r["rate_now_bps"]), "green" if r["rate_now_bps"] else "dim"),
        ]
        if wide:
            cells.append(screen.cell(human_rate(r["rate_bps"])))
        if width >= 100:
            cells.append(screen.cell(f"{r['share'] * 100:.1f}%"))
        cells.append(screen.cell(r["findings"], "bold red" if r["findings"] else "dim"))
        if by == "host":
            cells.append(screen.cell(sparkline(fold(r["last_hour"], spark_chars)), "cyan"))
            dests = [
                f"{_label(d)} [{_where(d)}] {human_bytes(d['bytes_out'])}"
                for d in r["destinations"]
            ]
            cells.append(screen.lines(dests if wide else dests[:1]))
        elif by == "dest":
            cells.append(
                screen.lines([f"{h['host']} {human_bytes(h['bytes_out'])}" for h in r["hosts"]])
            )
        t.add_row(*cells)
    parts.append(screen.freeze(t, width))
    return Group(*parts)


# -- sluice findings ------------------------------------------------------------------------


def finding_record(f: Finding) -> Record:
    return {
        "time": iso_time(f.ts),
        "kind": f.kind,
        "severity": f.severity,
        "host": f.host,
        "detail": f.detail,
        "value": f.value,
        "threshold": f.threshold,
        "window_seconds": f.window,
        "destinations": list(f.destinations),
    }


def _findings_command(args: argparse.Namespace, out: IO[str]) -> int:
    parse_window(args.since)
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
    host = _address(args.host) if args.host is not None else None
    view = View.of(args)
    path = database_path(args.db)
    with open_store(path) as store:
        if not store.newest:
            return _nothing_recorded(path, args.json, "[]", out)
        window = window_of(store, args.since)
        first = store.oldest_finding()
        if window.label == "all" and first is not None and first <= window.start:
            # Findings are kept longer than volume: `all` reaches back to the first one.
            window = Window(math.nextafter(first, -math.inf), window.end, "all")
        floor = SEVERITIES.index(args.severity)
        found = [
            f
            for f in window.findings(store, host)
            if (args.kind is None or f.kind == args.kind) and _rank(f.severity) >= floor
        ]
        pruned = pruned_in(store, window, ("findings",))
    shown = found[-args.limit :]
    records = [finding_record(f) for f in shown]
    if args.json:
        out.write(json.dumps(records, indent=2) + "\n")
        return 0
    console = view.console(out)
    head = f"findings, {window.label}: {view.span(window.start, window.end)} (packet time)\n{path}"
    console.print(Text(head, style="bold"))
    note = _pruned_note(pruned, view)
    if note is not None:
        console.print(note)
    if not records:
        console.print("no findings")
        return 0
    if len(found) > len(shown):
        console.print(f"the newest {len(shown):,} of {len(found):,} (--limit)")
    console.print(findings_table(records, view, console.width, with_host=host is None))
    return 0


def _verdicts_command(args: argparse.Namespace, out: IO[str]) -> int:
    seconds = parse_window(args.since)
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
    view = View.of(args)
    path = database_path(args.db)
    with open_store(path) as store:
        if not store.newest:
            return _nothing_recorded(path, args.json, "[]", out)
        since = store.newest - seconds if seconds is not None else 0.0
        rows = store.verdicts(since, limit=args.limit)
    delivery = delivery_states(_outbox_of(path, args.config))
    for row in rows:
        row["delivery"] = delivery.get(row["id"], {})
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    console = view.console(out)
    console.print(Text(f"verdicts, {args.since}\n{path}", style="bold"))
    if not rows:
        console.print("no verdicts")
        return 0
    table = screen.table(None)
    screen.column(table, "DECIDED")
    screen.column(table, "ACTION")
    screen.column(table, "TARGET")
    screen.column(table, "UNTIL")
    screen.column(table, "RULE: REASON", ratio=1, min_width=24, wrap=True)
    for row in rows:
        until = view.stamp(row["expires_at"]) if row["ttl"] else "-"
        sent = "; ".join(
            f"{backend} {d['state']}" + (f" ({d['last_error']})" if d["last_error"] else "")
            for backend, d in sorted(row["delivery"].items())
        )
        reason = f"{row['reason']} [{row['mode']}" + (f"; {sent}" if sent else "")
        reason += f", decided {row['decided']}x]" if row["decided"] > 1 else "]"
        table.add_row(
            screen.cell(view.stamp(row["ts"])),
            screen.cell(row["action"]),
            screen.cell(row["target"]),
            screen.cell(until),
            screen.wrapped(reason),
        )
    console.print(screen.freeze(table, console.width))
    return 0


def _outbox_of(database: Path, config: str | None) -> Path:
    """The live sensor's outbox: `[verdicts] outbox` of the config when it names one (and
    the config can be read), else outbox.db beside the database."""
    try:
        named = read_config(config).config.verdicts.outbox
    except ConfigError:
        named = ""
    return Path(named) if named else database.parent / OUTBOX_FILE


def delivery_states(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """verdict id -> backend -> its delivery state, from the outbox at `path` (empty when
    there is none: a replay, or a sensor without backends)."""
    if not path.is_file():
        return {}
    try:
        outbox = Outbox(path, readonly=True)
    except OutboxError as exc:
        raise CliError(str(exc)) from None
    try:
        states = outbox.state(limit=100_000)
    except OutboxError as exc:
        raise CliError(str(exc)) from None
    finally:
        outbox.close()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for st in states:
        out.setdefault(st.verdict_id, {})[st.backend] = {
            "state": st.state, "op": st.op, "attempts": st.attempts,
            "last_error": st.last_error, "delivered_at": st.delivered_at,
        }  # fmt: skip
    return out


def _rank(severity: str) -> int:
    """Position in SEVERITIES; an unknown level (a newer writer's) counts as medium."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 1


# Below this many columns for the detail, a finding takes two lines or more: what it is and
# for whom, then its detail across the width (an 80-column terminal).
DETAIL_MIN_COLUMNS = 40


def findings_table(
    records: list[Record], view: View, width: int, with_host: bool = True
) -> RenderableType:
    """One finding per row, its detail wrapped rather than cut (the detail is what a finding
    says: a file's name and what it holds, a rule and its limit). When the detail would get
    fewer than DETAIL_MIN_COLUMNS, kind and host share one column with the detail below them,
    so an 80-column terminal shows every word."""
    times = [view.iso_local(r["time"]) for r in records]
    fixed = max(map(len, ["TIME", *times])) + len("SEVERITY") + 2 * 2
    fixed += max(len(r["kind"]) for r in records) + 2 if records else 0
    if with_host:
        fixed += max(len(r["host"]) for r in records) + 2 if records else 0
    stacked = width - fixed < DETAIL_MIN_COLUMNS
    t = screen.table()
    screen.column(t, "TIME")
    screen.column(t, "SEVERITY")
    if stacked:
        screen.column(t, "FINDING" + (", HOST" if with_host else ""), ratio=1, wrap=True)
    else:
        screen.column(t, "KIND")
        if with_host:
            screen.column(t, "HOST")
        screen.column(t, "DETAIL", ratio=1, min_width=20, wrap=True)
    for r, when in zip(records, times, strict=True):
        cells = [screen.cell(when), screen.severity(r["severity"])]
        if stacked:
            what = screen.wrapped(r["kind"], "bold")
            if with_host:
                what.append("  " + printable(r["host"]))
            what.append("\n" + printable(r["detail"]))
            cells.append(what)
        else:
            cells.append(screen.cell(r["kind"]))
            if with_host:
                cells.append(screen.cell(r["host"]))
            cells.append(screen.wrapped(r["detail"]))
        t.add_row(*cells)
    return screen.freeze(t, width)


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))  # the store keeps the canonical text
    except ValueError:
        raise CliError(f"{text!r} is not an IPv4 or IPv6 address") from None


# -- sluice host ----------------------------------------------------------------------------


def _host_command(args: argparse.Namespace, out: IO[str]) -> int:
    parse_window(args.since)
    host = _address(args.ip)
    view = View.of(args)
    path = database_path(args.db)
    labeller = Labeller.open(args.geoip, args.categories)
    with open_store(path) as store:
        if not store.newest:
            return _nothing_recorded(path, args.json, "{}", out)
        window = window_of(store, args.since)
        record = host_record(store, host, window, labeller)
        pruned = pruned_in(store, window, ("volume", "findings", "activity"))
    if args.html:
        meta = _html_meta(f"Sluice host {host}", path, window, view, pruned)
        _write_html(args.html, html.host_page(record, meta))
    if args.json:
        out.write(json.dumps(record, indent=2) + "\n")
    else:
        console = view.console(out)
        console.print(render_host(record, window, view, console.width, pruned))
    return 0


def chart_step(store: MeterStore, start: float, length: float) -> int:
    """The smallest readable step giving at most CHART_STEPS columns, never finer than the
    tier that `host_series` will read (it widens the step the same way)."""
    wanted = length / CHART_STEPS
    if wanted > NICE_STEPS[-1]:
        step = math.ceil(wanted / 86400) * 86400
    else:
        step = next(s for s in NICE_STEPS if s >= wanted)
    finest = store.tier_for(start).step
    return max(step, finest)


def host_record(store: MeterStore, host: str, window: Window, labeller: Labeller) -> Record:
    step = chart_step(store, window.start, window.seconds)
    first = int(window.start // step * step)  # the first step starts counting at window.start
    series = dict(store.host_series(host, window.start, window.end, step))
    total = Volume()
    steps = []
    for bucket in range(first, math.ceil(window.end), step):
        volume = series.get(bucket, Volume())
        total = total + volume
        steps.append({"start": iso_time(bucket)} | volume_fields(volume))
    pairs = [p for p in store.top(window.start, window.end, "pair", _EVERYTHING) if p.host == host]
    activity, activity_total = store.activity(host, window.start, window.end, HOST_ACTIVITY)
    return {
        "host": host,
        "window_start": iso_time(window.start),
        "window_end": iso_time(window.end),
        **volume_fields(total),
        "step_seconds": step,
        "series": steps,
        "destinations_total": len(pairs),
        "destinations": [_destination(p, labeller) for p in pairs[:HOST_DESTINATIONS]],
        "findings": [finding_record(f) for f in window.findings(store, host)],
        "activity_total": activity_total,
        "activity": [
            {
                "time": iso_time(a.ts),
                "kind": a.kind,
                "dest": a.dest,
                "bytes": a.bytes,
                "summary": a.summary,
            }
            for a in activity
        ],
    }


def column_chart(values: Sequence[int], height: int = CHART_HEIGHT) -> list[str]:
    """Rows (top first) of a column chart, one character per value, scaled to the peak; a
    value above zero shows at least an eighth of a row."""
    peak = max(values, default=0)
    if peak <= 0:
        return [" " * len(values)] * height
    eighths = [0 if v <= 0 else max(1, round(v / peak * height * 8)) for v in values]
    rows = []
    for level in range(height - 1, -1, -1):
        base = level * 8
        rows.append(
            "".join(
                "█" if e >= base + 8 else EIGHTHS[e - base] if e > base else " " for e in eighths
            )
        )
    return rows


def _chart(record: Record, view: View) -> list[RenderableType]:
    series = record["series"]
    values = [s["bytes_out"] for s in series]
    step = record["step_seconds"]
    peak = max(values, default=0)
    title = f"outbound bytes per {human_duration(step)}"
    if not peak:
        return [Text(title + ": nothing sent in this period")]
    at = values.index(peak)
    starts = [datetime.fromisoformat(s["start"].replace("Z", "+00:00")).timestamp() for s in series]
    peak_time = view.short(starts[at], step >= 3600 or len(series) * step > 86400)
    rows = column_chart(values)
    label = human_bytes(peak)
    pad = len(label)
    out: list[RenderableType] = [Text(f"{title}, peak {label} at {peak_time}", style="bold")]
    for i, row in enumerate(rows):
        axis = label if i == 0 else "0".rjust(pad) if i == len(rows) - 1 else " " * pad
        line = Text(f"{axis} │")
        line.append(row, style="cyan")
        out.append(line)
    day = len(series) * step > 86400
    left = view.short(starts[0], day)
    right = view.short(starts[-1] + step, day)
    gap = max(1, len(series) - len(left) - len(right))
    out.append(Text(" " * (pad + 2) + left + " " * gap + right + f" {view.zone(starts[-1])}"))
    return out


def render_host(
    record: Record, window: Window, view: View, width: int = 80, pruned: float | None = None
) -> RenderableType:
    host = record["host"]
    parts: list[RenderableType] = [
        Text(
            f"host {host}, {window.label}: {view.span(window.start, window.end)} (packet time)",
            style="bold",
        )
    ]
    note = _pruned_note(pruned, view)
    if note is not None:
        parts.append(note)
    if not (record["bytes_out"] or record["bytes_in"] or record["findings"] or record["activity"]):
        parts.append(Text(f"no traffic recorded for {host} in this period"))
        return Group(*parts)
    parts.append(
        Text(
            f"out {human_bytes(record['bytes_out'])} ({record['packets_out']:,} packets, "
            f"{human_bytes(record['payload_bytes_out'])} payload), in "
            f"{human_bytes(record['bytes_in'])} ({record['packets_in']:,} packets)\n"
        )
    )
    parts += _chart(record, view)
    findings = record["findings"]
    parts.append(Text(f"\nfindings: {len(findings) or 'none'}", style="bold"))
    if findings:
        parts.append(findings_table(findings, view, width, with_host=False))
    dests = record["destinations"]
    shown = f"top {len(dests)} of {record['destinations_total']}"
    parts.append(
        Text(f"\ndestinations ({shown})" if dests else "\ndestinations: none named", style="bold")
    )
    if dests:
        t = screen.table()
        screen.column(t, "#", right=True)
        screen.column(t, "DESTINATION", ratio=1, min_width=16)
        screen.column(t, "CC")
        screen.column(t, "CATEGORY", max_width=14)
        screen.column(t, "OUT", right=True)
        screen.column(t, "IN", right=True)
        for i, d in enumerate(dests, 1):
            t.add_row(
                screen.cell(i),
                screen.cell(_label(d)),
                screen.cell(d["country"] or "??"),
                screen.cell(d["category"] or "-", "magenta" if d["category"] else ""),
                screen.cell(human_bytes(d["bytes_out"])),
                screen.cell(human_bytes(d["bytes_in"])),
            )
        parts.append(screen.freeze(t, width))
    activity = record["activity"]
    total = record["activity_total"]
    more = f" (the newest {len(activity)} of {total:,})" if total > len(activity) else ""
    parts.append(
        Text(
            f"\nuploads, mails and SSH sessions: {total or 'none'}{more}",
            style="bold",
        )
    )
    if activity:
        t = screen.table()
        screen.column(t, "TIME")
        screen.column(t, "KIND")
        screen.column(t, "DESTINATION", max_width=22)
        screen.column(t, "SENT", right=True)
        screen.column(t, "WHAT", ratio=3, min_width=16)
        for a in activity:
            t.add_row(
                screen.cell(view.iso_local(a["time"])),
                screen.cell(a["kind"]),
                screen.cell(a["dest"]),
                screen.cell(human_bytes(a["bytes"])),
                screen.cell(a["summary"]),
            )
        parts.append(screen.freeze(t, width))
    return Group(*parts)
