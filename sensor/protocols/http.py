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

Body length follows RFC 9112 section 6.3, see `_request_framing`/`_response_framing`.

Two failure channels (STYLE.md habit 6): odd but survivable input is an `Anomaly` in the event
list; input the parser cannot go on with raises `HttpViolation` (a `ProtocolViolation`) whose
`events` attribute carries the events produced earlier in the same call, e.g. the
`ObjectEnd(complete=False)` that precedes `http_gap_in_chunked`.

Anomaly kinds (stable; "violation" = raised as ProtocolViolation.reason, parser detaches)
-----------------------------------------------------------------------------------------
| kind                              | channel   | meaning                                          |
|-----------------------------------|-----------|--------------------------------------------------|
| http_bad_request_line             | violation | not "METHOD SP target SP HTTP/x.y" (incl. 0.9)   |
| http_bad_status_line              | violation | not "HTTP/x.y SP NNN [reason]"                   |
| http_bad_version                  | violation | version other than HTTP/1.x                      |
| http_start_line_too_long          | violation | start line over HttpCaps.max_start_line          |
| http_header_too_long              | violation | header block/trailers over max_header_bytes      |
| http_too_many_headers             | violation | more than max_headers fields                     |
| http_gap_in_headers               | violation | bytes missing where a head had to be             |
| http_gap_in_chunked               | violation | gap not inside known chunk data                  |
| http_bad_chunk_size               | violation | chunk-size line is not hex                       |
| http_chunk_line_too_long          | violation | chunk-size line over max_chunk_line              |
| http_bad_transfer_encoding        | violation | request Transfer-Encoding not ending in chunked  |
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
_CR, _LF = 0x0D, 0x0A
_WS = b" \t"
# Around list tokens (Transfer-Encoding, Content-Encoding), what lenient receivers ignore.
_TOKEN_JUNK = b" \t\r\x00\x0b\x0c\xa0"
_BOM = b"\xef\xbb\xbf"
_LINE_WS = b" \t\r\x0b\x0c"  # what bytes.split() treats as a separator on one line
# RFC 9110 section 5.6.2 tchar
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_HTTP1_VERSION = re.compile(rb"HTTP/1\.[0-9]")
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
    PAUSED = "paused"
    TUNNEL = "tunnel"
    CLOSED = "closed"


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
        if not r.line_done:
            # RFC 9112 section 2.2: ignore empty lines before a start line.
            while pos < len(buf) and buf[pos] in (_CR, _LF):
                pos += 1
            nl = buf.find(b"\n", pos + r.scan)
            if nl < 0:
                r.scan = len(buf) - pos
                if r.scan > self.caps.max_start_line:
                    raise HttpViolation("http_start_line_too_long", f"over {r.scan} bytes")
                self._precheck_start(r.direction, bytes(buf[pos : pos + _MAX_METHOD + 1]))
                return pos
            line = bytes(buf[pos:nl])
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.caps.max_start_line:
                raise HttpViolation("http_start_line_too_long", f"{len(line)} bytes")
            if r.direction is Direction.TO_SERVER:
                _parse_request_line(line)
            else:
                _parse_status_line(line)
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
        headers = self._parse_fields(lines[1:], ts, out)
        if r.direction is Direction.TO_SERVER:
            self._on_request_head(r, lines[0], headers, ts, out)
        else:
            self._on_response_head(r, lines[0], headers, ts, out)
        return end

    @staticmethod
    def _precheck_start(direction: Direction, prefix: bytes) -> None:
        """Reject garbage before a whole start line has arrived (cheap, a few bytes)."""
        if direction is Direction.TO_CLIENT:
            if not b"HTTP/".startswith(prefix[:5]):
                raise HttpViolation("http_bad_status_line", "does not start with HTTP/")
            return
        for i, byte in enumerate(prefix):
            if byte in _LINE_WS:
                return
            if byte not in _TCHAR:
                raise HttpViolation("http_bad_request_line", "method is not a token")
            if i >= _MAX_METHOD:
                raise HttpViolation("http_bad_request_line", "method too long")

    def _parse_fields(self, lines: list[bytes], ts: float, out: list[HttpEvent]) -> Headers:
        headers: Headers = []
        for line in lines:
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
        r.tx = tx
        framing, length = self._request_framing(headers, ts, out)
        self._start_body(r, tx, framing, length, headers, ts, out)

    def _on_response_head(
        self, r: _Reader, line: bytes, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> None:
        version, status, reason = _parse_status_line(line)
        if 100 <= status < 200 and status != 101:
            # Interim response (RFC 9110 section 15.2): belongs to the oldest waiting request.
            if not self._pending:
                orphan = self._orphan_tx()
                self._pending.append(orphan)
            self._pending[0].interim.append(status)
            return
        tx = self._pending.popleft() if self._pending else self._orphan_tx()
        tx.response = HttpResponseHead(tx.txid, status, reason, version, headers, ts)
        out.append(tx.response)
        r.tx = tx
        framing, length = self._response_framing(tx, headers, ts, out)
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
        self, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> tuple[_Framing, int]:
        _note_junk(headers, ts, out)
        te = _list_tokens(headers, b"transfer-encoding")
        if te:
            if _has_header(headers, b"content-length"):
                out.append(Anomaly("http_te_and_cl", "request", ts))
            if te[-1] != "chunked":
                # Rule 4: a request body whose length cannot be determined is an error.
                raise HttpViolation("http_bad_transfer_encoding", "request TE not chunked")
            return _Framing.CHUNKED, 0
        length = self._content_length(headers, ts, out)
        if length is None:
            raise HttpViolation("http_bad_content_length", "request")
        if length > 0:
            return _Framing.LENGTH, length
        return _Framing.NONE, 0  # rule 7: no CL, no TE -> no body

    def _response_framing(
        self, tx: _Tx, headers: Headers, ts: float, out: list[HttpEvent]
    ) -> tuple[_Framing, int]:
        status = tx.response.status if tx.response else 0
        if status == 101 or (tx.method == b"CONNECT" and 200 <= status < 300):
            return _Framing.TUNNEL, 0  # rules 1-2
        if tx.method == b"HEAD" or status in _NO_BODY_STATUS:
            return _Framing.NONE, 0  # rule 1
        _note_junk(headers, ts, out)
        te = _list_tokens(headers, b"transfer-encoding")
        if te:
            if _has_header(headers, b"content-length"):
                out.append(Anomaly("http_te_and_cl", "response", ts))
            if te[-1] == "chunked":
                return _Framing.CHUNKED, 0
            out.append(Anomaly("http_te_not_chunked", ",".join(te), ts))
            return _Framing.UNTIL_CLOSE, 0
        if _has_header(headers, b"content-length"):
            length = self._content_length(headers, ts, out)
            if length is None:
                out.append(Anomaly("http_bad_content_length", "response: read until close", ts))
                return _Framing.UNTIL_CLOSE, 0
            return (_Framing.LENGTH, length) if length > 0 else (_Framing.NONE, 0)
        return _Framing.UNTIL_CLOSE, 0  # rule 8

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
        out.append(
            ObjectStart(
                tx.txid,
                r.direction,
                ts,
                "http",
                headers,
                _encodings(headers),
                uri_basename(request.uri) if request is not None else None,
                about=request,
            )
        )
        if framing is _Framing.LENGTH:
            r.state = _State.BODY_LENGTH
            r.remaining = length
        elif framing is _Framing.CHUNKED:
            r.state = _State.CHUNK_SIZE
            r.reset_line()
        else:
            r.state = _State.BODY_UNTIL_CLOSE

    def _emit_data(self, r: _Reader, pos: int, size: int, out: list[HttpEvent]) -> int:
        if size <= 0 or r.tx is None:
            return pos
        out.append(ObjectChunk(r.tx.txid, r.direction, bytes(r.buf[pos : pos + size])))
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
        nl = buf.find(b"\n", pos + r.scan)
        limit = self.caps.max_chunk_line
        if nl < 0:
            r.scan = len(buf) - pos
            if r.scan > limit:
                self._chunked_violation(r, "http_chunk_line_too_long", f"over {limit}", ts, out)
            return pos
        if nl - pos > limit:
            self._chunked_violation(r, "http_chunk_line_too_long", f"{nl - pos} bytes", ts, out)
        # chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1), read as browsers read it: the hex
        # digits at the start of the line, whatever follows them ("f x", "f,", "f\0"); a
        # blank line where a size should be is skipped. Either is noted: a sender that means
        # to evade a sensor writes exactly that.
        line = bytes(buf[pos:nl]).strip(_LINE_WS)
        if not line:
            out.append(Anomaly("http_chunk_blank_line", "", ts))
            r.reset_line()
            return nl + 1
        end = len(line) - len(line.lstrip(_HEX))
        digits = line[:end]
        if not digits or end > _MAX_CHUNK_HEX:
            self._chunked_violation(r, "http_bad_chunk_size", "", ts, out)
        rest = line[end:].lstrip(_LINE_WS)
        if rest and not rest.startswith(b";"):
            out.append(Anomaly("http_chunk_size_junk", repr(rest[:16])[2:-1], ts))
        size = int(digits, 16)
        r.reset_line()
        if size == 0:
            r.state = _State.CHUNK_TRAILER
        else:
            r.state = _State.CHUNK_DATA
            r.remaining = size
        return nl + 1

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
            if buf[pos + 1] == _LF:
                return pos + 2
        out.append(Anomaly("http_missing_chunk_crlf", "", ts))
        return pos

    def _step_trailer(self, r: _Reader, pos: int, ts: float, out: list[HttpEvent]) -> int:
        buf = r.buf
        avail = len(buf) - pos
        if avail == 0:
            return pos
        if buf[pos] == _LF:
            end = pos + 1
        elif buf[pos] == _CR and avail >= 2 and buf[pos + 1] == _LF:
            end = pos + 2
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
        self._end_body(r, False, ts, out)
        raise HttpViolation(kind, detail)

    def _end_body(self, r: _Reader, complete: bool, ts: float, out: list[HttpEvent]) -> None:
        tx = r.tx
        if tx is None:
            return
        out.append(ObjectEnd(tx.txid, r.direction, complete, ts))
        self._message_done(r, tx, ts, out)

    def _message_done(self, r: _Reader, tx: _Tx, ts: float, out: list[HttpEvent]) -> None:
        r.state = _State.HEAD
        r.reset_line()
        r.tx = None
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
        while size > 0:
            state = r.state
            if state in (_State.TUNNEL, _State.CLOSED):
                return
            if state is _State.PAUSED:
                r.lost = True
                return
            if state is _State.HEAD:
                raise HttpViolation("http_gap_in_headers", f"{size} bytes missing")
            if state is _State.BODY_UNTIL_CLOSE:
                self._count_gap(r, size, out)
                return
            if state in (_State.BODY_LENGTH, _State.CHUNK_DATA):
                if state is _State.CHUNK_DATA and size > r.remaining:
                    self._chunked_violation(r, "http_gap_in_chunked", "past chunk data", ts, out)
                n = min(size, r.remaining)
                self._count_gap(r, n, out)
                r.remaining -= n
                size -= n
                if r.remaining == 0:
                    self._counted_done(r, ts, out)
                continue
            # chunk-size line, CRLF after data, trailers: framing lost.
            self._chunked_violation(r, "http_gap_in_chunked", f"in {state.value}", ts, out)

    @staticmethod
    def _count_gap(r: _Reader, size: int, out: list[HttpEvent]) -> None:
        tx = r.tx
        if tx is None or size <= 0:
            return
        out.append(ObjectGap(tx.txid, r.direction, size))
        if r.direction is Direction.TO_SERVER:
            tx.request_missing += size
        else:
            tx.response_missing += size

    def _eof(self, r: _Reader, ts: float, out: list[HttpEvent]) -> None:
        state = r.state
        if state is _State.HEAD:
            if r.buf.strip(b"\r\n"):
                out.append(Anomaly("http_truncated_head", f"{len(r.buf)} bytes", ts))
        elif state is _State.BODY_UNTIL_CLOSE:
            self._end_body(r, True, ts, out)  # rule 8: the close is the end
        elif state not in (_State.PAUSED, _State.TUNNEL):
            self._end_body(r, False, ts, out)
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


def _note_junk(headers: Headers, ts: float, out: list[HttpEvent]) -> None:
    for name in (b"transfer-encoding", b"content-encoding"):
        if _has_token_junk(headers, name):
            out.append(Anomaly("http_coding_junk", name.decode(), ts))


def _encodings(headers: Headers) -> list[str]:
    """Codings applied to the body, in order: content codings first, then transfer codings.

    A final "chunked" is removed by this parser; anything else is left for the content stage.
    """
    codings = [c for c in _list_tokens(headers, b"content-encoding") if c != "identity"]
    te = [c for c in _list_tokens(headers, b"transfer-encoding") if c != "identity"]
    if te and te[-1] == "chunked":
        te.pop()
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


def _parse_status_line(line: bytes) -> tuple[bytes, int, bytes]:
    """HTTP-version SP status-code SP [reason-phrase] (RFC 9112 section 4)."""
    if not line.startswith(b"HTTP/"):
        raise HttpViolation("http_bad_status_line", "does not start with HTTP/")
    parts = line.split(None, 2)
    if not _HTTP1_VERSION.fullmatch(parts[0]):
        raise HttpViolation("http_bad_version", parts[0][:16].decode("latin-1"))
    if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
        raise HttpViolation("http_bad_status_line", "bad status code")
    status = int(parts[1])
    if status < 100:
        raise HttpViolation("http_bad_status_line", "status below 100")
    reason = parts[2].strip(_LINE_WS) if len(parts) > 2 else b""
    return parts[0], status, reason


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
