"""tcp-out-of-order (crafted): a POST whose segments reach the sensor shuffled.

The request's 13 segments appear in a fixed shuffled order (the first segment is not first);
the response's 3 segments appear in reverse order. Reassembly must restore both streams.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.fakedata import patients_csv

URI = "/upload"
NAME = expect.uri_filename(URI)
CASE = Path(__file__).resolve().parent
BODY = patients_csv(12_000, seed=9)


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    conv = crafted.TcpConversation(client_port=50109)
    conv.handshake()
    segs = conv.segments("client", request, 1000)
    order = segs[:]
    random.Random(9).shuffle(order)
    if order[0] is segs[0]:
        order.append(order.pop(0))
    conv.emit_all(order)
    conv.ack("server")
    resp = conv.segments("server", response, 120)  # small pieces so the reversal matters
    conv.emit_all(list(reversed(resp)))
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
