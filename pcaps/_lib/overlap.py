"""A byte model of how receivers resolve overlapping TCP copies (Ptacek & Newsham 1998; Novak's
target-based reassembly), for the ground truth of crafted overlap cases and of the reassembly
tests. Written apart from sensor/reassembly/tcp.py on purpose: it keeps one byte at a time.
"""

from __future__ import annotations

POLICIES = ("first", "linux", "bsd")


def received(policy: str, copies: list[tuple[int, bytes, bool]]) -> bytes:
    """What a receiver with `policy` reads from copies (stream offset, bytes, on a SYN) in
    arrival order: bytes it has read never change; for bytes it holds out of order, a new copy
    wins under linux where it starts at or before the held one's start, under bsd where it
    starts before, never under first; SYN payload is held and lost to any later different copy
    except under first (a receiver with Fast Open)."""
    held: dict[int, tuple[int, int | None]] = {}  # offset -> (byte, copy start; None: SYN)
    out = bytearray()
    for start, data, syn in copies:
        for i, byte in enumerate(data):
            off = start + i
            if off < len(out):
                continue
            old = held.get(off)
            if old is None:
                held[off] = (byte, None if syn else start)
                continue
            if old[0] == byte:
                continue
            origin = old[1]
            if origin is None:
                wins = policy != "first"
            elif policy == "linux":
                wins = start <= origin
            elif policy == "bsd":
                wins = start < origin
            else:
                wins = False
            if wins:
                held[off] = (byte, start)
        if not syn:  # SYN payload waits for what follows it
            while len(out) in held:
                out.append(held.pop(len(out))[0])
    while len(out) in held:
        out.append(held.pop(len(out))[0])
    return bytes(out)
