"""OdfContentExtractor, fed content.xml of odt/ods/odp files built with zipfile, through
their document."""

from __future__ import annotations

import io
import itertools
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text import document_text, text_extractor
from sensor.content.text.odf import OdfContentExtractor

NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"'
)
ODT = (
    f"<office:document-content {NS}><office:body><office:text>"
    "<text:h>Verslag</text:h>"
    "<text:p>BSN <text:span>1234</text:span>56782<text:s text:c='3'/>Émile"
    "<text:tab/>x<text:line-break/>y</text:p>"
    "</office:text></office:body></office:document-content>"
)
ODS = (
    f"<office:document-content {NS}><office:body><office:spreadsheet>"
    '<table:table table:name="Patiënten">'
    "<table:table-row><table:table-cell><text:p>bsn</text:p></table:table-cell>"
    "<table:table-cell><text:p>naam</text:p></table:table-cell></table:table-row>"
    '<table:table-row table:number-rows-repeated="3"><table:table-cell/></table:table-row>'
    '<table:table-row><table:table-cell office:value-type="float" office:value="123456782">'
    "<text:p>123.456.782</text:p></table:table-cell>"
    '<table:table-cell table:number-columns-repeated="2"/>'
    "<table:table-cell><text:p>de</text:p><text:p>Vries</text:p></table:table-cell>"
    "</table:table-row></table:table></office:spreadsheet></office:body>"
    "</office:document-content>"
)
ODP = (
    f"<office:document-content {NS}><office:body><office:presentation>"
    "<draw:page><draw:frame><draw:text-box><text:p>dia een</text:p></draw:text-box>"
    "</draw:frame></draw:page><draw:page><text:p>dia twee</text:p></draw:page>"
    "</office:presentation></office:body></office:document-content>"
)


def container(content: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", content.encode())
        zf.writestr("styles.xml", f"<office:document-styles {NS}/>")
    return buf.getvalue()


def extract(content: str, parent: str, step: int | None = None) -> list[TextChunk]:
    out: list[TextChunk] = []
    document = document_text(parent)
    assert document is not None
    with zipfile.ZipFile(io.BytesIO(container(content))) as zf:
        for name in zf.namelist():
            ex = document.part(name)
            if ex is None:
                continue
            assert text_extractor("xml", name=name, parent_type=parent) is None
            assert name == "content.xml"
            data = zf.read(name)
            size = step or len(data)
            for i in range(0, len(data), size):
                out += ex.feed(data[i : i + size])
            out += ex.finish()
            assert ex.anomalies == []
    return out


def test_odt_paragraphs_every_split() -> None:
    whole = extract(ODT, "odt")
    assert [c.text for c in whole] == ["Verslag", "BSN 123456782   Émile\tx\ny"]
    assert whole[0].position.part == "content.xml"
    data = ODT.encode()
    for cut in range(len(data) + 1):
        ex = OdfContentExtractor()
        assert ex.feed(data[:cut]) + ex.feed(data[cut:]) + ex.finish() == whole


def test_ods_cells_with_positions() -> None:
    cells = [
        (c.text, c.position.sheet, c.position.row, c.position.column) for c in extract(ODS, "ods")
    ]
    assert cells == [
        ("bsn", "Patiënten", 1, 1),
        ("naam", "Patiënten", 1, 2),
        ("123.456.782\n123456782", "Patiënten", 5, 1),
        ("de\nVries", "Patiënten", 5, 4),
    ]
    assert extract(ODS, "ods", 1) == extract(ODS, "ods")


def test_odp_pages() -> None:
    assert [(c.text, c.position.page) for c in extract(ODP, "odp")] == [
        ("dia een", 1),
        ("dia twee", 2),
    ]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1500), st.lists(st.integers(0, 1500), max_size=5))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    ex = OdfContentExtractor()
    for a, b in itertools.pairwise(edges):
        ex.feed(data[a:b])
    ex.finish()
