"""Content stage: one message body in, finished file objects out (router.py hands it over).

In: a message's header fields (bytes, any case), the content codings the sender applied, and the
body itself as it arrives (`feed`), with gaps (`gap`) and its end (`end`). Nothing here knows
which protocol carried the body (HTTP today, SMTP/MIME later).
Out: `FileInfo` for every finished object and `Anomaly` values, returned from each call.

Pipeline inside one body: DecoderChain (content codings removed, bomb guards) -> for multipart/*
with a boundary, MultipartSplitter (one object per part) -> FileObject (SHA-256, size, sniffed
type, optional extraction to an ObjectStore). An empty body gives no object at all; a body made
only of gaps gives one object of size 0 with `missing_bytes` set.

`missing_bytes` counts lost bytes as the stream saw them: when the body has content codings, a
gap is counted in encoded bytes (the decoded size of lost compressed bytes is unknowable), and
all decoding stops at the gap (the rest is kept undecoded).

Anomaly kinds (stable names, Anomaly.kind):
  content_decode_error        unknown content coding, corrupt compressed data, or data after the
                              end of a compressed stream; the rest of the body is kept undecoded
  content_decode_truncated    a compressed stream ended before its end marker
  content_decode_gap          a gap in a compressed stream; the rest is kept undecoded
  content_decoded_cap         decoded body exceeded ContentCaps.max_decoded_bytes; truncated
  content_decoded_ratio       decoded/encoded ratio exceeded ContentCaps.max_ratio; truncated
  content_filename_path       a filename carried a path; only its last component is kept
  content_sniff_unavailable   libmagic could not be loaded (reported once per process)
  content_store_error         extraction to the ObjectStore failed; the object goes on unstored
  multipart_boundary_missing  multipart/* without a usable boundary, or no delimiter in the body;
                              the whole body becomes one object
  multipart_unterminated      the body ended inside a part (no close delimiter)
  multipart_part_cap          more than ContentCaps.max_parts parts; the rest is one last part
  multipart_header_too_long   a part's header block exceeded ContentCaps.max_part_header_bytes
  multipart_header_malformed  a part header line without a colon
  multipart_preamble_data     non-whitespace bytes before the first delimiter (not an object)
  multipart_epilogue_data     non-whitespace bytes after the close delimiter (not an object)

Every object whose bytes were affected by a decode anomaly, a gap, a truncation or an early end
has complete=False.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote_to_bytes

from sensor.anomaly import Anomaly
from sensor.content.decoders import DecoderChain
from sensor.content.multipart import (
    MAX_BOUNDARY,
    MultipartEvent,
    MultipartSplitter,
    PartData,
    PartEnd,
    PartGap,
    PartStart,
    PreambleData,
    PreambleGap,
)
from sensor.content.objects import DEFAULT_CAPS, ContentCaps, FileInfo, FileObject, ObjectStore

__all__ = [
    "BodyEntity",
    "ContentCaps",
    "FileInfo",
    "ObjectStore",
    "content_type",
    "disposition_filename",
    "split_header_params",
]

_CONTINUATION = re.compile(r"^(?P<name>[^*]+)\*(?P<index>\d+)(?P<ext>\*)?$")
_DRIVE = re.compile(r"^[A-Za-z]:")


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (case-insensitive, RFC 9110 sec 5.1)."""
    wanted = name.lower()
    for key, value in headers:
        if key.strip().lower() == wanted:
            return value
    return None


def split_header_params(value: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split `type; a=b; c="d"` into the main value and (lowercased name, value) pairs.

    Works on latin-1 text so every byte survives; values are unquoted. Inside a quoted string only
    `\\"` and `\\\\` are unescaped: RFC 9110 sec 5.6.4 allows any quoted-pair, but browsers send
    Windows paths with bare backslashes (`"C:\\dir\\a.txt"`), and keeping them is what lets the
    path be stripped instead of mangled.
    """
    text = value.decode("latin-1")
    main, _, rest = text.partition(";")
    params: list[tuple[str, str]] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        start = i
        while i < n and rest[i] not in "=;":
            i += 1
        name = rest[start:i].strip().lower()
        if i >= n or rest[i] == ";":
            continue  # a parameter without a value: ignore it
        i += 1  # skip "="
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n and rest[i + 1] in '"\\':
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1  # closing quote (or past the end if unterminated)
            val = "".join(chars)
            while i < n and rest[i] != ";":  # junk after the quoted string
                i += 1
        else:
            start = i
            while i < n and rest[i] != ";":
                i += 1
            val = rest[start:i].strip()
        if name:
            params.append((name, val))
    return main.strip(), params


def content_type(value: bytes | None) -> tuple[str | None, dict[str, str]]:
    """Lowercased `type/subtype` (None if absent or unusable) and the first value of each param."""
    if value is None:
        return None, {}
    main, params = split_header_params(value)
    mime = main.lower()
    first: dict[str, str] = {}
    for name, val in params:
        first.setdefault(name, val)
    return (mime if "/" in mime else None), first


def _charset_decode(raw: bytes, charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return raw.decode(charset, errors="replace")


def _ext_value(value: str) -> str:
    """RFC 5987 sec 3.2 / RFC 2231 sec 4: charset'language'percent-encoded."""
    parts = value.split("'", 2)
    if len(parts) == 3:
        charset, _, encoded = parts
    else:
        charset, encoded = "utf-8", value
    return _charset_decode(unquote_to_bytes(encoded), charset or "utf-8")


def _param_filename(params: list[tuple[str, str]], key: str) -> str | None:
    """filename* (RFC 6266 sec 4.3: preferred), RFC 2231 continuations, then plain filename."""
    plain: str | None = None
    extended: str | None = None
    segments: dict[int, tuple[str, bool]] = {}
    for name, val in params:
        if name == key + "*" and extended is None:
            extended = _ext_value(val)
        elif name == key and plain is None:
            plain = val
        else:
            m = _CONTINUATION.match(name)
            if m and m.group("name") == key:
                segments.setdefault(int(m.group("index")), (val, m.group("ext") is not None))
    if extended is not None:
        return extended
    if segments:
        # RFC 2231 sec 3/4.1: the charset prefix is only on the first encoded segment.
        charset = "utf-8"
        raw = bytearray()
        for idx in sorted(segments):
            val, encoded = segments[idx]
            if encoded:
                if idx == 0 and val.count("'") >= 2:
                    charset, _, val = val.split("'", 2)
                    charset = charset or "utf-8"
                raw += unquote_to_bytes(val)
            else:
                raw += val.encode("latin-1")
        return _charset_decode(bytes(raw), charset)
    if plain is not None:
        # Browsers put raw UTF-8 in the quoted string (RFC 7578 sec 4.2 allows it).
        return plain.encode("latin-1").decode("utf-8", errors="replace")
    return None


def _basename(name: str) -> tuple[str | None, bool]:
    """The last path component of `name` and whether a path (or drive) had to be removed."""
    base = re.split(r"[\\/]", name)[-1]
    had_path = base != name
    drive = _DRIVE.match(base)
    if drive:
        base, had_path = base[2:], True
    base = base.strip()
    if base in ("", ".", ".."):
        return None, had_path
    return base, had_path


def disposition_filename(value: bytes | None) -> tuple[str | None, bool]:
    """(basename, had_path) from a Content-Disposition value (RFC 6266, RFC 7578 sec 4.2)."""
    if value is None:
        return None, False
    _, params = split_header_params(value)
    name = _param_filename(params, "filename")
    if name is None:
        return None, False
    return _basename(name)


class BodyEntity:
    """One message body (e.g. an HTTP request or response body) -> one or more file objects."""

    __slots__ = (
        "_caps",
        "_chain",
        "_declared_type",
        "_done",
        "_filename",
        "_obj",
        "_part",
        "_pending",
        "_seen",
        "_splitter",
        "_store",
        "ts",
    )

    def __init__(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        encodings: Sequence[str],
        ts: float,
        caps: ContentCaps = DEFAULT_CAPS,
        store: ObjectStore | None = None,
        name_hint: str | None = None,
    ) -> None:
        self.ts = ts
        self._caps = caps
        self._store = store
        self._done = False
        self._seen = False  # any byte or gap at all
        self._pending: list[FileInfo | Anomaly] = []  # anomalies found before the first call
        self._obj: FileObject | None = None  # the whole body, or the multipart preamble
        self._part: FileObject | None = None  # the open multipart part
        self._chain = DecoderChain(encodings, caps, ts)
        self._declared_type, params = content_type(header_value(headers, b"content-type"))
        filename = self._filename_from(header_value(headers, b"content-disposition"))
        self._filename = filename if filename is not None else name_hint
        self._splitter: MultipartSplitter | None = None
        if self._declared_type is not None and self._declared_type.startswith("multipart/"):
            boundary = params.get("boundary", "")
            if not boundary or len(boundary) > MAX_BOUNDARY:
                why = "no boundary parameter" if not boundary else "boundary parameter too long"
                self._note("multipart_boundary_missing", f"{why}; whole body is one object")
            else:
                self._splitter = MultipartSplitter(boundary.encode("latin-1"), caps, ts)

    # -- public API --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[FileInfo | Anomaly]:
        if self._done or not data:
            return []
        self._seen = True
        out = self._take_pending()
        for piece in self._chain.decode_iter(data):
            self._drain_chain(out)
            self._route(piece, out)
        self._drain_chain(out)
        return out

    def gap(self, size: int) -> list[FileInfo | Anomaly]:
        if self._done or size <= 0:
            return []
        self._seen = True
        out = self._take_pending()
        missing = self._chain.gap(size)
        self._drain_chain(out)
        if self._splitter is not None:
            self._handle(self._splitter.gap(missing), out)
        else:
            self._whole().gap(missing)
        return out

    def end(self, complete: bool) -> list[FileInfo | Anomaly]:
        """The body is over; `complete=False` if the protocol saw it end early."""
        if self._done:
            return []
        self._done = True
        if not self._seen:
            return []  # empty body: no object (like Suricata, no empty files)
        out = self._take_pending()
        for piece in self._chain.flush_iter():
            self._drain_chain(out)
            self._route(piece, out)
        self._drain_chain(out)
        if self._splitter is not None:
            self._handle(self._splitter.end(), out)
            if self._part is not None:  # defensive: the splitter always closes its part
                self._finish(self._part, False, out)
                self._part = None
        if self._obj is not None:  # whole body, or a multipart body without any delimiter
            self._finish(self._obj, complete, out)
            self._obj = None
        return out

    # -- machinery ---------------------------------------------------------------------------

    def _note(self, kind: str, detail: str) -> None:
        self._pending.append(Anomaly(kind, detail, self.ts))

    def _take_pending(self) -> list[FileInfo | Anomaly]:
        out, self._pending = self._pending, []
        return out

    def _filename_from(self, disposition: bytes | None) -> str | None:
        name, had_path = disposition_filename(disposition)
        if had_path:
            self._note("content_filename_path", f"path removed from filename, kept {name!r}")
        return name

    def _new_object(
        self, filename: str | None, declared: str | None, index: int | None
    ) -> FileObject:
        obj = FileObject(
            filename=filename,
            declared_type=declared,
            encodings=self._chain.applied,
            part_index=index,
            caps=self._caps,
            store=self._store,
            ts=self.ts,
        )
        if self._chain.damaged:
            obj.mark_incomplete()
        return obj

    def _whole(self) -> FileObject:
        if self._obj is None:
            self._obj = self._new_object(self._filename, self._declared_type, None)
        return self._obj

    def _drain_chain(self, out: list[FileInfo | Anomaly]) -> None:
        if not self._chain.anomalies:
            return
        out.extend(self._chain.anomalies)
        self._chain.anomalies.clear()
        for obj in (self._obj, self._part):
            if obj is not None:
                obj.mark_incomplete()

    def _route(self, piece: bytes, out: list[FileInfo | Anomaly]) -> None:
        if self._splitter is not None:
            self._handle(self._splitter.feed(piece), out)
        else:
            self._whole().update(piece)

    def _finish(self, obj: FileObject, complete: bool, out: list[FileInfo | Anomaly]) -> None:
        info = obj.finish(complete)
        out.extend(obj.anomalies)
        out.append(info)

    def _handle(
        self, events: list[MultipartEvent | Anomaly], out: list[FileInfo | Anomaly]
    ) -> None:
        for ev in events:
            if isinstance(ev, PartData):
                if self._part is not None:
                    self._part.update(ev.data)
            elif isinstance(ev, PartGap):
                if self._part is not None:
                    self._part.gap(ev.size)
            elif isinstance(ev, PartStart):
                if self._obj is not None:  # the preamble is not an object (RFC 2046 sec 5.1.1)
                    self._obj.abandon()
                    out.extend(self._obj.anomalies)
                    self._obj = None
                part_type, _ = content_type(header_value(ev.headers, b"content-type"))
                filename = self._filename_from(header_value(ev.headers, b"content-disposition"))
                out.extend(self._take_pending())
                self._part = self._new_object(filename, part_type, ev.index)
            elif isinstance(ev, PartEnd):
                if self._part is not None:
                    self._finish(self._part, ev.complete, out)
                    self._part = None
            elif isinstance(ev, PreambleData):
                # Kept as the whole-body object until a delimiter shows up (then abandoned).
                self._whole().update(ev.data)
            elif isinstance(ev, PreambleGap):
                self._whole().gap(ev.size)
            else:
                out.append(ev)
