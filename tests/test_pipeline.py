"""The wired pipeline: detection by content on any port, orientation, caps, hostile frames."""

from __future__ import annotations

import json
import random
import ssl
import struct
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pcaps._lib.crafted import (
    T0,
    TcpConversation,
    http_request,
    http_response,
    play,
    write_conversations,
)
from probes.frame import LINKTYPE_ETHERNET, LINKTYPE_RAW, Frame
from probes.pcap import PcapReader
from sensor.config import Config, FlowConfig, OutputConfig
from sensor.pipeline import HOLD_AFTER, Pipeline
from sensor.protocols.ftp import DATA_CONNECTION_TIMEOUT
from tests.replays import INTERNAL_ERRORS, PCAPS, internal_errors


def _run(pcap: Path, config: Config | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    pipeline = Pipeline(config or Config(), [events.append])
    with PcapReader(str(pcap)) as reader:
        for frame in reader:
            pipeline.process(frame)
    pipeline.finish()
    assert internal_errors(events) == {}  # no parser or decoder bug was contained
    return events


def _upload(
    port: int,
    body: bytes,
    handshake: bool = True,
    client_port: int = 49152,
    t0: float = 1751364000.0,
) -> TcpConversation:
    conv = TcpConversation(server_port=port, client_port=client_port, t0=t0)
    if handshake:
        conv.handshake()
    conv.emit_all(conv.segments("client", http_request("POST", "/x/data.bin", "h", body)))
    conv.emit_all(conv.segments("server", http_response(200, "OK", b"fine")))
    conv.close()
    return conv


def test_http_is_found_by_content_on_any_port(tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    pcap = tmp_path / "ports.pcap"
    write_conversations(
        pcap,
        _upload(443, body),
        _upload(2525, body, client_port=49153),
        _upload(22, body, client_port=49154),
    )
    events = _run(pcap)
    flows = [e for e in events if e["event_type"] == "flow"]
    assert sorted(f["dest_port"] for f in flows) == [22, 443, 2525]
    assert {f["app_proto"] for f in flows} == {"http"}
    uploads = [
        e for e in events if e["event_type"] == "file" and e["file"]["direction"] == "upload"
    ]
    assert len(uploads) == 3 and {u["file"]["size"] for u in uploads} == {len(body)}


def test_tls_and_ssh_are_named_and_only_counted(tmp_path: Path) -> None:
    tls = TcpConversation(server_port=8443)
    tls.handshake()
    hello = bytes([22, 3, 1, 0, 60, 1, 0, 0, 56, 3, 3]) + bytes(53)
    tls.emit_all(tls.segments("client", hello + b"\x17\x03\x03" + bytes(3000)))
    tls.close()
    ssh = TcpConversation(server_port=443, client_port=50000)
    ssh.handshake()
    ssh.emit_all(ssh.segments("server", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
    ssh.emit_all(ssh.segments("client", b"SSH-2.0-OpenSSH_9.2\r\n" + bytes(5000)))
    ssh.close()
    pcap = tmp_path / "enc.pcap"
    write_conversations(pcap, tls, ssh)
    flows = {e["dest_port"]: e for e in _run(pcap) if e["event_type"] == "flow"}
    assert flows[8443]["app_proto"] == "tls" and flows[443]["app_proto"] == "ssh"
    assert flows[8443]["flow"]["bytes_toserver"] > 3000


def test_midstream_response_first_flips_the_orientation(tmp_path: Path) -> None:
    # No handshake, and both ports ephemeral-looking: only the content says who is client.
    conv = TcpConversation(server_port=40000, client_port=50000)
    request = http_request("GET", "/f", "h")
    response = http_response(200, "OK", b"z" * 900)
    req = conv.segments("client", request)
    resp = conv.segments("server", response)
    conv.emit_all(resp)  # the capture starts with the server's answer ...
    conv.emit_all(req)  # ... then shows a second request
    conv.emit_all(conv.segments("server", response))
    pcap = tmp_path / "mid.pcap"
    write_conversations(pcap, conv)
    events = _run(pcap)
    (flow,) = [e for e in events if e["event_type"] == "flow"]
    assert flow["flow"]["midstream"] is True
    assert (flow["src_port"], flow["dest_port"]) == (50000, 40000)
    downloads = [e for e in events if e["event_type"] == "file"]
    assert downloads and all(d["file"]["direction"] == "download" for d in downloads)


def test_flow_memory_cap_evicts_and_reports(tmp_path: Path) -> None:
    convs = [_upload(80, b"a" * 100, client_port=40000 + i, t0=1751364000.0 + i) for i in range(6)]
    pcap = tmp_path / "many.pcap"
    write_conversations(pcap, *convs)
    config = Config(flows=FlowConfig(max_flows=2))
    events = _run(pcap, config)
    flows = [e for e in events if e["event_type"] == "flow"]
    assert len(flows) == 6
    assert sum(1 for f in flows if f["flow"]["reason"] == "evicted") >= 3
    stats = events[-1]["stats"]
    assert stats["flows"]["evicted"] >= 3 and stats["flows"]["peak"] <= 2


def test_anomaly_events_per_flow_are_capped_but_counted(tmp_path: Path) -> None:
    conv = TcpConversation()
    conv.handshake()
    # Twenty conflicting overlaps of the same first segment, one anomaly kind each time.
    first = conv.segments("client", http_request("POST", "/u", "h", b"A" * 2000), 1000)
    conv.emit(first[0])
    for i in range(20):
        conv.packet("client", first[0].seq, None, "PA", bytes([66 + i % 20]) * 1000)
    conv.emit_all(first[1:])
    conv.close()
    pcap = tmp_path / "noisy.pcap"
    write_conversations(pcap, conv)
    config = Config(output=OutputConfig(max_anomalies_per_flow=1))
    events = _run(pcap, config)
    written = [e for e in events if e["event_type"] == "anomaly"]
    assert len(written) == 1
    assert events[-1]["stats"]["stream"]["overlap_conflicts"] >= 20


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30), st.integers(0, 2**32 - 1))
def test_hostile_frames_never_stop_the_pipeline(frames: list[bytes], seed: int) -> None:
    rng = random.Random(seed)
    pipeline = Pipeline(Config(), [lambda record: None])
    base = bytes.fromhex("02000a0a000a02000a0a000b0800")  # Ethernet, IPv4
    ip = bytes.fromhex("4500003c00004000400600000a0a000ac6336414")
    tcp = bytes.fromhex("c00001bb0000000000000000501800ff00000000")
    for i, data in enumerate(frames):
        choice = rng.random()
        if choice < 0.4:
            data = base + ip + tcp + data  # valid headers, hostile payload
        elif choice < 0.7:
            mutable = bytearray(base + ip + tcp + data)
            for _ in range(rng.randrange(1, 6)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable)
        linktype = LINKTYPE_ETHERNET if choice < 0.9 else LINKTYPE_RAW
        pipeline.process(Frame(1751364000.0 + i * 0.01, data, linktype))
    summary = pipeline.finish()
    assert summary.packets == len(frames)
    assert not INTERNAL_ERRORS & set(summary.anomalies)  # hostile, but no parser bug


def _raw_tcp(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    import struct

    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, 5 << 4, flags, 65535, 0, 0
    )
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    return ip + tcp + payload


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=6000),
    cuts=st.lists(st.integers(1, 700), min_size=1, max_size=40),
    order_seed=st.integers(0, 2**32 - 1),
    isn=st.integers(0, 2**32 - 1),
)
def test_any_segmentation_and_order_gives_the_same_upload(
    body: bytes, cuts: list[int], order_seed: int, isn: int
) -> None:
    """End to end: a POST cut at random places, shuffled, partly duplicated, with any ISN
    (wrap included), comes out of the pipeline as the same object, complete."""
    import hashlib
    import socket

    rng = random.Random(order_seed)
    cli, srv = socket.inet_aton("10.1.1.1"), socket.inet_aton("203.0.113.9")
    request = b"POST /u/x.bin HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
    stream = request + body
    pieces, pos, i = [], 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        pieces.append((pos, stream[pos : pos + size]))
        pos, i = pos + size, i + 1
    shuffled = pieces[:]
    rng.shuffle(shuffled)
    shuffled += rng.sample(pieces, k=min(3, len(pieces)))  # duplicates
    srv_isn = 777
    frames = [
        _raw_tcp(cli, srv, 40000, 80, isn, 0, 0x02, b""),
        _raw_tcp(srv, cli, 80, 40000, srv_isn, isn + 1, 0x12, b""),
        _raw_tcp(cli, srv, 40000, 80, isn + 1, srv_isn + 1, 0x10, b""),
    ]
    frames += [
        _raw_tcp(cli, srv, 40000, 80, isn + 1 + off, srv_isn + 1, 0x18, data)
        for off, data in shuffled
    ]
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    frames.append(_raw_tcp(srv, cli, 80, 40000, srv_isn + 1, isn + 1 + len(stream), 0x18, answer))
    events: list[dict[str, Any]] = []
    pipeline = Pipeline(Config(), [events.append])
    for n, data in enumerate(frames):
        pipeline.process(Frame(1751364000.0 + n * 0.001, data, LINKTYPE_RAW))
    pipeline.finish()
    assert internal_errors(events) == {}
    uploads = [
        e["file"]
        for e in events
        if e["event_type"] == "file" and e["file"]["direction"] == "upload"
    ]
    assert len(uploads) == 1
    assert uploads[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert uploads[0]["complete"] and uploads[0]["missing_bytes"] == 0
    assert not any(e["event_type"] == "anomaly" for e in events)


def test_flow_bypass_changes_nothing_but_the_work_done(tmp_path: Path) -> None:
    """The header-bytes fast path for counted-only flows must give exactly the events of the
    full path: same flows, counters, objects and anomalies (only the stats differ)."""
    import subprocess
    import sys

    from sensor.config import FlowConfig
    from tests.replays import ROOT

    pcap = tmp_path / "mixed.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gen_mixed.py"), "--packets", "20000", str(pcap)],
        check=True,
        capture_output=True,
    )
    runs = []
    for bypass in (True, False):
        events = _run(pcap, Config(flows=FlowConfig(bypass=bypass)))
        stats = events.pop()["stats"]
        runs.append((events, stats))
    (fast, fast_stats), (slow, slow_stats) = runs
    assert fast_stats["flows"]["bypassed_packets"] > 10000  # the fast path did carry the bulk
    assert slow_stats["flows"]["bypassed_packets"] == 0
    assert fast == slow
    assert any(e["event_type"] == "file" for e in fast)


def test_server_bytes_after_a_connect_200_in_the_same_segment_reach_the_tunnel(
    tmp_path: Path,
) -> None:
    """A client that sends its ClientHello right behind the CONNECT, and a proxy that answers
    with its 200 and the server's first flight in one segment: the TLS parser inside the
    tunnel still sees the ServerHello (negotiated version, JA3S)."""
    from tests.protocols.feeding import C
    from tests.protocols.test_tls import SNI, contexts, converse, make_cert

    server_ctx, client_ctx = contexts(make_cert(tmp_path), ssl.TLSVersion.TLSv1_3)
    session = converse(server_ctx, client_ctx)
    (client_hello, server_flight), rest = (
        [data for _, data in session.segments[:2]],
        session.segments[2:],
    )
    assert session.segments[0][0] == C
    conv = TcpConversation(server_port=3128)
    conv.handshake()
    connect = f"CONNECT {SNI}:443 HTTP/1.1\r\nHost: {SNI}:443\r\n\r\n".encode()
    conv.emit_all(conv.segments("client", connect + client_hello))
    conv.emit_all(conv.segments("server", b"HTTP/1.1 200 Connection established\r\n\r\n"
                                + server_flight))  # fmt: skip
    for direction, data in rest:
        conv.emit_all(conv.segments("client" if direction == C else "server", data))
    conv.close()
    pcap = tmp_path / "connect.pcap"
    write_conversations(pcap, conv)
    events = _run(pcap)
    (tls,) = [e["tls"] for e in events if e["event_type"] == "tls"]
    assert tls["sni"] == SNI and tls["version"] == "TLSv1.3"
    assert tls["ja3s_hash"] and tls["cipher_suite"]
    assert not [e for e in events if e["event_type"] == "anomaly"]


# --- connections announced by another (FTP data) -------------------------------------------

FTP_PORT = 50000  # 227 ... (h1,h2,h3,h4,195,80)


def _ftp_control(t0: float, client_port: int = 40021, quit_after: bool = True) -> TcpConversation:
    """A control connection that announces a passive STOR of a.csv to the server's FTP_PORT."""
    conv = TcpConversation(server_port=21, client_port=client_port, t0=t0)
    conv.handshake()
    play(conv, [
        ("server", b"220 FTP ready\r\n"),
        ("client", b"USER lab\r\n"), ("server", b"331 password\r\n"),
        ("client", b"PASS secret\r\n"), ("server", b"230 in\r\n"),
        ("client", b"PASV\r\n"),
        ("server", b"227 Entering Passive Mode (198,51,100,20,195,80)\r\n"),
        ("client", b"STOR a.csv\r\n"), ("server", b"150 go ahead\r\n"),
    ])  # fmt: skip
    if quit_after:
        play(
            conv, [("server", b"226 done\r\n"), ("client", b"QUIT\r\n"), ("server", b"221 bye\r\n")]
        )
        conv.close()
    return conv


def _to_ftp_port(t0: float, data: bytes, client_port: int = 40100) -> TcpConversation:
    conv = TcpConversation(server_port=FTP_PORT, client_port=client_port, t0=t0)
    conv.handshake()
    conv.emit_all(conv.segments("client", data))
    conv.close()
    return conv


def _files(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == "file"]


def test_an_announced_data_connection_is_the_transfer_s_file(tmp_path: Path) -> None:
    pcap = tmp_path / "ftp.pcap"
    control = _ftp_control(T0, quit_after=False)
    data = _to_ftp_port(T0 + 1, b"bsn;name\n" * 50)
    play(control, [("server", b"226 done\r\n")])
    control.close()
    write_conversations(pcap, control, data)
    (file,) = _files(_run(pcap))
    assert (file["app_proto"], file["file"]["filename"], file["file"]["size"]) == (
        "ftp-data",
        "a.csv",
        450,
    )
    assert file["ftp"]["command"] == "STOR" and file["ftp"]["type"] == "data"


def test_an_announcement_dies_with_its_control_connection(tmp_path: Path) -> None:
    # The transfer was announced but never made; the control connection ended. A minute later
    # an unrelated connection to the same address and port is not that transfer's file.
    pcap = tmp_path / "stale.pcap"
    write_conversations(pcap, _ftp_control(T0), _to_ftp_port(T0 + 60, b"GET / HTTP/1.0\r\n\r\n"))
    events = _run(pcap)
    assert not _files(events)
    later = [e for e in events if e["event_type"] == "flow" and e["dest_port"] == FTP_PORT]
    assert [f["app_proto"] for f in later] == ["http"]  # detected by content, as any flow


def test_an_announcement_expires_on_the_packet_clock(tmp_path: Path) -> None:
    # The control connection stays open (idle); the announced port is only used after the
    # data connection timeout.
    pcap = tmp_path / "late.pcap"
    control = _ftp_control(T0, quit_after=False)
    late = _to_ftp_port(T0 + DATA_CONNECTION_TIMEOUT + 30, bytes(range(256)) * 4)
    write_conversations(pcap, control, late)
    events = _run(pcap)
    assert not _files(events)
    (flow,) = [e for e in events if e["event_type"] == "flow" and e["dest_port"] == FTP_PORT]
    assert flow["app_proto"] == "unknown"


# -- time from hostile captures ----------------------------------------------------------------


def _pcapng(path: Path, records: list[tuple[int, bytes]]) -> Path:
    """A little-endian pcapng with one Ethernet interface; `records` are (microseconds since
    the epoch, frame): 64-bit times, so any year fits."""

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144))
    for micros, data in records:
        head = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data))
        out += block(6, head + data)
    path.write_bytes(out)
    return path


def test_times_outside_1970_to_9999_are_dropped_and_a_step_back_is_noted(tmp_path: Path) -> None:
    from probes.pcap import PcapReader
    from sensor.cli.main import main

    with PcapReader(str(PCAPS / "http-post-raw" / "input.pcap")) as reader:
        frames = list(reader)
    records = [(round(f.ts * 1_000_000), f.data) for f in frames]
    far = 300_000_000_000 * 1_000_000  # the year 11476
    records.insert(5, (far, records[5][1]))  # a copy of frame 5, from the far future
    ts, data = records[20]
    records[20] = (ts - 500_000_000, data)  # 500 s back
    out = tmp_path / "out"
    assert main(["replay", str(_pcapng(tmp_path / "t.pcapng", records)), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    kinds = [e["anomaly"]["kind"] for e in events if e["event_type"] == "anomaly"]
    assert kinds.count("capture_bad_timestamp") == 1
    assert kinds.count("capture_time_backwards") == 1
    flows = [e for e in events if e["event_type"] == "flow"]
    assert flows and all(e["flow"]["age"] >= 0 for e in flows)
    assert any(e["event_type"] == "http" for e in events)  # the upload is still there


# -- floods: embryonic flows are cheap ---------------------------------------------------------


def _syn(port: int, ts: float) -> Frame:
    """An Ethernet/IPv4 SYN from 10.0.0.5:port to 198.51.100.20:80."""
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, port, 0, 64, 6, 0, bytes([10, 0, 0, 5]),
        bytes([198, 51, 100, 20]),
    )  # fmt: skip
    tcp = struct.pack("!HHIIBBHHH", port, 80, port * 7919, 0, 5 << 4, 0x02, 64240, 0, 0)
    return Frame(ts, b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp, LINKTYPE_ETHERNET)


def test_a_syn_flood_keeps_no_per_flow_analysis_and_the_upload_after_it_is_found() -> None:
    import tracemalloc

    events: list[dict[str, Any]] = []
    pipeline = Pipeline(Config(), [events.append])
    flood = [_syn(1024 + i, 1_767_225_600 + i / 1000) for i in range(HOLD_AFTER + 3000)]
    for frame in flood[:HOLD_AFTER]:  # embryonic flows, until they are this many
        pipeline.process(frame)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in flood[HOLD_AFTER:]:
            pipeline.process(frame)
        per_flow = (tracemalloc.get_traced_memory()[0] - before) / (len(flood) - HOLD_AFTER)
    finally:
        tracemalloc.stop()
    # Held as frames, not flows (about 4,500 bytes with the whole state on the SYN, 1,100 as
    # an embryonic flow): sensor/flows/halfopen.py.
    assert per_flow < 450, per_flow
    assert len(pipeline.flows) == HOLD_AFTER
    with PcapReader(str(PCAPS / "http-post-raw" / "input.pcap")) as reader:
        for frame in reader:
            pipeline.process(frame)
    pipeline.finish()
    assert any(e["event_type"] == "http" and e["http"]["request_body_len"] for e in events)
    flows = [e["flow"] for e in events if e["event_type"] == "flow"]
    half = [f for f in flows if f["state"] == "half_open"]
    assert len(half) == 1 and half[0]["attempts"] + len(flows) - 1 == len(flood) + 1
    assert half[0]["pkts_toserver"] == half[0]["attempts"] and half[0]["reason"] == "timeout"
    assert half[0]["dest_ports"] == {"count": 1, "first": [80]}
    stats = [e["stats"] for e in events if e["event_type"] == "stats"][-1]
    assert stats["flows"]["half_open"] == half[0]["attempts"]
    assert not pipeline._embryos and not pipeline._half_open.index  # nothing left behind


def test_an_embryonic_flow_whose_acks_tell_of_lost_data_still_reports_the_gap() -> None:
    """Handshake, then an ACK for 1,000 bytes the capture never held: the end analyses the
    control packets as a whole flow would (tcp_gap), instead of dropping them."""
    conv = TcpConversation()
    conv.handshake()
    lost = conv.segments("client", b"x" * 1000)  # sent but not captured
    conv.ack("server")
    frames = [Frame(ts, bytes(p), LINKTYPE_ETHERNET) for ts, p in conv.ether_frames()]
    assert len(lost) == 1
    events: list[dict[str, Any]] = []
    pipeline = Pipeline(Config(), [events.append])
    for frame in frames:
        pipeline.process(frame)
    pipeline.finish()
    kinds = [e["anomaly"]["kind"] for e in events if e["event_type"] == "anomaly"]
    assert "tcp_gap" in kinds


def _two_floods(
    config: Config, kind: str
) -> tuple[Pipeline, list[dict[str, Any]], list[dict[str, Any]]]:
    """3,000 SYNs over 30 s of packet time, then a minute later 1,000 more: the pipeline, the
    events, and the anomalies of `kind` among them."""
    events: list[dict[str, Any]] = []
    pipeline = Pipeline(config, [events.append])
    for i in range(3000):
        pipeline.process(_syn(1024 + i, 1_767_225_600 + i / 100))
    for i in range(1000):
        pipeline.process(_syn(5000 + i, 1_767_225_700 + i / 100))
    pipeline.finish()
    notes = [
        e["anomaly"] for e in events
        if e["event_type"] == "anomaly" and e["anomaly"]["kind"] == kind
    ]  # fmt: skip
    return pipeline, events, notes


def test_evictions_are_one_counted_anomaly_a_minute() -> None:
    from dataclasses import replace

    config = Config()
    # Every SYN a flow (no half-open table): the table fills.
    config = replace(config, flows=replace(config.flows, max_flows=100, half_open_memcap=0))
    _, events, notes = _two_floods(config, "flow_table_full")
    evicted = sum(
        1 for e in events if e["event_type"] == "flow" and e["flow"]["reason"] == "evicted"
    )
    assert 2 <= len(notes) <= 4  # not one per flow
    assert sum(int(n["detail"].split()[0]) for n in notes) == evicted > 3000
    assert "flows.max_flows = 100" in notes[0]["detail"]


def test_unanswered_syns_over_the_half_open_cap_are_summed_early_and_said_once_a_minute() -> None:
    from dataclasses import replace

    from sensor.flows.halfopen import ENTRY_COST, FRAME_COST

    config = Config()
    one = ENTRY_COST + FRAME_COST + 54  # a tuple with one 54-byte SYN
    config = replace(config, flows=replace(config.flows, half_open_memcap=100 * one))
    pipeline, events, notes = _two_floods(config, "half_open_full")
    assert pipeline._half_open is not None and pipeline._half_open.peak <= 101
    flows = [e["flow"] for e in events if e["event_type"] == "flow"]
    early = sum(f["attempts"] for f in flows if f["reason"] == "evicted")
    assert 2 <= len(notes) <= 4  # not one per batch
    assert sum(int(n["detail"].split()[0]) for n in notes) == early > 1500
    assert sum(f.get("attempts", 1) for f in flows) == 4000  # every SYN in some record
    half = [f for f in flows if f["state"] == "half_open"]
    assert len(half) < sum(f["attempts"] for f in half) / 5  # summed in batches over the cap
    assert all(f["bytes_toserver"] == 40 * f["pkts_toserver"] for f in flows)  # IP bytes


def test_a_syn_answered_late_is_one_flow_as_if_never_held() -> None:
    """SYN, SYN-ACK, ACK and data: the held SYN runs first when the SYN-ACK comes, so the flow
    and its records are those of the normal path (compare with the table off)."""
    conv = TcpConversation()
    conv.handshake()
    conv.emit_all(conv.segments("client", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    conv.close()
    frames = [Frame(ts, bytes(p), LINKTYPE_ETHERNET) for ts, p in conv.ether_frames()]
    from dataclasses import replace

    outputs = []
    for memcap in (0, Config().flows.half_open_memcap):
        config = replace(Config(), flows=replace(Config().flows, half_open_memcap=memcap))
        events: list[dict[str, Any]] = []
        pipeline = Pipeline(config, [events.append])
        pipeline.process(_syn(999, frames[0].ts - 1))  # the clock starts before the SYN
        for frame in frames:
            pipeline.process(frame)
        pipeline.finish()
        outputs.append([e for e in events if e["event_type"] in ("flow", "http")])
    assert outputs[0] == outputs[1]
    assert sorted(e["event_type"] for e in outputs[0]) == ["flow", "flow", "http"]
