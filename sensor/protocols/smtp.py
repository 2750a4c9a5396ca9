"""SMTP/ESMTP parser for both directions of one TCP connection (protocols stage).

In: reassembled bytes of the client->server and server->client streams, gaps and eofs (sans-IO,
see base.py). Out (`SmtpEvent`): events in wire order: each message as an object (start,
chunks, gaps, end: base.py; the content stage's MIME engine reads it), one `SmtpTransaction` per
MAIL transaction (the envelope and its fate), `Opaque` when STARTTLS is accepted, `Anomaly`.

Theory of operation
-------------------
Each direction has a `_Reader` (a byte buffer plus a state). The server side is always read as
reply lines (RFC 5321 section 4.2: "NNN-text" continues a reply, "NNN text" ends it); only the
first line of a reply is kept. Its state is kept simple, outside the table: COMMAND until
STARTTLS is accepted (TLS) or it ends (CLOSED; an eof after TLS leaves it TLS), set directly in
`_start_tls` and `_eof_server`.

The client side is a state machine, and the table `_TRANSITIONS` at the top of the code is all
of it: (state, input) -> next state. The states (`_State`) say how the client's bytes are read:
command lines, held (AWAIT_*: the reply to DATA, AUTH or STARTTLS decides what they are),
message content, counted BDAT chunk bytes, AUTH lines dropped unread, nothing (TLS, CLOSED).
The inputs (`_Input`) are what happens to the client side: a command line (DATA, AUTH and
STARTTLS come in two kinds: a server is seen and will answer, or half-duplex: none is seen, or it
is gone, so the command is assumed accepted), the end of what a state reads (CRLF.CRLF, a BDAT
chunk counted out, the lines of an AUTH exchange), the awaited reply (354, 334, 220, anything
else), no reply coming after all (assumed accepted), a reply that settles message data whose end
was lost, a gap, the eof. `_move` is the only place the client's state changes; a pair missing
from the table is a bug in this parser, not in the traffic: `_move` raises `_NoTransition`,
which is not a ProtocolViolation, so the app layer contains it as a `parser_error` anomaly.
Where an input deliberately leaves the state as it is (a gap in message data, an eof after
STARTTLS), the table says so.

`_pump_client` hands the buffered client bytes to the step of the current state
(`_step_command`, `_step_data`, ...) until no step makes progress. AWAIT_* hold the client's
bytes until the reply that decides what they are: a client never sends message content before
354, TLS before 220, or an AUTH response before 334 (RFC 5321 3.3, RFC 3207 4, RFC 4954 4), so
the held bytes are normally empty. Data held over `_MAX_HOLD` bytes is assumed accepted
(`smtp_unanswered_command`), and so is what is held when either side ends.

A reply never reads client bytes itself: `_on_reply` pairs it with its command, feeds the client
machine the input it means and returns a `_Release` when held client bytes may now be read.
`_pump_server` then reads them (`_pump_client`) before it takes the next reply line, and only
after that retires the released command. So "354 go\r\n250 ok\r\n" in one segment still
pairs the 250 with the end of data found in the released bytes.

Pairing (RFC 2920, PIPELINING): every command line expects exactly one reply, so commands are
queued in `_pending` in order and each final reply takes the oldest; the end of message data
(CRLF.CRLF, or the chunk of BDAT LAST) queues a pseudo-command for the reply that settles the
message. A first reply 220/421/554 before any command is the greeting. Commands are only queued
once server bytes have been seen: in a client-only capture nothing would ever answer them.

Transactions: MAIL opens one; RSET, EHLO/HELO, a new MAIL, QUIT, STARTTLS or eof closes it
from the client side, but it is reported (`SmtpTransaction`) only when every reply it still
waits for has arrived (a pipelined "CRLF.CRLF MAIL ..." must not lose the 250 of the first
message), or at eof. `status` is decided when it is reported:

    encrypted   STARTTLS accepted (content after it is invisible)
    accepted    2xx to the end of data        rejected   4xx/5xx to it
    rejected    MAIL, DATA/BDAT or every RCPT refused
    aborted     closed by RSET/EHLO/new MAIL before the message was sent
    incomplete  anything else (no data, no final reply seen, eof)

Message data (RFC 5321 section 4.5.2): the terminator is CRLF "." CRLF only; a line starting
with "." loses that dot. The first CRLF of the terminator ends the message's last line and
belongs to the message (section 4.1.1.4), so the message is exactly what the client sent before
the final "." CRLF. A line's CRLF is held back (`owed_crlf`) until the next byte shows whether
a "." follows. At most two bytes (".", ".\\r",
a trailing "\\r") are ever buffered in DATA; BDAT chunks (RFC 3030) are counted, not scanned.

Credentials: AUTH records only the mechanism name. The initial response, the 334 challenges and
every client line of the exchange are dropped unread; no anomaly detail ever quotes a client
line (only lengths and known verbs).

Two failure channels (STYLE.md habit 6): `Anomaly` in the event list, or `SmtpViolation` (a
`ProtocolViolation`) whose `events` carry what the failing call produced, including the
`ObjectEnd(complete=False)` and the `SmtpTransaction` of a message cut short.

Anomaly kinds (stable; "violation" = raised as ProtocolViolation.reason, parser detaches)
-----------------------------------------------------------------------------------------
| kind                      | channel   | meaning                                            |
|---------------------------|-----------|----------------------------------------------------|
| smtp_line_too_long        | both      | line over SmtpCaps.max_line (anomaly); no newline  |
|                           |           | within 64 KiB (violation)                          |
| smtp_bad_reply            | both      | reply line not "NNN[ -]text" (anomaly, skipped);   |
|                           |           | more than _MAX_BAD_LINES such lines (violation)    |
| smtp_unknown_command      | both      | unknown verb (anomaly); too many (violation)       |
| smtp_bad_command          | anomaly   | MAIL/RCPT without FROM:/TO:, BDAT extra argument   |
| smtp_bdat_bad_size        | violation | BDAT size missing, not a number or over the cap    |
| smtp_bare_lf_end          | anomaly   | bare LF/CR next to a "." in DATA (smuggling signal)|
| smtp_gap                  | anomaly   | capture gap in commands/replies: resync at a line  |
| smtp_too_many_pending     | anomaly   | over max_pending_commands; oldest dropped          |
| smtp_too_many_rcpt        | anomaly   | over max_rcpt recipients; the rest not recorded    |
| smtp_unmatched_reply      | anomaly   | a reply with no command waiting for it             |
| smtp_unanswered_command   | anomaly   | client data held over _MAX_HOLD awaiting a reply   |
|                           |           | to DATA/AUTH/STARTTLS; assumed accepted            |
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sensor.anomaly import Anomaly
from sensor.protocols.base import (
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
    "Envelope",
    "SmtpCaps",
    "SmtpEvent",
    "SmtpParser",
    "SmtpTransaction",
    "SmtpViolation",
    "detect",
]

# --- the client's state machine -----------------------------------------------------------------
#
# The whole of it is `_TRANSITIONS`: (state, input) -> next state; `SmtpParser._move` is the only
# code that changes the client reader's state, and it consults nothing else. A pair missing here
# is a parser bug (`_NoTransition`). Inputs that leave the state as it is are listed too, so that
# every input the parser feeds is a row here. Client bytes and gaps after TLS or CLOSED never
# reach the machine (`feed` and `gap` drop them), nor does an eof after CLOSED. The server reader
# is not driven by this table (see the module docstring).


class _State(enum.Enum):
    """How a reader takes its bytes. The server reader only uses COMMAND (reply lines), TLS and
    CLOSED."""

    COMMAND = "command"  # command lines
    AWAIT_DATA = "await_data"  # DATA sent: bytes held until the 354 (RFC 5321 3.3)
    AWAIT_AUTH = "await_auth"  # AUTH or a response sent: held until a 334 or the final reply
    AWAIT_TLS = "await_tls"  # STARTTLS sent: held until the 220 (RFC 3207 section 4)
    DATA = "data"  # message content until CRLF.CRLF (RFC 5321 4.5.2)
    BDAT = "bdat"  # counted chunk bytes, whatever they hold (RFC 3030 section 2)
    AUTH = "auth"  # the one line answering a 334 challenge (dropped unread)
    AUTH_HALF_DUPLEX = "auth_half_duplex"  # the lines the mechanism needs (dropped unread)
    TLS = "tls"  # after STARTTLS: nothing is read any more
    CLOSED = "closed"


class _Input(enum.Enum):
    """What happens to the client side. "Half-duplex": no server is seen (or it has closed), so
    nothing will answer and the command is taken as accepted."""

    COMMAND = "command"  # any other command line (MAIL, RCPT, EHLO, unknown, a one-line AUTH)
    DATA = "data"  # DATA, a server will answer
    DATA_HALF_DUPLEX = "data_half_duplex"
    BDAT = "bdat"  # BDAT n [LAST]: its chunk follows at once, no reply awaited (RFC 3030 2)
    AUTH = "auth"  # AUTH mechanism [initial-response], a server will answer (RFC 4954 4)
    AUTH_HALF_DUPLEX = "auth_half_duplex"  # AUTH whose mechanism still needs client lines
    STARTTLS = "starttls"  # STARTTLS, a server will answer
    STARTTLS_HALF_DUPLEX = "starttls_half_duplex"
    END_OF_DATA = "end_of_data"  # CRLF "." CRLF (RFC 5321 4.1.1.4)
    CHUNK_DONE = "chunk_done"  # the last byte of a BDAT chunk counted
    AUTH_LINES_DONE = "auth_lines_done"  # the client's line(s) of an AUTH exchange read, or
    # (half-duplex) a line that cannot be base64 shows the exchange is over
    REPLY_354 = "reply_354"  # the awaited reply: 354 to DATA
    REPLY_334 = "reply_334"  # the awaited reply: a 334 challenge to AUTH or a response
    REPLY_220 = "reply_220"  # the reply to STARTTLS: 220, TLS starts (RFC 3207 section 4)
    REPLY_OTHER = "reply_other"  # the awaited reply: anything else (refused, AUTH's final)
    ASSUMED_ACCEPTED = "assumed_accepted"  # no reply will decide: hold overflow, a side ended
    DATA_SETTLED = "data_settled"  # a reply nothing waits for while message data is read
    GAP = "gap"  # client bytes lost to a capture gap
    EOF = "eof"  # the client side ended


_TRANSITIONS: dict[tuple[_State, _Input], _State] = {
    # Command lines (RFC 5321 4.1.1). DATA, AUTH and STARTTLS wait for their reply when one can
    # come; half-duplex they are taken as accepted (a capture of one direction still shows the
    # message; AUTH lines are still dropped unread).
    (_State.COMMAND, _Input.COMMAND): _State.COMMAND,
    (_State.COMMAND, _Input.DATA): _State.AWAIT_DATA,
    (_State.COMMAND, _Input.DATA_HALF_DUPLEX): _State.DATA,
    (_State.COMMAND, _Input.BDAT): _State.BDAT,
    (_State.COMMAND, _Input.AUTH): _State.AWAIT_AUTH,
    (_State.COMMAND, _Input.AUTH_HALF_DUPLEX): _State.AUTH_HALF_DUPLEX,
    (_State.COMMAND, _Input.STARTTLS): _State.AWAIT_TLS,
    (_State.COMMAND, _Input.STARTTLS_HALF_DUPLEX): _State.TLS,
    (_State.COMMAND, _Input.GAP): _State.COMMAND,  # resynchronise at the next line
    (_State.COMMAND, _Input.EOF): _State.CLOSED,
    # Held until the reply that decides (RFC 5321 3.3, RFC 4954 4, RFC 3207 4). A gap while
    # holding is counted and reported once the reply says what the lost bytes were.
    (_State.AWAIT_DATA, _Input.REPLY_354): _State.DATA,
    (_State.AWAIT_DATA, _Input.REPLY_OTHER): _State.COMMAND,
    (_State.AWAIT_DATA, _Input.ASSUMED_ACCEPTED): _State.DATA,
    (_State.AWAIT_DATA, _Input.GAP): _State.AWAIT_DATA,
    (_State.AWAIT_DATA, _Input.EOF): _State.CLOSED,
    (_State.AWAIT_AUTH, _Input.REPLY_334): _State.AUTH,
    (_State.AWAIT_AUTH, _Input.REPLY_OTHER): _State.COMMAND,  # 235, or 4xx/5xx
    (_State.AWAIT_AUTH, _Input.ASSUMED_ACCEPTED): _State.COMMAND,
    (_State.AWAIT_AUTH, _Input.GAP): _State.AWAIT_AUTH,
    (_State.AWAIT_AUTH, _Input.EOF): _State.CLOSED,
    (_State.AWAIT_TLS, _Input.REPLY_220): _State.TLS,
    (_State.AWAIT_TLS, _Input.REPLY_OTHER): _State.COMMAND,  # refused: goes on in clear
    (_State.AWAIT_TLS, _Input.ASSUMED_ACCEPTED): _State.TLS,
    (_State.AWAIT_TLS, _Input.GAP): _State.AWAIT_TLS,
    (_State.AWAIT_TLS, _Input.EOF): _State.CLOSED,
    # Message data. A gap does not end it: the next CRLF "." CRLF still does.
    (_State.DATA, _Input.END_OF_DATA): _State.COMMAND,
    (_State.DATA, _Input.DATA_SETTLED): _State.COMMAND,
    (_State.DATA, _Input.GAP): _State.DATA,
    (_State.DATA, _Input.EOF): _State.CLOSED,
    (_State.BDAT, _Input.CHUNK_DONE): _State.COMMAND,
    (_State.BDAT, _Input.DATA_SETTLED): _State.COMMAND,
    (_State.BDAT, _Input.GAP): _State.BDAT,  # the lost bytes count as chunk bytes
    (_State.BDAT, _Input.EOF): _State.CLOSED,
    # AUTH exchanges (RFC 4954 4): a gap is taken as the line(s) lost.
    (_State.AUTH, _Input.AUTH_LINES_DONE): _State.AWAIT_AUTH,
    (_State.AUTH, _Input.GAP): _State.AWAIT_AUTH,
    (_State.AUTH, _Input.EOF): _State.CLOSED,
    (_State.AUTH_HALF_DUPLEX, _Input.AUTH_LINES_DONE): _State.COMMAND,
    (_State.AUTH_HALF_DUPLEX, _Input.GAP): _State.COMMAND,
    (_State.AUTH_HALF_DUPLEX, _Input.EOF): _State.CLOSED,
    # After STARTTLS only the byte counts matter; the client's eof does not undo it.
    (_State.TLS, _Input.EOF): _State.TLS,
    # A 220 to STARTTLS after the client's eof: the server side starts TLS, the client stays.
    (_State.CLOSED, _Input.REPLY_220): _State.CLOSED,
}

_AWAITING = frozenset({_State.AWAIT_DATA, _State.AWAIT_AUTH, _State.AWAIT_TLS})


class _NoTransition(RuntimeError):
    """The client machine was fed an input its state has no row for: a bug in this parser, not
    in the traffic (deliberately not a ProtocolViolation: the app layer contains it as
    `parser_error`)."""


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope as known when a message starts (recipients not refused so far): the
    `about` of its object, so the message's files can name who it goes to before the
    transaction is settled."""

    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        """As `ProtocolEvent.indicators`: the envelope's paths (known before the message)."""
        paths = ([self.mail_from] if self.mail_from else []) + list(
            self.rcpt_to[:MAX_INDICATOR_RCPT]
        )
        return tuple(("email", path, "smtp-envelope") for path in paths)


@dataclass(slots=True)
class SmtpTransaction(ProtocolEvent):
    txid: int
    helo: str | None
    mail_from: str | None
    mail_params: list[str]
    rcpt_to: list[str]  # accepted by the server, or no reply seen
    rcpt_rejected: list[str]  # refused (4xx/5xx)
    auth_mechanism: str | None
    tls: bool
    bdat: bool
    status: str  # accepted | rejected | incomplete | aborted | encrypted
    last_reply: str | None
    size: int  # message bytes after unstuffing
    ts: float
    missing: int = 0  # message bytes lost to capture gaps (not in `size`)

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        """The envelope's sender and recipients, refused ones too (a probe for a canary
        mailbox is news even when the server said no)."""
        paths = [self.mail_from] if self.mail_from else []
        paths += self.rcpt_to[:MAX_INDICATOR_RCPT] + self.rcpt_rejected[:MAX_INDICATOR_RCPT]
        return tuple(("email", path, "smtp-envelope") for path in paths)


@dataclass(frozen=True, slots=True)
class SmtpCaps:
    max_line: int = 4096  # RFC 5321 4.5.3.1 says 512/1000; be lenient
    max_rcpt: int = 1000
    max_pending_commands: int = 1000  # pipelined commands awaiting replies
    max_bdat_chunk: int = 1 << 31


# Everything SmtpParser returns. Each message is an object (proto "smtp", `message=True`: the
# MIME engine reads it; its `Envelope` as `about`); STARTTLS accepted is Opaque.
SmtpEvent = SmtpTransaction | ObjectStart | ObjectChunk | ObjectGap | ObjectEnd | Opaque | Anomaly


class SmtpViolation(ProtocolViolation):
    """The SMTP parser's violation (carries `events`, see ProtocolViolation)."""


# --- constants ----------------------------------------------------------------------------------

_DEFAULT_CAPS = SmtpCaps()
_LINE_HARD_CAP = 65536  # no newline within this many bytes: not SMTP any more
_MAX_HOLD = 65536  # client bytes held while waiting for the reply to DATA/AUTH/STARTTLS
_MAX_BAD_LINES = 32  # unparseable replies / unknown commands before giving up on the flow
MAX_INDICATOR_RCPT = 100  # envelope recipients of a transaction looked up as canaries
_MAX_REPLY_TEXT = 200
_MAX_ARG = 1024  # longest address / parameter kept
_CR, _LF, _DOT = 0x0D, 0x0A, 0x2E
_TERMINATOR_LOOKBACK = 3  # bytes of raw DATA kept to find smuggling sequences across feeds
# SMTP smuggling signals (raw DATA bytes): a bare LF before ".", a bare CR before ".", or
# CRLF "." followed by a bare LF. None of them ends the message (RFC 5321 4.1.1.4). Matched in a
# lookahead so that overlapping occurrences all count: the count must not depend on where the
# stream was split.
_SMUGGLING = re.compile(rb"(?=((?<!\r)\n\.|\r\.|\r\n\.\n))")
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]*")
_KNOWN_VERBS = frozenset(
    b"HELO EHLO LHLO MAIL RCPT DATA BDAT RSET QUIT NOOP VRFY EXPN HELP STARTTLS AUTH ETRN "
    b"ATRN TURN XCLIENT XFORWARD SEND SOML SAML".split()
)
# Client lines an AUTH exchange needs after the command when no reply can be seen (RFC 4954,
# RFC 4616 PLAIN, RFC 2195 CRAM-MD5, LOGIN draft): (without, with) an initial response.
_AUTH_LINES: dict[str, tuple[int, int]] = {
    "PLAIN": (1, 0),
    "LOGIN": (2, 1),
    "CRAM-MD5": (1, 1),
    "XOAUTH2": (1, 0),
    "OAUTHBEARER": (1, 0),
    "ANONYMOUS": (1, 0),
}


# --- state --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rcpt:
    address: str
    code: int | None = None  # reply code, None while not seen


@dataclass(slots=True)
class _Tx:
    txid: int
    helo: str | None
    auth: str | None
    mail_from: str | None = None
    mail_params: list[str] = field(default_factory=list)
    rcpts: list[_Rcpt] = field(default_factory=list)
    rcpt_over_cap: bool = False
    bdat: bool = False
    tls: bool = False
    mail_refused: bool = False
    data_refused: bool = False
    final_code: int | None = None  # reply to the end of data
    last_reply: str | None = None
    message_started: bool = False
    message_ended: bool = False
    data_done: bool = False  # end of data seen
    size: int = 0
    missing: int = 0
    outstanding: int = 0  # queued commands of this transaction still waiting for a reply
    closed_by: str | None = None  # what ended it on the client side (rset, mail, quit, ...)
    reported: bool = False


@dataclass(slots=True)
class _Pending:
    verb: bytes  # upper-case command verb; b"." is the end of message data
    tx: _Tx | None = None
    rcpt: _Rcpt | None = None
    last: bool = False  # BDAT ... LAST
    resolved: bool = False  # the client side stopped waiting for this reply (hold overflow)


@dataclass(slots=True)
class _Reader:
    direction: Direction
    state: _State = _State.COMMAND
    buf: bytearray = field(default_factory=bytearray)
    scan: int = 0  # resume offset for the newline search in the current line
    long_reported: bool = False  # smtp_line_too_long already noted for the current line
    skip_line: bool = False  # after a gap: drop bytes up to the next LF
    seen: bool = False  # any byte (or gap) arrived in this direction
    # client only
    tx: _Tx | None = None  # the transaction whose message is being read
    awaiting: _Pending | None = None  # AWAIT_*: the command whose reply decides
    await_lost: int = 0  # AWAIT_*: bytes lost to a gap while holding
    auth_left: int | None = 0  # AUTH_HALF_DUPLEX: lines still expected (None: unknown mechanism)
    bol: bool = True  # DATA: at the beginning of a line
    owed_crlf: bool = False  # DATA: a line's CRLF not yet handed out (may be the terminator)
    tail: bytes = b"\r\n"  # DATA: last raw bytes, for smuggling sequences across feeds
    smuggling: int = 0  # DATA: smuggling sequences seen in this message
    remaining: int = 0  # BDAT: chunk bytes still expected
    bdat_last: bool = False
    # server only
    reply_first: bytes | None = None  # first line of a multi-line reply in progress


@dataclass(frozen=True, slots=True)
class _Release:
    """A reply let the client's held bytes be read (`_on_reply` -> `_pump_server`). The command
    it `answered` is retired only once they are read: it still counts as outstanding while they
    are, so a transaction that one of them closes is reported after all of them."""

    answered: _Pending | None  # None: the command waits for more replies (AUTH after 334)


# --- the parser ---------------------------------------------------------------------------------


class SmtpParser:
    """SMTP over one TCP connection. One instance per flow; see the module docstring."""

    name = "smtp"

    def __init__(self, caps: SmtpCaps = _DEFAULT_CAPS) -> None:
        self.caps = caps
        self._client = _Reader(Direction.TO_SERVER)
        self._server = _Reader(Direction.TO_CLIENT)
        self._pending: deque[_Pending] = deque()
        self._open: dict[int, _Tx] = {}  # transactions not yet reported
        self._current: _Tx | None = None  # the transaction the client is building
        self._orphan: _Tx | None = None  # server-only capture: a 354 waiting for its final reply
        self._helo: str | None = None
        self._auth: str | None = None
        self._greeted = False
        self._bad_lines = 0
        self._next_txid = 1
        self._dead = False

    # --- public API ----------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[SmtpEvent]:
        out: list[SmtpEvent] = []
        r = self._reader(direction)
        if self._dead or not data or r.state in (_State.TLS, _State.CLOSED):
            return out
        r.seen = True
        r.buf += data
        if r is self._client:
            self._guard(out, self._pump_client, ts, out)
        else:
            self._guard(out, self._pump_server, ts, out)
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[SmtpEvent]:
        out: list[SmtpEvent] = []
        r = self._reader(direction)
        if self._dead or size <= 0 or r.state in (_State.TLS, _State.CLOSED):
            return out
        r.seen = True
        if r is self._client:
            self._guard(out, self._gap_client, size, ts, out)
        else:
            self._guard(out, self._gap_server, size, ts, out)
        return out

    def eof(self, direction: Direction, ts: float) -> list[SmtpEvent]:
        out: list[SmtpEvent] = []
        r = self._reader(direction)
        if self._dead or r.state is _State.CLOSED:
            return out
        if r is self._client:
            self._guard(out, self._eof_client, ts, out)
        else:
            self._guard(out, self._eof_server, ts, out)
        return out

    # --- plumbing ------------------------------------------------------------------------------

    def _reader(self, direction: Direction) -> _Reader:
        return self._client if direction is Direction.TO_SERVER else self._server

    def _guard(self, out: list[SmtpEvent], func: Callable[..., None], *args: object) -> None:
        """Run a step; on a violation close what is open, attach the events and stop."""
        try:
            func(*args)
        except SmtpViolation as exc:
            self._dead = True
            exc.events = out
            raise

    def _violation(self, kind: str, detail: str, ts: float, out: list[SmtpEvent]) -> None:
        if self._client.tx is not None:
            self._end_message(False, ts, out)
        self._report_all(ts, out)
        raise SmtpViolation(kind, detail)

    def _bad_line(self, kind: str, detail: str, ts: float, out: list[SmtpEvent]) -> None:
        out.append(Anomaly(kind, detail, ts))
        self._bad_lines += 1
        if self._bad_lines > _MAX_BAD_LINES:
            self._violation(kind, f"more than {_MAX_BAD_LINES} unparseable lines", ts, out)

    def _take_line(
        self, r: _Reader, pos: int, ts: float, out: list[SmtpEvent]
    ) -> tuple[bytes | None, int]:
        """The next line (CRLF or bare LF stripped) and the position after it, or (None, pos)."""
        buf = r.buf
        if r.skip_line:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return None, len(buf)  # drop it all, still resynchronising
            r.skip_line = False
            pos = nl + 1
        nl = buf.find(b"\n", pos + r.scan)
        if nl < 0:
            r.scan = len(buf) - pos
            hard = max(_LINE_HARD_CAP, self.caps.max_line + 2)
            if r.scan > hard:
                self._violation("smtp_line_too_long", f"no line end within {hard} bytes", ts, out)
            # +1: a CR of the line end may already be there (same verdict for any split).
            if r.scan > self.caps.max_line + 1 and not r.long_reported:
                r.long_reported = True
                out.append(Anomaly("smtp_line_too_long", f"over {self.caps.max_line}", ts))
            return None, pos
        line = bytes(buf[pos:nl])
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.caps.max_line and not r.long_reported:
            out.append(Anomaly("smtp_line_too_long", f"over {self.caps.max_line}", ts))
        r.scan = 0
        r.long_reported = False
        return line, nl + 1

    # --- client side ---------------------------------------------------------------------------

    def _pump_client(self, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        pos = 0
        try:
            while True:
                state = r.state
                if state is _State.COMMAND:
                    new = self._step_command(pos, ts, out)
                elif state is _State.DATA:
                    new = self._step_data(pos, ts, out)
                elif state is _State.BDAT:
                    new = self._step_bdat(pos, ts, out)
                elif state is _State.AUTH or state is _State.AUTH_HALF_DUPLEX:
                    new = self._step_auth(pos, ts, out)
                elif state in _AWAITING:
                    new = self._step_await(pos, ts, out)
                else:  # TLS / CLOSED
                    new = len(r.buf)
                    break
                if new == pos and r.state is state:
                    break
                pos = new
        finally:
            if r.state in (_State.TLS, _State.CLOSED):
                r.buf.clear()
            else:
                del r.buf[:pos]

    def _step_command(self, pos: int, ts: float, out: list[SmtpEvent]) -> int:
        line, new = self._take_line(self._client, pos, ts, out)
        if line is None:
            return new
        if line.strip():
            self._on_command(line, ts, out)
        return new

    def _step_await(self, pos: int, ts: float, out: list[SmtpEvent]) -> int:
        r = self._client
        if len(r.buf) - pos <= _MAX_HOLD or r.awaiting is None:
            return pos
        verb = r.awaiting.verb.decode("ascii", "replace")
        out.append(Anomaly("smtp_unanswered_command", f"{verb}: assumed accepted", ts))
        self._assume_accepted(ts, out)
        return pos

    def _assume_accepted(self, ts: float, out: list[SmtpEvent]) -> None:
        """Resolve AWAIT_* without the reply (hold overflow, a side gone)."""
        r = self._client
        entry = r.awaiting
        if entry is None:
            return
        entry.resolved = True
        if r.state is _State.AWAIT_TLS:
            self._start_tls(_Input.ASSUMED_ACCEPTED, ts, out)
            return
        self._move(_Input.ASSUMED_ACCEPTED)
        if r.state is _State.DATA and entry.tx is not None:
            self._start_message(entry.tx, ts, out)
        else:
            self._resume_commands(ts, out)

    def _resume_commands(self, ts: float, out: list[SmtpEvent]) -> None:
        """Back to command lines after AWAIT_* (the state has moved already)."""
        r = self._client
        r.awaiting = None
        r.scan = 0
        if r.await_lost:
            out.append(Anomaly("smtp_gap", f"{r.await_lost} bytes of commands lost", ts))
            r.await_lost = 0
            r.skip_line = True

    def _on_command(self, line: bytes, ts: float, out: list[SmtpEvent]) -> None:
        """One command line (RFC 5321 section 4.1.1)."""
        verb, _, arg = line.strip().partition(b" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb in (b"EHLO", b"HELO", b"LHLO"):
            # RFC 5321 4.1.4: EHLO in a transaction resets it.
            self._helo = _text(arg[:_MAX_ARG]) if arg else None
            self._close_current("ehlo", ts, out)
            self._queue(_Pending(verb), ts, out)
        elif verb == b"MAIL":
            self._on_mail(arg, ts, out)
        elif verb == b"RCPT":
            self._on_rcpt(arg, ts, out)
        elif verb == b"DATA":
            tx = self._tx_for_data(ts, out, bdat=False)
            if self._server_answers():
                entry = _Pending(verb, tx)
                self._queue(entry, ts, out)
                self._await(entry, _Input.DATA)
            else:
                self._start_message(tx, ts, out)  # half-duplex: assumed accepted
                self._move(_Input.DATA_HALF_DUPLEX)
            return
        elif verb == b"BDAT":
            self._on_bdat(arg, ts, out)
            return
        elif verb == b"RSET":
            self._close_current("rset", ts, out)
            self._queue(_Pending(verb), ts, out)
        elif verb == b"QUIT":
            self._close_current("quit", ts, out)
            self._queue(_Pending(verb), ts, out)
        elif verb == b"STARTTLS":
            if self._server_answers():
                entry = _Pending(verb)
                self._queue(entry, ts, out)
                self._await(entry, _Input.STARTTLS)
            else:
                self._start_tls(_Input.STARTTLS_HALF_DUPLEX, ts, out)
            return
        elif verb == b"AUTH":
            self._on_auth(arg, ts, out)
            return
        elif verb in _KNOWN_VERBS:
            self._queue(_Pending(verb), ts, out)
        else:
            # Never quote the line: it may be a credential the AUTH tracking missed.
            self._bad_line("smtp_unknown_command", f"{len(line)} bytes", ts, out)
            self._queue(_Pending(b"?"), ts, out)
        self._move(_Input.COMMAND)

    def _server_answers(self) -> bool:
        """Will a reply come? Not in a client-only capture, nor once the server side ended."""
        return self._server.seen and self._server.state is not _State.CLOSED

    def _on_mail(self, arg: bytes, ts: float, out: list[SmtpEvent]) -> None:
        # RFC 5321 4.1.1.2: MAIL FROM:<reverse-path> [SP mail-parameters]
        self._close_current("mail", ts, out)
        tx = self._new_tx()
        self._current = tx
        parsed = _path_and_params(arg, b"FROM:")
        if parsed is None:
            out.append(Anomaly("smtp_bad_command", "MAIL without FROM:", ts))
        else:
            tx.mail_from, tx.mail_params = parsed
        self._queue(_Pending(b"MAIL", tx), ts, out)

    def _on_rcpt(self, arg: bytes, ts: float, out: list[SmtpEvent]) -> None:
        # RFC 5321 4.1.1.3: RCPT TO:<forward-path> [SP rcpt-parameters]
        tx = self._current
        if tx is None:  # mid-stream pickup: the MAIL was not seen
            tx = self._current = self._new_tx()
        parsed = _path_and_params(arg, b"TO:")
        rcpt: _Rcpt | None = None
        if parsed is None:
            out.append(Anomaly("smtp_bad_command", "RCPT without TO:", ts))
        elif len(tx.rcpts) >= self.caps.max_rcpt:
            if not tx.rcpt_over_cap:
                tx.rcpt_over_cap = True
                out.append(Anomaly("smtp_too_many_rcpt", f"over {self.caps.max_rcpt}", ts))
        else:
            rcpt = _Rcpt(parsed[0])
            tx.rcpts.append(rcpt)
        self._queue(_Pending(b"RCPT", tx, rcpt), ts, out)

    def _on_bdat(self, arg: bytes, ts: float, out: list[SmtpEvent]) -> None:
        # RFC 3030 section 2: BDAT SP chunk-size [SP end-marker]; the chunk follows at once,
        # without waiting for a reply, and its bytes are not interpreted at all.
        r = self._client
        parts = arg.split()
        size_text = parts[0] if parts else b""
        if not size_text.isdigit() or len(size_text) > 20:
            self._violation("smtp_bdat_bad_size", "not a number", ts, out)
        size = int(size_text)
        if size > self.caps.max_bdat_chunk:
            self._violation("smtp_bdat_bad_size", f"{size} over the cap", ts, out)
        last = len(parts) > 1 and parts[1].upper() == b"LAST"
        if len(parts) > 2 or (len(parts) == 2 and not last):
            out.append(Anomaly("smtp_bad_command", "BDAT argument", ts))
        tx = self._tx_for_data(ts, out, bdat=True)
        tx.bdat = True
        if not tx.message_started:
            self._start_message(tx, ts, out)
        self._move(_Input.BDAT)
        r.tx = tx
        r.remaining = size
        r.bdat_last = last
        self._queue(_Pending(b"BDAT", tx, last=last), ts, out)

    def _on_auth(self, arg: bytes, ts: float, out: list[SmtpEvent]) -> None:
        # RFC 4954 section 4: AUTH mechanism [initial-response]. Only the name is kept.
        r = self._client
        parts = arg.split(None, 1)
        mechanism = parts[0][:32].upper().decode("ascii", "replace") if parts else ""
        self._auth = mechanism or None
        if self._current is not None:
            self._current.auth = self._auth
        entry = _Pending(b"AUTH")
        if self._server_answers():
            self._queue(entry, ts, out)
            self._await(entry, _Input.AUTH)
            return
        # Half-duplex: expect the number of client lines the mechanism needs.
        known = _AUTH_LINES.get(mechanism)
        left = None if known is None else known[1 if len(parts) > 1 else 0]
        if left == 0:
            self._move(_Input.COMMAND)  # the initial response was the whole exchange
            return
        self._move(_Input.AUTH_HALF_DUPLEX)
        r.auth_left = left

    def _step_auth(self, pos: int, ts: float, out: list[SmtpEvent]) -> int:
        r = self._client
        line, new = self._take_line(r, pos, ts, out)
        if line is None:
            return new
        # The line itself is dropped unread (credentials never leave this method).
        if r.state is _State.AUTH:
            # The one response to a 334 challenge; the next reply says what comes next.
            self._move(_Input.AUTH_LINES_DONE)
            return new
        # No replies to follow: a line that cannot be base64 (or a bare known verb, for unknown
        # mechanisms) is the next command, not a secret.
        word = line.strip().upper()
        if not _BASE64_LINE.fullmatch(line.strip()) and line.strip() != b"*":
            self._move(_Input.AUTH_LINES_DONE)
            return pos
        if r.auth_left is None and word in _KNOWN_VERBS:
            self._move(_Input.AUTH_LINES_DONE)
            return pos
        if line.strip() == b"*":  # RFC 4954: the client cancels the exchange
            r.auth_left = 0
        elif r.auth_left is not None:
            r.auth_left -= 1
        if r.auth_left == 0:
            self._move(_Input.AUTH_LINES_DONE)
        return new

    def _step_data(self, pos: int, ts: float, out: list[SmtpEvent]) -> int:
        """Message content up to CRLF.CRLF, unstuffed (RFC 5321 4.5.2)."""
        r = self._client
        buf = r.buf
        n = len(buf)
        i = pos
        chunks: list[bytes] = []
        ended = False
        while i < n:
            if r.bol:
                if buf[i] == _DOT:
                    if i + 1 >= n:
                        break  # "." alone: wait for the next byte
                    if buf[i + 1] == _CR:
                        if i + 2 >= n:
                            break
                        if buf[i + 2] == _LF:
                            # "." CRLF ends the data; the CRLF before it ends the message's
                            # last line and belongs to the message (RFC 5321 4.1.1.4).
                            i += 3
                            if r.owed_crlf:
                                chunks.append(b"\r\n")
                                r.owed_crlf = False
                            ended = True
                            break
                    i += 1  # a leading dot is transparency, not data
                if r.owed_crlf:
                    chunks.append(b"\r\n")
                    r.owed_crlf = False
                r.bol = False
                continue
            # Everything up to the next CRLF "." is plain content.
            k = buf.find(b"\r\n.", i)
            if k >= 0:
                if k > i:
                    chunks.append(bytes(buf[i:k]))
                i = k + 2
                r.bol = True
                r.owed_crlf = True
                continue
            if buf.endswith(b"\r\n") and n - 2 >= i:
                if n - 2 > i:
                    chunks.append(bytes(buf[i : n - 2]))
                i = n
                r.bol = True
                r.owed_crlf = True
            else:
                end = n - 1 if buf[n - 1] == _CR else n  # a CR may start the line end
                if end > i:
                    chunks.append(bytes(buf[i:end]))
                i = end
            break
        if i > pos:
            self._scan_smuggling(bytes(buf[pos:i]))
        self._emit_data(chunks, out)
        if ended:
            self._end_message(True, ts, out)
            self._move(_Input.END_OF_DATA)
        return i

    def _scan_smuggling(self, raw: bytes) -> None:
        r = self._client
        window = r.tail + raw
        skip = len(r.tail)
        r.smuggling += sum(1 for m in _SMUGGLING.finditer(window) if m.end(1) > skip)
        r.tail = window[-_TERMINATOR_LOOKBACK:]

    def _emit_data(self, chunks: list[bytes], out: list[SmtpEvent]) -> None:
        tx = self._client.tx
        if not chunks or tx is None:
            return
        data = b"".join(chunks)
        if data:
            out.append(ObjectChunk(tx.txid, Direction.TO_SERVER, data))
            tx.size += len(data)

    def _step_bdat(self, pos: int, ts: float, out: list[SmtpEvent]) -> int:
        r = self._client
        size = min(r.remaining, len(r.buf) - pos)
        if size > 0:
            self._emit_data([bytes(r.buf[pos : pos + size])], out)
            r.remaining -= size
        if r.remaining == 0:
            self._chunk_done(ts, out)
        return pos + size

    def _chunk_done(self, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        self._move(_Input.CHUNK_DONE)
        if r.bdat_last:
            self._end_message(True, ts, out)

    def _await(self, entry: _Pending, command: _Input) -> None:
        """Hold the client's bytes until the reply to `entry` (DATA, AUTH or STARTTLS)."""
        r = self._client
        self._move(command)
        r.awaiting = entry
        r.await_lost = 0

    def _move(self, what: _Input) -> None:
        """The only change of the client reader's state: the row (state, what) of the table."""
        r = self._client
        target = _TRANSITIONS.get((r.state, what))
        if target is None:
            raise _NoTransition(f"client state {r.state.name} has no move on {what.name}")
        r.state = target

    # --- messages and transactions -------------------------------------------------------------

    def _new_tx(self) -> _Tx:
        tx = _Tx(self._next_txid, self._helo, self._auth)
        self._next_txid += 1
        self._open[tx.txid] = tx
        return tx

    def _tx_for_data(self, ts: float, out: list[SmtpEvent], bdat: bool) -> _Tx:
        tx = self._current
        if tx is not None and (tx.message_ended or (tx.message_started and not (bdat and tx.bdat))):
            # A second message without a new MAIL, or DATA mixed with BDAT (RFC 3030 section
            # 3 forbids it; a real server answers 503): keep the bytes apart.
            self._close_current("data", ts, out)
            tx = None
        if tx is None:  # DATA/BDAT without a MAIL seen (mid-stream pickup)
            tx = self._current = self._new_tx()
        return tx

    def _start_message(self, tx: _Tx, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        recipients = tuple(x.address for x in tx.rcpts if x.code is None or x.code < 400)
        out.append(
            ObjectStart(
                tx.txid,
                Direction.TO_SERVER,
                ts,
                "smtp",
                message=True,
                about=Envelope(tx.mail_from, recipients),
            )
        )
        tx.message_started = True
        r.tx = tx
        r.awaiting = None
        r.bol = True
        r.owed_crlf = False
        r.tail = b"\r\n"  # the DATA line's CRLF precedes the content
        r.smuggling = 0
        if r.await_lost:
            out.append(ObjectGap(tx.txid, Direction.TO_SERVER, r.await_lost))
            tx.missing += r.await_lost
            r.await_lost = 0
            r.bol = False

    def _end_message(self, complete: bool, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        tx = r.tx
        if tx is None:
            return
        if r.owed_crlf:
            # The data ended without its terminator (eof, a reply, a violation): the held
            # CRLF ended a line of the message, so it is message content like any other.
            r.owed_crlf = False
            self._emit_data([b"\r\n"], out)
        if r.smuggling:
            out.append(
                Anomaly("smtp_bare_lf_end", f"{r.smuggling} bare LF/CR next to '.' in DATA", ts)
            )
            r.smuggling = 0
        out.append(ObjectEnd(tx.txid, Direction.TO_SERVER, complete, ts))
        tx.message_ended = True
        tx.data_done = tx.data_done or complete
        r.tx = None
        if complete and not tx.bdat:
            # The reply to CRLF.CRLF settles the message (RFC 5321 4.1.1.4).
            self._queue(_Pending(b".", tx), ts, out)

    def _queue(self, entry: _Pending, ts: float, out: list[SmtpEvent]) -> None:
        if not self._server.seen or self._server.state is _State.CLOSED:
            return  # nothing will answer (client-only capture, or the server is gone)
        self._pending.append(entry)
        if entry.tx is not None:
            entry.tx.outstanding += 1
        if len(self._pending) > self.caps.max_pending_commands:
            dropped = self._pending.popleft()
            verb = dropped.verb.decode("ascii", "replace")
            out.append(Anomaly("smtp_too_many_pending", f"{verb} dropped", ts))
            self._replied(dropped, ts, out)

    def _replied(self, entry: _Pending, ts: float, out: list[SmtpEvent]) -> None:
        tx = entry.tx
        if tx is None:
            return
        tx.outstanding -= 1
        if tx.closed_by is not None and tx.outstanding <= 0:
            self._report(tx, ts, out)

    def _close_current(self, why: str, ts: float, out: list[SmtpEvent]) -> None:
        tx = self._current
        self._current = None
        if tx is None:
            return
        tx.closed_by = why
        if self._client.tx is tx:  # a BDAT message left without its LAST chunk
            self._end_message(False, ts, out)
        if tx.outstanding <= 0:
            self._report(tx, ts, out)

    def _report(self, tx: _Tx, ts: float, out: list[SmtpEvent]) -> None:
        if tx.reported:
            return
        tx.reported = True
        self._open.pop(tx.txid, None)
        if self._current is tx:
            self._current = None
        if self._orphan is tx:
            self._orphan = None
        out.append(
            SmtpTransaction(
                txid=tx.txid,
                helo=tx.helo,
                mail_from=tx.mail_from,
                mail_params=list(tx.mail_params),
                rcpt_to=[x.address for x in tx.rcpts if x.code is None or x.code < 400],
                rcpt_rejected=[x.address for x in tx.rcpts if x.code is not None and x.code >= 400],
                auth_mechanism=tx.auth,
                tls=tx.tls,
                bdat=tx.bdat,
                status=_status(tx),
                last_reply=tx.last_reply,
                size=tx.size,
                ts=ts,
                missing=tx.missing,
            )
        )

    def _report_all(self, ts: float, out: list[SmtpEvent]) -> None:
        for tx in list(self._open.values()):
            self._report(tx, ts, out)
        self._current = None

    def _start_tls(self, why: _Input, ts: float, out: list[SmtpEvent]) -> None:
        """RFC 3207 section 4: after 220 both sides start the TLS handshake. `why`: the client
        machine's input (the 220, or STARTTLS assumed accepted)."""
        if self._client.tx is not None:  # a BDAT message left without its LAST chunk
            self._end_message(False, ts, out)
        out.append(Opaque("starttls", ts))
        tx = self._current if self._current is not None else self._new_tx()
        tx.tls = True
        tx.closed_by = "starttls"
        self._report(tx, ts, out)
        self._report_all(ts, out)
        self._pending.clear()
        self._move(why)
        self._client.buf.clear()
        if self._server.state is not _State.CLOSED:
            self._server.state = _State.TLS
        self._server.buf.clear()
        self._client.awaiting = None

    # --- server side ---------------------------------------------------------------------------

    def _pump_server(self, ts: float, out: list[SmtpEvent]) -> None:
        r = self._server
        pos = 0
        try:
            while r.state is _State.COMMAND:
                line, new = self._take_line(r, pos, ts, out)
                pos = new
                if line is None:
                    break
                release = self._on_reply_line(line, ts, out)
                if release is not None:
                    # Read what the reply released before the next reply line: with "354 go"
                    # and the 250 to the end of data in one segment, the 250 must find the end
                    # of data queued (RFC 2920 keeps replies in command order).
                    self._pump_client(ts, out)
                    if release.answered is not None:
                        self._replied(release.answered, ts, out)
        finally:
            if r.state in (_State.TLS, _State.CLOSED):
                r.buf.clear()
            else:
                del r.buf[:pos]

    def _on_reply_line(self, line: bytes, ts: float, out: list[SmtpEvent]) -> _Release | None:
        # RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
        #                            Reply-code [ SP textstring ] CRLF; codes 2yz..5yz.
        r = self._server
        code, sep = line[:3], line[3:4]
        if len(code) < 3 or not code.isdigit() or code[:1] not in b"2345" or sep not in b" -":
            r.reply_first = None
            self._bad_line("smtp_bad_reply", _safe_code(line), ts, out)
            return None
        if sep == b"-":
            if r.reply_first is None:
                r.reply_first = line
            return None
        first = r.reply_first if r.reply_first is not None else line
        r.reply_first = None
        text = first.decode("utf-8", "replace")
        if len(text) > _MAX_REPLY_TEXT:
            text = text[:_MAX_REPLY_TEXT]
        text = text[:3] + " " + text[4:] if len(text) > 3 else text  # "250-x" -> "250 x"
        return self._on_reply(int(code), text, ts, out)

    def _on_reply(self, code: int, text: str, ts: float, out: list[SmtpEvent]) -> _Release | None:
        """One complete reply: pair it with the oldest command waiting (RFC 2920), feed the
        client machine what it means, and say whether held client bytes may now be read (this
        never reads them itself: `_pump_server` does, see `_Release`)."""
        pending = self._pending
        head = pending[0] if pending else None
        if not self._greeted:
            self._greeted = True
            # RFC 5321 3.1: 220 (or 554 / 421) greets before any command is answered.
            if code in (220, 421, 554) and (head is None or head.verb != b"STARTTLS"):
                return None
        if head is None:
            self._unmatched_reply(code, text, ts, out)
            return None
        verb = head.verb
        c = self._client
        waiting = c.state in _AWAITING and c.awaiting is head
        if verb == b"AUTH" and code == 334:
            # A challenge (content never looked at): the client answers with one line, and
            # the exchange goes on until a final reply (RFC 4954 section 4).
            if not waiting:
                return None
            self._move(_Input.REPLY_334)
            if c.await_lost:
                c.await_lost = 0
                c.skip_line = True
            return _Release(None)
        pending.popleft()
        tx = head.tx
        if tx is not None:
            tx.last_reply = text
        if head.resolved:
            pass
        elif verb == b"MAIL" and tx is not None:
            tx.mail_refused = code >= 400
        elif verb == b"RCPT" and head.rcpt is not None:
            head.rcpt.code = code
        elif verb == b"DATA" and tx is not None:
            if code != 354:
                tx.data_refused = True
            if waiting and code == 354:
                self._move(_Input.REPLY_354)
                self._start_message(tx, ts, out)
                return _Release(head)
            if waiting:
                self._move(_Input.REPLY_OTHER)
                self._resume_commands(ts, out)
                return _Release(head)
        elif verb == b"BDAT" and tx is not None:
            if code >= 400:
                tx.data_refused = True
            if head.last:
                tx.final_code = code
                self._replied(head, ts, out)
                self._report(tx, ts, out)
                return None
        elif verb == b"." and tx is not None:
            tx.final_code = code
            self._replied(head, ts, out)
            self._report(tx, ts, out)
            return None
        elif verb == b"STARTTLS":
            if code == 220:
                # Taken whether or not the client still waits: after its eof (CLOSED) the
                # server side is encrypted all the same.
                self._start_tls(_Input.REPLY_220, ts, out)
                return None
            if waiting:
                self._move(_Input.REPLY_OTHER)
                self._resume_commands(ts, out)
                return _Release(head)
        elif verb == b"AUTH" and waiting:
            self._move(_Input.REPLY_OTHER)
            self._resume_commands(ts, out)
            return _Release(head)
        self._replied(head, ts, out)
        return None

    def _unmatched_reply(self, code: int, text: str, ts: float, out: list[SmtpEvent]) -> None:
        c = self._client
        if c.state in (_State.DATA, _State.BDAT) and c.tx is not None:
            # The end of data was lost (gap) or never sent: the server has settled it.
            tx = c.tx
            self._end_message(False, ts, out)
            self._move(_Input.DATA_SETTLED)
            tx.final_code = code
            tx.last_reply = text
            self._report(tx, ts, out)
            return
        if not c.seen:
            # Server-only capture: a transaction per "354 ... final reply" sequence.
            if code == 354 and self._orphan is None:
                self._orphan = self._new_tx()
                self._orphan.message_started = True
                self._orphan.last_reply = text
                return
            if self._orphan is not None:
                tx = self._orphan
                tx.final_code = code
                tx.data_done = True
                tx.last_reply = text
                self._report(tx, ts, out)
            return
        if code != 421:  # RFC 5321 3.8: 421 may come at any time
            out.append(Anomaly("smtp_unmatched_reply", str(code), ts))

    # --- gaps and eof --------------------------------------------------------------------------

    def _gap_client(self, size: int, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        while size > 0:
            state = r.state
            if state is _State.DATA:
                tx = r.tx
                held = bytes(r.buf)
                r.buf.clear()
                if held:  # the bytes kept back before the hole are message bytes after all
                    self._emit_data([b"\r\n", held] if r.owed_crlf else [held], out)
                elif r.owed_crlf:
                    self._emit_data([b"\r\n"], out)
                if tx is not None:
                    out.append(ObjectGap(tx.txid, Direction.TO_SERVER, size))
                    tx.missing += size
                # Whatever the hole held, the next CRLF "." CRLF still ends the message.
                r.bol = False
                r.owed_crlf = False
                r.tail = b"\x00\x00\x00"
                self._move(_Input.GAP)
                return
            if state is _State.BDAT:
                n = min(size, r.remaining)
                if n and r.tx is not None:
                    out.append(ObjectGap(r.tx.txid, Direction.TO_SERVER, n))
                    r.tx.missing += n
                r.remaining -= n
                size -= n
                self._move(_Input.GAP)
                if r.remaining == 0:
                    self._chunk_done(ts, out)
                continue  # what the hole held past the chunk was commands
            if state in _AWAITING:
                r.await_lost += len(r.buf) + size
                r.buf.clear()
            else:  # COMMAND, AUTH, AUTH_HALF_DUPLEX
                out.append(Anomaly("smtp_gap", f"{size} bytes of commands lost", ts))
                r.buf.clear()
                r.scan = 0
                r.long_reported = False
                r.skip_line = True
            self._move(_Input.GAP)
            return

    def _gap_server(self, size: int, ts: float, out: list[SmtpEvent]) -> None:
        r = self._server
        out.append(Anomaly("smtp_gap", f"{size} bytes of replies lost", ts))
        r.buf.clear()
        r.scan = 0
        r.long_reported = False
        r.reply_first = None
        r.skip_line = True

    def _eof_client(self, ts: float, out: list[SmtpEvent]) -> None:
        r = self._client
        if r.state in _AWAITING and r.buf:
            self._assume_accepted(ts, out)  # what the client sent is all there will be
            self._pump_client(ts, out)
        if r.tx is not None:
            self._end_message(False, ts, out)
        self._move(_Input.EOF)
        r.buf.clear()
        if self._server.state in (_State.CLOSED, _State.TLS) or not self._server.seen:
            self._report_all(ts, out)
        else:
            self._close_current("eof", ts, out)

    def _eof_server(self, ts: float, out: list[SmtpEvent]) -> None:
        r = self._server
        c = self._client
        if r.state is not _State.TLS:
            r.state = _State.CLOSED
        r.buf.clear()
        self._pending.clear()
        if c.state in _AWAITING:
            self._assume_accepted(ts, out)  # no reply can come any more
            self._pump_client(ts, out)
        if c.state in (_State.CLOSED, _State.TLS) or not c.seen:
            self._report_all(ts, out)
            return
        # No reply will come: everything but what the client is still sending is settled.
        for tx in list(self._open.values()):
            if tx is not self._current and tx is not c.tx:
                self._report(tx, ts, out)
        for still_open in (self._current, c.tx):
            if still_open is not None:
                still_open.outstanding = 0


# --- helpers ------------------------------------------------------------------------------------


def _status(tx: _Tx) -> str:
    if tx.tls:
        return "encrypted"
    if tx.final_code is not None:
        return "accepted" if 200 <= tx.final_code < 300 else "rejected"
    refused = bool(tx.rcpts) and all(x.code is not None and x.code >= 400 for x in tx.rcpts)
    if tx.mail_refused or tx.data_refused or refused:
        return "rejected"
    if tx.closed_by in ("rset", "mail", "ehlo") and not tx.data_done:
        return "aborted"
    return "incomplete"


def _text(value: bytes) -> str:
    """Wire bytes to text at the edge (SMTPUTF8, RFC 6531: addresses may be UTF-8)."""
    return value.decode("utf-8", errors="replace")


def _path_and_params(arg: bytes, keyword: bytes) -> tuple[str, list[str]] | None:
    """`FROM:<path> params` -> (address without brackets, parameters), lenient on spaces."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword) :].lstrip()
    if rest.startswith(b"<"):
        close = _closing_bracket(rest)
        path, params = rest[1:close], rest[close + 1 :]
    else:
        path, _, params = rest.partition(b" ")
    return _text(path[:_MAX_ARG]), [_text(p[:_MAX_ARG]) for p in params.split()][:64]


def _closing_bracket(rest: bytes) -> int:
    """Index of the ">" closing a path, skipping a quoted local part ("a>b"@x)."""
    quoted = False
    i = 1
    while i < len(rest):
        byte = rest[i]
        if byte == 0x5C and quoted:  # backslash escape inside quotes
            i += 2
            continue
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x3E and not quoted:
            return i
        i += 1
    return len(rest)


def _safe_code(line: bytes) -> str:
    """A few leading bytes of a bad server line, printable only (never client data)."""
    head = line[:8]
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in head)


# --- detection ----------------------------------------------------------------------------------

_GREETINGS = (b"EHLO ", b"HELO ", b"LHLO ")
_DETECT_LINE = 512


def detect(direction: Direction, data: bytes) -> bool | None:
    """Is this the start of an SMTP stream? True, False, or None (need more bytes).

    Client: EHLO/HELO/LHLO SP (any case). Server: a first line "220" SP/"-" mentioning SMTP;
    a 220 without it may be FTP, so it waits for the client's verdict (None).
    """
    if direction is Direction.TO_SERVER:
        head = data[:5].upper()
        if len(head) < 5:
            return None if any(g.startswith(head) for g in _GREETINGS) else False
        return head in _GREETINGS
    if len(data) < 4:
        return None if b"220".startswith(data[:3]) else False
    if not data.startswith((b"220 ", b"220-")):
        return False
    nl = data.find(b"\n", 0, _DETECT_LINE)
    line = data[:_DETECT_LINE] if nl < 0 else data[:nl]
    if b"SMTP" in line.upper():
        return True
    return None
