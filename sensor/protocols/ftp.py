"""FTP control-channel parser for one TCP connection (protocols stage).

In: reassembled bytes of the client->server (commands) and server->client (replies) streams of
an FTP control connection, gaps and eofs (sans-IO, see base.py). Out: `FtpDataExpected` when a
transfer command tells where its data connection goes, one `FtpTransfer` per transfer command
when its outcome is known, one `FtpSession` per connection, `Anomaly`. The data connections
themselves are other flows, announced through `FtpDataExpected` (an `Announcement` for the
expectation table, expect.py) and read by `FtpDataParser` at the end of this module.

Theory of operation
-------------------
Both directions are split into lines (RFC 959 section 4: Telnet lines ending in CRLF; a bare LF
is tolerated, Telnet IAC sequences are removed). Each direction keeps only its incomplete last
line, capped at `FtpCaps.max_line`; a longer line is reported and skipped up to its end.

Commands are queued in `_pending` in arrival order. Replies are matched in order: each FINAL
reply (2xx-5xx) answers the oldest queued command, so pipelined commands pair correctly
(RFC 959 section 4.2). Preliminary replies (1xx, e.g. 150/125 before a transfer) are recorded on
the oldest command without removing it. The first reply of the connection is the greeting
(220, or 120 then 220, or 421) and answers no command. A multi-line reply runs from "NNN-" to
the first line starting with the same "NNN " (RFC 959 section 4.2); it counts as one reply.

    command line --> _on_command: queue it; transfer commands bind a data endpoint
    reply  line  --> _on_reply:   1xx -> note on the oldest command (STOU learns its file name)
                                  2xx-5xx -> pop the oldest command and apply the outcome

Data endpoints: a successful PASV (227) or EPSV (229) reply, or a PORT/EPRT command (taken when
sent: the reply only confirms it; a failure reply withdraws it), sets the endpoint the next
transfer command uses; each endpoint serves one transfer. A transfer command sent while a
PASV/EPSV is still unanswered (pipelining) waits for that reply. Without any endpoint the RFC 959
default applies (server connects to the client's control port): mode "active", host "", port 0.

Per transfer: `FtpDataExpected` as soon as the command and its endpoint are both known (STOU:
at its first reply, which names the file), then `FtpTransfer` at the final reply: 226/250 ok,
425/426/451/550/... failed, or at eof with reply None.

Connection state: one `_State`, changed only by `FtpParser._advance`, which looks the pair
(state, `_Input`) up in the table `_TRANSITIONS` at the top of the code (h11's model). The line
handlers classify what they see into inputs (a greeting, an AUTH command, its reply, a gap, an
eof, a violation); a pair with no row in the table is a parser bug and raises `FtpStateError`,
deliberately not a ProtocolViolation, so the app layer counts it as `parser_error` instead of
taking the flow for "not FTP". What a state ignores never reaches the table: in TLS, OPAQUE,
CLOSED and VIOLATED feed() and gap() drop their bytes unread (not in `_READING`); in TLS, CLOSED
and VIOLATED eof() is dropped as well (`_ENDED`).

    GREETING -------------AUTH sent-------------> GREETING_AUTH_WAIT
        |     <--------gap, server's eof----------        |
        | greeting, or a first reply that is not one      | the same
        v                                                 v
    COMMANDS -------------AUTH sent-------------> AUTH_WAIT
              <--other reply to AUTH, gap, server's eof--
    GREETING_AUTH_WAIT, AUTH_WAIT --234, or a gap and a held TLS record--> TLS
    GREETING_AUTH_WAIT, AUTH_WAIT --held bytes over FtpCaps.max_held-----> OPAQUE
    every state but TLS, CLOSED, VIOLATED --the second side's eof--> CLOSED
    GREETING, GREETING_AUTH_WAIT, COMMANDS, AUTH_WAIT --violation--> VIOLATED

AUTH (RFC 4217 section 4, RFC 2228 section 3): after an AUTH command the client's bytes are held,
not parsed, until its reply (GREETING_AUTH_WAIT, AUTH_WAIT). 234 means the rest of the connection
is TLS (state TLS): `FtpSession(auth_tls=True)` and `Opaque` are emitted and every later byte is
ignored (the flow is only counted). Any other final reply resumes parsing, held bytes first. A
gap over the reply resumes parsing too, unless the held bytes are a TLS record: then the lost
reply was a 234. Held bytes over the cap with no reply: OPAQUE (only counted; unanswered
transfers and the session are reported at the last eof, on the way to CLOSED).

Greeting and AUTH wait overlap when a client sends AUTH before the greeting arrives: hence
GREETING_AUTH_WAIT, the one product of the two that occurs. A reply resolves the greeting first
(it is one, or the connection was picked up mid-stream), then answers a command.

What stays a flag, and why. `_desynced` (a gap was seen) is sticky and orthogonal to the
machine: it only changes how replies are matched (below) and applies alike in all four reading
states, so folding it into the state would double them without adding a transition. Per
direction, `_Lines.skipping` (a cut or over-long line is dropped up to its end), `bad`
(malformed lines in a row) and `closed` (that side's eof was seen) each belong to one byte
stream, and either side can end or cut a line in any state; the machine sees each eof as one
input: CLIENT_EOF or SERVER_EOF while the other side is open, LAST_EOF when it is not. The
multi-line reply in progress (`_reply_code`) is line framing, not connection state.

Privacy (DESIGN.md): the argument of PASS (and ACCT) is never stored, counted or put in a
detail; anomaly details never quote client lines.

Gaps: the cut line is dropped, the direction resyncs at the next line end, and the pending
queue is flushed (its transfers are reported with reply None), because which replies the
missing bytes held is unknowable. From then on a positive reply that cannot answer the oldest
command (a 226 for a PASV) is skipped as the answer to a lost command.

Anomaly kinds (stable; "violation" = raised as ProtocolViolation.reason, parser detaches)
-----------------------------------------------------------------------------------------
| kind                      | channel   | meaning                                               |
|---------------------------|-----------|-------------------------------------------------------|
| ftp_line_too_long         | anomaly   | a line over FtpCaps.max_line; skipped up to its end   |
| ftp_bad_reply             | anomaly   | a server line that is not "NNN[ -]text"; skipped      |
| ftp_bad_command           | anomaly   | a client line whose verb is not 3-4 letters; skipped  |
| ftp_bad_port_argument     | anomaly   | PORT/EPRT argument or 227/229 reply unparseable       |
| ftp_gap                   | anomaly   | bytes missing; resynced at the next line, pending     |
|                           |           | commands reported without a reply                     |
| ftp_unmatched_reply       | anomaly   | a final reply with no command waiting for it          |
| ftp_too_many_pending      | anomaly   | more unanswered commands than the cap; oldest dropped |
| ftp_reply_too_long        | anomaly   | a multi-line reply over max_reply_lines; ended there  |
| ftp_truncated_line        | anomaly   | eof inside a line                                     |
| ftp_unanswered_auth       | anomaly   | client data after AUTH over the cap with no reply:    |
|                           |           | parsing stops, the flow is only counted               |
| ftp_not_ftp               | violation | too many consecutive malformed lines                  |
"""

from __future__ import annotations

import enum
import ipaddress
import posixpath
import re
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from sensor.anomaly import Anomaly
from sensor.protocols.base import (
    Announcement,
    Direction,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    Opaque,
    ProtocolEvent,
    ProtocolViolation,
)

__all__ = [
    "DATA_CONNECTION_TIMEOUT",
    "FtpCaps",
    "FtpDataEvent",
    "FtpDataExpected",
    "FtpDataLink",
    "FtpDataParser",
    "FtpEvent",
    "FtpParser",
    "FtpSession",
    "FtpStateError",
    "FtpTransfer",
    "FtpViolation",
    "detect",
]

DATA_CONNECTION_TIMEOUT = 120.0  # seconds an announced data connection is waited for

# --- the connection state machine ---------------------------------------------------------------


class _State(enum.Enum):
    GREETING = "greeting"  # no greeting yet; commands are parsed and queued
    GREETING_AUTH_WAIT = "greeting_auth_wait"  # no greeting yet and an AUTH unanswered: held
    COMMANDS = "commands"  # commands and replies parsed and paired
    AUTH_WAIT = "auth_wait"  # an AUTH unanswered: client bytes held, replies parsed
    TLS = "tls"  # AUTH accepted: session reported, everything after it only counted
    OPAQUE = "opaque"  # AUTH unanswered past the hold cap: only counted, session at the eofs
    CLOSED = "closed"  # both sides ended: session reported
    VIOLATED = "violated"  # ProtocolViolation raised: the parser is detached


class _Input(enum.Enum):
    GREETING_REPLY = "greeting_reply"  # 220 or 421 while the greeting is awaited (120 waits on)
    NO_GREETING = "no_greeting"  # the first reply is not a greeting: picked up mid-stream
    AUTH_SENT = "auth_sent"  # an AUTH command was queued
    AUTH_ACCEPTED = "auth_accepted"  # 234 answered the AUTH
    AUTH_REFUSED = "auth_refused"  # any other final reply answered the AUTH
    HOLD_OVERFLOW = "hold_overflow"  # held client bytes over FtpCaps.max_held, no reply
    GAP = "gap"  # bytes missing on either side
    GAP_THEN_TLS = "gap_then_tls"  # a gap while AUTH is held and the held bytes are TLS
    CLIENT_EOF = "client_eof"  # the client side ended, the server side is still open
    SERVER_EOF = "server_eof"  # the server side ended, the client side is still open
    LAST_EOF = "last_eof"  # a side ended after the other one: both have
    VIOLATION = "violation"  # a ProtocolViolation is being raised


# (state, input) -> next state. Every state change goes through FtpParser._advance, which looks
# it up here; a missing pair raises FtpStateError (a parser bug). TLS, CLOSED and VIOLATED have
# no row at all: every call is dropped before an input can arise (_READING, _ENDED). The
# comments say why an input CANNOT arise in a reading state that has no row for it.
_TRANSITIONS: dict[_State, dict[_Input, _State]] = {
    # RFC 959 section 5.4 (connection establishment): the server speaks first with 220, or
    # 120 and later 220, or 421; that reply answers no command. Cannot arise: AUTH_ACCEPTED,
    # AUTH_REFUSED (no AUTH is queued), HOLD_OVERFLOW, GAP_THEN_TLS (nothing is held).
    _State.GREETING: {
        _Input.GREETING_REPLY: _State.COMMANDS,
        _Input.NO_GREETING: _State.COMMANDS,
        _Input.AUTH_SENT: _State.GREETING_AUTH_WAIT,
        _Input.GAP: _State.GREETING,  # the greeting may still come
        _Input.CLIENT_EOF: _State.GREETING,
        _Input.SERVER_EOF: _State.GREETING,
        _Input.LAST_EOF: _State.CLOSED,
        _Input.VIOLATION: _State.VIOLATED,
    },
    # A client that sent AUTH before the greeting. Cannot arise: AUTH_SENT (client bytes are
    # held), AUTH_ACCEPTED, AUTH_REFUSED (the reply resolves the greeting first).
    _State.GREETING_AUTH_WAIT: {
        _Input.GREETING_REPLY: _State.AUTH_WAIT,
        _Input.NO_GREETING: _State.AUTH_WAIT,
        _Input.HOLD_OVERFLOW: _State.OPAQUE,
        # A gap flushes the queue, the AUTH with it: held bytes are commands again.
        _Input.GAP: _State.GREETING,
        _Input.GAP_THEN_TLS: _State.TLS,
        _Input.CLIENT_EOF: _State.GREETING_AUTH_WAIT,  # a reply to the AUTH may still come
        _Input.SERVER_EOF: _State.GREETING,  # no reply can come: the AUTH is flushed
        _Input.LAST_EOF: _State.CLOSED,  # the server ended first, then the client sent AUTH
        _Input.VIOLATION: _State.VIOLATED,
    },
    # RFC 959 section 4.2: final replies answer commands in order. Cannot arise:
    # GREETING_REPLY, NO_GREETING (the greeting is over), AUTH_ACCEPTED, AUTH_REFUSED (no AUTH
    # is queued), HOLD_OVERFLOW, GAP_THEN_TLS (nothing is held).
    _State.COMMANDS: {
        _Input.AUTH_SENT: _State.AUTH_WAIT,
        _Input.GAP: _State.COMMANDS,
        _Input.CLIENT_EOF: _State.COMMANDS,
        _Input.SERVER_EOF: _State.COMMANDS,
        _Input.LAST_EOF: _State.CLOSED,
        _Input.VIOLATION: _State.VIOLATED,
    },
    # RFC 4217 section 4, RFC 2228 section 3: 234 = go ahead with TLS; anything else (334
    # included: an ADAT exchange this parser does not follow) leaves the channel in clear.
    # Cannot arise: GREETING_REPLY, NO_GREETING (the greeting is over), AUTH_SENT (client
    # bytes are held).
    _State.AUTH_WAIT: {
        _Input.AUTH_ACCEPTED: _State.TLS,
        _Input.AUTH_REFUSED: _State.COMMANDS,
        _Input.HOLD_OVERFLOW: _State.OPAQUE,
        _Input.GAP: _State.COMMANDS,
        _Input.GAP_THEN_TLS: _State.TLS,
        _Input.CLIENT_EOF: _State.AUTH_WAIT,
        _Input.SERVER_EOF: _State.COMMANDS,
        _Input.LAST_EOF: _State.CLOSED,
        _Input.VIOLATION: _State.VIOLATED,
    },
    _State.TLS: {},  # everything dropped (_READING, _ENDED): the session is reported
    # Bytes and gaps are dropped unread (_READING); only the eofs count, to report the session.
    _State.OPAQUE: {
        _Input.CLIENT_EOF: _State.OPAQUE,
        _Input.SERVER_EOF: _State.OPAQUE,
        _Input.LAST_EOF: _State.CLOSED,
    },
    _State.CLOSED: {},  # everything dropped (_ENDED, and both sides are closed)
    _State.VIOLATED: {},  # everything dropped (_READING, _ENDED): detached
}

# States whose bytes are parsed. In the others feed() and gap() return nothing, before any input
# can arise: after TLS starts a flow is only counted (Suricata's rule), OPAQUE is unreadable,
# CLOSED has nothing left to read, VIOLATED is detached.
_READING = frozenset(
    {_State.GREETING, _State.GREETING_AUTH_WAIT, _State.COMMANDS, _State.AUTH_WAIT}
)
# States in which eof() is dropped too: TLS and CLOSED have reported the session, VIOLATED has
# detached. (OPAQUE still waits for the eofs to report its session.)
_ENDED = frozenset({_State.TLS, _State.CLOSED, _State.VIOLATED})
# An AUTH is unanswered: the client's bytes are held, because they are a TLS handshake if the
# reply is 234 (RFC 4217 section 4) and commands otherwise; only the reply tells which.
_HOLDING = frozenset({_State.GREETING_AUTH_WAIT, _State.AUTH_WAIT})
_AWAITING_GREETING = frozenset({_State.GREETING, _State.GREETING_AUTH_WAIT})

# --- events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class FtpDataExpected(Announcement):
    """A data connection is about to carry (or, in passive mode, may already carry) a transfer.

    host/port = the endpoint that ACCEPTS the data connection: the server for passive mode, the
    client for active mode. host "" means "the address of that side of the control connection"
    (EPSV, default data port); port 0 means "the client's control port" (RFC 959 default).
    """

    txid: int
    command: str
    filename: str | None  # the command argument as sent (path included); STOU: from the reply
    direction: str  # "upload" | "download"
    host: str
    port: int
    mode: str  # "passive" | "active"
    ts: float
    transfer_type: str = "A"  # TYPE in force (RFC 959 default ASCII): "A" data may be rewritten
    rest: int = 0  # REST offset: the transfer starts this far into the file (a partial object)

    app_proto: ClassVar[str] = "ftp-data"
    # Servers give up on a data connection that does not come within a minute (vsftpd's
    # accept_timeout and connect_timeout); it is claimed at its first byte, so allow twice that.
    timeout: ClassVar[float] = DATA_CONNECTION_TIMEOUT

    def endpoint(self, client: bytes, client_port: int, server: bytes) -> tuple[bytes, int]:
        """Where the data connection goes. Clients connect to the control server's address
        whatever a 227 says, so passive endpoints are the server's; an active endpoint's host
        is the one PORT/EPRT named, else the control connection's client; port 0 is the
        client's control port (RFC 959 default data port)."""
        if self.mode == "passive":
            host = server
        else:
            try:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                host = socket.inet_pton(family, self.host) if self.host else client
            except OSError:
                host = client
        return host, self.port or client_port

    def parser(self, serial: int, announcer: int) -> FtpDataParser:
        return FtpDataParser(self, serial, announcer)


@dataclass(slots=True)
class FtpTransfer(ProtocolEvent):
    txid: int
    command: str
    filename: str | None
    direction: str
    mode: str | None  # None: no data endpoint was ever agreed
    reply_code: int | None  # the final reply, None when none was seen
    reply_text: str | None
    ok: bool | None  # 2xx final reply; None without one
    ts: float
    rest: int = 0


@dataclass(slots=True)
class FtpSession(ProtocolEvent):
    user: str | None  # USER argument; PASS is never stored
    auth_tls: bool  # AUTH accepted with 234: everything after it is encrypted
    login_success: bool | None
    server_banner: str | None
    commands: int
    ts: float


@dataclass(frozen=True, slots=True)
class FtpCaps:
    max_line: int = 8192  # one command or reply line (PATH_MAX-long names fit)
    max_reply_lines: int = 1024  # lines of one multi-line reply (FEAT, HELP, STAT listings)
    max_text: int = 1024  # characters kept of a banner or reply text
    max_pending: int = 256  # unanswered commands
    max_held: int = 65536  # client bytes held while an AUTH is unanswered
    max_bad_lines: int = 16  # consecutive malformed lines before the parser gives up


# Everything FtpParser returns: a data connection's announcement (for the expectation table),
# one FtpTransfer per transfer command, one FtpSession, Opaque after AUTH TLS.
FtpEvent = FtpDataExpected | FtpTransfer | FtpSession | Opaque | Anomaly


class FtpViolation(ProtocolViolation):
    """The FTP parser's violation (carries `events`, see ProtocolViolation)."""


class FtpStateError(RuntimeError):
    """A parser bug: an input arose in a state `_TRANSITIONS` has no row for. Deliberately not a
    ProtocolViolation (which would blame the traffic): the app layer contains it as
    `parser_error`."""


# --- constants ----------------------------------------------------------------------------------

_DEFAULT_CAPS = FtpCaps()
_MAX_USER = 256  # characters of a USER name kept
_UPLOADS = frozenset({"STOR", "STOU", "APPE"})
_DOWNLOADS = frozenset({"RETR", "LIST", "NLST", "MLSD"})
_TRANSFERS = _UPLOADS | _DOWNLOADS
_PASSIVE = frozenset({"PASV", "EPSV"})
_SECRET_ARGS = frozenset({"PASS", "ACCT"})
_IAC = 0xFF
_IAC_OPTION_VERBS = range(0xFB, 0xFF)  # WILL WONT DO DONT take an option byte (RFC 854)
_VERB = re.compile(rb"[A-Za-z]{3,4}")
_REPLY = re.compile(rb"([1-5][0-9][0-9])([ -]|$)")
# RFC 959 4.1.2 / 227: "h1,h2,h3,h4,p1,p2", with or without parentheses, in any text.
_HOST_PORT = re.compile(rb" *, *".join([rb"(\d{1,3})"] * 6))
# RFC 2428 section 3: "(<d><d><d><port><d>)", <d> any printable ASCII, normally "|".
_EPSV_REPLY = re.compile(rb"\(([!-~])\1\1(\d{1,5})\1\)")
# Positive (2xx/3xx) final replies each command can get (RFC 959 section 5.4, RFC 2428, RFC 4217);
# checked only after a gap, to skip replies whose command was lost. 4xx/5xx always fit.
_FITTING_REPLIES = {
    "PASV": (227,),
    "EPSV": (229, 200),
    "PORT": (200,),
    "EPRT": (200,),
    "TYPE": (200,),
    "REST": (350,),
    "USER": (230, 331, 332),
    "PASS": (230, 202, 332),
    "AUTH": (234, 334),
    **{verb: (226, 250) for verb in _TRANSFERS},
}
_TLS_HANDSHAKE = b"\x16\x03"  # TLS record: handshake, version 3.x (RFC 8446 section 5.1)
_STOU_NAME = re.compile(rb"FILE: *(\S[^\r\n]*)")  # RFC 1123 4.1.2.9


@dataclass(slots=True)
class _Endpoint:
    host: str
    port: int
    mode: str


@dataclass(slots=True)
class _Command:
    verb: str
    arg: bytes  # empty for PASS/ACCT: never kept
    transfer: _Transfer | None = None
    endpoint: _Endpoint | None = None  # PORT/EPRT: what it set (withdrawn on failure)
    prev_type: str = "A"  # TYPE: the type before it (restored on failure)


@dataclass(slots=True)
class _Transfer:
    txid: int
    verb: str
    filename: str | None
    rest: int
    transfer_type: str
    waits_for: _Command | None = None  # an unanswered PASV/EPSV whose reply gives the endpoint
    endpoint: _Endpoint | None = None
    announced: bool = False  # FtpDataExpected emitted
    replied: bool = False  # a preliminary or final reply was seen


@dataclass(slots=True)
class _Lines:
    """One direction's line splitter state."""

    buf: bytearray
    skipping: bool = False  # drop bytes up to the next LF (after a gap or an over-long line)
    closed: bool = False
    bad: int = 0  # consecutive malformed lines


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _strip_telnet(line: bytes) -> bytes:
    """Remove Telnet IAC commands (RFC 854), e.g. IAC IP IAC DM before ABOR; IAC IAC = 0xFF."""
    if _IAC not in line:
        return line
    out = bytearray()
    i, n = 0, len(line)
    while i < n:
        byte = line[i]
        if byte != _IAC:
            out.append(byte)
            i += 1
        elif i + 1 < n and line[i + 1] == _IAC:
            out.append(_IAC)
            i += 2
        else:
            i += 3 if i + 1 < n and line[i + 1] in _IAC_OPTION_VERBS else 2
    return bytes(out)


# --- the parser ---------------------------------------------------------------------------------


class FtpParser:
    """FTP control channel of one TCP connection; see the module docstring."""

    name = "ftp"

    def __init__(self, caps: FtpCaps = _DEFAULT_CAPS) -> None:
        self.caps = caps
        self._lines = (_Lines(bytearray()), _Lines(bytearray()))
        self._pending: deque[_Command] = deque()
        self._next_txid = 1
        self._state = _State.GREETING
        self._reply_code: bytes | None = None  # inside a multi-line reply: its code
        self._reply_lines: list[bytes] = []
        self._endpoint: _Endpoint | None = None
        self._type = "A"
        self._rest = 0
        # After a gap: unmatched replies are expected. A flag, not a state (module docstring).
        self._desynced = False
        self._user: str | None = None
        self._login: bool | None = None
        self._banner: str | None = None
        self._commands = 0

    # --- public API ----------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[FtpEvent]:
        out: list[FtpEvent] = []
        lines = self._lines[direction]
        if self._state not in _READING or not data or lines.closed:
            return out  # TLS, OPAQUE, CLOSED, VIOLATED: bytes dropped unread (see _READING)
        lines.buf += data
        self._guard(out, self._pump, direction, ts, out)
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[FtpEvent]:
        out: list[FtpEvent] = []
        lines = self._lines[direction]
        if self._state not in _READING or size <= 0 or lines.closed:
            return out  # as in feed: nothing is read, so nothing is missing
        self._guard(out, self._gap, direction, size, ts, out)
        return out

    def eof(self, direction: Direction, ts: float) -> list[FtpEvent]:
        out: list[FtpEvent] = []
        if self._state in _ENDED or self._lines[direction].closed:
            return out  # TLS, CLOSED, VIOLATED: nothing is left to report (see _ENDED)
        self._guard(out, self._eof, direction, ts, out)
        return out

    # --- plumbing ------------------------------------------------------------------------------

    def _advance(self, cause: _Input) -> None:
        """The one place the state changes: (state, cause) looked up in _TRANSITIONS."""
        target = _TRANSITIONS[self._state].get(cause)
        if target is None:
            raise FtpStateError(f"{cause.name} in state {self._state.name}")
        self._state = target

    def _guard(self, out: list[FtpEvent], func: Callable[..., None], *args: object) -> None:
        try:
            func(*args)
        except FtpViolation as exc:
            self._advance(_Input.VIOLATION)
            self._drop_buffers()
            exc.events = out
            raise

    def _pump(self, direction: Direction, ts: float, out: list[FtpEvent]) -> None:
        """Hand every complete line of this direction to its handler."""
        lines = self._lines[direction]
        buf = lines.buf
        pos = 0
        try:
            while self._state in _READING:
                if direction is Direction.TO_SERVER and self._state in _HOLDING:
                    if len(buf) - pos > self.caps.max_held:
                        out.append(Anomaly("ftp_unanswered_auth", "client data held", ts))
                        self._advance(_Input.HOLD_OVERFLOW)
                        self._drop_buffers()
                    break
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if len(buf) - pos > self.caps.max_line and not lines.skipping:
                        out.append(Anomaly("ftp_line_too_long", f"over {self.caps.max_line}", ts))
                        lines.skipping = True
                    if lines.skipping:
                        pos = len(buf)
                    break
                line = bytes(buf[pos:nl])
                pos = nl + 1
                if lines.skipping:
                    lines.skipping = False
                    continue
                if len(line) > self.caps.max_line:
                    out.append(Anomaly("ftp_line_too_long", f"over {self.caps.max_line}", ts))
                    continue
                if line.endswith(b"\r"):
                    line = line[:-1]
                line = _strip_telnet(line)
                if direction is Direction.TO_SERVER:
                    self._on_command_line(line, ts, out)
                else:
                    self._on_reply_line(line, ts, out)
        finally:
            if self._state in _READING:
                del buf[:pos]
            else:
                buf.clear()

    def _bad_line(self, direction: Direction, kind: str, ts: float, out: list[FtpEvent]) -> None:
        lines = self._lines[direction]
        lines.bad += 1
        if lines.bad > self.caps.max_bad_lines:
            raise FtpViolation("ftp_not_ftp", f"{lines.bad} malformed lines in a row")
        out.append(Anomaly(kind, "", ts))

    # --- commands ------------------------------------------------------------------------------

    def _on_command_line(self, line: bytes, ts: float, out: list[FtpEvent]) -> None:
        if not line.strip():
            return
        verb_bytes, _, arg = line.partition(b" ")
        if not _VERB.fullmatch(verb_bytes):
            self._bad_line(Direction.TO_SERVER, "ftp_bad_command", ts, out)
            return
        self._lines[Direction.TO_SERVER].bad = 0
        verb = verb_bytes.decode("ascii").upper()
        self._commands += 1
        if verb in _SECRET_ARGS:
            arg = b""
        cmd = _Command(verb, arg)
        if len(self._pending) >= self.caps.max_pending:
            dropped = self._pending.popleft()
            out.append(Anomaly("ftp_too_many_pending", f"{dropped.verb} dropped", ts))
            self._finish_transfer(dropped, None, None, ts, out)
        if verb == "USER":
            self._user = _decode(arg.strip())[:_MAX_USER]
        elif verb == "TYPE":
            cmd.prev_type = self._type
            self._type = _decode(arg.strip().upper())[:8] or "A"
        elif verb == "REST":
            value = arg.strip()
            self._rest = int(value) if value.isdigit() and len(value) < 20 else 0
        elif verb in ("PORT", "EPRT"):
            cmd.endpoint = self._parse_port_command(verb, arg, ts, out)
            if cmd.endpoint is not None:
                self._endpoint = cmd.endpoint
        elif verb in _TRANSFERS:
            self._start_transfer(cmd, arg, ts, out)
        elif verb == "AUTH":
            self._advance(_Input.AUTH_SENT)  # held from here until its reply
        self._pending.append(cmd)

    def _parse_port_command(
        self, verb: str, arg: bytes, ts: float, out: list[FtpEvent]
    ) -> _Endpoint | None:
        arg = arg.strip()
        if verb == "PORT":
            match = _HOST_PORT.fullmatch(arg)
            endpoint = _host_port(match, "active") if match else None
        else:
            endpoint = _parse_eprt(arg)
        if endpoint is None:
            out.append(Anomaly("ftp_bad_port_argument", verb, ts))
        return endpoint

    def _start_transfer(self, cmd: _Command, arg: bytes, ts: float, out: list[FtpEvent]) -> None:
        name = arg if cmd.verb in ("STOR", "STOU", "APPE", "RETR") else arg.strip()
        transfer = _Transfer(
            txid=self._next_txid,
            verb=cmd.verb,
            filename=_decode(name) if name else None,
            rest=self._rest,
            transfer_type=self._type,
        )
        self._next_txid += 1
        self._rest = 0  # RFC 3659 section 5: REST applies to the next transfer only
        cmd.transfer = transfer
        waiting = [c for c in self._pending if c.verb in _PASSIVE]
        if waiting:
            transfer.waits_for = waiting[-1]
        else:
            transfer.endpoint = self._endpoint or _Endpoint("", 0, "active")
            self._endpoint = None
            self._announce(transfer, ts, out)

    def _announce(self, t: _Transfer, ts: float, out: list[FtpEvent]) -> None:
        if t.announced or t.endpoint is None or (t.verb == "STOU" and not t.replied):
            return
        t.announced = True
        ep = t.endpoint
        direction = "upload" if t.verb in _UPLOADS else "download"
        out.append(
            FtpDataExpected(
                txid=t.txid,
                command=t.verb,
                filename=t.filename,
                direction=direction,
                host=ep.host,
                port=ep.port,
                mode=ep.mode,
                ts=ts,
                transfer_type=t.transfer_type,
                rest=t.rest,
            )
        )

    # --- replies -------------------------------------------------------------------------------

    def _on_reply_line(self, line: bytes, ts: float, out: list[FtpEvent]) -> None:
        code = self._reply_code
        if code is not None:  # inside a multi-line reply
            if line.startswith(code) and (len(line) == 3 or line[3:4] == b" "):
                self._reply_code = None
                self._reply_lines.append(line[4:])
                self._reply(int(code), ts, out)
            elif len(self._reply_lines) >= self.caps.max_reply_lines:
                out.append(Anomaly("ftp_reply_too_long", f"over {self.caps.max_reply_lines}", ts))
                self._reply_code = None
                self._reply(int(code), ts, out)
            else:
                # RFC 959 4.2: a continuation line may repeat "NNN-"; drop that prefix.
                self._reply_lines.append(line[4:] if line.startswith(code + b"-") else line)
            return
        if not line.strip():
            return
        match = _REPLY.match(line)
        if match is None:
            self._bad_line(Direction.TO_CLIENT, "ftp_bad_reply", ts, out)
            return
        self._lines[Direction.TO_CLIENT].bad = 0
        self._reply_lines = [line[4:]]
        if match.group(2) == b"-":
            self._reply_code = match.group(1)
            return
        self._reply(int(match.group(1)), ts, out)

    def _reply_text(self) -> str:
        text = b"\n".join(self._reply_lines).strip()
        return _decode(text)[: self.caps.max_text]

    def _reply(self, code: int, ts: float, out: list[FtpEvent]) -> None:
        """One complete (possibly multi-line) reply, text in self._reply_lines."""
        if self._state in _AWAITING_GREETING:
            if code in (120, 220, 421):  # RFC 959 section 5.4: 120 is followed by a 220
                if code != 120:
                    self._banner = self._reply_text()
                    self._advance(_Input.GREETING_REPLY)
                return
            self._advance(_Input.NO_GREETING)  # picked up mid-stream: no greeting
        if code < 200:
            if self._pending:
                self._preliminary(self._pending[0], ts, out)
            return
        if not self._pending:
            if not self._desynced and code != 421:  # 421 may come unsolicited (RFC 959 5.4)
                out.append(Anomaly("ftp_unmatched_reply", str(code), ts))
            return
        if (
            self._desynced
            and code < 400
            and code not in _FITTING_REPLIES.get(self._pending[0].verb, (code,))
        ):
            return  # most likely the answer to a command the gap swallowed
        cmd = self._pending.popleft()
        ok = 200 <= code < 300
        verb = cmd.verb
        if verb in _PASSIVE:
            self._on_passive_reply(cmd, code, ts, out)
        elif verb in ("PORT", "EPRT"):
            if not ok and self._endpoint is cmd.endpoint:
                self._endpoint = None
        elif verb == "TYPE" and not ok:
            self._type = cmd.prev_type
        elif verb == "REST" and code != 350:
            self._rest = 0
        elif verb in ("USER", "PASS", "ACCT"):
            if code in (230, 232):
                self._login = True
            elif code >= 500 or (code >= 400 and verb != "USER"):
                self._login = False
        elif verb == "AUTH":
            if code == 234:  # RFC 4217 section 4: TLS negotiation starts now
                self._advance(_Input.AUTH_ACCEPTED)
                self._start_tls(ts, out)
                return
            # Refused: the client's held bytes are plain commands again.
            self._advance(_Input.AUTH_REFUSED)
            self._pump(Direction.TO_SERVER, ts, out)
        if cmd.transfer is not None:
            if ok:  # a STOU answered 2xx at once still names its file
                self._preliminary(cmd, ts, out)
            self._finish_transfer(cmd, code, self._reply_text(), ts, out)

    def _preliminary(self, cmd: _Command, ts: float, out: list[FtpEvent]) -> None:
        t = cmd.transfer
        if t is None or t.replied:
            return
        t.replied = True
        if t.verb == "STOU":
            match = _STOU_NAME.search(b"\n".join(self._reply_lines))
            if match:
                t.filename = _decode(match.group(1).strip())
        self._announce(t, ts, out)

    def _on_passive_reply(self, cmd: _Command, code: int, ts: float, out: list[FtpEvent]) -> None:
        endpoint = None
        if code in (227, 229):
            text = b" ".join(self._reply_lines)
            if code == 227:
                match = _HOST_PORT.search(text)
                endpoint = _host_port(match, "passive") if match else None
            else:
                epsv = _EPSV_REPLY.search(text)
                port = int(epsv.group(2)) if epsv else 0
                endpoint = _Endpoint("", port, "passive") if 0 < port < 65536 else None
            if endpoint is None:
                out.append(Anomaly("ftp_bad_port_argument", f"{code} reply", ts))
        for waiting in self._pending:
            t = waiting.transfer
            if t is not None and t.waits_for is cmd:
                t.waits_for = None
                t.endpoint = endpoint
                self._announce(t, ts, out)
                return
        self._endpoint = endpoint

    def _finish_transfer(
        self, cmd: _Command, code: int | None, text: str | None, ts: float, out: list[FtpEvent]
    ) -> None:
        t = cmd.transfer
        if t is None:
            return
        cmd.transfer = None
        out.append(
            FtpTransfer(
                txid=t.txid,
                command=t.verb,
                filename=t.filename,
                direction="upload" if t.verb in _UPLOADS else "download",
                mode=t.endpoint.mode if t.endpoint else None,
                reply_code=code,
                reply_text=text,
                ok=None if code is None else 200 <= code < 300,
                ts=ts,
                rest=t.rest,
            )
        )

    # --- gaps, eof, end of parsing -------------------------------------------------------------

    def _flush(self, ts: float, out: list[FtpEvent]) -> None:
        """Report every pending transfer as unanswered and forget the queue."""
        while self._pending:
            self._finish_transfer(self._pending.popleft(), None, None, ts, out)

    def _drop_buffers(self) -> None:
        """Leaving the reading states: nothing buffered will ever be parsed."""
        for lines in self._lines:
            lines.buf.clear()

    def _start_tls(self, ts: float, out: list[FtpEvent]) -> None:
        """Entered TLS: the rest is encrypted (RFC 4217 section 4), the flow is only counted."""
        self._drop_buffers()
        self._flush(ts, out)
        self._emit_session(ts, out)
        out.append(Opaque("auth_tls", ts))

    def _gap(self, direction: Direction, size: int, ts: float, out: list[FtpEvent]) -> None:
        # Which replies the missing bytes held is unknowable: from now on replies that do not
        # fit the oldest command are skipped (_FITTING_REPLIES) and unmatched ones are expected.
        out.append(Anomaly("ftp_gap", f"{size} bytes missing", ts))
        lines = self._lines[direction]
        lines.buf.clear()
        lines.skipping = True
        if direction is Direction.TO_CLIENT:
            self._reply_code = None
        self._desynced = True
        held = self._state in _HOLDING
        # The AUTH reply may be what went missing: a TLS record from the client says it was 234
        # (RFC 4217 section 4: the client starts the handshake only after a 234).
        tls = held and self._lines[Direction.TO_SERVER].buf.startswith(_TLS_HANDSHAKE)
        self._flush(ts, out)
        self._advance(_Input.GAP_THEN_TLS if tls else _Input.GAP)
        if tls:
            self._start_tls(ts, out)
        elif held:  # the AUTH is flushed: the held bytes are commands again
            self._pump(Direction.TO_SERVER, ts, out)

    def _eof(self, direction: Direction, ts: float, out: list[FtpEvent]) -> None:
        lines = self._lines[direction]
        # OPAQUE read nothing (no line can be cut) and keeps its queue for LAST_EOF to report.
        if self._state in _READING:
            held = direction is Direction.TO_SERVER and self._state in _HOLDING
            if lines.buf.strip() and not lines.skipping and not held:
                out.append(Anomaly("ftp_truncated_line", f"{len(lines.buf)} bytes", ts))
            if direction is Direction.TO_CLIENT:
                self._flush(ts, out)  # no reply can come any more
        lines.buf.clear()
        lines.closed = True
        if all(x.closed for x in self._lines):
            self._advance(_Input.LAST_EOF)
            self._flush(ts, out)
            self._emit_session(ts, out)
        elif direction is Direction.TO_SERVER:
            self._advance(_Input.CLIENT_EOF)
        else:
            self._advance(_Input.SERVER_EOF)

    def _emit_session(self, ts: float, out: list[FtpEvent]) -> None:
        """Called on entering TLS or CLOSED; the table has no row out of either, so once."""
        out.append(
            FtpSession(
                user=self._user,
                auth_tls=self._state is _State.TLS,
                login_success=self._login,
                server_banner=self._banner,
                commands=self._commands,
                ts=ts,
            )
        )


def _host_port(match: re.Match[bytes], mode: str) -> _Endpoint | None:
    """h1,h2,h3,h4,p1,p2 (RFC 959 section 4.1.2 PORT, 227 reply)."""
    numbers = [int(g) for g in match.groups()]
    if any(n > 255 for n in numbers):
        return None
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        return None
    return _Endpoint(".".join(str(n) for n in numbers[:4]), port, mode)


def _parse_eprt(arg: bytes) -> _Endpoint | None:
    """<d><net-prt><d><net-addr><d><tcp-port><d> (RFC 2428 section 2), <d> printable ASCII."""
    if len(arg) < 7 or not 33 <= arg[0] <= 126:
        return None
    parts = arg.split(arg[0:1])
    if len(parts) != 5 or parts[0] or parts[4]:
        return None
    family, addr, port = parts[1], parts[2], parts[3]
    if not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        return None
    try:
        ip = ipaddress.ip_address(addr.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if (family, ip.version) not in ((b"1", 4), (b"2", 6)):
        return None
    return _Endpoint(str(ip), int(port), "active")


# --- detection ----------------------------------------------------------------------------------

_DETECT_LIMIT = 4096  # bytes of a greeting looked at
_FIRST_COMMANDS = (b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS")


def detect(direction: Direction, data: bytes) -> bool | None:
    """Is this the start of an FTP control connection? True, False or None (need more bytes).

    Client side: the first command is USER, AUTH, FEAT, SYST or OPTS. Server side: a 220
    greeting is shared with SMTP (whose detector runs first): one naming SMTP/ESMTP is not FTP,
    one naming FTP is, anything else stays undecided (None) for the client side to settle.
    """
    if direction is Direction.TO_SERVER:
        return _detect_command(data)
    return _detect_greeting(data[:_DETECT_LIMIT])


def _detect_command(data: bytes) -> bool | None:
    head = data[:5].upper()
    for verb in _FIRST_COMMANDS:
        if len(head) < 5:
            if (verb + b" ").startswith(head) or (verb + b"\r").startswith(head):
                return None
        elif head[:4] == verb and head[4:5] in (b" ", b"\r", b"\n"):
            return True
    return False


def _detect_greeting(data: bytes) -> bool | None:
    if len(data) < 3:
        return None if b"220".startswith(data) else False
    if not data.startswith(b"220") or (len(data) > 3 and data[3:4] not in (b" ", b"-")):
        return False
    upper = data.upper()
    if b"SMTP" in upper:  # covers ESMTP
        return False
    return True if b"FTP" in upper else None


# --- the data connection ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FtpDataLink:
    """The `about` of a data connection's object: its announcement and the control flow."""

    expected: FtpDataExpected
    control_flow_id: int


# Everything FtpDataParser returns: the transfer as one object (proto "ftp"), anomalies.
FtpDataEvent = ObjectStart | ObjectChunk | ObjectGap | ObjectEnd | Anomaly


class FtpDataParser:
    """One FTP data connection, linked to the transfer its control connection announced
    (`FtpDataExpected`) by the expectation table (expect.py).

    In: reassembled bytes of the data connection. Out: one object (start, chunks, gaps, end)
    keyed by `serial`, in the direction of the transfer. Which TCP side sends is not the
    question (in active mode the FTP server opens the connection): every byte that flows is the
    file; the transfer's direction (upload = STOR/STOU/APPE) comes from the control channel.
    Bytes flowing the other way, which a real FTP data connection never carries, are reported
    and ignored.
    """

    name = "ftp-data"

    def __init__(self, expected: FtpDataExpected, serial: int, announcer: int) -> None:
        self.expected = expected
        self.serial = serial  # the file's transfer number (its tx_id)
        self._direction = (
            Direction.TO_SERVER if expected.direction == "upload" else Direction.TO_CLIENT
        )
        self._link = FtpDataLink(expected, announcer)
        self._sender: Direction | None = None
        self._started = False
        self._ended = False
        self._eof = [False, False]

    def _start(self, ts: float) -> list[FtpDataEvent]:
        self._started = True
        name = self.expected.filename
        filename = posixpath.basename(name.replace("\\", "/")) if name else None
        return [
            ObjectStart(
                self.serial, self._direction, ts, "ftp", name=filename or None, about=self._link
            )
        ]

    def _accept(self, direction: Direction, ts: float) -> tuple[list[FtpDataEvent], bool]:
        if self._ended:
            return [], False
        if self._sender is None:
            self._sender = direction
        if direction != self._sender:
            return [
                Anomaly("ftp_data_both_ways", "data connection carried bytes both ways", ts)
            ], False
        return (self._start(ts) if not self._started else []), True

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[FtpDataEvent]:
        out, ok = self._accept(direction, ts)
        if ok:
            out.append(ObjectChunk(self.serial, self._direction, data))
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[FtpDataEvent]:
        out, ok = self._accept(direction, ts)
        if ok:
            out.append(ObjectGap(self.serial, self._direction, size))
        return out

    def eof(self, direction: Direction, ts: float) -> list[FtpDataEvent]:
        """The sender's end is the end of the file (RFC 959 stream mode: close = EOF)."""
        self._eof[direction] = True
        if self._ended or not self._started:
            return []
        if direction == self._sender or all(self._eof):
            self._ended = True
            # A close by the sender ends the file; anything else (RST, flow timeout before the
            # sender's FIN) is judged by the caller through the stream's gaps.
            return [ObjectEnd(self.serial, self._direction, direction == self._sender, ts)]
        return []
