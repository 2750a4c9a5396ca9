"""Text extraction stage, RTF (Rich Text Format 1.9.1): the document's text without its
control words.

In: the RTF's bytes in order (any split). Out: running text (`FlowingText` chunks).

A regex tokenizer over the bytes (control word with its parameter, control symbol, \\'hh,
group brace, text run), one step per token; a token that reaches the end of what has
arrived waits for the next bytes (at most `MAX_RTF_TOKEN_BYTES`). Groups that are no text are
skipped whole: `{\\*\\...}` destinations and the destinations in `SKIP_DESTINATIONS` (font,
colour and style tables, pictures, object data, field instructions, ...). `\\binN` skips N
raw bytes. Text bytes and \\'hh escapes are decoded with the document's code page (\\ansicpg,
default windows-1252; per-font \\fcharset is not followed), `\\uN` is a UTF-16 code unit
(negative N counts from 65536) followed by `\\ucN` fallback characters that are dropped.
\\par, \\line, \\row, \\sect, \\page become newlines, \\tab and \\cell TABs.
"""

from __future__ import annotations

import codecs
import re

from sensor.anomaly import Anomaly
from sensor.content.text.emitter import MAX_TEXT_CHARS, FlowingExtractor

MAX_RTF_DEPTH = 512  # group nesting tracked; deeper groups share the deepest state
MAX_RTF_TOKEN_BYTES = 64  # control word (32 letters) + parameter; kept across feeds
MAX_RTF_UC = 8  # \ucN fallback characters skipped after \u, at most
# Text bytes held for the code page: at this many (counted from the last decode, which
# tokens decide, so the same for every split) they are decoded ahead.
MAX_RTF_PENDING_BYTES = 64 * 1024
DEFAULT_CODEPAGE = "cp1252"

SKIP_DESTINATIONS = frozenset(
    {
        b"fonttbl", b"colortbl", b"stylesheet", b"listtable", b"listoverridetable",
        b"revtbl", b"rsidtbl", b"info", b"pict", b"object", b"objdata", b"objclass",
        b"fldinst", b"themedata", b"colorschememapping", b"datastore", b"latentstyles",
        b"generator", b"xmlnstbl", b"filetbl", b"pgdsctbl", b"mmathPr", b"datafield",
        b"picprop", b"blipuid", b"shppict", b"nonshppict", b"bkmkstart", b"bkmkend",
    }
)  # fmt: skip
_NEWLINE_WORDS = frozenset({b"par", b"line", b"row", b"sect", b"page", b"outlinelevel"})
_TAB_WORDS = frozenset({b"tab", b"cell"})
_CHAR_WORDS = {
    b"emdash": "\u2014", b"endash": "\u2013", b"lquote": "\u2018", b"rquote": "\u2019",
    b"ldblquote": "\u201c", b"rdblquote": "\u201d", b"bullet": "\u2022", b"emspace": " ",
    b"enspace": " ", b"qmspace": " ",
}  # fmt: skip
_SYMBOLS = {b"~": "\u00a0", b"_": "\u2011", b"-": "", b"\\": "\\", b"{": "{", b"}": "}"}

# word (+param, + one delimiting space) | \'hh | control symbol | brace | text run | CR/LF
_TOKEN = re.compile(
    rb"\\([A-Za-z]{1,32})(-?[0-9]{1,10})? ?|\\'([0-9A-Fa-f]{2})|\\([\s\S])|([{}])"
    rb"|([^\\{}\r\n]+)|[\r\n]+"
)


class RtfExtractor(FlowingExtractor):
    """Text of one RTF document (see the module docstring)."""

    def __init__(self, *, part: str | None = None, max_chars: int = MAX_TEXT_CHARS) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._buf = b""  # an unfinished token: at most MAX_RTF_TOKEN_BYTES + a feed
        self._skip_stack: list[bool] = []
        self._uc_stack: list[int] = []
        self._skip = False
        self._uc = 1
        self._overflow = 0  # groups open beyond MAX_RTF_DEPTH
        self._group_start = False  # the last token opened a group
        self._pending = bytearray()  # text bytes to decode: under MAX_RTF_PENDING_BYTES
        # The code page's decoder (\ansicpg): incremental, so that a double-byte character
        # (\ansicpg932) cut at MAX_RTF_PENDING_BYTES stays whole.
        self._codec = _decoder(DEFAULT_CODEPAGE)
        self._fallback = 0  # \uc characters still to drop
        self._high: int | None = None  # a UTF-16 high surrogate waiting for its pair
        self._bin = 0  # \bin bytes still to skip
        self._noted: set[str] = set()

    def _read(self, data: bytes, final: bool) -> None:
        self._scan(self._buf + data if self._buf else data, final)
        if final:
            self._flush()

    def _flush(self) -> None:
        """Decode the waiting text bytes."""
        if self._pending:
            self._text.add(self._codec.decode(bytes(self._pending), True))
            self._pending.clear()

    def _hold(self, data: bytes) -> None:
        """Keep text bytes for decoding; decode the first MAX_RTF_PENDING_BYTES once held."""
        self._pending += data
        while len(self._pending) >= MAX_RTF_PENDING_BYTES:
            self._text.add(self._codec.decode(bytes(self._pending[:MAX_RTF_PENDING_BYTES])))
            del self._pending[:MAX_RTF_PENDING_BYTES]

    def _add(self, text: str) -> None:
        self._flush()
        self._text.add(text)

    def _scan(self, buf: bytes, final: bool) -> None:
        pos = 0
        size = len(buf)
        while pos < size:
            if self._bin:
                take = min(self._bin, size - pos)
                self._bin -= take
                pos += take
                continue
            m = _TOKEN.match(buf, pos)
            if m is None:  # a lone backslash at the very end
                if final:
                    pos = size
                break
            if not final and (
                (m.end() >= size and m.lastindex != 6)
                or (m.lastindex == 4 and m.group(4) == b"'" and size - pos < 4)
                or (m.lastindex == 1 and m.end() == size - 1 and buf[-1:] == b"-")
            ):
                break  # the word, its parameter, its delimiter or a \'hh may go on
            pos = m.end()
            self._token(m)
        self._buf = buf[pos:] if pos < size else b""
        if len(self._buf) > MAX_RTF_TOKEN_BYTES:
            self._buf = b""

    def _token(self, m: re.Match[bytes]) -> None:
        group_start = self._group_start
        self._group_start = False
        index = m.lastindex
        if index == 6:  # text
            if self._skip:
                return
            run = m.group(6)
            if self._fallback:
                drop = min(self._fallback, len(run))
                self._fallback -= drop
                run = run[drop:]
            self._hold(run)
        elif index in (1, 2):  # control word
            self._word(m.group(1), m.group(2), group_start)
        elif index == 3:  # \'hh
            if self._fallback:
                self._fallback -= 1
            elif not self._skip:
                self._hold(bytes((int(m.group(3), 16),)))
        elif index == 4:  # control symbol
            symbol = m.group(4)
            if symbol == b"*":
                self._skip = True
            elif not self._skip:
                if symbol in _SYMBOLS:
                    self._add(_SYMBOLS[symbol])
                elif symbol in (b"\n", b"\r"):
                    self._add("\n")  # \<newline> is \par
        elif index == 5:
            self._fallback = 0
            if m.group(5) == b"{":
                self._open()
            else:
                self._close()

    def _word(self, word: bytes, param: bytes | None, group_start: bool) -> None:
        if word == b"bin":
            self._bin = max(0, int(param)) if param else 0
            return
        if word in SKIP_DESTINATIONS:
            self._skip = True
            return
        if self._skip:
            return
        if word == b"u" and param is not None:
            self._unicode(int(param))
            return
        if word == b"uc" and param is not None:
            self._uc = max(0, min(int(param), MAX_RTF_UC))
            return
        if word == b"ansicpg" and param is not None:
            self._flush()
            self._codec = _decoder(_codepage(param))
            return
        if word in _NEWLINE_WORDS:
            self._add("\n")
        elif word in _TAB_WORDS:
            self._add("\t")
        elif word in _CHAR_WORDS:
            self._add(_CHAR_WORDS[word])

    def _unicode(self, value: int) -> None:
        unit = value + 65536 if value < 0 else value
        self._fallback = self._uc
        if 0xD800 <= unit < 0xDC00:
            self._flush()
            self._high = unit
            return
        if 0xDC00 <= unit < 0xE000 and self._high is not None:
            self._add(chr(0x10000 + ((self._high - 0xD800) << 10) + (unit - 0xDC00)))
        elif unit <= 0x10FFFF:
            self._add(chr(unit))
        self._high = None

    def _open(self) -> None:
        self._group_start = True
        if len(self._skip_stack) >= MAX_RTF_DEPTH:
            self._overflow += 1
            if "text_rtf_too_deep" not in self._noted:
                self._noted.add("text_rtf_too_deep")
                self.anomalies.append(
                    Anomaly("text_rtf_too_deep", f"groups nested deeper than {MAX_RTF_DEPTH}")
                )
            return
        self._skip_stack.append(self._skip)
        self._uc_stack.append(self._uc)

    def _close(self) -> None:
        if self._overflow:
            self._overflow -= 1
            return
        if self._skip_stack:
            self._skip = self._skip_stack.pop()
            self._uc = self._uc_stack.pop()


def _codepage(param: bytes) -> str:
    name = f"cp{int(param)}"
    try:
        codecs.lookup(name)
    except LookupError:
        return DEFAULT_CODEPAGE
    return name


def _decoder(codepage: str) -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder(codepage)(errors="replace")
