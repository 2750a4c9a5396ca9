"""FileObject hashing/sniffing/gaps, ObjectStore extraction, MimeSniffer fallback."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sensor.content.filetype import MimeSniffer, sniff_mime
from sensor.content.objects import FileObject, ObjectStore, StoredFile

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 50


def test_hash_size_and_sniff_streamed() -> None:
    obj = FileObject(filename="a.pdf", declared_type="application/pdf")
    for i in range(0, len(PDF), 7):
        obj.update(PDF[i : i + 7])
    info = obj.finish(True)
    assert info.fingerprint is not None and info.fingerprint.type == "pdf"
    # A PDF header and filler without a trailer: whether it is encrypted cannot be told.
    assert info.fingerprint.encrypted is None and info.fingerprint.undecided == "damaged"
    assert info.sha256 == hashlib.sha256(PDF).hexdigest()
    assert info.size == len(PDF)
    assert info.mime_type == "application/pdf"
    assert info.complete and info.missing_bytes == 0
    assert (info.filename, info.declared_type) == ("a.pdf", "application/pdf")
    assert info.part_index is None
    assert info.stored_path is None


def test_gap_counts_missing_and_marks_incomplete() -> None:
    obj = FileObject()
    obj.update(b"abc")
    obj.gap(10)
    obj.update(b"def")
    info = obj.finish(True)
    assert (info.size, info.missing_bytes, info.complete) == (6, 10, False)
    assert info.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_no_bytes_no_mime_and_caller_incomplete() -> None:
    info = FileObject().finish(False)
    assert info.mime_type is None and info.size == 0 and not info.complete


def test_store_writes_file_named_by_sha256(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    obj = FileObject(store=store)
    for i in range(0, len(PDF), 100):
        obj.update(PDF[i : i + 100])
    info = obj.finish(True)
    digest = hashlib.sha256(PDF).hexdigest()
    assert info.stored_path == str(tmp_path / "files" / digest)
    assert Path(info.stored_path).read_bytes() == PDF
    assert os.listdir(tmp_path / "files") == [digest]  # no temp file left


def test_store_duplicate_keeps_one_file(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    paths = []
    for _ in range(2):
        obj = FileObject(store=store)
        obj.update(b"same bytes")
        paths.append(obj.finish(True).stored_path)
    assert paths[0] == paths[1]
    assert len(os.listdir(tmp_path / "files")) == 1


def test_abandon_removes_temp(tmp_path: Path) -> None:
    obj = FileObject(store=ObjectStore(tmp_path))
    obj.update(b"preamble")
    obj.abandon()
    assert os.listdir(tmp_path / "files") == []


class _FailingStoredFile(StoredFile):
    def write(self, data: bytes) -> None:
        raise OSError(28, "No space left on device")


class _FailingStore(ObjectStore):
    def open(self) -> StoredFile:
        return _FailingStoredFile(self)


def test_store_error_is_an_anomaly(tmp_path: Path) -> None:
    obj = FileObject(store=_FailingStore(tmp_path))
    obj.update(b"x")
    obj.update(b"y")
    info = obj.finish(True)
    assert info.stored_path is None and info.size == 2 and info.complete
    assert [a.kind for a in obj.anomalies] == ["content_store_error"]
    assert os.listdir(tmp_path / "files") == []


UNKNOWN_BINARY = b"\x01\x02\x03\x04" + bytes(range(256)) * 4


def test_libmagic_is_asked_only_about_what_the_table_does_not_know() -> None:
    asked: list[bytes] = []

    class Magic:
        def from_buffer(self, buffer: bytes) -> str:
            asked.append(buffer)
            return "application/x-test"

    sniffer = MimeSniffer(loader=Magic)
    for data in (PDF, b"PK\x05\x06" + b"\0" * 18, b"plain text\n"):
        obj = FileObject(sniffer=sniffer)
        obj.update(data)
        assert obj.finish(True).mime_type != "application/x-test"
    assert asked == []
    obj = FileObject(sniffer=sniffer)
    obj.update(UNKNOWN_BINARY)
    info = obj.finish(True)
    assert info.mime_type == "application/x-test" and asked == [UNKNOWN_BINARY]
    assert info.fingerprint is not None and info.fingerprint.type is None


def _no_libmagic() -> object:
    raise ImportError("failed to find libmagic")


def test_sniffer_without_libmagic_reports_once() -> None:
    sniffer = MimeSniffer(loader=_no_libmagic)  # type: ignore[arg-type]
    kinds = []
    for _ in range(3):
        obj = FileObject(sniffer=sniffer)
        obj.update(UNKNOWN_BINARY)  # the signature table does not know it: libmagic is asked
        info = obj.finish(True)
        assert info.mime_type is None
        kinds += [a.kind for a in obj.anomalies]
    assert kinds == ["content_sniff_unavailable"]


@pytest.mark.parametrize(
    ("prefix", "mime"),
    [(b"", None), (PDF, "application/pdf"), (b"PK\x05\x06" + b"\0" * 18, "application/zip")],
)
def test_sniff_mime(prefix: bytes, mime: str | None) -> None:
    assert sniff_mime(prefix) == mime


def test_the_store_caps_cut_an_object_and_then_the_run(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, max_object_bytes=10, max_total_bytes=15)
    first = FileObject(store=store)
    for chunk in (b"0123456", b"789abcdef"):
        first.update(chunk)
    a = first.finish(True)
    assert (a.size, a.stored_cut, a.stored_bytes) == (16, True, 10)
    assert a.stored_path is not None and a.stored_path.endswith(f"{a.sha256}.cut")
    assert Path(a.stored_path).read_bytes() == b"0123456789"
    assert [x.kind for x in first.anomalies] == ["content_extract_cut"]
    second = FileObject(store=store)
    second.update(b"tiny")
    b = second.finish(True)
    assert (b.stored_cut, b.stored_bytes) == (False, 4)
    third = FileObject(store=store)
    third.update(b"more than is left")
    c = third.finish(True)
    assert (c.stored_cut, c.stored_bytes) == (True, 1)  # 15 - 10 - 4
    assert store.cut == 2 and store.written == 15
