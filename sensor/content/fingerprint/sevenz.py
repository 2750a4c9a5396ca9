"""Fingerprint stage: is a 7z archive encrypted, and does it hide its member names?

In: the bytes of one object already known to be 7z, in order (`feed`), lost byte counts (`gap`)
and, at `finish`, the object's last `tail_bytes` bytes with its total size.
Out: an `Encryption` verdict (scheme "7z-aes-256"), plus `Anomaly` values in `anomalies`.

Theory of operation (7-Zip's DOC/7zFormat.txt; research note section 6). A 7z archive opens
with a 32-byte signature header: the magic 37 7A BC AF 27 1C, a two-byte version, the CRC32
of the next 20 bytes, then NextHeaderOffset (8), NextHeaderSize (8), NextHeaderCRC (4). The
header proper sits at 0x20 + NextHeaderOffset, normally at the very end of the archive, so
`feed` keeps only the signature header and counts bytes; `finish` finds the header in the
tail. Its first byte is:

- 0x01 kHeader: a plain header. MainStreamsInfo lists the folders (coder chains); a folder
  whose coder list holds the 7zAES id 06 F1 07 01 has encrypted data. FilesInfo counts the
  entries; an entry with an empty stream that is not an empty file is a directory and is not
  a member. The files that have data map in order onto the folders' unpack streams, which
  gives the number of encrypted members.
- 0x17 kEncodedHeader: a StreamsInfo describing where the real header is packed. If that
  folder holds the AES coder the header itself is encrypted (7z -mhe=on): names and counts are
  hidden. Otherwise (LZMA 03 01 01 or LZMA2 21, what 7-Zip and py7zr write for any header
  of some size) the packed header is decoded with the stdlib `lzma` in FORMAT_RAW, bounded by
  `MAX_DECODED_HEADER`, and read as a plain header. So 0x17 alone does NOT mean encrypted.

Damage (too short, header outside the tail, cut off, unparsable structures) gives
encrypted=None with a detail; CRC mismatches are anomalies and the header is still read.

Anomalies: sevenz_header_crc (the start header's, next header's or decoded header's CRC32
does not match), sevenz_header_damaged (the header cannot be parsed; verdict None),
sevenz_header_too_large (the header or its decoded form exceeds a cap; verdict None),
sevenz_gap (bytes of the signature header were lost; verdict None).
"""

from __future__ import annotations

import lzma
import struct
import zlib

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
SIGNATURE_HEADER_SIZE = 0x20  # 7zFormat.txt "SignatureHeader"
TAIL_BYTES = 4 * 1024 * 1024  # the header (or packed header) must lie in the object's last 4 MiB
MAX_DECODED_HEADER = 16 * 1024 * 1024  # an LZMA-packed header decoded beyond this is not read
MAX_FILES = 10_000_000  # a header claiming more entries is damaged (7-Zip's own limit is lower)
MAX_COUNT = 1 << 20  # folders, coders, pack streams: more is damaged
SCHEME = "7z-aes-256"

AES_CODER = b"\x06\xf1\x07\x01"  # 7zAES: AES-256 + SHA-256 key derivation (Methods.txt)
LZMA_CODER = b"\x03\x01\x01"
LZMA2_CODER = b"\x21"
COPY_CODER = b"\x00"

# Property ids (7zFormat.txt "Property IDs")
_K_END = 0x00
_K_HEADER = 0x01
_K_ARCHIVE_PROPERTIES = 0x02
_K_ADDITIONAL_STREAMS = 0x03
_K_MAIN_STREAMS = 0x04
_K_FILES_INFO = 0x05
_K_PACK_INFO = 0x06
_K_UNPACK_INFO = 0x07
_K_SUBSTREAMS_INFO = 0x08
_K_SIZE = 0x09
_K_CRC = 0x0A
_K_FOLDER = 0x0B
_K_CODERS_UNPACK_SIZE = 0x0C
_K_NUM_UNPACK_STREAM = 0x0D
_K_EMPTY_STREAM = 0x0E
_K_EMPTY_FILE = 0x0F
_K_ENCODED_HEADER = 0x17

_U64 = struct.Struct("<QQI")


class _Damaged(Exception):
    """The header cannot be parsed; the message is the verdict's detail."""


class _Reader:
    """Bounds-checked cursor over a header; every overrun is `_Damaged`."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def byte(self) -> int:
        if self.pos >= self.end:
            raise _Damaged("header ends early")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def take(self, count: int) -> bytes:
        if count < 0 or count > self.end - self.pos:
            raise _Damaged("header ends early")
        start = self.pos
        self.pos += count
        return self.buf[start : self.pos]

    def skip(self, count: int) -> None:
        if count < 0 or count > self.end - self.pos:
            raise _Damaged("header ends early")
        self.pos += count

    def number(self) -> int:
        # 7zFormat.txt "UINT64": the count of leading one bits of the first byte is the count
        # of little-endian extra bytes; the first byte's remaining low bits are the high part.
        first = self.byte()
        if first < 0x80:
            return first
        mask = 0x80
        value = 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self, what: str) -> int:
        """A count whose every item takes at least one header byte."""
        value = self.number()
        if value > MAX_COUNT or value > self.end - self.pos:
            raise _Damaged(f"implausible {what} count {value}")
        return value


class _Folder:
    __slots__ = ("coders", "crc_defined", "encrypted", "num_out", "unpack_sizes", "unpack_streams")

    def __init__(self) -> None:
        self.coders: list[tuple[bytes, bytes]] = []  # (method id, properties)
        self.crc_defined = False
        self.encrypted = False
        self.num_out = 0
        self.unpack_sizes: list[int] = []
        self.unpack_streams = 1  # SubStreamsInfo may change it


class _Streams:
    __slots__ = ("folders", "pack_pos", "pack_sizes")

    def __init__(self) -> None:
        self.pack_pos = 0
        self.pack_sizes: list[int] = []
        self.folders: list[_Folder] = []


def _read_bits(reader: _Reader, count: int) -> int:
    """A vector of `count` bits (first item in the high bit of the first byte) as an int whose
    highest bit is item 0."""
    size = (count + 7) // 8
    raw = reader.take(size)
    return int.from_bytes(raw, "big") >> (size * 8 - count)


def _read_digests(reader: _Reader, count: int) -> int:
    """Skips a Digests record; returns which items have a CRC, as `_read_bits` does."""
    # 7zFormat.txt "Digests": AllAreDefined, else a bit vector; then one CRC32 per defined item
    if reader.byte():
        if 4 * count > reader.end - reader.pos:  # checked before building a count-bit int
            raise _Damaged("header ends early")
        defined = (1 << count) - 1
    else:
        defined = _read_bits(reader, count)
    reader.skip(4 * defined.bit_count())
    return defined


def _read_pack_info(reader: _Reader, streams: _Streams) -> None:
    streams.pack_pos = reader.number()
    num = reader.count("pack stream")
    while True:
        prop = reader.byte()
        if prop == _K_END:
            return
        if prop == _K_SIZE:
            streams.pack_sizes = [reader.number() for _ in range(num)]
        elif prop == _K_CRC:
            _read_digests(reader, num)
        else:
            raise _Damaged(f"unexpected property {prop:#x} in PackInfo")


def _read_folder(reader: _Reader) -> _Folder:
    folder = _Folder()
    num_coders = reader.count("coder")
    if num_coders == 0:
        raise _Damaged("folder without coders")
    total_in = 0
    for _ in range(num_coders):
        flags = reader.byte()
        if flags & 0x80:
            # "alternative methods": dropped from the format long ago; 7-Zip rejects it
            raise _Damaged("coder with alternative methods")
        method = reader.take(flags & 0x0F)
        if flags & 0x10:
            num_in = reader.count("coder in stream")
            num_out = reader.count("coder out stream")
        else:
            num_in = num_out = 1
        props = reader.take(reader.count("coder property byte")) if flags & 0x20 else b""
        total_in += num_in
        folder.num_out += num_out
        folder.coders.append((method, props))
        if method == AES_CODER:
            folder.encrypted = True
    bind_pairs = folder.num_out - 1
    if bind_pairs < 0 or bind_pairs > total_in:
        raise _Damaged("folder stream counts disagree")
    for _ in range(bind_pairs):
        reader.number()
        reader.number()
    packed = total_in - bind_pairs
    if packed > 1:
        for _ in range(packed):
            reader.number()
    return folder


def _read_unpack_info(reader: _Reader, streams: _Streams) -> None:
    if reader.byte() != _K_FOLDER:
        raise _Damaged("UnPackInfo without Folder")
    num_folders = reader.count("folder")
    if reader.byte() != 0:
        # External: the folders live in an additional stream; 7-Zip itself does not write it
        raise _Damaged("external folders are not supported")
    streams.folders = [_read_folder(reader) for _ in range(num_folders)]
    if reader.byte() != _K_CODERS_UNPACK_SIZE:
        raise _Damaged("UnPackInfo without CodersUnPackSize")
    for folder in streams.folders:
        folder.unpack_sizes = [reader.number() for _ in range(folder.num_out)]
    while True:
        prop = reader.byte()
        if prop == _K_END:
            return
        if prop == _K_CRC:
            defined = _read_digests(reader, num_folders)
            for index, folder in enumerate(streams.folders):
                folder.crc_defined = bool(defined >> (num_folders - 1 - index) & 1)
        else:
            raise _Damaged(f"unexpected property {prop:#x} in UnPackInfo")


def _read_substreams_info(reader: _Reader, streams: _Streams) -> None:
    folders = streams.folders
    prop = reader.byte()
    if prop == _K_NUM_UNPACK_STREAM:
        for folder in folders:
            folder.unpack_streams = reader.number()
            if folder.unpack_streams > MAX_FILES:
                raise _Damaged("implausible unpack stream count")
        prop = reader.byte()
    if prop == _K_SIZE:
        # one size per unpack stream but the last of each folder (it is the remainder)
        for folder in folders:
            for _ in range(folder.unpack_streams - 1):
                reader.number()
        prop = reader.byte()
    while prop != _K_END:
        if prop == _K_CRC:
            # digests for the streams whose CRC is not already known: a folder with exactly
            # one stream and a CRC of its own (UnPackInfo) needs none (7-Zip's 7zIn.cpp)
            unknown = sum(
                folder.unpack_streams
                for folder in folders
                if folder.unpack_streams != 1 or not folder.crc_defined
            )
            _read_digests(reader, unknown)
        else:
            raise _Damaged(f"unexpected property {prop:#x} in SubStreamsInfo")
        prop = reader.byte()


def _read_streams_info(reader: _Reader) -> _Streams:
    streams = _Streams()
    while True:
        prop = reader.byte()
        if prop == _K_END:
            return streams
        if prop == _K_PACK_INFO:
            _read_pack_info(reader, streams)
        elif prop == _K_UNPACK_INFO:
            _read_unpack_info(reader, streams)
        elif prop == _K_SUBSTREAMS_INFO:
            _read_substreams_info(reader, streams)
        else:
            raise _Damaged(f"unexpected property {prop:#x} in StreamsInfo")


class _Files:
    __slots__ = ("count", "directories", "with_data")

    def __init__(self, count: int, directories: int, with_data: int) -> None:
        self.count = count
        self.directories = directories
        self.with_data = with_data


def _read_files_info(reader: _Reader) -> _Files:
    num_files = reader.number()
    if num_files > MAX_FILES:
        raise _Damaged(f"implausible file count {num_files}")
    empty_streams = 0
    empty_files = 0
    while True:
        prop = reader.byte()
        if prop == _K_END:
            break
        size = reader.number()
        if size > reader.end - reader.pos:
            raise _Damaged(f"file property {prop:#x} runs past the header")
        body = _Reader(reader.take(size))
        if prop == _K_EMPTY_STREAM:
            empty_streams = _read_bits(body, num_files).bit_count()
        elif prop == _K_EMPTY_FILE:
            empty_files = _read_bits(body, empty_streams).bit_count()
        # names, times, attributes, kDummy padding: skipped by their size
    # 7-Zip: an entry with no stream is a directory unless kEmptyFile marks it an empty file
    # (anti-items, deletion markers, are counted with directories: they hold no data)
    return _Files(num_files, empty_streams - empty_files, num_files - empty_streams)


class _Header:
    __slots__ = ("files", "folders")

    def __init__(self) -> None:
        self.folders: list[_Folder] = []
        self.files: _Files | None = None


def _read_header(reader: _Reader) -> _Header:
    """A plain header, its kHeader id already read."""
    header = _Header()
    while True:
        prop = reader.byte()
        if prop == _K_END:
            return header
        if prop == _K_ARCHIVE_PROPERTIES:
            while reader.byte() != 0:
                reader.skip(reader.number())
        elif prop == _K_ADDITIONAL_STREAMS:
            # streams for external header data (7-Zip never writes them); no member lives
            # there, so they are parsed past and not judged
            _read_streams_info(reader)
        elif prop == _K_MAIN_STREAMS:
            header.folders = _read_streams_info(reader).folders
        elif prop == _K_FILES_INFO:
            header.files = _read_files_info(reader)
        else:
            raise _Damaged(f"unexpected property {prop:#x} in Header")


def _lzma_filter(method: bytes, props: bytes) -> dict[str, int]:
    if method == LZMA_CODER:
        if len(props) != 5:
            raise _Damaged("bad LZMA coder properties")
        # Methods.txt / LZMA SDK: lc + lp*9 + pb*45 in one byte, then the dictionary size
        first = props[0]
        if first >= 9 * 5 * 5:
            raise _Damaged("bad LZMA coder properties")
        dict_size = int.from_bytes(props[1:5], "little")
        # the decoder never looks further back than it has produced, so a dictionary larger
        # than the decoded cap only costs memory (liblzma allocates it up front)
        dict_size = max(4096, min(dict_size, MAX_DECODED_HEADER))
        return {
            "id": lzma.FILTER_LZMA1,
            "dict_size": dict_size,
            "lc": first % 9,
            "lp": (first // 9) % 5,
            "pb": first // 45,
        }
    if len(props) != 1 or props[0] > 40:
        raise _Damaged("bad LZMA2 coder properties")
    bits = props[0]
    dict_size = 0xFFFFFFFF if bits == 40 else (2 | (bits & 1)) << (bits // 2 + 11)
    return {"id": lzma.FILTER_LZMA2, "dict_size": max(4096, min(dict_size, MAX_DECODED_HEADER))}


class SevenZipAnalyser:
    """One 7z object: keeps its signature header, reads the header from the tail."""

    __slots__ = ("_lost_signature", "_signature", "_size", "anomalies", "tail_bytes")

    def __init__(self) -> None:
        self.tail_bytes: int = TAIL_BYTES
        self.anomalies: list[Anomaly] = []
        self._signature = bytearray()
        self._size = 0
        self._lost_signature = False

    def feed(self, data: bytes) -> None:
        missing = SIGNATURE_HEADER_SIZE - len(self._signature)
        if missing > 0 and not self._lost_signature:
            self._signature += data[:missing]
        self._size += len(data)

    def gap(self, size: int) -> None:
        if size <= 0:
            return
        if len(self._signature) < SIGNATURE_HEADER_SIZE and not self._lost_signature:
            self._lost_signature = True
            self.anomalies.append(Anomaly("sevenz_gap", "bytes of the signature header lost"))
        self._size += size

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        if self._lost_signature:
            return Encryption(None, detail="signature header lost in a gap")
        sig = bytes(self._signature)
        if len(sig) < SIGNATURE_HEADER_SIZE:
            return Encryption(None, detail="too short for a 7z signature header")
        if not sig.startswith(SIGNATURE):
            return Encryption(None, detail="no 7z signature")
        if sig[6] != 0:
            return Encryption(None, detail=f"unknown 7z major version {sig[6]}")
        offset, length, crc = _U64.unpack_from(sig, 12)
        if zlib.crc32(sig[12:32]) != int.from_bytes(sig[8:12], "little"):
            self.anomalies.append(Anomaly("sevenz_header_crc", "start header CRC mismatch"))
        if offset == 0 and length == 0:
            return Encryption(False, members=0, encrypted_members=0, detail="empty archive")
        cut = "" if complete else " (object cut off)"
        size = max(size, len(tail))
        start = SIGNATURE_HEADER_SIZE + offset
        if start + length > size:
            return Encryption(None, detail="header lies past the end of the object" + cut)
        tail_start = size - len(tail)
        if start < tail_start:
            if length > self.tail_bytes:
                self.anomalies.append(
                    Anomaly("sevenz_header_too_large", f"header of {length} bytes exceeds tail")
                )
            return Encryption(None, detail="header lies before the kept tail")
        raw = tail[start - tail_start : start - tail_start + length]
        if zlib.crc32(raw) != crc:
            self.anomalies.append(Anomaly("sevenz_header_crc", "next header CRC mismatch"))
        try:
            return self._verdict(raw, tail, tail_start)
        except _Damaged as exc:
            self.anomalies.append(Anomaly("sevenz_header_damaged", str(exc)))
            return Encryption(None, detail=f"damaged header: {exc}{cut}")

    def _verdict(self, raw: bytes, tail: bytes, tail_start: int) -> Encryption:
        reader = _Reader(raw)
        kind = reader.byte()
        if kind == _K_ENCODED_HEADER:
            streams = _read_streams_info(reader)
            if any(folder.encrypted for folder in streams.folders):
                return Encryption(
                    True, SCHEME, hides_names=True, detail="header encrypted (7z -mhe)"
                )
            reader = _Reader(self._decode_header(streams, tail, tail_start))
            kind = reader.byte()
            if kind != _K_HEADER:
                raise _Damaged(f"decoded header starts with {kind:#x}")
        elif kind != _K_HEADER:
            raise _Damaged(f"next header starts with {kind:#x}")
        header = _read_header(reader)
        return self._judge(header)

    def _decode_header(self, streams: _Streams, tail: bytes, tail_start: int) -> bytes:
        if len(streams.folders) != 1 or not streams.pack_sizes:
            raise _Damaged("encoded header without exactly one folder")
        folder = streams.folders[0]
        if len(folder.coders) != 1 or len(folder.unpack_sizes) != 1:
            raise _Damaged("encoded header coder chain not supported")
        method, props = folder.coders[0]
        unpack_size = folder.unpack_sizes[0]
        if unpack_size > MAX_DECODED_HEADER:
            self.anomalies.append(
                Anomaly("sevenz_header_too_large", f"decoded header of {unpack_size} bytes")
            )
            raise _Damaged("decoded header exceeds the cap")
        start = SIGNATURE_HEADER_SIZE + streams.pack_pos - tail_start
        pack_size = streams.pack_sizes[0]
        if start < 0 or start + pack_size > len(tail):
            raise _Damaged("packed header lies outside the kept tail")
        packed = tail[start : start + pack_size]
        if method == COPY_CODER:
            decoded = packed[:unpack_size]
        elif method in (LZMA_CODER, LZMA2_CODER):
            try:
                decoder = lzma.LZMADecompressor(
                    lzma.FORMAT_RAW, filters=[_lzma_filter(method, props)]
                )
                decoded = decoder.decompress(packed, max_length=unpack_size)
            except (lzma.LZMAError, ValueError, MemoryError) as exc:
                raise _Damaged(f"packed header does not decode ({exc})") from None
        else:
            raise _Damaged(f"encoded header coder {method.hex()} not supported")
        if len(decoded) != unpack_size:
            raise _Damaged("packed header decodes short")
        return decoded

    def _judge(self, header: _Header) -> Encryption:
        folders = header.folders
        encrypted_folders = [folder for folder in folders if folder.encrypted]
        files = header.files
        if files is None:
            # no FilesInfo: 7-Zip lists no entries (the folders hold nothing addressable)
            members = 0
            encrypted_members = 0
            plain_data = False
        else:
            members = files.count - files.directories
            streams = sum(folder.unpack_streams for folder in folders)
            enc_streams = sum(folder.unpack_streams for folder in encrypted_folders)
            encrypted_members = min(enc_streams, files.with_data)
            # empty files carry no data: they make an archive neither encrypted nor partial
            plain_data = files.with_data > encrypted_members
            if streams != files.with_data:
                raise _Damaged(f"{files.with_data} entries with data but {streams} unpack streams")
        if not encrypted_folders:
            return Encryption(False, members=members, encrypted_members=0)
        if members == 0:
            return Encryption(False, members=0, encrypted_members=0, detail="no files")
        return Encryption(
            encrypted_members > 0,
            SCHEME if encrypted_members > 0 else None,
            partial=encrypted_members > 0 and plain_data,
            members=members,
            encrypted_members=encrypted_members,
            detail=f"{len(encrypted_folders)} of {len(folders)} folders encrypted",
        )
