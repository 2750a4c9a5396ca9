"""Content stage: file type sniffing.

In: the first bytes of a finished file object (at most ContentCaps.sniff_bytes).
Out: a MIME type string from libmagic (python-magic), or None.

libmagic is loaded lazily, once per process, on the first sniff (never at import time: importing
the content stage must not fail on a host without libmagic). If it cannot be loaded, sniffing
returns None and `MimeSniffer.take_load_error()` hands the reason out exactly once, so the caller
can report a single `content_sniff_unavailable` anomaly instead of one per file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol


class MagicLike(Protocol):
    def from_buffer(self, buffer: bytes) -> str: ...


def _load_libmagic() -> MagicLike:
    # python-magic binds libmagic with ctypes at import time, so a missing shared library shows up
    # as an ImportError/OSError here rather than at sensor start.
    import magic

    m: Any = magic.Magic(mime=True)
    return m


class MimeSniffer:
    """Lazily created wrapper around one libmagic handle."""

    __slots__ = ("_error_taken", "_loaded", "_loader", "_magic", "load_error")

    def __init__(self, loader: Callable[[], MagicLike] = _load_libmagic) -> None:
        self._loader = loader
        self._magic: MagicLike | None = None
        self._loaded = False
        self._error_taken = False
        self.load_error: str | None = None

    def _ensure(self) -> MagicLike | None:
        if not self._loaded:
            self._loaded = True
            try:
                self._magic = self._loader()
            except Exception as exc:  # ImportError, OSError, magic.MagicException
                self.load_error = f"libmagic unavailable: {type(exc).__name__}: {exc}"
        return self._magic

    def sniff(self, prefix: bytes) -> str | None:
        if not prefix:
            return None
        m = self._ensure()
        if m is None:
            return None
        try:
            mime = m.from_buffer(prefix)
        except Exception:
            # libmagic can reject odd input; an unknown type is not worth failing an object for.
            return None
        return mime or None

    def take_load_error(self) -> str | None:
        """The load failure reason the first time it is asked for after a failure, else None."""
        if self.load_error is None or self._error_taken:
            return None
        self._error_taken = True
        return self.load_error


@functools.cache
def default_sniffer() -> MimeSniffer:
    """The per-process sniffer (created on first use, not at import)."""
    return MimeSniffer()


def sniff_mime(prefix: bytes) -> str | None:
    """MIME type of `prefix` according to libmagic, or None (no bytes, or libmagic missing)."""
    return default_sniffer().sniff(prefix)
