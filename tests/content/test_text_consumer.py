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


def test_members_are_read_with_their_containers_type() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(
            "word/document.xml",
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            "<w:body><w:p><w:r><w:t>BSN 123456782 uitstrijkje</w:t></w:r></w:p></w:body>"
            "</w:document>",
        )
        z.writestr("data/list.csv", CSV)
    info, seen = run(buf.getvalue(), "brief.docx", 1460)
    by_name = {meta.filename: (meta, recorder) for meta, recorder in seen}
    meta, recorder = by_name["word/document.xml"]
    assert meta.parent_type == "docx" and meta.container_path == ("brief.docx", "word/document.xml")
    assert "BSN 123456782 uitstrijkje" in recorder.joined
    assert by_name["data/list.csv"][1].joined.count("Jansen") == 3000
    assert by_name["brief.docx"][1].chunks == []  # a container has no text of its own
    member = next(m for m in info.members if m.filename == "word/document.xml")
    assert member.classification == ("read", len(recorder.chunks))


def test_no_consumer_no_extraction() -> None:
    obj = FileObject(filename="x.csv")
    obj.update(CSV)
    assert obj.finish(True).classification is None
