"""ChunkEmitter offsets and cap; FlowingText cuts that do not depend on the split."""

from __future__ import annotations

import random

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.emitter import (
    MAX_CHUNK_CHARS,
    MIN_CUT_CHARS,
    ChunkEmitter,
    FlowingText,
)


def test_offsets_count_characters_handed_out() -> None:
    anomalies: list = []
    emitter = ChunkEmitter(anomalies, 100)
    out: list[TextChunk] = []
    emitter.emit(out, "abc", part="p", row=2)
    emitter.emit(out, "defg", header="h")
    assert [(c.text, c.position.offset) for c in out] == [("abc", 0), ("defg", 3)]
    assert out[0].position.part == "p" and out[0].position.row == 2
    assert out[1].header == "h"
    assert anomalies == []


def test_cap_cuts_once_and_then_nothing() -> None:
    anomalies: list = []
    emitter = ChunkEmitter(anomalies, 5)
    out: list[TextChunk] = []
    emitter.emit(out, "abc")
    emitter.emit(out, "defg")
    emitter.emit(out, "hij")
    assert "".join(c.text for c in out) == "abcde"
    assert [a.kind for a in anomalies] == ["text_cap"]
    assert emitter.capped


def test_long_text_is_split_into_bounded_chunks() -> None:
    anomalies: list = []
    emitter = ChunkEmitter(anomalies, 10 * MAX_CHUNK_CHARS)
    out: list[TextChunk] = []
    emitter.emit(out, "x" * (2 * MAX_CHUNK_CHARS + 5))
    assert [len(c.text) for c in out] == [MAX_CHUNK_CHARS, MAX_CHUNK_CHARS, 5]
    assert [c.position.offset for c in out] == [0, MAX_CHUNK_CHARS, 2 * MAX_CHUNK_CHARS]


def runs_of(text: str, step: int) -> list[str]:
    flowing = FlowingText()
    runs: list[str] = []
    for i in range(0, len(text), step):
        flowing.add(text[i : i + step])
        runs += flowing.full()
    runs.append(flowing.rest())
    return runs


def test_flowing_text_cuts_at_whitespace_independent_of_split() -> None:
    rng = random.Random(7)
    words = [str(rng.randrange(10**8, 10**9)) for _ in range(40_000)]
    text = " ".join(words)
    whole = runs_of(text, len(text))
    assert "".join(whole) == text
    assert all(len(run) <= MAX_CHUNK_CHARS for run in whole)
    assert all(len(run) >= MIN_CUT_CHARS for run in whole[:-1])
    assert all(run.endswith(" ") for run in whole[:-1])  # no number split between chunks
    for step in (1000, 4093, 65536, 100_000):
        assert runs_of(text, step) == whole


def test_flowing_text_without_whitespace_cuts_hard() -> None:
    text = "y" * (MAX_CHUNK_CHARS * 2 + 3)
    assert [len(r) for r in runs_of(text, 999)] == [MAX_CHUNK_CHARS, MAX_CHUNK_CHARS, 3]
