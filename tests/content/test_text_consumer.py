"""The text of every object and container member reaches the text consumer (the hook the
classification stage attaches to), from the first byte, whatever the chunking."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import pytest

from sensor.content.fingerprint.base import TextChunk
from sensor.content.objects import DEFAULT_CAPS, FileObject, ObjectMeta

CSV = b"bsn;naam\n" + b"".join(b"%09d;Jansen %d\n" % (i, i) for i in range(3000))


class Recorder:
    def __init__(self, meta: ObjectMeta, seen: list[tuple[ObjectMeta, Recorder]]) -> None:
        self.meta = meta
        self.chunks: list[TextChunk] = []
        self.ended: bool | None = None
        seen.append((meta, self))

    def text(self, chunks: list[TextChunk]) -> None:
        self.chunks += chunks

    def finish(self, complete: bool) -> object:
        self.ended = complete
        return ("read", len(self.chunks))

    @property
    def joined(self) -> str:
        return "".join(c.text for c in self.chunks)


def run(data: bytes, name: str, chunk: int, declared: str | None = None):  # type: ignore[no-untyped-def]
    seen: list[tuple[ObjectMeta, Recorder]] = []
    caps = replace(DEFAULT_CAPS, text_consumer=lambda meta: Recorder(meta, seen))
    obj = FileObject(filename=name, declared_type=declared, caps=caps, ts=7.0)
    for i in range(0, len(data), chunk):
        obj.update(data[i : i + chunk])
    return obj.finish(True), seen


@pytest.mark.parametrize("chunk", [1, 100, 4096, 8192, 100_000])
def test_a_csv_upload_is_read_whole_whatever_the_chunking(chunk: int) -> None:
    info, seen = run(CSV, "export.csv", chunk)
    ((meta, recorder),) = seen
    assert (meta.type, meta.filename, meta.parent_type, meta.ts) == ("csv", "export.csv", None, 7.0)
    assert recorder.ended is True
    assert recorder.joined.count("Jansen") == 3000 and "000002999" in recorder.joined
    assert info.classification == ("read", len(recorder.chunks))


def test_a_short_object_is_read_at_its_end() -> None:
    _, seen = run(b"bsn;naam\n111222333;X\n", "a.csv", 5)
    ((meta, recorder),) = seen
    assert meta.type == "csv" and "111222333" in recorder.joined


def docx(extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(
            "word/document.xml",
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:body><w:p><w:r><w:t>BSN 123456782 uitstrijkje</w:t></w:r></w:p></w:body>"
            "</w:document>",
        )
        z.writestr(
            "word/footer1.xml",
            '<w:ftr xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:p><w:r><w:t>Oefenlab</w:t></w:r></w:p></w:ftr>",
        )
        z.writestr("word/styles.xml", "<styles/>")
        z.writestr("data/list.csv", CSV)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def test_a_document_is_read_as_one_text() -> None:
    """The parts of a docx go to one consumer, the document's (one finding per file); an
    embedded CSV is an object of its own."""
    info, seen = run(docx(), "brief.docx", 1460)
    by_name = {meta.filename: (meta, recorder) for meta, recorder in seen}
    # Parts, styles and the package's own files get no consumer of their own.
    assert list(by_name) == ["brief.docx", "data/list.csv"]
    meta, recorder = by_name["brief.docx"]
    assert meta.type == "docx" and meta.container_path is None and recorder.ended is True
    assert recorder.joined == "BSN 123456782 uitstrijkjeOefenlab"
    assert [c.position.part for c in recorder.chunks] == ["word/document.xml", "word/footer1.xml"]
    assert [c.position.offset for c in recorder.chunks] == [0, len("BSN 123456782 uitstrijkje")]
    assert info.classification == ("read", 2)
    member = next(m for m in info.members if m.filename == "word/document.xml")
    assert member.classification is None  # its text is the document's
    csv_meta, csv_recorder = by_name["data/list.csv"]
    assert csv_meta.parent_type == "docx"
    assert csv_meta.container_path == ("brief.docx", "data/list.csv")
    assert csv_recorder.joined.count("Jansen") == 3000


def test_a_document_inside_an_archive() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("export/brief.docx", docx())
    info, seen = run(buf.getvalue(), "export.zip", 1000)
    by_name = {meta.filename: (meta, recorder) for meta, recorder in seen}
    meta, recorder = by_name["export/brief.docx"]
    assert meta.type == "docx" and meta.container_path == ("export.zip", "export/brief.docx")
    assert "BSN 123456782" in recorder.joined
    (inner,) = info.members
    assert inner.classification == ("read", 2)


@pytest.mark.parametrize("strings_first", [True, False])
def test_a_workbook_joins_its_headers_to_its_cells(strings_first: bool) -> None:
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sst = f"<sst {ns}><si><t>BSN</t></si><si><t>naam</t></si></sst>"
    sheet = (
        f"<worksheet {ns}><sheetData>"
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2"><v>123456782</v></c><c r="B2" t="inlineStr"><is><t>X</t></is>'
        "</c></row></sheetData></worksheet>"
    )
    parts = [("xl/sharedStrings.xml", sst), ("xl/worksheets/sheet1.xml", sheet)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        for name, text in parts if strings_first else parts[::-1]:
            z.writestr(name, text)
    info, seen = run(buf.getvalue(), "lijst.xlsx", 100)
    ((meta, recorder),) = [(m, r) for m, r in seen if m.filename == "lijst.xlsx"]
    assert meta.type == "xlsx"
    rows = [(c.text, c.headers) for c in recorder.chunks]  # type: ignore[attr-defined]
    assert rows == [("BSN\tnaam", None), ("123456782\tX", ("BSN", "naam"))]
    assert info.classification == ("read", 2)


def test_no_consumer_no_extraction() -> None:
    obj = FileObject(filename="x.csv")
    obj.update(CSV)
    assert obj.finish(True).classification is None
