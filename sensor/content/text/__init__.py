"""Text extraction stage: the text inside one object, in bounded chunks, for the
classification stage.

In: the object's fingerprint type id, its member name and its container's type (for members
of containers), the declared charset; then its bytes in order. Out: a `TextExtractor`
(sensor/content/fingerprint/base.py) that hands out `TextChunk`s, or None when the type has
no text of its own: containers and binaries (zip, docx, xlsx, gzip, tar, jpeg, ...) are
opened elsewhere and each member reaches `text_extractor` as an object of its own, with
`name` = the member name and `parent_type` = the container's type.

Inside an OOXML or ODF container only the parts that hold document text get an extractor
(ooxml.py, odf.py); styles, relationships, settings and properties get None. Other members
of such a container (an embedded CSV) go by their own type.

Every extractor caps what it hands out at `max_chars` characters (`text_cap`, once) and
never raises on hostile bytes. Anomaly kinds all start with "text_".
"""

from __future__ import annotations

import re

from sensor.content.fingerprint.base import TextExtractor
from sensor.content.text.delimited import DelimitedExtractor
from sensor.content.text.emitter import MAX_TEXT_CHARS
from sensor.content.text.jsontext import JsonExtractor
from sensor.content.text.markup import HtmlExtractor, XmlExtractor
from sensor.content.text.odf import OdfContentExtractor
from sensor.content.text.ooxml import (
    SharedStringsExtractor,
    SlideExtractor,
    WordprocessingExtractor,
    WorksheetExtractor,
    part_number,
)
from sensor.content.text.pdf import PdfExtractor
from sensor.content.text.plain import PlainTextExtractor
from sensor.content.text.rtf import RtfExtractor

__all__ = ["MAX_TEXT_CHARS", "text_extractor"]

WORD_TYPES = frozenset({"docx", "docm", "dotx", "dotm"})
SHEET_TYPES = frozenset({"xlsx", "xlsm", "xltx", "xltm"})
SLIDE_TYPES = frozenset({"pptx", "pptm", "potx", "ppsx", "ppsm"})
ODF_TYPES = frozenset({"odt", "ods", "odp", "odg", "ott", "ots", "otp"})
OFFICE_TYPES = WORD_TYPES | SHEET_TYPES | SLIDE_TYPES | ODF_TYPES

_WORD_PART = re.compile(
    r"word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml", re.IGNORECASE
)
_SHARED_STRINGS = re.compile(r"xl/sharedStrings\.xml", re.IGNORECASE)
_WORKSHEET = re.compile(r"xl/worksheets/(sheet\d+)\.xml", re.IGNORECASE)
_SLIDE = re.compile(r"ppt/(?:slides/slide|notesSlides/notesSlide)\d+\.xml", re.IGNORECASE)
_XMLISH = re.compile(r"\.(?:xml|rels|vml)$", re.IGNORECASE)


def _office_part(parent_type: str, name: str, max_chars: int) -> TextExtractor | None:
    """The extractor of an OOXML/ODF part that holds text, or None."""
    if parent_type in WORD_TYPES and _WORD_PART.fullmatch(name):
        return WordprocessingExtractor(part=name, max_chars=max_chars)
    if parent_type in SHEET_TYPES:
        if _SHARED_STRINGS.fullmatch(name):
            return SharedStringsExtractor(part=name, max_chars=max_chars)
        sheet = _WORKSHEET.fullmatch(name)
        if sheet:
            return WorksheetExtractor(part=name, sheet=sheet.group(1), max_chars=max_chars)
    if parent_type in SLIDE_TYPES and _SLIDE.fullmatch(name):
        return SlideExtractor(part=name, page=part_number(name), max_chars=max_chars)
    if parent_type in ODF_TYPES and name.lower() == "content.xml":
        return OdfContentExtractor(part=name, max_chars=max_chars)
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
    if parent in OFFICE_TYPES and name is not None:
        part = name.replace("\\", "/").lstrip("/")
        extractor = _office_part(parent, part, max_chars)
        if extractor is not None or kind in ("xml", "html") or _XMLISH.search(part):
            return extractor
    if kind in ("text", "txt", "markdown"):
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
