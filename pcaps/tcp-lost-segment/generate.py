"""tcp-lost-segment (crafted): one upload segment never made it into the capture.

The server's ACK covers it (the server did receive it; the sensor did not), so the sensor must
report the gap rather than wait for a retransmission that never comes: the upload object is
incomplete with exactly the dropped length missing, and a tcp_gap anomaly is reported.
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
BODY = patients_csv(10_000, seed=15)
DROPPED = 5


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    conv = crafted.TcpConversation(client_port=50115)
    conv.handshake()
    segs = conv.segments("client", request, 1000)
    header_len = request.index(b"\r\n\r\n") + 4
    assert header_len < DROPPED * 1000, "the dropped segment must lie inside the body"
    lost = segs.pop(DROPPED)
    conv.emit_all(segs[:DROPPED])
    conv.ack("server", ack=lost.seq)
    conv.emit_all(segs[DROPPED:])
    conv.ack("server")  # covers the lost segment too
    conv.emit_all(conv.segments("server", response))
    conv.ack("client")
    conv.close()
    crafted.write_conversations(CASE / "input.pcap", conv)
    expect.write_expected(
        CASE,
        objects=[
            expect.http_object(
                "upload", complete=False, missing_bytes=len(lost.payload), filename=NAME
            ),
            expect.http_object("download", answer, filename=NAME),
        ],
        http=[expect.http_request("POST", crafted.HOST, URI, 200)],
        anomalies=["tcp_gap"],
        flows=1,
    )


if __name__ == "__main__":
    main()
