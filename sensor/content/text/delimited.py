"""Text extraction stage, delimited tables: CSV and TSV (RFC 4180, plus the ';' that Dutch
spreadsheet exports use).

In: the object's bytes in order (any split), the declared charset if any. Out: one `RowChunk`
per non-empty record: the record's cells joined by TAB, `cells` = where each cell starts in
that text, `position.row` = the record number (1-based, blank records counted; a quoted
newline does not start a record), and for data records `headers` = the first record's cells
when the first record looks like a header (every cell a short non-numeric label).

Why rows, not one TextChunk per cell: a 50 MB, 10-column CSV holds ~5 M cells; two frozen
dataclasses per cell cost more than the parsing (measured ~9 MB/s per cell against ~30 MB/s
per row). The classifier maps a match at offset `i` of the row text to its column with
`bisect_right(chunk.cells, i)` (1-based) and to its header with `chunk.headers[column - 1]`.

Parsing is the C `csv` module fed whole lines; a record is parsed only once it is complete:
when the reader asks for a line that has not arrived, the record is put back and waits.
A record longer than `MAX_RECORD_CHARS` (an unbalanced quote, a line without newlines) is
cut there (`text_csv_record_too_long`, once) and parsing resumes after the cut, at the same
place however the bytes were split. Delimiter: the candidate of ", ; TAB |" that occurs the
same non-zero number of times on each of the first `DELIMITER_SNIFF_LINES` lines, then the
most frequent one; "," when none occurs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextPosition
from sensor.content.text.charset import TextDecoder
from sensor.content.text.emitter import MAX_CHUNK_CHARS, MAX_TEXT_CHARS, BoundedExtractor

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_SNIFF_LINES = 5  # complete lines looked at to choose the delimiter
DELIMITER_SNIFF_CHARS = 16 * 1024  # ... or this many characters, whichever comes first
MAX_RECORD_CHARS = MAX_CHUNK_CHARS  # longest record kept whole (so a row fits one chunk)
MAX_HEADER_CHARS = 128  # a first-row cell longer than this is not a column label
_PLUS_ONE = (1).__add__
# A cell made of digits and punctuation only is a value, not a label.
_NUMERIC = re.compile(r"[\s\d.,:;/+\-%()€$]*")


@dataclass(frozen=True, slots=True)
class RowChunk(TextChunk):
    """One CSV/TSV record: `text` is its cells joined by TAB; `cells[k]` is where cell k+1
    starts in `text`; `headers` the column labels (data records, when the file has them)."""

    cells: tuple[int, ...] = ()
    headers: tuple[str, ...] | None = None


class _Lines:
    """The line iterator the csv reader pulls from; notes when it ran dry."""

    __slots__ = ("lines", "pos", "starved")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pos = 0
        self.starved = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos < len(self.lines):
            line = self.lines[self.pos]
            self.pos += 1
            return line
        self.starved = True
        raise StopIteration


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV whose first characters are `sample` (see the module docstring)."""
    lines = [line for line in sample.split("\n")[:DELIMITER_SNIFF_LINES] if line.strip()]
    best = ","
    best_score: tuple[bool, int, int] = (False, 0, 0)
    for delimiter in DELIMITERS:
        counts = [line.count(delimiter) for line in lines]
        if not counts or max(counts) == 0:
            continue
        score = (min(counts) == max(counts), min(counts), sum(counts))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def looks_like_header(row: list[str]) -> bool:
    """Every cell a short label that is not a number, date or amount."""
    return bool(row) and all(
        0 < len(cell.strip()) <= MAX_HEADER_CHARS and not _NUMERIC.fullmatch(cell) for cell in row
    )


class DelimitedExtractor(BoundedExtractor):
    """Rows of one CSV/TSV object (see the module docstring). `delimiter` None: sniffed."""

    def __init__(
        self,
        *,
        delimiter: str | None = None,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._decoder = TextDecoder(charset, self.anomalies)
        self._delimiter = delimiter
        self._lines = _Lines()
        self._reader: Iterator[list[str]] | None = None
        self._pending = ""  # starts at a record start; bounded by MAX_RECORD_CHARS + one feed
        self._record = 0
        self._headers: tuple[str, ...] | None = None
        self._noted: set[str] = set()

    def _extract(self, data: bytes) -> list[TextChunk]:
        text = self._decoder.decode(data)
        self._pending = self._pending + text if self._pending else text
        return self._process(final=False)

    def _extract_rest(self) -> list[TextChunk]:
        self._pending += self._decoder.finish()
        return self._process(final=True)

    def _process(self, final: bool) -> list[TextChunk]:
        out: list[TextChunk] = []
        if self._reader is None:
            head = self._pending[:DELIMITER_SNIFF_CHARS]
            if not (
                final
                or len(head) >= DELIMITER_SNIFF_CHARS
                or head.count("\n") >= DELIMITER_SNIFF_LINES
            ):
                return out
            if self._delimiter is None:
                self._delimiter = sniff_delimiter(head)
            self._reader = self._new_reader()
        while self._pending and not self._emitter.capped:
            if final:
                block, rest = self._pending, ""
            else:
                cut = self._pending.rfind("\n")
                if cut < 0:
                    if len(self._pending) > MAX_RECORD_CHARS:
                        self._force_cut(out)
                        continue
                    break
                block, rest = self._pending[: cut + 1], self._pending[cut + 1 :]
            oversized = self._parse(block, final, out)
            leftover = "".join(self._lines.lines[self._lines.pos :])
            self._lines.lines = []
            self._pending = leftover + rest if leftover else rest
            if oversized or len(self._pending) > MAX_RECORD_CHARS:
                self._force_cut(out)
                continue
            break
        return out

    def _force_cut(self, out: list[TextChunk]) -> None:
        """Parse the first MAX_RECORD_CHARS of a record that does not end as a whole."""
        self._note("text_csv_record_too_long", f"a record longer than {MAX_RECORD_CHARS} chars")
        head, self._pending = self._pending[:MAX_RECORD_CHARS], self._pending[MAX_RECORD_CHARS:]
        self._parse(head, True, out)
        self._lines.lines = []

    def _parse(self, block: str, final: bool, out: list[TextChunk]) -> bool:
        """Emit the complete records of `block`; True when one is longer than allowed (then
        `_lines.pos` is at its first line)."""
        feed = self._lines
        feed.lines = list(io.StringIO(block, newline=""))
        feed.pos = 0
        reader = self._reader
        assert reader is not None
        while True:
            start = feed.pos
            feed.starved = False
            try:
                row = next(reader)
            except StopIteration:
                return False
            except csv.Error as exc:
                reader = self._reader = self._new_reader()
                if sum(map(len, feed.lines[start : feed.pos])) > MAX_RECORD_CHARS:
                    feed.pos = start  # csv's field limit: a record too long, cut it
                    return True
                self._note("text_csv_malformed", str(exc)[:80])
                continue
            if feed.starved and not final:
                feed.pos = start  # the record is not complete yet
                return False
            used = feed.pos - start
            if (used != 1 or len(feed.lines[start]) > MAX_RECORD_CHARS) and (
                sum(map(len, feed.lines[start : feed.pos])) > MAX_RECORD_CHARS
            ):
                feed.pos = start
                self._reader = self._new_reader()
                return True
            self._record += 1
            if not row or (len(row) == 1 and not row[0]):
                continue
            if self._record == 1 and looks_like_header(row):
                self._headers = tuple(cell.strip() for cell in row)
                self._emit(row, None, out)
            else:
                self._emit(row, self._headers, out)
            if self._emitter.capped:
                return False

    def _emit(self, row: list[str], headers: tuple[str, ...] | None, out: list[TextChunk]) -> None:
        text = "\t".join(row)
        emitter = self._emitter
        size = emitter.room(len(text))
        if size <= 0:
            return
        cells = (0, *accumulate(map(_PLUS_ONE, map(len, row[:-1]))))
        if size < len(text):
            text = text[:size]
            cells = tuple(start for start in cells if start < size)
        out.append(
            RowChunk(
                text,
                TextPosition(emitter.offset, self._part, None, self._record),
                None,
                cells,
                headers,
            )
        )
        emitter.offset += size

    def _new_reader(self) -> Iterator[list[str]]:
        # strict=False: a stray quote inside an unquoted field is kept as text (RFC 4180 §2
        # forbids it, exports still do it).
        return csv.reader(
            self._lines, delimiter=self._delimiter or ",", quotechar='"', strict=False
        )

    def _note(self, kind: str, detail: str) -> None:
        if kind not in self._noted:
            self._noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail))
