"""TLS handshake metadata for both directions of one TCP connection (protocols stage).

In: reassembled bytes of the client->server and server->client streams, gaps and eofs (sans-IO,
see base.py). Out: at most one `TlsHandshake` (what the cleartext handshake revealed: SNI, ALPN,
versions, cipher, JA3/JA3S/JA4, the server's certificate chain), then `Opaque` once the
rest of the connection is opaque, plus `Anomaly` events. Nothing is decrypted.

Theory of operation
-------------------
Each direction has a `_Side` with two layers, both streaming:

    record layer (RFC 8446 section 5.1, RFC 5246 section 6.2): a 5-byte header is collected
        (type, legacy version 3.x, length), then the payload is consumed as it arrives; only
        handshake payload is kept, in the handshake buffer. Records are never buffered whole,
        so an oversized record is an anomaly, not a memory problem.
    handshake layer (RFC 8446 section 4): messages (type, 24-bit length, body) are cut from the
        concatenated handshake payloads, so one message may span many records and one record
        may hold many messages. A message is buffered up to its cap (64 KiB, 256 KiB for
        Certificate); a longer one is skipped without buffering.

The connection as a whole walks:

    HELLO --ClientHello (TO_SERVER), ServerHello (TO_CLIENT), Certificate (TO_CLIENT)-->
      TLS 1.3 ServerHello (supported_versions 0x0304, not a HelloRetryRequest) ---------> DONE
      TLS <= 1.2: ChangeCipherSpec seen from both sides --------------------------------> DONE
      application_data record from either side -----------------------------------------> DONE
      eof of both sides: TlsHandshake with what was seen (no Opaque) -------------> DONE
      gap before DONE: violation tls_gap_in_handshake, carrying TlsHandshake if any hello
    DONE: TlsHandshake + Opaque were emitted; all further input is ignored.

After a side's ChangeCipherSpec its handshake records are encrypted (Finished) and skipped. In
TLS 1.3 middlebox-compatibility mode (RFC 8446 appendix D.4) a ChangeCipherSpec may precede the
real ServerHello after a HelloRetryRequest; it is ignored until that ServerHello arrives.

Fingerprints: JA3/JA3S follow github.com/salesforce/ja3 (decimal values, GREASE per RFC 8701
removed from the client's lists), JA4 follows github.com/FoxIO-LLC/ja4 technical_details/JA4.md
(TLS over TCP, so the first character is always "t").

Two failure channels (STYLE.md habit 6): odd input is an `Anomaly`; input after which nothing
more can be read raises `TlsViolation` whose `events` carry what was known.

Anomaly kinds (stable; "violation" = raised as ProtocolViolation.reason, parser detaches)
-----------------------------------------------------------------------------------------
| kind                      | channel   | meaning                                               |
|---------------------------|-----------|-------------------------------------------------------|
| tls_bad_record            | violation | a record header that is not TLS (type or version)     |
| tls_gap_in_handshake      | violation | capture gap before the handshake ended                |
| tls_record_too_long       | anomaly   | record longer than 2^14 + 2048; its payload still read |
| tls_handshake_too_long    | anomaly   | handshake message over its cap; skipped unparsed      |
| tls_bad_handshake         | anomaly   | malformed hello/Certificate body; that message ignored |
| tls_bad_extension         | anomaly   | malformed hello extension body; that extension ignored |
| tls_unexpected_message    | anomaly   | a hello from the wrong side, or a repeated hello      |
| tls_truncated_hello       | anomaly   | the stream ended inside (or before) a hello           |
| tls_truncated_handshake   | anomaly   | the stream ended inside another message or a record   |
| tls_cert_parse_error      | anomaly   | a certificate is not X.509 DER; only its sha256 kept  |
| tls_cert_chain_too_long   | anomaly   | more certificates than the cap; the rest not parsed   |
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography import x509

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction, NamesServer, Opaque, ProtocolViolation

__all__ = [
    "TlsCaps",
    "TlsEvent",
    "TlsHandshake",
    "TlsParser",
    "TlsViolation",
    "detect",
    "is_grease",
]

# --- events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class TlsHandshake(NamesServer):
    sni: str | None  # client offer (server_name host_name)
    alpn: list[str]  # client offer, in order
    client_version: str  # highest version offered (supported_versions, else legacy_version)
    version: str | None  # negotiated; None if no ServerHello was seen
    cipher_suite: str | None  # negotiated, IANA name or "0x1301"
    client_ciphers: int  # offered, GREASE excluded
    ja3: str
    ja3_hash: str
    ja4: str
    ja3s: str | None
    ja3s_hash: str | None
    ech: bool  # encrypted_client_hello (0xfe0d) offered
    resumed: bool | None  # session resumption evident; None without a ServerHello
    certificates: list[dict[str, Any]]  # TLS <= 1.2 server chain, leaf first
    ts: float

    name_source: ClassVar[str] = "sni"

    def server_name(self) -> str | None:
        return self.sni or None

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        return (("dns-name", self.sni, "sni"),) if self.sni else ()


# Everything TlsParser returns: the handshake, then Opaque("encrypted") once the rest of the
# connection is encrypted (the flow is only counted from there on).
TlsEvent = TlsHandshake | Opaque | Anomaly


@dataclass(frozen=True, slots=True)
class TlsCaps:
    max_hello: int = 65536  # any handshake message but Certificate
    max_certificate_msg: int = 262144  # Certificate message (a chain of a few DER certs)
    max_certificates: int = 16  # certificates parsed per chain
    max_record: int = 16384 + 2048  # RFC 5246 section 6.2.3: TLSCiphertext.length limit


class TlsViolation(ProtocolViolation):
    """The TLS parser's violation (carries `events`, see ProtocolViolation)."""


# --- constants ----------------------------------------------------------------------------------

_DEFAULT_CAPS = TlsCaps()

# Record content types (RFC 8446 section 5.1; 24 = heartbeat, RFC 6520).
_CCS, _ALERT, _HANDSHAKE, _APP_DATA, _HEARTBEAT = 20, 21, 22, 23, 24
_RECORD_TYPES = frozenset((_CCS, _ALERT, _HANDSHAKE, _APP_DATA, _HEARTBEAT))
_HEADER = 5

# Handshake message types (RFC 8446 section 4).
_CLIENT_HELLO, _SERVER_HELLO, _CERTIFICATE, _SERVER_HELLO_DONE = 1, 2, 11, 14
_HELLOS = (_CLIENT_HELLO, _SERVER_HELLO)

# Extension types.
_EXT_SNI, _EXT_GROUPS, _EXT_POINT_FORMATS, _EXT_SIG_ALGS = 0x0000, 0x000A, 0x000B, 0x000D
_EXT_ALPN, _EXT_PSK, _EXT_VERSIONS, _EXT_ECH = 0x0010, 0x0029, 0x002B, 0xFE0D

# RFC 8446 section 4.1.3: a ServerHello with this random is a HelloRetryRequest.
_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_TLS13 = 0x0304
_VERSION_NAMES = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}
_JA4_VERSIONS = {
    0x0002: "s2",
    0x0300: "s3",
    0x0301: "10",
    0x0302: "11",
    0x0303: "12",
    0x0304: "13",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
# The suites real clients negotiate today (IANA TLS Cipher Suites registry); others print as hex.
_CIPHER_NAMES = {
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def _version_name(value: int) -> str:
    return _VERSION_NAMES.get(value, f"0x{value:04x}")


def _cipher_name(value: int) -> str:
    return _CIPHER_NAMES.get(value, f"0x{value:04x}")


# --- bounded reading of one message body --------------------------------------------------------


class _Short(Exception):
    """A length field points past the end of its enclosing structure."""


class _Cursor:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise _Short
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, len_size: int) -> _Cursor:
        """A length-prefixed sub-structure (RFC 8446 section 3.4) as its own cursor."""
        n = self.uint(len_size)
        if n > self.end - self.pos:
            raise _Short
        sub = _Cursor(self.data, self.pos, self.pos + n)
        self.pos += n
        return sub

    def take_all(self) -> bytes:
        return self.take(self.end - self.pos)

    def u16_list(self) -> list[int]:
        if self.left() % 2:
            raise _Short
        return [self.uint(2) for _ in range(self.left() // 2)]


# --- parsed hellos ------------------------------------------------------------------------------


@dataclass(slots=True)
class _ClientHello:
    legacy_version: int
    ciphers: list[int]
    extensions: list[int]  # types in wire order, GREASE included
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    sig_algs: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    sni: str | None = None
    alpn: list[bytes] = field(default_factory=list)
    session_id: bytes = b""


@dataclass(slots=True)
class _ServerHello:
    legacy_version: int
    cipher: int
    extensions: list[int]
    session_id: bytes
    selected_version: int | None = None
    psk: bool = False

    @property
    def version(self) -> int:
        return self.selected_version if self.selected_version is not None else self.legacy_version


def _parse_extensions(
    cur: _Cursor, on_ext: Callable[[int, _Cursor], None], out: list[TlsEvent], ts: float, who: str
) -> list[int]:
    """Walk an extensions block; `on_ext(type, cursor)` reads one body. Returns the types."""
    types: list[int] = []
    if cur.left() == 0:  # RFC 5246 section 7.4.1.2: the block may be absent entirely
        return types
    block = cur.vector(2)
    while block.left():
        ext_type = block.uint(2)
        body = block.vector(2)
        types.append(ext_type)
        try:
            on_ext(ext_type, body)
        except _Short:
            out.append(Anomaly("tls_bad_extension", f"{who} extension 0x{ext_type:04x}", ts))
    return types


def _parse_client_hello(body: bytes, out: list[TlsEvent], ts: float) -> _ClientHello:
    cur = _Cursor(body)
    legacy_version = cur.uint(2)
    cur.take(32)  # random
    session_id = cur.vector(1)
    ch = _ClientHello(
        legacy_version=legacy_version,
        ciphers=cur.vector(2).u16_list(),
        extensions=[],
        session_id=session_id.take_all(),
    )
    cur.vector(1)  # legacy_compression_methods

    def on_ext(ext_type: int, ext: _Cursor) -> None:
        if ext_type == _EXT_SNI:
            names = ext.vector(2)
            while names.left():
                name_type = names.uint(1)
                name = names.vector(2)
                if name_type == 0 and ch.sni is None:  # host_name (RFC 6066 section 3)
                    ch.sni = name.take_all().decode("ascii", "replace")
        elif ext_type == _EXT_ALPN:
            protocols = ext.vector(2)
            while protocols.left():
                proto = protocols.vector(1)
                ch.alpn.append(proto.take_all())
        elif ext_type == _EXT_GROUPS:
            ch.groups = ext.vector(2).u16_list()
        elif ext_type == _EXT_POINT_FORMATS:
            formats = ext.vector(1)
            ch.point_formats = list(formats.take_all())
        elif ext_type == _EXT_SIG_ALGS:
            ch.sig_algs = ext.vector(2).u16_list()
        elif ext_type == _EXT_VERSIONS:
            ch.versions = ext.vector(1).u16_list()

    ch.extensions = _parse_extensions(cur, on_ext, out, ts, "ClientHello")
    return ch


def _parse_server_hello(body: bytes, out: list[TlsEvent], ts: float) -> tuple[_ServerHello, bytes]:
    """The ServerHello and its random (to tell a HelloRetryRequest)."""
    cur = _Cursor(body)
    legacy_version = cur.uint(2)
    random = cur.take(32)
    session_id = cur.vector(1)
    sh = _ServerHello(
        legacy_version=legacy_version,
        session_id=session_id.take_all(),
        cipher=cur.uint(2),
        extensions=[],
    )
    cur.uint(1)  # legacy_compression_method

    def on_ext(ext_type: int, ext: _Cursor) -> None:
        if ext_type == _EXT_VERSIONS:
            sh.selected_version = ext.uint(2)
        elif ext_type == _EXT_PSK:
            sh.psk = True

    sh.extensions = _parse_extensions(cur, on_ext, out, ts, "ServerHello")
    return sh, random


# --- fingerprints -------------------------------------------------------------------------------


def _dash(values: list[int]) -> str:
    return "-".join(str(v) for v in values)


def _ja3_string(ch: _ClientHello) -> str:
    """SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats (GREASE out)."""
    return ",".join(
        (
            str(ch.legacy_version),
            _dash([c for c in ch.ciphers if not is_grease(c)]),
            _dash([e for e in ch.extensions if not is_grease(e)]),
            _dash([g for g in ch.groups if not is_grease(g)]),
            _dash(ch.point_formats),
        )
    )


def _ja3s_string(sh: _ServerHello) -> str:
    return f"{sh.legacy_version},{sh.cipher},{_dash(sh.extensions)}"


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(alpn: list[bytes]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    if _alnum(first[0]) and _alnum(first[-1]):
        return chr(first[0]) + chr(first[-1])
    text = first.hex()  # a non-alphanumeric end: first and last hex digit instead
    return text[0] + text[-1]


def _ja4(ch: _ClientHello) -> str:
    """JA4 (TLS over TCP) of a parsed ClientHello."""
    versions = [v for v in ch.versions if not is_grease(v)]
    version = max(versions) if versions else ch.legacy_version
    ciphers = [c for c in ch.ciphers if not is_grease(c)]
    extensions = [e for e in ch.extensions if not is_grease(e)]
    part_a = "t{}{}{:02d}{:02d}{}".format(
        _JA4_VERSIONS.get(version, "00"),
        "d" if _EXT_SNI in extensions else "i",
        min(len(ciphers), 99),
        min(len(extensions), 99),
        _ja4_alpn(ch.alpn),
    )
    part_b = _hash12(",".join(f"{c:04x}" for c in sorted(ciphers))) if ciphers else "0" * 12
    hashed = sorted(e for e in extensions if e not in (_EXT_SNI, _EXT_ALPN))
    if hashed:
        text = ",".join(f"{e:04x}" for e in hashed)
        sig_algs = [s for s in ch.sig_algs if not is_grease(s)]
        if sig_algs:
            text += "_" + ",".join(f"{s:04x}" for s in sig_algs)
        part_c = _hash12(text)
    else:
        part_c = "0" * 12
    return f"{part_a}_{part_b}_{part_c}"


# --- certificates -------------------------------------------------------------------------------


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe_cert(der: bytes) -> tuple[dict[str, Any], list[str]]:
    """Subject, issuer, validity, SANs, serial and SHA-256 of one DER certificate, and what
    `cryptography` warned about it (a negative serial, a malformed name...): facts about the
    traffic, which become anomalies instead of library warnings on stderr.

    Raises ValueError (or another exception from `cryptography`) on malformed DER."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cert = x509.load_der_x509_certificate(der)
        described = _cert_fields(cert, der)
    return described, list(dict.fromkeys(str(w.message) for w in caught))


def _cert_fields(cert: x509.Certificate, der: bytes) -> dict[str, Any]:
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        for name in ext.value:
            value = name.value
            if isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
                sans.append(str(value))
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "sans": sans,
        "serial": f"{cert.serial_number:x}",
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def _unparsed_cert(der: bytes) -> dict[str, Any]:
    return {
        "subject": None,
        "issuer": None,
        "not_before": None,
        "not_after": None,
        "sans": [],
        "serial": None,
        "sha256": hashlib.sha256(der).hexdigest(),
    }


# --- the parser ---------------------------------------------------------------------------------


class _Side:
    __slots__ = (
        "ccs",
        "direction",
        "ended",
        "hs",
        "hs_skip",
        "lost",
        "rec_header",
        "rec_left",
        "rec_type",
        "too_long_noted",
    )

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.rec_header = bytearray()  # a record header still incomplete
        self.rec_type = 0  # content type of the record being read (0: between records)
        self.rec_left = 0  # payload bytes of that record not yet consumed
        self.hs = bytearray()  # handshake bytes not yet cut into messages
        self.hs_skip = 0  # bytes of an over-cap handshake message still to drop
        self.ccs = False  # ChangeCipherSpec seen: later handshake records are encrypted
        self.lost = False  # a gap after ccs: this side's record framing is gone (harmless)
        self.ended = False
        self.too_long_noted = False


class TlsParser:
    """TLS handshake metadata over one TCP connection; see the module docstring."""

    name = "tls"

    def __init__(self, caps: TlsCaps = _DEFAULT_CAPS) -> None:
        self.caps = caps
        self._sides = (_Side(Direction.TO_SERVER), _Side(Direction.TO_CLIENT))
        self._client_hello: _ClientHello | None = None
        self._server_hello: _ServerHello | None = None
        self._hrr = False  # a HelloRetryRequest came; the real ServerHello is still to come
        self._certificates: list[dict[str, Any]] = []
        self._server_hello_done = False
        self._done = False

    # --- public API ----------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[TlsEvent]:
        out: list[TlsEvent] = []
        side = self._sides[direction]
        if self._done or side.lost or side.ended or not data:
            return out
        try:
            self._records(side, memoryview(data), ts, out)
        except TlsViolation as exc:
            self._done = True
            self._summary(ts, out)
            exc.events = out
            raise
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[TlsEvent]:
        out: list[TlsEvent] = []
        side = self._sides[direction]
        if self._done or size <= 0 or side.lost or side.ended:
            return out
        if side.ccs:
            # Only encrypted records of this side are missing; the other may still finish.
            side.lost = True
            return out
        self._done = True
        self._summary(ts, out)
        exc = TlsViolation("tls_gap_in_handshake", f"{size} bytes missing")
        exc.events = out
        raise exc

    def eof(self, direction: Direction, ts: float) -> list[TlsEvent]:
        out: list[TlsEvent] = []
        side = self._sides[direction]
        if self._done or side.ended:
            return out
        side.ended = True
        if not side.lost:
            self._note_truncation(side, ts, out)
        if all(s.ended for s in self._sides):
            self._done = True
            self._summary(ts, out)
        return out

    # --- record layer --------------------------------------------------------------------------

    def _records(self, side: _Side, data: memoryview, ts: float, out: list[TlsEvent]) -> None:
        pos, end = 0, len(data)
        while pos < end and not self._done:
            if side.rec_type == 0:
                need = _HEADER - len(side.rec_header)
                side.rec_header += data[pos : pos + need]
                pos += min(need, end - pos)
                if len(side.rec_header) == _HEADER:
                    self._record_start(side, ts, out)
                continue
            n = min(side.rec_left, end - pos)
            if side.rec_type == _HANDSHAKE and not side.ccs:
                self._handshake_bytes(side, data[pos : pos + n], ts, out)
            pos += n
            side.rec_left -= n
            if side.rec_left == 0:
                side.rec_type = 0

    def _record_start(self, side: _Side, ts: float, out: list[TlsEvent]) -> None:
        header = bytes(side.rec_header)
        side.rec_header.clear()
        rec_type, major, minor = header[0], header[1], header[2]
        length = int.from_bytes(header[3:5], "big")
        if rec_type not in _RECORD_TYPES or major != 3 or minor > 4:
            raise TlsViolation("tls_bad_record", f"header {header.hex()}")
        if length > self.caps.max_record and not side.too_long_noted:
            side.too_long_noted = True  # once per side: a stream of them is one finding
            out.append(Anomaly("tls_record_too_long", f"{length} bytes", ts))
        if rec_type == _CCS:
            self._change_cipher_spec(side, ts, out)
        elif rec_type == _APP_DATA:
            self._finish(ts, out)  # the handshake is over (or invisible): nothing more to read
            return
        side.rec_type, side.rec_left = rec_type, length
        if length == 0:
            side.rec_type = 0

    def _change_cipher_spec(self, side: _Side, ts: float, out: list[TlsEvent]) -> None:
        if self._hrr and self._server_hello is None:
            return  # TLS 1.3 compatibility-mode CCS around a HelloRetryRequest (RFC 8446 D.4)
        side.ccs = True
        if all(s.ccs for s in self._sides):
            self._finish(ts, out)

    # --- handshake layer -----------------------------------------------------------------------

    def _handshake_bytes(
        self, side: _Side, chunk: memoryview, ts: float, out: list[TlsEvent]
    ) -> None:
        if side.hs_skip:
            dropped = min(side.hs_skip, len(chunk))
            side.hs_skip -= dropped
            chunk = chunk[dropped:]
        side.hs += chunk
        while len(side.hs) >= 4 and not self._done and not side.ccs:
            msg_type = side.hs[0]
            length = int.from_bytes(side.hs[1:4], "big")
            cap = self.caps.max_certificate_msg if msg_type == _CERTIFICATE else self.caps.max_hello
            if length > cap:
                out.append(
                    Anomaly("tls_handshake_too_long", f"type {msg_type}: {length} > {cap}", ts)
                )
                side.hs_skip = length - (len(side.hs) - 4)  # >= 0: hs never outgrows a cap
                side.hs.clear()
                return
            if len(side.hs) < 4 + length:
                return
            body = bytes(side.hs[4 : 4 + length])
            del side.hs[: 4 + length]
            self._message(side, msg_type, body, ts, out)

    def _message(
        self, side: _Side, msg_type: int, body: bytes, ts: float, out: list[TlsEvent]
    ) -> None:
        from_client = side.direction is Direction.TO_SERVER
        try:
            if msg_type == _CLIENT_HELLO:
                if not from_client or (self._client_hello is not None and not self._hrr):
                    out.append(Anomaly("tls_unexpected_message", "ClientHello", ts))
                elif self._client_hello is None:  # after a HelloRetryRequest keep the first
                    self._client_hello = _parse_client_hello(body, out, ts)
            elif msg_type == _SERVER_HELLO:
                if from_client or self._server_hello is not None:
                    out.append(Anomaly("tls_unexpected_message", "ServerHello", ts))
                else:
                    self._on_server_hello(body, ts, out)
            elif msg_type == _CERTIFICATE and not from_client and not self._certificates:
                self._on_certificate(body, ts, out)
            elif msg_type == _SERVER_HELLO_DONE and not from_client:
                self._server_hello_done = True
        except _Short:
            out.append(Anomaly("tls_bad_handshake", f"message type {msg_type}", ts))

    def _on_server_hello(self, body: bytes, ts: float, out: list[TlsEvent]) -> None:
        sh, random = _parse_server_hello(body, out, ts)
        if random == _HRR_RANDOM:
            self._hrr = True
            return
        self._server_hello = sh
        if sh.version == _TLS13:
            self._finish(ts, out)  # everything after the ServerHello is encrypted

    def _on_certificate(self, body: bytes, ts: float, out: list[TlsEvent]) -> None:
        """TLS <= 1.2 Certificate (RFC 5246 section 7.4.2): a 24-bit list of 24-bit DER certs."""
        chain = _Cursor(body).vector(3)
        ders: list[bytes] = []
        while chain.left():
            ders.append(chain.vector(3).take_all())
        if len(ders) > self.caps.max_certificates:
            out.append(Anomaly("tls_cert_chain_too_long", f"{len(ders)} certificates", ts))
            ders = ders[: self.caps.max_certificates]
        for index, der in enumerate(ders):
            try:
                described, complaints = _describe_cert(der)
                self._certificates.append(described)
                out.extend(
                    Anomaly("tls_cert_nonconformant", f"#{index}: {text[:120]}", ts)
                    for text in complaints
                )
            except Exception as exc:  # any failure of the X.509 library is data, not a bug
                out.append(Anomaly("tls_cert_parse_error", f"#{index}: {type(exc).__name__}", ts))
                self._certificates.append(_unparsed_cert(der))

    # --- ending --------------------------------------------------------------------------------

    def _note_truncation(self, side: _Side, ts: float, out: list[TlsEvent]) -> None:
        if side.ccs:
            return  # whatever is cut off is encrypted
        hello_pending = (
            self._client_hello is None
            if side.direction is Direction.TO_SERVER
            else self._server_hello is None
        )
        partial = side.rec_header or side.rec_left or side.hs
        if not partial:
            return
        if (side.hs and side.hs[0] in _HELLOS) or hello_pending:
            out.append(Anomaly("tls_truncated_hello", side.direction.name, ts))
        else:
            out.append(Anomaly("tls_truncated_handshake", side.direction.name, ts))

    def _finish(self, ts: float, out: list[TlsEvent]) -> None:
        self._done = True
        self._summary(ts, out)
        out.append(Opaque("encrypted", ts))

    def _summary(self, ts: float, out: list[TlsEvent]) -> None:
        """Append the TlsHandshake of what was seen (nothing when no hello was seen at all)."""
        ch, sh = self._client_hello, self._server_hello
        if ch is None and sh is None:
            return
        if ch is not None:
            versions = [v for v in ch.versions if not is_grease(v)]
            client_version = _version_name(max(versions) if versions else ch.legacy_version)
            ja3 = _ja3_string(ch)
            ja3_hash = hashlib.md5(ja3.encode(), usedforsecurity=False).hexdigest()
            ja4 = _ja4(ch)
        else:
            client_version, ja3, ja3_hash, ja4 = "unknown", "", "", ""
        ja3s = _ja3s_string(sh) if sh is not None else None
        out.append(
            TlsHandshake(
                sni=ch.sni if ch else None,
                alpn=[p.decode("ascii", "replace") for p in ch.alpn] if ch else [],
                client_version=client_version,
                version=_version_name(sh.version) if sh else None,
                cipher_suite=_cipher_name(sh.cipher) if sh else None,
                client_ciphers=len([c for c in ch.ciphers if not is_grease(c)]) if ch else 0,
                ja3=ja3,
                ja3_hash=ja3_hash,
                ja4=ja4,
                ja3s=ja3s,
                ja3s_hash=(
                    hashlib.md5(ja3s.encode(), usedforsecurity=False).hexdigest() if ja3s else None
                ),
                ech=ch is not None and _EXT_ECH in ch.extensions,
                resumed=self._resumed(),
                certificates=list(self._certificates),
                ts=ts,
            )
        )

    def _resumed(self) -> bool | None:
        ch, sh = self._client_hello, self._server_hello
        if sh is None:
            return None
        if sh.version == _TLS13:
            return sh.psk  # RFC 8446 section 4.2.11: the server accepted a PSK
        # TLS <= 1.2: the server echoed a session id, or went to ChangeCipherSpec without the
        # full flight (no Certificate, no ServerHelloDone): an abbreviated handshake.
        if ch is not None and sh.session_id and sh.session_id == ch.session_id:
            return True
        return self._sides[Direction.TO_CLIENT].ccs and not (
            self._certificates or self._server_hello_done
        )


# --- detection ----------------------------------------------------------------------------------


def detect(direction: Direction, data: bytes) -> bool | None:
    """Is this the start of a TLS stream? A handshake record (22, 3.x) whose first message is a
    ClientHello (from the client) or ServerHello (from the server). None: too short to tell."""
    if not data:
        return None
    if data[0] != _HANDSHAKE or (len(data) > 1 and data[1] != 3):
        return False
    if len(data) > 2 and data[2] > 4:
        return False
    if len(data) < 6:
        return None
    if int.from_bytes(data[3:5], "big") == 0:
        return False
    wanted = _CLIENT_HELLO if direction is Direction.TO_SERVER else _SERVER_HELLO
    return data[5] == wanted
