"""HTTP/1.x parser for both directions of one TCP connection (protocols stage).

In: reassembled bytes of the client->server and server->client streams, gaps and eofs, as the
app layer hands them over (sans-IO, see base.py). Out (`HttpEvent`): events in wire order:
message heads, every body as an object (start/chunk/gap/end, base.py), one `HttpTransaction`
per request/response pair, `Tunnel` and `TunnelData` after an accepted CONNECT, `Opaque` after
an Upgrade, `Anomaly`.

Theory of operation
-------------------
Each direction has a `_Reader`: a byte buffer plus a state. Only header blocks, chunk-size lines
and trailers are ever buffered (each with a cap); body bytes are handed out as soon as they
arrive, with transfer framing (chunked) removed and content codings left alone. A reader walks:

    HEAD --head parsed--> no body ------------------------------------------> HEAD
         \\-------------> BODY_LENGTH (Content-Length) --------- done -------> HEAD
         \\-------------> CHUNK_SIZE <-> CHUNK_DATA -> CHUNK_DATA_END
                          CHUNK_SIZE "0" -> CHUNK_TRAILER -------- done -------> HEAD
         \\-------------> BODY_UNTIL_CLOSE (responses only) ------ eof -------> CLOSED
    request side only:  CONNECT or Upgrade request done -> PAUSED (bytes held, not parsed) until
                        its response: 2xx to CONNECT / 101 -> TUNNEL, anything else -> HEAD
    any state -- eof --> CLOSED;  TUNNEL hands every byte over as TunnelData, unparsed.

Pairing (RFC 9112 section 9.3): requests are queued in `_pending` in arrival order; each final
(non-1xx) response takes the oldest one. A response with no queued request (mid-stream or
half-duplex capture) gets a fresh txid with request=None. Interim 1xx responses are recorded on
the oldest queued request (`interim_statuses`) and produce no head event. A transaction is
reported once both its request and its response are done (normally: when the response ends),
or when the server side ends (eof) for requests never answered.

Body length follows RFC 9112 section 6.3, see `_request_framing`/`_response_framing`, read
the way lenient receivers (browsers) read it: chunk-size lines with junk after the digits or
ended by a CR alone, junk around coding tokens, any version and odd status codes.

Readings. Where receivers could frame a body in more than one way, each plausible reading is
an object of its own, named by `reading` in the object events (None for the main one), and
noted with `http_ambiguous_framing`:
- "content-length": Transfer-Encoding chunked next to a Content-Length: the body is read
  de-chunked (RFC 9112 6.3 rule 3) and as the first Content-Length raw bytes;
- "raw": a chunked body whose head a receiver could read otherwise (HTTP/1.0 or an odd version
  or status, junk around the coding token, chunked not last, several or folded
  Transfer-Encoding fields, a bare CR, a space before a colon) or whose first chunk-size line
  has junk: also kept as the raw bytes. If the chunked reading then breaks, the raw one goes on
  up to the close;
- "declared": the body a 1xx, 204 or 304 response (or the answer to a HEAD) declares with
  Content-Length or chunked and then sends after all, where the next status line should be;
- "unframed": other bytes where a status line should be (the body of a 204/304/1xx/HEAD answer that
  had one after all, a `SIP/2.0` line, garbage, an HTTP/0.9 reply): kept as they are up to
  where a status line starts.
A body whose first chunk-size line is no chunk size at all is not chunked (`http_not_chunked`):
it is read by Content-Length or up to the close, one reading.

Two failure channels (STYLE.md habit 6): odd but survivable input is an `Anomaly` in the event
list; input the parser cannot go on with raises `HttpViolation` (a `ProtocolViolation`) whose
`events` attribute carries the events produced earlier in the same call, e.g. the
`ObjectEnd(complete=False)` that precedes `http_gap_in_chunked`.

Anomaly kinds (stable; "violation" = raised as ProtocolViolation.reason, parser detaches)
-----------------------------------------------------------------------------------------
| kind                              | channel   | meaning                                          |
|-----------------------------------|-----------|--------------------------------------------------|
| http_bad_request_line             | violation | not "METHOD SP target SP HTTP/x.y" (incl. 0.9)   |
| http_bad_version                  | violation | request version other than HTTP/1.x              |
| http_start_line_too_long          | violation | start line over HttpCaps.max_start_line          |
| http_header_too_long              | violation | header block/trailers over max_header_bytes      |
| http_too_many_headers             | violation | more than max_headers fields                     |
| http_gap_in_headers               | violation | bytes missing where a head had to be             |
| http_gap_in_chunked               | violation | gap not inside known chunk data                  |
| http_bad_chunk_size               | both      | chunk-size line is not hex (after the first one; |
|                                   |           | with a raw reading that one goes on: anomaly)    |
| http_chunk_line_too_long          | both      | chunk-size line over max_chunk_line (as above)   |
| http_not_chunked                  | anomaly   | the first chunk-size line is none: the body is   |
|                                   |           | read by Content-Length or up to the close        |
| http_bad_transfer_encoding        | anomaly   | request Transfer-Encoding without chunked: read  |
|                                   |           | by Content-Length, else up to the close          |
| http_odd_status_line              | anomaly   | status line read leniently (version, code)       |
| http_ambiguous_framing            | anomaly   | a second reading of a body is kept (see below)   |
| http_bare_cr                      | anomaly   | a CR alone inside a header line: split there     |
| http_bad_content_length           | both      | Content-Length not a number (request: violation; |
|                                   |           | response: anomaly, read until close)             |
| http_te_and_cl                    | anomaly   | Transfer-Encoding and Content-Length; TE wins    |
| http_conflicting_content_length   | anomaly   | several different Content-Length; first is used  |
| http_te_not_chunked               | anomaly   | response TE does not end in chunked: until close |
| http_obs_fold                     | anomaly   | obsolete line folding, joined with one space     |
| http_bad_header_line              | anomaly   | header line without "name:", skipped             |
| http_space_before_colon           | anomaly   | whitespace between field name and colon          |
| http_space_in_uri                 | anomaly   | request target contains whitespace, joined       |
| http_missing_chunk_crlf           | anomaly   | chunk data not followed by CRLF/LF               |
| http_chunk_size_junk              | anomaly   | chunk-size digits followed by junk: size read    |
| http_coding_junk                  | anomaly   | NUL, VT, FF, NBSP, BOM around a TE/CE token      |
| http_chunk_blank_line             | anomaly   | blank line where a chunk size should be: skipped |
| http_too_many_pending             | anomaly   | over max_pending_transactions; oldest reported   |
|                                   |           | unanswered and dropped                           |
| http_truncated_head               | anomaly   | eof with a partial start line/header block       |
| http_unanswered_upgrade           | anomaly   | data held after CONNECT/Upgrade exceeded         |
|                                   |           | max_header_bytes: request side stops parsing     |
"""

from __future__ import annotations

import enum
import ipaddress
import posixpath
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import unquote_to_bytes, urlsplit

from sensor.anomaly import Anomaly
from sensor.protocols.base import (
    Direction,
    NamesServer,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    Opaque,
    ProtocolEvent,
    ProtocolViolation,
    Tunnel,
    TunnelData,
)

__all__ = [
    "HttpCaps",
    "HttpEvent",
    "HttpParser",
    "HttpRequestHead",
    "HttpResponseHead",
    "HttpTransaction",
    "HttpViolation",
    "detect",
    "host_name",
    "uri_basename",
]

Headers = list[tuple[bytes, bytes]]

# --- events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class HttpRequestHead(NamesServer):
    txid: int
    method: bytes
    uri: bytes
    version: bytes
    headers: Headers  # names lowercased, values stripped of surrounding whitespace
    ts: float

    name_source: ClassVar[str] = "http"

    def server_name(self) -> str | None:
        """The name in the Host header (RFC 9110 section 7.2), without port; None for an IP
        literal (it names nothing the address does not) or something that is not a host name."""
        for key, value in self.headers:
            if key == b"host":
                return host_name(value)
        return None

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        """The request's URL (absolute form as sent to a proxy, else Host plus path); a URL
        lookup also tries its host as a DNS name."""
        target = self.uri[:_MAX_INDICATOR_URI].decode("ascii", errors="replace")
        if "://" in target[:16]:
            return (("url", target, "url"),)
        host = self.server_name()
        return (("url", f"{host}{target}", "url"),) if host else ()


@dataclass(slots=True)
class HttpResponseHead(ProtocolEvent):
    txid: int
    status: int
    reason: bytes
    version: bytes
    headers: Headers
    ts: float


@dataclass(slots=True)
class HttpTransaction(ProtocolEvent):
    txid: int
    request: HttpRequestHead | None
    response: HttpResponseHead | None
    request_body_len: int
    response_body_len: int
    request_missing: int
    response_missing: int
    interim_statuses: list[int]
    ts: float
    tunnel: bool = False  # reported after the connection was upgraded to another protocol


# Everything HttpParser returns. Bodies are objects (ObjectStart/Chunk/Gap/End, proto "http",
# the request head as `about`); CONNECT accepted is a Tunnel, an Upgrade is Opaque.
HttpEvent = (
    HttpRequestHead
    | HttpResponseHead
    | HttpTransaction
    | ObjectStart
    | ObjectChunk
    | ObjectGap
    | ObjectEnd
    | Tunnel
    | TunnelData
    | Opaque
    | Anomaly
)


@dataclass(frozen=True, slots=True)
class HttpCaps:
    max_header_bytes: int = 65536
    max_headers: int = 256
    max_start_line: int = 16384
    max_chunk_line: int = 4096
    max_pending_transactions: int = 512


class HttpViolation(ProtocolViolation):
    """The HTTP parser's violation (carries `events`, see ProtocolViolation)."""


# --- constants ----------------------------------------------------------------------------------

_DEFAULT_CAPS = HttpCaps()
_MAX_METHOD = 32  # longest request method accepted (WebDAV's are ~16)
_MAX_CHUNK_HEX = 16  # hex digits in a chunk size: 64 bits is plenty
_MAX_INDICATOR_URI = 2048  # characters of a request target looked up as a canary URL
_CR, _LF = 0x0D, 0x0A
_WS = b" \t"
# Around list tokens (Transfer-Encoding, Content-Encoding), what lenient receivers ignore.
_TOKEN_JUNK = b" \t\r\x00\x0b\x0c\xa0:"
_BOM = b"\xef\xbb\xbf"
_LINE_WS = b" \t\r\x0b\x0c"  # what bytes.split() treats as a separator on one line
# RFC 9110 section 5.6.2 tchar
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_HTTP1_VERSION = re.compile(rb"HTTP/1\.[0-9]")
# What a lenient receiver takes for a status line's version: any case, any digits.
_ANY_VERSION = re.compile(rb"[Hh][Tt][Tt][Pp]/[0-9]{1,3}(?:\.[0-9]{1,3})?")
# Where a response may start again inside bytes outside any framing (see _step_unframed).
_STATUS_START = re.compile(rb"[Hh][Tt][Tt][Pp]/[0-9]{1,3}(?:\.[0-9]{1,3})?[ \t]+[0-9]")
_STATUS_TAIL = 24  # unframed bytes held back: a status line may start in them
_NO_BODY_STATUS = (204, 304)


def _is_token(value: bytes) -> bool:
    return bool(value) and not value.translate(None, _TCHAR)


class _State(enum.Enum):
    HEAD = "head"
    BODY_LENGTH = "body_length"
    CHUNK_SIZE = "chunk_size"
    CHUNK_DATA = "chunk_data"
    CHUNK_DATA_END = "chunk_data_end"
    CHUNK_TRAILER = "chunk_trailer"
    BODY_UNTIL_CLOSE = "body_until_close"
    UNFRAMED = "unframed"  # responses: bytes where a status line should be
    PAUSED = "paused"
    TUNNEL = "tunnel"
    CLOSED = "closed"


# Body states: bytes consumed in them belong to the message body (and to its second reading).
_BODY_STATES = frozenset(
    {
        _State.BODY_LENGTH,
        _State.CHUNK_SIZE,
        _State.CHUNK_DATA,
        _State.CHUNK_DATA_END,
        _State.CHUNK_TRAILER,
        _State.BODY_UNTIL_CLOSE,
    }
)


class _Framing(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until_close"
    TUNNEL = "tunnel"


@dataclass(slots=True)
class _Tx:
    txid: int
    method: bytes = b"GET"  # assumed for responses whose request was not seen
    request: HttpRequestHead | None = None
    response: HttpResponseHead | None = None
    request_body_len: int = 0
    response_body_len: int = 0
    request_missing: int = 0
    response_missing: int = 0
    interim: list[int] = field(default_factory=list)
    req_done: bool = False
    resp_done: bool = False
    reported: bool = False


@dataclass(slots=True)
class _Second:
    """A second reading of one body: its raw bytes as a receiver that does not remove the
    chunked framing sees them ("raw"), or only as many as Content-Length says
    ("content-length"). Its ObjectStart is sent with its first bytes."""

    start: ObjectStart
    limit: int | None  # bytes still to take (content-length), None: as long as the body
    started: bool = False


@dataclass(slots=True)
class _Reader:
    """Per-direction state: what we are waiting for and the bytes not yet consumed."""

    direction: Direction
    state: _State = _State.HEAD
    buf: bytearray = field(default_factory=bytearray)
    scan: int = 0  # resume offset (relative to the unconsumed start) for line searches
    line_done: bool = False  # HEAD: start line already found and validated
    remaining: int = 0  # BODY_LENGTH / CHUNK_DATA: body bytes still expected
    tx: _Tx | None = None  # the message being read (or the CONNECT/Upgrade we wait on)
    lost: bool = False  # PAUSED: a gap hit the held bytes
    reading: str | None = None  # the object being read: None for a body, "unframed"
    last_tx: _Tx | None = None  # the latest message head read on this side
    odd_head: str = ""  # why the latest head could be framed another way ("" when it cannot)
    chunks: int = 0  # chunk-size lines read in this body
    fallback: int | None = None  # chunked body: Content-Length to use if it is not chunked
    ambiguity: str = ""  # chunked body: why a receiver could frame it otherwise
    body: ObjectStart | None = None  # the start of the body being read
    second: _Second | None = None  # the other reading of an ambiguous body
    raw_only: bool = False  # the chunked reading failed: only the second reading goes on
    # A head that may not have a body (1xx, 204, 304, HEAD) but declares one: how to read it
    # if bytes that are no status line follow (see _start_unframed).
    declared: tuple[_Tx, _Framing, int, Headers] | None = None

    def reset_line(self) -> None:
        self.scan = 0
        self.line_done = False


def _find_blank_line(buf: bytearray, start: int) -> tuple[int, int]:
    """Find the end of a field block: an LF followed by LF or CRLF (bare LF tolerated).

    `start` is the index of an LF (or where to look for one). Returns (end, resume): `end` is
    the index just past the blank line or -1; `resume` is where the next search should start.
    """
    i = start
    size = len(buf)
    while True:
        nl = buf.find(b"\n", i)
        if nl < 0:
            return -1, size
        j = nl + 1
        if j >= size:
            return -1, nl
        if buf[j] == _LF:
            return j + 1, j + 1
        if buf[j] == _CR:
            if j + 1 >= size:
                return -1, nl
            if buf[j + 1] == _LF:
                return j + 2, j + 2
        i = j


def _split_lines(block: bytes) -> list[bytes]:
    lines = block.split(b"\n")
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _list_tokens(headers: Headers, name: bytes) -> list[str]:
    """Comma-separated list header elements, lowercased, parameters dropped (RFC 9110 5.6.1),
    of every header of that name in order. Junk around a token (NUL, vertical tab, form feed,
    CR, no-break space, a byte-order mark) is dropped as lenient receivers drop it:
    `_has_token_junk` says whether there was any."""
    out: list[str] = []
    for hname, value in headers:
        if hname != name:
            continue
        for element in value.split(b","):
            token = _strip_junk(element.split(b";", 1)[0]).lower()
            if token:
                out.append(token.decode("ascii", errors="replace"))
    return out


def _strip_junk(token: bytes) -> bytes:
    token = token.strip(_TOKEN_JUNK)
    while token.startswith(_BOM) or token.endswith(_BOM):
        token = token.removeprefix(_BOM).removesuffix(_BOM).strip(_TOKEN_JUNK)
    return token


def _has_token_junk(headers: Headers, name: bytes) -> bool:
    """Whether a list header's tokens carried more than spaces and tabs around them."""
    for hname, value in headers:
        if hname == name:
            for element in value.split(b","):
                token = element.split(b";", 1)[0]
                if token.strip(_WS) != _strip_junk(token):
                    return True
    return False


def _has_header(headers: Headers, name: bytes) -> bool:
    return any(hname == name for hname, _ in headers)


_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?")


def host_name(value: bytes) -> str | None:
    """The name in an HTTP Host header value (RFC 9110 section 7.2), without port; None for an
    IP literal (it names nothing the address does not) or for something that is not a name."""
    text = value.strip().decode("ascii", errors="replace").lower()
    if text.startswith("["):  # IPv6 literal, with or without a port
        return None
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if not host or len(host) > 253 or not _HOSTNAME.fullmatch(host):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.rstrip(".")
    return None


def uri_basename(uri: bytes) -> str | None:
    """The last path segment of a request URI, the file name hint of its bodies (as Suricata
    does)."""
    try:
        path = urlsplit(uri.decode("latin-1")).path
    except ValueError:
        return None
    name = posixpath.basename(unquote_to_bytes(path).decode("utf-8", errors="replace"))
    return name or None


# --- the parser ---------------------------------------------------------------------------------


class HttpParser:
    """HTTP/1.x over one TCP connection. One instance per flow; see the module docstring."""

    name = "http"

    def __init__(self, caps: HttpCaps = _DEFAULT_CAPS) -> None:
        self.caps = caps
        self._readers = (_Reader(Direction.TO_SERVER), _Reader(Direction.TO_CLIENT))
        self._pending: deque[_Tx] = deque()  # requests (and orphan interims) awaiting a final
        self._open: dict[int, _Tx] = {}  # every transaction not yet reported, by txid
        self._next_txid = 1
        self._dead = False
        self._upgraded = False  # an Upgrade was accepted: later transactions say tunnel

    # --- public API ----------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        reader = self._readers[direction]
        if self._dead or not data or reader.state is _State.CLOSED:
            return out
        if reader.state is _State.TUNNEL:
            out.append(TunnelData(direction, bytes(data)))
            return out
        reader.buf += data
        if reader.state is _State.PAUSED:
            self._check_paused(reader, ts, out)
            return out
        self._guard(out, self._pump, reader, ts, out)
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        reader = self._readers[direction]
        if self._dead or size <= 0 or reader.state in (_State.TUNNEL, _State.CLOSED):
            return out
        self._guard(out, self._gap, reader, size, ts, out)
        return out

    def eof(self, direction: Direction, ts: float) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        reader = self._readers[direction]
        if self._dead or reader.state is _State.CLOSED:
            return out
        self._guard(out, self._eof, reader, ts, out)
        return out

    # --- plumbing ------------------------------------------------------------------------------

    def _guard(self, out: list[HttpEvent], func: Callable[..., None], *args: object) -> None:
        """Run a step; on a violation attach the events so far and stop parsing for good."""
        try:
            func(*args)
        except HttpViolation as exc:
            self._dead = True
            exc.events = out
            raise

    def _pump(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        """Consume as much of r.buf as the current state allows."""
        pos = 0
        try:
            while True:
                before = (pos, r.state)
                state = r.state
                if state is _State.HEAD:
                    pos = self._step_head(r, pos, ts, out)
                elif state is _State.UNFRAMED:
                    pos = self._step_unframed(r, pos, ts, out)
                elif state is _State.BODY_LENGTH or state is _State.CHUNK_DATA:
                    pos = self._step_counted(r, pos, ts, out)
                elif state is _State.BODY_UNTIL_CLOSE:
                    pos = self._emit_data(r, pos, len(r.buf) - pos, out)
                elif state is _State.CHUNK_SIZE:
                    pos = self._step_chunk_size(r, pos, ts, out)
                elif state is _State.CHUNK_DATA_END:
                    pos = self._step_chunk_data_end(r, pos, ts, out)
                elif state is _State.CHUNK_TRAILER:
                    pos = self._step_trailer(r, pos, ts, out)
                elif state is _State.PAUSED:
                    break  # the rest is held until the response decides what it is
                else:  # TUNNEL / CLOSED: nothing more to parse
                    if state is _State.TUNNEL and pos < len(r.buf):  # after the answer's head
                        out.append(TunnelData(r.direction, bytes(r.buf[pos:])))
                    pos = len(r.buf)
                    break
                if r.second is not None:
                    if state in _BODY_STATES and pos > before[0]:
                        self._second_data(r, bytes(r.buf[before[0] : pos]), ts, out)
                    if r.second is not None and r.state not in _BODY_STATES:
                        self._end_second(r, ts, out)
                if (pos, r.state) == before:
                    break
        finally:
            del r.buf[:pos]
        if r.state is _State.PAUSED:
            self._check_paused(r, ts, out)

    def _check_paused(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        if len(r.buf) > self.caps.max_header_bytes:
            out.append(Anomaly("http_unanswered_upgrade", "client data after CONNECT/Upgrade", ts))
            r.buf.clear()
            r.state = _State.TUNNEL  # unknown protocol from here on: only count

    # --- heads ---------------------------------------------------------------------------------

    def _step_head(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        buf = r.buf
        response = r.direction is Direction.TO_CLIENT
        if not r.line_done:
            # RFC 9112 section 2.2: ignore empty lines before a start line (and, as browsers
            # do, white space before a status line).
            skip = b" \t\r\n" if response else b"\r\n"
            while pos < len(buf) and buf[pos] in skip:
                pos += 1
            if response and not b"HTTP/".startswith(bytes(buf[pos : pos + 5]).upper()):
                self._start_unframed(r, ts, out)
                return pos
            nl = buf.find(b"\n", pos + r.scan)
            if nl < 0:
                r.scan = len(buf) - pos
                if r.scan > self.caps.max_start_line:
                    raise HttpViolation("http_start_line_too_long", f"over {r.scan} bytes")
                if not response:
                    _precheck_request(bytes(buf[pos : pos + _MAX_METHOD + 1]))
                return pos
            line = bytes(buf[pos:nl])
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.caps.max_start_line:
                raise HttpViolation("http_start_line_too_long", f"{len(line)} bytes")
            if not response:
                _parse_request_line(line)
            elif not _ANY_VERSION.match(line):
                self._start_unframed(r, ts, out)
                return pos
            r.line_done = True
            r.scan = nl - pos
        end, resume = _find_blank_line(buf, pos + r.scan)
        limit = self.caps.max_header_bytes
        if end < 0:
            r.scan = resume - pos
            if len(buf) - pos > limit:
                raise HttpViolation("http_header_too_long", f"over {limit} bytes")
            return pos
        if end - pos > limit:
            raise HttpViolation("http_header_too_long", f"{end - pos} bytes")
        lines = _split_lines(bytes(buf[pos:end]))
        r.reset_line()
        seen = len(out)
        first, cr, rest = lines[0].rstrip(b"\r").partition(b"\r")
        if cr and response:  # a CR alone inside a status line: what follows is field lines
            out.append(Anomaly("http_bare_cr", "in the start line", ts))
            lines = [first, *rest.split(b"\r"), *lines[1:]]
        headers = self._parse_fields(lines[1:], ts, out)
        r.odd_head = _odd_head(headers, out[seen:])
        if r.direction is Direction.TO_SERVER:
            self._on_request_head(r, lines[0], headers, ts, out)
        else:
            self._on_response_head(r, lines[0], headers, ts, out)
        return end

    # --- bytes outside any response framing -----------------------------------------------------

    def _start_unframed(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        """Where a status line should be there is something else: the body of a 204/304/1xx
        that had one after all, a `SIP/2.0` line, garbage, an HTTP/0.9 reply. A browser may
        show those bytes or skip them to the next status line; both are kept: the bytes as an
        object of their own (reading "unframed") up to where a status line starts."""
        if r.declared is not None:  # a 204 (1xx, 304, HEAD answer) with a body after all
            tx, framing, length, headers = r.declared
            r.declared = None
            why = f"a body after a {tx.response.status if tx.response else 'interim'} response"
            out.append(Anomaly("http_ambiguous_framing", why, ts))
            r.tx, r.reading = tx, "declared"
            r.fallback, r.ambiguity = None, ""
            self._start_body(r, tx, framing, length, headers, ts, out)
            return
        if self._pending:
            tx = self._pending[0]
        elif r.last_tx is not None:
            tx = r.last_tx  # e.g. the 204 whose body this is
        else:
            tx = _Tx(txid=self._new_txid())  # nothing to belong to
        r.tx, r.reading, r.state = tx, "unframed", _State.UNFRAMED
        request = tx.request
        name = uri_basename(request.uri) if request is not None else None
        out.append(Anomaly("http_ambiguous_framing", "bytes outside any response framing", ts))
        out.append(
            ObjectStart(
                tx.txid, r.direction, ts, "http", name=name, about=request, reading="unframed"
            )
        )

    def _step_unframed(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        found = _STATUS_START.search(r.buf, pos + 1)
        if found is None:  # hold back a tail a status line may start in
            return self._emit_data(r, pos, len(r.buf) - _STATUS_TAIL - pos, out)
        pos = self._emit_data(r, pos, found.start() - pos, out)
        self._end_unframed(r, True, ts, out)
        return pos

    def _end_unframed(self, r: _Reader, complete: bool, ts: float, out: list[HttpEvent]) -> None:
        if r.tx is not None:
            out.append(ObjectEnd(r.tx.txid, r.direction, complete, ts, "unframed"))
        r.tx, r.reading, r.state = None, None, _State.HEAD
        r.reset_line()

    # --- header fields -------------------------------------------------------------------------

    def _parse_fields(self, lines: list[bytes], ts: float, out: list[HttpEvent]) -> Headers:
        headers: Headers = []
        for line in _bare_cr_lines(lines, ts, out):
            if not line:
                break  # the blank line that ends the block
            if line[0] in b" \t":
                # RFC 9112 section 5.2: obs-fold, replace with a space.
                if headers:
                    name, value = headers[-1]
                    headers[-1] = (name, (value + b" " + line.strip(_WS)).strip(_WS))
                    out.append(Anomaly("http_obs_fold", name.decode("latin-1"), ts))
                else:
                    out.append(Anomaly("http_bad_header_line", "continuation line first", ts))
                continue
            colon = line.find(b":")
            name = line[:colon] if colon > 0 else b""
            if name.rstrip(_WS) != name:
                out.append(Anomaly("http_space_before_colon", "", ts))
                name = name.rstrip(_WS)
            if not _is_token(name):
                out.append(Anomaly("http_bad_header_line", "no field name", ts))
                continue
            headers.append((name.lower(), line[colon + 1 :].strip(_WS)))
            if len(headers) > self.caps.max_headers:
                raise HttpViolation("http_too_many_headers", f"over {self.caps.max_headers}")
        return headers

    def _on_request_head(
        self, r: _Reader, line: bytes, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> None:
        method, uri, version, spaced = _parse_request_line(line)
        if spaced:
            out.append(Anomaly("http_space_in_uri", "", ts))
        if version != b"HTTP/1.1":
            r.odd_head = r.odd_head or version.decode("latin-1")
        tx = _Tx(txid=self._new_txid(), method=method.upper())
        tx.request = HttpRequestHead(tx.txid, method, uri, version, headers, ts)
        out.append(tx.request)
        self._open[tx.txid] = tx
        self._pending.append(tx)
        if len(self._pending) > self.caps.max_pending_transactions:
            dropped = self._pending.popleft()
            out.append(Anomaly("http_too_many_pending", f"txid {dropped.txid} dropped", ts))
            dropped.resp_done = True
            self._maybe_report(dropped, ts, out)
        r.tx = r.last_tx = tx
        framing, length = self._request_framing(r, headers, ts, out)
        self._start_body(r, tx, framing, length, headers, ts, out)

    def _on_response_head(
        self, r: _Reader, line: bytes, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> None:
        version, status, reason, odd = _parse_status_line(line)
        r.declared = None
        if odd:
            out.append(Anomaly("http_odd_status_line", odd, ts))
        if version != b"HTTP/1.1" or odd:
            r.odd_head = r.odd_head or odd or version.decode("latin-1")
        if 100 <= status < 200 and status != 101:
            # Interim response (RFC 9110 section 15.2): belongs to the oldest waiting request.
            if not self._pending:
                orphan = self._orphan_tx()
                self._pending.append(orphan)
            self._pending[0].interim.append(status)
            r.declared = _declared(self._pending[0], headers)
            return
        tx = self._pending.popleft() if self._pending else self._orphan_tx()
        tx.response = HttpResponseHead(tx.txid, status, reason, version, headers, ts)
        out.append(tx.response)
        r.tx = r.last_tx = tx
        framing, length = self._response_framing(r, tx, headers, ts, out)
        if framing is _Framing.TUNNEL:
            self._start_tunnel(tx, ts, out)
            return
        self._start_body(r, tx, framing, length, headers, ts, out)
        req = self._readers[Direction.TO_SERVER]
        if req.state is _State.PAUSED and req.tx is tx:
            # The CONNECT/Upgrade was refused: what the client sent next is HTTP again.
            if req.lost:
                raise HttpViolation("http_gap_in_headers", "gap after refused upgrade")
            req.state = _State.HEAD
            req.tx = None
            self._pump(req, ts, out)

    def _start_tunnel(self, tx: _Tx, ts: float, out: list[HttpEvent]) -> None:
        client = self._readers[Direction.TO_SERVER]
        if tx.request is not None and tx.method == b"CONNECT":
            held = bytes(client.buf) if client.state is _State.PAUSED and not client.lost else b""
            out.append(Tunnel(ts, held))
        else:  # an Upgrade (101, or a 2xx to a request we did not see): only counted
            self._upgraded = True
            out.append(Opaque("upgrade", ts))
        for reader in self._readers:
            if reader.state is not _State.CLOSED:
                reader.state = _State.TUNNEL
            if reader is client:
                reader.buf.clear()  # held: handed over in the Tunnel
            # The answer's reader keeps its buffer: what follows the head in it is handed over
            # as TunnelData when the pump reaches the TUNNEL state.
            if reader.tx is not None:
                reader.tx.req_done = True
                reader.tx = None
        tx.resp_done = True
        self._maybe_report(tx, ts, out)

    # --- framing (RFC 9112 section 6.3) --------------------------------------------------------

    def _request_framing(
        self, r: _Reader, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> tuple[_Framing, int]:
        if _note_junk(headers, ts, out):
            r.odd_head = r.odd_head or "junk in a coding header"
        te = _list_tokens(headers, b"transfer-encoding")
        if te:
            if "chunked" in te:
                return self._chunked_framing(r, te, headers, ts, out)
            # Rule 4 makes this an error; a server that ignores the coding it does not know
            # reads Content-Length, or (without one) the bytes up to the close.
            out.append(Anomaly("http_bad_transfer_encoding", ",".join(te)[:64], ts))
            declared = self._content_length(headers, ts, out)
            return (_Framing.LENGTH, declared) if declared else (_Framing.UNTIL_CLOSE, 0)
        length = self._content_length(headers, ts, out)
        if length is None:
            raise HttpViolation("http_bad_content_length", "request")
        if length > 0:
            return _Framing.LENGTH, length
        return _Framing.NONE, 0  # rule 7: no CL, no TE -> no body

    def _response_framing(
        self, r: _Reader, tx: _Tx, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> tuple[_Framing, int]:
        status = tx.response.status if tx.response else 0
        if status == 101 or (tx.method == b"CONNECT" and 200 <= status < 300):
            return _Framing.TUNNEL, 0  # rules 1-2
        if tx.method == b"HEAD" or status in _NO_BODY_STATUS:
            # Rule 1. Bytes that follow anyway are not a status line: _start_unframed reads
            # them as the body the head declares, or keeps them as they are.
            r.declared = _declared(tx, headers)
            return _Framing.NONE, 0
        if _note_junk(headers, ts, out):
            r.odd_head = r.odd_head or "junk in a coding header"
        te = _list_tokens(headers, b"transfer-encoding")
        if te:
            if "chunked" in te:
                return self._chunked_framing(r, te, headers, ts, out)
            out.append(Anomaly("http_te_not_chunked", ",".join(te)[:64], ts))
            return _Framing.UNTIL_CLOSE, 0
        if _has_header(headers, b"content-length"):
            length = self._content_length(headers, ts, out)
            if length is None:
                out.append(Anomaly("http_bad_content_length", "response: read until close", ts))
                return _Framing.UNTIL_CLOSE, 0
            return (_Framing.LENGTH, length) if length > 0 else (_Framing.NONE, 0)
        return _Framing.UNTIL_CLOSE, 0  # rule 8

    def _chunked_framing(
        self, r: _Reader, te: list[str], headers: Headers, ts: float, out: list[HttpEvent]
    ) -> tuple[_Framing, int]:
        """A Transfer-Encoding naming chunked: read chunked (RFC 9112 6.3 rules 3-4). Where a
        receiver could frame the body otherwise, a second reading follows it (_start_body):
        Content-Length next to it ("content-length"), or anything odd about the head or the
        coding list ("raw": the body as one that ignores the chunked coding reads it)."""
        r.fallback = None
        r.ambiguity = ""
        if _has_header(headers, b"content-length"):
            out.append(Anomaly("http_te_and_cl", r.direction.name.lower(), ts))
            length = self._content_length(headers, ts, out)
            r.fallback = length
            if length:
                r.ambiguity = "Transfer-Encoding and Content-Length"
                return _Framing.CHUNKED, 0
        if te[-1] != "chunked":
            out.append(Anomaly("http_te_not_chunked", ",".join(te)[:64], ts))
            r.ambiguity = "chunked is not the last transfer coding"
        elif len([name for name, _ in headers if name == b"transfer-encoding"]) > 1:
            r.ambiguity = "several Transfer-Encoding fields"
        else:
            r.ambiguity = r.odd_head
        return _Framing.CHUNKED, 0

    @staticmethod
    def _content_length(headers: Headers, ts: float, out: list[HttpEvent]) -> int | None:
        """0 when absent, None when unusable; "5, 5" and repeated equal values are fine."""
        values: list[bytes] = []
        for name, value in headers:
            if name == b"content-length":
                values.extend(v.strip(_WS) for v in value.split(b","))
        if not values:
            return 0
        if not all(v.isdigit() for v in values):
            return None
        numbers = [int(v) for v in values]
        if len(set(numbers)) > 1:
            out.append(Anomaly("http_conflicting_content_length", "using the first", ts))
        return numbers[0]

    # --- bodies --------------------------------------------------------------------------------

    def _start_body(
        self,
        r: _Reader,
        tx: _Tx,
        framing: _Framing,
        length: int,
        headers: Headers,
        ts: float,
        out: list[HttpEvent],
    ) -> None:
        if framing is _Framing.NONE:
            self._message_done(r, tx, ts, out)
            return
        request = tx.request
        start = ObjectStart(
            tx.txid,
            r.direction,
            ts,
            "http",
            headers,
            _encodings(headers),
            uri_basename(request.uri) if request is not None else None,
            about=request,
            reading=r.reading,
        )
        out.append(start)
        r.body = start
        if framing is _Framing.LENGTH:
            r.state = _State.BODY_LENGTH
            r.remaining = length
        elif framing is _Framing.CHUNKED:
            r.state = _State.CHUNK_SIZE
            r.chunks = 0
            r.reset_line()
            if r.reading is not None:
                pass  # already a reading of its own: no third one
            elif r.fallback:
                self._start_second(r, start, "content-length", r.fallback, r.ambiguity, ts, out)
            elif r.ambiguity:
                self._start_second(r, start, "raw", None, r.ambiguity, ts, out)
        else:
            r.state = _State.BODY_UNTIL_CLOSE

    # --- the second reading of an ambiguous body -----------------------------------------------

    @staticmethod
    def _start_second(
        r: _Reader,
        start: ObjectStart,
        reading: str,
        limit: int | None,
        why: str,
        ts: float,
        out: list[HttpEvent],
    ) -> None:
        # Same content codings: where the bytes are not what they say (chunk-size lines inside
        # gzip data), the decoder keeps them as they are.
        second = ObjectStart(
            start.txid,
            start.direction,
            ts,
            start.proto,
            start.headers,
            start.encodings,
            start.name,
            about=start.about,
            reading=reading,
        )
        r.second = _Second(second, limit)
        out.append(Anomaly("http_ambiguous_framing", f"{why}: {reading} reading kept", ts))

    def _second_data(self, r: _Reader, data: bytes, ts: float, out: list[HttpEvent]) -> None:
        second = r.second
        if second is None:
            return
        if second.limit is not None:
            data = data[: second.limit]
            second.limit -= len(data)
        if data:
            start = second.start
            if not second.started:
                second.started = True
                out.append(start)
            out.append(ObjectChunk(start.txid, start.direction, data, start.reading))
        if second.limit == 0:
            self._end_second(r, ts, out)

    @staticmethod
    def _second_gap(r: _Reader, size: int) -> list[HttpEvent]:
        second = r.second
        if second is None or size <= 0:
            return []
        if second.limit is not None:
            size = min(size, second.limit)
            second.limit -= size
        start = second.start
        out: list[HttpEvent] = []
        if not second.started:
            second.started = True
            out.append(start)
        out.append(ObjectGap(start.txid, start.direction, size, start.reading))
        return out

    @staticmethod
    def _end_second(r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        second, r.second = r.second, None
        if second is not None and second.started:
            start = second.start
            complete = not second.limit  # None: as long as the body; 0: all it said
            out.append(ObjectEnd(start.txid, start.direction, complete, ts, start.reading))

    def _emit_data(self, r: _Reader, pos: int, size: int, out: list[HttpEvent]) -> int:
        if size <= 0 or r.tx is None:
            return pos
        if r.raw_only:  # only the second reading goes on (the pump hands it these bytes)
            return pos + size
        out.append(ObjectChunk(r.tx.txid, r.direction, bytes(r.buf[pos : pos + size]), r.reading))
        if r.reading is not None:
            return pos + size
        if r.direction is Direction.TO_SERVER:
            r.tx.request_body_len += size
        else:
            r.tx.response_body_len += size
        return pos + size

    def _step_counted(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        size = min(r.remaining, len(r.buf) - pos)
        pos = self._emit_data(r, pos, size, out)
        r.remaining -= size
        if r.remaining == 0:
            self._counted_done(r, ts, out)
        return pos

    def _counted_done(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        if r.state is _State.CHUNK_DATA:
            r.state = _State.CHUNK_DATA_END
        else:
            self._end_body(r, True, ts, out)

    def _step_chunk_size(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        buf = r.buf
        limit = self.caps.max_chunk_line
        end, after = _line_end(buf, pos, pos + r.scan)
        if end < 0:
            r.scan = max(len(buf) - pos - 1, 0)
            if r.scan > limit:
                if r.chunks == 0:
                    return self._not_chunked(r, pos, "no chunk-size line", ts, out)
                self._chunked_violation(r, "http_chunk_line_too_long", f"over {limit}", ts, out)
            return pos
        if end - pos > limit:
            if r.chunks == 0:
                return self._not_chunked(r, pos, "no chunk-size line", ts, out)
            self._chunked_violation(r, "http_chunk_line_too_long", f"{end - pos} bytes", ts, out)
            return pos
        # chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1), read as browsers read it: the hex
        # digits at the start of the line, whatever follows them ("f x", "f,", "f\0"), a line
        # ended by LF or CR alone; a blank line where a size should be is skipped. Each is
        # noted: a sender that means to evade a sensor writes exactly that.
        line = bytes(buf[pos:end]).strip(_LINE_WS)
        r.reset_line()
        if not line:
            out.append(Anomaly("http_chunk_blank_line", "", ts))
            return after
        digits_end = len(line) - len(line.lstrip(_HEX))
        digits = line[:digits_end]
        if not digits or digits_end > _MAX_CHUNK_HEX:
            if r.chunks == 0:
                return self._not_chunked(r, pos, "the first chunk-size line is not hex", ts, out)
            self._chunked_violation(r, "http_bad_chunk_size", "", ts, out)
            return pos
        rest = line[digits_end:].lstrip(_LINE_WS)
        if rest and not rest.startswith(b";"):
            out.append(Anomaly("http_chunk_size_junk", repr(rest[:16])[2:-1], ts))
            if r.chunks == 0 and r.second is None and r.body is not None:
                # Nothing of the body consumed yet: a receiver that rejects this line and reads
                # the body as not chunked sees it all from here.
                reason = "junk after a chunk size"
                self._start_second(r, r.body, "raw", None, reason, ts, out)
        r.chunks += 1
        size = int(digits, 16)
        if size == 0:
            r.state = _State.CHUNK_TRAILER
        else:
            r.state = _State.CHUNK_DATA
            r.remaining = size
        return after

    def _not_chunked(self, r: _Reader, pos: int, why: str, ts: float, out: list[HttpEvent]) -> int:
        """The body said chunked and is not (its first line is no chunk size): read it as a
        receiver that ignores the coding does, by Content-Length or up to the close."""
        out.append(Anomaly("http_not_chunked", why, ts))
        second, r.second = r.second, None
        if second is not None and second.started:  # blank lines went to it: end it
            r.second = second
            self._end_second(r, ts, out)
        if r.fallback:
            r.state = _State.BODY_LENGTH
            r.remaining = r.fallback
        else:
            r.state = _State.BODY_UNTIL_CLOSE
        r.reset_line()
        return pos

    def _step_chunk_data_end(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        buf = r.buf
        if pos >= len(buf):
            return pos
        r.state = _State.CHUNK_SIZE
        r.reset_line()
        if buf[pos] == _LF:
            return pos + 1
        if buf[pos] == _CR:
            if pos + 1 >= len(buf):
                r.state = _State.CHUNK_DATA_END  # wait for the byte after CR
                return pos
            return pos + 2 if buf[pos + 1] == _LF else pos + 1  # CR alone ends a line too
        out.append(Anomaly("http_missing_chunk_crlf", "", ts))
        return pos

    def _step_trailer(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        buf = r.buf
        avail = len(buf) - pos
        if avail == 0:
            return pos
        if buf[pos] == _LF:
            end = pos + 1
        elif buf[pos] == _CR and avail >= 2:
            end = pos + 2 if buf[pos + 1] == _LF else pos + 1  # CR alone ends a line too
        elif buf[pos] == _CR and avail == 1:
            return pos
        else:
            end, resume = _find_blank_line(buf, pos + r.scan)
            if end < 0:
                r.scan = resume - pos
                if avail > self.caps.max_header_bytes:
                    raise HttpViolation("http_header_too_long", "trailers")
                return pos
            if end - pos > self.caps.max_header_bytes:
                raise HttpViolation("http_header_too_long", "trailers")
            # Trailer fields are validated and counted but not reported (no event for them).
            self._parse_fields(_split_lines(bytes(buf[pos:end])), ts, out)
        r.reset_line()
        self._end_body(r, True, ts, out)
        return end

    def _chunked_violation(
        self, r: _Reader, kind: str, detail: str, ts: float, out: list[HttpEvent]
    ) -> None:
        """The chunked framing broke. With a second reading the body goes on as that reading
        alone (returns): the raw one up to the close, the content-length one for the bytes it
        still wants; without one the parser gives up (raises)."""
        tx = r.tx
        second = r.second
        if second is not None and tx is not None and second.limit != 0:
            out.append(Anomaly(kind, f"{detail}; the other reading goes on".lstrip("; "), ts))
            out.append(ObjectEnd(tx.txid, r.direction, False, ts, r.reading))
            r.raw_only = True
            if second.limit is None:
                r.state = _State.BODY_UNTIL_CLOSE
            else:
                r.state = _State.BODY_LENGTH
                r.remaining = second.limit
            return
        self._end_body(r, False, ts, out)
        raise HttpViolation(kind, detail)

    def _end_body(self, r: _Reader, complete: bool, ts: float, out: list[HttpEvent]) -> None:
        tx = r.tx
        if tx is None:
            return
        if not r.raw_only:
            out.append(ObjectEnd(tx.txid, r.direction, complete, ts, r.reading))
        self._message_done(r, tx, ts, out)

    def _message_done(self, r: _Reader, tx: _Tx, ts: float, out: list[HttpEvent]) -> None:
        interim_body = r.reading == "declared" and tx.response is None
        r.state = _State.HEAD
        r.reset_line()
        r.tx = r.body = r.reading = None
        r.raw_only = False
        r.odd_head = r.ambiguity = ""
        r.fallback = None
        if interim_body:
            return  # the body a 1xx declared: the final response is still to come
        if r.direction is Direction.TO_SERVER:
            tx.req_done = True
            upgrade = tx.request is not None and _has_header(tx.request.headers, b"upgrade")
            if tx.method == b"CONNECT" or upgrade:
                # What follows may not be HTTP: hold it until the response says (RFC 9110
                # sections 9.3.6 and 7.8).
                r.state = _State.PAUSED
                r.tx = tx
                r.lost = False
        else:
            tx.resp_done = True
        self._maybe_report(tx, ts, out)

    # --- transactions --------------------------------------------------------------------------

    def _new_txid(self) -> int:
        txid = self._next_txid
        self._next_txid += 1
        return txid

    def _orphan_tx(self) -> _Tx:
        tx = _Tx(txid=self._new_txid(), req_done=True)
        self._open[tx.txid] = tx
        return tx

    def _maybe_report(self, tx: _Tx, ts: float, out: list[HttpEvent]) -> None:
        if tx.reported or not (tx.req_done and tx.resp_done):
            return
        tx.reported = True
        self._open.pop(tx.txid, None)
        out.append(
            HttpTransaction(
                txid=tx.txid,
                request=tx.request,
                response=tx.response,
                request_body_len=tx.request_body_len,
                response_body_len=tx.response_body_len,
                request_missing=tx.request_missing,
                response_missing=tx.response_missing,
                interim_statuses=list(tx.interim),
                ts=ts,
                tunnel=self._upgraded,
            )
        )

    # --- gaps and eof --------------------------------------------------------------------------

    def _gap(self, r: _Reader, size: int, ts: float, out: list[HttpEvent]) -> None:
        if r.state in _BODY_STATES:
            out += self._second_gap(r, size)
        while size > 0:
            state = r.state
            if state in (_State.TUNNEL, _State.CLOSED):
                break
            if state is _State.PAUSED:
                r.lost = True
                break
            if state is _State.HEAD:
                raise HttpViolation("http_gap_in_headers", f"{size} bytes missing")
            if state is _State.UNFRAMED:  # the tail held back for a status line comes first
                del r.buf[: self._emit_data(r, 0, len(r.buf), out)]
            if state is _State.BODY_UNTIL_CLOSE or state is _State.UNFRAMED:
                self._count_gap(r, size, out)
                break
            if state in (_State.BODY_LENGTH, _State.CHUNK_DATA):
                if state is _State.CHUNK_DATA and size > r.remaining:
                    self._chunked_violation(r, "http_gap_in_chunked", "past chunk data", ts, out)
                    continue  # the raw reading goes on
                n = min(size, r.remaining)
                self._count_gap(r, n, out)
                r.remaining -= n
                size -= n
                if r.remaining == 0:
                    self._counted_done(r, ts, out)
                continue
            # chunk-size line, CRLF after data, trailers: framing lost.
            self._chunked_violation(r, "http_gap_in_chunked", f"in {state.value}", ts, out)
        if r.second is not None and r.state not in _BODY_STATES:
            self._end_second(r, ts, out)

    @staticmethod
    def _count_gap(r: _Reader, size: int, out: list[HttpEvent]) -> None:
        tx = r.tx
        if tx is None or size <= 0 or r.raw_only:
            return
        out.append(ObjectGap(tx.txid, r.direction, size, r.reading))
        if r.reading is not None:
            return
        if r.direction is Direction.TO_SERVER:
            tx.request_missing += size
        else:
            tx.response_missing += size

    def _eof(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        state = r.state
        if state is _State.HEAD:
            if r.buf.strip(b"\r\n"):
                out.append(Anomaly("http_truncated_head", f"{len(r.buf)} bytes", ts))
        elif state is _State.UNFRAMED:
            self._emit_data(r, 0, len(r.buf), out)  # the tail held back for a status line
            self._end_unframed(r, True, ts, out)
        elif state is _State.BODY_UNTIL_CLOSE:
            if r.raw_only:
                self._second_data(r, bytes(r.buf), ts, out)
            self._end_body(r, True, ts, out)  # rule 8: the close is the end
        elif state not in (_State.PAUSED, _State.TUNNEL):
            self._end_body(r, False, ts, out)
        if r.second is not None:
            self._end_second(r, ts, out)
        r.state = _State.CLOSED
        r.buf.clear()
        r.tx = None
        if r.direction is Direction.TO_CLIENT:
            # No response can come any more: waiting requests are unanswered.
            while self._pending:
                tx = self._pending.popleft()
                tx.resp_done = True
                self._maybe_report(tx, ts, out)
        if all(reader.state is _State.CLOSED for reader in self._readers):
            for tx in list(self._open.values()):
                tx.req_done = tx.resp_done = True
                self._maybe_report(tx, ts, out)


def _note_junk(headers: Headers, ts: float, out: list[HttpEvent]) -> bool:
    """Note junk around coding tokens; True when there was some."""
    found = False
    for name in (b"transfer-encoding", b"content-encoding"):
        if _has_token_junk(headers, name):
            out.append(Anomaly("http_coding_junk", name.decode(), ts))
            found = True
    return found


# Head anomalies after which a receiver could have read the fields otherwise.
_ODD_FIELDS = frozenset(
    {"http_obs_fold", "http_space_before_colon", "http_bare_cr", "http_bad_header_line"}
)


def _declared(tx: _Tx, headers: Headers) -> tuple[_Tx, _Framing, int, Headers] | None:
    """The body a head declares (chunked, or a Content-Length above 0), None if none."""
    if "chunked" in _list_tokens(headers, b"transfer-encoding"):
        return tx, _Framing.CHUNKED, 0, headers
    values = [v.strip(_WS) for name, v in headers if name == b"content-length"]
    if values and values[0].isdigit() and int(values[0]) > 0:
        return tx, _Framing.LENGTH, int(values[0]), headers
    return None


def _odd_head(headers: Headers, noted: list[HttpEvent]) -> str:
    """Why this header block could be framed otherwise by another receiver ("" if it cannot)."""
    for event in noted:
        if isinstance(event, Anomaly) and event.kind in _ODD_FIELDS:
            return event.kind.removeprefix("http_").replace("_", " ")
    return ""


def _bare_cr_lines(lines: list[bytes], ts: float, out: list[HttpEvent]) -> list[bytes]:
    """Header lines with a CR alone inside are split there, as receivers that end a line at a
    bare CR read them (RFC 9112 section 2.2 lets a recipient do so)."""
    if not any(b"\r" in line for line in lines):
        return lines
    split: list[bytes] = []
    for line in lines:
        text = line.rstrip(b"\r")  # CR CR LF: a junk CR at the end, read by the token rules
        if b"\r" in text:
            out.append(Anomaly("http_bare_cr", "", ts))
            split += text.split(b"\r")
        else:
            split.append(line)
    return split


def _line_end(buf: bytearray, pos: int, scan: int) -> tuple[int, int]:
    """The end of the line starting at `pos` (LF, CRLF or a CR alone) as (end of its text, start
    of the next line); (-1, -1) when it has not ended yet. `scan`: where to search from."""
    lf = buf.find(b"\n", scan)
    cr = buf.find(b"\r", scan, lf if lf >= 0 else len(buf))
    if cr < 0:
        return (lf, lf + 1) if lf >= 0 else (-1, -1)
    j = cr + 1
    while j < len(buf) and buf[j] == _CR:  # CR CR LF: one line end with a junk CR
        j += 1
    if j >= len(buf):
        return -1, -1  # CRLF, CR CR LF or a CR alone: the next byte says
    return cr, (j + 1 if buf[j] == _LF else cr + 1)  # CRs then no LF: each CR ends a line


def _encodings(headers: Headers) -> list[str]:
    """Codings applied to the body, in order: content codings first, then transfer codings.

    "chunked" is removed by this parser (wherever it stands: see _chunked_framing); anything
    else is left for the content stage.
    """
    codings = [c for c in _list_tokens(headers, b"content-encoding") if c != "identity"]
    te = [
        c for c in _list_tokens(headers, b"transfer-encoding") if c not in ("identity", "chunked")
    ]
    return codings + te


def _parse_request_line(line: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """method SP request-target SP HTTP-version (RFC 9112 section 3), lenient on whitespace."""
    parts = line.split()
    if len(parts) < 3:
        raise HttpViolation("http_bad_request_line", f"{len(parts)} parts")
    method, version = parts[0], parts[-1]
    if not _is_token(method) or len(method) > _MAX_METHOD:
        raise HttpViolation("http_bad_request_line", "method is not a token")
    if not _HTTP1_VERSION.fullmatch(version):
        kind = "http_bad_version" if version.startswith(b"HTTP/") else "http_bad_request_line"
        raise HttpViolation(kind, version[:16].decode("latin-1"))
    return method, b" ".join(parts[1:-1]), version, len(parts) > 3


def _precheck_request(prefix: bytes) -> None:
    """Reject garbage before a whole request line has arrived (cheap, a few bytes)."""
    for i, byte in enumerate(prefix):
        if byte in _LINE_WS:
            return
        if byte not in _TCHAR:
            raise HttpViolation("http_bad_request_line", "method is not a token")
        if i >= _MAX_METHOD:
            raise HttpViolation("http_bad_request_line", "method too long")


def _parse_status_line(line: bytes) -> tuple[bytes, int, bytes, str]:
    """HTTP-version SP status-code SP [reason-phrase] (RFC 9112 section 4), read as browsers
    read it: any case and any version number ("http/1.1", "HTTP/1.01", "HTTP/2.0"), a status
    code with leading zeros or extra digits ("0200", "2000") or none at all ("2xx", "000":
    taken as 200). Returns (version, status, reason, what was odd or ""). The caller makes
    sure the line starts with a version (`_ANY_VERSION`)."""
    parts = line.split(None, 2)
    version = parts[0]
    odd = []
    if not _HTTP1_VERSION.fullmatch(version):
        odd.append(f"version {version[:16].decode('latin-1')!r}")
        version = version.upper()
    code = parts[1] if len(parts) > 1 else b""
    digits = code[: len(code) - len(code.lstrip(b"0123456789"))]
    status = int(digits) if len(digits) == 3 and digits == code else 0
    if status < 100:
        status = int(digits) if digits and len(digits) <= 4 else 0
        if not 100 <= status <= 999 and len(digits) >= 3:
            status = int(digits[:3])
        if not 100 <= status <= 999:
            status = 200
        odd.append(f"status {code[:16].decode('latin-1')!r} read as {status}")
    reason = parts[2].strip(_LINE_WS) if len(parts) > 2 else b""
    return version, status, reason, ", ".join(odd)


# --- detection ----------------------------------------------------------------------------------

_DETECT_LIMIT = 8192  # give up (False) when no verdict after this many bytes


def detect(direction: Direction, data: bytes) -> bool | None:
    """Is this the start of an HTTP/1.x stream? True, False, or None (need more bytes).

    Client side: "METHOD SP target SP HTTP/1.d"; server side: "HTTP/1.d SP NNN". A bare "GET"
    is never enough.
    """
    if direction is Direction.TO_CLIENT:
        return _detect_status(data)
    return _detect_request(data)


def _match_prefix(data: bytes, expected: bytes) -> bool | None:
    """True if data starts with expected, None if data is a shorter prefix of it, else False."""
    if len(data) < len(expected):
        return None if expected.startswith(data) else False
    return data.startswith(expected)


def _detect_status(data: bytes) -> bool | None:
    data = data[:64]
    head = _match_prefix(data, b"HTTP/1.")
    if head is not True:
        return head
    if len(data) < 8:
        return None
    if not data[7:8].isdigit():
        return False
    rest = data[8:]
    code = rest.lstrip(_WS)
    if len(code) == len(rest):  # no separator yet (or a wrong one)
        return None if not rest else False
    if len(code) < 3:
        return None if code.isdigit() or not code else False
    return code[:3].isdigit()


def _detect_request(data: bytes) -> bool | None:
    data = data[:_DETECT_LIMIT].lstrip(b"\r\n")
    nl = data.find(b"\n")
    line = data if nl < 0 else data[:nl]
    if any((b < 0x20 and b not in (0x09, 0x0D)) or b == 0x7F for b in line):
        return False
    parts = line.split()
    if not parts:
        return None if nl < 0 else False
    method = parts[0]
    if method.translate(None, _TCHAR) or len(method) > _MAX_METHOD:
        return False
    if len(parts) < 3:
        if nl >= 0 or len(data) >= _DETECT_LIMIT:
            return False  # a request line without a version is HTTP/0.9 at best
        return None
    if len(parts) > 3:
        return False
    version = parts[2]
    if nl >= 0 or len(version) >= 8:
        return bool(_HTTP1_VERSION.fullmatch(version[:8])) and (nl < 0 or len(version) == 8)
    return None if b"HTTP/1.".startswith(version) else False
