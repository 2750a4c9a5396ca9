"""The fingerprint of one object: magic, structure, and entropy only where nothing else
knows the object; the undecided cases are said and why."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
import zlib

import pytest
import zstandard

from sensor.content.fingerprint.fingerprinter import HIGH_ENTROPY, Fingerprint, Fingerprinter

NOISE = random.Random(7).randbytes(200_000)
TEXT = b"".join(f"{i};Jansen;uitstrijkje;PAP{i % 5 + 1}\n".encode() for i in range(5000))


def run(data: bytes, name: str | None = None, chunk: int = 1460) -> Fingerprint:
    fp = Fingerprinter(filename=name)
    for i in range(0, len(data), chunk):
        fp.feed(data[i : i + chunk])
    result, _ = fp.finish(True)
    return result


def mp4(payload: bytes) -> bytes:
    ftyp = struct.pack(">I4s4sI", 20, b"ftyp", b"isom", 512) + b"isom"
    return ftyp + struct.pack(">I4s", 8 + len(payload), b"mdat") + payload


def png(payload: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", payload)


@pytest.mark.parametrize(
    ("data", "type_id"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + NOISE, "jpeg"),
        (png(NOISE), "png"),
        (mp4(NOISE), "mp4"),
        (gzip.compress(NOISE), "gzip"),
        (gzip.compress(TEXT), "gzip"),
        (lzma.compress(TEXT), "xz"),
        (bz2.compress(TEXT), "bzip2"),
        (zstandard.ZstdCompressor().compress(TEXT), "zstd"),
        # A Debian package: an ar archive of compressed members (every .deb on a Debian system
        # was "unknown-high-entropy" before the table knew ar).
        (
            b"!<arch>\ndebian-binary   1700000000  0     0     100644  4         `\n2.0\n" + NOISE,
            "ar",
        ),
    ],
)
def test_compressed_media_with_a_header_is_never_called_encrypted(
    data: bytes, type_id: str
) -> None:
    result = run(data)
    assert result.type == type_id
    assert result.encrypted is False and result.encryption is None and result.undecided is None


def test_a_headerless_random_blob_is_unknown_high_entropy() -> None:
    result = run(NOISE)
    assert result.type is None and result.encrypted is None
    assert result.encryption == HIGH_ENTROPY and result.undecided == "high-entropy"
    assert result.entropy is not None and result.entropy > 7.99


def test_raw_deflate_is_high_entropy_but_not_random_looking() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = compressor.compress(TEXT * 4) + compressor.flush()
    result = run(raw)
    assert result.encrypted is False and result.encryption is None


def test_short_and_empty_objects_are_undecided_and_say_so() -> None:
    assert run(b"").undecided == "short" and run(b"").encrypted is None
    short_noise = run(NOISE[:1000])
    assert short_noise.encrypted is None and short_noise.undecided == "short"
    assert short_noise.encryption is None


def test_text_and_structured_binary_are_not_encrypted() -> None:
    assert run(TEXT).encrypted is False and run(TEXT).type == "csv"
    structured = bytes(range(256)) * 100  # uniform histogram, but chi-square says: not random
    result = run(b"\x01\x02\x03\x04" + structured)
    assert result.type is None and result.encrypted is False and result.undecided is None


def test_a_damaged_known_format_is_undecided_damaged() -> None:
    # A signature header whose next header lies past the end: cut off.
    header = struct.pack("<QQI", 5000, 300, 0)
    data = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(header)) + header
    result = run(data + NOISE[:2000])
    assert result.type == "7z" and result.encrypted is None and result.undecided == "damaged"


def test_the_record_carries_the_issue_fields_and_optional_flags_only_when_true() -> None:
    record = run(TEXT).as_record()
    assert list(record) == ["type", "encrypted", "encryption", "entropy", "container",
                            "members", "contains_encrypted"]  # fmt: skip
    assert isinstance(record["entropy"], float)
