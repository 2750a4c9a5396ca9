"""Live capture from a network interface through libpcap.

Capture side (probes/): an interface name comes in, `Frame(ts, data, linktype, iface)` values go
out, a batch at a time. libpcap is reached through pcapy-ng, whose `next_batch` reads many
packets per call; the handle is non-blocking and `read` waits on its descriptor for at most
`timeout_ms`, so a quiet interface never holds up the runtime's clock or a stop request.

The handle is opened with `pcap_create`/`pcap_activate` so the kernel buffer size can be set (a
SPAN port bursts; drops are counted by the kernel and reported in `stats()`). Time stamps come
from the kernel with the packet, never from the wall clock here. A capture error (the interface
went down, permissions) raises `CaptureError` with libpcap's message.
"""

from __future__ import annotations

import select
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from probes.frame import Frame

DEFAULT_SNAPLEN = 262_144  # whole packets, GRO/GSO super-packets included
DEFAULT_BUFFER_BYTES = 64 << 20  # kernel ring for bursts while Python is busy
DEFAULT_TIMEOUT_MS = 100  # longest wait for a batch: bounds the latency of a stop request
DEFAULT_BATCH = 512
_META = struct.Struct("=IIII")  # next_batch record: sec, usec, offset, caplen


# pcap_activate(3PCAP): what its negative return values mean.
_ACTIVATE_ERRORS = {
    -1: "libpcap could not open it (PCAP_ERROR)",
    -5: "no such interface",
    -8: "permission denied (needs root or CAP_NET_RAW)",
    -9: "the interface is not up",
    -11: "no permission for promiscuous mode",
}


class CaptureError(Exception):
    """The interface cannot be captured from; the message says which and why."""


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """libpcap's counters since the handle was opened (pcap_stats(3PCAP))."""

    received: int
    dropped: int  # no room in the kernel buffer: the sensor was too slow
    if_dropped: int  # dropped by the interface or its driver
    # Received but never read: still in the buffer (at a stop: left behind), or lost with a
    # handle closed by an outage. Every packet is read, dropped or in here.
    unread: int = 0


class LiveCapture:
    """`with LiveCapture("eth1") as cap: frames = cap.read()`; an empty list = nothing within
    the timeout."""

    def __init__(
        self,
        iface: str,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        promisc: bool = True,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        bpf_filter: str | None = None,
    ) -> None:
        if snaplen < 68:
            raise ValueError("snaplen must be at least 68 bytes")
        self.iface = iface
        self.snaplen = snaplen
        self.promisc = promisc
        self.timeout_ms = timeout_ms
        self.buffer_bytes = buffer_bytes
        self.bpf_filter = bpf_filter
        self.linktype = -1
        self._handle: Any = None
        self._fd = -1
        self._closed_stats = CaptureStats(0, 0, 0)  # of handles closed before (reopens)
        self.read_frames = 0  # frames read() handed out, over every handle

    def open(self) -> LiveCapture:
        try:
            import pcapy
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise CaptureError(f"pcapy-ng is not installed ({exc}); run `make setup`") from None
        try:
            handle = pcapy.create(self.iface)
            handle.set_snaplen(self.snaplen)
            handle.set_promisc(self.promisc)
            handle.set_timeout(self.timeout_ms)
            handle.set_buffer_size(self.buffer_bytes)
            status = handle.activate()
        except pcapy.PcapError as exc:
            raise CaptureError(f"cannot capture on {self.iface}: {exc}") from None
        if isinstance(status, int) and status < 0:  # pcap_activate(3PCAP) error codes
            why = _ACTIVATE_ERRORS.get(status, f"libpcap error {status}")
            raise CaptureError(f"cannot capture on {self.iface}: {why}")
        try:
            if self.bpf_filter:
                handle.setfilter(self.bpf_filter)
            self.linktype = int(handle.datalink())
            # Non-blocking reads plus our own wait on the descriptor: a blocking read would
            # not return on a quiet interface (libpcap waits for the first packet).
            handle.setnonblock(1)
            self._fd = int(handle.getfd())
        except (pcapy.PcapError, pcapy.BPFError) as exc:
            handle.close()
            raise CaptureError(f"capture filter {self.bpf_filter!r}: {exc}") from None
        self._handle = handle
        return self

    def read(self, max_frames: int = DEFAULT_BATCH, *, wait: bool = True) -> list[Frame]:
        """Up to `max_frames` frames, waiting at most the timeout for the first (`wait`)."""
        handle = self._handle
        if handle is None:
            raise CaptureError("the capture is not open")
        try:
            data, meta = handle.next_batch(max_frames)
            if not meta and wait and select.select([self._fd], [], [], self.timeout_ms / 1000)[0]:
                data, meta = handle.next_batch(max_frames)
        except Exception as exc:  # pcapy.PcapError: the interface went away, ...
            raise CaptureError(f"capture on {self.iface} failed: {exc}") from None
        linktype, iface = self.linktype, self.iface
        frames = []
        for sec, usec, offset, caplen in _META.iter_unpack(meta):
            frames.append(Frame(sec + usec * 1e-6, data[offset : offset + caplen], linktype, iface))
        self.read_frames += len(frames)
        return frames

    def stats(self) -> CaptureStats:
        """Counts since the first open, over every reopen (a new handle starts from zero)."""
        base = self._closed_stats
        current = self._handle_stats()
        received = base.received + current.received
        return CaptureStats(
            received,
            base.dropped + current.dropped,
            base.if_dropped + current.if_dropped,
            max(0, received - self.read_frames),
        )

    def _handle_stats(self) -> CaptureStats:
        if self._handle is None:
            return CaptureStats(0, 0, 0)
        try:
            received, dropped, if_dropped = self._handle.stats()
        except Exception:  # stats are best effort on a handle that failed
            return CaptureStats(0, 0, 0)
        return CaptureStats(int(received), int(dropped), int(if_dropped))

    def close(self) -> None:
        self._closed_stats = self.stats()
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def __enter__(self) -> LiveCapture:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
