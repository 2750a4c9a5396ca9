"""DNS answers as the meter's third source of destination names, through the wired pipeline:
a UDP response from port 53 names the address an upload then goes to, even when the upload
itself (plain TCP here) names nothing."""

from __future__ import annotations

import ipaddress
from typing import Any

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pcaps._lib.crafted import TcpConversation
from pcaps._lib.netns import CLIENT_MAC, CLIENT_V4, SERVER_MAC, SERVER_V4, SERVER_V6
from probes.frame import LINKTYPE_ETHERNET, Frame
from sensor.config import Config
from sensor.metering.categories import load_categories
from sensor.metering.meter import Meter
from sensor.pipeline import Pipeline

RESOLVER = "192.0.2.53"  # external resolver (documentation range)
T0 = 1751364000.0
UPLOAD = bytes(range(256)) * 6000  # 1.5 MB of no known protocol


def _dns_frame(ts: float, message: DNS | bytes, response: bool, client_port: int = 40123) -> Frame:
    if response:
        packet = Ether(src=SERVER_MAC, dst=CLIENT_MAC) / IP(src=RESOLVER, dst=CLIENT_V4)
        packet = packet / UDP(sport=53, dport=client_port)
    else:
        packet = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src=CLIENT_V4, dst=RESOLVER)
        packet = packet / UDP(sport=client_port, dport=53)
    payload = Raw(message) if isinstance(message, bytes) else message
    return Frame(ts, bytes(packet / payload), LINKTYPE_ETHERNET)


def lookup(
    ts: float, name: str, answers: list[DNSRR], qtype: str = "A", query: bool = True
) -> list[Frame]:
    """A query (unless `query` is False) and its response, 2 ms apart."""
    question = DNSQR(qname=name, qtype=qtype)
    frames = []
    if query:
        frames.append(_dns_frame(ts, DNS(id=0x5151, rd=1, qd=question), response=False))
    reply = DNS(id=0x5151, qr=1, rd=1, ra=1, qd=question, an=answers)
    frames.append(_dns_frame(ts + 0.002, reply, response=True))
    return frames


def plain_upload(ts: float, ipv6: bool = False) -> list[Frame]:
    """A TCP upload to SERVER_V4 (or SERVER_V6) port 2222 that names nothing."""
    conv = TcpConversation(server_port=2222, t0=ts, ipv6=ipv6)
    conv.handshake()
    conv.emit_all(conv.segments("client", UPLOAD))
    conv.close()
    return [Frame(t, bytes(f), LINKTYPE_ETHERNET) for t, f in conv.ether_frames()]


def run(frames: list[Frame], meter: Meter | None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    pipeline = Pipeline(Config(), [events.append], meter=meter)
    for frame in frames:
        pipeline.process(frame)
    pipeline.finish()
    return events


def new_meter() -> Meter:
    config = Config()
    return Meter(config.metering, config.home_net, load_categories(), None)


def names(meter: Meter, host: str = CLIENT_V4) -> dict[str, str | None]:
    packed = ipaddress.ip_address(host).packed
    return {d.ip: d.name for d in meter.top_destinations(packed, 3600)}


def test_an_answer_through_a_cname_names_the_upload_after_the_question() -> None:
    meter = new_meter()
    answers = [
        DNSRR(rrname="files.example.com", type="CNAME", ttl=300, rdata="edge.cdn.example.net"),
        DNSRR(rrname="edge.cdn.example.net", type="A", ttl=60, rdata=SERVER_V4),
    ]
    run([*lookup(T0, "files.example.com", answers), *plain_upload(T0 + 1)], meter)
    assert names(meter) == {RESOLVER: None, SERVER_V4: "files.example.com"}


def test_an_aaaa_answer_names_an_ipv6_upload() -> None:
    meter = new_meter()
    answers = [DNSRR(rrname="vault.example.org", type="AAAA", ttl=60, rdata=SERVER_V6)]
    frames = [*lookup(T0, "vault.example.org", answers, "AAAA"), *plain_upload(T0 + 1, True)]
    run(frames, meter)
    assert names(meter, "fd00:10::10") == {SERVER_V6: "vault.example.org"}


def test_the_dns_name_brings_its_category() -> None:
    meter = new_meter()
    answers = [DNSRR(rrname="eu.wetransfer.com", type="A", ttl=60, rdata=SERVER_V4)]
    events = run([*lookup(T0, "eu.wetransfer.com", answers), *plain_upload(T0 + 1)], meter)
    [finding] = [e["finding"] for e in events if e["event_type"] == "finding"]
    assert finding["kind"] == "category_upload"
    assert finding["destinations"] == [f"eu.wetransfer.com ({SERVER_V4})"]


def test_an_unsolicited_response_names_nothing() -> None:
    meter = new_meter()
    answers = [DNSRR(rrname="files.example.com", type="A", ttl=60, rdata=SERVER_V4)]
    frames = [*lookup(T0, "files.example.com", answers, query=False), *plain_upload(T0 + 1)]
    events = run(frames, meter)
    assert names(meter)[SERVER_V4] is None
    assert not [e for e in events if e["event_type"] == "anomaly"]


def test_a_malformed_response_is_an_anomaly_and_ends_dns_on_that_flow() -> None:
    meter = new_meter()
    query = DNS(id=7, rd=1, qd=DNSQR(qname="files.example.com"))
    loop = bytes(DNS(id=7, qr=1, qd=DNSQR(qname="x"), ancount=1))[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    good = DNS(
        id=7,
        qr=1,
        qd=DNSQR(qname="files.example.com"),
        an=[DNSRR(rrname="files.example.com", type="A", ttl=60, rdata=SERVER_V4)],
    )
    frames = [
        _dns_frame(T0, query, response=False),
        _dns_frame(T0 + 0.001, loop, response=True),  # a pointer to itself
        _dns_frame(T0 + 0.002, good, response=True),  # same flow: no longer read
        *plain_upload(T0 + 1),
    ]
    events = run(frames, meter)
    [anomaly] = [e for e in events if e["event_type"] == "anomaly"]
    assert anomaly["anomaly"]["kind"] == "dns_malformed" and anomaly["anomaly"]["layer"] == "app"
    assert (anomaly["src_ip"], anomaly["dest_ip"], anomaly["dest_port"]) == (
        CLIENT_V4,
        RESOLVER,
        53,
    )
    assert "pointer" in anomaly["anomaly"]["detail"]
    assert names(meter)[SERVER_V4] is None
    udp = [e for e in events if e["event_type"] == "flow" and e["dest_port"] == 53]
    assert udp[0]["flow"]["pkts_toclient"] == 2  # still counted


def test_without_the_meter_answers_are_read_and_nothing_breaks() -> None:
    answers = [DNSRR(rrname="files.example.com", type="A", ttl=60, rdata=SERVER_V4)]
    events = run([*lookup(T0, "files.example.com", answers), *plain_upload(T0 + 1)], None)
    assert {e["event_type"] for e in events} >= {"flow", "stats"}
    assert not [e for e in events if e["event_type"] == "anomaly"]
