"""Classification stage: the detector catalogue, data from `signatures/detectors.toml`
(STYLE.md habit 10: data, not code, validated on load).

In: the text of the detectors file (at start-up). Out: a frozen `DetectorSet` the scanner
compiles into one multi-pattern database, and the `[[severity]]` table the object scorer
applies. The file format is documented key by key in the file's own header; in short::

    id = "sluice-detectors"
    version = 1

    [[detector]]                  # an identifier or a structure found by a regex
    id = "bsn"                    # snake_case, unique
    category = "national_id"      # national_id | health | financial | contact | provider_id
    kind = "identifier"           # or "structure" (a record marker: HL7 PID, FHIR Patient)
    pattern = '[0-9]{9}'          # the subset of regex both hyperscan and `re` accept
    flags = ["caseless"]          # caseless | dotall | multiline
    boundary = "digits"           # none | digits | alnum | word: what may not touch the match
    validator = "bsn"             # a name in sensor.classify.validators.VALIDATORS
    context = ["bsn"]             # folded words that raise the confidence within `window`
    negative = ["ordernummer"]    # folded words within `negative_window` that drop the match
    window = 300                  # characters either side (Purview's 300, research §2.2)
    negative_window = 50          # research §7.1
    confidence = 0.65             # validated, no context (omit when requires_context)
    confidence_context = 0.85     # validated, with context
    requires_context = false      # true: no context word, no finding
    ignore = ["111222333"]        # documented example/test values (compared normalised)
    examples = ["BSN 111 222 333"] # texts the detector must find a value in
    counter_examples = ["..."]    # texts it must find nothing in

    [[keywords]]                  # vocabulary for the Art. 9 signal (research §1.4)
    id = "cervical_screening_strong"; category = "health"; tier = "strong"; terms = [...]

    [[severity]]                  # ordered, most severe first; the first rule that holds wins
    severity = "high"; categories_all = ["health", "national_id"]; min_records = 5

Every rule below is checked on load, including that each pattern compiles with Python `re`
and, when the `hyperscan` module imports, with hyperscan in stream mode with leftmost start
of match (the scanner's mode, research §5), and that every example and counter-example
behaves as the data says. A file that breaks any rule raises `DetectorError` naming the file,
the entry (`[[detector]] #3 (bsn)`) and the rule. `parse_detectors` is pure;
`load_detectors(path)` reads the file (at start-up); without a path it reads `detectors.toml`
from the signatures directory `sensor.config.signatures.find_signatures` resolves.

Context and keyword matching work on folded text (`fold`: Unicode NFKD without combining
marks, case-folded), so the data holds folded words only ("patient" matches "Patiënt").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sensor.classify.scanner import Pattern, Scanner, check_pattern
from sensor.classify.validators import VALIDATORS, Validator
from sensor.config.signatures import parse_signatures_toml, read_signatures_file

FILE_NAME = "detectors.toml"
# The source tree's copy (tests); the runtime resolves the directory with find_signatures.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "signatures" / FILE_NAME

CATEGORIES = ("national_id", "health", "financial", "contact", "provider_id")
KINDS = ("identifier", "structure")
BOUNDARIES = ("none", "digits", "alnum", "word")
TIERS = ("strong", "weak")
# Most severe first: a severity table must list its rules in this order.
SEVERITIES = ("critical", "high", "medium", "low")
DEFAULT_WINDOW = 300  # characters each side: Purview's patternsProximity (research §2.2)
DEFAULT_NEGATIVE_WINDOW = 50  # research §7.1: negative words count only close by
# Google DLP caps a hotword window at 1000 characters (research §2.1); a larger one would
# also make the scanner keep more text around every match than it needs.
MAX_WINDOW = 1000
MAX_PATTERN = 1000  # characters of one pattern: a larger one is a mistake, not a detector
MAX_EXAMPLE = 2000  # characters of one example text

FLAGS: Mapping[str, int] = {"caseless": re.IGNORECASE, "dotall": re.DOTALL, "multiline": re.M}
# hyperscan's values for the same flags (hs_common.h), so the check works without importing
# names that a build may lack.
HS_FLAGS: Mapping[str, int] = {"caseless": 1, "dotall": 2, "multiline": 4}

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
_TOP_KEYS = {"id", "version", "description", "detector", "keywords", "severity"}
_DETECTOR_KEYS = {
    "id", "category", "kind", "description", "pattern", "flags", "boundary", "validator",
    "context", "negative", "window", "negative_window", "confidence", "confidence_context",
    "requires_context", "ignore", "examples", "counter_examples",
}  # fmt: skip
_KEYWORD_KEYS = {"id", "category", "tier", "description", "terms", "boundary"}
_SEVERITY_KEYS = {
    "severity", "description", "any", "categories_all", "categories_any", "identifier",
    "min_distinct", "min_confidence", "min_records", "min_strong_terms",
}  # fmt: skip
_CONDITION_KEYS = _SEVERITY_KEYS - {"severity", "description", "any", "min_confidence"}


class DetectorError(ValueError):
    """A detectors file is unusable; the message names the file, the entry and the rule."""


def fold(text: str) -> str:
    """The form context words, keywords and the text around a match are compared in:
    compatibility-decomposed (NFKD), without combining marks, case-folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


# What may not stand right before or after a match, per `boundary`: the checks hyperscan
# cannot express without look-arounds, done on the candidate instead.
_TOUCHES: Mapping[str, Callable[[str], bool]] = {
    "digits": str.isdigit,
    "alnum": str.isalnum,
    "word": _is_word_char,
}


@dataclass(frozen=True, slots=True)
class Detector:
    id: str
    category: str
    pattern: str
    kind: str = "identifier"
    description: str = ""
    flags: tuple[str, ...] = ()
    boundary: str = "none"
    validator: str | None = None
    context: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    window: int = DEFAULT_WINDOW
    negative_window: int = DEFAULT_NEGATIVE_WINDOW
    confidence: float = 0.0  # 0.0 when requires_context: a match without context is dropped
    confidence_context: float = 0.0
    requires_context: bool = False
    ignore: frozenset[str] = frozenset()  # normalised values
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()
    regex: re.Pattern[str] = field(default=re.compile(""), compare=False, repr=False)

    def re_flags(self) -> int:
        value = 0
        for name in self.flags:
            value |= FLAGS[name]
        return value

    def hs_flags(self) -> int:
        value = 0
        for name in self.flags:
            value |= HS_FLAGS[name]
        return value

    def boundary_ok(self, text: str, start: int, end: int) -> bool:
        """True when the characters around text[start:end] do not continue the match."""
        touches = _TOUCHES.get(self.boundary)
        if touches is None:
            return True
        if start > 0 and touches(text[start - 1]):
            return False
        return not (end < len(text) and touches(text[end]))

    def normalise(self, candidate: str) -> str | None:
        """The candidate's normalised value when the validator accepts it and it is not an
        ignored example value; the matched text itself for a detector without validator."""
        validate: Validator | None = (
            VALIDATORS.get(self.validator) if self.validator is not None else None
        )
        value = candidate if validate is None else validate(candidate)
        if value is None or value in self.ignore:
            return None
        return value

    def reference_matches(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, normalised value) of every accepted match, with Python `re`: the
        reference the examples are checked with, and the scanner's fallback. `re` gives
        leftmost, non-overlapping matches where hyperscan gives every one."""
        for match in self.regex.finditer(text):
            start, end = match.span()
            if not self.boundary_ok(text, start, end):
                continue
            value = self.normalise(match[0])
            if value is not None:
                yield start, end, value


@dataclass(frozen=True, slots=True)
class KeywordSet:
    id: str
    category: str
    tier: str  # "strong": one term + an identifier is health data; "weak": needs more
    terms: tuple[str, ...]  # folded
    boundary: str = "word"
    description: str = ""


@dataclass(frozen=True, slots=True)
class SeverityRule:
    """Holds for an object when every condition given holds (research §7.2). Counts are of
    distinct values (identifier), records holding an identifier (min_records) and distinct
    strong health terms (min_strong_terms); min_confidence says which matches count."""

    severity: str
    description: str = ""
    any: bool = False  # the catch-all: holds for every object with a finding
    categories_all: tuple[str, ...] = ()
    categories_any: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()  # each must reach min_distinct
    min_distinct: int = 0
    min_confidence: float = 0.0
    min_records: int = 0
    min_strong_terms: int = 0


@dataclass(frozen=True, slots=True)
class DetectorSet:
    id: str
    version: int
    detectors: tuple[Detector, ...]
    keywords: tuple[KeywordSet, ...]
    severity: tuple[SeverityRule, ...]
    description: str = ""
    hyperscan_checked: bool = False  # False: hyperscan did not import, patterns unchecked

    def __len__(self) -> int:
        return len(self.detectors) + len(self.keywords) + len(self.severity)

    def detector(self, detector_id: str) -> Detector | None:
        for detector in self.detectors:
            if detector.id == detector_id:
                return detector
        return None


# -- parsing ------------------------------------------------------------------------------


def parse_detectors(
    text: str, source: str = "<detectors>", *, use_hyperscan: bool = True
) -> DetectorSet:
    """The detector set of a detectors file's text; `source` names it in errors.
    `use_hyperscan=False` skips the hyperscan compile check (tests of the fallback)."""
    check = _hyperscan_checker() if use_hyperscan else None
    return parse_signatures_toml(text, source, lambda raw: _build(raw, check), DetectorError)


def load_detectors(
    path: str | Path | None = None,
    *,
    signatures: str | Path | None = None,
    origin: str = "--signatures",
) -> DetectorSet:
    """`path` names the file itself; without it the file comes from the signatures directory:
    `signatures` (the operator's, `origin` saying from where) or else the default search."""
    text, source = read_signatures_file(
        FILE_NAME, path, signatures, origin, DetectorError, "detectors"
    )
    return parse_detectors(text, source)


HyperscanCheck = Callable[[str, int], str | None]


def _hyperscan_checker() -> HyperscanCheck | None:
    """A function returning hyperscan's compile error for (pattern, flags), or None when the
    module does not import (the scanner then falls back to `re`: nothing to check against)."""
    try:
        import hyperscan  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    def check(pattern: str, flags: int) -> str | None:
        # Exactly what the scanner will build: a stream database, with the leftmost start of
        # match where hyperscan can give it, the end only where the pattern is too large
        # for that (sensor/classify/scanner.py).
        caseless = bool(flags & hyperscan.HS_FLAG_CASELESS)
        try:
            Scanner([Pattern("check", pattern, caseless=caseless)], engine="hyperscan")
        except (ValueError, hyperscan.error) as exc:
            return str(exc) or type(exc).__name__
        return None

    return check


def _build(raw: dict[str, Any], hyperscan_check: HyperscanCheck | None) -> DetectorSet:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise DetectorError(f"unknown top-level key {sorted(unknown)[0]!r}")
    set_id = raw.get("id")
    if not isinstance(set_id, str) or not _ID.fullmatch(set_id):
        raise DetectorError("id must be a string of [a-z0-9_.-], e.g. 'sluice-detectors'")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DetectorError("version must be an integer >= 1")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise DetectorError("description must be a string")

    detectors: list[Detector] = []
    for index, entry in enumerate(_tables(raw, "detector", required=True)):
        where = _where("detector", index, entry)
        detector = _detector(entry, where, hyperscan_check)
        if any(d.id == detector.id for d in detectors):
            raise DetectorError(f"{where}: duplicate id")
        detectors.append(detector)

    keywords: list[KeywordSet] = []
    term_owner: dict[str, str] = {}
    for index, entry in enumerate(_tables(raw, "keywords", required=False)):
        where = _where("keywords", index, entry)
        keyword_set = _keyword_set(entry, where)
        if any(k.id == keyword_set.id for k in keywords) or any(
            d.id == keyword_set.id for d in detectors
        ):
            raise DetectorError(f"{where}: duplicate id")
        for term in keyword_set.terms:
            if term in term_owner:
                raise DetectorError(
                    f"{where}: term {term!r} is already in [[keywords]] {term_owner[term]!r}"
                )
            term_owner[term] = keyword_set.id
        keywords.append(keyword_set)

    detector_ids = {d.id for d in detectors}
    rules: list[SeverityRule] = []
    for index, entry in enumerate(_tables(raw, "severity", required=True)):
        where = f"[[severity]] #{index + 1}"
        rule = _severity_rule(entry, where, detector_ids)
        if rules and SEVERITIES.index(rule.severity) < SEVERITIES.index(rules[-1].severity):
            raise DetectorError(
                f"{where}: {rule.severity!r} after {rules[-1].severity!r}; rules are tried "
                "in order, most severe first"
            )
        if rules and rules[-1].any:
            raise DetectorError(f"{where}: follows a rule with any = true, so it never applies")
        rules.append(rule)
    if not rules[-1].any:
        raise DetectorError(
            "the last [[severity]] rule must be the catch-all (any = true), so that every "
            "finding has a severity"
        )
    return DetectorSet(
        set_id,
        version,
        tuple(detectors),
        tuple(keywords),
        tuple(rules),
        description,
        hyperscan_checked=hyperscan_check is not None,
    )


def _tables(raw: dict[str, Any], name: str, *, required: bool) -> list[Any]:
    entries = raw.get(name, [])
    if not isinstance(entries, list) or (required and not entries):
        raise DetectorError(f"needs at least one [[{name}]] table")
    return entries


def _where(table: str, index: int, entry: Any) -> str:
    where = f"[[{table}]] #{index + 1}"
    if isinstance(entry, dict) and isinstance(entry.get("id"), str):
        where += f" ({entry['id']})"
    return where


def _detector(entry: Any, where: str, hyperscan_check: HyperscanCheck | None) -> Detector:
    if not isinstance(entry, dict):
        raise DetectorError(f"{where}: must be a table")
    unknown = set(entry) - _DETECTOR_KEYS
    if unknown:
        raise DetectorError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    detector_id = entry.get("id")
    if not isinstance(detector_id, str) or not _SNAKE.fullmatch(detector_id):
        raise DetectorError(f"{where}: id must be snake_case, e.g. 'bsn'")
    category = _choice(entry, "category", CATEGORIES, where, None)
    kind = _choice(entry, "kind", KINDS, where, "identifier")
    boundary = _choice(entry, "boundary", BOUNDARIES, where, "none")
    description = _string(entry, "description", where, "")

    pattern = entry.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise DetectorError(f"{where}: pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN or not pattern.isascii():
        raise DetectorError(f"{where}: pattern must be ASCII, at most {MAX_PATTERN} characters")
    flags = tuple(_string_list(entry, "flags", where))
    for flag in flags:
        if flag not in FLAGS:
            raise DetectorError(f"{where}: flag {flag!r} is not one of {sorted(FLAGS)}")
    problem = portability_problem(pattern)
    if problem is not None:
        raise DetectorError(f"{where}: pattern {problem}")
    re_flags = 0
    hs_flags = 0
    for flag in flags:
        re_flags |= FLAGS[flag]
        hs_flags |= HS_FLAGS[flag]
    try:
        regex = re.compile(pattern, re_flags)
    except re.error as exc:
        raise DetectorError(f"{where}: pattern does not compile with Python re ({exc})") from None
    if regex.fullmatch("") is not None:
        raise DetectorError(f"{where}: pattern matches the empty string")
    if hyperscan_check is not None:
        error = hyperscan_check(pattern, hs_flags)
        if error is not None:
            raise DetectorError(f"{where}: pattern does not compile with hyperscan ({error})")
    try:  # what the scanner accepts: bounded width, ASCII, no anchors (sensor/classify/scanner.py)
        check_pattern(Pattern("check", pattern, caseless="caseless" in flags))
    except ValueError as exc:
        raise DetectorError(f"{where}: the scanner refuses the pattern ({exc})") from None

    validator = entry.get("validator")
    if validator is not None and (not isinstance(validator, str) or validator not in VALIDATORS):
        raise DetectorError(
            f"{where}: validator {validator!r} is not one of sensor.classify.validators."
            "VALIDATORS (e.g. 'bsn', 'iban', 'eu_id:pl.pesel')"
        )
    context = tuple(_folded_words(entry, "context", where))
    negative = tuple(_folded_words(entry, "negative", where))
    window = _positive_int(entry, "window", where, DEFAULT_WINDOW, MAX_WINDOW)
    negative_window = _positive_int(
        entry, "negative_window", where, DEFAULT_NEGATIVE_WINDOW, MAX_WINDOW
    )
    requires_context = entry.get("requires_context", False)
    if not isinstance(requires_context, bool):
        raise DetectorError(f"{where}: requires_context must be true or false")
    if requires_context and not context:
        raise DetectorError(f"{where}: requires_context needs context words")
    confidence_context = _confidence(entry, "confidence_context", where)
    if confidence_context is None:
        raise DetectorError(f"{where}: confidence_context (0..1) is required")
    confidence = _confidence(entry, "confidence", where)
    if requires_context:
        if confidence is not None:
            raise DetectorError(
                f"{where}: confidence never applies with requires_context (a match without "
                "context is dropped): give confidence_context only"
            )
        confidence = 0.0
    elif confidence is None:
        raise DetectorError(f"{where}: confidence (0..1) is required")
    if confidence_context < confidence:
        raise DetectorError(f"{where}: confidence_context is lower than confidence")

    detector = Detector(
        id=detector_id,
        category=category,
        pattern=pattern,
        kind=kind,
        description=description,
        flags=flags,
        boundary=boundary,
        validator=validator,
        context=context,
        negative=negative,
        window=window,
        negative_window=negative_window,
        confidence=confidence,
        confidence_context=confidence_context,
        requires_context=requires_context,
        regex=regex,
    )
    ignore: set[str] = set()
    for value in _string_list(entry, "ignore", where):
        normalised = detector.normalise(value)
        if regex.fullmatch(value) is None or normalised is None:
            raise DetectorError(
                f"{where}: ignore value {value!r} is not matched by the pattern or refused by "
                f"validator {validator!r}, so it could never be found: ignoring it is a mistake"
            )
        ignore.add(normalised)
    examples = tuple(_string_list(entry, "examples", where))
    counter_examples = tuple(_string_list(entry, "counter_examples", where))
    if not examples:
        raise DetectorError(f"{where}: needs at least one example (keeps the data honest)")
    detector = replace(
        detector,
        ignore=frozenset(ignore),
        examples=examples,
        counter_examples=counter_examples,
    )
    for example in (*examples, *counter_examples):
        if len(example) > MAX_EXAMPLE:
            raise DetectorError(f"{where}: an example is longer than {MAX_EXAMPLE} characters")
    for example in examples:
        if next(detector.reference_matches(example), None) is None:
            raise DetectorError(f"{where}: example {example!r} yields no accepted match")
    for example in counter_examples:
        found = next(detector.reference_matches(example), None)
        if found is not None:
            raise DetectorError(
                f"{where}: counter-example {example!r} yields a match at {found[0]}..{found[1]}"
            )
    return detector


def _keyword_set(entry: Any, where: str) -> KeywordSet:
    if not isinstance(entry, dict):
        raise DetectorError(f"{where}: must be a table")
    unknown = set(entry) - _KEYWORD_KEYS
    if unknown:
        raise DetectorError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    set_id = entry.get("id")
    if not isinstance(set_id, str) or not _SNAKE.fullmatch(set_id):
        raise DetectorError(f"{where}: id must be snake_case, e.g. 'cervical_screening'")
    category = _choice(entry, "category", CATEGORIES, where, None)
    tier = _choice(entry, "tier", TIERS, where, None)
    boundary = _choice(entry, "boundary", BOUNDARIES, where, "word")
    description = _string(entry, "description", where, "")
    terms = _folded_words(entry, "terms", where)
    if not terms:
        raise DetectorError(f"{where}: terms must be a non-empty list")
    if len(set(terms)) != len(terms):
        raise DetectorError(f"{where}: a term is listed twice")
    return KeywordSet(set_id, category, tier, tuple(terms), boundary, description)


def _severity_rule(entry: Any, where: str, detector_ids: set[str]) -> SeverityRule:
    if not isinstance(entry, dict):
        raise DetectorError(f"{where}: must be a table")
    unknown = set(entry) - _SEVERITY_KEYS
    if unknown:
        raise DetectorError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    severity = _choice(entry, "severity", SEVERITIES, where, None)
    where = f"{where} ({severity})"
    description = _string(entry, "description", where, "")
    catch_all = entry.get("any", False)
    if not isinstance(catch_all, bool):
        raise DetectorError(f"{where}: any must be true or false")
    conditions = set(entry) & _CONDITION_KEYS
    if catch_all:
        if conditions or "min_confidence" in entry:
            raise DetectorError(f"{where}: any = true takes no conditions")
        return SeverityRule(severity, description, any=True)
    if not conditions:
        raise DetectorError(
            f"{where}: needs a condition ({', '.join(sorted(_CONDITION_KEYS))}) or any = true"
        )
    categories_all = _categories(entry, "categories_all", where)
    categories_any = _categories(entry, "categories_any", where)
    identifier = entry.get("identifier")
    if identifier is None:
        identifiers: list[str] = []
    elif isinstance(identifier, str):
        identifiers = [identifier]
    else:
        identifiers = _string_list(entry, "identifier", where)
        if not identifiers:
            raise DetectorError(f"{where}: identifier must name at least one detector")
    for name in identifiers:
        if name not in detector_ids:
            raise DetectorError(f"{where}: identifier {name!r} is no [[detector]] id")
    min_distinct = _count(entry, "min_distinct", where)
    if bool(identifiers) != bool(min_distinct):
        raise DetectorError(f"{where}: identifier and min_distinct go together")
    min_confidence = _confidence(entry, "min_confidence", where) or 0.0
    return SeverityRule(
        severity=severity,
        description=description,
        categories_all=tuple(categories_all),
        categories_any=tuple(categories_any),
        identifiers=tuple(identifiers),
        min_distinct=min_distinct,
        min_confidence=min_confidence,
        min_records=_count(entry, "min_records", where),
        min_strong_terms=_count(entry, "min_strong_terms", where),
    )


# -- field checks -------------------------------------------------------------------------


def _choice(
    entry: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, default: str | None
) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise DetectorError(f"{where}: {key} must be one of {', '.join(allowed)}")
    assert isinstance(value, str)
    return value


def _string(entry: dict[str, Any], key: str, where: str, default: str) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise DetectorError(f"{where}: {key} must be a string")
    return value


def _string_list(entry: dict[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DetectorError(f"{where}: {key} must be a list of non-empty strings")
    return list(value)


def _folded_words(entry: dict[str, Any], key: str, where: str) -> list[str]:
    words = _string_list(entry, key, where)
    for word in words:
        if word != fold(word) or word != word.strip():
            raise DetectorError(
                f"{where}: {key} word {word!r} must be written folded (lower case, no accents, "
                f"no surrounding space: {fold(word).strip()!r})"
            )
    return words


def _categories(entry: dict[str, Any], key: str, where: str) -> list[str]:
    values = _string_list(entry, key, where)
    for value in values:
        if value not in CATEGORIES:
            raise DetectorError(f"{where}: {key}: {value!r} is not one of {', '.join(CATEGORIES)}")
    return values


def _positive_int(entry: dict[str, Any], key: str, where: str, default: int, cap: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= cap:
        raise DetectorError(f"{where}: {key} must be an integer from 1 to {cap}")
    return value


def _count(entry: dict[str, Any], key: str, where: str) -> int:
    value = entry.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DetectorError(f"{where}: {key} must be an integer >= 0")
    return value


def _confidence(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise DetectorError(f"{where}: {key} must be a number from 0 to 1")
    return float(value)


# -- the regex subset ---------------------------------------------------------------------

_GROUP_OPENERS = {
    "?=": "a look-ahead",
    "?!": "a look-ahead",
    "?<=": "a look-behind",
    "?<!": "a look-behind",
    "?P=": "a back-reference",
    "?P<": "a named group (use (?:...))",
    "?>": "an atomic group",
    "?(": "a conditional group",
}
_ESCAPE_PROBLEMS = {
    "b": "a word-boundary assertion (use boundary = ...)",
    "B": "a word-boundary assertion (use boundary = ...)",
    "A": "an anchor",
    "Z": "an anchor",
    "z": "an anchor",
    "G": "an anchor",
    "k": "a back-reference",
}


def portability_problem(pattern: str) -> str | None:
    """Why `pattern` is outside the subset both hyperscan and Python `re` treat alike, or
    None. Refused: look-arounds, back-references, atomic and conditional groups, possessive
    quantifiers, anchors and \\b (a stream has no line or word context the scanner can
    trust: `boundary` says what may not touch a match), inline flags (use `flags`)."""
    i = 0
    in_class = False
    after_quantifier = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not in_class:
                if nxt in _ESCAPE_PROBLEMS:
                    return f"uses {_ESCAPE_PROBLEMS[nxt]} (\\{nxt})"
                if nxt.isdigit() and nxt != "0":
                    return f"uses a back-reference (\\{nxt})"
            i += 2
            after_quantifier = False
            continue
        if in_class:
            if c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal, not the end of the class.
            i += 1
            if pattern[i : i + 1] == "^":
                i += 1
            if pattern[i : i + 1] == "]":
                i += 1
            after_quantifier = False
            continue
        if c == "(" and pattern[i + 1 : i + 2] == "?":
            rest = pattern[i + 1 : i + 4]
            for opener, what in _GROUP_OPENERS.items():
                if rest.startswith(opener):
                    return f"uses {what} ({'(' + opener})"
            if not rest.startswith("?:"):
                return "uses inline flags or an unknown group; give flags = [...] instead"
        if c in "^$":
            return f"uses an anchor ({c}); anchors mean nothing in a stream"
        if c == "+" and after_quantifier:
            return "uses a possessive quantifier"
        after_quantifier = c in "*+?}" and not (c == "+" and after_quantifier)
        i += 1
    return None
