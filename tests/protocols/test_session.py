from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction, ProtocolViolation
from sensor.protocols.detect import ProtocolSpec
from sensor.protocols.session import COUNTING, PARSING, AppSession
from sensor.protocols.ssh import detect as detect_ssh

C2S, S2C = Direction.TO_SERVER, Direction.TO_CLIENT


def detect_ping(direction: Direction, data: bytes) -> bool | None:
    word = b"PING" if direction == C2S else b"PONG"
    if len(data) < 4:
        return None if word.startswith(data) else False
    return data.startswith(word)


class Recorder:
    name = "ping"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bytes | int]] = []

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[object]:
        if b"BOOM" in data:
            raise ProtocolViolation("ping_boom", "exploded")
        if b"BUG" in data:
            raise KeyError("bug")
        self.calls.append(("feed", direction, data))
        return [("data", direction, data)]

    def gap(self, direction: Direction, size: int, ts: float) -> list[object]:
        self.calls.append(("gap", direction, size))
        return []

    def eof(self, direction: Direction, ts: float) -> list[object]:
        self.calls.append(("eof", direction, b""))
        return []


def make(detect_bytes: int = 64) -> tuple[AppSession, list[Recorder]]:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    spec = ProtocolSpec("ping", detect_ping, factory)  # type: ignore[arg-type]
    return AppSession((spec, ProtocolSpec("ssh", detect_ssh)), detect_bytes), made


def test_detection_waits_then_replays_in_arrival_order() -> None:
    session, _made = make()
    assert session.feed(C2S, b"PI", 1.0) == []
    assert session.state != PARSING
    events = session.feed(C2S, b"NG 1", 1.1)
    assert session.state == PARSING and session.app_proto == "ping" and not session.flip
    assert events == [("data", C2S, b"PI"), ("data", C2S, b"NG 1")]
    assert session.feed(S2C, b"PONG", 1.2) == [("data", S2C, b"PONG")]


def test_reversed_roles_request_a_flip_and_directions_are_swapped() -> None:
    session, _made = make()
    events = session.feed(C2S, b"PONG back", 1.0)
    assert session.flip and session.state == PARSING
    assert events == [("data", S2C, b"PONG back")]


def test_unknown_protocol_gives_up_after_the_budget() -> None:
    session, _ = make(detect_bytes=8)
    session.feed(C2S, b"\x00\x01", 1.0)
    session.feed(S2C, b"\x02\x03", 1.0)
    assert session.state == COUNTING and session.app_proto == "unknown"
    assert session.feed(C2S, b"PING", 2.0) == []


def test_budget_alone_ends_detection_for_one_sided_flows() -> None:
    session, _ = make(detect_bytes=8)
    session.feed(C2S, b"P", 1.0)  # still a possible PING
    session.feed(C2S, b"\xff" * 16, 1.0)
    assert session.state == COUNTING


def test_name_only_protocol_is_counted() -> None:
    session, _ = make()
    session.feed(S2C, b"SSH-2.0-OpenSSH_9.2\r\n", 1.0)
    assert session.app_proto == "ssh" and session.state == COUNTING


def test_violation_detaches_with_an_anomaly() -> None:
    session, _ = make()
    session.feed(C2S, b"PING", 1.0)
    events = session.feed(C2S, b"BOOM", 2.0)
    assert events == [Anomaly("ping_boom", "exploded", 2.0)]
    assert session.state == COUNTING and session.parser is None


def test_parser_bug_is_contained() -> None:
    session, _ = make()
    session.feed(C2S, b"PING", 1.0)
    (anomaly,) = session.feed(C2S, b"BUG", 2.0)
    assert isinstance(anomaly, Anomaly) and anomaly.kind == "parser_error"
    assert "KeyError" in anomaly.detail
    assert session.state == COUNTING


def test_gap_before_detection_gives_up_and_eof_decides_on_short_streams() -> None:
    session, _ = make()
    session.feed(C2S, b"PI", 1.0)
    session.gap(C2S, 100, 1.0)
    assert session.state == COUNTING
    short, _made = make()
    short.feed(C2S, b"PING", 1.0)
    assert short.state == PARSING
    other, _ = make()
    other.feed(C2S, b"PIN", 1.0)
    other.eof(C2S, 2.0)
    assert other.state == COUNTING
