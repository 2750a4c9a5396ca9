"""DecoderChain: content-coding removal, split anywhere, failures as anomalies, bomb guards."""

from __future__ import annotations

import gzip
import itertools
import lzma
import os
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaps._lib.codings import gzip_member
from sensor.content.decoders import PIECE, DecoderChain
from sensor.content.objects import ContentCaps

SAMPLE = b"Patient BSN 123456782, result: negative\r\n" * 5 + bytes(range(256))


def raw_deflate(data: bytes) -> bytes:
    co = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return co.compress(data) + co.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 1950 zlib-wrapped
    "deflate-raw": raw_deflate,  # what some servers send under "deflate"
    "br": brotli.compress,
    "lzma": lzma.compress,  # .xz
    "lzma-alone": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),  # legacy .lzma
}


def encode(data: bytes, codings: list[str]) -> tuple[bytes, list[str]]:
    """Apply codings in order (as a sender would); returns the body and header names."""
    names = []
    for c in codings:
        data = ENCODERS[c](data)
        names.append({"deflate-raw": "deflate", "lzma-alone": "lzma"}.get(c, c))
    return data, names


def run(chain: DecoderChain, chunks: list[bytes]) -> bytes:
    out = b"".join(chain.decode(c) for c in chunks)
    return out + chain.flush()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


CODING_STACKS = [
    ["gzip"], ["deflate"], ["deflate-raw"], ["br"], ["gzip", "br"], ["br", "deflate"], ["lzma"],
    ["lzma-alone"], ["gzip", "lzma"],
]  # fmt: skip


@pytest.mark.parametrize("stack", CODING_STACKS, ids=lambda s: "+".join(s))
def test_round_trip_split_at_every_byte(stack: list[str]) -> None:
    body, names = encode(SAMPLE, stack)
    for cut in range(len(body) + 1):
        chain = DecoderChain(names, ContentCaps())
        assert run(chain, [body[:cut], body[cut:]]) == SAMPLE, cut
        assert chain.anomalies == []
        assert not chain.damaged
        assert chain.applied == names
    chain = DecoderChain(names, ContentCaps())
    assert run(chain, [body[i : i + 1] for i in range(len(body))]) == SAMPLE


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    stack=st.sampled_from(CODING_STACKS),
    data=st.data(),
)
def test_round_trip_random_splits(payload: bytes, stack: list[str], data: st.DataObject) -> None:
    body, names = encode(payload, stack)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    chain = DecoderChain(names, ContentCaps())
    assert run(chain, split_at(body, cuts)) == payload
    assert chain.anomalies == []


def test_aliases_identity_and_case() -> None:
    body = gzip.compress(SAMPLE)
    chain = DecoderChain(["identity", " X-GZIP "], ContentCaps())
    assert run(chain, [body]) == SAMPLE
    assert chain.applied == ["gzip"]


def test_multi_member_gzip() -> None:
    body = gzip.compress(b"abc") + gzip.compress(b"def")
    chain = DecoderChain(["gzip"], ContentCaps())
    assert run(chain, [body[i : i + 3] for i in range(0, len(body), 3)]) == b"abcdef"
    assert chain.anomalies == []


def test_corrupt_gzip_continues_raw() -> None:
    good = gzip.compress(SAMPLE)
    bad = good[:10] + b"\xff" * 40 + good[50:]
    chain = DecoderChain(["gzip"], ContentCaps())
    out = run(chain, [bad[:30], bad[30:]])  # must not raise
    assert [a.kind for a in chain.anomalies] == ["content_decode_error"]
    assert chain.damaged
    assert out.endswith(bad[30:])  # everything after the failing chunk is kept raw
    assert chain.decode(b"more") == b"more"


def test_not_gzip_at_all() -> None:
    chain = DecoderChain(["gzip"], ContentCaps())
    assert run(chain, [b"plain text, not gzip"]) == b"plain text, not gzip"
    assert chain.anomalies[0].kind == "content_decode_error"


def test_trailing_data_after_gzip_is_kept_and_flagged() -> None:
    body = gzip.compress(b"hidden?") + b"SMUGGLED"
    chain = DecoderChain(["gzip"], ContentCaps())
    out = run(chain, [body])
    assert out == b"hidden?SMUGGLED"
    assert [a.kind for a in chain.anomalies] == ["content_decode_error"]


def test_trailing_data_after_deflate_and_br() -> None:
    for name, enc in (("deflate", zlib.compress), ("br", brotli.compress)):
        chain = DecoderChain([name], ContentCaps())
        out = run(chain, [enc(b"x" * 100), b"TAIL"])
        assert out == b"x" * 100 + b"TAIL", name
        assert [a.kind for a in chain.anomalies] == ["content_decode_error"]


@pytest.mark.parametrize("name", ["gzip", "deflate", "br", "lzma"])
def test_truncated_stream(name: str) -> None:
    body = {
        "gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
        "lzma": lzma.compress,
    }[name](os.urandom(5000))  # fmt: skip
    chain = DecoderChain([name], ContentCaps())
    run(chain, [body[: len(body) // 2]])
    assert [a.kind for a in chain.anomalies] == ["content_decode_truncated"]


def test_empty_body_with_coding_is_not_truncated() -> None:
    chain = DecoderChain(["gzip", "br"], ContentCaps())
    assert run(chain, []) == b""
    assert chain.anomalies == []


def test_unknown_coding_is_skipped_and_the_known_ones_removed() -> None:
    inner = b"\x1f\x9dLZW-ish"  # pretend "compress" output
    body = gzip.compress(inner)
    chain = DecoderChain(["compress", "gzip"], ContentCaps())
    assert run(chain, [body]) == inner
    assert [a.kind for a in chain.anomalies] == ["content_decode_error"]
    assert "compress" in chain.anomalies[0].detail
    assert chain.applied == ["gzip"]
    assert chain.damaged
    # Outermost unknown (HTTP Evader's "gzip, foo"): the gzip under it is still removed.
    chain = DecoderChain(["gzip", "foo"], ContentCaps())
    assert run(chain, [gzip.compress(b"marker")]) == b"marker"


@pytest.mark.parametrize("flags", [0, 0x02, 0x04, 0x08, 0x10, 0x1E, 0x20, 0x40, 0x80, 0xFF])
def test_gzip_header_flags_as_browsers_read_them(flags: int) -> None:
    """FEXTRA, FNAME, FCOMMENT, FHCRC and the reserved bits (which zlib itself rejects), each
    alone and together, in every split of the header."""
    body = gzip_member(SAMPLE, flags)
    for cut in range(0, 40):
        chain = DecoderChain(["gzip"], ContentCaps())
        assert run(chain, [body[:cut], body[cut:]]) == SAMPLE, cut
        assert chain.anomalies == []


@pytest.mark.parametrize("keep", [0, 3, 7])
def test_gzip_with_a_short_or_missing_trailer_is_decoded(keep: int) -> None:
    body = gzip_member(SAMPLE, 0x08, trailer=0) + b"\0" * keep
    chain = DecoderChain(["gzip"], ContentCaps())
    assert run(chain, [body]) == SAMPLE
    assert chain.anomalies == []


def test_gap_switches_to_passthrough() -> None:
    body = gzip.compress(os.urandom(4000))
    chain = DecoderChain(["gzip"], ContentCaps())
    chain.decode(body[:100])
    assert chain.gap(50) == 50
    assert chain.decode(body[150:]) == body[150:]
    assert [a.kind for a in chain.anomalies] == ["content_decode_gap"]
    chain.flush()
    assert len(chain.anomalies) == 1  # no extra "truncated" after a gap


def test_bomb_caught_by_decoded_cap() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    cap = 1024 * 1024 + 17
    chain = DecoderChain(["gzip"], ContentCaps(max_decoded_bytes=cap))
    total = 0
    for i in range(0, len(bomb), 1000):
        for piece in chain.decode_iter(bomb[i : i + 1000]):
            assert len(piece) <= PIECE
            total += len(piece)
    chain.flush()
    assert total == cap
    assert [a.kind for a in chain.anomalies] == ["content_decoded_cap"]
    assert chain.decode(b"anything") == b""  # stopped for good


def test_bomb_caught_by_ratio_with_bounded_pieces() -> None:
    # 64 MiB of zeros -> ~50 bytes of brotli: one input chunk must not become 64 MiB at once.
    bomb = brotli.compress(b"\0" * (64 * 1024 * 1024), quality=1)
    chain = DecoderChain(["br"], ContentCaps())
    total = 0
    for piece in chain.decode_iter(bomb):
        assert len(piece) <= 2 * PIECE
        total += len(piece)
    assert [a.kind for a in chain.anomalies] == ["content_decoded_ratio"]
    assert 16 * 1024 * 1024 < total <= 16 * 1024 * 1024 + 2 * PIECE


def test_ratio_guard_quiet_below_16_mib() -> None:
    body = gzip.compress(b"\0" * (8 * 1024 * 1024))
    chain = DecoderChain(["gzip"], ContentCaps(max_ratio=2))
    assert len(run(chain, [body])) == 8 * 1024 * 1024
    assert chain.anomalies == []


@settings(max_examples=100, deadline=None)
@given(
    junk=st.binary(max_size=500),
    stack=st.sampled_from([["gzip"], ["deflate"], ["br"], ["gzip", "br"], ["bogus"]]),
)
def test_arbitrary_bytes_never_raise(junk: bytes, stack: list[str]) -> None:
    chain = DecoderChain(stack, ContentCaps())
    run(chain, [junk[:7], junk[7:]])
    for a in chain.anomalies:
        assert a.kind.startswith("content_")


def test_gzip_with_a_long_name_and_extra_field_is_decoded() -> None:
    """FNAME and FEXTRA are skipped as they stream, whatever their length."""
    import gzip as gz

    head = b"\x1f\x8b\x08" + bytes([0x0C]) + b"\0\0\0\0\0\x03"
    head += (65535).to_bytes(2, "little") + b"x" * 65535 + b"n" * 70_000 + b"\0"
    body = head + gz.compress(SAMPLE, mtime=0)[10:]
    for pieces in ([body], [body[i : i + 1000] for i in range(0, len(body), 1000)]):
        chain = DecoderChain(["gzip"], ContentCaps())
        assert run(chain, pieces) == SAMPLE
        assert chain.anomalies == []
