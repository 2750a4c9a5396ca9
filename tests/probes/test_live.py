"""probes/live.py against a real interface: the loopback of a network namespace made for the
test (never the host's), libpcap through pcapy-ng."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from probes.ebpf.netns import inside_netns
from probes.frame import LINKTYPE_ETHERNET
from probes.live import CaptureError, LiveCapture
from tests.conftest import require_root_netns


@pytest.fixture(autouse=True)
def own_netns() -> Iterator[None]:
    """Every test runs inside a fresh namespace whose loopback is up."""
    require_root_netns()
    ns = f"slc-live-{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        with inside_netns(ns):
            yield
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_frames_come_with_kernel_timestamps_linktype_and_whole_payloads() -> None:
    port = _udp_port()
    before = time.time()
    with LiveCapture("lo", timeout_ms=50, bpf_filter=f"udp and dst port {port}") as cap:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(5):
                sender.sendto(bytes([i]) * 1000, ("127.0.0.1", port))
        frames = []
        deadline = time.monotonic() + 10
        while len(frames) < 5 and time.monotonic() < deadline:
            frames += cap.read()
        stats = cap.stats()
    assert len(frames) == 5
    assert all(f.linktype == LINKTYPE_ETHERNET and f.iface == "lo" for f in frames)
    assert [f.data[-1000:] for f in frames] == [bytes([i]) * 1000 for i in range(5)]
    assert all(before - 1 <= f.ts <= time.time() + 1 for f in frames)
    assert [f.ts for f in frames] == sorted(f.ts for f in frames)
    assert stats.received >= 5 and stats.dropped == 0


def test_a_quiet_interface_returns_no_frames_within_the_timeout() -> None:
    port = _udp_port()
    with LiveCapture("lo", timeout_ms=50, bpf_filter=f"udp and dst port {port}") as cap:
        started = time.monotonic()
        assert cap.read() == []
        assert time.monotonic() - started < 1  # the 50 ms timeout, with room for a busy CI


def test_errors_name_the_interface_and_the_reason() -> None:
    with pytest.raises(CaptureError, match="cannot capture on sluice-nope0: no such interface"):
        LiveCapture("sluice-nope0").open()
    with pytest.raises(CaptureError, match="capture filter 'udp and nonsense'"):
        LiveCapture("lo", bpf_filter="udp and nonsense").open()
    with pytest.raises(CaptureError, match="not open"):
        LiveCapture("lo").read()
    with pytest.raises(ValueError, match="snaplen"):
        LiveCapture("lo", snaplen=10)
