"""Text extraction stage, character decoding: an object's bytes become `str` as they stream.

In: the object's bytes in order (any split) and the declared charset (HTTP/MIME `charset=`)
if there is one. Out: `str` pieces whose concatenation does not depend on how the bytes were
split (CPython's incremental decoders keep a multi-byte sequence cut at a chunk edge).

Which codec, in order:
1. a byte order mark (UTF-32, UTF-8, UTF-16; WHATWG Encoding "BOM sniffing" lets it override
   the label);
2. the declared charset (labels for ISO-8859-1 and US-ASCII mean windows-1252, as WHATWG
   Encoding §4.2 maps them; an unknown label is noted and ignored);
3. UTF-16 without a BOM when the first `UTF16_SNIFF_BYTES` hold many NULs on one side of each
   code unit (ASCII text in UTF-16);
4. otherwise ASCII needs no decision; at the first non-ASCII byte the next
   `NON_ASCII_SNIFF_BYTES` bytes decide: UTF-8 if they decode strictly, else windows-1252
   (cp1252: Latin-1's printable range plus the C1 smart quotes and euro sign; its five
   undefined bytes become U+FFFD). Later invalid UTF-8 becomes U+FFFD, not a switch.
"""

from __future__ import annotations

import codecs
import re

from sensor.anomaly import Anomaly

# The NUL heuristic for UTF-16 without a BOM looks at this many leading bytes (also enough
# for every BOM); nothing is decoded before that many bytes (or the end) have arrived.
UTF16_SNIFF_BYTES = 64
# Bytes from the first non-ASCII byte on that must decode as UTF-8 to choose UTF-8.
NON_ASCII_SNIFF_BYTES = 1024
# Share of NULs (in percent) on the zero side of UTF-16 code units that says "UTF-16"; the
# other side must stay at most UTF16_OTHER_SIDE_PERCENT.
UTF16_NUL_PERCENT = 40
UTF16_OTHER_SIDE_PERCENT = 10

# Longest first, so that the UTF-32-LE BOM (FF FE 00 00) is not taken for UTF-16-LE.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Codec names (codecs.lookup(..).name) that WHATWG decodes as windows-1252.
_AS_CP1252 = frozenset({"iso8859-1", "ascii", "latin-1", "cp1252"})
_NON_ASCII = re.compile(rb"[\x80-\xff]")


def resolve_charset(label: str | None) -> str | None:
    """The Python codec name for a declared charset label, or None when unknown/absent."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    if name in _AS_CP1252:
        return "cp1252"
    try:
        codecs.getincrementaldecoder(name)
    except (LookupError, TypeError):
        return None
    return name


def sniff_bom(head: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when `head` starts with a byte order mark."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    return None


def sniff_utf16(head: bytes) -> str | None:
    """ "utf-16-le"/"utf-16-be" when the NULs in `head` look like ASCII in UTF-16."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even = head[0 : pairs * 2 : 2].count(0)
    odd = head[1 : pairs * 2 : 2].count(0)
    if odd * 100 >= pairs * UTF16_NUL_PERCENT and even * 100 <= pairs * UTF16_OTHER_SIDE_PERCENT:
        return "utf-16-le"
    if even * 100 >= pairs * UTF16_NUL_PERCENT and odd * 100 <= pairs * UTF16_OTHER_SIDE_PERCENT:
        return "utf-16-be"
    return None


class TextDecoder:
    """Streams bytes to str with the codec chosen as the module docstring says.

    `codec` is None until decided, then the Python codec name ("utf-8", "cp1252", ...).
    Anomalies go to the `anomalies` list given (the owning extractor's).
    """

    __slots__ = ("_declared", "_decoder", "_head", "_state", "anomalies", "codec")

    def __init__(self, charset: str | None, anomalies: list[Anomaly]) -> None:
        self.anomalies = anomalies
        self.codec: str | None = None
        self._declared = resolve_charset(charset)
        if charset and self._declared is None:
            anomalies.append(
                Anomaly("text_unknown_charset", f"declared charset {charset[:40]!r} unknown")
            )
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""  # bounded by UTF16_SNIFF_BYTES / NON_ASCII_SNIFF_BYTES (+ one feed)
        self._state = "start"  # start -> ascii -> decoding

    def decode(self, data: bytes, final: bool = False) -> str:
        """The text of the next bytes; `final`: the object is over (the same as `finish`
        after them)."""
        return self._run(data, final)

    def finish(self) -> str:
        return self._run(b"", final=True)

    def _run(self, data: bytes, final: bool) -> str:
        if self._decoder is not None:
            return self._decoder.decode(data, final)
        head = self._head + data if self._head else data
        out = ""
        if self._state == "start":
            if len(head) < UTF16_SNIFF_BYTES and not final:
                self._head = head
                return ""
            bom = sniff_bom(head)
            if bom is not None:
                return self._start(bom[0], head[bom[1] :], final)
            if self._declared is not None:
                return self._start(self._declared, head, final)
            utf16 = sniff_utf16(head[:UTF16_SNIFF_BYTES])
            if utf16 is not None:
                return self._start(utf16, head, final)
            self._state = "ascii"
        # ASCII so far: the same text under UTF-8 and cp1252, so no decision yet.
        first = _NON_ASCII.search(head)
        if first is None:
            self._head = b""
            return head.decode("ascii")
        cut = first.start()
        if cut:
            out = head[:cut].decode("ascii")
            head = head[cut:]
        if len(head) < NON_ASCII_SNIFF_BYTES and not final:
            self._head = head
            return out
        probe = codecs.getincrementaldecoder("utf-8")(errors="strict")
        try:
            probe.decode(head[:NON_ASCII_SNIFF_BYTES], final and len(head) <= NON_ASCII_SNIFF_BYTES)
            codec = "utf-8"
        except UnicodeDecodeError:
            codec = "cp1252"
        return out + self._start(codec, head, final)

    def _start(self, codec: str, data: bytes, final: bool) -> str:
        self.codec = codec
        self._state = "decoding"
        self._head = b""
        self._decoder = codecs.getincrementaldecoder(codec)(errors="replace")
        return self._decoder.decode(data, final)
