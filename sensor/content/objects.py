"""Content stage: one streamed file object, its fingerprint, its members, and opt-in
extraction to disk.

In: the decoded bytes of one object, chunk by chunk (`FileObject.update`), gaps (`gap`), and the
end (`finish`).
Out: a `FileInfo` (size, SHA-256, type, fingerprint, completeness, and the `FileInfo` of each
member when the object is a container Sluice opens) and, when an `ObjectStore` is given, the
bytes on disk as DIR/files/<sha256>.

Nothing here holds a whole object: the hash is incremental, the fingerprint keeps a bounded
head and tail (sensor/content/fingerprint/), and extraction writes each chunk to a temporary
file as it arrives. Storage failures (disk full, permissions) are reported as
`content_store_error` anomalies and the object goes on without extraction; they never raise.

Members. A container's opener streams its members out while the container streams in; each
member is a `FileObject` of its own (hashed and fingerprinted the same way, opened in turn),
whose `FileInfo` carries `parent_sha256` and `container_path` (names from the outermost object
down). The whole tree under one transferred object shares one `_Unpacking` budget:
`ContentCaps.max_depth` levels, `max_members` members, `max_expanded_bytes` decoded bytes and a
decoded/transferred ratio of `max_ratio` (checked once past 16 MiB). Reaching a cap is an
anomaly, the member being decoded ends incomplete and opening stops; the fingerprints go on.
Member names are checked (length, path traversal) and never used as paths: members are not
extracted to disk.

Text. With a `ContentCaps.text_consumer`, each object whose type has text of its own
(sensor/content/text/) gets a consumer, which reads the text as it streams and whose verdict
becomes `FileInfo.classification`. A document made of parts (docx, xlsx, pptx, odt, ...) is
read as one text: once its container is known as a document (at its first member so named)
it gets one consumer, its parts feed that consumer through the container's `DocumentText`
(sensor/content/text/document.py), and the verdict is the container's, not its parts'.
Other members of a document (an embedded CSV) are objects of their own.

`ContentCaps` and `FileInfo` live here (the bottom of the content stage) and are re-exported by
`sensor.content.entity`, which is where callers import them from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

from sensor.anomaly import Anomaly
from sensor.content.filetype import MimeSniffer, default_sniffer
from sensor.content.fingerprint.base import (
    MemberData,
    MemberEnd,
    MemberEvent,
    MemberStart,
    TextChunk,
    TextExtractor,
)
from sensor.content.fingerprint.fingerprinter import Fingerprint, Fingerprinter
from sensor.content.fingerprint.table import FileTypeTable
from sensor.content.text import DocumentText, document_text, text_extractor

# Decoded-size threshold below which the ratio guard stays quiet: small, highly compressible
# bodies (a page of zeros, a JSON array of nulls) are normal.
RATIO_GUARD_MIN_BYTES = 16 * 1024**2


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What a text consumer is told of an object when its type is known."""

    type: str | None  # the fingerprint's type as far as the head tells
    filename: str | None
    declared_type: str | None
    parent_type: str | None  # a member: its container's type (docx for word/document.xml)
    container_path: tuple[str, ...] | None
    ts: float


@dataclass(frozen=True, slots=True)
class _Document:
    """A document made of parts (docx, xlsx, pptx, odt, ...) read as one text: the container
    owns it, its parts feed it, its one consumer reads all of it."""

    text: DocumentText
    consumer: TextConsumer


class TextConsumer(Protocol):
    """Reads the text of one object as it streams (sensor/content/text/ extracts it)."""

    def text(self, chunks: list[TextChunk]) -> None: ...

    def finish(self, complete: bool) -> object | None:
        """The object ended; what the consumer concluded (FileInfo.classification)."""
        ...


@dataclass(frozen=True, slots=True)
class ContentCaps:
    """Every buffer and budget of the content stage, named (DESIGN.md: every buffer has a cap)."""

    max_decoded_bytes: int = 4 * 1024**3  # per body after decompression -> content_decoded_cap
    max_ratio: int = 1000  # decoded/encoded, checked once decoded > 16 MiB -> content_decoded_ratio
    max_parts: int = 1000  # multipart parts per body -> multipart_part_cap
    max_part_header_bytes: int = 16384  # one part's header block -> multipart_header_too_long
    # Containers (ZIP, gzip, bzip2, xz, zstd, tar, OOXML/ODF) under one transferred object:
    max_depth: int = 4  # container levels opened below it -> archive_depth_cap
    max_members: int = 10_000  # members in its whole tree -> archive_member_cap
    max_expanded_bytes: int = 4 * 1024**3  # decoded bytes in the tree -> archive_expanded_cap
    max_member_name_bytes: int = 1024  # a member's name is cut there -> archive_name_too_long
    # The signature table (signatures/filetypes.toml); None: the source tree's copy.
    file_types: FileTypeTable | None = None
    # Who reads the text of each object (the classification stage, wired by the pipeline);
    # None: no text is extracted at all.
    text_consumer: Callable[[ObjectMeta], TextConsumer | None] | None = None


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
    fingerprint: Fingerprint | None = None
    # A container member: the SHA-256 of the object it was opened from, and the names from
    # the outermost transferred object down to this member.
    parent_sha256: str | None = None
    container_path: list[str] | None = None
    # The members opened from this object, each with its own members.
    members: list[FileInfo] = field(default_factory=list)
    # What the text consumer concluded of the object (ContentCaps.text_consumer).
    classification: object | None = None
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


class _Unpacking:
    """The budget and anomaly list shared by every object in one transferred object's tree."""

    __slots__ = ("anomalies", "caps", "expanded", "members", "noted", "root", "stopped", "ts")

    def __init__(self, caps: ContentCaps, root: FileObject, anomalies: list[Anomaly]) -> None:
        self.caps = caps
        self.root = root  # the transferred object: its size is the ratio's denominator
        self.anomalies = anomalies
        self.ts = root.ts
        self.members = 0
        self.expanded = 0
        self.stopped = False  # a tree-wide cap hit: no more members anywhere
        self.noted: set[str] = set()

    def note(self, kind: str, detail: str) -> None:
        """One anomaly of each kind per tree (a bomb must not become a million anomalies)."""
        if kind not in self.noted:
            self.noted.add(kind)
            self.anomalies.append(Anomaly(kind, detail, self.ts))


class FileObject:
    """Streams one object: incremental SHA-256, size, fingerprint, members, optional extraction."""

    __slots__ = (
        "_child",
        "_consumer",
        "_depth",
        "_document",
        "_done",
        "_extractor",
        "_fp",
        "_hash",
        "_incomplete",
        "_parent_type",
        "_part_of",
        "_path",
        "_stored",
        "_text_state",
        "_tree",
        "anomalies",
        "declared_type",
        "encodings",
        "filename",
        "members",
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
        caps: ContentCaps = DEFAULT_CAPS,
        store: ObjectStore | None = None,
        ts: float = 0.0,
        sniffer: MimeSniffer | None = None,
        _tree: _Unpacking | None = None,
        _depth: int = 0,
        _path: list[str] | None = None,
        _parent_type: str | None = None,
        _part_of: _Document | None = None,
    ) -> None:
        self.filename = filename
        self.declared_type = declared_type
        self.encodings = list(encodings or [])
        self.part_index = part_index
        self.ts = ts
        self.size = 0
        self.missing_bytes = 0
        # Anomalies from storage, fingerprinting and members; the owner drains this list (a
        # member shares its transferred object's list).
        self.anomalies: list[Anomaly] = _tree.anomalies if _tree is not None else []
        self._tree = _tree if _tree is not None else _Unpacking(caps, self, self.anomalies)
        self._depth = _depth
        self._path = _path
        self._hash = hashlib.sha256()
        self._fp = Fingerprinter(
            caps.file_types,
            filename=filename,
            declared_type=declared_type,
            open_members=_depth < caps.max_depth and not self._tree.stopped,
            sniffer=sniffer if sniffer is not None else default_sniffer(),
        )
        self._child: FileObject | None = None
        self.members: list[FileInfo] = []
        self._parent_type = _parent_type
        # Text for the consumer: 0 not set up yet (the type is not known), 1 extracting,
        # 2 nothing to do (no consumer, or a type without text).
        self._text_state = 0 if caps.text_consumer is not None else 2
        self._consumer: TextConsumer | None = None
        self._extractor: TextExtractor | None = None
        # A document container: the text its parts make together (set up at its first
        # member once the container is known to be a document). A member: the document it
        # may be a part of.
        self._document: _Document | None = None
        self._part_of = _part_of
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
        if self._stored is not None:
            try:
                self._stored.write(data)
            except OSError as exc:
                self._store_failed(exc)
        events = self._fp.feed(data)
        if self._text_state != 2:
            self._text(data)
        if events:
            self._members(events)
        if self._fp.may_hold:
            self._drain()

    def _text(self, data: bytes) -> None:
        """Hands the object's text to the consumer: from the moment the type is known (the
        head so far first), chunk by chunk."""
        if self._text_state == 0:
            if not self._fp.decided:
                return
            self._start_text()
            if self._extractor is None:
                return
            data = self._fp.head()  # every byte until now
        extractor, consumer = self._extractor, self._consumer
        assert extractor is not None and consumer is not None
        chunks = extractor.feed(data)
        if chunks:
            consumer.text(chunks)

    def _start_text(self) -> None:
        self._text_state = 2
        factory = self._tree.caps.text_consumer
        if factory is None:
            return
        type_id = self._fp.type_id
        document = self._part_of
        if document is not None and self.filename is not None:
            part = document.text.part(self.filename)
            if part is not None:  # its text goes to the document's consumer
                self._consumer, self._extractor = document.consumer, part
                self._text_state = 1
                return
        if type_id is None:
            return
        extractor = text_extractor(
            type_id,
            name=self.filename,
            parent_type=self._parent_type,
            charset=_charset(self.declared_type),
        )
        if extractor is None:  # no text of its own (a container, a binary): no consumer
            return
        path = tuple(self._path) if self._path is not None else None
        meta = ObjectMeta(type_id, self.filename, self.declared_type, self._parent_type, path,
                          self.ts)  # fmt: skip
        consumer = factory(meta)
        if consumer is None:
            return
        self._consumer, self._extractor = consumer, extractor
        self._text_state = 1

    def _drain(self) -> None:
        # An opener hands out a bounded amount per call (a bomb never materialises): the rest
        # comes batch by batch, each one through the caps before the next is decoded.
        fp = self._fp
        while fp.may_hold and fp.pending:
            self._members(fp.drain())

    def gap(self, size: int) -> None:
        if size <= 0 or self._done:
            return
        self.missing_bytes += size
        self._incomplete = True
        events = self._fp.gap(size)
        if events:
            self._members(events)
        self._drain()

    def mark_incomplete(self) -> None:
        self._incomplete = True

    def finish(self, complete: bool) -> FileInfo:
        self._done = True
        digest = self._hash.hexdigest()
        complete = complete and not self._incomplete
        self._drain()
        fingerprint, events = self._fp.finish(complete)
        if self._text_state == 0 and self.size:
            self._text(b"")  # a short object: its type came only now, with its head
        self._members(events)
        if self._child is not None:  # the opener left a member open: it was cut off
            self._end_member(False)
        # The format readers know no time: their anomalies take the object's.
        self.anomalies += (a if a.ts else replace(a, ts=self.ts) for a in self._fp.anomalies)
        self._fp.anomalies.clear()
        for member in self.members:
            member.parent_sha256 = digest
            mf = member.fingerprint
            if mf is not None and (mf.encrypted or mf.contains_encrypted):
                fingerprint.contains_encrypted = True
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
        classification = None
        if self._extractor is not None and self._consumer is not None:
            chunks = self._extractor.finish()
            if chunks:
                self._consumer.text(chunks)
            self.anomalies += (
                a if a.ts else replace(a, ts=self.ts) for a in self._extractor.anomalies
            )
            if self._part_of is None or self._consumer is not self._part_of.consumer:
                classification = self._consumer.finish(complete)
        if self._document is not None:  # every part has ended: the document's verdict
            document = self._document
            chunks = document.text.finish()
            if chunks:
                document.consumer.text(chunks)
            self.anomalies += (
                a if a.ts else replace(a, ts=self.ts) for a in document.text.anomalies
            )
            classification = document.consumer.finish(complete)
        return FileInfo(
            filename=self.filename,
            mime_type=self._fp.mime_type,
            declared_type=self.declared_type,
            size=self.size,
            sha256=digest,
            complete=complete,
            missing_bytes=self.missing_bytes,
            encodings=list(self.encodings),
            part_index=self.part_index,
            stored_path=stored_path,
            stored_cut=stored_cut,
            stored_bytes=stored_bytes,
            fingerprint=fingerprint,
            container_path=self._path,
            members=self.members,
            classification=classification,
        )

    # -- members ---------------------------------------------------------------------------

    def _members(self, events: list[MemberEvent]) -> None:
        tree = self._tree
        if tree.stopped and self._fp.opening:
            self._fp.stop_opening()
        for event in events:
            if isinstance(event, MemberData):
                child = self._child
                if child is None:
                    continue
                tree.expanded += len(event.data)
                if self._over_budget():
                    self._end_member(False)
                    continue
                child.update(event.data)
            elif isinstance(event, MemberStart):
                if self._child is not None:  # an opener that did not end its member
                    self._end_member(False)
                if event.is_dir or event.encrypted or tree.stopped:
                    continue
                tree.members += 1
                if tree.members > tree.caps.max_members:
                    tree.note("archive_member_cap", f"more than {tree.caps.max_members} members")
                    self._stop(tree)
                    continue
                self._child = self._new_member(event)
            elif isinstance(event, MemberEnd) and self._child is not None:
                if event.missing:
                    self._child.gap(event.missing)
                self._end_member(event.complete)

    def _new_member(self, start: MemberStart) -> FileObject:
        tree = self._tree
        name = start.name if start.name is not None else ""
        limit = tree.caps.max_member_name_bytes
        if len(name.encode("utf-8", "surrogatepass")) > limit:
            tree.note("archive_name_too_long", f"a member name over {limit} bytes was cut")
            name = name.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
        if _traverses(name):
            tree.note(
                "archive_path_traversal",
                "a member name climbs out of its archive or is absolute (reported, never used)",
            )
        outer = self._path if self._path is not None else [self.filename or ""]
        parent_type = self._fp.current_type()
        if self._document is None and tree.caps.text_consumer is not None:
            self._document = self._start_document(parent_type)
        return FileObject(
            filename=name or None,
            caps=tree.caps,
            ts=self.ts,
            _tree=tree,
            _depth=self._depth + 1,
            _path=[*outer, name],
            _parent_type=parent_type,
            _part_of=self._document,
        )

    def _start_document(self, type_id: str | None) -> _Document | None:
        """When this container is a document made of parts (a ZIP is known as a docx, xlsx,
        ... once its first such member streams): the text its parts make together and the
        one consumer that reads it (sensor/content/text/document.py says why)."""
        factory = self._tree.caps.text_consumer
        text = document_text(type_id)
        if factory is None or text is None:
            return None
        path = tuple(self._path) if self._path is not None else None
        meta = ObjectMeta(type_id, self.filename, self.declared_type, self._parent_type, path,
                          self.ts)  # fmt: skip
        consumer = factory(meta)
        return _Document(text, consumer) if consumer is not None else None

    def _end_member(self, complete: bool) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        info = child.finish(complete)
        child_type = child._fp.file_type
        if child._depth >= self._tree.caps.max_depth and child_type and child_type.opener:
            self._tree.note(
                "archive_depth_cap",
                f"a container nested deeper than {self._tree.caps.max_depth} levels "
                "was fingerprinted, not opened",
            )
        self.members.append(info)

    def _over_budget(self) -> bool:
        tree = self._tree
        caps = tree.caps
        if tree.stopped:
            return True
        if tree.expanded > caps.max_expanded_bytes:
            tree.note(
                "archive_expanded_cap",
                f"members expanded past {caps.max_expanded_bytes} bytes; opening stopped",
            )
            self._stop(tree)
            return True
        source = max(tree.root.size, 1)
        if tree.expanded > RATIO_GUARD_MIN_BYTES and tree.expanded > caps.max_ratio * source:
            tree.note(
                "archive_ratio_cap",
                f"members expanded over {caps.max_ratio}x the transferred bytes "
                "(archive bomb guard); opening stopped",
            )
            self._stop(tree)
            return True
        return False

    def _stop(self, tree: _Unpacking) -> None:
        tree.stopped = True
        self._fp.stop_opening()

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


def _traverses(name: str) -> bool:
    """A member name that would leave the directory it is extracted to: absolute, a drive,
    or a `..` component (either slash)."""
    if not name:
        return False
    if name[0] in "/\\" or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in name.replace("\\", "/").split("/")


def _charset(declared_type: str | None) -> str | None:
    """The charset parameter of a declared media type (`text/csv; charset=windows-1252`)."""
    if not declared_type:
        return None
    for parameter in declared_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None
