"""office-egress (REAL): four internal hosts, three external servers, one capture.

Client namespace (internal): 10.10.0.10, 10.10.0.11, 10.10.0.12 and fd00:10::11; server
namespace (external, documentation ranges): 198.51.100.20, 203.0.113.30 and 2001:db8::20. Every
client binds its own source address:

- 10.10.0.10: `http.client` PUTs 6 MB of pseudo-random bytes to 198.51.100.20:8080, then POSTs
  a 100 KB fake patient CSV to 203.0.113.30:8080 (the top talker, two destinations);
- 10.10.0.11: the Python `ssl` client of the TLS cases uploads 2 MB over TLS 1.3 with SNI
  files.example.org to 203.0.113.30:443, spread over 15 s (a slow sync that runs while the
  other hosts take their turns, so its connection spans meter buckets);
- fd00:10::11: 4 s later, `http.client` GETs 1 MB from [2001:db8::20]:8080 (a host that
  mostly downloads);
- 10.10.0.12: once the sync is done, OpenSSH `sftp` puts a 300 KB file to our own sshd on
  198.51.100.20:22 (`pcaps/_lib/sshlab.py`, run from here while the capture is on).

The HTTP and TLS servers run in one process in the server namespace (a thread per listener);
the HTTP and TLS clients are one process in the client namespace. Ground truth (what each
server received and returned, what each client got back, the sftp copy checked byte for byte,
the endpoints' TLS parameters) builds expected.json; tshark supplies the fingerprints.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, fakedata, realcase, sshlab, tlscase
from pcaps._lib.netns import CLIENT_V4, SERVER_V4, SERVER_V6

# The internal hosts (CLIENT_V4 is the namespace's first address) and the extra external one.
TLS_HOST = "10.10.0.11"
SSH_HOST = "10.10.0.12"
V6_HOST = "fd00:10::11"
FILES_V4 = "203.0.113.30"
HOSTS = (CLIENT_V4, TLS_HOST, SSH_HOST, V6_HOST)

BIG = fakedata.random_bytes(6_000_000, seed=61)
BIG_URI = "/backup/pacs-export-2025-07.bin"
CSV = fakedata.patients_csv(100_000, seed=62)
CSV_URI = "/share/upload?name=patients-week27.csv"
TLS_BODY = fakedata.random_bytes(2_000_000, seed=63)
DOWNLOAD = fakedata.random_bytes(1_000_000, seed=64)
DOWNLOAD_URI = "/updates/agent-2025.07.bin"
SSH_SIZE = 300_000
TLS_PORT = 443
TLS_SPREAD = 15.0  # seconds: the TLS connection spans at least one 10 s meter bucket boundary
PAUSE = 4.0  # seconds between the other hosts' turns


class Handler(realcase.RecordingHandler):
    def do_PUT(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"stored": len(body)}).encode())

    do_POST = do_PUT

    def do_GET(self) -> None:
        self.record_request(b"")
        self.reply(200, DOWNLOAD, "application/octet-stream")


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


def server(workdir: Path) -> None:
    Handler.workdir = workdir
    listeners: list[HTTPServer] = [
        HTTPServer((SERVER_V4, realcase.HTTP_PORT), Handler),
        HTTPServer((FILES_V4, realcase.HTTP_PORT), Handler),
        HTTPServer6((SERVER_V6, realcase.HTTP_PORT), Handler),
    ]
    tlscase.make_cert(workdir, FILES_V4)
    ctx = tlscase.server_context(workdir, ssl.TLSVersion.TLSv1_3, None)
    tls_listener = socket.create_server((FILES_V4, TLS_PORT))
    for listener in listeners:
        threading.Thread(target=listener.serve_forever, daemon=True).start()
    print("READY", flush=True)
    while True:
        raw, _addr = tls_listener.accept()
        tlscase.serve_one_upload(ctx, raw, workdir)


def http_exchange(
    workdir: Path, source: str, server: str, method: str, uri: str, body: bytes | None
) -> None:
    """One request on its own connection from `source`; records what came back."""
    # http.client takes an IPv6 literal in brackets only with the port in the same string
    host = f"[{server}]" if ":" in server else server
    conn = http.client.HTTPConnection(
        f"{host}:{realcase.HTTP_PORT}", timeout=30, source_address=(source, 0)
    )
    headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
    conn.request(method, uri, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    realcase.append_record(
        workdir,
        "client-responses",
        {"method": method, "uri": uri, "status": resp.status, "sha256": realcase.sha256(data)},
    )
    realcase.save_blob(workdir, f"response-{method}", data)


def tls_sync(workdir: Path) -> None:
    sock = socket.create_connection((FILES_V4, TLS_PORT), timeout=30, source_address=(TLS_HOST, 0))
    tlscase.upload_over(sock, workdir, TLS_BODY, spread=TLS_SPREAD)


def client(workdir: Path) -> None:
    # 10.10.0.11's slow sync runs the whole time; the other hosts come and go meanwhile.
    with ThreadPoolExecutor(1) as pool:
        sync = pool.submit(tls_sync, workdir)
        http_exchange(workdir, CLIENT_V4, SERVER_V4, "PUT", BIG_URI, BIG)
        http_exchange(workdir, CLIENT_V4, FILES_V4, "POST", CSV_URI, CSV)
        time.sleep(PAUSE)
        http_exchange(workdir, V6_HOST, SERVER_V6, "GET", DOWNLOAD_URI, None)
        time.sleep(PAUSE)
        sync.result()  # re-raises whatever went wrong in the thread


def build_expected(case_dir: Path, workdir: Path, ssh_truth: sshlab.Truth) -> None:
    pcap = case_dir / "input.pcap"
    requests = realcase.read_records(workdir, "server-requests")
    responses = realcase.read_records(workdir, "server-responses")
    answers = realcase.read_records(workdir, "client-responses")
    assert [r["method"] for r in requests] == ["PUT", "POST", "GET"], requests
    assert [r["uri"] for r in requests] == [BIG_URI, CSV_URI, DOWNLOAD_URI]
    assert [r["sha256"] for r in requests] == [realcase.sha256(b) for b in (BIG, CSV, b"")]
    assert [r["sha256"] for r in responses] == [a["sha256"] for a in answers]
    assert responses[2]["sha256"] == realcase.sha256(DOWNLOAD)
    objects = []
    for req, method, body in zip(requests, ("PUT", "POST", "GET"), (BIG, CSV, b""), strict=True):
        name = expect.uri_filename(req["uri"])
        answer = (workdir / f"response-{method}").read_bytes()
        if body:
            objects.append(expect.http_object("upload", body, filename=name))
        objects.append(expect.http_object("download", answer, filename=name))
    http = [
        expect.http_request(req["method"], req["host"], req["uri"], resp["status"])
        for req, resp in zip(requests, responses, strict=True)
    ]

    [srv] = realcase.read_records(workdir, "tls-server")
    [cli] = realcase.read_records(workdir, "tls-client")
    assert srv["sha256"] == realcase.sha256(TLS_BODY) and srv["size"] == len(TLS_BODY)
    assert srv["version"] == cli["version"] == "TLSv1.3" and cli["alpn"] == "h2"
    [wire] = tlscase.tshark_handshakes(pcap)

    assert ssh_truth.auth_success and ssh_truth.app_bytes == SSH_SIZE
    flows = expect.count_flows(pcap)
    assert flows == 5, flows  # PUT, POST, TLS, GET, SFTP: one connection each
    expect.write_expected(
        case_dir,
        objects=objects,
        http=http,
        flows=flows,
        extra={
            "tls": [tlscase.tls_expectation(srv, None, wire)],
            "ssh": [sshlab.expected_entry(ssh_truth, pcap)],
        },
    )


def main() -> None:
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

    case_dir = Path(__file__).resolve().parent
    pcap = case_dir / "input.pcap"
    workdir = Path(tempfile.mkdtemp(prefix="sluice-pcap-"))
    workdir.chmod(0o777)
    me = [sys.executable, str(Path(__file__).resolve())]
    role_args = ["--workdir", str(workdir)]
    try:
        # SshLab owns the namespace pair (and its sshd on 198.51.100.20:22); the other servers
        # and hosts are added to it. Everything is torn down when the block ends, however.
        with sshlab.SshLab(case_dir.name[:6], seed=len(case_dir.name)) as lab:
            net = lab.net
            assert net is not None
            net.add_addresses("client", TLS_HOST, SSH_HOST, V6_HOST)
            net.add_addresses("server", FILES_V4)
            srv = net.spawn("server", [*me, "--role", "server", *role_args])
            net.wait_for_line(srv, b"READY")
            with net.capture(pcap):
                net.run("client", [*me, "--role", "client", *role_args])
                ssh_truth = lab.sftp(pcap, "put", SSH_SIZE, seed=65, source=SSH_HOST, capture=False)
        build_expected(case_dir, workdir, ssh_truth)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
