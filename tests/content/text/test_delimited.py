"""DelimitedExtractor: delimiters, RFC 4180 quoting across splits, header rows, charsets."""

from __future__ import annotations

import bisect
import codecs
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.delimited import (
    MAX_RECORD_CHARS,
    DelimitedExtractor,
    RowChunk,
    looks_like_header,
    sniff_delimiter,
)

DUTCH = (
    "BSN;Naam;Ziekenhuis;Notitie\r\n"
    '123456782;"Vries, J. de";Ziekenhuis Émile;"regel 1\r\nregel ""2""; einde"\r\n'
    "111222333;Bakker;AMC;\r\n"
    "\r\n"
    "999999990;Jansen;;geen\r\n"
)


def run(data: bytes, pieces: list[bytes] | None = None, **kw: object) -> list[TextChunk]:
    ex = DelimitedExtractor(**kw)  # type: ignore[arg-type]
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    return out + ex.finish()


def rows(chunks: list[TextChunk]) -> list[tuple[int | None, list[str]]]:
    result = []
    for chunk in chunks:
        assert isinstance(chunk, RowChunk)
        ends = [*chunk.cells[1:], len(chunk.text) + 1]
        cells = [chunk.text[a : b - 1] for a, b in zip(chunk.cells, ends, strict=False)]
        result.append((chunk.position.row, cells))
    return result


def check_every_split(data: bytes, **kw: object) -> list[TextChunk]:
    whole = run(data, **kw)
    assert run(data, [bytes([b]) for b in data], **kw) == whole
    for cut in range(len(data) + 1):
        assert run(data, [data[:cut], data[cut:]], **kw) == whole
    return whole


def test_semicolon_quoted_newlines_header_every_split() -> None:
    whole = check_every_split(DUTCH.encode("utf-8"))
    assert rows(whole) == [
        (1, ["BSN", "Naam", "Ziekenhuis", "Notitie"]),
        (2, ["123456782", "Vries, J. de", "Ziekenhuis Émile", 'regel 1\r\nregel "2"; einde']),
        (3, ["111222333", "Bakker", "AMC", ""]),
        (5, ["999999990", "Jansen", "", "geen"]),
    ]
    assert whole[0].headers is None  # type: ignore[attr-defined]
    assert whole[1].headers == ("BSN", "Naam", "Ziekenhuis", "Notitie")  # type: ignore[attr-defined]
    offsets = [c.position.offset for c in whole]
    assert offsets == [sum(len(c.text) for c in whole[:i]) for i in range(len(whole))]


def test_header_of_a_match_by_offset() -> None:
    chunk = run(DUTCH.encode())[1]
    assert isinstance(chunk, RowChunk) and chunk.headers is not None
    at = chunk.text.index("Émile")
    column = bisect.bisect_right(chunk.cells, at)
    assert (column, chunk.headers[column - 1]) == (3, "Ziekenhuis")


def test_comma_delimiter_and_no_header_for_numeric_first_row() -> None:
    data = b'123456782,"Jansen, P",1980-01-02\n111222333,Bakker,1975-05-06\n'
    whole = check_every_split(data)
    assert rows(whole)[0] == (1, ["123456782", "Jansen, P", "1980-01-02"])
    assert all(c.headers is None for c in whole)  # type: ignore[attr-defined]


def test_tsv_and_pipe() -> None:
    assert rows(run(b"a\tb\n1\t2\n", delimiter="\t"))[1] == (2, ["1", "2"])
    assert sniff_delimiter("a|b|c\n1|2|3\n") == "|"
    assert sniff_delimiter("a;b,c;d\n1;2,5;3\n") == ";"
    assert sniff_delimiter("no delimiter here") == ","


def test_utf8_bom_cp1252_utf16le_bom() -> None:
    expected = rows(run(DUTCH.encode("utf-8")))
    for data in (
        codecs.BOM_UTF8 + DUTCH.encode("utf-8"),
        DUTCH.encode("cp1252"),
        codecs.BOM_UTF16_LE + DUTCH.encode("utf-16-le"),
    ):
        assert rows(check_every_split(data)) == expected


def test_looks_like_header() -> None:
    assert looks_like_header(["bsn", "naam"])
    assert not looks_like_header(["bsn", ""])
    assert not looks_like_header(["bsn", "12-01-2020"])
    assert not looks_like_header([])


def test_record_too_long_is_cut_the_same_way_for_every_split() -> None:
    data = b'a;b\n1;"' + b"x" * (MAX_RECORD_CHARS * 2) + b"\n2;3\n"
    whole = run(data)
    assert all(len(c.text) <= MAX_RECORD_CHARS for c in whole)
    for step in (1000, 4096, 65536):
        ex = DelimitedExtractor()
        out: list[TextChunk] = []
        for i in range(0, len(data), step):
            out += ex.feed(data[i : i + step])
        assert out + ex.finish() == whole
        assert [a.kind for a in ex.anomalies] == ["text_csv_record_too_long"]


def test_line_without_newline_is_bounded() -> None:
    ex = DelimitedExtractor()
    for _ in range(50):
        ex.feed(b"y;" * 10_000)
    assert len(ex._pending) <= MAX_RECORD_CHARS + 20_000
    assert ex.finish() or ex.anomalies


def test_cap() -> None:
    ex = DelimitedExtractor(max_chars=12)
    out = ex.feed(DUTCH.encode()) + ex.finish()
    assert sum(len(c.text) for c in out) == 12
    assert [a.kind for a in ex.anomalies] == ["text_cap"]


cells = st.text(alphabet=st.sampled_from('ab1é ;,"\r\n'), max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=8), st.data())
def test_random_tables_any_split(table: list[list[str]], data: st.DataObject) -> None:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, delimiter=";").writerows(table)
    raw = buf.getvalue().encode("utf-8")
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert run(raw, pieces, delimiter=";") == run(raw, delimiter=";")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    assert run(data, pieces) == run(data)
