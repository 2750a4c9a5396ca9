"""Text extraction stage, SpreadsheetML workbooks (ECMA-376 Part 1 §18): an xlsx read as one
table text, its shared strings resolved and each sheet's first row applied as column headers.

In: the parts of one workbook as the ZIP opener streams them (document.py):
xl/sharedStrings.xml (the string table: item k is the text of every cell `t="s"` whose value
is k) and xl/worksheets/sheetN.xml (rows of cells: numbers, inline strings, formula results,
and shared-string indices). Out: one `RowChunk` (delimited.py) per non-empty row: its cells'
texts joined by TAB, `cells` = where each starts, `position` = (sheet part, "sheetN", row
number), and, for rows after a sheet's first row when that row is a header (every cell a short
non-numeric label, as for CSV), `headers` = the label of each cell's column. The classifier
maps a match to its cell and header exactly as for a CSV row, so a `bsn` header counts for a
column of numeric BSN cells and an `ordernummer` header vetoes a column of order numbers.

Order. A ZIP's members come in the order the writer chose, and xl/sharedStrings.xml often
comes after the sheets (Excel writes it late). A row is emitted as soon as every string it
uses is known: a sheet read after the string table streams straight through. A sheet read
before it waits: its first row that uses a shared string, and every later row of that sheet
(they need the header row), are held as cells with unresolved indices until the string table
ends, then go out resolved, in order. What waits is bounded by `max_pending_cells` cells and
`max_pending_chars` characters of cell text (together about 20 MB at the defaults, enough for
an export of some 25,000 rows of 10 columns). Past either cap (`text_xlsx_strings_late`,
once) the held rows and every later row go out at once with their shared-string cells left
empty, and the string table, when it comes, is handed out as text of its own (one chunk per
item) so that no text is lost: only the joining of headers to cells is. The string table
itself is kept up to `max_strings` items and `max_string_chars` characters (about 30 MB at
the defaults); items beyond it are handed out as text of their own and the cells that use
them stay empty (`text_xlsx_strings_cap`). A workbook that ends with rows still waiting (no
string table, or a cut one) emits them as they are (`text_xlsx_strings_missing`).

Not done: cell styles are not read, so a date stored as a serial number reads as that number;
sheet display names (xl/workbook.xml) are not read ("sheetN" stands for the sheet).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextExtractor, TextPosition
from sensor.content.text.delimited import RowChunk, looks_like_header
from sensor.content.text.document import part_name
from sensor.content.text.emitter import MAX_CHUNK_CHARS, MAX_TEXT_CHARS, ChunkEmitter
from sensor.content.text.markup import ExpatExtractor
from sensor.content.text.ooxml import cell_reference, local

MAX_SHEET_COLUMNS = 16384  # XFD, ECMA-376 §18.3.1.4 limit
MAX_SHEET_ROWS = 1048576
MAX_CELL_CHARS = 32767  # Excel's own limit on the text of one cell; more is dropped
MAX_ROW_CHARS = MAX_CHUNK_CHARS  # a row's text is cut there (its later cells dropped)
MAX_SHARED_STRINGS = 262_144  # string-table items kept for resolving cells
MAX_SHARED_STRING_CHARS = 4 * 1024 * 1024  # ... and their characters
MAX_PENDING_CELLS = 262_144  # cells of rows held for a string table still to come
MAX_PENDING_CHARS = 4 * 1024 * 1024  # ... and the characters of their literal values
MAX_DENSE_COLUMNS = 1024  # a header row reaching further is looked up per cell
_PLUS_ONE = (1).__add__
_SHARED_STRINGS = "xl/sharedstrings.xml"
_SHEET_PREFIX = "xl/worksheets/sheet"


@dataclass(slots=True)
class _Sheet:
    part: str
    name: str
    started: bool = False  # its first row went out (it decided the header)
    header: dict[int, str] | None = None  # column -> label
    dense_header: tuple[str, ...] | None = None  # the labels of columns 1..n, no gaps
    waiting: int = 0  # its rows held in Workbook._pending


@dataclass(slots=True)
class _Row:
    sheet: _Sheet
    number: int
    columns: list[int] = field(default_factory=list)
    values: list[str | int] = field(default_factory=list)  # text, or a shared-string index
    shared: bool = False  # some value is an index


class Workbook:
    """The `DocumentText` of one xlsx/xlsm/xltx/xltm (see the module docstring)."""

    def __init__(
        self,
        *,
        max_chars: int = MAX_TEXT_CHARS,
        max_strings: int = MAX_SHARED_STRINGS,
        max_string_chars: int = MAX_SHARED_STRING_CHARS,
        max_pending_cells: int = MAX_PENDING_CELLS,
        max_pending_chars: int = MAX_PENDING_CHARS,
    ) -> None:
        self.anomalies: list[Anomaly] = []
        self._emitter = ChunkEmitter(self.anomalies, max_chars)
        self._max_strings = max_strings
        self._max_string_chars = max_string_chars
        self._max_pending_cells = max_pending_cells
        self._max_pending_chars = max_pending_chars
        self._strings: list[str] = []
        self._string_chars = 0
        self._strings_read = False  # the string table ended
        self._strings_cut = False  # items past the caps were not kept
        self._late = False  # the pending caps were passed: nothing waits any more
        self._emptied = False  # some shared-string cell went out empty
        self._pending: deque[_Row] = deque()
        self._pending_cells = 0
        self._pending_chars = 0
        self._sheets: dict[str, _Sheet] = {}
        self._noted: set[str] = set()

    # -- DocumentText ----------------------------------------------------------------------

    def part(self, name: str) -> TextExtractor | None:
        normal = part_name(name)
        folded = normal.lower()
        if folded == _SHARED_STRINGS:
            return SharedStringsReader(self, part=normal)
        if folded.startswith(_SHEET_PREFIX) and folded.endswith(".xml"):
            number = folded[len(_SHEET_PREFIX) : -4]
            if number.isdigit():
                sheet = self._sheets.get(normal)
                if sheet is None:
                    sheet = self._sheets[normal] = _Sheet(normal, f"sheet{int(number)}")
                return WorksheetReader(self, sheet)
        return None

    def finish(self) -> list[TextChunk]:
        out: list[TextChunk] = []
        if self._pending:
            self._note(
                "text_xlsx_strings_missing",
                "rows used shared strings that never came; their cells stay empty",
            )
            self._release(out)
        return out

    # -- from the part readers -------------------------------------------------------------

    @property
    def emitter(self) -> ChunkEmitter:
        return self._emitter

    def add_string(self, out: list[TextChunk], text: str, part: str) -> None:
        """String-table item number len(strings) (every item counts, empty ones too)."""
        if self._strings_cut or (
            len(self._strings) >= self._max_strings
            or self._string_chars + len(text) > self._max_string_chars
        ):
            if not self._strings_cut:
                self._strings_cut = True
                self._note(
                    "text_xlsx_strings_cap",
                    f"more than {self._max_strings} shared strings or "
                    f"{self._max_string_chars} characters: the rest is text of its own",
                )
            if text:
                self._emitter.emit(out, text, part=part)
            return
        self._strings.append(text)
        self._string_chars += len(text)
        if self._late and text:
            self._emitter.emit(out, text, part=part)  # its cells already went out empty

    def strings_read(self, out: list[TextChunk]) -> None:
        """The string table ended: the rows waiting for it go out."""
        self._strings_read = True
        self._release(out)

    def add_row(self, out: list[TextChunk], row: _Row) -> None:
        """A complete row of a sheet: out now, or held until the string table is known."""
        sheet = row.sheet
        if not row.values:
            return
        if self._strings_read or self._late or not (row.shared or sheet.waiting):
            self._emit(out, row)
            return
        self._pending.append(row)
        sheet.waiting += 1
        self._pending_cells += len(row.values)
        self._pending_chars += sum(len(v) for v in row.values if isinstance(v, str))
        if (
            self._pending_cells > self._max_pending_cells
            or self._pending_chars > self._max_pending_chars
        ):
            self._late = True
            self._note(
                "text_xlsx_strings_late",
                f"more than {self._max_pending_cells} cells or {self._max_pending_chars} "
                "characters waited for xl/sharedStrings.xml; read without its strings",
            )
            self._release(out)

    # -- inside ----------------------------------------------------------------------------

    def _release(self, out: list[TextChunk]) -> None:
        pending = self._pending
        while pending:
            row = pending.popleft()
            row.sheet.waiting -= 1
            self._emit(out, row)
        self._pending_cells = self._pending_chars = 0

    def _resolve(self, value: str | int) -> str:
        if isinstance(value, str):
            return value
        if value < len(self._strings):
            return self._strings[value]
        self._emptied = True
        return ""

    def _emit(self, out: list[TextChunk], row: _Row) -> None:
        sheet = row.sheet
        texts = [self._resolve(v) for v in row.values]
        headers: tuple[str, ...] | None = None
        if not sheet.started:
            sheet.started = True
            labels = [t for t in texts if t]
            if labels and looks_like_header(labels):
                sheet.header = {c: t.strip() for c, t in zip(row.columns, texts, strict=True)}
                last = max(sheet.header)
                if last <= MAX_DENSE_COLUMNS:
                    sheet.dense_header = tuple(sheet.header.get(c, "") for c in range(1, last + 1))
        elif sheet.header is not None:
            columns = row.columns
            if sheet.dense_header is not None and columns[-1] == len(columns):
                headers = sheet.dense_header  # cells in columns 1..n: no lookup per cell
            else:
                headers = tuple(sheet.header.get(c, "") for c in columns)
        text = "\t".join(texts)
        cells = (0, *accumulate(map(_PLUS_ONE, map(len, texts[:-1]))))
        if len(text) > MAX_ROW_CHARS:
            self._note("text_xlsx_row_too_long", f"a row longer than {MAX_ROW_CHARS} characters")
            text = text[:MAX_ROW_CHARS]
            cells = tuple(start for start in cells if start < MAX_ROW_CHARS)
        emitter = self._emitter
        size = emitter.room(len(text))
        if size <= 0:
            return
        if size < len(text):
            text = text[:size]
            cells = tuple(start for start in cells if start < size)
        position = TextPosition(emitter.offset, sheet.part, sheet.name, row.number)
        out.append(RowChunk(text, position, None, cells, headers))
        emitter.offset += size

    def _note(self, kind: str, detail: str) -> None:
        if kind not in self._noted:
            self._noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail))


class SharedStringsReader(ExpatExtractor):
    """xl/sharedStrings.xml into its workbook: one string per item (<si>), its runs joined,
    phonetic runs (<rPh>) left out."""

    def __init__(self, workbook: Workbook, *, part: str) -> None:
        super().__init__(part=part, namespaces=True, emitter=workbook.emitter)
        self._workbook = workbook
        self._in_item = False
        self._in_text = False
        self._phonetic = 0
        self._pieces: list[str] = []
        self._size = 0

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "si":
            self._in_item = True
            self._pieces, self._size = [], 0
        elif tag == "t":
            self._in_text = True
        elif tag == "rPh":
            self._phonetic += 1

    def _end(self, name: str) -> None:
        tag = local(name)
        if tag == "si" and self._in_item:
            self._in_item = False
            text = "".join(self._pieces).strip()
            self._pieces, self._size = [], 0
            self._workbook.add_string(self._out, text, self._part or _SHARED_STRINGS)
        elif tag == "t":
            self._in_text = False
        elif tag == "rPh":
            self._phonetic = max(0, self._phonetic - 1)

    def _chars(self, data: str) -> None:
        if self._in_item and self._in_text and not self._phonetic:
            room = MAX_CELL_CHARS - self._size
            if room > 0:
                piece = data[:room]
                self._pieces.append(piece)
                self._size += len(piece)

    def _finish(self) -> None:
        self._workbook.strings_read(self._out)


class WorksheetReader(ExpatExtractor):
    """xl/worksheets/sheetN.xml into its workbook: rows of value cells (<v> of numbers,
    t="str" formula results, dates, errors; t="inlineStr" text; t="s" shared-string
    indices), booleans left out. Row and column come from the references (r="7", r="B7"),
    or are counted where they are missing."""

    def __init__(self, workbook: Workbook, sheet: _Sheet) -> None:
        super().__init__(part=sheet.part, namespaces=True, emitter=workbook.emitter)
        self._workbook = workbook
        self._sheet = sheet
        self._row: _Row | None = None
        self._row_number = 0
        self._column = 0
        self._type: str | None = None
        self._capture = False  # inside <v>, or <t> of an inline string
        self._in_inline = False
        self._pieces: list[str] = []
        self._size = 0

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "c":
            self._type = attrs.get("t")
            place = cell_reference(attrs.get("r", ""))
            if place is not None and place[1] <= MAX_SHEET_COLUMNS:
                if self._row is None or place[0] != self._row.number:
                    self._open_row(place[0])
                self._column = place[1]
            else:
                if self._row is None:
                    self._open_row(min(self._row_number + 1, MAX_SHEET_ROWS))
                self._column = min(self._column + 1, MAX_SHEET_COLUMNS)
            self._pieces, self._size = [], 0
        elif tag == "row":
            ref = attrs.get("r", "")
            number = int(ref) if ref.isdigit() and len(ref) <= 7 else self._row_number + 1
            self._open_row(min(number, MAX_SHEET_ROWS))
        elif tag == "v":
            self._capture = self._type != "b" and self._type != "inlineStr"
        elif tag == "is":
            self._in_inline = True
        elif tag == "t" and self._in_inline:
            self._capture = True

    def _end(self, name: str) -> None:
        tag = local(name)
        if tag in ("v", "t"):
            self._capture = False
        elif tag == "is":
            self._in_inline = False
        elif tag == "c":
            self._capture = False
            self._cell("".join(self._pieces).strip())
            self._pieces, self._size = [], 0
        elif tag == "row":
            self._close_row()

    def _chars(self, data: str) -> None:
        if self._capture:
            room = MAX_CELL_CHARS - self._size
            if room > 0:
                piece = data[:room]
                self._pieces.append(piece)
                self._size += len(piece)

    def _finish(self) -> None:
        self._close_row()  # a part cut inside a row

    def _open_row(self, number: int) -> None:
        self._close_row()
        self._row = _Row(self._sheet, number)
        self._row_number = number
        self._column = 0

    def _close_row(self) -> None:
        row, self._row = self._row, None
        if row is not None:
            self._workbook.add_row(self._out, row)

    def _cell(self, text: str) -> None:
        row = self._row
        if not text or row is None:
            return
        value: str | int = text
        if self._type == "s":
            if not (text.isascii() and text.isdigit() and len(text) <= 9):
                return  # not an index: nothing a reader would see
            value = int(text)
            row.shared = True
        row.columns.append(self._column)
        row.values.append(value)
