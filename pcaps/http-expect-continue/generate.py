"""http-expect-continue (REAL server, raw-socket client): PUT with Expect: 100-continue.

The client sends only the headers, waits for the interim "100 Continue", then sends the body
and reads the final response. http.server answers the 100 itself (handle_expect_100).
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

HOST = f"{SERVER_V4}:{realcase.HTTP_PORT}"
URI = "/dav/exports/screening-2025-07.csv"
BODY = patients_csv(15_000, seed=6)


class Handler(realcase.RecordingHandler):
    def do_PUT(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(201, json.dumps({"created": self.path, "size": len(body)}).encode())


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    sock = socket.create_connection((SERVER_V4, realcase.HTTP_PORT), timeout=10)
    head = (
        f"PUT {URI} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode())
    interim = b""
    while b"\r\n\r\n" not in interim:
        interim += sock.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    assert interim.endswith(b"\r\n\r\n"), "final response arrived before the body was sent"
    sock.sendall(BODY)
    final = b""
    while chunk := sock.recv(65536):
        final += chunk
    sock.close()
    realcase.save_blob(workdir, "response.bin", final)


def build_expected(case_dir: Path, workdir: Path) -> None:
    [req] = realcase.read_records(workdir, "server-requests")
    [resp] = realcase.read_records(workdir, "server-responses")
    assert req["sha256"] == realcase.sha256(BODY)
    assert req["uri"] == URI
    name = expect.uri_filename(URI)
    final = (workdir / "response.bin").read_bytes()
    answer = final.partition(b"\r\n\r\n")[2]
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
