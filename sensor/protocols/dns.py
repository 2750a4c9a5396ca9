"""DNS responses: which addresses a looked-up name resolved to (protocols stage).

In: the payload of one UDP datagram sent from port 53 (RFC 1035 4.2.1), whole. DNS over UDP is
one message per datagram, so this is a function, not a per-flow parser: no state between
messages, no I/O, no clock. Out: `parse_response(message)` gives one `DnsAnswer` per question
whose answer section resolves it to A (RFC 1035 3.4.1) or AAAA (RFC 3596 2.2) addresses, with
CNAMEs followed (RFC 1035 3.6.2). `DnsResponses` is the app layer of a UDP flow to port 53:
it turns the answers into `AddressName` facts, which the volume meter uses to name an upload
to one of those addresses after the name the client asked for, even when the upload itself
names nothing (SSH, FTP, plain TCP), and the client's queries into `DnsQuestion`s, whose
names are looked up as canary tokens. A malformed message raises `DnsViolation`, whose
`reason` is `dns_truncated` or `dns_malformed`; nothing else escapes.

Theory of operation
-------------------
Message (RFC 1035 4.1): a 12-byte header, QDCOUNT questions (name, type, class), then ANCOUNT
answer records (name, type, class, TTL, RDLENGTH, RDATA); the authority and additional sections
are never read (glue addresses there are not answers to the question).

* Only responses (QR=1) of a standard query (opcode 0) that succeeded (RCODE 0) with 1 to
  `MAX_QUESTIONS` questions are read; anything else (a query, NXDOMAIN, SERVFAIL, an UPDATE, a
  message with 0 or dozens of questions) gives () without being parsed further.
* Names (RFC 1035 3.1, 4.1.4): a label is a length byte (top bits 00, so at most 63 bytes) and
  its bytes; top bits 11 are a compression pointer to an earlier offset; 01 and 10 (the
  retired extended label types, RFC 6891 5) are malformed. A name's wire length is at most
  `MAX_NAME_BYTES`. A pointer must point before the start of the name piece it ends (a
  compressor only refers to what it already wrote), which rules out loops and forward
  pointers; `MAX_POINTER_HOPS` bounds the work on top of that.
* Names are returned in presentation form (RFC 1035 5.1) without the trailing dot, ASCII
  lower-cased (names compare case-insensitively, RFC 4343), bytes other than printable ASCII and
  "." or "\\" inside a label escaped as \\DDD or \\c, so the text is unambiguous.
* Answer records: at most `MAX_ANSWER_RECORDS` are read, the rest are ignored. Records of class
  IN count: A (RDLENGTH 4), AAAA (16) and CNAME (a name filling RDATA exactly); other types are
  skipped by RDLENGTH. A record that runs past the message is `dns_truncated`, unless the
  server set TC (RFC 1035 4.1.1, RFC 2181 9): then the records read completely are used.
* Resolution: from each question name (class IN) follow the CNAME records of the answer section
  (first CNAME per owner, RFC 2181 10.1; at most `MAX_CNAME_CHAIN` links, loops end the chain),
  then take the A/AAAA records owned by any name of that chain, in order, without duplicates,
  at most `MAX_ADDRESSES`. Records about names not linked to the question (a server stuffing
  extra names into a response) are ignored. The addresses are attributed to the QUESTION name:
  that is the name the client asked for and the one destination categories match on.
* TTL: the smallest of the TTLs on the path from the question to its addresses; a TTL with the
  most significant bit set counts as 0 (RFC 2181 8).

Out of scope: DNS over TCP (port 53, RFC 7766: length-prefixed messages on a stream; that is
also where a client retries a response cut with TC), DNS over TLS/HTTPS/QUIC (encrypted), mDNS
and LLMNR (other ports), address hints in SVCB/HTTPS records (RFC 9460).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sensor.anomaly import Anomaly
from sensor.decode.packet import Packet
from sensor.protocols.base import AddressName, Counted, Direction, ProtocolEvent, ProtocolViolation

# Anomaly kinds (registered in sensor/anomaly.py).
DNS_TRUNCATED = "dns_truncated"
DNS_MALFORMED = "dns_malformed"

# Caps: hostile input is the norm.
MAX_QUESTIONS = 4  # questions read in a response (RFC 9619: one in practice); more: ignored
MAX_ANSWER_RECORDS = 128  # answer records read; the rest of the section is ignored
MAX_POINTER_HOPS = 16  # compression pointers followed while reading one name
MAX_NAME_BYTES = 255  # wire length of a name, length bytes and the root's zero included (3.1)
MAX_CNAME_CHAIN = 8  # CNAME links followed from a question name
MAX_ADDRESSES = 32  # addresses reported per question

CLASS_IN = 1
TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28

_HEADER = struct.Struct("!HHHHHH")  # id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
_QUESTION_TAIL = struct.Struct("!HH")  # QTYPE, QCLASS
_RECORD_HEAD = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH
_QR = 0x8000
_TC = 0x0200
_POINTER = 0xC0
_TTL_MAX = 0x7FFFFFFF  # RFC 2181 8: a TTL with the top bit set counts as 0

# Byte -> its form inside a label of a name in presentation format (RFC 1035 5.1).
_LABEL_CHARS = tuple(
    "\\" + chr(b) if b in b".\\" else chr(b).lower() if 0x21 <= b <= 0x7E else f"\\{b:03d}"
    for b in range(256)
)


class DnsViolation(ProtocolViolation):
    """A DNS message that cannot be read; `reason` is an anomaly kind."""


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    query: str  # the name asked for: lower case, presentation form, no trailing dot
    addresses: tuple[bytes, ...]  # packed: 4 bytes (A) or 16 (AAAA); first-seen order
    ttl: int  # seconds: the smallest TTL from the question to its addresses


def parse_response(message: bytes | bytearray | memoryview) -> tuple[DnsAnswer, ...]:
    """The questions of a successful response that resolve to addresses; () for anything else
    that is well formed. Raises `DnsViolation` on a malformed or truncated message."""
    msg = message if isinstance(message, bytes) else bytes(message)
    if len(msg) < _HEADER.size:
        raise DnsViolation(DNS_TRUNCATED, f"{len(msg)}-byte message, the header needs 12")
    _id, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(msg)
    # Opcode (bits 11-14) QUERY and RCODE (bits 0-3) NOERROR, RFC 1035 4.1.1.
    if not flags & _QR or flags & 0x780F or not 0 < qdcount <= MAX_QUESTIONS:
        return ()
    end = len(msg)
    pos = _HEADER.size
    questions: list[tuple[str, int]] = []
    for _ in range(qdcount):
        name, pos = _read_name(msg, pos)
        if pos + _QUESTION_TAIL.size > end:
            raise DnsViolation(DNS_TRUNCATED, f"question ends past the message at {end}")
        _qtype, qclass = _QUESTION_TAIL.unpack_from(msg, pos)
        pos += _QUESTION_TAIL.size
        questions.append((name, qclass))
    cnames: dict[str, tuple[str, int]] = {}
    addresses: dict[str, list[tuple[bytes, int]]] = {}
    for index in range(min(ancount, MAX_ANSWER_RECORDS)):
        try:
            pos = _read_record(msg, pos, cnames, addresses)
        except DnsViolation as exc:
            if exc.reason == DNS_TRUNCATED and flags & _TC:
                break  # the server said it cut the message: what was read whole stands
            raise DnsViolation(
                exc.reason, f"answer {index + 1} of {ancount}: {exc.detail}"
            ) from None
    if not addresses:
        return ()
    answers = []
    for qname, qclass in questions:
        if qclass == CLASS_IN:
            answer = _resolve(qname, cnames, addresses)
            if answer is not None:
                answers.append(answer)
    return tuple(answers)


def question_names(message: bytes | bytearray | memoryview) -> tuple[str, ...]:
    """The names a standard query (QR=0, opcode 0) asks for, at most MAX_QUESTIONS; () for
    anything else, malformed queries included (they name nothing reliably; the response, if
    any, is where a malformed message is an anomaly)."""
    msg = message if isinstance(message, bytes) else bytes(message)
    if len(msg) < _HEADER.size:
        return ()
    _id, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(msg)
    if flags & _QR or flags & 0x7800 or not 0 < qdcount <= MAX_QUESTIONS:
        return ()
    names = []
    pos = _HEADER.size
    try:
        for _ in range(qdcount):
            name, pos = _read_name(msg, pos)
            pos += _QUESTION_TAIL.size
            if name:
                names.append(name)
    except DnsViolation:
        return ()
    return tuple(names)


@dataclass(slots=True)
class DnsQuestion(ProtocolEvent):
    """A client's query: the names it asks for (lower case, no trailing dot)."""

    names: tuple[str, ...]

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        return tuple(("dns-name", name, "dns") for name in self.names)


def _read_record(
    msg: bytes,
    pos: int,
    cnames: dict[str, tuple[str, int]],
    addresses: dict[str, list[tuple[bytes, int]]],
) -> int:
    """Read the resource record at `pos` into `cnames`/`addresses`; the offset after it."""
    owner, pos = _read_name(msg, pos)
    if pos + _RECORD_HEAD.size > len(msg):
        raise DnsViolation(DNS_TRUNCATED, f"record header at {pos} ends past the message")
    rtype, rclass, ttl, rdlength = _RECORD_HEAD.unpack_from(msg, pos)
    pos += _RECORD_HEAD.size
    rdend = pos + rdlength
    if rdend > len(msg):
        raise DnsViolation(DNS_TRUNCATED, f"RDATA of {rdlength} bytes at {pos} ends past it")
    if rclass != CLASS_IN:
        return rdend
    if ttl > _TTL_MAX:
        ttl = 0
    if rtype in (TYPE_A, TYPE_AAAA):
        size = 4 if rtype == TYPE_A else 16
        if rdlength != size:
            kind = "A" if rtype == TYPE_A else "AAAA"
            raise DnsViolation(DNS_MALFORMED, f"{kind} record with RDLENGTH {rdlength}")
        addresses.setdefault(owner, []).append((msg[pos:rdend], ttl))
    elif rtype == TYPE_CNAME:
        target, after = _read_name(msg, pos)
        if after != rdend:
            raise DnsViolation(DNS_MALFORMED, f"CNAME name does not fill RDLENGTH {rdlength}")
        cnames.setdefault(owner, (target, ttl))
    return rdend


def _resolve(
    qname: str,
    cnames: dict[str, tuple[str, int]],
    addresses: dict[str, list[tuple[bytes, int]]],
) -> DnsAnswer | None:
    """Follow the CNAME chain from `qname`; the addresses of its names, or None."""
    chain = [qname]
    ttl = _TTL_MAX
    name = qname
    for _ in range(MAX_CNAME_CHAIN):
        link = cnames.get(name)
        if link is None or link[0] in chain:
            break
        name, link_ttl = link
        ttl = min(ttl, link_ttl)
        chain.append(name)
    found: list[bytes] = []
    address_ttl = _TTL_MAX
    for owner in chain:
        for address, record_ttl in addresses.get(owner, ()):
            if address not in found and len(found) < MAX_ADDRESSES:
                found.append(address)
                address_ttl = min(address_ttl, record_ttl)
    if not found:
        return None
    return DnsAnswer(qname, tuple(found), min(ttl, address_ttl))


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """The name at `pos` (RFC 1035 3.1, 4.1.4) and the offset after it in the message: after
    its first compression pointer, or after its terminating zero byte."""
    end = len(msg)
    labels: list[str] = []
    size = 1  # wire length so far: the root's zero byte
    after = -1
    hops = 0
    piece = pos  # start of the contiguous run being read: pointers must point before it
    while True:
        if pos >= end:
            raise DnsViolation(DNS_TRUNCATED, f"name runs past the message at {end}")
        length = msg[pos]
        if length >= _POINTER:
            if pos + 1 >= end:
                raise DnsViolation(DNS_TRUNCATED, "compression pointer cut at the message end")
            target = (length & 0x3F) << 8 | msg[pos + 1]
            if after < 0:
                after = pos + 2
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise DnsViolation(DNS_MALFORMED, f"more than {MAX_POINTER_HOPS} pointer hops")
            if target >= piece:
                raise DnsViolation(
                    DNS_MALFORMED, f"compression pointer at {pos} to {target}, not before {piece}"
                )
            pos = piece = target
            continue
        if length > 63:
            raise DnsViolation(DNS_MALFORMED, f"label type 0x{length & _POINTER:02x} at {pos}")
        if length == 0:
            return ".".join(labels), pos + 1 if after < 0 else after
        size += length + 1
        if size > MAX_NAME_BYTES:
            raise DnsViolation(DNS_MALFORMED, f"name longer than {MAX_NAME_BYTES} bytes")
        start = pos + 1
        pos = start + length
        if pos > end:
            raise DnsViolation(DNS_TRUNCATED, f"label at {start - 1} runs past the message")
        labels.append(_label_text(msg[start:pos]))


def _label_text(label: bytes) -> str:
    if label.replace(b"-", b"").isalnum():  # the common case: letters, digits, hyphens
        return label.decode("ascii").lower()
    return "".join([_LABEL_CHARS[b] for b in label])


PORT = 53  # DNS over UDP is recognised by its server port


class DnsResponses:
    """The app layer of a UDP flow to port 53: the server's responses to a client that asked.

    Each response's answers become `AddressName` facts (the meter names the addresses after the
    name the client asked for). Only datagrams from the flow's server count, once its client
    has sent something: an unsolicited datagram names nothing. A malformed response is an
    anomaly, and the flow is only counted from then on (`Counted`).
    """

    __slots__ = ("_asked",)

    def __init__(self) -> None:
        self._asked = False

    def packet(
        self, flow: object, direction: int, pkt: Packet
    ) -> list[AddressName | DnsQuestion | Anomaly | Counted]:
        """One datagram of the flow (a `FlowApp`, sensor/protocols/layer.py)."""
        if direction == Direction.TO_SERVER:
            self._asked = True
            names = question_names(pkt.payload)
            return [DnsQuestion(names)] if names else []
        if not self._asked:
            return []
        try:
            answers = parse_response(pkt.payload)
        except DnsViolation as exc:
            detail = f"{exc.detail} (capture cut)" if pkt.payload_missing else exc.detail
            return [Anomaly(exc.reason, detail, pkt.ts), Counted(None)]
        return [
            AddressName(address, answer.query, "dns")
            for answer in answers
            if answer.query
            for address in answer.addresses
        ]

    def end(self, flow: object, ts: float) -> list[AddressName | DnsQuestion | Anomaly | Counted]:
        return []
