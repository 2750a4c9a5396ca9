"""Sliding-window sums over fixed time slots, bounded in memory.

Each window of `seconds` is split into at most `slots` slots of `granularity` seconds
(`max(bucket, seconds / slots)`, rounded up to a whole number of buckets), so a 1 min window
sums 10 s buckets exactly while a 24 h window keeps 60 slots of 24 min. A window's sum covers
the slots whose index is within `slots` of the newest one added or advanced to: it slides in
steps of one slot, and its memory is at most `slots` entries, only for slots that saw traffic.

Entries are lists `[slot, c0..c5]` (the counter layout of `values.py`), mutated in place.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from sensor.metering.values import N_COUNTERS


@dataclass(frozen=True, slots=True)
class WindowSpec:
    seconds: float
    granularity: float
    slots: int


def window_specs(durations: tuple[float, ...], bucket: float, slots: int) -> tuple[WindowSpec, ...]:
    specs = []
    for seconds in sorted(set(durations)):
        buckets_per_slot = max(1, math.ceil(seconds / bucket / slots))
        granularity = bucket * buckets_per_slot
        specs.append(WindowSpec(seconds, granularity, max(1, math.ceil(seconds / granularity))))
    return tuple(specs)


class Windows:
    """The sliding sums of one host or one (host, destination) pair."""

    __slots__ = ("_rings", "_specs", "sums")

    def __init__(self, specs: tuple[WindowSpec, ...]) -> None:
        self._specs = specs
        self._rings: list[deque[list[int]]] = [deque() for _ in specs]
        self.sums: list[list[int]] = [[0] * N_COUNTERS for _ in specs]

    def add(self, t: float, counters: list[int]) -> None:
        """Add a closed bucket starting at packet time `t` (counters in values.py layout)."""
        # Unrolled over the six counters: this runs for every active host and pair at every
        # bucket close, and loops over range(6) cost three times as much.
        c0, c1, c2, c3, c4, c5 = counters[:N_COUNTERS]
        for spec, ring, total in zip(self._specs, self._rings, self.sums, strict=True):
            slot = int(t // spec.granularity)
            if ring and ring[-1][0] == slot:
                entry = ring[-1]
                entry[1] += c0
                entry[2] += c1
                entry[3] += c2
                entry[4] += c3
                entry[5] += c4
                entry[6] += c5
            else:
                ring.append([slot, c0, c1, c2, c3, c4, c5])
            total[0] += c0
            total[1] += c1
            total[2] += c2
            total[3] += c3
            total[4] += c4
            total[5] += c5
            if ring[0][0] <= slot - spec.slots:
                _expire(ring, total, slot - spec.slots)

    def advance(self, t: float) -> None:
        """Slide every window to packet time `t` without adding anything."""
        for spec, ring, total in zip(self._specs, self._rings, self.sums, strict=True):
            _expire(ring, total, int(t // spec.granularity) - spec.slots)

    def total(self, index: int) -> list[int]:
        return self.sums[index]

    def empty(self) -> bool:
        return not any(self._rings)

    def entries(self) -> int:
        return sum(len(ring) for ring in self._rings)


def _expire(ring: deque[list[int]], total: list[int], oldest_gone: int) -> None:
    while ring and ring[0][0] <= oldest_gone:
        _, c0, c1, c2, c3, c4, c5 = ring.popleft()
        total[0] -= c0
        total[1] -= c1
        total[2] -= c2
        total[3] -= c3
        total[4] -= c4
        total[5] -= c5
