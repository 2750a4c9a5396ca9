"""BodyEntity: the content stage end to end, plus header parameter and filename decoding."""

from __future__ import annotations

import gzip
import hashlib
import os
import tracemalloc
import zlib
from pathlib import Path

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS as ANOMALY_KINDS
from sensor.anomaly import Anomaly
from sensor.content.entity import (
    BodyEntity,
    ContentCaps,
    FileInfo,
    ObjectStore,
    content_type,
    disposition_filename,
)

B = b"xYzBoundary42"
MP = [(b"content-type", b"multipart/form-data; boundary=" + B)]


def run(entity: BodyEntity, chunks: list[bytes], complete: bool = True) -> list[FileInfo | Anomaly]:
    out: list[FileInfo | Anomaly] = []
    for chunk in chunks:
        out += entity.feed(chunk)
    return out + entity.end(complete)


def infos(results: list[FileInfo | Anomaly]) -> list[FileInfo]:
    return [r for r in results if isinstance(r, FileInfo)]


def kinds(results: list[FileInfo | Anomaly]) -> list[str]:
    # The sample "PDFs" here are a header and filler: the PDF analyser's pdf_no_trailer about
    # them is right and beside the point of these tests.
    return [r.kind for r in results if isinstance(r, Anomaly) and r.kind != "pdf_no_trailer"]


def multipart(*parts: tuple[bytes, bytes]) -> bytes:
    body = b""
    for headers, payload in parts:
        body += b"--" + B + b"\r\n" + headers + b"\r\n" + payload + b"\r\n"
    return body + b"--" + B + b"--\r\n"


# -- header parameters and filenames ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "had_path"),
    [
        (b'attachment; filename="report.pdf"', "report.pdf", False),
        (b"attachment; filename=plain.txt", "plain.txt", False),
        # RFC 6266 sec 4.3: filename* wins, wherever it appears
        (
            b"attachment; filename*=UTF-8''%e2%82%ac%20rates.txt; filename=\"EUR.txt\"",
            "€ rates.txt",
            False,
        ),
        (b"attachment; filename*=iso-8859-1'en'%A3%20rates.txt", "£ rates.txt", False),
        (b'form-data; name="f"; filename="a\\"b\\\\c.txt"', "c.txt", True),
        (b'form-data; name="f"; filename="say \\"hi\\".txt"', 'say "hi".txt', False),
        (b'form-data; filename="..\\\\..\\\\evil.exe"', "evil.exe", True),
        (b'form-data; filename="C:\\Users\\me\\Desktop\\export.csv"', "export.csv", True),
        (b'form-data; filename="../../etc/passwd"', "passwd", True),
        (b'form-data; filename="caf\xc3\xa9.txt"', "café.txt", False),  # raw UTF-8 (browsers)
        (b'form-data; filename="bad\xff.txt"', "bad\ufffd.txt", False),
        # RFC 2231 sec 3/4.1 continuations
        (
            b"attachment; filename*0*=UTF-8''%e2%82; filename*1*=%ac; filename*2=\".txt\"",
            "€.txt",
            False,
        ),
        (b'form-data; name="field"', None, False),
        (b'form-data; filename="dir/"', None, True),
    ],
)
def test_disposition_filename(value: bytes, expected: str | None, had_path: bool) -> None:
    assert disposition_filename(value) == (expected, had_path)


def test_content_type() -> None:
    assert content_type(b'Multipart/Form-Data; BOUNDARY="a;b"; x=1') == (
        "multipart/form-data",
        {"boundary": "a;b", "x": "1"},
    )
    assert content_type(b"garbage") == (None, {})
    assert content_type(None) == (None, {})


# -- single bodies ---------------------------------------------------------------------------


def test_plain_body_split_everywhere() -> None:
    body = b"%PDF-1.4\n" + os.urandom(3000)
    headers = [(b"Content-Type", b"Application/PDF; name=x")]
    for cut in range(0, len(body) + 1, 97):
        res = run(BodyEntity(headers, [], 1.0), [body[:cut], body[cut:]])
        (info,) = infos(res)
        assert info.sha256 == hashlib.sha256(body).hexdigest() and info.size == len(body)
        assert (info.declared_type, info.mime_type) == ("application/pdf", "application/pdf")
        assert info.complete and info.part_index is None and kinds(res) == []


def test_stacked_encodings() -> None:
    payload = b"BSN 123456782\n" * 1000
    body = brotli.compress(gzip.compress(payload))
    res = run(
        BodyEntity([], ["gzip", "br"], 1.0), [body[i : i + 50] for i in range(0, len(body), 50)]
    )
    (info,) = infos(res)
    assert info.sha256 == hashlib.sha256(payload).hexdigest()
    assert info.encodings == ["gzip", "br"] and info.complete


def test_filename_from_disposition_and_hint() -> None:
    cd = [(b"Content-Disposition", b'attachment; filename="/tmp/x/out.zip"')]
    res = run(BodyEntity(cd, [], 5.0, name_hint="/upload"), [b"PK"])
    assert infos(res)[0].filename == "out.zip"
    assert res[0] == Anomaly(
        "content_filename_path", "path removed from filename, kept 'out.zip'", 5.0
    )
    res = run(BodyEntity([], [], 5.0, name_hint="upload.bin"), [b"x"])
    assert infos(res)[0].filename == "upload.bin"


def test_empty_body_gives_nothing() -> None:
    assert run(BodyEntity([], ["gzip"], 1.0), []) == []
    assert run(BodyEntity(MP, [], 1.0), [b""]) == []


def test_only_gaps() -> None:
    entity = BodyEntity([], [], 1.0)
    assert entity.gap(100) == []
    (info,) = infos(entity.end(True))
    assert (info.size, info.missing_bytes, info.complete) == (0, 100, False)
    assert info.sha256 == hashlib.sha256(b"").hexdigest()


def test_early_end_marks_incomplete() -> None:
    (info,) = infos(run(BodyEntity([], [], 1.0), [b"abc"], complete=False))
    assert not info.complete and info.size == 3


def test_corrupt_gzip_object_continues_raw() -> None:
    body = b"\x1f\x8b" + b"\x00" * 30 + b"tail"
    res = run(BodyEntity([], ["gzip"], 1.0), [body])
    assert kinds(res) == ["content_decode_error"]
    (info,) = infos(res)
    assert not info.complete and info.size >= 4


def test_gap_in_gzip_counts_encoded_bytes() -> None:
    body = gzip.compress(os.urandom(10000))
    entity = BodyEntity([], ["gzip"], 1.0)
    res = entity.feed(body[:1000]) + entity.gap(500) + entity.feed(body[1500:]) + entity.end(True)
    assert kinds(res) == ["content_decode_gap"]
    (info,) = infos(res)
    assert info.missing_bytes == 500 and not info.complete
    decoded_before_gap = len(zlib.decompressobj(31).decompress(body[:1000]))
    assert info.size == decoded_before_gap + len(body[1500:])  # the rest is kept undecoded


def test_decoded_cap_truncates() -> None:
    body = gzip.compress(b"A" * 3_000_000)
    res = run(BodyEntity([], ["gzip"], 1.0, caps=ContentCaps(max_decoded_bytes=1_000_000)), [body])
    assert kinds(res) == ["content_decoded_cap"]
    (info,) = infos(res)
    assert info.size == 1_000_000 and not info.complete


# -- multipart -------------------------------------------------------------------------------

FORM = multipart(
    (b'Content-Disposition: form-data; name="note"\r\n', b"hi"),
    (
        b"Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%e2%82%ac.pdf\r\n"
        b"Content-Type: application/pdf\r\n",
        b"%PDF-1.4\n\r\n--" + B[:-2] + b"\r\nbinary",
    ),
)


def test_multipart_parts_become_objects(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    body = gzip.compress(FORM)
    entity = BodyEntity(MP, ["gzip"], 2.0, store=store)
    res = run(entity, [body[i : i + 9] for i in range(0, len(body), 9)])
    assert kinds(res) == []
    note, pdf = infos(res)
    assert (note.part_index, note.filename, note.size, note.declared_type) == (0, None, 2, None)
    assert (pdf.part_index, pdf.filename, pdf.declared_type) == (1, "€.pdf", "application/pdf")
    payload = b"%PDF-1.4\n\r\n--" + B[:-2] + b"\r\nbinary"
    assert pdf.sha256 == hashlib.sha256(payload).hexdigest() and pdf.mime_type == "application/pdf"
    assert pdf.encodings == ["gzip"] and pdf.complete
    assert pdf.stored_path is not None and Path(pdf.stored_path).read_bytes() == payload
    assert sorted(os.listdir(tmp_path / "files")) == sorted([note.sha256, pdf.sha256])


def test_multipart_part_finishes_mid_body() -> None:
    entity = BodyEntity(MP, [], 1.0)
    cut = FORM.index(b"--" + B, 5) + len(B) + 4  # just past the second delimiter line
    first = infos(entity.feed(FORM[:cut]))
    assert [i.part_index for i in first] == [0]
    rest = infos(entity.feed(FORM[cut:]) + entity.end(True))
    assert [i.part_index for i in rest] == [1]


def test_multipart_unterminated() -> None:
    body = FORM[: FORM.rindex(b"\r\n--" + B + b"--")]
    res = run(BodyEntity(MP, [], 1.0), [body])
    assert kinds(res) == ["multipart_unterminated"]
    assert [i.complete for i in infos(res)] == [True, False]


def test_multipart_without_delimiter_is_one_object() -> None:
    body = b"just some bytes\r\nno delimiter here"
    res = run(BodyEntity(MP, [], 1.0), [body[:3], body[3:]])
    assert kinds(res) == ["multipart_boundary_missing"]
    (info,) = infos(res)
    assert info.sha256 == hashlib.sha256(body).hexdigest() and info.part_index is None
    assert info.declared_type == "multipart/form-data"


def test_multipart_without_boundary_parameter() -> None:
    res = run(BodyEntity([(b"Content-Type", b"multipart/mixed")], [], 1.0), [FORM])
    assert kinds(res) == ["multipart_boundary_missing"]
    (info,) = infos(res)
    assert info.size == len(FORM)


def test_multipart_gap_hits_one_part() -> None:
    entity = BodyEntity(MP, [], 1.0)
    cut = FORM.index(b"binary") + 1
    res = entity.feed(FORM[:cut]) + entity.gap(3) + entity.feed(FORM[cut + 3 :]) + entity.end(True)
    note, pdf = infos(res)
    assert note.complete and note.missing_bytes == 0
    assert not pdf.complete and pdf.missing_bytes == 3


def test_multipart_filename_path_anomaly() -> None:
    body = multipart(
        (b'Content-Disposition: form-data; name="f"; filename="..\\..\\evil.exe"\r\n', b"MZ")
    )
    res = run(BodyEntity(MP, [], 1.0), [body])
    assert kinds(res) == ["content_filename_path"]
    assert infos(res)[0].filename == "evil.exe"


def test_memory_stays_bounded_for_200_mb() -> None:
    chunk = os.urandom(64 * 1024)
    n = (200 * 1024 * 1024) // len(chunk)
    head = b"--" + B + b'\r\nContent-Disposition: form-data; name="f"; filename="dump.sql"\r\n\r\n'
    tracemalloc.start()
    try:
        entity = BodyEntity(MP, [], 1.0)
        entity.feed(head)
        for _ in range(n):
            assert entity.feed(chunk) == []
        res = entity.feed(b"\r\n--" + B + b"--\r\n") + entity.end(True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (info,) = infos(res)
    assert info.size == n * len(chunk) and info.complete
    assert peak < 3 * 1024 * 1024, peak


def test_memory_stays_bounded_for_compressed_200_mb() -> None:
    body = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=1)
    tracemalloc.start()
    try:
        entity = BodyEntity([], ["gzip"], 1.0, caps=ContentCaps(max_ratio=10**6))
        res: list[FileInfo | Anomaly] = []
        for i in range(0, len(body), 64 * 1024):
            res += entity.feed(body[i : i + 64 * 1024])
        res += entity.end(True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (info,) = infos(res)
    assert info.size == 200 * 1024 * 1024 and info.complete
    assert peak < 3 * 1024 * 1024, peak


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.one_of(st.binary(max_size=200), st.integers(1, 50)), max_size=12),
    encodings=st.sampled_from([[], ["gzip"], ["br", "deflate"], ["x-unknown"]]),
    multipart_body=st.booleans(),
    complete=st.booleans(),
)
def test_arbitrary_input_never_raises(
    ops: list[bytes | int], encodings: list[str], multipart_body: bool, complete: bool
) -> None:
    entity = BodyEntity(MP if multipart_body else [], encodings, 1.0)
    res: list[FileInfo | Anomaly] = []
    for op in ops:
        res += entity.feed(op) if isinstance(op, bytes) else entity.gap(op)
    res += entity.end(complete)
    assert entity.end(True) == [] and entity.feed(b"late") == []
    for r in res:
        if isinstance(r, Anomaly):
            # The body's own anomalies, and those of the readers that open what it carries
            # (a cut ZIP is `zip_truncated`): every one a registered kind.
            assert r.kind in ANOMALY_KINDS and r.ts == 1.0
    if not multipart_body and any(isinstance(op, int) for op in ops):
        assert any(isinstance(r, FileInfo) and not r.complete for r in res)
