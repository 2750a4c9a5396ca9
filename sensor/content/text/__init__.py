"""Text extraction stage: the text inside one object, in bounded chunks, for the
classification stage.

In: the object's fingerprint type id, its member name and its container's type (for members
of containers), the declared charset; then its bytes in order. Out: a `TextExtractor`
(sensor/content/fingerprint/base.py) that hands out `TextChunk`s, or None when the type has
no text of its own: containers and binaries (zip, docx, xlsx, gzip, tar, jpeg, ...) are
opened elsewhere and each member reaches `text_extractor` as an object of its own, with
`name` = the member name and `parent_type` = the container's type.

Documents made of parts (OOXML docx/xlsx/pptx, ODF) are read as one text each:
`document_text(type)` gives the container its `DocumentText` (document.py), whose
`part(name)` is the extractor of each member that holds document text (ooxml.py,
workbook.py, odf.py). `text_extractor` gives those parts, and the styles, relationships,
settings and properties of such a container, None; its other members (an embedded CSV) go
by their own type.

Every extractor caps what it hands out at `max_chars` characters (`text_cap`, once) and
never raises on hostile bytes. Anomaly kinds all start with "text_".
"""

from __future__ import annotations

import re

from sensor.content.fingerprint.base import TextExtractor
from sensor.content.text.delimited import DelimitedExtractor
from sensor.content.text.document import DocumentText, PartsDocument
from sensor.content.text.emitter import MAX_TEXT_CHARS, ChunkEmitter
from sensor.content.text.hl7 import PlainOrHl7Extractor
from sensor.content.text.jsontext import JsonExtractor
from sensor.content.text.markup import HtmlExtractor, XmlExtractor
from sensor.content.text.odf import OdfContentExtractor
from sensor.content.text.ooxml import SlideExtractor, WordprocessingExtractor, part_number
from sensor.content.text.pdf import PdfExtractor
from sensor.content.text.plain import PlainTextExtractor
from sensor.content.text.rtf import RtfExtractor
from sensor.content.text.workbook import Workbook

__all__ = ["MAX_TEXT_CHARS", "DocumentText", "document_text", "text_extractor"]

WORD_TYPES = frozenset({"docx", "docm", "dotx", "dotm"})
SHEET_TYPES = frozenset({"xlsx", "xlsm", "xltx", "xltm"})
SLIDE_TYPES = frozenset({"pptx", "pptm", "potx", "ppsx", "ppsm"})
ODF_TYPES = frozenset({"odt", "ods", "odp", "odg", "ott", "ots", "otp"})
OFFICE_TYPES = WORD_TYPES | SHEET_TYPES | SLIDE_TYPES | ODF_TYPES

_WORD_PART = re.compile(
    r"word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml", re.IGNORECASE
)
_SLIDE = re.compile(r"ppt/(?:slides/slide|notesSlides/notesSlide)\d+\.xml", re.IGNORECASE)
_XMLISH = re.compile(r"\.(?:xml|rels|vml)$", re.IGNORECASE)


def _word_part(name: str, emitter: ChunkEmitter) -> TextExtractor | None:
    if _WORD_PART.fullmatch(name):
        return WordprocessingExtractor(part=name, emitter=emitter)
    return None


def _slide_part(name: str, emitter: ChunkEmitter) -> TextExtractor | None:
    if _SLIDE.fullmatch(name):
        return SlideExtractor(part=name, page=part_number(name), emitter=emitter)
    return None


def _odf_part(name: str, emitter: ChunkEmitter) -> TextExtractor | None:
    if name.lower() == "content.xml":
        return OdfContentExtractor(part=name, emitter=emitter)
    return None


def document_text(type_id: str | None, *, max_chars: int = MAX_TEXT_CHARS) -> DocumentText | None:
    """The text of a document made of parts, for a container of type `type_id` (docx, xlsx,
    pptx, odt, ... and their macro and template variants), or None for any other type."""
    kind = (type_id or "").lower()
    if kind in WORD_TYPES:
        return PartsDocument(_word_part, max_chars=max_chars)
    if kind in SHEET_TYPES:
        return Workbook(max_chars=max_chars)
    if kind in SLIDE_TYPES:
        return PartsDocument(_slide_part, max_chars=max_chars)
    if kind in ODF_TYPES:
        return PartsDocument(_odf_part, max_chars=max_chars)
    return None


def text_extractor(
    type_id: str,
    *,
    name: str | None = None,
    parent_type: str | None = None,
    charset: str | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> TextExtractor | None:
    """A fresh extractor for one object of fingerprint type `type_id`, or None (see the
    module docstring)."""
    kind = (type_id or "").lower()
    parent = (parent_type or "").lower()
    # In a document, its own parts are read through its `document_text`; the rest of its
    # package (styles, relationships, properties) holds no text a person wrote.
    if (
        parent in OFFICE_TYPES
        and name is not None
        and (kind in ("xml", "html") or _XMLISH.search(name))
    ):
        return None
    if kind in ("text", "txt"):  # an HL7 v2 message is text too, read by its fields
        return PlainOrHl7Extractor(charset=charset, part=name, max_chars=max_chars)
    if kind == "markdown":
        return PlainTextExtractor(charset=charset, part=name, max_chars=max_chars)
    if kind == "csv":
        return DelimitedExtractor(charset=charset, part=name, max_chars=max_chars)
    if kind == "tsv":
        return DelimitedExtractor(delimiter="\t", charset=charset, part=name, max_chars=max_chars)
    if kind in ("json", "ndjson", "jsonl"):
        return JsonExtractor(charset=charset, part=name, max_chars=max_chars)
    if kind in ("xml", "svg"):
        return XmlExtractor(charset=charset, part=name, max_chars=max_chars)
    if kind in ("html", "xhtml"):
        return HtmlExtractor(charset=charset, part=name, max_chars=max_chars)
    if kind == "rtf":
        return RtfExtractor(part=name, max_chars=max_chars)
    if kind == "pdf":
        return PdfExtractor(part=name, max_chars=max_chars)
    return None
