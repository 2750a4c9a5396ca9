"""Self-contained HTML pages of `sluice top` and `sluice host`, to attach to a ticket (CLI edge).

In: the JSON-ready records that `top_records()` and `host_record()` in sensor/cli/top.py build,
and a `meta` dict saying where and when they came from. Out: one HTML document as a string,
with inline CSS and inline SVG charts; no scripts, fonts, images or links, so it reads the
same offline, printed, and years later. The caller writes it (as UTF-8).

Every string in a record came from traffic (names, details, summaries, file names) and is
hostile: it reaches the page only through `_text`, which escapes it for element content and
for quoted attribute values alike, and also inside SVG <title>. Times are shown in the zone
`meta["timezone"]` with its abbreviation, so a window across a DST change reads right. The
renderers never look at the clock: the same input gives the same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sensor.metering.units import human_bytes, human_duration, human_rate

Record = dict[str, Any]

BYTE_UNITS = ("B", "kB", "MB", "GB", "TB")  # powers of 1000, as in the text views
CHART_W, CHART_H = 760, 260  # the host chart's SVG user units
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 70, 10, 10, 40  # margins for the axes' labels
X_TICKS = 6  # at most this many time labels under the host chart
Y_TICKS = 4  # about this many amounts on the y-axis
BAR_W, BAR_H = 120, 12  # share-of-outbound bar of `top`
SPARK_W, SPARK_H = 120, 20  # last-hour sparkline of `top`
DASH = "&ndash;"  # an empty cell, and the dash between two times
SEVERITIES = ("info", "low", "medium", "high", "critical")  # the only ones given a CSS class
# Characters that either break a document (C0/C1 controls, lone surrogates that cannot be
# written as UTF-8) or reorder what the reader sees (bidi embeddings, overrides, isolates).
_UNSAFE = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0),
     *range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xD800, 0xE000)],
    0xFFFD,
)  # fmt: skip

CSS = """
body{background:#fff;color:#1b1b1b;font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:72em}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:0}
dl.meta dt{color:#555}dl.meta dd{margin:0}
.pruned{border:2px solid #b35c00;background:#fff4e5;padding:.4em .7em;margin:.8em 0}
table{border-collapse:collapse;width:100%;margin:.3em 0}
th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f2f2f2}td.num,th.num{text-align:right;white-space:nowrap}
.note{color:#555;font-style:italic}small{color:#555}
.sev-high,.sev-critical{color:#a00;font-weight:bold}.sev-medium{color:#b35c00}
svg{vertical-align:middle}svg.chart{width:100%;max-width:760px;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .col{fill:#2f6db5}svg .grid{stroke:#ddd}
svg .bar{fill:#2f6db5}svg .track{fill:#eee}svg .spark{fill:none;stroke:#2f6db5;stroke-width:1}
@media print{body{margin:0;font-size:11px}tr,svg{break-inside:avoid}
.pruned{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


# -- values to text ---------------------------------------------------------------------------


def _text(value: object) -> str:
    """Any value as escaped text for element content or a quoted attribute; None is empty."""
    if value is None:
        return ""
    return html.escape(str(value).translate(_UNSAFE), quote=True)


def _scaled(n: float, units: Sequence[str]) -> tuple[float, str]:
    for unit in units[:-1]:
        if abs(n) < 1000:
            return n, unit
        n /= 1000
    return n, units[-1]


def _axis_bytes(n: float) -> str:
    """An axis amount (1, 2 or 5 times a power of ten): no trailing `.0`."""
    value, unit = _scaled(n, BYTE_UNITS)
    return f"{value:g} {unit}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone of `meta["timezone"]`; ValueError names it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _instant(text: str) -> datetime:
    """An ISO-8601 time; `Z` or no offset at all means UTC (the records' convention)."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def local_time(text: str | None, tz: ZoneInfo, seconds: bool = False) -> str:
    """`2026-11-29T12:26:00Z` as `2026-11-29 13:26 CET` in Europe/Amsterdam (escaped);
    a missing time is empty, an unreadable one is shown as given."""
    if not text:
        return ""
    try:
        when = _instant(text).astimezone(tz)
    except (TypeError, ValueError):
        return _text(text)
    return _text(when.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"))


def _before(a: str, b: str) -> bool:
    """Whether time `a` is before time `b`; True when either is unreadable (assume the worst)."""
    try:
        return _instant(a) < _instant(b)
    except (TypeError, ValueError):
        return True


def _fraction(value: object) -> float:
    """A share in [0, 1]; anything else (NaN, None, out of range) is clamped."""
    number = float(value) if isinstance(value, int | float) else 0.0
    return min(max(number, 0.0), 1.0) if math.isfinite(number) else 0.0


def _label(dest: Record) -> str:
    """`name (ip)` or `ip`, escaped."""
    ip = _text(dest.get("ip"))
    return f"{_text(dest['name'])} ({ip})" if dest.get("name") else ip


# -- page parts -------------------------------------------------------------------------------


def _page(title: str, heading: str, meta: Record, body: list[str]) -> str:
    tz = zone(meta["timezone"])
    start, end = local_time(meta["window_start"], tz), local_time(meta["window_end"], tz)
    rows = [
        ("Window", f"{_text(meta['window_label'])}: {start} {DASH} {end} (packet time)"),
        ("Time zone", _text(meta["timezone"])),
        ("Database", _text(meta["database"])),
        ("Generated", local_time(meta["generated"], tz, seconds=True)),
        ("Sluice version", _text(meta["sluice_version"])),
    ]
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{heading}</h1><dl class="meta">',
        *(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows),
        "</dl>",
    ]
    pruned = meta.get("pruned_before")
    if pruned is not None:
        head.append(
            f'<p class="pruned"><strong>Retention:</strong> data older than '
            f"{local_time(pruned, tz)} was pruned from this database; "
            + (
                "this window starts earlier, so its totals are incomplete.</p>"
                if _before(meta["window_start"], pruned)
                else "this window starts later and is not affected.</p>"
            )
        )
    return "\n".join([*head, "</header>", *body, "</body></html>", ""])


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Cells are HTML already (escaped by their builders); `numeric` columns align right."""

    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _share_bar(share: float) -> str:
    width = share * BAR_W
    return (
        f'<svg width="{BAR_W}" height="{BAR_H}" viewBox="0 0 {BAR_W} {BAR_H}" role="img">'
        f"<title>{share * 100:.1f}% of outbound bytes</title>"
        f'<rect class="track" x="0" y="0" width="{BAR_W}" height="{BAR_H}"/>'
        f'<rect class="bar" x="0" y="0" width="{width:.1f}" height="{BAR_H}"/></svg>'
    )


def _sparkline(values: Sequence[int]) -> str:
    """One point per minute, scaled to the largest; flat along the bottom when idle."""
    peak = max(values, default=0)
    step = SPARK_W / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{SPARK_H - 1 - (v / peak * (SPARK_H - 2) if peak > 0 else 0):.1f}"
        for i, v in enumerate(values)
    )
    tip = f"last hour: {human_bytes(sum(values))} out, peak {human_bytes(peak)} per minute"
    return (
        f'<svg width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}" '
        f'role="img"><title>{_text(tip)}</title>'
        f'<polyline class="spark" points="{points}"/></svg>'
    )


def _destinations(dests: Sequence[Record]) -> str:
    rows = [
        [
            _label(d),
            _text(d.get("country") or "??"),
            (_text(d.get("category")) or DASH),
            human_bytes(d.get("bytes_out", 0)),
            human_bytes(d.get("bytes_in", 0)),
        ]
        for d in dests
    ]
    return _table(["Destination", "Country", "Category", "Out", "In"], rows, {3, 4})


def _nice_step(peak: float) -> float:
    """1, 2 or 5 times a power of ten, giving about Y_TICKS steps up to `peak`."""
    raw = peak / Y_TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next((m * power for m in (1, 2, 5) if m * power >= raw), 10 * power)
    return max(step, 1)  # no fractions of a byte on the axis


def column_chart(series: Sequence[Record], step_seconds: int, tz: ZoneInfo) -> str:
    """Outbound bytes per step as columns: one <rect> (with a <title>) per non-empty step."""
    peak = max((s.get("bytes_out", 0) for s in series), default=0)
    if peak <= 0:
        return '<p class="note">No outbound traffic in this period.</p>'
    tick = _nice_step(peak)
    top = math.ceil(peak / tick) * tick
    plot_w = CHART_W - PLOT_LEFT - PLOT_RIGHT
    plot_h = CHART_H - PLOT_TOP - PLOT_BOTTOM
    base = PLOT_TOP + plot_h
    col_w = plot_w / len(series)
    parts = [
        f'<svg class="chart" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img">',
        f"<title>outbound bytes per {human_duration(step_seconds)}</title>",
    ]
    for k in range(round(top / tick) + 1):
        y = base - k * tick / top * plot_h
        parts.append(
            f'<line class="grid" x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{CHART_W - PLOT_RIGHT}" '
            f'y2="{y:.1f}"/><text x="{PLOT_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_axis_bytes(k * tick)}</text>"
        )
    every = max(1, math.ceil(len(series) / X_TICKS))
    last_day = ""
    for i, s in enumerate(series):
        x = PLOT_LEFT + i * col_w
        if i % every == 0:  # the clock at each tick, the date under it when it changes
            day, _, clock = local_time(s.get("start"), tz).partition(" ")
            parts.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{clock}</text>')
            if day != last_day:
                parts.append(f'<text x="{x:.1f}" y="{base + 30}" text-anchor="middle">{day}</text>')
            last_day = day
        amount = s.get("bytes_out", 0)
        if amount > 0:
            h = amount / top * plot_h
            tip = f"{local_time(s.get('start'), tz)} (+{human_duration(step_seconds)}): "
            parts.append(
                f'<rect class="col" x="{x + col_w * 0.1:.1f}" y="{base - h:.1f}" '
                f'width="{col_w * 0.8:.1f}" height="{h:.1f}">'
                f"<title>{tip}{human_bytes(amount)} out</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


# -- the two pages ----------------------------------------------------------------------------


def top_page(rows: list[Record], meta: Record) -> str:
    """`sluice top --html`: the ranked rows of `top_records()` as a table with share bars and
    (by host) last-hour sparklines. `meta["by"]` is "host", "dest" or "pair"."""
    by = meta["by"]
    tz = zone(meta["timezone"])  # fails before any work on an unknown zone
    heading = f"{_text(meta['title'])} <small>by {_text(by)}</small>"
    if not rows:
        return _page(
            meta["title"], heading, meta, ['<p class="note">No traffic in this window.</p>']
        )
    with_now = any("rate_now_bps" in r for r in rows)
    headers = ["#"]
    if by != "dest":
        headers.append("Host")
    if by != "host":
        headers += ["Destination", "Country", "Category"]
    headers += ["Out", "Rate (avg)", *(["Rate (now)"] if with_now else []), "Share", "Findings"]
    numeric = {0, *range(len(headers) - (4 + with_now), len(headers))}
    headers += ["Last hour"] if by == "host" else []
    headers += {"host": ["Top destinations"], "dest": ["Top hosts"]}.get(by, [])
    table_rows = []
    for r in rows:
        cells = [_text(r.get("rank"))]
        if by != "dest":
            cells.append(_text(r.get("host")))
        if by != "host":
            d = (r.get("destinations") or [{"ip": r.get("dest"), "name": None}])[0]
            cells += [
                _label(d),
                _text(d.get("country") or "??"),
                (_text(d.get("category")) or DASH),
            ]
        cells += [human_bytes(r.get("bytes_out", 0)), human_rate(r.get("rate_bps", 0))]
        if with_now:
            now = r.get("rate_now_bps")
            cells.append(human_rate(now) if isinstance(now, int | float) else DASH)
        share = _fraction(r.get("share"))
        cells += [f"{_share_bar(share)} {share * 100:.1f}%", _text(r.get("findings", 0))]
        if by == "host":
            cells.append(_sparkline(r.get("last_hour") or []))
            cells.append(
                "<br>".join(
                    f"{_label(d)} <small>[{_text(d.get('country') or '??')}"
                    f"{', ' + _text(d['category']) if d.get('category') else ''}]</small> "
                    f"{human_bytes(d.get('bytes_out', 0))}"
                    for d in r.get("destinations") or []
                )
                or DASH
            )
        elif by == "dest":
            hosts = r.get("hosts") or []
            cells.append(
                "<br>".join(f"{_text(h['host'])} {human_bytes(h['bytes_out'])}" for h in hosts)
                or DASH
            )
        table_rows.append(cells)
    start = local_time(meta["window_start"], tz)
    body = [
        f"<h2>Top {len(rows)} by outbound bytes since {start}</h2>",
        _table(headers, table_rows, numeric),
        '<p class="note">Share: of all outbound bytes in the window. Rate (avg): bits per second '
        "over the whole window."
        + (" Last hour: outbound bytes per minute." if by == "host" else "")
        + "</p>",
    ]
    return _page(meta["title"], heading, meta, body)


def host_page(record: Record, meta: Record) -> str:
    """`sluice host IP --html`: one host's outbound chart, destinations, findings, activity."""
    tz = zone(meta["timezone"])
    host = _text(record.get("host"))
    heading = f"{_text(meta['title'])} <small>host {host}</small>"
    body = [
        f"<p>Out <strong>{human_bytes(record.get('bytes_out', 0))}</strong> "
        f"({record.get('packets_out', 0):,} packets, "
        f"{human_bytes(record.get('payload_bytes_out', 0))} payload); "
        f"in {human_bytes(record.get('bytes_in', 0))} "
        f"({record.get('packets_in', 0):,} packets).</p>",
        f"<h2>Outbound bytes per {human_duration(record.get('step_seconds', 0))} "
        f"<small>(local time, {_text(meta['timezone'])})</small></h2>",
        column_chart(record.get("series") or [], record.get("step_seconds", 0), tz),
    ]
    dests = record.get("destinations") or []
    total = record.get("destinations_total", len(dests))
    body.append(f"<h2>Destinations <small>(top {len(dests)} of {_text(total)})</small></h2>")
    body.append(_destinations(dests) if dests else '<p class="note">None named.</p>')
    findings = record.get("findings") or []
    body.append(f"<h2>Findings ({len(findings)})</h2>")
    rows = []
    for f in findings:
        severity = f.get("severity")
        known = severity if severity in SEVERITIES else None
        sev = f'<span class="sev-{known}">{_text(known)}</span>' if known else _text(severity)
        to = ", ".join(_text(d) for d in f.get("destinations") or [])
        detail = _text(f.get("detail")) + (f"<br><small>to {to}</small>" if to else "")
        rows.append([local_time(f.get("time"), tz), sev or DASH, _text(f.get("kind")), detail])
    body.append(
        _table(["Time", "Severity", "Kind", "Detail"], rows, set())
        if rows
        else '<p class="note">None.</p>'
    )
    activity = record.get("activity") or []
    total = record.get("activity_total", len(activity))
    shown = (
        f", the newest {len(activity)}" if isinstance(total, int) and total > len(activity) else ""
    )
    body.append(f"<h2>Uploads, mails and SSH sessions ({_text(total)}{shown})</h2>")
    rows = [
        [
            local_time(a.get("time"), tz),
            _text(a.get("kind")),
            _text(a.get("dest")),
            _text(a.get("summary")),
            human_bytes(a.get("bytes", 0)),
        ]
        for a in activity
    ]
    body.append(
        _table(["Time", "Kind", "Destination", "Summary", "Bytes"], rows, {4})
        if rows
        else '<p class="note">None recorded.</p>'
    )
    return _page(f"{meta['title']}: {record.get('host', '')}", heading, meta, body)
