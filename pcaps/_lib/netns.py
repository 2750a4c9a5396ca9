"""Two throw-away network namespaces joined by a veth pair, with tcpdump on the client side.

Addresses (fixed for every case so captures are comparable):
client namespace: 10.10.0.10 and fd00:10::10 ("internal" host)
server namespace: 198.51.100.20 and 2001:db8::20 (documentation ranges, the "external" host)

`add_addresses` puts more hosts on either side (secondary addresses, host routes alike).

Neither namespace has a default route, only host routes to the peer through the veth, so
nothing can leave them. Everything is torn down on exit, also after an exception.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

CLIENT_V4 = "10.10.0.10"
SERVER_V4 = "198.51.100.20"
CLIENT_V6 = "fd00:10::10"
SERVER_V6 = "2001:db8::20"
CLIENT_MAC = "02:00:0a:0a:00:0a"
SERVER_MAC = "02:00:c6:33:64:14"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


class NetnsPair:
    """Context manager: `with NetnsPair() as net: net.spawn("server", [...])`."""

    def __init__(self, tag: str = "") -> None:
        suffix = f"{tag[:6]}{os.getpid() % 100000}"
        self.ns = {"client": f"slc-c-{suffix}", "server": f"slc-s-{suffix}"}
        self.dev = {"client": "veth-c", "server": "veth-s"}
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> NetnsPair:
        try:
            self._create()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._teardown()

    def _create(self) -> None:
        c, s = self.ns["client"], self.ns["server"]
        _ip("netns", "add", c)
        _ip("netns", "add", s)
        # Create the pair inside the client namespace directly: never touches the root namespace.
        _ip("-n", c, "link", "add", "veth-c", "address", CLIENT_MAC, "type", "veth",
            "peer", "name", "veth-s", "address", SERVER_MAC, "netns", s)  # fmt: skip
        for role, ns in self.ns.items():
            dev = self.dev[role]
            _ip("-n", ns, "link", "set", "lo", "up")
            # One segment per packet, as a SPAN port would see it (no 64 KiB GSO packets).
            _ip("-n", ns, "link", "set", dev, "gso_max_segs", "1")
        _ip("-n", c, "addr", "add", f"{CLIENT_V4}/32", "dev", "veth-c")
        _ip("-n", s, "addr", "add", f"{SERVER_V4}/32", "dev", "veth-s")
        _ip("-n", c, "addr", "add", f"{CLIENT_V6}/128", "dev", "veth-c", "nodad")
        _ip("-n", s, "addr", "add", f"{SERVER_V6}/128", "dev", "veth-s", "nodad")
        for role, ns in self.ns.items():
            _ip("-n", ns, "link", "set", self.dev[role], "up")
        _ip("-n", c, "route", "add", f"{SERVER_V4}/32", "dev", "veth-c", "src", CLIENT_V4)
        _ip("-n", s, "route", "add", f"{CLIENT_V4}/32", "dev", "veth-s", "src", SERVER_V4)
        _ip("-n", c, "-6", "route", "add", f"{SERVER_V6}/128", "dev", "veth-c")
        _ip("-n", s, "-6", "route", "add", f"{CLIENT_V6}/128", "dev", "veth-s")

    def add_addresses(self, role: str, *addresses: str) -> None:
        """More addresses on `role`'s veth (more internal hosts in the client namespace, more
        external servers in the server one), each with a host route to it from the peer, as the
        fixed pair has. Call inside the `with` block; they go away with the namespaces."""
        peer = "server" if role == "client" else "client"
        for address in addresses:
            v6 = ":" in address
            prefix = f"{address}/{128 if v6 else 32}"
            family = ["-6"] if v6 else []
            _ip("-n", self.ns[role], "addr", "add", prefix, "dev", self.dev[role],
                *(["nodad"] if v6 else []))  # fmt: skip
            _ip("-n", self.ns[peer], *family, "route", "add", prefix, "dev", self.dev[peer])

    def _teardown(self) -> None:
        for proc in reversed(self._procs):
            self._stop(proc, signal.SIGTERM)
        self._procs.clear()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    # -- running things inside ------------------------------------------------------------
    def _cmd(self, role: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def spawn(self, role: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a long-running process (a server) in `role`'s namespace; stopped on exit."""
        proc = subprocess.Popen(self._cmd(role, argv), stdout=subprocess.PIPE)
        self._procs.append(proc)
        return proc

    def run(self, role: str, argv: Sequence[str], timeout: float = 120) -> None:
        """Run a command (a client) to completion in `role`'s namespace."""
        subprocess.run(self._cmd(role, argv), check=True, timeout=timeout)

    @staticmethod
    def wait_for_line(proc: subprocess.Popen[bytes], marker: bytes, timeout: float = 15) -> None:
        """Poll a spawned process's stdout until a line containing `marker` arrives."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if marker in line:
                    return
                if not line and proc.poll() is not None:
                    break
        raise RuntimeError(f"process did not report {marker!r} in time (rc={proc.poll()})")

    @contextmanager
    def capture(self, pcap: Path, bpf: str = "tcp") -> Iterator[None]:
        """tcpdump on the client-side veth (-U: every packet written at once) for the block."""
        pcap.unlink(missing_ok=True)
        argv = [
            "tcpdump",
            "-i",
            "veth-c",
            "-n",
            "-s",
            "65535",
            "-B",
            "65536",
            "--immediate-mode",
            "-U",
            "-w",
            str(pcap),
            bpf,
        ]
        proc = subprocess.Popen(self._cmd("client", argv), stderr=subprocess.PIPE)
        self.capture_stats = b""
        self._procs.append(proc)
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 15
            while b"listening on" not in proc.stderr.readline():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("tcpdump did not start")
            yield
            # Let the last FIN/ACKs cross the veth before tcpdump stops.
            time.sleep(0.5)
        finally:
            self._stop(proc, signal.SIGINT)
            if proc.stderr is not None:
                self.capture_stats = proc.stderr.read()
                proc.stderr.close()
        parent = pcap.parent.stat()
        os.chown(pcap, parent.st_uid, parent.st_gid)  # tcpdump wrote it as user "tcpdump"
        # A sample with silently lost packets would teach the tests the wrong thing.
        if not re.search(rb"(^|\n)0 packets dropped by kernel", self.capture_stats):
            raise RuntimeError(f"tcpdump dropped packets: {self.capture_stats!r}")
