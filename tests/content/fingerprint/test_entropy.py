"""Entropy and chi-square of the first MiB, fed in any chunks."""

from __future__ import annotations

import bz2
import lzma
import os
import random
import zlib

import hypothesis.strategies as st
from hypothesis import given, settings

from sensor.content.fingerprint.entropy import ENTROPY_BYTES, ByteHistogram, looks_random

TEXT = b"".join(
    f"{i};Jansen;1985-03-{i % 28 + 1:02d};2511 CV;uitstrijkje PAP{i % 5 + 1}\n".encode()
    for i in range(20000)
)


def stats(data: bytes, chunk: int = 1 << 20) -> ByteHistogram:
    h = ByteHistogram()
    for i in range(0, len(data), chunk):
        h.feed(data[i : i + chunk])
    return h


def test_uniform_and_constant() -> None:
    h = stats(bytes(range(256)) * 16)
    assert h.entropy() == 8.0 and h.chi_square() == 0.0
    h = stats(b"\x00" * 1000)
    assert h.entropy() == 0.0
    assert ByteHistogram().entropy() is None and ByteHistogram().chi_square() is None


def test_only_the_first_mib_counts() -> None:
    h = stats(b"\x00" * ENTROPY_BYTES + os.urandom(100_000))
    assert h.seen == ENTROPY_BYTES and h.entropy() == 0.0


def test_random_looks_random_compressed_and_text_do_not() -> None:
    for size in (4096, 65536, 2 * ENTROPY_BYTES):
        data = random.Random(size).randbytes(size)
        h = stats(data)
        assert looks_random(h.entropy(), h.chi_square(), size), size
    for data in (zlib.compress(TEXT, 9), bz2.compress(TEXT), TEXT):
        h = stats(data)
        assert not looks_random(h.entropy(), h.chi_square(), len(data))


def test_xz_looks_random_which_is_why_headers_decide_first() -> None:
    # Research note section 6: chi-square cannot tell LZMA output from ciphertext, so a
    # compressed format is only ever judged by its header.
    data = lzma.compress(random.Random(1).randbytes(1000) + TEXT)[64:]
    h = stats(data)
    assert h.entropy() is not None and h.entropy() > 7.9  # type: ignore[operator]


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_any_chunking_gives_the_same_statistics(data: bytes, cuts: list[int]) -> None:
    whole = stats(data)
    h = ByteHistogram()
    i = 0
    for cut in cuts * 20:
        h.feed(data[i : i + cut])
        i += cut
    h.feed(data[i:])
    assert h.entropy() == whole.entropy() and h.chi_square() == whole.chi_square()
