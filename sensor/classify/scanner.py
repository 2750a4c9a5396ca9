"""Classification stage, scanning engine: one multi-pattern pass over an object's text.

In: the text chunks (str) of one object, in order, through `Scanner.stream()` and
`ScanStream.feed()`/`finish()`. Out: `Candidate`s (pattern id, start/end offsets in the
object's text stream, matched text) for the validators and the context scoring to judge.
Nothing here validates: a candidate is only "the pattern matched here".

Theory of operation
-------------------
Semantics (the same for both engines, for any text and any chunking):

* A detector pattern P with boundary class C matches at [s, e) when text[s:e] is in the
  language of P, the character before s (if any) is not in C and the character at e (if
  any) is not in C. Boundary classes are ASCII: digits [0-9], alnum [A-Za-z0-9],
  word [A-Za-z0-9_].
* Of all such matches of one pattern, only the maximal ones are reported: a match that lies
  inside another match of the same pattern is dropped (so `\\d{9}` inside a 12-digit run is
  rejected by the boundary, and the e-mail pattern reports `john.doe@x.nl`, not also
  `doe@x.nl`). Overlapping, non-nested matches are all reported.
* Patterns are ASCII regexes in the common subset of Python `re` (with re.ASCII) and
  Hyperscan: bounded width of 1..MAX_MATCH_CHARS characters, no anchors, look-arounds,
  back-references, lazy or possessive quantifiers (checked on construction). A non-ASCII
  character of the text is a character no pattern class names, so it only matches `.` or a
  negated class, in both engines. At any start, the `re` leftmost-first match must be the
  longest one (write alternatives longest first, quantifiers greedy); the property test in
  tests/classify/test_scanner.py checks the shipped detectors for this.
* Keywords match case-insensitively as whole words (the characters around them are not
  letters, digits or `_`, Unicode-wise). ASCII keywords fold ASCII case only; keywords with
  non-ASCII characters fold with `str.lower` (final sigma as sigma, dotted capital I as i,
  so the fold is per character and independent of the chunking).

Engines:

* "hyperscan": ONE stream-mode database (HS_MODE_STREAM, HS_FLAG_SOM_LEFTMOST, SOM horizon
  small: matches are at most MAX_MATCH_CHARS long) holding the detector patterns and the
  ASCII keywords as caseless literals. Hyperscan has no look-arounds, so a boundary is part of
  the expression: four variants per pattern, `\\A` or `[^C]` before, `[^C]` or `\\z` after,
  each with its own id so the start and end can be corrected. With SOM-leftmost Hyperscan
  reports, per end, the leftmost start; the maximal matches are exactly the maximal ones of
  those reports. Text goes in as one byte per character (latin-1, characters above U+00FF
  as 0x80), so stream offsets are character offsets and no offset map is needed.
* "re": one compiled regex per pattern (not one alternation: an alternation loses
  overlapping matches), searched at every start that has a match; ASCII keywords through a
  pyahocorasick automaton on the ASCII-lower-cased text. Across chunks the last
  TAIL_CHARS characters are kept and rescanned; a start is decided once the text reaches
  MAX_MATCH_CHARS past it (a match can be no longer, so nothing later changes it).

Both engines report a pattern candidate once no longer match can contain it, i.e. when the
stream is MAX_MATCH_CHARS-width-of-pattern past its start, or at `finish()`; a keyword once
the character after it is known. Memory per stream is bounded: the tail, at most one pending
match per pattern per start inside that window, and the keywords ending at the last
character.

Hyperscan binding 0.9.1 caveats: a `Stream` keeps borrowed references to its database and
its callback (freed while in use: a crash, seen with a lambda), so ScanStream holds both;
the stream state lives in C memory until closed, so `finish()` (or, for an abandoned
stream, `__del__`) closes it. Patterns whose SOM form Hyperscan refuses ("Pattern is too
large": wide bounded repeats such as an e-mail local part of {1,64}) are compiled without
SOM; for their reports `re` finds the leftmost start in the MAX_MATCH_CHARS before the end.
The database's one scratch makes a Scanner single-threaded.
"""

from __future__ import annotations

import contextlib
import importlib
import operator
import re
import string
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import Any, NamedTuple

import ahocorasick


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:  # not x86-64, or not installed: the `re` engine takes over
        return None


# Typed Any: the binding's stubs do not describe Stream's constructor.
hyperscan: Any = _optional_module("hyperscan")

# The longest match a pattern may produce. Patterns are short identifiers; the cap bounds
# the tail kept between chunks and the SOM horizon.
MAX_MATCH_CHARS = 256
# The longest keyword (context words, vocabulary phrases).
MAX_KEYWORD_CHARS = 64
# Characters of earlier text kept across chunks: a whole match plus the character before it.
TAIL_CHARS = MAX_MATCH_CHARS + 1

KEYWORD_PREFIX = "kw:"
ENGINES = ("auto", "hyperscan", "re")
_BOUNDARY_CLASSES: Mapping[str, str] = MappingProxyType(
    {"digits": "0-9", "alnum": "A-Za-z0-9", "word": "A-Za-z0-9_"}
)
_NO_KEYWORDS: Mapping[str, Sequence[str]] = MappingProxyType({})
# Characters Hyperscan cannot see as one byte; 0x80 stands for "some non-ASCII character".
_ABOVE_LATIN1 = re.compile("[^\x00-\xff]")
# SOM horizon small: start offsets are exact within 2^16 bytes of the end, far more than
# MAX_MATCH_CHARS; Hyperscan requires a horizon for SOM in stream mode.
_HS_MODE = (
    hyperscan.HS_MODE_STREAM | hyperscan.HS_MODE_SOM_HORIZON_SMALL if hyperscan is not None else 0
)

# Regex constructs outside the common subset of `re` and Hyperscan (or of the semantics above).
_REJECTED_OPS = {
    sre_constants.AT: "anchors and \\b are not allowed (use Pattern.boundary)",
    sre_constants.ASSERT: "look-arounds are not allowed (use Pattern.boundary)",
    sre_constants.ASSERT_NOT: "look-arounds are not allowed (use Pattern.boundary)",
    sre_constants.GROUPREF: "back-references are not allowed",
    sre_constants.GROUPREF_EXISTS: "conditional groups are not allowed",
    sre_constants.MIN_REPEAT: "lazy quantifiers are not allowed",
    sre_constants.POSSESSIVE_REPEAT: "possessive quantifiers are not allowed",
    sre_constants.ATOMIC_GROUP: "atomic groups are not allowed",
}


@dataclass(frozen=True, slots=True)
class Pattern:
    """A detector's candidate pattern. `boundary`: None, "digits", "alnum" or "word": the match
    must not be preceded or followed by a character of that class."""

    id: str
    regex: str
    caseless: bool = False
    boundary: str | None = None


class Candidate(NamedTuple):
    """A match to validate. Offsets are in the object's text stream (the sum of the lengths of
    the chunks fed before); `pattern` is the Pattern id or "kw:<list name>". A named tuple:
    a dense table makes one per nine characters."""

    pattern: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    id: str
    rx: re.Pattern[str]  # the `re` form, boundary as look-arounds
    rx_end: re.Pattern[str]  # the same ending at `endpos`, left boundary only
    width: int  # the longest match, <= MAX_MATCH_CHARS
    # One character that no match of the pattern contains (None: any may be in one). Where
    # Hyperscan gives only the end of a match, the start lies after the last such character.
    outside: re.Pattern[str] | None


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _unicode_fold(text: str) -> str:
    """Lower-case per character, keeping the length (so offsets stay valid)."""
    folded = text.replace("\u0130", "i").lower().replace("\u03c2", "\u03c3")
    if len(folded) != len(text):  # a lower-case expansion this module does not know of
        folded = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        folded = folded.replace("\u03c2", "\u03c3")
    return folded


def _one_byte_per_char(text: str) -> bytes:
    if text.isascii():
        return text.encode("ascii")
    return _ABOVE_LATIN1.sub("\x80", text).encode("latin-1")


def _ascii_fold(text: str) -> str:
    """ASCII letters lower-cased, everything else kept (one character each)."""
    if text.isascii():
        return text.lower()
    return _one_byte_per_char(text).lower().decode("latin-1")


def _check_tree(tree: Any, pattern_id: str) -> None:
    for op, av in tree:
        reason = _REJECTED_OPS.get(op)
        if reason is not None:
            raise ValueError(f"pattern {pattern_id!r}: {reason}")
        if op in (sre_constants.LITERAL, sre_constants.NOT_LITERAL) and av > 0x7F:
            raise ValueError(f"pattern {pattern_id!r}: non-ASCII characters are not allowed")
        if op is sre_constants.IN:
            for item_op, item in av:
                if item_op is sre_constants.LITERAL and item > 0x7F:
                    raise ValueError(f"pattern {pattern_id!r}: non-ASCII class member")
                if item_op is sre_constants.RANGE and item[1] > 0x7F:
                    raise ValueError(f"pattern {pattern_id!r}: non-ASCII class range")
        elif op is sre_constants.BRANCH:
            for branch in av[1]:
                _check_tree(branch, pattern_id)
        elif op is sre_constants.SUBPATTERN:
            _check_tree(av[3], pattern_id)
        elif op is sre_constants.MAX_REPEAT:
            _check_tree(av[2], pattern_id)


def check_pattern(pattern: Pattern) -> None:
    """Raises ValueError naming what the scanner refuses in `pattern` (the detectors' loader
    checks the data with it)."""
    _compile_pattern(pattern)


def _compile_pattern(pattern: Pattern) -> _Compiled:
    if not pattern.id or pattern.id.startswith(KEYWORD_PREFIX):
        raise ValueError(f"pattern id {pattern.id!r}: empty or starting with {KEYWORD_PREFIX!r}")
    if pattern.boundary is not None and pattern.boundary not in _BOUNDARY_CLASSES:
        raise ValueError(f"pattern {pattern.id!r}: unknown boundary {pattern.boundary!r}")
    if not pattern.regex.isascii():
        raise ValueError(f"pattern {pattern.id!r}: non-ASCII characters are not allowed")
    flags = re.ASCII | (re.IGNORECASE if pattern.caseless else 0)
    try:
        tree = sre_parse.parse(pattern.regex, flags)
    except re.error as exc:
        raise ValueError(f"pattern {pattern.id!r}: {exc}") from None
    _check_tree(tree, pattern.id)
    low, high = tree.getwidth()
    if low < 1 or high > MAX_MATCH_CHARS:
        raise ValueError(
            f"pattern {pattern.id!r}: match length {low}..{high} outside 1..{MAX_MATCH_CHARS}"
        )
    body = f"(?:{pattern.regex})"
    before = after = ""
    if pattern.boundary is not None:
        cls = _BOUNDARY_CLASSES[pattern.boundary]
        before, after = f"(?<![{cls}])", f"(?![{cls}])"
    inside = _characters(tree)
    outside = None
    if inside is not None:
        if pattern.caseless:
            inside |= {ord(chr(c).swapcase()) for c in inside if chr(c).isalpha()}
        outside = re.compile("[^" + "".join(f"\\x{c:02x}" for c in sorted(inside)) + "]")
    return _Compiled(
        pattern.id,
        re.compile(before + body + after, flags),
        re.compile(before + body + r"\Z", flags),
        high,
        outside,
    )


_CATEGORY_CHARACTERS: Mapping[Any, str] = MappingProxyType(
    {
        sre_constants.CATEGORY_DIGIT: "0123456789",
        sre_constants.CATEGORY_WORD: "0123456789_" + string.ascii_letters,
        sre_constants.CATEGORY_SPACE: " \t\n\r\f\v",
    }
)


def _characters(tree: Any) -> set[int] | None:
    """The ASCII characters a match of a checked pattern can contain, or None when any
    character can be in one (`.`, a negated class or category)."""
    found: set[int] = set()
    for op, av in tree:
        if op is sre_constants.LITERAL:
            found.add(av)
        elif op is sre_constants.IN:
            for item_op, item in av:
                if item_op is sre_constants.LITERAL:
                    found.add(item)
                elif item_op is sre_constants.RANGE:
                    found.update(range(item[0], item[1] + 1))
                elif item_op is sre_constants.CATEGORY and item in _CATEGORY_CHARACTERS:
                    found.update(map(ord, _CATEGORY_CHARACTERS[item]))
                else:  # NEGATE, a negated category
                    return None
        elif op is sre_constants.BRANCH:
            for branch in av[1]:
                inner = _characters(branch)
                if inner is None:
                    return None
                found |= inner
        elif op in (sre_constants.SUBPATTERN, sre_constants.MAX_REPEAT):
            inner = _characters(av[-1])
            if inner is None:
                return None
            found |= inner
        else:  # ANY, NOT_LITERAL
            return None
    return found


class _HsExpr(NamedTuple):
    """How a Hyperscan report maps back: the pattern (index) or keyword, and the offset
    corrections for a consumed boundary character before (head) and after (tail)."""

    target: int  # the pattern index, or the keyword index
    head: int
    tail: int
    keyword: bool
    som: bool  # False: Hyperscan gives the end only, `re` finds the leftmost start


def _hs_expressions(pattern: Pattern, *, som: bool) -> list[tuple[str, int, int]]:
    """(expression, head, tail) variants of one pattern, the boundary spelled out. Without
    SOM only the end matters: the left boundary is checked when the start is looked up."""
    body = f"(?:{pattern.regex})"
    if pattern.boundary is None:
        return [(body, 0, 0)]
    other = f"[^{_BOUNDARY_CLASSES[pattern.boundary]}]"
    if not som:
        return [(rf"{body}\z", 0, 0), (f"{body}{other}", 0, 1)]
    return [
        (rf"\A{body}\z", 0, 0),
        (rf"\A{body}{other}", 0, 1),
        (rf"{other}{body}\z", 1, 0),
        (f"{other}{body}{other}", 1, 1),
    ]


def _hs_database(expressions: list[bytes], flags: list[int]) -> Any:
    """A stream database of these expressions (ids: their positions); hyperscan.error when
    Hyperscan refuses them."""
    db = hyperscan.Database(mode=_HS_MODE)
    db.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=flags,
    )
    return db


def _hs_compiles(expressions: list[bytes], flags: list[int]) -> str | None:
    """None when Hyperscan compiles these expressions into a stream database, else why not."""
    try:
        _hs_database(expressions, flags)
    except hyperscan.error as exc:
        return str(exc)
    return None


class Scanner:
    """The compiled pattern set and keyword lists; `stream()` starts the scan of one object."""

    __slots__ = (
        "_ascii_ac",
        "_compiled",
        "_hs_db",
        "_hs_exprs",
        "_keywords_ascii",
        "_kw_ascii_lists",
        "_kw_max_ascii",
        "_kw_max_unicode",
        "_unicode_ac",
        "engine",
    )

    def __init__(
        self,
        patterns: Sequence[Pattern],
        keywords: Mapping[str, Sequence[str]] = _NO_KEYWORDS,
        *,
        engine: str = "auto",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
        if engine == "hyperscan" and hyperscan is None:
            raise ValueError("engine 'hyperscan': the hyperscan module does not import here")
        ids = [p.id for p in patterns]
        if len(set(ids)) != len(ids):
            raise ValueError("pattern ids must be unique")
        self._compiled = tuple(_compile_pattern(p) for p in patterns)

        # Keyword folded form -> the list names it belongs to.
        ascii_kw: dict[str, set[str]] = {}
        unicode_kw: dict[str, set[str]] = {}
        for name, words in keywords.items():
            if not name:
                raise ValueError("keyword list names must not be empty")
            for word in words:
                if not word or len(word) > MAX_KEYWORD_CHARS:
                    raise ValueError(
                        f"keyword list {name!r}: keyword {word!r} empty or longer than "
                        f"{MAX_KEYWORD_CHARS} characters"
                    )
                if word.isascii():
                    ascii_kw.setdefault(word.lower(), set()).add(KEYWORD_PREFIX + name)
                else:
                    unicode_kw.setdefault(_unicode_fold(word), set()).add(KEYWORD_PREFIX + name)
        self._keywords_ascii = tuple(sorted(ascii_kw))
        self._kw_ascii_lists = tuple(tuple(sorted(ascii_kw[k])) for k in self._keywords_ascii)
        self._kw_max_ascii = max(map(len, self._keywords_ascii), default=0)
        self._kw_max_unicode = max(map(len, unicode_kw), default=0)
        self._unicode_ac = _automaton(unicode_kw)
        self._ascii_ac: Any = None
        self._hs_db: Any = None
        self._hs_exprs: tuple[_HsExpr, ...] = ()

        use_hs = engine == "hyperscan" or (engine == "auto" and hyperscan is not None)
        self.engine = "hyperscan" if use_hs else "re"
        if use_hs:
            self._compile_hyperscan(patterns)
        else:
            self._ascii_ac = _automaton(ascii_kw)

    def _compile_hyperscan(self, patterns: Sequence[Pattern]) -> None:
        expressions: list[bytes] = []
        flags: list[int] = []
        exprs: list[_HsExpr] = []
        for index, pattern in enumerate(patterns):
            base_flag = hyperscan.HS_FLAG_CASELESS if pattern.caseless else 0
            # SOM with wide bounded repeats (an e-mail local part of {1,64}) is "Pattern is
            # too large" for Hyperscan; such a pattern reports ends only.
            som = True
            variants = _hs_expressions(pattern, som=True)
            encoded = [v[0].encode("ascii") for v in variants]
            flag = base_flag | hyperscan.HS_FLAG_SOM_LEFTMOST
            if _hs_compiles(encoded, [flag] * len(encoded)) is not None:
                som = False
                variants = _hs_expressions(pattern, som=False)
                encoded = [v[0].encode("ascii") for v in variants]
                flag = base_flag
                reason = _hs_compiles(encoded, [flag] * len(encoded))
                if reason is not None:
                    raise ValueError(f"pattern {pattern.id!r}: hyperscan: {reason}")
            for expression, (_, head, tail) in zip(encoded, variants, strict=True):
                expressions.append(expression)
                flags.append(flag)
                exprs.append(_HsExpr(index, head, tail, False, som))
        for index, word in enumerate(self._keywords_ascii):
            # Every byte hex-escaped: a keyword is a literal, whatever punctuation it holds.
            expressions.append("".join(f"\\x{ord(c):02x}" for c in word).encode("ascii"))
            flags.append(hyperscan.HS_FLAG_CASELESS)
            exprs.append(_HsExpr(index, 0, 0, True, False))
        if not expressions:
            return
        try:
            self._hs_db = _hs_database(expressions, flags)
        except hyperscan.error as exc:
            raise ValueError(f"hyperscan cannot compile the pattern set: {exc}") from None
        self._hs_exprs = tuple(exprs)

    def stream(self) -> ScanStream:
        return ScanStream(self)


def _automaton(words: Mapping[str, set[str]]) -> Any:
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word, lists in words.items():
        automaton.add_word(word, (len(word), tuple(sorted(lists))))
    automaton.make_automaton()
    return automaton


class ScanStream:
    """The scan of one object's text. Feed the chunks in order; `finish()` at the end.
    Candidates come back sorted by (start, end, pattern) within each call."""

    __slots__ = (
        "_deferred_kw",
        "_finished",
        "_hits",
        "_hs_stream",
        "_max_end",
        "_next_start",
        "_on_match",
        "_pending",
        "_pos",
        "_scanner",
        "_tail",
    )

    def __init__(self, scanner: Scanner) -> None:
        self._scanner = scanner
        self._tail = ""  # the last TAIL_CHARS characters fed
        self._pos = 0  # characters fed so far
        self._finished = False
        # Keyword matches ending at the last character fed: the next character decides.
        self._deferred_kw: list[tuple[str, int, int, str]] = []
        n = len(scanner._compiled)
        # `re` engine: per pattern, starts below this are decided; the end of the last
        # reported match (a later start ending no further lies inside it).
        self._next_start = [0] * n
        self._max_end = [0] * n
        # hyperscan engine: per pattern, reported matches that a longer one may still contain,
        # starts and ends increasing.
        self._pending: list[deque[tuple[int, int, str]]] = [deque() for _ in range(n)]
        self._hits: list[tuple[int, int, int]] = []
        self._hs_stream: Any = None
        hits = self._hits

        def on_match(expr_id: int, start: int, end: int, flags: int, context: object) -> None:
            hits.append((expr_id, start, end))

        # Held here: the binding keeps only a borrowed reference to its callback.
        self._on_match: Callable[[int, int, int, int, object], None] = on_match
        if scanner._hs_db is not None:
            assert hyperscan is not None
            # `Database.stream()` adds the reference that `__enter__` (hs_open_stream) drops.
            self._hs_stream = scanner._hs_db.stream(match_event_handler=on_match)
            self._hs_stream.__enter__()

    def __del__(self) -> None:
        # An abandoned stream still holds Hyperscan stream state in C memory.
        if self._hs_stream is not None:
            with contextlib.suppress(Exception):  # nothing to report to at teardown
                self._hs_stream.close()
            self._hs_stream = None

    def feed(self, text: str) -> list[Candidate]:
        if self._finished:
            raise ValueError("feed() after finish()")
        if not text:
            return []
        out: list[Candidate] = []
        base = self._pos - len(self._tail)
        buf = self._tail + text
        old_pos = self._pos
        new_pos = old_pos + len(text)
        if self._deferred_kw:
            if not _is_word_char(text[0]):
                out.extend(Candidate(*kw) for kw in self._deferred_kw)
            self._deferred_kw = []
        scanner = self._scanner
        if scanner.engine == "hyperscan":
            self._hs_scan(text, buf, base, old_pos, new_pos, out)
        else:
            self._re_scan(buf, base, new_pos, final=False, out=out)
            self._ac_scan(
                scanner._ascii_ac, scanner._kw_max_ascii, _ascii_fold, buf, base, old_pos, out
            )
        if scanner._unicode_ac is not None:
            self._ac_scan(
                scanner._unicode_ac,
                scanner._kw_max_unicode,
                _unicode_fold,
                buf,
                base,
                old_pos,
                out,
            )
        self._tail = buf[-TAIL_CHARS:]
        self._pos = new_pos
        out.sort(key=_order)
        return out

    def finish(self) -> list[Candidate]:
        if self._finished:
            return []
        self._finished = True
        out = [Candidate(*kw) for kw in self._deferred_kw]  # the end of text is a boundary
        self._deferred_kw = []
        base = self._pos - len(self._tail)
        if self._scanner.engine == "hyperscan":
            if self._hs_stream is not None:
                self._hits.clear()
                stream, self._hs_stream = self._hs_stream, None
                stream.close()  # reports the `\z` variants
                self._take_hits(self._tail, base, self._pos, out)
            for index, pending in enumerate(self._pending):
                pattern_id = self._scanner._compiled[index].id
                out.extend(Candidate(pattern_id, s, e, t) for s, e, t in pending)
                pending.clear()
        else:
            self._re_scan(self._tail, base, self._pos, final=True, out=out)
        out.sort(key=_order)
        return out

    # -- re engine ---------------------------------------------------------------------

    def _re_scan(
        self, buf: str, base: int, end_pos: int, *, final: bool, out: list[Candidate]
    ) -> None:
        for index, compiled in enumerate(self._scanner._compiled):
            # A start is decided once the text reaches `width` past it: the match attempt
            # there reads at most that far (the boundary look-ahead included).
            limit = end_pos if final else end_pos - compiled.width
            start = self._next_start[index]
            if limit <= start:
                continue
            search = compiled.rx.search
            max_end = self._max_end[index]
            i = start - base
            stop = limit - base
            while True:
                m = search(buf, i)
                if m is None:
                    break
                s, e = m.span()
                if s >= stop:
                    break
                if base + e > max_end:  # else inside the previous reported match
                    max_end = base + e
                    out.append(Candidate(compiled.id, base + s, max_end, buf[s:e]))
                i = s + 1
            self._max_end[index] = max_end
            self._next_start[index] = limit

    # -- hyperscan engine --------------------------------------------------------------

    def _hs_scan(
        self, text: str, buf: str, base: int, old_pos: int, new_pos: int, out: list[Candidate]
    ) -> None:
        if self._hs_stream is None:
            return
        self._hits.clear()
        self._hs_stream.scan(_one_byte_per_char(text))
        self._take_hits(buf, base, new_pos, out)
        for index, pending in enumerate(self._pending):
            if not pending:
                continue
            compiled = self._scanner._compiled[index]
            # Final once no later match can start at or before it (they end past new_pos).
            decided = new_pos - compiled.width
            while pending and pending[0][0] < decided:
                s, e, t = pending.popleft()
                out.append(Candidate(compiled.id, s, e, t))

    def _take_hits(self, buf: str, base: int, new_pos: int, out: list[Candidate]) -> None:
        if not self._hits:
            return
        scanner = self._scanner
        exprs = scanner._hs_exprs
        compiled_all = scanner._compiled
        matches: list[tuple[int, int, int]] = []  # (end, -start, pattern index)
        for expr_id, start, end in self._hits:
            index, head, tail, keyword, som = exprs[expr_id]
            if keyword:
                word = scanner._keywords_ascii[index]
                self._keyword_found(
                    end - len(word), end, scanner._kw_ascii_lists[index], buf, base, new_pos, out
                )
                continue
            e = end - tail
            if som:
                matches.append((e, -start - head, index))
                continue
            compiled = compiled_all[index]
            lo = max(e - compiled.width - base, 0)
            hi = e - base
            if compiled.outside is not None:  # the start lies after the last outside char
                last = compiled.outside.search(buf[lo:hi][::-1])
                if last is not None:
                    lo = hi - last.start()
            found = compiled.rx_end.search(buf, lo, hi)
            if found is None:
                continue  # no start with a valid left boundary
            matches.append((e, -(base + found.start()), index))
        self._hits.clear()
        # By end, then longest first: a later report with a start at or before a pending
        # one's start contains it (its end is no smaller).
        matches.sort()
        all_pending = self._pending
        for e, neg_s, index in matches:
            s = -neg_s
            pending = all_pending[index]
            while pending and pending[-1][0] >= s:
                pending.pop()
            pending.append((s, e, buf[s - base : e - base]))

    # -- keywords ----------------------------------------------------------------------

    def _ac_scan(
        self,
        automaton: Any,
        longest: int,
        fold: Callable[[str], str],
        buf: str,
        base: int,
        old_pos: int,
        out: list[Candidate],
    ) -> None:
        if automaton is None:
            return
        # Rescan the last (longest - 1) characters: a keyword ending in the new text starts
        # no earlier.
        region_start = max(old_pos - (longest - 1), base)
        region = buf[region_start - base :]
        if fold is _unicode_fold and region.isascii():
            return  # a keyword with a non-ASCII character cannot be in ASCII text
        new_pos = base + len(buf)
        for last, (length, lists) in automaton.iter(fold(region)):
            e = region_start + last + 1
            if e <= old_pos:
                continue  # reported with the earlier chunk
            self._keyword_found(e - length, e, lists, buf, base, new_pos, out)

    def _keyword_found(
        self,
        s: int,
        e: int,
        lists: tuple[str, ...],
        buf: str,
        base: int,
        new_pos: int,
        out: list[Candidate],
    ) -> None:
        if s > 0 and _is_word_char(buf[s - 1 - base]):
            return
        matched = buf[s - base : e - base]
        if e == new_pos:  # the character after it is not known yet
            self._deferred_kw.extend((name, s, e, matched) for name in lists)
            return
        if _is_word_char(buf[e - base]):
            return
        out.extend(Candidate(name, s, e, matched) for name in lists)


_order = operator.itemgetter(1, 2, 0)  # Candidate (start, end, pattern)
