from __future__ import annotations

import ast
import ipaddress
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from sensor.config import MeteringConfig, VolumeThreshold
from sensor.flows.table import Flow
from sensor.metering.categories import CategoryDb, load_categories
from sensor.metering.meter import Meter
from sensor.metering.values import KINDS, OTHER, KernelTotals, Volume
from tests.metering.conftest import (
    DAY,
    HOME_NET,
    MB,
    T0,
    FixedGeo,
    MakeMeter,
    findings,
    ip,
    summaries,
    upload,
)

HOST = ip("10.1.2.3")
HOST6 = ip("fd00::5")
SERVER = ip("198.51.100.7")
SERVER6 = ip("2001:db8::7")


def tcp_upload(meter: Meter, t: float, client: bytes, server: bytes, header: int) -> None:
    """A TCP upload as the caller reports it: handshake, 10 segments of 1000 payload bytes
    (the 4th one retransmitted: wire bytes twice, payload once), an ACK per segment, and a
    100-byte response. `header` = IP + TCP header bytes (40 for IPv4, 60 for IPv6)."""
    meter.observe(t, client, server, header, 0, 443)  # SYN
    meter.observe(t, server, client, header, 0, 50000)  # SYN+ACK
    meter.observe(t, client, server, header, 0, 443)  # ACK
    for i in range(10):
        meter.observe(t + 0.1 * i, client, server, header + 1000, 1000, 443)
        if i == 3:
            meter.observe(t + 0.1 * i + 0.05, client, server, header + 1000, 0, 443)
        meter.observe(t + 0.1 * i, server, client, header, 0, 50000)
    meter.observe(t + 2, server, client, header + 100, 100, 50000)


def test_exact_byte_counts_ipv4_and_ipv6_retransmission_excluded(make_meter: MakeMeter) -> None:
    meter = make_meter()
    tcp_upload(meter, T0 + 1, HOST, SERVER, 40)
    tcp_upload(meter, T0 + 3, HOST6, SERVER6, 60)
    meter.observe(T0 + 4, HOST, ip("10.9.9.9"), 1500, 1460, 445)  # east-west: not metered
    meter.observe(T0 + 4, SERVER, SERVER6[:4], 1500, 1460, 80)  # transit: not metered
    out = summaries(meter.tick(T0 + 10))
    by_host = {s.host: s for s in out}
    assert set(by_host) == {"10.1.2.3", "fd00::5"}
    expected4 = Volume(
        out_bytes=2 * 40 + 11 * 1040, out_packets=13, out_payload=10_000,
        in_bytes=40 + 10 * 40 + 140, in_packets=12, in_payload=100,
    )  # fmt: skip
    expected6 = Volume(
        out_bytes=2 * 60 + 11 * 1060, out_packets=13, out_payload=10_000,
        in_bytes=60 + 10 * 60 + 160, in_packets=12, in_payload=100,
    )  # fmt: skip
    assert by_host["10.1.2.3"].volume == expected4
    assert by_host["fd00::5"].volume == expected6
    (dest,) = by_host["fd00::5"].destinations
    assert (dest.ip, dest.port, dest.volume) == ("2001:db8::7", 443, expected6)
    assert by_host["10.1.2.3"].ts == T0 and by_host["10.1.2.3"].duration == 10.0
    assert dict(by_host["10.1.2.3"].windows)[60.0] == expected4
    assert meter.stats.east_west_packets == 1 and meter.stats.transit_packets == 1
    assert meter.stats.packets == 50


def test_windows_slide_on_the_packet_clock(make_meter: MakeMeter) -> None:
    meter = make_meter()
    upload(meter, T0 + 5, HOST, SERVER, 1000)
    meter.tick(T0 + 10)
    assert dict(meter.host_windows(HOST))[60.0].out_payload == 1000
    upload(meter, T0 + 35, HOST, SERVER, 500)
    last = summaries(meter.tick(T0 + 40))[-1]
    assert dict(last.windows)[60.0].out_payload == 1500
    # The first upload leaves the 1 min window with the bucket [T0+60, T0+70).
    upload(meter, T0 + 65, HOST, SERVER, 1)
    last = summaries(meter.tick(T0 + 70))[-1]
    windows = dict(last.windows)
    assert windows[60.0].out_payload == 501
    assert windows[600.0].out_payload == 1501
    meter.tick(T0 + 640)  # nothing sent: windows still slide (last closed: [630, 640))
    windows = dict(meter.host_windows(HOST))
    assert windows[60.0] == Volume() and windows[600.0].out_payload == 1
    assert windows[3600.0].out_payload == 1501
    top = meter.top_destinations(HOST, 3600.0)
    assert [(d.ip, d.volume.out_payload) for d in top] == [("198.51.100.7", 1501)]


def test_threshold_fires_exactly_when_crossing(make_meter: MakeMeter) -> None:
    rule = VolumeThreshold("lab", 1_000_000, 60.0, hosts=(ipaddress.ip_network("10.1.0.0/16"),))
    meter = make_meter(thresholds=(rule,))
    other = ip("10.200.0.1")  # outside the rule's host group
    meter.observe(T0 + 1, HOST, SERVER, 600_000, 0, 443)
    meter.observe(T0 + 2, other, SERVER, 5_000_000, 0, 443)
    assert findings(meter.tick(T0 + 15)) == []
    meter.observe(T0 + 21, HOST, SERVER, 400_000, 0, 443)  # exactly the limit: not more
    assert findings(meter.tick(T0 + 30)) == []
    meter.observe(T0 + 31, HOST, SERVER, 1, 0, 443)  # one byte over
    (finding,) = findings(meter.tick(T0 + 40))
    assert (finding.kind, finding.host, finding.ts) == ("volume_threshold", "10.1.2.3", T0 + 40)
    assert (finding.value, finding.threshold, finding.window) == (1_000_001, 1_000_000, 60.0)
    assert finding.destinations == ("198.51.100.7",)
    # Once the 600 kB bucket leaves the window, the same traffic again is below the limit.
    meter.observe(T0 + 65, HOST, SERVER, 500_000, 0, 443)
    assert findings(meter.tick(T0 + 80)) == []


def test_slow_exfiltration_over_weeks_fires_the_long_window_detector(
    make_meter: MakeMeter,
) -> None:
    meter = make_meter()
    dest = ip("203.0.113.50")
    meter.name(dest, "backup.example.net", "tls_sni")
    fired = []
    for day in range(21):
        base = T0 + day * DAY
        # 02:00-02:40: 25 MB uploaded in 40 one-minute slices (stays under every short-window
        # detector), acknowledged with a few kB.
        for minute in range(40):
            upload(meter, base + 2 * 3600 + minute * 60, HOST, dest, 625_000, reply=200)
        # Daytime: ordinary download-heavy browsing.
        for hour in (9, 11, 14, 16):
            upload(meter, base + hour * 3600, HOST, SERVER, 200_000, reply=5 * MB)
        fired += [(day, f) for f in findings(meter.tick(base + DAY - 1))]
    assert [(day, f.kind) for day, f in fired] == [(7, "slow_exfiltration")]
    finding = fired[0][1]
    assert finding.value >= 200 * MB and finding.window == 14 * DAY
    assert finding.destinations == ("backup.example.net (203.0.113.50)",)
    assert "on 8 of the last 14 days" in finding.detail


def test_spike_against_learnt_baseline(make_meter: MakeMeter) -> None:
    meter = make_meter()
    for day in range(5):
        base = T0 + day * DAY
        for hour in range(8, 18):
            upload(meter, base + hour * 3600, HOST, SERVER, 10 * MB, seconds=600, reply=30 * MB)
        if day < 4:
            assert findings(meter.tick(base + DAY - 1)) == []
    # Day 5, 14:00: 70 MB instead of the usual 10 MB (limit max(4 x 10, 10 + 50) = 60 MB).
    base = T0 + 5 * DAY
    upload(meter, base + 14 * 3600, HOST, SERVER, 70 * MB, seconds=1200, reply=200 * MB)
    spikes = findings(meter.tick(base + 15 * 3600))
    assert [f.kind for f in spikes] == ["volume_spike"]
    spike = spikes[0]
    # Baseline: 10 MB of payload plus 40 bytes of headers per 1 MB segment, every day alike.
    assert spike.threshold == 60 * MB + 400
    assert spike.value == 60 * (MB + 40)  # the hour so far, at the bucket that crossed


def test_normal_traffic_fires_nothing(make_meter: MakeMeter) -> None:
    """Ten days, twenty hosts browsing (download-heavy) and sending mail and files to
    EU/EEA destinations they use every day, with noise. No detector may fire."""
    rng = random.Random(7)
    geo = FixedGeo({"145.97.0.0/16": "NL", "193.0.0.0/16": "DE", "2001:db8::/32": "FR"})
    rule = VolumeThreshold("any host", 500 * MB, 600.0)
    meter = make_meter(
        categories=load_categories(), geo=geo, thresholds=(rule,), novel_learning_days=2.0
    )
    hosts = [ip(f"10.1.0.{i}") for i in range(1, 21)]
    dests = [ip(f"145.97.{i}.10") for i in range(5)] + [ip(f"193.0.{i}.1") for i in range(5)]
    dests += [ip("2001:db8::1")]
    for i, d in enumerate(dests):
        meter.name(d, f"service{i}.example.eu", "dns")
    out = []
    for day in range(10):
        base = T0 + day * DAY
        for host in hosts:
            for hour in range(8, 18):
                for _ in range(3):
                    dest = rng.choice(dests)
                    start = base + hour * 3600 + rng.uniform(0, 3000)
                    up = int(rng.uniform(0.5, 2) * MB)
                    upload(meter, start, host, dest, up, seconds=300, reply=up * rng.randint(2, 20))
        out += meter.tick(base + DAY - 1)
    out += meter.finish()
    assert findings(out) == []
    assert len(summaries(out)) > 500


def test_novel_destination_with_volume(make_meter: MakeMeter) -> None:
    meter = make_meter(novel_learning_days=1.0)
    known, new, small = ip("198.51.100.1"), ip("198.51.100.2"), ip("198.51.100.3")
    upload(meter, T0, HOST, known, 1000)
    meter.tick(T0 + 2 * DAY)
    upload(meter, T0 + 2 * DAY, HOST, known, 20 * MB, seconds=60, reply=20 * MB)  # learnt
    upload(meter, T0 + 2 * DAY, HOST, small, 1 * MB, seconds=60)  # novel, but little
    meter.name(new, "drop.example.org", "dns")
    upload(meter, T0 + 2 * DAY + 600, HOST, new, 12 * MB, seconds=600)  # novel, enough
    out = findings(meter.tick(T0 + 3 * DAY))
    assert [(f.kind, f.destinations) for f in out] == [
        ("novel_destination", ("drop.example.org (198.51.100.2)",))
    ]
    assert out[0].value >= 10 * MB


def test_novel_learning_is_seeded_from_history(make_meter: MakeMeter) -> None:
    meter = make_meter()
    meter.learn_destinations([("198.51.100.1", T0 - DAY)])
    upload(meter, T0, HOST, ip("198.51.100.1"), 20 * MB, seconds=60, reply=20 * MB)
    upload(meter, T0, HOST, ip("198.51.100.9"), 20 * MB, seconds=60, reply=20 * MB)
    out = findings(meter.tick(T0 + 3600))
    assert [(f.kind, f.destinations) for f in out] == [("novel_destination", ("198.51.100.9",))]


def test_categories_and_asymmetry(make_meter: MakeMeter) -> None:
    meter = make_meter(categories=load_categories())
    paste, files = ip("198.51.100.20"), ip("198.51.100.21")
    meter.name(paste, "pastebin.com", "tls_sni")
    meter.name(files, "eu.wetransfer.com.", "dns")
    upload(meter, T0, HOST, paste, 150_000, reply=5000)  # paste_site min_bytes = 100 kB
    upload(meter, T0, HOST, files, 30 * MB, seconds=300, reply=100_000)
    out = findings(meter.tick(T0 + 600))
    got = sorted((f.kind, f.destinations[0]) for f in out)
    assert got == [
        ("category_upload", "eu.wetransfer.com (198.51.100.21)"),
        ("category_upload", "pastebin.com (198.51.100.20)"),
        ("upload_asymmetry", "eu.wetransfer.com (198.51.100.21)"),
    ]
    asym = next(f for f in out if f.kind == "upload_asymmetry")
    assert asym.value >= asym.threshold == 20 * MB
    # A symmetric exchange of the same size is not asymmetric.
    meter2 = make_meter()
    upload(meter2, T0, HOST, files, 30 * MB, seconds=300, reply=30 * MB)
    assert findings(meter2.tick(T0 + 600)) == []


def test_non_eu_transfer_needs_volume_and_a_foreign_country(make_meter: MakeMeter) -> None:
    geo = FixedGeo({"198.51.100.0/24": "US", "203.0.113.0/24": "DE"})
    meter = make_meter(geo=geo)
    upload(meter, T0, HOST, ip("198.51.100.5"), 500_000)  # below transfer_min_bytes
    upload(meter, T0, HOST, ip("203.0.113.5"), 5 * MB, reply=10 * MB)
    assert findings(meter.tick(T0 + 60)) == []
    upload(meter, T0 + 60, HOST, ip("198.51.100.5"), 600_000)
    (finding,) = findings(meter.tick(T0 + 120))
    assert finding.kind == "non_eu_transfer" and " in US " in finding.detail
    assert finding.value == 1_100_000
    upload(meter, T0 + 120, HOST, ip("198.51.100.5"), 5 * MB)  # within the cooldown
    assert findings(meter.tick(T0 + 180)) == []


def test_memory_is_bounded_with_many_hosts(make_meter: MakeMeter) -> None:
    meter = make_meter(max_hosts=100, max_pairs=300, max_bucket_entries=1000)
    t = T0
    for i in range(5000):
        host = ip(f"10.{i // 250}.{i % 250}.1")
        for j in range(3):
            meter.observe(t, host, ip(f"198.51.100.{j}"), 100, 60, 443)
        t += 0.05
    meter.tick(t + 10)
    assert len(meter.hosts) <= 100 and meter.pair_count() <= 300
    assert meter.stats.hosts_evicted == 4900
    # One host with many destinations, bucket after bucket: pairs are evicted.
    for k in range(1000):
        meter.observe(t + k, HOST, ip(f"192.0.2.{k % 250}"), 100, 60, 443)
        meter.observe(t + k, HOST, ip(f"2001:db8::{k:x}"), 100, 60, 443)
    t += 1000
    meter.tick(t + 10)
    assert meter.pair_count() <= 300 and meter.stats.pairs_evicted > 1000
    assert meter.pair_count() == sum(len(h.pairs) for h in meter.hosts.values())
    # One bucket with more pairs than the cap: the rest is folded into "other", bytes exact.
    for k in range(1500):
        meter.observe(t + 20, HOST, ip(f"203.0.{k // 250}.{k % 250}"), 100, 60, 443)
    (summary,) = summaries(meter.tick(t + 40))
    assert meter.stats.bucket_overflow == 500
    assert summary.volume.out_bytes == 150_000
    assert summary.destinations[-1].ip == OTHER
    assert sum(d.volume.out_bytes for d in summary.destinations) == 150_000
    assert len(summary.destinations) == 51  # summary_destinations + "other"


def test_finish_closes_the_open_bucket(make_meter: MakeMeter) -> None:
    meter = make_meter()
    upload(meter, T0 + 3, HOST, SERVER, 777)
    assert meter.tick(T0 + 5) == []
    (summary,) = summaries(meter.finish())
    assert summary.volume.out_payload == 777


def test_every_emitted_kind_is_registered() -> None:
    source = Path(__file__).resolve().parents[2] / "sensor" / "metering" / "meter.py"
    tree = ast.parse(source.read_text())
    kinds = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "_fire"
        and isinstance(node.args[0], ast.Constant)
    }
    assert kinds == set(KINDS)


def test_dns_never_replaces_a_name_the_connection_gave(make_meter: MakeMeter) -> None:
    meter = make_meter()
    first, second = ip("203.0.113.7"), ip("203.0.113.8")
    meter.name(first, "upload.example.net", "sni")
    meter.name(first, "harmless.example.com", "dns")
    meter.name(second, "a.example.com", "dns")
    meter.name(second, "b.example.com", "dns")  # DNS after DNS: the last answer wins
    meter.name(second, "C.Example.com.", "http")  # the connection's own name wins over DNS
    meter.observe(T0, HOST, first, 1500, 1448, 443)
    meter.observe(T0, HOST, second, 100, 48, 80)
    meter.finish()
    names = {p.text: p.name for p in meter.hosts[HOST].pairs.values()}
    assert names == {"203.0.113.7": "upload.example.net", "203.0.113.8": "c.example.com"}


def kernel_meter(**overrides: Any) -> Meter:
    """A meter fed as the live runtime feeds it when the eBPF probe runs."""
    config = replace(MeteringConfig(), **overrides)
    return Meter(config, HOME_NET, CategoryDb.empty(), None, kernel_out=True, dest_prefix=(24, 64))


def test_kernel_mode_takes_outbound_wire_counts_only_from_the_probe() -> None:
    meter = kernel_meter()
    # Packets: 3 outbound (2,000 wire bytes, 1,500 unique payload), 1 inbound.
    meter.add(T0, HOST, SERVER, 2000, 3, 1500, 443)
    meter.add(T0, SERVER, HOST, 100, 1, 40, 50000)
    # The probe counted the same outbound packets, and 2 more the capture dropped.
    meter.add_kernel(T0 + 1, HOST, ip("198.51.100.0"), 3000, 5)
    meter.add_kernel(T0 + 1, HOST6, ip("2001:db8::"), 700, 2)
    (summary, summary6) = sorted(summaries(meter.finish()), key=lambda s: s.host)
    assert summary.host == "10.1.2.3"
    total = summary.volume
    assert (total.out_bytes, total.out_packets, total.out_payload) == (3000, 5, 1500)
    assert (total.in_bytes, total.in_packets, total.in_payload) == (100, 1, 40)
    (dest,) = summary.destinations
    assert dest.ip == "198.51.100.0/24" and dest.port == 443
    assert summary6.host == "fd00::5" and summary6.destinations[0].ip == "2001:db8::/64"
    assert meter.stats.kernel_foreign == 0


def test_kernel_mode_names_networks_and_refuses_foreign_sources() -> None:
    meter = kernel_meter()
    meter.name(ip("198.51.100.77"), "files.example.org", "sni")
    meter.add_kernel(T0, HOST, ip("198.51.100.0"), 1000, 2)
    meter.add_kernel(T0, SERVER, ip("10.1.2.0"), 1000, 2)  # not an internal source here
    meter.add_kernel(T0, HOST, b"", 500, 1)  # what the probe's pair map lost
    (summary,) = summaries(meter.finish())
    by_ip = {d.ip: d for d in summary.destinations}
    assert by_ip["198.51.100.0/24"].name == "files.example.org"
    assert summary.volume.out_bytes == 1500
    assert meter.stats.kernel_foreign == 2


def test_a_destination_known_by_its_network_is_not_novel_by_address(
    make_meter: MakeMeter,
) -> None:
    """After a run with the eBPF probe the store knows networks ("198.51.100.0/24"); metered
    from packets later, an address inside such a network is not a first contact."""
    meter = make_meter(novel_min_bytes=1000)
    meter.learn_destinations([("198.51.100.0/24", T0 - 3600)])
    meter.observe(T0, HOST, SERVER, 3000, 2900, 443)  # 198.51.100.7: its /24 is known
    meter.observe(T0, HOST, ip("203.0.113.7"), 3000, 2900, 443)  # never seen: novel
    novel = [f for f in findings(meter.finish()) if f.kind == "novel_destination"]
    assert [f.destinations for f in novel] == [("203.0.113.7",)]


# --- flows and buckets: the meter's own clock ------------------------------------------------


def _flow(client: bytes, server: bytes, ts: float) -> Flow[None]:
    return Flow(
        key=(6, client, 50000, server, 443), flow_id=1, proto=6,
        ip_version=4 if len(client) == 4 else 6, client=client, client_port=50000,
        server=server, server_port=443, start=ts, last=ts,
    )  # fmt: skip


class RecordingFeed:
    """A bucket feed: adds kernel counts right before each close and says what to save."""

    def __init__(self) -> None:
        self.closes: list[float] = []

    def before_close(self, meter: Meter, now: float) -> KernelTotals | None:
        self.closes.append(now)
        meter.add_kernel(meter.bucket_time(now), HOST, SERVER, 500, 1)
        return ("probe", [(("h", "00"), (len(self.closes), 0))])


def test_flows_are_metered_per_bucket_and_a_flip_keeps_the_counts(make_meter: MakeMeter) -> None:
    meter = make_meter()
    assert meter.next_close == float("-inf")  # the first packet opens the first bucket
    flow = _flow(SERVER, HOST, T0 + 1)  # seen the wrong way round at first
    assert meter.close_bucket(T0 + 1, [flow]).results == []  # opens the bucket, closes nothing
    assert meter.next_close == T0 + 10
    flow.toclient.pkts, flow.toclient.bytes, flow.toclient.payload = 3, 3000, 2880  # host sent
    flow.flip()  # detection: the host is the client after all
    flow.toserver.pkts += 1  # one more segment from the host
    flow.toserver.bytes += 1000
    flow.toserver.payload += 960
    out = meter.close_bucket(T0 + 10, [flow])
    (summary,) = summaries(out.results)
    assert (summary.volume.out_packets, summary.volume.out_bytes) == (4, 4000)
    assert summary.volume.out_payload == 3840 and out.kernel_totals is None
    flow.toserver.pkts += 1
    flow.toserver.bytes += 40
    meter.flow_ended(flow, T0 + 12)  # the rest goes to the open bucket
    (last,) = summaries(meter.close_bucket(T0 + 20, []).results)
    assert last.ts == T0 + 10 and (last.volume.out_packets, last.volume.out_bytes) == (1, 40)
    assert meter.end(T0 + 25, []).results == []  # nothing after the flow's end


def test_the_bucket_feed_is_asked_right_before_each_close(make_meter: MakeMeter) -> None:
    feed = RecordingFeed()
    meter = Meter(MeteringConfig(), HOME_NET, CategoryDb.empty(), None, kernel_out=True, feed=feed)
    meter.close_bucket(T0 + 1, [])  # opens the first bucket: nothing to close, no feed
    assert feed.closes == []
    out = meter.close_bucket(T0 + 10, [])
    assert feed.closes == [T0 + 10]
    (summary,) = summaries(out.results)
    assert summary.ts == T0 and summary.volume.out_bytes == 500  # in the bucket that closed
    assert out.kernel_totals == ("probe", [(("h", "00"), (1, 0))])  # saved with that bucket
    end = meter.end(T0 + 12, [])
    assert feed.closes == [T0 + 10, T0 + 12] and end.kernel_totals is not None
    (last,) = summaries(end.results)
    assert last.ts == T0 + 10 and last.volume.out_bytes == 500
