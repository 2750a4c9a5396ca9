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

Both commands build JSON-ready records first; the text views only render those records, so
the two outputs cannot disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from sensor.metering.categories import CategoryDb, CategoryError, load_categories
from sensor.metering.geo import GeoDb, GeoError, open_geo
from sensor.metering.store import MeterStore, StoreError, TopRow
from sensor.metering.values import Finding, Volume
from sensor.outputs.eve import iso_time
from sensor.outputs.meter import volume_fields

EXIT_USAGE = 2
DB_NAME = "sluice.db"  # inside a replay's --out directory
WINDOW_FORMS = "all, or a whole number with s, m, h or d (e.g. 30s, 10m, 1h, 24h, 7d)"
TOP_DESTINATIONS = 3  # per row of `sluice top`
HOST_DESTINATIONS = 20  # in `sluice host`
SPARK = "▁▂▃▄▅▆▇█"
SPARK_STEPS = 60  # one-minute steps: the host's last hour
SPARK_STEP = 60
CHART_STEPS = 40  # about this many rows in `sluice host`'s chart
CHART_WIDTH = 50  # characters of the longest bar
EIGHTHS = " ▏▎▍▌▋▊▉"  # partial blocks, index = eighths of a character
# Chart steps a human reads easily; each is a multiple of the store tier it will be read from
# (10 s, 1 min, 1 h), so no step gets one row more than its neighbour.
NICE_STEPS = (10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600,
              43200, 86400)  # fmt: skip
CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase screen (ANSI)
_EVERYTHING = 1 << 31  # a row limit meaning "all of them"
_WINDOW = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Record = dict[str, Any]
By = Literal["host", "dest", "pair"]


class CliError(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


# -- arguments --------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """Register `top` and `host` on the subparsers action of `sluice`'s parser."""
    top = sub.add_parser(
        "top", help="hosts (or destinations) sending the most, from a metering database"
    )
    _common(top)
    top.add_argument(
        "--window", default="10m", help=f"how far back from the newest data: {WINDOW_FORMS}"
    )
    top.add_argument("--by", choices=("host", "dest", "pair"), default="host")
    top.add_argument("--limit", type=int, default=10, metavar="N", help="rows (default 10)")
    top.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C",
    )
    host = sub.add_parser("host", help="one host's outbound volume, destinations and findings")
    host.add_argument("ip", metavar="IP")
    _common(host)
    host.add_argument("--since", default="24h", help=f"period shown: {WINDOW_FORMS}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DB_NAME,
        metavar="PATH",
        help=f"a replay's --out directory or the database file (default ./{DB_NAME})",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of text")
    parser.add_argument("--geoip", metavar="FILE", help="a MaxMind .mmdb country database")
    parser.add_argument(
        "--categories",
        metavar="FILE",
        help="destination categories file (default: categories.toml of the signatures "
        "directory: $SLUICE_SIGNATURES, else the installed or checkout copy)",
    )


def parse_window(text: str) -> float | None:
    """Seconds of a window such as `10m`; None for `all`."""
    if text == "all":
        return None
    match = _WINDOW.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise CliError(f"bad window {text!r}: use {WINDOW_FORMS}")
    return float(int(match[1]) * _UNITS[match[2]])


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Dispatch `top`/`host`; returns the exit status. User errors: one line, status 2."""
    stream = out if out is not None else sys.stdout
    try:
        if args.command == "top":
            return _top_command(args, stream)
        return _host_command(args, stream)
    except CliError as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `sluice top | head`: the reader left, that is fine
        return 0


# -- opening --------------------------------------------------------------------------------


def database_path(arg: str) -> Path:
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
        return MeterStore(path)
    except StoreError as exc:
        raise CliError(str(exc)) from None


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


# -- sluice top -----------------------------------------------------------------------------


def _top_command(args: argparse.Namespace, out: IO[str]) -> int:
    parse_window(args.window)  # bad syntax fails before any file is touched
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
    if args.watch is not None and args.json:
        raise CliError("--watch redraws a table; it does not go with --json")
    if args.watch is not None and not args.watch > 0:
        raise CliError(f"--watch needs a positive number of seconds, not {args.watch:g}")
    path = database_path(args.db)
    labeller = Labeller.open(args.geoip, args.categories)
    if args.watch is None:
        return _top_once(args, path, labeller, out)
    try:
        while True:
            # Reopened on every redraw: `newest` moves while the sensor writes.
            text = _top_text(args, path, labeller)
            out.write(CLEAR + text)
            out.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        out.write("\n")
        return 0


def _top_once(args: argparse.Namespace, path: Path, labeller: Labeller, out: IO[str]) -> int:
    with open_store(path) as store:
        if not store.newest:
            if args.json:
                out.write("[]\n")
            print(f"sluice: no traffic recorded in {path}", file=sys.stderr if args.json else out)
            return 0
        window = window_of(store, args.window)
        rows = top_records(store, window, args.by, args.limit, labeller)
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        out.write(render_top(rows, window, args.by, path))
    return 0


def _top_text(args: argparse.Namespace, path: Path, labeller: Labeller) -> str:
    with open_store(path) as store:
        if not store.newest:
            return f"sluice top: no traffic recorded in {path} yet\n"
        window = window_of(store, args.window)
        rows = top_records(store, window, args.by, args.limit, labeller)
    return render_top(rows, window, args.by, path)


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


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_rate(bps: float) -> str:
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if abs(bps) < 1000 or unit == "Gbit/s":
            return f"{bps:,.0f} {unit}" if unit == "bit/s" else f"{bps:,.1f} {unit}"
        bps /= 1000
    raise AssertionError("unreachable")


def _label(d: Record) -> str:
    return f"{d['name']} ({d['ip']})" if d["name"] else str(d["ip"])


def _where(d: Record) -> str:
    return ", ".join([d["country"] or "??", *([d["category"]] if d["category"] else [])])


def render_top(rows: list[Record], window: Window, by: By, path: Path) -> str:
    head = (
        f"sluice top by {by}: window {window.label}, {_clock(window.start)} .. "
        f"{_clock(window.end)} UTC (packet time), {path}\n"
    )
    if not rows:
        return head + "no traffic in this window\n"
    volume_cols: list[tuple[str, list[str]]] = [
        ("OUT", [human_bytes(r["bytes_out"]) for r in rows]),
        ("RATE", [human_rate(r["rate_bps"]) for r in rows]),
        ("SHARE", [f"{r['share'] * 100:.1f}%" for r in rows]),
        ("FINDINGS", [str(r["findings"]) for r in rows]),
    ]
    headers = ["#"]
    cells: list[list[list[str]]] = [[[str(r["rank"])]] for r in rows]
    right = {0}

    def column(title: str, values: Iterable[list[str]], align_right: bool = False) -> None:
        if align_right:
            right.add(len(headers))
        headers.append(title)
        for row_cells, value in zip(cells, values, strict=True):
            row_cells.append(value)

    if by != "dest":
        column("HOST", ([r["host"]] for r in rows))
    if by != "host":
        dests = [r["destinations"][0] for r in rows]
        column("DESTINATION", ([_label(d)] for d in dests))
        column("COUNTRY", ([d["country"] or "??"] for d in dests))
        column("CATEGORY", ([d["category"] or "-"] for d in dests))
    for title, values in volume_cols:
        column(title, ([v] for v in values), align_right=True)
    if by == "host":
        column("LAST HOUR (1 char = 1 min)", ([sparkline(r["last_hour"])] for r in rows))
        column(
            "TOP DESTINATIONS",
            (
                [
                    f"{_label(d)} [{_where(d)}] {human_bytes(d['bytes_out'])}"
                    for d in r["destinations"]
                ]
                or ["-"]
                for r in rows
            ),
        )
    elif by == "dest":
        column(
            "TOP HOSTS",
            ([f"{h['host']} {human_bytes(h['bytes_out'])}" for h in r["hosts"]] for r in rows),
        )
    return head + table(headers, cells, right)


def table(headers: list[str], rows: list[list[list[str]]], right: set[int]) -> str:
    """Aligned columns; a cell may hold several lines (the row grows); the last column is not
    padded, so a long destination name does not push the others."""
    widths = [
        max([len(headers[i]), *(len(line) for row in rows for line in row[i])])
        for i in range(len(headers))
    ]
    last = len(headers) - 1

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in right else (v if i == last else v.ljust(widths[i]))
            for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip() + "\n"

    out = [line(headers)]
    for row in rows:
        height = max(len(cell) for cell in row)
        for k in range(height):
            out.append(line([cell[k] if k < len(cell) else "" for cell in row]))
    return "".join(out)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- sluice host ----------------------------------------------------------------------------


def _host_command(args: argparse.Namespace, out: IO[str]) -> int:
    parse_window(args.since)
    try:
        host = str(ipaddress.ip_address(args.ip))  # the store keeps the canonical text
    except ValueError:
        raise CliError(f"{args.ip!r} is not an IPv4 or IPv6 address") from None
    path = database_path(args.db)
    labeller = Labeller.open(args.geoip, args.categories)
    with open_store(path) as store:
        if not store.newest:
            if args.json:
                out.write("{}\n")
            print(f"sluice: no traffic recorded in {path}", file=sys.stderr if args.json else out)
            return 0
        window = window_of(store, args.since)
        record = host_record(store, host, window, labeller)
    if args.json:
        out.write(json.dumps(record, indent=2) + "\n")
    else:
        out.write(render_host(record, window))
    return 0


def chart_step(store: MeterStore, start: float, length: float) -> int:
    """A readable step giving about CHART_STEPS rows, never finer than the tier that
    `host_series` will read (it widens the step the same way)."""
    wanted = length / CHART_STEPS
    if wanted > NICE_STEPS[-1]:
        step = math.ceil(wanted / 86400) * 86400
    else:  # the nearest on a log scale: 24 h gives 48 steps of 30 min, not 24 of 1 h
        step = min(NICE_STEPS, key=lambda s: abs(math.log(s / wanted)))
    holding = [t.step for t in store.tiers if store.newest - t.retention <= start]
    finest = min(holding) if holding else max(t.step for t in store.tiers)
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
    return {
        "host": host,
        "window_start": iso_time(window.start),
        "window_end": iso_time(window.end),
        **volume_fields(total),
        "step_seconds": step,
        "series": steps,
        "destinations_total": len(pairs),
        "destinations": [_destination(p, labeller) for p in pairs[:HOST_DESTINATIONS]],
        "findings": [
            {
                "time": iso_time(f.ts),
                "kind": f.kind,
                "detail": f.detail,
                "value": f.value,
                "threshold": f.threshold,
                "window_seconds": f.window,
                "destinations": list(f.destinations),
            }
            for f in window.findings(store, host)
        ],
    }


def bar(value: float, scale: float) -> str:
    """`value / scale` characters of full blocks and one partial block (eighths)."""
    if value <= 0 or scale <= 0:
        return ""
    eighths = max(1, round(value / scale * 8))
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8].strip()


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def render_host(record: Record, window: Window) -> str:
    host = record["host"]
    head = (
        f"sluice host {host}: {window.label}, {_clock(window.start)} .. {_clock(window.end)} "
        "UTC (packet time)\n"
    )
    if not (record["bytes_out"] or record["bytes_in"] or record["findings"]):
        return head + f"no traffic recorded for {host} in this period\n"
    out = [
        head,
        f"  out {human_bytes(record['bytes_out'])} ({record['packets_out']:,} packets, "
        f"{human_bytes(record['payload_bytes_out'])} payload), in "
        f"{human_bytes(record['bytes_in'])} ({record['packets_in']:,} packets)\n\n",
    ]
    peak = max((s["bytes_out"] for s in record["series"]), default=0)
    scale = peak / CHART_WIDTH if peak else 0.0
    step = record["step_seconds"]
    out.append(
        f"outbound bytes per {_duration(step)}"
        + (f" (█ = {human_bytes(scale)}, peak {human_bytes(peak)})" if peak else "")
        + "\n"
    )
    first = window.start // step * step
    for i, s in enumerate(record["series"]):
        when = _clock(first + i * step)[: 16 if step % 60 == 0 else 19]
        amount = human_bytes(s["bytes_out"]) if s["bytes_out"] else ""
        out.append(f"  {when}  {bar(s['bytes_out'], scale).ljust(CHART_WIDTH + 1)} {amount}\n")
    dests = record["destinations"]
    shown = f"top {len(dests)} of {record['destinations_total']}"
    out.append(f"\ndestinations ({shown}):\n" if dests else "\ndestinations: none named\n")
    if dests:
        cells = [
            [
                [str(i)],
                [_label(d)],
                [d["country"] or "??"],
                [d["category"] or "-"],
                [human_bytes(d["bytes_out"])],
                [human_bytes(d["bytes_in"])],
            ]
            for i, d in enumerate(dests, 1)
        ]
        headers = ["#", "DESTINATION", "COUNTRY", "CATEGORY", "OUT", "IN"]
        out.extend("  " + line for line in table(headers, cells, {0, 4, 5}).splitlines(True))
    findings = record["findings"]
    out.append(f"\nfindings ({len(findings)}):\n" if findings else "\nfindings: none\n")
    for f in findings:
        out.append(f"  {f['time'][:19]}Z  {f['kind']}  {f['detail']}\n")
    return "".join(out)
