"""Text extraction stage, OpenDocument content (ODF 1.2 Part 1): content.xml of an odt, ods
or odp, the one text part of its document (document.py).

In: content.xml's bytes in order (any split). Out:
- text paragraphs and headings (<text:p>, <text:h>) outside tables: one `TextChunk` each,
  spans joined, <text:s text:c="n"/> as spaces, <text:tab/> TAB, <text:line-break/> newline;
- table cells (<table:table-cell>): one chunk per non-empty cell, its paragraphs joined by
  newlines, with `sheet` = the table's name, `row` and `column` (1-based, counting
  number-rows-repeated / number-columns-repeated); when the cell's office:value differs from
  its displayed text (a number shown with thousands separators) the value follows the text
  on a new line;
- presentations: `page` = the <draw:page> number.
Elements and attributes are matched by local name (namespace processing).
"""

from __future__ import annotations

from sensor.content.text.emitter import MAX_TEXT_CHARS, ChunkEmitter, FlowingText
from sensor.content.text.markup import ExpatExtractor
from sensor.content.text.ooxml import local

MAX_ODF_SPACES = 1024  # <text:s text:c="n"/> expands to at most this many spaces
MAX_ODF_REPEAT = 1048576  # a repeat count larger than this is taken as this (a sheet's rows)


def _count(value: str | None) -> int:
    if value and value.isdigit() and len(value) <= 7:
        return max(1, min(int(value), MAX_ODF_REPEAT))
    return 1


class OdfContentExtractor(ExpatExtractor):
    """Paragraphs and cells of one content.xml (see the module docstring)."""

    def __init__(
        self,
        *,
        part: str = "content.xml",
        max_chars: int = MAX_TEXT_CHARS,
        emitter: ChunkEmitter | None = None,
    ) -> None:
        super().__init__(part=part, namespaces=True, max_chars=max_chars, emitter=emitter)
        self._text = FlowingText()
        self._paragraphs = 0  # open <text:p>/<text:h> elements
        self._sheet: str | None = None
        self._row = 0
        self._row_repeat = 1
        self._column = 0
        self._column_repeat = 1
        self._in_cell = 0
        self._value: str | None = None
        self._page: int | None = None

    def _emit(self, text: str) -> None:
        if self._in_cell:
            self._emitter.emit(
                self._out, text, part=self._part, sheet=self._sheet, row=self._row,
                column=self._column, page=self._page,
            )  # fmt: skip
        else:
            self._emitter.emit(self._out, text, part=self._part, page=self._page)

    def _flush(self) -> None:
        text = self._text.rest().strip()
        if text:
            self._emit(text)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag in ("p", "h"):
            if self._in_cell:
                if len(self._text):
                    self._text.add("\n")
            else:
                self._flush()
            self._paragraphs += 1
        elif tag == "s":
            self._text.add(" " * min(_count(_attr(attrs, "c")), MAX_ODF_SPACES))
        elif tag == "tab":
            self._text.add("\t")
        elif tag == "line-break":
            self._text.add("\n")
        elif tag in ("table-cell", "covered-table-cell"):
            self._flush()
            self._column += 1
            self._column_repeat = _count(_attr(attrs, "number-columns-repeated"))
            self._in_cell += 1
            self._value = _attr(attrs, "value")
        elif tag == "table-row":
            self._row += 1
            self._row_repeat = _count(_attr(attrs, "number-rows-repeated"))
            self._column = 0
        elif tag == "table":
            self._flush()
            self._sheet = (_attr(attrs, "name") or "")[:128] or None
            self._row = 0
        elif tag == "page":
            self._flush()
            self._page = (self._page or 0) + 1

    def _end(self, name: str) -> None:
        tag = local(name)
        if tag in ("p", "h"):
            self._paragraphs = max(0, self._paragraphs - 1)
            if not self._in_cell:
                self._flush()
        elif tag in ("table-cell", "covered-table-cell"):
            text = self._text.rest().strip()
            value = self._value
            if value and value != text and value not in text:
                text = f"{text}\n{value}" if text else value
            if text:
                self._emit(text)
            self._in_cell = max(0, self._in_cell - 1)
            self._column = min(self._column + self._column_repeat - 1, MAX_ODF_REPEAT)
            self._value = None
        elif tag == "table-row":
            self._row = min(self._row + self._row_repeat - 1, MAX_ODF_REPEAT)

    def _chars(self, data: str) -> None:
        if self._paragraphs:
            self._text.add(data)
            for run in self._text.full():
                self._emit(run)

    def _finish(self) -> None:
        self._flush()


def _attr(attrs: dict[str, str], name: str) -> str | None:
    """An attribute by local name ("uri local" keys)."""
    for key, value in attrs.items():
        if local(key) == name:
            return value
    return None
