"""Per-flow protocol dispatch (the protocols stage): reassembled bytes in, parser events out.

Theory of operation
-------------------
DETECTING: bytes of each direction are kept (at most `detect_bytes` per direction) and shown to
every detector in registration order. On a match the parser is created and the kept bytes are
replayed into it in their original arrival order; the session is then PARSING. If the match
was for the opposite role, `flip` is set so the pipeline can swap client and server first.
No match within the budget (or a gap before a match) -> COUNTING with app_proto "unknown".

PARSING: every call goes to the one parser. A `ProtocolViolation` or any unexpected exception
detaches the parser (Zeek: "violation"): the session reports it as an anomaly and switches to
COUNTING; the flow itself keeps being metered. One bad flow never stops the sensor.

COUNTING: data is ignored (the pipeline stops reassembling such flows).
"""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction, Parser, ProtocolViolation
from sensor.protocols.detect import ProtocolSpec

DETECTING = 0
PARSING = 1
COUNTING = 2

UNKNOWN = "unknown"


class AppSession:
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
    def attached(cls, name: str, parser: Parser) -> AppSession:
        """A session whose protocol is already known (e.g. an FTP data connection announced
        on its control connection): no detection, straight to PARSING."""
        session = cls((), 0)
        session.app_proto = name
        session.parser = parser
        session.state = PARSING
        return session

    # -- driving -------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[object]:
        if self.state == PARSING:
            return self._call("feed", direction, data, ts)
        if self.state == COUNTING:
            return []
        return self._detect(direction, data, ts)

    def gap(self, direction: Direction, size: int, ts: float) -> list[object]:
        if self.state == PARSING:
            return self._call("gap", direction, size, ts)
        if self.state == DETECTING:
            # Detection needs the start of the stream; after a hole it cannot be trusted.
            self._give_up()
        return []

    def eof(self, direction: Direction, ts: float) -> list[object]:
        if self.state == PARSING:
            return self._call("eof", direction, ts)
        if self.state == DETECTING and not any(self._buffers):
            return []
        if self.state == DETECTING:
            # The stream ended before the budget: decide on what was seen.
            events = self._try_specs(final=True, ts=ts)
            if self.state == PARSING:
                return events + self._call("eof", direction, ts)
            self._give_up()
        return []

    # -- detection -----------------------------------------------------------------------

    def _detect(self, direction: Direction, data: bytes, ts: float) -> list[object]:
        buf = self._buffers[direction]
        room = self._detect_bytes - len(buf)
        if room > 0:
            buf += data[:room]
        self._order.append((direction, data))
        events = self._try_specs(final=False, ts=ts)
        if self.state == DETECTING and len(buf) >= self._detect_bytes:
            self._give_up()
        return events

    def _try_specs(self, final: bool, ts: float) -> list[object]:
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
        return []

    def _attach(self, spec: ProtocolSpec, flip: bool, ts: float) -> list[object]:
        self.app_proto = spec.name
        self.flip = flip
        self._buffers = [bytearray(), bytearray()]
        order, self._order = self._order, []
        if spec.parser is None:
            self.state = COUNTING
            return []
        self.parser = spec.parser()
        self.state = PARSING
        events: list[object] = []
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

    # -- containment ---------------------------------------------------------------------

    def _call(self, method: str, *args: object) -> list[object]:
        parser = self.parser
        assert parser is not None
        ts = float(args[-1])  # type: ignore[arg-type]
        try:
            result: list[object] = getattr(parser, method)(*args)
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
