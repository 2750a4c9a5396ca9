"""PlainTextExtractor: decoded text, same chunks for every split, cap, hostile bytes."""

from __future__ import annotations

import codecs
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.emitter import MAX_CHUNK_CHARS
from sensor.content.text.plain import PlainTextExtractor

TEXT = "Ziekenhuis Émile\nPatiënt: J. de Vries, BSN 123456782, IBAN NL91ABNA0417164300\n"


def run(data: bytes, pieces: list[bytes] | None = None, **kw: object) -> list[TextChunk]:
    ex = PlainTextExtractor(**kw)  # type: ignore[arg-type]
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    return out + ex.finish()


def text_of(chunks: list[TextChunk]) -> str:
    return "".join(c.text for c in chunks)


def test_utf8_cp1252_utf16_every_split() -> None:
    for data in (
        TEXT.encode("utf-8"),
        TEXT.encode("cp1252"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    ):
        whole = run(data)
        assert text_of(whole) == TEXT
        assert run(data, [bytes([b]) for b in data]) == whole
        for cut in range(len(data) + 1):
            assert run(data, [data[:cut], data[cut:]]) == whole


def test_part_and_offsets() -> None:
    chunks = run(TEXT.encode(), part="notes/a.txt")
    assert chunks[0].position.part == "notes/a.txt" and chunks[0].position.offset == 0


def test_large_text_chunks_are_bounded_and_split_independent() -> None:
    data = ("BSN 123456782 en meer tekst " * 20_000).encode()
    whole = run(data)
    assert len(whole) > 1 and all(len(c.text) <= MAX_CHUNK_CHARS for c in whole)
    offsets = [c.position.offset for c in whole]
    assert offsets == [sum(len(c.text) for c in whole[:i]) for i in range(len(whole))]
    assert run(data, [data[i : i + 777] for i in range(0, len(data), 777)]) == whole


def test_cap() -> None:
    ex = PlainTextExtractor(max_chars=10)
    out = ex.feed(TEXT.encode()) + ex.feed(b"more") + ex.finish()
    assert text_of(out) == TEXT[:10]
    assert [a.kind for a in ex.anomalies] == ["text_cap"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_hostile_bytes_never_raise_and_split_invariant(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    assert run(data, pieces) == run(data)
