"""Text extraction stage, JSON (RFC 8259) and JSON lines: string and number values with the
key path that leads to them.

In: the object's bytes in order (any split), the declared charset if any. Out: one
`TextChunk` per non-empty string or number value, `header` = its key path in the usual
dotted form ("patient.identifier[0].value"; "[3].name" under a root array; None for a bare
root value). Object keys are not text of their own: they are in the paths.

A small incremental tokenizer, never `json.loads` of the whole object: one regex step per
token over the decoded text, a token cut at the end of what has arrived waits for the next
bytes. It is lenient (a stray character is noted once as `text_json_malformed` and skipped;
mismatched brackets close the innermost container) because the classifier wants the values
of damaged or truncated JSON too. Bounds: a string value longer than `MAX_JSON_STRING_CHARS`
is handed out in pieces of that size (cut at the same places however the bytes were split);
containers deeper than `MAX_JSON_DEPTH` are not tracked (`text_json_too_deep`, once) and
their values get the deepest tracked path; keys are cut to `MAX_JSON_KEY_CHARS` in paths.
"""

from __future__ import annotations

import re
from json import JSONDecoder
from json.decoder import scanstring  # type: ignore[attr-defined]

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextPosition
from sensor.content.text.charset import TextDecoder
from sensor.content.text.emitter import MAX_CHUNK_CHARS, MAX_TEXT_CHARS, BoundedExtractor

MAX_JSON_DEPTH = 64
MAX_JSON_KEY_CHARS = 64
MAX_JSON_STRING_CHARS = MAX_CHUNK_CHARS  # raw characters of a string handed out at once
# Decoded text is tokenized in windows of this many characters (plus the undecided tail), which
# also bounds what one C `raw_decode` of a container may build.
JSON_WINDOW_CHARS = 1024 * 1024
# The C decoder is not used for a container holding a string this long (its raw form might be
# longer than MAX_JSON_STRING_CHARS, which the tokenizer hands out in pieces).
FAST_STRING_CHARS = MAX_JSON_STRING_CHARS // 6

# One token with the whitespace before it. s: a whole string (its body); q: the opening
# quote of a string that does not end in the buffer; c , n number o open x close l literal.
_TOKEN = re.compile(
    r"[ \t\r\n]*(?:"
    r'"(?P<s>[^"\\]*(?:\\[\s\S][^"\\]*)*)"|(?P<c>,)|(?P<colon>:)'
    r"|(?P<n>-?\d[\d.eE+\-]*)|(?P<o>[{\[])|(?P<x>[}\]])"
    r'|(?P<q>")|(?P<l>true|false|null)|(?P<other>[^ \t\r\n]))'
)
_WORDS = frozenset({"l", "other"})
_STRING_BODY = re.compile(r'[^"\\]*(?:\\[\s\S][^"\\]*)*')
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\s\S])")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class _Pairs(list[tuple[str, object]]):
    """An object's members in order, duplicates kept (the C decoder's object_pairs_hook)."""


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN/Infinity are no JSON (RFC 8259 §6); the tokenizer skips them


# Numbers stay the text they were written as, so both paths hand out the same characters.
_FAST = JSONDecoder(
    object_pairs_hook=_Pairs,
    parse_float=str,
    parse_int=str,
    parse_constant=_reject_constant,
    strict=False,
)


def _escape(match: re.Match[str]) -> str:
    body = match.group(1)
    if len(body) == 5:
        return chr(int(body[1:], 16))
    return _SIMPLE_ESCAPES.get(body, body)


def unescape(raw: str) -> str:
    """The value of a JSON string body (without quotes); broken escapes are kept as written."""
    if "\\" not in raw:
        return raw
    try:
        return scanstring(raw + '"', 0, False)[0]
    except ValueError:
        return _ESCAPE.sub(_escape, raw)


class JsonExtractor(BoundedExtractor):
    """Values of one JSON object (see the module docstring)."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._decoder = TextDecoder(charset, self.anomalies)
        self._buf = ""  # undecided tail: one token (bounded by MAX_JSON_STRING_CHARS) + a feed
        # One entry per open container: its kind ("{" or "["), its path, its current key
        # or index.
        self._kinds: list[str] = []
        self._paths: list[str] = []
        self._keys: list[str] = []
        self._indexes: list[int] = []
        self._overflow = 0  # containers open beyond MAX_JSON_DEPTH
        self._expect_key = False
        self._in_string = False  # inside a string longer than MAX_JSON_STRING_CHARS
        self._string_is_key = False
        self._string_pieces = 0
        # Raw text of the current long string read so far but not handed out (bounded by
        # MAX_JSON_STRING_CHARS).
        self._held_parts: list[str] = []
        self._held_size = 0
        self._noted: set[str] = set()

    def _extract(self, data: bytes) -> list[TextChunk]:
        text = self._decoder.decode(data)
        out: list[TextChunk] = []
        for start in range(0, len(text), JSON_WINDOW_CHARS):
            piece = text[start : start + JSON_WINDOW_CHARS]
            self._buf = self._buf + piece if self._buf else piece
            out += self._scan(final=False)
        return out

    def _extract_rest(self) -> list[TextChunk]:
        self._buf += self._decoder.finish()
        return self._scan(final=True)

    def _path(self) -> str | None:
        """The key path of a value at the current place."""
        if not self._kinds:
            return None
        base = self._paths[-1]
        if self._kinds[-1] == "{":
            return f"{base}.{self._keys[-1]}" if base else self._keys[-1]
        return f"{base}[{self._indexes[-1]}]"

    def _scan(self, final: bool) -> list[TextChunk]:
        out: list[TextChunk] = []
        buf = self._buf
        size = len(buf)
        pos = 0
        emitter = self._emitter
        part = self._part
        kinds = self._kinds
        while not emitter.capped:
            if self._in_string:
                pos, waiting = self._string(buf, pos, final, out)
                if waiting:
                    break
                continue
            resume = False
            for m in _TOKEN.finditer(buf, pos):
                kind = m.lastgroup
                end = m.end()
                if kind == "s":
                    raw = m.group(kind)
                    if len(raw) > MAX_JSON_STRING_CHARS:
                        self._begin_string()
                        pos = m.start(kind)
                        resume = True
                        break
                    pos = end
                    if self._expect_key:
                        self._expect_key = False
                        if not self._overflow:
                            self._keys[-1] = unescape(raw[: MAX_JSON_KEY_CHARS * 6])[
                                :MAX_JSON_KEY_CHARS
                            ]
                    elif raw:
                        emitter.emit(out, unescape(raw), part=part, header=self._path())
                        if emitter.capped:
                            break
                    continue
                if not final and (end >= size or (kind in _WORDS and m.start() > size - 6)):
                    break  # a number or word may go on in the next bytes
                pos = end
                if kind == "c":
                    if kinds and not self._overflow:
                        if kinds[-1] == "{":
                            self._expect_key = True
                        else:
                            self._indexes[-1] += 1
                elif kind == "n":
                    if not self._expect_key:
                        emitter.emit(out, m.group(kind), part=part, header=self._path())
                        if emitter.capped:
                            break
                elif kind == "o":
                    if not self._overflow and len(kinds) < MAX_JSON_DEPTH:
                        done = self._whole(buf, m.start(kind), out)
                        if done:
                            pos = done
                            resume = True
                            break
                    self._open(m.group(kind))
                elif kind == "x":
                    self._close()
                elif kind == "colon":
                    self._expect_key = False
                elif kind == "q":
                    self._begin_string()
                    resume = True
                    break
                elif kind == "other":
                    self._note("text_json_malformed", "a character that is no JSON token")
            if not resume:
                break
        self._buf = "" if final else buf[pos:]
        return out

    def _whole(self, buf: str, start: int, out: list[TextChunk]) -> int:
        """Hand out a container that is complete in `buf` through the C decoder: the values
        and paths the tokenizer would find, found faster. Its end, or 0 when it does not
        decode (cut at the buffer's end, damaged, a long string: the tokenizer takes over)."""
        try:
            node, end = _FAST.raw_decode(buf, start)
        except (ValueError, RecursionError):
            return 0
        values: list[tuple[str, str]] = []
        if not self._walk(node, self._path() or "", len(self._kinds) + 1, values):
            return 0
        part = self._part
        emitter = self._emitter
        total = sum(len(text) for text, _ in values)
        if not emitter.capped and total <= emitter.limit - emitter.offset:
            offset = emitter.offset  # all of it fits: make the chunks here, without emit's checks
            for text, path in values:
                out.append(TextChunk(text, TextPosition(offset, part), path))
                offset += len(text)
            emitter.offset = offset
        else:
            for text, path in values:
                emitter.emit(out, text, part=part, header=path)
        self._expect_key = False
        return int(end)

    def _walk(self, node: object, path: str, depth: int, values: list[tuple[str, str]]) -> bool:
        """Collect the values under container `node` (tracked at `depth`); False when a
        string is too long for this path."""
        pairs = type(node) is _Pairs
        key: str
        value: object
        items: list[tuple[str, object]] | list[object] = node  # type: ignore[assignment]
        for index, item in enumerate(items):
            if pairs:
                key, value = item  # type: ignore[misc]
                if len(key) > FAST_STRING_CHARS:
                    return False
                key = key[:MAX_JSON_KEY_CHARS]
                child = f"{path}.{key}" if path else key
            else:
                value = item
                child = f"{path}[{index}]"
            kind = type(value)
            if kind is str:
                if len(value) > FAST_STRING_CHARS:  # type: ignore[arg-type]
                    return False
                if value:
                    values.append((value, child))  # type: ignore[arg-type]
            elif kind is list or kind is _Pairs:
                if depth < MAX_JSON_DEPTH:
                    if not self._walk(value, child, depth + 1, values):
                        return False
                elif not self._flatten(value, child, values):
                    return False
        return True

    def _flatten(self, node: object, path: str, values: list[tuple[str, str]]) -> bool:
        """Containers beyond MAX_JSON_DEPTH, as the tokenizer sees them: untracked, so keys are
        text like values and everything gets the deepest tracked path."""
        self._note("text_json_too_deep", f"containers nested deeper than {MAX_JSON_DEPTH}")
        stack: list[object] = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if len(item) > FAST_STRING_CHARS:
                    return False
                if item:
                    values.append((item, path))
            elif isinstance(item, _Pairs):
                for key, value in reversed(item):
                    stack.append(value)
                    stack.append(key)
            elif isinstance(item, list):
                stack.extend(reversed(item))
        return True

    def _begin_string(self) -> None:
        """A string too long (or too unfinished) for one token starts: read it in pieces."""
        self._in_string = True
        self._string_is_key = self._expect_key
        self._string_pieces = 0
        self._expect_key = False

    def _string(self, buf: str, pos: int, final: bool, out: list[TextChunk]) -> tuple[int, bool]:
        """Consume string text from `pos`; (new pos, waiting for more text). Pieces are cut
        every MAX_JSON_STRING_CHARS raw characters from the string's start (one less when an
        escape would be cut), so the split of the input does not matter."""
        room = MAX_JSON_STRING_CHARS - self._held_size
        end = min(len(buf), pos + room)
        stop = _STRING_BODY.match(buf, pos, end).end()  # type: ignore[union-attr]
        if stop < end and buf[stop] == '"':
            self._string_piece(self._held(buf[pos:stop]), out)
            self._in_string = False
            return stop + 1, False
        if end - pos >= room:
            self._string_piece(self._held(buf[pos:stop]), out)
            return stop, False
        if final:
            self._string_piece(self._held(buf[pos:]), out)
            self._in_string = False
            return len(buf), True
        # Keep what is read (without a trailing lone backslash) so it is not scanned again.
        self._held_parts.append(buf[pos:stop])
        self._held_size += stop - pos
        return stop, True

    def _held(self, tail: str) -> str:
        if not self._held_parts:
            return tail
        self._held_parts.append(tail)
        raw = "".join(self._held_parts)
        self._held_parts = []
        self._held_size = 0
        return raw

    def _string_piece(self, raw: str, out: list[TextChunk]) -> None:
        first = self._string_pieces == 0
        self._string_pieces += 1
        if self._string_is_key:
            if first and self._kinds and not self._overflow:
                self._keys[-1] = unescape(raw[: MAX_JSON_KEY_CHARS * 6])[:MAX_JSON_KEY_CHARS]
            return
        if raw:
            self._emitter.emit(out, unescape(raw), part=self._part, header=self._path())

    def _open(self, kind: str) -> None:
        if self._overflow or len(self._kinds) >= MAX_JSON_DEPTH:
            self._overflow += 1
            self._note("text_json_too_deep", f"containers nested deeper than {MAX_JSON_DEPTH}")
            self._expect_key = False
            return
        self._paths.append(self._path() or "")
        self._kinds.append(kind)
        self._keys.append("")
        self._indexes.append(0)
        self._expect_key = kind == "{"

    def _close(self) -> None:
        self._expect_key = False
        if self._overflow:
            self._overflow -= 1
        elif self._kinds:
            self._kinds.pop()
            self._paths.pop()
            self._keys.pop()
            self._indexes.pop()

    def _note(self, kind: str, detail: str) -> None:
        if kind not in self._noted:
            self._noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail))
