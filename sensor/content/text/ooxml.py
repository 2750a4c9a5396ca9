"""Text extraction stage, Office Open XML parts (ECMA-376 Part 1): the members of a
docx/xlsx/pptx that hold text, each fed as an object of its own (the ZIP opener streams them).

In: one part's bytes in order (any split) and its name. Out:
- WordprocessingML (word/document.xml, headers, footers, footnotes, endnotes, comments):
  one `TextChunk` per paragraph (<w:p>), runs joined (a number split over two <w:r> runs stays
  whole), <w:tab/> as TAB, <w:br/>/<w:cr/> as newline; deleted text (<w:delText>) counts.
- SpreadsheetML shared strings (xl/sharedStrings.xml): one chunk per string item (<si>),
  phonetic runs (<rPh>) left out. The index of an item is its order; cells that use it
  (t="s") are not joined to it: that would need the whole table in memory.
- SpreadsheetML worksheets (xl/worksheets/sheetN.xml): one chunk per inline-string cell
  (t="inlineStr") and per value cell (<v> of numbers, t="str" formula results, dates, errors:
  BSNs are often stored as numbers), with sheet ("sheetN": the display name is in
  workbook.xml, not read here), row and column from the cell reference (r="B7"), or counted
  when it is missing. No header: row 1 is usually shared strings.
- PresentationML slides and notes (ppt/slides/slideN.xml, ppt/notesSlides/notesSlideN.xml):
  one chunk per paragraph (<a:p>), `page` = N.
Elements are matched by local name (namespace processing), so transitional and strict
OOXML read the same.
"""

from __future__ import annotations

import re

from sensor.content.text.emitter import MAX_TEXT_CHARS, FlowingText
from sensor.content.text.markup import ExpatExtractor

MAX_SHEET_COLUMNS = 16384  # XFD, ECMA-376 §18.3.1.4 limit
MAX_SHEET_ROWS = 1048576
_CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")
_PART_NUMBER = re.compile(r"(\d+)\.xml$")


def local(name: str) -> str:
    """The local part of an expat "uri local" name."""
    return name.rpartition(" ")[2]


def cell_reference(ref: str) -> tuple[int, int] | None:
    """(row, column), 1-based, of an A1-style reference; None when it is not one."""
    m = _CELL_REF.fullmatch(ref)
    if m is None:
        return None
    column = 0
    for letter in m.group(1).upper():
        column = column * 26 + ord(letter) - 64
    return int(m.group(2)), column


def part_number(name: str) -> int | None:
    """N of "…/slideN.xml" / "…/sheetN.xml"."""
    m = _PART_NUMBER.search(name)
    return int(m.group(1)) if m else None


class _Paragraphs(ExpatExtractor):
    """Paragraph text from <p> elements whose runs hold <t> text (Word and DrawingML)."""

    TEXT = frozenset({"t"})
    PARAGRAPH = "p"

    def __init__(self, *, part: str, page: int | None = None, max_chars: int = MAX_TEXT_CHARS):
        super().__init__(part=part, namespaces=True, max_chars=max_chars)
        self._page = page
        self._in_text = 0
        self._text = FlowingText()

    def _flush(self) -> None:
        text = self._text.rest().strip()
        if text:
            self._emitter.emit(self._out, text, part=self._part, page=self._page)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag in self.TEXT:
            self._in_text += 1
        elif tag == self.PARAGRAPH:
            self._flush()
        elif tag == "tab":
            self._text.add("\t")
        elif tag in ("br", "cr"):
            self._text.add("\n")

    def _end(self, name: str) -> None:
        tag = local(name)
        if tag in self.TEXT:
            self._in_text = max(0, self._in_text - 1)
        elif tag == self.PARAGRAPH:
            self._flush()

    def _chars(self, data: str) -> None:
        if self._in_text:
            self._text.add(data)
            for run in self._text.full():
                self._emitter.emit(self._out, run, part=self._part, page=self._page)

    def _finish(self) -> None:
        self._flush()


class WordprocessingExtractor(_Paragraphs):
    """Paragraphs of a WordprocessingML part."""

    TEXT = frozenset({"t", "delText"})


class SlideExtractor(_Paragraphs):
    """Paragraphs of a PresentationML slide or notes slide; `page` = the slide number."""


class SharedStringsExtractor(ExpatExtractor):
    """String items of xl/sharedStrings.xml."""

    def __init__(self, *, part: str, max_chars: int = MAX_TEXT_CHARS) -> None:
        super().__init__(part=part, namespaces=True, max_chars=max_chars)
        self._in_text = False
        self._phonetic = 0
        self._text = FlowingText()

    def _flush(self) -> None:
        text = self._text.rest().strip()
        if text:
            self._emitter.emit(self._out, text, part=self._part)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "t":
            self._in_text = True
        elif tag == "si":
            self._flush()
        elif tag == "rPh":
            self._phonetic += 1

    def _end(self, name: str) -> None:
        tag = local(name)
        if tag == "t":
            self._in_text = False
        elif tag == "si":
            self._flush()
        elif tag == "rPh":
            self._phonetic = max(0, self._phonetic - 1)

    def _chars(self, data: str) -> None:
        if self._in_text and not self._phonetic:
            self._text.add(data)
            for run in self._text.full():
                self._emitter.emit(self._out, run, part=self._part)

    def _finish(self) -> None:
        self._flush()


class WorksheetExtractor(ExpatExtractor):
    """Inline-string and value cells of one worksheet, with their place."""

    # Cell types (t=) whose <v> is not text of the cell: shared-string index, boolean.
    SKIP_TYPES = frozenset({"s", "b"})

    def __init__(self, *, part: str, sheet: str | None, max_chars: int = MAX_TEXT_CHARS):
        super().__init__(part=part, namespaces=True, max_chars=max_chars)
        self._sheet = sheet
        self._row = 0
        self._column = 0
        self._type: str | None = None
        self._capture = False  # inside <v>, or <t> of an inline string
        self._in_inline = False
        self._text = FlowingText()

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "c":
            self._type = attrs.get("t")
            place = cell_reference(attrs.get("r", ""))
            if place is not None:
                self._row, self._column = place
            else:
                self._column = min(self._column + 1, MAX_SHEET_COLUMNS)
            self._text.rest()
        elif tag == "row":
            ref = attrs.get("r", "")
            self._row = (
                int(ref) if ref.isdigit() and len(ref) <= 7 else min(self._row + 1, MAX_SHEET_ROWS)
            )
            self._column = 0
        elif tag == "v":
            self._capture = self._type not in self.SKIP_TYPES and self._type != "inlineStr"
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
            text = self._text.rest().strip()
            if text:
                self._emitter.emit(
                    self._out,
                    text,
                    part=self._part,
                    sheet=self._sheet,
                    row=self._row or None,
                    column=self._column or None,
                )

    def _chars(self, data: str) -> None:
        if self._capture:
            self._text.add(data)
            for run in self._text.full():
                self._emitter.emit(
                    self._out, run, part=self._part, sheet=self._sheet, row=self._row or None,
                    column=self._column or None,
                )  # fmt: skip

    def _finish(self) -> None:
        pass
