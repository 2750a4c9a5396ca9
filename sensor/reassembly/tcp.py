"""Per-direction TCP stream reassembly (reassembly stage).

Theory of operation
-------------------
One `TcpStream` is one direction of one TCP connection. The flow table feeds it every segment
of that direction (`segment`) and every acknowledgement the *other* direction sends
(`peer_ack`); it hands back, in stream order, `bytes` chunks and explicit `Gap(size)` markers
for bytes the capture never saw. Protocol parsers downstream turn a `Gap` into their
`gap(direction, n)` call. Nothing here raises on hostile input: odd things become `Anomaly`
values drained with `take_anomalies()`.

Sequence space. TCP sequence numbers are 32-bit and wrap (RFC 9293 section 3.4). Every
sequence number is mapped to a 64-bit *stream offset*: offset 0 is the first data byte, i.e.
ISN + 1 after a SYN (the SYN consumes one sequence number, RFC 9293 section 3.4), or the first
data segment seen when the capture picked the connection up mid-stream. A 32-bit value is
unwrapped relative to the next expected offset with serial-number arithmetic (RFC 1982): the
signed 32-bit distance from the expected value, so a stream may be any length as long as no
segment is more than 2**31 away from where the stream is. Data before offset 0 is ignored and
counted (`ignored_bytes`); the start never rewinds.

In order. A segment that starts exactly at the next expected offset is handed out as is (the
caller gets the very same `bytes` object). The fast path is one 32-bit comparison against
`_fast_seq` plus a room check; `_fast_seq` is -1 whenever something needs the slow path
(stream not started, ended, ...). A segment without payload returns the shared `NO_DATA`
constant: callers iterate over results and must never mutate them.

Out of order. Segments ahead of the next offset are kept in a dict offset -> bytes with a sorted
key list (bisect); the stored pieces never overlap. They are bounded per direction by
`StreamCaps.max_pending_bytes` / `max_pending_segments` and globally by the shared `Memcap`.
When a new segment does not fit, the stream *skips ahead*: the first hole is declared lost
(`Gap`), buffered data behind it is delivered, and so on until the segment fits (anomaly
`tcp_stream_cap` or `tcp_memcap`, once per stream). Memory is never the reason to drop data
silently, and an attacker cannot make the buffer grow without bound.

Overlaps. Bytes already delivered are kept, whatever comes later: every receiver has handed
them to its application too. For bytes buffered out of order, receivers differ (Ptacek &
Newsham 1998; Novak's target-based reassembly), and the stream's `policy` says which copy wins,
byte by byte, from where the segments that brought them start:
  "first"  (Windows, macOS): the buffered copy;
  "bsd"    the new copy where its segment starts before the buffered one's;
  "linux"  the new copy where its segment starts at or before the buffered one's (an in-order
           segment replaces the out-of-order bytes it covers).
Payload on a SYN (TCP Fast Open) is held, not delivered, until the stream goes on past it, the
peer acknowledges it, or the stream ends: a server without Fast Open (the default) drops it,
so a later copy of those bytes wins under "linux" and "bsd" and loses under "first".
`diverging(...)` tells, before a segment is applied, which other policies would keep other
bytes for it; the caller can `fork` the stream into those readings (see layer.py). When
overlapping bytes differ from the kept ones, `overlap_conflicts` counts the segment and the
anomaly `tcp_overlap_conflict` (the classic IDS-evasion signal) is emitted once per stream.
Identical re-sends are dropped and counted in `retransmitted_bytes` (every byte discarded
because it was already seen is counted there, conflicting or not). To compare a re-send of data
already *delivered*, the stream keeps references to recently delivered, not yet acknowledged
chunks (`StreamCaps.overlap_history` bytes at most; data the peer acknowledged has reached the
receiver, so a later different copy cannot change what it got).

Gaps. If the peer acknowledges bytes the capture never saw (ack beyond the next offset, up to
the highest offset seen in this direction, RFC 9293 section 3.10.7.4: an ACK for data never
sent is not acceptable), that data was lost by the capture: a `Gap` up to the ack or the first
buffered segment, whichever comes first, then buffered data continues. An ack beyond all data
seen is remembered and only turned into a tail `Gap` by `flush()` (it may just be cross-direction
reordering on a SPAN port, and a hostile peer must not make the sensor skip data that is still
coming). `flush()` ends the stream: holes become `Gap`s and all memory is released.

End. FIN marks the end offset (it consumes one sequence number after the data, RFC 9293
section 3.5); when the stream reaches it in order, `done` is set. Data beyond it is ignored
(anomaly `tcp_data_after_fin`). A FIN that would cut off data already seen is not believed
(`tcp_fin_conflict`). RST ends the stream at once (buffered data is delivered with gaps) if its
sequence number is not behind data already delivered; otherwise it is ignored
(`tcp_rst_invalid`: the receiver would discard it too, RFC 9293 section 3.10.7.4 / RFC 5961, and
accepting it would let a sender blind the sensor). `StreamCaps.depth` stops reassembly at that
stream offset (`tcp_depth_reached`, once).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass
from typing import Final

from sensor.anomaly import Anomaly
from sensor.decode.packet import TCP_FIN, TCP_RST, TCP_SYN

# Anomaly kinds produced by this module (stable names, see module docstring).
ANOMALY_STREAM_CAP: Final = "tcp_stream_cap"
ANOMALY_MEMCAP: Final = "tcp_memcap"
ANOMALY_OVERLAP_CONFLICT: Final = "tcp_overlap_conflict"
ANOMALY_DATA_AFTER_FIN: Final = "tcp_data_after_fin"
ANOMALY_DEPTH_REACHED: Final = "tcp_depth_reached"
ANOMALY_FIN_CONFLICT: Final = "tcp_fin_conflict"
ANOMALY_RST_INVALID: Final = "tcp_rst_invalid"
ANOMALY_SYN_MISMATCH: Final = "tcp_syn_mismatch"

_SEQ_MOD: Final = 1 << 32
_SEQ_MASK: Final = _SEQ_MOD - 1
_SEQ_HALF: Final = 1 << 31
_UNLIMITED: Final = 1 << 62  # an offset no stream reaches
_SLOW_FLAGS: Final = TCP_SYN | TCP_FIN | TCP_RST

# Overlap policies (see the module docstring), in the order readings are named after them.
POLICIES: Final = ("first", "linux", "bsd")


@dataclass(slots=True)
class Gap:
    """`size` bytes of the stream are missing here (never captured, or skipped at a cap)."""

    size: int


# Shared results for "nothing to hand out". Callers must treat every result as read-only.
NO_DATA: Final[list[bytes | Gap]] = []
NO_ANOMALIES: Final[list[Anomaly]] = []


@dataclass(frozen=True, slots=True)
class StreamCaps:
    # Out-of-order bytes buffered per direction; over it -> skip ahead (Gap) + tcp_stream_cap.
    max_pending_bytes: int = 4 * 1024 * 1024
    max_pending_segments: int = 2048
    # Stream offset (bytes per direction) where reassembly stops; 0 = unlimited.
    depth: int = 0
    # Delivered but unacknowledged bytes remembered (by reference) to detect conflicting
    # re-sends of already delivered data; 0 disables that check.
    overlap_history: int = 64 * 1024


class Memcap:
    """Global budget of buffered out-of-order bytes shared by all streams of the sensor."""

    __slots__ = ("limit", "peak", "refusals", "used")

    def __init__(self, limit: int = 256 * 1024 * 1024) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.refusals = 0

    def reserve(self, n: int) -> bool:
        used = self.used + n
        if used > self.limit:
            self.refusals += 1
            return False
        self.used = used
        if used > self.peak:
            self.peak = used
        return True

    def release(self, n: int) -> None:
        self.used -= n


class StreamTotals:
    """What every stream of the sensor added up: bytes lost to gaps as they are handed out,
    and, when a stream is released, its retransmitted bytes and overlap conflicts."""

    __slots__ = ("gap_bytes", "overlap_conflicts", "retransmitted_bytes")

    def __init__(self) -> None:
        self.gap_bytes = 0
        self.retransmitted_bytes = 0
        self.overlap_conflicts = 0

    def released(self, stream: TcpStream) -> None:
        self.retransmitted_bytes += stream.retransmitted_bytes
        self.overlap_conflicts += stream.overlap_conflicts


class TcpStream:
    """One direction of one TCP connection: segments in, in-order bytes and explicit gaps out."""

    __slots__ = (
        "_acked",
        "_anomalies",
        "_base",
        "_depth_off",
        "_fast_room",
        "_fast_seq",
        "_fin_off",
        "_hist",
        "_hist_cap",
        "_hist_len",
        "_hist_start",
        "_keys",
        "_last_ack",
        "_max_seen",
        "_memcap",
        "_next",
        "_origin",
        "_pending",
        "_reported",
        "_started",
        "_syn_data",
        "caps",
        "delivered",
        "done",
        "fin_seen",
        "gap_bytes",
        "holding",
        "ignored_bytes",
        "isn_seen",
        "overlap_conflicts",
        "pending_bytes",
        "policy",
        "retransmitted_bytes",
        "rst_seen",
        "stopped",
    )

    def __init__(self, caps: StreamCaps, memcap: Memcap, policy: str = "first") -> None:
        self.caps = caps
        self._memcap = memcap
        self.policy = policy
        # Read-only statistics.
        self.delivered = 0  # bytes handed out
        self.gap_bytes = 0  # bytes handed out as Gap
        self.retransmitted_bytes = 0  # bytes discarded because already delivered or buffered
        self.overlap_conflicts = 0  # segments whose overlap differed from the kept copy
        self.ignored_bytes = 0  # before the stream start, after FIN, or after RST
        self.pending_bytes = 0  # out-of-order bytes buffered now
        self.isn_seen = False
        self.fin_seen = False
        self.rst_seen = False
        self.done = False  # FIN reached in order, or RST
        self.stopped = False  # depth reached: nothing more is delivered
        # Sequence space.
        self._started = False
        self._base = 0  # 32-bit sequence number of stream offset 0
        self._next = 0  # next expected stream offset (everything below was delivered or gapped)
        self._max_seen = 0  # highest end offset of data accepted (may lag `_next`)
        self._acked = 0  # highest offset the peer acknowledged
        self._last_ack = -1  # last 32-bit ack processed (peer_ack fast path)
        self._fin_off: int | None = None
        self._depth_off = caps.depth if caps.depth > 0 else _UNLIMITED
        # Fast path: segment(seq == _fast_seq, len < _fast_room) is plain in-order delivery.
        self._fast_seq = -1
        self._fast_room = 0
        # Out-of-order storage: non-overlapping pieces, keys sorted.
        self._pending: dict[int, bytes] = {}
        self._keys: list[int] = []
        self._origin: dict[int, int] = {}  # piece offset -> offset its segment started at
        self._syn_data: bytes | None = None  # SYN payload held (module docstring)
        # Out-of-order bytes or SYN payload held: a segment may now be kept differently under
        # another policy (cheap to test per packet; `diverging` tells).
        self.holding = False
        # Delivered, unacknowledged chunks [_hist_start, _next) for overlap checks.
        self._hist: deque[bytes] = deque()
        self._hist_start = 0
        self._hist_len = 0
        self._hist_cap = caps.overlap_history
        self._anomalies: list[Anomaly] = []
        self._reported: tuple[str, ...] = ()

    # ----------------------------------------------------------------------------- public API

    def segment(self, seq: int, payload: bytes, flags: int, ts: float) -> list[bytes | Gap]:
        """One segment of this direction. The result is read-only (may be `NO_DATA`)."""
        if seq == self._fast_seq and not flags & _SLOW_FLAGS:
            n = len(payload)
            if n < self._fast_room:
                if not n:
                    return NO_DATA
                self._fast_room -= n
                self._fast_seq = (seq + n) & _SEQ_MASK
                self._next += n
                self.delivered += n
                self._hist.append(payload)
                self._hist_len += n
                if self._hist_len > self._hist_cap:
                    self._trim_history(self._next - self._hist_cap)
                return [payload]
        return self._segment_slow(seq, payload, flags, ts)

    def peer_ack(self, ack: int, ts: float) -> list[bytes | Gap]:
        """The other direction acknowledged everything below `ack` in this stream."""
        if ack == self._last_ack or not self._started:
            return NO_DATA
        self._last_ack = ack
        ack_off = self._offset(ack)
        out: list[bytes | Gap] = []
        if self._syn_data is not None and ack_off > 0:  # the peer took the SYN payload
            self._release_syn(out)
        if ack_off > self._acked:
            self._acked = ack_off
            if self._hist and ack_off > self._hist_start:
                self._trim_history(ack_off)
        # Only data the sender demonstrably sent can be declared lost (RFC 9293 3.10.7.4).
        limit = min(self._acked, self._max_seen, self._depth_off)
        if self._fin_off is not None:
            limit = min(limit, self._fin_off)
        if limit <= self._next or self.rst_seen or self.stopped:
            if out:
                self._refresh_fast()
            return out or NO_DATA
        keys = self._keys
        while self._next < limit:
            target = min(limit, keys[0]) if keys else limit
            self._gap(out, target - self._next)
            self._drain(out)
        self._check_end(ts)
        self._refresh_fast()
        return out

    def flush(self, ts: float) -> list[bytes | Gap]:
        """The flow is ending: everything buffered in order, holes as Gap; releases memory."""
        out: list[bytes | Gap] = []
        if self._syn_data is not None:
            self._release_syn(out)
        keys = self._keys
        while keys:
            self._gap(out, keys[0] - self._next)
            self._drain(out)
        if self._started and not self.stopped:
            tail = self._fin_off if self._fin_off is not None else self._acked
            tail = min(tail, self._depth_off)
            if tail > self._next:
                self._gap(out, tail - self._next)
        self._check_end(ts)
        self._clear_history()
        self._refresh_fast()
        return out or NO_DATA

    def take_anomalies(self) -> list[Anomaly]:
        found = self._anomalies
        if not found:
            return NO_ANOMALIES
        self._anomalies = []
        return found

    # ------------------------------------------------------------------------------ slow path

    def _segment_slow(self, seq: int, payload: bytes, flags: int, ts: float) -> list[bytes | Gap]:
        if self._syn_data is not None and not flags & TCP_SYN and (payload or flags & _SLOW_FLAGS):
            held: list[bytes | Gap] = []
            self._settle_syn(self._offset(seq & _SEQ_MASK), payload, held, ts)
            rest = self._segment_body(seq, payload, flags, ts)
            return held + rest if held else rest
        return self._segment_body(seq, payload, flags, ts)

    def _segment_body(self, seq: int, payload: bytes, flags: int, ts: float) -> list[bytes | Gap]:
        if not payload and not flags & _SLOW_FLAGS:
            return NO_DATA  # a pure ACK (or a segment before the stream started)
        if self.rst_seen:
            self.ignored_bytes += len(payload)
            return NO_DATA
        if flags & TCP_RST:
            return self._on_rst(seq, payload, ts)
        seq &= _SEQ_MASK
        if flags & TCP_SYN:
            if not self._started:
                # RFC 9293 3.4: the SYN occupies the ISN; data (TCP Fast Open) starts at ISN+1.
                self.isn_seen = True
                self._start((seq + 1) & _SEQ_MASK)
                if payload and not flags & (TCP_FIN | TCP_RST):
                    # Held until the stream says whether the receiver took it (docstring).
                    self._syn_data = payload[: min(len(payload), self._depth_off)]
                    self._max_seen = len(self._syn_data)
                    self._refresh_fast()
                    return NO_DATA
            elif self._syn_data is not None:
                self.retransmitted_bytes += len(payload)  # the SYN again: its payload is held
                return NO_DATA
            elif self._offset(seq) != -1:
                # A SYN for another sequence space (port reuse, injection): not this stream.
                self._report(ANOMALY_SYN_MISMATCH, f"syn seq {seq} does not match stream", ts)
                return NO_DATA
            else:
                self.isn_seen = True  # retransmitted SYN, or the SYN of a mid-stream pickup
            seq = (seq + 1) & _SEQ_MASK
        elif not self._started:
            if not payload and not flags & TCP_FIN:
                return NO_DATA
            self._start(seq)  # mid-stream pickup: the first data segment defines offset 0

        seg_off = off = self._offset(seq)
        end = off + len(payload)
        if flags & TCP_FIN:
            self._on_fin(end, ts)
        fin_off = self._fin_off
        if fin_off is not None and end > fin_off and end > off:
            excess = end - max(off, fin_off)
            self.ignored_bytes += excess
            self._report(ANOMALY_DATA_AFTER_FIN, f"{excess} bytes after FIN", ts)
            end = fin_off
        if off < 0:
            # Before the stream start: never rewind (mid-stream pickup) - count and drop.
            self.ignored_bytes += min(end, 0) - off
            off = 0
        if end > self._depth_off:
            end = self._depth_off
        conflict = False
        if off < self._next and off < end:
            old_end = min(end, self._next)
            if seg_off == self._next - 1 and len(payload) == 1:
                # Keep-alive: SND.NXT-1 with one garbage octet (RFC 9293 3.8.4), not evasion.
                self.retransmitted_bytes += 1
            else:
                conflict = self._check_old(off, old_end, seg_off, payload)
            off = old_end
        if off < end:
            return self._new_bytes(off, end, seg_off, payload, conflict, ts)
        if conflict:
            self._count_conflict(seg_off, ts)
        self._check_end(ts)
        self._refresh_fast()
        return NO_DATA

    # --------------------------------------------------------------------------- SYN payload

    def _settle_syn(self, seg_off: int, payload: bytes, out: list[bytes | Gap], ts: float) -> None:
        """The first segment after a SYN that carried data: if it brings other bytes for them,
        a receiver without Fast Open ("linux", "bsd") never took the SYN's; else deliver."""
        held = self._syn_data
        assert held is not None
        if self.policy != "first" and self._syn_differs(seg_off, payload):
            self._count_conflict(0, ts)  # ("first": counted as a conflict with delivered data)
            self._syn_data = None
            self.ignored_bytes += len(held)
            self._refresh_fast()
            return
        self._release_syn(out)

    def _syn_differs(self, seg_off: int, payload: bytes) -> bool:
        held = self._syn_data
        if held is None or seg_off >= len(held) or seg_off + len(payload) <= 0:
            return False
        start, stop = max(seg_off, 0), min(seg_off + len(payload), len(held))
        return payload[start - seg_off : stop - seg_off] != held[start:stop]

    def _release_syn(self, out: list[bytes | Gap]) -> None:
        held, self._syn_data = self._syn_data, None
        if held:
            self._emit(out, held)
            self._drain(out)
        self._refresh_fast()

    # ------------------------------------------------------------------------------ readings

    def diverging(self, seq: int, payload: bytes, flags: int) -> list[str]:
        """The other policies that would keep other bytes than this one for this segment,
        one per distinct outcome (named after the first policy in POLICIES giving it)."""
        if not payload or flags & TCP_RST or not self._started:
            return []
        seg_off = self._offset((seq + (1 if flags & TCP_SYN else 0)) & _SEQ_MASK)
        # Per overlapped held piece whose bytes differ: the piece's origin (None: SYN data).
        origins: list[int | None] = []
        if (
            self._syn_data is not None
            and not flags & TCP_SYN
            and self._syn_differs(seg_off, payload)
        ):
            origins.append(None)
        end = seg_off + len(payload)
        keys = self._keys
        for i in range(max(bisect_right(keys, seg_off) - 1, 0), len(keys)):
            k = keys[i]
            if k >= end:
                break
            kept = self._pending[k]
            lo, hi = max(k, seg_off), min(k + len(kept), end)
            if lo < hi and payload[lo - seg_off : hi - seg_off] != kept[lo - k : hi - k]:
                origins.append(self._origin.get(k, k))
        if not origins:
            return []
        mine = tuple(_new_wins(self.policy, seg_off, o) for o in origins)
        seen = {mine}
        out = []
        for policy in POLICIES:
            outcome = tuple(_new_wins(policy, seg_off, o) for o in origins)
            if outcome not in seen:
                seen.add(outcome)
                out.append(policy)
        return out

    def fork(self, policy: str) -> TcpStream | None:
        """A copy of this stream that reads overlaps by `policy` from now on; None when the
        memcap cannot hold a second copy of the buffered bytes."""
        if not self._memcap.reserve(self.pending_bytes):
            return None
        twin = TcpStream.__new__(TcpStream)
        for name in TcpStream.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.policy = policy
        twin._pending = dict(self._pending)
        twin._keys = list(self._keys)
        twin._origin = dict(self._origin)
        twin._hist = deque(self._hist)
        twin._anomalies = []
        return twin

    def _check_old(self, off: int, end: int, seg_off: int, payload: bytes) -> bool:
        """Bytes [off, end) were already delivered: drop them; True if they differ."""
        self.retransmitted_bytes += end - off
        start = max(off, self._hist_start)
        if start >= end or not self._hist:
            return False  # nothing kept to compare with (acknowledged, or beyond the history)
        parts: list[bytes] = []
        pos = self._hist_start
        for chunk in self._hist:
            chunk_end = pos + len(chunk)
            if chunk_end > start:
                parts.append(chunk[max(start - pos, 0) : end - pos])
            if chunk_end >= end:
                break
            pos = chunk_end
        return b"".join(parts) != payload[start - seg_off : end - seg_off]

    def _new_bytes(
        self, off: int, end: int, seg_off: int, payload: bytes, conflict: bool, ts: float
    ) -> list[bytes | Gap]:
        """Bytes [off, end) of a segment starting at `seg_off`, with off >= next."""
        if end > self._max_seen:
            self._max_seen = end
            self._last_ack = -1  # a repeated ack may now reveal a hole
        keys = self._keys
        pieces: list[tuple[int, bytes]]
        if keys and keys[0] < end:
            pieces = []
            conflict |= self._uncovered(off, end, seg_off, payload, pieces)
        elif off == seg_off and end - off == len(payload):
            pieces = [(off, payload)]
        else:
            pieces = [(off, payload[off - seg_off : end - seg_off])]
        if conflict:
            self._count_conflict(seg_off, ts)
        out: list[bytes | Gap] = []
        if pieces:
            if off == self._next:
                self._deliver_run(out, pieces)
            else:
                self._buffer(out, pieces, seg_off, ts)
        self._check_end(ts)
        self._refresh_fast()
        return out or NO_DATA

    def _uncovered(
        self, off: int, end: int, seg_off: int, payload: bytes, pieces: list[tuple[int, bytes]]
    ) -> bool:
        """Append to `pieces` the parts of [off, end) no buffered piece covers (first copy
        wins); count the covered bytes as retransmitted; True if any of them differ."""
        pending = self._pending
        keys = self._keys
        i = max(bisect_right(keys, off) - 1, 0)
        n = len(keys)
        cur = off
        conflict = False
        covered = 0
        replaced: list[int] = []
        while i < n:
            k = keys[i]
            i += 1
            if k >= end:
                break
            kept = pending[k]
            kept_end = k + len(kept)
            if kept_end <= cur:
                continue
            if k > cur:
                pieces.append((cur, payload[cur - seg_off : k - seg_off]))
                cur = k
            stop = min(kept_end, end)
            if payload[cur - seg_off : stop - seg_off] != kept[cur - k : stop - k]:
                conflict = True
                if _new_wins(self.policy, seg_off, self._origin.get(k, k)):
                    # The new copy takes [k, stop) (cur == k: see the policy rules).
                    replaced.append(k)
                    pieces.append((cur, payload[cur - seg_off : stop - seg_off]))
                    cur = stop
                    continue
            covered += stop - cur
            cur = stop
        if cur < end:
            pieces.append((cur, payload[cur - seg_off : end - seg_off]))
        self.retransmitted_bytes += covered
        for k in replaced:
            self._cut_front(k, end)
        return conflict

    def _cut_front(self, k: int, end: int) -> None:
        """Drop the buffered piece at k up to `end` (a newer copy replaces it); keep the rest."""
        kept = self._pending.pop(k)
        origin = self._origin.pop(k, k)
        self._keys.remove(k)
        released = len(kept)
        if k + len(kept) > end:
            rest = kept[end - k :]
            self._pending[end] = rest
            self._origin[end] = origin
            insort(self._keys, end)
            released -= len(rest)
        self.pending_bytes -= released
        self._memcap.release(released)

    def _count_conflict(self, seg_off: int, ts: float) -> None:
        self.overlap_conflicts += 1
        self._report(
            ANOMALY_OVERLAP_CONFLICT,
            f"segment at stream offset {seg_off} differs from data already seen",
            ts,
        )

    def _deliver_run(self, out: list[bytes | Gap], pieces: list[tuple[int, bytes]]) -> None:
        """Deliver `pieces` (the first starts at next) interleaved with the buffered pieces
        that fill the spaces between them, then whatever buffered data follows in order."""
        for _, data in pieces:
            self._drain(out)
            self._emit(out, data)
        self._drain(out)

    def _buffer(
        self, out: list[bytes | Gap], pieces: list[tuple[int, bytes]], seg_off: int, ts: float
    ) -> None:
        """Keep out-of-order pieces; if they do not fit, skip holes until they do."""
        need = sum(len(data) for _, data in pieces)
        caps = self.caps
        keys = self._keys
        first = pieces[0][0]
        while True:
            if (
                self.pending_bytes + need <= caps.max_pending_bytes
                and len(keys) + len(pieces) <= caps.max_pending_segments
            ):
                if self._memcap.reserve(need):
                    break
                self._report(ANOMALY_MEMCAP, "global reassembly memcap reached", ts)
            else:
                self._report(ANOMALY_STREAM_CAP, "per-stream out-of-order cap reached", ts)
            # Declare the first hole lost and move on (the caller sees a Gap).
            if keys and keys[0] < first:
                self._gap(out, keys[0] - self._next)
                self._drain(out)
            else:
                self._gap(out, first - self._next)
            if self._next == first:
                self._deliver_run(out, pieces)
                return
        pending = self._pending
        origin = self._origin
        for p_off, data in pieces:
            insort(keys, p_off)
            pending[p_off] = data
            origin[p_off] = seg_off
        self.pending_bytes += need

    def _drain(self, out: list[bytes | Gap]) -> None:
        """Deliver buffered pieces while they continue the stream exactly at next."""
        keys = self._keys
        if not keys or keys[0] != self._next:
            return
        pending = self._pending
        count = 0
        released = 0
        origin = self._origin
        for k in keys:
            if k != self._next:
                break
            data = pending.pop(k)
            origin.pop(k, None)
            self._emit(out, data)
            released += len(data)
            count += 1
        del keys[:count]
        self.pending_bytes -= released
        self._memcap.release(released)

    def _emit(self, out: list[bytes | Gap], data: bytes) -> None:
        out.append(data)
        n = len(data)
        self._next += n
        self.delivered += n
        self._hist.append(data)
        self._hist_len += n
        if self._hist_len > self._hist_cap:
            self._trim_history(self._next - self._hist_cap)

    def _gap(self, out: list[bytes | Gap], size: int) -> None:
        if size <= 0:
            return
        out.append(Gap(size))
        self.gap_bytes += size
        self._next += size
        self._clear_history()

    def _on_fin(self, end: int, ts: float) -> None:
        # RFC 9293 3.5: FIN follows the last data byte and consumes one sequence number.
        self.fin_seen = True
        if self._fin_off is None:
            if end >= max(self._max_seen, self._next):
                self._fin_off = end
                return
        elif end == self._fin_off:
            return
        # First copy wins for the end too: a FIN that would cut off data already seen, or
        # that moves an earlier FIN, is not believed.
        self._report(ANOMALY_FIN_CONFLICT, f"FIN at stream offset {end} conflicts", ts)

    def _on_rst(self, seq: int, payload: bytes, ts: float) -> list[bytes | Gap]:
        # RFC 9293 3.5.3: data on a RST is diagnostic text, not stream data.
        self.ignored_bytes += len(payload)
        if self._started and self._offset(seq & _SEQ_MASK) < self._next:
            # Behind data already delivered: the receiver would not accept it (RFC 9293
            # 3.10.7.4, RFC 5961 3.2); believing it would let a sender blind the sensor.
            self._report(ANOMALY_RST_INVALID, "RST behind delivered data ignored", ts)
            return NO_DATA
        self.rst_seen = True
        self.done = True
        out: list[bytes | Gap] = []
        keys = self._keys
        while keys:
            self._gap(out, keys[0] - self._next)
            self._drain(out)
        self._refresh_fast()
        return out or NO_DATA

    def _check_end(self, ts: float) -> None:
        if not self.done and self._fin_off is not None and self._next >= self._fin_off:
            self.done = True
        if not self.stopped and self._next >= self._depth_off:
            self.stopped = True
            self._report(ANOMALY_DEPTH_REACHED, f"depth {self._depth_off} reached", ts)
            self._memcap.release(self.pending_bytes)
            self.pending_bytes = 0
            self._pending.clear()
            self._keys.clear()
            self._origin.clear()
            self._clear_history()

    # ---------------------------------------------------------------------------- internals

    def _start(self, base: int) -> None:
        self._started = True
        self._base = base
        self._refresh_fast()

    def _offset(self, seq: int) -> int:
        """Unwrap a 32-bit sequence number to a stream offset near `_next` (RFC 1982)."""
        d = (seq - self._base - self._next) & _SEQ_MASK
        if d >= _SEQ_HALF:
            d -= _SEQ_MOD
        return self._next + d

    def _report(self, kind: str, detail: str, ts: float) -> None:
        if kind not in self._reported:
            self._reported += (kind,)
            self._anomalies.append(Anomaly(kind, detail, ts))

    def _clear_history(self) -> None:
        self._hist.clear()
        self._hist_len = 0
        self._hist_start = self._next

    def _trim_history(self, below: int) -> None:
        hist = self._hist
        while hist and self._hist_start + len(hist[0]) <= below:
            chunk = hist.popleft()
            self._hist_start += len(chunk)
            self._hist_len -= len(chunk)

    def _refresh_fast(self) -> None:
        self.holding = bool(self._keys) or self._syn_data is not None
        if not self._started or self.done or self.stopped or self._syn_data is not None:
            self._fast_seq = -1
            return
        nxt = self._next
        room = self._depth_off - nxt
        if self._keys:
            room = min(room, self._keys[0] - nxt)
        if self._fin_off is not None:
            room = min(room, self._fin_off - nxt)
        self._fast_room = room
        self._fast_seq = (self._base + nxt) & _SEQ_MASK


def _new_wins(policy: str, seg_off: int, origin: int | None) -> bool:
    """Does a new copy starting at `seg_off` replace buffered bytes whose segment started at
    `origin` (None: SYN payload) under `policy`? See the module docstring."""
    if policy == "first":
        return False
    if origin is None:
        return True  # a receiver without Fast Open never took the SYN's bytes
    return seg_off <= origin if policy == "linux" else seg_off < origin
