"""sensor/content/router.py: the one object contract, routed by (txid, direction) to the
content engines, whatever the protocol; results carry the start they belong to."""

from __future__ import annotations

import gzip
import hashlib

from sensor.anomaly import Anomaly
from sensor.content.mime import DEFAULT_MIME_CAPS
from sensor.content.objects import DEFAULT_CAPS
from sensor.content.router import MessageEnded, MessageHeadersSeen, ObjectFile, ObjectRouter
from sensor.protocols.base import Direction, ObjectChunk, ObjectEnd, ObjectGap, ObjectStart

UP, DOWN = Direction.TO_SERVER, Direction.TO_CLIENT


def router() -> ObjectRouter:
    return ObjectRouter(DEFAULT_CAPS, DEFAULT_MIME_CAPS)


def test_interleaved_objects_are_kept_apart_by_txid_and_direction() -> None:
    r = router()
    up = ObjectStart(1, UP, 1.0, "http", [(b"content-type", b"text/csv")], name="a.csv")
    down = ObjectStart(1, DOWN, 1.0, "http", [(b"content-encoding", b"gzip")], ["gzip"])
    assert r.route(up, 1.0) == [] and r.route(down, 1.0) == []
    r.route(ObjectChunk(1, UP, b"bsn;"), 1.1)
    r.route(ObjectChunk(1, DOWN, gzip.compress(b"ok")), 1.1)
    r.route(ObjectChunk(1, UP, b"name\n"), 1.2)
    (done_up,) = r.route(ObjectEnd(1, UP, True, 1.3), 1.3)
    (done_down,) = r.route(ObjectEnd(1, DOWN, True, 1.4), 1.4)
    assert isinstance(done_up, ObjectFile) and done_up.start is up
    assert done_up.info.sha256 == hashlib.sha256(b"bsn;name\n").hexdigest()
    assert (done_up.info.filename, done_up.info.declared_type) == ("a.csv", "text/csv")
    assert isinstance(done_down, ObjectFile) and done_down.info.size == 2  # decoded
    assert r.close() == []  # nothing left open


def test_a_message_is_read_by_the_mime_engine_and_summed_up_at_its_end() -> None:
    r = router()
    start = ObjectStart(3, UP, 1.0, "smtp", message=True)
    r.route(start, 1.0)
    seen = r.route(ObjectChunk(3, UP, b"Subject: results\r\n\r\nhello\r\n"), 1.1)
    assert [type(x) for x in seen] == [MessageHeadersSeen]
    assert seen[0].headers.subject == "results"  # type: ignore[union-attr]
    out = r.route(ObjectEnd(3, UP, True, 1.2), 1.2)
    leaf, ended = out
    assert isinstance(leaf, ObjectFile) and leaf.start is start
    assert isinstance(ended, MessageEnded)
    assert (ended.attachments, ended.complete, ended.start.txid) == (0, True, 3)


def test_close_ends_every_open_object_incomplete() -> None:
    r = router()
    r.route(ObjectStart(1, UP, 1.0, "ftp", name="x.bin"), 1.0)
    r.route(ObjectChunk(1, UP, b"abc"), 1.0)
    r.route(ObjectGap(1, UP, 10), 1.1)
    (done,) = r.close()
    assert isinstance(done, ObjectFile)
    assert (done.info.complete, done.info.missing_bytes, done.info.size) == (False, 10, 3)
    assert r.route(ObjectEnd(1, UP, True, 2.0), 2.0) == []  # already ended


def test_data_of_an_object_that_never_started_is_still_an_object() -> None:
    r = router()
    r.route(ObjectStart(1, UP, 1.0, "http"), 1.0)
    r.route(ObjectChunk(2, DOWN, b"stray"), 5.0)  # a parser bug: no start for txid 2
    (done,) = r.route(ObjectEnd(2, DOWN, True, 6.0), 6.0)
    assert isinstance(done, ObjectFile)
    assert (done.start.proto, done.start.ts, done.info.size) == ("http", 5.0, 5)


def test_content_anomalies_come_back_as_values() -> None:
    r = router()
    r.route(ObjectStart(1, DOWN, 1.0, "http", [], ["gzip"]), 1.0)
    results = r.route(ObjectChunk(1, DOWN, b"not gzip at all"), 1.1)
    results += r.route(ObjectEnd(1, DOWN, True, 1.2), 1.2)
    assert any(isinstance(x, Anomaly) and x.kind == "content_decode_error" for x in results)
    (done,) = [x for x in results if isinstance(x, ObjectFile)]
    assert not done.info.complete
