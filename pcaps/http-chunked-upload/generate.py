"""http-chunked-upload (REAL): http.client sends ~40 KB chunked (encode_chunked=True), uneven."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

BODY = patients_csv(40_000, seed=2)
# Uneven piece sizes, including 1-byte pieces and one larger than an MSS; the last takes the rest.
PIECES = [1, 7, 4096, 13, 1, 9000, 333, 1460, 1461, 2, 8191]


def pieces() -> Iterator[bytes]:
    pos = 0
    for size in PIECES:
        yield BODY[pos : pos + size]
        pos += size
    yield BODY[pos:]


class Handler(realcase.RecordingHandler):
    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(201, json.dumps({"received": len(body)}).encode())


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=10)
    conn.request(
        "POST",
        "/api/v1/export?batch=7",
        body=pieces(),
        headers={"Content-Type": "text/csv"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    realcase.save_blob(workdir, "response.bin", resp.read())
    conn.close()


def build_expected(case_dir: Path, workdir: Path) -> None:
    [req] = realcase.read_records(workdir, "server-requests")
    [resp] = realcase.read_records(workdir, "server-responses")
    assert req["sha256"] == realcase.sha256(BODY), "server received other bytes than were sent"
    answer = (workdir / "response.bin").read_bytes()
    assert realcase.sha256(answer) == resp["sha256"]
    assert expect.count_flows(case_dir / "input.pcap") == 1
    name = expect.uri_filename(req["uri"])
    expect.write_expected(
        case_dir,
        objects=[
            expect.http_object("upload", BODY, filename=name),
            expect.http_object("download", answer, filename=name),
        ],
        http=[expect.http_request("POST", req["host"], req["uri"], resp["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
