"""tcp-seq-wrap (crafted): both directions' sequence numbers wrap past 2**32 mid-stream.

Client ISN is 2**32 - 1000, so the upload crosses zero after 999 bytes; server ISN is
2**32 - 10, so the response crosses zero inside its header.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.fakedata import patients_csv

URI = "/upload"
NAME = expect.uri_filename(URI)
CASE = Path(__file__).resolve().parent
BODY = patients_csv(6_000, seed=14)


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    conv = crafted.TcpConversation(
        client_port=50114, client_isn=2**32 - 1000, server_isn=2**32 - 10
    )
    conv.handshake()
    segs = conv.segments("client", request, 700)
    assert any(seg.end < seg.seq for seg in segs) or any(seg.seq == 0 for seg in segs)
    conv.emit_all(segs)
    conv.ack("server")
    conv.emit_all(conv.segments("server", response, 40))
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
        flows=1,
    )


if __name__ == "__main__":
    main()
