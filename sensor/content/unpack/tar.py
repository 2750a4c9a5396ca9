"""Fingerprint stage, container opener for tar archives: POSIX ustar and pax (POSIX.1-2001),
GNU tar (long names, base-256 sizes, old sparse files) and old V7 tar.

In: the bytes of one tar archive (an uploaded .tar, or the member of a .tar.gz opened by
sensor/content/unpack/streams.py), in arbitrary chunks, plus gaps, through the `Opener`
protocol of sensor/content/fingerprint/base.py.
Out: `MemberStart`/`MemberData`/`MemberEnd` for regular files (and `MemberStart(is_dir=True)`
+ `MemberEnd` for directories), data streamed out as it arrives in pieces of at most
`CHUNK` bytes and never buffered; damage as `Anomaly` values in `anomalies` (kinds `tar_*`).

Theory of operation. A tar archive is a sequence of 512-byte header blocks, each followed by
its data padded to a multiple of 512 (POSIX.1-2017 pax, "ustar Interchange Format"); two
zero blocks end it. Only the header block (512 bytes) and the records that name the next
member are ever held: pax extended headers ('x' local, 'g' global; records "len key=value\\n")
and GNU long names ('L') and long link names ('K'), each up to `MAX_EXT_RECORD` bytes.
They apply to the next real header, the local pax `path` first, then the GNU long name, then
the global pax `path`, then the header's own name (with the ustar `prefix`). A header whose
checksum fails both the unsigned and the signed sum (old tars summed signed chars) stops the
opener (`tar_bad_checksum`): nothing after it can be trusted to be a header.

Entries: regular files ('0', NUL, '7', and unknown types, which tar extracts as regular files)
are members with data; directories ('5', GNU dumpdir 'D', a V7 NUL entry whose name ends in
'/') are members without data; hard and symbolic links, devices and FIFOs are not members (no
data follows them, as tarfile and GNU tar read them). GNU old sparse files ('S') are members
whose data is the stored fragments, in order, without the holes (`tar_sparse`); pax sparse
files (GNU.sparse.* keys) likewise.

Gaps: inside a member's data or padding the opener stays in step (sizes are known): the member
ends incomplete with `missing` set. A gap over a header loses the walk; the opener then looks
at every following 512-byte block for a header with a good checksum and ustar magic and goes
on from there (`tar_resync`).
"""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import MemberData, MemberEnd, MemberEvent, MemberStart

BLOCK = 512  # header block and data padding unit
CHUNK = 256 * 1024  # max bytes in one MemberData
MAX_EXT_RECORD = 64 * 1024  # pax / GNU long name data kept -> tar_header_too_long

_ZERO_BLOCK = bytes(BLOCK)
_HIGH_BYTES = bytes(range(128, 256))
_OCTAL = b"01234567"

_REGULAR = frozenset(b"0\x007")  # type flags as ints
_DIRECTORY = ord("5")
_DUMPDIR = ord("D")  # GNU incremental: a directory whose data lists its entries
_NO_DATA = frozenset(b"123456")  # links, devices, directories, FIFOs: no data blocks follow
_PAX_LOCAL = frozenset(b"xX")  # 'X': Solaris's name for 'x', as tarfile reads it
_PAX_GLOBAL = ord("g")
_LONG_NAME = ord("L")
_LONG_LINK = ord("K")
_SPARSE = ord("S")
_VOLUME = ord("V")

# States
_HEADER, _DATA, _SKIP, _PAD, _EXT, _SPARSE_EXT, _END, _STOPPED, _RESYNC = range(9)


def _parse_number(field: bytes) -> int | None:
    """A numeric header field: octal text (leading spaces, ended by NUL or space) or GNU
    base-256 (first byte's top bit set, next bit the sign). None: not a number."""
    if field and field[0] & 0x80:
        value = int.from_bytes(bytes([field[0] & 0x3F]) + field[1:], "big")
        if field[0] & 0x40:  # negative (two's complement over the field)
            value -= 1 << (8 * len(field) - 2)
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if text.translate(None, _OCTAL):
        return None
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    """POSIX: the sum of the header's bytes with the chksum field taken as spaces. Old tars
    (Sun, early GNU) summed signed chars; accept either (as tarfile and GNU tar do)."""
    stored = _parse_number(block[148:156])
    if stored is None:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    high = BLOCK - len(block.translate(None, _HIGH_BYTES))
    high -= 8 - len(block[148:156].translate(None, _HIGH_BYTES))  # not counted: as spaces
    return stored == unsigned - 256 * high


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _field(block: bytes, start: int, size: int) -> bytes:
    return block[start : start + size].split(b"\0", 1)[0]


class TarOpener:
    """Streams the members of a tar archive (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_ext_type",
        "_global",
        "_local",
        "_long_name",
        "_missing",
        "_name",
        "_offset",
        "_open",
        "_pad",
        "_remaining",
        "_resync_from",
        "_state",
        "_trailing_noted",
        "_zeros",
        "anomalies",
    )

    def __init__(self) -> None:
        self.anomalies: list[Anomaly] = []
        self._state = _HEADER
        self._buf = bytearray()  # header block or extended record being collected
        self._remaining = 0  # bytes left in the current data, skip, record or block
        self._pad = 0  # padding after the current data
        self._open = False  # a member is open (between its MemberStart and MemberEnd)
        self._missing = 0  # bytes of the open member lost in gaps
        self._name = ""  # the open member's name (for details)
        self._ext_type = 0
        self._long_name: str | None = None  # GNU 'L' for the next header
        self._local: dict[str, str] = {}  # pax 'x' keys for the next header
        self._global: dict[str, str] = {}  # pax 'g' keys for all following headers
        self._zeros = 0  # consecutive zero blocks
        self._offset = 0  # archive offset of the next byte (gaps included)
        self._resync_from = 0
        self._trailing_noted = False

    # -- the Opener protocol -------------------------------------------------------------

    def feed(self, data: bytes) -> list[MemberEvent]:
        events: list[MemberEvent] = []
        pos = 0
        end = len(data)
        base = self._offset
        while pos < end:
            state = self._state
            if state == _DATA:
                n = min(self._remaining, end - pos, CHUNK)
                events.append(MemberData(data[pos : pos + n]))
                pos += n
                self._remaining -= n
                if not self._remaining:
                    self._end_member(events)
            elif state in (_SKIP, _PAD) or (state == _RESYNC and self._remaining):
                n = min(self._remaining, end - pos)
                pos += n
                self._remaining -= n
                if not self._remaining and state != _RESYNC:
                    self._state = _HEADER
            elif state == _EXT:
                n = min(self._remaining, end - pos)
                self._buf += data[pos : pos + n]
                pos += n
                self._remaining -= n
                if not self._remaining:
                    self._ext_done()
            elif state in (_HEADER, _SPARSE_EXT, _RESYNC):
                if not self._buf and end - pos >= BLOCK:  # the usual case: no copy into _buf
                    block = data[pos : pos + BLOCK]
                    pos += BLOCK
                else:
                    take = min(BLOCK - len(self._buf), end - pos)
                    self._buf += data[pos : pos + take]
                    pos += take
                    if len(self._buf) < BLOCK:
                        break
                    block = bytes(self._buf)
                    self._buf.clear()
                self._offset = base + pos - BLOCK  # where this block starts, for details
                if state == _HEADER:
                    self._header(block, events)
                elif state == _SPARSE_EXT:
                    if not block[504]:  # isextended clear: the last extension block
                        self._start_data(events)
                else:
                    self._resync(block, events)
            else:  # _END or _STOPPED
                if state == _END and not self._trailing_noted and data[pos:].strip(b"\0"):
                    self._trailing_noted = True
                    self._note("tar_trailing_data", "data after the end-of-archive blocks")
                pos = end
        self._offset = base + end
        return events

    def gap(self, size: int) -> list[MemberEvent]:
        events: list[MemberEvent] = []
        while size > 0:
            state = self._state
            if state == _DATA:
                n = min(self._remaining, size)
                self._missing += n
                self._remaining -= n
                if not self._remaining:
                    self._end_member(events)
            elif state in (_SKIP, _PAD, _EXT):  # known lengths: the walk stays in step
                n = min(self._remaining, size)
                self._remaining -= n
                if state == _EXT:  # the record is lost: the next member keeps its own name
                    self._buf.clear()
                    self._ext_type = 0
                    self._state = _SKIP
                if not self._remaining:
                    self._skip(self._pad if state == _EXT else 0, pad=True)
            elif state in (_END, _STOPPED):
                n = size
            else:  # a header is lost, so is the walk: look for the next header
                if self._open:
                    self._end_member(events)
                if state != _RESYNC:
                    self._resync_from = self._offset
                self._buf.clear()
                self._local = {}
                self._long_name = None
                self._state = _RESYNC
                n = size
                # the bytes up to the next block boundary cannot start a header
                self._remaining = (-(self._offset + n)) % BLOCK
            self._offset += n
            size -= n
        return events

    def finish(self, complete: bool) -> list[MemberEvent]:
        events: list[MemberEvent] = []
        state = self._state
        if state == _DATA and self._open:
            self._note(
                "tar_truncated",
                f"archive ends {self._remaining} bytes short of the end of {self._name!r}",
            )
            self._missing += self._remaining
            self._remaining = 0
            self._end_member(events)
        elif (state in (_HEADER, _SPARSE_EXT) and self._buf) or state == _EXT:
            self._note("tar_truncated", "archive ends inside a header")
        elif state == _SKIP and self._remaining:
            self._note("tar_truncated", "archive ends inside an entry's data")
        self._state = _STOPPED
        self._buf.clear()
        return events

    # -- headers --------------------------------------------------------------------------

    def _header(self, block: bytes, events: list[MemberEvent]) -> None:
        if block == _ZERO_BLOCK:
            self._zeros += 1
            if self._zeros == 2:
                self._state = _END
            return
        if self._zeros:
            # GNU tar reads on after a lone zero block too; so does this opener, since what
            # follows may be a member someone meant to hide.
            self._note("tar_lone_zero_block", f"a single zero block before offset {self._here()}")
            self._zeros = 0
        if not _checksum_ok(block):
            self._note("tar_bad_checksum", f"header checksum fails at offset {self._here()}")
            self._state = _STOPPED
            return
        size = _parse_number(block[124:136])
        if size is None or size < 0:
            self._note("tar_bad_header", f"header size field unreadable at offset {self._here()}")
            self._state = _STOPPED
            return
        typeflag = block[156]
        if (
            typeflag in _PAX_LOCAL
            or typeflag == _PAX_GLOBAL
            or typeflag
            in (
                _LONG_NAME,
                _LONG_LINK,
            )
        ):
            self._ext_type = typeflag
            self._pad = (-size) % BLOCK
            if size > MAX_EXT_RECORD:
                self._note(
                    "tar_header_too_long",
                    f"extended header of {size} bytes (over {MAX_EXT_RECORD}) ignored",
                )
                self._skip(size + self._pad)
                self._ext_type = 0
                return
            self._buf.clear()
            self._remaining = size
            self._state = _EXT
            if not size:
                self._ext_done()
            return
        self._ext_type = 0
        name = self._member_name(block)
        pax = self._global | self._local if self._global else self._local
        if "size" in pax:
            value = pax["size"]
            if value.isdigit() and value.isascii():
                size = int(value)
            else:
                self._note("tar_bad_pax", f"pax size {value[:32]!r} ignored")
        sparse = typeflag == _SPARSE or any(key.startswith("GNU.sparse.") for key in pax)
        self._local = {}
        self._long_name = None
        self._name = name
        if typeflag in _NO_DATA or typeflag == _VOLUME:
            if typeflag == _DIRECTORY:
                events.append(MemberStart(name, is_dir=True))
                events.append(MemberEnd(True))
            if typeflag == _VOLUME:
                self._skip(size + (-size) % BLOCK)
            return
        if typeflag == _DUMPDIR or (typeflag == 0 and name.endswith("/") and not size):
            events.append(MemberStart(name, is_dir=True))
            events.append(MemberEnd(True))
            self._skip(size + (-size) % BLOCK)
            return
        if typeflag not in _REGULAR and typeflag != _SPARSE:
            self._note(
                "tar_unknown_type",
                f"entry type {chr(typeflag)!r} read as a regular file: {name[:200]!r}",
            )
        if sparse:
            self._note("tar_sparse", f"sparse file {name[:200]!r}: stored fragments only")
        events.append(MemberStart(name, size=size))
        self._open = True
        self._missing = 0
        self._remaining = size
        self._pad = (-size) % BLOCK
        if typeflag == _SPARSE and block[482]:  # GNU old sparse: extension blocks follow
            self._state = _SPARSE_EXT
            return
        self._start_data(events)

    def _member_name(self, block: bytes) -> str:
        local = self._local.get("path")
        if local is not None:
            return local
        if "GNU.sparse.name" in self._local:
            return self._local["GNU.sparse.name"]
        if self._long_name is not None:
            return self._long_name
        glob = self._global.get("path") or self._global.get("GNU.sparse.name")
        if glob:
            return glob
        name = _field(block, 0, 100)
        if block[257:263] == b"ustar\x00":  # POSIX ustar: the prefix field (GNU has none)
            prefix = _field(block, 345, 155)
            if prefix:
                name = prefix + b"/" + name
        return _text(name)

    def _start_data(self, events: list[MemberEvent]) -> None:
        if self._remaining:
            self._state = _DATA
        else:
            self._end_member(events)

    def _end_member(self, events: list[MemberEvent]) -> None:
        events.append(MemberEnd(not self._missing, self._missing))
        self._open = False
        self._skip(self._pad, pad=True)

    def _skip(self, size: int, pad: bool = False) -> None:
        self._remaining = size
        self._state = (_PAD if pad else _SKIP) if size else _HEADER

    # -- extended headers -----------------------------------------------------------------

    def _ext_done(self) -> None:
        record = bytes(self._buf)
        self._buf.clear()
        kind = self._ext_type
        if kind == _LONG_NAME:
            self._long_name = _text(record.split(b"\0", 1)[0])
        elif kind in _PAX_LOCAL or kind == _PAX_GLOBAL:
            self._parse_pax(record, self._global if kind == _PAX_GLOBAL else self._local)
        self._ext_type = 0
        self._skip(self._pad, pad=True)

    def _parse_pax(self, record: bytes, into: dict[str, str]) -> None:
        """POSIX.1-2017 pax "pax Extended Header": records "%d %s=%s\\n", the length counting
        the whole record. Only the keys this opener uses are kept (bounded)."""
        pos = 0
        end = len(record)
        while pos < end:
            if record[pos] == 0:  # NUL padding after the last record
                break
            space = record.find(b" ", pos, pos + 24)
            digits = record[pos:space] if space > pos else b""
            if not digits.isdigit():
                self._note("tar_bad_pax", f"pax record length unreadable at {pos}")
                return
            length = int(digits)
            stop = pos + length
            if length <= space - pos + 1 or stop > end or record[stop - 1] != 0x0A:
                self._note("tar_bad_pax", f"pax record length {length} does not fit")
                return
            key, eq, value = record[space + 1 : stop - 1].partition(b"=")
            pos = stop
            if not eq:
                self._note("tar_bad_pax", "pax record without '='")
                return
            name = key.decode("utf-8", "replace")
            if name not in ("path", "size") and not name.startswith("GNU.sparse."):
                continue
            if name.startswith("GNU.sparse.") and name != "GNU.sparse.name":
                into.setdefault("GNU.sparse.", "")  # marks the entry sparse, value unused
                continue
            if value:
                into[name] = _text(value)
            else:  # an empty value deletes the key (pax: "the keyword shall be unset")
                into.pop(name, None)

    # -- after a gap ----------------------------------------------------------------------

    def _resync(self, block: bytes, events: list[MemberEvent]) -> None:
        if (
            block[257:263] in (b"ustar\x00", b"ustar ")
            and block != _ZERO_BLOCK
            and _checksum_ok(block)
        ):
            start = self._here()
            self._note(
                "tar_resync",
                f"after a gap, {start - self._resync_from} bytes skipped to a header at {start}",
            )
            self._state = _HEADER
            self._zeros = 0
            self._header(block, events)

    def _here(self) -> int:
        return self._offset

    def _note(self, kind: str, detail: str) -> None:
        self.anomalies.append(Anomaly(kind, detail))
