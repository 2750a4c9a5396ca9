"""Three throw-away network namespaces in a row, the middle one a gateway (for enforcement).

    client ns  --veth c0/g0--  gateway ns (forwarding)  --veth g1/s0--  server ns
    10.10.0.10 (+ more)        10.10.0.1 | 198.51.100.1                 198.51.100.20:8080

The server namespace runs an HTTP endpoint that reads each request whole and answers 200;
`post()` sends a body from a chosen client address, `reachable()` tries a TCP connect. The
gateway namespace is where `sluice run` captures (on g0) and where its nftables backend acts.
Nothing touches the root namespace; everything is deleted on exit, also after an exception.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from probes.ebpf.netns import inside_netns

CLIENT, GW_IN, GW_OUT, SERVER, PORT = (
    "10.10.0.10",
    "10.10.0.1",
    "198.51.100.1",
    "198.51.100.20",
    8080,
)


@dataclass(frozen=True)
class GatewayLab:
    client: str
    gateway: str
    server: str

    def nft(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.gateway, "nft", *args], capture_output=True, text=True
        )

    def blocked_hosts(self) -> list[str]:
        """The addresses in Sluice's IPv4 host set (empty when there is no such table)."""
        done = self.nft("-j", "list", "set", "inet", "sluice", "hosts_v4")
        if done.returncode != 0:
            return []
        elements = json.loads(done.stdout)["nftables"][1]["set"].get("elem", [])
        return [e["elem"]["val"] if isinstance(e, dict) else e for e in elements]

    def reachable(self, ns: str, source: str | None = None, timeout: float = 0.5) -> bool:
        with inside_netns(ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            if source is not None:
                sock.bind((source, 0))
            sock.settimeout(timeout)
            return sock.connect_ex((SERVER, PORT)) == 0

    def post(self, body: bytes, source: str = CLIENT, name: str = "export.7z") -> float:
        """POST `body` from `source` in the client namespace; the monotonic time its last
        byte was sent."""
        with inside_netns(self.client):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.bind((source, 0))
            sock.settimeout(10)
            sock.connect((SERVER, PORT))
            head = (
                f"POST /upload/{name} HTTP/1.1\r\nHost: {SERVER}:{PORT}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            sent = time.monotonic()
            if not sock.recv(1024).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("the lab's server did not answer 200")
        return sent


def wait(condition: Callable[[], bool], seconds: float = 10.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _serve(ns: str) -> socket.socket:
    with inside_netns(ns):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((SERVER, PORT))
    listener.listen(64)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")), 0,
            )  # fmt: skip
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    accept_in_thread(
        listener, lambda conn: threading.Thread(target=handle, args=(conn,), daemon=True).start()
    )
    return listener


def accept_in_thread(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Accept connections on `listener` in a daemon thread until it is closed."""

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed at teardown
            handle(conn)

    threading.Thread(target=accept_loop, daemon=True).start()


@contextmanager
def gateway_lab(tag: str, extra_clients: Sequence[str] = ()) -> Iterator[GatewayLab]:
    """The three namespaces, routed and serving; `extra_clients`: more client addresses."""
    suffix = f"{tag[:5]}-{os.getpid() % 100000}"
    lab = GatewayLab(f"slgw-c-{suffix}", f"slgw-g-{suffix}", f"slgw-s-{suffix}")
    listener = None
    try:
        c, g, s = lab.client, lab.gateway, lab.server
        for ns in (c, g, s):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", g)
        _ip("-n", g, "link", "add", "g1", "type", "veth", "peer", "name", "s0", "netns", s)
        addresses = [(c, "c0", f"{a}/24") for a in (CLIENT, *extra_clients)]
        addresses += [
            (g, "g0", f"{GW_IN}/24"),
            (g, "g1", f"{GW_OUT}/24"),
            (s, "s0", f"{SERVER}/24"),
        ]
        for ns, dev, addr in addresses:
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
        for ns, dev in ((c, "c0"), (g, "g0"), (g, "g1"), (s, "s0")):
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", c, "route", "add", "default", "via", GW_IN)
        _ip("-n", s, "route", "add", "default", "via", GW_OUT)
        subprocess.run(
            ["ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=True, capture_output=True,
        )  # fmt: skip
        listener = _serve(s)
        if not wait(lambda: lab.reachable(lab.client), 10):
            raise RuntimeError("gateway lab: the client cannot reach the server")
        yield lab
    finally:
        if listener is not None:
            listener.close()
        for ns in (lab.client, lab.gateway, lab.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
