"""The fingerprint and the text extractors agree: the type the fingerprint gives an object
(or a container member) is the one the text factory reads, and the text of the corpus's
documents comes out (the contract the classification stage will rely on)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from sensor.content.objects import FileInfo, FileObject
from sensor.content.text import document_text, text_extractor

CORPUS = Path(__file__).resolve().parents[2] / "data" / "fingerprint" / "corpus"
BSN = "875886702"  # the first fake record of patients.csv (pcaps/_lib/fakedata.py)


def fingerprinted(data: bytes, name: str) -> FileInfo:
    obj = FileObject(filename=name)
    obj.update(data)
    return obj.finish(True)


def text_of(data: bytes, type_id: str | None, name: str | None, parent: str | None) -> str:
    assert type_id is not None
    extractor = text_extractor(type_id, name=name, parent_type=parent)
    if extractor is None:
        return ""
    chunks = extractor.feed(data) + extractor.finish()
    assert not extractor.anomalies, extractor.anomalies
    return "".join(chunk.text for chunk in chunks)


@pytest.mark.parametrize("name", ["patients.csv", "patients.json", "notes.txt", "pdf-plain.pdf"])
def test_whole_objects(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    info = fingerprinted(data, name)
    assert info.fingerprint is not None
    text = text_of(data, info.fingerprint.type, name, None)
    assert text.strip(), f"no text from a {info.fingerprint.type}"
    if name.startswith("patients"):
        assert BSN in text


@pytest.mark.parametrize("name", ["docx-plain.docx", "xlsx-plain.xlsx", "zip-plain.zip"])
def test_members_of_documents_and_archives(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    info = fingerprinted(data, name)
    assert info.fingerprint is not None
    parts = dict(
        (n, zipfile.ZipFile(io.BytesIO(data)).read(n))
        for n in zipfile.ZipFile(io.BytesIO(data)).namelist()
    )
    texts = []
    # A document's parts are read through its document text (one text per file).
    document = document_text(info.fingerprint.type)
    assert (document is None) == (name == "zip-plain.zip")
    for member in info.members:
        assert member.fingerprint is not None and member.filename in parts
        part = document.part(member.filename) if document is not None else None
        if part is not None:
            chunks = part.feed(parts[member.filename]) + part.finish()
            assert not part.anomalies, part.anomalies
            texts.append("".join(chunk.text for chunk in chunks))
            continue
        texts.append(
            text_of(
                parts[member.filename],
                member.fingerprint.type,
                member.filename,
                info.fingerprint.type,
            )
        )
    if document is not None:
        texts.append("".join(chunk.text for chunk in document.finish()))
        assert not document.anomalies, document.anomalies
    # Every sample's table starts with the same header row (make_corpus.py).
    assert any("patient_id" in text for text in texts), [m.filename for m in info.members]


def test_a_member_two_levels_down() -> None:
    data = (CORPUS / "tar-gz-containing-age.tar.gz").read_bytes()
    info = fingerprinted(data, "x.tar.gz")
    tar = info.members[0]
    assert tar.fingerprint is not None and tar.fingerprint.type == "tar"
    import gzip

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
        plain = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}  # type: ignore[union-attr]
    for member in tar.members:
        assert member.fingerprint is not None
        body = plain[member.filename or ""]
        if member.fingerprint.encrypted:
            assert text_extractor(member.fingerprint.type or "", name=member.filename) is None
        else:
            assert text_of(body, member.fingerprint.type, member.filename, "tar").strip()
