"""Tests for sensor.protocols.tls: real handshakes (Python ssl), published JA3/JA4 vectors,
certificates, segmentation, caps, truncation, garbage and detection."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS
from sensor.protocols.base import Opaque, ProtocolViolation
from sensor.protocols.tls import (
    TlsCaps,
    TlsHandshake,
    TlsParser,
    TlsViolation,
    detect,
    is_grease,
)
from tests.protocols.feeding import TS, C, S, Segment, assert_same_events, kinds, of, runner

SNI = "files.example.org"
NOT_BEFORE = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2035, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

# --- helpers ------------------------------------------------------------------------------------


# Feed segments (whole, byte by byte or in random pieces), then eof both sides.
run = runner(TlsParser, max_cuts=8)


def handshake(events: list[object]) -> TlsHandshake:
    [hs] = of(events, TlsHandshake)
    return hs


def record(content_type: int, payload: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([content_type]) + version + len(payload).to_bytes(2, "big") + payload


def records_of(stream: bytes) -> list[tuple[int, bytes]]:
    """Split a stream of whole TLS records into (type, payload)."""
    out, pos = [], 0
    while pos < len(stream):
        length = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        out.append((stream[pos], stream[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(stream)
    return out


def hello_message(stream: bytes) -> bytes:
    """The first handshake message (header + body) of a stream whose first record holds it."""
    (_t, payload), *_ = records_of(stream[: 5 + int.from_bytes(stream[3:5], "big")])
    return payload[: 4 + int.from_bytes(payload[1:4], "big")]


def reframe(message: bytes, size: int, version: bytes = b"\x03\x01") -> bytes:
    """Spread one handshake message over records of `size` payload bytes each."""
    return b"".join(
        record(22, message[i : i + size], version) for i in range(0, len(message), size)
    )


# --- building ClientHellos (for vectors of the spec's edge cases and for malformed input) -------


def ext(ext_type: int, body: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def u16s(values: list[int], len_size: int = 2) -> bytes:
    body = b"".join(v.to_bytes(2, "big") for v in values)
    return len(body).to_bytes(len_size, "big") + body


def alpn_ext(protocols: list[bytes]) -> bytes:
    body = b"".join(bytes([len(p)]) + p for p in protocols)
    return ext(0x0010, len(body).to_bytes(2, "big") + body)


def sni_ext(name: bytes) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    return ext(0x0000, len(entry).to_bytes(2, "big") + entry)


def client_hello(
    ciphers: list[int], extensions: list[bytes], version: int = 0x0303, session_id: bytes = b""
) -> bytes:
    """A ClientHello handshake message (header included)."""
    body = (
        version.to_bytes(2, "big")
        + bytes(32)
        + bytes([len(session_id)])
        + session_id
        + u16s(ciphers)
        + b"\x01\x00"
    )
    blob = b"".join(extensions)
    body += len(blob).to_bytes(2, "big") + blob
    return b"\x01" + len(body).to_bytes(3, "big") + body


# --- real handshakes: Python's ssl module over memory BIOs ---------------------------------------


@dataclass
class Session:
    segments: list[Segment]  # wire order: each side's output as it was produced
    cipher: tuple[str, str, int]
    version: str
    tls_session: ssl.SSLSession | None


def make_cert(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, SNI),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Test"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(SNI),
                    x509.DNSName("*.example.org"),
                    x509.IPAddress(ipaddress.ip_address("198.51.100.20")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    return make_cert(tmp_path_factory.mktemp("tls"))


def contexts(
    cert_files: tuple[Path, Path, bytes], server_max: ssl.TLSVersion
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert_path, key_path, _der = cert_files
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    server.maximum_version = server_max
    server.set_alpn_protocols(["h2", "http/1.1"])
    if server_max == ssl.TLSVersion.TLSv1_2:
        server.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_alpn_protocols(["h2", "http/1.1"])
    return server, client


def converse(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    payload: bytes = b"x" * 3000,
    session: ssl.SSLSession | None = None,
) -> Session:
    """Handshake + one upload between two SSLObjects, recording what each side put on the wire."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=SNI, session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    segments: list[Segment] = []

    def pump() -> None:
        for direction, src, dst in ((C, c_out, s_in), (S, s_out, c_in)):
            data = src.read()
            if data:
                segments.append((direction, data))
                dst.write(data)

    done = [False, False]
    for _ in range(20):
        for i, obj in enumerate((client, server)):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done):
            break
    assert all(done)
    client.write(payload)
    pump()
    received = b""
    while len(received) < len(payload):
        received += server.read(65536)
    server.write(b"ok")
    pump()
    assert client.read(2) == b"ok"  # also consumes TLS 1.3 session tickets
    pump()
    cipher = client.cipher()
    version = client.version()
    assert cipher is not None and version is not None
    return Session(segments, cipher, version, client.session)


@pytest.fixture(scope="module")
def tls12(cert_files: tuple[Path, Path, bytes]) -> Session:
    server, client = contexts(cert_files, ssl.TLSVersion.TLSv1_2)
    return converse(server, client)


@pytest.fixture(scope="module")
def tls13(cert_files: tuple[Path, Path, bytes]) -> Session:
    server, client = contexts(cert_files, ssl.TLSVersion.TLSv1_3)
    return converse(server, client)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_real_handshake_same_events_however_split(
    version: str, tls12: Session, tls13: Session
) -> None:
    session = tls12 if version == "1.2" else tls13
    reference = assert_same_events(run, session.segments, seeds=range(5))
    assert [type(e) for e in reference] == [TlsHandshake, Opaque]


def test_real_tls12(tls12: Session, cert_files: tuple[Path, Path, bytes]) -> None:
    hs = handshake(run(tls12.segments))
    assert tls12.version == "TLSv1.2"
    assert hs.sni == SNI
    assert hs.alpn == ["h2", "http/1.1"]
    assert hs.client_version == "TLSv1.3"  # the client offered 1.3, the server capped at 1.2
    assert hs.version == "TLSv1.2"
    assert tls12.cipher[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # OpenSSL's name for 0xc02b
    assert hs.cipher_suite == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert hs.resumed is False
    assert hs.ech is False
    assert hs.ja3s is not None and hs.ja3s.startswith("771,49195,")
    assert hs.ja3s_hash == hashlib.md5(hs.ja3s.encode()).hexdigest()
    assert hs.ja4.startswith("t13d") and hs.ja4[8:10] == "h2"
    assert int(hs.ja4[4:6]) == hs.client_ciphers
    assert hs.ja3.split(",")[1].count("-") + 1 == hs.client_ciphers
    # The certificate the server sent, compared with what `cryptography` generated.
    _cert, _key, der = cert_files
    [leaf] = hs.certificates
    assert leaf == {
        "subject": f"O=Sluice Test,CN={SNI}",
        "issuer": f"O=Sluice Test,CN={SNI}",
        "not_before": "2025-01-02T03:04:05Z",
        "not_after": "2035-01-02T03:04:05Z",
        "sans": [SNI, "*.example.org", "198.51.100.20"],
        "serial": "1234abcd",
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def test_real_tls13(tls13: Session) -> None:
    hs = handshake(run(tls13.segments))
    assert tls13.version == "TLSv1.3"
    assert (hs.sni, hs.alpn, hs.client_version, hs.version) == (
        SNI,
        ["h2", "http/1.1"],
        "TLSv1.3",
        "TLSv1.3",
    )
    assert hs.cipher_suite == tls13.cipher[0]  # OpenSSL names TLS 1.3 suites as IANA does
    assert hs.certificates == []  # encrypted in TLS 1.3
    assert hs.resumed is False
    assert hs.ja3s is not None and hs.ja3s.startswith("771,")  # legacy_version stays 1.2


def test_tls13_handshake_is_reported_at_the_server_hello(tls13: Session) -> None:
    parser = TlsParser()
    (_, client_first), (_, server_first) = tls13.segments[:2]
    assert parser.feed(C, client_first, TS) == []
    events = parser.feed(S, server_first, TS)
    assert [type(e) for e in events] == [TlsHandshake, Opaque]
    assert parser.feed(C, b"\x17\x03\x03\x00\x01x", TS) == []  # afterwards: only counted


def test_tls12_resumption(cert_files: tuple[Path, Path, bytes], tls12: Session) -> None:
    server, client = contexts(cert_files, ssl.TLSVersion.TLSv1_2)
    first = converse(server, client)
    second = converse(server, client, session=first.tls_session)
    hs = handshake(run(second.segments))
    assert hs.resumed is True
    assert hs.certificates == []  # an abbreviated handshake sends none


def test_tls13_resumption(cert_files: tuple[Path, Path, bytes]) -> None:
    server, client = contexts(cert_files, ssl.TLSVersion.TLSv1_3)
    first = converse(server, client)
    second = converse(server, client, session=first.tls_session)
    assert handshake(run(second.segments)).resumed is True


def test_hello_retry_request(cert_files: tuple[Path, Path, bytes]) -> None:
    """Server insists on another key share: HRR + compatibility CCS from both sides, a second
    ClientHello, then the real ServerHello (RFC 8446 section 4.1.4, appendix D.4)."""
    server, client = contexts(cert_files, ssl.TLSVersion.TLSv1_3)
    server.set_ecdh_curve("secp384r1")  # the client's first key share is X25519
    session = converse(server, client)
    hrr_random = hashlib.sha256(b"HelloRetryRequest").digest()
    (first_type, first_payload), (ccs_type, _) = records_of(session.segments[1][1])[:2]
    assert (first_type, first_payload[6:38], ccs_type) == (22, hrr_random, 20)
    reference = assert_same_events(run, session.segments, seeds=range(5))
    assert [type(e) for e in reference] == [TlsHandshake, Opaque]
    hs = handshake(reference)
    assert (hs.version, hs.sni, hs.cipher_suite) == ("TLSv1.3", SNI, session.cipher[0])
    assert not kinds(reference)


def test_hello_split_over_many_records(tls12: Session) -> None:
    reference = run(tls12.segments)
    (_, client_first), *rest = tls12.segments
    message = hello_message(client_first)
    for size in (1, 7, 100):
        segments = [(C, reframe(message, size)), *rest]
        assert run(segments) == reference
        assert run(segments, "random", seed=size) == reference


def test_handshake_messages_share_one_record(tls12: Session) -> None:
    """The server's first flight as ONE record holding all of its messages."""
    reference = run(tls12.segments)
    direction, server_flight = tls12.segments[1]
    assert direction is S
    merged = b"".join(p for t, p in records_of(server_flight) if t == 22)
    segments = [tls12.segments[0], (S, record(22, merged)), *tls12.segments[2:]]
    assert run(segments) == reference


# --- published fingerprint vectors --------------------------------------------------------------

# Chrome ClientHello from CyberChef's JA4 operation tests. Its JA4 is the worked example of the
# JA4 specification (FoxIO-LLC/ja4 technical_details/JA4.md), whose raw form lists exactly these
# ciphers, extensions and signature algorithms.
JA4_CHROME_HEX = (
    "1603010200010001fc0303b2c03e7ba990ef540c316a665d4d925f8e9079ac4b15687e587dc99016e75a6c20d0b009"
    "9243c9296a0c84153ea4ada7d87ad017f4211c2ea1350b0b3cc5514d5f00205a5a130113021303c02bc02fc02cc030"
    "cca9cca8c013c014009c009d002f003501000193fafa000000000024002200001f636f6e74656e742d6175746f6669"
    "6c6c2e676f6f676c65617069732e636f6d0033002b00293a3a000100001d0020fb2cd8ef3d605b96ab03119ec4f30a"
    "6e2088cb1af86c41a81feace8706068c50000d001200100403080404010503080505010806060100230000000b0002"
    "0100ff01000100000a000a00083a3a001d00170018001b000302000244690005000302683200120000002d00020101"
    "0010000e000c02683208687474702f312e31000500050100000000002b0007060a0a03040303001700001a1a000100"
    "001500b8" + "00" * 184
)
JA4_CHROME = "t13d1516h2_8daaf6152771_e5627efa2ab1"

# Firefox ClientHello body (from legacy_version on) of jabedude/ja3-rs tests/test.pcap, with
# the JA3 published for it there (and reused as a known value by s2n-tls's JA3 tests).
JA3_FIREFOX_BODY_HEX = (
    "030390e8cceee570a2a12f6b69d266960fcf20d5326ec4b28cc7bd0a06c2a514fc3420af72bf3999fb2070c310830c"
    "eefbfa72cc5da899b4c553d63da0537a5cbcf50b001ec02bc02fcca9cca8c02cc030c00ac009c013c0140033003900"
    "2f0035000a0100008500000023002100001e696e636f6d696e672e74656c656d657472792e6d6f7a696c6c612e6f72"
    "6700170000ff01000100000a000a0008001d001700180019000b00020100002300000010000e000c02683208687474"
    "702f312e31000500050100000000000d0018001604030503060308040805080604010501060102030201001c000240"
    "00"
)
JA3_FIREFOX = (
    "771,49195-49199-52393-52392-49196-49200-49162-49161-49171-49172-51-57-47-53-10,"
    "0-23-65281-10-11-35-16-5-13-28,29-23-24-25,0"
)
JA3_FIREFOX_HASH = "839bbe3ed07fed922ded5aaf714d6842"

# TLS 1.2 ClientHello and ServerHello records with their JA3 / JA3S strings (CyberChef's JA3 and
# JA3S operation tests).
JA3_TLS12_HEX = (
    "1603010102010000fe0303543dd3283283692d85f9416b5ccc65d2aafca45c6530b3c6eafbf6d371b6a015000094c0"
    "30c02cc028c024c014c00a00a3009f006b006a0039003800880087c032c02ec02ac026c00fc005009d003d00350084"
    "c012c00800160013c00dc003000ac02fc02bc027c023c013c00900a2009e0067004000330032009a009900450044c0"
    "31c02dc029c025c00ec004009c003c002f009600410007c011c007c00cc00200050004001500120009001400110008"
    "0006000300ff01000041000b000403000102000a000600040018001700230000000d00220020060106020603050105"
    "0205030401040204030301030203030201020202030101000f000101"
)
JA3_TLS12 = (
    "771,49200-49196-49192-49188-49172-49162-163-159-107-106-57-56-136-135-49202-49198-49194-49190-"
    "49167-49157-157-61-53-132-49170-49160-22-19-49165-49155-10-49199-49195-49191-49187-49171-49161-"
    "162-158-103-64-51-50-154-153-69-68-49201-49197-49193-49189-49166-49156-156-60-47-150-65-7-"
    "49169-49159-49164-49154-5-4-21-18-9-20-17-8-6-3-255,11-10-35-13-15,24-23,0-1-2"
)
JA3S_TLS12_HEX = (
    "160303003d020000390303543dd328b38b445686739d58fab733fa23838f575e0e5ad9a1b9baace6cc3b4100c02f00"
    "0011ff01000100000b00040300010200230000"
)
JA3S_TLS12 = "771,49199,65281-11-35"


def test_published_ja4_vector() -> None:
    hs = handshake(run([(C, bytes.fromhex(JA4_CHROME_HEX))]))
    assert hs.ja4 == JA4_CHROME
    assert hs.sni == "content-autofill.googleapis.com"
    assert hs.alpn == ["h2", "http/1.1"]
    assert hs.client_version == "TLSv1.3"
    assert hs.client_ciphers == 15  # the GREASE suite 0x5a5a is not counted
    assert hs.version is None and hs.resumed is None  # no ServerHello in the sample


def test_published_ja3_vectors() -> None:
    body = bytes.fromhex(JA3_FIREFOX_BODY_HEX)
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    hs = handshake(run([(C, record(22, message, b"\x03\x01"))]))
    assert hs.ja3 == JA3_FIREFOX
    assert hs.ja3_hash == JA3_FIREFOX_HASH
    assert hs.sni == "incoming.telemetry.mozilla.org"

    events = run([(C, bytes.fromhex(JA3_TLS12_HEX)), (S, bytes.fromhex(JA3S_TLS12_HEX))])
    hs = handshake(events)
    assert hs.ja3 == JA3_TLS12
    assert hs.ja3_hash == hashlib.md5(JA3_TLS12.encode()).hexdigest()
    assert hs.ja3s == JA3S_TLS12
    assert hs.ja3s_hash == hashlib.md5(JA3S_TLS12.encode()).hexdigest()
    assert (hs.version, hs.cipher_suite) == ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    assert hs.sni is None and hs.ja4.startswith("t12i")  # no SNI: "i"; no ALPN: "00"
    assert hs.ja4[8:10] == "00"


@pytest.mark.parametrize(
    ("alpn", "expected"),
    [  # JA4.md "ALPN Extension Value", including its hex examples
        ([b"h2"], "h2"),
        ([b"http/1.1", b"h2"], "h1"),
        ([b"h"], "hh"),
        ([b""], "00"),
        ([b"\xab"], "ab"),
        ([b"\xab\xcd"], "ad"),
        ([b"\x30\xab"], "3b"),
        ([b"\x30\x31\xab\xcd"], "3d"),
        ([b"\x30\xab\xcd\x31"], "01"),
    ],
)
def test_ja4_alpn_rules(alpn: list[bytes], expected: str) -> None:
    message = client_hello([0x1301], [alpn_ext(alpn)])
    assert handshake(run([(C, record(22, message))])).ja4[8:10] == expected


def test_ja4_empty_lists_and_grease_everywhere() -> None:
    message = client_hello(
        [0x0A0A],
        [
            ext(0x1A1A, b""),
            ext(0x000D, u16s([0x2A2A, 0x0403])),
            ext(0x002B, u16s([0x3A3A, 0x0304, 0x0303], len_size=1)),
            ext(0xFE0D, b"\x00"),
        ],
    )
    hs = handshake(run([(C, record(22, message))]))
    assert hs.client_ciphers == 0
    assert hs.ja4.startswith("t13i000300_000000000000_")
    # extensions 000d,002b,fe0d then the GREASE-free signature algorithms
    assert hs.ja4.endswith(hashlib.sha256(b"000d,002b,fe0d_0403").hexdigest()[:12])
    assert hs.ja3 == "771,,13-43-65037,,"
    assert hs.ech is True


def test_grease_values() -> None:
    greases = [v for v in range(0x10000) if is_grease(v)]
    assert greases == [0x0A0A + 0x1010 * i for i in range(16)]


# --- detection ----------------------------------------------------------------------------------


def test_detect(tls12: Session) -> None:
    client_first, server_first = tls12.segments[0][1], tls12.segments[1][1]
    assert detect(C, client_first) is True
    assert detect(S, client_first) is False
    assert detect(S, server_first) is True
    assert detect(C, server_first) is False
    for n in range(6):
        assert detect(C, client_first[:n]) is None
    assert detect(C, b"GET / HTTP/1.1\r\n") is False
    assert detect(C, b"\x16\x03\x07\x00\x10\x01") is False
    assert detect(C, b"\x16\x03\x01\x00\x00\x01") is False
    assert detect(C, b"\x17\x03\x03\x00\x10\x01") is False


# --- damage: truncation, garbage, caps, gaps ----------------------------------------------------


def test_truncated_client_hello_at_every_length(tls13: Session) -> None:
    client_first = tls13.segments[0][1]
    message = hello_message(client_first)
    stream = record(22, message, b"\x03\x01")
    for n in range(1, len(stream)):
        parser = TlsParser()
        assert parser.feed(C, stream[:n], TS) == []  # waiting for the rest
        events = parser.eof(C, TS) + parser.eof(S, TS)
        assert kinds(events) == ["tls_truncated_hello"], n
        assert not of(events, TlsHandshake)


def test_client_hello_cut_inside_with_consistent_framing(tls13: Session) -> None:
    """A record and message header that agree, but a body cut anywhere: anomaly, never a crash."""
    body = hello_message(tls13.segments[0][1])[4:]
    session_id_end = 2 + 32 + 1 + body[34]
    ciphers_end = session_id_end + 2 + int.from_bytes(body[session_id_end : session_id_end + 2])
    no_extensions = ciphers_end + 1 + body[ciphers_end]  # RFC 5246 7.4.1.2: a valid old hello
    for n in range(len(body)):
        message = b"\x01" + n.to_bytes(3, "big") + body[:n]
        events = run([(C, record(22, message))])
        found = set(kinds(events))
        if n == no_extensions:
            assert not found and handshake(events).ja3.endswith(",,,"), n
        else:
            assert found & {"tls_bad_handshake", "tls_bad_extension"}, n
            assert found <= {"tls_bad_handshake", "tls_bad_extension"}


def test_garbage_record_is_a_violation() -> None:
    parser = TlsParser()
    with pytest.raises(TlsViolation) as info:
        parser.feed(C, b"GET / HTTP/1.1\r\n\r\n", TS)
    assert info.value.reason == "tls_bad_record"
    assert parser.feed(C, b"more", TS) == []  # detached for good


def test_violation_carries_what_was_seen(tls12: Session) -> None:
    parser = TlsParser()
    parser.feed(C, tls12.segments[0][1], TS)
    with pytest.raises(TlsViolation) as info:
        parser.feed(S, b"\x99\x03\x03\x00\x01x", TS)
    assert handshake(info.value.events).sni == SNI


def test_gap_before_the_end_of_the_handshake(tls12: Session) -> None:
    parser = TlsParser()
    parser.feed(C, tls12.segments[0][1], TS)
    with pytest.raises(TlsViolation) as info:
        parser.gap(S, 100, TS)
    assert info.value.reason == "tls_gap_in_handshake"
    assert handshake(info.value.events).sni == SNI


def test_gap_in_an_encrypted_side_does_not_matter(tls12: Session) -> None:
    """TLS 1.2: after the client's CCS its bytes are encrypted; a hole there changes nothing."""
    reference = run(tls12.segments)
    parser = TlsParser()
    events: list[object] = []
    for direction, data in tls12.segments:
        events += parser.feed(direction, data, TS)
        if direction is C and any(t == 20 for t, _p in records_of(data)):
            events += parser.gap(C, 50, TS)
    events += parser.eof(C, TS) + parser.eof(S, TS)
    assert events == reference


def test_oversized_record_is_noted_and_read() -> None:
    message = client_hello([0x1301], [sni_ext(b"big.example"), ext(0x0015, bytes(20000))])
    events = run([(C, record(22, message))])
    assert kinds(events) == ["tls_record_too_long"]
    assert handshake(events).sni == "big.example"


def test_oversized_handshake_message_is_skipped_unbuffered() -> None:
    caps = TlsCaps(max_hello=1000)
    big = client_hello([0x1301], [ext(0x0015, bytes(5000))])
    parser = TlsParser(caps)
    events = parser.feed(C, reframe(big, 512), TS)
    assert kinds(events) == ["tls_handshake_too_long"]
    assert len(parser._sides[C].hs) == 0  # nothing of it held
    # The next message on the same stream is read normally.
    small = client_hello([0x1301], [sni_ext(b"after.example")])
    events = parser.feed(C, record(22, small), TS) + parser.eof(C, TS) + parser.eof(S, TS)
    assert handshake(events).sni == "after.example"


def test_certificate_garbage(tls12: Session) -> None:
    """A Certificate whose entry is not DER: anomaly, the entry keeps its sha256."""
    junk = b"not a certificate"
    entry = len(junk).to_bytes(3, "big") + junk
    cert_msg = b"\x0b" + (len(entry) + 3).to_bytes(3, "big") + (len(entry)).to_bytes(3, "big")
    segments = [
        tls12.segments[0],
        (S, bytes.fromhex(JA3S_TLS12_HEX) + record(22, cert_msg + entry)),
    ]
    events = run(segments)
    assert "tls_cert_parse_error" in kinds(events)
    [cert] = handshake(events).certificates
    assert cert["sha256"] == hashlib.sha256(junk).hexdigest() and cert["subject"] is None


def test_hello_from_the_wrong_side() -> None:
    message = client_hello([0x1301], [])
    events = run([(S, record(22, message))])
    assert kinds(events) == ["tls_unexpected_message"]
    assert not of(events, TlsHandshake)


def test_application_data_ends_the_handshake_one_sided(tls13: Session) -> None:
    """Only the client side captured: the first application_data record ends the handshake."""
    client_only = [(d, b) for d, b in tls13.segments if d is C]
    events = run(client_only, eof=False)
    assert [type(e) for e in events] == [TlsHandshake, Opaque]
    assert handshake(events).version is None


@given(
    st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=300)), max_size=6),
    st.sampled_from(
        [b"", b"\x16\x03\x01", b"\x16\x03\x03\x00\x40\x01", b"\x16\x03\x01\x01\x00\x02"]
    ),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_arbitrary_bytes_raise_only_violations(segments: list[Segment], prefix: bytes) -> None:
    parser = TlsParser()
    try:
        for i, (direction, data) in enumerate(segments):
            parser.feed(direction, (prefix if i == 0 else b"") + data, TS)
        parser.eof(C, TS)
        parser.eof(S, TS)
    except ProtocolViolation as exc:
        assert exc.reason in KINDS


@given(st.binary(min_size=1, max_size=400), st.integers(0, 2**16))
@settings(max_examples=300, deadline=None)
def test_arbitrary_hello_bodies_never_raise(body: bytes, seed: int) -> None:
    """Any body inside well-framed handshake records is read without an exception."""
    message = bytes([1 + seed % 2]) + len(body).to_bytes(3, "big") + body
    direction = C if seed % 2 == 0 else S
    events = run([(direction, reframe(message, 1 + seed % 97, b"\x03\x03"))], "random", seed)
    assert all(k in KINDS for k in kinds(events))


def test_every_emitted_kind_is_registered() -> None:
    import sensor.protocols.tls as module

    source = Path(module.__file__).read_text()
    emitted = set(re.findall(r'"(tls_[a-z_]+)"', source))
    assert emitted and emitted <= set(KINDS), emitted - set(KINDS)
    assert all(KINDS[k][0] == "app" for k in emitted)


def test_a_nonconformant_certificate_is_an_anomaly_not_a_library_warning(
    tls12: Session, tmp_path: Path
) -> None:
    """A negative serial number (seen in the wild, RFC 5280 forbids it): `cryptography` warns
    on stderr; Sluice notes it as an anomaly of that flow and still describes the cert."""
    _, _, der = make_cert(tmp_path)
    serial = b"\x02\x04\x12\x34\xab\xcd"  # INTEGER 0x1234ABCD
    assert der.count(serial) == 1
    bad = der.replace(serial, b"\x02\x04\x92\x34\xab\xcd")  # the sign bit set: negative
    entry = len(bad).to_bytes(3, "big") + bad
    cert_msg = b"\x0b" + (len(entry) + 3).to_bytes(3, "big") + (len(entry)).to_bytes(3, "big")
    segments = [
        tls12.segments[0],
        (S, bytes.fromhex(JA3S_TLS12_HEX) + record(22, cert_msg + entry)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        events = run(segments)
    assert kinds(events).count("tls_cert_nonconformant") == 1
    [cert] = handshake(events).certificates
    assert cert["subject"] is not None and cert["serial"].startswith("-")
