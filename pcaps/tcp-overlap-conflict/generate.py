"""tcp-overlap-conflict (crafted): retransmissions that overlap earlier data with OTHER bytes.

Conflict 1: after segments 0-2 arrived in order, a segment straddling 1 and 2 comes again with
different bytes. Conflict 2: segment 4 arrives early (out of order, buffered), then a copy of
part of it with different bytes, and only then segment 3. Delivered bytes never change and a
copy starting inside a buffered segment replaces it under no policy, so the object is the
original upload and both conflicts are anomalies.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.crafted import MOD, Segment
from pcaps._lib.fakedata import patients_csv

URI = "/upload"
NAME = expect.uri_filename(URI)
CASE = Path(__file__).resolve().parent
BODY = patients_csv(7_000, seed=10)


def conflicting(seg: Segment, start: int, length: int) -> Segment:
    """A copy of bytes [start, start+length) of `seg`'s stream range with every byte changed."""
    original = seg.payload[start : start + length]
    other = bytes(b ^ 0x20 if chr(b).isalpha() else ord("X") for b in original)
    assert len(other) == length and other != original
    return Segment(seg.sender, (seg.seq + start) % MOD, other)


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    assert request.index(b"\r\n\r\n") < 1000  # conflicts below touch only the body
    conv = crafted.TcpConversation(client_port=50110)
    conv.handshake()
    s = conv.segments("client", request, 1000)
    conv.emit_all(s[0:3])
    # Conflict 1: bytes 1500-2500 again, different (overlaps delivered data).
    joined = Segment("client", s[1].seq, s[1].payload + s[2].payload)
    conv.emit(conflicting(joined, 500, 1000))
    conv.ack("server", ack=s[3].seq)
    # Conflict 2: segment 4 early, then a conflicting copy of its middle, then segment 3.
    conv.emit(s[4])
    conv.emit(conflicting(s[4], 200, 500))
    conv.emit(s[3])
    conv.emit_all(s[5:])
    conv.ack("server")
    conv.emit_all(conv.segments("server", response))
    conv.ack("client")
    conv.close()
    crafted.write_conversations(CASE / "input.pcap", conv)
    expect.write_expected(
        CASE,
        objects=[
            expect.http_object("upload", BODY, filename=NAME),
            expect.http_object("download", answer, filename=NAME),
        ],
        http=[expect.http_request("POST", crafted.HOST, URI, 200)],
        anomalies=["tcp_overlap_conflict"],
        flows=1,
    )


if __name__ == "__main__":
    main()
