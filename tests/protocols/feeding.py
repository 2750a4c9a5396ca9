"""The harness the protocol parser tests share (STYLE.md, Tests: every parser test feeds its
samples whole, byte by byte and in random splits, and expects the same events).

A conversation is a list of (direction, bytes) in wire order. The feeders give each segment
to a parser in pieces, every call at the same timestamp TS, then (unless eof=False) close the
client side and then the server side; `runner` makes a module's `run(segments, split, seed)`
from them and `assert_same_events` checks that every split gives the same events. Also here:
merging adjacent data events (so that only segmentation-independent events are compared), the
hypothesis strategy for split points, a fuzz driver, and a loopback relay that records the bytes
a real client and server exchange.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from hypothesis import strategies as st

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction, ProtocolViolation

C = Direction.TO_SERVER
S = Direction.TO_CLIENT
TS = 1.0

Segment = tuple[Direction, bytes]
Splits = Sequence[Iterable[int]]


class Parser(Protocol):
    def feed(self, direction: Direction, data: bytes, ts: float) -> list[Any]: ...

    def eof(self, direction: Direction, ts: float) -> list[Any]: ...

    def gap(self, direction: Direction, length: int, ts: float) -> list[Any]: ...


# --- feeding ------------------------------------------------------------------------------------


def pieces(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the (sorted) offsets `cuts`; repeated offsets give empty pieces."""
    return [data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)])]


def _feed(
    parser: Parser,
    conversation: Iterable[Segment],
    cut: Callable[[int, bytes], list[bytes]],
    eof: bool,
) -> list[object]:
    events: list[object] = []
    for i, (direction, data) in enumerate(conversation):
        for piece in cut(i, data):
            events += parser.feed(direction, piece, TS)
    if eof:
        events += parser.eof(C, TS)
        events += parser.eof(S, TS)
    return events


def feed_whole(
    parser: Parser, conversation: Iterable[Segment], *, eof: bool = True
) -> list[object]:
    """Each segment in one feed call (an empty segment too)."""
    return _feed(parser, conversation, lambda _i, data: [data], eof)


def feed_bytewise(
    parser: Parser, conversation: Iterable[Segment], *, eof: bool = True
) -> list[object]:
    """Each segment one byte per feed call (an empty segment: no call)."""
    return _feed(
        parser, conversation, lambda _i, data: [data[i : i + 1] for i in range(len(data))], eof
    )


def feed_split(
    parser: Parser, conversation: Sequence[Segment], splits: Splits, *, eof: bool = True
) -> list[object]:
    """Segment i cut at the sorted offsets splits[i] (one list of cut points per segment)."""
    assert len(splits) == len(conversation), (len(splits), len(conversation))
    return _feed(parser, conversation, lambda i, data: pieces(data, splits[i]), eof)


def random_splits(conversation: Iterable[Segment], seed: int, max_cuts: int) -> list[list[int]]:
    """Up to `max_cuts` distinct inner cut points per segment, from one Random(seed) drawn in
    segment order (so a seed always gives the same pieces)."""
    rng = random.Random(seed)
    return [
        sorted(rng.sample(range(1, len(data)), min(len(data) - 1, max_cuts)))
        if len(data) > 1
        else []
        for _direction, data in conversation
    ]


def feed(
    parser: Parser,
    conversation: Sequence[Segment],
    split: str = "whole",
    seed: int = 0,
    *,
    eof: bool = True,
    max_cuts: int,
) -> list[object]:
    """feed_whole, feed_bytewise or feed_split with random_splits, by name: "whole", "bytes",
    "random" (with `seed`)."""
    if split == "whole":
        return feed_whole(parser, conversation, eof=eof)
    if split == "bytes":
        return feed_bytewise(parser, conversation, eof=eof)
    assert split == "random", split
    return feed_split(parser, conversation, random_splits(conversation, seed, max_cuts), eof=eof)


def fuzz_feed(
    parser: Parser,
    chunks: Iterable[tuple[Direction, bytes, int]],
    prefixes: Sequence[bytes],
    gap_action: int,
) -> None:
    """Fuzz driver: per (direction, data, action), a gap of len(data) + 1 bytes when action is
    `gap_action`, else prefixes[action] + data; then eof both sides. The parser's own
    ProtocolViolation ends the run quietly; any other exception propagates."""
    try:
        for direction, data, action in chunks:
            if action == gap_action:
                parser.gap(direction, len(data) + 1, TS)
            else:
                parser.feed(direction, prefixes[action] + data, TS)
        parser.eof(C, TS)
        parser.eof(S, TS)
    except ProtocolViolation:
        pass


class Run(Protocol):
    """A test module's `run`: feed a conversation to a fresh parser, split by name."""

    def __call__(
        self,
        segments: Sequence[Segment],
        split: str = ...,
        seed: int = ...,
        eof: bool = ...,
        caps: Any = ...,
    ) -> list[object]: ...


def runner(
    parser_class: Callable[..., Parser],
    *,
    max_cuts: int,
    merge: Callable[[list[object]], list[object]] = list,
) -> Run:
    """A module's `run(segments, split="whole", seed=0, eof=True, caps=None)`: a fresh parser
    (with `caps` when given), fed by `feed` with at most `max_cuts` random cuts per segment,
    the events passed through `merge`."""

    def run(
        segments: Sequence[Segment],
        split: str = "whole",
        seed: int = 0,
        eof: bool = True,
        caps: Any = None,
    ) -> list[object]:
        parser = parser_class(caps) if caps else parser_class()
        return merge(feed(parser, segments, split, seed, eof=eof, max_cuts=max_cuts))

    return run


# --- comparing ----------------------------------------------------------------------------------


def merge_adjacent(
    events: Iterable[object], kind: type[Any], key: Callable[[Any], object]
) -> list[object]:
    """Merge runs of `kind` events (dataclasses with a `data` field) of the same key into one:
    how a body or message is cut into data events depends on segmentation, nothing else does."""
    out: list[Any] = []
    for ev in events:
        last = out[-1] if out else None
        if isinstance(ev, kind) and isinstance(last, kind) and key(last) == key(ev):
            out[-1] = replace(last, data=last.data + ev.data)
        else:
            out.append(ev)
    return out


def assert_same_events(
    run: Run, conversation: Sequence[Segment], seeds: Iterable[int] = range(5)
) -> list[object]:
    """Feed `conversation` whole, again whole, byte by byte and in random pieces for every seed;
    assert every run gives the events of the first; return those."""
    reference = run(conversation)
    for split, seed in [("whole", 0), ("bytes", 0), *(("random", seed) for seed in seeds)]:
        assert run(conversation, split, seed) == reference, (split, seed)
    return reference


def split_points(length: int, *, inner: bool = False) -> st.SearchStrategy[list[int]]:
    """Sorted cut points (at most 8) for a segment of `length` bytes. By default any offset from
    0 to length, repeats allowed, so empty pieces too; `inner`: distinct offsets from 1 to
    length - 1."""
    if inner:
        return st.sets(st.integers(1, max(1, length - 1)), max_size=8).map(sorted)
    return st.lists(st.integers(0, length), max_size=8).map(sorted)


def draw_splits(
    data: st.DataObject, conversation: Iterable[Segment], *, inner: bool = False
) -> list[list[int]]:
    """One split_points draw per segment, in segment order."""
    return [data.draw(split_points(len(payload), inner=inner)) for _d, payload in conversation]


def of(events: list[object], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def kinds(events: list[object]) -> list[str]:
    return [e.kind for e in events if isinstance(e, Anomaly)]


# --- real software over loopback ----------------------------------------------------------------


class LoopbackRelay:
    """A one-connection TCP relay on 127.0.0.1 to `target_port` that records what each side
    sent, in the order it crossed (recorded before forwarding, so the order is causal)."""

    def __init__(self, target_port: int, timeout: float = 30) -> None:
        self.target_port = target_port
        self.timeout = timeout
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.segments: list[Segment] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        pumps = [
            threading.Thread(target=self._pump, args=(client, server, C), daemon=True),
            threading.Thread(target=self._pump, args=(server, client, S), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join(timeout=self.timeout)
        client.close()
        server.close()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            with self.lock:  # recorded before forwarding: replies always come later
                self.segments.append((direction, data))
            dst.sendall(data)

    def close(self) -> None:
        self.thread.join(timeout=self.timeout)
        self.listener.close()
