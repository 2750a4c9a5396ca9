"""Run a block of code inside a named network namespace (``ip netns``), on this thread only.

Capture side (probes/ebpf/). Interface indexes and link attachment are per network namespace;
the loader enters the namespace of the interface to attach and returns at once. BPF objects,
sockets and fds made inside keep working after the thread has gone back.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

NETNS_RUN_DIR = "/run/netns"  # where `ip netns add` bind-mounts named namespaces
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside_netns(name: str | None) -> Iterator[None]:
    """Enter netns `name` for the block (None = stay where we are)."""
    if name is None:
        yield
        return
    target = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)
