"""Text extraction stage, HL7 v2 messages in their pipe-and-hat encoding (HL7 v2.5 chapter 2,
"ER7"): lab results, admissions and orders as hospitals and labs send them.

In: the bytes of a text object (any split) that starts, after an optional byte order mark,
whitespace or MLLP start block (0x0B), with an MSH segment; the declared charset if any.
Out: one `RowChunk` (delimited.py) per segment: its text verbatim, `cells` = where each field
and each repetition of a field starts, `headers` = what the field is, and `position.row` =
the number of the message it belongs to (a record: one patient's message), counted by its
MSH segment. A segment longer than `MAX_SEGMENT_CHARS` is cut there
(`text_hl7_segment_too_long`, once).

Headers. Each cell's header is its field's position, `PID-3`, `PID-7`, `OBR-16` (MSH is
counted as the standard counts it: MSH-1 is the field separator itself, so the text after
the first "|" is MSH-2). A repetition that names who issued its identifier adds that to the
header: the assigning authority (an HD, `namespace&universal id&type`, CX.4 / XCN.9 / XON.6)
with its subcomponents as words, and the identifier type code that follows a CX's authority
(CX.5: `NNNLD` is the Dutch BSN). So `PID-3 NLMINBIZA 2.16.840.1.113883.2.4.6.3 ISO NNNLD`
names the BSN as a CSV column header `bsn` does, `PID-7` names a date of birth, and the
detectors' context and negative words (signatures/detectors.toml) decide what a field's
value may be: a date of birth in PID-7 is no BSN or AGB code, whatever OID stands nearby.

Separators are read from each MSH segment (MSH-1 and MSH-2); segments end at CR (the
standard), LF or CRLF; blank lines between messages are skipped. Escape sequences (\\F\\,
\\S\\, ...) are left as they are.
"""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextPosition
from sensor.content.text.charset import TextDecoder
from sensor.content.text.delimited import RowChunk
from sensor.content.text.emitter import MAX_CHUNK_CHARS, MAX_TEXT_CHARS, BoundedExtractor
from sensor.content.text.plain import PlainTextExtractor

MAX_SEGMENT_CHARS = MAX_CHUNK_CHARS  # a longer segment is cut (so one fits one chunk)
MAX_HEADER_CODE_CHARS = 16  # an identifier type code longer than this is no code
HL7_SNIFF_BYTES = 16  # bytes looked at to tell an HL7 v2 message from other text
MAX_LABEL_SEGMENTS = 256  # segment names whose field labels are kept (Z-segments are free)
_LEAD = b"\xef\xbb\xbf\x0b \t\r\n"  # BOM bytes, MLLP start block, whitespace
_DEFAULT_SEPARATORS = ("|", "^", "~", "&")


def looks_like_hl7(head: bytes) -> bool:
    """Whether an object starting with `head` is an HL7 v2 message: MSH, then a field
    separator (punctuation) and encoding characters that are not letters or digits."""
    text = head.lstrip(_LEAD)
    if len(text) < 8 or not text.startswith(b"MSH"):
        return False
    separators = text[3:8]
    return all(33 <= b < 127 and not chr(b).isalnum() for b in separators[:4])


class Hl7Extractor(BoundedExtractor):
    """Segments of HL7 v2 messages (see the module docstring)."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._decoder = TextDecoder(charset, self.anomalies)
        self._pending = ""  # the segment not ended yet (at most MAX_SEGMENT_CHARS)
        self._message = 0
        self._field, self._component, self._repetition, self._sub = _DEFAULT_SEPARATORS
        self._labels: dict[str, list[str]] = {}  # segment name -> its field labels
        self._noted: set[str] = set()

    def _extract(self, data: bytes) -> list[TextChunk]:
        return self._read(self._decoder.decode(data), final=False)

    def _extract_rest(self) -> list[TextChunk]:
        return self._read(self._decoder.finish(), final=True)

    def _read(self, text: str, final: bool) -> list[TextChunk]:
        out: list[TextChunk] = []
        text = self._pending + text if self._pending else text
        text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
        lines = text.split("\n")
        rest = "" if final else lines.pop()
        for line in lines:
            self._segment(line, out)
        while len(rest) > MAX_SEGMENT_CHARS:
            self._note("text_hl7_segment_too_long", f"a segment over {MAX_SEGMENT_CHARS} chars")
            self._segment(rest[:MAX_SEGMENT_CHARS], out)
            rest = rest[MAX_SEGMENT_CHARS:]
        self._pending = rest
        return out

    def _segment(self, line: str, out: list[TextChunk]) -> None:
        line = line.strip("\x0b\x1c\ufeff \t")  # MLLP framing, BOM, padding
        if not line:
            return
        if len(line) > MAX_SEGMENT_CHARS:
            self._note("text_hl7_segment_too_long", f"a segment over {MAX_SEGMENT_CHARS} chars")
            line = line[:MAX_SEGMENT_CHARS]
        name = line[:3]
        if name == "MSH" and len(line) >= 8:
            self._message += 1
            self._field = line[3]
            self._component, self._repetition = line[4], line[5]
            self._sub = line[7] if line[7] != self._field else "&"
        elif not self._message:
            self._message = 1  # segments before any MSH: one message still
        cells, headers = self._fields(name, line)
        emitter = self._emitter
        size = emitter.room(len(line))
        if size <= 0:
            return
        if size < len(line):
            line = line[:size]
            kept = sum(1 for start in cells if start < size)
            cells, headers = cells[:kept], headers[:kept]
        position = TextPosition(emitter.offset, self._part, None, self._message)
        out.append(RowChunk(line, position, None, tuple(cells), tuple(headers)))
        emitter.offset += size

    def _fields(self, name: str, line: str) -> tuple[list[int], list[str]]:
        """Where each field and repetition of `line` starts, and its header."""
        cells, headers = [0], [name]
        fields = line.split(self._field)
        labels = self._labels.get(name)
        if labels is None or len(labels) < len(fields):
            # MSH-1 is the separator between "MSH" and MSH-2: MSH's k-th piece is field k+1.
            first = 2 if name == "MSH" else 1
            labels = [name] + [f"{name}-{n}" for n in range(first, first + len(fields) - 1)]
            if len(self._labels) < MAX_LABEL_SEGMENTS:
                self._labels[name] = labels
        start = len(fields[0]) + 1
        repeat, sub = self._repetition, self._sub
        for k in range(1, len(fields)):
            value, label = fields[k], labels[k]
            if (
                not value
                or (repeat not in value and sub not in value)
                or (k == 1 and name == "MSH")
            ):
                # One cell, a plain label (MSH-2 holds the encoding characters themselves).
                cells.append(start)
                headers.append(label)
            else:
                at = start
                for repetition in value.split(repeat):
                    cells.append(at)
                    headers.append(self._header(label, repetition))
                    at += len(repetition) + 1
            start += len(value) + 1
        return cells, headers

    def _header(self, label: str, repetition: str) -> str:
        """The field's position, and the issuer of the identifier it holds, if it names one."""
        if self._sub not in repetition:
            return label
        words = [label]
        components = repetition.split(self._component)
        for i, component in enumerate(components):
            if i and self._sub in component:  # an HD: namespace&universal id&id type
                words += (w for w in component.split(self._sub) if w)
                code = components[i + 1] if i + 1 < len(components) else ""
                if code and len(code) <= MAX_HEADER_CODE_CHARS and code.isalnum():
                    words.append(code)  # CX.5 after CX.4, XON.7 after XON.6
        return " ".join(words)

    def _note(self, kind: str, detail: str) -> None:
        if kind not in self._noted:
            self._noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail))


class PlainOrHl7Extractor:
    """The extractor of a text object: `Hl7Extractor` when its first bytes are an HL7 v2
    message header (`looks_like_hl7`), else `PlainTextExtractor`. Holds the first
    `HL7_SNIFF_BYTES` bytes (past any leading BOM, MLLP block and whitespace) to decide."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self._charset, self._part, self._max_chars = charset, part, max_chars
        self._head = b""
        self._chosen: Hl7Extractor | PlainTextExtractor | None = None
        self.anomalies: list[Anomaly] = []  # the chosen extractor's, once it is chosen

    def feed(self, data: bytes) -> list[TextChunk]:
        if self._chosen is not None:
            return self._chosen.feed(data)
        self._head += data
        lead = len(self._head) - len(self._head.lstrip(_LEAD))
        if len(self._head) - lead < HL7_SNIFF_BYTES and lead < HL7_SNIFF_BYTES * 64:
            return []
        return self._choose().feed(self._take())

    def finish(self) -> list[TextChunk]:
        if self._chosen is None:
            chosen = self._choose()
            return chosen.feed(self._take()) + chosen.finish()
        return self._chosen.finish()

    def _choose(self) -> Hl7Extractor | PlainTextExtractor:
        kind = Hl7Extractor if looks_like_hl7(self._head) else PlainTextExtractor
        chosen = kind(charset=self._charset, part=self._part, max_chars=self._max_chars)
        self._chosen, self.anomalies = chosen, chosen.anomalies
        return chosen

    def _take(self) -> bytes:
        head, self._head = self._head, b""
        return head
