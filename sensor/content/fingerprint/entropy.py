"""Fingerprint stage: the byte distribution of an object's first MiB.

In: the object's bytes as they stream. Out: Shannon entropy in bits per byte and Pearson's
chi-square statistic of the byte histogram against the uniform distribution (255 degrees of
freedom), over the first `ENTROPY_BYTES`.

Entropy alone cannot tell compressed from encrypted data (deflate, zstd and ciphertext are all
near 8 bits/byte); chi-square separates deflate and zstd (far above the critical value) from
ciphertext, though not LZMA (research note, section 6). So both are used only for objects with
no known structure, and a compressed format with a header is never called encrypted.

The histogram is numpy's bincount over batches of at least `BATCH_BYTES`: one C call per batch
instead of per TCP segment.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

ENTROPY_BYTES = 1024 * 1024  # what the statistics cover
BATCH_BYTES = 64 * 1024  # pending bytes before a histogram update
# Chi-square critical value for 255 degrees of freedom at p = 0.001: a uniform random source
# exceeds it once in a thousand objects.
CHI_SQUARE_RANDOM_MAX = 330.5
# ... and the lower tail at p = 0.001: a histogram flatter than this is a counter or a table,
# not noise (bytes(range(256)) repeated has chi-square 0).
CHI_SQUARE_RANDOM_MIN = 185.0


class ByteHistogram:
    __slots__ = ("_counts", "_pending", "seen")

    def __init__(self) -> None:
        self._counts: npt.NDArray[np.int64] | None = None
        self._pending = bytearray()
        self.seen = 0  # bytes counted so far (at most ENTROPY_BYTES)

    def feed(self, data: bytes) -> None:
        room = ENTROPY_BYTES - self.seen
        if room <= 0 or not data:
            return
        if len(data) > room:
            data = data[:room]
        self.seen += len(data)
        self._pending += data
        if len(self._pending) >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        counts = np.bincount(np.frombuffer(self._pending, dtype=np.uint8), minlength=256)
        self._counts = counts if self._counts is None else self._counts + counts
        self._pending = bytearray()

    def counts(self) -> npt.NDArray[np.int64]:
        self._flush()
        if self._counts is None:
            return np.zeros(256, dtype=np.int64)
        return self._counts

    def entropy(self) -> float | None:
        """Bits per byte, None for no bytes: log2(n) - sum(c log2 c) / n over the counts c."""
        counts = self.counts()
        n = self.seen
        if n == 0:
            return None
        present = counts[counts.nonzero()]
        return max(0.0, math.log2(n) - float(np.dot(present, np.log2(present))) / n)

    def chi_square(self) -> float | None:
        """Pearson's statistic against the uniform distribution: sum((c - e)^2 / e) with
        e = n / 256, which is sum(c^2) / e - n."""
        counts = self.counts()
        n = self.seen
        if n == 0:
            return None
        return max(0.0, float(np.dot(counts, counts)) * 256 / n - n)


def looks_random(entropy: float | None, chi_square: float | None, size: int) -> bool:
    """Whether a byte distribution is indistinguishable from uniform noise: high entropy for
    its size (a sample of n bytes of noise falls short of 8 bits/byte by about
    255 / (2 n ln 2)) and a chi-square within both tails' critical values."""
    if entropy is None or chi_square is None or size <= 0:
        return False
    shortfall = 255 / (2 * min(size, ENTROPY_BYTES) * math.log(2))
    return (
        entropy >= 8 - 3 * shortfall - 0.01
        and CHI_SQUARE_RANDOM_MIN < chi_square < CHI_SQUARE_RANDOM_MAX
    )
