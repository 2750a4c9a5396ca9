"""End to end, volume metering: generated captures with known per-host volumes go through
`sluice replay` and come out of `sluice top --json` byte-exact; multi-day captures fire the
volume detectors they should, when they should, and normal traffic fires none.

The captures come from `tests/e2e/volume_captures.py`, which tallies the expected counters
packet by packet while writing (wire bytes = IP lengths, unique payload without
retransmissions). Where a test checks *when* a detector fires, the moment is worked out here
from the capture's own 10 s series and the rule as `MeteringConfig` documents it, never read
back from the sensor. Default detector thresholds are used unless a test says otherwise.
Everything is written under pytest's tmp_path; the large pcap is deleted as soon as it has
been replayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sensor.config import MEGABYTE, MeteringConfig
from tests.e2e import volume_captures as vc

SLUICE = Path(sys.executable).parent / "sluice"
BUCKET = int(MeteringConfig().bucket_seconds)


@dataclass(frozen=True, slots=True)
class SeenFinding:
    ts: float
    kind: str
    host: str
    value: float
    threshold: float
    detail: str
    destinations: tuple[str, ...]


def sluice(*args: str) -> str:
    done = subprocess.run(
        [str(SLUICE), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"sluice {' '.join(args)}: {done.stderr}"
    return done.stdout


def replay(pcap: Path, out: Path, config: Path | None = None) -> list[SeenFinding]:
    """`sluice replay`, then the `finding` events of DIR/events.jsonl in order."""
    extra = ["--config", str(config)] if config is not None else []
    sluice("replay", str(pcap), "--out", str(out), "--quiet", *extra)
    findings = []
    with (out / "events.jsonl").open(encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            if event["event_type"] != "finding":
                continue
            f = event["finding"]
            findings.append(
                SeenFinding(
                    datetime.fromisoformat(event["timestamp"]).timestamp(),
                    f["kind"],
                    f["host"],
                    f["value"],
                    f["threshold"],
                    f["detail"],
                    tuple(f["destinations"]),
                )
            )
    return findings


def top(out: Path, by: str) -> list[dict[str, Any]]:
    rows = json.loads(
        sluice("top", "--db", str(out), "--window", "all", "--by", by, "--limit", "1000", "--json")
    )
    assert isinstance(rows, list)
    return rows


def counters(row: dict[str, Any]) -> dict[str, int]:
    return {key: row[key] for key in vc.TOP_KEYS}


def host_out_bytes(totals: vc.CaptureTotals, host: str) -> dict[int, int]:
    """Outbound wire bytes of one host per meter bucket (start index), all destinations."""
    per_bucket: dict[int, int] = defaultdict(int)
    for (who, _), series in totals.series.items():
        if who == host:
            for bucket, cell in series.items():
                per_bucket[bucket] += cell[vc.OUT_BYTES]
    return per_bucket


# -- exact counts -------------------------------------------------------------------------------


def test_top_reports_every_host_and_destination_byte_exact(tmp_path: Path) -> None:
    uploads = (10 * MEGABYTE, 50 * MEGABYTE, 200 * MEGABYTE)
    plan = vc.exact_volumes(uploads, ipv6_upload=8 * MEGABYTE)
    pcap = tmp_path / "volumes.pcap"
    totals = vc.write_capture(pcap, plan.transfers)
    try:
        replay(pcap, tmp_path / "out")
    finally:
        pcap.unlink()
    # The generator's own tally agrees with the plan, and the capture has what it claims.
    planned = dict(zip(plan.hosts, (*uploads, 8 * MEGABYTE), strict=True))
    assert {h: c[vc.OUT_PAYLOAD] for h, c in totals.hosts.items()} == planned
    assert totals.retransmissions > 1000
    assert all(c[vc.OUT_BYTES] > c[vc.OUT_PAYLOAD] for c in totals.hosts.values())

    hosts = {row["host"]: row for row in top(tmp_path / "out", "host")}
    assert set(hosts) == set(plan.hosts) == {"10.1.0.11", "10.1.0.12", "10.1.0.13", "fd00:1::20"}
    for host, row in hosts.items():
        assert counters(row) == totals.host_record(host), host
        assert row["destinations"], host
        for dest in row["destinations"]:  # the three largest, as the table shows them
            expected = totals.pair_record(host, dest["ip"])
            assert dest["bytes_out"] == expected["bytes_out"], (host, dest["ip"])
            assert dest["payload_bytes_out"] == expected["payload_bytes_out"], (host, dest["ip"])
            assert dest["bytes_in"] == expected["bytes_in"], (host, dest["ip"])

    pairs = {(row["host"], row["dest"]): row for row in top(tmp_path / "out", "pair")}
    assert set(pairs) == set(totals.pairs)
    for (host, dest), row in pairs.items():
        assert counters(row) == totals.pair_record(host, dest), (host, dest)

    # A server every IPv4 host used: its row sums them.
    dests = {row["dest"]: row for row in top(tmp_path / "out", "dest")}
    shared = [pair for pair in totals.pairs if pair[1] == "203.0.113.200"]
    assert len(shared) == len(uploads)
    assert dests["203.0.113.200"]["bytes_out"] == sum(
        totals.pairs[pair][vc.OUT_BYTES] for pair in shared
    )


# -- fixed threshold ----------------------------------------------------------------------------


def first_crossing(per_bucket: dict[int, int], span: int, limit: int) -> tuple[float, int]:
    """(finding time, window sum) of the first bucket whose sum over itself and the span - 1
    buckets before it exceeds `limit`: "more than N bytes within T" on the bucket clock."""
    for bucket in sorted(per_bucket):
        total = sum(per_bucket.get(k, 0) for k in range(bucket - span + 1, bucket + 1))
        if total > limit:
            return (bucket + 1) * BUCKET, total
    raise AssertionError("never crossed")


def test_threshold_rule_fires_in_the_bucket_that_crosses_it(tmp_path: Path) -> None:
    rule_mb, minutes = 2, 10
    limit = rule_mb * MEGABYTE
    config = tmp_path / "sluice.toml"
    config.write_text(
        "[metering]\n"
        f'thresholds = [{{name = "bulk", mb = {rule_mb}, minutes = {minutes}, '
        'hosts = ["10.4.0.0/16", "fd00:4::/32"]}]\n'
    )
    scenario = vc.threshold_hosts(limit, minutes)
    totals = vc.write_capture(
        tmp_path / "threshold.pcap", scenario.plan.transfers, series_seconds=BUCKET
    )
    assert totals.hosts[scenario.exact][vc.OUT_BYTES] == limit
    assert totals.hosts[scenario.over][vc.OUT_BYTES] == limit + 1
    assert totals.hosts["fd00:4::44"][vc.OUT_BYTES] == limit + 1
    span = minutes * 60 // BUCKET
    per_bucket = host_out_bytes(totals, scenario.sliding)
    expected = first_crossing(per_bucket, span, limit)
    # The capture tells the window's length to the bucket: one bucket more or less would fire
    # at another time or with another sum.
    assert first_crossing(per_bucket, span + 1, limit) != expected
    assert first_crossing(per_bucket, span - 1, limit) != expected

    findings = replay(tmp_path / "threshold.pcap", tmp_path / "out", config)
    assert {f.kind for f in findings} == {"volume_threshold"}
    sliding = [f for f in findings if f.host == scenario.sliding]
    assert [(f.ts, f.value) for f in sliding] == [expected]
    assert sliding[0].threshold == limit
    assert sliding[0].destinations == ("198.51.100.50",)
    # Exactly N bytes is not more than N; one byte more is, over IPv4 and IPv6.
    assert [(f.host, f.value) for f in findings if f.host != scenario.sliding] == [
        (scenario.over, limit + 1),
        ("fd00:4::44", limit + 1),
    ]


# -- slow exfiltration --------------------------------------------------------------------------


def expected_slow_finding(
    series: dict[int, list[int]], config: MeteringConfig
) -> tuple[float, int] | None:
    """(finding time, payload in the window) of the first bucket at which one destination's
    upload-heavy traffic meets the slow-exfiltration rule of MeteringConfig: over the last
    `slow_days` days at least `slow_min_days` days with `slow_min_daily_bytes` out, a total of
    `slow_min_bytes` out and out >= `slow_min_ratio` x in (payload bytes, UTC days)."""
    days: dict[int, list[int]] = {}
    for bucket in sorted(series):
        cell = series[bucket]
        day = bucket * BUCKET // 86400
        for old in [d for d in days if d <= day - config.slow_days]:
            del days[old]
        today = days.setdefault(day, [0, 0])
        today[0] += cell[vc.OUT_PAYLOAD]
        today[1] += cell[vc.IN_PAYLOAD]
        out = sum(v[0] for v in days.values())
        back = sum(v[1] for v in days.values())
        active = sum(1 for v in days.values() if v[0] >= config.slow_min_daily_bytes)
        if (
            cell[vc.OUT_PAYLOAD]
            and out >= config.slow_min_bytes
            and out >= config.slow_min_ratio * max(back, 1)
            and active >= config.slow_min_days
        ):
            return (bucket + 1) * BUCKET, out
    return None


def test_small_nightly_uploads_over_three_weeks_are_slow_exfiltration(tmp_path: Path) -> None:
    scenario = vc.slow_exfiltration(days=21, nightly=(20 * MEGABYTE, 40 * MEGABYTE))
    totals = vc.write_capture(
        tmp_path / "nights.pcap",
        scenario.plan.transfers,
        snaplen=vc.HEADERS_SNAPLEN,
        series_seconds=BUCKET,
    )
    assert totals.last_ts - totals.first_ts > 20 * 86400
    config = MeteringConfig()
    # No single night comes near the rule; it takes several.
    assert max(scenario.nightly.values()) < config.slow_min_bytes / 4
    findings = replay(tmp_path / "nights.pcap", tmp_path / "out")

    expected = expected_slow_finding(totals.series[(scenario.host, scenario.server)], config)
    assert expected is not None
    assert [(f.kind, f.host, f.destinations) for f in findings] == [
        ("slow_exfiltration", scenario.host, (scenario.server,))
    ], "one finding (the next is due slow_days later); daytime office traffic fires nothing"
    assert (findings[0].ts, findings[0].value) == expected
    assert findings[0].threshold == config.slow_min_bytes
    night = int(findings[0].ts // 86400 - vc.START_EPOCH // 86400)
    assert night >= config.slow_min_days - 1
    assert 1 * 3600 <= findings[0].ts % 86400 < 4 * 3600, "found during a night's upload"


# -- spike --------------------------------------------------------------------------------------


def expected_spike(
    per_bucket: dict[int, int], spike_day: int, hour: int, config: MeteringConfig
) -> tuple[float, int, float]:
    """(finding time, hour's bytes so far, limit) for the first bucket of local hour `hour` on
    `spike_day` whose running outbound total exceeds max(factor x expected, expected +
    spike_min_bytes), expected being the EWMA (alpha = baseline_alpha, one sample per day) of
    that hour of day over the days before. Assumes traffic in that hour on every earlier
    day, as the office capture has."""
    day0 = vc.START_EPOCH // 86400
    by_day: dict[int, int] = defaultdict(int)
    for bucket, sent in per_bucket.items():
        t = bucket * BUCKET
        if (t // 3600) % 24 == hour:
            by_day[t // 86400 - day0] += sent
    mean: float | None = None
    for day in range(spike_day):
        value = by_day[day]
        assert value > 0, f"no traffic at {hour:02d}:00 on day {day}"
        mean = float(value) if mean is None else mean + config.baseline_alpha * (value - mean)
    assert mean is not None
    limit = max(mean * config.spike_factor, mean + config.spike_min_bytes)
    start = (day0 + spike_day) * 86400 + hour * 3600
    running = 0
    for bucket in range(start // BUCKET, (start + 3600) // BUCKET):
        running += per_bucket.get(bucket, 0)
        if running > limit:
            return (bucket + 1) * BUCKET, running, limit
    raise AssertionError("the spike hour never exceeds the limit")


def test_one_hour_far_above_the_learnt_baseline_is_a_volume_spike(tmp_path: Path) -> None:
    config = MeteringConfig()
    days = config.baseline_min_days + 2
    scenario = vc.volume_spike(days=days, spike=400 * MEGABYTE, spike_hour=14)
    totals = vc.write_capture(
        tmp_path / "spike.pcap",
        scenario.plan.transfers,
        snaplen=vc.HEADERS_SNAPLEN,
        series_seconds=BUCKET,
    )
    findings = replay(tmp_path / "spike.pcap", tmp_path / "out")

    when, value, limit = expected_spike(host_out_bytes(totals, scenario.host), days - 1, 14, config)
    spikes = [f for f in findings if f.kind == "volume_spike"]
    assert [(f.host, f.ts, f.value) for f in spikes] == [(scenario.host, when, value)]
    assert spikes[0].threshold == pytest.approx(limit, rel=1e-12)
    assert spikes[0].destinations[0] == scenario.server
    # Nothing before the spike, and the other hosts' ordinary days stay silent.
    assert all(f.host == scenario.host and f.ts > scenario.spike_start for f in findings)
    # One heavy afternoon is a spike, not slow exfiltration (no day may carry most of it).
    assert not [f for f in findings if f.kind == "slow_exfiltration"]


# -- normal traffic -----------------------------------------------------------------------------


def test_ten_ordinary_office_days_fire_no_finding(tmp_path: Path) -> None:
    """Long enough for every detector to be armed: baselines (baseline_min_days), novelty
    (novel_learning_days) and slow exfiltration (slow_min_days)."""
    config = MeteringConfig()
    days = 10
    assert days > config.novel_learning_days
    plan = vc.office_days(days, hourly_upload=(3 * MEGABYTE, 20 * MEGABYTE))
    totals = vc.write_capture(tmp_path / "office.pcap", plan.transfers, snaplen=vc.HEADERS_SNAPLEN)
    assert len(totals.hosts) == len(vc.OFFICE_HOSTS)
    assert all(c[vc.OUT_PAYLOAD] > 100 * MEGABYTE for c in totals.hosts.values())
    findings = replay(tmp_path / "office.pcap", tmp_path / "out")
    assert findings == []


# Found by this test and fixed: payload received in buckets without outbound payload must
# count against slow exfiltration's upload ratio (a sync client pushes and pulls on separate
# connections), or every such host looks upload-only by day 8.


def test_balanced_file_sync_fires_no_finding(tmp_path: Path) -> None:
    plan = vc.office_days(10, sync_daily=(20 * MEGABYTE, 40 * MEGABYTE))
    totals = vc.write_capture(tmp_path / "sync.pcap", plan.transfers, snaplen=vc.HEADERS_SNAPLEN)
    for (host, dest), c in totals.pairs.items():
        if dest in (vc.SYNC_SERVER, vc.SYNC_SERVER_V6):  # balanced: in within 10% of out
            assert abs(c[vc.IN_PAYLOAD] - c[vc.OUT_PAYLOAD]) < c[vc.OUT_PAYLOAD] / 10, host
    findings = replay(tmp_path / "sync.pcap", tmp_path / "out")
    assert findings == []
