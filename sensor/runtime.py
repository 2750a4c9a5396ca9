"""The live runtime (`sluice run --iface IF`): capture loop, clock, signals, the eBPF probe.

This is the one place below the CLI that reads the wall clock and loops. Packets come from
libpcap (`probes.live`) and go through the same `Pipeline` as a replay; between packets the
runtime moves the pipeline's clock (`Pipeline.tick`) so timeouts and meter buckets close on
time on a quiet link.

The eBPF probe
--------------
With `--probe auto` (the default) the runtime attaches the probe's XDP program to the capture
interface (`xdp`, a SPAN port or a gateway's LAN side: what arrives there is what internal
hosts send) or its TC egress program (`tc`, a gateway's WAN side). When it runs, the meter
takes outbound wire bytes and packets from the probe's kernel counters, read in batches right
before every meter bucket closes (`ProbeFeed`, the meter's bucket feed), and destinations
become the probe's networks (/24, /64); packets still give inbound counts, unique payload and
names. Counting in the kernel keeps up at line rate when the capture drops packets. When the
probe cannot run, the runtime says why, once, and meters from packets. An explicit
`--probe xdp|tc` that fails is an error.

Counters survive restarts: the probe's maps are pinned, and every meter bucket is written in
one transaction with the cumulative counts handed to the meter up to it (the `kernel_totals`
table of sluice.db). The next start continues from there, so what a killed sensor counted but
never wrote is attributed after the restart, and nothing twice. Without saved totals (a new
database beside old pins) the pinned counts are skipped and the skip is reported. A probe that
sees no outbound packet while the capture does (XDP on the sending side) is given up at the
first bucket, with a warning.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from probes.ebpf.counters import RawDeltas, dst_net_bytes, source_bytes
from probes.live import DEFAULT_BATCH, CaptureError, CaptureStats, LiveCapture
from sensor.classify.assets import ClassifyAssets
from sensor.classify.detectors import DetectorSet
from sensor.config import Config, HistoryConfig
from sensor.content.fingerprint.table import FileTypeTable
from sensor.metering.categories import CategoryDb
from sensor.metering.geo import GeoDb
from sensor.metering.meter import Meter, network_label
from sensor.metering.store import MeterStore, StoreError
from sensor.metering.values import Finding, KernelTotals, VolumeSummary
from sensor.outputs import eve
from sensor.outputs.activity import ActivityLog
from sensor.pipeline import Pipeline, Summary
from sensor.policy.decide import Decider
from sensor.verdicts.base import BackendError
from sensor.verdicts.delivery import build_delivery, close_delivery
from sensor.verdicts.outbox import OutboxError

PROBE_CHOICES = ("auto", "xdp", "tc", "off")
KERNEL_DEST_PREFIX = (24, 64)  # the probe's per-destination aggregation (sluice_meter.bpf.c)
TICK_SECONDS = 0.25  # how often the pipeline's clock moves on a quiet link
DRAIN_BATCHES = 64  # batches read after a stop request, for what the kernel still holds
CLOCK_STEP_SECONDS = 5.0  # wall vs monotonic clock jumps beyond this are reported
REOPEN_FIRST, REOPEN_MAX = 1.0, 30.0  # seconds between tries to reopen a failed capture
STOP_POLL_SECONDS = 0.1  # how often a wait checks for a stop request
MAX_BACKLOG_WRITES = 360  # meter buckets kept while the database cannot be written (1 hour)
_SAVED_MARK = ("m", "saved")  # kernel_totals row present once a run saved its totals
UNAVAILABLE = "eBPF probe unavailable, metering from packets instead: "


class LiveError(Exception):
    """Something the operator can fix (interface, permissions, an explicit probe that cannot
    run): one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    iface: str
    out: Path
    probe: str = "auto"
    duration: float | None = None  # stop after this many seconds (None: until a signal)
    stats_interval: float = 60.0  # a `stats` event this often
    bpf_filter: str | None = None
    snaplen: int = 262_144
    buffer_bytes: int = 64 << 20  # libpcap's kernel buffer: what absorbs bursts
    pin_dir: str | None = None


@dataclass(slots=True)
class LiveReport:
    summary: Summary
    probe: str  # "xdp (native)", "tc (tcx)", "off", or why it is unavailable
    capture: CaptureStats
    seconds: float
    kernel_skipped: tuple[int, int] = (0, 0)  # (packets, bytes) of earlier runs not attributed
    errors: list[str] = field(default_factory=list)


Increment = tuple[bytes, int, int]  # raw map key, packets, IP bytes


class ProbeFeed:
    """The eBPF probe's counters into the meter, with totals saved for restarts.

    The meter consumes per bucket, so the maps are read once per bucket: the meter asks for them
    right before each bucket closes (`before_close`: it is the meter's `BucketFeed`), so the
    closing bucket gets every kernel count up to its end, and the totals handed out are returned
    to be saved in the same transaction as that bucket. Reads compare raw map keys and decode
    only the entries that changed. Until the probe has counted an outbound packet, each bucket
    close also checks that it sees the outbound traffic the capture sees (an XDP program on the
    sender's own interface sees only what arrives); if not, it says so once and the meter goes
    back to packets before the first bucket that would have lost them is written."""

    def __init__(self, probe: Any, store: MeterStore, warn: Callable[[str], None]) -> None:
        self.probe = probe
        self.key = str(probe.pin_dir)
        self.store = store
        self.warn = warn
        self.hosts: RawDeltas[bytes] = RawDeltas()
        self.pairs: RawDeltas[bytes] = RawDeltas()
        self.active = True
        self.skipped = (0, 0)
        self.counted = 0  # outbound packets the probe reported during this run
        self.blind = ""  # why the probe was given up during the run
        # Per host: what its pairs got beyond its own count so far (the two maps are read one
        # after the other; a packet counted in between shows in the pairs first).
        self.carry: dict[bytes, list[int]] = {}

    def start(self) -> None:
        saved = self.store.kernel_totals(self.key)
        if saved:
            self.hosts.seed({bytes.fromhex(k): v for (kind, k), v in saved.items() if kind == "h"})
            self.pairs.seed({bytes.fromhex(k): v for (kind, k), v in saved.items() if kind == "p"})
        else:
            skipped, _pairs = self._read()
            self.skipped = (sum(p for _, p, _ in skipped), sum(b for _, _, b in skipped))
            self.save()

    def before_close(self, meter: Meter, now: float) -> KernelTotals | None:
        if not self.active:
            return None
        try:
            hosts, pairs = self._read()
        except Exception as exc:  # one failed read must not stop the sensor
            self.give_up(meter, f"reading the eBPF probe's maps failed ({exc}); metering "
                         "from packets")  # fmt: skip
            return None
        self.counted += sum(p for _, p, _ in hosts)
        feed_increments(meter, meter.bucket_time(now), hosts, pairs, self.carry)
        if self.counted == 0 and meter.stats.packet_out_packets > 0:
            self.give_up(
                meter,
                f"the {self.probe.mode} probe on {self.probe.iface} counted no outbound packet "
                "while the capture saw some (XDP sees only what arrives: on the sending side "
                "use --probe tc); metering outbound bytes from packets instead",
            )
            return None
        # Everything read so far is in the closing bucket: its totals go with it, in the same
        # transaction, so a kill can never leave the two disagreeing.
        return self.key, self._rows()

    def give_up(self, meter: Meter, why: str) -> None:
        """Meter outbound bytes from packets from now on, the open bucket included (said once,
        kept in the report). What the maps counted but no bucket got is read and saved as
        handed out, so the next start does not attribute it on top of the packets' count."""
        self.blind = why
        self.warn(why)
        self.active = False
        meter.use_packet_counts()
        try:
            self._read()
            self.save()
        except Exception as exc:
            self.warn(f"could not save the eBPF probe's totals after giving it up: {exc}")
        try:
            self.probe.detach()
        except Exception as exc:  # detach never raises by contract; belt and braces
            self.warn(f"detaching the eBPF probe: {exc}")

    def _read(self) -> tuple[list[Increment], list[Increment]]:
        """Both maps, as increments since the previous read: hosts first, then pairs."""
        return (
            self.hosts.update(self.probe.read_raw("hosts")),
            self.pairs.update(self.probe.read_raw("pairs")),
        )

    def save(self) -> None:
        """Replace the saved totals with those handed out so far, now (at start and when the
        probe is given up; at bucket closes they go with the bucket instead)."""
        self.store.replace_kernel_totals(self.key, self._rows())

    def _rows(self) -> list[tuple[tuple[str, str], tuple[int, int]]]:
        """One snapshot per probe, so the table stays as small as the maps."""
        rows = [(("h", k.hex()), v) for k, v in self.hosts.totals.items()]
        rows += [(("p", k.hex()), v) for k, v in self.pairs.totals.items()]
        rows.append((_SAVED_MARK, (0, 0)))  # "this probe's totals were saved", even if none
        return rows


def feed_increments(
    meter: Meter,
    at: float,
    hosts: list[Increment],
    pairs: list[Increment],
    carry: dict[bytes, list[int]],
) -> None:
    """Per (host, destination network) increments into the meter at `at` (a time inside its
    open bucket). What a host
    sent beyond its pairs' sum (pairs evicted from the probe's LRU map between reads) goes to
    its "other"; a host whose pairs got more than it did (a packet counted between the two
    reads) carries the difference to the next read, so nothing is counted twice."""
    by_host: dict[bytes, list[int]] = {}
    for key, packets, size in pairs:
        src = source_bytes(key)
        meter.add_kernel(at, src, dst_net_bytes(key), size, packets)
        sums = by_host.setdefault(src, [0, 0])
        sums[0] += packets
        sums[1] += size
    increments = {source_bytes(key): (packets, size) for key, packets, size in hosts}
    for src in by_host.keys() | carry.keys() | increments.keys():
        packets, size = increments.get(src, (0, 0))
        in_pairs = by_host.get(src, (0, 0))
        owed = carry.setdefault(src, [0, 0])
        extra_packets = packets - in_pairs[0] + owed[0]
        extra_bytes = size - in_pairs[1] + owed[1]
        if extra_packets > 0 or extra_bytes > 0:
            meter.add_kernel(at, src, b"", max(0, extra_bytes), max(0, extra_packets))
        owed[0], owed[1] = min(0, extra_packets), min(0, extra_bytes)
        if owed == [0, 0]:
            del carry[src]


def attach_probe(config: Config, options: LiveOptions, warn: Callable[[str], None]) -> Any:
    """The attached EbpfProbe, or None (off, or unavailable under `auto`: said once)."""
    if options.probe == "off":
        return None
    mode: Literal["xdp", "tc"] = "tc" if options.probe == "tc" else "xdp"
    try:
        from probes.ebpf.loader import EbpfError, EbpfProbe, probe_unavailable_reason
    except Exception as exc:  # pragma: no cover - bcc's import may fail in odd ways
        return _unavailable(options, f"cannot load the probe's loader: {exc}", warn)
    reason = probe_unavailable_reason(trial_load=False)
    if reason is not None:
        return _unavailable(options, reason.removeprefix(UNAVAILABLE), warn)
    try:
        probe = EbpfProbe(options.iface, mode, config.home_net, options.pin_dir)
        return probe.attach()
    except (EbpfError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return _unavailable(options, f"{mode} on {options.iface}: {first_line}", warn)


def _unavailable(options: LiveOptions, why: str, warn: Callable[[str], None]) -> None:
    if options.probe != "auto":
        raise LiveError(f"the eBPF probe ({options.probe}) cannot run: {why}")
    warn(UNAVAILABLE + why)
    return None


def describe_probe(probe: Any) -> str:
    return f"{probe.mode} ({probe.attach_kind})" if probe is not None else "off"


class LiveSensor:
    """One live run: `LiveSensor(...).run()` until `stop` is set, a signal, or `duration`."""

    def __init__(
        self,
        config: Config,
        options: LiveOptions,
        categories: CategoryDb,
        geo: GeoDb | None,
        *,
        warn: Callable[[str], None],
        status: Callable[[str], None] = lambda _line: None,
        notify: eve.Sink | None = None,
        stop: threading.Event | None = None,
        file_types: FileTypeTable | None = None,
        detectors: DetectorSet | None = None,
        classify: ClassifyAssets | None = None,
        decider: Decider | None = None,
    ) -> None:
        self.config = config
        self.decider = decider
        self.file_types = file_types
        self.detectors = detectors
        self.classify = classify
        self.notify = notify  # sees every record too: `sluice run` prints findings with it
        self.options = options
        self.categories = categories
        self.geo = geo
        self.warn = warn
        self.status = status
        self.stop = stop or threading.Event()
        self.events: EventLog | None = None
        self.activity: ActivityLog | None = None
        self.outages = 0  # times the capture failed and was reopened
        self.clock_steps = 0  # wall-clock steps seen (NTP corrections, manual changes)
        self._clock_offset: float | None = None
        self.ifindex: int | None = None

    def run(self) -> LiveReport:
        options, config = self.options, self.config
        capture = LiveCapture(
            options.iface,
            snaplen=options.snaplen,
            bpf_filter=options.bpf_filter,
            buffer_bytes=options.buffer_bytes,
        )
        try:
            capture.open()
        except CaptureError as exc:
            raise LiveError(str(exc)) from None
        self.ifindex = _ifindex(options.iface)
        probe = None
        # A stop request during startup (the probe's compile takes seconds) is honoured as
        # soon as the loop starts, with the usual orderly end.
        with _signals_set(self.stop):
            try:
                if config.metering.enabled:
                    probe = attach_probe(config, options, self.warn)
                return self._run(capture, probe)
            finally:
                if probe is not None:
                    probe.detach()  # the maps stay pinned: the next start continues from them
                capture.close()

    def _run(self, capture: LiveCapture, probe: Any) -> LiveReport:
        options, config = self.options, self.config
        probe_text = describe_probe(probe)
        store = meter = feed = None
        if config.metering.enabled:
            try:
                store = RetryingStore(options.out / "sluice.db", config.history, warn=self.warn)
            except StoreError as exc:
                raise LiveError(str(exc)) from None
            if probe is not None:
                feed = ProbeFeed(probe, store, self.warn)
            meter = Meter(
                config.metering,
                config.home_net,
                self.categories,
                self.geo,
                kernel_out=probe is not None,
                dest_prefix=KERNEL_DEST_PREFIX if probe is not None else None,
                feed=feed,
            )
            if store.newest:  # a restart: novelty continues from what the database knows
                known = store.destinations(store.newest - config.metering.retention_days * 86400)
                if meter.dest_prefix is not None:  # addresses metered without the probe
                    known = [(_as_network(label, meter.dest_prefix), ts) for label, ts in known]
                meter.learn_destinations(known)
        events = EventLog(options.out / "events.jsonl", self.warn)
        self.events = events
        sinks: list[eve.Sink] = [events]
        activity = ActivityLog(store, self.warn) if store is not None else None
        self.activity = activity
        if activity is not None:
            sinks.append(activity)
        if self.notify is not None:
            sinks.append(self.notify)
        # Verdicts to the firewalls: what it records (refusals, a suspended-blocking finding)
        # goes where the pipeline's records go.
        outputs = list(sinks)

        def record(item: eve.Record) -> None:
            for sink in outputs:
                sink(item)

        try:
            delivery = build_delivery(config, options.out, record, self.warn, probe)
        except (OutboxError, BackendError) as exc:
            events.close()
            if store is not None:
                store.close(settle=True)
            raise LiveError(f"verdict delivery: {exc}") from None
        if delivery is not None:
            sinks.append(delivery)
            names = ", ".join(b.name for b in delivery.backends)
            self.status(f"verdicts: enforced through {names} (outbox {delivery.outbox.path})")
        started = time.monotonic()
        report: LiveReport | None = None
        try:
            if delivery is not None:
                delivery.start()
            pipeline = Pipeline(
                config,
                sinks,
                None,
                meter,
                store,
                lambda: self._stats(capture, feed),
                file_types=self.file_types,
                detectors=self.detectors,
                classify=self.classify,
                decider=self.decider,
            )
            if feed is not None:
                feed.start()
            self.status(f"capturing on {options.iface} (eBPF probe: {probe_text})")
            capture_error = self._loop(capture, pipeline, meter, feed)
            if capture_error is None:
                self._drain(capture, pipeline)
            pipeline.tick(time.time())
            summary = pipeline.finish()  # the last bucket, with the probe's last counts
            if activity is not None:
                activity.flush()
            if feed is not None and feed.blind:
                probe_text += ": " + feed.blind
            report = LiveReport(
                summary,
                probe_text,
                capture.stats(),
                time.monotonic() - started,
                feed.skipped if feed is not None else (0, 0),
                [capture_error] if capture_error else [],
            )
        finally:
            if delivery is not None:
                close_delivery(delivery)
            events.close()
            if store is not None:
                store.close(settle=True)
        return report

    def _loop(
        self,
        capture: LiveCapture,
        pipeline: Pipeline,
        meter: Meter | None,
        feed: ProbeFeed | None,
    ) -> str | None:
        """Capture until stopped. A capture that fails (the interface went down or away) is
        reopened with backoff while the pipeline's clock keeps moving; returns the error if
        the run ends while the capture is down."""
        options = self.options
        process = pipeline.process
        stop = self.stop
        deadline = time.monotonic() + options.duration if options.duration else float("inf")
        next_tick = next_stats = 0.0
        while not stop.is_set():
            try:
                frames = capture.read()
            except CaptureError as exc:
                error = self._reopen(capture, pipeline, meter, feed, str(exc), deadline)
                if error is not None:
                    return error
                continue
            for frame in frames:
                process(frame)
            mono = time.monotonic()
            if mono >= next_tick:
                next_tick = mono + TICK_SECONDS
                now = time.time()
                self._check_clock(now, mono)
                if self.events is not None:
                    self.events.flush()  # readers (tail -f, a SIEM shipper) see events promptly
                if self.activity is not None:
                    self.activity.flush()  # `sluice host` shows a live host's uploads
                if len(frames) < DEFAULT_BATCH:  # caught up: the wall clock may move time on;
                    pipeline.tick(now)  # else older frames wait and packets do it
                if options.stats_interval and mono >= next_stats:
                    if next_stats:
                        pipeline.emit_stats()
                    next_stats = mono + options.stats_interval
            if mono >= deadline:
                break
        return None

    def _check_clock(self, now: float, mono: float) -> None:
        """Say when the wall clock (which stamps packets) steps against the monotonic one.
        Packet time is evidence and is not rebased; after a backward step, buckets stay open
        until the clock is past them again, which the operator should know."""
        offset = now - mono
        if self._clock_offset is None:
            self._clock_offset = offset
        elif abs(offset - self._clock_offset) > CLOCK_STEP_SECONDS:
            self.clock_steps += 1
            self.warn(
                f"the wall clock stepped by {offset - self._clock_offset:+.0f} s; packet times "
                "follow it (a backward step holds the open meter bucket until time passes it)"
            )
            self._clock_offset = offset

    def _reopen(
        self,
        capture: LiveCapture,
        pipeline: Pipeline,
        meter: Meter | None,
        feed: ProbeFeed | None,
        error: str,
        deadline: float,
    ) -> str | None:
        """Reopen a failed capture, waiting REOPEN_FIRST..REOPEN_MAX seconds between tries;
        None once it captures again, else the error (stopped, or the run's time is up)."""
        self.warn(f"{error}; reopening the capture, the pipeline keeps running")
        self.outages += 1
        capture.close()
        down_since, wait = time.monotonic(), REOPEN_FIRST
        while True:
            # Sleep in slices and poll the flag: Event.wait here could deadlock with the signal
            # handler's Event.set (both take the event's lock in this one thread).
            until = min(time.monotonic() + wait, deadline)
            while not self.stop.is_set() and time.monotonic() < until:
                time.sleep(STOP_POLL_SECONDS)
            if self.stop.is_set():
                return None  # a requested stop ends the run normally, outage or not
            pipeline.tick(time.time())
            if time.monotonic() >= deadline:
                return error
            try:
                capture.open()
            except CaptureError as exc:
                error, wait = str(exc), min(wait * 2, REOPEN_MAX)
                continue
            self.status(f"capture on {capture.iface} resumed after "
                       f"{time.monotonic() - down_since:.0f} s")  # fmt: skip
            index = _ifindex(capture.iface)
            if feed is not None and meter is not None and feed.active and index != self.ifindex:
                feed.give_up(
                    meter,
                    f"{capture.iface} was re-created (index {self.ifindex} -> {index}), which "
                    "removed the eBPF probe; metering outbound bytes from packets instead",
                )
            self.ifindex = index
            return None

    def _drain(self, capture: LiveCapture, pipeline: Pipeline) -> None:
        """What the kernel buffered before the stop (bounded: a busy link never drains)."""
        for _ in range(DRAIN_BATCHES):
            try:
                frames = capture.read(wait=False)
            except CaptureError:
                return
            if not frames:
                return
            for frame in frames:
                pipeline.process(frame)

    def _stats(self, capture: LiveCapture, feed: ProbeFeed | None) -> eve.Record:
        c = capture.stats()
        extra: eve.Record = {
            "capture": {
                "received": c.received,
                "dropped": c.dropped,
                "if_dropped": c.if_dropped,
                "unread": c.unread,
                "outages": self.outages,
                "clock_steps": self.clock_steps,
                "events_lost": self.events.lost if self.events is not None else 0,
                "activity_lost": self.activity.lost if self.activity is not None else 0,
            }
        }
        if feed is not None and not feed.active:
            extra["probe"] = {"given_up": feed.blind}
        elif feed is not None:
            try:
                extra["probe"] = dataclasses.asdict(feed.probe.read_stats())
            except Exception as exc:  # stats are best effort; the run goes on
                self.warn(f"eBPF probe stats: {exc}")
        return extra


class EventLog:
    """The live sensor's events.jsonl (appended). A write that fails (disk full, I/O error)
    loses that event, counted in `lost`, said once per failing streak; the sensor goes on."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        # Line-buffered: each event reaches the file (and readers such as `tail -f` or a SIEM
        # shipper) as it is written, and a failing write shows at that event.
        self._stream = eve.open_private(path, append=True)
        self._writer = eve.JsonlWriter(self._stream)
        self.lost = 0
        self._failing = False

    def __call__(self, record: eve.Record) -> None:
        try:
            self._writer(record)
        except OSError as exc:
            self.lost += 1
            self._failed(exc)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)
            return
        if self._failing:  # a flush went through: it works again
            self.warn(f"writing {self.path} works again ({self.lost} events lost so far)")
            self._failing = False

    def _failed(self, exc: OSError) -> None:
        if not self._failing:
            self.warn(f"writing {self.path} failed ({exc}); events are lost until it works")
        self._failing = True

    def close(self) -> None:
        try:
            self._stream.close()
        except OSError as exc:
            self.warn(f"closing {self.path}: {exc}")


class RetryingStore(MeterStore):
    """The metering database for a live sensor: a bucket that cannot be written (disk full,
    locked) is kept and written with the next one, up to `MAX_BACKLOG_WRITES` of them (then the
    oldest is dropped and counted); said once per failing streak; the sensor goes on."""

    def __init__(
        self, path: Path, history: HistoryConfig | None = None, *, warn: Callable[[str], None]
    ) -> None:
        super().__init__(path, history or HistoryConfig())
        self.warn = warn
        self.backlog: collections.deque[
            tuple[list[VolumeSummary | Finding], KernelTotals | None]
        ] = collections.deque()
        self.dropped_writes = 0
        self.failing = False

    def write(
        self,
        items: Iterable[VolumeSummary | Finding],
        kernel_totals: KernelTotals | None = None,
    ) -> None:
        batch = list(items)
        if batch or kernel_totals is not None:
            self.backlog.append((batch, kernel_totals))
        if len(self.backlog) > MAX_BACKLOG_WRITES:
            self.backlog.popleft()
            self.dropped_writes += 1
        while self.backlog:
            try:
                super().write(*self.backlog[0])
            except (sqlite3.Error, OSError) as exc:
                if not self.failing:
                    self.warn(f"writing {self.path} failed ({exc}); keeping up to "
                              f"{MAX_BACKLOG_WRITES} buckets to write later")  # fmt: skip
                self.failing = True
                return
            self.backlog.popleft()
        if self.failing:
            self.warn(f"writing {self.path} works again ({self.dropped_writes} buckets dropped)")
        self.failing = False


def _as_network(label: str, prefix: tuple[int, int]) -> str:
    """A destination label as the meter names it with `dest_prefix`: an address becomes its
    network ("198.51.100.0/24"); names and networks stay as they are."""
    try:
        packed = ipaddress.ip_address(label).packed
    except ValueError:
        return label
    return network_label(packed, prefix)


def _ifindex(iface: str) -> int | None:
    try:
        return socket.if_nametoindex(iface)
    except OSError:  # "any", or gone
        return None


class _signals_set:
    """SIGTERM and SIGINT set `stop` while the loop runs (main thread only)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._old: list[tuple[int, Any]] = []

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old.append((sig, signal.signal(sig, handler)))

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old:
            signal.signal(sig, old)
