"""Human units for what Sluice prints: bytes in powers of 1000 (kB, MB), rates in bit/s,
durations. One place, so the summary, `top`, `host`, findings and the HTML pages agree."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """`1,234 B`, `12.3 kB`, `4.5 MB`... (SI: 1 kB = 1000 B, as disk and network vendors)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_rate(bps: float) -> str:
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if abs(bps) < 1000 or unit == "Gbit/s":
            return f"{bps:,.0f} {unit}" if unit == "bit/s" else f"{bps:,.1f} {unit}"
        bps /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """`10 s`, `10 min`, `1 h`, `7 d`; mixed values in the largest whole unit with a decimal."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{seconds:g} s"


def printable(value: object) -> str:
    """Text from the wire made safe for one line of a terminal or log: control characters
    (ESC sequences that would drive the operator's terminal, newlines that would forge a line)
    and bidi overrides become '?'."""
    text = str(value)
    if text.isprintable() and _BIDI.isdisjoint(text):
        return text  # the common case, checked in C
    return "".join(ch if ch.isprintable() and ch not in _BIDI else "?" for ch in text)


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
