"""Fingerprint stage: OpenPGP messages (binary and ASCII-armoured), encrypted or not.

In: the bytes of one object the identifier took for OpenPGP (binary: `looks_like_openpgp` said
yes on its first bytes; armoured: it begins with an `-----BEGIN PGP ...-----` line), fed in
order in chunks of any size.
Out: an `Encryption` verdict. An encrypted message is one or more session-key packets (PKESK,
tag 1; SKESK, tag 3), optionally after a marker packet (tag 10), followed by an encrypted data
packet (SED 9, SEIPD 18, AEAD 20) (RFC 4880 section 11.3, RFC 9580 section 10.3). Any PKESK
makes the scheme "openpgp-public-key", SKESK alone "openpgp-symmetric". A signed-only,
compressed-only or literal message, a detached signature and a key block are not encrypted.

Theory of operation: only the first packets matter, so the reader walks packet headers
(RFC 4880 section 4.2: old and new formats, partial body lengths) and looks at no more than
`BODY_PREFIX` bytes of each body; bodies are skipped by count, never buffered. It stops at the
first encrypted data, literal or compressed packet, at a key or signature packet that opens
the object, or after `MAX_PACKETS` packets. The armoured form (RFC 4880 section 6, RFC 9580
section 6) is read line by line (each line bounded by `MAX_ARMOUR_LINE`), its headers skipped,
and the base64 body decoded into the same packet reader, until the reader is done or the CRC /
END line comes.
"""

from __future__ import annotations

import binascii
import struct

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

# At most this many packets are looked at; many-recipient messages still end with a verdict
# (the count then says "at least").
MAX_PACKETS = 64
# How much of a packet body is kept to read its version and algorithm fields.
BODY_PREFIX = 64
# A packet cut short by the end of the object is judged on what arrived only from this many
# body octets on (a version octet alone says too little).
MIN_CUT_BODY = 4
# An armour line longer than this is not an OpenPGP armour line (RFC 4880 6.3: at most 76
# base64 characters; headers are short too).
MAX_ARMOUR_LINE = 1024
# How many bytes may precede the BEGIN line of an armoured object (a mail body's leading text).
MAX_ARMOUR_PREAMBLE = 16384

# Packet tags (RFC 9580 section 5).
TAG_PKESK = 1
TAG_SIGNATURE = 2
TAG_SKESK = 3
TAG_ONE_PASS = 4
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_COMPRESSED = 8
TAG_SED = 9
TAG_MARKER = 10
TAG_LITERAL = 11
TAG_SEIPD = 18
TAG_AEAD = 20

_ESK_TAGS = frozenset({TAG_PKESK, TAG_SKESK})
_ENCRYPTED_DATA_TAGS = frozenset({TAG_SED, TAG_SEIPD, TAG_AEAD})
# Packets whose bodies may use partial lengths or the old indeterminate length (RFC 4880 4.2.2.4).
_STREAMING_TAGS = frozenset({TAG_COMPRESSED, TAG_SED, TAG_LITERAL, TAG_SEIPD, TAG_AEAD})
# What may open a message, a detached signature or a key block.
_FIRST_TAGS = frozenset(
    {
        TAG_PKESK,
        TAG_SIGNATURE,
        TAG_SKESK,
        TAG_ONE_PASS,
        TAG_SECRET_KEY,
        TAG_PUBLIC_KEY,
        TAG_COMPRESSED,
        TAG_MARKER,
        TAG_LITERAL,
    }
)
# What may follow each first packet (RFC 4880 section 11 grammar; key blocks section 11.1).
_KEY_FOLLOW = frozenset({2, 7, 12, 13, 14, 17})
_NEXT_TAGS: dict[int, frozenset[int]] = {
    TAG_PKESK: frozenset({TAG_PKESK, TAG_SKESK, TAG_SED, TAG_SEIPD, TAG_AEAD}),
    TAG_SKESK: frozenset({TAG_PKESK, TAG_SKESK, TAG_SED, TAG_SEIPD, TAG_AEAD}),
    TAG_MARKER: frozenset(
        {
            TAG_PKESK,
            TAG_SKESK,
            TAG_ONE_PASS,
            TAG_SIGNATURE,
            TAG_COMPRESSED,
            TAG_LITERAL,
            TAG_SEIPD,
            TAG_AEAD,
        }
    ),
    TAG_ONE_PASS: frozenset({TAG_ONE_PASS, TAG_SIGNATURE, TAG_COMPRESSED, TAG_LITERAL}),
    TAG_SIGNATURE: frozenset({TAG_SIGNATURE, TAG_ONE_PASS, TAG_COMPRESSED, TAG_LITERAL}),
    TAG_COMPRESSED: frozenset({TAG_SIGNATURE, TAG_MARKER}),
    TAG_LITERAL: frozenset({TAG_SIGNATURE, TAG_MARKER}),
    TAG_PUBLIC_KEY: _KEY_FOLLOW,
    TAG_SECRET_KEY: _KEY_FOLLOW,
}

# Algorithm ids (RFC 9580 sections 9.1-9.5).
_PK_ENCRYPT_ALGOS = frozenset({1, 2, 16, 18, 20, 25, 26})
_PK_ALGOS = frozenset({1, 2, 3, 16, 17, 18, 19, 20, 22, 25, 26, 27, 28})
_SYM_NAMES = {
    1: "IDEA",
    2: "TripleDES",
    3: "CAST5",
    4: "Blowfish",
    7: "AES-128",
    8: "AES-192",
    9: "AES-256",
    10: "Twofish",
    11: "Camellia-128",
    12: "Camellia-192",
    13: "Camellia-256",
}
_HASH_ALGOS = frozenset({1, 2, 3, 8, 9, 10, 11, 12, 14})
_S2K_TYPES = frozenset({0, 1, 3, 4})
_AEAD_ALGOS = frozenset({1, 2, 3})
_COMPRESS_ALGOS = frozenset({0, 1, 2, 3})
_LITERAL_FORMATS = frozenset(b"btulm1")

# Armour (RFC 4880 section 6.2).
_ARMOUR_BEGIN = b"-----BEGIN PGP "
_ARMOUR_KIND_NOTES = {
    b"SIGNED MESSAGE": "clear-signed message",
    b"SIGNATURE": "detached signature",
    b"PUBLIC KEY BLOCK": "public key block",
    b"PRIVATE KEY BLOCK": "private key block",
    b"SECRET KEY BLOCK": "private key block",
}

_HEADER_INCOMPLETE = -1
_HEADER_BAD = -2


def _parse_header(buf: bytes | bytearray, pos: int) -> tuple[int, int, int, bool]:
    """(tag, header length, body length or -1 for indeterminate, partial) of the packet header
    at `pos`; tag is _HEADER_INCOMPLETE when the header runs past `buf`, _HEADER_BAD when it
    cannot be a packet header (RFC 4880 4.2)."""
    n = len(buf)
    if pos >= n:
        return _HEADER_INCOMPLETE, 0, 0, False
    b0 = buf[pos]
    if not b0 & 0x80:
        return _HEADER_BAD, 0, 0, False
    if not b0 & 0x40:
        # Old format: tag in bits 5-2, length type in bits 1-0 (RFC 4880 4.2.1).
        tag = (b0 >> 2) & 0x0F
        ltype = b0 & 0x03
        if ltype == 3:
            return tag, 1, -1, False
        width = 1 << ltype
        if pos + 1 + width > n:
            return _HEADER_INCOMPLETE, 0, 0, False
        if width == 1:
            length = buf[pos + 1]
        elif width == 2:
            length = struct.unpack_from(">H", buf, pos + 1)[0]
        else:
            length = struct.unpack_from(">I", buf, pos + 1)[0]
        return tag, 1 + width, length, False
    # New format (RFC 4880 4.2.2).
    tag = b0 & 0x3F
    if pos + 1 >= n:
        return _HEADER_INCOMPLETE, 0, 0, False
    o1 = buf[pos + 1]
    if o1 < 192:
        return tag, 2, o1, False
    if o1 < 224:
        if pos + 2 >= n:
            return _HEADER_INCOMPLETE, 0, 0, False
        return tag, 3, ((o1 - 192) << 8) + buf[pos + 2] + 192, False
    if o1 == 255:
        if pos + 6 > n:
            return _HEADER_INCOMPLETE, 0, 0, False
        return tag, 6, struct.unpack_from(">I", buf, pos + 2)[0], False
    return tag, 2, 1 << (o1 & 0x1F), True


def _body_plausible(tag: int, body: bytes | bytearray, length: int) -> bool:
    """The fixed leading fields of a packet body are sane (versions and algorithm ids).
    `body` is the body's first bytes (all of it when shorter than BODY_PREFIX)."""
    if not body:
        return length != 0 and tag in _STREAMING_TAGS
    v = body[0]
    if tag == TAG_PKESK:
        if v == 3:
            return length >= 12 and (len(body) < 10 or body[9] in _PK_ENCRYPT_ALGOS)
        if v == 6:
            # RFC 9580 5.1.2: fingerprint octet count 0 (anonymous), 21 (v4) or 33 (v6).
            if len(body) < 2:
                return True
            count = body[1]
            if count not in (0, 21, 33):
                return False
            at = 2 + count
            return length > at + 1 and (len(body) <= at or body[at] in _PK_ENCRYPT_ALGOS)
        return False
    if tag == TAG_SKESK:
        return _skesk_cipher(body, length) is not None
    if tag == TAG_MARKER:
        return length == 3 and body[:3] == b"PGP"[: len(body)]
    if tag == TAG_ONE_PASS:
        if v not in (3, 6) or length < 13:
            return False
        return len(body) < 4 or (body[2] in _HASH_ALGOS and body[3] in _PK_ALGOS)
    if tag == TAG_SIGNATURE:
        if v == 3:
            return len(body) < 2 or body[1] == 5
        if v in (4, 5, 6):
            return len(body) < 4 or (body[2] in _PK_ALGOS and body[3] in _HASH_ALGOS)
        return False
    if tag == TAG_COMPRESSED:
        return v in _COMPRESS_ALGOS and _compressed_start_plausible(v, body[1:4])
    if tag == TAG_LITERAL:
        if v not in _LITERAL_FORMATS:
            return False
        if len(body) < 2:
            return True
        # RFC 4880 5.9: format, file name length, file name, 4-octet date.
        name = body[2 : 2 + body[1]]
        return length >= 6 + body[1] and not any(c < 0x20 or c == 0x7F for c in name)
    if tag in (TAG_PUBLIC_KEY, TAG_SECRET_KEY):
        if v in (2, 3):
            return len(body) < 8 or body[7] in _PK_ALGOS
        if v == 4:
            return len(body) < 6 or _key_material_plausible(body[5], body[6:9])
        if v in (5, 6):
            return len(body) < 6 or body[5] in _PK_ALGOS
        return False
    if tag == TAG_SEIPD:
        return v in (1, 2)
    if tag == TAG_AEAD:
        return v == 1
    return True


def _compressed_start_plausible(algo: int, start: bytes | bytearray) -> bool:
    """The first octets of a compressed packet's data fit its algorithm (RFC 4880 5.6):
    uncompressed data is packets, raw DEFLATE has no block type 3 (RFC 1951 3.2.3), a ZLIB
    header checks out (RFC 1950 2.2), BZip2 starts "BZh"."""
    if not start:
        return True
    if algo == 0:
        return bool(start[0] & 0x80)
    if algo == 1:
        return (start[0] >> 1) & 3 != 3
    if algo == 2:
        if len(start) < 2:
            return start[0] & 0x0F == 8
        return start[0] & 0x0F == 8 and ((start[0] << 8) | start[1]) % 31 == 0
    return bytes(start) == b"BZh"[: len(start)]


def _key_material_plausible(algo: int, start: bytes | bytearray) -> bool:
    """A v4 key's first public field fits its algorithm (RFC 4880 5.5.2, RFC 9580 5.5.5): an
    MPI of a sane bit count whose top octet has that many bits, or an ECC curve OID length."""
    if algo not in _PK_ALGOS:
        return False
    if algo in (18, 19, 22):
        return not start or 1 <= start[0] <= 10
    if algo in (1, 2, 3, 16, 17) and len(start) >= 3:
        bits = (start[0] << 8) | start[1]
        return 512 <= bits <= 16384 and start[2].bit_length() == (bits - 1) % 8 + 1
    return True


def _skesk_cipher(body: bytes | bytearray, length: int) -> int | None:
    """The symmetric algorithm id of an SKESK body; 0 (the id of "plaintext", never valid
    here) when the body is plausible but too short here to show it; None when implausible
    (RFC 4880 5.3, RFC 9580 5.3)."""
    if not body:
        return None
    v = body[0]
    if v == 4:
        if length < 4:
            return None
        if len(body) >= 2 and body[1] not in _SYM_NAMES:
            return None
        if len(body) >= 3 and body[2] not in _S2K_TYPES:
            return None
        if len(body) >= 4 and body[2] != 4 and body[3] not in _HASH_ALGOS:
            return None
        return body[1] if len(body) >= 2 else 0
    if v == 5:
        # LibrePGP v5 (GnuPG 2.3+): cipher, AEAD algorithm, S2K.
        if length < 5:
            return None
        if len(body) >= 2 and body[1] not in _SYM_NAMES:
            return None
        if len(body) >= 3 and body[2] not in _AEAD_ALGOS:
            return None
        return body[1] if len(body) >= 2 else 0
    if v == 6:
        # RFC 9580 5.3.2: count octet, cipher, AEAD algorithm, S2K length, S2K.
        if length < 6:
            return None
        if len(body) >= 3 and body[2] not in _SYM_NAMES:
            return None
        if len(body) >= 4 and body[3] not in _AEAD_ALGOS:
            return None
        return body[2] if len(body) >= 3 else 0
    return None


def looks_like_openpgp(head: bytes) -> bool:
    """Whether `head` (an object's first bytes, which no magic matched) opens a binary OpenPGP
    message, signature or key block. Strict: the first packet header must be consistent, its
    tag one that can open a message, its version and algorithm fields sane, and, when the
    second packet header falls within `head`, that one must be a plausible successor."""
    tag, hlen, length, partial = _parse_header(head, 0)
    if tag < 0 or tag not in _FIRST_TAGS:
        return False
    streaming = length < 0 or partial
    if streaming and tag not in _STREAMING_TAGS:
        return False
    if partial and length < 512:
        # RFC 4880 4.2.2.4: the first partial length must be at least 512 octets.
        return False
    body = head[hlen : hlen + (BODY_PREFIX if streaming else min(length, BODY_PREFIX))]
    if not body:
        # Nothing to check the header against: too little to say yes.
        return False
    if not _body_plausible(tag, body, length if not streaming else 1 << 30):
        return False
    if streaming:
        return True
    nxt = hlen + length
    if nxt >= len(head):
        return True
    tag2, hlen2, length2, partial2 = _parse_header(head, nxt)
    if tag2 == _HEADER_INCOMPLETE:
        return True
    if tag2 == _HEADER_BAD or tag2 not in _NEXT_TAGS[tag]:
        return False
    if (length2 < 0 or partial2) and tag2 not in _STREAMING_TAGS:
        return False
    body2 = head[nxt + hlen2 : nxt + hlen2 + BODY_PREFIX]
    streaming2 = length2 < 0 or partial2
    if streaming2 or not body2:
        return not body2 or _body_plausible(tag2, body2, 1 << 30)
    return _body_plausible(tag2, body2[:length2], length2)


class _PacketReader:
    """Walks the first packets of a binary OpenPGP stream (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_pending_length",
        "_pending_tag",
        "_skip",
        "anomalies",
        "cipher",
        "data_tag",
        "done",
        "esk_count",
        "note",
        "packets",
        "pkesk_count",
        "plain",
        "skesk_count",
    )

    def __init__(self, anomalies: list[Anomaly]) -> None:
        self.anomalies = anomalies
        self._buf = bytearray()
        self._skip = 0
        self._pending_tag = -1  # a header was read; waiting for its body prefix
        self._pending_length = 0
        self.packets = 0
        self.done = False
        self.plain = False  # the stream is a plain message / signature / key block
        self.note: str | None = None
        self.pkesk_count = 0
        self.skesk_count = 0
        self.esk_count = 0
        self.cipher: int | None = None
        self.data_tag: int | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        start = 0
        if self._skip:
            take = min(self._skip, len(data))
            self._skip -= take
            start = take
            if start >= len(data):
                return
        if start:
            self._buf += memoryview(data)[start:]
        else:
            self._buf += data
        self._parse()

    def finish(self) -> None:
        """The stream is over: judge a packet whose body prefix was cut short."""
        if not self.done and self._pending_tag >= 0 and len(self._buf) >= MIN_CUT_BODY:
            self._pending_tag, tag = -1, self._pending_tag
            self._packet(tag, self._buf[:BODY_PREFIX], self._pending_length)
        self.done = True

    def _bad(self, why: str) -> None:
        self.anomalies.append(Anomaly("openpgp_bad_packet", why))
        self.done = True

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        while not self.done:
            if self._pending_tag < 0:
                tag, hlen, length, partial = _parse_header(buf, pos)
                if tag == _HEADER_INCOMPLETE:
                    break
                if tag == _HEADER_BAD:
                    self._bad(f"packet {self.packets + 1}: bit 7 of the tag octet is clear")
                    break
                if (length < 0 or partial) and tag not in _STREAMING_TAGS:
                    self._bad(f"packet {self.packets + 1}: tag {tag} with a streaming length")
                    break
                self.packets += 1
                pos += hlen
                self._pending_tag = tag
                self._pending_length = length if not partial and length >= 0 else 1 << 62
            tag = self._pending_tag
            length = self._pending_length
            # Data packets show only their first octet (format, algorithm or version).
            need = min(length, 1 if tag in _STREAMING_TAGS else BODY_PREFIX)
            if len(buf) - pos < need:
                break
            self._pending_tag = -1
            self._packet(tag, buf[pos : pos + need], length)
            if self.done:
                break
            avail = len(buf) - pos
            if length <= avail:
                pos += length
            else:
                self._skip = length - avail
                pos = len(buf)
                break
        del buf[:pos]
        if self.done:
            self._buf = bytearray()

    def _packet(self, tag: int, body: bytearray, length: int) -> None:
        first = self.packets == 1
        if first and tag not in _FIRST_TAGS and tag not in _ENCRYPTED_DATA_TAGS:
            self._bad(f"tag {tag} cannot open a message")
            return
        if not _body_plausible(tag, body, length):
            self._bad(f"packet {self.packets}: tag {tag} with implausible fields")
            return
        if tag in _ESK_TAGS:
            self.esk_count += 1
            if tag == TAG_PKESK:
                self.pkesk_count += 1
            else:
                self.skesk_count += 1
                cipher = _skesk_cipher(body, length)
                if self.cipher is None and cipher:
                    self.cipher = cipher
        elif tag in _ENCRYPTED_DATA_TAGS:
            self.data_tag = tag
            self.done = True
            return
        elif tag == TAG_MARKER:
            pass
        elif self.esk_count:
            self._bad(f"tag {tag} after a session key packet")
            return
        elif self.note == "signed message":
            self.done = True  # the signed data itself (literal or compressed)
            return
        else:
            self.plain = True
            self.note = {
                TAG_PUBLIC_KEY: "public key block",
                TAG_SECRET_KEY: "private key block",
                TAG_SIGNATURE: "signature" if first else "signed message",
                TAG_ONE_PASS: "signed message",
                TAG_COMPRESSED: "compressed message",
                TAG_LITERAL: "literal message",
            }.get(tag, f"tag {tag}")
            if tag != TAG_ONE_PASS:
                self.done = True
                return
        if self.packets >= MAX_PACKETS:
            self.done = True


class _ArmourReader:
    """Finds the BEGIN line, skips armour headers and base64-decodes the body into a
    `_PacketReader` (RFC 4880 section 6.2)."""

    __slots__ = ("_carry", "_line", "_packets", "_seen", "_state", "anomalies", "kind_note")

    def __init__(self, packets: _PacketReader, anomalies: list[Anomaly]) -> None:
        self._packets = packets
        self.anomalies = anomalies
        self._line = bytearray()
        self._carry = b""  # base64 characters short of a 4-character group
        self._state = "seek"  # seek -> headers -> body -> done
        self._seen = 0
        self.kind_note: str | None = None  # the armour is not a message (clear-signed, key...)

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> None:
        if self._state == "done":
            return
        self._line += data
        start = 0
        line = self._line
        while self._state != "done":
            end = line.find(b"\n", start)
            if end < 0:
                break
            self._take(bytes(line[start:end]).strip())
            start = end + 1
        del line[:start]
        if self._state != "done" and len(line) > MAX_ARMOUR_LINE:
            self.anomalies.append(
                Anomaly("openpgp_armour_damaged", f"a line longer than {MAX_ARMOUR_LINE} bytes")
            )
            self._state = "done"
        if self._state == "done":
            self._line = bytearray()

    def finish(self) -> None:
        if self._state != "done" and self._line:
            self._take(bytes(self._line).strip())
        self._line = bytearray()

    def _take(self, line: bytes) -> None:
        state = self._state
        if state == "seek":
            self._seen += len(line) + 1
            if line.startswith(_ARMOUR_BEGIN) and line.endswith(b"-----"):
                kind = line[len(_ARMOUR_BEGIN) : -5]
                if kind == b"MESSAGE" or kind.startswith(b"MESSAGE, PART "):
                    self._state = "headers"
                else:
                    self.kind_note = _ARMOUR_KIND_NOTES.get(kind, "other armour block")
                    self._state = "done"
            elif self._seen > MAX_ARMOUR_PREAMBLE:
                self.anomalies.append(
                    Anomaly("openpgp_armour_damaged", "no BEGIN PGP line at the start")
                )
                self._state = "done"
            return
        if state == "headers":
            # Armour headers are "Key: value" lines ended by an empty line; some writers omit
            # both, so a line without ": " that is not empty already belongs to the body.
            if not line:
                self._state = "body"
                return
            if b": " in line:
                return
            self._state = "body"
        if line.startswith(b"-----END") or (line.startswith(b"=") and len(line) <= 5):
            # The CRC line or END line: the body is over.
            self._body(b"", last=True)
            self._state = "done"
            return
        self._body(line, last=False)
        if self._packets.done:
            self._state = "done"

    def _body(self, line: bytes, last: bool) -> None:
        chars = self._carry + line
        keep = len(chars) if last else len(chars) - len(chars) % 4
        self._carry = chars[keep:]
        if not keep:
            return
        try:
            decoded = binascii.a2b_base64(chars[:keep])
        except (binascii.Error, ValueError):
            self.anomalies.append(Anomaly("openpgp_armour_damaged", "base64 body does not decode"))
            self._state = "done"
            return
        self._packets.feed(decoded)


class OpenPgpAnalyser:
    """Analyser for OpenPGP objects; `armoured` for the ASCII-armoured form."""

    __slots__ = ("_armour", "_gapped", "_packets", "anomalies", "tail_bytes")

    def __init__(self, armoured: bool = False) -> None:
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._packets = _PacketReader(self.anomalies)
        self._armour = _ArmourReader(self._packets, self.anomalies) if armoured else None
        self._gapped = False

    def feed(self, data: bytes) -> None:
        if self._gapped or not data:
            return
        if self._armour is not None:
            self._armour.feed(data)
        else:
            self._packets.feed(data)

    def gap(self, size: int) -> None:
        # The first packets are all that matter: after a loss the packet boundaries are gone.
        if not self._packets.done and (self._armour is None or not self._armour.done):
            self._gapped = True

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        if self._armour is not None and not self._gapped:
            self._armour.finish()
        reader = self._packets
        if not self._gapped:
            reader.finish()
        if self._armour is not None and self._armour.kind_note is not None:
            return Encryption(False, detail=self._armour.kind_note)
        if reader.esk_count or reader.data_tag is not None:
            return Encryption(True, scheme=self._scheme(), detail=self._detail())
        if reader.plain:
            return Encryption(False, detail=reader.note)
        return Encryption(None)

    def _scheme(self) -> str:
        return "openpgp-public-key" if self._packets.pkesk_count else "openpgp-symmetric"

    def _detail(self) -> str:
        r = self._packets
        parts: list[str] = []
        more = "+" if r.packets >= MAX_PACKETS and r.data_tag is None else ""
        if r.pkesk_count:
            parts.append(f"recipients={r.pkesk_count}{more}")
        if r.skesk_count:
            parts.append(f"passphrases={r.skesk_count}{more}")
        if r.cipher is not None:
            parts.append(f"cipher={_SYM_NAMES.get(r.cipher, str(r.cipher))}")
        if r.data_tag is not None:
            parts.append({TAG_SED: "sed", TAG_SEIPD: "seipd", TAG_AEAD: "aead"}[r.data_tag])
            if not r.esk_count:
                parts.append("no session key packet")
        else:
            parts.append("encrypted data not reached")
        return ", ".join(parts)
