"""tcp-tiny-segments (crafted): request and response cut into 1-3 byte segments.

Every byte boundary of the HTTP header parser gets exercised (CRLF split across segments,
header names split, the body's first byte alone). The receiver ACKs every 8 segments.
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
BODY = patients_csv(400, seed=11)


def tiny_sizes(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 3) for _ in range(total)]


def main() -> None:
    request, response, answer = crafted.upload_exchange(BODY, URI)
    conv = crafted.TcpConversation(client_port=50111)
    conv.handshake()
    for sender, data, seed in (("client", request, 1), ("server", response, 2)):
        segs = conv.segments(sender, data, tiny_sizes(len(data), seed))
        for i, seg in enumerate(segs, 1):
            conv.emit(seg)
            if i % 8 == 0:
                conv.ack(crafted.PEER[sender], ack=seg.end)
        conv.ack(crafted.PEER[sender])
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
