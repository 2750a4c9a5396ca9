"""Content stage: streaming MIME engine (RFC 5322 messages, MIME RFC 2045-2049).

In: the bytes of one Internet message as a mail transport hands them over (for SMTP: after
dot-unstuffing, from the first header line to the end of the message), in arbitrary chunks, plus
capture gaps and the end of the message.
Out, from every call: `MessageHeaders` once (the top-level header block, decoded, as soon as it
ends), one `FileInfo` per LEAF entity in message order (text bodies included, as Zeek does), and
`Anomaly` values.

Theory of operation. A message is a tree of sinks; bytes flow down it and nothing is kept except
one header line at a time (capped) and a multipart splitter's boundary look-ahead:

    _MessageSink    header block (RFC 5322 sec 2.2, 3.6), then its body entity
    _MultipartSink  one MultipartSplitter per multipart level; each part is a new entity
    _DecodedSink    a Content-Transfer-Encoding removed in front of a container (RFC 2045 sec
                    6.4 forbids encoded containers; we decode anyway and say so: hiding a
                    multipart inside base64 must not hide its attachments)
    _LeafSink       Content-Transfer-Encoding removed -> FileObject (hash, sniff, store)

An entity's body goes to a leaf unless its type is multipart/* (with a usable boundary) or
message/rfc822 / message/global, which recurse. Nesting: each boundary lives in its own splitter,
so it is scoped to its level; an outer delimiter seen inside an inner part is found by the outer
splitter first (bytes reach the inner level only through the outer one), which ends the outer
part and so closes every inner level (`multipart_unterminated`), as mail clients do.

Order of leaves: only one leaf is open at a time (the tree is streamed depth-first), so a leaf's
index is assigned when it finishes. A multipart preamble is held as a provisional leaf and
dropped at the first delimiter; with no delimiter at all it becomes the whole-body object.

Caps (MimeCaps, every one named): containers nested `max_depth` deep become one opaque leaf
(`mime_depth_cap`); after `max_entities` leaves every further leaf body goes, undecoded, into one
last incomplete object (`mime_entity_cap`); a header block over `max_header_bytes` ends there and
the rest is body (`mime_header_too_long`). Part header blocks use the same cap via the splitter.

Anomaly kinds (besides the content_*/multipart_* kinds of the objects and the splitter):
  mime_header_too_long     a header block over MimeCaps.max_header_bytes; the rest is body
  mime_header_unterminated the message ended inside its header block
  mime_header_malformed    a line in a header block that is not a header field; the block ends
                           there and the line starts the body (what Python's email does)
  mime_depth_cap           containers nested deeper than MimeCaps.max_depth: kept opaque
  mime_entity_cap          more than MimeCaps.max_entities leaves; the rest is one object
  mime_unknown_cte         a Content-Transfer-Encoding we do not know; the body is kept raw
  mime_container_encoded   a multipart or message entity with a transfer encoding (RFC 2045
                           sec 6.4); decoded, then parsed
  mime_base64_invalid      stray characters in base64 (ignored) or a dangling last character
  mime_base64_after_padding  base64 data after the "=" padding (ignored, as binascii does)
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Protocol

from sensor.anomaly import Anomaly
from sensor.content.entity import (
    _basename,
    _param_filename,
    content_type,
    header_value,
    split_header_params,
)
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
    "DEFAULT_MIME_CAPS",
    "MessageHeaders",
    "MimeCaps",
    "MimeEvent",
    "MimeMessage",
    "rfc2047_decode",
    "split_addresses",
]


@dataclass(frozen=True, slots=True)
class MimeCaps:
    """The MIME engine's budgets (DESIGN.md: every buffer has a named cap)."""

    max_depth: int = 20  # multipart / message nesting -> deeper content opaque, mime_depth_cap
    max_header_bytes: int = 65536  # per header block -> mime_header_too_long (rest is body)
    max_entities: int = 1000  # leaf entities per message -> mime_entity_cap (rest is one object)


DEFAULT_MIME_CAPS = MimeCaps()


@dataclass(slots=True)
class MessageHeaders:
    """The top-level message's headers, unfolded and RFC 2047-decoded."""

    from_: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str | None = None
    date: str | None = None
    message_id: str | None = None
    user_agent: str | None = None  # User-Agent, else X-Mailer


MimeEvent = MessageHeaders | FileInfo | Anomaly
Fields = list[tuple[bytes, bytes]]

# message/* types whose body is itself a message (RFC 2046 sec 5.2.1, RFC 6532 sec 3.7).
# Python's email also parses message/partial, external-body and delivery-status as messages; a
# partial is a fragment and the others are not messages, so they are leaves here.
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})
_WSP = b" \t"
# RFC 5322 sec 3.6.8: field-name = 1*ftext (printable US-ASCII except colon); a space before the
# colon is obsolete syntax (sec 4.5) and tolerated.
_FIELD_NAME = re.compile(rb"[!-9;-~]+")

# -- RFC 2047 encoded words and address lists -----------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _text_charset(charset: str) -> str:
    """A text codec for a declared charset; utf-8 when unknown or not a text encoding."""
    charset = charset.split("*", 1)[0]  # RFC 2231 sec 5: charset*language
    try:
        name = codecs.lookup(charset).name
        b"".decode(name)  # "zlib", "hex", "rot13" are codecs but not charsets
    except (LookupError, ValueError):  # ValueError: e.g. a NUL in the name
        return "utf-8"
    return name


def _word_bytes(encoding: str, text: str) -> bytes | None:
    raw = text.encode("ascii", errors="replace")
    try:
        if encoding in "bB":
            # Lenient like mail clients: missing padding is tolerated (binascii stops at a
            # complete quantum and ignores surplus "=").
            return binascii.a2b_base64(raw + b"==")
        return binascii.a2b_qp(raw, header=True)  # RFC 2047 sec 4.2: "_" is a space
    except (binascii.Error, ValueError):
        return None


def rfc2047_decode(text: str) -> str:
    """Decode RFC 2047 encoded words anywhere in `text` (also inside quoted strings, as clients
    write them). White space between adjacent encoded words is dropped (sec 6.2), and the bytes of
    adjacent words in the same charset are joined before decoding, so a character split across
    two words survives."""
    if "=?" not in text:
        return text
    out: list[str] = []
    run_charset: str | None = None
    run = bytearray()
    pos = 0

    def flush_run() -> None:
        nonlocal run_charset
        if run_charset is not None:
            out.append(bytes(run).decode(run_charset, errors="replace"))
            run.clear()
            run_charset = None

    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        decoded = _word_bytes(m.group(2), m.group(3))
        if decoded is None:  # not decodable: keep the word as written
            flush_run()
            out.append(between + m.group(0))
            pos = m.end()
            continue
        charset = _text_charset(m.group(1))
        adjacent = pos > 0 and run_charset is not None and not between.strip(" \t\r\n")
        if not adjacent:
            flush_run()
            out.append(between)
        elif charset != run_charset:
            flush_run()
        run_charset = charset
        run += decoded
        pos = m.end()
    flush_run()
    out.append(text[pos:])
    return "".join(out)


def split_addresses(text: str) -> list[str]:
    """Split an address list on top-level commas (not inside quotes, <...> or (comments)), then
    decode each entry as written."""
    entries: list[str] = []
    start = 0
    angle = comment = 0
    quoted = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = c != '"'
        elif comment:
            if c == "(":
                comment += 1
            elif c == ")":
                comment -= 1
        elif c == '"':
            quoted = True
        elif c == "(":
            comment = 1
        elif c == "<":
            angle += 1
        elif c == ">":
            angle = max(0, angle - 1)
        elif c == "," and not angle:
            entries.append(text[start:i])
            start = i + 1
    entries.append(text[start:])
    return [decoded for e in entries if (decoded := rfc2047_decode(e.strip()).strip())]


def _header_text(value: bytes) -> str:
    # Wire data stays bytes until here (the output edge); RFC 6532 allows raw UTF-8.
    return rfc2047_decode(value.decode("utf-8", errors="replace").strip())


def _message_headers(fields: Fields) -> MessageHeaders:
    first: dict[bytes, bytes] = {}
    to: list[str] = []
    cc: list[str] = []
    for name, value in fields:
        key = name.lower()
        first.setdefault(key, value)
        # Duplicated To/Cc fields (RFC 5322 sec 3.6 allows one) are all reported: a second
        # recipient list is exactly what a DLP sensor must not miss.
        if key == b"to":
            to += split_addresses(value.decode("utf-8", errors="replace"))
        elif key == b"cc":
            cc += split_addresses(value.decode("utf-8", errors="replace"))

    def get(key: bytes) -> str | None:
        value = first.get(key)
        return None if value is None else _header_text(value)

    user_agent = get(b"user-agent")
    return MessageHeaders(
        from_=get(b"from"),
        to=to,
        cc=cc,
        subject=get(b"subject"),
        date=get(b"date"),
        message_id=get(b"message-id"),
        user_agent=user_agent if user_agent is not None else get(b"x-mailer"),
    )


# -- Content-Transfer-Encoding decoders (RFC 2045 sec 6) ------------------------------------------


class _TransferDecoder(Protocol):
    name: str

    def decode(self, data: bytes) -> bytes: ...

    def gap(self, size: int) -> int: ...

    def flush(self, ts: float, out: list[MimeEvent]) -> bytes: ...


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_NOT_DATA = bytes(c for c in range(256) if c not in _B64_ALPHABET + b"=")
_B64_WHITESPACE = b" \t\r\n"
_B64_NOT_ALPHABET = bytes(c for c in range(256) if c not in _B64_ALPHABET)
RESYNC_LIMIT = 1024  # after a gap, look this far for a line start to realign base64 quanta


class _Base64Decoder:
    """Lenient streaming base64 (RFC 2045 sec 6.8): ignores white space and stray characters,
    tolerates missing padding, stops at "=" padding that ends a quantum (like binascii), and
    keeps at most 3 characters between calls."""

    __slots__ = ("_after_pad", "_done", "_pending", "_resync", "_stray", "name")

    def __init__(self) -> None:
        self.name = "base64"
        self._pending = b""
        self._done = False
        self._resync = False
        self._stray = 0
        self._after_pad = 0

    def decode(self, data: bytes) -> bytes:
        if self._done:
            self._after_pad += len(data.translate(None, _B64_NOT_ALPHABET))
            return b""
        if self._resync:
            self._resync = False
            nl = data.find(b"\n", 0, RESYNC_LIMIT)
            if nl >= 0:
                data = data[nl + 1 :]
        # Two C passes: drop white space, then everything else that is not data (a stray).
        solid = data.translate(None, _B64_WHITESPACE)
        clean = solid.translate(None, _B64_NOT_DATA)
        if b"=" not in clean:
            self._stray += len(solid) - len(clean)
            buf = self._pending + clean if self._pending else clean
            cut = len(buf) - len(buf) % 4
            self._pending = buf[cut:]
            return binascii.a2b_base64(buf[:cut]) if cut else b""
        return self._decode_padded(self._pending + clean, solid, len(self._pending))

    def _decode_padded(self, buf: bytes, solid: bytes, offset: int) -> bytes:
        # buf (pending + this chunk's data characters, no "=" in the pending part) starts on a
        # quantum boundary. "=" where no padding can be (first or second character of a quantum)
        # is ignored, like binascii's lenient mode; "=" as third or fourth character ends the
        # data (RFC 4648 sec 3.3). Strays are counted only up to that end, so the count does
        # not depend on where the chunks were cut.
        segments: list[bytes] = []
        chars = 0  # data characters in `segments`
        start = search = 0
        while True:
            e = buf.find(b"=", search)
            if e < 0:
                segments.append(buf[start:])
                break
            quad = (chars + e - start) % 4
            if quad < 2:
                segments.append(buf[start:e])
                chars += e - start
                self._stray += 1
                start = search = e + 1
                continue
            segments.append(buf[start:e])
            data = b"".join(segments)
            # Find the same "=" in `solid` (white space removed, strays kept): strays before it.
            nth = buf.count(b"=", offset, e)
            at = -1
            for _ in range(nth + 1):
                at = solid.find(b"=", at + 1)
            self._stray += at - (e - offset)
            self._done = True
            self._pending = b""
            self._after_pad += len(buf[e + 1 :].translate(None, _B64_NOT_ALPHABET))
            return binascii.a2b_base64(data + b"=" * (4 - quad))
        self._stray += len(solid) - (len(buf) - offset)
        data = b"".join(segments)
        cut = len(data) - len(data) % 4
        self._pending = data[cut:]
        return binascii.a2b_base64(data[:cut]) if cut else b""

    def gap(self, size: int) -> int:
        # Quantum alignment is lost; realign at the next line start (encoders wrap at 76
        # characters, a multiple of 4). The decoded size lost is estimated as 3/4 of the gap.
        self._pending = b""
        self._resync = not self._done
        return size * 3 // 4

    def flush(self, ts: float, out: list[MimeEvent]) -> bytes:
        tail = b""
        pending, self._pending = self._pending, b""
        if len(pending) == 1:
            self._stray += 1  # 6 bits cannot make a byte
        elif pending:
            tail = binascii.a2b_base64(pending + b"=" * (4 - len(pending)))
        if self._stray:
            out.append(
                Anomaly("mime_base64_invalid", f"{self._stray} invalid characters ignored", ts)
            )
        if self._after_pad:
            out.append(
                Anomaly(
                    "mime_base64_after_padding",
                    f"{self._after_pad} base64 characters after the padding ignored",
                    ts,
                )
            )
        self._stray = self._after_pad = 0
        return tail


QP_MAX_LINE = 8192  # a quoted-printable line longer than this is decoded in pieces
_QP_TRAILING_WS = re.compile(rb"[ \t]+(?=\r?\n)")


class _QuotedPrintableDecoder:
    """Streaming quoted-printable (RFC 2045 sec 6.7), lenient as mail clients are: soft line
    breaks "=" CRLF and "=" LF, lower-case hex accepted, invalid "=XY" kept literally, hard line
    breaks kept as they came (CRLF or LF). Trailing white space on a line is deleted (rule 3:
    it may have been added by a transport); Python's email keeps it."""

    __slots__ = ("_pending", "name")

    def __init__(self) -> None:
        self.name = "quoted-printable"
        self._pending = b""

    def decode(self, data: bytes) -> bytes:
        buf = self._pending + data if self._pending else data
        nl = buf.rfind(b"\n")
        if nl < 0:
            self._pending = buf
            return self._decode_long_line() if len(buf) > QP_MAX_LINE else b""
        self._pending = buf[nl + 1 :]
        return binascii.a2b_qp(_QP_TRAILING_WS.sub(b"", buf[: nl + 1]))

    def _decode_long_line(self) -> bytes:
        # Decode all but a tail that could still change meaning: trailing white space (maybe
        # before a line break) and an "=" within the last two bytes (maybe "=XY" or a soft break).
        buf = self._pending
        cut = len(buf) - 2
        while cut > 0 and buf[cut - 1] in _WSP:
            cut -= 1
        if cut == 0:  # a line of nothing but white space: it cannot all be kept back
            cut = len(buf) - 2
        eq = buf.rfind(b"=", max(0, cut - 2), cut)
        if eq >= 0:
            cut = eq
        self._pending = buf[cut:]
        return binascii.a2b_qp(buf[:cut])

    def gap(self, size: int) -> int:
        return size  # QP has no alignment: decoding simply goes on after the hole

    def flush(self, ts: float, out: list[MimeEvent]) -> bytes:
        pending, self._pending = self._pending, b""
        return binascii.a2b_qp(pending.rstrip(_WSP)) if pending else b""


def _transfer_decoder(
    value: bytes | None, ts: float, out: list[MimeEvent]
) -> _TransferDecoder | None:
    """The decoder for a Content-Transfer-Encoding value (None: the body is used as is)."""
    if value is None:
        return None
    words = value.decode("latin-1").replace('"', " ").split()  # tolerate quotes and comments
    cte = words[0].lower() if words else ""
    if cte in _IDENTITY_CTE:
        return None
    if cte == "base64":
        return _Base64Decoder()
    if cte == "quoted-printable":
        return _QuotedPrintableDecoder()
    out.append(Anomaly("mime_unknown_cte", f"unknown transfer encoding {cte[:40]!r}; kept raw", ts))
    return None


# -- the sink tree -----------------------------------------------------------------------------


class _Sink(Protocol):
    def feed(self, data: bytes, out: list[MimeEvent]) -> None: ...

    def gap(self, size: int, out: list[MimeEvent]) -> None: ...

    def end(self, complete: bool, out: list[MimeEvent]) -> None: ...


class _Context:
    """Per-message state shared by every sink: caps, counters, the overflow object."""

    __slots__ = (
        "attachments",
        "caps",
        "depth_noted",
        "finished",
        "object_caps",
        "overflow",
        "split_caps",
        "store",
        "ts",
    )

    def __init__(
        self, ts: float, caps: MimeCaps, content_caps: ContentCaps, store: ObjectStore | None
    ) -> None:
        self.ts = ts
        self.caps = caps
        self.object_caps = content_caps
        # Part header blocks are header blocks too: the splitter gets the MIME header cap.
        self.split_caps = replace(content_caps, max_part_header_bytes=caps.max_header_bytes)
        self.store = store
        self.attachments = 0
        self.finished = 0  # leaves finished so far = the next part_index
        self.depth_noted = False
        self.overflow: FileObject | None = None

    def new_object(
        self, filename: str | None, declared: str | None, encodings: list[str]
    ) -> FileObject:
        return FileObject(
            filename=filename,
            declared_type=declared,
            encodings=encodings,
            caps=self.object_caps,
            store=self.store,
            ts=self.ts,
        )

    def finish(self, obj: FileObject, complete: bool, out: list[MimeEvent]) -> None:
        obj.part_index = self.finished
        self.finished += 1
        info = obj.finish(complete)
        out.extend(obj.anomalies)
        out.append(info)


class _LeafSink:
    """One leaf entity: transfer decoding, then a FileObject."""

    __slots__ = ("_ctx", "_decoder", "_obj", "_overflow")

    def __init__(
        self,
        ctx: _Context,
        obj: FileObject,
        decoder: _TransferDecoder | None,
        overflow: bool = False,
    ) -> None:
        self._ctx = ctx
        self._obj = obj
        self._decoder = decoder
        self._overflow = overflow

    def feed(self, data: bytes, out: list[MimeEvent]) -> None:
        if self._decoder is not None:
            data = self._decoder.decode(data)
        self._obj.update(data)

    def gap(self, size: int, out: list[MimeEvent]) -> None:
        self._obj.gap(self._decoder.gap(size) if self._decoder is not None else size)

    def end(self, complete: bool, out: list[MimeEvent]) -> None:
        if self._decoder is not None:
            self._obj.update(self._decoder.flush(self._ctx.ts, out))
        if self._overflow:
            if not complete:
                self._obj.mark_incomplete()
            return  # the shared overflow object is finished by MimeMessage.end
        self._ctx.finish(self._obj, complete, out)

    def abandon(self, out: list[MimeEvent]) -> None:
        if not self._overflow:
            self._obj.abandon()
            out.extend(self._obj.anomalies)


def _new_leaf(
    ctx: _Context,
    declared: str,
    filename: str | None,
    attachment: bool,
    decoder: _TransferDecoder | None,
    out: list[MimeEvent],
) -> _LeafSink:
    if ctx.finished >= ctx.caps.max_entities:
        if ctx.overflow is None:
            out.append(
                Anomaly(
                    "mime_entity_cap",
                    f"more than {ctx.caps.max_entities} leaf entities; "
                    "the rest is one undecoded object",
                    ctx.ts,
                )
            )
            ctx.overflow = ctx.new_object(None, None, [])
            ctx.overflow.mark_incomplete()
        return _LeafSink(ctx, ctx.overflow, None, overflow=True)
    if attachment:
        ctx.attachments += 1
    encodings = [decoder.name] if decoder is not None else []
    return _LeafSink(ctx, ctx.new_object(filename, declared, encodings), decoder)


def _safe_param_filename(params: list[tuple[str, str]], key: str) -> str | None:
    """entity._param_filename, which raises on an RFC 2231 charset that is not a text encoding
    ("zlib", "hex", a NUL): then the charsets are replaced by utf-8 and it is asked again."""
    try:
        return _param_filename(params, key)
    except (LookupError, ValueError):
        fixed = [
            (name, "utf-8''" + val.split("'", 2)[2] if val.count("'") >= 2 else val)
            for name, val in params
        ]
        try:
            return _param_filename(fixed, key)
        except (LookupError, ValueError):
            return None


def _leaf_filename(headers: Fields, ctx: _Context, out: list[MimeEvent]) -> tuple[str | None, bool]:
    """(filename, is-attachment). Content-Disposition filename (RFC 2183, RFC 2231), else the
    Content-Type name parameter (RFC 2046 sec 4.5.1, deprecated but universal); encoded words
    inside the quoted value (not allowed by RFC 2047 sec 5, sent by real clients) are decoded
    before the path is stripped, since base64 text may contain "/"."""
    disposition = header_value(headers, b"content-disposition")
    kind, params = split_header_params(disposition) if disposition is not None else ("", [])
    name = _safe_param_filename(params, "filename")
    if name is None:
        ctype = header_value(headers, b"content-type")
        if ctype is not None:
            name = _safe_param_filename(split_header_params(ctype)[1], "name")
    attachment = kind.lower() == "attachment" or name is not None
    if name is None:
        return None, attachment
    base, had_path = _basename(rfc2047_decode(name))
    if had_path:
        out.append(
            Anomaly("content_filename_path", f"path removed from filename, kept {base!r}", ctx.ts)
        )
    return base, attachment


def _open_entity(
    ctx: _Context, headers: Fields, depth: int, default_type: str, out: list[MimeEvent]
) -> _Sink:
    """The sink for the body of an entity with these headers, `depth` containers deep."""
    declared, params = content_type(header_value(headers, b"content-type"))
    if declared is None:
        declared = default_type  # RFC 2045 sec 5.2 (RFC 2046 sec 5.1.5 for digest parts)
    decoder = _transfer_decoder(header_value(headers, b"content-transfer-encoding"), ctx.ts, out)
    is_multipart = declared.startswith("multipart/")
    if is_multipart or declared in _MESSAGE_TYPES:
        sink: _Sink | None = None
        if depth >= ctx.caps.max_depth:
            if not ctx.depth_noted:
                ctx.depth_noted = True
                out.append(
                    Anomaly(
                        "mime_depth_cap",
                        f"entities nested deeper than {ctx.caps.max_depth}; kept opaque",
                        ctx.ts,
                    )
                )
        elif not is_multipart:
            sink = _MessageSink(ctx, depth + 1, top=False)
        else:
            boundary = params.get("boundary", "")
            if boundary and len(boundary) <= MAX_BOUNDARY:
                digest = declared == "multipart/digest"
                sink = _MultipartSink(
                    ctx, depth, boundary.encode("latin-1"), declared, digest=digest
                )
            else:
                why = "no boundary parameter" if not boundary else "boundary parameter too long"
                out.append(
                    Anomaly(
                        "multipart_boundary_missing", f"{why}; whole body is one object", ctx.ts
                    )
                )
        if sink is not None:
            if decoder is None:
                return sink
            out.append(
                Anomaly(
                    "mime_container_encoded",
                    f"{declared} with transfer encoding {decoder.name}; decoded",
                    ctx.ts,
                )
            )
            return _DecodedSink(ctx, decoder, sink)
    filename, attachment = _leaf_filename(headers, ctx, out)
    return _new_leaf(ctx, declared, filename, attachment, decoder, out)


class _DecodedSink:
    """A transfer encoding removed in front of a container entity."""

    __slots__ = ("_ctx", "_decoder", "_inner")

    def __init__(self, ctx: _Context, decoder: _TransferDecoder, inner: _Sink) -> None:
        self._ctx = ctx
        self._decoder = decoder
        self._inner = inner

    def feed(self, data: bytes, out: list[MimeEvent]) -> None:
        decoded = self._decoder.decode(data)
        if decoded:
            self._inner.feed(decoded, out)

    def gap(self, size: int, out: list[MimeEvent]) -> None:
        self._inner.gap(self._decoder.gap(size), out)

    def end(self, complete: bool, out: list[MimeEvent]) -> None:
        tail = self._decoder.flush(self._ctx.ts, out)
        if tail:
            self._inner.feed(tail, out)
        self._inner.end(complete, out)


class _MultipartSink:
    """One multipart level: a MultipartSplitter whose parts become entities one level deeper."""

    __slots__ = ("_child", "_ctx", "_declared", "_default", "_depth", "_preamble", "_splitter")

    def __init__(
        self, ctx: _Context, depth: int, boundary: bytes, declared: str, digest: bool
    ) -> None:
        self._ctx = ctx
        self._depth = depth
        self._declared = declared
        self._default = "message/rfc822" if digest else "text/plain"
        self._splitter = MultipartSplitter(boundary, ctx.split_caps, ctx.ts)
        self._child: _Sink | None = None
        self._preamble: _LeafSink | None = None

    def feed(self, data: bytes, out: list[MimeEvent]) -> None:
        self._handle(self._splitter.feed(data), out)

    def gap(self, size: int, out: list[MimeEvent]) -> None:
        self._handle(self._splitter.gap(size), out)

    def end(self, complete: bool, out: list[MimeEvent]) -> None:
        self._handle(self._splitter.end(), out)
        if self._child is not None:  # defensive: the splitter always ends its part
            self._child.end(False, out)
            self._child = None
        if self._preamble is not None:  # no delimiter at all: the whole body is one object
            self._preamble.end(complete, out)
            self._preamble = None

    def _preamble_leaf(self, out: list[MimeEvent]) -> _LeafSink:
        if self._preamble is None:
            self._preamble = _new_leaf(self._ctx, self._declared, None, False, None, out)
        return self._preamble

    def _handle(self, events: list[MultipartEvent | Anomaly], out: list[MimeEvent]) -> None:
        for ev in events:
            if isinstance(ev, PartData):
                if self._child is not None:
                    self._child.feed(ev.data, out)
            elif isinstance(ev, PartGap):
                if self._child is not None:
                    self._child.gap(ev.size, out)
            elif isinstance(ev, PartStart):
                if self._preamble is not None:  # RFC 2046 sec 5.1.1: the preamble is ignored
                    self._preamble.abandon(out)
                    self._preamble = None
                self._child = _open_entity(
                    self._ctx, ev.headers, self._depth + 1, self._default, out
                )
            elif isinstance(ev, PartEnd):
                if self._child is not None:
                    self._child.end(ev.complete, out)
                    self._child = None
            elif isinstance(ev, PreambleData):
                self._preamble_leaf(out).feed(ev.data, out)
            elif isinstance(ev, PreambleGap):
                self._preamble_leaf(out).gap(ev.size, out)
            elif isinstance(ev, Anomaly):
                if ev.kind == "multipart_header_too_long":  # one kind for every header block
                    ev = Anomaly("mime_header_too_long", ev.detail, ev.ts)
                out.append(ev)


class _MessageSink:
    """An RFC 5322 message: header block (streamed line by line, capped), then its body."""

    __slots__ = ("_body", "_ctx", "_depth", "_fields", "_line", "_seen", "_top", "_used")

    def __init__(self, ctx: _Context, depth: int, top: bool) -> None:
        self._ctx = ctx
        self._depth = depth
        self._top = top
        self._line = b""  # the incomplete header line
        self._fields: list[tuple[bytes, bytes]] = []
        self._used = 0  # header block bytes consumed
        self._seen = False
        self._body: _Sink | None = None

    def feed(self, data: bytes, out: list[MimeEvent]) -> None:
        if self._body is not None:
            self._body.feed(data, out)
            return
        self._seen = True
        buf = self._line + data if self._line else data
        self._line = b""
        cap = self._ctx.caps.max_header_bytes
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            length = (nl + 1 if nl >= 0 else len(buf)) - pos
            if self._used + length > cap:
                self._open_body(
                    out,
                    "mime_header_too_long",
                    f"header block exceeds {cap} bytes; rest treated as body",
                )
                self._feed_body(buf[pos:], out)
                return
            if nl < 0:
                self._line = buf[pos:]
                return
            line = buf[pos : nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl]
            if not line:  # RFC 5322 sec 2.1: the first empty line ends the header block
                self._used += length
                self._open_body(out)
                self._feed_body(buf[nl + 1 :], out)
                return
            if not self._add_line(line):
                self._open_body(
                    out, "mime_header_malformed", "a header block line is not a header field"
                )
                self._feed_body(buf[pos:], out)
                return
            self._used += length
            pos = nl + 1

    def _add_line(self, line: bytes) -> bool:
        if line[0] in _WSP:
            if not self._fields:
                return False
            # RFC 5322 sec 2.2.3: unfolding removes the line break only, not the white space.
            name, value = self._fields[-1]
            self._fields[-1] = (name, value + line)
            return True
        colon = line.find(b":")
        name = line[:colon].rstrip(_WSP) if colon > 0 else b""
        if not name or not _FIELD_NAME.fullmatch(name):
            return False
        self._fields.append((name, line[colon + 1 :]))
        return True

    def _feed_body(self, data: bytes, out: list[MimeEvent]) -> None:
        if data and self._body is not None:
            self._body.feed(data, out)

    def _open_body(self, out: list[MimeEvent], kind: str = "", detail: str = "") -> None:
        if self._line:  # a gap or the end cut the last header line: keep it if it parses
            self._add_line(self._line)
            self._line = b""
        fields = [(name, value.strip()) for name, value in self._fields]
        self._fields = []
        if self._top:
            out.append(_message_headers(fields))
        if kind:
            out.append(Anomaly(kind, detail, self._ctx.ts))
        self._body = _open_entity(self._ctx, fields, self._depth, "text/plain", out)

    def gap(self, size: int, out: list[MimeEvent]) -> None:
        if self._body is None:  # a gap inside the header block ends it (like the splitter)
            self._seen = True
            self._open_body(out)
        assert self._body is not None
        self._body.gap(size, out)

    def end(self, complete: bool, out: list[MimeEvent]) -> None:
        if self._body is None:
            detail = "message ended inside its header block" if self._seen else "empty message"
            self._open_body(out, "mime_header_unterminated", detail)
        assert self._body is not None
        self._body.end(complete, out)


class MimeMessage:
    """One Internet message streamed -> its top-level headers (once, as soon as the header block
    ends) + one FileInfo per LEAF entity (text bodies included, as Zeek does)."""

    __slots__ = ("_ctx", "_done", "_hash", "_root", "sha256", "size")

    def __init__(
        self,
        ts: float,
        caps: MimeCaps = DEFAULT_MIME_CAPS,
        content_caps: ContentCaps = DEFAULT_CAPS,
        store: ObjectStore | None = None,
    ) -> None:
        self._ctx = _Context(ts, caps, content_caps, store)
        self._root = _MessageSink(self._ctx, 0, top=True)
        self._hash = hashlib.sha256()
        self._done = False
        self.size = 0  # message bytes fed (gaps not counted)
        self.sha256 = ""  # hex SHA-256 of the bytes fed, set by end()

    @property
    def attachments(self) -> int:
        """Leaf entities that are attachments: disposition attachment or any file name."""
        return self._ctx.attachments

    def feed(self, data: bytes) -> list[MimeEvent]:
        out: list[MimeEvent] = []
        if self._done or not data:
            return out
        self.size += len(data)
        self._hash.update(data)
        self._root.feed(data, out)
        return out

    def gap(self, size: int) -> list[MimeEvent]:
        out: list[MimeEvent] = []
        if self._done or size <= 0:
            return out
        self._root.gap(size, out)
        return out

    def end(self, complete: bool) -> list[MimeEvent]:
        """Finishes every open entity; `complete=False` if the transport saw the message end
        early."""
        out: list[MimeEvent] = []
        if self._done:
            return out
        self._done = True
        self._root.end(complete, out)
        if self._ctx.overflow is not None:
            self._ctx.finish(self._ctx.overflow, complete, out)
            self._ctx.overflow = None
        self.sha256 = self._hash.hexdigest()
        return out
