"""Tests for sensor.protocols.dns: responses shaped like real servers' (A, AAAA, CNAME chains,
compression), what is ignored, hostile names and truncation at every offset, arbitrary bytes,
dpkt as an independent parser, and the responses of a real dnsmasq in pcaps/."""

from __future__ import annotations

import ipaddress
import json
import random
import struct
from collections.abc import Sequence
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS
from sensor.protocols.dns import (
    DNS_MALFORMED,
    DNS_TRUNCATED,
    MAX_ADDRESSES,
    MAX_ANSWER_RECORDS,
    MAX_POINTER_HOPS,
    MAX_QUESTIONS,
    DnsAnswer,
    DnsViolation,
    parse_response,
)

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "pcaps" / "dns-named-upload"

A, NS, CNAME, MX, TXT, AAAA, HTTPS = 1, 2, 5, 15, 16, 28, 65
RESPONSE = 0x8180  # QR, RD, RA: what a recursive resolver answers
QUERY = 0x0100  # RD
NXDOMAIN = 0x8183

Record = tuple[str, int, int, str | bytes]  # owner, type, TTL, value (name, address or RDATA)


# --- a message builder that compresses as real servers do (RFC 1035 4.1.4) -----------------


class Message:
    def __init__(self, compress: bool = True) -> None:
        self.buf = bytearray(12)
        self.compress = compress
        self._suffixes: dict[bytes, int] = {}

    def name(self, name: str) -> None:
        labels = [label.encode() for label in name.split(".")] if name else []
        for i, label in enumerate(labels):
            suffix = b".".join(labels[i:]).lower()
            at = self._suffixes.get(suffix)
            if self.compress and at is not None:
                self.buf += struct.pack("!H", 0xC000 | at)
                return
            self._suffixes.setdefault(suffix, len(self.buf))
            self.buf += bytes([len(label)]) + label
        self.buf += b"\0"

    def record(self, owner: str, rtype: int, ttl: int, value: str | bytes, rclass: int = 1) -> None:
        self.name(owner)
        head = len(self.buf)
        self.buf += struct.pack("!HHIH", rtype, rclass, ttl, 0)
        if rtype in (CNAME, NS) and isinstance(value, str):
            self.name(value)
        elif rtype in (A, AAAA) and isinstance(value, str):
            self.buf += ipaddress.ip_address(value).packed
        else:
            assert isinstance(value, bytes)
            self.buf += value
        struct.pack_into("!H", self.buf, head + 8, len(self.buf) - head - 10)


def response(
    qname: str | list[tuple[str, int]],
    answers: Sequence[Record] = (),
    *,
    qtype: int = A,
    flags: int = RESPONSE,
    compress: bool = True,
    authority: Sequence[Record] = (),
    ancount: int | None = None,
    qclass: int = 1,
) -> bytes:
    questions = [(qname, qtype)] if isinstance(qname, str) else qname
    msg = Message(compress)
    for name, qt in questions:
        msg.name(name)
        msg.buf += struct.pack("!HH", qt, qclass)
    for record in answers:
        msg.record(*record)
    for record in authority:
        msg.record(*record)
    count = len(answers) if ancount is None else ancount
    struct.pack_into("!HHHHHH", msg.buf, 0, 0x1234, flags, len(questions), count, len(authority), 0)
    return bytes(msg.buf)


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


# --- what real servers send ------------------------------------------------------------------


def test_a_record() -> None:
    msg = response("files.example.com", [("files.example.com", A, 300, "203.0.113.7")])
    assert parse_response(msg) == (DnsAnswer("files.example.com", (ip("203.0.113.7"),), 300),)


def test_aaaa_record() -> None:
    msg = response("v6.example.org", [("v6.example.org", AAAA, 60, "2001:db8::7")], qtype=AAAA)
    assert parse_response(msg) == (DnsAnswer("v6.example.org", (ip("2001:db8::7"),), 60),)


def test_a_cname_chain_names_the_question_not_the_canonical_name() -> None:
    msg = response(
        "files.example.com",
        [
            ("files.example.com", CNAME, 3600, "edge.cdn.net"),
            ("edge.cdn.net", CNAME, 120, "e7.g.cdn.net"),
            ("e7.g.cdn.net", A, 20, "203.0.113.7"),
            ("e7.g.cdn.net", A, 20, "203.0.113.8"),
        ],
    )
    [answer] = parse_response(msg)
    assert answer.query == "files.example.com"
    assert answer.addresses == (ip("203.0.113.7"), ip("203.0.113.8"))
    assert answer.ttl == 20


def test_records_in_any_order_and_duplicates_once() -> None:
    records: list[Record] = [
        ("edge.cdn.net", A, 50, "203.0.113.8"),
        ("edge.cdn.net", A, 50, "203.0.113.7"),
        ("files.example.com", CNAME, 40, "edge.cdn.net"),
        ("edge.cdn.net", A, 50, "203.0.113.8"),
        ("edge.cdn.net", AAAA, 70, "2001:db8::8"),
    ]
    [answer] = parse_response(response("files.example.com", records))
    assert answer.addresses == (ip("203.0.113.8"), ip("203.0.113.7"), ip("2001:db8::8"))
    assert answer.ttl == 40


def test_compression_into_rdata_and_without_compression_give_the_same() -> None:
    records: list[Record] = [
        ("www.example.net", CNAME, 60, "lb.eu.example.net"),  # target shares example.net
        ("lb.eu.example.net", CNAME, 60, "node1.lb.eu.example.net"),  # points into RDATA
        ("node1.lb.eu.example.net", A, 60, "198.51.100.9"),
    ]
    packed = response("www.example.net", records)
    plain = response("www.example.net", records, compress=False)
    assert len(packed) < len(plain) - 30 and b"\xc0\x0c" in packed
    assert parse_response(packed) == parse_response(plain)
    assert parse_response(packed)[0].addresses == (ip("198.51.100.9"),)


def test_names_compare_case_insensitively_and_come_out_lower_case() -> None:
    # 0x20 randomisation (resolvers mix the case of the question) and a server that writes
    # the owner in its own case.
    msg = response(
        "FiLeS.ExAmPlE.CoM",
        [("files.example.com", CNAME, 9, "EDGE.cdn.NET"), ("Edge.CDN.net", A, 9, "203.0.113.7")],
        compress=False,
    )
    assert parse_response(msg) == (DnsAnswer("files.example.com", (ip("203.0.113.7"),), 9),)


def test_records_not_linked_to_the_question_are_ignored() -> None:
    msg = response(
        "evil.example",
        [
            ("evil.example", A, 60, "203.0.113.66"),
            ("www.bank.example", A, 60, "192.0.2.1"),  # stuffed: not asked for
            ("cdn.example", CNAME, 60, "evil.example"),  # points TO the chain, not from it
        ],
    )
    assert parse_response(msg) == (DnsAnswer("evil.example", (ip("203.0.113.66"),), 60),)


def test_other_record_types_are_skipped() -> None:
    mx = struct.pack("!H", 10) + b"\x04mail\xc0\x0c"
    msg = response(
        "example.com",
        [
            ("example.com", TXT, 60, b"\x05hello"),
            ("example.com", MX, 60, mx),
            ("example.com", HTTPS, 60, b"\x00\x01\x00"),
            ("example.com", A, 60, "192.0.2.10"),
        ],
    )
    assert parse_response(msg)[0].addresses == (ip("192.0.2.10"),)


def test_authority_section_is_not_read() -> None:
    msg = response(
        "example.com",
        [("example.com", A, 60, "192.0.2.10")],
        authority=[("example.com", NS, 60, b"\xff\xff")],  # garbage: never looked at
    )
    assert parse_response(msg)[0].addresses == (ip("192.0.2.10"),)


def test_several_questions() -> None:
    msg = response(
        [("a.example", A), ("b.example", AAAA)],
        [("a.example", A, 5, "192.0.2.1"), ("b.example", AAAA, 6, "2001:db8::b")],
    )
    assert parse_response(msg) == (
        DnsAnswer("a.example", (ip("192.0.2.1"),), 5),
        DnsAnswer("b.example", (ip("2001:db8::b"),), 6),
    )


def test_cname_loop_ends() -> None:
    msg = response(
        "a.example",
        [
            ("a.example", CNAME, 5, "b.example"),
            ("b.example", CNAME, 5, "a.example"),
            ("b.example", A, 5, "192.0.2.2"),
        ],
    )
    assert parse_response(msg) == (DnsAnswer("a.example", (ip("192.0.2.2"),), 5),)


def test_ttl_with_the_top_bit_set_counts_as_zero() -> None:
    msg = response("a.example", [("a.example", A, 0x80000000, "192.0.2.1")])
    assert parse_response(msg)[0].ttl == 0


def test_labels_with_dots_and_odd_bytes_are_escaped() -> None:
    msg = Message()
    msg.buf += b"\x03a.b\x04x\\\x00\xff\x07example\x00" + struct.pack("!HH", A, 1)
    owner = len(msg.buf)
    msg.buf += struct.pack("!H", 0xC00C) + struct.pack("!HHIH", A, 1, 7, 4) + ip("192.0.2.3")
    struct.pack_into("!HHHHHH", msg.buf, 0, 1, RESPONSE, 1, 1, 0, 0)
    assert owner > 12
    [answer] = parse_response(bytes(msg.buf))
    assert answer.query == "a\\.b.x\\\\\\000\\255.example"


def test_address_and_record_caps() -> None:
    many: list[Record] = [("a.example", A, 1, f"10.0.{i // 256}.{i % 256}") for i in range(200)]
    [answer] = parse_response(response("a.example", many))
    assert len(answer.addresses) == MAX_ADDRESSES
    # Records beyond MAX_ANSWER_RECORDS are not read, even when they are garbage.
    raw = bytearray(response("a.example", many[:MAX_ANSWER_RECORDS]) + b"\xff" * 40)
    struct.pack_into("!H", raw, 6, MAX_ANSWER_RECORDS + 5)
    assert parse_response(bytes(raw))[0].addresses == answer.addresses


def test_truncated_response_with_tc_keeps_the_records_read_whole() -> None:
    records: list[Record] = [("a.example", A, 1, f"192.0.2.{i}") for i in range(1, 6)]
    msg = response("a.example", records, flags=RESPONSE | 0x0200)
    cut = msg[: len(msg) - 10]  # 16-byte records: the fifth is cut, the fourth whole
    assert parse_response(cut)[0].addresses == tuple(ip(f"192.0.2.{i}") for i in range(1, 5))
    without_tc = response("a.example", records)[: len(msg) - 10]
    with pytest.raises(DnsViolation) as caught:
        parse_response(without_tc)
    assert caught.value.reason == DNS_TRUNCATED


def test_memoryview_and_bytearray_inputs() -> None:
    msg = response("a.example", [("a.example", A, 1, "192.0.2.1")])
    assert parse_response(memoryview(msg)) == parse_response(bytearray(msg)) == parse_response(msg)


# --- what is ignored -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        QUERY,  # a query (even one carrying answers)
        NXDOMAIN,
        0x8182,  # SERVFAIL
        0x8185,  # REFUSED
        0xA980,  # opcode UPDATE (5), QR set
        0x9180,  # opcode NOTIFY (2)... QR set
    ],
)
def test_queries_errors_and_other_opcodes_are_ignored(flags: int) -> None:
    msg = response("a.example", [("a.example", A, 1, "192.0.2.1")], flags=flags)
    assert parse_response(msg) == ()


def test_nxdomain_with_garbage_after_the_header_is_still_ignored() -> None:
    msg = struct.pack("!HHHHHH", 1, NXDOMAIN, 1, 3, 0, 0) + b"\xc0\x0c"
    assert parse_response(msg) == ()


def test_nodata_other_class_and_question_counts() -> None:
    assert parse_response(response("a.example", [])) == ()
    assert parse_response(response("a.example", [("a.example", TXT, 1, b"\x01x")])) == ()
    chaos = Message()
    chaos.name("a.example")
    chaos.buf += struct.pack("!HH", A, 3)
    chaos.record("a.example", A, 1, "192.0.2.1", rclass=3)
    struct.pack_into("!HHHHHH", chaos.buf, 0, 1, RESPONSE, 1, 1, 0, 0)
    assert parse_response(bytes(chaos.buf)) == ()
    assert parse_response(response("a.example", [("a.example", A, 1, "1.2.3.4")], qclass=3)) == ()
    zero = struct.pack("!HHHHHH", 1, RESPONSE, 0, 0, 0, 0)
    assert parse_response(zero) == ()
    many = [(f"q{i}.example", A) for i in range(MAX_QUESTIONS + 1)]
    assert parse_response(response(many, [("q0.example", A, 1, "192.0.2.1")])) == ()


# --- hostile input ---------------------------------------------------------------------------


def header(qd: int = 1, an: int = 1, flags: int = RESPONSE) -> bytes:
    return struct.pack("!HHHHHH", 0xBEEF, flags, qd, an, 0, 0)


QTAIL = struct.pack("!HH", A, 1)


def violation(message: bytes) -> DnsViolation:
    with pytest.raises(DnsViolation) as caught:
        parse_response(message)
    return caught.value


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (header() + b"\xc0\x0c" + QTAIL, DNS_MALFORMED),  # points at itself
        (header() + b"\x01a\xc0\x0c" + QTAIL, DNS_MALFORMED),  # back to its own start: a loop
        (header() + b"\x01a\xc0\x20" + QTAIL + b"\0" * 20, DNS_MALFORMED),  # forward
        (header() + b"\xff\xff" + QTAIL, DNS_MALFORMED),  # far out of range
        (header() + b"\x40" + b"x" * 64 + b"\0" + QTAIL, DNS_MALFORMED),  # 64-byte label
        (header() + b"\x80\x00" + QTAIL, DNS_MALFORMED),  # reserved label type
        (header() + (b"\x3f" + b"x" * 63) * 4 + b"\0" + QTAIL, DNS_MALFORMED),  # 257 bytes
        (header()[:11], DNS_TRUNCATED),
        (header() + b"\x05abc", DNS_TRUNCATED),
        (header() + b"\x01a\x00\x00", DNS_TRUNCATED),  # question tail cut
        (header() + b"\x01a\xc0", DNS_TRUNCATED),  # pointer cut
    ],
)
def test_hostile_names(message: bytes, reason: str) -> None:
    assert violation(message).reason == reason


def test_a_name_of_255_bytes_is_fine_and_256_is_not() -> None:
    labels = ["x" * 63] * 3 + ["y" * 61]  # 3 * 64 + 62 + 1 = 255
    name = ".".join(labels)
    assert parse_response(response(name, [(name, A, 1, "192.0.2.1")]))[0].query == name
    longer = ".".join([*labels[:3], "y" * 62])
    assert violation(response(longer, [])).reason == DNS_MALFORMED


def test_a_name_grown_past_255_bytes_through_pointers() -> None:
    msg = bytearray(header(an=3))
    first = len(msg)
    msg += b"\x3f" + b"a" * 63 + b"\0" + QTAIL  # 65 bytes
    previous = first
    for _ in range(3):  # 129, 193, then 257 bytes
        owner = len(msg)
        msg += b"\x3f" + b"b" * 63 + struct.pack("!H", 0xC000 | previous)
        msg += struct.pack("!HHIH", A, 1, 1, 4) + ip("192.0.2.1")
        previous = owner
    caught = violation(bytes(msg))
    assert caught.reason == DNS_MALFORMED and "answer 3 of 3" in caught.detail


def test_pointer_hops_are_capped() -> None:
    def chain(hops: int) -> bytes:
        msg = bytearray(header(an=hops)) + b"\x01a\x00" + QTAIL
        previous = 12
        for _ in range(hops):  # each owner is a pointer to the previous owner
            owner = len(msg)
            msg += struct.pack("!H", 0xC000 | previous)
            msg += struct.pack("!HHIH", A, 1, 1, 4) + ip("192.0.2.1")
            previous = owner
        return bytes(msg)

    assert parse_response(chain(MAX_POINTER_HOPS))[0].addresses == (ip("192.0.2.1"),)
    caught = violation(chain(MAX_POINTER_HOPS + 1))
    assert caught.reason == DNS_MALFORMED and "hops" in caught.detail


def test_bad_record_lengths() -> None:
    bad_a = response("a.example", [("a.example", A, 1, b"\x01\x02\x03\x04\x05")])
    assert violation(bad_a).reason == DNS_MALFORMED
    bad_aaaa = response("a.example", [("a.example", AAAA, 1, b"\x00" * 4)])
    assert violation(bad_aaaa).reason == DNS_MALFORMED
    long_cname = response("a.example", [("a.example", CNAME, 1, b"\x01b\x00\x00")])
    assert violation(long_cname).reason == DNS_MALFORMED
    short_cname = response("a.example", [("a.example", CNAME, 1, b"\x01b")])
    assert violation(short_cname).reason == DNS_TRUNCATED  # the name runs out of the message
    past_end = response("a.example", [("a.example", TXT, 1, b"\x01x")])[:-1]
    assert violation(past_end).reason == DNS_TRUNCATED


SAMPLE_RECORDS: list[Record] = [
    ("files.example.com", CNAME, 3600, "edge.cdn.net"),
    ("edge.cdn.net", A, 20, "203.0.113.7"),
    ("edge.cdn.net", AAAA, 20, "2001:db8::7"),
]
SAMPLE_AUTHORITY: list[Record] = [("cdn.net", NS, 60, "ns1.cdn.net")]


def _samples() -> list[tuple[bytes, int]]:
    """(message, offset after its answer section): with an authority section, and without."""
    v6: list[Record] = [("v6.example.org", AAAA, 60, "2001:db8::7")]
    with_authority = response("files.example.com", SAMPLE_RECORDS, authority=SAMPLE_AUTHORITY)
    plain = response("v6.example.org", v6, qtype=AAAA)
    return [
        (with_authority, len(response("files.example.com", SAMPLE_RECORDS))),
        (plain, len(plain)),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_truncated_at_every_offset(index: int) -> None:
    message, end = _samples()[index]
    whole = parse_response(message)
    assert whole
    assert len(dpkt.dns.DNS(message).ns) == (1 if index == 0 else 0)
    for cut in range(len(message)):
        if cut < end:
            assert violation(message[:cut]).reason == DNS_TRUNCATED, cut
        else:  # only the authority section is cut: never read
            assert parse_response(message[:cut]) == whole


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_the_module_error(data: bytes) -> None:
    try:
        result = parse_response(data)
    except DnsViolation as exc:
        assert exc.reason in (DNS_TRUNCATED, DNS_MALFORMED)
    else:
        assert isinstance(result, tuple)


@settings(max_examples=500, deadline=None)
@given(
    qd=st.integers(1, MAX_QUESTIONS),
    an=st.integers(0, 0xFFFF),
    flags=st.sampled_from([RESPONSE, RESPONSE | 0x0200, 0x8400]),
    body=st.binary(max_size=600),
)
def test_garbage_behind_a_response_header_raises_only_the_module_error(
    qd: int, an: int, flags: int, body: bytes
) -> None:
    try:
        for answer in parse_response(header(qd, an, flags) + body):
            assert answer.addresses and all(len(a) in (4, 16) for a in answer.addresses)
    except DnsViolation as exc:
        assert exc.reason in (DNS_TRUNCATED, DNS_MALFORMED)


@settings(max_examples=300, deadline=None)
@given(index=st.sampled_from([0, 1]), seed=st.integers(0, 2**32))
def test_mutated_responses_raise_only_the_module_error(index: int, seed: int) -> None:
    rng = random.Random(seed)
    message = bytearray(_samples()[index][0])
    for _ in range(rng.randint(1, 6)):
        message[rng.randrange(12, len(message))] = rng.choice(
            [0, 0x3F, 0x40, 0xC0, 0xFF, rng.randrange(256)]
        )
    try:
        parse_response(bytes(message))
    except DnsViolation as exc:
        assert exc.reason in (DNS_TRUNCATED, DNS_MALFORMED)


def test_anomaly_kinds_are_registered() -> None:
    assert KINDS[DNS_TRUNCATED][0] == KINDS[DNS_MALFORMED][0] == "app"


# --- differential: dpkt reads the same responses ---------------------------------------------


def dpkt_addresses(message: bytes) -> dict[str, set[bytes]]:
    """Question name -> addresses, read by dpkt.dns, the CNAME chain followed here."""
    parsed = dpkt.dns.DNS(message)
    cnames: dict[str, str] = {}
    found: dict[str, list[bytes]] = {}
    for rr in parsed.an:
        owner = rr.name.lower()
        if rr.cls != 1:
            continue
        if rr.type == dpkt.dns.DNS_CNAME:
            cnames.setdefault(owner, rr.cname.lower())
        elif rr.type == dpkt.dns.DNS_A:
            found.setdefault(owner, []).append(rr.ip)
        elif rr.type == dpkt.dns.DNS_AAAA:
            found.setdefault(owner, []).append(rr.ip6)
    out = {}
    for question in parsed.qd:
        chain = [question.name.lower()]
        while chain[-1] in cnames and cnames[chain[-1]] not in chain:
            chain.append(cnames[chain[-1]])
        addresses = {a for name in chain for a in found.get(name, [])}
        if addresses:
            out[chain[0]] = addresses
    return out


label = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12
)
names = st.lists(label, min_size=1, max_size=4).map(".".join)
addresses = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))


@st.composite
def generated_responses(draw: st.DrawFn) -> tuple[str, list[Record]]:
    """A question, its CNAME chain and addresses, and unrelated records, in any order."""
    qname = draw(names)
    chain = [qname, *draw(st.lists(names, max_size=3))]
    records: list[Record] = [
        (chain[i], CNAME, draw(st.integers(0, 2**31 - 1)), chain[i + 1])
        for i in range(len(chain) - 1)
        if chain[i + 1].lower() not in {c.lower() for c in chain[: i + 1]}
    ]
    for address in draw(st.lists(addresses, max_size=5)):
        owner = draw(st.sampled_from(chain))
        records.append((owner, AAAA if ":" in address else A, draw(st.integers(0, 86400)), address))
    for _ in range(draw(st.integers(0, 3))):
        records.append((draw(names), A, 1, draw(st.ip_addresses(v=4).map(str))))
    order = draw(st.permutations(range(len(records))))
    return qname, [records[i] for i in order]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=generated_responses(), compress=st.booleans())
def test_same_addresses_as_dpkt_on_our_messages(
    generated: tuple[str, list[Record]], compress: bool
) -> None:
    qname, records = generated
    message = response(qname, records, compress=compress)
    mine = {a.query: set(a.addresses) for a in parse_response(message)}
    assert mine == dpkt_addresses(message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=generated_responses())
def test_same_addresses_as_dpkt_on_messages_dpkt_builds(
    generated: tuple[str, list[Record]],
) -> None:
    qname, records = generated
    built = dpkt.dns.DNS(id=9, op=RESPONSE)
    built.qd = [dpkt.dns.DNS.Q(name=qname, type=A)]
    built.an = []
    for owner, rtype, ttl, value in records:
        assert isinstance(value, str)
        rr = dpkt.dns.DNS.RR(name=owner, type=rtype, ttl=ttl)
        if rtype == CNAME:
            rr.cname = value
        elif rtype == A:
            rr.ip = ip(value)
        else:
            rr.ip6 = ip(value)
        built.an.append(rr)
    message = bytes(built)
    mine = {a.query: set(a.addresses) for a in parse_response(message)}
    assert mine == dpkt_addresses(message)


# --- a real server: dnsmasq's responses in the sample capture ---------------------------------


def test_real_dnsmasq_responses() -> None:
    """The responses a real dnsmasq sent to glibc in pcaps/dns-named-upload (CNAME included):
    the same addresses as dpkt, and the names the case's expectation says the meter learns."""
    pcap = CASE / "input.pcap"
    expected = json.loads((CASE / "expected.json").read_text())
    learnt: dict[str, str] = {}
    cnames = 0
    with pcap.open("rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            packet = dpkt.ethernet.Ethernet(frame).data
            udp = getattr(packet, "data", None)
            if not isinstance(udp, dpkt.udp.UDP) or udp.sport != 53:
                continue
            message = bytes(udp.data)
            answers = parse_response(message)
            assert {a.query: set(a.addresses) for a in answers} == dpkt_addresses(message)
            for answer in answers:
                for address in answer.addresses:
                    learnt[str(ipaddress.ip_address(address))] = answer.query
            cnames += sum(rr.type == CNAME for rr in dpkt.dns.DNS(message).an)
    assert learnt == {d["ip"]: d["name"] for d in expected["destinations"]}
    assert cnames  # a chain was followed
