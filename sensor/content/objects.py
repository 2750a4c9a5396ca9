"""Content stage: one streamed file object and opt-in extraction to disk.

In: the decoded bytes of one object, chunk by chunk (`FileObject.update`), gaps (`gap`), and the
end (`finish`).
Out: a `FileInfo` (size, SHA-256, sniffed type, completeness) and, when an `ObjectStore` is
given, the bytes on disk as DIR/files/<sha256>.

Nothing here holds a whole object: the hash is incremental, only the first `sniff_bytes` are kept
for type sniffing, and extraction writes each chunk to a temporary file as it arrives. Storage
failures (disk full, permissions) are reported as `content_store_error` anomalies and the object
goes on without extraction; they never raise.

`ContentCaps` and `FileInfo` live here (the bottom of the content stage) and are re-exported by
`sensor.content.entity`, which is where callers import them from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO

from sensor.anomaly import Anomaly
from sensor.content.filetype import MimeSniffer, default_sniffer

# Decoded-size threshold below which the ratio guard stays quiet: small, highly compressible
# bodies (a page of zeros, a JSON array of nulls) are normal.
RATIO_GUARD_MIN_BYTES = 16 * 1024**2


@dataclass(frozen=True, slots=True)
class ContentCaps:
    """Every buffer and budget of the content stage, named (DESIGN.md: every buffer has a cap)."""

    max_decoded_bytes: int = 4 * 1024**3  # per body after decompression -> content_decoded_cap
    max_ratio: int = 1000  # decoded/encoded, checked once decoded > 16 MiB -> content_decoded_ratio
    max_parts: int = 1000  # multipart parts per body -> multipart_part_cap
    max_part_header_bytes: int = 16384  # one part's header block -> multipart_header_too_long
    sniff_bytes: int = 8192  # prefix kept for type sniffing


# Immutable, so one shared default instance is safe.
DEFAULT_CAPS = ContentCaps()


@dataclass(slots=True)
class FileInfo:
    """One finished file object."""

    filename: str | None
    mime_type: str | None
    declared_type: str | None
    size: int
    sha256: str
    complete: bool
    # Bytes known to be missing. A gap in a content-coded (compressed) stream is counted in
    # *encoded* bytes, because the decoded size of the lost bytes is unknowable.
    missing_bytes: int
    encodings: list[str] = field(default_factory=list)
    part_index: int | None = None
    stored_path: str | None = None
    # The stored copy is not the whole object (an extraction cap): files/<sha256>.cut holds
    # the first stored_bytes bytes of the object whose SHA-256 is sha256.
    stored_cut: bool = False
    stored_bytes: int = 0


class StoredFile:
    """A temporary file in DIR/files/ that becomes DIR/files/<sha256> on commit, or
    <sha256>.cut when the store's caps cut it (it then holds the object's first bytes)."""

    __slots__ = ("_dir", "_fh", "_store", "_tmp_path", "cut", "written")

    def __init__(self, store: ObjectStore) -> None:
        self._dir = store.files_dir
        self._store = store
        self.written = 0
        self.cut = False
        fd, self._tmp_path = tempfile.mkstemp(prefix=".partial-", dir=self._dir)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if self._fh is None or self.cut:
            return
        room = self._store.room(self.written)
        if len(data) > room:
            data = data[:room]
            self.cut = True
            self._store.cut += 1
        if data:
            self._fh.write(data)
            self.written += len(data)
            self._store.written += len(data)

    def commit(self, sha256_hex: str) -> str:
        """Close and move into place; an existing file with that name wins (same bytes)."""
        self._close()
        final = os.path.join(self._dir, sha256_hex + (".cut" if self.cut else ""))
        if os.path.exists(final):
            os.unlink(self._tmp_path)
        else:
            os.replace(self._tmp_path, final)
        return final

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp_path)

    def _close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


class ObjectStore:
    """Opt-in extraction target: objects are written to `directory`/files/<sha256>, each up to
    `max_object_bytes` and all together up to `max_total_bytes` (a gzip bomb in a 13 MB
    capture must not fill the disk); what a cap cut is marked and counted in `cut`."""

    __slots__ = ("cut", "files_dir", "max_object_bytes", "max_total_bytes", "written")

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_object_bytes: int = 256 * 1024**2,
        max_total_bytes: int = 4 * 1024**3,
    ) -> None:
        self.files_dir = os.path.join(os.fspath(directory), "files")
        os.makedirs(self.files_dir, exist_ok=True)
        self.max_object_bytes = max_object_bytes
        self.max_total_bytes = max_total_bytes
        self.written = 0  # bytes stored in this run
        self.cut = 0  # objects stored only in part, or not at all, because of a cap

    def room(self, object_written: int) -> int:
        """Bytes one more write may store for an object that has `object_written` already."""
        return max(
            0,
            min(self.max_object_bytes - object_written, self.max_total_bytes - self.written),
        )

    def open(self) -> StoredFile:
        return StoredFile(self)


class FileObject:
    """Streams one object: incremental SHA-256, size, sniff prefix, optional extraction."""

    __slots__ = (
        "_done",
        "_hash",
        "_incomplete",
        "_prefix",
        "_sniff_bytes",
        "_sniffer",
        "_stored",
        "anomalies",
        "declared_type",
        "encodings",
        "filename",
        "missing_bytes",
        "part_index",
        "size",
        "ts",
    )

    def __init__(
        self,
        *,
        filename: str | None = None,
        declared_type: str | None = None,
        encodings: list[str] | None = None,
        part_index: int | None = None,
        sniff_bytes: int = DEFAULT_CAPS.sniff_bytes,
        store: ObjectStore | None = None,
        ts: float = 0.0,
        sniffer: MimeSniffer | None = None,
    ) -> None:
        self.filename = filename
        self.declared_type = declared_type
        self.encodings = list(encodings or [])
        self.part_index = part_index
        self.ts = ts
        self.size = 0
        self.missing_bytes = 0
        # Anomalies from storage and sniffing; the owner drains this list.
        self.anomalies: list[Anomaly] = []
        self._hash = hashlib.sha256()
        self._prefix = bytearray()
        self._sniff_bytes = sniff_bytes
        self._sniffer = sniffer
        self._incomplete = False
        self._done = False
        self._stored: StoredFile | None = None
        if store is not None:
            try:
                self._stored = store.open()
            except OSError as exc:
                self._store_failed(exc)

    def update(self, data: bytes) -> None:
        if not data or self._done:
            return
        self.size += len(data)
        self._hash.update(data)
        room = self._sniff_bytes - len(self._prefix)
        if room > 0:
            self._prefix += data[:room]
        if self._stored is not None:
            try:
                self._stored.write(data)
            except OSError as exc:
                self._store_failed(exc)

    def gap(self, size: int) -> None:
        if size <= 0 or self._done:
            return
        self.missing_bytes += size
        self._incomplete = True

    def mark_incomplete(self) -> None:
        self._incomplete = True

    def finish(self, complete: bool) -> FileInfo:
        self._done = True
        digest = self._hash.hexdigest()
        sniffer = self._sniffer if self._sniffer is not None else default_sniffer()
        mime = sniffer.sniff(bytes(self._prefix))
        load_error = sniffer.take_load_error()
        if load_error is not None:
            self.anomalies.append(Anomaly("content_sniff_unavailable", load_error, self.ts))
        stored_path: str | None = None
        stored_cut = False
        stored_bytes = 0
        if self._stored is not None:
            stored_cut, stored_bytes = self._stored.cut, self._stored.written
            try:
                stored_path = self._stored.commit(digest)
            except OSError as exc:
                self._store_failed(exc)
            self._stored = None
            if stored_cut:
                self.anomalies.append(
                    Anomaly("content_extract_cut", f"{stored_bytes} of {self.size} bytes", self.ts)
                )
        return FileInfo(
            filename=self.filename,
            mime_type=mime,
            declared_type=self.declared_type,
            size=self.size,
            sha256=digest,
            complete=complete and not self._incomplete,
            missing_bytes=self.missing_bytes,
            encodings=list(self.encodings),
            part_index=self.part_index,
            stored_path=stored_path,
            stored_cut=stored_cut,
            stored_bytes=stored_bytes,
        )

    def abandon(self) -> None:
        """Drop the object without a FileInfo (e.g. a multipart preamble); removes its temp file."""
        self._done = True
        if self._stored is not None:
            try:
                self._stored.discard()
            except OSError as exc:
                self._store_failed(exc)
            self._stored = None

    def _store_failed(self, exc: OSError) -> None:
        self.anomalies.append(
            Anomaly("content_store_error", f"{type(exc).__name__}: {exc.strerror or exc}", self.ts)
        )
        if self._stored is not None:
            stored, self._stored = self._stored, None
            with contextlib.suppress(OSError):
                stored.discard()
