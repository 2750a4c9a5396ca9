"""Fingerprint stage: is a PDF encrypted, and with which security handler and cipher.

In: the bytes of one object the identifier took for PDF (`%PDF-`), fed in order in chunks of
any size.
Out: an `Encryption` verdict. A PDF is encrypted when its trailer dictionary (ISO 32000-1
7.5.5), or the dictionary of a cross-reference stream, which plays the trailer's part (7.5.8.2),
holds `/Encrypt` (7.6.1). The encryption dictionary it points to names the security handler
(`/Filter /Standard` password, `/Filter /Adobe.PubSec` certificates) and the algorithm
(`/V`, `/R`, `/Length`, the crypt filters' `/CFM`, 7.6.1 table 20, 7.6.5). Neither the trailer,
a cross-reference stream nor the encryption dictionary is ever encrypted or put in an object
stream (7.5.7, 7.5.8.1, 7.6.1), so all three are readable as they stream.

Theory of operation: one pass over the bytes with `bytes.find` for a few needles (`/Encrypt`,
`trailer`, `/XRef`, `/Standard`, `/Adobe.PubSec`) in a sliding buffer that keeps
`BACK_CAP` bytes before the scan point and holds `AHEAD_CAP` bytes after it, so a hit split by a
chunk boundary is still seen whole with its context:

- `/Encrypt` counts only when the nearest keyword before it is `trailer`, or `obj` of a
  dictionary with `/Type /XRef`; text inside a content stream follows `stream` and is ignored.
  Its value `N G R` names the encryption dictionary's object.
- `/Filter /Standard` and `/Filter /Adobe.PubSec` mark an encryption dictionary passing by;
  up to `MAX_ENCRYPTION_DICTS` of them are remembered by object number, since the dictionary
  usually comes before the trailer that points to it. One that comes after (a linearized
  file's first-page trailer is at the head) is found by searching for `N G obj` once N is known.
- A complete file whose trailer (or cross-reference stream) was seen without `/Encrypt` is
  plain; an incremental update repeats the previous trailer's entries (7.5.6), so the last
  trailer alone decides.
"""

from __future__ import annotations

import re

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

# How far before a hit the keyword that opens its dictionary is looked for.
BACK_CAP = 4096
# How far after a hit its dictionary (or an encryption object, whose Adobe.PubSec recipient
# strings run to a few KiB) may extend.
AHEAD_CAP = 16384
# Bytes gathered before a scan, so that small chunks do not rescan the buffer each time.
SCAN_BATCH = 8192
# Encryption dictionaries remembered before the trailer naming one of them is reached.
MAX_ENCRYPTION_DICTS = 8
# Needle hits examined per object; beyond it the scan stops (a flood of decoys).
MAX_HITS = 4096

_ENCRYPT = b"/Encrypt"
_TRAILER = b"trailer"
_XREF = b"/XRef"
_STREAM = b"stream"
_HANDLERS = (b"/Standard", b"/Adobe.PubSec")

# PDF delimiters and white space (7.2.2, 7.2.3): a name ends at any of them.
_NOT_REGULAR = rb"\x00\t\n\x0c\r /<>\[\]()%{}"
_REGULAR = frozenset(set(range(256)) - set(b"\x00\t\n\x0c\r /<>[]()%{}"))
_REF = re.compile(rb"[\x00\t\n\x0c\r ]*(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+R")
_DIRECT_DICT = re.compile(rb"[\x00\t\n\x0c\r ]*<<")
_OBJ_HEADER = re.compile(rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+obj")
_TYPE_XREF = re.compile(rb"/Type[\x00\t\n\x0c\r ]*/XRef(?![^" + _NOT_REGULAR + rb"])")
_FILTER_BEFORE = re.compile(rb"/Filter[\x00\t\n\x0c\r ]*\Z")
_TYPE_BEFORE = re.compile(rb"/Type[\x00\t\n\x0c\r ]*\Z")
_NAME_VALUE = rb"[\x00\t\n\x0c\r ]*/([^" + _NOT_REGULAR + rb"]{1,32})"
_NUMBER_VALUE = rb"(?![^" + _NOT_REGULAR + rb"])[\x00\t\n\x0c\r ]*(\d{1,6})"
_FILTER = re.compile(rb"/Filter" + _NAME_VALUE)
_SUBFILTER = re.compile(rb"/SubFilter" + _NAME_VALUE)
_CFM = re.compile(rb"/CFM" + _NAME_VALUE)
_V = re.compile(rb"/V" + _NUMBER_VALUE)
_R = re.compile(rb"/R" + _NUMBER_VALUE)
_LENGTH = re.compile(rb"/Length" + _NUMBER_VALUE)
_STRING_TOKEN = re.compile(rb"\\.|[()]", re.DOTALL)


def _blank_strings(text: bytes) -> bytes:
    """`text` with every literal string's contents removed (7.3.4.2: balanced parentheses,
    backslash escapes), so binary /O and /U values cannot fake a key."""
    out = bytearray()
    pos = 0
    while True:
        start = text.find(b"(", pos)
        if start < 0:
            out += text[pos:]
            return bytes(out)
        out += text[pos:start]
        depth = 0
        end = len(text)
        for token in _STRING_TOKEN.finditer(text, start):
            if token.group() == b"(":
                depth += 1
            elif token.group() == b")":
                depth -= 1
                if depth == 0:
                    end = token.end()
                    break
        out += b"()"
        pos = end


def _int(pattern: re.Pattern[bytes], text: bytes) -> int | None:
    found = pattern.search(text)
    return int(found.group(1)) if found else None


def _describe(text: bytes) -> tuple[str, str]:
    """(scheme, detail) of an encryption dictionary's text (7.6.1 table 20, 7.6.3 table 21,
    7.6.5 table 25)."""
    end = text.find(b"endobj")
    body = _blank_strings(text[: end if end >= 0 else len(text)])
    handler_match = _FILTER.search(body)
    handler = handler_match.group(1).decode("ascii", "replace") if handler_match else None
    v = _int(_V, body)
    r = _int(_R, body)
    cfms = {m.group(1) for m in _CFM.finditer(body)}
    if v in (1, 2):
        length = _int(_LENGTH, body) or 40
        cipher = f"rc4-{length}" if 40 <= length <= 128 and length % 8 == 0 else "rc4"
    elif v == 4:
        if b"AESV2" in cfms:
            cipher = "aes-128"
        elif b"AESV3" in cfms:
            cipher = "aes-256"
        elif b"V2" in cfms:
            cipher = "rc4-128"
        else:
            cipher = None
    elif v == 5:
        cipher = "aes-256"  # AESV3 is the only crypt filter method of /V 5 (ISO 32000-2 7.6.2)
    else:
        cipher = None
    if handler == "Standard":
        scheme = f"pdf-{cipher}" if cipher else "pdf-encrypted"
    elif handler is not None and handler.endswith("PubSec"):
        scheme = f"pdf-pubsec-{cipher}" if cipher else "pdf-pubsec"
    else:
        scheme = "pdf-encrypted"
    parts = [f"handler={handler}"] if handler else []
    subfilter = _SUBFILTER.search(body)
    if subfilter:
        parts.append(f"subfilter={subfilter.group(1).decode('ascii', 'replace')}")
    if v is not None:
        parts.append(f"V={v}")
    if r is not None:
        parts.append(f"R={r}")
    return scheme, " ".join(parts)


class PdfAnalyser:
    """Analyser for PDF (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_candidates",
        "_encrypt_ref",
        "_encrypt_seen",
        "_found",
        "_hits",
        "_in_stream",
        "_object_pattern",
        "_scan",
        "_trailer_seen",
        "anomalies",
        "tail_bytes",
    )

    def __init__(self) -> None:
        # The trailer is read as it streams by, so no tail ring is needed.
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._buf = bytearray()
        self._scan = 0  # where in _buf the unscanned bytes start
        self._encrypt_seen = False
        self._encrypt_ref: tuple[int, int] | None = None
        self._object_pattern: re.Pattern[bytes] | None = None
        self._candidates: dict[tuple[int, int], tuple[str, str]] = {}
        self._found: tuple[str, str] | None = None
        self._trailer_seen = False  # since the last gap
        self._hits = 0
        self._in_stream = False  # between `stream` and `endstream` (as far as the scan knows)

    def feed(self, data: bytes) -> None:
        if self._hits > MAX_HITS:
            return
        self._buf += data
        if len(self._buf) - self._scan >= AHEAD_CAP + SCAN_BATCH:
            self._run(len(self._buf) - AHEAD_CAP)

    def gap(self, size: int) -> None:
        # What was before the loss is scanned with what context it has; the context does not
        # carry over the loss.
        self._run(len(self._buf))
        self._buf = bytearray()
        self._scan = 0
        self._trailer_seen = False
        self._in_stream = False

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        self._run(len(self._buf))
        self._buf = bytearray()
        self._scan = 0
        if self._encrypt_seen:
            if self._found is not None:
                scheme, detail = self._found
                return Encryption(True, scheme=scheme, detail=detail or None)
            self.anomalies.append(
                Anomaly("pdf_encryption_dict_missing", "/Encrypt seen, its dictionary not found")
            )
            return Encryption(
                True, scheme="pdf-encrypted", detail="encryption dictionary not found"
            )
        if self._hits > MAX_HITS:
            return Encryption(None)
        if not complete:
            return Encryption(None)
        if not self._trailer_seen:
            self.anomalies.append(
                Anomaly("pdf_no_trailer", "no trailer or cross-reference stream dictionary")
            )
            return Encryption(None)
        return Encryption(False)

    # -- scanning ---------------------------------------------------------------------------

    def _run(self, limit: int) -> None:
        """Examine the needles that start in [self._scan, limit), then drop what lies more
        than BACK_CAP before limit."""
        buf = self._buf
        start = self._scan
        if limit > start and self._hits <= MAX_HITS:
            hits: list[tuple[int, bytes]] = []
            for needle in (_ENCRYPT, _TRAILER, _XREF, _STREAM, *_HANDLERS):
                end = limit + len(needle) - 1
                at = buf.find(needle, start, end)
                while at >= 0:
                    hits.append((at, needle))
                    if needle == _ENCRYPT or needle in _HANDLERS:
                        self._hits += 1  # the hits whose context costs a look around
                    if self._hits > MAX_HITS:
                        self.anomalies.append(
                            Anomaly("pdf_scan_cap", f"more than {MAX_HITS} keyword hits")
                        )
                        self._buf = bytearray()
                        self._scan = 0
                        return
                    at = buf.find(needle, at + 1, end)
            hits.sort()
            for at, needle in hits:
                if needle == _STREAM:
                    self._on_stream(at)
                elif self._in_stream:
                    continue  # content: never a trailer or an encryption dictionary
                elif needle == _ENCRYPT:
                    self._on_encrypt(at)
                elif needle == _TRAILER:
                    self._on_trailer(at)
                elif needle == _XREF:
                    self._on_xref(at)
                else:
                    self._on_handler(at, len(needle))
            if self._object_pattern is not None and self._found is None:
                self._find_object(max(0, start - 32), min(len(buf), limit + 32))
        cut = max(0, limit - BACK_CAP)
        del buf[:cut]
        self._scan = limit - cut

    def _ends_name(self, at: int) -> bool:
        """The name or keyword ending just before `at` is over (no regular character follows)."""
        return at >= len(self._buf) or self._buf[at] not in _REGULAR

    def _context(self, at: int) -> str | None:
        """ "trailer" or "xref" when the dictionary holding the hit at `at` is a trailer or a
        cross-reference stream dictionary; None otherwise (content streams, other objects)."""
        buf = self._buf
        low = max(0, at - BACK_CAP)
        trailer = buf.rfind(_TRAILER, low, at)
        obj = buf.rfind(b"obj", low, at)
        stream = buf.rfind(b"stream", low, at)
        last = max(trailer, obj, stream)
        if last < 0:
            return None
        if last == trailer:
            return "trailer"
        if last != obj or buf[max(0, obj - 3) : obj] == b"end":
            return None  # inside or after a stream, or between objects
        ahead = bytes(buf[obj : at + AHEAD_CAP])
        stop = min(
            (p for p in (ahead.find(b"stream"), ahead.find(b"endobj")) if p >= 0),
            default=len(ahead),
        )
        return "xref" if _TYPE_XREF.search(ahead, 0, stop) else None

    def _on_encrypt(self, at: int) -> None:
        value_at = at + len(_ENCRYPT)
        if not self._ends_name(value_at):
            return  # /EncryptMetadata and the like
        context = self._context(at)
        if context is None:
            return
        self._encrypt_seen = True
        self._trailer_seen = True
        buf = self._buf
        ahead = bytes(buf[value_at : value_at + AHEAD_CAP])
        ref = _REF.match(ahead)
        if ref is None:
            if _DIRECT_DICT.match(ahead) and self._found is None:
                self._found = _describe(ahead)
            return
        if self._encrypt_ref is not None:
            return
        key = (int(ref.group(1)), int(ref.group(2)))
        self._encrypt_ref = key
        if key in self._candidates:
            self._found = self._candidates[key]
            return
        self._object_pattern = re.compile(
            rb"(?<![0-9])%d[\x00\t\n\x0c\r ]+%d[\x00\t\n\x0c\r ]+obj" % key
        )
        # The object may already sit in the buffer (before or after the trailer).
        self._find_object(0, len(buf))

    def _find_object(self, start: int, end: int) -> None:
        assert self._object_pattern is not None
        found = self._object_pattern.search(self._buf, start, end)
        if found is not None:
            self._found = _describe(bytes(self._buf[found.end() : found.end() + AHEAD_CAP]))

    def _on_stream(self, at: int) -> None:
        # 7.3.8.1: `stream` is followed by an end-of-line marker and the data runs up to
        # `endstream`. Tracking the pair keeps text inside stream data (a content stream
        # showing "trailer << /Encrypt ... >>") from counting.
        buf = self._buf
        if buf[max(0, at - 3) : at] == b"end":
            self._in_stream = False
        elif buf[at + 6 : at + 7] in (b"\r", b"\n") and (at == 0 or buf[at - 1] not in _REGULAR):
            self._in_stream = True

    def _on_trailer(self, at: int) -> None:
        buf = self._buf
        if at > 0 and buf[at - 1] in _REGULAR:
            return
        if _DIRECT_DICT.match(buf, at + len(_TRAILER), at + len(_TRAILER) + 256):
            self._trailer_seen = True

    def _on_xref(self, at: int) -> None:
        if self._ends_name(at + len(_XREF)) and _TYPE_BEFORE.search(self._buf, max(0, at - 32), at):
            self._trailer_seen = True

    def _on_handler(self, at: int, length: int) -> None:
        buf = self._buf
        if not self._ends_name(at + length):
            return
        if not _FILTER_BEFORE.search(buf, max(0, at - 32), at):
            return
        back = bytes(buf[max(0, at - BACK_CAP) : at])
        header: re.Match[bytes] | None = None
        for match in _OBJ_HEADER.finditer(back):
            header = match
        if header is None or b"endobj" in back[header.end() :] or b"stream" in back[header.end() :]:
            return  # a direct /Encrypt dictionary in a trailer, or not an object's dictionary
        key = (int(header.group(1)), int(header.group(2)))
        if key in self._candidates:
            return
        start = max(0, at - BACK_CAP) + header.end()
        described = _describe(bytes(buf[start : at + AHEAD_CAP]))
        if len(self._candidates) < MAX_ENCRYPTION_DICTS:
            self._candidates[key] = described
        if self._encrypt_ref == key and self._found is None:
            self._found = described
