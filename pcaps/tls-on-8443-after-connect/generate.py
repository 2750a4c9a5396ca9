"""tls-on-8443-after-connect (REAL): HTTP CONNECT to a proxy on :8080, then TLS in the tunnel.

Server namespace: a tiny CONNECT proxy on 198.51.100.20:8080 and an `ssl` upload server on
198.51.100.20:8443 (TLS 1.3, self-signed certificate generated at run time into the case's
temp dir). The proxy-to-server hop stays inside the server namespace and is not captured. The
client sends `CONNECT 198.51.100.20:8443`, reads the 200, then runs a TLS handshake with SNI
files.example.org and ALPN h2/http1.1 through the tunnel and uploads ~50 KB of fake patient CSV.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, fakedata, realcase, tlscase
from pcaps._lib.netns import SERVER_V4

TLS_PORT = 8443
TARGET = f"{SERVER_V4}:{TLS_PORT}"
BODY_SIZE = 50_000


class Proxy(socketserver.StreamRequestHandler):
    workdir: Path

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.rfile.read(1)
            if not byte:
                return
            head += byte
        lines = head.decode().split("\r\n")
        method, target, _version = lines[0].split(" ")
        host = next((ln.split(":", 1)[1].strip() for ln in lines[1:]
                     if ln.lower().startswith("host:")), None)  # fmt: skip
        realcase.append_record(
            self.workdir, "proxy", {"method": method, "target": target, "host": host}
        )
        if method != "CONNECT" or target != TARGET:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((SERVER_V4, TLS_PORT), timeout=10)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        down = threading.Thread(target=self._pump, args=(upstream, self.connection))
        down.start()
        self._pump(self.connection, upstream)
        down.join()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def server(workdir: Path) -> None:
    tlscase.make_cert(workdir, SERVER_V4)
    ctx = tlscase.server_context(workdir, ssl.TLSVersion.TLSv1_3, None)
    listener = socket.create_server((SERVER_V4, TLS_PORT))

    def tls_loop() -> None:
        while True:
            raw, _addr = listener.accept()
            tlscase.serve_one_upload(ctx, raw, workdir)

    threading.Thread(target=tls_loop, daemon=True).start()
    Proxy.workdir = workdir
    socketserver.TCPServer.allow_reuse_address = True
    proxy = socketserver.ThreadingTCPServer((SERVER_V4, realcase.HTTP_PORT), Proxy)
    print("READY", flush=True)
    proxy.serve_forever()


def client(workdir: Path) -> None:
    body = fakedata.patients_csv(BODY_SIZE, seed=8443)
    realcase.save_blob(workdir, "body", body)
    sock = socket.create_connection((SERVER_V4, realcase.HTTP_PORT), timeout=10)
    sock.sendall(f"CONNECT {TARGET} HTTP/1.1\r\nHost: {TARGET}\r\n\r\n".encode())
    reply = b""
    while not reply.endswith(b"\r\n\r\n"):
        reply += sock.recv(1)  # byte by byte: nothing of the TLS stream is read here
    assert reply.startswith(b"HTTP/1.1 200"), reply
    realcase.append_record(workdir, "client", {"status": int(reply.split(b" ")[1])})
    tlscase.upload_over(sock, workdir, body)


def build_expected(case_dir: Path, workdir: Path) -> None:
    [proxied] = realcase.read_records(workdir, "proxy")
    [seen] = realcase.read_records(workdir, "client")
    [srv] = realcase.read_records(workdir, "tls-server")
    [cli] = realcase.read_records(workdir, "tls-client")
    body = (workdir / "body").read_bytes()
    assert srv["sha256"] == realcase.sha256(body) and srv["size"] == len(body)
    assert srv["version"] == cli["version"] == "TLSv1.3" and cli["alpn"] == "h2"
    pcap = case_dir / "input.pcap"
    [wire] = tlscase.tshark_handshakes(pcap)
    assert expect.count_flows(pcap) == 1
    tlscase.write_expected_tls(
        case_dir,
        tls=[tlscase.tls_expectation(srv, None, wire)],
        http=[expect.http_request("CONNECT", proxied["host"], proxied["target"], seen["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
