"""sensor/protocols/layer.py: detection, the flip, detaching, tunnels and markers of the app
layer, and the expectation table's links from announcing flows to announced ones."""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.protocols.base import (
    AppProto,
    Direction,
    Opaque,
    ProtocolViolation,
    Tunnel,
    TunnelData,
)
from sensor.protocols.detect import ProtocolSpec
from sensor.protocols.layer import AppLayer, Delivered
from sensor.protocols.ssh import detect as detect_ssh

C2S, S2C = Direction.TO_SERVER, Direction.TO_CLIENT


def detect_ping(direction: Direction, data: bytes) -> bool | None:
    word = b"PING" if direction == C2S else b"PONG"
    if len(data) < 4:
        return None if word.startswith(data) else False
    return data.startswith(word)


class Recorder:
    """A parser that echoes what it is fed as ("data", direction, bytes) events; "BOOM" is a
    violation, "BUG" a crash, "TUNNEL" opens a tunnel, "OPAQUE" ends parsing."""

    name = "ping"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bytes | int]] = []

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[object]:
        if b"BOOM" in data:
            raise ProtocolViolation("ping_boom", "exploded")
        if b"BUG" in data:
            raise KeyError("bug")
        self.calls.append(("feed", direction, data))
        if data.startswith(b"TUNNEL "):
            return [("data", direction, b"TUNNEL"), Tunnel(ts, data[7:]), ("after", direction)]
        if data.startswith(b"OPEN "):  # a tunnel opens, the peer's first bytes behind it
            return [Tunnel(ts), TunnelData(direction, data[5:])]
        if data == b"OPAQUE":
            return [Opaque("starttls", ts)]
        return [("data", direction, data)]

    def gap(self, direction: Direction, size: int, ts: float) -> list[object]:
        self.calls.append(("gap", direction, size))
        return []

    def eof(self, direction: Direction, ts: float) -> list[object]:
        self.calls.append(("eof", direction, b""))
        return []


def events_of(delivered: Delivered) -> list[object]:
    """The events without the AppProto markers."""
    return [e for e in delivered.events if not isinstance(e, AppProto)]


def make(detect_bytes: int = 64) -> tuple[AppLayer, list[Recorder]]:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    spec = ProtocolSpec("ping", detect_ping, factory)  # type: ignore[arg-type]
    ssh = ProtocolSpec("ssh", detect_ssh)
    return AppLayer((spec, ssh), (ssh, spec), detect_bytes), made


def test_detection_waits_then_replays_in_arrival_order() -> None:
    layer, _made = make()
    assert layer.deliver(C2S, b"PI", 1.0) == Delivered([], False, False)
    assert layer.detecting
    delivered = layer.deliver(C2S, b"NG 1", 1.1)
    assert not layer.detecting and layer.app_proto == "ping" and not delivered.flip
    assert delivered.events == [
        AppProto("ping"),
        ("data", C2S, b"PI"),
        ("data", C2S, b"NG 1"),
    ]
    assert layer.deliver(S2C, b"PONG", 1.2).events == [("data", S2C, b"PONG")]


def test_reversed_roles_request_a_flip_once_and_directions_are_swapped() -> None:
    layer, _made = make()
    delivered = layer.deliver(C2S, b"PONG back", 1.0)
    assert delivered.flip and not layer.detecting and not layer.counting
    assert events_of(delivered) == [("data", S2C, b"PONG back")]
    assert not layer.deliver(C2S, b"PING", 1.1).flip  # reported once: the caller flipped


def test_unknown_protocol_gives_up_after_the_budget() -> None:
    layer, _ = make(detect_bytes=8)
    layer.deliver(C2S, b"\x00\x01", 1.0)
    delivered = layer.deliver(S2C, b"\x02\x03", 1.0)
    assert layer.counting and layer.app_proto == "unknown" and delivered.stop
    assert layer.deliver(C2S, b"PING", 2.0).events == []


def test_budget_alone_ends_detection_for_one_sided_flows() -> None:
    layer, _ = make(detect_bytes=8)
    layer.deliver(C2S, b"P", 1.0)  # still a possible PING
    layer.deliver(C2S, b"\xff" * 16, 1.0)
    assert layer.counting


def test_name_only_protocol_is_counted() -> None:
    layer, _ = make()
    layer.deliver(S2C, b"SSH-2.0-OpenSSH_9.2\r\n", 1.0)
    assert layer.app_proto == "ssh" and layer.counting


def test_violation_detaches_with_an_anomaly() -> None:
    layer, made = make()
    layer.deliver(C2S, b"PING", 1.0)
    delivered = layer.deliver(C2S, b"BOOM", 2.0)
    assert delivered.events == [Anomaly("ping_boom", "exploded", 2.0)]
    assert layer.counting and delivered.stop
    assert layer.deliver(C2S, b"PING again", 3.0).events == []
    assert made[0].calls == [("feed", C2S, b"PING")]  # detached: never called again


def test_parser_bug_is_contained() -> None:
    layer, _ = make()
    layer.deliver(C2S, b"PING", 1.0)
    (anomaly,) = layer.deliver(C2S, b"BUG", 2.0).events
    assert isinstance(anomaly, Anomaly) and anomaly.kind == "parser_error"
    assert "KeyError" in anomaly.detail
    assert layer.counting


def test_gap_before_detection_gives_up_and_eof_decides_on_short_streams() -> None:
    layer, _ = make()
    layer.deliver(C2S, b"PI", 1.0)
    assert layer.deliver(C2S, 100, 1.0).stop  # an int is the size of a gap
    assert layer.counting
    short, _made = make()
    short.deliver(C2S, b"PING", 1.0)
    assert not short.detecting and not short.counting
    other, _ = make()
    other.deliver(C2S, b"PIN", 1.0)
    other.eof(C2S, 2.0)
    assert other.counting


def test_opaque_stops_the_layer_after_this_delivery() -> None:
    layer, _made = make()
    layer.deliver(C2S, b"PING", 1.0)
    delivered = layer.deliver(C2S, b"OPAQUE", 2.0)
    assert delivered.stop and layer.opaque and not layer.counting
    assert events_of(delivered) == []  # Opaque steers the layer, it is not passed on


def test_a_tunnel_hands_over_to_a_child_layer_with_the_held_bytes() -> None:
    layer, made = make()
    layer.deliver(C2S, b"PING", 1.0)
    delivered = layer.deliver(C2S, b"TUNNEL SSH-2.0-x\r\n", 2.0)
    # The outer layer's events, the child's (detected on the held bytes: SSH, name only),
    # then the outer layer's again, each run under its marker.
    assert delivered.events == [
        ("data", C2S, b"TUNNEL"),
        AppProto("ssh"),
        AppProto("ping"),
        ("after", C2S),
    ]
    assert layer.app_proto == "ssh" and layer.counting and delivered.stop
    assert [call[0] for call in made[0].calls] == ["feed", "feed"]  # the outer parser is done


def test_tunnel_data_goes_to_the_child_and_later_bytes_straight_to_it() -> None:
    layer, made = make()
    layer.deliver(C2S, b"PING", 1.0)
    delivered = layer.deliver(C2S, b"OPEN PI", 2.0)  # nothing held; the child's first bytes
    assert events_of(delivered) == []  # came behind the request (TunnelData): still undecided
    assert layer.detecting and len(made) == 1  # the child detects
    delivered = layer.deliver(C2S, b"NG 2", 3.0)  # later bytes go straight to the child
    assert events_of(delivered) == [("data", C2S, b"PI"), ("data", C2S, b"NG 2")]
    assert made[1].calls == [("feed", C2S, b"PI"), ("feed", C2S, b"NG 2")]
    assert made[0].calls == [("feed", C2S, b"PING"), ("feed", C2S, b"OPEN PI")]


def test_eof_marks_the_layer_even_without_events() -> None:
    layer, _ = make()
    layer.deliver(C2S, b"PI", 1.0)
    layer.deliver(C2S, b"NG", 1.0)
    assert layer.eof(C2S, 2.0) == []  # already marked "ping" when the first events came
    fresh, _ = make()
    fresh.deliver(C2S, b"PIN", 1.0)
    assert fresh.eof(S2C, 2.0) == [AppProto("unknown")]  # the end decided: nothing matched
    assert fresh.counting
