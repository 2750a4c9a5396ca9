"""http-post-raw (REAL): urllib POSTs a ~50 KB CSV of fake patients to Python's http.server."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

CSV = patients_csv(50_000, seed=1)


class Handler(realcase.RecordingHandler):
    protocol_version = "HTTP/1.0"  # urllib sends Connection: close anyway

    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        answer = json.dumps({"stored": len(body), "rows": body.count(b"\n") - 1}).encode()
        self.reply(200, answer)


def server(workdir: Path) -> None:
    realcase.serve_http(Handler, workdir)


def client(workdir: Path) -> None:
    url = f"http://{SERVER_V4}:{realcase.HTTP_PORT}/upload"
    req = urllib.request.Request(url, data=CSV, headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        realcase.save_blob(workdir, "response.bin", resp.read())


def build_expected(case_dir: Path, workdir: Path) -> None:
    [req] = realcase.read_records(workdir, "server-requests")
    [resp] = realcase.read_records(workdir, "server-responses")
    assert req["sha256"] == realcase.sha256(CSV), "server received other bytes than were sent"
    answer = (workdir / "response.bin").read_bytes()
    assert realcase.sha256(answer) == resp["sha256"]
    flows = expect.count_flows(case_dir / "input.pcap")
    assert flows == 1, flows
    name = expect.uri_filename(req["uri"])
    expect.write_expected(
        case_dir,
        objects=[
            expect.http_object("upload", CSV, filename=name),
            expect.http_object("download", answer, filename=name),
        ],
        http=[expect.http_request("POST", req["host"], req["uri"], resp["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
