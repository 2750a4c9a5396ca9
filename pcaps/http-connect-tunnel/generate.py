"""http-connect-tunnel (REAL): a tiny CONNECT proxy; after "200" only opaque bytes flow.

Server namespace: the proxy on 198.51.100.20:8080 and a stand-in "TLS" peer on
198.51.100.20:443 (the proxy-to-peer hop stays inside the server namespace and is not
captured). The client sends CONNECT, reads the 200, then exchanges random bytes that start
like TLS records. Nothing after the 200 is HTTP, so there are no objects.
"""

from __future__ import annotations

import random
import socket
import socketserver
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, realcase
from pcaps._lib.netns import SERVER_V4

TARGET = f"{SERVER_V4}:443"
rng = random.Random(8)
CLIENT_OPAQUE = (
    b"\x16\x03\x01\x02\x00" + rng.randbytes(512) + b"\x17\x03\x03\x10\x00" + rng.randbytes(4096)
)
SERVER_OPAQUE = (
    b"\x16\x03\x03\x00\x7a" + rng.randbytes(122) + b"\x17\x03\x03\x20\x00" + rng.randbytes(8192)
)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed early")
        data += chunk
    return data


class Peer(socketserver.BaseRequestHandler):
    """The far end of the tunnel: reads the client's bytes, answers with its own."""

    def handle(self) -> None:
        recv_exactly(self.request, len(CLIENT_OPAQUE))
        self.request.sendall(SERVER_OPAQUE)


class Proxy(socketserver.StreamRequestHandler):
    workdir: Path

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.rfile.read(1)
        method, target, _version = head.split(b"\r\n")[0].decode().split(" ")
        host = next(
            (line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")[1:]
             if line.lower().startswith("host:")),
            None,
        )  # fmt: skip
        realcase.append_record(
            self.workdir, "proxy", {"method": method, "target": target, "host": host}
        )
        if method != "CONNECT" or target != TARGET:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((SERVER_V4, 443), timeout=10)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        up = threading.Thread(target=self._pump, args=(self.connection, upstream))
        up.start()
        self._pump(upstream, self.connection)
        up.join()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)


def server(workdir: Path) -> None:
    Proxy.workdir = workdir
    socketserver.TCPServer.allow_reuse_address = True
    peer = socketserver.ThreadingTCPServer((SERVER_V4, 443), Peer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    proxy = socketserver.ThreadingTCPServer((SERVER_V4, realcase.HTTP_PORT), Proxy)
    print("READY", flush=True)
    proxy.serve_forever()


def client(workdir: Path) -> None:
    sock = socket.create_connection((SERVER_V4, realcase.HTTP_PORT), timeout=10)
    sock.sendall(f"CONNECT {TARGET} HTTP/1.1\r\nHost: {TARGET}\r\n\r\n".encode())
    reply = b""
    while not reply.endswith(b"\r\n\r\n"):
        reply += sock.recv(1)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    sock.sendall(CLIENT_OPAQUE)
    assert recv_exactly(sock, len(SERVER_OPAQUE)) == SERVER_OPAQUE
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(1) == b""
    sock.close()
    realcase.append_record(workdir, "client", {"status": int(reply.split(b" ")[1])})


def build_expected(case_dir: Path, workdir: Path) -> None:
    [proxied] = realcase.read_records(workdir, "proxy")
    [seen] = realcase.read_records(workdir, "client")
    assert expect.count_flows(case_dir / "input.pcap") == 1
    expect.write_expected(
        case_dir,
        objects=[],
        http=[expect.http_request("CONNECT", proxied["host"], proxied["target"], seen["status"])],
        flows=1,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
