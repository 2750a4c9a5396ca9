"""Text extraction stage, Office Open XML parts (ECMA-376 Part 1): the members of a
docx/pptx that hold text, read as parts of their document (document.py: one text per file,
the ZIP opener streams the members). Workbooks (xlsx) are read by workbook.py.

In: one part's bytes in order (any split) and its name. Out:
- WordprocessingML (word/document.xml, headers, footers, footnotes, endnotes, comments):
  one `TextChunk` per paragraph (<w:p>), runs joined (a number split over two <w:r> runs stays
  whole), <w:tab/> as TAB, <w:br/>/<w:cr/> as newline; deleted text (<w:delText>) counts.
- PresentationML slides and notes (ppt/slides/slideN.xml, ppt/notesSlides/notesSlideN.xml):
  one chunk per paragraph (<a:p>), `page` = N.
Elements are matched by local name (namespace processing), so transitional and strict
OOXML read the same.
"""

from __future__ import annotations

import re

from sensor.content.text.emitter import MAX_TEXT_CHARS, ChunkEmitter, FlowingText
from sensor.content.text.markup import ExpatExtractor

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

    def __init__(
        self,
        *,
        part: str,
        page: int | None = None,
        max_chars: int = MAX_TEXT_CHARS,
        emitter: ChunkEmitter | None = None,
    ):
        super().__init__(part=part, namespaces=True, max_chars=max_chars, emitter=emitter)
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
