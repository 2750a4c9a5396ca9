"""RarAnalyser: RAR 4.x and RAR 5.0 archives built from the technotes (rarbuild.py), under any
segmentation, truncation at every offset, gaps, corrupted CRCs, SFX stubs and noise."""

from __future__ import annotations

import functools
import random
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Encryption
from sensor.content.fingerprint.rar import (
    MAX_HEADER_BYTES,
    MAX_SFX_SCAN,
    SCHEME_LEGACY,
    SCHEME_RAR4,
    SCHEME_RAR5,
    RarAnalyser,
)
from tests.content.fingerprint import rarbuild
from tests.content.fingerprint.rarbuild import rar4, rar4_block, rar5, rar5_block, vint

PLAIN = [("a.txt", b"hello world\n" * 30, False), ("b.csv", b"id,name\n1,x\n", False)]
ENC = [("a.txt", b"hello world\n" * 30, True), ("b.csv", b"id,name\n1,x\n", True)]
MIXED = [("a.txt", b"hello world\n" * 30, False), ("secret.csv", b"id\n1\n", True)]
DIRS = [("docs/", b"", False), ("docs/a.txt", b"abc", True), ("docs/sub/", b"", False)]
SFX = b"MZ\x90\x00" + bytes(3000) + b"Rar!\x1a\x07\x02 not a marker" + bytes(500)


def _fixtures(builder: str, scheme: str) -> dict[str, tuple[bytes, Encryption]]:
    build = rar4 if builder == "r4" else rar5
    plain = Encryption(False, members=2, encrypted_members=0)
    enc = Encryption(True, scheme, members=2, encrypted_members=2)
    return {
        f"{builder}-plain": (build(PLAIN), plain),
        f"{builder}-enc": (build(ENC), enc),
        f"{builder}-headers": (build(ENC, encrypt_headers=True), Encryption(True, scheme, True)),
        f"{builder}-mixed": (
            build(MIXED),
            Encryption(True, scheme, partial=True, members=2, encrypted_members=1),
        ),
        f"{builder}-dirs": (build(DIRS), Encryption(True, scheme, members=1, encrypted_members=1)),
        f"{builder}-comment": (build(ENC, comment=b"a comment"), enc),
        f"{builder}-sfx": (build(MIXED, sfx_stub=SFX), _fixtures_mixed(scheme)),
        f"{builder}-empty": (build([]), Encryption(False, members=0, encrypted_members=0)),
        f"{builder}-noend": (build(ENC, end=False), enc),
        f"{builder}-only-dirs": (
            build([("d/", b"", False)]),
            Encryption(False, members=0, encrypted_members=0),
        ),
    }


def _fixtures_mixed(scheme: str) -> Encryption:
    return Encryption(True, scheme, partial=True, members=2, encrypted_members=1)


@functools.cache
def fixtures() -> dict[str, tuple[bytes, Encryption]]:
    out = _fixtures("r4", SCHEME_RAR4) | _fixtures("r5", SCHEME_RAR5)
    out["r4-legacy"] = (
        rar4(MIXED, legacy_cipher=True),
        Encryption(True, SCHEME_LEGACY, partial=True, members=2, encrypted_members=1),
    )
    return out


NAMES = sorted(fixtures())


def analyse(
    data: bytes, chunks: list[int] | None = None, complete: bool = True
) -> tuple[Encryption, list[str]]:
    analyser = RarAnalyser()
    pos = 0
    for size in chunks or []:
        analyser.feed(data[pos : pos + size])
        pos += size
    analyser.feed(data[pos:])
    verdict = analyser.finish(b"", len(data), complete)
    return verdict, [a.kind for a in analyser.anomalies]


def check(verdict: Encryption, expected: Encryption) -> None:
    assert verdict.encrypted is expected.encrypted
    assert verdict.scheme == expected.scheme
    assert verdict.hides_names is expected.hides_names
    assert verdict.partial is expected.partial
    assert verdict.members == expected.members
    assert verdict.encrypted_members == expected.encrypted_members


def blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(start, type, header end) of each block of a well-formed archive (a test-side walk)."""
    out = []
    four, five = data.find(rarbuild.RAR4_MARKER), data.find(rarbuild.RAR5_MARKER)
    if five < 0:
        pos = four + 7
        while pos + 7 <= len(data):
            kind, flags, size = struct.unpack_from("<BHH", data, pos + 2)
            skip = struct.unpack_from("<I", data, pos + 7)[0] if flags & 0x8000 else 0
            out.append((pos, kind, pos + size))
            pos += size + skip
    else:
        pos = five + 8
        while pos + 5 <= len(data):
            size, head = _vint(data, pos + 4)
            kind, at = _vint(data, head)
            flags, at = _vint(data, at)
            if flags & 1:
                _, at = _vint(data, at)
            out.append((pos, kind, head + size))
            pos = head + size + (_vint(data, at)[0] if flags & 2 else 0)
    return out


def file_header_ends(data: bytes) -> list[int]:
    """Offsets just past each RAR 4 FILE_HEAD / RAR 5 file header."""
    return [end for _, kind, end in blocks(data) if kind in (0x74, 2)]


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


# -- verdicts --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fixture_verdict(name: str) -> None:
    data, expected = fixtures()[name]
    verdict, anomalies = analyse(data)
    check(verdict, expected)
    assert anomalies == (["rar_sfx_stub"] if name.endswith("-sfx") else [])


def test_builder_writes_what_the_technotes_say() -> None:
    data = rar4([("x", b"data", False)])
    assert data.startswith(rarbuild.RAR4_MARKER)
    main = data[7:20]
    assert main[2] == 0x73 and struct.unpack_from("<H", main, 5)[0] == 13
    assert struct.unpack_from("<H", main)[0] == zlib.crc32(main[2:]) & 0xFFFF
    assert data[20 + 25] == 0x30  # METHOD: store
    assert data.endswith(b"data" + rar4_block(0x7B, 0x4000, b""))
    data = rar5([("x", b"data", True)])
    assert data.startswith(rarbuild.RAR5_MARKER)
    main = data[8:]
    size, head = _vint(main, 4)
    assert struct.unpack_from("<I", main)[0] == zlib.crc32(main[4 : head + size])
    assert vint(300) == b"\xac\x02"


def test_no_rar_dependency() -> None:
    # rarfile (a differential reference) is not a dependency; the builder stands in for it
    with pytest.raises(ImportError):
        __import__("rarfile")


# -- segmentation ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_split(name: str) -> None:
    data, _ = fixtures()[name]
    whole = analyse(data)
    for cut in range(1, len(data)):
        assert analyse(data, [cut]) == whole, cut


@pytest.mark.parametrize("name", ["r4-mixed", "r5-mixed", "r4-headers", "r5-sfx"])
def test_every_chunk_size(name: str) -> None:
    data, _ = fixtures()[name]
    whole = analyse(data)
    for size in range(1, 65):
        assert analyse(data, [size] * (len(data) // size)) == whole


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(NAMES), st.lists(st.integers(0, 200), max_size=40))
def test_random_splits(name: str, chunks: list[int]) -> None:
    data, _ = fixtures()[name]
    assert analyse(data, chunks) == analyse(data)


# -- truncation and gaps ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_truncated_at_every_offset(name: str) -> None:
    data, expected = fixtures()[name]
    ends = [] if expected.hides_names else file_header_ends(data)
    for cut in range(len(data)):
        verdict, _ = analyse(data[:cut], complete=False)
        if expected.hides_names:
            # the encryption header sits right after the main header / signature
            assert verdict.encrypted in (True, None)
            continue
        seen = sum(1 for end in ends if end <= cut)
        if seen == 0:
            assert verdict.encrypted is None, cut
            continue
        assert verdict.encrypted is not None, cut
        assert verdict.members is not None and verdict.members <= (expected.members or 0)
        assert (verdict.encrypted_members or 0) <= (expected.encrypted_members or 0)
        if verdict.encrypted:
            assert expected.encrypted
        assert "cut off" in (verdict.detail or "")


def test_truncated_header_encryption_is_seen_early() -> None:
    for build, scheme, keep in ((rar4, SCHEME_RAR4, 20), (rar5, SCHEME_RAR5, 60)):
        data = build(ENC, encrypt_headers=True)
        verdict, _ = analyse(data[:keep], complete=False)
        assert (verdict.encrypted, verdict.scheme, verdict.hides_names) == (True, scheme, True)


@pytest.mark.parametrize("name", ["r4-mixed", "r5-mixed"])
def test_gap_in_packed_data_is_harmless(name: str) -> None:
    data, expected = fixtures()[name]
    first_data = file_header_ends(data)[0]
    analyser = RarAnalyser()
    analyser.feed(data[: first_data + 10])
    analyser.gap(100)
    analyser.feed(data[first_data + 110 :])
    check(analyser.finish(b"", len(data), True), expected)
    assert analyser.anomalies == []


@pytest.mark.parametrize("name", ["r4-mixed", "r5-mixed"])
def test_gap_in_a_header_stops_the_walk(name: str) -> None:
    data, _ = fixtures()[name]
    second = file_header_ends(data)[1]
    analyser = RarAnalyser()
    analyser.feed(data[: second - 5])
    analyser.gap(3)
    analyser.feed(data[second - 2 :])
    verdict = analyser.finish(b"", len(data), True)
    assert [a.kind for a in analyser.anomalies] == ["rar_gap"]
    assert (verdict.encrypted, verdict.members) == (False, 1)
    assert "walk stopped" in (verdict.detail or "")


def test_large_rar4_file_is_skipped_by_count() -> None:
    high = 3  # HIGH_PACK_SIZE: 3 * 4 GiB + 5 bytes of data
    name = b"big.bin"
    body = struct.pack("<IIBIIBBHI", 5, 5, 3, 0, 0, 29, 0x30, len(name), 0x20)
    body += struct.pack("<II", high, 0) + name
    head = rarbuild.RAR4_MARKER + rar4_block(0x73, 0, bytes(6))
    head += rar4_block(0x74, 0x8000 | 0x0100 | 0x0004, body)
    analyser = RarAnalyser()
    analyser.feed(head + b"abc")
    analyser.gap(high << 32)
    analyser.feed(b"de" + rar4_block(0x7B, 0x4000, b""))
    verdict = analyser.finish(b"", len(head) + (high << 32) + 12, True)
    assert (verdict.encrypted, verdict.members, verdict.detail) == (True, 1, "RAR 4")


# -- damage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in NAMES if not n.endswith("-headers")])
def test_corrupted_crcs_are_noted_and_passed(name: str) -> None:
    data, expected = fixtures()[name]
    bad = bytearray(data)
    starts = [start for start, _, _ in blocks(data)]
    for start in starts:
        bad[start] ^= 0x55  # the low byte of every header's CRC
    verdict, anomalies = analyse(bytes(bad))
    check(verdict, expected)
    assert [k for k in anomalies if k != "rar_sfx_stub"] == ["rar_header_crc"] * len(starts)
    assert f"{len(starts)} header CRC errors" in (verdict.detail or "")


@pytest.mark.parametrize("build", [rar4, rar5])
def test_corrupted_crc_of_the_encryption_header(build: Callable[..., bytes]) -> None:
    data = bytearray(build(ENC, encrypt_headers=True))
    data[len(rarbuild.RAR5_MARKER) if build is rar5 else len(rarbuild.RAR4_MARKER)] ^= 0x55
    verdict, anomalies = analyse(bytes(data))
    assert (verdict.encrypted, verdict.hides_names) == (True, True)
    assert anomalies == ["rar_header_crc"]


def test_impossible_sizes_stop_the_walk() -> None:
    data = bytearray(rar4(MIXED))
    data[7 + 5 : 7 + 7] = b"\x03\x00"  # MAIN_HEAD HEAD_SIZE 3 < 7
    verdict, anomalies = analyse(bytes(data))
    assert verdict.encrypted is None
    assert anomalies == ["rar_header_damaged"]
    # RAR 5: a header size vint longer than three bytes
    data = rarbuild.RAR5_MARKER + b"\x00\x00\x00\x00\xff\xff\xff\xff\x01" + bytes(20)
    verdict, anomalies = analyse(data)
    assert verdict.encrypted is None
    assert anomalies == ["rar_header_damaged"]


def test_over_long_header_stops_the_walk() -> None:
    fields = vint(0) + vint(0) + vint(0) + vint(0) + vint(1) + vint(0)
    big = rar5_block(2, fields + vint(MAX_HEADER_BYTES) + b"n" * MAX_HEADER_BYTES)
    data = rar5(ENC[:1], end=False) + big + rar5_block(5, vint(0))
    verdict, anomalies = analyse(data)
    assert anomalies == ["rar_header_too_long"]
    assert (verdict.encrypted, verdict.members) == (True, 1)


def test_main_header_crypt_record_is_the_locator() -> None:
    # type 0x01 in the main header's extra area is the quick-open locator, not encryption
    locator = vint(3) + vint(0x01) + vint(0) + vint(0)
    main = rar5_block(1, vint(0), extra=locator)
    rest = rar5(PLAIN)[len(rarbuild.RAR5_MARKER) + len(rar5_block(1, vint(0))) :]
    data = rarbuild.RAR5_MARKER + main + rest
    verdict, anomalies = analyse(data)
    assert anomalies == []
    assert (verdict.encrypted, verdict.members) == (False, 2)


def test_service_header_with_crypt_record_is_not_a_member() -> None:
    rng = random.Random(1)
    fields = vint(0x0004) + vint(3) + vint(0) + struct.pack("<I", 0) + vint(0) + vint(1)
    fields += vint(3) + b"CMT"
    service = rar5_block(3, fields, extra=rarbuild.rar5_crypt_record(rng), data_size=16)
    data = rar5(PLAIN, end=False) + service + bytes(16) + rar5_block(5, vint(0))
    verdict, _ = analyse(data)
    assert (verdict.encrypted, verdict.members) == (False, 2)


def test_no_marker() -> None:
    assert analyse(b"")[0].encrypted is None
    assert analyse(b"Rar!\x1a\x07")[0].encrypted is None
    assert analyse(b"Rar!\x1a\x07\x02\x00" + bytes(100))[0].encrypted is None
    analyser = RarAnalyser()
    chunk = bytes(64 * 1024)
    for _ in range(MAX_SFX_SCAN // len(chunk) + 1):
        analyser.feed(chunk)
    analyser.feed(rar4(ENC))  # too late: past the scanned prefix
    verdict = analyser.finish(b"", 0, True)
    assert verdict.encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["rar_no_marker"]


def test_marker_split_across_chunks_behind_a_stub() -> None:
    data, expected = fixtures()["r5-sfx"]
    marker = data.find(rarbuild.RAR5_MARKER)
    for cut in range(marker - 2, marker + 10):
        check(analyse(data, [cut])[0], expected)


def test_anomalies_are_capped() -> None:
    files = [(f"f{i}", b"x", False) for i in range(100)]
    data = bytearray(rar5(files))
    for start, _, _ in blocks(bytes(data)):
        data[start] ^= 0xFF
    verdict, anomalies = analyse(bytes(data))
    assert verdict.members == 100
    assert len(anomalies) == 16
    assert "102 header CRC errors" in (verdict.detail or "")


# -- noise -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    verdict, _ = analyse(data)
    assert verdict.encrypted in (True, False, None)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([rarbuild.RAR4_MARKER, rarbuild.RAR5_MARKER]), st.binary(max_size=400))
def test_arbitrary_blocks_never_raise(marker: bytes, data: bytes) -> None:
    verdict, _ = analyse(marker + data)
    assert verdict.encrypted in (True, False, None)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NAMES), st.data())
def test_random_corruption_never_raises(name: str, draw: st.DataObject) -> None:
    data = bytearray(fixtures()[name][0])
    for _ in range(draw.draw(st.integers(1, 6))):
        data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
    verdict, anomalies = analyse(bytes(data))
    assert verdict.encrypted in (True, False, None)
    assert len(anomalies) <= 16
