"""Tests for sensor.protocols.http: framing, pairing, gaps, caps, detection, segmentation."""

from __future__ import annotations

import gzip
import http.client
import http.server
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.protocols.base import (
    Direction,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    Opaque,
    ProtocolViolation,
    Tunnel,
    TunnelData,
)
from sensor.protocols.http import (
    HttpCaps,
    HttpParser,
    HttpRequestHead,
    HttpResponseHead,
    HttpTransaction,
    HttpViolation,
    detect,
)
from tests.protocols.feeding import (
    TS,
    C,
    S,
    Segment,
    assert_same_events,
    draw_splits,
    feed_split,
    fuzz_feed,
    kinds,
    merge_adjacent,
    of,
    runner,
)

# --- helpers ------------------------------------------------------------------------------------


def merge(events: list[object]) -> list[object]:
    """Merge adjacent ObjectChunk of the same message and TunnelData of the same direction:
    segmentation must not matter otherwise. The events of second readings (objects with a
    `reading`) interleave with the first reading's as the segments fall: they are compared as
    a stream of their own, after the rest."""
    second = [e for e in events if getattr(e, "reading", None) is not None]
    events = [e for e in events if getattr(e, "reading", None) is None] + second
    events = merge_adjacent(events, ObjectChunk, key=lambda e: (e.txid, e.direction, e.reading))
    return merge_adjacent(events, TunnelData, key=lambda e: e.direction)


run = runner(HttpParser, max_cuts=6, merge=merge)


def body(
    events: list[object], txid: int, direction: Direction, reading: str | None = None
) -> bytes:
    """The bytes of one object: a message's body, or one of its other readings."""
    return b"".join(
        e.data
        for e in events
        if isinstance(e, ObjectChunk)
        and (e.txid, e.direction, e.reading) == (txid, direction, reading)
    )


# --- sample conversations (wire order) ----------------------------------------------------------

SAMPLES: dict[str, list[Segment]] = {
    "get_cl": [
        (C, b"GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n"),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"),
    ],
    "pipelined": [
        (
            C,
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nBB\r\n0\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
        ),
    ],
    "chunked_lenient": [
        (
            C,
            b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"A;name=value\r\n0123456789\r\n"
            b"  1f  \n" + b"x" * 31 + b"\n"
            b"a ; ext\r\n" + b"y" * 10 + b"\r\n"
            b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        ),
        (S, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ],
    "expect_wait": [
        (C, b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        (S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (C, b"data"),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ],
    "expect_no_wait": [
        (C, b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"),
        (S, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ],
    "interims": [
        (C, b"GET / HTTP/1.1\r\n\r\n"),
        (
            S,
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nZ",
        ),
    ],
    "no_body_responses": [
        (C, b"HEAD / HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
    ],
    "connect": [
        (C, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n\x16\x03\x01\x00"),
        (S, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x10"),
        (C, b"\x17\x03\x03 more tls"),
    ],
    "websocket": [
        (C, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        (C, b"\x81\x85maskdata"),
    ],
    "connect_refused": [
        (
            C,
            b"CONNECT x:443 HTTP/1.1\r\n\r\nGET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            S,
            b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
    ],
    "http10_keepalive": [
        (C, b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        (S, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\none"),
        (C, b"GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        (S, b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\ntwo"),
    ],
    "encodings": [
        (C, b"POST /x HTTP/1.1\r\nContent-Encoding: GZIP\r\nContent-Length: 2\r\n\r\n\x1f\x8b"),
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\n"
            b"Transfer-Encoding: deflate, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
    ],
    "lenient_heads": [
        (
            C,
            b"\r\n\r\nGET  /p  HTTP/1.1\nHost:   h  \nX-Long: part one\n\t part two\n"
            b"UsEr-AgEnT: t\n\n",
        ),
        (S, b"HTTP/1.1  200  Fine  \nCONTENT-LENGTH: 2\n\nhi"),
    ],
    "orphan_responses": [
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb",
        ),
    ],
    "te_and_cl": [
        (C, b"POST / HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (C, b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n"),
        (
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 2,
        ),
    ],
    "unanswered": [
        (C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ],
    # The readings of ambiguous bodies (see the module docstring of sensor/protocols/http.py).
    "readings": [
        (C, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
        (C, b"GET /d HTTP/1.1\r\n\r\n"),
        (S, b"SIP/2.0 200 OK\r\n"),  # unframed, then the answer to /a
        (S, b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n"),
        (S, b"5\r\nhello\r\n0\r\n\r\n"),  # de-chunked, and 7 raw bytes
        (S, b"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\nsecret"),  # declared
        (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \x00chunked\r\n\r\n3\r\nabc\r\nzz\r\nrest"),
    ],
}


# --- segmentation invariance --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_whole_bytewise_and_random_splits_agree(name: str) -> None:
    whole = assert_same_events(run, SAMPLES[name], seeds=range(5))
    assert any(isinstance(e, HttpTransaction) for e in whole)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_hypothesis_splits_agree(name: str, data: st.DataObject) -> None:
    segments = SAMPLES[name]
    events = feed_split(HttpParser(), segments, draw_splits(data, segments))
    assert merge(events) == run(segments)


def test_body_is_streamed_not_buffered() -> None:
    parser = HttpParser()
    parser.feed(C, b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", TS)
    events = parser.feed(C, b"a" * 100, TS)
    assert events == [ObjectChunk(1, C, b"a" * 100)]
    parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TS)
    assert parser.feed(S, b"ffff\r\nxyz", TS) == [ObjectChunk(1, S, b"xyz")]


# --- semantics of the samples -------------------------------------------------------------------


def test_get_with_content_length() -> None:
    ev = run(SAMPLES["get_cl"])
    req, resp = of(ev, HttpRequestHead)[0], of(ev, HttpResponseHead)[0]
    assert (req.txid, req.method, req.uri, req.version) == (1, b"GET", b"/index.html", b"HTTP/1.1")
    assert req.headers == [(b"host", b"example.org")]
    assert (resp.status, resp.reason) == (200, b"OK")
    assert body(ev, 1, S) == b"hello"
    assert [type(e) for e in ev] == [
        HttpRequestHead,
        HttpResponseHead,
        ObjectStart,
        ObjectChunk,
        ObjectEnd,
        HttpTransaction,
    ]
    tx = of(ev, HttpTransaction)[0]
    assert (tx.request, tx.response, tx.response_body_len, tx.request_body_len) == (
        req,
        resp,
        5,
        0,
    )
    assert of(ev, ObjectEnd)[0].complete


def test_pipelining_pairs_in_order() -> None:
    ev = run(SAMPLES["pipelined"])
    txs = of(ev, HttpTransaction)
    assert [t.txid for t in txs] == [1, 2, 3]
    assert [t.request.uri for t in txs] == [b"/a", b"/b", b"/c"]
    assert [t.response.status for t in txs] == [200, 201, 200]
    assert body(ev, 2, C) == b"abc"
    assert (body(ev, 1, S), body(ev, 2, S), body(ev, 3, S)) == (b"A", b"BB", b"until close")
    # The last response had no framing: read until the server closed, which completes it.
    assert of(ev, ObjectEnd)[-1] == ObjectEnd(3, S, True, TS)
    assert txs[2].response_body_len == len(b"until close")
    # All three requests were parsed before any response arrived.
    first_response = next(i for i, e in enumerate(ev) if isinstance(e, HttpResponseHead))
    assert len(of(ev[:first_response], HttpRequestHead)) == 3


def test_chunked_extensions_trailers_bare_lf_whitespace() -> None:
    ev = run(SAMPLES["chunked_lenient"])
    assert body(ev, 1, C) == b"0123456789" + b"x" * 31 + b"y" * 10
    assert of(ev, ObjectEnd) == [ObjectEnd(1, C, True, TS)]
    tx = of(ev, HttpTransaction)[0]
    assert (tx.request_body_len, tx.response.status) == (51, 204)
    assert not kinds(ev)


def test_expect_100_continue_waiting_and_not_waiting() -> None:
    for name in ("expect_wait", "expect_no_wait"):
        ev = run(SAMPLES[name])
        (tx,) = of(ev, HttpTransaction)
        assert tx.interim_statuses == [100]
        assert tx.response.status == 200
        assert tx.request_body_len == 4
        assert body(ev, 1, C) == b"data"
        assert len(of(ev, HttpResponseHead)) == 1  # interim responses produce no head event


def test_multiple_interim_responses() -> None:
    (tx,) = of(run(SAMPLES["interims"]), HttpTransaction)
    assert tx.interim_statuses == [102, 103]
    assert tx.response_body_len == 1


def test_head_204_304_have_no_body() -> None:
    ev = run(SAMPLES["no_body_responses"])
    assert [t.response.status for t in of(ev, HttpTransaction)] == [200, 204, 304]
    assert not of(ev, ObjectStart)
    assert not of(ev, ObjectChunk)


def test_connect_tunnel_hands_every_byte_over_unparsed() -> None:
    ev = run(SAMPLES["connect"])
    # The client's first tunnel bytes, held while the CONNECT was unanswered, are handed over,
    # then the server's bytes that followed its 200 in the same segment, then the rest.
    assert of(ev, Tunnel) == [Tunnel(TS, b"\x16\x03\x01\x00")]
    assert of(ev, TunnelData) == [
        TunnelData(S, b"\x16\x03\x03\x00\x10"),
        TunnelData(C, b"\x17\x03\x03 more tls"),
    ]
    assert not of(ev, ObjectChunk)
    (tx,) = of(ev, HttpTransaction)
    assert (tx.request.method, tx.response.status) == (b"CONNECT", 200)
    assert not kinds(ev)


def test_websocket_upgrade_101() -> None:
    ev = run(SAMPLES["websocket"])
    assert of(ev, Opaque) == [Opaque("upgrade", TS)]
    assert [e.data for e in of(ev, TunnelData)] == [b"\x81\x05hello", b"\x81\x85maskdata"]
    assert len(of(ev, HttpRequestHead)) == 1
    assert not of(ev, ObjectChunk)


def test_refused_connect_resumes_parsing_held_request() -> None:
    ev = run(SAMPLES["connect_refused"])
    txs = of(ev, HttpTransaction)
    assert [(t.request.method, t.response.status) for t in txs] == [
        (b"CONNECT", 407),
        (b"GET", 200),
    ]
    assert not of(ev, Tunnel) and not of(ev, Opaque)
    assert body(ev, 2, S) == b"ok"


def test_http10_keep_alive_two_transactions() -> None:
    txs = of(run(SAMPLES["http10_keepalive"]), HttpTransaction)
    assert [(t.txid, t.request.uri, t.response_body_len) for t in txs] == [
        (1, b"/1", 3),
        (2, b"/2", 3),
    ]
    assert txs[0].request.version == b"HTTP/1.0"


def test_encodings_in_applied_order_and_not_decoded() -> None:
    ev = run(SAMPLES["encodings"])
    starts = of(ev, ObjectStart)
    assert [(s.direction, s.encodings) for s in starts] == [
        (C, ["gzip"]),
        (S, ["gzip", "br", "deflate"]),
    ]
    assert body(ev, 1, C) == b"\x1f\x8b"
    assert body(ev, 1, S) == b"abc"


def test_lenient_heads() -> None:
    ev = run(SAMPLES["lenient_heads"])
    req = of(ev, HttpRequestHead)[0]
    assert (req.method, req.uri) == (b"GET", b"/p")
    assert req.headers == [
        (b"host", b"h"),
        (b"x-long", b"part one part two"),
        (b"user-agent", b"t"),
    ]
    resp = of(ev, HttpResponseHead)[0]
    assert (resp.status, resp.reason) == (200, b"Fine")
    assert body(ev, 1, S) == b"hi"
    assert kinds(ev) == ["http_obs_fold"]


def test_responses_without_requests_get_own_txids() -> None:
    txs = of(run(SAMPLES["orphan_responses"]), HttpTransaction)
    assert [(t.txid, t.request, t.response.status) for t in txs] == [
        (1, None, 200),
        (2, None, 404),
    ]


def test_te_wins_over_cl() -> None:
    ev = run(SAMPLES["te_and_cl"])
    assert "http_te_and_cl" in kinds(ev)
    txs = of(ev, HttpTransaction)
    assert [t.request.uri for t in txs] == [b"/", b"/next"]
    assert txs[0].request_body_len == 3


def test_unanswered_request_reported_at_eof() -> None:
    ev = run(SAMPLES["unanswered"], eof=False)
    assert [t.txid for t in of(ev, HttpTransaction)] == [1]
    parser = HttpParser()
    for direction, data in SAMPLES["unanswered"]:
        parser.feed(direction, data, TS)
    assert parser.eof(C, TS) == []  # the server may still answer after a client half-close
    (tx,) = of(parser.eof(S, TS), HttpTransaction)
    assert (tx.txid, tx.request.uri, tx.response) == (2, b"/2", None)


def test_conflicting_content_length_anomaly() -> None:
    ev = run([(C, b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab")])
    assert "http_conflicting_content_length" in kinds(ev)
    assert body(ev, 1, C) == b"ab"
    same = run([(C, b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab")])
    assert not kinds(same)


def test_request_without_length_has_no_body() -> None:
    ev = run([(C, b"POST / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")])
    assert len(of(ev, HttpRequestHead)) == 2
    assert not of(ev, ObjectStart)


def test_bad_content_length() -> None:
    with pytest.raises(ProtocolViolation) as exc:
        run([(C, b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")])
    assert exc.value.reason == "http_bad_content_length"
    ev = run(
        [(C, b"GET / HTTP/1.1\r\n\r\n"), (S, b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nzz")]
    )
    assert "http_bad_content_length" in kinds(ev)
    assert body(ev, 1, S) == b"zz"


def test_te_not_chunked_in_response_reads_until_close() -> None:
    ev = run(
        [
            (C, b"GET / HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n!!"),
        ]
    )
    assert "http_te_not_chunked" in kinds(ev)
    assert of(ev, ObjectStart)[0].encodings == ["gzip"]
    assert body(ev, 1, S) == b"!!"
    # A request body the server cannot frame: a server that ignores the coding reads
    # Content-Length if there is one, else up to the close. Either way the bytes are kept.
    ev = run([(C, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nsecret")])
    assert "http_bad_transfer_encoding" in kinds(ev)
    assert body(ev, 1, C) == b"secret"
    ev = run(
        [
            (
                C,
                b"POST / HTTP/1.1\r\nTransfer-Encoding: x\r\nContent-Length: 3\r\n\r\nabc"
                b"GET / HTTP/1.1\r\n\r\n",
            )
        ]
    )
    assert body(ev, 1, C) == b"abc" and of(ev, HttpRequestHead)[1].method == b"GET"


# --- gaps and eof -------------------------------------------------------------------------------


def test_gap_in_content_length_body_keeps_counting() -> None:
    parser = HttpParser()
    ev = parser.feed(C, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", TS)
    ev += parser.gap(C, 4, TS)
    ev += parser.feed(C, b"hijGET /2 HTTP/1.1\r\n\r\n", TS)
    assert of(ev, ObjectGap) == [ObjectGap(1, C, 4)]
    assert body(merge(ev), 1, C) == b"abchij"
    assert [r.uri for r in of(ev, HttpRequestHead)] == [b"/", b"/2"]
    ev += parser.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", TS)
    tx = of(ev, HttpTransaction)[0]
    assert (tx.request_body_len, tx.request_missing) == (6, 4)


def test_gap_inside_chunk_data_continues() -> None:
    parser = HttpParser()
    ev = parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nab", TS)
    ev += parser.gap(S, 6, TS)
    ev += parser.feed(S, b"\r\n2\r\nzz\r\n0\r\n\r\n", TS)
    assert of(ev, ObjectGap) == [ObjectGap(1, S, 6)]
    assert of(ev, ObjectEnd) == [ObjectEnd(1, S, True, TS)]
    assert of(ev, HttpTransaction)[0].response_missing == 6


@pytest.mark.parametrize("gap", [7, 100])
def test_gap_outside_chunk_data_is_violation(gap: int) -> None:
    parser = HttpParser()
    parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nab", TS)
    with pytest.raises(HttpViolation) as exc:
        parser.gap(S, gap, TS)
    assert exc.value.reason == "http_gap_in_chunked"
    # The events of the failing call travel on the exception: body end, then the record.
    assert exc.value.events[0] == ObjectEnd(1, S, False, TS)
    assert [type(e) for e in exc.value.events] == [ObjectEnd, HttpTransaction]


def test_gap_in_chunk_size_line_is_violation() -> None:
    parser = HttpParser()
    parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TS)
    with pytest.raises(ProtocolViolation) as exc:
        parser.gap(S, 3, TS)
    assert exc.value.reason == "http_gap_in_chunked"


def test_gap_in_headers_is_violation() -> None:
    parser = HttpParser()
    parser.feed(C, b"GET / HTTP/1.1\r\nHo", TS)
    with pytest.raises(ProtocolViolation) as exc:
        parser.gap(C, 10, TS)
    assert exc.value.reason == "http_gap_in_headers"
    # A gap that runs past a Content-Length body lands in the next head.
    parser = HttpParser()
    parser.feed(C, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n", TS)
    with pytest.raises(HttpViolation) as exc2:
        parser.gap(C, 5, TS)
    assert exc2.value.reason == "http_gap_in_headers"
    assert exc2.value.events[:2] == [ObjectGap(1, C, 2), ObjectEnd(1, C, True, TS)]


def test_gap_in_read_until_close_body() -> None:
    parser = HttpParser()
    ev = parser.feed(S, b"HTTP/1.0 200 OK\r\n\r\nab", TS)
    ev += parser.gap(S, 1000, TS)
    ev += parser.feed(S, b"cd", TS)
    ev += parser.eof(S, TS)
    assert of(ev, ObjectGap) == [ObjectGap(1, S, 1000)]
    assert of(ev, ObjectEnd) == [ObjectEnd(1, S, True, TS)]
    tx = of(ev, HttpTransaction)[0]
    assert (tx.response_body_len, tx.response_missing) == (4, 1000)


def test_eof_mid_body_is_incomplete() -> None:
    parser = HttpParser()
    parser.feed(C, b"GET / HTTP/1.1\r\n\r\n", TS)
    parser.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", TS)
    ev = parser.eof(S, TS)
    assert [type(e) for e in ev] == [ObjectEnd, HttpTransaction]
    assert ev[0] == ObjectEnd(1, S, False, TS)
    assert of(ev, HttpTransaction)[0].response_body_len == 3


def test_eof_mid_request_body() -> None:
    parser = HttpParser()
    parser.feed(C, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", TS)
    ev = parser.eof(C, TS) + parser.eof(S, TS)
    assert ev[0] == ObjectEnd(1, C, False, TS)
    (tx,) = of(ev, HttpTransaction)
    assert (tx.request_body_len, tx.response) == (2, None)


def test_eof_with_partial_head() -> None:
    parser = HttpParser()
    parser.feed(C, b"GET / HTTP/1.1\r\nHost: x", TS)
    assert kinds(parser.eof(C, TS)) == ["http_truncated_head"]


# --- violations and caps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "data", "reason"),
    [
        (C, b"GET /\r\n", "http_bad_request_line"),  # HTTP/0.9
        (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "http_bad_request_line"),
        (C, b"GET / HTTP/2.0\r\n\r\n", "http_bad_version"),
        (C, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http_bad_version"),
        (
            S,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            "http_bad_chunk_size",
        ),
    ],
)
def test_garbage_is_violation(direction: Direction, data: bytes, reason: str) -> None:
    for split in ("whole", "bytes"):
        with pytest.raises(ProtocolViolation) as exc:
            run([(direction, data)], split, eof=False)
        assert exc.value.reason == reason


def test_garbage_rejected_early_without_line_end() -> None:
    with pytest.raises(ProtocolViolation):
        HttpParser().feed(C, b"\x16\x03\x01", TS)


def test_header_block_over_cap() -> None:
    caps = HttpCaps(max_header_bytes=200)
    big = b"GET / HTTP/1.1\r\n" + b"X-A: " + b"a" * 300 + b"\r\n\r\n"
    for split in ("whole", "bytes"):
        with pytest.raises(ProtocolViolation) as exc:
            run([(C, big)], split, caps=caps, eof=False)
        assert exc.value.reason == "http_header_too_long"
    # Never terminated: still capped, without a blank line ever arriving.
    parser = HttpParser(caps)
    parser.feed(C, b"GET / HTTP/1.1\r\n", TS)
    with pytest.raises(ProtocolViolation):
        for _ in range(100):
            parser.feed(C, b"X-B: bbbbbbbb\r\n", TS)


def test_start_line_and_chunk_line_caps() -> None:
    caps = HttpCaps(max_start_line=64, max_chunk_line=16)
    with pytest.raises(ProtocolViolation) as exc:
        HttpParser(caps).feed(C, b"GET /" + b"a" * 100, TS)
    assert exc.value.reason == "http_start_line_too_long"
    parser = HttpParser(caps)
    parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n", TS)
    with pytest.raises(ProtocolViolation) as exc:
        parser.feed(S, b"1;" + b"e" * 40, TS)
    assert exc.value.reason == "http_chunk_line_too_long"
    # The first line that long: the body is not chunked at all (see test_not_chunked_*).
    parser = HttpParser(caps)
    parser.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TS)
    assert "http_not_chunked" in kinds(parser.feed(S, b"1;" + b"e" * 40, TS))


def test_too_many_headers() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5 + b"\r\n"
    with pytest.raises(ProtocolViolation) as exc:
        HttpParser(HttpCaps(max_headers=4)).feed(C, head, TS)
    assert exc.value.reason == "http_too_many_headers"


def test_too_many_pending_drops_oldest() -> None:
    parser = HttpParser(HttpCaps(max_pending_transactions=2))
    ev = parser.feed(C, b"GET /1 HTTP/1.1\r\n\r\n" * 3, TS)
    assert kinds(ev) == ["http_too_many_pending"]
    (dropped,) = of(ev, HttpTransaction)
    assert (dropped.txid, dropped.response) == (1, None)
    ev = parser.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", TS)
    assert of(ev, HttpTransaction)[0].txid == 2


def test_violation_stops_parser() -> None:
    parser = HttpParser()
    with pytest.raises(ProtocolViolation):
        parser.feed(C, b"NOT HTTP AT ALL\r\n", TS)
    assert parser.feed(C, b"GET / HTTP/1.1\r\n\r\n", TS) == []


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from([C, S]), st.binary(max_size=64), st.integers(0, 3)),
        max_size=12,
    )
)
def test_arbitrary_bytes_only_raise_violation(chunks: list[tuple[Direction, bytes, int]]) -> None:
    parser = HttpParser(HttpCaps(max_header_bytes=256, max_start_line=64, max_chunk_line=32))
    prefixes = [b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"\r\n"]
    fuzz_feed(parser, chunks, prefixes, gap_action=3)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [
                b"GET / HTTP/1.1\r\n",
                b"HTTP/1.1 200 OK\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"Content-Length: 3\r\n",
                b"Upgrade: x\r\n",
                b"\r\n",
                b"5\r\n",
                b"abcde",
                b"0\r\n",
                b"CONNECT h:1 HTTP/1.1\r\n",
                b"HTTP/1.1 100 Continue\r\n",
            ]
        ),
        max_size=30,
    ),
    directions=st.lists(st.sampled_from([C, S]), min_size=30, max_size=30),
)
def test_structured_fuzz_only_raises_violation(
    data: list[bytes], directions: list[Direction]
) -> None:
    parser = HttpParser()
    try:
        for piece, direction in zip(data, directions, strict=False):
            parser.feed(direction, piece, TS)
        parser.eof(S, TS)
        parser.eof(C, TS)
    except ProtocolViolation:
        pass


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "data", "expected"),
    [
        (C, b"GET / HTTP/1.1\r\n", True),
        (C, b"\r\nPOST /api/v1?x=1 HTTP/1.0\r\n", True),
        (C, b"CONNECT example.org:443 HTTP/1.1\r\n", True),
        (C, b"GET", None),
        (C, b"GET /", None),
        (C, b"GET / HTT", None),
        (C, b"GET /\r\n", False),  # HTTP/0.9
        (C, b"GET / HTTP/2.0\r\n", False),
        (C, b"\x16\x03\x01\x00", False),
        (C, b"SSH-2.0-x\r\n", False),
        (C, b"", None),
        (S, b"HTTP/1.1 200 OK\r\n", True),
        (S, b"HTTP/1.0 404", True),
        (S, b"HTTP/1.", None),
        (S, b"HTTP/1.1 2", None),
        (S, b"HTTP/2 200", False),
        (S, b"220 smtp.example.org ESMTP", False),
        (S, b"HTTP/1.1 OK", False),
    ],
)
def test_detect(direction: Direction, data: bytes, expected: bool | None) -> None:
    assert detect(direction, data) is expected


def test_detect_agrees_with_samples() -> None:
    for name, segments in SAMPLES.items():
        for direction in (C, S):
            first = b"".join(d for dd, d in segments if dd == direction)
            if name == "readings" and direction is S:
                # Junk before the first status line: the flow is told HTTP by its client.
                assert detect(direction, first) is False
            elif first:
                assert detect(direction, first) is True


# --- bytes from real stdlib clients and servers -------------------------------------------------


class _FakeSocket:
    """Enough of a socket for http.client and http.server to talk to memory."""

    def __init__(self, incoming: bytes = b"") -> None:
        self.incoming = incoming
        self.sent = bytearray()

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.incoming)

    def close(self) -> None:
        pass


def _client_request(method: str, url: str, **kwargs: Any) -> bytes:
    conn = http.client.HTTPConnection("files.example.org")
    sock = _FakeSocket()
    conn.sock = sock
    conn.request(method, url, **kwargs)
    return bytes(sock.sent)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        payload = gzip.compress(b"patient list " * 50)
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        size = int(self.headers["Content-Length"])
        self.rfile.read(size)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _server_responses(requests: bytes) -> bytes:
    sock = _FakeSocket(requests)
    _Handler(sock, ("192.0.2.1", 40000), None)  # type: ignore[arg-type]
    return bytes(sock.sent)


def test_real_stdlib_client_and_server_bytes() -> None:
    upload = b"BSN;naam\n123456782;Jansen\n" * 40
    requests = _client_request("GET", "/export") + _client_request(
        "POST", "/upload", body=upload, headers={"Content-Type": "text/csv"}
    )
    responses = _server_responses(requests)
    segments: list[Segment] = [(C, requests), (S, responses)]
    ev = run(segments)
    assert run(segments, "bytes") == ev
    txs = of(ev, HttpTransaction)
    assert [(t.request.method, t.response.status) for t in txs] == [(b"GET", 200), (b"POST", 201)]
    assert gzip.decompress(body(ev, 1, S)) == b"patient list " * 50
    assert [(b.txid, b.direction, b.encodings) for b in of(ev, ObjectStart)] == [
        (2, C, []),
        (1, S, ["gzip"]),
    ]
    assert body(ev, 2, C) == upload
    assert not kinds(ev)


def test_real_stdlib_chunked_upload() -> None:
    parts = [b"first part,", b"second part,", b"x" * 5000]
    request = _client_request("PUT", "/f", body=iter(parts), encode_chunked=True)
    assert b"Transfer-Encoding: chunked" in request
    for split in ("whole", "bytes", "random"):
        ev = run([(C, request)], split, eof=False)
        assert body(ev, 1, C) == b"".join(parts)
        assert of(ev, ObjectEnd) == [ObjectEnd(1, C, True, TS)]


@pytest.mark.parametrize(
    ("size_line", "anomaly"),
    [
        (b"a x", "http_chunk_size_junk"),  # hex digits, then anything: browsers read 0xa
        (b"a,", "http_chunk_size_junk"),
        (b"a\0", "http_chunk_size_junk"),
        (b"0a garbage;ext", "http_chunk_size_junk"),
        (b"A ; name=value", None),  # a chunk extension is no junk
        (b"\t a", None),
    ],
)
def test_chunk_size_lines_are_read_as_browsers_read_them(
    size_line: bytes, anomaly: str | None
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire = head + size_line + b"\r\n" + b"secret-csv" + b"\r\n0\r\n\r\n"
    ev = run([(C, b"GET /export HTTP/1.1\r\nHost: h\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"secret-csv"  # the marker is found, not lost to a violation
    assert all(end.complete for end in of(ev, ObjectEnd))
    if anomaly:  # a receiver that rejects the line reads the body as not chunked: kept too
        assert kinds(ev) == [anomaly, "http_ambiguous_framing"]
        assert body(ev, 1, S, "raw") == size_line + b"\r\nsecret-csv\r\n0\r\n\r\n"
    else:
        assert kinds(ev) == []


def test_blank_lines_before_a_chunk_size_are_skipped() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire = head + b"\r\n\n5\r\nhello\r\n\r\n5\r\nworld\r\n0\r\n\r\n"
    ev = run([(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"helloworld"
    assert kinds(ev) == ["http_chunk_blank_line"] * 3


@pytest.mark.parametrize(
    "te",
    [b"\x00chunked", b"chunked\x0b", b"\x0cchunked", b"\xa0chunked\xa0", b"\xef\xbb\xbfchunked",
     b"chunked\r", b"identity, \x00chunked"],
)  # fmt: skip
def test_junk_around_transfer_coding_tokens_is_dropped_as_receivers_drop_it(te: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
    wire = head + b"a\r\nsecret-csv\r\n0\r\n\r\n"
    ev = run([(C, b"GET /export HTTP/1.1\r\nHost: h\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"secret-csv"  # de-chunked: the marker is whole
    assert "http_coding_junk" in kinds(ev)


def test_x_deflate_is_deflate() -> None:
    from sensor.content.decoders import normalize_coding

    assert normalize_coding(" X-Deflate ") == "deflate" and normalize_coding("x-gzip") == "gzip"


# --- readings of ambiguous bodies ---------------------------------------------------------------


def test_every_reading_of_an_ambiguous_conversation() -> None:
    ev = run(SAMPLES["readings"])
    assert body(ev, 1, S, "unframed") == b"SIP/2.0 200 OK\r\n"
    assert body(ev, 1, S) == b"hello"  # de-chunked: TE wins (RFC 9112 6.3 rule 3)
    assert body(ev, 1, S, "content-length") == b"5\r\nhell"  # as a CL reader takes it
    assert body(ev, 2, S) == b"" and body(ev, 2, S, "declared") == b"secret"
    # junk around chunked: a raw reading; when the chunked one breaks, the raw one goes on
    assert body(ev, 3, S) == b"abc"
    assert body(ev, 3, S, "raw") == b"3\r\nabc\r\nzz\r\nrest"
    ends = {(e.txid, e.reading): e.complete for e in of(ev, ObjectEnd)}
    assert ends == {
        (1, "unframed"): True,
        (1, None): True,
        (1, "content-length"): True,
        (2, "declared"): True,
        (3, None): False,
        (3, "raw"): True,
    }
    assert kinds(ev).count("http_ambiguous_framing") == 4
    assert "http_bad_chunk_size" in kinds(ev)
    assert [t.response.status for t in of(ev, HttpTransaction) if t.response] == [200, 204, 200]


@pytest.mark.parametrize(
    ("line", "status", "odd"),
    [
        (b"HTTP/1.1 200 OK", 200, False),
        (b"http/1.1 200 ok", 200, True),
        (b"HTTP/1.01 200 OK", 200, True),
        (b"HTTP/2.0 200 OK", 200, True),
        (b"HTTP/1.1 0200 OK", 200, True),
        (b"HTTP/1.1 2000 OK", 200, True),
        (b"HTTP/1.1 000 OK", 200, True),
        (b"HTTP/1.1 2xx OK", 200, True),
        (b"HTTP/1.1 404", 404, False),
        (b"HTTP/1.1", 200, True),
    ],
)
def test_status_lines_are_read_as_browsers_read_them(line: bytes, status: int, odd: bool) -> None:
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, line + b"\r\nContent-Length: 2\r\n\r\nok")])
    assert of(ev, HttpResponseHead)[0].status == status
    assert body(ev, 1, S) == b"ok"
    assert ("http_odd_status_line" in kinds(ev)) == odd


def test_a_body_that_says_chunked_and_is_not() -> None:
    """The first chunk-size line is none: the body is read as it is, one reading."""
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\npatient,bsn\r\n"
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"patient,bsn\r\n"
    assert "http_not_chunked" in kinds(ev) and "http_ambiguous_framing" not in kinds(ev)
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nzzzz"
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire + b"HTTP/1.1 304 x\r\n\r\n")])
    assert body(ev, 1, S) == b"zzzz"  # by the Content-Length: the next answer is parsed
    assert [h.status for h in of(ev, HttpResponseHead)] == [200, 304]


@pytest.mark.parametrize("eol", [b"\n", b"\r"])
def test_chunk_lines_ended_by_lf_or_cr_alone(eol: bytes) -> None:
    chunks = b"5" + eol + b"hello" + eol + b"3" + eol + b"abc" + eol + b"0" + eol + eol
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire + b"HTTP/1.1 204 x\r\n\r\n")])
    assert body(ev, 1, S) == b"helloabc"
    assert [h.status for h in of(ev, HttpResponseHead)] == [200, 204]


def test_a_bare_cr_splits_header_lines() -> None:
    wire = b"HTTP/1.1 200 OK\r\nX-A: 1\rTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"abc"
    assert body(ev, 1, S, "raw") == b"3\r\nabc\r\n0\r\n\r\n"
    assert "http_bare_cr" in kinds(ev)


# --- found by review: each once broke a reading ------------------------------------------------


def test_a_chunk_size_line_ended_by_cr_cr_lf() -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r\nhello\r\n0\r\n\r\n"
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire)])
    assert body(ev, 1, S) == b"hello" and all(e.complete for e in of(ev, ObjectEnd))


def test_a_body_declared_by_an_interim_response_does_not_end_the_transaction() -> None:
    wire = (
        b"HTTP/1.1 100 Continue\r\nContent-Length: 4\r\n\r\nJUNK"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    )
    ev = run([(C, b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), (S, wire)])
    assert body(ev, 1, S, "declared") == b"JUNK" and body(ev, 1, S) == b"hello"
    (tx,) = of(ev, HttpTransaction)
    assert tx.response is not None and tx.response.status == 200 and tx.interim_statuses == [100]


def test_the_content_length_reading_goes_on_when_de_chunking_breaks() -> None:
    wire = b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
    rest = b"5\r\nhello\r\nzz\r\n-the-rest-a-CL-reader-reads"
    ev = run([(C, wire + rest)])
    assert body(ev, 1, C, "content-length") == rest[:30]
    assert "http_bad_chunk_size" in kinds(ev)
    ends = {e.reading: e.complete for e in of(ev, ObjectEnd)}
    assert ends == {None: False, "content-length": True}


def test_unframed_bytes_held_for_a_status_line_come_before_a_gap() -> None:
    parser = HttpParser()
    parser.feed(C, b"GET /a HTTP/1.1\r\n\r\n", TS)
    ev = parser.feed(S, b"GARBAGE-0123456789abcdefghijklmnopqrstuvwxyz", TS)
    ev += parser.gap(S, 100, TS) + parser.feed(S, b"AFTER", TS) + parser.eof(S, TS)
    pieces = [e for e in ev if isinstance(e, ObjectChunk | ObjectGap)]
    assert isinstance(pieces[-2], ObjectGap) and pieces[-1].data == b"AFTER"
    assert b"".join(e.data for e in pieces if isinstance(e, ObjectChunk)).startswith(b"GARBAGE")


def test_a_content_length_of_one_message_never_frames_the_next() -> None:
    first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
    second = b"HTTP/1.1 204 x\r\nTransfer-Encoding: chunked\r\n\r\nSECRET\r\nDATA"
    ev = run([(C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), (S, first + second)])
    assert body(ev, 2, S, "declared") == b"SECRET\r\nDATA"


def test_a_bare_cr_in_the_status_line_starts_the_fields() -> None:
    wire = b"HTTP/1.1 200 OK\rTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ev = run([(C, b"GET / HTTP/1.1\r\n\r\n"), (S, wire)])
    assert of(ev, HttpResponseHead)[0].reason == b"OK"
    assert body(ev, 1, S) == b"abc" and body(ev, 1, S, "raw") == b"3\r\nabc\r\n0\r\n\r\n"
    assert "http_bare_cr" in kinds(ev)
