from __future__ import annotations

from sensor.metering.windows import Windows, window_specs


def test_granularity_keeps_slots_bounded() -> None:
    specs = window_specs((86400.0, 60.0, 600.0, 3600.0, 600.0), 10.0, 60)
    assert [(s.seconds, s.granularity, s.slots) for s in specs] == [
        (60.0, 10.0, 6),
        (600.0, 10.0, 60),
        (3600.0, 60.0, 60),
        (86400.0, 1440.0, 60),
    ]


def test_sums_slide_and_memory_is_capped() -> None:
    w = Windows(window_specs((60.0, 3600.0), 10.0, 60))
    for i in range(1000):  # one bucket every 10 s for 10,000 s
        w.add(i * 10.0, [1, 1, 1, 0, 0, 0])
    assert w.sums[0][0] == 6  # the last six 10 s buckets
    # The last 60 slots of 1 min: 59 full ones and the current one, 4 buckets so far.
    assert w.sums[1][0] == 59 * 6 + 4
    assert w.entries() <= 6 + 60
    w.advance(9990.0 + 60)  # one minute of silence empties the short window
    assert w.sums[0] == [0] * 6 and w.sums[1][0] == 58 * 6 + 4
    w.advance(1e9)
    assert w.empty() and w.sums[1] == [0] * 6
