"""OOXML part extractors, fed the parts of docx/pptx files built with zipfile through their
document (workbooks: test_workbook.py)."""

from __future__ import annotations

import io
import itertools
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text import document_text
from sensor.content.text.emitter import ChunkEmitter
from sensor.content.text.ooxml import (
    SlideExtractor,
    WordprocessingExtractor,
    cell_reference,
    part_number,
)

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'

DOCX = {
    "[Content_Types].xml": "<Types/>",
    "word/document.xml": (
        f"<w:document {W}><w:body>"
        "<w:p><w:r><w:t>BSN 1234</w:t></w:r><w:r><w:t>56782</w:t></w:r>"
        '<w:r><w:tab/><w:t xml:space="preserve"> Ziekenhuis &amp; Émile</w:t></w:r></w:p>'
        "<w:p><w:r><w:delText>verwijderd</w:delText><w:br/><w:t>na</w:t></w:r></w:p>"
        "<w:p><w:pPr><w:rPr><w:b/></w:rPr></w:pPr></w:p>"
        "</w:body></w:document>"
    ),
    "word/header1.xml": f"<w:hdr {W}><w:p><w:r><w:t>Vertrouwelijk</w:t></w:r></w:p></w:hdr>",
    "word/styles.xml": f"<w:styles {W}><w:style><w:name w:val='Normal'/></w:style></w:styles>",
}
PPTX = {
    "ppt/slides/slide2.xml": (
        f"<p:sld {A} xmlns:p='http://schemas.openxmlformats.org/presentationml/2006/main'>"
        "<p:txBody><a:p><a:r><a:t>Patiënt </a:t></a:r><a:r><a:t>123456782</a:t></a:r></a:p>"
        "<a:p><a:r><a:t>tweede</a:t></a:r></a:p></p:txBody></p:sld>"
    ),
}


def build(parts: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text.encode("utf-8"))
    return buf.getvalue()


def extract(container: bytes, parent: str, step: int | None = None) -> dict[str, list]:
    """Unzip like the opener would and feed each member to its document's part extractor."""
    result: dict[str, list] = {}
    document = document_text(parent)
    assert document is not None
    with zipfile.ZipFile(io.BytesIO(container)) as zf:
        for name in zf.namelist():
            ex = document.part(name)
            if ex is None:
                continue
            data = zf.read(name)
            out: list[TextChunk] = []
            pieces = (
                [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
            )
            for piece in pieces:
                out += ex.feed(piece)
            out += ex.finish()
            assert ex.anomalies == []
            result[name] = out
    assert document.finish() == [] and document.anomalies == []
    return result


def test_docx_paragraphs_runs_joined() -> None:
    parts = extract(build(DOCX), "docx")
    assert set(parts) == {"word/document.xml", "word/header1.xml"}
    doc = parts["word/document.xml"]
    assert [c.text for c in doc] == ["BSN 123456782\t Ziekenhuis & Émile", "verwijderd\nna"]
    assert doc[0].position.part == "word/document.xml"
    assert doc[1].position.offset == len(doc[0].text)
    assert [c.text for c in parts["word/header1.xml"]] == ["Vertrouwelijk"]
    for step in (1, 7):
        assert extract(build(DOCX), "docx", step) == parts


def test_docx_parts_share_one_emitter() -> None:
    """Offsets run on from part to part; the cap holds for the document."""
    parts = extract(build(DOCX), "docx")
    doc, header = parts["word/document.xml"], parts["word/header1.xml"]
    assert header[0].position.offset == sum(len(c.text) for c in doc)
    document = document_text("docx", max_chars=20)
    assert document is not None
    first, second = document.part("word/document.xml"), document.part("word/header1.xml")
    assert first is not None and second is not None
    with zipfile.ZipFile(io.BytesIO(build(DOCX))) as zf:
        out = first.feed(zf.read("word/document.xml")) + first.finish()
        out += second.feed(zf.read("word/header1.xml")) + second.finish()
    assert sum(len(c.text) for c in out) == 20
    assert [a.kind for a in document.anomalies] == ["text_cap"]


def test_pptx_slide_page() -> None:
    parts = extract(build(PPTX), "pptx")
    slide = parts["ppt/slides/slide2.xml"]
    assert [(c.text, c.position.page) for c in slide] == [("Patiënt 123456782", 2), ("tweede", 2)]


def test_helpers() -> None:
    assert cell_reference("B7") == (7, 2)
    assert cell_reference("XFD1048576") == (1048576, 16384)
    assert cell_reference("7B") is None
    assert part_number("ppt/slides/slide12.xml") == 12
    assert part_number("content.xml") is None


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1500), st.lists(st.integers(0, 1500), max_size=5))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for make in (
        lambda: WordprocessingExtractor(part="word/document.xml"),
        lambda: WordprocessingExtractor(part="word/document.xml", emitter=ChunkEmitter([])),
        lambda: SlideExtractor(part="ppt/slides/slide1.xml", page=1),
    ):
        ex = make()
        for a, b in itertools.pairwise(edges):
            ex.feed(data[a:b])
        ex.finish()
