"""Tests of sensor/classify/scanner.py: both engines, any chunking, the same candidates."""

from __future__ import annotations

import itertools
import platform
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.classify import scanner as scanner_module
from sensor.classify.scanner import (
    MAX_MATCH_CHARS,
    TAIL_CHARS,
    Candidate,
    Pattern,
    Scanner,
)

# Realistic detector patterns (issue 13, research note section 1.1), bounded in width.
PATTERNS = [
    Pattern("bsn", r"\d{9}|\d{3}[ .-]\d{3}[ .-]\d{3}|\d{4}\.\d{2}\.\d{3}", boundary="digits"),
    Pattern(
        "iban", r"[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?", boundary="alnum"
    ),
    Pattern("email", r"[\w.+-]{1,64}@[\w-]{1,40}(?:\.[\w-]{1,20}){1,4}", boundary="word"),
    Pattern(
        "nl_phone", r"(?:\+31|0031|0)[ -]?(?:6[ -]?\d{8}|[1-57-9]\d[ -]?\d{7})", boundary="digits"
    ),
    Pattern(
        "date",
        r"(?:[12]\d|3[01]|0?[1-9])[-/.](?:1[0-2]|0?[1-9])[-/.](?:19|20)\d{2}",
        boundary="digits",
    ),
    Pattern("postcode", r"[1-9]\d{3} ?[A-Z]{2}", boundary="alnum"),
    Pattern("pan", r"\d(?:[ -]?\d){12,18}", boundary="digits"),
    Pattern("icd10", r"[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?", boundary="alnum"),
    Pattern("agb", r"\d{8}", boundary="digits"),
    Pattern("fhir_bsn", r"http://fhir\.nl/fhir/NamingSystem/bsn", caseless=True),
]
KEYWORDS = {
    "bsn_context": ["bsn", "burgerservicenummer", "sofinummer", "bsn-nummer"],
    "health": ["uitstrijkje", "hrhpv", "cytologie", "patiënt", "baarmoederhalskanker", "pap3a"],
    "odd": ["ασθενησ", "İlaç", "t.n.v."],  # final sigma, dotted capital I, punctuation
}
ENGINES = ["hyperscan", "re"]


_SCANNERS: dict[tuple[str, tuple[Pattern, ...]], Scanner] = {}


def scanner_for(engine: str, patterns: list[Pattern]) -> Scanner:
    # Compiling is the slow part (hyperscan); a Scanner is reusable, its streams are not.
    key = (engine, tuple(patterns))
    if key not in _SCANNERS:
        _SCANNERS[key] = Scanner(patterns, KEYWORDS, engine=engine)
    return _SCANNERS[key]


def scan(engine: str, chunks: list[str], patterns: list[Pattern] = PATTERNS) -> list[Candidate]:
    stream = scanner_for(engine, patterns).stream()
    out: list[Candidate] = []
    for chunk in chunks:
        out.extend(stream.feed(chunk))
    out.extend(stream.finish())
    return sorted(out, key=lambda c: (c.start, c.end, c.pattern))


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(max(c, 0), len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def spans(cands: list[Candidate]) -> list[tuple[str, int, int, str]]:
    return [(c.pattern, c.start, c.end, c.text) for c in cands]


def test_hyperscan_imports_on_x86_64() -> None:
    if platform.machine() in ("x86_64", "AMD64"):
        assert scanner_module.hyperscan is not None
        assert Scanner(PATTERNS).engine == "hyperscan"
    else:  # the fallback must take over where hyperscan does not exist
        assert Scanner(PATTERNS).engine in ("hyperscan", "re")


def test_auto_falls_back_without_hyperscan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner_module, "hyperscan", None)
    assert Scanner(PATTERNS).engine == "re"
    with pytest.raises(ValueError, match="does not import"):
        Scanner(PATTERNS, engine="hyperscan")


SAMPLE = (
    "Patiënt J. de Vries, BSN: 111222333, geboren 03-07-1985, 2511 CV Den Haag.\n"
    "IBAN NL91ABNA0417164300 t.n.v. J. de Vries; mail j.devries@example.nl, tel 06-12345678.\n"
    "Uitstrijkje: hrHPV positief, cytologie PAP3A, ICD C53.1, AGB 01234567. Ordernummer "
    "1234567890 en 123.456.789 en 1234.56.789. Zie http://FHIR.nl/fhir/NamingSystem/bsn."
)


@pytest.mark.parametrize("engine", ENGINES)
def test_planted_identifiers(engine: str) -> None:
    found = {(c.pattern, c.text) for c in scan(engine, [SAMPLE])}
    for expected in [
        ("bsn", "111222333"),
        ("date", "03-07-1985"),
        ("postcode", "2511 CV"),
        ("iban", "NL91ABNA0417164300"),
        ("email", "j.devries@example.nl"),
        ("nl_phone", "06-12345678"),
        ("icd10", "C53.1"),
        ("agb", "01234567"),
        ("bsn", "123.456.789"),
        ("bsn", "1234.56.789"),
        ("fhir_bsn", "http://FHIR.nl/fhir/NamingSystem/bsn"),
        ("kw:bsn_context", "BSN"),
        ("kw:health", "Patiënt"),
        ("kw:health", "Uitstrijkje"),
        ("kw:health", "hrHPV"),
        ("kw:health", "PAP3A"),
        ("kw:odd", "t.n.v."),
    ]:
        assert expected in found, expected
    # 10 digits: neither a BSN nor an AGB inside it (the boundary rule).
    assert not any(c.text in ("123456789", "234567890") for c in scan(engine, [SAMPLE]))
    # The e-mail is reported once, not also as its suffixes.
    assert [c.text for c in scan(engine, [SAMPLE]) if c.pattern == "email"] == [
        "j.devries@example.nl"
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_split_offset_gives_the_same_candidates(engine: str) -> None:
    whole = scan(engine, [SAMPLE])
    assert whole
    for cut in range(len(SAMPLE) + 1):
        assert scan(engine, [SAMPLE[:cut], SAMPLE[cut:]]) == whole, cut
    assert scan(engine, list(SAMPLE)) == whole  # one character at a time


@pytest.mark.parametrize("engine", ENGINES)
def test_candidate_offsets_and_text_agree(engine: str) -> None:
    for c in scan(engine, [SAMPLE]):
        assert SAMPLE[c.start : c.end] == c.text


@pytest.mark.parametrize("engine", ENGINES)
def test_boundary_rules(engine: str) -> None:
    nine = [Pattern("n9", r"\d{9}", boundary="digits")]
    assert spans(scan(engine, ["x1112223334y"], nine)) == []  # 9 inside 10 digits
    assert spans(scan(engine, ["123456789012"], nine)) == []  # 9 inside 12 digits
    assert spans(scan(engine, ["a111222333b"], nine)) == [("n9", 1, 10, "111222333")]
    assert spans(scan(engine, ["111222333"], nine)) == [("n9", 0, 9, "111222333")]
    alnum = [Pattern("pc", r"[1-9]\d{3} ?[A-Z]{2}", boundary="alnum")]
    assert spans(scan(engine, ["1234ABC"], alnum)) == []
    assert spans(scan(engine, ["x1234AB"], alnum)) == []
    assert spans(scan(engine, ["(1234AB)"], alnum)) == [("pc", 1, 7, "1234AB")]
    word = [Pattern("w", r"[a-z]{3}", boundary="word")]
    assert spans(scan(engine, ["_abc abc1 abcd abc"], word)) == [("w", 15, 18, "abc")]
    free = [Pattern("f", r"\d{3}")]  # no boundary: maximal matches, overlapping kept
    assert spans(scan(engine, ["12345"], free)) == [
        ("f", 0, 3, "123"),
        ("f", 1, 4, "234"),
        ("f", 2, 5, "345"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_maximal_match_per_start(engine: str) -> None:
    pats = [Pattern("d", r"\d{2,6}", boundary=None)]
    # Every shorter run of the 6 digits lies inside the one maximal match.
    assert spans(scan(engine, ["x123456y"], pats)) == [("d", 1, 7, "123456")]
    # Two nested-free maxima in 8 digits.
    assert spans(scan(engine, ["12345678"], pats)) == [
        ("d", 0, 6, "123456"),
        ("d", 1, 7, "234567"),
        ("d", 2, 8, "345678"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_keywords_across_chunk_boundaries_at_every_offset(engine: str) -> None:
    text = "Het BSN-nummer: zie uitstrijkje (baarmoederhalskanker), bsnx niet, patiënt ja."
    whole = scan(engine, [text])
    assert [c.text for c in whole if c.pattern.startswith("kw:")] == [
        "BSN",
        "BSN-nummer",
        "uitstrijkje",
        "baarmoederhalskanker",
        "patiënt",
    ]
    for cut in range(len(text) + 1):
        for cut2 in range(cut, min(cut + 5, len(text)) + 1):
            assert scan(engine, [text[:cut], text[cut:cut2], text[cut2:]]) == whole


@pytest.mark.parametrize("engine", ENGINES)
def test_unicode_keyword_folding(engine: str) -> None:
    text = "ΑΣΘΕΝΗΣ; İLAÇ en ilaç; PATIËNT"
    found = [(c.pattern, c.text) for c in scan(engine, [text])]
    assert ("kw:odd", "ΑΣΘΕΝΗΣ") in found  # final sigma folds like sigma
    assert ("kw:odd", "İLAÇ") in found
    assert ("kw:odd", "ilaç") in found
    assert ("kw:health", "PATIËNT") in found


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ascii_offsets(engine: str) -> None:
    text = "é ü 😀 naïve café 111222333 — mail: ü@x.nl jan@voorbeeld.nl 😀 NL91ABNA0417164300"
    cands = scan(engine, [text])
    for c in cands:
        assert text[c.start : c.end] == c.text
    by = {c.pattern: c for c in cands}
    assert by["bsn"].start == text.index("111222333")
    assert by["iban"].start == text.index("NL91")
    # `ü` is no word character for the ASCII pattern: the e-mail starts after it.
    emails = [c.text for c in cands if c.pattern == "email"]
    assert emails == ["jan@voorbeeld.nl"] or emails == ["@x.nl", "jan@voorbeeld.nl"][1:]
    for cut in range(len(text) + 1):
        assert scan(engine, [text[:cut], text[cut:]]) == cands


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_chunks(engine: str) -> None:
    whole = scan(engine, [SAMPLE])
    chunks = [""]
    for piece in split(SAMPLE, list(range(0, len(SAMPLE), 13))):
        chunks += [piece, "", ""]
    assert scan(engine, chunks) == whole
    assert scan(engine, []) == []
    assert scan(engine, ["", ""]) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_huge_chunk_and_bounded_state(engine: str) -> None:
    filler = "De nieuwsbrief over het bevolkingsonderzoek, zonder nummers. " * 80_000
    text = "BSN 111222333 " + filler + " eind 999888777"
    stream = scanner_for(engine, PATTERNS).stream()
    got = stream.feed(text) + stream.finish()
    assert [c.text for c in got if c.pattern == "bsn"] == ["111222333", "999888777"]
    assert got[-1].start == len(text) - 9
    # Bounded: after many chunks the kept state is the tail and a handful of pending matches.
    stream = scanner_for(engine, PATTERNS).stream()
    for i in range(2000):
        stream.feed(f"rij {i};111222333;NL91ABNA0417164300;a{i}@b.nl;01-02-1980;1234 AB\n")
        assert len(stream._tail) <= TAIL_CHARS
        assert sum(len(p) for p in stream._pending) <= len(PATTERNS) * (MAX_MATCH_CHARS + 1)
        assert len(stream._deferred_kw) <= 16


@pytest.mark.parametrize("engine", ENGINES)
def test_feed_after_finish(engine: str) -> None:
    stream = Scanner(PATTERNS, engine=engine).stream()
    stream.feed("111222333")
    assert [c.text for c in stream.finish()] == ["111222333"]
    assert stream.finish() == []
    with pytest.raises(ValueError):
        stream.feed("x")


def test_abandoned_stream_is_closed() -> None:
    scanner = Scanner(PATTERNS, KEYWORDS)
    for _ in range(1000):
        stream = scanner.stream()
        stream.feed("BSN 111222333 ")
        del stream  # __del__ closes the hyperscan stream; no crash, no growth


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (Pattern("a", r"\d+"), "match length"),
        (Pattern("a", r"x?"), "match length"),
        (Pattern("a", r"(?<!\d)\d{3}"), "look-arounds"),
        (Pattern("a", r"^\d{3}"), "anchors"),
        (Pattern("a", r"\b\d{3}"), "anchors"),
        (Pattern("a", r"(\d)\1"), "back-references"),
        (Pattern("a", r"\d{3,5}?"), "lazy"),
        (Pattern("a", r"é{3}"), "non-ASCII"),
        (Pattern("a", r"[a-é]"), "non-ASCII"),
        (Pattern("a", r"[\d"), "pattern 'a'"),
        (Pattern("kw:a", r"\d"), "kw:"),
        (Pattern("a", r"\d", boundary="digit"), "boundary"),
    ],
)
def test_bad_patterns_are_clear_errors(pattern: Pattern, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scanner([pattern], engine="re")


def test_bad_keywords_and_engine() -> None:
    with pytest.raises(ValueError, match="keyword"):
        Scanner([], {"x": [""]})
    with pytest.raises(ValueError, match="keyword"):
        Scanner([], {"x": ["a" * 65]})
    with pytest.raises(ValueError, match="engine"):
        Scanner([], engine="pcre")
    with pytest.raises(ValueError, match="unique"):
        Scanner([Pattern("a", "x"), Pattern("a", "y")])


def test_keywords_only_and_patterns_only() -> None:
    for engine in ENGINES:
        kws = Scanner([], {"k": ["bsn"]}, engine=engine).stream()
        assert [c.pattern for c in kws.feed("de bsn is") + kws.finish()] == ["kw:k"]
        empty = Scanner([], engine=engine).stream()
        assert empty.feed("111222333") + empty.finish() == []


# -- hypothesis: both engines, any split, the same candidates ---------------------------

TOKENS = [
    "111222333",
    "111 222 333",
    "1112.22.333",
    "1234567890",
    "NL91ABNA0417164300",
    "NL91 ABNA 0417 1643 00",
    "DE89370400440532013000",
    "a.b@x.nl",
    "jan@voorbeeld.co.uk",
    "x@y",
    "06-12345678",
    "+31 20 1234567",
    "03-07-1985",
    "1-1-2001",
    "12/12/1999",
    "2511 CV",
    "2511CVX",
    "4111 1111 1111 1111",
    "C53.1",
    "Z12.4",
    "01234567",
    "bsn",
    "BSN-nummer",
    "Uitstrijkje",
    "patiënt",
    "ΑΣΘΕΝΗΣ",
    "t.n.v.",
    "http://fhir.nl/fhir/NamingSystem/bsn",
]
FILLER = st.text(alphabet="0123456789 .-/@_+,;:\nABCNLZxyzé😀ΣİK\u212a\xa0", max_size=12)


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[int]]:
    parts = draw(st.lists(st.one_of(FILLER, st.sampled_from(TOKENS)), max_size=25))
    text = "".join(parts)
    cuts = draw(st.lists(st.integers(0, max(len(text), 0)), max_size=8))
    return text, cuts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_cuts())
def test_engines_agree_for_any_text_and_split(sample: tuple[str, list[int]]) -> None:
    text, cuts = sample
    reference = scan("re", [text])
    for c in reference:
        assert text[c.start : c.end] == c.text
    assert scan("hyperscan", [text]) == reference
    assert scan("hyperscan", split(text, cuts)) == reference
    assert scan("re", split(text, cuts)) == reference


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_text_never_raises(text: str, cuts: list[int]) -> None:
    # Surrogates, NULs, any code point: the same candidates, nothing raised.
    assert scan("hyperscan", split(text, cuts)) == scan("re", [text])


def test_long_random_documents_agree() -> None:
    rng = random.Random(13)
    pieces = [*TOKENS, "lorem", "ipsum", " ", "\n", ";", "999999999999", "é", "😀"]
    text = " ".join(rng.choice(pieces) for _ in range(20_000))
    cuts = sorted(rng.sample(range(len(text)), 300))
    reference = scan("re", [text])
    assert len(reference) > 1000
    assert scan("hyperscan", split(text, cuts)) == reference
    assert scan("re", split(text, cuts)) == reference


# -- the start of an end-only (no SOM) Hyperscan report ------------------------------------


@pytest.mark.parametrize(
    ("regex", "caseless", "inside", "outside"),
    [
        (r"\d{3}[ .-]\d{3}", False, "0 .-9", "a/_"),
        (r"[a-c]x|Q", True, "abcxqABCXQ", "dD;"),
        (r"[\w.+-]{1,64}@[\w-]{1,40}", False, "aZ_0.+-@", " ;,é"),
    ],
)
def test_characters_a_match_can_hold(regex: str, caseless: bool, inside: str, outside: str) -> None:
    compiled = scanner_module._compile_pattern(Pattern("p", regex, caseless=caseless))
    assert compiled.outside is not None
    assert all(compiled.outside.fullmatch(c) is None for c in inside)
    assert all(compiled.outside.fullmatch(c) is not None for c in outside)


@pytest.mark.parametrize("regex", [r"a.b", r"[^;]{1,9}@x", r"\D{3}", r"a[^b]c|d"])
def test_any_character_means_no_outside_bound(regex: str) -> None:
    assert scanner_module._compile_pattern(Pattern("p", regex)).outside is None


def shipped_patterns() -> list[Pattern]:
    from sensor.classify.detectors import load_detectors

    return [
        Pattern(
            d.id,
            d.pattern,
            caseless="caseless" in d.flags,
            boundary=None if d.boundary == "none" else d.boundary,
        )
        for d in load_detectors().detectors
    ]


SHIPPED = shipped_patterns()
SHIPPED_TOKENS = st.sampled_from(
    ["725763863", "162 275 869", "NL36 INGB 0007 6543 21", "anna.de-vries@zorg.example.nl",
     "a@b.nl", "x+y@c.d.e.org", "14-03-1985", "2311 EZ", "+31 (0)20 123 4567", "C53.9",
     "4711 4710 4974 6501", "880320-0016", "PID|1|", "@", ".", "a", "7", "-"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(FILLER, SHIPPED_TOKENS), max_size=30),
    st.lists(st.integers(0, 400), max_size=6),
)
def test_engines_agree_on_the_shipped_detectors(parts: list[str], cuts: list[int]) -> None:
    """The e-mail detector is end-only in Hyperscan (its SOM form is too large): its start is
    looked up after the last character no address holds; the `re` engine must agree."""
    text = "".join(parts)
    reference = scan("re", [text], SHIPPED)
    assert scan("hyperscan", split(text, cuts), SHIPPED) == reference
