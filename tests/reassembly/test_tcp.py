"""Tests for sensor.reassembly.tcp: one direction of a TCP connection in, ordered bytes out."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcaps._lib.overlap import received
from sensor.decode.packet import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN
from sensor.reassembly.tcp import NO_DATA, POLICIES, Gap, Memcap, StreamCaps, TcpStream

MOD = 1 << 32


def new(caps: StreamCaps | None = None, memcap: Memcap | None = None) -> TcpStream:
    return TcpStream(caps or StreamCaps(), memcap or Memcap())


def joined(out: list[bytes | Gap]) -> bytes:
    assert not any(isinstance(x, Gap) for x in out), out
    return b"".join(x for x in out if isinstance(x, bytes))


def kinds(s: TcpStream) -> list[str]:
    return [a.kind for a in s.take_anomalies()]


# ----------------------------------------------------------------------------- sequence space


def test_syn_sets_isn_and_data_starts_after_it() -> None:
    s = new()
    assert s.segment(1000, b"", TCP_SYN, 0.0) is NO_DATA
    assert s.isn_seen
    assert s.segment(1001, b"abc", TCP_ACK, 0.1) == [b"abc"]
    assert s.delivered == 3


def test_sequence_wraps_across_2_pow_32() -> None:
    s = new()
    isn = MOD - 3
    s.segment(isn, b"", TCP_SYN, 0.0)
    # data offset 0 is at seq 2**32-2; the 5 bytes cross the wrap.
    assert s.segment(MOD - 2, b"hello", TCP_ACK, 0.0) == [b"hello"]
    assert s.segment(3, b" world", TCP_ACK, 0.0) == [b" world"]
    # out of order across the wrap as well
    assert s.segment(12, b"!", TCP_ACK, 0.0) == NO_DATA
    assert s.segment(9, b"abc", TCP_ACK, 0.0) == [b"abc", b"!"]
    assert s.delivered == 15


def test_syn_with_data_tcp_fast_open_is_delivered() -> None:
    """SYN payload is held until the stream goes on past it (or the peer acknowledges it)."""
    s = new()
    assert s.segment(MOD - 1, b"GET /", TCP_SYN, 0.0) == []
    assert s.segment(5, b" HTTP", TCP_ACK, 0.0) == [b"GET /", b" HTTP"]
    s = new()
    s.segment(MOD - 1, b"GET /", TCP_SYN, 0.0)
    assert s.peer_ack(5, 0.0) == [b"GET /"]  # the server acknowledged the SYN's data
    s = new()
    s.segment(MOD - 1, b"GET /", TCP_SYN, 0.0)
    assert s.flush(0.0) == [b"GET /"]


@pytest.mark.parametrize(("policy", "kept"), [("first", b"JUNK!"), ("linux", b"REAL!")])
def test_syn_payload_and_a_later_copy(policy: str, kept: bytes) -> None:
    """A server without Fast Open drops SYN data: the client's later copy is what it reads."""
    s = TcpStream(StreamCaps(), Memcap(), policy)
    s.segment(MOD - 1, b"JUNK!", TCP_SYN, 0.0)
    assert s.diverging(0, b"REAL!", TCP_ACK) == (["first"] if policy == "linux" else ["linux"])
    got = s.segment(0, b"REAL!", TCP_ACK, 0.0) + s.segment(5, b" more", TCP_ACK, 0.0)
    assert b"".join(x for x in got if isinstance(x, bytes)) == kept + b" more"
    assert s.overlap_conflicts == 1


# Overlap shapes: "HE" is delivered (the stream is at 2), a junk copy arrives out of order, then
# the real one, and last (when the real one starts after 2) the filler ".." up to it.
SHAPES = {
    # name: (junk offset, junk, real offset, real)
    "in-order-covers": (4, b"XXXX", 2, b"..data"),  # the classic: in-order copy over junk
    "ofo-exact": (4, b"XXXX", 4, b"data"),  # same start, same length
    "ofo-real-before": (6, b"XX", 4, b"data"),  # real covers junk from the left
    "junk-covers-real": (4, b"XXXXXX", 6, b"ta"),  # nobody replaces a copy it starts inside
    "partial-tail": (6, b"XXXX", 4, b"data"),  # junk sticks out past the real copy
}
EXPECT = {  # shape -> policy -> bytes from offset 2 on
    "in-order-covers": {"first": b"..XXXX", "linux": b"..data", "bsd": b"..data"},
    "ofo-exact": {"first": b"..XXXX", "linux": b"..data", "bsd": b"..XXXX"},
    "ofo-real-before": {"first": b"..daXX", "linux": b"..data", "bsd": b"..data"},
    "junk-covers-real": {"first": b"..XXXXXX", "linux": b"..XXXXXX", "bsd": b"..XXXXXX"},
    "partial-tail": {"first": b"..daXXXX", "linux": b"..dataXX", "bsd": b"..dataXX"},
}


@pytest.mark.parametrize("policy", ["first", "linux", "bsd"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_overlap_policies_per_shape(shape: str, policy: str) -> None:
    junk_off, junk, real_off, real = SHAPES[shape]
    s = TcpStream(StreamCaps(), Memcap(), policy)
    got = s.segment(MOD - 1, b"", TCP_SYN, 0.0) + s.segment(0, b"HE", TCP_ACK, 0.0)
    got += s.segment(junk_off, junk, TCP_ACK, 0.0)
    got += s.segment(real_off, real, TCP_ACK, 0.0)
    if real_off > 2:
        got += s.segment(2, b"..", TCP_ACK, 0.0)
    got += s.flush(0.0)
    assert b"".join(x for x in got if isinstance(x, bytes)) == b"HE" + EXPECT[shape][policy]


def test_diverging_names_each_distinct_outcome_once() -> None:
    s = new()
    s.segment(MOD - 1, b"", TCP_SYN, 0.0)
    s.segment(4, b"XXXX", TCP_ACK, 0.0)
    assert s.diverging(4, b"data", TCP_ACK) == ["linux"]  # bsd keeps the old copy, as first
    assert s.diverging(2, b"..data", TCP_ACK) == ["linux"]  # linux and bsd agree: one reading
    assert s.diverging(4, b"XXXX", TCP_ACK) == []  # the same bytes: nothing diverges
    twin = s.fork("linux")
    assert twin is not None and twin.policy == "linux"
    assert b"".join(twin.segment(0, b"..data", TCP_ACK, 0.0)) == b"..dataXX"
    assert b"".join(s.segment(0, b"..data", TCP_ACK, 0.0)) == b"..daXXXX"


def test_mid_stream_pickup_starts_at_first_data_and_never_rewinds() -> None:
    s = new()
    assert s.segment(5000, b"", TCP_ACK, 0.0) is NO_DATA  # pure ACK does not start it
    assert s.segment(5000, b"world", TCP_ACK, 0.0) == [b"world"]
    assert not s.isn_seen
    assert s.segment(4995, b"hello", TCP_ACK, 0.0) is NO_DATA  # before the start: ignored
    assert s.ignored_bytes == 5
    assert s.segment(4998, b"loworld!!", TCP_ACK, 0.0) == [b"!!"]  # only the new tail is used
    assert s.ignored_bytes == 7 and s.retransmitted_bytes == 5
    assert s.delivered == 7


def test_late_syn_of_a_mid_stream_pickup_is_accepted_other_syn_is_not() -> None:
    s = new()
    s.segment(101, b"abc", TCP_ACK, 0.0)
    assert s.segment(100, b"", TCP_SYN, 0.0) is NO_DATA
    assert s.isn_seen
    assert s.segment(77777, b"x", TCP_SYN, 0.0) is NO_DATA
    assert kinds(s) == ["tcp_syn_mismatch"]


# ------------------------------------------------------------------------------ in-order path


def test_fast_path_returns_the_payload_object_and_shared_empty_result() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    payload = b"x" * 1460
    out = s.segment(1, payload, TCP_ACK, 0.0)
    assert out == [payload] and out[0] is payload
    assert s.segment(1461, b"", TCP_ACK, 0.0) is NO_DATA
    assert s.peer_ack(1461, 0.0) is NO_DATA
    assert s.take_anomalies() == []


# ------------------------------------------------------------------- out of order, overlaps


def test_out_of_order_is_buffered_until_the_hole_fills() -> None:
    mc = Memcap()
    s = new(memcap=mc)
    s.segment(0, b"", TCP_SYN, 0.0)
    assert s.segment(7, b"ghi", TCP_ACK, 0.0) is NO_DATA
    assert s.segment(4, b"def", TCP_ACK, 0.0) is NO_DATA
    assert s.pending_bytes == 6 and mc.used == 6
    assert s.segment(1, b"abc", TCP_ACK, 0.0) == [b"abc", b"def", b"ghi"]
    assert s.pending_bytes == 0 and mc.used == 0 and mc.peak == 6


def test_exact_retransmission_is_dropped_and_counted() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcd", TCP_ACK, 0.0)
    assert s.segment(1, b"abcd", TCP_ACK, 0.0) is NO_DATA
    s.segment(9, b"ijk", TCP_ACK, 0.0)
    assert s.segment(9, b"ijk", TCP_ACK, 0.0) is NO_DATA
    assert s.retransmitted_bytes == 7
    assert s.overlap_conflicts == 0 and s.take_anomalies() == []


def test_partial_overlap_uses_only_new_bytes() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcd", TCP_ACK, 0.0)
    assert s.segment(3, b"cdef", TCP_ACK, 0.0) == [b"ef"]
    # a segment spanning two buffered pieces only contributes the bytes between them
    s.segment(9, b"ij", TCP_ACK, 0.0)
    s.segment(13, b"mn", TCP_ACK, 0.0)
    assert s.segment(8, b"hijklmnop", TCP_ACK, 0.0) is NO_DATA
    assert s.segment(7, b"g", TCP_ACK, 0.0) == [b"g", b"h", b"ij", b"kl", b"mn", b"op"]
    assert s.retransmitted_bytes == 2 + 4


def test_conflicting_overlap_with_delivered_data_first_copy_wins() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"GOOD", TCP_ACK, 0.0)
    assert s.segment(1, b"EVIL!", TCP_ACK, 0.5) == [b"!"]
    assert s.overlap_conflicts == 1
    (a,) = s.take_anomalies()
    assert a.kind == "tcp_overlap_conflict" and a.ts == 0.5 and b"GOOD" not in a.detail.encode()
    # every conflicting segment is counted, the anomaly is reported once per stream
    assert s.segment(2, b"XX", TCP_ACK, 0.0) is NO_DATA
    assert s.overlap_conflicts == 2 and s.take_anomalies() == []


def test_conflicting_overlap_with_buffered_data_first_copy_wins() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(5, b"BENIGN", TCP_ACK, 0.0)
    s.segment(5, b"MALICE", TCP_ACK, 0.0)
    assert kinds(s) == ["tcp_overlap_conflict"]
    assert s.segment(1, b"1234", TCP_ACK, 0.0) == [b"1234", b"BENIGN"]


def test_acknowledged_data_is_no_longer_compared() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcd", TCP_ACK, 0.0)
    s.peer_ack(5, 0.0)  # the receiver has it: a different re-send cannot change what it got
    s.segment(1, b"wxyz", TCP_ACK, 0.0)
    assert s.overlap_conflicts == 0 and s.retransmitted_bytes == 4


def test_keepalive_garbage_octet_is_not_a_conflict() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcd", TCP_ACK, 0.0)
    assert s.segment(4, b"\x00", TCP_ACK, 0.0) is NO_DATA  # RFC 9293 3.8.4
    assert s.overlap_conflicts == 0


# --------------------------------------------------------------------------------- gaps, end


def test_peer_ack_over_a_hole_yields_gap_then_buffered_data() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"ab", TCP_ACK, 0.0)
    s.segment(11, b"klm", TCP_ACK, 0.0)  # bytes 3..10 lost by the capture
    s.segment(18, b"rs", TCP_ACK, 0.0)  # and 14..17
    out = s.peer_ack(16, 0.0)
    assert out == [Gap(8), b"klm", Gap(2)]
    assert s.gap_bytes == 10
    assert s.segment(16, b"pq", TCP_ACK, 0.0) == [b"pq", b"rs"]


def test_peer_ack_beyond_all_data_seen_waits_for_flush() -> None:
    mc = Memcap()
    s = new(memcap=mc)
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"ab", TCP_ACK, 0.0)
    assert s.peer_ack(11, 0.0) is NO_DATA  # maybe just reordered across directions
    assert s.segment(3, b"cdefghij", TCP_ACK, 0.0) == [b"cdefghij"]
    assert s.peer_ack(21, 0.0) is NO_DATA
    assert s.flush(1.0) == [Gap(10)]
    assert mc.used == 0


def test_duplicate_ack_reveals_hole_once_data_beyond_it_is_seen() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    assert s.peer_ack(5, 0.0) is NO_DATA  # nothing seen beyond offset 0 yet
    s.segment(7, b"gh", TCP_ACK, 0.0)
    assert s.peer_ack(5, 0.0) == [Gap(4)]  # same ack value again, now provably lost
    assert s.segment(5, b"ef", TCP_ACK, 0.0) == [b"ef", b"gh"]


def test_overlap_history_cap_bounds_what_is_compared() -> None:
    s = new(StreamCaps(overlap_history=4))
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcd", TCP_ACK, 0.0)
    s.segment(5, b"efgh", TCP_ACK, 0.0)
    s.segment(1, b"XXXX", TCP_ACK, 0.0)  # beyond the history: cannot be compared
    assert s.overlap_conflicts == 0
    s.segment(5, b"XXXX", TCP_ACK, 0.0)
    assert s.overlap_conflicts == 1 and s.retransmitted_bytes == 8


def test_flush_turns_holes_into_gaps_and_releases_memcap() -> None:
    mc = Memcap()
    a, b = new(memcap=mc), new(memcap=mc)
    for s in (a, b):
        s.segment(0, b"", TCP_SYN, 0.0)
        s.segment(1, b"a", TCP_ACK, 0.0)
        s.segment(5, b"efg", TCP_ACK, 0.0)
        s.segment(10, b"jk", TCP_ACK, 0.0)
    assert mc.used == 10
    assert a.flush(1.0) == [Gap(3), b"efg", Gap(2), b"jk"]
    assert mc.used == 5 and a.pending_bytes == 0
    b.flush(1.0)
    assert mc.used == 0


def test_fin_marks_end_and_data_after_fin_is_ignored() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    assert s.segment(4, b"def", TCP_ACK | TCP_FIN, 0.0) is NO_DATA  # FIN before the hole fills
    assert s.fin_seen and not s.done
    assert s.segment(1, b"abc", TCP_ACK, 0.0) == [b"abc", b"def"]
    assert s.done
    assert s.segment(8, b"", TCP_ACK, 0.0) is NO_DATA  # ACK after FIN (FIN took seq 7)
    assert s.take_anomalies() == []
    assert s.segment(7, b"more", TCP_ACK, 2.0) is NO_DATA
    assert kinds(s) == ["tcp_data_after_fin"] and s.ignored_bytes == 4


def test_fin_missing_data_is_a_gap_at_flush() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abc", TCP_ACK, 0.0)
    s.segment(10, b"", TCP_FIN | TCP_ACK, 0.0)
    assert s.flush(1.0) == [Gap(6)] and s.done


def test_fin_that_would_cut_off_seen_data_is_not_believed() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcdef", TCP_ACK, 0.0)
    s.segment(3, b"", TCP_FIN, 0.0)
    assert kinds(s) == ["tcp_fin_conflict"] and not s.done
    assert s.segment(7, b"g", TCP_ACK, 0.0) == [b"g"]


def test_rst_ends_stream_and_delivers_buffered_data() -> None:
    mc = Memcap()
    s = new(memcap=mc)
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"ab", TCP_ACK, 0.0)
    s.segment(6, b"fg", TCP_ACK, 0.0)
    assert s.segment(8, b"", TCP_RST, 0.0) == [Gap(3), b"fg"]
    assert s.rst_seen and s.done and mc.used == 0
    assert s.segment(3, b"cde", TCP_ACK, 0.0) is NO_DATA


def test_rst_behind_delivered_data_is_ignored() -> None:
    s = new()
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"abcdef", TCP_ACK, 0.0)
    assert s.segment(2, b"", TCP_RST, 0.0) is NO_DATA
    assert kinds(s) == ["tcp_rst_invalid"] and not s.done
    assert s.segment(7, b"g", TCP_ACK, 0.0) == [b"g"]


# --------------------------------------------------------------------------------------- caps


def test_depth_stops_reassembly_once() -> None:
    mc = Memcap()
    s = new(StreamCaps(depth=5), mc)
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(9, b"zz", TCP_ACK, 0.0)  # beyond depth: never buffered
    assert mc.used == 0
    assert s.segment(1, b"abc", TCP_ACK, 0.0) == [b"abc"]
    assert s.segment(4, b"defg", TCP_ACK, 0.0) == [b"de"]
    assert s.stopped and s.delivered == 5
    assert s.segment(8, b"hij", TCP_ACK, 0.0) is NO_DATA
    assert kinds(s) == ["tcp_depth_reached"]
    assert s.flush(1.0) is NO_DATA


def test_depth_with_out_of_order_data() -> None:
    s = new(StreamCaps(depth=4))
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(3, b"cdef", TCP_ACK, 0.0)
    assert s.segment(1, b"ab", TCP_ACK, 0.0) == [b"ab", b"cd"]
    assert s.stopped and s.pending_bytes == 0


def test_pending_bytes_cap_skips_ahead_with_gap() -> None:
    s = new(StreamCaps(max_pending_bytes=4))
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(1, b"a", TCP_ACK, 0.0)
    assert s.segment(5, b"efg", TCP_ACK, 0.0) is NO_DATA
    out = s.segment(10, b"jk", TCP_ACK, 0.0)  # 3 + 2 > 4: the first hole is given up
    assert out == [Gap(3), b"efg"]
    assert kinds(s) == ["tcp_stream_cap"]
    assert s.pending_bytes == 2
    assert s.segment(8, b"hi", TCP_ACK, 0.0) == [b"hi", b"jk"]


def test_segment_count_cap_and_oversized_segment() -> None:
    s = new(StreamCaps(max_pending_segments=1, max_pending_bytes=10))
    s.segment(0, b"", TCP_SYN, 0.0)
    s.segment(3, b"c", TCP_ACK, 0.0)
    assert s.segment(5, b"e", TCP_ACK, 0.0) == [Gap(2), b"c"]
    # larger than the whole budget: skip straight to it
    assert s.segment(20, b"x" * 11, TCP_ACK, 0.0) == [Gap(1), b"e", Gap(14), b"x" * 11]
    assert s.gap_bytes == 17 and s.pending_bytes == 0


def test_memcap_refusal_skips_ahead_and_is_shared() -> None:
    mc = Memcap(limit=4)
    a, b = new(memcap=mc), new(memcap=mc)
    for s in (a, b):
        s.segment(0, b"", TCP_SYN, 0.0)
    a.segment(3, b"cde", TCP_ACK, 0.0)
    assert mc.used == 3
    assert b.segment(5, b"ef", TCP_ACK, 0.0) == [Gap(4), b"ef"]
    assert kinds(b) == ["tcp_memcap"] and mc.refusals == 1
    assert a.flush(1.0) == [Gap(2), b"cde"]
    assert mc.used == 0


# ------------------------------------------------------------------------------- properties


@st.composite
def scenario(draw: st.DrawFn) -> tuple[bytes, int, bool, bool, list[tuple[int, int]]]:
    data = draw(st.binary(min_size=1, max_size=600))
    isn = draw(st.one_of(st.integers(MOD - 700, MOD - 1), st.integers(0, MOD - 1)))
    with_syn = draw(st.booleans())
    with_fin = draw(st.booleans())
    n = len(data)
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=40)) if n > 1 else set())
    bounds = [0, *cuts, n]
    segs = list(pairwise(bounds))
    # duplicates and overlapping re-segmentations of the same bytes
    extra = draw(
        st.lists(
            st.integers(0, n - 1).flatmap(lambda a: st.tuples(st.just(a), st.integers(a + 1, n))),
            max_size=20,
        )
    )
    dups = draw(st.lists(st.sampled_from(segs), max_size=10))
    rest = draw(st.permutations(segs[1:] + extra + dups))
    order = [segs[0], *rest] if not with_syn else draw(st.permutations(segs + extra + dups))
    return data, isn, with_syn, with_fin, order


def feed(
    s: TcpStream, data: bytes, isn: int, with_syn: bool, with_fin: bool, a: int, b: int
) -> list[bytes | Gap]:
    base = isn + 1 if with_syn else isn
    flags = TCP_ACK | (TCP_FIN if with_fin and b == len(data) else 0)
    return list(s.segment((base + a) % MOD, data[a:b], flags, 0.0))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_property_any_segmentation_reorder_duplication_reassembles(
    sc: tuple[bytes, int, bool, bool, list[tuple[int, int]]],
) -> None:
    data, isn, with_syn, with_fin, order = sc
    for policy in POLICIES:  # copies never conflict here: every policy reads the same
        mc = Memcap()
        s = TcpStream(StreamCaps(), mc, policy)
        out: list[bytes | Gap] = []
        if with_syn:
            out += s.segment(isn, b"", TCP_SYN, 0.0)
        for a, b in order:
            out += feed(s, data, isn, with_syn, with_fin, a, b)
        out += s.flush(1.0)
        assert joined(out) == data
        assert s.delivered == len(data) and s.gap_bytes == 0
        assert s.take_anomalies() == [] and s.overlap_conflicts == 0
        assert mc.used == 0 and s.pending_bytes == 0
        assert s.done == with_fin


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_dropped_segment_is_exactly_one_gap(d: st.DataObject) -> None:
    data = d.draw(st.binary(min_size=2, max_size=500))
    isn = d.draw(st.integers(MOD - 600, MOD - 1))
    with_syn = d.draw(st.booleans())
    with_fin = d.draw(st.booleans())
    n = len(data)
    cuts = sorted(d.draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=30)))
    bounds = [0, *cuts, n]
    segs = list(pairwise(bounds))
    lost = d.draw(st.integers(0 if with_syn else 1, len(segs) - 1))
    la, lb = segs[lost]
    kept = segs[:lost] + segs[lost + 1 :]
    if with_syn:
        order = d.draw(st.permutations(kept))
    else:
        order = [kept[0], *d.draw(st.permutations(kept[1:]))]
    base = isn + 1 if with_syn else isn
    # Acking the FIN (n + 1) is only unambiguous when the FIN itself was captured.
    ack_to = d.draw(st.sampled_from([lb, n, n + 1] if with_fin and lb < n else [lb, n]))
    # The receiver can only acknowledge what was sent: the ack follows every kept segment below
    # it (an ack overtaking data is cross-direction reordering, a documented limitation).
    earliest = max([i + 1 for i, (_, b) in enumerate(order) if b <= ack_to], default=0)
    ack_at = d.draw(st.integers(max(earliest, 0 if with_syn else 1), len(order)))
    mc = Memcap()
    s = new(memcap=mc)
    out: list[bytes | Gap] = []
    if with_syn:
        out += s.segment(isn, b"", TCP_SYN, 0.0)
    for i, (a, b) in enumerate(order):
        if i == ack_at:
            out += s.peer_ack((base + ack_to) % MOD, 0.0)
        out += feed(s, data, isn, with_syn, with_fin, a, b)
    if ack_at == len(order):
        out += s.peer_ack((base + ack_to) % MOD, 0.0)
    out += s.flush(1.0)
    gaps = [i for i, x in enumerate(out) if isinstance(x, Gap)]
    assert len(gaps) == 1
    g = gaps[0]
    assert out[g] == Gap(lb - la)
    assert b"".join(x for x in out[:g] if isinstance(x, bytes)) == data[:la]
    assert b"".join(x for x in out[g + 1 :] if isinstance(x, bytes)) == data[lb:]
    assert mc.used == 0 and s.gap_bytes == lb - la and s.delivered == n - (lb - la)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(1, 25)).map(lambda t: (t[0], t[0] + t[1])),
        min_size=1,
        max_size=12,
    ).map(lambda segs: [*segs, (0, max(e for _, e in segs))])  # a last copy fills every hole
)
def test_property_policies_match_a_byte_model(segments: list[tuple[int, int]]) -> None:
    """Every copy differs from every other (its own byte value): what each policy delivers is
    what the byte model says, and the memory is released."""
    for policy in POLICIES:
        mc = Memcap()
        s = TcpStream(StreamCaps(), mc, policy)
        out = list(s.segment(MOD - 1, b"", TCP_SYN, 0.0))  # results are read-only
        for i, (start, end) in enumerate(segments):
            out += s.segment(start, bytes([i + 1]) * (end - start), TCP_ACK, 0.0)
        out += s.flush(0.0)
        copies = [(a, bytes([i + 1]) * (b - a), False) for i, (a, b) in enumerate(segments)]
        assert joined(out) == received(policy, copies), policy
        assert mc.used == 0
