"""PDF analyser: qpdf-encrypted files (where qpdf is installed) and hand-built PDFs with a
trailer `/Encrypt`, a cross-reference stream, a linearized-like head, Adobe.PubSec and decoys
inside content streams; fed whole, byte by byte and split at every offset (small samples) or
at random offsets (hypothesis); truncations, gaps, arbitrary bytes."""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Encryption
from sensor.content.fingerprint.pdf import AHEAD_CAP, MAX_HITS, SCAN_BATCH, PdfAnalyser


def verdict(data: bytes, chunks: list[bytes] | None = None, complete: bool = True) -> Encryption:
    analyser = PdfAnalyser()
    for chunk in [data] if chunks is None else chunks:
        analyser.feed(chunk)
    return analyser.finish(b"", len(data), complete)


def same_in_every_split(data: bytes) -> Encryption:
    whole = verdict(data)
    assert verdict(data, [data[i : i + 1] for i in range(len(data))]) == whole
    for cut in range(len(data) + 1):
        assert verdict(data, [data[:cut], data[cut:]]) == whole, cut
    return whole


def build_pdf(
    extra: list[bytes] = (),  # type: ignore[assignment]
    trailer: bytes = b"",
    content: bytes = b"BT /F1 12 Tf (Hello) Tj ET",
    head: bytes = b"",
) -> bytes:
    """A one-page PDF (ISO 32000-1 7.5) with objects 1-4, then `extra` as objects 5, 6, ...;
    `trailer` goes into the trailer dictionary; `head` right after the header line."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        *extra,
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + head)
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\n" % (len(objects) + 1, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def hexstr(n: int) -> bytes:
    return b"<" + os.urandom(n).hex().encode() + b">"


AES128_DICT = (
    b"<< /Filter /Standard /V 4 /R 4 /Length 128 /CF << /StdCF << /AuthEvent /DocOpen "
    b"/CFM /AESV2 /Length 16 >> >> /StmF /StdCF /StrF /StdCF /O "
    + hexstr(32)
    + b" /U "
    + hexstr(32)
    + b" /P -1028 >>"
)
AES256_DICT = (
    b"<< /CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV3 /Length 32 >> >> /Filter /Standard "
    b"/Length 256 /O "
    + hexstr(48)
    + b" /OE "
    + hexstr(32)
    + b" /P -4 /Perms "
    + hexstr(16)
    + b" /R 6 /StmF /StdCF /StrF /StdCF /U "
    + hexstr(48)
    + b" /UE "
    + hexstr(32)
    + b" /V 5 >>"
)
RC4_128_DICT = b"<< /Filter /Standard /V 2 /R 3 /Length 128 /O (abc) /U (def) /P -4 >>"
RC4_40_DICT = b"<< /Filter /Standard /V 1 /R 2 /O (abc) /U (def) /P -4 >>"
PUBSEC_DICT = (
    b"<< /Filter /Adobe.PubSec /SubFilter /adbe.pkcs7.s5 /V 5 /R 5 /CF << /DefaultCryptFilter "
    b"<< /CFM /AESV3 /Recipients ["
    + hexstr(1500)
    + b" "
    + hexstr(1500)
    + b"] /Length 256 >> >> /StmF /DefaultCryptFilter /StrF /DefaultCryptFilter >>"
)


@pytest.mark.parametrize(
    ("encryption_dict", "scheme", "detail"),
    [
        (AES128_DICT, "pdf-aes-128", "handler=Standard V=4 R=4"),
        (AES256_DICT, "pdf-aes-256", "handler=Standard V=5 R=6"),
        (RC4_128_DICT, "pdf-rc4-128", "handler=Standard V=2 R=3"),
        (RC4_40_DICT, "pdf-rc4-40", "handler=Standard V=1 R=2"),
        (PUBSEC_DICT, "pdf-pubsec-aes-256", "handler=Adobe.PubSec subfilter=adbe.pkcs7.s5 V=5 R=5"),
        (b"<< /Filter /FOPN_foweb /V 2 /Length 40 >>", "pdf-encrypted", "handler=FOPN_foweb V=2"),
        (
            b"<< /Filter /Standard /V 4 /R 4 /CF << /StdCF << /CFM /V2 >> >> >>",
            "pdf-rc4-128",
            "handler=Standard V=4 R=4",
        ),
    ],
)
def test_trailer_encrypt(encryption_dict: bytes, scheme: str, detail: str) -> None:
    data = build_pdf([encryption_dict], trailer=b"/Encrypt 5 0 R /ID [<00><00>] ")
    assert same_in_every_split(data) == Encryption(True, scheme, detail=detail)


def test_encryption_dict_after_the_trailer_that_names_it() -> None:
    # A linearized file's first-page trailer comes near the head, before the dictionary.
    first_trailer = b"trailer\n<< /Size 7 /Encrypt 6 0 R /Root 1 0 R /Prev 999 >>\n"
    data = build_pdf([b"<< /Linearized 1 /L 999 >>", AES256_DICT], head=first_trailer)
    assert data.index(b"/Encrypt 6 0 R") < data.index(b"6 0 obj")
    result = same_in_every_split(data)
    assert result == Encryption(True, "pdf-aes-256", detail="handler=Standard V=5 R=6")
    # The head alone (tail missing) already says encrypted.
    cut = data.index(b"6 0 obj") + len(AES256_DICT) + 10
    assert verdict(data[:cut], complete=False).scheme == "pdf-aes-256"
    assert verdict(data[: data.index(b"1 0 obj")], complete=False) == Encryption(
        True, "pdf-encrypted", detail="encryption dictionary not found"
    )


def xref_stream_pdf(encrypt: bytes, filtered: bool = False) -> bytes:
    """A PDF 1.5 file whose cross-reference stream (7.5.8) carries the trailer entries."""
    out = bytearray(b"%PDF-1.7\n")
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        AES128_DICT,
    ]
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    rows = b"\x00\x00\x00\xff" + b"".join(
        b"\x01" + o.to_bytes(2, "big") + b"\x00" for o in [*offsets, xref_at]
    )
    data = zlib.compress(rows) if filtered else rows
    flt = b"/Filter /FlateDecode " if filtered else b""
    out += (
        b"4 0 obj\n<< /Type /XRef /Size 5 /W [1 2 1] /Root 1 0 R %s%s/Length %d >>\nstream\n"
        % (encrypt, flt, len(data))
        + data
        + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at
    )
    return bytes(out)


def test_xref_stream_encrypt() -> None:
    data = xref_stream_pdf(b"/Encrypt 3 0 R /ID [<01><01>] ")
    assert same_in_every_split(data) == Encryption(
        True, "pdf-aes-128", detail="handler=Standard V=4 R=4"
    )
    assert verdict(xref_stream_pdf(b"/Encrypt 3 0 R ", filtered=True)).scheme == "pdf-aes-128"
    # The same file without /Encrypt is plain: the XRef stream is its trailer.
    assert same_in_every_split(xref_stream_pdf(b"")) == Encryption(False)


def test_encrypt_in_content_stream_is_not_encryption() -> None:
    decoy = b"BT (/Encrypt 5 0 R) Tj ET /Encrypt 5 0 R"
    data = build_pdf(content=decoy)
    assert same_in_every_split(data) == Encryption(False)
    # A content stream that spells out a whole trailer, and an encryption dictionary.
    decoy = (
        b"(trailer << /Encrypt 5 0 R >>) Tj /Filter /Standard /V 5 trailer\n<< /Encrypt 5 0 R >>"
    )
    data = build_pdf([AES128_DICT], content=decoy)
    assert same_in_every_split(data) == Encryption(False)
    # /EncryptMetadata is not /Encrypt.
    assert verdict(build_pdf(trailer=b"/EncryptMetadata false ")) == Encryption(False)


def test_direct_encrypt_dictionary_and_string_decoys() -> None:
    data = build_pdf(trailer=b"/Encrypt << /Filter /Standard /V 2 /R 3 /Length 128 >> ")
    assert same_in_every_split(data).scheme == "pdf-rc4-128"
    # /O and /U strings hold binary that may spell keys and parentheses.
    tricky = b"<< /Filter /Standard /O (/V 1 \\) /R 9 \\( (nested) ) /U (x) /V 5 /R 6 >>"
    data = build_pdf([tricky], trailer=b"/Encrypt 5 0 R ")
    assert verdict(data) == Encryption(True, "pdf-aes-256", detail="handler=Standard V=5 R=6")


def test_encrypt_without_its_dictionary() -> None:
    analyser = PdfAnalyser()
    analyser.feed(build_pdf(trailer=b"/Encrypt 42 0 R "))
    result = analyser.finish(b"", 0, True)
    assert result == Encryption(True, "pdf-encrypted", detail="encryption dictionary not found")
    assert [a.kind for a in analyser.anomalies] == ["pdf_encryption_dict_missing"]


def test_truncated_and_trailerless() -> None:
    plain = build_pdf()
    for cut in range(0, len(plain), 7):
        assert verdict(plain[:cut], complete=False).encrypted is None
    analyser = PdfAnalyser()
    analyser.feed(plain[: plain.index(b"trailer")])
    assert analyser.finish(b"", 0, True).encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["pdf_no_trailer"]


def big_pdf(encrypted: bool) -> bytes:
    # Incompressible content pushes the trailer far beyond every window.
    content = os.urandom(3 * (AHEAD_CAP + SCAN_BATCH)).replace(b"stream", b"strean")
    trailer = b"/Encrypt 5 0 R " if encrypted else b""
    return build_pdf([AES256_DICT], trailer=trailer, content=content)


BIG_ENCRYPTED = big_pdf(True)
BIG_PLAIN = big_pdf(False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(BIG_ENCRYPTED)), max_size=12))
def test_big_files_in_random_splits(cuts: list[int]) -> None:
    for data, expected in (
        (BIG_ENCRYPTED, Encryption(True, "pdf-aes-256", detail="handler=Standard V=5 R=6")),
        (BIG_PLAIN, Encryption(False)),
    ):
        points = sorted({min(c, len(data)) for c in cuts})
        chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
        assert verdict(data, chunks) == expected


def test_gap() -> None:
    data = BIG_PLAIN
    analyser = PdfAnalyser()
    analyser.feed(data[:1000])
    analyser.gap(5000)
    analyser.feed(data[6000:])
    assert analyser.finish(b"", len(data), True) == Encryption(False)  # the trailer came after
    analyser = PdfAnalyser()
    analyser.feed(data[:-100])
    analyser.gap(100)
    assert analyser.finish(b"", len(data), True).encrypted is None
    analyser = PdfAnalyser()
    analyser.feed(BIG_ENCRYPTED[:-10])
    analyser.gap(10)
    assert analyser.finish(b"", len(data), True).scheme == "pdf-aes-256"


def test_decoy_flood_stops_the_scan() -> None:
    content = b"/Filter /Standard " * (MAX_HITS + 10)
    analyser = PdfAnalyser()
    analyser.feed(build_pdf(content=content))
    assert analyser.finish(b"", 0, True).encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["pdf_scan_cap"]


# -- real qpdf --------------------------------------------------------------------------------


QPDF_CASES = [
    (["--encrypt", "u", "o", "256", "--"], "pdf-aes-256", AES256_DICT),
    (["--encrypt", "u", "o", "128", "--use-aes=y", "--"], "pdf-aes-128", AES128_DICT),
    (["--allow-weak-crypto", "--encrypt", "u", "o", "128", "--"], "pdf-rc4-128", RC4_128_DICT),
    (["--allow-weak-crypto", "--encrypt", "u", "o", "40", "--"], "pdf-rc4-40", RC4_40_DICT),
    (["--object-streams=generate", "--encrypt", "u", "o", "256", "--"], "pdf-aes-256", AES256_DICT),
    (
        ["--linearize", "--encrypt", "u", "o", "128", "--use-aes=y", "--"],
        "pdf-aes-128",
        AES128_DICT,
    ),
    (["--linearize", "--object-streams=generate"], None, None),
]


@pytest.mark.parametrize(("args", "scheme", "stand_in"), QPDF_CASES)
def test_qpdf(tmp_path: Path, args: list[str], scheme: str | None, stand_in: bytes | None) -> None:
    qpdf = shutil.which("qpdf")
    source = tmp_path / "in.pdf"
    source.write_bytes(build_pdf(content=b"BT (/Encrypt 1 0 R) Tj ET"))
    if qpdf is None:
        # qpdf is not installed here: a hand-built equivalent stands in; the corpus adds the
        # real files later.
        trailer = b"/Encrypt 5 0 R " if stand_in else b""
        data = build_pdf([stand_in] if stand_in else [], trailer=trailer)
    else:
        target = tmp_path / "out.pdf"
        subprocess.run([qpdf, *args, str(source), str(target)], check=True, timeout=60)
        data = target.read_bytes()
    result = same_in_every_split(data)
    assert result.encrypted is (scheme is not None)
    assert result.scheme == scheme


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000))
def test_arbitrary_bytes_never_raise(data: bytes, cut: int) -> None:
    for sample in (data, b"%PDF-1.7\n1 0 obj\n<< /Filter /Standard " + data + b"trailer <<"):
        analyser = PdfAnalyser()
        analyser.feed(sample[:cut])
        analyser.gap(3)
        analyser.feed(sample[cut:])
        assert analyser.finish(b"", 0, True).encrypted in (True, False, None)
