"""Run a REAL case: a server and a client (both written in the case's generate.py) talking in
two fresh namespaces, captured with tcpdump on the client side.

A case's generate.py calls `run_case(...)`. Without arguments it orchestrates; inside the
namespaces the same file is re-executed with `--role server|client --workdir DIR`. Server and
client write what they actually sent and received into DIR (JSON lines); the orchestrator builds
expected.json from those ground-truth records, never from the sensor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from pcaps._lib.netns import SERVER_V4, NetnsPair

HTTP_PORT = 8080


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def append_record(workdir: Path, name: str, record: dict[str, Any]) -> None:
    with (workdir / f"{name}.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_records(workdir: Path, name: str) -> list[dict[str, Any]]:
    path = workdir / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def save_blob(workdir: Path, name: str, data: bytes) -> None:
    (workdir / name).write_bytes(data)


class RecordingHandler(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler that logs every request it received and every body it returned."""

    protocol_version = "HTTP/1.1"
    workdir: Path  # set by serve_http

    def read_body(self) -> bytes:
        """Request body framed by Content-Length or chunked (http.server does neither)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length) if length else b""

    def record_request(self, body: bytes) -> None:
        append_record(
            self.workdir,
            "server-requests",
            {
                "method": self.command,
                "uri": self.path,
                "host": self.headers.get("Host"),
                "size": len(body),
                "sha256": sha256(body),
                "body_hex": body.hex() if len(body) < 4096 else None,
            },
        )

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
        decoded: bytes | None = None,
    ) -> None:
        """Send a Content-Length framed response; `decoded` = body after content decoding."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record_response(status, body if decoded is None else decoded)

    def record_response(self, status: int, decoded: bytes) -> None:
        append_record(
            self.workdir,
            "server-responses",
            {"status": status, "size": len(decoded), "sha256": sha256(decoded)},
        )


def serve_http(handler: type[RecordingHandler], workdir: Path, port: int = HTTP_PORT) -> None:
    handler.workdir = workdir
    server = HTTPServer((SERVER_V4, port), handler)
    print("READY", flush=True)
    server.serve_forever()


def run_case(
    script: str,
    server: Callable[[Path], None],
    client: Callable[[Path], None],
    build_expected: Callable[[Path, Path], None],
    pcap_name: str = "input.pcap",
) -> None:
    """Entry point of a REAL case's generate.py."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["server", "client"])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.role == "server":
        server(args.workdir)
        return
    if args.role == "client":
        client(args.workdir)
        return

    case_dir = Path(script).resolve().parent
    pcap = case_dir / pcap_name
    workdir = Path(tempfile.mkdtemp(prefix="sluice-pcap-"))
    workdir.chmod(0o777)
    me = [sys.executable, str(Path(script).resolve())]
    try:
        with NetnsPair(case_dir.name) as net:
            srv = net.spawn("server", [*me, "--role", "server", "--workdir", str(workdir)])
            net.wait_for_line(srv, b"READY")
            with net.capture(pcap):
                net.run("client", [*me, "--role", "client", "--workdir", str(workdir)])
        build_expected(case_dir, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes)")
