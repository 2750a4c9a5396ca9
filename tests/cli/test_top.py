"""`sluice top` and `sluice host` over a metering database written value by value."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from sensor.cli import screen, top
from sensor.cli.main import main
from sensor.metering.store import MeterStore
from sensor.metering.values import DestVolume, Finding, Volume, VolumeSummary
from tests.metering.test_geo import tiny_mmdb

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
NEWEST = T0 + 3590  # start of the newest 10 s bucket: every window ends at T0 + 3600
A, B, C = "10.0.0.5", "10.0.0.7", "10.0.0.9"
DROPBOX = ("162.125.1.1", "www.dropbox.com")  # file_hosting in signatures/categories.toml
PASTEBIN = ("1.1.1.1", "pastebin.com")  # paste_site
GOOGLE_DNS = ("8.8.8.8", None)  # US in the bundled registry data


def volume(n: int) -> Volume:
    """Distinct, checkable counters derived from the outbound bytes."""
    return Volume(n, n // 100, n // 2, n // 10, 1, 0)


def summary(ts: int, host: str, *dests: tuple[tuple[str, str | None], int]) -> VolumeSummary:
    rows = tuple(DestVolume(ip, name, volume(n)) for (ip, name), n in dests)
    total = Volume()
    for row in rows:
        total = total + row.volume
    return VolumeSummary(host, float(ts), 10.0, total, rows, ())


def finding(ts: int, host: str, *destinations: str) -> Finding:
    return Finding("category_upload", host, float(ts), 600.0, 1e6, 1e6, "test", destinations)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Last 10 minutes (window [T0+3000, T0+3600)): A 6200 B, B 3040 B, C 500 B; before it,
    A sent 100000 B at T0+2990 (in the bucket just before the window)."""
    path = tmp_path / "sluice.db"
    with MeterStore(path) as store:
        store.write(
            [
                summary(T0 + 2990, A, (GOOGLE_DNS, 100_000)),
                summary(T0 + 3000, A, (GOOGLE_DNS, 200)),
                summary(T0 + 3300, B, (PASTEBIN, 3000), (("other", None), 40)),
                summary(T0 + 3400, C, (("203.0.113.9", None), 500)),
                summary(NEWEST, A, (GOOGLE_DNS, 1000), (DROPBOX, 5000)),
                finding(T0 + 3000, A),  # ends the bucket before the window: not in it
                finding(T0 + 3010, A),
                finding(T0 + 3310, B, "pastebin.com (1.1.1.1)"),
                finding(T0 + 3600, A, "www.dropbox.com (162.125.1.1)"),  # at the window end
            ]
        )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def top_json(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> list[Any]:
    status, out, err = run(capsys, "top", "--db", str(db), "--json", *argv)
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


def test_top_by_host_exact_counts_order_and_destinations(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = top_json(capsys, db)
    assert [(r["rank"], r["host"], r["bytes_out"]) for r in rows] == [
        (1, A, 6200),
        (2, B, 3040),
        (3, C, 500),
    ]
    a = rows[0]
    assert (a["packets_out"], a["payload_bytes_out"], a["bytes_in"]) == (62, 3100, 620)
    assert (a["window_start"], a["window_end"]) == (
        "2026-01-01T00:50:00.000000Z",
        "2026-01-01T01:00:00.000000Z",
    )
    assert a["share"] == round(6200 / 9740, 4)
    assert a["rate_bps"] == round(6200 * 8 / 600, 1)
    assert [(d["ip"], d["name"], d["category"], d["bytes_out"]) for d in a["destinations"]] == [
        ("162.125.1.1", "www.dropbox.com", "file_hosting", 5000),
        ("8.8.8.8", None, None, 1200),
    ]
    assert a["destinations"][1]["country"] == "US"
    assert rows[1]["destinations"][0]["category"] == "paste_site"  # "other" is never listed
    assert [len(r["destinations"]) for r in rows] == [2, 1, 1]
    assert [r["findings"] for r in rows] == [2, 1, 0]
    assert len(a["last_hour"]) == 60 and sum(a["last_hour"]) == 106_200
    assert a["last_hour"][-1] == 6000 and a["last_hour"][49] == 100_000


def test_window_boundaries(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def bytes_of_a(window: str) -> int:
        return int(top_json(capsys, db, "--window", window, "--limit", "1")[0]["bytes_out"])

    assert bytes_of_a("600s") == 6200  # the bucket at T0+2990 is outside
    assert bytes_of_a("610s") == 106_200  # ... and inside ten seconds further back
    assert bytes_of_a("1h") == bytes_of_a("all") == 106_200
    everything = top_json(capsys, db, "--window", "all")
    assert everything[0]["window_start"] == "2026-01-01T00:00:00.000000Z"  # oldest hour bucket
    newest_bucket = top_json(capsys, db, "--window", "10s")
    assert [(r["host"], r["bytes_out"]) for r in newest_bucket] == [(A, 6000)]


def test_by_dest_and_by_pair(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dests = top_json(capsys, db, "--by", "dest")
    assert [(r["dest"], r["bytes_out"]) for r in dests] == [
        ("162.125.1.1", 5000),
        ("1.1.1.1", 3000),
        ("8.8.8.8", 1200),
        ("203.0.113.9", 500),
    ]
    assert all("host" not in r for r in dests)
    assert dests[1]["destinations"][0]["category"] == "paste_site"
    assert dests[1]["hosts"] == [{"host": B, "bytes_out": 3000}]
    assert [r["findings"] for r in dests] == [1, 1, 0, 0]  # findings naming the destination
    pairs = top_json(capsys, db, "--by", "pair", "--window", "all")
    assert [(r["host"], r["dest"], r["bytes_out"]) for r in pairs] == [
        (A, "8.8.8.8", 101_200),
        (A, "162.125.1.1", 5000),
        (B, "1.1.1.1", 3000),
        (C, "203.0.113.9", 500),
    ]
    assert pairs[0]["destinations"][0]["country"] == "US"


def test_limit(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [r["host"] for r in top_json(capsys, db, "--limit", "2")] == [A, B]
    status, _, err = run(capsys, "top", "--db", str(db), "--limit", "0")
    assert status == 2 and "--limit" in err


def test_db_may_be_the_replay_output_directory(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert top_json(capsys, db.parent) == top_json(capsys, db)


def test_geoip_file_is_used_for_countries(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mmdb = tiny_mmdb(tmp_path / "t.mmdb")  # knows 203.0.113.0/24 = DE, not 8.8.8.8
    rows = top_json(capsys, db, "--by", "dest", "--geoip", str(mmdb))
    countries = {r["dest"]: r["destinations"][0]["country"] for r in rows}
    assert countries["203.0.113.9"] == "DE" and countries["8.8.8.8"] is None


def test_text_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "top", "--db", str(db))
    assert status == 0
    lines = out.splitlines()
    assert "2026-01-01 00:50:00 .. 01:00:00 UTC" in lines[0]
    assert lines[2].split()[:5] == ["#", "HOST", "OUT", "NOW", "AVG"]  # wide: not a terminal
    first = lines[4]
    assert first.split()[:6] == ["1", A, "6.2", "kB", "800", "bit/s"]  # 6 kB in the last minute
    assert "63.7%" in first and "█" in first and "▁" in first  # 100 kB at 00:49, far less since
    assert "www.dropbox.com (162.125.1.1) [US, file_hosting] 5.0 kB" in first
    assert lines[5].strip() == "8.8.8.8 [US] 1.2 kB"  # second destination on its own line
    assert lines[6].split()[:2] == ["2", B]
    # Columns line up: every row's OUT column ends where the header's does.
    end = lines[2].index("OUT") + 3
    assert lines[4][:end].endswith("kB") and lines[6][:end].endswith("kB")
    status, out, _ = run(capsys, "top", "--db", str(db), "--by", "pair")
    assert status == 0 and "pastebin.com (1.1.1.1)" in out and "paste_site" in out


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_table_fits_the_terminal_and_never_cuts_numbers(db: Path, width: int) -> None:
    with MeterStore(db) as store:
        window = top.window_of(store, "10m")
        labeller = top.Labeller.open(None, None)
        view = top.View(top.zoneinfo.ZoneInfo("Europe/Amsterdam"), "Europe/Amsterdam", True)
        for by in ("host", "dest", "pair"):
            rows = top.top_records(store, window, by, 10, labeller)
            stream = io.StringIO()
            console = screen.make_console(stream, no_color=True, width=width)
            console.print(top.render_top(rows, window, by, db, view, width))
            text = stream.getvalue()
            assert max(len(line) for line in text.splitlines()) <= width, text
            assert "01:50:00 .. 02:00:00 CET" in text  # local time, with its zone
            for row in rows:
                assert top.human_bytes(row["bytes_out"]) in text  # numbers are never cut
                if by != "dest":
                    assert row["host"] in text


def test_sparkline_scales_to_the_peak() -> None:
    assert top.sparkline([0, 1, 50, 100]) == " ▁▄█"
    assert top.sparkline([0, 0]) == "  "


def test_watch_redraws_until_interrupted(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    status, out, err = run(capsys, "top", "--db", str(db), "--watch", "0.5")
    assert (status, err, naps) == (0, "", [0.5, 0.5])
    assert out.count(top.CLEAR) == 2 and out.count(A) == 2
    naps.clear()
    assert run(capsys, "top", "--db", str(db), "--watch")[0] == 0
    assert naps == [2.0, 2.0]


def test_host_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "host", A, "--db", str(db), "--since", "1h", "--json")
    assert (status, err) == (0, "")
    record = json.loads(out)
    assert record["host"] == A and record["bytes_out"] == 106_200
    assert record["packets_out"] == 1000 + 2 + 10 + 50
    assert record["step_seconds"] == 60  # 1 h in at most 60 columns: 1 min
    series = record["series"]
    assert len(series) == 60 and series[0]["start"] == "2026-01-01T00:00:00.000000Z"
    assert series[49]["bytes_out"] == 100_000 and series[50]["bytes_out"] == 200
    assert series[-1]["start"] == "2026-01-01T00:59:00.000000Z"
    assert series[-1]["bytes_out"] == 6000
    assert sum(s["bytes_out"] for s in series) == record["bytes_out"]
    assert [(d["name"], d["category"], d["bytes_out"]) for d in record["destinations"]] == [
        (None, None, 101_200),
        ("www.dropbox.com", "file_hosting", 5000),
    ]
    assert record["destinations"][0]["country"] == "US"
    assert [(f["time"], f["kind"], f["severity"]) for f in record["findings"]] == [
        ("2026-01-01T00:50:00.000000Z", "category_upload", "medium"),
        ("2026-01-01T00:50:10.000000Z", "category_upload", "medium"),
        ("2026-01-01T01:00:00.000000Z", "category_upload", "medium"),
    ]
    assert (record["activity"], record["activity_total"]) == ([], 0)
    status, out, _ = run(capsys, "host", A, "--db", str(db), "--since", "10m", "--json")
    assert json.loads(out)["bytes_out"] == 6200 and len(json.loads(out)["findings"]) == 2


def test_host_text(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "host", A, "--db", str(db), "--since", "1h")
    assert status == 0
    assert "out 106.2 kB" in out and "per 1 min, peak 100.0 kB at 00:49" in out
    chart = [line for line in out.splitlines() if "│" in line]
    assert len(chart) == top.CHART_HEIGHT and chart[0].startswith("100.0 kB │")
    columns = [line.split("│", 1)[1] for line in chart]
    assert {row[49] for row in columns} == {"█"}  # the peak is a full-height column
    assert columns[-1][50] == "▁"  # 200 B: an eighth of a row, not nothing
    assert columns[-1][59] == "▃" and columns[-2][59] == " "  # 6000 B: 6/100 of 6 rows
    assert "www.dropbox.com (162.125.1.1)" in out and "file_hosting" in out
    assert re.search(r"01-01 01:00:00 +medium +category_upload +test", out)
    status, out, _ = run(capsys, "host", "10.9.9.9", "--db", str(db))
    assert status == 0 and "no traffic recorded for 10.9.9.9" in out


def test_empty_database_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    MeterStore(tmp_path / "sluice.db").close()
    status, out, _ = run(capsys, "top", "--db", str(tmp_path))
    assert status == 0 and "no traffic recorded" in out
    status, out, err = run(capsys, "top", "--db", str(tmp_path), "--json")
    assert (status, json.loads(out)) == (0, []) and "no traffic recorded" in err
    status, out, _ = run(capsys, "host", A, "--db", str(tmp_path))
    assert status == 0 and "no traffic recorded" in out


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("sluice: error:") and words in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("window", ["5x", "10", "m", "0m", "-1h", "1.5h", "1w"])
def test_bad_window(db: Path, capsys: pytest.CaptureFixture[str], window: str) -> None:
    _fails_cleanly(capsys, ["top", "--db", str(db), f"--window={window}"], "10m, 1h, 24h")


def test_errors(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    _fails_cleanly(capsys, ["top", "--db", str(missing)], "no metering database at")
    assert not missing.exists()  # nothing created for a wrong path
    _fails_cleanly(capsys, ["host", A, "--db", str(missing)], "no metering database at")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    _fails_cleanly(capsys, ["top", "--db", str(junk)], "junk.db")
    _fails_cleanly(capsys, ["host", "10.0.0.300", "--db", str(db)], "not an IPv4 or IPv6")
    _fails_cleanly(capsys, ["host", A, "--db", str(db), "--since", "yesterday"], "use all")
    _fails_cleanly(capsys, ["top", "--db", str(db), "--geoip", str(tmp_path / "x.mmdb")], "x.mmdb")
    bad = tmp_path / "categories.toml"
    bad.write_text("id = 'x'\n")
    _fails_cleanly(capsys, ["top", "--db", str(db), "--categories", str(bad)], "categories")
    _fails_cleanly(capsys, ["top", "--db", str(db), "--watch", "--json"], "--json")


def test_findings_command(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "findings", "--db", str(db), "--json")
    assert (status, err) == (0, "")
    found = json.loads(out)
    assert [(f["time"][11:19], f["host"], f["severity"]) for f in found] == [
        ("00:50:00", A, "medium"),
        ("00:50:10", A, "medium"),
        ("00:55:10", B, "medium"),
        ("01:00:00", A, "medium"),
    ]
    assert found[2]["destinations"] == ["pastebin.com (1.1.1.1)"]
    status, out, _ = run(capsys, "findings", "--db", str(db), "--json", "--host", B)
    assert [f["host"] for f in json.loads(out)] == [B]
    status, out, _ = run(capsys, "findings", "--db", str(db), "--json", "--since", "5m")
    assert len(json.loads(out)) == 2  # (00:55:00, 01:00:00]: B's and the last
    status, out, _ = run(capsys, "findings", "--db", str(db), "--json", "--severity", "high")
    assert json.loads(out) == []
    status, out, _ = run(capsys, "findings", "--db", str(db), "--json", "--kind", "volume_spike")
    assert json.loads(out) == []
    status, out, _ = run(capsys, "findings", "--db", str(db), "--limit", "1")
    assert status == 0 and "the newest 1 of 4 (--limit)" in out
    assert re.search(r"01-01 01:00:00 +medium +category_upload +10\.0\.0\.5 +test", out)
    _fails_cleanly(capsys, ["findings", "--db", str(db), "--host", "nope"], "not an IPv4")


def test_local_time_follows_the_configured_zone(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text("[metering]\ntimezone = 'Europe/Amsterdam'\n")
    status, out, _ = run(capsys, "host", A, "--db", str(db), "--config", str(config))
    assert status == 0 and "CET" in out.splitlines()[0]
    assert re.search(r"01-01 02:00:00 +medium", out)  # 01:00 UTC is 02:00 in Amsterdam
    status, out, _ = run(capsys, "host", A, "--db", str(db), "--config", str(config), "--utc")
    assert "UTC" in out.splitlines()[0] and re.search(r"01-01 01:00:00 +medium", out)


def test_pruned_history_is_stated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sensor.config import HistoryConfig

    path = tmp_path / "sluice.db"
    history = HistoryConfig(ten_second_days=1, minute_days=1, hour_days=2, findings_days=2)
    with MeterStore(path, history) as store:
        store.write([summary(T0, A, (GOOGLE_DNS, 100)), finding(T0 + 10, A)])
        store.write([summary(T0 + 5 * 86400, B, (GOOGLE_DNS, 100))])  # A's day is gone
    status, out, _ = run(capsys, "top", "--db", str(path), "--window", "all")
    assert status == 0 and "note: history before 2026-01-04 00:00 UTC was pruned" in out
    assert A not in out and B in out
    status, out, _ = run(capsys, "top", "--db", str(path), "--window", "1h")
    assert "was pruned" not in out  # the window does not reach back to the cut
    with MeterStore(path) as store:  # a reader takes the retention the writer used
        assert [t.retention for t in store.tiers] == [86400, 86400, 2 * 86400]


def test_html_pages(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "top.html"
    assert run(capsys, "top", "--db", str(db), "--html", str(page))[0] == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and A in text
    assert page.stat().st_mode & 0o077 == 0
    page = tmp_path / "host.html"
    assert run(capsys, "host", A, "--db", str(db), "--html", str(page))[0] == 0
    assert "www.dropbox.com" in page.read_text()
    _fails_cleanly(
        capsys, ["top", "--db", str(db), "--html", str(tmp_path / "no" / "x.html")], "cannot write"
    )


def test_a_site_config_that_cannot_be_read_costs_only_the_time_zone(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sensor.config as config_module

    broken = tmp_path / "sluice.toml"
    broken.write_text("[metering\n")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", broken)
    monkeypatch.delenv("SLUICE_CONFIG", raising=False)
    status, out, err = run(capsys, "top", "--db", str(db))
    assert status == 0 and A in out and "UTC" in out.splitlines()[0]
    assert err.startswith("sluice: warning: config:") and err.rstrip().endswith("times in UTC")
    _fails_cleanly(capsys, ["top", "--db", str(db), "--config", str(broken)], "not valid TOML")


@pytest.mark.parametrize(
    "argv", [["top", "--window", "99999999d"], ["host", A, "--since", "40000d"],
             ["findings", "--since", "36501d"]],
)  # fmt: skip
def test_a_window_longer_than_a_century_is_a_usage_error(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _fails_cleanly(capsys, [*argv, "--db", str(db)], "longer than 36500 days")


def test_findings_all_reaches_back_to_the_first_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sensor.config import HistoryConfig

    path = tmp_path / "sluice.db"
    history = HistoryConfig(ten_second_days=1, minute_days=1, hour_days=2, findings_days=30)
    with MeterStore(path, history) as store:
        store.write([summary(T0, A, (GOOGLE_DNS, 100)), finding(T0 + 10, A)])
        store.write([summary(T0 + 5 * 86400, B, (GOOGLE_DNS, 100))])  # A's volume is gone
    _, out, _ = run(capsys, "findings", "--db", str(path), "--json")
    assert [f["host"] for f in json.loads(out)] == [A]  # kept 30 days, volume only 2
    _, out, _ = run(capsys, "findings", "--db", str(path))
    assert "was pruned" not in out and A in out


def test_names_from_the_wire_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sluice.db"
    hostile = "\x1b]0;owned\x07\x1b[2J[bold]evil[/bold]\u202etxt.exe"
    with MeterStore(path) as store:
        store.write([summary(NEWEST, A, (("198.51.100.7", hostile), 5000))])
        store.add_activity([(NEWEST, A, "upload", hostile, 5000, hostile)])
    for argv in (["top", "--by", "dest"], ["host", A]):
        status, out, _ = run(capsys, *argv, "--db", str(path))
        assert status == 0 and "evil" in out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "[bold]evil[/bold]" in out  # shown as text, never read as markup


def test_without_db_the_one_sensors_database_is_read(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    sensors = tmp_path / "var-lib-sluice"
    (sensors / "eth1").mkdir(parents=True)
    shutil.copy(db, sensors / "eth1" / "sluice.db")
    monkeypatch.setattr(top, "SENSORS_DIR", sensors)
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    status, out, _ = run(capsys, "top")
    assert status == 0 and A in out and str(sensors / "eth1" / "sluice.db") in out
    (sensors / "eth2").mkdir()
    shutil.copy(db, sensors / "eth2" / "sluice.db")
    _fails_cleanly(capsys, ["top"], "several sensors' databases")
    shutil.copy(db, here / "sluice.db")  # one here wins
    assert run(capsys, "top")[0] == 0


SENSITIVE_DETAIL = (
    "bmhk-uitslagen-2025-06.csv: contact, health, national_id; 400 bsn, 391 date_of_birth, "
    "400 postcode_nl; 400 records, over smtp to 198.51.100.20:25"
)


@pytest.mark.parametrize("width", [80, 160])
def test_a_findings_detail_is_never_cut(width: int) -> None:
    """At 80 columns kind and host share a column and the detail wraps below them; at 160 the
    columns are side by side. Either way every word of the detail is on the screen."""
    records = [
        {"time": "2025-07-01T10:00:00Z", "kind": "sensitive_content", "severity": "critical",
         "host": "10.10.0.10", "detail": SENSITIVE_DETAIL},
        {"time": "2025-07-01T10:00:05Z", "kind": "volume_threshold", "severity": "medium",
         "host": "10.10.0.10", "detail": "rule 'bulk upload': 2.3 MB outbound"},
    ]  # fmt: skip
    from datetime import UTC

    from rich.console import Console

    view = top.View(tz=UTC, tz_name="UTC", no_color=True)
    stream = io.StringIO()
    console = Console(file=stream, width=width, color_system=None)
    console.print(top.findings_table(records, view, width))
    lines = stream.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    assert " ".join(stream.getvalue().split()).count(SENSITIVE_DETAIL) == 1
    header = lines[0].split()
    if width == 80:
        assert header == ["TIME", "SEVERITY", "FINDING,", "HOST"]
        assert re.search(r"critical +sensitive_content +10\.10\.0\.10 *$", lines[2])
    else:
        assert header == ["TIME", "SEVERITY", "KIND", "HOST", "DETAIL"]
        assert re.search(r"medium +volume_threshold +10\.10\.0\.10 +rule 'bulk upload': "
                         r"2\.3 MB outbound *$", stream.getvalue(), re.M)  # fmt: skip
