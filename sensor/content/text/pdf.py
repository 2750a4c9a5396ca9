"""Text extraction stage, PDF (ISO 32000-1): the strings that page content streams show.

In: the PDF's bytes in order (any split). Out: running text (`FlowingText` chunks) made of
the strings of the text-showing operators Tj, TJ, ' and " (§9.4.3) in stream order;
TJ kerning below `TJ_SPACE_THRESHOLD` thousandths of an em becomes a space; ET, T*, ', ",
Tm and a Td/TD that moves vertically become a newline. No page numbers.

How: the file is scanned for `stream` keywords (§7.3.8). The stream's dictionary is the
text after the last "obj" within `PDF_DICT_WINDOW` bytes before the keyword; a stream is
read when it has no /Filter or only /FlateDecode, and is not an image, font file, XRef or
object stream, XMP metadata, embedded file or one with /DecodeParms (predictors: not page
text). Its data ends after a direct /Length, else at "endstream". FlateDecode is inflated in
pieces of `INFLATE_PIECE_BYTES`, at most `MAX_PDF_STREAM_OUTPUT` bytes per stream and
`MAX_PDF_INFLATED_BYTES` per file (`text_pdf_inflate_cap`). The decoded content is
scanned in windows of `CONTENT_WINDOW_BYTES` (+ `CONTENT_MARGIN_BYTES` look-ahead) whose
places depend only on the content, so any split of the input gives the same text.

Limits (accepted): strings are decoded as windows-1252 (WinAnsiEncoding, the usual simple
font encoding) or UTF-16BE with a BOM; fonts with custom encodings, CID fonts (Identity-H
glyph ids) and Type3 fonts give unreadable text, ToUnicode CMaps are not read. Encrypted
PDFs give no text (the caller does not ask). Text in object streams' dictionaries
(/ActualText, annotations, form fields) and in other filters (LZW, ASCII85) is not read.
"""

from __future__ import annotations

import re
import zlib

from sensor.anomaly import Anomaly
from sensor.content.text.emitter import MAX_TEXT_CHARS, FlowingExtractor, FlowingText

PDF_DICT_WINDOW = 4096  # bytes before `stream` searched for its dictionary
INFLATE_PIECE_BYTES = 256 * 1024  # inflated bytes per zlib call
MAX_PDF_STREAM_OUTPUT = 16 * 1024 * 1024  # inflated bytes read from one stream
MAX_PDF_INFLATED_BYTES = 128 * 1024 * 1024  # inflated bytes read from one file
CONTENT_WINDOW_BYTES = 256 * 1024
CONTENT_MARGIN_BYTES = 64 * 1024  # longest string or TJ array read whole
MAX_PDF_STRING_BYTES = 32 * 1024  # a literal string longer than this is not text
TJ_SPACE_THRESHOLD = -200  # TJ adjustment (1/1000 em) that reads as a word space
_KEYWORD_CARRY = 16  # bytes kept when searching for a keyword across feeds

_STREAM = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n)")
_ENDSTREAM = b"endstream"
_LENGTH = re.compile(rb"/Length\s+(\d{1,10})(?!\d)(?!\s+\d+\s+R)")
_FILTER = re.compile(rb"/Filter\b")
_FLATE_ONLY = re.compile(rb"/Filter\s*(?:\[\s*)?/(?:FlateDecode|Fl)\b\s*\]?\s*(?:/|>>)")
_SKIP_DICT = re.compile(
    rb"/Subtype\s*/(?:Image|Type1C|CIDFontType0C|OpenType|XML)\b"
    rb"|/Type\s*/(?:XRef|ObjStm|Metadata|EmbeddedFile)\b"
    rb"|/Length[123]\b|/DecodeParms\b|/DP\b"
)
# Content-stream tokens of interest: a literal string, a hex string, an array.
_TOKEN_START = re.compile(rb"[(\[]|<(?!<)")
_PAREN = re.compile(rb"[()\\]")
_HEX = re.compile(rb"<([0-9A-Fa-f\s]{0,65536})>")
_ARRAY_ITEM = re.compile(rb"\s*(?:(\()|<([0-9A-Fa-f\s]{0,65536})>|([-+]?[0-9]*\.?[0-9]+)|(\]))")
_SHOW_OP = re.compile(rb"\s{0,64}(Tj|TJ|'|\")(?![A-Za-z0-9*])")
_LINE_OPS = re.compile(
    rb"(?<![A-Za-z])(?:ET|T\*|Tm)(?![A-Za-z])|([-+]?[0-9.]+)\s+([-+]?[0-9.]+)\s+T[dD](?![A-Za-z])"
)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|[\s\S])")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
# C0 controls other than TAB/LF (glyph ids of CID fonts decode to them) are dropped.
_CONTROLS = dict.fromkeys([*range(0, 9), *range(11, 32), 127])


def _escape(match: re.Match[bytes]) -> bytes:
    body = match.group(1)
    if body[:1].isdigit():
        return bytes([int(body, 8) & 0xFF])
    if body in (b"\n", b"\r", b"\r\n"):
        return b""  # a backslash at the end of a line continues the string (§7.3.4.2)
    return _ESCAPES.get(body, body)


def decode_string(raw: bytes) -> str:
    """The text of a PDF string's bytes (see the module docstring for the encodings)."""
    if raw.startswith(b"\xfe\xff"):
        text = raw[2:].decode("utf-16-be", errors="replace")
    else:
        text = raw.decode("cp1252", errors="replace")
    return text.translate(_CONTROLS)


def literal_body(buf: bytes | bytearray, start: int) -> tuple[bytes | None, int]:
    """The raw bytes of the literal string opening at `start` and the index after it; None
    (and where the search stopped) when it does not close within MAX_PDF_STRING_BYTES."""
    depth = 1
    pos = start + 1
    stop = min(len(buf), start + MAX_PDF_STRING_BYTES)
    while True:
        m = _PAREN.search(buf, pos, stop)
        if m is None:
            return None, max(stop, start + 1)
        char = buf[m.start()]
        if char == 0x5C:  # backslash: the next byte is escaped
            pos = m.start() + 2
            continue
        depth += 1 if char == 0x28 else -1
        pos = m.end()
        if depth == 0:
            return _ESCAPE.sub(_escape, bytes(buf[start + 1 : m.start()])), pos


def hex_body(digits: bytes) -> bytes:
    digits = bytes(ch for ch in digits if ch not in b" \t\r\n\f\x00") if digits else b""
    if len(digits) % 2:
        digits += b"0"  # §7.3.4.3: a missing final digit is 0
    try:
        return bytes.fromhex(digits.decode("ascii"))
    except ValueError:
        return b""


class ContentText:
    """Text of one content stream's decoded bytes, fed in pieces, into `text`."""

    __slots__ = ("_buf", "text")

    def __init__(self, text: FlowingText) -> None:
        self.text = text
        self._buf = bytearray()  # bounded by CONTENT_WINDOW_BYTES + CONTENT_MARGIN_BYTES + a feed

    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= CONTENT_WINDOW_BYTES + CONTENT_MARGIN_BYTES:
            resume = self._scan(CONTENT_WINDOW_BYTES)
            del self._buf[:resume]

    def finish(self) -> None:
        self._scan(len(self._buf))
        self._buf.clear()
        self.text.add("\n")

    def _scan(self, limit: int) -> int:
        """Read the text operators that start before `limit`; where to resume."""
        buf = self._buf
        pos = 0
        gap_start = 0
        while True:
            m = _TOKEN_START.search(buf, pos, limit)
            if m is None:
                break
            start = m.start()
            pieces, end = self._operand(buf, start)
            if pieces is None:
                pos = end
                continue
            op = _SHOW_OP.match(buf, end)
            if op is None:
                pos = end
                continue
            if self._breaks_line(buf, gap_start, start) or op.group(1) in (b"'", b'"'):
                self.text.add("\n")
            self.text.add("".join(pieces))
            pos = gap_start = op.end()
        return max(pos, limit)

    @staticmethod
    def _breaks_line(buf: bytearray, start: int, end: int) -> bool:
        for m in _LINE_OPS.finditer(buf, start, end):
            if m.group(2) is None:
                return True
            try:
                if float(m.group(2)) != 0.0:
                    return True
            except ValueError:
                continue
        return False

    @staticmethod
    def _operand(buf: bytearray, start: int) -> tuple[list[str] | None, int]:
        """The text of the string or TJ array at `start` and its end; None when it is none."""
        first = buf[start]
        if first == 0x28:
            raw, end = literal_body(buf, start)
            return ([decode_string(raw)] if raw is not None else None), end
        if first == 0x3C:
            m = _HEX.match(buf, start)
            if m is None:
                return None, start + 1
            return [decode_string(hex_body(m.group(1)))], m.end()
        pieces: list[str] = []
        pos = start + 1
        stop = start + CONTENT_MARGIN_BYTES
        while pos < stop:
            m = _ARRAY_ITEM.match(buf, pos)
            if m is None:
                return None, start + 1
            if m.group(4) is not None:
                return pieces, m.end()
            if m.group(1) is not None:
                raw, end = literal_body(buf, m.start(1))
                if raw is None:
                    return None, start + 1
                pieces.append(decode_string(raw))
                pos = end
                continue
            if m.group(2) is not None:
                pieces.append(decode_string(hex_body(m.group(2))))
            else:
                try:
                    if float(m.group(3)) < TJ_SPACE_THRESHOLD:
                        pieces.append(" ")
                except ValueError:
                    pass
            pos = m.end()
        return None, start + 1


class PdfExtractor(FlowingExtractor):
    """Shown text of one PDF (see the module docstring)."""

    # Every content stream ends with a line break; a PDF without shown text gives no chunk.
    DROP_BLANK_RUNS = True

    def __init__(self, *, part: str | None = None, max_chars: int = MAX_TEXT_CHARS) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._buf = bytearray()  # scan mode: bounded by PDF_DICT_WINDOW + a feed
        self._in_stream = False
        self._left: int | None = None  # stream bytes still to read (direct /Length)
        self._inflate: zlib._Decompress | None = None
        self._content: ContentText | None = None  # None: this stream is skipped
        self._stream_out = 0
        self._inflated = 0
        self._noted: set[str] = set()

    def _read(self, data: bytes, final: bool) -> None:
        self._buf += data
        self._run(final)
        if final and self._in_stream:
            self._end_stream()

    def _run(self, final: bool) -> None:
        buf = self._buf
        while True:
            if not self._in_stream:
                m = _STREAM.search(buf)
                if m is None:
                    keep = PDF_DICT_WINDOW + _KEYWORD_CARRY
                    if len(buf) > keep:
                        del buf[: len(buf) - keep]
                    return
                self._begin_stream(bytes(buf[max(0, m.start() - PDF_DICT_WINDOW) : m.start()]))
                del buf[: m.end()]
                continue
            if self._left is not None:
                take = min(self._left, len(buf))
                self._stream_data(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if self._left:
                    return
                self._end_stream()
                continue
            end = buf.find(_ENDSTREAM)
            if end < 0:
                take = len(buf) if final else max(0, len(buf) - _KEYWORD_CARRY)
                self._stream_data(bytes(buf[:take]))
                del buf[:take]
                return
            self._stream_data(bytes(buf[:end]))
            del buf[:end]
            self._end_stream()

    def _begin_stream(self, before: bytes) -> None:
        self._in_stream = True
        self._stream_out = 0
        self._inflate = None
        self._content = None
        obj = before.rfind(b"obj")
        head = before[obj:] if obj >= 0 else b""
        length = _LENGTH.search(head)
        self._left = int(length.group(1)) if length else None
        if obj < 0 or _SKIP_DICT.search(head):
            return
        if _FILTER.search(head):
            if not _FLATE_ONLY.search(head):
                return
            self._inflate = zlib.decompressobj()
        if self._inflated >= MAX_PDF_INFLATED_BYTES:
            return
        self._content = ContentText(self._text)

    def _stream_data(self, data: bytes) -> None:
        content = self._content
        if content is None or not data:
            return
        inflate = self._inflate
        if inflate is None:
            content.feed(data)
            return
        while data and not inflate.eof:
            try:
                out = inflate.decompress(data, INFLATE_PIECE_BYTES)
            except zlib.error:
                self._note("text_pdf_bad_stream", "a FlateDecode stream does not inflate")
                self._drop_stream(content)
                return
            allowed = min(
                MAX_PDF_STREAM_OUTPUT - self._stream_out, MAX_PDF_INFLATED_BYTES - self._inflated
            )
            if len(out) > allowed:
                self._note(
                    "text_pdf_inflate_cap",
                    f"a stream inflates beyond {MAX_PDF_STREAM_OUTPUT} bytes or the file "
                    f"beyond {MAX_PDF_INFLATED_BYTES}",
                )
                self._inflated += max(0, allowed)
                content.feed(out[: max(0, allowed)])
                self._drop_stream(content)
                return
            self._stream_out += len(out)
            self._inflated += len(out)
            content.feed(out)
            data = inflate.unconsumed_tail

    def _drop_stream(self, content: ContentText) -> None:
        content.finish()  # what was read so far counts
        self._content = None

    def _end_stream(self) -> None:
        if self._content is not None:
            self._content.finish()
        self._in_stream = False
        self._content = None
        self._inflate = None
        self._left = None

    def _note(self, kind: str, detail: str) -> None:
        if kind not in self._noted:
            self._noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail))
