"""PdfExtractor: hand-built PDFs with FlateDecode content, TJ arrays, hex and escaped
strings; skipped streams; inflate caps; any split."""

from __future__ import annotations

import itertools
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text import pdf as pdfmod
from sensor.content.text.pdf import PdfExtractor, decode_string, hex_body, literal_body

PAGE = (
    b"BT /F1 12 Tf 72 712 Td (Pati\\353nt: J. \\(Sr.\\) de Vries) Tj\n"
    b"0 -14 Td [(BSN ) -30 (1234) 12 (56782)] TJ\n"
    b"0 -14 Td [(IBAN) -400 <4E4C3931 41424E41>(0417164300)] TJ\n"
    b"T* <FEFF00C90020006D0069006C0065> Tj\n"
    b"(regel\\\nvervolg) ' ET\n"
    b"q 1 0 0 1 0 0 cm [1 2] 0 d (not shown) /Name BDC Q"
)


def obj(num: int, head: bytes, data: bytes) -> bytes:
    return b"%d 0 obj\n<< %s >>\nstream\n%s\nendstream\nendobj\n" % (num, head, data)


def build(*objects: bytes) -> bytes:
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"".join(objects) + b"trailer\n<< >>\n%%EOF\n"


FLATE = zlib.compress(PAGE)
SAMPLE = build(
    b"1 0 obj << /Type /Catalog >> endobj\n",
    obj(4, b"/Length %d /Filter /FlateDecode" % len(FLATE), FLATE),
    obj(5, b"/Length 9 0 R", b"BT (indirect length) Tj ET"),
    obj(6, b"/Type /XObject /Subtype /Image /Length 12", b"(image) Tj  "),
    obj(7, b"/Filter /DCTDecode /Length 11", b"(jpeg) Tj  "),
    obj(8, b"/Length 12 /Filter [/FlateDecode]", b"not zlib!!!!"),
)
EXPECTED = (
    "Patiënt: J. (Sr.) de Vries\nBSN 123456782\nIBAN NL91ABNA0417164300\nÉ mile\n"
    "regelvervolg\nindirect length"
)


def run(data: bytes, pieces: list[bytes] | None = None, **kw: object) -> tuple:
    ex = PdfExtractor(**kw)  # type: ignore[arg-type]
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    out += ex.finish()
    return out, [a.kind for a in ex.anomalies]


def test_text_operators_every_split() -> None:
    whole, anomalies = run(SAMPLE)
    text = "".join(c.text for c in whole)
    assert text.strip() == EXPECTED
    assert "image" not in text and "jpeg" not in text and "not shown" not in text
    assert anomalies == ["text_pdf_bad_stream"]
    assert run(SAMPLE, [bytes([b]) for b in SAMPLE]) == (whole, anomalies)
    for cut in range(len(SAMPLE) + 1):
        assert run(SAMPLE, [SAMPLE[:cut], SAMPLE[cut:]]) == (whole, anomalies)


def test_long_content_stream_crosses_scan_windows() -> None:
    line = b"BT 0 -14 Td (BSN 123456782 regel) Tj ET\n"
    content = line * (pdfmod.CONTENT_WINDOW_BYTES // len(line) * 3)
    z = zlib.compress(content)
    data = build(obj(3, b"/Filter /FlateDecode /Length %d" % len(z), z))
    whole, anomalies = run(data)
    assert "".join(c.text for c in whole).count("BSN 123456782 regel") == content.count(b"BSN")
    assert anomalies == []
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert run(data, pieces) == (whole, anomalies)


def test_inflate_cap(monkeypatch: object) -> None:
    monkeypatch.setattr(pdfmod, "MAX_PDF_STREAM_OUTPUT", 100_000)  # type: ignore[attr-defined]
    bomb = zlib.compress(b"(x) Tj " * 1_000_000)
    data = build(obj(3, b"/Filter /FlateDecode /Length %d" % len(bomb), bomb))
    whole, anomalies = run(data)
    assert anomalies == ["text_pdf_inflate_cap"]
    assert 0 < len("".join(c.text for c in whole)) < 100_000


def test_string_helpers() -> None:
    buf = b"(a(b)c\\)d) Tj"
    assert literal_body(buf, 0) == (b"a(b)c)d", 10)
    assert literal_body(b"(never closed", 0)[0] is None
    assert hex_body(b"48 6") == b"H`"
    assert hex_body(b"zz") == b""
    assert decode_string(b"\x00\x01caf\xe9") == "café"


def test_truncated_pdf_keeps_what_was_read() -> None:
    cut = SAMPLE[: SAMPLE.index(b"5 0 obj") - 40]
    whole, _ = run(cut)
    assert "BSN 123456782" in "".join(c.text for c in whole)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    assert run(data, pieces) == run(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_hostile_content_streams_never_raise(content: bytes, data: st.DataObject) -> None:
    z = zlib.compress(content)
    raw = build(obj(3, b"/Filter /FlateDecode /Length %d" % len(z), z), obj(4, b"", content))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=5))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert run(raw, pieces) == run(raw)
