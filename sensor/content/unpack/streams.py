"""Fingerprint stage, container openers for single-stream compressors: gzip (RFC 1952),
bzip2, xz and zstd (RFC 8878).

In: the bytes of one uploaded compressed file (a .gz, .bz2, .xz, .zst), in arbitrary chunks,
plus gaps, through the `Opener` protocol of sensor/content/fingerprint/base.py.
Out: exactly one member per opener: `MemberStart` (at the first decoded byte, or just before
the end when nothing decodes), `MemberData` pieces of at most `CHUNK` bytes, `MemberEnd`;
damage as `Anomaly` values in `anomalies` (kinds `unpack_*`).

Theory of operation. Each opener keeps a queue of compressed input not yet decoded (the
backlog) and a small per-format state machine that turns it into output one bounded step at a
time: a step gives the decompressor at most `INPUT_SLICE` bytes and takes at most `CHUNK` bytes
out (zlib, bz2 and lzma take an output limit; zstd has none, so the zstd opener walks the frame
and block headers itself and hands the decoder one block at a time, RFC 8878 sec 3.1.1.2: a
block never regenerates more than 128 KiB). Concatenated gzip members (RFC 1952 sec 2.2) and
concatenated bzip2/xz/zstd streams continue into the same member, as `gzip -d` does; zero bytes
between or after streams are padding (xz stream padding, tape blocking) and pass silently;
anything else after the last stream is trailing data (`unpack_trailing_data`) and is dropped.

Output bound per call. A 10 MB bomb can hold 10 GB, so no call decodes everything it could:
every `feed`, `gap`, `drain` and `finish` call hands out at most `CALL_BUDGET` decoded bytes
(plus at most one `CHUNK`), whatever it was given. Input it did not get to stays in the
backlog and is worked off first by the next call. A caller that wants every byte calls
`drain()` while `pending` is true (each call again bounded) and stops whenever its own caps
(expanded bytes, ratio) are hit; a caller that only feeds gets the same bytes, later. The
backlog is capped (`MAX_BACKLOG` compressed bytes, far more than any caller's expansion caps
let through); past it, and at `finish` when more than one more budget would be needed, the
member ends incomplete with `unpack_backlog`.

Damage (never raised): corrupt data ends the member incomplete (`unpack_corrupt`, the rest is
ignored); the input ending before the stream's end marker gives `unpack_truncated`; a gzip
CRC-32/ISIZE mismatch gives `unpack_crc_mismatch` and an incomplete member, the data still
flowing; a gap ends the member incomplete (`missing` = the lost compressed bytes), since no
compressed stream can be resynchronised, after the input that came before it is decoded.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections import deque
from typing import Any, ClassVar

import zstandard

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import MemberData, MemberEnd, MemberEvent, MemberStart

CHUNK = 256 * 1024  # max bytes in one MemberData (and out of one decompressor call)
CALL_BUDGET = 16 * 1024**2  # max decoded bytes one call hands out (plus one CHUNK)
INPUT_SLICE = 64 * 1024  # max compressed bytes given to a decompressor at once
MAX_BACKLOG = 16 * 1024**2  # compressed bytes kept undecoded between calls -> unpack_backlog
MAX_GZIP_NAME = 4096  # FNAME bytes kept; a longer name is cut -> unpack_header_too_long
XZ_MEMLIMIT = 256 * 1024**2  # liblzma memory limit (xz -9 needs ~65 MiB) -> unpack_memory_limit
ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB, zstd's own default decoding limit -> unpack_memory_limit

# Outer-name suffixes and what replaces them (the conventions of gzip, bzip2, xz and zstd).
_SUFFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "gzip": ((".tgz", ".tar"), (".taz", ".tar"), (".gz", ""), ("-gz", ""), (".z", ""),
             ("-z", ""), ("_z", "")),
    "bzip2": ((".tbz2", ".tar"), (".tbz", ".tar"), (".tb2", ".tar"), (".bz2", ""), (".bz", "")),
    "xz": ((".txz", ".tar"), (".xz", "")),
    "zstd": ((".tzst", ".tar"), (".zst", ""), (".zstd", "")),
}  # fmt: skip


def member_name_for(outer_name: str | None, fmt: str) -> str | None:
    """The member name a decompressor would write for `outer_name` ("x.csv.gz" -> "x.csv",
    "x.tgz" -> "x.tar"); None when the name has no suffix of format `fmt` ("gzip", "bzip2",
    "xz", "zstd") or nothing is left."""
    if not outer_name:
        return None
    lower = outer_name.lower()
    for suffix, replacement in _SUFFIXES.get(fmt, ()):
        if lower.endswith(suffix) and len(outer_name) > len(suffix):
            return outer_name[: -len(suffix)] + replacement
    return None


class _Damage(Exception):
    """A step found the stream unusable; the member ends incomplete."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_BETWEEN = 0  # between streams: padding, the next stream's magic, or trailing data
_TRAILING = 1  # after the last stream: everything is dropped
_IN_STREAM = 2  # bz2/xz: inside a stream (gzip and zstd have their own states)

# A new stream's first input slice; it doubles per step up to INPUT_SLICE. zlib, bz2 and lzma
# copy the input after a stream's end (`unused_data`), so a file of many tiny streams would
# otherwise copy a whole slice per stream.
_FIRST_SLICE = 256
_ZERO_PROBE = 256  # padding bytes looked at per step
_HEADER_SLICE = 4096  # bytes handed to the gzip header reader per step


class _StreamOpener:
    """The shared machinery: backlog, budget, member events, end handling. A format supplies
    `_work` (one bounded step), `_starts_stream`/`_begin_stream` (the magic that follows a
    finished stream) and `_truncation` (why the stream is unfinished at the end)."""

    __slots__ = (
        "_backlog",
        "_damaged",
        "_ended",
        "_gap",
        "_idle",
        "_inq",
        "_name",
        "_slice",
        "_started",
        "_state",
        "_taken",
        "anomalies",
    )

    FORMAT: ClassVar[str] = ""
    MAGIC_LEN: ClassVar[int] = 4  # bytes `_starts_stream` needs to decide

    def __init__(self, *, name: str | None = None) -> None:
        self.anomalies: list[Anomaly] = []
        self._name = member_name_for(name, self.FORMAT)
        self._inq: deque[memoryview] = deque()
        self._backlog = 0  # bytes in _inq
        self._taken = 0  # compressed bytes taken out of the queue so far (for details)
        self._started = False
        self._ended = False
        self._damaged = False  # CRC mismatch: data flows on, the member ends incomplete
        self._gap: int | None = None  # lost bytes announced; the input is over
        self._idle = True  # the last run stopped for want of input (not for the budget)
        self._slice = _FIRST_SLICE  # input slice, grown per step, reset per stream
        self._state = _BETWEEN  # subclasses start in their own first state

    # -- the Opener protocol -------------------------------------------------------------

    def feed(self, data: bytes) -> list[MemberEvent]:
        if self._ended or self._gap is not None or not data:
            return []
        self._inq.append(memoryview(data))
        self._backlog += len(data)
        events = self._run()
        if not self._ended and self._backlog > MAX_BACKLOG:
            self._note("unpack_backlog", f"more than {MAX_BACKLOG} compressed bytes not drained")
            events += self._end(False)
        return events

    def gap(self, size: int) -> list[MemberEvent]:
        if self._ended or size <= 0 or self._state == _TRAILING:
            return []  # a gap in trailing data costs the member nothing
        self._gap = (self._gap or 0) + size
        return self._run()

    def finish(self, complete: bool) -> list[MemberEvent]:
        if self._ended:
            return []
        events = self._run()
        if self._ended:
            return events
        if not self._idle:  # the budget ran out with input left
            self._note("unpack_backlog", f"{self._backlog} compressed bytes left at the end")
            return events + self._end(False, self._gap or 0)
        reason = self._truncation()  # _run stopped for want of input: is the stream whole?
        if reason is not None:
            self._note("unpack_truncated", reason)
            complete = False
        return events + self._end(complete and not self._damaged)

    # -- for callers that drain ------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """More events could come out without new input (call `drain`)."""
        return not self._ended and not self._idle

    def drain(self) -> list[MemberEvent]:
        """The next bounded batch of events for input already fed."""
        return self._run() if self.pending else []

    # -- the engine -----------------------------------------------------------------------

    def _run(self) -> list[MemberEvent]:
        events: list[MemberEvent] = []
        produced = 0
        self._idle = False
        while not self._ended and produced < CALL_BUDGET:
            try:
                out = self._step()
            except _Damage as exc:
                self._note(exc.kind, exc.detail)
                return events + self._end(False)
            if out is None:  # nothing more to do with the input at hand
                self._idle = True
                if self._gap is not None:
                    events += self._end(False, self._gap)
                break
            if out:
                if not self._started:
                    self._started = True
                    events.append(MemberStart(self._name))
                events.append(MemberData(out))
                produced += len(out)
        return events

    def _step(self) -> bytes | None:
        if self._state == _BETWEEN:
            return self._between()
        if self._state == _TRAILING:
            self._drop_input()
            return None
        return self._work()

    def _end(self, complete: bool, missing: int = 0) -> list[MemberEvent]:
        self._ended = True
        self._drop_input()
        events: list[MemberEvent] = []
        if not self._started:
            self._started = True
            events.append(MemberStart(self._name))
        events.append(MemberEnd(complete, missing))
        return events

    def _note(self, kind: str, detail: str) -> None:
        self.anomalies.append(Anomaly(kind, detail))

    # -- the input queue ------------------------------------------------------------------

    def _take(self, limit: int) -> memoryview | None:
        """Up to `limit` bytes from the front of the queue (never across queued chunks)."""
        if not self._inq:
            return None
        piece = self._inq.popleft()
        if len(piece) > limit:
            self._inq.appendleft(piece[limit:])
            piece = piece[:limit]
        self._backlog -= len(piece)
        self._taken += len(piece)
        return piece

    def _take_in(self) -> memoryview | None:
        """The next input slice for a decompressor (growing, see _FIRST_SLICE)."""
        piece = self._take(self._slice)
        self._slice = min(self._slice * 2, INPUT_SLICE)
        return piece

    def _take_exact(self, size: int) -> bytes | None:
        """Exactly `size` bytes (small: headers, trailers) or None, leaving the queue as is."""
        if self._backlog < size:
            return None
        parts = []
        while size:
            piece = self._take(size)
            assert piece is not None  # the backlog holds at least `size` bytes
            parts.append(piece)
            size -= len(piece)
        return b"".join(parts)

    def _untake(self, data: bytes | memoryview) -> None:
        if data:
            self._inq.appendleft(memoryview(data))
            self._backlog += len(data)
            self._taken -= len(data)

    def _peek(self, size: int) -> bytes:
        parts: list[bytes] = []
        have = 0
        for piece in self._inq:
            parts.append(bytes(piece[: size - have]))
            have += len(parts[-1])
            if have >= size:
                break
        return b"".join(parts)

    def _drop_input(self) -> None:
        self._inq.clear()
        self._backlog = 0

    # -- between streams ------------------------------------------------------------------

    def _between(self) -> bytes | None:
        """After a finished stream: skip zero padding, then either the format's magic (the
        next stream, continuing this member) or trailing data."""
        while self._inq:
            front = self._inq[0]
            if front[0] == 0:  # padding; probed in small steps so tiny streams stay cheap
                probe = bytes(front[:_ZERO_PROBE])
                self._take(len(probe) - len(probe.lstrip(b"\0")))
                continue
            head = self._peek(self.MAGIC_LEN)
            verdict = self._starts_stream(head)
            if verdict is None:
                return None  # a prefix of the magic: wait for more
            if verdict:
                self._begin_stream()
                return b""
            self._note(
                "unpack_trailing_data",
                f"data after the end of the {self.FORMAT} stream at offset {self._taken}",
            )
            self._state = _TRAILING
            self._drop_input()
            return None
        return None

    # -- per format -----------------------------------------------------------------------

    def _work(self) -> bytes | None:  # pragma: no cover - every format overrides it
        raise NotImplementedError

    def _starts_stream(self, head: bytes) -> bool | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _begin_stream(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _truncation(self) -> str | None:
        """Why the stream is unfinished when the input ends here (None: it ended cleanly)."""
        if self._state == _TRAILING:
            return None
        if self._state == _BETWEEN:
            if self._backlog:
                return f"{self.FORMAT} input ended inside the magic of a next stream"
            return None
        return f"{self.FORMAT} stream ended before its end marker"


# -- gzip ----------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b\x08"  # ID1 ID2 and CM = 8 (deflate), RFC 1952 sec 2.3.1
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_FRESERVED = 0xE0  # RFC 1952 sec 2.3.1.2: a decoder must fail on reserved flag bits


class _GzipHeader:
    """One RFC 1952 member header (sec 2.3), read as it streams. Keeps the fixed fields and up
    to `MAX_GZIP_NAME` bytes of FNAME; FEXTRA and FCOMMENT are skipped however long; the
    header CRC-16 (FHCRC) is checked over every header byte."""

    __slots__ = ("_fixed", "_skip", "crc", "flags", "name", "name_cut", "step")

    # Steps: 0 the 10 fixed bytes, 1 XLEN, 2 extra data, 3 FNAME, 4 FCOMMENT, 5 FHCRC, 6 done.
    def __init__(self) -> None:
        self._fixed = b""
        self._skip = 0
        self.flags = 0
        self.step = 0
        self.crc = 0
        self.name = bytearray()
        self.name_cut = False

    def feed(self, buf: bytes) -> int | None:
        """Bytes of `buf` the header took if it ended in `buf`; None: all taken, more needed.
        Raises _Damage on a bad magic, method or reserved flag."""
        pos = 0
        end = len(buf)
        while self.step != 6:
            if pos >= end:
                return None
            step = self.step
            if step in (0, 1, 5):
                need = (10, 2, 0, 0, 0, 2)[step] - len(self._fixed)
                part = buf[pos : pos + need]
                pos += len(part)
                self._fixed += part
                if step == 0 and self._fixed[:3] != _GZIP_MAGIC[: len(self._fixed[:3])]:
                    method = self._fixed[2:3]
                    if self._fixed[:2] == _GZIP_MAGIC[:2] and method:
                        raise _Damage("unpack_corrupt", f"gzip method {method[0]} is not deflate")
                    raise _Damage("unpack_corrupt", "not gzip data (bad magic)")
                if len(part) < need:
                    return None
                fixed, self._fixed = self._fixed, b""
                if step == 5:  # RFC 1952 sec 2.3.1: the two low bytes of the header's CRC-32
                    if int.from_bytes(fixed, "little") != self.crc & 0xFFFF:
                        raise _Damage("unpack_crc_mismatch", "gzip header CRC-16 mismatch")
                    self.step = 6
                    return pos
                self.crc = zlib.crc32(fixed, self.crc)
                if step == 0:
                    self.flags = fixed[3]
                    if self.flags & _FRESERVED:
                        raise _Damage("unpack_corrupt", f"gzip reserved flags {self.flags:#04x}")
                    self.step = 1 if self.flags & _FEXTRA else 3
                else:
                    self._skip = int.from_bytes(fixed, "little")
                    self.step = 2
            elif step == 2:
                part = buf[pos : pos + self._skip]
                self.crc = zlib.crc32(part, self.crc)
                pos += len(part)
                self._skip -= len(part)
                if self._skip:
                    return None
                self.step = 3
            else:  # 3 FNAME, 4 FCOMMENT: zero-terminated
                if self.flags & (_FNAME if step == 3 else _FCOMMENT):
                    nul = buf.find(b"\0", pos)
                    stop = end if nul < 0 else nul + 1
                    part = buf[pos:stop]
                    self.crc = zlib.crc32(part, self.crc)
                    if step == 3:
                        room = MAX_GZIP_NAME - len(self.name)
                        text = part[:-1] if nul >= 0 else part
                        self.name += text[:room]
                        self.name_cut = self.name_cut or len(text) > room
                    pos = stop
                    if nul < 0:
                        return None
                self.step += 1
                if self.step == 5 and not self.flags & _FHCRC:
                    self.step = 6
        return pos


def _decode_name(raw: bytes) -> str:
    """RFC 1952 says ISO 8859-1; today's tools write the file system's bytes, mostly UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_GZ_HEADER, _GZ_BODY, _GZ_TRAILER = 10, 11, 12


class GzipOpener(_StreamOpener):
    """gzip file (RFC 1952), multi-member. The member's name is the first member's FNAME,
    else derived from the outer name (`member_name_for`)."""

    __slots__ = ("_crc", "_d", "_header", "_members", "_more", "_size")

    FORMAT = "gzip"
    MAGIC_LEN = 3

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._header = _GzipHeader()
        self._d: Any = None
        self._crc = 0
        self._size = 0
        self._members = 0
        self._more = False
        self._state = _GZ_HEADER

    def _starts_stream(self, head: bytes) -> bool | None:
        if head == _GZIP_MAGIC:
            return True
        return None if _GZIP_MAGIC.startswith(head) else False

    def _begin_stream(self) -> None:
        self._header = _GzipHeader()
        self._slice = _FIRST_SLICE
        self._state = _GZ_HEADER

    def _work(self) -> bytes | None:
        state = self._state
        if state == _GZ_BODY:
            if self._more:
                piece: memoryview | bytes = b""
            else:
                taken = self._take_in()
                if taken is None:
                    return None
                piece = taken
            try:
                out = self._d.decompress(piece, CHUNK)
            except zlib.error as exc:
                raise _Damage("unpack_corrupt", f"corrupt gzip deflate data: {exc}") from None
            self._crc = zlib.crc32(out, self._crc)
            self._size += len(out)
            if self._d.eof:  # at the end zlib leaves the rest in both; unused_data is it
                self._untake(self._d.unused_data)
                self._more = False
                self._state = _GZ_TRAILER
            else:
                self._untake(self._d.unconsumed_tail)
                self._more = len(out) == CHUNK and not self._d.unconsumed_tail
            return out
        if state == _GZ_HEADER:
            taken = self._take(_HEADER_SLICE)
            if taken is None:
                return None
            used = self._header.feed(bytes(taken))
            if used is None:
                return b""
            self._untake(taken[used:])
            if self._members == 0 and self._header.name:  # an empty FNAME names nothing
                self._name = _decode_name(bytes(self._header.name))
                if self._header.name_cut:
                    self._note("unpack_header_too_long", f"gzip FNAME cut at {MAX_GZIP_NAME} bytes")
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, RFC 1951
            self._crc = 0
            self._size = 0
            self._state = _GZ_BODY
            return b""
        # _GZ_TRAILER: CRC32 and ISIZE, little-endian (RFC 1952 sec 2.3.1)
        trailer = self._take_exact(8)
        if trailer is None:
            return None
        crc = int.from_bytes(trailer[:4], "little")
        isize = int.from_bytes(trailer[4:], "little")
        if crc != self._crc or isize != self._size & 0xFFFFFFFF:
            self._damaged = True
            self._note(
                "unpack_crc_mismatch",
                f"gzip member {self._members + 1}: CRC-32 or ISIZE does not match the data",
            )
        self._members += 1
        self._state = _BETWEEN
        return b""

    def _truncation(self) -> str | None:
        if self._state == _GZ_HEADER:
            return "gzip input ended inside a member header"
        if self._state == _GZ_TRAILER:
            return "gzip input ended inside a member trailer"
        return super()._truncation()


# -- bzip2 and xz: decompressors with an output limit that keep their own input ------------


class _LimitedOpener(_StreamOpener):
    """bz2/lzma decompressor objects: they take an output limit and keep the input they did
    not get to (`needs_input` False: call again with no input)."""

    __slots__ = ("_d",)

    _ERRORS: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._d: Any = None
        self._state = _IN_STREAM
        self._d = self._new_decoder()

    def _new_decoder(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _begin_stream(self) -> None:
        self._d = self._new_decoder()
        self._slice = _FIRST_SLICE
        self._state = _IN_STREAM

    def _damage(self, exc: Exception) -> _Damage:
        return _Damage("unpack_corrupt", f"corrupt {self.FORMAT} data: {exc}")

    def _work(self) -> bytes | None:
        d = self._d
        if d.needs_input:
            taken = self._take_in()
            if taken is None:
                return None
            piece: memoryview | bytes = taken
        else:
            piece = b""
        try:
            out: bytes = d.decompress(piece, CHUNK)
        except self._ERRORS as exc:
            raise self._damage(exc) from None
        if d.eof:
            self._untake(d.unused_data)
            self._state = _BETWEEN
        return out


class Bzip2Opener(_LimitedOpener):
    """bzip2 file, concatenated streams (as pbzip2 and `cat a.bz2 b.bz2` make) continuing."""

    __slots__ = ()

    FORMAT = "bzip2"
    MAGIC_LEN = 4
    _ERRORS = (OSError, ValueError, EOFError)

    def _new_decoder(self) -> Any:
        return bz2.BZ2Decompressor()

    def _starts_stream(self, head: bytes) -> bool | None:
        # "BZh" and the block size digit 1-9
        if len(head) < 4:
            return None if b"BZh".startswith(head) or head.startswith(b"BZh") else False
        return head[:3] == b"BZh" and 0x31 <= head[3] <= 0x39


_XZ_MAGIC = b"\xfd7zXZ\x00"  # xz file format sec 2.1.1.1


class XzOpener(_LimitedOpener):
    """xz file (.xz container), concatenated streams and stream padding (xz format sec 2.2)."""

    __slots__ = ()

    FORMAT = "xz"
    MAGIC_LEN = 6
    _ERRORS = (lzma.LZMAError, ValueError, EOFError)

    def _new_decoder(self) -> Any:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)

    def _damage(self, exc: Exception) -> _Damage:
        if "memory" in str(exc).lower():
            return _Damage("unpack_memory_limit", f"xz stream needs more than {XZ_MEMLIMIT} bytes")
        return super()._damage(exc)

    def _starts_stream(self, head: bytes) -> bool | None:
        if head == _XZ_MAGIC:
            return True
        return None if _XZ_MAGIC.startswith(head) else False


# -- zstd: the frame is walked here so that the decoder gets one block at a time -----------

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # 0xFD2FB528 little-endian, RFC 8878 sec 3.1.1
_SKIPPABLE_MASK = 0xFFFFFFF0
_SKIPPABLE_MAGIC = 0x184D2A50  # RFC 8878 sec 3.1.2: 0x184D2A5?
_BLOCK_MAX = 128 * 1024  # RFC 8878 sec 3.1.1.2.4: Block_Maximum_Size is at most 128 KiB
_ZS_MAGIC, _ZS_HEADER, _ZS_BLOCK_HEAD, _ZS_BLOCK, _ZS_CHECKSUM, _ZS_SKIP = 20, 21, 22, 23, 24, 25
_DID_SIZE = (0, 1, 2, 4)  # RFC 8878 sec 3.1.1.1.1.6
_FCS_SIZE = (0, 2, 4, 8)  # sec 3.1.1.1.1.1; flag 0 means 1 byte with Single_Segment_flag


class ZstdOpener(_StreamOpener):
    """zstd file (RFC 8878), concatenated frames; skippable frames are skipped
    (`unpack_skippable_frame`, once)."""

    __slots__ = ("_checksum", "_d", "_dctx", "_frames", "_last", "_remaining", "_skip_noted")

    FORMAT = "zstd"
    MAGIC_LEN = 4

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._d: Any = None
        self._remaining = 0  # bytes left in the current block body or skippable frame
        self._last = False
        self._checksum = False
        self._frames = 0
        self._skip_noted = False
        self._state = _ZS_MAGIC

    def _starts_stream(self, head: bytes) -> bool | None:
        if head == _ZSTD_MAGIC or (
            len(head) == 4 and int.from_bytes(head, "little") & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC
        ):
            return True
        if len(head) == 4:
            return False
        # a prefix of the frame magic or of a skippable magic (0x5? 0x2A 0x4D 0x18)
        skippable = head[0] & 0xF0 == 0x50 and head[1:] == b"\x2a\x4d\x18"[: len(head) - 1]
        return None if _ZSTD_MAGIC.startswith(head) or skippable else False

    def _begin_stream(self) -> None:
        self._slice = _FIRST_SLICE
        self._state = _ZS_MAGIC

    def _decode(self, data: bytes | memoryview) -> bytes:
        try:
            out: bytes = self._d.decompress(data)
        except zstandard.ZstdError as exc:
            text = str(exc)
            if "memory" in text.lower():
                raise _Damage(
                    "unpack_memory_limit", f"zstd frame needs a window over {ZSTD_MAX_WINDOW}"
                ) from None
            if "checksum" in text.lower():
                raise _Damage("unpack_crc_mismatch", "zstd frame checksum mismatch") from None
            raise _Damage("unpack_corrupt", f"corrupt zstd data: {text}") from None
        return out

    def _work(self) -> bytes | None:
        state = self._state
        if state == _ZS_BLOCK:
            piece = self._take(self._remaining)
            if piece is None:
                return None
            self._remaining -= len(piece)
            out = self._decode(piece)
            if not self._remaining:
                self._state = _ZS_CHECKSUM if self._last else _ZS_BLOCK_HEAD
            return out
        if state == _ZS_BLOCK_HEAD:  # RFC 8878 sec 3.1.1.2: 3 bytes, little-endian
            head = self._take_exact(3)
            if head is None:
                return None
            value = int.from_bytes(head, "little")
            self._last = bool(value & 1)
            block_type = (value >> 1) & 3
            size = value >> 3
            if block_type == 3:
                raise _Damage("unpack_corrupt", "zstd reserved block type")
            if size > _BLOCK_MAX:
                raise _Damage("unpack_corrupt", f"zstd block of {size} bytes")
            self._remaining = 1 if block_type == 1 else size  # RLE: one byte repeated
            out = self._decode(head)
            if self._remaining:
                self._state = _ZS_BLOCK
            elif self._last:
                self._state = _ZS_CHECKSUM
            return out
        if state == _ZS_MAGIC:
            magic = self._take_exact(4)
            if magic is None:
                return None
            if magic == _ZSTD_MAGIC:
                self._d = self._dctx.decompressobj()
                self._state = _ZS_HEADER
                return self._decode(magic)
            if int.from_bytes(magic, "little") & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                length = self._take_exact(4)
                if length is None:
                    self._untake(magic)
                    return None
                self._remaining = int.from_bytes(length, "little")
                self._state = _ZS_SKIP if self._remaining else _BETWEEN
                if not self._skip_noted:
                    self._skip_noted = True
                    self._note(
                        "unpack_skippable_frame",
                        f"zstd skippable frame of {self._remaining} bytes skipped",
                    )
                return b""
            raise _Damage("unpack_corrupt", "not zstd data (bad magic)")
        if state == _ZS_HEADER:  # RFC 8878 sec 3.1.1.1
            fhd = self._peek(1)
            if not fhd:
                return None
            flags = fhd[0]
            if flags & 0x08:
                raise _Damage("unpack_corrupt", "zstd frame header reserved bit set")
            single = bool(flags & 0x20)
            fcs = flags >> 6
            size = 1 + (0 if single else 1) + _DID_SIZE[flags & 3]
            size += _FCS_SIZE[fcs] if fcs or not single else 1
            header = self._take_exact(size)
            if header is None:
                return None
            self._checksum = bool(flags & 0x04)
            self._state = _ZS_BLOCK_HEAD
            return self._decode(header)
        if state == _ZS_CHECKSUM:
            tail = b""
            if self._checksum:
                got = self._take_exact(4)
                if got is None:
                    return None
                tail = got
            out = self._decode(tail) if tail else b""
            if not self._d.eof:
                raise _Damage("unpack_corrupt", "zstd frame did not end after its last block")
            self._untake(self._d.unused_data)
            self._frames += 1
            self._state = _BETWEEN
            return out
        # _ZS_SKIP
        piece = self._take(min(self._remaining, INPUT_SLICE))
        if piece is None:
            return None
        self._remaining -= len(piece)
        if not self._remaining:
            self._state = _BETWEEN
        return b""

    def _truncation(self) -> str | None:
        if self._state == _ZS_MAGIC:
            return "zstd input ended inside a frame magic"
        return super()._truncation()
