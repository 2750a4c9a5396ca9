"""http-encoded-download (REAL): responses with Content-Encoding gzip, deflate, br, stacked
"gzip, br", and gzip inside chunked transfer coding, over one keep-alive connection.

Objects are the DECODED bytes: the client decodes each body itself and checks it against
the document the server meant to send.
"""

from __future__ import annotations

import gzip
import http.client
import sys
import zlib
from pathlib import Path

import brotli

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

# uri -> (Content-Encoding header, transfer chunked?, decoded document)
DOCS = {
    "/report.gz": ("gzip", False, patients_csv(9_000, seed=51)),
    "/report.deflate": ("deflate", False, patients_csv(8_000, seed=52)),
    "/report.br": ("br", False, patients_csv(7_000, seed=53)),
    "/report.gz.br": ("gzip, br", False, patients_csv(6_000, seed=54)),
    "/report.chunked.gz": ("gzip", True, patients_csv(12_000, seed=55)),
}


def encode(coding: str, data: bytes) -> bytes:
    """Apply codings in the listed order (RFC 9110 8.4: listed in the order applied)."""
    for name in (c.strip() for c in coding.split(",")):
        if name == "gzip":
            data = gzip.compress(data, mtime=0)
        elif name == "deflate":
            data = zlib.compress(data)  # HTTP "deflate" is the zlib format (RFC 9110 8.4.1.2)
        elif name == "br":
            data = brotli.compress(data)
    return data


def decode(coding: str, data: bytes) -> bytes:
    for name in reversed([c.strip() for c in coding.split(",")]):
        if name == "gzip":
            data = gzip.decompress(data)
        elif name == "deflate":
            data = zlib.decompress(data)
        elif name == "br":
            data = brotli.decompress(data)
    return data


class Handler(realcase.RecordingHandler):
    def do_GET(self) -> None:
        self.record_request(b"")
        coding, chunked, doc = DOCS[self.path]
        wire = encode(coding, doc)
        if not chunked:
            self.reply(200, wire, "text/csv", {"Content-Encoding": coding}, decoded=doc)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Encoding", coding)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(wire), 1000):
            piece = wire[start : start + 1000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")
        self.record_response(200, doc)


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=10)
    for uri in DOCS:
        conn.request("GET", uri, headers={"Accept-Encoding": "gzip, deflate, br"})
        resp = conn.getresponse()
        raw = resp.read()  # http.client removes chunking but not content codings
        decoded = decode(resp.headers["Content-Encoding"], raw)
        realcase.append_record(workdir, "client", {"uri": uri, "decoded": decoded.hex()})
    conn.close()


def build_expected(case_dir: Path, workdir: Path) -> None:
    reqs = realcase.read_records(workdir, "server-requests")
    resps = realcase.read_records(workdir, "server-responses")
    got = realcase.read_records(workdir, "client")
    objects, http = [], []
    for req, resp, rec in zip(reqs, resps, got, strict=True):
        decoded = bytes.fromhex(rec["decoded"])
        assert decoded == DOCS[req["uri"]][2] and realcase.sha256(decoded) == resp["sha256"]
        name = expect.uri_filename(req["uri"])
        objects.append(expect.http_object("download", decoded, filename=name))
        http.append(expect.http_request("GET", req["host"], req["uri"], resp["status"]))
    assert len(http) == len(DOCS)
    assert expect.count_flows(case_dir / "input.pcap") == 1
    expect.write_expected(case_dir, objects=objects, http=http, flows=1)


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
