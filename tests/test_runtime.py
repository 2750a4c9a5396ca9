"""sensor/runtime.py without a kernel: the eBPF feed's bookkeeping with a real Pipeline, Meter
and MeterStore. The counter source is a plain table of cumulative counts standing for the
probe's maps (the probe itself runs for real in tests/e2e/test_live.py); packets are built
frames. What is checked here is what e2e timing cannot reach reliably: a busy link closing
buckets inside `process`, a kill at any point, LRU evictions."""

from __future__ import annotations

import sqlite3
import struct
import subprocess
from contextlib import closing, suppress
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from probes.ebpf.counters import encode_addr, pair_key
from probes.frame import LINKTYPE_ETHERNET, Frame
from sensor.config import Config
from sensor.metering.categories import CategoryDb
from sensor.metering.meter import Meter
from sensor.metering.store import MeterStore
from sensor.metering.values import DestVolume, Volume, VolumeSummary
from sensor.pipeline import Pipeline
from sensor.runtime import (
    KERNEL_DEST_PREFIX,
    EventLog,
    LiveOptions,
    LiveSensor,
    ProbeFeed,
    RetryingStore,
    _as_network,
    feed_increments,
)
from tests.conftest import require_root_netns

T0 = 1_767_225_600.0
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([198, 51, 100, 7])


def udp_frame(ts: float, src: bytes, dst: bytes, size: int = 100) -> Frame:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + size, 0, 0, 64, 17, 0, src, dst)
    udp = struct.pack("!HHHH", 40000, 9999, 8 + size, 0)
    return Frame(ts, bytes(12) + b"\x08\x00" + ip + udp + bytes(size), LINKTYPE_ETHERNET)


class Maps:
    """Cumulative per-host and per-pair counts, as the probe's pinned maps hold them."""

    pin_dir = "/sys/fs/bpf/sluice/test"
    mode = "tc"
    iface = "test0"

    def __init__(self, between: int = 0) -> None:
        self.packets = 0
        self.between = between  # packets counted between the hosts read and the pairs read
        self.failing = False
        self.detached = False
        self.reads = 0

    def send(self, packets: int) -> None:
        if not self.detached:  # a detached program counts nothing (its maps stay pinned)
            self.packets += packets

    def read_raw(self, name: str) -> list[tuple[bytes, int, int]]:
        if self.failing:
            raise OSError("bpf(BPF_MAP_LOOKUP_BATCH): Cannot allocate memory")
        if name == "hosts":
            return [(encode_addr("10.0.0.1"), self.packets, self.packets * 1000)]
        # Between the two reads the kernel may count more (`between`, every other read: the
        # gap between the reads changes from one bucket to the next): the pairs show it first.
        if self.between:
            self.packets += self.between * (self.reads % 2)
            self.reads += 1
        return [(pair_key("10.0.0.1", "198.51.100.7"), self.packets, self.packets * 1000)]

    def detach(self) -> None:
        self.detached = True


class Live(NamedTuple):
    pipeline: Pipeline
    feed: ProbeFeed
    store: MeterStore
    meter: Meter


def live(db: Path, maps: Maps, warnings: list[str], config: Config | None = None) -> Live:
    """The runtime's wiring: the probe feed is the meter's bucket feed."""
    config = config or Config()
    store = MeterStore(db)
    feed = ProbeFeed(maps, store, warnings.append)
    meter = Meter(config.metering, config.home_net, CategoryDb.empty(), None, kernel_out=True,
                  dest_prefix=KERNEL_DEST_PREFIX, feed=feed)  # fmt: skip
    pipeline = Pipeline(config, [], None, meter, store)
    feed.start()
    return Live(pipeline, feed, store, meter)


def busy_link(pipeline: Pipeline, feed: ProbeFeed, maps: Maps, start: float, end: float) -> None:
    """A packet every 0.25 s, counted by the kernel as it is sent; buckets close inside
    `process` (never in `tick`), where the meter reads the maps through its bucket feed."""
    t = start
    while t < end:
        maps.send(1)
        pipeline.process(udp_frame(t, CLIENT, SERVER))
        t += 0.25


def out_bytes(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        (total,) = conn.execute("SELECT SUM(out_bytes) FROM volume_10s").fetchone()
    return int(total or 0)


def test_a_killed_sensor_on_a_busy_link_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, _meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0, T0 + 60)
    written = out_bytes(db)
    assert 0 < written < maps.packets * 1000  # buckets were written, the open one was not
    store.close()  # SIGKILL: no finish, no final save; what the kernel counted stays pinned
    pipeline, feed, store, _meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0 + 60, T0 + 75)
    pipeline.finish()
    store.close()
    assert out_bytes(db) == maps.packets * 1000
    assert warnings == [] and feed.skipped == (0, 0)


def test_a_probe_blind_to_the_outbound_traffic_is_given_up_before_bytes_are_lost(
    tmp_path: Path,
) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, _meter = live(db, maps, warnings)
    for i in range(40):  # the capture sees outbound packets, the kernel counts none
        pipeline.process(udp_frame(T0 + 0.25 * i, CLIENT, SERVER))
    pipeline.tick(T0 + 20)
    pipeline.finish()
    store.close()
    (warning,) = warnings
    assert "counted no outbound packet" in warning and "--probe tc" in warning
    assert maps.detached and not feed.active
    assert out_bytes(db) == 40 * 128  # every packet's IP length, from packets after all


def test_increments_beyond_the_pairs_go_to_the_hosts_other_destination(tmp_path: Path) -> None:
    config = Config()
    meter = Meter(config.metering, config.home_net, CategoryDb.empty(), None, kernel_out=True,
                  dest_prefix=KERNEL_DEST_PREFIX)  # fmt: skip
    pipeline = Pipeline(config, [], None, meter, None)
    pipeline.tick(T0)
    host4, host6 = encode_addr("10.0.0.1"), encode_addr("fd00::1")
    feed_increments(
        meter,
        meter.bucket_time(T0),
        [(host4, 7, 7000), (host6, 1, 100)],
        [
            (pair_key("10.0.0.1", "198.51.100.9"), 5, 5000),
            (pair_key("fd00::1", "2001:db8::9"), 1, 100),
        ],
        {},
    )
    summaries = {s.host: s for s in meter.finish() if hasattr(s, "destinations")}
    v4 = {d.ip: d.volume.out_bytes for d in summaries["10.0.0.1"].destinations}
    assert v4 == {"198.51.100.0/24": 5000, "other": 2000}
    assert summaries["10.0.0.1"].volume.out_packets == 7
    assert {d.ip: d.volume.out_bytes for d in summaries["fd00::1"].destinations} == {
        "2001:db8::/64": 100
    }


def test_a_wall_clock_step_is_reported_once_per_step(tmp_path: Path) -> None:
    warnings: list[str] = []
    sensor = LiveSensor(
        Config(), LiveOptions("lo", tmp_path), CategoryDb.empty(), None, warn=warnings.append
    )
    sensor._check_clock(T0, 100.0)
    sensor._check_clock(T0 + 1.0, 101.0)  # both clocks moved alike: nothing to say
    sensor._check_clock(T0 + 2.0 - 3600, 102.0)  # NTP stepped the wall clock back an hour
    sensor._check_clock(T0 + 3.0 - 3600, 103.0)
    assert sensor.clock_steps == 1
    (warning,) = warnings
    assert "stepped by -3600 s" in warning


def test_destinations_known_by_address_stay_known_when_the_probe_meters_networks() -> None:
    assert _as_network("198.51.100.20", KERNEL_DEST_PREFIX) == "198.51.100.0/24"
    assert _as_network("2001:db8:1:2::20", KERNEL_DEST_PREFIX) == "2001:db8:1:2::/64"
    assert _as_network("files.example.org", KERNEL_DEST_PREFIX) == "files.example.org"
    assert _as_network("198.51.100.0/24", KERNEL_DEST_PREFIX) == "198.51.100.0/24"


def test_packets_counted_between_the_two_map_reads_are_not_counted_twice(
    tmp_path: Path,
) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, _meter = live(db, maps, warnings)
    maps.between = 1  # from now on every read races with the kernel
    busy_link(pipeline, feed, maps, T0, T0 + 45)
    pipeline.finish()
    store.close()
    assert out_bytes(db) == maps.packets * 1000
    assert warnings == []


def test_a_kill_before_the_first_bucket_closed_loses_nothing(tmp_path: Path) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, _meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0 + 1, T0 + 5)  # inside the first bucket
    store.close()  # SIGKILL
    pipeline, feed, store, _meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0 + 5, T0 + 25)
    pipeline.finish()
    store.close()
    assert out_bytes(db) == maps.packets * 1000


def test_a_failing_map_read_gives_the_probe_up_and_the_sensor_goes_on(tmp_path: Path) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, _meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0, T0 + 15)
    maps.failing = True
    busy_link(pipeline, feed, maps, T0 + 15, T0 + 35)  # buckets close: reads fail inside process
    pipeline.finish()
    store.close()
    failed, unsaved = warnings  # the read failed, and so did the read for the final save
    assert "reading the eBPF probe's maps failed" in failed and "Cannot allocate" in failed
    assert "could not save the eBPF probe's totals" in unsaved
    assert not feed.active and maps.detached
    assert out_bytes(db) > 0


def test_giving_the_probe_up_saves_its_totals_so_a_restart_adds_nothing(tmp_path: Path) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    pipeline, feed, store, meter = live(db, maps, warnings)
    busy_link(pipeline, feed, maps, T0, T0 + 25)
    feed.give_up(meter, "test0 was re-created")
    busy_link(pipeline, feed, maps, T0 + 25, T0 + 45)  # metered from packets now
    pipeline.finish()
    store.close()
    before = out_bytes(db)
    pipeline, feed, store, meter = live(db, maps, [])
    pipeline.tick(T0 + 60)
    pipeline.tick(T0 + 75)
    pipeline.finish()
    store.close()
    assert out_bytes(db) == before  # the maps' counts were all handed out once


def test_flows_that_ended_before_the_first_bucket_still_reveal_a_blind_probe(
    tmp_path: Path,
) -> None:
    db, maps, warnings = tmp_path / "sluice.db", Maps(), []
    config = replace(Config(), flows=replace(Config().flows, udp_idle_timeout=1.0))
    pipeline, _feed, store, _meter = live(db, maps, warnings, config)
    for i in range(4):
        pipeline.process(udp_frame(T0 + 0.1 * i, CLIENT, SERVER))
    pipeline.tick(T0 + 5)  # the UDP flow timed out and was metered: no flow left in the table
    pipeline.tick(T0 + 20)
    pipeline.finish()
    store.close()
    assert len(warnings) == 1 and "counted no outbound packet" in warnings[0]
    assert out_bytes(db) == 4 * 128


def test_a_full_disk_loses_counted_events_and_keeps_buckets_for_later(tmp_path: Path) -> None:
    """A real full filesystem (a 512 KiB tmpfs): events that cannot be written are counted as
    lost, buckets wait in a backlog and are written once there is room; the sensor goes on."""
    require_root_netns()  # root, for the mount
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small)], check=True)
    store: RetryingStore | None = None
    log: EventLog | None = None
    try:
        warnings: list[str] = []
        store = RetryingStore(small / "sluice.db", warn=warnings.append)
        log = EventLog(small / "events.jsonl", warnings.append)
        filler = small / "filler"
        with filler.open("wb", buffering=0) as fill:  # unbuffered: ENOSPC shows at write
            try:
                while True:
                    fill.write(bytes(4096))
            except OSError:
                pass
        for i in range(50):
            log({"event_type": "flow", "n": i, "pad": "x" * 400})
            log.flush()
        assert log.lost > 0
        store.write([_summary(T0)])
        assert store.failing and len(store.backlog) == 1
        filler.unlink()
        log.flush()
        log({"event_type": "flow", "n": 99})
        log.flush()
        store.write([_summary(T0 + 10)])
        assert not store.failing and not store.backlog
        store.close()
        log.close()
        with closing(sqlite3.connect(small / "sluice.db")) as conn:
            (rows,) = conn.execute("SELECT COUNT(*) FROM volume_10s").fetchone()
        assert rows == 2  # both buckets, the one written late included
        assert b'"n":99' in (small / "events.jsonl").read_bytes()
        assert sum("failed" in w for w in warnings) == 2, warnings  # once per component
        assert sum("works again" in w for w in warnings) == 2, warnings
    finally:
        for handle in (store, log):
            if handle is not None:
                with suppress(Exception):
                    handle.close()
        if subprocess.run(["umount", str(small)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], check=False)  # never leave a mount


def _summary(ts: float) -> VolumeSummary:
    volume = Volume(1000, 1, 900, 0, 0, 0)
    return VolumeSummary(
        "10.0.0.1", ts, 10.0, volume, (DestVolume("198.51.100.7", None, volume),), ()
    )
