"""Content stage: streaming multipart splitter (RFC 2046 sec 5.1, RFC 7578 for form-data).

In: the decoded bytes of one multipart body, in arbitrary chunks, plus gaps, and the boundary
parameter of its Content-Type.
Out: a flat list of events per call: `PreambleData`/`PreambleGap` (bytes before the first
delimiter), then for each part `PartStart` (index and raw header fields), `PartData`, `PartGap`
and `PartEnd`, interleaved with `Anomaly` values. The epilogue is counted, not returned.

Theory of operation. A delimiter is CRLF "--" boundary (RFC 2046 sec 5.1.1); the CRLF belongs to
the delimiter, not to the part before it. The splitter looks for "--" boundary at the start of a
line (after LF, so bare-LF bodies work, or at the very start of the body), then checks the rest of
the delimiter line: an optional "--" (close delimiter), transport padding (spaces/tabs, at most
`MAX_PADDING` bytes), then CRLF or LF. "--boundaryX" is not a delimiter (same rule as Python's
`email` feedparser). Bytes that cannot yet be ruled out as the start of a delimiter are held
back; everything else is handed out at once, so the buffer never exceeds about
len(boundary) + MAX_PADDING + 4 bytes in a part body, or `max_part_header_bytes` in a header block.

States: PREAMBLE -> (delimiter) HEADERS -> (blank line) BODY -> (delimiter) HEADERS ... ->
(close delimiter) EPILOGUE. After `max_parts` parts the splitter stops splitting (OVERFLOW): the
rest of the body becomes one last part, marked incomplete, so nothing is lost.

Anomalies: multipart_unterminated (no close delimiter), multipart_boundary_missing (no delimiter
at all; the caller turns the preamble into the whole-body object), multipart_part_cap,
multipart_header_too_long (the rest of the header block is treated as part body),
multipart_header_malformed (a header line without a colon), multipart_preamble_data and
multipart_epilogue_data (non-whitespace outside the parts: a place to hide data).

Gaps: bytes held back are flushed to the current part, the gap is attributed to it (`PartGap`),
and the scan resumes as if at a line start. If the gap swallowed a delimiter, the two parts merge
into one (incomplete) part: the splitter only resynchronises on the next delimiter it sees.
A gap inside a header block ends the block; the part starts with the headers seen so far.

Nested multipart: a part whose own Content-Type is multipart/* is not split here; it is passed
on as one opaque part (the MIME engine recurses into it later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sensor.anomaly import Anomaly
from sensor.content.objects import DEFAULT_CAPS, ContentCaps

MAX_PADDING = 128  # transport padding accepted after a boundary (RFC 2046 sec 5.1.1: LWSP)
MAX_BOUNDARY = 200  # RFC 2046 sec 5.1.1 allows 70; be lenient but bounded

_WS = b" \t"


@dataclass(slots=True)
class PreambleData:
    data: bytes


@dataclass(slots=True)
class PreambleGap:
    size: int


@dataclass(slots=True)
class PartStart:
    index: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class PartData:
    data: bytes


@dataclass(slots=True)
class PartGap:
    size: int


@dataclass(slots=True)
class PartEnd:
    complete: bool


MultipartEvent = PreambleData | PreambleGap | PartStart | PartData | PartGap | PartEnd


class _State(Enum):
    PREAMBLE = "preamble"
    HEADERS = "headers"
    BODY = "body"
    EPILOGUE = "epilogue"
    OVERFLOW = "overflow"


class _Tail(Enum):
    OPEN = "open"  # a delimiter: another part follows
    CLOSE = "close"  # the close delimiter
    NO = "no"  # not a delimiter
    WAIT = "wait"  # undecidable until more bytes arrive


class MultipartSplitter:
    """Splits one multipart body into parts; see the module docstring."""

    __slots__ = (
        "_buf",
        "_caps",
        "_dash",
        "_epilogue_content",
        "_header_bytes",
        "_headers",
        "_line_start",
        "_malformed_noted",
        "_preamble_content",
        "_state",
        "parts_started",
        "ts",
    )

    def __init__(self, boundary: bytes, caps: ContentCaps = DEFAULT_CAPS, ts: float = 0.0) -> None:
        if not boundary:
            raise ValueError("empty boundary")
        self._dash = b"--" + boundary
        self._caps = caps
        self.ts = ts
        self._buf = b""
        self._line_start = True  # the first delimiter may open the body (no CRLF before it)
        self._state = _State.PREAMBLE
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._malformed_noted = False
        self._preamble_content = 0
        self._epilogue_content = 0
        self.parts_started = 0

    # -- public API --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[MultipartEvent | Anomaly]:
        out: list[MultipartEvent | Anomaly] = []
        if data:
            self._buf = self._buf + data if self._buf else data
            self._process(out, final=False)
        return out

    def gap(self, size: int) -> list[MultipartEvent | Anomaly]:
        out: list[MultipartEvent | Anomaly] = []
        if size <= 0:
            return out
        state = self._state
        if state is _State.PREAMBLE:
            self._emit(out, self._buf)
            out.append(PreambleGap(size))
        elif state is _State.EPILOGUE:
            self._epilogue_content += len(self._buf.strip())
        else:
            if state is _State.HEADERS:
                self._open_body(out)
            self._emit(out, self._buf)
            out.append(PartGap(size))
        self._buf = b""
        self._line_start = True  # resynchronise on a delimiter right after the gap
        return out

    def end(self) -> list[MultipartEvent | Anomaly]:
        """The body is over (however it ended); closes the open part."""
        out: list[MultipartEvent | Anomaly] = []
        self._process(out, final=True)
        state = self._state
        if state is _State.PREAMBLE:
            self._emit(out, self._buf)
            out.append(self._anomaly("multipart_boundary_missing", "no delimiter in the body"))
        elif state is _State.EPILOGUE:
            self._epilogue_content += len(self._buf.strip())
            if self._epilogue_content:
                out.append(
                    self._anomaly(
                        "multipart_epilogue_data",
                        f"{self._epilogue_content} non-whitespace bytes after the close delimiter",
                    )
                )
        else:
            if state is _State.HEADERS:
                self._open_body(out)
            self._emit(out, self._buf)
            out.append(PartEnd(False))
            if state is not _State.OVERFLOW:
                out.append(self._anomaly("multipart_unterminated", "body ended inside a part"))
        self._buf = b""
        self._state = _State.EPILOGUE
        self._epilogue_content = 0
        return out

    # -- machinery ---------------------------------------------------------------------------

    def _anomaly(self, kind: str, detail: str) -> Anomaly:
        return Anomaly(kind, detail, self.ts)

    def _emit(self, out: list[MultipartEvent | Anomaly], data: bytes) -> None:
        if not data:
            return
        if self._state is _State.PREAMBLE:
            self._preamble_content += len(data.strip())
            out.append(PreambleData(data))
        else:
            out.append(PartData(data))

    def _process(self, out: list[MultipartEvent | Anomaly], final: bool) -> None:
        while self._buf:
            state = self._state
            if state is _State.PREAMBLE or state is _State.BODY:
                progressed = self._scan(out, final)
            elif state is _State.HEADERS:
                progressed = self._header_step(out, final)
            elif state is _State.OVERFLOW:
                out.append(PartData(self._buf))
                self._buf = b""
                return
            else:  # EPILOGUE: RFC 2046 sec 5.1.1 says to ignore it; only count what is there
                self._epilogue_content += len(self._buf.strip())
                self._buf = b""
                return
            if not progressed:
                return

    def _tail(self, buf: bytes, i: int, final: bool) -> tuple[_Tail, int]:
        """Classify what follows "--boundary" at buf[i:]; returns the verdict and the line end."""
        n = len(buf)
        close = False
        if i + 2 <= n and buf[i : i + 2] == b"--":
            close = True
            i += 2
        elif i + 1 == n and buf[i] == 0x2D:  # a lone "-": could become "--"
            return (_Tail.NO, 0) if final else (_Tail.WAIT, 0)
        verdict = _Tail.CLOSE if close else _Tail.OPEN
        k = i
        while k < n and buf[k] in _WS:
            k += 1
        if k - i > MAX_PADDING:
            return _Tail.NO, 0
        if k == n:
            return (verdict, n) if final else (_Tail.WAIT, 0)
        c = buf[k]
        if c == 0x0A:
            return verdict, k + 1
        if c == 0x0D:
            if k + 1 == n:
                return (verdict, n) if final else (_Tail.WAIT, 0)
            if buf[k + 1] == 0x0A:
                return verdict, k + 2
        return _Tail.NO, 0

    def _scan(self, out: list[MultipartEvent | Anomaly], final: bool) -> bool:
        """PREAMBLE/BODY: hand out data up to the next delimiter; True if one was consumed."""
        buf = self._buf
        dash = self._dash
        pos = 0
        while True:
            j = buf.find(dash, pos)
            if j < 0:
                break
            at_line = self._line_start if j == 0 else buf[j - 1] == 0x0A
            if not at_line:
                pos = j + 1
                continue
            verdict, end = self._tail(buf, j + len(dash), final)
            if verdict is _Tail.NO:
                pos = j + 1
                continue
            # The line break before "--boundary" is part of the delimiter (RFC 2046 sec 5.1.1).
            data_end = j
            if j > 0:
                data_end = j - 2 if j >= 2 and buf[j - 2] == 0x0D else j - 1
            if verdict is _Tail.WAIT:
                if data_end > 0:
                    self._emit(out, buf[:data_end])
                    self._buf = buf[data_end:]
                    self._line_start = False
                return False
            self._emit(out, buf[:data_end])
            self._buf = buf[end:]
            self._line_start = True
            if self._state is _State.PREAMBLE:
                if self._preamble_content:
                    out.append(
                        self._anomaly(
                            "multipart_preamble_data",
                            f"{self._preamble_content} non-whitespace bytes before the first part",
                        )
                    )
            else:
                out.append(PartEnd(True))
            if verdict is _Tail.CLOSE:
                self._state = _State.EPILOGUE
            else:
                self._start_part(out)
            return True
        if final:
            return False  # end() flushes what is left
        # Keep only what could still be the start of CRLF "--boundary".
        cut = len(buf) - (len(dash) + 1)
        if cut > 0:
            self._emit(out, buf[:cut])
            self._buf = buf[cut:]
            self._line_start = False
        return False

    def _start_part(self, out: list[MultipartEvent | Anomaly]) -> None:
        if self.parts_started >= self._caps.max_parts:
            out.append(
                self._anomaly(
                    "multipart_part_cap",
                    f"more than {self._caps.max_parts} parts; the rest is one incomplete part",
                )
            )
            out.append(PartStart(self.parts_started, []))
            self._state = _State.OVERFLOW
            return
        self._state = _State.HEADERS
        self._headers = []
        self._header_bytes = 0
        self._malformed_noted = False

    def _open_body(self, out: list[MultipartEvent | Anomaly]) -> None:
        out.append(PartStart(self.parts_started, self._headers))
        self.parts_started += 1
        self._headers = []
        self._state = _State.BODY
        self._line_start = True

    def _header_step(self, out: list[MultipartEvent | Anomaly], final: bool) -> bool:
        """HEADERS: consume one header line (RFC 2046 sec 5.1.1 / RFC 5322 sec 2.2 syntax)."""
        buf = self._buf
        cap = self._caps.max_part_header_bytes
        nl = buf.find(b"\n")
        line_len = nl + 1 if nl >= 0 else len(buf)
        if self._header_bytes + line_len > cap:
            out.append(
                self._anomaly(
                    "multipart_header_too_long",
                    f"part {self.parts_started} header block exceeds {cap} bytes; "
                    "rest treated as part body",
                )
            )
            self._open_body(out)
            self._line_start = False
            return True
        if nl < 0:
            return False  # wait for the end of the line (end() closes an unfinished block)
        line = buf[:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        self._header_bytes += line_len
        self._buf = buf[nl + 1 :]
        if not line:  # blank line: end of the header block
            self._open_body(out)
            return True
        if line.startswith(self._dash):
            # A delimiter where a header was expected: a part without a blank line.
            verdict, _ = self._tail(line + b"\n", len(self._dash), True)
            if verdict is _Tail.OPEN or verdict is _Tail.CLOSE:
                self._open_body(out)
                out.append(PartEnd(True))
                if verdict is _Tail.CLOSE:
                    self._state = _State.EPILOGUE
                else:
                    self._start_part(out)
                return True
        if line[0] in _WS and self._headers:  # obsolete line folding (RFC 5322 sec 2.2.3)
            name, value = self._headers[-1]
            self._headers[-1] = (name, value + b" " + line.strip())
            return True
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            if not self._malformed_noted:
                self._malformed_noted = True
                out.append(
                    self._anomaly(
                        "multipart_header_malformed",
                        f"part {self.parts_started} has a header line without a colon",
                    )
                )
            return True
        self._headers.append((name.strip(), value.strip()))
        return True
