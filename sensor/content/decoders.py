"""Content stage: removal of HTTP content codings (RFC 9110 sec 8.4).

In: the encoded body bytes as delivered by a protocol parser, in arbitrary chunks, plus gaps,
and the list of content codings in the order the sender applied them (RFC 9110 sec 8.4: "listed in
the order in which they were applied").
Out: decoded bytes in pieces of at most `PIECE` bytes, and `Anomaly` values in
`DecoderChain.anomalies`, which the caller drains.

Codings are removed in reverse order of application. Supported: `gzip`/`x-gzip` (RFC 1952, also
multi-member streams), `deflate` both zlib-wrapped (RFC 1950, what RFC 9110 sec 8.4.1.2 means) and
raw RFC 1951 (what some servers send and browsers accept; chosen by the zlib header check),
`br` (RFC 7932) through the `brotli` package's streaming Decompressor, and `lzma` (.xz or
.lzma; not registered for HTTP, but sent by evasion tests and some servers). `identity` is
skipped.

Failure policy (never raise):
- an unknown coding is skipped (`content_decode_error`): the known layers around it are still
  removed, as a receiver that ignores what it does not know would try;
- corrupt data or data after the end of a compressed stream switches the failing layer and every
  inner layer to passthrough: the rest of the body continues as raw bytes. The chunk that failed
  is passed through whole, so a few bytes already decoded from it may be repeated in raw form
  (`content_decode_error`);
- a gap in the encoded stream desynchronises every decompressor, so all layers switch to
  passthrough after it (`content_decode_gap`);
- a stream that ends before its end marker gives `content_decode_truncated`;
- the bomb guards stop decoding (remaining input is discarded, output is truncated):
  `content_decoded_cap` when the decoded body would exceed `max_decoded_bytes`, and
  `content_decoded_ratio` when, past 16 MiB decoded, decoded/encoded exceeds `max_ratio`.
Each of these sets `damaged`, meaning the decoded output is not the faithful body.

Memory: every decompressor is driven with an output limit, so one call never materialises more
than `PIECE` bytes per layer, whatever the compression ratio.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import brotli

from sensor.anomaly import Anomaly
from sensor.content.objects import RATIO_GUARD_MIN_BYTES, ContentCaps

PIECE = 64 * 1024  # max bytes a decompressor may produce per call

_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS

# Aliases from RFC 9110 sec 8.4.1.3 ("x-gzip" is equivalent to "gzip").
_CODING_ALIASES = {"x-gzip": "gzip", "x-deflate": "deflate"}  # x-deflate: what browsers accept


class DecodeFailure(Exception):
    """A layer cannot go on; `raw` is its best knowledge of the undecoded remainder."""

    def __init__(self, detail: str, raw: bytes) -> None:
        super().__init__(detail)
        self.detail = detail
        self.raw = raw


class StreamTruncated(Exception):
    """The input ended before the compressed stream's end marker."""


class _Layer(Protocol):
    name: str

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> None: ...


def _inflate(d: Any, buf: bytes, name: str) -> tuple[bytes, bytes, bool]:
    """One zlib call with the output limit: (output, input for the next call, whether zlib may
    still hold output for this input)."""
    try:
        out = d.decompress(buf, PIECE)
    except zlib.error as exc:
        raise DecodeFailure(f"corrupt {name} data: {exc}", buf) from exc
    if d.eof:
        return out, d.unused_data, False
    return out, d.unconsumed_tail, len(out) == PIECE


class _DeflateLayer:
    """deflate (zlib-wrapped or raw) via zlib with an output limit."""

    __slots__ = ("_d", "_head", "_more", "_seen_input", "name")

    def __init__(self) -> None:
        self.name = "deflate"
        self._seen_input = False
        self._more = False
        self._head = b""
        self._d: Any = None  # framing not decided yet

    @staticmethod
    def _looks_zlib(head: bytes) -> bool:
        # RFC 1950 sec 2.2: CM = 8 (deflate), CINFO <= 7, and (CMF*256 + FLG) % 31 == 0.
        cmf, flg = head[0], head[1]
        return (cmf & 0x0F) == 8 and (cmf >> 4) <= 7 and ((cmf << 8) | flg) % 31 == 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen_input = True
        if self._d is None:  # deflate, framing not decided yet
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._d = zlib.decompressobj(_ZLIB_WBITS if self._looks_zlib(data) else _RAW_WBITS)
        buf = data
        while buf or self._more:
            if self._d.eof:
                raise DecodeFailure("data after end of deflate stream", buf)
            out, buf, self._more = _inflate(self._d, buf, self.name)
            if out:
                yield out

    def finish(self) -> None:
        if not self._seen_input:
            return  # an empty body with a coding header: nothing to decode
        if self._d is None or not self._d.eof:
            raise StreamTruncated(f"{self.name} stream ended before its end marker")


_GZIP_MAGIC = b"\x1f\x8b"
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10


class _GzipHeader:
    """One RFC 1952 member header, read as it streams and as browsers read it: the reserved
    flag bits are ignored (zlib rejects them); names, comment and extra field are skipped
    however long they are, keeping only the few fixed bytes."""

    __slots__ = ("_fixed", "_flags", "_skip", "_step")

    # Steps: 0 the 10 fixed bytes, 1 FEXTRA's length, 2 its data, 3 FNAME, 4 FCOMMENT,
    # 5 FHCRC, 6 done.
    def __init__(self) -> None:
        self._fixed = b""
        self._flags = 0
        self._skip = 0  # step 2: extra bytes still to skip; step 5: CRC bytes
        self._step = 0

    def feed(self, buf: bytes, after_member: bool) -> int | None:
        """How much of `buf` the header took when it ended there; None: all, and more to come."""
        pos = 0
        while pos < len(buf) or self._step == 6:
            step = self._step
            if step == 0 or step == 1:
                need = (10 if step == 0 else 2) - len(self._fixed)
                self._fixed += buf[pos : pos + need]
                pos += min(need, len(buf) - pos)
                if step == 0:
                    head = self._fixed
                    if head[:2] != _GZIP_MAGIC[: len(head[:2])] or (len(head) > 2 and head[2] != 8):
                        what = "data after end of gzip member" if after_member else "not gzip data"
                        raise DecodeFailure(what, head + buf[pos:])
                if len(self._fixed) < (10 if step == 0 else 2):
                    return None
                if step == 0:
                    self._flags = self._fixed[3]
                    self._step = 1 if self._flags & _FEXTRA else 3
                else:
                    self._skip = int.from_bytes(self._fixed, "little")
                    self._step = 2
                self._fixed = b""
            elif step == 2 or step == 5:
                n = min(self._skip, len(buf) - pos)
                pos += n
                self._skip -= n
                if self._skip:
                    return None
                self._step = 3 if step == 2 else 6
            elif step == 3 or step == 4:
                if self._flags & (_FNAME if step == 3 else _FCOMMENT):
                    nul = buf.find(b"\0", pos)
                    if nul < 0:
                        return None
                    pos = nul + 1
                self._step += 1
                if self._step == 5:  # the header CRC's two bytes, if announced
                    self._skip = 2 if self._flags & _FHCRC else 0
            else:  # step 6
                return pos
        return None

    @property
    def started(self) -> bool:
        return self._step > 0 or bool(self._fixed)


class _GzipLayer:
    """gzip (RFC 1952, multi-member): each member's header is read here (_GzipHeader), its
    deflate data by zlib (raw), its 8-byte trailer skipped, even when short or missing at the
    end, as browsers do. The stream must start with the gzip magic; anything else is a decode
    failure."""

    __slots__ = ("_d", "_head", "_members", "_more", "_seen_input", "_trailer", "name")

    def __init__(self) -> None:
        self.name = "gzip"
        self._d: Any = None  # None: reading a member header
        self._head = _GzipHeader()
        self._trailer = 0  # trailer bytes still to skip
        self._members = 0
        self._more = False
        self._seen_input = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen_input = True
        buf = data
        while buf or self._more:
            if self._trailer:
                skip = min(self._trailer, len(buf))
                self._trailer -= skip
                buf = buf[skip:]
                continue
            if self._d is None or self._d.eof:
                if self._d is not None:  # the next member, or something after the last one
                    self._d = None
                    self._head = _GzipHeader()
                taken = self._head.feed(buf, self._members > 0)
                if taken is None:
                    return  # header not complete yet
                self._d = zlib.decompressobj(_RAW_WBITS)
                buf = buf[taken:]
                continue
            out, buf, self._more = _inflate(self._d, buf, self.name)
            if out:
                yield out
            if self._d.eof:
                self._trailer = 8
                self._members += 1

    def finish(self) -> None:
        if not self._seen_input:
            return  # an empty body with a coding header: nothing to decode
        if self._members == 0 or (self._d is not None and not self._d.eof):
            raise StreamTruncated("gzip stream ended before its end marker")
        if self._d is None and self._head.started:
            raise StreamTruncated("gzip stream ended inside a member header")


class _BrotliLayer:
    """br via brotli.Decompressor, with an output buffer limit where the package supports it."""

    __slots__ = ("_d", "_limit_ok", "_seen_input", "name")

    def __init__(self) -> None:
        self.name = "br"
        self._d: Any = brotli.Decompressor()
        self._limit_ok = True
        self._seen_input = False

    def _process(self, data: bytes) -> bytes:
        if self._limit_ok:
            try:
                return bytes(self._d.process(data, output_buffer_limit=PIECE))
            except TypeError:
                # brotli < 1.2 has no output limit; one call may then produce a lot of output.
                self._limit_ok = False
        return bytes(self._d.process(data))

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen_input = True
        if self._d.is_finished():
            raise DecodeFailure("data after end of br stream", data)
        try:
            out = self._process(data)
            while True:
                if out:
                    yield out
                if not self._limit_ok or self._d.is_finished():
                    return
                if self._d.can_accept_more_data() and not out:
                    return
                out = self._process(b"")
        except brotli.error as exc:
            raise DecodeFailure(f"corrupt br data: {exc}", data) from exc

    def finish(self) -> None:
        if self._seen_input and not self._d.is_finished():
            raise StreamTruncated("br stream ended before its end marker")


class _LzmaLayer:
    """lzma (.xz or legacy .lzma, as the HTTP Evader list sends it) via the standard lzma
    module, with an output limit."""

    __slots__ = ("_d", "_seen_input", "name")

    def __init__(self) -> None:
        self.name = "lzma"
        self._d: Any = lzma.LZMADecompressor(lzma.FORMAT_AUTO)
        self._seen_input = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen_input = True
        if self._d.eof:
            raise DecodeFailure("data after end of lzma stream", data)
        try:
            out = self._d.decompress(data, PIECE)
            while True:
                if out:
                    yield out
                if self._d.eof or self._d.needs_input:
                    return
                out = self._d.decompress(b"", PIECE)
        except lzma.LZMAError as exc:
            raise DecodeFailure(f"corrupt lzma data: {exc}", data) from exc

    def finish(self) -> None:
        if self._seen_input and not self._d.eof:
            raise StreamTruncated("lzma stream ended before its end marker")


def normalize_coding(name: str) -> str:
    coding = name.strip().lower()
    return _CODING_ALIASES.get(coding, coding)


class DecoderChain:
    """Removes stacked content codings from a streamed body; see the module docstring."""

    __slots__ = (
        "_caps",
        "_layers",
        "_passthrough_from",
        "_stopped",
        "anomalies",
        "applied",
        "damaged",
        "total_in",
        "total_out",
        "ts",
    )

    def __init__(self, encodings: Sequence[str], caps: ContentCaps, ts: float = 0.0) -> None:
        self._caps = caps
        self.ts = ts
        self.anomalies: list[Anomaly] = []
        self.damaged = False
        self.total_in = 0
        self.total_out = 0
        self._stopped = False
        layers: list[_Layer] = []
        unknown: list[str] = []
        for raw_name in reversed(encodings):  # removal order: last applied first
            coding = normalize_coding(raw_name)
            if coding in ("", "identity"):
                continue
            if coding == "br":
                layers.append(_BrotliLayer())
            elif coding == "lzma":
                layers.append(_LzmaLayer())
            elif coding == "gzip":
                layers.append(_GzipLayer())
            elif coding == "deflate":
                layers.append(_DeflateLayer())
            else:
                # Skipped, not a stop: the layers under it still get their try (a receiver
                # that ignores what it does not know does the same), and bytes that are not
                # what a layer expects pass through it undecoded.
                unknown.append(coding)
        if unknown:  # one anomaly for the chain, however many
            names = ", ".join(repr(name[:32]) for name in unknown[:4])
            more = f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
            self._note("content_decode_error", f"unknown content coding {names}{more} skipped")
        self._layers = layers
        self._passthrough_from = len(layers)
        # Codings being removed, in the sender's order (as FileInfo.encodings reports them).
        self.applied: list[str] = [layer.name for layer in reversed(layers)]

    @property
    def active(self) -> bool:
        """True while at least one layer is still decoding."""
        return self._passthrough_from > 0 and not self._stopped

    def _note(self, kind: str, detail: str) -> None:
        self.anomalies.append(Anomaly(kind, detail, self.ts))
        self.damaged = True

    def _run(self, k: int, data: bytes) -> Iterator[bytes]:
        """Push `data` into layer k and everything after it."""
        if k >= self._passthrough_from:
            yield data
            return
        try:
            for piece in self._layers[k].feed(data):
                yield from self._run(k + 1, piece)
        except DecodeFailure as exc:
            self._note("content_decode_error", f"{exc.detail}; rest kept undecoded")
            self._passthrough_from = k
            if exc.raw:
                yield exc.raw

    def _guard(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """Bomb guards on the final decoded output."""
        caps = self._caps
        for piece in pieces:
            room = caps.max_decoded_bytes - self.total_out
            if len(piece) > room:
                if room > 0:
                    self.total_out += room
                    yield piece[:room]
                self._note(
                    "content_decoded_cap",
                    f"decoded body exceeds {caps.max_decoded_bytes} bytes; truncated",
                )
                self._stopped = True
                return
            self.total_out += len(piece)
            yield piece
            if self.total_out > RATIO_GUARD_MIN_BYTES and self.total_out > caps.max_ratio * max(
                self.total_in, 1
            ):
                self._note(
                    "content_decoded_ratio",
                    f"decoded {self.total_out} bytes from {self.total_in} "
                    f"(ratio > {caps.max_ratio}); truncated",
                )
                self._stopped = True
                return

    def decode_iter(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces for one chunk of encoded input (each at most PIECE bytes per layer)."""
        if self._stopped or not data:
            return
        if not self._layers:
            yield data
            return
        self.total_in += len(data)
        yield from self._guard(self._run(0, data))

    def decode(self, data: bytes) -> bytes:
        return b"".join(self.decode_iter(data))

    def gap(self, size: int) -> int:
        """Note `size` lost encoded bytes; returns the bytes to count as missing (encoded)."""
        if size > 0 and self.active:
            self._note(
                "content_decode_gap",
                f"{size} bytes missing in {'+'.join(self.applied)} stream; rest kept undecoded",
            )
            self._passthrough_from = 0
        return max(size, 0)

    def flush_iter(self) -> Iterator[bytes]:
        """End of input: checks every still-decoding layer reached its end marker."""
        if self._stopped:
            return
        for k in range(len(self._layers)):
            if k >= self._passthrough_from:
                return
            try:
                self._layers[k].finish()
            except StreamTruncated as exc:
                self._note("content_decode_truncated", str(exc))
                return  # inner layers are necessarily cut short too; one anomaly is enough
        return
        yield b""  # pragma: no cover - makes this a generator; layers hold no output at the end

    def flush(self) -> bytes:
        return b"".join(self.flush_iter())
