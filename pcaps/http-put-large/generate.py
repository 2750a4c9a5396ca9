"""http-put-large (REAL): http.client PUTs a 2 MiB deterministic pseudo-random body."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import random_bytes
from pcaps._lib.netns import SERVER_V4

BODY = random_bytes(2 * 1024 * 1024, seed=7)
URI = "/backup/lab-db-2025-07-01.bin"


class Handler(realcase.RecordingHandler):
    def do_PUT(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"stored": len(body)}).encode())


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=30)
    headers = {"Content-Type": "application/octet-stream"}
    conn.request("PUT", URI, body=BODY, headers=headers)
    resp = conn.getresponse()
    realcase.save_blob(workdir, "response.bin", resp.read())
    conn.close()


def build_expected(case_dir: Path, workdir: Path) -> None:
    [req] = realcase.read_records(workdir, "server-requests")
    [resp] = realcase.read_records(workdir, "server-responses")
    assert req["sha256"] == realcase.sha256(BODY)
    assert req["uri"] == URI
    name = expect.uri_filename(URI)
    answer = (workdir / "response.bin").read_bytes()
    assert realcase.sha256(answer) == resp["sha256"]
    assert expect.count_flows(case_dir / "input.pcap") == 1
    expect.write_expected(
        case_dir,
        objects=[
            expect.http_object("upload", BODY, filename=name),
            expect.http_object("download", answer, filename=name),
        ],
        http=[expect.http_request("PUT", req["host"], URI, resp["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
