"""tcp-retransmissions (crafted): exact duplicate segments must not duplicate bytes.

Duplicates: a request segment repeated at once, one repeated after later data was ACKed
(spurious retransmission), a response segment repeated, and the client's FIN repeated.
Identical bytes are not a conflict, so no tcp_overlap_conflict is expected.
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
BODY = patients_csv(6_000, seed=13)


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    conv = crafted.TcpConversation(client_port=50113)
    conv.handshake()
    s = conv.segments("client", request, 1200)
    conv.emit_all([s[0], s[1], s[1], s[2]])
    conv.ack("server", ack=s[2].end)
    conv.emit(s[3])
    conv.emit(s[2])  # spurious: already ACKed
    conv.emit_all(s[4:])
    conv.emit(s[-1])
    conv.ack("server")
    r = conv.segments("server", response, 100)
    conv.emit_all([r[0], r[0], *r[1:]])
    conv.ack("client")
    fin_seq = conv.next_seq["client"]
    conv.close()
    conv.packet("client", fin_seq, conv.next_seq["server"] - 1, "FA", b"")  # FIN again
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
