"""tls-13-alpn (REAL): Python ssl client uploads ~200 KB over TLS 1.3 with SNI and ALPN.

Server namespace: an `ssl` server on 198.51.100.20:443 speaking TLS 1.3 (OpenSSL defaults)
with a self-signed certificate generated at run time into the case's temp dir (encrypted on the
wire in TLS 1.3, so the expectation has no certificates). The client offers up to TLS 1.3, SNI
files.example.org and ALPN h2/http1.1, verifies the certificate against that temp CA file,
uploads ~200 KB of fake patient CSV and reads "ok".
"""

from __future__ import annotations

import socket
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, fakedata, realcase, tlscase
from pcaps._lib.netns import SERVER_V4

PORT = 443
BODY_SIZE = 200_000


def server(workdir: Path) -> None:
    tlscase.make_cert(workdir, SERVER_V4)
    ctx = tlscase.server_context(workdir, ssl.TLSVersion.TLSv1_3, None)
    listener = socket.create_server((SERVER_V4, PORT))
    print("READY", flush=True)
    while True:
        raw, _addr = listener.accept()
        tlscase.serve_one_upload(ctx, raw, workdir)


def client(workdir: Path) -> None:
    body = fakedata.patients_csv(BODY_SIZE, seed=13)
    realcase.save_blob(workdir, "body", body)
    sock = socket.create_connection((SERVER_V4, PORT), timeout=10)
    tlscase.upload_over(sock, workdir, body)


def build_expected(case_dir: Path, workdir: Path) -> None:
    [srv] = realcase.read_records(workdir, "tls-server")
    [cli] = realcase.read_records(workdir, "tls-client")
    body = (workdir / "body").read_bytes()
    assert srv["sha256"] == realcase.sha256(body) and srv["size"] == len(body)
    assert srv["version"] == cli["version"] == "TLSv1.3" and cli["alpn"] == "h2"
    pcap = case_dir / "input.pcap"
    [wire] = tlscase.tshark_handshakes(pcap)
    assert expect.count_flows(pcap) == 1
    tlscase.write_expected_tls(
        case_dir, tls=[tlscase.tls_expectation(srv, None, wire)], http=[], flows=1
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
