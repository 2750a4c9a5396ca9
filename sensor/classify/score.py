"""Classification stage: one object's text scored the way commercial DLPs score it.

In: the text chunks of one object (`ObjectScorer.text`, the content stage's text consumer),
its end (`finish`). Out: a `Classification`: distinct identifiers per detector (counted by
keyed hash, never kept in clear; masked samples only), records holding at least one
identifier, categories and a severity from the table in `signatures/detectors.toml`.

Scoring (research note section 7):

- A candidate of a detector's pattern counts only when the detector's validator accepts it
  (elfproef, mod-97, Luhn, ...) and its value is not a documented example (`ignore`).
- Its confidence is the detector's base confidence, or `confidence_context` when one of its
  context words lies within `window` characters before or after it, or when the column
  header of a table cell names it (a CSV/XLSX header counts for every cell of its column;
  a JSON key path such as `identifier[0].value` next to the FHIR BSN system counts through
  the same words). A negative word within `negative_window` characters drops it; a detector
  that `requires_context` drops it without context.
- Per object: distinct values per detector (keyed hashes), the records (table rows, else
  JSON resources by their key path, else each distinct national identifier stands for one
  person) that hold an accepted identifier, the categories, and the distinct strong health
  terms. The first severity rule of the table that holds decides.

Canary tokens and exact data match ride on the same pass (when the run has a canary store or
an EDM index, `ClassifyAssets`): a validated BSN, IBAN or e-mail address, and a candidate of a
canary token's own grammar (`canary.TOKEN_PATTERNS`), is looked up in the store whatever its
context (a planted token needs none); validated BSNs, dates and postcodes, and the cells of a
table row under their column headers, feed the object's `EdmWindow`.

The decision on a candidate waits until the text `window` characters past it has been seen
(its context may follow it); pending candidates and recent keyword positions are bounded by
what lies within one window. `_decide` is the one place where a candidate becomes an
accepted identifier (detector, normalised value, position, record).

Cost (dense tables make a candidate per 9-12 characters): a detector that requires context
validates a candidate only when its context is found or when a candidate inside it asks
whether it is a longer identifier, with the same results as validating on sight; validator
results and column-header verdicts are memoised per object (in memory, bounded, dropped at
the end); keyword hits are sorted lists looked up by bisection.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from sensor.classify.canary import TOKEN_PATTERNS, Canary, CanaryStore
from sensor.classify.detectors import Detector, DetectorSet, KeywordSet, SeverityRule
from sensor.classify.edm import DEFAULT_WINDOW, EdmIndex, EdmWindow, field_kind
from sensor.classify.scanner import (
    KEYWORD_PREFIX,
    MAX_MATCH_CHARS,
    Candidate,
    Pattern,
    Scanner,
    ScanStream,
)
from sensor.classify.secret import keyed_hasher
from sensor.classify.validators import VALIDATORS, Validator
from sensor.content.fingerprint.base import TextChunk

MAX_DISTINCT = 200_000  # keyed hashes kept per detector and object; beyond, counts stop
SAMPLES = 3  # masked samples per detector
BATCH_CHARS = 32 * 1024  # text buffered before a scan (chunks are often a row or a value)
MEMO_ENTRIES = 8192  # validator results and header verdicts remembered per object, at most
MAX_CANARY_HITS = 64  # distinct canaries reported per object
CANARY_PATTERN = "canary:"  # + the token kind: the scanner pattern id of a token grammar
# The canary kind a validated value of these detectors may be (a minted BSN or IBAN canary
# is a valid one; an e-mail canary also has its own grammar, the address detector finds
# canaries written with upper-case letters as well).
CANARY_KIND_OF = {"bsn": "bsn", "bsn_legacy": "bsn", "iban": "iban", "email_address": "email"}
# The EDM field kind of a validated value of these detectors.
EDM_KIND_OF = {
    "bsn": "bsn",
    "bsn_legacy": "bsn",
    "date_of_birth": "date",
    "date_of_birth_compact": "date",
    "postcode_nl": "postcode",
}


def mask(value: str) -> str:
    """All but the last four characters starred: `*****4567` (none shown for short values)."""
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


@dataclass(slots=True)
class IdentifierCount:
    category: str
    distinct: int = 0
    occurrences: int = 0
    with_context: int = 0  # distinct values seen with context at least once
    samples: list[str] = field(default_factory=list)  # masked


@dataclass(slots=True)
class Classification:
    severity: str | None  # None: nothing found
    categories: tuple[str, ...]
    identifiers: dict[str, IdentifierCount]
    records: int
    strong_terms: int  # distinct strong health terms
    rule: str | None  # the severity rule that held (its description or index)
    capped: bool = False  # MAX_DISTINCT reached for some detector
    canaries: tuple[Canary, ...] = ()  # registered canary tokens found (never the token)
    edm: EdmResult | None = None  # None: no EDM index in this run

    def counts(self) -> dict[str, int]:
        return {name: c.distinct for name, c in sorted(self.identifiers.items())}


@dataclass(frozen=True, slots=True)
class EdmResult:
    """The known records (EDM index) one object holds."""

    matched: int  # distinct records: primary plus a corroborating field of the same record
    primary_only: int  # distinct records whose primary was seen with nothing to corroborate
    records: tuple[int, ...] = ()  # the matched record ids (counted per host over time)


class Classifier:
    """The compiled detector set of a run; `scorer()` starts one object. With a canary
    store and an EDM index (`sluice canary new`, `sluice edm load`, made with `key`) the same
    pass looks for planted tokens and known patient records."""

    def __init__(
        self,
        detectors: DetectorSet,
        key: bytes,
        *,
        engine: str = "auto",
        canaries: CanaryStore | None = None,
        edm: EdmIndex | None = None,
        edm_window: int = DEFAULT_WINDOW,
    ) -> None:
        self.detectors = {d.id: d for d in detectors.detectors if d.kind == "identifier"}
        self.keyword_sets = {k.id: k for k in detectors.keywords}
        self.rules = detectors.severity
        keywords: dict[str, list[str]] = {k.id: list(k.terms) for k in detectors.keywords}
        for d in self.detectors.values():  # each detector's own context and negative words
            if d.context:
                keywords[_context_list(d.id)] = list(d.context)
            if d.negative:
                keywords[_negative_list(d.id)] = list(d.negative)
        patterns = [
            Pattern(
                d.id,
                d.pattern,
                caseless="caseless" in d.flags,
                boundary=None if d.boundary == "none" else d.boundary,
            )
            for d in self.detectors.values()
        ]
        self.canaries = canaries if canaries is not None and len(canaries) else None
        if self.canaries is not None:  # the grammars of the kinds registered
            kinds = {canary.kind for canary in self.canaries}
            patterns += [
                Pattern(CANARY_PATTERN + kind, pattern, caseless=True, boundary="alnum")
                for kind, pattern in TOKEN_PATTERNS.items()
                if kind in kinds
            ]
        self.edm = edm
        self.edm_window = edm_window
        self.patterns = tuple(patterns)  # what the scanner looks for (canary grammars too)
        self.scanner = Scanner(patterns, keywords, engine=engine)
        self.key = key
        self._hashers = {d: keyed_hasher(key, d.encode()) for d in self.detectors}
        self.max_window = max(
            [d.window for d in self.detectors.values()]
            + [d.negative_window for d in self.detectors.values()]
            + [1]
        )
        # Per candidate pattern id, what the scorer needs without further look-ups.
        self._plans: dict[str, _Plan] = {
            d.id: _Plan(
                d,
                VALIDATORS[d.validator] if d.validator else None,
                # A detector that requires context validates a candidate only once context
                # is found (or a candidate inside it needs to know): most of its candidates
                # in a table of other numbers have none.
                lazy=d.confidence <= 0.0,
                hasher=self._hashers[d.id],
                context_list=_context_list(d.id),
                negative_list=_negative_list(d.id),
            )
            for d in self.detectors.values()
        }
        # Keyword candidate ids ("kw:<list>") -> the list name and its vocabulary set, if any.
        self._keyword_lists: dict[str, tuple[str, KeywordSet | None]] = {
            KEYWORD_PREFIX + name: (name, self.keyword_sets.get(name)) for name in keywords
        }

    def scorer(self) -> ObjectScorer:
        return ObjectScorer(self)


def _context_list(detector_id: str) -> str:
    return f"ctx_{detector_id}"


def _negative_list(detector_id: str) -> str:
    return f"neg_{detector_id}"


@dataclass(frozen=True, slots=True)
class _Plan:
    detector: Detector
    validator: Validator | None
    lazy: bool  # validate when the decision needs it, not on sight
    hasher: Callable[[str], bytes]  # the keyed hash of its normalised values
    context_list: str  # the keyword lists of its context and negative words
    negative_list: str


@dataclass(slots=True)
class _Pending:
    plan: _Plan
    text: str  # the candidate as it matched
    start: int
    end: int
    record: object | None = None  # the row or resource it sits in
    header_context: bool = False
    header_negative: bool = False  # its column header is a negative word (an `ordernummer` column)
    checked: bool = False  # validated yet?
    value: str | None = None  # normalised, once checked; None: refused or ignored


class ObjectScorer:
    """Scores one object (a text consumer of the content stage)."""

    def __init__(self, classifier: Classifier) -> None:
        self._c = classifier
        self._stream: ScanStream = classifier.scanner.stream()
        self._seen = 0  # characters of text scanned
        self._buffered = 0  # ... and buffered for the next scan (BATCH_CHARS)
        self._buffer: list[str] = []
        self._pending: deque[_Pending] = deque()
        # keyword list -> end offsets of recent hits (sorted), trimmed to one window back
        self._hits: dict[str, list[int]] = {}
        self._values: dict[str, set[bytes]] = {}
        self._with_context: dict[str, set[bytes]] = {}
        self._counts: dict[str, IdentifierCount] = {}
        self._records: set[object] = set()
        self._people: set[bytes] = set()  # national identifiers, when there are no records
        self._strong: set[str] = set()
        self._weak: set[str] = set()
        self._capped = False
        self._chunk_starts: list[int] = []  # text offsets of the chunks (for record lookup)
        self._chunk_meta: list[TextChunk] = []
        # Transient, in memory only: validator results of recent candidate texts (a table
        # repeats its AGB codes, postcodes and dates), and what a column header says of a
        # detector. Both are dropped when they grow past MEMO_ENTRIES.
        self._memo: dict[tuple[str, str], str | None] = {}
        self._header_memo: dict[tuple[str, str], tuple[bool, bool]] = {}
        self._canaries: dict[str, Canary] = {}  # by digest
        self._edm = EdmWindow(classifier.edm, classifier.edm_window) if classifier.edm else None
        self._edm_fields: dict[str, str] = {}  # column header (folded) -> EDM field or kind
        # (position, field, value, row) for the EDM window, fed in position order at a flush:
        # the cells of table rows under known headers (from `text`) and validated candidates
        # elsewhere (from `_take`).
        self._edm_items: list[tuple[int, str, str, Hashable | None]] = []

    # -- the text consumer contract ---------------------------------------------------------

    def text(self, chunks: list[TextChunk]) -> None:
        for chunk in chunks:
            self._chunk_starts.append(self._buffered)
            self._chunk_meta.append(chunk)
            if self._edm is not None and getattr(chunk, "headers", None):
                self._edm_row(chunk, self._buffered)
            # Chunks are units (a table row, a JSON value, a run of text cut at whitespace):
            # a line end keeps one row's last cell from running into the next row's first.
            self._buffer.append(chunk.text)
            self._buffer.append("\n")
            self._buffered += len(chunk.text) + 1
            if self._buffered - self._seen >= BATCH_CHARS:
                self._flush()

    def finish(self, complete: bool = True) -> Classification:
        self._flush()
        self._take(self._stream.finish())
        self._edm_feed()
        self._settle(None)
        self._memo.clear()
        return self._result()

    def _flush(self) -> None:
        """Scans the buffered chunks in one call: a row or a JSON value is a chunk of its own,
        and one scanner call per chunk cost more than the scan."""
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        self._take(self._stream.feed(text))
        self._edm_feed()
        self._seen = self._buffered
        self._settle(self._seen)
        self._forget()

    # -- inside -----------------------------------------------------------------------------

    def _take(self, candidates: list[Candidate]) -> None:
        """Keyword hits are noted; pattern candidates are validated (or, for detectors that
        require context, marked for validation at decision time), placed in their record and
        column, and queued for the decision once their context window has been seen."""
        plans = self._c._plans
        keyword_lists = self._c._keyword_lists
        canaries = self._c.canaries
        chunk_starts = self._chunk_starts
        # Candidates of this scan that may still contain a later one, and their furthest end.
        spans: list[_Pending] = []
        open_until = -1
        for pattern, start, end, text in candidates:
            plan = plans.get(pattern)
            if plan is None:
                listed = keyword_lists.get(pattern)
                if listed is not None:
                    self._keyword(listed[0], listed[1], text, end)
                elif pattern.startswith(CANARY_PATTERN):
                    self._canary(pattern[len(CANARY_PATTERN) :], text)
                continue
            p = _Pending(plan, text, start, end)
            if not plan.lazy:
                value = self._value(p)
                if value is None:
                    continue
                if canaries is not None and plan.detector.id in CANARY_KIND_OF:
                    self._canary(CANARY_KIND_OF[plan.detector.id], value)
            # One string is one identifier: the digits of `+31 612345678` are a phone number,
            # not also a BSN. A candidate inside a longer validated one of another detector is
            # dropped. Candidates come sorted by start, so a span ending before this start
            # contains no later candidate: only the spans still open are kept (a handful,
            # however dense the text). A lazy span is validated only when it would contain.
            if start > open_until:
                spans.clear()
            else:
                if len(spans) > 16:
                    spans = [o for o in spans if o.end >= start]
                if any(
                    o.start <= start and end <= o.end and o.plan is not plan
                    and (o.end - o.start) > (end - start) and self._value(o) is not None
                    for o in spans
                ):  # fmt: skip
                    continue
            spans.append(p)
            if end > open_until:
                open_until = end
            i = bisect.bisect_right(chunk_starts, start) - 1
            chunk = self._chunk_meta[i] if i >= 0 else None
            within = start - chunk_starts[i] if i >= 0 else 0
            if chunk is not None:
                self._where(p, chunk, within)
            if self._edm is not None and plan.detector.id in EDM_KIND_OF:
                self._edm_candidate(p, chunk, within)
            self._pending.append(p)

    def _keyword(self, name: str, keyword_set: KeywordSet | None, text: str, end: int) -> None:
        hits = self._hits.get(name)
        if hits is None:
            hits = self._hits[name] = []
        if not hits or hits[-1] <= end:
            hits.append(end)
        else:  # a longer keyword of the same list ended later (`burger service nummer`)
            bisect.insort(hits, end)
        if keyword_set is not None:
            (self._strong if keyword_set.tier == "strong" else self._weak).add(text.casefold())

    def _value(self, p: _Pending) -> str | None:
        """The candidate's normalised value (validated once, memoised per text), or None when
        the validator refuses it or it is a documented example."""
        if p.checked:
            return p.value
        plan = p.plan
        if plan.validator is None:
            value: str | None = p.text
        else:
            key = (plan.detector.id, p.text)
            memo = self._memo
            if key in memo:
                value = memo[key]
            else:
                value = plan.validator(p.text)
                if len(memo) >= MEMO_ENTRIES:
                    memo.clear()
                memo[key] = value
        if value is not None and value in plan.detector.ignore:
            value = None
        p.checked, p.value = True, value
        return value

    def _where(self, p: _Pending, chunk: TextChunk, within: int) -> None:
        """Sets the record the candidate `within` characters into `chunk` belongs to, and
        whether its column header or key path names the detector or is one of its negative
        words."""
        position = chunk.position
        header: str | None = chunk.header
        headers = getattr(chunk, "headers", None)
        cells = getattr(chunk, "cells", None)
        if headers and cells is not None:  # a table row (CSV/TSV): the cell's column header
            column = bisect.bisect_right(cells, within)
            if 0 < column <= len(headers):
                header = headers[column - 1]
        if position.row is not None:
            p.record = (position.part, position.sheet, position.row)
        elif chunk.header and "[" in chunk.header:  # a JSON key path: entry[3].resource...
            p.record = (position.part, chunk.header.split("]", 1)[0])
        if not header:
            return
        detector = p.plan.detector
        key = (header, detector.id)
        verdict = self._header_memo.get(key)
        if verdict is None:
            folded = header.casefold()
            named = any(word in folded for word in detector.context)
            negative = any(word in folded for word in detector.negative)
            verdict = (named and not negative, negative)
            if len(self._header_memo) >= MEMO_ENTRIES:
                self._header_memo.clear()
            self._header_memo[key] = verdict
        p.header_context, p.header_negative = verdict

    def _canary(self, kind: str, value: str) -> None:
        c = self._c
        assert c.canaries is not None
        hit = c.canaries.check(kind, value)
        if hit is not None and len(self._canaries) < MAX_CANARY_HITS:
            self._canaries.setdefault(hit.digest, hit)

    def _edm_row(self, chunk: TextChunk, base: int) -> None:
        """Queue the cells of a table row for the EDM window under their column headers: a
        cell under `achternaam` is a surname of the index only there (names have no
        pattern). Cells under a header the index does not know are left to the validated
        candidates found in them (a sniffed "CSV" of prose has sentences for headers)."""
        items = self._edm_items
        headers: tuple[str, ...] = getattr(chunk, "headers", ())
        cells: tuple[int, ...] = getattr(chunk, "cells", ())
        text = chunk.text
        position = chunk.position
        row = (position.part, position.sheet, position.row)
        for k, start in enumerate(cells[: len(headers)]):
            end = cells[k + 1] - 1 if k + 1 < len(cells) else len(text)
            value = text[start:end].strip()
            if not value:
                continue
            field = self._edm_field(headers[k])
            if field:
                items.append((base + start, field, value, row))

    def _edm_candidate(self, p: _Pending, chunk: TextChunk | None, within: int) -> None:
        """Queue a BSN, date or postcode for the EDM window, unless its table cell was queued
        whole under a column header the index knows."""
        if chunk is not None and self._edm_known_column(chunk, within):
            return
        value = self._value(p)  # a detector that requires context is validated here too
        if value is not None:
            kind = EDM_KIND_OF[p.plan.detector.id]
            self._edm_items.append((p.start, kind, value, p.record))

    def _edm_known_column(self, chunk: TextChunk, within: int) -> bool:
        """Is the character `within` into `chunk` in a table cell whose header the index
        knows (so `_edm_row` fed the whole cell already)?"""
        headers = getattr(chunk, "headers", None)
        cells = getattr(chunk, "cells", None)
        if not headers or cells is None:
            return False
        column = bisect.bisect_right(cells, within)
        return 0 < column <= len(headers) and bool(self._edm_field(headers[column - 1]))

    def _edm_feed(self) -> None:
        edm = self._edm
        if edm is None or not self._edm_items:
            return
        self._edm_items.sort(key=lambda item: item[0])
        for position, name, value, row in self._edm_items:
            edm.feed(name, value, position, row)
        self._edm_items.clear()

    def _edm_field(self, header: str) -> str:
        """The EDM field (a column name of the index) or kind a column header names."""
        folded = header.strip().casefold()
        known = self._edm_fields.get(folded)
        if known is None:
            index = self._c.edm
            assert index is not None
            names = {name.casefold(): name for name in (index.primary_field, *index.fields)}
            # A "header" with digits is a first row of data (prose or a header-less export
            # sniffed as CSV), whatever words it holds: `BSN 123456782` is no column name.
            known = names.get(folded) or ("" if _has_digit(folded) else field_kind(folded))
            if known not in (*index.kinds.values(), *index.kinds):
                known = ""  # a column the index has no field for
            if len(self._edm_fields) < 1024:
                self._edm_fields[folded] = known
        return known

    def _settle(self, until: int | None) -> None:
        """Decide the pending candidates whose context window has been seen."""
        pending = self._pending
        while pending and (
            until is None or pending[0].end + pending[0].plan.detector.window <= until
        ):
            self._decide(pending.popleft())

    def _near(self, name: str, start: int, end: int, window: int) -> bool:
        hits = self._hits.get(name)
        if not hits:
            return False
        i = bisect.bisect_left(hits, start - window)
        return i < len(hits) and hits[i] <= end + window

    def _decide(self, p: _Pending) -> None:
        """The one place where a candidate becomes an accepted identifier: after its negative
        words, its context and its validator (last, the costly part) have had their say."""
        plan = p.plan
        d = plan.detector
        if p.header_negative:
            return  # a column of order numbers, invoice numbers, KvK or RSIN numbers
        if d.negative and self._near(plan.negative_list, p.start, p.end, d.negative_window):
            return
        context = p.header_context or (
            bool(d.context) and self._near(plan.context_list, p.start, p.end, d.window)
        )
        confidence = d.confidence_context if context else d.confidence
        if confidence <= 0.0:  # requires context and has none
            return
        value = self._value(p)
        if value is None:
            return
        # Accepted: detector `d`, normalised `value`, at p.start..p.end, in record p.record.
        digest = plan.hasher(value)
        count = self._counts.get(d.id)
        if count is None:
            count = self._counts[d.id] = IdentifierCount(d.category)
            self._values[d.id] = set()
            self._with_context[d.id] = set()
        count.occurrences += 1
        values = self._values[d.id]
        if digest not in values:
            if len(values) >= MAX_DISTINCT:
                self._capped = True
            else:
                values.add(digest)
                count.distinct += 1
                if len(count.samples) < SAMPLES:
                    count.samples.append(mask(value))
        if context:
            seen = self._with_context[d.id]
            if digest not in seen and len(seen) < MAX_DISTINCT:
                seen.add(digest)
                count.with_context += 1
        if p.record is not None:
            self._records.add(p.record)
        elif d.category == "national_id":
            self._people.add(digest)

    def _forget(self) -> None:
        """Keyword hits further back than any window are of no use any more."""
        # A candidate is decided once `window` characters past it were seen; its context and
        # negative words lie at most a window before it (plus the longest match).
        horizon = self._seen - 2 * self._c.max_window - MAX_MATCH_CHARS
        for hits in self._hits.values():
            if hits and hits[0] < horizon:
                del hits[: bisect.bisect_left(hits, horizon)]
        oldest = self._pending[0].start if self._pending else self._seen
        keep_from = min(oldest, horizon)
        cut = bisect.bisect_right(self._chunk_starts, keep_from) - 1
        if cut > 0:
            del self._chunk_starts[:cut]
            del self._chunk_meta[:cut]

    def _result(self) -> Classification:
        categories = {count.category for count in self._counts.values() if count.distinct}
        if self._strong or len(self._weak) >= 3:
            categories.add("health")
        records = len(self._records) or len(self._people)
        found = bool(self._counts) or bool(self._strong)
        severity, rule = None, None
        if found:
            for n, candidate in enumerate(self._c.rules):
                if _holds(
                    candidate, categories, self._counts, self._c.detectors, records,
                    len(self._strong),
                ):  # fmt: skip
                    severity, rule = candidate.severity, candidate.description or f"#{n + 1}"
                    break
        return Classification(
            severity=severity,
            categories=tuple(sorted(categories)),
            identifiers=dict(self._counts),
            records=records,
            strong_terms=len(self._strong),
            rule=rule,
            capped=self._capped,
            canaries=tuple(self._canaries.values()),
            edm=self._edm_result(),
        )

    def _edm_result(self) -> EdmResult | None:
        edm = self._edm
        if edm is None:
            return None
        return EdmResult(edm.matched, edm.primary_only, tuple(edm.matched_records()))


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _holds(
    rule: SeverityRule,
    categories: set[str],
    counts: dict[str, IdentifierCount],
    detectors: dict[str, Detector],
    records: int,
    strong_terms: int,
) -> bool:
    if rule.any:
        return True
    if rule.categories_all and not set(rule.categories_all) <= categories:
        return False
    if rule.categories_any and not set(rule.categories_any) & categories:
        return False
    for name in rule.identifiers:
        count, detector = counts.get(name), detectors.get(name)
        if count is None or detector is None:
            return rule.min_distinct <= 0
        if rule.min_confidence <= detector.confidence:
            reached = count.distinct
        elif rule.min_confidence <= detector.confidence_context:
            reached = count.with_context  # only values seen with their context reach it
        else:
            reached = 0
        if reached < rule.min_distinct:
            return False
    if records < rule.min_records:
        return False
    return strong_terms >= rule.min_strong_terms
