"""http-keepalive-pipelining (REAL server, raw-socket client).

Connection 1: GET, POST (with body), GET written in ONE send() (pipelined), then the three
responses are read. Connection 2: three keep-alive requests sent one after the other, each
after the previous response was read. The last request on each connection asks to close.
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
POST_BODY_1 = patients_csv(3_000, seed=41)
POST_BODY_2 = patients_csv(6_000, seed=42)


def request(method: str, uri: str, body: bytes = b"", close: bool = False) -> bytes:
    head = f"{method} {uri} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: sluice-pcap/1\r\n"
    if body:
        head += f"Content-Type: text/csv\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


# (method, uri, body, close) per connection, in the order they are sent.
CONNECTIONS = [
    [
        ("GET", "/status", b"", False),
        ("POST", "/upload/batch-1", POST_BODY_1, False),
        ("GET", "/status?after=1", b"", True),
    ],
    [
        ("GET", "/form", b"", False),
        ("POST", "/upload/batch-2", POST_BODY_2, False),
        ("GET", "/done", b"", True),
    ],
]


class Handler(realcase.RecordingHandler):
    def do_GET(self) -> None:
        self.record_request(b"")
        page = json.dumps({"path": self.path, "ok": True}).encode()
        self.reply(200, page)

    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"path": self.path, "stored": len(body)}).encode())


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """Read one Content-Length framed response from sock (buf holds bytes already read)."""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    buf[:] = rest[length:]
    return rest[:length]


def client(workdir: Path) -> None:
    bodies = []
    for index, reqs in enumerate(CONNECTIONS):
        sock = socket.create_connection((SERVER_V4, realcase.HTTP_PORT), timeout=10)
        buf = bytearray()
        if index == 0:
            sock.sendall(b"".join(request(*r) for r in reqs))  # one send: pipelined
            bodies += [read_response(sock, buf) for _ in reqs]
        else:
            for r in reqs:
                sock.sendall(request(*r))
                bodies.append(read_response(sock, buf))
        sock.close()
    realcase.append_record(workdir, "client", {"bodies": [b.hex() for b in bodies]})


def build_expected(case_dir: Path, workdir: Path) -> None:
    reqs = realcase.read_records(workdir, "server-requests")
    resps = realcase.read_records(workdir, "server-responses")
    [client_rec] = realcase.read_records(workdir, "client")
    answers = [bytes.fromhex(h) for h in client_rec["bodies"]]
    sent = [r for conn in CONNECTIONS for r in conn]
    assert len(reqs) == len(resps) == len(answers) == len(sent)
    objects, http = [], []
    for (method, uri, body, _close), got, resp, answer in zip(
        sent, reqs, resps, answers, strict=True
    ):
        assert (got["method"], got["uri"], got["sha256"]) == (method, uri, realcase.sha256(body))
        assert realcase.sha256(answer) == resp["sha256"]
        name = expect.uri_filename(uri)
        if body:
            objects.append(expect.http_object("upload", body, filename=name))
        objects.append(expect.http_object("download", answer, filename=name))
        http.append(expect.http_request(method, got["host"], uri, resp["status"]))
    assert expect.count_flows(case_dir / "input.pcap") == 2
    expect.write_expected(case_dir, objects=objects, http=http, flows=2)


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
