"""Stream openers (gzip, bzip2, xz, zstd): differential against the stdlib and zstandard, every
split, multi-stream, damage, gaps, and the per-call output bound on bombs."""

from __future__ import annotations

import bz2
import functools
import gzip
import itertools
import lzma
import os
import random
import struct
import subprocess
import zlib
from collections.abc import Callable

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import MemberData, MemberEnd, MemberEvent, MemberStart
from sensor.content.unpack import streams
from sensor.content.unpack.streams import (
    CALL_BUDGET,
    CHUNK,
    Bzip2Opener,
    GzipOpener,
    XzOpener,
    ZstdOpener,
    member_name_for,
)

Opener = GzipOpener | Bzip2Opener | XzOpener | ZstdOpener

TEXT = b"BSN;naam;diagnose\n" + b"".join(
    b"%09d;Patient %d;J45.%d\n" % (100000000 + i * 7919, i, i % 10) for i in range(3000)
)
SMALL = b"Patient BSN 123456782, result: negative\n" * 3


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": _zstd,
}
OPENERS: dict[str, type[Opener]] = {
    "gzip": GzipOpener,
    "bzip2": Bzip2Opener,
    "xz": XzOpener,
    "zstd": ZstdOpener,
}
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}
FORMATS = list(COMPRESS)


class Result:
    def __init__(self, events: list[MemberEvent], opener: Opener) -> None:
        check_shape(events)
        start = events[0]
        end = events[-1]
        assert isinstance(start, MemberStart) and isinstance(end, MemberEnd)
        self.name = start.name
        self.data = b"".join(e.data for e in events if isinstance(e, MemberData))
        self.end = end
        self.kinds = [a.kind for a in opener.anomalies]


def check_shape(events: list[MemberEvent]) -> None:
    """Exactly one member: a MemberStart, bounded MemberData pieces, a MemberEnd."""
    assert len(events) >= 2
    assert isinstance(events[0], MemberStart)
    assert isinstance(events[-1], MemberEnd)
    for event in events[1:-1]:
        assert isinstance(event, MemberData)
        assert 0 < len(event.data) <= CHUNK


def run(
    opener: Opener, chunks: list[bytes], complete: bool = True, gap: int | None = None
) -> Result:
    events: list[MemberEvent] = []
    for chunk in chunks:
        events += opener.feed(chunk)
        while opener.pending:
            events += opener.drain()
    if gap is not None:
        events += opener.gap(gap)
        while opener.pending:
            events += opener.drain()
    events += opener.finish(complete)
    assert opener.finish(True) == []  # over is over
    assert opener.feed(b"more") == []
    return Result(events, opener)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "fmt", "expected"),
    [
        ("x.csv.gz", "gzip", "x.csv"),
        ("x.tgz", "gzip", "x.tar"),
        ("X.CSV.GZ", "gzip", "X.CSV"),
        ("report.taz", "gzip", "report.tar"),
        ("x.csv.bz2", "bzip2", "x.csv"),
        ("x.tbz2", "bzip2", "x.tar"),
        ("x.tbz", "bzip2", "x.tar"),
        ("x.csv.xz", "xz", "x.csv"),
        ("x.txz", "xz", "x.tar"),
        ("x.csv.zst", "zstd", "x.csv"),
        ("x.tzst", "zstd", "x.tar"),
        ("x.csv", "gzip", None),
        ("x.csv.gz", "xz", None),
        (".gz", "gzip", None),
        (None, "gzip", None),
        ("", "gzip", None),
        ("x.gz", "rar", None),
    ],
)
def test_member_name_for(outer: str | None, fmt: str, expected: str | None) -> None:
    assert member_name_for(outer, fmt) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_name_from_outer_name(fmt: str) -> None:
    suffix = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}[fmt]
    result = run(OPENERS[fmt](name="lab" + suffix), [COMPRESS[fmt](SMALL)])
    assert result.name == "lab"
    assert run(OPENERS[fmt](), [COMPRESS[fmt](SMALL)]).name is None


# -- differential: whole, byte by byte, every split, random splits -------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", [b"", SMALL, TEXT, os.urandom(300_000)], ids=len)
def test_whole_matches_reference(fmt: str, payload: bytes) -> None:
    blob = COMPRESS[fmt](payload)
    result = run(OPENERS[fmt](), [blob])
    assert result.data == DECOMPRESS[fmt](blob) == payload
    assert result.end == MemberEnd(True)
    assert result.kinds == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_byte_by_byte_and_every_split(fmt: str) -> None:
    blob = COMPRESS[fmt](SMALL)
    result = run(OPENERS[fmt](), [blob[i : i + 1] for i in range(len(blob))])
    assert (result.data, result.end, result.kinds) == (SMALL, MemberEnd(True), [])
    for cut in range(len(blob) + 1):
        result = run(OPENERS[fmt](), split_at(blob, [cut]))
        assert (result.data, result.end, result.kinds) == (SMALL, MemberEnd(True), []), cut


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=30))
def test_random_splits(fmt: str, cuts: list[int]) -> None:
    blob = BLOBS[fmt]
    result = run(OPENERS[fmt](), split_at(blob, [c % (len(blob) + 1) for c in cuts]))
    assert (result.data, result.end, result.kinds) == (TEXT, MemberEnd(True), [])


BLOBS = {fmt: COMPRESS[fmt](TEXT) for fmt in FORMATS}


# -- concatenation, padding, trailing data -------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_concatenated_streams_continue_the_member(fmt: str) -> None:
    parts = [b"first part\n", b"", TEXT, b"last\n"]
    blob = b"".join(COMPRESS[fmt](p) for p in parts)
    for chunks in ([blob], [blob[i : i + 7] for i in range(0, len(blob), 7)]):
        result = run(OPENERS[fmt](), chunks)
        assert (result.data, result.end, result.kinds) == (b"".join(parts), MemberEnd(True), [])


def test_multi_member_gzip_every_split() -> None:
    blob = gzip.compress(b"one\n", mtime=0) + gzip.compress(b"two\n", mtime=0)
    assert gzip.decompress(blob) == b"one\ntwo\n"
    for cut in range(len(blob) + 1):
        result = run(GzipOpener(), split_at(blob, [cut]))
        assert (result.data, result.end, result.kinds) == (b"one\ntwo\n", MemberEnd(True), [])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("garbage", [b"garbage!", b"\x01", b"\0\0\0\0trailing", b"BZ", b"\xfd7zX"])
def test_trailing_data_noted_member_complete(fmt: str, garbage: bytes) -> None:
    blob = COMPRESS[fmt](SMALL) + garbage
    magic_prefix = {"bzip2": b"BZ", "xz": b"\xfd7zX"}.get(fmt)
    result = run(OPENERS[fmt](), [blob])
    assert result.data == SMALL
    if garbage == magic_prefix:  # the start of a next stream, cut off
        assert result.end == MemberEnd(False)
        assert result.kinds == ["unpack_truncated"]
    else:
        assert result.end == MemberEnd(True)
        assert result.kinds == ["unpack_trailing_data"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_padding_is_silent(fmt: str) -> None:
    blob = COMPRESS[fmt](SMALL) + bytes(1000) + COMPRESS[fmt](b"x") + bytes(10_000)
    result = run(OPENERS[fmt](), [blob])
    assert (result.data, result.end, result.kinds) == (SMALL + b"x", MemberEnd(True), [])


# -- damage --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_at_many_cut_points(fmt: str) -> None:
    blob = COMPRESS[fmt](TEXT)
    full = TEXT
    for cut in sorted({*range(0, 40), *range(0, len(blob), max(1, len(blob) // 150))}):
        if cut >= len(blob):
            continue
        opener = OPENERS[fmt]()
        result = run(opener, [blob[:cut]])
        assert full.startswith(result.data), cut
        assert result.end.complete is False, cut
        assert result.kinds == ["unpack_truncated"], (cut, result.kinds)


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupt_byte(fmt: str) -> None:
    blob = bytearray(COMPRESS[fmt](TEXT))
    rng = random.Random(7)
    for _ in range(25):
        damaged = bytearray(blob)
        pos = rng.randrange(len(damaged) // 4, len(damaged) - 12)
        damaged[pos] ^= 0x55
        result = run(OPENERS[fmt](), [bytes(damaged)])
        assert result.end.complete is False, pos
        # a flipped bit can also make the stream look longer than it is (then: truncated)
        damage = {"unpack_corrupt", "unpack_crc_mismatch", "unpack_truncated"}
        assert len(result.kinds) == 1 and set(result.kinds) <= damage, result.kinds


@pytest.mark.parametrize("fmt", FORMATS)
def test_not_this_format(fmt: str) -> None:
    result = run(OPENERS[fmt](name="x.gz"), [b"PK\x03\x04 this is a zip, not " + fmt.encode()])
    assert result.data == b""
    assert result.end == MemberEnd(False)
    assert result.kinds == ["unpack_corrupt"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_input_is_truncated(fmt: str) -> None:
    result = run(OPENERS[fmt](), [])
    assert (result.data, result.end, result.kinds) == (b"", MemberEnd(False), ["unpack_truncated"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_finish_not_complete_ends_incomplete(fmt: str) -> None:
    result = run(OPENERS[fmt](), [COMPRESS[fmt](SMALL)], complete=False)
    assert (result.data, result.end, result.kinds) == (SMALL, MemberEnd(False), [])


def test_gzip_crc_and_isize_mismatch() -> None:
    blob = gzip.compress(TEXT, mtime=0)
    for offset in (-8, -4):  # CRC32, ISIZE
        damaged = bytearray(blob)
        damaged[offset] ^= 1
        result = run(GzipOpener(), [bytes(damaged)])
        assert result.data == TEXT  # the data still flows
        assert result.end == MemberEnd(False)
        assert result.kinds == ["unpack_crc_mismatch"]


# -- gaps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_gap_ends_member_incomplete(fmt: str) -> None:
    # several bzip2 and zstd blocks, so that the first half decodes to something
    payload = random.Random(1).randbytes(1_500_000).hex().encode()
    blob = COMPRESS[fmt](payload)
    half = len(blob) // 2
    opener = OPENERS[fmt]()
    result = run(opener, [blob[:half]], gap=100)
    assert payload.startswith(result.data) and result.data
    assert result.end == MemberEnd(False, 100)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gap_in_trailing_data_costs_nothing(fmt: str) -> None:
    opener = OPENERS[fmt]()
    result = run(opener, [COMPRESS[fmt](SMALL) + b"junk"], gap=100)
    assert (result.data, result.end) == (SMALL, MemberEnd(True))


# -- gzip header fields --------------------------------------------------------------------


def gzip_member(
    data: bytes,
    *,
    fname: bytes | None = None,
    extra: bytes | None = None,
    comment: bytes | None = None,
    hcrc: bool = False,
    bad_hcrc: bool = False,
) -> bytes:
    """An RFC 1952 member with the optional fields, built by hand."""
    flags = (8 if fname is not None else 0) | (4 if extra is not None else 0)
    flags |= (16 if comment is not None else 0) | (2 if hcrc else 0)
    header = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", 0) + b"\x00\xff"
    if extra is not None:
        header += struct.pack("<H", len(extra)) + extra
    if fname is not None:
        header += fname + b"\0"
    if comment is not None:
        header += comment + b"\0"
    if hcrc:
        crc = zlib.crc32(header) & 0xFFFF
        header += struct.pack("<H", crc ^ (1 if bad_hcrc else 0))
    co = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = co.compress(data) + co.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def test_gzip_optional_header_fields_every_split() -> None:
    blob = gzip_member(
        SMALL, fname="patiënten.csv".encode(), extra=b"AB\x02\x00xy", comment=b"hi", hcrc=True
    )
    assert gzip.decompress(blob) == SMALL
    for cut in range(len(blob) + 1):
        for cut2 in (cut, min(cut + 3, len(blob))):
            result = run(GzipOpener(name="outer.gz"), split_at(blob, [cut, cut2]))
            assert result.name == "patiënten.csv"
            assert (result.data, result.end, result.kinds) == (SMALL, MemberEnd(True), [])


def test_gzip_fname_latin1_and_first_member_only() -> None:
    blob = gzip_member(b"a", fname=b"caf\xe9.txt") + gzip_member(b"b", fname=b"other")
    result = run(GzipOpener(), [blob])
    assert (result.name, result.data, result.end) == ("café.txt", b"ab", MemberEnd(True))


def test_gzip_header_crc_mismatch() -> None:
    result = run(GzipOpener(), [gzip_member(SMALL, fname=b"x", hcrc=True, bad_hcrc=True)])
    assert (result.data, result.end, result.kinds) == (
        b"",
        MemberEnd(False),
        ["unpack_crc_mismatch"],
    )


def test_gzip_long_fname_is_cut_and_comment_skipped() -> None:
    blob = gzip_member(SMALL, fname=b"n" * 10_000, comment=b"c" * 200_000)
    result = run(GzipOpener(), [blob[i : i + 1000] for i in range(0, len(blob), 1000)])
    assert result.name == "n" * streams.MAX_GZIP_NAME
    assert (result.data, result.end) == (SMALL, MemberEnd(True))
    assert result.kinds == ["unpack_header_too_long"]


def test_gzip_reserved_flags_and_method() -> None:
    for header in (b"\x1f\x8b\x08\x20", b"\x1f\x8b\x07\x00"):
        result = run(GzipOpener(), [header + bytes(6) + b"\x03\x00" + bytes(8)])
        assert (result.end, result.kinds) == (MemberEnd(False), ["unpack_corrupt"])


def test_gzip_cli_sample(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "uitslagen.csv"  # type: ignore[operator]
    path.write_bytes(TEXT)
    named = subprocess.run(["gzip", "-c", str(path)], capture_output=True, check=True).stdout
    nameless = subprocess.run(["gzip", "-nc", str(path)], capture_output=True, check=True).stdout
    result = run(GzipOpener(name="whatever.gz"), [named])
    assert (result.name, result.data, result.end) == ("uitslagen.csv", TEXT, MemberEnd(True))
    result = run(GzipOpener(name="upload.csv.gz"), [nameless])
    assert (result.name, result.data, result.end) == ("upload.csv", TEXT, MemberEnd(True))


@pytest.mark.parametrize(("tool", "fmt"), [("bzip2", "bzip2"), ("xz", "xz"), ("zstd", "zstd")])
def test_cli_samples(tool: str, fmt: str) -> None:
    blob = subprocess.run([tool, "-c"], input=TEXT, capture_output=True, check=True).stdout
    result = run(OPENERS[fmt](), [blob[i : i + 4096] for i in range(0, len(blob), 4096)])
    assert (result.data, result.end, result.kinds) == (TEXT, MemberEnd(True), [])


# -- zstd specifics ------------------------------------------------------------------------


def test_zstd_skippable_frame_and_no_checksum() -> None:
    skippable = struct.pack("<II", 0x184D2A53, 5) + b"hello"
    plain = zstandard.ZstdCompressor(write_checksum=False, write_content_size=False)
    blob = skippable + plain.compress(SMALL) + skippable + _zstd(b"!")
    for cut in range(len(blob) + 1):
        result = run(ZstdOpener(), split_at(blob, [cut]))
        assert (result.data, result.end) == (SMALL + b"!", MemberEnd(True))
        assert result.kinds == ["unpack_skippable_frame"]


def test_zstd_window_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "ZSTD_MAX_WINDOW", 1 << 20)
    params = zstandard.ZstdCompressionParameters(window_log=24, write_content_size=False)
    cctx = zstandard.ZstdCompressor(compression_params=params)
    blob = cctx.compress(os.urandom(3 << 20))
    result = run(ZstdOpener(), [blob])
    assert (result.end, result.kinds) == (MemberEnd(False), ["unpack_memory_limit"])


def test_xz_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "XZ_MEMLIMIT", 1 << 20)
    result = run(XzOpener(), [lzma.compress(SMALL, preset=6)])
    assert (result.end, result.kinds) == (MemberEnd(False), ["unpack_memory_limit"])


# -- bombs: bounded work per call ----------------------------------------------------------


@functools.cache
def gzip_zeros(size: int) -> bytes:
    """`size` zeros as gzip (ratio about 1000): 16 MiB members, concatenated."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    member = b"".join([co.compress(block) for _ in range(16)] + [co.flush()])
    return member * (size >> 24)


BOMB_STOP = 50 * 1024**2


@pytest.mark.parametrize("fmt", FORMATS)
def test_bomb_streams_out_in_bounded_calls(fmt: str) -> None:
    if fmt == "gzip":
        bomb = gzip_zeros(1 << 30)  # 1 GiB of zeros in about 1 MB
    elif fmt == "zstd":
        bomb = _zstd(bytes(1 << 30))  # about 32 KB: zstd has no output limit of its own
    else:
        bomb = COMPRESS[fmt](bytes(64 << 20))
    opener = OPENERS[fmt]()
    out = 0
    calls = 0
    pos = 0
    while out < BOMB_STOP:
        if opener.pending:
            events = opener.drain()
        else:
            assert pos < len(bomb)
            events = opener.feed(bomb[pos : pos + 65536])
            pos += 65536
        calls += 1
        sizes = [len(e.data) for e in events if isinstance(e, MemberData)]
        assert all(0 < size <= CHUNK for size in sizes)
        assert sum(sizes) <= CALL_BUDGET + CHUNK
        out += sum(sizes)
    assert calls >= BOMB_STOP // (CALL_BUDGET + CHUNK)


def test_feed_only_caller_gets_bounded_calls_and_backlog_at_finish() -> None:
    bomb = gzip_zeros(256 << 20)
    opener = GzipOpener()
    out = 0
    for pos in range(0, len(bomb), 65536):
        events = opener.feed(bomb[pos : pos + 65536])
        got = sum(len(e.data) for e in events if isinstance(e, MemberData))
        assert got <= CALL_BUDGET + CHUNK
        out += got
    assert opener.pending
    events = opener.finish(True)
    out += sum(len(e.data) for e in events if isinstance(e, MemberData))
    assert events[-1] == MemberEnd(False)
    assert out < 256 << 20
    assert [a.kind for a in opener.anomalies] == ["unpack_backlog"]


def test_backlog_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_BACKLOG", 100_000)
    bomb = gzip_zeros(1 << 30)
    opener = GzipOpener()
    events: list[MemberEvent] = []
    for pos in range(0, 400_000, 65536):
        events += opener.feed(bomb[pos : pos + 65536])
    assert events[-1] == MemberEnd(False)
    assert [a.kind for a in opener.anomalies] == ["unpack_backlog"]
    assert not opener.pending


def test_draining_caller_gets_everything() -> None:
    size = 64 << 20
    bomb = gzip_zeros(size)
    result = run(GzipOpener(), [bomb[i : i + 65536] for i in range(0, len(bomb), 65536)])
    assert len(result.data) == size and not result.data.strip(b"\0")
    assert result.end == MemberEnd(True)


def test_many_tiny_members_stay_linear() -> None:
    member = gzip.compress(b"x", mtime=0)
    blob = member * 20_000
    result = run(GzipOpener(), [blob])
    assert (len(result.data), result.end, result.kinds) == (20_000, MemberEnd(True), [])


# -- hostile input never raises ------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=5))
def test_arbitrary_bytes_never_raise(fmt: str, data: bytes, cuts: list[int]) -> None:
    magic = {"gzip": b"\x1f\x8b\x08", "bzip2": b"BZh9", "xz": b"\xfd7zXZ\x00", "zstd": b""}
    for blob in (data, magic[fmt] + data, BLOBS[fmt][:50] + data):
        run(OPENERS[fmt](), split_at(blob, [c % (len(blob) + 1) for c in cuts]))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(pos=st.integers(0, 10**6), value=st.integers(0, 255), gap=st.integers(0, 3))
def test_mutated_stream_never_raises(fmt: str, pos: int, value: int, gap: int) -> None:
    blob = bytearray(COMPRESS[fmt](SMALL))
    blob[pos % len(blob)] = value
    opener = OPENERS[fmt]()
    result = run(opener, [bytes(blob)], gap=gap or None)
    assert result.end.complete is False or result.data == SMALL
