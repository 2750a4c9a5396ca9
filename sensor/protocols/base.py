"""Contracts shared by every protocol parser (the protocols stage).

A parser is sans-IO (STYLE.md habit 1, DESIGN.md "Parsers are sans-IO"): one instance per flow,
fed reassembled bytes per direction, returning typed events (a union per protocol module, e.g.
`http.HttpEvent`). It never touches sockets, files or the clock. Something odd but survivable is
an `Anomaly` event ("weird" in Zeek's words); something the parser cannot go on with is a
`ProtocolViolation` exception, after which the app layer (`layer.py`) detaches the parser from
that flow and keeps metering it.

Besides its own events, a parser speaks a few shared ones, so that nothing after this stage
needs to know which protocol produced them:

* the object contract (`ObjectStart`, `ObjectChunk`, `ObjectGap`, `ObjectEnd`): every
  transferred object (an HTTP body, a mail, an FTP transfer) as one start with its context,
  chunks, gaps and one end. `sensor/content/` routes them to the content engines by
  (txid, direction); later stages attach to the content stage, never to a protocol.
* control of the app layer: `Tunnel` (the connection now carries another protocol end to end:
  HTTP CONNECT; what follows is detected anew, `TunnelData` carries it), `Opaque` (from here on
  the connection cannot be read: TLS started, an Upgrade; it is only counted). The app layer
  acts on them and does not pass them on.
* facts for the meter: an event that names the flow's server (`NamesServer`: TLS SNI, HTTP
  Host) and `AddressName` (a resolver's answer names an address).
* `Announcement`: a connection announced on this one (FTP data connections), for the
  expectation table (`expect.py`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sensor.anomaly import Anomaly

__all__ = [
    "AddressName",
    "Announcement",
    "Anomaly",
    "AppProto",
    "Counted",
    "Direction",
    "Headers",
    "NamesServer",
    "ObjectChunk",
    "ObjectEnd",
    "ObjectEvent",
    "ObjectGap",
    "ObjectStart",
    "Opaque",
    "Parser",
    "ProtocolEvent",
    "ProtocolViolation",
    "ReadingForked",
    "Tunnel",
    "TunnelData",
    "reading_name",
]

Headers = Sequence[tuple[bytes, bytes]]  # header fields as on the wire: (name, value) bytes


class Direction(enum.IntEnum):
    TO_SERVER = 0  # client -> server: "upload" payload
    TO_CLIENT = 1  # server -> client


class ProtocolViolation(Exception):
    """The parser cannot continue on this flow; `reason` is an anomaly kind. `events` holds
    what the failing call produced before it gave up (e.g. the end of a body), so nothing the
    parser already knew is lost."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.events: Sequence[ProtocolEvent | Anomaly] = ()


class ProtocolEvent:
    """Base of every parser event: a dataclass named as a noun (`HttpTransaction`)."""

    __slots__ = ()

    def indicators(self) -> tuple[tuple[str, str, str], ...]:
        """What this event names that could be a planted token (a canary: the classification
        stage looks them up): (kind, value, place) with kind "url", "dns-name" or "email"
        (sensor/classify/canary.py) and place what an operator reads ("url", "sni",
        "smtp-envelope", "dns"). Most events name nothing."""
        return ()


# --- the object contract ----------------------------------------------------------------------


@dataclass(slots=True)
class ObjectStart(ProtocolEvent):
    """An object begins. (txid, direction, reading) names it until its `ObjectEnd`; `direction`
    is TO_SERVER for an upload and TO_CLIENT for a download (for FTP, as the control channel
    said, whichever side opened the data connection).

    `reading` is None for the one way the bytes can be read. Where a message's framing is
    ambiguous (receivers could take it more than one way), the parser reports each plausible
    reading as its own object, named here ("raw", "content-length", "unframed", ...)."""

    txid: int
    direction: Direction
    ts: float
    proto: str  # the protocol whose log describes the object: "http", "smtp", "ftp"
    headers: Headers = ()  # the fields of the message the body belongs to (HTTP)
    encodings: Sequence[str] = ()  # content codings still applied, in the order applied
    name: str | None = None  # a file name hint (the URI's last segment, the FTP command's)
    message: bool = False  # a whole Internet message (RFC 5322, SMTP DATA): MIME-parsed
    about: object = None  # the protocol's own description, for its log (request, envelope)
    reading: str | None = None


@dataclass(slots=True)
class ObjectChunk(ProtocolEvent):
    txid: int
    direction: Direction
    data: bytes  # transfer framing removed (HTTP chunking, SMTP dot-stuffing), codings not
    reading: str | None = None


@dataclass(slots=True)
class ObjectGap(ProtocolEvent):
    txid: int
    direction: Direction
    size: int  # bytes lost to the capture, as the transfer counts them
    reading: str | None = None


@dataclass(slots=True)
class ObjectEnd(ProtocolEvent):
    txid: int
    direction: Direction
    complete: bool  # the transfer's framing reached its end (gaps are told by ObjectGap)
    ts: float
    reading: str | None = None


ObjectEvent = ObjectStart | ObjectChunk | ObjectGap | ObjectEnd


# --- control of the app layer -----------------------------------------------------------------


@dataclass(slots=True)
class Tunnel(ProtocolEvent):
    """The connection now carries another protocol end to end (HTTP CONNECT accepted)."""

    ts: float
    # Client bytes sent after the request and held until the answer: the first bytes of the
    # tunnelled protocol, so whoever takes the tunnel over loses nothing.
    held: bytes = b""


@dataclass(slots=True)
class TunnelData(ProtocolEvent):
    """Bytes of either side after a `Tunnel` (also those that came in the segment of the
    answer that opened it): the tunnelled protocol's, unparsed."""

    direction: Direction
    data: bytes


@dataclass(slots=True)
class Opaque(ProtocolEvent):
    """From here on the connection cannot be read: it is only counted."""

    reason: str  # "starttls", "auth_tls", "encrypted" (TLS), "upgrade" (HTTP 101/Upgrade)
    ts: float


@dataclass(slots=True)
class AppProto(ProtocolEvent):
    """Marker (from the app layer, layer.py): the events that follow come from the layer whose
    app_proto this is (the outer HTTP or the tunnelled TLS of a CONNECT)."""

    name: str | None


@dataclass(slots=True)
class Counted(ProtocolEvent):
    """Marker (from the app layer): analysis of the flow ended here; from now on it is only
    counted, and its objects still open end incomplete."""

    app_proto: str | None


@dataclass(slots=True)
class ReadingForked(ProtocolEvent):
    """Marker (from the app layer): from here the flow is also read another way (`reading`,
    e.g. "tcp-linux": its TCP overlaps resolved as a Linux receiver does). Objects open now
    go on in that reading too, from this point (so incomplete there); the reading's own
    object events carry `reading` names that start with it."""

    reading: str


def reading_name(reading: str, inner: str | None) -> str:
    """The reading of an object found by a flow reading (a TCP one) that may itself have been
    one of its protocol's readings: "tcp-linux", "tcp-linux+raw"."""
    return reading if inner is None else f"{reading}+{inner}"


# --- facts for the meter and the expectation table --------------------------------------------


class NamesServer(ProtocolEvent):
    """An event that names the flow's server (`name_source`: "sni", "http"), the meter's
    destination names."""

    __slots__ = ()
    name_source: ClassVar[str]

    def server_name(self) -> str | None:
        raise NotImplementedError


@dataclass(slots=True)
class AddressName(ProtocolEvent):
    """A resolver's answer names `address` (packed) `name` (`source` "dns")."""

    address: bytes
    name: str
    source: str


class Announcement(ProtocolEvent):
    """A connection announced on this one (an FTP data connection): where it will go, which
    parser reads it, and how long to wait for it."""

    __slots__ = ()
    app_proto: ClassVar[str]  # the announced connection's app_proto, e.g. "ftp-data"
    timeout: ClassVar[float]  # seconds of packet time the announcement stays valid

    def endpoint(self, client: bytes, client_port: int, server: bytes) -> tuple[bytes, int]:
        """(address, port) that accepts the announced connection, given the announcing
        connection's client address and port and server address."""
        raise NotImplementedError

    def parser(self, serial: int, announcer: int) -> Parser:
        """The parser for the announced connection; `serial` numbers its transfers, `announcer`
        is the announcing flow's id."""
        raise NotImplementedError


class Parser(Protocol):
    """What the app layer drives. Every method returns the events that became known."""

    name: str

    def feed(
        self, direction: Direction, data: bytes, ts: float
    ) -> Sequence[ProtocolEvent | Anomaly]: ...

    def gap(
        self, direction: Direction, size: int, ts: float
    ) -> Sequence[ProtocolEvent | Anomaly]: ...

    def eof(self, direction: Direction, ts: float) -> Sequence[ProtocolEvent | Anomaly]: ...
