"""tcp-missing-syn (crafted): the capture starts mid-connection, without the handshake.

The very first packet is a pure ACK from the SERVER (left over from earlier traffic), so
"the sender of the first packet is the client" guesses wrong. The POST that follows must still
be attributed to 10.10.0.10:50112 as the client and be an upload.
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
BODY = patients_csv(5_000, seed=12)


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    # Sequence numbers as if 1 MB had already gone each way; no SYN is ever captured.
    conv = crafted.TcpConversation(client_port=50112, client_isn=0x10000000, server_isn=0x20000000)
    conv.ack("server")
    conv.emit_all(conv.segments("client", request, 1448))
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
        flows=1,
    )


if __name__ == "__main__":
    main()
