"""Text extraction stage, documents made of parts: an OOXML or ODF package read as one object.

In: a container the fingerprint recognised as a document (docx, xlsx, pptx, odt, ods, ...),
then the names of its members as the ZIP opener streams them. Out: a `DocumentText` whose
`part(name)` is the extractor of a member that holds document text (None for styles,
relationships, properties and embedded files, which are objects of their own), every one of
them emitting through the document's one `ChunkEmitter`: offsets run on from part to part and
`max_chars` caps the document, not each part; `finish()` hands out what was held until the
document ended (a workbook's rows still waiting for their shared strings, workbook.py).

Why one text per document: a DLP finding is about the file a person sent, and the evidence
of one file is spread over its parts. A workbook keeps its column headers and every other
string in xl/sharedStrings.xml and its numbers (a BSN typed into a cell is a number) in
xl/worksheets/sheetN.xml: scored apart, an order list's `ordernummer` header never meets its
order numbers and a patient table's `BSN` header never meets its BSNs. The content stage
(objects.py) therefore gives all parts of a document one text consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextExtractor
from sensor.content.text.emitter import MAX_TEXT_CHARS, ChunkEmitter

# The extractor of one part (by its normalised name) emitting through the document's emitter,
# or None when the part holds no document text.
PartSelector = Callable[[str, ChunkEmitter], TextExtractor | None]


class DocumentText(Protocol):
    """The text of one multi-part document (see the module docstring)."""

    anomalies: list[Anomaly]

    def part(self, name: str) -> TextExtractor | None:
        """The extractor of member `name`, or None (not a part with document text)."""
        ...

    def finish(self) -> list[TextChunk]:
        """The document ended: the chunks still held."""
        ...


def part_name(name: str) -> str:
    """A member name as the part selectors compare it: forward slashes, no leading slash."""
    return name.replace("\\", "/").lstrip("/")


class PartsDocument:
    """A document whose parts are read one after the other, each on its own (Word, slides,
    ODF): nothing waits for another part."""

    def __init__(self, select: PartSelector, *, max_chars: int = MAX_TEXT_CHARS) -> None:
        self.anomalies: list[Anomaly] = []
        self._emitter = ChunkEmitter(self.anomalies, max_chars)
        self._select = select

    def part(self, name: str) -> TextExtractor | None:
        return self._select(part_name(name), self._emitter)

    def finish(self) -> list[TextChunk]:
        return []
