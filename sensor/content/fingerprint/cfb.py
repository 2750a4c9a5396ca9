"""Fingerprint stage: Compound File Binary objects (MS-CFB): which Office or Outlook document
they hold, and whether it is encrypted.

In: the bytes of one object the identifier matched by the CFB magic `D0 CF 11 E0 A1 B1 1A E1`,
fed in order in chunks of any size.
Out: an `Encryption` verdict and `document_type()` ("office-encrypted", "doc", "xls", "ppt",
"msg", "msi" or None).

- A password-protected OOXML file (docx, xlsx, pptx) is a CFB with the streams
  `EncryptionInfo` and `EncryptedPackage` (MS-OFFCRYPTO 2.3.4.4). The first four bytes of
  EncryptionInfo are its version (2.3.4.10 agile 4.4; 2.3.4.5 standard 2.2/3.2/4.2;
  2.3.4.6 extensible 3.3/4.3) and name the scheme.
- A legacy Word file is encrypted when its FibBase sets fEncrypted (MS-DOC 2.5.2, the 0x0100
  bit of the flags at offset 0x0A of the WordDocument stream; fObfuscated 0x8000 means XOR);
  a legacy Excel file when a FilePass record (0x002F) follows the globals BOF record
  (MS-XLS 2.4.117; wEncryptionType 0 = XOR, 1 = RC4).

Theory of operation (streaming, sectors pass once, in file order): the directory (MS-CFB 2.6)
usually sits after the streams it describes, and following its sector chain needs the FAT,
which may also come later. So instead of walking chains the reader looks at every 128-byte
aligned slot for the few directory entries that matter, by their UTF-16LE names (`bytes.find`
with the name's NUL terminator, then the entry's own name length, object type and colour must
agree); an entry always starts at a multiple of 128 of the file offset (sectors are 512 or 4096
bytes and hold whole entries). The stream contents that matter (EncryptionInfo's version, the
FibBase, the BOF/FilePass records) are first bytes of a stream, which start on a sector (512)
or mini sector (64) boundary: every 64-byte aligned block whose first word looks like one of
them is remembered (bounded by `MAX_CANDIDATES`), with numpy over the whole chunk. At the end,
an entry's start sector gives the file offset of its stream (regular streams: (sector + 1) <<
sector shift; mini streams: through the root entry's chain in the FAT, the FAT sectors listed
in the header's DIFAT being kept as they pass, at most `FAT_CAP` bytes).
"""

from __future__ import annotations

import struct

import numpy as np

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADER_SIZE = 512
# Directory entries are 128 bytes (MS-CFB 2.6.1); everything is read in 128-byte blocks.
_ENTRY = 128
# Stream starts that matter are on mini-sector boundaries (64 bytes, MS-CFB 2.2) at least.
_BLOCK = 64
# Bytes kept of each remembered block (FibBase flags at 0x0A; BOF 20 bytes + FilePass 6).
_BLOCK_KEPT = 32
# Blocks remembered whose first word looks like a stream start that matters.
MAX_CANDIDATES = 4096
# FAT bytes kept (only the header's 109 DIFAT entries are followed: at most 109 sectors).
FAT_CAP = 109 * 4096
# Name hits examined per object (a flood of decoy names in stream data stops the search).
MAX_NAME_HITS = 4096
# MS-CFB 2.1: sector numbers from here up are markers, not sectors.
_MAXREGSECT = 0xFFFFFFFA
_HEADER_DIFAT = 109

_ENCRYPTION_INFO = "EncryptionInfo"
_ENCRYPTED_PACKAGE = "EncryptedPackage"
_ROOT = "Root Entry"
_WORD = "WordDocument"
_WORKBOOK = "Workbook"
_BOOK = "Book"
_POWERPOINT = "PowerPoint Document"
_ENCRYPTED_SUMMARY = "EncryptedSummary"
_MSG_PREFIX = "__substg1.0_"
_EXACT_NAMES = (
    _ROOT,
    _ENCRYPTION_INFO,
    _ENCRYPTED_PACKAGE,
    _WORD,
    _WORKBOOK,
    _BOOK,
    _POWERPOINT,
    _ENCRYPTED_SUMMARY,
)
# name -> the UTF-16LE bytes searched for (NUL terminator included for exact names).
_NEEDLES = {name: (name + "\0").encode("utf-16-le") for name in _EXACT_NAMES}
_NEEDLES[_MSG_PREFIX] = _MSG_PREFIX.encode("utf-16-le")

# EncryptionInfo versions (major, minor) as a little-endian u32 (minor << 16 | major).
_VERSIONS = {
    (4, 4): "office-agile",
    (2, 2): "office-standard",
    (3, 2): "office-standard",
    (4, 2): "office-standard",
    (3, 3): "office-extensible",
    (4, 3): "office-extensible",
}
_VERSION_WORDS = np.array([(mi << 16) | ma for ma, mi in _VERSIONS], dtype=np.uint32)
_AGILE_START = b"\x04\x00\x04\x00\x40\x00\x00\x00"  # version 4.4 and reserved 0x40 (2.3.4.10)
_FIB_IDENT = 0xA5EC  # MS-DOC 2.5.2 wIdent
_FIB_ENCRYPTED = 0x0100
_FIB_OBFUSCATED = 0x8000
_BOF_WORD = 0x00100809  # BIFF8 BOF record: type 0x0809, size 16 (MS-XLS 2.4.21)
_FILEPASS = 0x002F
# Root entry CLSIDs of Windows Installer databases, patches and transforms
# ({000C1084-...}, {000C1086-...}, {000C1082-...}-0000-0000-C000-000000000046).
_MSI_CLSIDS = frozenset(
    bytes([b, 0x10, 0x0C, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46]) for b in (0x84, 0x86, 0x82)
)


class _Entry:
    __slots__ = ("clsid", "kind", "size", "start")

    def __init__(self, kind: int, start: int, size: int, clsid: bytes) -> None:
        self.kind = kind
        self.start = start
        self.size = size
        self.clsid = clsid


class CfbAnalyser:
    """Analyser for Compound File Binary objects (see the module docstring)."""

    __slots__ = (
        "_candidates",
        "_carry",
        "_cutoff",
        "_entries",
        "_fat",
        "_fat_got",
        "_fat_next",
        "_fat_wanted",
        "_gapped",
        "_header",
        "_header_ok",
        "_mini_shift",
        "_misalign",
        "_name_hits",
        "_pos",
        "_shift",
        "_version_major",
        "anomalies",
        "tail_bytes",
    )

    def __init__(self) -> None:
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._carry = b""  # fewer than 128 bytes waiting for their block
        self._pos = 0  # file offset of the first byte of _carry (or of the next byte)
        self._misalign = 0  # bytes to drop after a gap to get back on a 128-byte boundary
        self._gapped = False
        self._header = bytearray()
        self._header_ok: bool | None = None
        self._shift = 9
        self._mini_shift = 6
        self._cutoff = 4096
        self._version_major = 3
        self._fat = bytearray()
        self._fat_wanted: list[tuple[int, int]] = []  # (file offset, FAT sector index), sorted
        self._fat_next = 0
        self._fat_got: list[int] = []
        self._candidates: dict[int, bytes] = {}
        self._entries: dict[str, _Entry] = {}
        self._name_hits = 0

    # -- streaming --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._header_ok is False or not data:
            return
        if self._misalign:
            drop = min(self._misalign, len(data))
            self._misalign -= drop
            self._pos += drop
            data = data[drop:]
            if not data:
                return
        if self._carry:
            data = self._carry + data
        whole = len(data) - len(data) % _ENTRY
        if whole:
            self._region(data[:whole] if whole < len(data) else data, self._pos)
            self._pos += whole
        self._carry = data[whole:]

    def gap(self, size: int) -> None:
        self._gapped = True
        self._pos += len(self._carry) + size
        self._carry = b""
        self._misalign = -self._pos % _ENTRY

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        if self._header_ok is None and not self._gapped and self._carry:
            self._take_header(self._carry, self._pos)
        if not self._header_ok:
            return Encryption(None)
        entries = self._entries
        info = entries.get(_ENCRYPTION_INFO)
        package = entries.get(_ENCRYPTED_PACKAGE)
        if info is not None or package is not None:
            return self._ooxml_verdict(info, package)
        if _ENCRYPTED_SUMMARY in entries:
            return Encryption(True, scheme="office-rc4", detail="EncryptedSummary stream")
        legacy = self._legacy_verdict()
        if legacy is not None:
            return legacy
        if complete and not self._gapped and self._name_hits <= MAX_NAME_HITS:
            return Encryption(False)
        return Encryption(None)

    def document_type(self) -> str | None:
        """What the compound file holds, from the directory entries seen."""
        entries = self._entries
        if _ENCRYPTION_INFO in entries or _ENCRYPTED_PACKAGE in entries:
            return "office-encrypted"
        if _WORD in entries:
            return "doc"
        if _WORKBOOK in entries or _BOOK in entries:
            return "xls"
        if _POWERPOINT in entries:
            return "ppt"
        if _MSG_PREFIX in entries:
            return "msg"
        root = entries.get(_ROOT)
        if root is not None and root.clsid in _MSI_CLSIDS:
            return "msi"
        return None

    # -- reading ----------------------------------------------------------------------------

    def _region(self, region: bytes, base: int) -> None:
        """Blocks [base, base + len(region)), base and length multiples of 128."""
        if base < _HEADER_SIZE and self._header_ok is None:
            self._take_header(region, base)
            if self._header_ok is False:
                return
        if not self._header_ok:
            return
        if self._fat_next < len(self._fat_wanted):
            self._take_fat(region, base)
        self._take_candidates(region, base)
        if self._name_hits <= MAX_NAME_HITS:
            self._take_entries(region, base)

    def _take_header(self, data: bytes, base: int) -> None:
        if base != len(self._header):
            self._header_ok = False  # the header was lost in a gap
            return
        self._header += data[: _HEADER_SIZE - base]
        if len(self._header) < _HEADER_SIZE:
            return
        header = bytes(self._header)
        self._header = bytearray()
        if header[:8] != _SIGNATURE:
            self._bad_header("signature")
            return
        major, byte_order, shift, mini_shift = struct.unpack_from("<HHHH", header, 0x1A)
        # MS-CFB 2.2: version 3 uses 512-byte sectors (shift 9), version 4 4096 (shift 12).
        if byte_order != 0xFFFE or shift not in (9, 12) or mini_shift != 6:
            self._bad_header(f"byte order {byte_order:#x}, sector shift {shift}")
            return
        self._header_ok = True
        self._version_major = major
        self._shift = shift
        self._mini_shift = mini_shift
        n_fat = struct.unpack_from("<I", header, 0x2C)[0]
        self._cutoff = struct.unpack_from("<I", header, 0x38)[0]
        if n_fat > _HEADER_DIFAT:
            self.anomalies.append(
                Anomaly(
                    "cfb_fat_cap",
                    f"{n_fat} FAT sectors; only the {_HEADER_DIFAT} the header lists are kept",
                )
            )
        sector_size = 1 << shift
        count = min(n_fat, _HEADER_DIFAT, FAT_CAP // sector_size)
        difat = struct.unpack_from(f"<{count}I", header, 0x4C)
        self._fat = bytearray(count * sector_size)
        self._fat_got = [0] * count
        self._fat_wanted = sorted(
            ((sector + 1) << shift, index)
            for index, sector in enumerate(difat)
            if sector < _MAXREGSECT
        )

    def _bad_header(self, why: str) -> None:
        self._header_ok = False
        self.anomalies.append(Anomaly("cfb_bad_header", why))

    def _take_fat(self, region: bytes, base: int) -> None:
        end = base + len(region)
        size = 1 << self._shift
        wanted = self._fat_wanted
        i = self._fat_next
        while i < len(wanted):
            offset, index = wanted[i]
            if offset >= end:
                break
            lo = max(offset, base)
            hi = min(offset + size, end)
            if hi > lo:
                at = index * size + lo - offset
                self._fat[at : at + hi - lo] = region[lo - base : hi - base]
                self._fat_got[index] += hi - lo
            if offset + size > end:
                break
            i += 1
        self._fat_next = i

    def _take_candidates(self, region: bytes, base: int) -> None:
        if len(self._candidates) >= MAX_CANDIDATES:
            return
        words = np.frombuffer(region, dtype="<u4")[:: _BLOCK // 4]
        hits = np.isin(words, _VERSION_WORDS) | (words == _BOF_WORD)
        hits |= (words & 0xFFFF) == _FIB_IDENT
        for index in np.flatnonzero(hits).tolist():
            offset = base + index * _BLOCK
            if offset < _HEADER_SIZE:
                continue
            if len(self._candidates) >= MAX_CANDIDATES:
                self.anomalies.append(
                    Anomaly("cfb_candidate_cap", f"more than {MAX_CANDIDATES} stream-start blocks")
                )
                return
            at = index * _BLOCK
            self._candidates[offset] = region[at : at + _BLOCK_KEPT]

    def _take_entries(self, region: bytes, base: int) -> None:
        for name, needle in _NEEDLES.items():
            if name in self._entries:
                continue
            at = region.find(needle)
            while at >= 0:
                self._name_hits += 1
                if self._name_hits > MAX_NAME_HITS:
                    self.anomalies.append(
                        Anomaly("cfb_name_cap", f"more than {MAX_NAME_HITS} directory name hits")
                    )
                    return
                if (base + at) % _ENTRY == 0:
                    entry = self._entry(region[at : at + _ENTRY], len(needle), name == _MSG_PREFIX)
                    if entry is not None and (entry.kind == 5) == (name == _ROOT):
                        self._entries[name] = entry
                        break
                at = region.find(needle, at + 1)

    def _entry(self, raw: bytes, needle_length: int, prefix: bool) -> _Entry | None:
        """A directory entry (MS-CFB 2.6.1) whose name was matched, if its fields agree."""
        name_length, kind, colour = struct.unpack_from("<HBB", raw, 0x40)
        if prefix:
            if not needle_length + 2 <= name_length <= 64 or name_length % 2:
                return None
        elif name_length != needle_length:
            return None
        if kind not in (1, 2, 5) or colour > 1:
            return None
        start, size = struct.unpack_from("<IQ", raw, 0x74)
        if self._version_major == 3:
            size &= 0xFFFFFFFF  # MS-CFB 2.6.3: the high part may be garbage in version 3
        return _Entry(kind, start, size, bytes(raw[0x50:0x60]))

    # -- locating stream starts -------------------------------------------------------------

    def _fat_entry(self, sector: int) -> int | None:
        size = 1 << self._shift
        index, at = divmod(sector * 4, size)
        if index >= len(self._fat_got) or self._fat_got[index] < size:
            return None
        return int(struct.unpack_from("<I", self._fat, index * size + at)[0])

    def _stream_start(self, entry: _Entry) -> bytes | None:
        """The remembered first bytes of the stream `entry` describes, if found."""
        if entry.start >= _MAXREGSECT:
            return None
        size = 1 << self._shift
        if entry.size >= self._cutoff:
            return self._candidates.get((entry.start + 1) << self._shift)
        root = self._entries.get(_ROOT)
        if root is None or root.start >= _MAXREGSECT:
            return None
        # A small stream lives in the mini stream, whose sectors are the root entry's chain.
        offset = entry.start << self._mini_shift
        if offset >= root.size:
            return None
        sector = root.start
        for _ in range(offset >> self._shift):
            following = self._fat_entry(sector)
            if following is None or following >= _MAXREGSECT:
                return None
            sector = following
        return self._candidates.get(((sector + 1) << self._shift) + (offset & (size - 1)))

    def _ooxml_verdict(self, info: _Entry | None, package: _Entry | None) -> Encryption:
        if info is None or package is None:
            missing = _ENCRYPTION_INFO if info is None else _ENCRYPTED_PACKAGE
            detail = f"no {missing} entry"
            return Encryption(True, scheme=None, detail=detail)
        first = self._stream_start(info)
        if first is not None and len(first) >= 4:
            major, minor = struct.unpack_from("<HH", first)
            scheme = _VERSIONS.get((major, minor))
            if scheme is not None:
                return Encryption(True, scheme=scheme, detail=f"EncryptionInfo {major}.{minor}")
        if any(block.startswith(_AGILE_START) for block in self._candidates.values()):
            # The stream was not located, but an agile EncryptionInfo header passed by.
            return Encryption(True, scheme="office-agile", detail="EncryptionInfo 4.4 (by content)")
        return Encryption(True, scheme=None, detail="EncryptionInfo version unknown")

    def _legacy_verdict(self) -> Encryption | None:
        word = self._entries.get(_WORD)
        if word is not None:
            fib = self._stream_start(word)
            if fib is not None and len(fib) >= 12:
                ident, flags = struct.unpack_from("<H8xH", fib)
                if ident == _FIB_IDENT and flags & _FIB_ENCRYPTED:
                    xor = bool(flags & _FIB_OBFUSCATED)
                    return Encryption(
                        True,
                        scheme="office-xor" if xor else "office-rc4",
                        detail="WordDocument fEncrypted",
                    )
        book = self._entries.get(_WORKBOOK) or self._entries.get(_BOOK)
        if book is not None:
            bof = self._stream_start(book)
            if bof is not None and len(bof) >= 26:
                word0, record, _length, kind = struct.unpack_from("<I16xHHH", bof)
                if word0 == _BOF_WORD and record == _FILEPASS:
                    return Encryption(
                        True,
                        scheme="office-xor" if kind == 0 else "office-rc4",
                        detail="Workbook FilePass",
                    )
        return None
