"""RtfExtractor: control words stripped, skipped destinations, \\'hh and \\u escapes, any
split."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.rtf import MAX_RTF_DEPTH, MAX_RTF_PENDING_BYTES, RtfExtractor

SAMPLE = (
    rb"{\rtf1\ansi\ansicpg1252\deff0"
    rb"{\fonttbl{\f0\froman Times New Roman;}{\f1 Arial;}}"
    rb"{\colortbl;\red255\green0\blue0;}{\stylesheet{\s0 Normal;}}"
    rb"{\*\generator Riched20 10.0;}{\info{\author Dr. X}}"
    b"\\viewkind4\\uc1\\pard\\f0\\fs24 Ziekenhuis \\'c9mile\\par\r\n"
    rb"Patient caf\u233?, \u8364\'80 5\tab BSN 123456782\line "
    rb"{\pict\pngblip\bin6 }{\\x}89504e47}"
    rb"{\field{\*\fldinst HYPERLINK x}{\fldrslt link}}"
    rb"\ldblquote q\rdblquote\~\{\}\\ \u-10179?\u-8704? end}"
)
EXPECTED = "Ziekenhuis Émile\nPatient café, € 5\tBSN 123456782\nlink“q”\u00a0{}\\ \U0001f600 end"


def run(data: bytes, pieces: list[bytes] | None = None) -> tuple:
    ex = RtfExtractor()
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    out += ex.finish()
    return out, [a.kind for a in ex.anomalies]


def test_text_every_split() -> None:
    whole, anomalies = run(SAMPLE)
    assert "".join(c.text for c in whole) == EXPECTED
    assert anomalies == []
    assert run(SAMPLE, [bytes([b]) for b in SAMPLE]) == (whole, anomalies)
    for cut in range(len(SAMPLE) + 1):
        assert run(SAMPLE, [SAMPLE[:cut], SAMPLE[cut:]]) == (whole, anomalies)


def test_other_code_page() -> None:
    data = rb"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2}"
    assert "".join(c.text for c in run(data)[0]) == "Привет"


def test_uc0_keeps_following_text_and_deep_groups_are_noted() -> None:
    data = rb"{\rtf1\uc0\u233 x}"
    assert "".join(c.text for c in run(data)[0]) == "éx"
    deep = b"{" * (MAX_RTF_DEPTH + 5) + b"deep" + b"}" * (MAX_RTF_DEPTH + 5) + b"after"
    out, anomalies = run(deep)
    assert "".join(c.text for c in out) == "deepafter"
    assert anomalies == ["text_rtf_too_deep"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    run(data, pieces)


rtfish = st.text(alphabet=st.sampled_from("{}\\'*abu0129-? \r\nxfonttbl"), max_size=200)


@settings(max_examples=300, deadline=None)
@given(rtfish, st.data())
def test_rtf_like_input_split_invariant(text: str, data: st.DataObject) -> None:
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=5))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert run(raw, pieces) == run(raw)


def test_long_text_run_is_decoded_as_it_streams_and_split_invariant() -> None:
    body = ("Gr\\'fc\\'dfe BSN 123456782 " * 8000).encode()  # ~200 KB, no control word between
    data = b"{\\rtf1\\ansi " + body + b"}"
    ex = RtfExtractor()
    early = ex.feed(data)
    assert early  # text goes out before finish: the held bytes are capped
    assert len(ex._pending) < MAX_RTF_PENDING_BYTES
    whole = early + ex.finish()
    assert "".join(c.text for c in whole) == "Grüße BSN 123456782 " * 8000
    for step in (1000, 65_537, 4096):
        assert run(data, [data[i : i + step] for i in range(0, len(data), step)])[0] == whole


def test_double_byte_code_page_cut_by_the_cap_stays_whole() -> None:
    # cp932: "日月" is 93 FA 8C 8E (no brace or backslash among the trail bytes); an odd ASCII
    # prefix puts a character across the 64 KiB cut.
    text = "a" + "日月" * (MAX_RTF_PENDING_BYTES // 2)
    data = b"{\\rtf1\\ansi\\ansicpg932 " + text.encode("cp932") + b"}"
    out, kinds = run(data, [data[i : i + 999] for i in range(0, len(data), 999)])
    assert "".join(c.text for c in out) == text
    assert kinds == []
