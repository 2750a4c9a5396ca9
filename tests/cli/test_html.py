"""HTML pages of `sluice top` and `sluice host`, from records built by hand."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any

import pytest

from sensor.cli import html as page
from sensor.cli.html import host_page, top_page

Record = dict[str, Any]
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT}{BREAKOUT}"
VOID = {"meta", "br", "img", "input", "hr", "link", "wbr", "col", "area", "base", "source"}


def volume(out: int) -> Record:
    return {
        "bytes_out": out,
        "packets_out": out // 1000,
        "payload_bytes_out": out * 9 // 10,
        "bytes_in": out // 10,
        "packets_in": out // 2000,
        "payload_bytes_in": out // 20,
    }


def dest(ip: str, name: str | None, country: str | None, category: str | None, out: int) -> Record:
    return {
        "ip": ip,
        "name": name,
        "country": country,
        "category": category,
        "bytes_out": out,
        "payload_bytes_out": out * 9 // 10,
        "bytes_in": out // 10,
    }


def meta(**changes: Any) -> Record:
    base: Record = {
        "title": "Sluice report",
        "generated": "2026-11-29T12:26:07Z",
        "database": "/var/lib/sluice/sluice.db",
        "window_label": "1h",
        "window_start": "2026-11-29T11:30:00.000000Z",
        "window_end": "2026-11-29T12:30:00.000000Z",
        "timezone": "Europe/Amsterdam",
        "by": "host",
        "sluice_version": "0.9.1",
        "pruned_before": None,
    }
    return base | changes


def top_rows(name: str = "www.dropbox.com") -> list[Record]:
    window = {
        "window_start": "2026-11-29T11:30:00.000000Z",
        "window_end": "2026-11-29T12:30:00.000000Z",
    }
    quiet = [0] * 60
    busy = [i * 1000 for i in range(60)]
    return [
        {
            "rank": 1,
            "host": "10.0.0.5",
            **volume(48_000_000),
            "rate_bps": 106_666.7,
            "rate_now_bps": 2_400_000.0,
            "share": 0.8,
            **window,
            "destinations": [
                dest("162.125.1.1", name, "US", "file_hosting", 40_000_000),
                dest("1.1.1.1", "pastebin.com", None, "paste_site", 7_000_000),
                dest("8.8.8.8", None, "US", None, 1_000_000),
            ],
            "findings": 2,
            "last_hour": busy,
        },
        {
            "rank": 2,
            "host": "10.0.0.7",
            **volume(11_000_000),
            "rate_bps": 24_444.4,
            "share": 0.1833,
            **window,
            "destinations": [dest("2001:db8::1", None, None, None, 11_000_000)],
            "findings": 0,
            "last_hour": quiet,
        },
        {
            "rank": 3,
            "host": "10.0.0.9",
            **volume(1_000_000),
            "rate_bps": 2_222.2,
            "share": 0.0167,
            **window,
            "destinations": [],
            "findings": 0,
            "last_hour": quiet,
        },
    ]


def dest_rows(name: str = "www.dropbox.com") -> list[Record]:
    return [
        {
            "rank": 1,
            "dest": "162.125.1.1",
            **volume(40_000_000),
            "rate_bps": 88_888.9,
            "share": 0.6667,
            "destinations": [dest("162.125.1.1", name, "US", "file_hosting", 40_000_000)],
            "hosts": [{"host": "10.0.0.5", "bytes_out": 40_000_000}],
            "findings": 1,
        },
    ]


def pair_rows() -> list[Record]:
    return [
        {
            "rank": 1,
            "host": "10.0.0.5",
            "dest": "1.1.1.1",
            **volume(7_000_000),
            "rate_bps": 15_555.6,
            "share": 0.1167,
            "destinations": [dest("1.1.1.1", "pastebin.com", None, "paste_site", 7_000_000)],
            "findings": 0,
        },
    ]


# 30-min steps over the DST change: 01:30 CEST, 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET...
SERIES_STARTS = [
    f"2026-10-2{t}:00.000000Z"
    for t in ("4T23:30", "5T00:00", "5T00:30", "5T01:00", "5T01:30", "5T02:00")
]
SERIES_OUT = [0, 1_500_000, 250_000, 0, 1_200_000, 0]


def host_record(text: str = "x.txt") -> Record:
    """`text` goes into every traffic-borne string field."""
    series = [
        {"start": start, **volume(n)} for start, n in zip(SERIES_STARTS, SERIES_OUT, strict=True)
    ]
    return {
        "host": "10.0.0.5",
        "window_start": SERIES_STARTS[0],
        "window_end": "2026-10-25T02:00:00.000000Z",
        **volume(sum(SERIES_OUT)),
        "step_seconds": 1800,
        "series": series,
        "destinations_total": 5,
        "destinations": [
            dest("162.125.1.1", f"www.dropbox.com {text}", "US", "file_hosting", 2_700_000),
            dest("1.1.1.1", "pastebin.com", text, text, 250_000),
        ],
        "findings": [
            {
                "time": "2026-10-25T00:30:00.000000Z",
                "kind": "category_upload",
                "severity": "high",
                "detail": f"2.7 MB to file_hosting in 10 min: {text}",
                "value": 2.7e6,
                "threshold": 1e6,
                "window_seconds": 600.0,
                "destinations": [f"www.dropbox.com (162.125.1.1) {text}"],
            },
            {
                "time": "2026-10-25T01:30:00.000000Z",
                "kind": text,
                "detail": "burst",
                "value": 1.2e6,
                "threshold": 1e6,
                "window_seconds": 60.0,
                "destinations": [],
            },
        ],
        "activity": [
            {
                "time": "2026-10-25T00:31:00Z",
                "kind": "upload",
                "dest": "www.dropbox.com",
                "summary": f"PUT /upload {text}",
                "bytes": 1_400_000,
            },
            {
                "time": "2026-10-25T01:31:00Z",
                "kind": "mail",
                "dest": text,
                "summary": f"MAIL FROM <a@b.example> attachment {text}",
                "bytes": 1_100_000,
            },
        ],
    }


def empty_host() -> Record:
    series = [{"start": f"2026-11-29T{h:02d}:00:00.000000Z", **volume(0)} for h in range(24)]
    return {
        "host": "10.0.0.66",
        "window_start": "2026-11-29T00:00:00.000000Z",
        "window_end": "2026-11-30T00:00:00.000000Z",
        **volume(0),
        "step_seconds": 3600,
        "series": series,
        "destinations_total": 0,
        "destinations": [],
        "findings": [],
    }


class Checked(HTMLParser):
    """Fails on any unbalanced element; collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}
        self.columns = 0
        self.polylines: list[str] = []
        self.svg_titles: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.attrs.extend(attrs)
        found = dict(attrs)
        if tag == "rect" and found.get("class") == "col":
            self.columns += 1
        if tag == "polyline":
            self.polylines.append(found.get("points") or "")

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, tag
        assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack and self.stack[-1] == "title" and "svg" in self.stack:
            self.svg_titles.append(data)


def parse(document: str) -> Checked:
    assert document.startswith("<!DOCTYPE html>")
    checked = Checked()
    checked.feed(document)
    checked.close()
    assert checked.stack == [], checked.stack
    return checked


PAGES = {
    "top by host": lambda: top_page(top_rows(), meta()),
    "top by dest": lambda: top_page(dest_rows(), meta(by="dest")),
    "top by pair": lambda: top_page(pair_rows(), meta(by="pair")),
    "top, no rows": lambda: top_page([], meta()),
    "host": lambda: host_page(host_record(), meta()),
    "host, no traffic": lambda: host_page(empty_host(), meta()),
}


@pytest.mark.parametrize("name", PAGES)
def test_every_page_parses_balanced_and_self_contained(name: str) -> None:
    checked = parse(PAGES[name]())
    for tag in ("script", "img", "link", "iframe", "object", "a"):
        assert tag not in checked.counts
    assert not [k for k, _ in checked.attrs if k.startswith("on") or k in ("href", "src")]


def test_top_page_draws_a_share_bar_and_a_sparkline_per_host() -> None:
    checked = parse(top_page(top_rows(), meta()))
    assert checked.counts["table"] == 1
    assert checked.counts["tr"] == 4  # the header and three hosts
    assert checked.counts["svg"] == 6
    assert len(checked.polylines) == 3
    assert all(len(p.split()) == 60 for p in checked.polylines)
    # The busy host climbs to the top of its sparkline; the quiet ones stay on the bottom.
    assert checked.polylines[0].split()[-1] == "120.0,1.0"
    assert {p.split(",")[-1] for p in checked.polylines[1].split()} == {"19.0"}
    assert "80.0% of outbound bytes" in checked.svg_titles
    assert "last hour: 1.8 MB out, peak 59.0 kB per minute" in checked.svg_titles


def test_top_page_shows_units_and_rate_now_only_where_known() -> None:
    text = "".join(parse(top_page(top_rows(), meta())).text)
    for shown in (
        "48.0 MB",
        "106.7 kbit/s",
        "2.4 Mbit/s",
        "www.dropbox.com (162.125.1.1)",
        "file_hosting",
        "Rate (now)",
    ):
        assert shown in text
    without = [{k: v for k, v in r.items() if k != "rate_now_bps"} for r in top_rows()]
    assert "Rate (now)" not in top_page(without, meta())


def test_top_by_dest_lists_senders() -> None:
    text = "".join(parse(top_page(dest_rows(), meta(by="dest"))).text)
    assert "Top hosts" in text and "10.0.0.5 40.0 MB" in text
    assert "Last hour" not in text


def test_host_chart_has_one_column_per_nonempty_step() -> None:
    checked = parse(host_page(host_record(), meta()))
    assert checked.columns == sum(1 for n in SERIES_OUT if n > 0)
    assert checked.counts["table"] == 3  # destinations, findings, activity


def test_tooltips_hold_local_time_and_human_amount_across_dst() -> None:
    titles = parse(host_page(host_record(), meta())).svg_titles
    # 00:30Z is 02:30 summer time; an hour later it is 02:30 again, in winter time.
    assert titles[1:] == [
        "2026-10-25 02:00 CEST (+30 min): 1.5 MB out",
        "2026-10-25 02:30 CEST (+30 min): 250.0 kB out",
        "2026-10-25 02:30 CET (+30 min): 1.2 MB out",
    ]


def test_host_chart_axis_is_in_round_human_units() -> None:
    text = parse(host_page(host_record(), meta())).text
    for label in ("0 B", "500 kB", "1 MB", "1.5 MB"):
        assert label in text
    assert "02:30 CEST" in text and "02:30 CET" in text  # x ticks, local time
    assert text.count("2026-10-25") == 1  # the date under the first tick only


@pytest.mark.parametrize(
    ("iso", "shown"),
    [
        ("2026-11-29T12:26:00.000000Z", "2026-11-29 13:26 CET"),
        ("2026-10-25T00:59:00Z", "2026-10-25 02:59 CEST"),
        ("2026-10-25T01:00:00Z", "2026-10-25 02:00 CET"),
        ("2026-07-01T10:00:00", "2026-07-01 12:00 CEST"),  # no offset: UTC
        ("2026-07-01T10:00:00+02:00", "2026-07-01 10:00 CEST"),
    ],
)
def test_local_time_converts_utc_to_the_zone(iso: str, shown: str) -> None:
    assert page.local_time(iso, page.zone("Europe/Amsterdam")) == shown


def test_empty_host_gets_a_note_not_a_chart() -> None:
    checked = parse(host_page(empty_host(), meta()))
    text = "".join(checked.text)
    assert "No outbound traffic in this period." in text
    assert "svg" not in checked.counts and checked.columns == 0
    assert "Uploads, mails and SSH sessions (0)" in text and "Findings (0)" in text
    bare = empty_host() | {"series": []}
    assert "No outbound traffic in this period." in host_page(bare, meta())


@pytest.mark.parametrize(
    "render", [lambda m: top_page(top_rows(), m), lambda m: host_page(host_record(), m)]
)
def test_pruning_note_appears_only_when_set(render: Any) -> None:
    assert 'class="pruned"' not in render(meta())
    late = render(meta(pruned_before="2026-11-29T12:00:00Z"))
    assert 'class="pruned"' in late and "2026-11-29 13:00 CET" in late
    assert "incomplete" in late
    early = render(meta(pruned_before="2026-01-01T00:00:00Z"))
    assert 'class="pruned"' in early and "not affected" in early


def test_header_names_window_zone_database_and_version() -> None:
    text = "".join(parse(top_page(top_rows(), meta())).text)
    for shown in (
        "2026-11-29 12:30 CET \u2013 2026-11-29 13:30 CET",
        "Europe/Amsterdam",
        "/var/lib/sluice/sluice.db",
        "2026-11-29 13:26:07 CET",
        "0.9.1",
    ):
        assert shown in text


def hostile_meta(**changes: Any) -> Record:
    return meta(
        title=HOSTILE, database=HOSTILE, window_label=HOSTILE, sluice_version=HOSTILE, **changes
    )


def hostile_documents() -> list[str]:
    rows = top_rows(HOSTILE)
    rows[1]["host"] = HOSTILE
    rows[1]["destinations"][0] |= {"country": HOSTILE, "category": HOSTILE, "ip": HOSTILE}
    by_dest = dest_rows(HOSTILE)
    by_dest[0]["hosts"][0]["host"] = HOSTILE
    record = host_record(HOSTILE)
    record["host"] = HOSTILE
    record["findings"][0]["severity"] = HOSTILE
    record["series"][1]["start"] = HOSTILE  # an unreadable time is shown as given
    return [
        top_page(rows, hostile_meta()),
        top_page(by_dest, hostile_meta(by="dest")),
        top_page(pair_rows(), hostile_meta(by="pair", pruned_before=HOSTILE)),
        host_page(record, hostile_meta(pruned_before=HOSTILE)),
    ]


@pytest.mark.parametrize("index", range(4))
def test_traffic_strings_are_escaped_everywhere(index: int) -> None:
    document = hostile_documents()[index]
    assert SCRIPT not in document and BREAKOUT not in document
    assert "<script" not in document.lower() and "<img" not in document.lower()
    assert html_escaped(HOSTILE) in document
    checked = parse(document)
    assert "script" not in checked.counts and "img" not in checked.counts
    assert not [k for k, _ in checked.attrs if k.startswith("on") or k == "src"]
    assert HOSTILE in "".join(checked.text)  # shown to the reader as text, intact


def test_hostile_strings_reach_svg_titles_escaped() -> None:
    record = host_record()
    record["series"][1]["start"] = HOSTILE
    document = host_page(record, meta())
    assert f"<title>{html_escaped(HOSTILE)} (+30 min): 1.5 MB out</title>" in document


def html_escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def test_controls_and_bidi_overrides_are_replaced() -> None:
    record = host_record("evil\u202etxt.exe\x00\x1b[2J\ud800")
    document = host_page(record, meta())
    for bad in ("\u202e", "\x00", "\x1b", "\ud800"):
        assert bad not in document
    assert "evil\ufffdtxt.exe\ufffd\ufffd[2J\ufffd" in document
    document.encode("utf-8")  # writable as the page's declared charset


def test_output_is_deterministic_and_leaves_input_alone() -> None:
    rows, record = top_rows(), host_record()
    rows_before, record_before = copy.deepcopy(rows), copy.deepcopy(record)
    m = meta(pruned_before="2026-11-29T12:00:00Z")
    assert top_page(rows, m) == top_page(copy.deepcopy(rows), m)
    assert host_page(record, m) == host_page(copy.deepcopy(record), m)
    assert (rows, record) == (rows_before, record_before)


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        top_page(top_rows(), meta(timezone="Mars/Olympus"))
    with pytest.raises(ValueError, match="unknown time zone"):
        host_page(host_record(), meta(timezone="../../etc/passwd"))


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_500_000, "1.5 MB"), (2.5e12, "2.5 TB")],
)
def test_human_bytes_counts_in_powers_of_1000(n: float, text: str) -> None:
    assert page.human_bytes(n) == text


@pytest.mark.parametrize(
    ("bps", "text"),
    [(800, "800 bit/s"), (106_666.7, "106.7 kbit/s"), (2.4e6, "2.4 Mbit/s"), (1e10, "10.0 Gbit/s")],
)
def test_human_rate_counts_bits(bps: float, text: str) -> None:
    assert page.human_rate(bps) == text
