"""Builds RAR 4.x and RAR 5.0 archives from the format specifications, for tests and for the
sample-traffic generators (the RAR tool itself is non-free, so it is not used).

Written from the RAR 4.x technote (technote.txt shipped with RAR 4.20) and the RAR 5.0
technote ("RAR 5.0 archive format" on rarlab.com). Only what a reader of the headers needs is
written correctly; no compression or encryption is performed.

RAR 4.x (`rar4`): the marker "Rar!\\x1a\\x07\\x00"; MAIN_HEAD (0x73; HEAD_SIZE 13, RESERVED1,
RESERVED2; flag 0x0080 MHD_PASSWORD when `encrypt_headers`); per entry a FILE_HEAD (0x74):
PACK_SIZE, UNP_SIZE, HOST_OS (3, Unix), FILE_CRC (CRC32 of the data), FTIME (a fixed DOS
time), UNP_VER (29, or 20 with `legacy_cipher`), METHOD (0x30, store), NAME_SIZE, ATTR, the
name, and for encrypted entries flag 0x0004 LHD_PASSWORD with flag 0x0400 and an 8-byte SALT;
directories carry flags 0x00E0; an optional NEWSUB_HEAD (0x7A) "CMT" comment; ENDARC_HEAD
(0x7B). Every HEAD_CRC is the low 16 bits of the CRC32 of the header from HEAD_TYPE on.
With `encrypt_headers` everything after MAIN_HEAD stands in for encrypted headers: per entry an
8-byte salt and a random block padded to 16 bytes, as RAR 3.x/4.x writes them.

RAR 5.0 (`rar5`): the signature "Rar!\\x1a\\x07\\x01\\x00"; every header is CRC32 (of the
header from the size field on), header size (vint), type, flags (0x0001 extra area, 0x0002
data area), extra area size, data size, the type's fields, the extra area. Written: the main
archive header (type 1, archive flags 0); per entry a file header (type 2: file flags 0x0001
directory / 0x0004 CRC present, unpacked size, attributes, data CRC32, compression info 0
(version 0, method 0 = store), host OS 1 (Unix), name length, UTF-8 name) whose encrypted
entries carry a file encryption record (extra record type 0x01: version 0, flags 0x0001
password check present, KDF count 15, 16-byte salt, 16-byte IV, 12-byte check value); an
optional service header (type 3) "CMT" comment; the end of archive header (type 5). With
`encrypt_headers` the archive encryption header (type 4: version 0, flags 0x0001, KDF count,
salt, check value) follows the signature and the rest stands in for encrypted headers: per
entry a 16-byte IV and a random block padded to 16 bytes.

File data: plain entries are stored as they are; the data of an encrypted entry is random
bytes (padded to the AES block size) standing in for ciphertext. Random bytes come from
`random.Random(seed)`, so a build is reproducible.

An entry is `(name, data, encrypted)`; a name ending in "/" is a directory entry (its data
must be empty). `sfx_stub` bytes are put before the marker, as a self-extractor would be.
"""

from __future__ import annotations

import random
import struct
import zlib

RAR4_MARKER = b"Rar!\x1a\x07\x00"
RAR5_MARKER = b"Rar!\x1a\x07\x01\x00"
DOS_TIME = 0x5A2C6000  # 2025-01-12 12:00:00 as a DOS date/time
AES_BLOCK = 16

Entry = tuple[str, bytes, bool]


def _padded(size: int) -> int:
    return (size + AES_BLOCK - 1) // AES_BLOCK * AES_BLOCK or AES_BLOCK


# -- RAR 4.x ---------------------------------------------------------------------------------


def rar4_block(kind: int, flags: int, body: bytes) -> bytes:
    """One RAR 4.x block header: HEAD_CRC, HEAD_TYPE, HEAD_FLAGS, HEAD_SIZE, then `body`."""
    rest = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def _rar4_file(
    kind: int, name: str, data: bytes, encrypted: bool, unp_ver: int, rng: random.Random
) -> bytes:
    directory = name.endswith("/")
    raw_name = name.rstrip("/").encode()
    flags = 0x8000
    if directory:
        flags |= 0x00E0
    packed = data
    salt = b""
    if encrypted and not directory:
        flags |= 0x0004 | 0x0400
        salt = rng.randbytes(8)
        packed = rng.randbytes(_padded(len(data)))
    body = struct.pack(
        "<IIBIIBBHI",
        len(packed),
        len(data),
        3,  # HOST_OS: Unix
        zlib.crc32(data),
        DOS_TIME,
        unp_ver,
        0x30,  # METHOD: store
        len(raw_name),
        0x10 if directory else 0x20,
    )
    return rar4_block(kind, flags, body + raw_name + salt) + packed


def rar4(
    files: list[Entry],
    *,
    encrypt_headers: bool = False,
    legacy_cipher: bool = False,
    comment: bytes | None = None,
    sfx_stub: bytes = b"",
    end: bool = True,
    seed: int = 4,
) -> bytes:
    """A RAR 4.x archive of `files` (see the module docstring)."""
    rng = random.Random(seed)
    out = [sfx_stub, RAR4_MARKER]
    out.append(rar4_block(0x73, 0x0080 if encrypt_headers else 0, bytes(6)))
    if encrypt_headers:
        for name, data, _ in files:
            out.append(rng.randbytes(8) + rng.randbytes(_padded(40 + len(name))))
            out.append(rng.randbytes(_padded(len(data))))
        out.append(rng.randbytes(8 + AES_BLOCK))  # the encrypted ENDARC
        return b"".join(out)
    unp_ver = 20 if legacy_cipher else 29
    if comment is not None:
        out.append(_rar4_file(0x7A, "CMT", comment, False, unp_ver, rng))
    for name, data, encrypted in files:
        out.append(_rar4_file(0x74, name, data, encrypted, unp_ver, rng))
    if end:
        out.append(rar4_block(0x7B, 0x4000, b""))
    return b"".join(out)


# -- RAR 5.0 ---------------------------------------------------------------------------------


def vint(value: int) -> bytes:
    """RAR 5.0 variable-length integer: 7 bits per byte, low first, high bit = more."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def rar5_block(
    kind: int, fields: bytes, *, extra: bytes = b"", data_size: int | None = None, flags: int = 0
) -> bytes:
    """One RAR 5.0 header: CRC32, size, type, flags, [extra size], [data size], `fields`,
    `extra`. `flags` adds header flags beyond the extra/data bits."""
    if extra:
        flags |= 0x0001
    if data_size is not None:
        flags |= 0x0002
    head = vint(kind) + vint(flags)
    if extra:
        head += vint(len(extra))
    if data_size is not None:
        head += vint(data_size)
    body = head + fields + extra
    sized = vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized)) + sized


def rar5_crypt_record(rng: random.Random) -> bytes:
    """A file encryption extra record (type 0x01), its size vint first."""
    record = vint(0x01) + vint(0) + vint(0x0001) + bytes([15])
    record += rng.randbytes(16) + rng.randbytes(16) + rng.randbytes(12)
    return vint(len(record)) + record


def _rar5_file(kind: int, name: str, data: bytes, encrypted: bool, rng: random.Random) -> bytes:
    directory = name.endswith("/")
    raw_name = name.rstrip("/").encode()
    file_flags = 0x0004 | (0x0001 if directory else 0)
    packed = data
    extra = b""
    if encrypted and not directory:
        packed = rng.randbytes(_padded(len(data)))
        extra = rar5_crypt_record(rng)
    fields = vint(file_flags) + vint(len(data)) + vint(0o40755 if directory else 0o100644)
    fields += struct.pack("<I", zlib.crc32(data))
    fields += vint(0) + vint(1) + vint(len(raw_name)) + raw_name  # store, Unix, name
    header = rar5_block(kind, fields, extra=extra, data_size=None if directory else len(packed))
    return header + (b"" if directory else packed)


def rar5(
    files: list[Entry],
    *,
    encrypt_headers: bool = False,
    comment: bytes | None = None,
    sfx_stub: bytes = b"",
    end: bool = True,
    seed: int = 5,
) -> bytes:
    """A RAR 5.0 archive of `files` (see the module docstring)."""
    rng = random.Random(seed)
    out = [sfx_stub, RAR5_MARKER]
    if encrypt_headers:
        fields = vint(0) + vint(0x0001) + bytes([15]) + rng.randbytes(16) + rng.randbytes(12)
        out.append(rar5_block(4, fields))
        out.append(rng.randbytes(AES_BLOCK) + rng.randbytes(32))  # the main header
        for name, data, _ in files:
            out.append(rng.randbytes(AES_BLOCK) + rng.randbytes(_padded(40 + len(name))))
            out.append(rng.randbytes(_padded(len(data))))
        out.append(rng.randbytes(AES_BLOCK * 2))  # the end of archive header
        return b"".join(out)
    out.append(rar5_block(1, vint(0)))
    if comment is not None:
        out.append(_rar5_file(3, "CMT", comment, False, rng))
    for name, data, encrypted in files:
        out.append(_rar5_file(2, name, data, encrypted, rng))
    if end:
        out.append(rar5_block(5, vint(0)))
    return b"".join(out)
