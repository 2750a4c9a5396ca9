"""http-multipart-upload (REAL): multipart/form-data with a text field, a CSV and a binary file.

The binary part is random bytes salted with CRLF-dash-dash sequences (even a boundary prefix)
that must not end the part; one filename is non-ASCII and sent as RFC 5987 `filename*`.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

BOUNDARY = "----sluiceFormBoundary7MA4YWxkTrZu0gW"
COMMENT = b"Export uitstrijkjes week 27, graag vertrouwelijk behandelen."
CSV = patients_csv(20_000, seed=3)
CSV_NAME = "patients-week27.csv"
BIN_NAME = "rapport-échographie.bin"  # non-ASCII: sent as filename*=UTF-8''...


def binary_payload() -> bytes:
    rng = random.Random(33)
    out = bytearray(rng.randbytes(12_000))
    # Delimiter look-alikes: CRLF--, CRLF-- plus a boundary prefix, and a bare "--" + boundary
    # without the leading CRLF (not a delimiter, RFC 2046 5.1.1).
    traps = [b"\r\n--", b"\r\n--" + BOUNDARY[:-3].encode(), b"--" + BOUNDARY.encode(), b"\r\n-"]
    for i, trap in enumerate(traps * 5):
        pos = 500 + i * 550
        out[pos : pos + len(trap)] = trap
    data = bytes(out)
    assert b"\r\n--" + BOUNDARY.encode() not in data
    return data


BIN = binary_payload()


def multipart_body() -> bytes:
    quoted = urllib.parse.quote(BIN_NAME, safe="")
    parts = [
        (b'Content-Disposition: form-data; name="comment"\r\n', COMMENT),
        (
            f'Content-Disposition: form-data; name="export"; filename="{CSV_NAME}"\r\n'
            "Content-Type: text/csv\r\n".encode(),
            CSV,
        ),
        (
            'Content-Disposition: form-data; name="attachment"; filename="rapport-echographie.bin";'
            f" filename*=UTF-8''{quoted}\r\n"
            "Content-Type: application/octet-stream\r\n".encode(),
            BIN,
        ),
    ]
    out = b""
    for headers, content in parts:
        out += b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + content + b"\r\n"
    return out + b"--" + BOUNDARY.encode() + b"--\r\n"


BODY = multipart_body()


class Handler(realcase.RecordingHandler):
    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"parts": body.count(BOUNDARY.encode()) - 1}).encode())


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=10)
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    conn.request("POST", "/portal/upload.php", body=BODY, headers={"Content-Type": ctype})
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
    expect.write_expected(
        case_dir,
        objects=[
            expect.http_object("upload", COMMENT, filename=None),
            expect.http_object("upload", CSV, filename=CSV_NAME),
            expect.http_object("upload", BIN, filename=BIN_NAME),
            expect.http_object("download", answer, filename=expect.uri_filename(req["uri"])),
        ],
        http=[expect.http_request("POST", req["host"], req["uri"], resp["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
