"""text_extractor and document_text: which extractor for which type, member name and
container; every extractor survives hostile bytes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.text import MAX_TEXT_CHARS, document_text, text_extractor
from sensor.content.text.delimited import DelimitedExtractor
from sensor.content.text.hl7 import PlainOrHl7Extractor
from sensor.content.text.jsontext import JsonExtractor
from sensor.content.text.markup import HtmlExtractor, XmlExtractor
from sensor.content.text.odf import OdfContentExtractor
from sensor.content.text.ooxml import SlideExtractor, WordprocessingExtractor
from sensor.content.text.pdf import PdfExtractor
from sensor.content.text.rtf import RtfExtractor
from sensor.content.text.workbook import SharedStringsReader, Workbook, WorksheetReader

TYPES = ["text", "csv", "tsv", "json", "xml", "svg", "html", "rtf", "pdf"]


@pytest.mark.parametrize(
    ("type_id", "cls"),
    [
        ("text", PlainOrHl7Extractor),
        ("csv", DelimitedExtractor),
        ("tsv", DelimitedExtractor),
        ("json", JsonExtractor),
        ("xml", XmlExtractor),
        ("svg", XmlExtractor),
        ("html", HtmlExtractor),
        ("rtf", RtfExtractor),
        ("pdf", PdfExtractor),
    ],
)
def test_types_with_text(type_id: str, cls: type) -> None:
    assert isinstance(text_extractor(type_id), cls)


@pytest.mark.parametrize(
    "type_id", ["zip", "docx", "xlsx", "pptx", "odt", "gzip", "tar", "jpeg", "png", "7z", ""]
)
def test_containers_and_binaries_have_none(type_id: str) -> None:
    assert text_extractor(type_id) is None


@pytest.mark.parametrize(
    ("parent", "name", "cls"),
    [
        ("docx", "word/document.xml", WordprocessingExtractor),
        ("docx", "word/header2.xml", WordprocessingExtractor),
        ("docx", "word/footer1.xml", WordprocessingExtractor),
        ("docx", "word/footnotes.xml", WordprocessingExtractor),
        ("xlsx", "xl/sharedStrings.xml", SharedStringsReader),
        ("xlsx", "xl/worksheets/sheet3.xml", WorksheetReader),
        ("pptx", "ppt/slides/slide4.xml", SlideExtractor),
        ("odt", "content.xml", OdfContentExtractor),
        ("ods", "content.xml", OdfContentExtractor),
        ("odp", "content.xml", OdfContentExtractor),
    ],
)
def test_office_parts(parent: str, name: str, cls: type) -> None:
    document = document_text(parent)
    assert document is not None
    assert isinstance(document.part(name), cls)
    assert isinstance(document.part("/" + name.replace("/", "\\")), cls)
    # Read through their document only: as members of their own they have no text.
    assert text_extractor("xml", name=name, parent_type=parent) is None


@pytest.mark.parametrize("type_id", ["xlsx", "xlsm", "xltx", "xltm"])
def test_workbooks(type_id: str) -> None:
    assert isinstance(document_text(type_id), Workbook)


@pytest.mark.parametrize("type_id", ["zip", "jar", "epub", "csv", "", None])
def test_no_document(type_id: str | None) -> None:
    assert document_text(type_id) is None


def test_office_part_positions_carry_sheet_and_page() -> None:
    workbook = document_text("xlsx")
    assert workbook is not None
    sheet = workbook.part("xl/worksheets/sheet3.xml")
    assert isinstance(sheet, WorksheetReader)
    out = sheet.feed(b'<worksheet><sheetData><row r="2"><c r="C2"><v>7</v></c></row>')
    out += sheet.finish() + workbook.finish()
    assert [(c.position.sheet, c.position.row, c.text) for c in out] == [("sheet3", 2, "7")]
    slides = document_text("pptx")
    assert slides is not None
    slide = slides.part("ppt/slides/slide4.xml")
    assert slide is not None
    out = slide.feed(b"<sld><p><t>x</t></p></sld>") + slide.finish()
    assert [c.position.page for c in out] == [4]


@pytest.mark.parametrize(
    ("parent", "name"),
    [
        ("docx", "word/styles.xml"),
        ("docx", "word/_rels/document.xml.rels"),
        ("docx", "docProps/core.xml"),
        ("xlsx", "xl/workbook.xml"),
        ("xlsx", "xl/styles.xml"),
        ("pptx", "ppt/slideLayouts/slideLayout1.xml"),
        ("odt", "styles.xml"),
        ("odt", "settings.xml"),
        ("odt", "META-INF/manifest.xml"),
        ("docx", "word/document.xml.bak"),
    ],
)
def test_other_office_parts_have_none(parent: str, name: str) -> None:
    assert text_extractor("xml", name=name, parent_type=parent) is None
    document = document_text(parent)
    assert document is not None and document.part(name) is None


def test_non_xml_member_of_office_container_goes_by_type() -> None:
    extractor = text_extractor("csv", name="word/embeddings/data.csv", parent_type="docx")
    assert isinstance(extractor, DelimitedExtractor)
    plain = text_extractor("text", name="notes.txt", parent_type="zip")
    assert isinstance(plain, PlainOrHl7Extractor)
    assert plain.feed(b"x" * 100) + plain.finish()
    assert text_extractor("xml", name="word/document.xml", parent_type="zip").__class__ is (
        XmlExtractor
    )


def test_charset_and_cap_are_passed() -> None:
    extractor = text_extractor("text", charset="utf-16-le", max_chars=3)
    assert extractor is not None
    out = extractor.feed("abcdef".encode("utf-16-le")) + extractor.finish()
    assert "".join(c.text for c in out) == "abc"
    assert [a.kind for a in extractor.anomalies] == ["text_cap"]
    assert MAX_TEXT_CHARS >= 1024 * 1024


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=1500), st.lists(st.integers(0, 1500), max_size=6))
def test_every_extractor_survives_hostile_bytes(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    makers = [lambda t=t: (text_extractor(t), None) for t in TYPES] + [
        lambda p=p, n=n: (lambda d: (d.part(n), d))(document_text(p))
        for p, n in (
            ("docx", "word/document.xml"),
            ("xlsx", "xl/sharedStrings.xml"),
            ("xlsx", "xl/worksheets/sheet1.xml"),
            ("pptx", "ppt/slides/slide1.xml"),
            ("ods", "content.xml"),
        )
    ]
    for make in makers:
        extractor, document = make()
        assert extractor is not None
        total = 0
        for a, b in itertools.pairwise(edges):
            total += sum(len(c.text) for c in extractor.feed(data[a:b]))
        total += sum(len(c.text) for c in extractor.finish())
        if document is not None:
            total += sum(len(c.text) for c in document.finish())
            assert all(a.kind.startswith("text_") for a in document.anomalies)
        assert total <= MAX_TEXT_CHARS
        assert extractor.finish() == []
        assert all(a.kind.startswith("text_") for a in extractor.anomalies)
