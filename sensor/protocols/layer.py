"""The app layer of a flow (the protocols stage): reassembled bytes in, typed events out.

`AppLayer` is one flow's application layer: protocol detection, the one parser, the client and
server roles (a flip when detection finds them reversed), the hand-over to a child layer when a
tunnel opens, detaching a parser that fails. It answers `deliver(direction, data_or_gap, ts)`
with values: the events, whether the flow must be flipped, whether it wants more bytes.
`TcpApp` drives it from one TCP flow's two reassembled streams: segments and acknowledgements
in, events out, in wire order. Neither calls back into the pipeline or knows what becomes of
the events; the pipeline routes them (objects to the content stage, the rest to the outputs).

Theory of operation
-------------------
A layer holds one `_Session` at a time:

DETECTING: bytes of each direction are kept (at most `detect_bytes` per direction) and shown to
every detector (detect.py) in registration order. On a match the parser is created and the
kept bytes are replayed into it in their original arrival order; the session is then PARSING.
If the match was for the opposite role, the session's `flip` is set and the layer reports it
once (`Delivered.flip`): the caller swaps client and server before it handles any event. No
match within the budget (or a gap before a match) -> COUNTING with app_proto "unknown".

PARSING: every call goes to the one parser. A `ProtocolViolation` or any unexpected exception
detaches the parser (Zeek: "violation"): the session reports it as an anomaly and switches to
COUNTING; the flow itself keeps being metered. One bad flow never stops the sensor.

COUNTING: data is ignored (the flow's bytes are only counted from now on).

Events of the parser that steer the layer are acted on here and not passed on:
`Tunnel` (HTTP CONNECT accepted) replaces the session by a new DETECTING one over the tunnel
protocols (TLS, SSH, HTTP) and feeds it the bytes held behind the request; `TunnelData` goes to
that session; `Opaque` (STARTTLS, TLS, AUTH TLS, an Upgrade) makes the layer opaque: after the
current delivery nothing more is parsed. `Announcement`s (FTP data connections) go to the
expectation table (expect.py), and a new flow whose first bytes go where one was announced is
read by the announced parser instead of being detected.

Between events the layer puts `AppProto` markers: the events that follow come from the layer
named there (the outer HTTP or the tunnelled TLS of a CONNECT), so every record names the
protocol that produced it. `Counted` marks where analysis ended: from there on the flow is only
counted, and objects still open end incomplete.

Invariant the caller relies on: a flip only happens at detection, so before the flow's first
event; handling events after `TcpApp.packet` returns sees the flow as it ends up.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from sensor.anomaly import Anomaly
from sensor.decode.packet import TCP_ACK, Packet
from sensor.flows.table import Flow
from sensor.protocols.base import (
    Announcement,
    AppProto,
    Counted,
    Direction,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    Opaque,
    Parser,
    ProtocolEvent,
    ProtocolViolation,
    ReadingForked,
    Tunnel,
    TunnelData,
    reading_name,
)
from sensor.protocols.detect import ProtocolSpec
from sensor.protocols.expect import Expectations
from sensor.reassembly.tcp import POLICIES, Gap, Memcap, StreamCaps, StreamTotals, TcpStream

DETECTING = 0
PARSING = 1
COUNTING = 2

UNKNOWN = "unknown"

Event = ProtocolEvent | Anomaly
_STEERING = frozenset({Tunnel, TunnelData, Opaque})  # events the layer acts on, not passes on
_DIRECTIONS = (Direction.TO_SERVER, Direction.TO_CLIENT)  # by index, without an enum call
_OBJECT_EVENTS = (ObjectStart, ObjectChunk, ObjectGap, ObjectEnd)
# A young flow's delivered bytes are kept (by reference) up to this many, so that a reading
# forked later starts from the flow's first byte with an app layer of its own.
READING_LOG_BYTES = 64 * 1024
_LOG_BLOCK = 16 * 1024  # the log budget is taken in blocks of this many bytes
_LOG_ITEM = 100  # what one logged item costs beyond its bytes (tuple, bytes object), charged


class Delivered(NamedTuple):
    events: list[Event]
    flip: bool  # the flow's client and server are the other way round: swap them first
    stop: bool  # the layer wants no more bytes after this delivery


class _Session:
    """Detection and then one parser, with the parser's failures contained."""

    __slots__ = (
        "_buffers",
        "_detect_bytes",
        "_order",
        "_specs",
        "app_proto",
        "flip",
        "parser",
        "state",
    )

    def __init__(self, specs: tuple[ProtocolSpec, ...], detect_bytes: int) -> None:
        self._specs = specs
        self._detect_bytes = detect_bytes
        self._buffers: list[bytearray] = [bytearray(), bytearray()]
        self._order: list[tuple[Direction, bytes]] = []
        self.state = DETECTING
        self.parser: Parser | None = None
        self.app_proto: str | None = None
        self.flip = False  # set once: the detected roles are the reverse of the flow's

    @classmethod
    def attached(cls, name: str, parser: Parser) -> _Session:
        """A session whose protocol is already known (an announced connection)."""
        session = cls((), 0)
        session.app_proto = name
        session.parser = parser
        session.state = PARSING
        return session

    def feed(self, direction: Direction, data: bytes, ts: float) -> Sequence[Event]:
        if self.state == PARSING:
            return self._call("feed", direction, data, ts)
        if self.state == COUNTING:
            return ()
        return self._detect(direction, data, ts)

    def gap(self, direction: Direction, size: int, ts: float) -> Sequence[Event]:
        if self.state == PARSING:
            return self._call("gap", direction, size, ts)
        if self.state == DETECTING:
            # Detection needs the start of the stream; after a hole it cannot be trusted.
            self._give_up()
        return ()

    def eof(self, direction: Direction, ts: float) -> Sequence[Event]:
        if self.state == PARSING:
            return self._call("eof", direction, ts)
        if self.state == DETECTING and not any(self._buffers):
            return ()
        if self.state == DETECTING:
            # The stream ended before the budget: decide on what was seen.
            events = self._try_specs(final=True, ts=ts)
            if self.state == PARSING:
                return [*events, *self._call("eof", direction, ts)]
            self._give_up()
        return ()

    def _detect(self, direction: Direction, data: bytes, ts: float) -> Sequence[Event]:
        buf = self._buffers[direction]
        room = self._detect_bytes - len(buf)
        if room > 0:
            buf += data[:room]
        self._order.append((direction, data))
        events = self._try_specs(final=False, ts=ts)
        if self.state == DETECTING and len(buf) >= self._detect_bytes:
            self._give_up()
        return events

    def _try_specs(self, final: bool, ts: float) -> Sequence[Event]:
        undecided = False
        for spec in self._specs:
            verdict_any: bool | None = False
            for direction in (Direction.TO_SERVER, Direction.TO_CLIENT):
                data = bytes(self._buffers[direction])
                if not data:
                    continue
                same = spec.detect(direction, data)
                if same:
                    return self._attach(spec, flip=False, ts=ts)
                other = spec.detect(Direction(1 - direction), data)
                if other:
                    return self._attach(spec, flip=True, ts=ts)
                if same is None or other is None:
                    verdict_any = None
            if verdict_any is None:
                undecided = True
        # Every detector said no for both sides (or the stream ended): nothing will match.
        if final or (not undecided and all(self._buffers)):
            self._give_up()
        return ()

    def _attach(self, spec: ProtocolSpec, flip: bool, ts: float) -> Sequence[Event]:
        self.app_proto = spec.name
        self.flip = flip
        self._buffers = [bytearray(), bytearray()]
        order, self._order = self._order, []
        if spec.parser is None:
            self.state = COUNTING
            return ()
        self.parser = spec.parser()
        self.state = PARSING
        events: list[Event] = []
        for direction, data in order:
            if flip:
                direction = Direction(1 - direction)
            events += self._call("feed", direction, data, ts)
            if self.state != PARSING:
                break
        return events

    def _give_up(self) -> None:
        self.state = COUNTING
        self.app_proto = self.app_proto or UNKNOWN
        self._buffers = [bytearray(), bytearray()]
        self._order = []

    def _call(self, method: str, *args: object) -> Sequence[Event]:
        parser = self.parser
        assert parser is not None
        ts = float(args[-1])  # type: ignore[arg-type]
        try:
            result: Sequence[Event] = getattr(parser, method)(*args)
            return result
        except ProtocolViolation as exc:
            self._detach()
            return [*exc.events, Anomaly(exc.reason, exc.detail, ts)]
        except Exception as exc:  # a parser bug must not take the sensor down
            self._detach()
            return [Anomaly("parser_error", f"{type(exc).__name__}: {exc}"[:200], ts)]

    def _detach(self) -> None:
        self.parser = None
        self.state = COUNTING


class AppLayer:
    """The application layer of one flow; see the module docstring."""

    __slots__ = ("_detect_bytes", "_label", "_session", "_tunnel_specs", "flipped", "opaque")

    def __init__(
        self,
        specs: tuple[ProtocolSpec, ...],
        tunnel_specs: tuple[ProtocolSpec, ...],
        detect_bytes: int,
    ) -> None:
        self._session = _Session(specs, detect_bytes)
        self._tunnel_specs = tunnel_specs
        self._detect_bytes = detect_bytes
        self._label: str | None = None  # app_proto of the last AppProto marker
        self.flipped = False  # the flow was flipped once (it never is twice)
        self.opaque = False  # Opaque seen: nothing more is parsed after this delivery

    @property
    def app_proto(self) -> str | None:
        return self._session.app_proto

    @property
    def detecting(self) -> bool:
        return self._session.state == DETECTING

    @property
    def counting(self) -> bool:
        return self._session.state == COUNTING

    def attach(self, name: str, parser: Parser) -> None:
        """Read the flow with `parser` instead of detecting (an announced connection)."""
        self._session = _Session.attached(name, parser)

    def deliver(self, direction: Direction, data: bytes | int, ts: float) -> Delivered:
        """Reassembled bytes of one direction, or (an int) the size of a gap in it."""
        session = self._session
        if isinstance(data, int):
            events = session.gap(direction, data, ts)
        else:
            events = session.feed(direction, data, ts)
        flip = session.flip and not self.flipped
        if flip:
            self.flipped = True
        out: list[Event] = []
        if events:
            self._take(session, events, out, ts)
        return Delivered(out, flip, self.counting or self.opaque)

    def eof(self, direction: Direction, ts: float) -> list[Event]:
        session = self._session
        events = session.eof(direction, ts)
        out: list[Event] = []
        self._take(session, events, out, ts)
        return out

    def _take(
        self, session: _Session, events: Sequence[Event], out: list[Event], ts: float
    ) -> None:
        """A session's events into `out` under its AppProto marker, acting on those that
        steer the layer; a tunnel's events are spliced in where they happen."""
        label = session.app_proto
        self._mark(label, out)
        for event in events:
            if type(event) not in _STEERING:
                if self._label != label:  # after a tunnel's run: the outer layer's again
                    self._mark(label, out)
                out.append(event)
            elif isinstance(event, Tunnel):
                self._session = _Session(self._tunnel_specs, self._detect_bytes)
                if event.held:
                    self._child(Direction.TO_SERVER, event.held, out, ts)
            elif isinstance(event, TunnelData):
                if not self.opaque and self._session is not session:
                    self._child(event.direction, event.data, out, ts)
            else:
                self.opaque = True

    def _child(self, direction: Direction, data: bytes, out: list[Event], ts: float) -> None:
        child = self._session
        self._take(child, child.feed(direction, data, ts), out, ts)

    def _mark(self, app_proto: str | None, out: list[Event]) -> None:
        if app_proto != self._label:
            self._label = app_proto
            out.append(AppProto(app_proto))


class FlowApp(Protocol):
    """The app layer of a flow as the pipeline drives it: every packet while the flow is
    analysed, then its end; both return events in wire order, and after a `Counted` event the
    flow is only counted. `TcpApp` for TCP, `dns.DnsResponses` for DNS over UDP."""

    def packet(self, flow: Flow[Any], direction: int, pkt: Packet) -> Sequence[Event]: ...

    def end(self, flow: Flow[Any], ts: float) -> Sequence[Event]: ...


class TcpApp:
    """One TCP flow's reassembly (two `TcpStream`s) and app layer (a `FlowApp`).

    Readings. Where two copies of the same stream bytes differ and receivers would keep
    different ones (see sensor/reassembly/tcp.py), the flow is read once per diverging overlap
    policy: before the segment is applied, the app forks a twin (its streams copied with the
    other policy) that sees every later packet. Its app layer is a new one that is first fed
    what the flow delivered so far, from a log the app keeps while the flow is young (at most
    READING_LOG_BYTES, and all flows' logs together within `log_budget`): the twin's objects
    are then whole. Past the log, the twin's app layer is a deep copy of the main one and the
    objects open at the fork go on in the twin from there (`ReadingForked`; incomplete). At
    most one twin per other policy; none where a policy is configured for the destination
    (`fixed`). A twin contributes objects only (their reading "tcp-<policy>"), not protocol
    records; the flow is Counted once the main reading and every twin are done."""

    __slots__ = (
        "_announced",
        "_eof_sent",
        "_expectations",
        "_fixed",
        "_forked",
        "_linked",
        "_log",
        "_log_budget",
        "_log_bytes",
        "_log_room",
        "_new_layer",
        "_totals",
        "layer",
        "reading",
        "readings",
        "streams",
    )

    def __init__(
        self,
        layer: AppLayer,
        caps: StreamCaps,
        memcap: Memcap,
        totals: StreamTotals,
        expectations: Expectations,
        policy: str | None = None,
        new_layer: Callable[[], AppLayer] | None = None,
        log_budget: Memcap | None = None,
    ) -> None:
        self.layer = layer
        first = policy or POLICIES[0]
        self.streams: list[TcpStream] | None = [
            TcpStream(caps, memcap, first),
            TcpStream(caps, memcap, first),
        ]
        self._totals = totals
        self._expectations = expectations
        self._eof_sent = [False, False]
        self._linked = False  # the expectation table was asked about this flow
        self._announced = False  # this flow announced connections (FTP control)
        self._fixed = policy is not None  # the destination's OS is known: one reading
        self.reading: str | None = None  # a twin's name ("tcp-linux"); None: the main one
        self.readings: list[TcpApp] = []  # the twins still reading
        self._forked: set[str] = set()  # every reading ever forked: never a second time
        self._new_layer = new_layer
        self._log_budget = log_budget
        # (direction, item) as delivered, while young (see the class docstring).
        self._log: list[tuple[int, bytes | Gap]] | None = (
            [] if new_layer is not None and log_budget is not None and not self._fixed else None
        )
        self._log_bytes = 0  # bytes logged
        self._log_room = 0  # bytes of the budget taken for the log

    @property
    def app_proto(self) -> str | None:
        return self.layer.app_proto

    def packet(self, flow: Flow[Any], direction: int, pkt: Packet) -> list[Event]:
        out: list[Event] = []
        streams = self.streams
        if streams is None:
            if self.readings:
                self._twins(flow, direction, pkt, out)
            return out
        ts = pkt.ts
        if (
            streams[direction].holding
            and not self._fixed
            and pkt.payload
            and len(self._forked) < len(POLICIES) - 1
        ):
            self._fork(flow, streams[direction], pkt, out)
        data = streams[direction].segment(pkt.seq, pkt.payload, pkt.tcp_flags, ts)
        if data:
            flipped = self.layer.flipped
            self._deliver(flow, direction, data, ts, out)
            if self.layer.flipped != flipped:
                direction = 1 - direction  # the flow was turned round under this packet
        if pkt.tcp_flags & TCP_ACK and self.streams is not None:
            other = 1 - direction
            acked = self.streams[other].peer_ack(pkt.ack, ts)
            if acked:
                self._deliver(flow, other, acked, ts, out)
        if self.streams is not None:
            self._stream_ends(flow, ts, out)
        if self.readings:
            self._twins(flow, direction, pkt, out)
        return out

    # -- readings --------------------------------------------------------------------------

    def _fork(self, flow: Flow[Any], stream: TcpStream, pkt: Packet, out: list[Event]) -> None:
        """Before `pkt` is applied: a twin for each other policy that keeps other bytes."""
        policies = stream.diverging(pkt.seq, pkt.payload, pkt.tcp_flags)
        for policy in policies:
            name = f"tcp-{policy}"
            if name in self._forked or self.reading is not None:
                continue
            self._forked.add(name)  # once per flow, even if it fails or its parser detaches
            twin = self._twin(policy, name)
            if twin is None:
                out.append(Anomaly("tcp_reading_unavailable", f"{name}: memcap", pkt.ts))
                continue
            self.readings.append(twin)
            whole = self._log is not None
            detail = "from the first byte" if whole else "from here on"
            out.append(Anomaly("tcp_overlap_readings", f"also read as {name}, {detail}", pkt.ts))
            if not whole:
                out.append(ReadingForked(name))
                continue
            assert self._log is not None
            for direction, item in self._log:  # catch up: the twin reads the flow from its start
                events: list[Event] = []
                twin._deliver(flow, direction, [item], pkt.ts, events)
                self._adopt(twin, events, out)

    def _log_grow(self) -> bool:
        """The log outgrew the budget it took: take another block, or give the log up."""
        assert self._log_budget is not None
        if self._log_bytes <= READING_LOG_BYTES and self._log_budget.reserve(_LOG_BLOCK):
            self._log_room += _LOG_BLOCK
            if self._log_bytes <= self._log_room:
                return True
        self._drop_log()
        return False

    def _drop_log(self) -> None:
        if self._log_budget is not None:
            self._log_budget.release(self._log_room)
        self._log = None
        self._log_bytes = self._log_room = 0

    def _twin(self, policy: str, name: str) -> TcpApp | None:
        assert self.streams is not None
        streams = [stream.fork(policy) for stream in self.streams]
        if None in streams:
            for stream in streams:
                if stream is not None:
                    stream.flush(0.0)
            return None
        twin = TcpApp.__new__(TcpApp)
        if self._log is not None and self._new_layer is not None:
            twin.layer = self._new_layer()  # fed the log by _fork
            twin._eof_sent = [False, False]
        else:
            twin.layer = copy.deepcopy(self.layer)
            twin._eof_sent = list(self._eof_sent)
        twin._new_layer = None
        twin._log = None
        twin._log_budget = None
        twin._log_bytes = 0
        twin.streams = [s for s in streams if s is not None]
        twin._totals = StreamTotals()  # a twin's counters are not the flow's
        twin._expectations = self._expectations
        twin._linked = True  # never claims an announced connection
        twin._announced = False
        twin._fixed = True
        twin.reading = name
        twin.readings = []
        twin._forked = set()
        return twin

    def _twins(self, flow: Flow[Any], direction: int, pkt: Packet | None, out: list[Event]) -> None:
        """Every twin's part of this packet (or of the flow's end): its objects, renamed."""
        for twin in list(self.readings):
            if pkt is not None:
                events = twin.packet(flow, direction, pkt)
            else:
                events = twin.end(flow, flow.last)
            self._adopt(twin, events, out)
            if twin.streams is None:
                self.readings.remove(twin)
        if not self.readings and self.streams is None:
            out.append(Counted(self.layer.app_proto))  # the last reading is done

    def _adopt(self, twin: TcpApp, events: Sequence[Event], out: list[Event]) -> None:
        """A twin's objects into `out`, named after its reading. Its protocol records too
        when the main reading gave up (the junk it kept is no protocol) and this is the first
        twin: the flow then has the records of a reading that could be parsed."""
        name = twin.reading
        assert name is not None
        records = (self.streams is None or self.layer.counting) and twin is self.readings[0]
        for event in events:
            if isinstance(event, _OBJECT_EVENTS):  # a copy: the parser may hold the event
                out.append(dataclasses.replace(event, reading=reading_name(name, event.reading)))
            elif records and not isinstance(event, Counted | Anomaly):
                out.append(event)

    def end(self, flow: Flow[Any], ts: float) -> list[Event]:
        """The flow ended: what the streams still hold, every direction's end, then Counted."""
        out: list[Event] = []
        if self.readings:
            twins = self.readings
            self._twins(flow, 0, None, out)
            self.readings = []
            for twin in twins:
                twin.readings = []
            if out and isinstance(out[-1], Counted):
                out.pop()  # the main reading's own end says it
        if self.streams is not None:
            for direction in (0, 1):
                streams = self.streams
                if streams is None:
                    break
                rest = streams[direction].flush(ts)
                if rest:
                    self._deliver(flow, direction, rest, ts, out)
            if self.streams is not None:
                self._stream_ends(flow, ts, out)
        for direction in (0, 1):
            if not self._eof_sent[direction]:
                self._eof_sent[direction] = True
                self._take(flow, self.layer.eof(_DIRECTIONS[direction], ts), out, ts)
        self._stop(ts, out)
        if self._announced:
            self._expectations.announcer_ended(flow.flow_id, flow.last)
        return out

    def _deliver(
        self, flow: Flow[Any], direction: int, items: list[bytes | Gap], ts: float, out: list[Event]
    ) -> None:
        layer = self.layer
        if not self._linked and layer.detecting and self._expectations:
            # An announced connection is claimed at its first bytes: the announcement may come
            # after the connection opened (ftplib connects before it sends STOR).
            self._linked = True
            claimed = self._expectations.claim(flow.server, flow.server_port, flow.start)
            if claimed is not None:
                layer.attach(*claimed)
        log = self._log
        for item in () if layer.counting else items:
            if log is not None:  # young: kept for later readings (class docstring)
                if type(item) is bytes:
                    self._log_bytes += len(item) + _LOG_ITEM
                    if self._log_bytes > self._log_room and not self._log_grow():
                        log = None
                if log is not None:
                    log.append((direction, item))
            if isinstance(item, Gap):
                self._totals.gap_bytes += item.size
                out.append(Anomaly("tcp_gap", f"{item.size} bytes missing", ts))
                delivered = layer.deliver(_DIRECTIONS[direction], item.size, ts)
            else:
                delivered = layer.deliver(_DIRECTIONS[direction], item, ts)
            if delivered.flip and self.reading is not None:
                self._stop(ts, out)  # a twin cannot turn the flow round under the main reading
                return
            if delivered.flip:
                flow.flip()
                if log is not None:  # what was logged was seen the other way round
                    log[:] = [(1 - d, logged) for d, logged in log]
                if self.streams is not None:
                    self.streams.reverse()
                for twin in self.readings:  # the twins see the flow the same way round
                    if twin.streams is not None:
                        twin.streams.reverse()
                    twin._eof_sent.reverse()
                self._eof_sent.reverse()
                direction = 1 - direction
            if delivered.events:
                self._take(flow, delivered.events, out, ts)
            if delivered.stop and layer.counting:
                break  # detection gave up or the parser detached: the rest is only counted
        if layer.counting or layer.opaque:
            self._stop(ts, out)

    def _take(self, flow: Flow[Any], events: list[Event], out: list[Event], ts: float) -> None:
        for event in events:
            if isinstance(event, Announcement):
                if self.reading is not None:
                    continue  # the main reading announces
                self._announced = True
                endpoint = event.endpoint(flow.client, flow.client_port, flow.server)
                self._expectations.announce(endpoint, event, flow.flow_id, ts)
            else:
                out.append(event)

    def _stream_ends(self, flow: Flow[Any], ts: float, out: list[Event]) -> None:
        """Stream anomalies, and the end of each direction whose stream reached it."""
        streams = self.streams
        assert streams is not None
        for direction in (0, 1):
            stream = streams[direction]
            out.extend(stream.take_anomalies())
            if stream.done and not self._eof_sent[direction]:
                self._eof_sent[direction] = True
                self._take(flow, self.layer.eof(_DIRECTIONS[direction], ts), out, ts)

    def _stop(self, ts: float, out: list[Event]) -> None:
        """From now on the flow is only counted: free its reassembly buffers."""
        self._drop_log()
        if self.streams is not None:
            for stream in self.streams:
                stream.flush(ts)
                self._totals.released(stream)
            self.streams = None
        if not self.readings:  # else the last twin to end says it (_twins)
            out.append(Counted(self.layer.app_proto))
