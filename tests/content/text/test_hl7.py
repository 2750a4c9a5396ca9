"""Hl7Extractor: one row per segment, a header per field and repetition, the message as the
record, the same chunks for every split; PlainOrHl7Extractor tells HL7 from other text."""

from __future__ import annotations

import bisect
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.delimited import RowChunk
from sensor.content.text.hl7 import (
    MAX_SEGMENT_CHARS,
    Hl7Extractor,
    PlainOrHl7Extractor,
    looks_like_hl7,
)
from sensor.content.text.plain import PlainTextExtractor

BSN_OID = "2.16.840.1.113883.2.4.6.3"
AGB_OID = "2.16.840.1.113883.2.4.6.1"
MESSAGE = (
    "MSH|^~\\&|LAB|OEFENLAB|HIS|HUISARTS|20250714111700||ORU^R01^ORU_R01|MSG00000001|P|2.5\r"
    f"PID|1||274681201^^^NLMINBIZA&{BSN_OID}&ISO^NNNLD~H123^^^ZKH^PI||Nepveld^René||19880730|F\r"
    f"OBR|1|BMHK25-1|BMHK25-1-F|BMHK^BVO^L|||20250714|||||||||01588704^Dummerhof^^^^^^^VEKTIS&"
    f"{AGB_OID}&ISO\r"
    "OBX|1|ST|HRHPV^hrHPV-test^L||positief||||||F\r"
)


def read(data: bytes, split: int | None = None, **kw: object) -> tuple[list[TextChunk], list]:
    ex = PlainOrHl7Extractor(**kw)  # type: ignore[arg-type]
    out: list[TextChunk] = []
    step = split or max(1, len(data))
    for i in range(0, len(data), step):
        out += ex.feed(data[i : i + step])
    out += ex.finish()
    return out, ex.anomalies


def fields(chunk: TextChunk) -> dict[str, str]:
    """header -> cell text, looked up the way the classifier does (bisect on `cells`)."""
    assert isinstance(chunk, RowChunk) and chunk.headers is not None
    result = {}
    ends = [*chunk.cells[1:], len(chunk.text) + 1]
    for start, end in zip(chunk.cells, ends, strict=True):
        column = bisect.bisect_right(chunk.cells, start)
        result[chunk.headers[column - 1]] = chunk.text[start : end - 1]
    return result


def test_fields_have_their_positions_and_issuers() -> None:
    out, anomalies = read(MESSAGE.encode())
    assert anomalies == []
    assert [c.text[:3] for c in out] == ["MSH", "PID", "OBR", "OBX"]
    assert all(c.position.row == 1 for c in out)
    msh, pid, obr, _ = (fields(c) for c in out)
    assert msh["MSH-2"] == "^~\\&" and msh["MSH-9"] == "ORU^R01^ORU_R01"
    assert msh["MSH-10"] == "MSG00000001"
    # PID-3 repeats: each repetition its own cell, with who issued it.
    bsn_header = f"PID-3 NLMINBIZA {BSN_OID} ISO NNNLD"
    assert pid[bsn_header].startswith("274681201^")
    assert pid["PID-7"] == "19880730"
    assert obr[f"OBR-16 VEKTIS {AGB_OID} ISO"].startswith("01588704^Dummerhof")
    assert [c.text for c in out] == MESSAGE.rstrip("\r").split("\r")


def test_a_repetition_without_an_issuer_has_the_plain_label() -> None:
    out, _ = read(MESSAGE.encode())
    pid = out[1]
    assert isinstance(pid, RowChunk) and pid.headers is not None
    at = pid.text.index("H123")
    column = bisect.bisect_right(pid.cells, at)
    assert pid.headers[column - 1] == "PID-3"


def test_messages_are_records_whatever_the_line_ends() -> None:
    two = MESSAGE + MESSAGE.replace("MSG00000001", "MSG00000002")
    for text in (two, two.replace("\r", "\n"), two.replace("\r", "\r\n\r\n")):
        out, _ = read(text.encode("latin-1"), charset="iso-8859-1")
        assert [c.position.row for c in out] == [1] * 4 + [2] * 4
        assert "René" in out[1].text
        assert [c.position.offset for c in out] == list(
            itertools.accumulate([0] + [len(c.text) for c in out[:-1]])
        )


def test_every_split_gives_the_same_chunks() -> None:
    data = (MESSAGE * 3).replace("\r", "\r\n").encode()
    whole, _ = read(data)
    for split in (1, 2, 7, 100):
        assert read(data, split)[0] == whole
    rng = random.Random(7)
    for _ in range(10):
        assert read(data, rng.randrange(1, 60))[0] == whole


def test_framing_before_the_header() -> None:
    out, _ = read(b"\xef\xbb\xbf\x0b" + MESSAGE.encode() + b"\x1c\r")
    assert [c.text[:3] for c in out] == ["MSH", "PID", "OBR", "OBX"]
    assert looks_like_hl7(b"\x0b\r\nMSH|^~\\&|X")
    assert not looks_like_hl7(b"MSH is a word in this text")
    assert not looks_like_hl7(b"MSH|")


def test_other_text_is_plain_text() -> None:
    ex = PlainOrHl7Extractor()
    out = ex.feed(b"Beste collega, BSN 123456782.\n") + ex.finish()
    assert isinstance(ex._chosen, PlainTextExtractor)
    assert "".join(c.text for c in out) == "Beste collega, BSN 123456782.\n"
    assert read(b"MSH")[0][0].text == "MSH"  # too short to be a header: plain


def test_a_segment_too_long_is_cut() -> None:
    data = ("MSH|^~\\&|A\rOBX|1|TX|||" + "x" * (MAX_SEGMENT_CHARS + 10) + "\rPID|1\r").encode()
    for split in (None, 4096):
        out, anomalies = read(data, split)
        assert [a.kind for a in anomalies] == ["text_hl7_segment_too_long"]
        assert max(len(c.text) for c in out) == MAX_SEGMENT_CHARS
        assert out[-1].text == "PID|1"


def test_the_cap() -> None:
    out, anomalies = read(MESSAGE.encode(), max_chars=100)
    assert sum(len(c.text) for c in out) == 100
    assert [a.kind for a in anomalies] == ["text_cap"]
    last = out[-1]
    assert isinstance(last, RowChunk) and all(s < len(last.text) for s in last.cells)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for prefix in (b"", b"MSH|^~\\&|"):
        ex = Hl7Extractor()
        blob = prefix + data
        for a, b in itertools.pairwise([0, *(e + len(prefix) for e in edges)]):
            ex.feed(blob[a:b])
        ex.finish()
        assert all(a.kind.startswith("text_") for a in ex.anomalies)
