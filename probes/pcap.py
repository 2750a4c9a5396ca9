"""Offline capture probe: read pcap and pcapng files into `Frame`s.

Capture side (probes/): a file path comes in, `Frame(ts, data, linktype, iface, wire_len)` values
go out, in file order. Nothing here knows about IP or flows.

Theory of operation
-------------------
The file is read in large chunks (`CHUNK_SIZE`) and records are walked with precompiled
`struct.Struct.unpack_from` calls on the chunk; a record that straddles two chunks is read again
at the start of the next one. Memory stays bounded by the chunk size plus one record (records are
capped), so multi-GB files replay with a small RSS. No per-packet parser objects are built.

Formats:
- classic pcap (draft-ietf-opsawg-pcap): both byte orders, microsecond (0xa1b2c3d4) and
  nanosecond (0xa1b23c4d) magic, version 2.x.
- pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks in either byte order and any number
  of sections, Interface Description Blocks (link type, snaplen, if_name, if_tsresol including
  power-of-two resolutions, if_tsoffset), Enhanced, Simple and obsolete Packet Blocks. Other
  blocks are skipped by their length.

Damage never raises during iteration: the reader yields every complete frame before the damage,
then stops and fills `report` (`truncated=True`, `error`, `error_offset` = byte offset of the
record or block that is cut or corrupt). Only a file that is not a capture at all (missing,
unreadable, wrong magic, unsupported version, cut inside its first header) raises `PcapError`.
"""

from __future__ import annotations

import collections
import heapq
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

from probes.frame import Frame

# Bytes per read(); records are walked inside a chunk. Small enough that the chunk is still in
# the CPU cache while its frames go through the pipeline: with 256 KiB the benchmark capture
# replayed 6-8% faster than with 4 MiB, and about 3% faster than with 1 MiB or 64 KiB.
CHUNK_SIZE = 256 * 1024
# A captured length above this is corruption, not a packet (libpcap's MAXIMUM_SNAPLEN).
MAX_CAPLEN = 256 * 1024
# Any pcapng block above this is corruption; keeps a bogus length from buffering gigabytes.
MAX_BLOCK_LEN = 16 * 1024 * 1024

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

# pcapng block types.
_BT_IDB = 0x00000001
_BT_OPB = 0x00000002  # obsolete Packet Block
_BT_SPB = 0x00000003
_BT_EPB = 0x00000006
# pcapng option codes.
_OPT_ENDOFOPT = 0
_IF_NAME = 2
_IF_TSRESOL = 9
_IF_TSOFFSET = 14

_PCAP_FILE_HEADER_LEN = 24
_PCAP_RECORD_LEN = 16

# Frame is a NamedTuple; tuple.__new__ skips its Python-level __new__ on the hot path.
_new_tuple = tuple.__new__


class PcapError(Exception):
    """The file is not a readable capture at all (the message names the file)."""


@dataclass(slots=True)
class ReadReport:
    """What a read produced; filled as iteration goes (at chunk granularity and at the end)."""

    path: str
    frames: int = 0
    bytes: int = 0  # captured bytes handed out in frames (sum of len(Frame.data))
    truncated: bool = False  # the read stopped early: file cut short or corrupt
    error: str | None = None
    error_offset: int | None = None  # byte offset of the damaged record/block
    linktypes: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Interface:
    """One pcapng interface (per section)."""

    linktype: int
    snaplen: int
    name: str | None
    units: int  # timestamp units per second (if_tsresol)
    offset: int  # seconds added to every timestamp (if_tsoffset)


class _Damage(Exception):
    """Internal: the walk hit corruption at `offset`."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


class PcapReader:
    """Iterate the frames of a pcap or pcapng file. One pass; use as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.report = ReadReport(path=path)
        self._iterated = False
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise PcapError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise PcapError(f"{path}: is a directory, not a capture file") from None
        except OSError as exc:
            raise PcapError(f"{path}: cannot open: {exc.strerror or exc}") from None
        try:
            self._check_header()
        except BaseException:
            self._file.close()
            raise

    # -- header ------------------------------------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        try:
            return self._file.read(n)
        except OSError as exc:
            raise PcapError(f"{self.path}: read error: {exc.strerror or exc}") from None

    def _check_header(self) -> None:
        head = self._read_exact(_PCAP_FILE_HEADER_LEN)
        if not head:
            raise PcapError(f"{self.path}: empty file, not a pcap/pcapng capture")
        if len(head) < 4:
            raise PcapError(f"{self.path}: {len(head)}-byte file is not a pcap/pcapng capture")
        magic_le = struct.unpack_from("<I", head)[0]
        if magic_le == PCAPNG_SHB:
            self._check_pcapng_header(head)
            return
        for order in ("<", ">"):
            magic = struct.unpack_from(order + "I", head)[0]
            if magic in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
                break
        else:
            if magic_le in (0xA1B2CD34, 0x34CDB2A1):
                raise PcapError(
                    f"{self.path}: modified (Kuznetzov) pcap is not supported; "
                    "convert it with `editcap -F pcap`"
                )
            raise PcapError(
                f"{self.path}: not a pcap or pcapng file (magic {head[:4].hex()}); "
                "only libpcap pcap and pcapng are supported"
            )
        if len(head) < _PCAP_FILE_HEADER_LEN:
            raise PcapError(
                f"{self.path}: truncated pcap file header ({len(head)} of "
                f"{_PCAP_FILE_HEADER_LEN} bytes)"
            )
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
            order + "HHiIII", head, 4
        )
        if major != 2:
            raise PcapError(f"{self.path}: unsupported pcap version {major}.{minor} (need 2.x)")
        self._format = "pcap"
        self._order = order
        self._scale = 1e-6 if magic == PCAP_MAGIC_USEC else 1e-9
        # The upper bits carry FCS information; the link type is the low 16 bits.
        self._linktype = linktype & 0xFFFF
        self._maxcap = snaplen if 0 < snaplen <= MAX_CAPLEN else MAX_CAPLEN
        self._start = _PCAP_FILE_HEADER_LEN
        self.report.linktypes.add(self._linktype)

    def _check_pcapng_header(self, head: bytes) -> None:
        if len(head) < 12:
            raise PcapError(f"{self.path}: truncated pcapng section header ({len(head)} bytes)")
        bom_le = struct.unpack_from("<I", head, 8)[0]
        if bom_le == PCAPNG_BYTE_ORDER_MAGIC:
            order = "<"
        elif struct.unpack_from(">I", head, 8)[0] == PCAPNG_BYTE_ORDER_MAGIC:
            order = ">"
        else:
            raise PcapError(f"{self.path}: pcapng section header has a bad byte-order magic")
        blen = struct.unpack_from(order + "I", head, 4)[0]
        if blen < 28 or blen % 4 or blen > MAX_BLOCK_LEN:
            raise PcapError(f"{self.path}: pcapng section header has a bad length {blen}")
        if len(head) < 16:
            raise PcapError(f"{self.path}: truncated pcapng section header ({len(head)} bytes)")
        major, minor = struct.unpack_from(order + "HH", head, 12)
        if major != 1:
            raise PcapError(f"{self.path}: unsupported pcapng version {major}.{minor} (need 1.x)")
        self._format = "pcapng"
        self._start = 0

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError(f"{self.path}: PcapReader supports a single pass")
        self._iterated = True
        try:
            self._file.seek(self._start)
        except (OSError, ValueError) as exc:
            self._damage(self._start, f"cannot seek: {exc}")
            return iter(())
        if self._format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _damage(self, offset: int, message: str) -> None:
        self.report.truncated = True
        self.report.error = message
        self.report.error_offset = offset

    def _refill(self, buf: bytes, pos: int, base: int, what: str) -> tuple[bytes, int] | None:
        """The next buffer to walk and the file offset of its first byte. `buf[pos:]` is the
        start of a record that did not fit (or nothing); the new buffer begins with it. None at
        the end of the file or on an I/O error; a record cut by the end is reported as damage.
        """
        offset = base + pos  # of buf[pos]
        rest = len(buf) - pos
        # A record cut by the end of the chunk is read again from the file (__iter__ has seeked
        # it, so it is seekable) instead of being glued to the next chunk: that concatenation
        # allocated a fresh chunk-sized buffer every time, every page of which faulted (about
        # 0.6 s per GB read). Only a record longer than a whole chunk grows by concatenation.
        reread = rest > 0 and pos > 0
        try:
            if reread:
                self._file.seek(offset)
            chunk = self._file.read(CHUNK_SIZE)
        except (OSError, ValueError) as exc:
            self._damage(base + len(buf), f"read error: {exc}")
            return None
        if not chunk:
            if rest:
                self._damage(offset, f"file ends inside a {what} ({rest} bytes left)")
            return None
        if rest and not reread:
            return buf + chunk, offset
        return chunk, offset

    def _iter_pcap(self) -> Iterator[Frame]:
        report = self.report
        unpack_from = struct.Struct(self._order + "IIII").unpack_from
        scale = self._scale
        linktype = self._linktype
        maxcap = self._maxcap
        new = _new_tuple
        frame_cls = Frame
        base = self._start  # file offset of buf[0]
        buf = b""
        pos = 0
        frames = 0
        nbytes = 0
        try:
            while True:
                refilled = self._refill(buf, pos, base, "packet record")
                if refilled is None:
                    return
                buf, base = refilled
                pos = 0
                n = len(buf)
                last = n - _PCAP_RECORD_LEN
                while pos <= last:
                    sec, frac, caplen, wirelen = unpack_from(buf, pos)
                    if caplen > maxcap:
                        self._damage(
                            base + pos,
                            f"corrupt packet record: captured length {caplen} exceeds "
                            f"snaplen/limit {maxcap}",
                        )
                        return
                    start = pos + _PCAP_RECORD_LEN
                    end = start + caplen
                    if end > n:
                        break
                    frames += 1
                    nbytes += caplen
                    yield new(
                        frame_cls, (sec + frac * scale, buf[start:end], linktype, None, wirelen)
                    )
                    pos = end
                report.frames = frames
                report.bytes = nbytes
        finally:
            report.frames = frames
            report.bytes = nbytes

    def _iter_pcapng(self) -> Iterator[Frame]:
        report = self.report
        new = _new_tuple
        frame_cls = Frame
        base = 0
        buf = b""
        pos = 0
        frames = 0
        nbytes = 0
        ifaces: list[_Interface] = []
        last_ts = 0.0
        # Per-section structs; rebound at every Section Header Block.
        hdr = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        u32 = struct.Struct("<I").unpack_from
        order = "<"
        try:
            while True:
                refilled = self._refill(buf, pos, base, "pcapng block")
                if refilled is None:
                    return
                buf, base = refilled
                pos = 0
                n = len(buf)
                try:
                    while pos + 12 <= n:
                        btype, blen = hdr(buf, pos)
                        if btype == PCAPNG_SHB:
                            new_order = _section_order(buf, pos)
                            if new_order is None:
                                raise _Damage(base + pos, "section header: bad byte-order magic")
                            if new_order != order:
                                order = new_order
                                hdr = struct.Struct(order + "II").unpack_from
                                epb = struct.Struct(order + "IIIII").unpack_from
                                u32 = struct.Struct(order + "I").unpack_from
                            blen = hdr(buf, pos)[1]
                        if blen < 12 or blen & 3 or blen > MAX_BLOCK_LEN:
                            raise _Damage(base + pos, f"corrupt block length {blen}")
                        end = pos + blen
                        if end > n:
                            break
                        if u32(buf, end - 4)[0] != blen:
                            raise _Damage(
                                base + pos,
                                f"block length {blen} does not match its trailing length "
                                f"{u32(buf, end - 4)[0]}",
                            )
                        if btype == _BT_EPB:
                            if blen < 32:
                                raise _Damage(
                                    base + pos, f"enhanced packet block too short ({blen})"
                                )
                            if_id, hi, lo, caplen, wirelen = epb(buf, pos + 8)
                            iface, last_ts = _timed_packet(
                                ifaces, if_id, hi, lo, caplen, blen, base + pos,
                                "enhanced packet block",
                            )  # fmt: skip
                            start = pos + 28
                            frames += 1
                            nbytes += caplen
                            yield new(
                                frame_cls,
                                (
                                    last_ts,
                                    buf[start : start + caplen],
                                    iface.linktype,
                                    iface.name,
                                    wirelen,
                                ),
                            )
                        elif btype == PCAPNG_SHB:
                            if blen < 28:
                                raise _Damage(base + pos, f"section header too short ({blen})")
                            major = struct.unpack_from(order + "H", buf, pos + 12)[0]
                            if major != 1:
                                raise _Damage(base + pos, f"unsupported pcapng version {major}")
                            ifaces = []  # interface ids are per section
                        elif btype == _BT_IDB:
                            ifaces.append(self._parse_idb(buf, pos, blen, order, base))
                            report.linktypes.add(ifaces[-1].linktype)
                        elif btype == _BT_SPB:
                            if blen < 16:
                                raise _Damage(base + pos, f"simple packet block too short ({blen})")
                            if not ifaces:
                                raise _Damage(
                                    base + pos, "simple packet block before any interface"
                                )
                            iface = ifaces[0]
                            wirelen = u32(buf, pos + 8)[0]
                            caplen = min(wirelen, blen - 16, MAX_CAPLEN)
                            if iface.snaplen:
                                caplen = min(caplen, iface.snaplen)
                            start = pos + 12
                            # An SPB has no timestamp: keep the packet clock where it was.
                            frames += 1
                            nbytes += caplen
                            yield new(
                                frame_cls,
                                (
                                    last_ts,
                                    buf[start : start + caplen],
                                    iface.linktype,
                                    iface.name,
                                    wirelen,
                                ),
                            )
                        elif btype == _BT_OPB:
                            if blen < 32:
                                raise _Damage(base + pos, f"packet block too short ({blen})")
                            if_id, _drops, hi, lo, caplen, wirelen = struct.unpack_from(
                                order + "HHIIII", buf, pos + 8
                            )
                            iface, last_ts = _timed_packet(
                                ifaces, if_id, hi, lo, caplen, blen, base + pos, "packet block"
                            )
                            start = pos + 28
                            frames += 1
                            nbytes += caplen
                            yield new(
                                frame_cls,
                                (
                                    last_ts,
                                    buf[start : start + caplen],
                                    iface.linktype,
                                    iface.name,
                                    wirelen,
                                ),
                            )
                        # Any other block (NRB, ISB, DSB, custom...) is skipped by its length.
                        pos = end
                except _Damage as dmg:
                    self._damage(dmg.offset, dmg.message)
                    return
                report.frames = frames
                report.bytes = nbytes
        finally:
            report.frames = frames
            report.bytes = nbytes

    @staticmethod
    def _parse_idb(buf: bytes, pos: int, blen: int, order: str, base: int) -> _Interface:
        if blen < 20:
            raise _Damage(base + pos, f"interface description block too short ({blen})")
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
        name: str | None = None
        units = 1_000_000  # default resolution: microseconds
        offset = 0
        opt = pos + 16
        opt_end = pos + blen - 4
        opt_hdr = struct.Struct(order + "HH")
        while opt + 4 <= opt_end:
            code, length = opt_hdr.unpack_from(buf, opt)
            value_end = opt + 4 + length
            if value_end > opt_end:
                raise _Damage(base + pos, f"interface option {code} overruns its block")
            if code == _OPT_ENDOFOPT:
                break
            if code == _IF_NAME:
                name = buf[opt + 4 : value_end].rstrip(b"\0").decode("utf-8", "replace")
            elif code == _IF_TSRESOL and length >= 1:
                resol = buf[opt + 4]
                # High bit set: negative power of two; clear: negative power of ten.
                units = 1 << (resol & 0x7F) if resol & 0x80 else 10**resol
            elif code == _IF_TSOFFSET and length >= 8:
                offset = struct.unpack_from(order + "q", buf, opt + 4)[0]
            opt = value_end + (-length & 3)
        return _Interface(linktype, snaplen, name, units, offset)

    # -- lifetime ----------------------------------------------------------------------------

    def position(self) -> int:
        """Bytes of the file read so far (at chunk granularity): for progress displays."""
        try:
            return self._file.tell()
        except (OSError, ValueError):  # closed
            return 0

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _section_order(buf: bytes, pos: int) -> str | None:
    """Byte order of the Section Header Block at `pos`, from its byte-order magic."""
    if struct.unpack_from("<I", buf, pos + 8)[0] == PCAPNG_BYTE_ORDER_MAGIC:
        return "<"
    if struct.unpack_from(">I", buf, pos + 8)[0] == PCAPNG_BYTE_ORDER_MAGIC:
        return ">"
    return None


def _timed_packet(
    ifaces: list[_Interface],
    if_id: int,
    hi: int,
    lo: int,
    caplen: int,
    blen: int,
    offset: int,
    what: str,
) -> tuple[_Interface, float]:
    """Checks shared by the pcapng blocks that carry a timestamped packet (EPB, and the
    obsolete OPB): the data must fit the block, the interface must have been declared.
    Returns the interface and the timestamp in seconds."""
    if caplen > MAX_CAPLEN or caplen + 32 > blen:
        raise _Damage(offset, f"{what}: captured length {caplen} does not fit block length {blen}")
    if if_id >= len(ifaces):
        raise _Damage(offset, f"packet for undeclared interface {if_id}")
    iface = ifaces[if_id]
    return iface, ((hi << 32) | lo) / iface.units + iface.offset


def first_timestamp(path: str) -> float | None:
    """Time of the first frame of a capture (None when it holds none)."""
    with PcapReader(path) as reader:
        for frame in reader:
            return frame.ts
    return None


class CaptureSet:
    """Several capture files read as one stream in packet-time order, as `mergecap` would:
    files are taken by their first timestamp and merged frame by frame where their times
    overlap, so the order given on the command line never moves an upload into a later
    bucket. Only the files whose time ranges overlap the current moment are open at once.

    A single file is read as it is (frames out of order inside one capture stay as captured).
    `reports` holds each file's ReadReport once it has been read (all of them after `close()`);
    `bytes_read()` and `size` measure progress."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        firsts = [first_timestamp(p) for p in self.paths]
        self.firsts = [-math.inf if ts is None else ts for ts in firsts]
        # By first timestamp, then by path, never by position on the command line: frames
        # with equal timestamps come out in the same order however the files were given.
        # Empty captures first: they add nothing but their report.
        self.order = sorted(range(len(self.paths)), key=lambda i: (self.firsts[i], self.paths[i]))
        self.reordered = self.order != sorted(self.order)
        self.size = sum(os.path.getsize(p) for p in self.paths)
        self.reports: list[ReadReport] = []
        self._open: list[PcapReader] = []
        self._done_bytes = 0

    def bytes_read(self) -> int:
        return self._done_bytes + sum(r.position() for r in self._open)

    def _start(self, index: int) -> Iterator[Frame]:
        reader = PcapReader(self.paths[index])
        self._open.append(reader)
        return iter(reader)

    def _finish(self, reader_index: int) -> None:
        reader = self._open.pop(reader_index)
        self._done_bytes += os.path.getsize(reader.path)
        reader.close()
        self.reports.append(reader.report)

    def __iter__(self) -> Iterator[Frame]:
        """The frames; call `close()` afterwards, which files each reader's report. One file
        is its reader's own iterator (no generator in between on the hot path)."""
        if len(self.paths) == 1:
            return self._start(0)
        return self._merge()

    def close(self) -> None:
        while self._open:
            self._finish(len(self._open) - 1)

    def __enter__(self) -> CaptureSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _merge(self) -> Iterator[Frame]:
        pending = collections.deque(self.order)
        # (time, the file's rank, frame number in it, ...): ties go by rank, then file order.
        heap: list[tuple[float, int, int, Frame, Iterator[Frame], PcapReader]] = []
        rank = {index: r for r, index in enumerate(self.order)}

        def push(frames: Iterator[Frame], reader: PcapReader, index: int, seq: int) -> None:
            frame = next(frames, None)
            if frame is None:
                self._finish(self._open.index(reader))
                return
            heapq.heappush(heap, (frame.ts, rank[index], seq, frame, frames, reader))

        while heap or pending:
            # Open every file that starts before the earliest frame waiting to go out.
            while pending and (not heap or self.firsts[pending[0]] <= heap[0][0]):
                index = pending.popleft()
                frames = self._start(index)
                push(frames, self._open[-1], index, 0)
            if not heap:
                continue
            _, r, seq, frame, frames, reader = heapq.heappop(heap)
            yield frame
            push(frames, reader, self.order[r], seq + 1)
