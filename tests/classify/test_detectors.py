"""The detectors file: the shipped one loads and keeps its own examples honest (with Python
`re` and with hyperscan in stream mode), and every broken file is an error naming the file,
the entry and the rule."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sensor.classify.detectors import (
    CATEGORIES,
    DEFAULT_PATH,
    Detector,
    DetectorError,
    DetectorSet,
    fold,
    load_detectors,
    parse_detectors,
    portability_problem,
)
from sensor.classify.scanner import Pattern, Scanner
from sensor.classify.validators import VALIDATORS


@pytest.fixture(scope="module")
def shipped() -> DetectorSet:
    return load_detectors(DEFAULT_PATH)


def test_shipped_file_loads_with_every_check(shipped: DetectorSet) -> None:
    assert shipped.id == "sluice-detectors"
    assert shipped.version >= 1
    assert shipped.hyperscan_checked  # hyperscan is installed in the venv
    ids = [d.id for d in shipped.detectors]
    assert len(ids) == len(set(ids))
    for wanted in ("bsn", "iban", "payment_card", "postcode_nl", "phone_nl", "email_address",
                   "date_of_birth", "agb", "big", "uzi", "icd10", "icd10_cervical",
                   "hl7v2_pid", "fhir_patient", "pl_pesel", "de_tax_id"):  # fmt: skip
        assert wanted in ids
    assert {d.category for d in shipped.detectors} == set(CATEGORIES)
    assert shipped.severity[-1].any
    assert shipped.severity[0].severity == "critical"


def test_without_hyperscan_the_file_loads_and_says_so() -> None:
    loaded = parse_detectors(DEFAULT_PATH.read_text(encoding="utf-8"), use_hyperscan=False)
    assert not loaded.hyperscan_checked
    assert [d.id for d in loaded.detectors] == [d.id for d in load_detectors().detectors]


def test_default_load_reads_the_resolved_signatures_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "detectors.toml").write_text(DEFAULT_PATH.read_text(encoding="utf-8"))
    monkeypatch.setenv("SLUICE_SIGNATURES", str(tmp_path))
    assert load_detectors().id == "sluice-detectors"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectorError, match=r"no detectors\.toml"):
        load_detectors(signatures=tmp_path / "empty")
    with pytest.raises(DetectorError, match="does not exist"):
        load_detectors(signatures=tmp_path / "nowhere")


def test_every_example_is_found_and_every_counter_example_is_not(shipped: DetectorSet) -> None:
    # parse_detectors checks the same on load; here it is asserted directly, so a change to
    # the load-time check cannot silently drop it.
    for detector in shipped.detectors:
        assert detector.examples, detector.id
        for example in detector.examples:
            assert list(detector.reference_matches(example)), (detector.id, example)
        for example in detector.counter_examples:
            assert not list(detector.reference_matches(example)), (detector.id, example)


def hyperscan_values(detector: Detector, text: str, splits: list[int]) -> set[str]:
    """Accepted values the scanner's hyperscan engine finds in `text` fed in chunks cut at
    `splits` (stream mode; leftmost start of match, or the end only where hyperscan finds a
    pattern too large for that): independent of the `re` reference matches."""
    scanner = Scanner(
        [Pattern(detector.id, detector.pattern, caseless="caseless" in detector.flags,
                 boundary=None if detector.boundary == "none" else detector.boundary)],
        engine="hyperscan",
    )  # fmt: skip
    stream = scanner.stream()
    candidates = []
    last = 0
    for cut in [*splits, len(text)]:
        candidates += stream.feed(text[last:cut])
        last = cut
    candidates += stream.finish()
    found: set[str] = set()
    for candidate in candidates:
        value = detector.normalise(candidate.text)
        if value is not None:
            found.add(value)
    return found


def test_hyperscan_stream_finds_the_same_examples(shipped: DetectorSet) -> None:
    rng = random.Random(13)
    for detector in shipped.detectors:
        for example in detector.examples:
            if not example.isascii():
                continue
            expected = {value for _, _, value in detector.reference_matches(example)}
            cuts = sorted(rng.sample(range(1, len(example)), min(3, len(example) - 1)))
            assert expected <= hyperscan_values(detector, example, cuts), (detector.id, example)
        for example in detector.counter_examples:
            if example.isascii():
                assert not hyperscan_values(detector, example, []), (detector.id, example)


def test_bsn_ignores_documentation_examples_but_finds_generated_ones(
    shipped: DetectorSet,
) -> None:
    bsn = shipped.detector("bsn")
    assert bsn is not None
    assert bsn.normalise("111222333") is None
    assert bsn.normalise("111.222.333") is None
    assert bsn.normalise("123456782") is None
    assert VALIDATORS["bsn"]("111222333") == "111222333"  # valid: only the data ignores it
    rng = random.Random(4)
    found = 0
    while found < 20:
        candidate = f"{rng.randrange(200_000_000, 1_000_000_000)}"
        weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
        if sum(w * int(d) for w, d in zip(weights, candidate, strict=True)) % 11 == 0:
            text = f"BSN: {candidate[:3]} {candidate[3:6]} {candidate[6:]};"
            assert [m[2] for m in bsn.reference_matches(text)] == [candidate]
            found += 1


def test_test_card_numbers_and_example_ibans_are_ignored(shipped: DetectorSet) -> None:
    card = shipped.detector("payment_card")
    iban = shipped.detector("iban")
    assert card is not None and iban is not None
    assert card.normalise("4111 1111 1111 1111") is None
    assert card.normalise("5555-5555-5555-4444") is None
    assert iban.normalise("nl91 abna 0417 1643 00") is None
    assert iban.normalise("NL36INGB0007654321") == "NL36INGB0007654321"


def test_boundary_checks(shipped: DetectorSet) -> None:
    bsn = shipped.detector("bsn")
    assert bsn is not None
    # alnum boundary: a digit run touching letters (a hex id, a UUID) is no BSN
    assert list(bsn.reference_matches("x725763863y")) == []
    assert list(bsn.reference_matches("(725763863)")) != []
    assert list(bsn.reference_matches("BSN: 725763863;")) != []
    assert list(bsn.reference_matches("1725763863")) == []
    assert list(bsn.reference_matches("7257638631")) == []
    postcode = shipped.detector("postcode_nl")
    assert postcode is not None
    assert list(postcode.reference_matches("2311 EZ")) != []
    assert list(postcode.reference_matches("2311 EZA")) == []


def test_keywords_are_folded_unique_and_hold_the_screening_terms(shipped: DetectorSet) -> None:
    terms: list[str] = [t for k in shipped.keywords for t in k.terms]
    assert len(terms) == len(set(terms))
    assert all(t == fold(t) for t in terms)
    strong = {t for k in shipped.keywords if k.tier == "strong" for t in k.terms}
    for wanted in ("hrhpv", "uitstrijkje", "cytologie", "pap1", "pap 5", "kopac-b", "asc-us",
                   "asc-h", "lsil", "hsil", "agc", "cin1", "cin 2", "cin-3", "colposcopie",
                   "bevolkingsonderzoek baarmoederhalskanker", "zelfafnameset"):  # fmt: skip
        assert wanted in strong
    weak = {t for k in shipped.keywords if k.tier == "weak" for t in k.terms}
    for wanted in ("hpv", "baarmoederhals", "cervix", "screening"):
        assert wanted in weak
    bsn = shipped.detector("bsn")
    assert bsn is not None
    assert "http://fhir.nl/fhir/namingsystem/bsn" in bsn.context
    assert "2.16.840.1.113883.2.4.6.3" in bsn.context


def test_fold() -> None:
    assert fold("Patiënte") == "patiente"
    assert fold("HENKILÖTUNNUS") == "henkilotunnus"
    assert fold("ﬁle") == "file"  # NFKD compatibility ligature


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"(?<!\d)\d{9}", "look-behind"),
        (r"\d{9}(?!\d)", "look-ahead"),
        (r"(\d)\1", "back-reference"),
        (r"(?P<x>a)(?P=x)", "named group"),
        (r"\bBSN", "word-boundary"),
        (r"^PID", "anchor"),
        (r"PID$", "anchor"),
        (r"\APID", "anchor"),
        (r"(?>ab)", "atomic"),
        (r"a*+", "possessive"),
        (r"(?i)bsn", "inline flags"),
        (r"(a)?(?(1)b|c)", "conditional"),
    ],
)
def test_portability_refusals(pattern: str, problem: str) -> None:
    found = portability_problem(pattern)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "pattern", [r"[0-9]{9}", r"[\^$]x", r"[]a]+", r"\++", r"a+?", r"(?:ab|cd){2,3}", r"\$\^"]
)
def test_portability_accepts(pattern: str) -> None:
    assert portability_problem(pattern) is None


# -- broken files -------------------------------------------------------------------------

GOOD_DETECTOR = """
[[detector]]
id = "other"
category = "contact"
pattern = '[0-9]{4}'
boundary = "digits"
confidence = 0.5
confidence_context = 0.6
examples = ["1234"]
"""

SEVERITY = """
[[severity]]
severity = "high"
identifier = "bsn"
min_distinct = 5

[[severity]]
severity = "low"
any = true
"""


def file_with(third: str, *, severity: str = SEVERITY, top: str = "") -> str:
    """A file whose third [[detector]] is `third` (the first two are fine)."""
    bsn = """
[[detector]]
id = "bsn"
category = "national_id"
pattern = '[0-9]{9}'
boundary = "digits"
validator = "bsn"
context = ["bsn"]
confidence = 0.65
confidence_context = 0.85
ignore = ["111222333"]
examples = ["725763863"]
counter_examples = ["111222333"]
"""
    return (
        f'id = "t"\nversion = 1\n{top}\n{bsn}\n{GOOD_DETECTOR}\n[[detector]]\n{third}\n{severity}'
    )


THIRD_OK = """id = "third"
category = "health"
pattern = 'C53'
boundary = "alnum"
confidence = 0.5
confidence_context = 0.85
examples = ["C53"]
"""


def test_the_base_file_of_the_broken_cases_is_fine() -> None:
    loaded = parse_detectors(file_with(THIRD_OK), "t.toml")
    assert [d.id for d in loaded.detectors] == ["bsn", "other", "third"]


def change(key: str, value: str | None) -> str:
    lines = [line for line in THIRD_OK.splitlines() if not line.startswith(f"{key} =")]
    if value is not None:
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


BROKEN_DETECTOR: list[tuple[str, str]] = [
    (change("colour", '"red"'), "unknown key 'colour'"),
    (change("category", '"secret"'), "category must be one of"),
    (change("pattern", r"'(?<![0-9])C53'"), "look-behind"),
    (change("pattern", r"'(C)\1'"), "back-reference"),
    (change("pattern", "'C53('"), "does not compile with Python re"),
    (change("pattern", "'[A-Za-z0-9.-]{1,64}@[a-z]+'"), "does not compile with hyperscan"),
    (change("pattern", "'x*'"), "matches the empty string"),
    (change("pattern", "'C53\u00e9'"), "must be ASCII"),
    (change("pattern", "5"), "pattern must be a non-empty string"),
    (change("flags", '["verbose"]'), "flag 'verbose'"),
    (change("boundary", '"space"'), "boundary must be one of"),
    (change("validator", '"elfproef"'), "validator 'elfproef'"),
    (change("confidence", "1.5"), "confidence must be a number from 0 to 1"),
    (change("confidence", "true"), "confidence must be a number from 0 to 1"),
    (change("confidence", None), "confidence (0..1) is required"),
    (change("confidence_context", "0.4"), "confidence_context is lower than confidence"),
    (change("window", "0"), "window must be an integer from 1 to"),
    (change("window", "5000"), "window must be an integer from 1 to"),
    (change("negative_window", "-1"), "negative_window must be an integer"),
    (change("requires_context", "true"), "requires_context needs context words"),
    (change("requires_context", "true") + 'context = ["icd"]\n', "confidence never applies"),
    (change("context", '["ICD"]'), "must be written folded"),
    (change("negative", '["diagnosë"]'), "must be written folded"),
    (change("context", '"icd"'), "context must be a list of non-empty strings"),
    (change("examples", "[]"), "needs at least one example"),
    (change("examples", '["D06"]'), "example 'D06' yields no accepted match"),
    (change("counter_examples", '["C53 x"]'), "counter-example 'C53 x' yields a match"),
    (change("ignore", '["C54"]'), "ignore value 'C54'"),
    (change("kind", '"record"'), "kind must be one of"),
    (change("id", '"Third"'), "id must be snake_case"),
    (change("id", '"bsn"'), "duplicate id"),
]


@pytest.mark.parametrize(("third", "rule"), BROKEN_DETECTOR)
def test_broken_detector_names_file_entry_and_rule(third: str, rule: str) -> None:
    with pytest.raises(DetectorError) as caught:
        parse_detectors(file_with(third), "broken.toml")
    message = str(caught.value)
    assert message.startswith("broken.toml: [[detector]] #3"), message
    assert rule in message, message


def test_broken_ignore_validator_check() -> None:
    text = file_with(THIRD_OK).replace('ignore = ["111222333"]', 'ignore = ["111222334"]')
    with pytest.raises(DetectorError, match=r"\[\[detector\]\] #1 \(bsn\): ignore value"):
        parse_detectors(text, "f.toml")


def test_ignored_value_makes_an_example_fail() -> None:
    text = file_with(THIRD_OK).replace('examples = ["725763863"]', 'examples = ["111222333"]')
    with pytest.raises(DetectorError, match=r"#1 \(bsn\): example '111222333' yields no"):
        parse_detectors(text, "f.toml")


BROKEN_SEVERITY: list[tuple[str, str]] = [
    ('[[severity]]\nseverity = "low"\nmin_records = 1\n', "catch-all (any = true)"),
    ('[[severity]]\nseverity = "fatal"\nany = true\n', "severity must be one of"),
    ('[[severity]]\nseverity = "low"\nany = true\nmin_records = 2\n', "takes no conditions"),
    ('[[severity]]\nseverity = "high"\n[[severity]]\nseverity = "low"\nany = true\n',
     "needs a condition"),
    ('[[severity]]\nseverity = "low"\nany = true\n[[severity]]\nseverity = "low"\nany = true\n',
     "follows a rule with any = true"),
    ('[[severity]]\nseverity = "low"\nmin_records = 1\n[[severity]]\nseverity = "high"\n'
     "min_records = 5\n", "'high' after 'low'"),
    ('[[severity]]\nseverity = "high"\nidentifier = "passport"\nmin_distinct = 2\n',
     "identifier 'passport' is no [[detector]] id"),
    ('[[severity]]\nseverity = "high"\nidentifier = "bsn"\n', "identifier and min_distinct"),
    ('[[severity]]\nseverity = "high"\nmin_distinct = 3\n', "identifier and min_distinct"),
    ('[[severity]]\nseverity = "high"\ncategories_all = ["pii"]\nmin_records = 1\n',
     "'pii' is not one of"),
    ('[[severity]]\nseverity = "high"\nmin_records = -1\n', "min_records must be an integer"),
    ('[[severity]]\nseverity = "high"\nmin_records = 1\nmin_confidence = 2\n',
     "min_confidence must be a number"),
    ('[[severity]]\nseverity = "high"\nmin_records = 1\nweight = 2\n', "unknown key 'weight'"),
]  # fmt: skip


@pytest.mark.parametrize(("severity", "rule"), BROKEN_SEVERITY)
def test_broken_severity_names_the_rule(severity: str, rule: str) -> None:
    with pytest.raises(DetectorError) as caught:
        parse_detectors(file_with(THIRD_OK, severity=severity), "s.toml")
    message = str(caught.value)
    assert message.startswith("s.toml: "), message
    assert rule in message, message


def test_severity_rule_parsed(shipped: DetectorSet) -> None:
    rules = shipped.severity
    critical = rules[0]
    assert critical.categories_all == ("health", "national_id")
    assert critical.min_records == 100
    multi = next(r for r in rules if len(r.identifiers) == 2)
    assert multi.identifiers == ("email_address", "date_of_birth")
    assert multi.min_distinct == 50


KEYWORDS = '[[keywords]]\nid = "k"\ncategory = "health"\ntier = "strong"\nterms = ["hpv"]\n'

BROKEN_FILES: list[tuple[Callable[[], str], str]] = [
    (lambda: "id = ", "not valid TOML"),
    (lambda: file_with(THIRD_OK, top="colour = 1"), "unknown top-level key 'colour'"),
    (lambda: file_with(THIRD_OK).replace("version = 1", "version = 0"), "version must be"),
    (lambda: file_with(THIRD_OK).replace('id = "t"', 'id = "T T"'), "id must be a string"),
    (lambda: 'id = "t"\nversion = 1\n' + SEVERITY, "needs at least one [[detector]]"),
    (lambda: file_with(THIRD_OK) + KEYWORDS + KEYWORDS.replace('"k"', '"k2"'),
     "term 'hpv' is already in [[keywords]] 'k'"),
    (lambda: file_with(THIRD_OK) + KEYWORDS.replace('"strong"', '"medium"'), "tier must be"),
    (lambda: file_with(THIRD_OK) + KEYWORDS.replace('["hpv"]', '["HPV"]'), "written folded"),
    (lambda: file_with(THIRD_OK) + KEYWORDS.replace('["hpv"]', "[]"), "non-empty list"),
    (lambda: file_with(THIRD_OK) + KEYWORDS.replace('"k"', '"bsn"'), "duplicate id"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "rule"), BROKEN_FILES)
def test_broken_file_level(make: Callable[[], str], rule: str) -> None:
    with pytest.raises(DetectorError) as caught:
        parse_detectors(make(), "x.toml")
    assert str(caught.value).startswith("x.toml: ")
    assert rule in str(caught.value)


def test_keyword_entry_is_named(shipped: DetectorSet) -> None:
    text = file_with(THIRD_OK) + KEYWORDS.replace('["hpv"]', '["HPV"]')
    with pytest.raises(DetectorError, match=r"\[\[keywords\]\] #1 \(k\): terms word 'HPV'"):
        parse_detectors(text, "x.toml")


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "detectors.toml"
    with pytest.raises(DetectorError, match=re.escape(str(missing))):
        load_detectors(missing)
    missing.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(DetectorError, match="cannot read"):
        load_detectors(missing)
