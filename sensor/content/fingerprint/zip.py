"""Fingerprint stage: the streaming ZIP reader (encryption analyser and member opener in one).

In: the bytes of one ZIP object (an HTTP upload, a mail attachment) once, in order, in chunks of
any size (`feed`), lost stretches (`gap`), the end (`finish`), then the object's last
`tail_bytes` bytes for `verdict`.
Out: `MemberStart` / `MemberData` / `MemberEnd` events per entry as the local headers stream
past; at `verdict` an `Encryption`; `document_type()` names OOXML/ODF/EPUB/JAR; anomalies in
`anomalies` (kinds `zip_*`), drained by the caller.

Theory of operation. ZIP (PKWARE APPNOTE.TXT 6.3.x) has two views of the same entries: a local
file header before each entry's data (4.3.7), and the central directory at the end (4.3.12),
which readers like `zipfile` treat as authoritative. A network sensor sees the bytes in order
and once, so the members are opened from the local headers as they pass; the central directory
is read afterwards from the tail the caller kept, and the two views are compared (lying local
headers, hidden or overlapping entries are evasions and bombs).

The walker is a state machine over a small buffer. At a record boundary (`_SIG`) the signature
picks the record: a local header is read in bounded parts (fixed 30 bytes, then the name up to
`NAME_CAP`, the extra field up to `EXTRA_CAP`; the rest of either is skipped, never buffered),
then the entry's data is passed through one of:

- `_STORED`: the compressed size is known: copied out (stored, opened) or skipped;
- `_DECODE`: deflate (8), bzip2 (12), LZMA (14) or xz (95) decoded with output bounded to
  `PIECE` per decompressor call (max_length / unconsumed_tail), so a bomb never materialises
  more than `PIECE` bytes per call; without a known size (flag bit 3) the end is where the
  compressed stream ends (`eof`);
- `_HUNT`: flag bit 3 with no size and no decoder (stored, encrypted, unsupported method): the
  end is found by looking for the data descriptor (4.3.9) whose compressed size equals the bytes
  counted so far, with or without its `PK\\x07\\x08` signature, 32- or 64-bit; only
  `DESCRIPTOR_LOOKBEHIND` bytes are held back at any time.
After a bit-3 entry `_DESC` skips its descriptor. The central directory, zip64 records and the
end record are skipped by their lengths; a local header after the end record (a concatenated
archive) is opened too. Junk (a self-extractor stub, damage, the place after a gap) is passed
by `_SCAN`, which looks for the next plausible local header keeping only 3 bytes.

Memory: the buffer never holds more than `BUFFER_CAP` bytes between calls; one feed() returns
at most the decoded form of its input and of the partial `DECODE_BLOCK` held from before
(deflate's ratio is at most 1032:1) in `MemberData` pieces of at most `PIECE` bytes each, so
callers bound memory by the chunk size they feed. Decompressors get blocks aligned to the
member's compressed offset, so events never depend on how the bytes were chunked.
Local entries are remembered for the comparison up to `LOCAL_ENTRIES_CAP` (compact records).

Limits:
- the central directory is read only when it lies wholly within the last `tail_bytes` bytes;
  beyond that the verdict says "central directory beyond N bytes not read" and relies on the
  local headers (and the end record's entry count, if that is in the tail);
- a bit-3 entry that cannot be decoded (stored, encrypted, unsupported method) and has no
  data descriptor cannot be delimited: it runs to the end of the stream, ends incomplete, and
  the entries after it are seen only in the central directory;
- a stored bit-3 entry whose content itself holds a well-formed descriptor for its own prefix
  ends early; the central directory comparison reports the size disagreement;
- deflate64 (9), zstd (93), PPMd (98) and the old methods are not opened
  (`zip_method_unsupported`): zstandard's streaming API has no output bound per call;
- PKWARE strong encryption (bit 6) and central directory encryption (bit 13) are recognised,
  not parsed further than the 0x0017 header's algorithm id.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import (
    Encryption,
    MemberData,
    MemberEnd,
    MemberEvent,
    MemberStart,
)

TAIL_BYTES = 1024 * 1024  # how much of the object's end `verdict` reads (CD + EOCD + zip64)
PIECE = 64 * 1024  # max bytes per MemberData and per decompressor call
NAME_CAP = 1024  # name bytes kept; longer names are cut (zip_name_too_long)
EXTRA_CAP = 4096  # extra-field bytes parsed; the rest is skipped (zip_extra_too_long)
DESCRIPTOR_LOOKBEHIND = 28  # bytes held back while hunting a descriptor: 24 (zip64 + sig) + 4
DECODE_BLOCK = 16 * 1024  # compressed bytes per decompressor call (aligned in the member)
BUFFER_CAP = max(EXTRA_CAP, NAME_CAP, DECODE_BLOCK)  # the most buffered between calls
LOCAL_ENTRIES_CAP = 65536  # local entries remembered for the central directory comparison
LZMA_DICT_CAP = 64 * 1024 * 1024  # largest LZMA/xz dictionary a member may make us allocate
MIMETYPE_CAP = 128  # bytes of an ODF/EPUB "mimetype" member kept for document_type()
MISMATCH_EXAMPLES = 3  # entries named in one zip_header_mismatch detail
SHORT_NAME = 80  # characters of a name kept for details

_LFH = b"PK\x03\x04"  # 4.3.7 local file header
_CDH = b"PK\x01\x02"  # 4.3.12 central directory header
_EOCD = b"PK\x05\x06"  # 4.3.16 end of central directory record
_EOCD64 = b"PK\x06\x06"  # 4.3.14 zip64 end of central directory record
_LOC64 = b"PK\x06\x07"  # 4.3.15 zip64 end of central directory locator
_DD = b"PK\x07\x08"  # 4.3.9.3 data descriptor signature (also 8.5.3 split marker at 0)
_DIGSIG = b"PK\x05\x05"  # 4.3.13 digital signature
_AXD = b"PK\x06\x08"  # 4.3.11 archive extra data record
_SPAN0 = b"PK00"  # 8.5.4 "temporary spanning" marker at offset 0
_U32 = 0xFFFFFFFF

_LFH_FMT = struct.Struct("<4sHHHHHIIIHH")
_CDH_FMT = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD_FMT = struct.Struct("<4sHHHHIIH")
_EOCD64_FMT = struct.Struct("<4sQHHIIQQQQ")
_LOC64_FMT = struct.Struct("<4sIQI")

# General purpose flag bits (4.4.4).
_F_ENCRYPTED = 0x0001
_F_LZMA_EOS = 0x0002  # method 14: the stream has an end marker
_F_DESCRIPTOR = 0x0008
_F_STRONG = 0x0040
_F_UTF8 = 0x0800
_F_CD_ENCRYPTED = 0x2000  # local header values masked, central directory encrypted

_M_STORED = 0
_M_DEFLATE = 8
_M_BZIP2 = 12
_M_LZMA = 14
_M_XZ = 95
_M_AES = 99  # WinZip AE-x marker; the real method is in the 0x9901 extra
_DECODED_METHODS = frozenset({_M_DEFLATE, _M_BZIP2, _M_LZMA, _M_XZ})
_METHOD_NAMES = {
    1: "shrink",
    2: "reduce",
    3: "reduce",
    4: "reduce",
    5: "reduce",
    6: "implode",
    9: "deflate64",
    10: "terse",
    18: "terse",
    19: "lz77",
    20: "zstd (old id)",
    93: "zstd",
    94: "mp3",
    96: "jpeg",
    97: "wavpack",
    98: "ppmd",
}
_AES_SCHEMES = {1: "zip-aes-128", 2: "zip-aes-192", 3: "zip-aes-256"}
_AES_SALT = {1: 8, 2: 12, 3: 16}
# 0x0017 strong encryption header AlgID (APPNOTE 7.2.3.2).
_STRONG_ALGS = {
    0x6601: "DES",
    0x6602: "RC2",
    0x6603: "3DES-168",
    0x6609: "3DES-112",
    0x660E: "AES-128",
    0x660F: "AES-192",
    0x6610: "AES-256",
    0x6702: "RC2",
    0x6720: "Blowfish",
    0x6721: "Twofish",
    0x6801: "RC4",
}
# "If several differ, the strongest": PKWARE's stream cipher is the weakest; strong encryption
# may be DES or RC2, so it ranks below the AES schemes.
_SCHEME_RANK = {
    "zip-pkware": 0,
    "zip-strong": 1,
    "zip-aes": 2,
    "zip-aes-128": 2,
    "zip-aes-192": 3,
    "zip-aes-256": 4,
}
_ODF_TYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/epub+zip": "epub",
}

# Walker states (see the module docstring).
_SIG = 0  # at a record boundary
_LFH_FIXED = 1  # the local header's fixed 30 bytes
_NAME = 2
_EXTRA = 3
_SKIP = 4  # skip `_skip` bytes, then go to `_after`
_STORED = 5  # member data of known compressed size: copy or skip
_DECODE = 6  # member data through a decompressor
_HUNT = 7  # member data of unknown size: look for its data descriptor
_DESC = 8  # a data descriptor after a bit-3 entry
_SCAN = 9  # junk: look for the next local header
_CDH_FIXED = 10
_EOCD_FIXED = 11
_EOCD64_FIXED = 12
_SIZED_RECORD = 13  # digital signature / archive extra data: a length after the signature
_TRAILER = 14  # after the end record: only a further local header matters

_DecodeErrors = (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError, MemoryError)


class _Decoder:
    """One member's decompressor behind one interface, output bounded per call.

    `run` feeds compressed bytes and hands decoded pieces (each <= PIECE) to `sink`; it returns
    how many of the given bytes lie after the end of the compressed stream once the stream has
    ended, else None (more input wanted)."""

    __slots__ = ("_d", "_kind", "_lzma_head", "eof")

    def __init__(self, method: int) -> None:
        self._kind = method
        self.eof = False
        self._lzma_head = b""  # 5.8.8: version(2) + props size(2) + props, before the stream
        self._d: Any = None  # zlib, bz2 or lzma decompressor
        if method == _M_DEFLATE:
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        elif method == _M_BZIP2:
            self._d = bz2.BZ2Decompressor()
        elif method == _M_XZ:
            self._d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=2 * LZMA_DICT_CAP)

    def run(self, data: bytes | memoryview, sink: Callable[[bytes], None]) -> int | None:
        if self._kind == _M_DEFLATE:
            return self._run_zlib(data, sink)
        if self._kind == _M_LZMA and self._d is None:
            data = self._lzma_start(data)
            if self._d is None:
                return None
        return self._run_buffered(data, sink)

    def _run_zlib(self, data: bytes | memoryview, sink: Callable[[bytes], None]) -> int | None:
        d = self._d
        buf: bytes | memoryview = data
        while True:
            out = d.decompress(buf, PIECE)
            if out:
                sink(out)
            if d.eof:
                self.eof = True
                return len(d.unused_data)
            buf = d.unconsumed_tail
            # An empty tail with a full piece may still leave output inside zlib.
            if not buf and len(out) < PIECE:
                return None

    def _run_buffered(self, data: bytes | memoryview, sink: Callable[[bytes], None]) -> int | None:
        d = self._d
        buf: bytes | memoryview = data
        while True:
            out = d.decompress(buf, PIECE)
            buf = b""
            if out:
                sink(out)
            if d.eof:
                self.eof = True
                return len(d.unused_data)
            if d.needs_input:
                return None

    def _lzma_start(self, data: bytes | memoryview) -> bytes | memoryview:
        """Collects the 4-byte LZMA header and its properties (APPNOTE 5.8.8), then builds the
        raw LZMA1 decoder; returns the input left after the header."""
        need = 4
        head = self._lzma_head + bytes(data[: max(0, 4 + 64 - len(self._lzma_head))])
        if len(head) >= 4:
            need = 4 + int.from_bytes(head[2:4], "little")
        if need > 4 + 64:
            raise ValueError("LZMA properties too long")
        if len(self._lzma_head) + len(data) < need:
            self._lzma_head += bytes(data)
            return b""
        used = need - len(self._lzma_head)
        props = (self._lzma_head + bytes(data[:used]))[4:need]
        if len(props) < 5:
            raise ValueError("LZMA properties too short")
        lclppb = props[0]
        if lclppb >= 9 * 5 * 5:
            raise ValueError("bad LZMA properties")
        pb, rem = divmod(lclppb, 45)
        lp, lc = divmod(rem, 9)
        dict_size = int.from_bytes(props[1:5], "little")
        if dict_size > LZMA_DICT_CAP:
            raise ValueError("LZMA dictionary too large")
        filt = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
        self._d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[filt])
        self._lzma_head = b""
        return data[used:]


@dataclass(slots=True)
class _Entry:
    """One entry as a local header or a central directory header states it (compact: the name
    is kept as a key and a short form for details)."""

    offset: int  # local header offset: absolute in the stream (local) or as stated (central)
    flags: int
    method: int  # as stored (99 for AES)
    encrypted: bool
    scheme: str | None
    is_dir: bool
    name_key: tuple[int, int]  # (length, crc32) of the name bytes cut at NAME_CAP
    short: str
    csize: int | None  # declared compressed size (None: not stated)
    usize: int | None
    header_len: int = 0  # local header length, where seen
    observed: int | None = None  # compressed bytes counted in the stream at a complete end
    aes_version: int = 0
    strong_alg: str | None = None


@dataclass(slots=True)
class _Member:
    """The entry whose data is streaming."""

    entry: _Entry
    method: int  # the real method (the 0x9901 one for AES)
    emit: bool
    left: int | None  # compressed bytes still to come, where known
    descriptor: bool  # flag bit 3: a data descriptor follows the data
    zip64: bool  # a zip64 extra was present: the descriptor has 8-byte sizes
    decoder: _Decoder | None = None
    consumed: int = 0  # compressed bytes passed
    decoded: int = 0  # bytes handed out (or decoded and dropped)
    usize_check: int | None = None  # stored: the descriptor's usize = csize - this overhead
    unsupported: bool = False
    capture: bool = False  # the ODF/EPUB "mimetype" member


@dataclass(slots=True)
class _Central:
    """What the tail says."""

    eocd: bool = False
    total: int | None = None  # entries the end record states
    entries: list[_Entry] | None = None  # parsed central directory, if within the tail
    shift: int = 0  # bytes before the archive (self-extractor stub) the offsets do not count
    encrypted_cd: bool = False
    notes: list[str] | None = None


def _name_key(raw: bytes) -> tuple[int, int]:
    return (len(raw), zlib.crc32(raw))


def _decode_name(raw: bytes, flags: int) -> str:
    # 4.4.4 bit 11: UTF-8 names; otherwise IBM code page 437 (APPNOTE appendix D), as zipfile.
    if flags & _F_UTF8:
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp437")


def _short(name: str) -> str:
    return name if len(name) <= SHORT_NAME else name[:SHORT_NAME] + "..."


@dataclass(slots=True)
class _Extra:
    zip64: bool = False
    usize: int | None = None
    csize: int | None = None
    offset: int | None = None
    aes_version: int = 0
    aes_strength: int = 0
    aes_method: int | None = None
    strong_alg: str | None = None
    bad: bool = False


def _parse_extra(extra: bytes, usize: int, csize: int, offset: int | None, central: bool) -> _Extra:
    """The extra fields this reader needs (4.5): zip64 (0x0001, 4.5.3), WinZip AES (0x9901),
    strong encryption header (0x0017, 7.2.3)."""
    out = _Extra()
    p = 0
    n = len(extra)
    while p + 4 <= n:
        tag, size = struct.unpack_from("<HH", extra, p)
        p += 4
        if p + size > n:
            out.bad = True
            break
        body = extra[p : p + size]
        p += size
        if tag == 0x0001:
            out.zip64 = True
            vals = [int.from_bytes(body[i : i + 8], "little") for i in range(0, size - 7, 8)]
            if not central and len(vals) >= 2:
                # 4.5.3: the local header's zip64 extra holds both sizes.
                if usize == _U32:
                    out.usize = vals[0]
                if csize == _U32:
                    out.csize = vals[1]
                continue
            # Central directory: only the fields that are 0xFFFFFFFF, in this order.
            wanted = [usize == _U32, csize == _U32, offset == _U32]
            it = iter(vals)
            for i, want in enumerate(wanted):
                if not want:
                    continue
                v = next(it, None)
                if v is None:
                    break
                if i == 0:
                    out.usize = v
                elif i == 1:
                    out.csize = v
                else:
                    out.offset = v
        elif tag == 0x9901 and size >= 7:
            out.aes_version = int.from_bytes(body[0:2], "little")
            out.aes_strength = body[4]
            out.aes_method = int.from_bytes(body[5:7], "little")
        elif tag == 0x0017 and size >= 4:
            alg = int.from_bytes(body[2:4], "little")
            out.strong_alg = _STRONG_ALGS.get(alg, f"alg 0x{alg:04x}")
    if p != n:
        out.bad = True
    return out


def _encryption_of(flags: int, method: int, ex: _Extra) -> tuple[bool, str | None]:
    # 4.4.4: bit 0 encrypted, bit 6 strong encryption, bit 13 masked headers/encrypted CD;
    # method 99 is WinZip AES whatever bit 0 says (AE-x spec: bit 0 is always set with it).
    if flags & (_F_STRONG | _F_CD_ENCRYPTED):
        return True, "zip-strong"
    if method == _M_AES:
        return True, _AES_SCHEMES.get(ex.aes_strength, "zip-aes")
    if flags & _F_ENCRYPTED:
        return True, "zip-pkware"
    return False, None


class ZipReader:
    """Streams one ZIP object: member events as the local headers pass, and at the end a
    verdict on its encryption from the central directory in the tail.

    tail_bytes: the verdict reads the central directory, the zip64 end records and the end
    record only when they lie within the object's last `tail_bytes` bytes (TAIL_BYTES, 1 MiB);
    a central directory that starts before that is not read: the verdict then relies on the
    local headers seen (plus the end record's entry count) and says so in `detail`.

    open_members=False: no MemberData; MemberStart/MemberEnd still come, data of known size
    is skipped without decoding (bit-3 deflate is still decoded to find its end, output
    dropped)."""

    __slots__ = (
        "_after",
        "_base",
        "_buf",
        "_central",
        "_clean",
        "_doc_flags",
        "_entries",
        "_extra_raw",
        "_finished",
        "_hdr",
        "_hdr_at",
        "_in_cd",
        "_last",
        "_local_count",
        "_local_masked",
        "_m",
        "_mimetype",
        "_name_raw",
        "_open",
        "_out",
        "_scan_from",
        "_scan_quiet",
        "_skip",
        "_state",
        "_verdict",
        "anomalies",
        "tail_bytes",
    )

    def __init__(self, *, open_members: bool = True) -> None:
        self.tail_bytes = TAIL_BYTES
        self.anomalies: list[Anomaly] = []
        self._open = open_members
        self._buf = b""  # unprocessed bytes (<= BUFFER_CAP between calls)
        self._base = 0  # stream offset of _buf[0]
        self._state = _SIG
        self._skip = 0
        self._after = _SIG
        self._hdr: tuple[int, ...] = ()  # the fixed local header fields being read
        self._hdr_at = 0  # stream offset of that local header
        self._last: _Member | None = None  # the entry that ended last (for its descriptor)
        self._name_raw = b""
        self._extra_raw = b""
        self._m: _Member | None = None
        self._out: list[MemberEvent] = []
        self._entries: list[_Entry] = []
        self._local_count = 0  # every local header, also beyond LOCAL_ENTRIES_CAP
        self._local_masked = False  # a local header had bit 13
        self._in_cd = False  # the central directory or an end record has been reached
        self._scan_from = 0
        self._scan_quiet = False
        self._clean = True  # no gap, no junk between entries, not cut
        self._finished = False
        self._mimetype: bytes | None = None
        self._doc_flags: set[str] = set()
        self._central: _Central | None = None
        self._verdict: Encryption | None = None

    # ----- the streaming side -------------------------------------------------------------

    def stop_opening(self) -> None:
        """No MemberData from now on (the caller's caps): the walk and the verdict go on."""
        self._open = False

    def feed(self, data: bytes) -> list[MemberEvent]:
        if not data or self._finished:
            return []
        work = self._buf + bytes(data) if self._buf else bytes(data)
        self._run(work, final=False)
        return self._take()

    def gap(self, size: int) -> list[MemberEvent]:
        if size <= 0 or self._finished:
            return []
        if self._state == _DECODE and self._buf:
            self._flush_decode()  # the partial block before the gap is still the member's
        pending = len(self._buf)
        at = self._base + pending
        self.anomalies.append(Anomaly("zip_gap", f"{size} bytes lost at offset {at}"))
        self._clean = False
        m = self._m
        st = self._state
        if m is not None:
            if st in (_STORED, _DECODE) and m.left is not None and pending + size < m.left:
                # The entry's end is still known: skip to it and read on in step.
                rest = m.left - pending - size
                self._end_member(False, size)
                self._goto_skip(rest, _DESC if m.descriptor else _SIG)
            else:
                missing = size + pending
                if m.left is not None:
                    missing = min(missing, m.left)
                self._end_member(False, missing)
                self._start_scan(at + size, quiet=True)
        elif st == _SKIP and self._skip > size + pending:
            self._skip -= size  # only bytes the reader would skip anyway are lost
        elif st != _TRAILER and st != _SCAN:
            self._start_scan(at + size, quiet=True)
            if self._in_cd:
                self._state = _TRAILER
        self._buf = b""
        self._base = at + size
        return self._take()

    def finish(self, complete: bool) -> list[MemberEvent]:
        if self._finished:
            return []
        self._finished = True
        if not complete:
            self._clean = False
        if self._buf or self._state in (_HUNT, _DESC):
            work = self._buf
            self._buf = b""
            self._run(work, final=True)
        at = self._base + len(self._buf)
        m = self._m
        if m is not None:
            self.anomalies.append(
                Anomaly("zip_truncated", f"the data ends inside entry {m.entry.short!r}")
            )
            self._end_member(False, 0)
            self._clean = False
        elif self._state in (_LFH_FIXED, _NAME, _EXTRA) or (
            self._state == _SKIP and not self._in_cd and self._after not in (_SIG, _DESC)
        ):
            self.anomalies.append(
                Anomaly("zip_truncated", f"the data ends inside a local header at offset {at}")
            )
            self._clean = False
        elif self._state == _SCAN and not self._scan_quiet and at > self._scan_from:
            self.anomalies.append(
                Anomaly(
                    "zip_resync",
                    f"{at - self._scan_from} bytes from offset {self._scan_from} hold no "
                    "local header",
                )
            )
            self._clean = False
        self._buf = b""
        return self._take()

    def _flush_decode(self) -> None:
        """Decodes the buffered partial block (before a gap), as the end of the data would."""
        work = self._buf
        pos = 0
        while self._state == _DECODE and pos < len(work):
            new = self._h_decode(work, pos, True)
            if new == pos and self._state == _DECODE:
                break
            pos = new
        self._buf = work[pos:]
        self._base += pos

    def _take(self) -> list[MemberEvent]:
        out = self._out
        self._out = []
        return out

    def _run(self, work: bytes, final: bool) -> None:
        pos = 0
        handlers = self._handlers
        while True:
            st = self._state
            new = handlers[st](self, work, pos, final)
            if new == pos and self._state == st:
                break  # needs more bytes
            pos = new
        self._buf = work[pos:]
        self._base += pos

    # Each handler takes (work, pos, final) and returns the new position; returning the same
    # position without changing state means "need more bytes".

    def _h_sig(self, work: bytes, pos: int, final: bool) -> int:
        if len(work) - pos < 4:
            if final and len(work) > pos:
                if not self._in_cd:
                    at = self._base + pos
                    self.anomalies.append(
                        Anomaly("zip_truncated", f"the data ends inside a signature at {at}")
                    )
                    self._clean = False
                return len(work)
            return pos
        sig = work[pos : pos + 4]
        if sig == _LFH:
            self._state = _LFH_FIXED
        elif sig == _CDH:
            self._in_cd = True
            self._state = _CDH_FIXED
        elif sig == _EOCD:
            self._in_cd = True
            self._state = _EOCD_FIXED
        elif sig == _EOCD64:
            self._in_cd = True
            self._state = _EOCD64_FIXED
        elif sig == _LOC64:
            self._in_cd = True
            self._goto_skip(20, _SIG)
        elif sig in (_DIGSIG, _AXD):
            self._state = _SIZED_RECORD
        elif sig in (_DD, _SPAN0) and self._base + pos == 0:
            self._goto_skip(4, _SIG)  # 8.5.3/8.5.4: split or spanned archive marker
        else:
            self._start_scan(self._base + pos, quiet=self._in_cd)
            if self._in_cd:
                self._state = _TRAILER
        return pos

    def _h_lfh_fixed(self, work: bytes, pos: int, final: bool) -> int:
        if len(work) - pos < 30:
            return pos
        self._hdr = _LFH_FMT.unpack_from(work, pos)[1:]
        self._hdr_at = self._base + pos
        self._name_raw = b""
        self._extra_raw = b""
        self._state = _NAME
        return pos + 30

    def _h_name(self, work: bytes, pos: int, final: bool) -> int:
        nlen = self._hdr[8]
        want = min(nlen, NAME_CAP)
        if len(work) - pos < want:
            return pos
        self._name_raw = work[pos : pos + want]
        if nlen > NAME_CAP:
            self.anomalies.append(
                Anomaly("zip_name_too_long", f"a name of {nlen} bytes cut to {NAME_CAP}")
            )
            self._goto_skip(nlen - want, _EXTRA)
        else:
            self._state = _EXTRA
        return pos + want

    def _h_extra(self, work: bytes, pos: int, final: bool) -> int:
        elen = self._hdr[9]
        want = min(elen, EXTRA_CAP)
        if len(work) - pos < want:
            return pos
        self._extra_raw = work[pos : pos + want]
        pos += want
        if elen > EXTRA_CAP:
            self.anomalies.append(
                Anomaly(
                    "zip_extra_too_long",
                    f"an extra field of {elen} bytes: the first {EXTRA_CAP} read",
                )
            )
            self._goto_skip(elen - want, _SIG)
            self._begin_member(after_skip=True)
        else:
            self._begin_member(after_skip=False)
        return pos

    def _begin_member(self, after_skip: bool) -> None:
        """The whole local header is read: announce the entry and pick how its data passes."""
        _ver, flags, method, _t, _d, _crc, csize32, usize32, nlen, elen = self._hdr
        start = self._hdr_at
        raw = self._name_raw
        ex = _parse_extra(self._extra_raw, usize32, csize32, None, central=False)
        if ex.bad and elen <= EXTRA_CAP:  # a field running past our cut is not damage
            self.anomalies.append(
                Anomaly("zip_bad_extra", f"malformed extra field in local header at {start}")
            )
        csize: int | None = ex.csize if ex.csize is not None else csize32
        usize: int | None = ex.usize if ex.usize is not None else usize32
        masked = bool(flags & _F_CD_ENCRYPTED)
        if masked:
            self._local_masked = True
        descriptor = bool(flags & _F_DESCRIPTOR)
        # 4.4.8/4.4.9: with bit 3 the sizes are zero here and follow in the descriptor; Info-ZIP
        # writes real sizes with bit 3 when it can seek back, so a non-zero size is used.
        if descriptor and not csize:
            csize = None
            usize = usize or None
        encrypted, scheme = _encryption_of(flags, method, ex)
        name = _decode_name(raw, flags)
        is_dir = name.endswith("/")
        entry = _Entry(
            offset=start,
            flags=flags,
            method=method,
            encrypted=encrypted,
            scheme=scheme,
            is_dir=is_dir,
            name_key=_name_key(raw),
            short=_short(name),
            csize=csize,
            usize=usize,
            header_len=30 + nlen + elen,
            aes_version=ex.aes_version,
            strong_alg=ex.strong_alg,
        )
        self._local_count += 1
        if len(self._entries) < LOCAL_ENTRIES_CAP:
            self._entries.append(entry)
        self._note_doc_name(name)
        real = ex.aes_method if method == _M_AES and ex.aes_method is not None else method
        m = _Member(
            entry=entry,
            method=real,
            emit=self._open and not encrypted,
            left=csize,
            descriptor=descriptor,
            zip64=ex.zip64,
        )
        self._m = m
        self._out.append(
            MemberStart(
                name=name,
                size=usize,
                encrypted=encrypted,
                scheme=scheme,
                is_dir=is_dir,
                compressed_size=csize,
            )
        )
        if self._local_count == 1 and name == "mimetype" and method == _M_STORED:
            m.capture = not encrypted  # ODF 3.3 / OCF: first, stored, names the type
        if encrypted:
            if real == _M_STORED and method == _M_AES:
                m.usize_check = _AES_SALT.get(ex.aes_strength, 16) + 12  # salt+verifier+MAC
            elif real == _M_STORED and not flags & (_F_STRONG | _F_CD_ENCRYPTED):
                m.usize_check = 12  # 6.1.3: the PKWARE encryption header
            data_state = _STORED if csize is not None else _HUNT
        elif real == _M_STORED:
            m.usize_check = 0
            data_state = _STORED if csize is not None else _HUNT
        elif real in _DECODED_METHODS:
            if csize is not None and not self._open:
                data_state = _STORED  # skipped by size, not decoded
            else:
                m.decoder = _Decoder(real)
                data_state = _DECODE
        else:
            m.unsupported = True
            m.emit = False
            what = _METHOD_NAMES.get(real, "unknown")
            self.anomalies.append(
                Anomaly(
                    "zip_method_unsupported",
                    f"entry {entry.short!r}: compression method {real} ({what}) not opened",
                )
            )
            data_state = _STORED if csize is not None else _HUNT
        if after_skip:
            self._after = data_state  # the rest of the extra field is skipped first
        else:
            self._state = data_state

    def _note_doc_name(self, name: str) -> None:
        if name == "[Content_Types].xml":
            self._doc_flags.add("ct")
        elif name.startswith("word/"):
            self._doc_flags.add("word")
        elif name.startswith("xl/"):
            self._doc_flags.add("xl")
        elif name.startswith("ppt/"):
            self._doc_flags.add("ppt")
        elif name == "META-INF/MANIFEST.MF":
            self._doc_flags.add("jar")

    def _end_member(self, complete: bool, missing: int) -> None:
        m = self._m
        if m is None:
            return
        self._m = None
        self._last = m
        e = m.entry
        if complete:
            e.observed = m.consumed
            if m.unsupported:
                complete = False
            elif (
                m.emit
                and m.method != _M_STORED
                and e.usize is not None
                and not (e.flags & _F_DESCRIPTOR and not e.usize)
                and m.decoded != e.usize
            ):
                self.anomalies.append(
                    Anomaly(
                        "zip_size_mismatch",
                        f"entry {e.short!r} decodes to {m.decoded} bytes, its header says "
                        f"{e.usize}",
                    )
                )
        self._out.append(MemberEnd(complete=complete, missing=missing))

    def _after_data(self) -> int:
        m = self._m
        desc = m is not None and m.descriptor
        return _DESC if desc else _SIG

    def _emit(self, work: bytes, start: int, end: int) -> None:
        out = self._out
        for i in range(start, end, PIECE):
            out.append(MemberData(work[i : min(i + PIECE, end)]))

    def _sink(self, piece: bytes) -> None:
        m = self._m
        assert m is not None
        m.decoded += len(piece)
        if m.emit:
            self._out.append(MemberData(piece))

    def _h_stored(self, work: bytes, pos: int, final: bool) -> int:
        m = self._m
        assert m is not None and m.left is not None
        take = min(len(work) - pos, m.left)
        if take:
            if m.emit:
                self._emit(work, pos, pos + take)
                m.decoded += take
            if m.capture:
                have = self._mimetype or b""
                self._mimetype = have + work[pos : pos + min(take, MIMETYPE_CAP - len(have))]
            m.left -= take
            m.consumed += take
            pos += take
        if m.left == 0:
            nxt = self._after_data()
            self._end_member(True, 0)
            self._state = nxt
        return pos

    def _h_decode(self, work: bytes, pos: int, final: bool) -> int:
        m = self._m
        assert m is not None and m.decoder is not None
        # The decompressor gets blocks aligned to the member's compressed offset, so its calls
        # (and what a corrupt stream loses with the call that fails) do not depend on how the
        # bytes were chunked.
        avail = len(work) - pos
        need = DECODE_BLOCK - m.consumed % DECODE_BLOCK
        if m.left is not None:
            need = min(need, m.left)
        if avail < need and not final:
            return pos
        take = min(avail, need)
        if take == 0 and m.left != 0:
            return pos
        leftover: int | None = None
        if take:
            try:
                leftover = m.decoder.run(memoryview(work)[pos : pos + take], self._sink)
            except _DecodeErrors as exc:
                return self._decode_failed(pos, take, exc)
        used = take - (leftover or 0)
        m.consumed += used
        pos += used
        if m.left is not None:
            m.left -= used
        if leftover is not None:
            nxt = self._after_data()
            if m.left:
                self.anomalies.append(
                    Anomaly(
                        "zip_size_mismatch",
                        f"entry {m.entry.short!r}: the compressed stream ends {m.left} bytes "
                        "before its declared size",
                    )
                )
                rest = m.left
                self._end_member(True, 0)
                self._goto_skip(rest, nxt)
            else:
                self._end_member(True, 0)
                self._state = nxt
        elif m.left == 0:
            nxt = self._after_data()
            # LZMA without an end marker (bit 1 clear) ends by size (APPNOTE 5.8.9).
            ok = m.method == _M_LZMA and not m.entry.flags & _F_LZMA_EOS
            if not ok:
                self.anomalies.append(
                    Anomaly(
                        "zip_bad_data",
                        f"entry {m.entry.short!r}: compressed data ends before the stream's "
                        "end marker",
                    )
                )
            self._end_member(ok, 0)
            self._state = nxt
        return pos

    def _decode_failed(self, pos: int, take: int, exc: BaseException) -> int:
        m = self._m
        assert m is not None
        self.anomalies.append(
            Anomaly(
                "zip_bad_data",
                f"entry {m.entry.short!r}: corrupt compressed data ({type(exc).__name__})",
            )
        )
        self._clean = False
        if m.left is not None:
            rest = m.left
            nxt = self._after_data()
            self._end_member(False, 0)
            self._goto_skip(rest, nxt)
            return pos
        self._end_member(False, 0)
        # Without a size the entry's end is lost: look for the next local header.
        self._start_scan(self._base + pos + take, quiet=True)
        return pos + take

    def _h_hunt(self, work: bytes, pos: int, final: bool) -> int:
        """Member data of unknown length: pass it on, holding back DESCRIPTOR_LOOKBEHIND bytes,
        until a data descriptor (4.3.9) whose compressed size equals the bytes counted."""
        m = self._m
        assert m is not None
        n = len(work)
        limit = n if final else n - DESCRIPTOR_LOOKBEHIND
        if limit <= pos:
            return pos
        found_p = -1
        found_len = 0
        i = work.find(b"PK", pos)
        while 0 <= i < limit + 20:
            tag = work[i + 2 : i + 4]
            if tag == b"\x07\x08" and i < limit:
                dlen = self._descriptor_len(work, i, pos, True)
                if dlen:
                    found_p, found_len = i, dlen
                    break
            elif tag in (b"\x03\x04", b"\x01\x02"):
                for p, z64 in ((i - 20, True), (i - 12, False)):
                    if pos <= p < limit and self._descriptor_fits(work, p, pos, False, z64):
                        found_p, found_len = p, i - p
                        break
                if found_p >= 0:
                    break
            i = work.find(b"PK", i + 1)
        # At the end, the held-back bytes may be a cut descriptor: not passed on as data.
        tail_end = max(pos, n - DESCRIPTOR_LOOKBEHIND) if final else limit
        end = found_p if found_p >= 0 else tail_end
        if end > pos:
            if m.emit:
                self._emit(work, pos, end)
                m.decoded += end - pos
            m.consumed += end - pos
        if found_p < 0:
            return n if final else end
        self._end_member(True, 0)
        self._state = _SIG
        return found_p + found_len

    def _descriptor_fits(self, work: bytes, p: int, pos: int, sig: bool, z64: bool) -> bool:
        """Whether a descriptor at p states the member as it passed: its compressed size is the
        bytes counted, and for stored data its uncompressed size matches too."""
        m = self._m
        assert m is not None
        o = p + (8 if sig else 4)  # skip signature and CRC-32
        w = 8 if z64 else 4
        if o + 2 * w > len(work):
            return False
        csize = int.from_bytes(work[o : o + w], "little")
        length = m.consumed + (p - pos)
        if csize != (length if z64 else length & _U32):
            return False
        if m.usize_check is not None:
            usize = int.from_bytes(work[o + w : o + 2 * w], "little")
            want = length - m.usize_check
            if usize != (want if z64 else want & _U32):
                return False
        return True

    def _descriptor_len(self, work: bytes, p: int, pos: int, sig: bool) -> int:
        """The length of a signed descriptor at p that fits, 0 if none: 16 (32-bit sizes) or
        24 (zip64). Both may fit when the sizes are small; the one followed by a record
        signature wins, then the one the local header's zip64 extra implies."""
        m = self._m
        assert m is not None
        best = 0
        best_score = -1
        for z64 in (m.zip64, not m.zip64):
            if not self._descriptor_fits(work, p, pos, sig, z64):
                continue
            dlen = (4 if sig else 0) + (20 if z64 else 12)
            score = 2 if work[p + dlen : p + dlen + 2] == b"PK" else 0
            score += 1 if z64 == m.zip64 else 0
            if score > best_score:
                best, best_score = dlen, score
        return best

    def _h_desc(self, work: bytes, pos: int, final: bool) -> int:
        """The data descriptor after a bit-3 entry whose end is known (4.3.9): with or
        without its signature, 32- or 64-bit sizes; checked against the bytes counted."""
        n = len(work)
        if n - pos < DESCRIPTOR_LOOKBEHIND and not final:
            return pos
        last = self._last
        observed = last.entry.observed if last is not None else None
        zip64 = last is not None and last.zip64
        best = 0
        best_score = -1
        for sig in (True, False):
            if sig and work[pos : pos + 4] != _DD:
                continue
            for z64 in (False, True):
                o = pos + (8 if sig else 4)
                w = 8 if z64 else 4
                if o + 2 * w > n:
                    continue
                csize = int.from_bytes(work[o : o + w], "little")
                if observed is not None and csize != (observed if z64 else observed & _U32):
                    continue
                dlen = o + 2 * w - pos
                score = 2 if work[pos + dlen : pos + dlen + 2] == b"PK" else 0
                score += 1 if z64 == zip64 else 0
                if score > best_score:
                    best, best_score = dlen, score
        if not best:
            at = self._base + pos
            self.anomalies.append(
                Anomaly("zip_bad_descriptor", f"no fitting data descriptor at offset {at}")
            )
            self._state = _SIG
            return pos
        self._state = _SIG
        return pos + best

    def _goto_skip(self, count: int, after: int) -> None:
        self._skip = count
        self._after = after
        self._state = _SKIP

    def _h_skip(self, work: bytes, pos: int, final: bool) -> int:
        take = min(len(work) - pos, self._skip)
        self._skip -= take
        if self._skip == 0:
            self._state = self._after
        return pos + take

    def _start_scan(self, at: int, quiet: bool) -> None:
        self._state = _SCAN
        self._scan_from = at
        self._scan_quiet = quiet

    def _h_scan(self, work: bytes, pos: int, final: bool) -> int:
        """Junk: find the next plausible local header, keeping 3 bytes for a split signature."""
        n = len(work)
        i = work.find(_LFH, pos)
        while i >= 0:
            if n - i < 30:
                return i  # decide when the fixed header is here
            if self._plausible_lfh(work, i):
                at = self._base + i
                if self._state == _TRAILER:
                    self.anomalies.append(
                        Anomaly(
                            "zip_resync",
                            f"a local header at offset {at} after the end of the central "
                            "directory (concatenated archive)",
                        )
                    )
                    self._clean = False
                elif at > self._scan_from and not self._scan_quiet:
                    what = "before the first" if self._local_count == 0 else "before the"
                    self.anomalies.append(
                        Anomaly(
                            "zip_resync",
                            f"{at - self._scan_from} bytes from offset {self._scan_from} "
                            f"skipped {what} local header at {at}",
                        )
                    )
                    if self._local_count:
                        self._clean = False
                self._in_cd = False
                self._state = _SIG
                return i
            i = work.find(_LFH, i + 1)
        return max(pos, n - 3) if not final else n

    @staticmethod
    def _plausible_lfh(work: bytes, i: int) -> bool:
        # A signature inside junk: version needed is a small number (4.4.3), the method one of
        # the registered ids (4.4.5), the name not absurd.
        ver, _flags, method = struct.unpack_from("<HHH", work, i + 4)
        nlen = int.from_bytes(work[i + 26 : i + 28], "little")
        return (ver & 0xFF) <= 100 and method <= 99 and nlen > 0

    def _h_cdh_fixed(self, work: bytes, pos: int, final: bool) -> int:
        if len(work) - pos < 46:
            return pos
        nlen, elen, clen = struct.unpack_from("<HHH", work, pos + 28)
        self._goto_skip(46 + nlen + elen + clen, _SIG)
        return pos

    def _h_eocd_fixed(self, work: bytes, pos: int, final: bool) -> int:
        if len(work) - pos < 22:
            return pos
        clen = int.from_bytes(work[pos + 20 : pos + 22], "little")
        self._goto_skip(22 + clen, _TRAILER)
        self._scan_from = self._base + pos + 22 + clen
        return pos

    def _h_eocd64_fixed(self, work: bytes, pos: int, final: bool) -> int:
        if len(work) - pos < 12:
            return pos
        size = int.from_bytes(work[pos + 4 : pos + 12], "little")
        self._goto_skip(12 + size, _SIG)
        return pos

    def _h_sized_record(self, work: bytes, pos: int, final: bool) -> int:
        # 4.3.13 digital signature: 2-byte size; 4.3.11 archive extra data: 4-byte size.
        if work[pos : pos + 4] == _DIGSIG:
            if len(work) - pos < 6:
                return pos
            self._goto_skip(6 + int.from_bytes(work[pos + 4 : pos + 6], "little"), _SIG)
        else:
            if len(work) - pos < 8:
                return pos
            self._goto_skip(8 + int.from_bytes(work[pos + 4 : pos + 8], "little"), _SIG)
        return pos

    _handlers: ClassVar[tuple[Callable[[ZipReader, bytes, int, bool], int], ...]] = (
        _h_sig,
        _h_lfh_fixed,
        _h_name,
        _h_extra,
        _h_skip,
        _h_stored,
        _h_decode,
        _h_hunt,
        _h_desc,
        _h_scan,
        _h_cdh_fixed,
        _h_eocd_fixed,
        _h_eocd64_fixed,
        _h_sized_record,
        _h_scan,  # _TRAILER: a quiet scan
    )

    # ----- the document type ---------------------------------------------------------------

    def document_type(self) -> str | None:
        """ "docx"/"xlsx"/"pptx" ([Content_Types].xml plus word/, xl/ or ppt/), "odt"/"ods"/
        "odp"/"epub" (a stored first member "mimetype" naming the type), "jar"
        (META-INF/MANIFEST.MF), else None (a plain zip). From the member names seen locally and
        in the central directory once `verdict` has read it."""
        if self._mimetype is not None:
            kind = _ODF_TYPES.get(self._mimetype.strip().decode("ascii", errors="replace"))
            if kind is not None:
                return kind
        flags = self._doc_flags
        if "ct" in flags:
            for part, kind in (("word", "docx"), ("xl", "xlsx"), ("ppt", "pptx")):
                if part in flags:
                    return kind
        if "jar" in flags:
            return "jar"
        return None

    # ----- the verdict ---------------------------------------------------------------------

    def verdict(self, tail: bytes, size: int, complete: bool) -> Encryption:
        """The encryption verdict: the central directory in `tail` (the object's last
        min(size, tail_bytes) bytes) if it is there, else the local headers seen. Call after
        `finish`; a second call returns the first answer."""
        if self._verdict is not None:
            return self._verdict
        try:
            central = self._read_central(bytes(tail[-self.tail_bytes :]), size, complete)
        except (struct.error, ValueError, IndexError) as exc:  # never expected; never raise
            self.anomalies.append(Anomaly("zip_bad_central_directory", type(exc).__name__))
            central = _Central(notes=["central directory unreadable"])
        self._central = central
        self._verdict = self._judge(central)
        return self._verdict

    def _read_central(self, tail: bytes, size: int, complete: bool) -> _Central:
        c = _Central(notes=[])
        assert c.notes is not None
        tail_start = max(0, size - len(tail))
        # 4.3.16: the end record is the last 22 bytes plus its comment (<= 65535).
        lo = max(0, len(tail) - 22 - 0xFFFF)
        p = tail.rfind(_EOCD, lo)
        exact = -1
        loose = -1
        while p >= 0:
            if p + 22 <= len(tail):
                if p + 22 + int.from_bytes(tail[p + 20 : p + 22], "little") == len(tail):
                    exact = p
                    break
                if loose < 0:
                    loose = p
            p = tail.rfind(_EOCD, lo, p)
        eocd = exact
        if eocd < 0 and complete and loose >= 0:
            eocd = loose
            c.notes.append("data after the end of central directory")
        if eocd < 0:
            return c
        c.eocd = True
        _sig, _disk, _cddisk, _n_disk, total, cd_size, cd_off, _clen = _EOCD_FMT.unpack_from(
            tail, eocd
        )
        c.total = total
        cd_end = eocd
        # 4.3.15: a zip64 locator right before the end record points at the zip64 record.
        loc = eocd - 20
        if loc >= 0 and tail[loc : loc + 4] == _LOC64:
            q = tail.rfind(_EOCD64, 0, loc)
            while q >= 0:
                rsize = int.from_bytes(tail[q + 4 : q + 12], "little")
                if q + 12 + rsize == loc and q + 56 <= loc:
                    break
                q = tail.rfind(_EOCD64, 0, q)
            if q >= 0:
                f = _EOCD64_FMT.unpack_from(tail, q)
                total, cd_size, cd_off = f[7], f[8], f[9]
                c.total = total
                cd_end = q
                # 7.3.4: a version 2 record holds the central directory's encryption.
                if f[1] >= 44 + 28 and q + 56 + 28 <= loc:
                    alg = int.from_bytes(tail[q + 56 + 18 : q + 56 + 20], "little")
                    if alg:
                        c.encrypted_cd = True
            else:
                c.notes.append("zip64 end record not found")
        if c.encrypted_cd:
            c.notes.append("central directory encrypted")
            return c
        cd_start = cd_end - cd_size
        if cd_start < 0 or cd_size < 0:
            if tail_start > 0:
                c.notes.append(f"central directory beyond {self.tail_bytes} bytes not read")
            else:
                self.anomalies.append(
                    Anomaly("zip_bad_central_directory", "the central directory size is wrong")
                )
                c.notes.append("central directory unreadable")
            return c
        if tail[cd_start : cd_start + 4] != _CDH and total:
            # A size that lies: try the stated offset (no self-extractor shift).
            alt = cd_off - tail_start
            if 0 <= alt < cd_end and tail[alt : alt + 4] == _CDH:
                cd_start = alt
            else:
                self.anomalies.append(
                    Anomaly(
                        "zip_bad_central_directory",
                        "no central directory header where the end record points",
                    )
                )
                c.notes.append("central directory unreadable")
                return c
        c.shift = tail_start + cd_start - cd_off
        c.entries = self._parse_cd(tail, cd_start, cd_end, total)
        if len(c.entries) != total:
            self.anomalies.append(
                Anomaly(
                    "zip_bad_central_directory",
                    f"the end record states {total} entries, {len(c.entries)} read",
                )
            )
        return c

    def _parse_cd(self, tail: bytes, p: int, end: int, total: int) -> list[_Entry]:
        out: list[_Entry] = []
        while p + 46 <= end and len(out) < total and tail[p : p + 4] == _CDH:
            f = _CDH_FMT.unpack_from(tail, p)
            flags, method, csize32, usize32 = f[3], f[4], f[8], f[9]
            nlen, elen, clen, off32 = f[10], f[11], f[12], f[16]
            raw = tail[p + 46 : p + 46 + nlen]
            extra = tail[p + 46 + nlen : p + 46 + nlen + elen]
            ex = _parse_extra(extra, usize32, csize32, off32, central=True)
            encrypted, scheme = _encryption_of(flags, method, ex)
            name = _decode_name(raw[:NAME_CAP], flags)
            self._note_doc_name(name)
            out.append(
                _Entry(
                    offset=ex.offset if ex.offset is not None else off32,
                    flags=flags,
                    method=method,
                    encrypted=encrypted,
                    scheme=scheme,
                    is_dir=name.endswith("/"),
                    name_key=_name_key(raw[:NAME_CAP]),
                    short=_short(name),
                    csize=ex.csize if ex.csize is not None else csize32,
                    usize=ex.usize if ex.usize is not None else usize32,
                    header_len=30 + nlen,
                    aes_version=ex.aes_version,
                    strong_alg=ex.strong_alg,
                )
            )
            p += 46 + nlen + elen + clen
        return out

    def _judge(self, c: _Central) -> Encryption:
        notes = list(c.notes or [])
        locals_ = self._entries
        masked = any(e.flags & _F_CD_ENCRYPTED for e in c.entries or ())
        if c.encrypted_cd or self._local_masked or masked:
            return Encryption(
                encrypted=True,
                scheme="zip-strong",
                hides_names=True,
                members=c.total if c.total is not None else self._local_count or None,
                encrypted_members=None,
                detail="; ".join(["central directory encrypted", *notes]),
            )
        if c.entries is not None:
            entries = c.entries
            members: int | None = len(entries)
            self._compare(c, entries, notes)
        else:
            entries = locals_
            if c.total is not None:
                members = c.total
                if self._local_count != c.total:
                    notes.append(f"{self._local_count} of {c.total} entries seen locally")
            else:
                members = self._local_count
                if not c.eocd:
                    notes.append("no central directory: from local headers")
        files = [e for e in entries if not e.is_dir]
        enc = [e for e in files if e.encrypted]
        if not entries and not c.eocd:
            return Encryption(None, detail="; ".join(notes) or "no zip entry seen")
        if not entries and c.total:
            return Encryption(None, members=members, detail="; ".join(notes))
        scheme: str | None = None
        if enc:
            schemes = sorted(
                {e.scheme or "zip-pkware" for e in enc}, key=lambda s: _SCHEME_RANK.get(s, 0)
            )
            scheme = schemes[-1]
            if len(schemes) > 1:
                notes.insert(0, "schemes: " + ", ".join(schemes))
            aes = sorted({e.aes_version for e in enc if e.aes_version})
            if aes:
                notes.insert(0, "/".join(f"AE-{v}" for v in aes))
            algs = sorted({e.strong_alg for e in enc if e.strong_alg})
            if algs:
                notes.insert(0, "strong encryption " + "/".join(algs))
        return Encryption(
            encrypted=bool(enc),
            scheme=scheme,
            partial=bool(enc) and len(enc) < len(files),
            members=members,
            encrypted_members=len(enc),
            detail="; ".join(notes) or None,
        )

    def _compare(self, c: _Central, entries: list[_Entry], notes: list[str]) -> None:
        """Central directory against the local headers: disagreements, entries not seen
        locally, local entries not listed, and overlapping ranges (the overlap bomb)."""
        by_offset = {e.offset: e for e in self._entries}
        matched: set[int] = set()
        diffs: list[str] = []
        unseen = 0
        for ce in entries:
            le = by_offset.get(ce.offset + c.shift)
            if le is None:
                unseen += 1
                continue
            matched.add(le.offset)
            why = self._differences(le, ce)
            if why:
                diffs.append(f"{ce.short!r} ({', '.join(why)})")
        if diffs:
            shown = "; ".join(diffs[:MISMATCH_EXAMPLES])
            self.anomalies.append(
                Anomaly("zip_header_mismatch", f"{len(diffs)} entries disagree: {shown}")
            )
            notes.insert(0, "central directory disagrees with local headers")
        capped = self._local_count > len(self._entries)
        if unseen and not capped:
            notes.append(f"{unseen} central directory entries not seen in the stream")
            if self._clean:
                self.anomalies.append(
                    Anomaly(
                        "zip_unseen_members",
                        f"{unseen} central directory entries have no local header in the stream",
                    )
                )
        unlisted = len(self._entries) - len(matched)
        if unlisted:
            notes.append(f"{unlisted} local entries not in the central directory")
            self.anomalies.append(
                Anomaly(
                    "zip_unlisted_members",
                    f"{unlisted} local entries are not listed in the central directory",
                )
            )
        overlaps = 0
        ranges = sorted(
            (ce.offset, (by_offset.get(ce.offset + c.shift) or ce).header_len + (ce.csize or 0))
            for ce in entries
        )
        reach = -1
        for start, length in ranges:
            if start < reach:
                overlaps += 1
            reach = max(reach, start + length)
        if overlaps:
            notes.append(f"{overlaps} overlapping entries")
            self.anomalies.append(
                Anomaly(
                    "zip_overlapping_entries",
                    f"{overlaps} central directory entries overlap an earlier one's data",
                )
            )

    @staticmethod
    def _differences(le: _Entry, ce: _Entry) -> list[str]:
        why: list[str] = []
        if le.encrypted != ce.encrypted or le.scheme != ce.scheme:
            lw = le.scheme or "plain"
            cw = ce.scheme or "plain"
            why.append(f"encryption: local {lw}, central {cw}")
        if le.method != ce.method:
            why.append(f"method: local {le.method}, central {ce.method}")
        if le.name_key != ce.name_key:
            why.append(f"name: local {le.short!r}")
        local_c = le.csize if le.csize is not None else le.observed
        if local_c is not None and ce.csize is not None and local_c != ce.csize:
            why.append(f"compressed size: local {local_c}, central {ce.csize}")
        if (
            le.usize is not None
            and ce.usize is not None
            and le.usize != ce.usize
            and not (le.flags & _F_DESCRIPTOR and le.usize == 0)
        ):
            why.append(f"size: local {le.usize}, central {ce.usize}")
        return why
