"""SevenZipAnalyser: real archives from py7zr (and 7-Zip when installed), hand-built headers
(LZMA1-packed, mixed folders, caps), any segmentation, truncation, corruption and noise; its
verdict agrees with py7zr's needs_password()."""

from __future__ import annotations

import functools
import io
import lzma
import os
import random
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import py7zr
import py7zr.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Encryption
from sensor.content.fingerprint.sevenz import (
    AES_CODER,
    MAX_DECODED_HEADER,
    SCHEME,
    SIGNATURE,
    TAIL_BYTES,
    SevenZipAnalyser,
)

SEVEN_ZIP = next((p for p in ("/usr/bin/7zz", "/usr/bin/7z") if Path(p).exists()), None)
MANY = [(f"dir/file{i:03}.txt", f"row {i}\n".encode() * (i % 7 + 1)) for i in range(150)]


def _py7zr(
    files: list[tuple[str, bytes]],
    *,
    password: str | None = None,
    header_encryption: bool = False,
    encoded_header: bool = True,
    filters: list[dict[str, int]] | None = None,
    directories: tuple[str, ...] = (),
) -> bytes:
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with py7zr.SevenZipFile(
            out, "w", password=password, header_encryption=header_encryption, filters=filters
        ) as archive:
            if not encoded_header:
                archive.set_encoded_header_mode(False)
            for name in directories:
                (root / name).mkdir(parents=True, exist_ok=True)
                archive.write(root / name, name)
            for name, data in files:
                archive.writestr(data, name)
    return out.getvalue()


def _seven_zip(args: list[str], files: list[tuple[str, bytes]]) -> bytes:
    assert SEVEN_ZIP is not None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files:
            (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "in" / name).write_bytes(data)
        subprocess.run(
            [SEVEN_ZIP, "a", *args, str(root / "out.7z"), "."],
            cwd=root / "in",
            check=True,
            capture_output=True,
        )
        return (root / "out.7z").read_bytes()


# -- hand-built archives (7zFormat.txt) ------------------------------------------------------


def num(value: int) -> bytes:
    """7z UINT64: one byte below 0x80, else 0xFF and eight little-endian bytes."""
    return bytes([value]) if value < 0x80 else b"\xff" + struct.pack("<Q", value)


def wrap(packed: bytes, header: bytes) -> bytes:
    """A 7z archive: signature header, `packed` streams, then `header` as the next header."""
    start = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header))
    return SIGNATURE + b"\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + packed + header


def folder(*coders: tuple[bytes, bytes]) -> bytes:
    """A folder of simple coders (one in, one out each), chained by bind pairs."""
    out = num(len(coders))
    for method, props in coders:
        out += bytes([len(method) | (0x20 if props else 0)]) + method
        if props:
            out += num(len(props)) + props
    for index in range(len(coders) - 1):
        out += num(index + 1) + num(index)
    return out


def streams_info(
    pack_pos: int,
    pack_sizes: list[int],
    folders: list[tuple[bytes, int]],
    substreams: list[int] | None = None,
) -> bytes:
    """PackInfo, UnPackInfo (single-coder folders: one unpack size each), SubStreamsInfo."""
    out = b"\x06" + num(pack_pos) + num(len(pack_sizes)) + b"\x09"
    out += b"".join(num(size) for size in pack_sizes) + b"\x00"
    out += b"\x07\x0b" + num(len(folders)) + b"\x00" + b"".join(f for f, _ in folders)
    out += b"\x0c" + b"".join(num(size) for _, size in folders) + b"\x00"
    if substreams is not None:
        out += b"\x08\x0d" + b"".join(num(count) for count in substreams) + b"\x00"
    return out + b"\x00"


def files_info(names: list[str], empty: list[bool] | None = None) -> bytes:
    out = b"\x05" + num(len(names))
    if empty is not None and any(empty):
        # kEmptyStream: one bit per file, the first file in the high bit of the first byte
        count = len(names)
        bits = sum(1 << (count - 1 - i) for i, flag in enumerate(empty) if flag)
        size = (count + 7) // 8
        vector = (bits << (8 * size - count)).to_bytes(size, "big")
        out += b"\x0e" + num(len(vector)) + vector
    raw = b"\x00" + b"".join(name.encode("utf-16-le") + b"\x00\x00" for name in names)
    return out + b"\x11" + num(len(raw)) + raw + b"\x00"


def mixed_archive() -> bytes:
    """Two folders, one stored, one AES (the data stands in for ciphertext): one file each."""
    plain, secret = b"plain text\n", os.urandom(32)
    folders = [
        (folder((b"\x00", b"")), len(plain)),
        (folder((AES_CODER, b"\x00\x00")), len(secret)),
    ]
    main = streams_info(0, [len(plain), len(secret)], folders, substreams=[1, 1])
    header = b"\x01\x04" + main + files_info(["notes.txt", "secret.txt"]) + b"\x00"
    return wrap(plain + secret, header)


def lzma1_encoded(archive: bytes, declared_dict: int = 1 << 16) -> bytes:
    """`archive` (plain header) with its header LZMA1-packed behind a kEncodedHeader, as
    7-Zip itself writes it (coder 03 01 01, five property bytes; the dictionary size they
    declare is `declared_dict`)."""
    dict_size = 1 << 16
    offset, size, _ = struct.unpack_from("<QQI", archive, 12)
    header = archive[0x20 + offset : 0x20 + offset + size]
    filt = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": 3, "lp": 0, "pb": 2}
    packed = lzma.compress(header, format=lzma.FORMAT_RAW, filters=[filt])
    props = bytes([3 + 0 * 9 + 2 * 45]) + struct.pack("<I", declared_dict)
    encoded = b"\x17" + streams_info(
        offset + size, [len(packed)], [(folder((b"\x03\x01\x01", props)), len(header))]
    )
    return wrap(archive[0x20 : 0x20 + offset + size] + packed, encoded)


# -- fixtures --------------------------------------------------------------------------------

ONE = [("a.txt", b"hello world\n" * 20)]
TWO = [("a.txt", b"hello world\n" * 20), ("b/c.csv", b"id,name\n1,x\n"), ("empty.txt", b"")]


@functools.cache
def fixtures() -> dict[str, tuple[bytes, Encryption]]:
    """name -> (archive, expected verdict)."""
    enc = Encryption(True, SCHEME, members=1, encrypted_members=1)
    hidden = Encryption(True, SCHEME, hides_names=True)
    out: dict[str, tuple[bytes, Encryption]] = {
        "plain-copy-plainheader": (
            _py7zr(ONE, encoded_header=False, filters=[{"id": py7zr.FILTER_COPY}]),
            Encryption(False, members=1, encrypted_members=0),
        ),
        "plain-lzma2": (_py7zr(TWO), Encryption(False, members=3, encrypted_members=0)),
        "plain-many": (_py7zr(MANY), Encryption(False, members=150, encrypted_members=0)),
        "plain-dirs": (
            _py7zr(TWO, directories=("d1", "d1/d2")),
            Encryption(False, members=3, encrypted_members=0),
        ),
        "plain-dirs-plainheader": (
            _py7zr(TWO, directories=("d1", "d1/d2"), encoded_header=False),
            Encryption(False, members=3, encrypted_members=0),
        ),
        "empty": (_py7zr([]), Encryption(False, members=0, encrypted_members=0)),
        "enc-plainheader": (_py7zr(ONE, password="pw", encoded_header=False), enc),
        "enc": (_py7zr(ONE, password="pw"), enc),
        "enc-many": (
            _py7zr(MANY, password="pw"),
            Encryption(True, SCHEME, members=150, encrypted_members=150),
        ),
        "enc-he": (_py7zr(ONE, password="pw", header_encryption=True), hidden),
        "enc-he-many": (_py7zr(MANY, password="pw", header_encryption=True), hidden),
        "mixed": (
            mixed_archive(),
            Encryption(True, SCHEME, partial=True, members=2, encrypted_members=1),
        ),
    }
    out["plain-lzma1-header"] = (
        lzma1_encoded(out["plain-dirs-plainheader"][0]),
        out["plain-dirs-plainheader"][1],
    )
    out["enc-lzma1-header"] = (lzma1_encoded(out["enc-plainheader"][0]), enc)
    if SEVEN_ZIP is not None:
        out["7zz-plain"] = (_seven_zip([], MANY), Encryption(False, members=150))
        out["7zz-enc"] = (_seven_zip(["-ppw", "-mhe=off"], MANY), Encryption(True, SCHEME))
        out["7zz-he"] = (_seven_zip(["-ppw", "-mhe=on"], MANY), hidden)
    return out


NAMES = sorted(fixtures())
SMALL = ["plain-copy-plainheader", "enc", "enc-he", "mixed", "plain-lzma1-header"]


def analyse(
    data: bytes, chunks: list[int] | None = None, complete: bool = True
) -> tuple[Encryption, list[str]]:
    """Feeds `data` as the fingerprint stage does and returns the verdict and anomaly kinds."""
    analyser = SevenZipAnalyser()
    pos = 0
    for size in chunks or []:
        analyser.feed(data[pos : pos + size])
        pos += size
    analyser.feed(data[pos:])
    verdict = analyser.finish(data[-analyser.tail_bytes :], len(data), complete)
    return verdict, [a.kind for a in analyser.anomalies]


def header_byte(data: bytes) -> int:
    return data[0x20 + struct.unpack_from("<Q", data, 12)[0]]


def check(verdict: Encryption, expected: Encryption) -> None:
    assert verdict.encrypted is expected.encrypted
    assert verdict.scheme == expected.scheme
    assert verdict.hides_names is expected.hides_names
    assert verdict.partial is expected.partial
    if expected.members is not None or expected.hides_names:
        assert verdict.members == expected.members
    if expected.encrypted_members is not None or expected.hides_names:
        assert verdict.encrypted_members == expected.encrypted_members


# -- verdicts --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fixture_verdict(name: str) -> None:
    data, expected = fixtures()[name]
    verdict, anomalies = analyse(data)
    check(verdict, expected)
    assert anomalies == []


def test_encoded_header_alone_is_not_encryption() -> None:
    data = fixtures()["plain-many"][0]
    assert header_byte(data) == 0x17
    assert analyse(data)[0].encrypted is False
    # and data-only encryption of many files hides its AES coder inside the packed header
    data = fixtures()["enc-many"][0]
    assert header_byte(data) == 0x17
    assert AES_CODER not in data[0x20 + struct.unpack_from("<Q", data, 12)[0] :]
    assert analyse(data)[0].encrypted is True


def test_plain_header_fixtures_really_are_plain() -> None:
    assert header_byte(fixtures()["enc-plainheader"][0]) == 0x01
    assert header_byte(fixtures()["plain-lzma1-header"][0]) == 0x17


@pytest.mark.parametrize("name", NAMES)
def test_agrees_with_py7zr(name: str) -> None:
    data, _ = fixtures()[name]
    verdict, _ = analyse(data)
    try:
        with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
            assert verdict.encrypted is archive.needs_password()
            if not verdict.hides_names:
                files = [f for f in archive.list() if not f.is_directory]
                assert verdict.members == len(files)
    except py7zr.exceptions.PasswordRequired:
        assert verdict.encrypted is True
        assert verdict.hides_names is True


# -- segmentation ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_every_chunk_size(name: str) -> None:
    data, _ = fixtures()[name]
    whole = analyse(data)
    for size in range(1, 65):
        assert analyse(data, [size] * (len(data) // size)) == whole


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES), st.lists(st.integers(0, 300), max_size=40))
def test_random_splits(name: str, chunks: list[int]) -> None:
    data, _ = fixtures()[name]
    assert analyse(data, chunks) == analyse(data)


def test_gap_in_signature_header() -> None:
    data = fixtures()["enc"][0]
    analyser = SevenZipAnalyser()
    analyser.feed(data[:10])
    analyser.gap(30)
    analyser.feed(data[40:])
    verdict = analyser.finish(data[-analyser.tail_bytes :], len(data), True)
    assert verdict.encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["sevenz_gap"]


def test_gap_after_signature_header_is_harmless() -> None:
    data = fixtures()["enc"][0]
    analyser = SevenZipAnalyser()
    analyser.feed(data[:40])
    analyser.gap(5)
    verdict = analyser.finish(data[-analyser.tail_bytes :], len(data), True)
    assert verdict.encrypted is True


# -- truncation and damage -------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SMALL, "enc-many"])
def test_truncated(name: str) -> None:
    data, _ = fixtures()[name]
    points = (
        range(len(data)) if len(data) < 2000 else random.Random(7).sample(range(len(data)), 400)
    )
    for cut in points:
        verdict, _ = analyse(data[:cut], complete=False)
        # the header sits at the end: any cut loses it
        assert verdict.encrypted is None, cut
        assert verdict.detail


@pytest.mark.parametrize("name", [*SMALL, "enc-many", "plain-many"])
def test_corrupted_next_header(name: str) -> None:
    data, _ = fixtures()[name]
    offset, size, _ = struct.unpack_from("<QQI", data, 12)
    for index in range(0x20 + offset, 0x20 + offset + size):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[index] ^= flip
            verdict, anomalies = analyse(bytes(bad))
            assert "sevenz_header_crc" in anomalies
            assert verdict.encrypted in (True, False, None)
            if verdict.encrypted is None:
                assert verdict.detail


def test_corrupted_start_header_crc_still_read() -> None:
    data = bytearray(fixtures()["enc"][0])
    data[8] ^= 0xFF
    verdict, anomalies = analyse(bytes(data))
    assert anomalies == ["sevenz_header_crc"]
    assert verdict.encrypted is True


def test_corrupted_packed_header() -> None:
    data, _ = fixtures()["plain-many"]
    offset = struct.unpack_from("<Q", data, 12)[0]
    rng = random.Random(3)
    for _ in range(200):
        bad = bytearray(data)
        bad[rng.randrange(0x20, 0x20 + offset)] ^= rng.randrange(1, 256)
        verdict, _ = analyse(bytes(bad))
        assert verdict.encrypted in (False, None)


def test_short_and_foreign() -> None:
    assert analyse(b"")[0].encrypted is None
    assert analyse(SIGNATURE)[0].encrypted is None
    assert analyse(b"PK\x03\x04" + bytes(60))[0].encrypted is None
    major = bytearray(fixtures()["enc"][0])
    major[6] = 1
    assert analyse(bytes(major))[0].encrypted is None


def test_header_before_the_tail() -> None:
    data = fixtures()["enc-plainheader"][0]
    analyser = SevenZipAnalyser()
    analyser.feed(data)
    verdict = analyser.finish(data[-8:], len(data), True)
    assert verdict.encrypted is None
    assert verdict.detail == "header lies before the kept tail"
    assert TAIL_BYTES == analyser.tail_bytes >= 1 << 20


def test_packed_header_outside_the_tail() -> None:
    data = fixtures()["plain-many"][0]
    size = struct.unpack_from("<Q", data, 20)[0]
    analyser = SevenZipAnalyser()
    analyser.feed(data)
    verdict = analyser.finish(data[-size:], len(data), True)
    assert verdict.encrypted is None
    assert "outside the kept tail" in (verdict.detail or "")


def test_decoded_header_cap() -> None:
    encoded = b"\x17" + streams_info(0, [4], [(folder((b"\x21", b"\x18")), MAX_DECODED_HEADER + 1)])
    verdict, anomalies = analyse(wrap(bytes(4), encoded))
    assert verdict.encrypted is None
    assert "sevenz_header_too_large" in anomalies


def test_hostile_dictionary_size_is_clamped() -> None:
    archive = fixtures()["enc-plainheader"][0]
    verdict, _ = analyse(lzma1_encoded(archive, declared_dict=0xFFFFFFFF))
    assert verdict.encrypted is True


def test_aes_folder_in_encoded_header_hides_names() -> None:
    encoded = b"\x17" + streams_info(0, [16], [(folder((AES_CODER, b"\x01\x02")), 10)])
    verdict, _ = analyse(wrap(os.urandom(16), encoded))
    assert (verdict.encrypted, verdict.hides_names, verdict.members) == (True, True, None)


def test_empty_signature_header_is_an_empty_archive() -> None:
    start = bytes(20)
    data = SIGNATURE + b"\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start
    verdict, anomalies = analyse(data)
    assert (verdict.encrypted, verdict.members) == (False, 0)
    assert anomalies == []


def test_only_directories() -> None:
    header = b"\x01" + files_info(["d1", "d1/d2"], empty=[True, True]) + b"\x00"
    verdict, _ = analyse(wrap(b"", header))
    assert (verdict.encrypted, verdict.members) == (False, 0)


# -- noise -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    verdict, _ = analyse(data)
    assert verdict.encrypted in (True, False, None)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=64))
def test_arbitrary_headers_never_raise(header: bytes, packed: bytes) -> None:
    for lead in (b"", b"\x01", b"\x17", b"\x01\x04\x06"):
        verdict, _ = analyse(wrap(packed, lead + header))
        assert verdict.encrypted in (True, False, None)
