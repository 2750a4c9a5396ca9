"""TextDecoder: BOMs, declared charsets, UTF-8 vs cp1252, UTF-16 without BOM, any split."""

from __future__ import annotations

import codecs
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.text.charset import (
    NON_ASCII_SNIFF_BYTES,
    TextDecoder,
    resolve_charset,
    sniff_bom,
    sniff_utf16,
)

TEXT = "Ziekenhuis Émile, patiënt BSN 123456782 — ok € 5\n" * 3


def decode(data: bytes, charset: str | None = None, step: int | None = None) -> tuple[str, str]:
    anomalies: list = []
    decoder = TextDecoder(charset, anomalies)
    if step is None:
        text = decoder.decode(data)
    else:
        text = "".join(decoder.decode(data[i : i + step]) for i in range(0, len(data), step))
    text += decoder.finish()
    return text, decoder.codec or ""


def every_split(data: bytes, charset: str | None = None) -> set[str]:
    results = set()
    for cut in range(len(data) + 1):
        anomalies: list = []
        decoder = TextDecoder(charset, anomalies)
        results.add(decoder.decode(data[:cut]) + decoder.decode(data[cut:]) + decoder.finish())
    return results


def test_utf8_without_bom_every_split() -> None:
    data = TEXT.encode("utf-8")
    assert decode(data) == (TEXT, "utf-8")
    assert decode(data, step=1) == (TEXT, "utf-8")
    assert every_split(data) == {TEXT}


def test_cp1252_fallback() -> None:
    data = TEXT.encode("cp1252")
    assert decode(data) == (TEXT, "cp1252")
    assert every_split(data) == {TEXT}


def test_boms_win_and_are_stripped() -> None:
    for codec, bom in (
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
    ):
        data = bom + TEXT.encode(codec)
        assert decode(data, charset="iso-8859-1") == (TEXT, codec)
        assert decode(data, step=3) == (TEXT, codec)


def test_utf16le_bom_every_split() -> None:
    data = codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")
    assert every_split(data) == {TEXT}


def test_utf16_without_bom_is_sniffed() -> None:
    assert decode(TEXT.encode("utf-16-le")) == (TEXT, "utf-16-le")
    assert decode(TEXT.encode("utf-16-be"), step=5) == (TEXT, "utf-16-be")
    assert sniff_utf16(b"plain ascii text") is None


def test_declared_charset_and_labels() -> None:
    assert decode(TEXT.encode("cp1252"), charset="ISO-8859-1") == (TEXT, "cp1252")
    assert decode("Grüße".encode("iso8859-15"), charset="iso-8859-15")[0] == "Grüße"
    assert resolve_charset("us-ascii") == "cp1252"
    assert resolve_charset("no-such-charset") is None
    assert resolve_charset(None) is None


def test_unknown_declared_charset_is_noted_and_detection_used() -> None:
    anomalies: list = []
    decoder = TextDecoder("x-klingon", anomalies)
    assert decoder.decode(TEXT.encode()) + decoder.finish() == TEXT
    assert [a.kind for a in anomalies] == ["text_unknown_charset"]


def test_late_non_ascii_decides_at_first_non_ascii_byte() -> None:
    data = b"a" * 100_000 + "é".encode("cp1252") + b" rest"
    assert decode(data, step=4096) == ("a" * 100_000 + "é rest", "cp1252")
    data = b"a" * 100_000 + "é".encode() + b"b" * NON_ASCII_SNIFF_BYTES
    assert decode(data, step=7)[1] == "utf-8"


def test_short_and_empty_inputs() -> None:
    assert decode(b"") == ("", "")
    assert decode(b"\xe9")[0] == "é"
    assert decode(b"\xef\xbb\xbf") == ("", "utf-8")
    assert sniff_bom(b"\xff\xfe\x00\x00") == ("utf-32-le", 4)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
def test_any_bytes_any_split_same_text(data: bytes, cuts: list[int]) -> None:
    whole, _ = decode(data)
    anomalies: list = []
    decoder = TextDecoder(None, anomalies)
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    text = "".join(decoder.decode(data[a:b]) for a, b in itertools.pairwise(edges))
    assert text + decoder.finish() == whole
