"""Fingerprint stage: is a RAR archive (RAR 4.x or RAR 5.0) encrypted, and are its headers?

In: the bytes of one object already known to be RAR, in order and in any chunks (`feed`), lost
byte counts (`gap`); `finish` needs no tail (`tail_bytes = 0`).
Out: an `Encryption` verdict (schemes "rar4-aes-128", "rar-legacy", "rar5-aes-256"), plus
`Anomaly` values in `anomalies`.

Theory of operation. A RAR archive is a chain of blocks after a marker, each a header and
optionally a data area whose size the header states, so the analyser walks the stream block by
block: it buffers one header at a time (at most `MAX_HEADER_BYTES`), reads it, and then skips
the packed data by count without keeping any of it. States: SCAN (looking for the marker)
-> HEADER (buffering one block header) -> SKIP (counting past its data) -> HEADER ... -> DONE
(end-of-archive block, encrypted headers, or damage).

- Marker: "Rar!\\x1a\\x07\\x00" (RAR 4.x) or "Rar!\\x1a\\x07\\x01\\x00" (RAR 5.0). A
  self-extracting stub or other prefix may precede it: the first `MAX_SFX_SCAN` bytes are
  searched (keeping only a marker's length across chunks) and a prefix is an anomaly.
- RAR 4.x (technote.txt of RAR 4.x): HEAD_CRC(2) HEAD_TYPE(1) HEAD_FLAGS(2) HEAD_SIZE(2)
  [ADD_SIZE(4) when flags & 0x8000]; HEAD_CRC is the low 16 bits of the CRC32 of the header
  from HEAD_TYPE on. MAIN_HEAD (0x73) flag 0x0080 MHD_PASSWORD: every later header is
  encrypted (AES-128), so names and counts are hidden and nothing more can be read.
  FILE_HEAD (0x74): flag 0x0004 LHD_PASSWORD marks an encrypted member; UNP_VER below 29
  means the old RAR 1.5/2.0 cipher ("rar-legacy"), otherwise AES-128; (flags & 0xE0) == 0xE0
  is a directory; the data size is PACK_SIZE plus HIGH_PACK_SIZE << 32 under flag 0x0100.
  NEWSUB_HEAD (0x7A, comments, recovery records) shares the layout but is not a member.
  ENDARC_HEAD (0x7B) ends the walk.
- RAR 5.0 (RAR 5.0 technote): CRC32(4), header size (vint, counted from the header type on),
  header type, header flags (0x0001 extra area, 0x0002 data area), extra area size, data size,
  type-specific fields, extra area at the end of the header. Type 4 (archive encryption
  header) right after the signature: every later header is encrypted (AES-256), nothing more
  can be read. Type 2 (file header): file flags 0x0001 is a directory; an extra record of
  type 0x01 (file encryption record) marks the file encrypted. Type 3 (service header: CMT,
  QO, RR, ...) is not a member. Type 5 ends the walk.

Damage: a header CRC mismatch is an anomaly and the walk goes on while the sizes are sane;
impossible sizes, an over-long header or a gap inside a header stop the walk. The verdict is
then built from what was seen: encrypted=None only when no file header and no encryption
header was seen before the stream ended or the walk stopped.

Anomalies: rar_sfx_stub (bytes precede the marker: a self-extractor or prepended data),
rar_no_marker (no RAR marker in the first `MAX_SFX_SCAN` bytes), rar_header_crc (a block
header's CRC does not match; the walk went on), rar_header_damaged (impossible sizes or fields;
the walk stopped), rar_header_too_long (a block header over `MAX_HEADER_BYTES`; the walk
stopped), rar_gap (bytes lost inside a block header; the walk stopped).
"""

from __future__ import annotations

import struct
import zlib

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

MARKER_PREFIX = b"Rar!\x1a\x07"
RAR4_MARKER = MARKER_PREFIX + b"\x00"
RAR5_MARKER = MARKER_PREFIX + b"\x01\x00"
MAX_SFX_SCAN = 4 * 1024 * 1024  # unrar looks as far for the marker behind an SFX module
MAX_HEADER_BYTES = 256 * 1024  # one block header; real ones are a few hundred bytes
MAX_ANOMALIES = 16  # per object: a damaged archive must not flood the caller
MAX_VINT_BYTES = 10  # RAR 5.0 technote: a vint holds up to 64 bits, 7 per byte
MAX_SIZE_VINT_BYTES = 3  # RAR 5.0 technote: "header size" is at most 3 bytes (2 MB)

SCHEME_RAR4 = "rar4-aes-128"
SCHEME_LEGACY = "rar-legacy"
SCHEME_RAR5 = "rar5-aes-256"

# RAR 4.x block types and flags (technote.txt)
_R4_MAIN = 0x73
_R4_FILE = 0x74
_R4_NEWSUB = 0x7A
_R4_ENDARC = 0x7B
_R4_MIN_TYPE = 0x72
_R4_LONG_BLOCK = 0x8000  # ADD_SIZE follows HEAD_SIZE
_R4_MHD_PASSWORD = 0x0080
_R4_LHD_PASSWORD = 0x0004
_R4_LHD_LARGE = 0x0100
_R4_DIRECTORY = 0x00E0
_R4_FIXED = 7  # HEAD_CRC .. HEAD_SIZE
_R4_FILE_FIXED = 32  # up to and with ATTR
_R4_AES_VERSION = 29  # UNP_VER from which RAR encrypts with AES-128 (RAR 3.0)

# RAR 5.0 header types and flags (RAR 5.0 technote)
_R5_MAIN = 1
_R5_FILE = 2
_R5_SERVICE = 3
_R5_CRYPT = 4
_R5_END = 5
_R5_HAS_EXTRA = 0x0001
_R5_HAS_DATA = 0x0002
_R5_FILE_DIRECTORY = 0x0001
_R5_EXTRA_CRYPT = 0x01

_SCAN = 0
_HEADER = 1
_SKIP = 2
_DONE = 3

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_R4_HEAD = struct.Struct("<HBHH")


class _Damaged(Exception):
    """A header whose fields cannot be right; the message says which."""


def _vint(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    """RAR 5.0 vint: 7 bits per byte, least significant first, high bit = more follows."""
    value = 0
    shift = 0
    limit = min(end, len(buf), pos + MAX_VINT_BYTES)
    while pos < limit:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Damaged("vint runs past its field")


class RarAnalyser:
    """One RAR object, walked block by block as it streams."""

    __slots__ = (
        "_buf",
        "_carry",
        "_crc_errors",
        "_crypt",
        "_directories",
        "_encrypted",
        "_ended",
        "_file_headers",
        "_main_seen",
        "_members",
        "_need",
        "_offset",
        "_schemes",
        "_skip",
        "_state",
        "_stopped",
        "_version",
        "anomalies",
        "tail_bytes",
    )

    def __init__(self) -> None:
        self.tail_bytes: int = 0
        self.anomalies: list[Anomaly] = []
        self._state = _SCAN
        self._offset = 0  # object bytes consumed so far (fed and lost)
        self._carry = b""  # SCAN: the end of the last chunk, where a marker may begin
        self._version = 0
        self._buf = bytearray()  # HEADER: the block header so far
        self._need = 0  # HEADER: how many bytes `_buf` must hold before it is read again
        self._skip = 0  # SKIP: data bytes still to pass
        self._main_seen = False
        self._crypt = False
        self._ended = False
        self._stopped: str | None = None
        self._file_headers = 0
        self._directories = 0
        self._members = 0
        self._encrypted = 0
        self._schemes: list[str] = []
        self._crc_errors = 0

    # -- input ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        state = self._state
        self._offset += len(data)
        if state == _SKIP and self._skip >= len(data):
            self._skip -= len(data)  # the common case: a chunk of packed data
            return
        if state == _DONE or not data:
            return
        if state == _SCAN:
            self._scan(data)
        else:
            self._walk(memoryview(data))

    def gap(self, size: int) -> None:
        if size <= 0:
            return
        self._offset += size
        state = self._state
        if state == _SCAN:
            self._carry = b""  # a marker cannot span the hole
        elif state == _SKIP and size <= self._skip:
            self._skip -= size  # lost packed data does not matter here
        elif state != _DONE:
            self._stop("rar_gap", f"{size} bytes lost inside a block header")

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        if not self._version:
            if self._offset >= MAX_SFX_SCAN:
                return Encryption(None, detail="no RAR marker")
            return Encryption(None, detail="no RAR marker (object too short)")
        scheme = self._schemes[0] if self._schemes else None
        if self._crypt:
            return Encryption(
                True,
                SCHEME_RAR5 if self._version == 5 else SCHEME_RAR4,
                hides_names=True,
                detail=self._detail("headers encrypted", complete),
            )
        cut = self._cut(complete)
        if self._file_headers == 0 and (cut or self._stopped or not self._main_seen):
            return Encryption(None, detail=self._detail("no file header seen", complete))
        encrypted = self._encrypted
        return Encryption(
            encrypted > 0,
            scheme,
            partial=0 < encrypted < self._members,
            members=self._members,
            encrypted_members=encrypted,
            detail=self._detail(None, complete),
        )

    # -- verdict helpers -----------------------------------------------------------------

    def _cut(self, complete: bool) -> bool:
        if self._ended:
            return False
        return (
            not complete
            or (self._state == _SKIP and self._skip > 0)
            or (self._state == _HEADER and len(self._buf) > 0)
        )

    def _detail(self, lead: str | None, complete: bool) -> str | None:
        parts = [lead] if lead else []
        if self._version:
            parts.append(f"RAR {self._version}")
        if len(self._schemes) > 1:
            parts.append("schemes " + ", ".join(self._schemes))
        if self._stopped:
            parts.append(f"walk stopped: {self._stopped}")
        elif self._cut(complete):
            parts.append("archive cut off: counts are what was seen")
        elif not self._ended and not self._crypt:
            parts.append("no end-of-archive block")
        if self._crc_errors:
            parts.append(f"{self._crc_errors} header CRC errors")
        return "; ".join(parts) or None

    def _note(self, kind: str, detail: str) -> None:
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies.append(Anomaly(kind, detail))

    def _stop(self, kind: str, reason: str) -> None:
        self._note(kind, reason)
        self._stopped = reason
        self._state = _DONE
        self._buf = bytearray()
        self._carry = b""

    # -- marker --------------------------------------------------------------------------

    def _scan(self, data: bytes) -> None:
        window = self._carry + data if self._carry else data
        base = self._offset - len(window)  # object offset of window[0]
        start = 0
        while True:
            found = window.find(MARKER_PREFIX, start)
            if found < 0 or base + found >= MAX_SFX_SCAN:
                break
            after = found + len(MARKER_PREFIX)
            if after >= len(window) or (window[after] == 1 and after + 1 >= len(window)):
                self._carry = window[found:]  # the version byte(s) are still to come
                return
            if window[after] == 0:
                marker_end, version = after + 1, 4
            elif window[after] == 1 and window[after + 1] == 0:
                marker_end, version = after + 2, 5
            else:
                start = found + 1
                continue
            self._version = version
            if base + found:
                self._note("rar_sfx_stub", f"{base + found} bytes before the RAR marker")
            self._carry = b""
            self._begin_header()
            self._walk(memoryview(window)[marker_end:])
            return
        if self._offset >= MAX_SFX_SCAN:
            self._stop("rar_no_marker", f"no RAR marker in the first {MAX_SFX_SCAN} bytes")
            return
        self._carry = window[-(len(RAR5_MARKER) - 1) :]

    # -- block walk ----------------------------------------------------------------------

    def _begin_header(self) -> None:
        self._state = _HEADER
        self._buf = bytearray()
        self._need = _R4_FIXED if self._version == 4 else 5

    def _walk(self, view: memoryview) -> None:
        pos = 0
        end = len(view)
        while pos < end:
            state = self._state
            if state == _SKIP:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                if not self._skip:
                    self._begin_header()
            elif state == _HEADER:
                buf = self._buf
                take = min(self._need - len(buf), end - pos)
                buf += view[pos : pos + take]
                pos += take
                if len(buf) < self._need:
                    return
                try:
                    if self._version == 4:
                        self._rar4_header()
                    else:
                        self._rar5_header()
                except _Damaged as exc:
                    self._stop("rar_header_damaged", str(exc))
            else:
                return

    def _after_header(self, data_size: int) -> None:
        if self._state == _DONE:
            return
        if data_size:
            self._state = _SKIP
            self._skip = data_size
            self._buf = bytearray()
        else:
            self._begin_header()

    def _header_complete(self, total: int) -> bool:
        """Whether `_buf` holds the whole `total`-byte header; else asks for the rest."""
        if total > MAX_HEADER_BYTES:
            self._stop("rar_header_too_long", f"block header of {total} bytes")
            return False
        if len(self._buf) < total:
            self._need = total
            return False
        return True

    def _crc_mismatch(self, what: str) -> None:
        self._crc_errors += 1
        self._note("rar_header_crc", f"{what} header CRC mismatch")

    def _count_file(self, directory: bool, encrypted: bool, scheme: str) -> None:
        self._file_headers += 1
        if directory:
            self._directories += 1
            return
        self._members += 1
        if encrypted:
            self._encrypted += 1
            if scheme not in self._schemes:
                self._schemes.append(scheme)

    # -- RAR 4.x -------------------------------------------------------------------------

    def _rar4_header(self) -> None:
        buf = self._buf
        crc, kind, flags, head_size = _R4_HEAD.unpack_from(buf)
        if head_size < _R4_FIXED or (flags & _R4_LONG_BLOCK and head_size < _R4_FIXED + 4):
            raise _Damaged(f"block header size {head_size} too small")
        if kind in (_R4_FILE, _R4_NEWSUB) and head_size < _R4_FILE_FIXED:
            raise _Damaged(f"file header size {head_size} too small")
        if not self._header_complete(head_size):
            return
        good = zlib.crc32(memoryview(buf)[2:head_size]) & 0xFFFF == crc
        if not good:
            self._crc_mismatch(f"block {kind:#04x}")
            if kind < _R4_MIN_TYPE or kind > _R4_ENDARC:
                raise _Damaged(f"unknown block type {kind:#04x} with a bad CRC")
        # ADD_SIZE; a file header's PACK_SIZE sits in the same place and is read even where a
        # writer forgot the 0x8000 flag (unrar does the same)
        long_block = flags & _R4_LONG_BLOCK or kind in (_R4_FILE, _R4_NEWSUB)
        data_size = _U32.unpack_from(buf, 7)[0] if long_block else 0
        if kind == _R4_MAIN:
            self._main_seen = True
            if flags & _R4_MHD_PASSWORD:
                self._crypt = True
                self._finish_walk()
                return
        elif kind in (_R4_FILE, _R4_NEWSUB):
            if flags & _R4_LHD_LARGE:
                if head_size < _R4_FILE_FIXED + 8:
                    raise _Damaged("large file header too small")
                data_size |= _U32.unpack_from(buf, _R4_FILE_FIXED)[0] << 32
            if kind == _R4_FILE:
                legacy = buf[24] < _R4_AES_VERSION  # UNP_VER
                self._count_file(
                    flags & _R4_DIRECTORY == _R4_DIRECTORY,
                    bool(flags & _R4_LHD_PASSWORD),
                    SCHEME_LEGACY if legacy else SCHEME_RAR4,
                )
        elif kind == _R4_ENDARC:
            self._ended = True
            self._finish_walk()
            return
        self._after_header(data_size)

    def _finish_walk(self) -> None:
        self._state = _DONE
        self._buf = bytearray()

    # -- RAR 5.0 -------------------------------------------------------------------------

    def _rar5_header(self) -> None:
        buf = self._buf
        try:
            size, body = _vint(buf, 4, 4 + MAX_SIZE_VINT_BYTES)
        except _Damaged:
            if len(buf) < 4 + MAX_SIZE_VINT_BYTES:
                self._need = len(buf) + 1  # the size vint goes on
                return
            raise _Damaged("header size field too long") from None
        if size == 0:
            raise _Damaged("header size 0")
        total = body + size
        if not self._header_complete(total):
            return
        if zlib.crc32(memoryview(buf)[4:total]) != _U32.unpack_from(buf, 0)[0]:
            self._crc_mismatch("block")
        kind, pos = _vint(buf, body, total)
        flags, pos = _vint(buf, pos, total)
        extra_size = data_size = 0
        if flags & _R5_HAS_EXTRA:
            extra_size, pos = _vint(buf, pos, total)
        if flags & _R5_HAS_DATA:
            data_size, pos = _vint(buf, pos, total)
        if extra_size > total - pos:
            raise _Damaged("extra area larger than its header")
        if kind == _R5_CRYPT:
            # only meaningful right after the signature, but wherever it is, what follows is
            # encrypted and cannot be read
            self._crypt = True
            self._finish_walk()
            return
        if kind == _R5_MAIN:
            self._main_seen = True
        elif kind == _R5_FILE:
            file_flags, _ = _vint(buf, pos, total - extra_size)
            encrypted = self._rar5_has_crypt_record(total - extra_size, total)
            self._count_file(bool(file_flags & _R5_FILE_DIRECTORY), encrypted, SCHEME_RAR5)
        elif kind == _R5_END:
            self._ended = True
            self._finish_walk()
            return
        # service headers (3) and unknown types: skipped by their data size
        self._after_header(data_size)

    def _rar5_has_crypt_record(self, pos: int, end: int) -> bool:
        buf = self._buf
        while pos < end:
            record_size, start = _vint(buf, pos, end)
            if record_size == 0 or record_size > end - start:
                raise _Damaged("extra record runs past its area")
            record_type, _ = _vint(buf, start, start + record_size)
            if record_type == _R5_EXTRA_CRYPT:
                return True
            pos = start + record_size
        return False
