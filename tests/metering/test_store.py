from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sensor.config import HistoryConfig
from sensor.metering.store import MeterStore, StoreError
from sensor.metering.values import DestVolume, Finding, Volume, VolumeSummary
from tests.metering.conftest import DAY, T0, MakeMeter, ip, upload


def summary(ts: float, host: str, *dests: tuple[str, int]) -> VolumeSummary:
    rows = tuple(
        DestVolume(d, f"{d}.example" if d != "other" else None, Volume(n, 1, n, 10, 1, 0))
        for d, n in dests
    )
    total = Volume()
    for row in rows:
        total = total + row.volume
    return VolumeSummary(host, ts, 10.0, total, rows, ())


def test_writes_downsample_into_every_tier_and_top_ranks(tmp_path: Path) -> None:
    store = MeterStore(tmp_path / "m.db")
    items: list[VolumeSummary | Finding] = []
    for i in range(12):  # two minutes of 10 s buckets
        items.append(summary(T0 + 10 * i, "10.0.0.1", ("1.1.1.1", 100), ("other", 5)))
        items.append(summary(T0 + 10 * i, "10.0.0.2", ("2.2.2.2", 300)))
    store.write(items)
    assert (store.rows("10s"), store.rows("1m"), store.rows("1h")) == (36, 6, 3)
    hosts = store.top(T0, T0 + 120, by="host")
    assert [(r.host, r.volume.out_bytes) for r in hosts] == [
        ("10.0.0.2", 3600),
        ("10.0.0.1", 1260),
    ]
    dests = store.top(T0, T0 + 60, by="dest", limit=5)
    assert [(r.dest, r.name, r.volume.out_bytes) for r in dests] == [
        ("2.2.2.2", "2.2.2.2.example", 1800),
        ("1.1.1.1", "1.1.1.1.example", 600),
    ]
    pairs = store.top(T0, T0 + 120, by="pair", limit=1)
    assert [(r.host, r.dest) for r in pairs] == [("10.0.0.2", "2.2.2.2")]
    assert store.host_series("10.0.0.1", T0, T0 + 120, 10) == [
        (int(T0) + 10 * i, Volume(105, 2, 105, 20, 2, 0)) for i in range(12)
    ]
    per_minute = store.host_series("10.0.0.1", T0, T0 + 120, 60)
    assert per_minute == [
        (int(T0), Volume(630, 12, 630, 120, 12, 0)),
        (int(T0) + 60, per_minute[1][1]),
    ]
    assert store.host_series("10.0.0.1", T0, T0 + 120, 3600) == [
        (int(T0), Volume(1260, 24, 1260, 240, 24, 0))
    ]
    with pytest.raises(ValueError):
        store.top(T0, T0 + 1, by="nonsense")  # type: ignore[arg-type]


def test_retention_per_tier_on_the_packet_clock(tmp_path: Path) -> None:
    store = MeterStore(tmp_path / "m.db")
    store.write([summary(T0, "10.0.0.1", ("1.1.1.1", 100))])
    store.write([summary(T0 + 2 * DAY, "10.0.0.1", ("1.1.1.1", 100))])
    assert (store.rows("10s"), store.rows("1m"), store.rows("1h")) == (1, 2, 2)
    # Old ranges are answered from the coarser tier that still holds them.
    assert store.host_series("10.0.0.1", T0, T0 + 3 * DAY, 10)[0] == (
        int(T0),
        Volume(100, 1, 100, 10, 1, 0),
    )
    store.write([summary(T0 + 30 * DAY, "10.0.0.1", ("1.1.1.1", 100))])
    assert (store.rows("10s"), store.rows("1m"), store.rows("1h")) == (1, 1, 3)


def test_size_is_bounded(tmp_path: Path) -> None:
    store = MeterStore(tmp_path / "m.db", HistoryConfig(max_rows=50))
    for i in range(400):
        store.write([summary(T0 + 10 * i, "10.0.0.1", ("1.1.1.1", 1))])
    store.write([summary(T0 + 7300, "10.0.0.1", ("1.1.1.1", 1))])  # a new hour: prune
    assert store.rows("10s") <= 50


def test_restart_reopens_and_continues(tmp_path: Path, make_meter: MakeMeter) -> None:
    path = tmp_path / "m.db"
    meter = make_meter()
    store = MeterStore(path)
    upload(meter, T0, ip("10.0.0.1"), ip("198.51.100.1"), 1000)
    store.write(meter.tick(T0 + 10))
    store.write([Finding("volume_spike", "10.0.0.1", T0 + 10, 3600, 5.0, 4.0, "x", ("a", "b"))])
    store.close()
    store = MeterStore(path)  # the sensor restarted
    assert store.newest == int(T0)
    upload(meter, T0 + 5, ip("10.0.0.1"), ip("198.51.100.1"), 1)  # same 1 min slot
    meter.tick(T0 + 10)
    upload(meter, T0 + 15, ip("10.0.0.1"), ip("198.51.100.1"), 500)
    store.write(meter.tick(T0 + 20))
    (row,) = store.top(T0, T0 + 60, by="pair")
    assert row.volume.out_payload == 1501
    assert store.host_series("10.0.0.1", T0, T0 + 60, 60)[0][1].out_payload == 1501
    (finding,) = store.findings(since=T0, kind="volume_spike")
    assert finding.destinations == ("a", "b") and finding.value == 5.0
    assert store.findings(host="10.9.9.9") == []
    assert store.destinations(T0 - DAY) == [("198.51.100.1", T0)]
    store.close()


def test_foreign_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    MeterStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        MeterStore(path)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"x" * 4096)
    with pytest.raises(StoreError, match="cannot open"):
        MeterStore(garbage)


def test_a_schema_1_database_is_read_as_it_is_and_migrated_by_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with MeterStore(path) as store:
        store.write([Finding("volume_spike", "10.0.0.1", T0, 3600, 5.0, 4.0, "x")])
    db = sqlite3.connect(path)  # what Sluice before schema 2 wrote
    db.execute("ALTER TABLE findings DROP COLUMN severity")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.commit()
    db.close()
    before = path.read_bytes()
    with MeterStore(path, readonly=True) as reader:  # `sluice top` while the old sensor runs
        (old,) = reader.findings()
        assert (old.kind, old.severity) == ("volume_spike", "medium")
    assert path.read_bytes() == before  # a reader changes nothing, migrates nothing
    with MeterStore(path) as writer:
        writer.write([Finding("canary_token", "10.0.0.2", T0 + 10, 0, 1, 1, "y", (), "critical")])
        assert [(f.kind, f.severity) for f in writer.findings()] == [
            ("volume_spike", "medium"),
            ("canary_token", "critical"),  # a kind the map does not know keeps its own
        ]
    assert (
        sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        == "2"
    )


def test_an_old_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    MeterStore(path).close()
    path.chmod(0o644)
    saved = os.umask(0o077)
    try:
        MeterStore(path).close()
    finally:
        os.umask(saved)
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_row_bound_moves_queries_to_a_tier_that_still_holds_them(tmp_path: Path) -> None:
    store = MeterStore(tmp_path / "m.db", HistoryConfig(max_rows=50))
    for i in range(401):
        store.write([summary(T0 + 10 * i, "10.0.0.1", ("1.1.1.1", 100))])
    store.write([summary(T0 + 7300, "10.0.0.1", ("1.1.1.1", 100))])  # a new hour: prune
    cut = store.pruned_before("10s")
    assert cut is not None and cut > T0
    tier = store.tier_for(T0)
    assert tier.name != "10s" and store.holds(tier, T0)
    (row,) = store.top(T0, T0 + 3 * 3600, by="host")
    assert row.volume.out_bytes == 402 * 100  # nothing silently missing
