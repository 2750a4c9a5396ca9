"""End to end, for real: an HTTP upload between two network namespaces (Python's http.server
and urllib), captured by tcpdump through libpcap, then replayed by `sluice extract`.

The upload must come out byte-exact, with the request's metadata, as the client sent it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import require_root_netns, require_tool

SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reply = str(len(body)).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = HTTPServer(("198.51.100.20", 8080), Sink)
    print("ready", flush=True)
    server.handle_request()
    """
)

CLIENT = textwrap.dedent(
    """
    import sys, urllib.request
    body = open(sys.argv[1], "rb").read()
    req = urllib.request.Request("http://198.51.100.20:8080/drop/export.csv", data=body,
                                 method="POST", headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        assert resp.status == 201 and resp.read() == str(len(body)).encode()
    """
)


def test_real_upload_captured_with_libpcap_is_extracted_exactly(tmp_path: Path) -> None:
    require_root_netns()
    require_tool("tcpdump")
    from pcaps._lib.netns import NetnsPair

    body = b"".join(
        b"%d,Patient %d,1970-01-%02d,cervical screening result %d\n" % (i, i, i % 28 + 1, i % 5)
        for i in range(4000)
    )
    (tmp_path / "body.csv").write_bytes(body)
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    pcap = tmp_path / "live.pcap"
    with NetnsPair("e2e") as net:
        server = net.spawn("server", [sys.executable, str(tmp_path / "server.py")])
        net.wait_for_line(server, b"ready")
        with net.capture(pcap):
            net.run(
                "client",
                [sys.executable, str(tmp_path / "client.py"), str(tmp_path / "body.csv")],
                timeout=60,
            )
    out = tmp_path / "out"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sluice"), "extract", str(pcap), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    files = [json.loads(line) for line in (out / "files.jsonl").open()]
    uploads = [f for f in files if f["direction"] == "upload"]
    assert len(uploads) == 1
    (upload,) = uploads
    assert upload["sha256"] == hashlib.sha256(body).hexdigest()
    assert upload["size"] == len(body) and upload["complete"] and upload["missing_bytes"] == 0
    assert upload["filename"] == "export.csv"
    assert (upload["src_ip"], upload["dest_ip"], upload["dest_port"]) == (
        "10.10.0.10",
        "198.51.100.20",
        8080,
    )
    assert (out / "files" / upload["sha256"]).read_bytes() == body
    assert "export.csv" in done.stdout  # the summary names the upload
