"""Fingerprint stage: what each object is, whether it is an encrypted container, and (for
containers Sluice opens) its members as they stream.

In: one object's bytes in order (`Fingerprinter.feed`), lost bytes (`gap`) and its end
(`finish`), plus its declared type and file name. Out: a `Fingerprint` at the end, the MIME
type, and member events (sensor/content/fingerprint/base.py) for containers while they
stream; `anomalies` for damage.

How an object is read:

1. The first `HEAD_BYTES` are kept and matched against the signature table
   (`signatures/filetypes.toml`), then binary OpenPGP and text are tried (identify.py).
   libmagic is asked only when nothing matched (a few exotic binaries), at the end.
2. A type with an analyser (ZIP, 7z, RAR, OpenPGP, age, OpenSSL, LUKS, PDF, CFB) gets every
   byte once, in order, and, where its directory is at the end, the last `tail_bytes` bytes
   (a bounded ring; what lies before it is not read, and the verdict says so).
3. A type with an opener (ZIP, gzip, bzip2, xz, zstd, tar) streams its members out; the
   caller (sensor/content/objects.py) makes each one an object of its own and enforces the
   tree's caps. ZIP is read once: `ZipReader` is both its analyser and its opener.
4. Entropy and chi-square of the first MiB are always measured. They decide only for objects
   with no known structure: a random-looking one of at least `HIGH_ENTROPY_MIN_BYTES` is
   `encrypted: null` with `encryption: "unknown-high-entropy"`, a separate, lower-confidence
   signal. A compressed format with a header is never called encrypted.

`encrypted` is None only when the object is empty or too short, when an analyser could not
tell (cut or damaged), or for the high-entropy case above; `Fingerprint.undecided` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor.anomaly import Anomaly
from sensor.content.filetype import MimeSniffer
from sensor.content.fingerprint.base import (
    PLAIN,
    UNDECIDED,
    Analyser,
    Encryption,
    MemberEvent,
    MemberStart,
    Opener,
)
from sensor.content.fingerprint.cfb import CfbAnalyser
from sensor.content.fingerprint.entropy import ENTROPY_BYTES, ByteHistogram, looks_random
from sensor.content.fingerprint.identify import HEAD_BYTES, identify
from sensor.content.fingerprint.openpgp import OpenPgpAnalyser
from sensor.content.fingerprint.pdf import PdfAnalyser
from sensor.content.fingerprint.rar import RarAnalyser
from sensor.content.fingerprint.sealed import AgeAnalyser, LuksAnalyser, OpenSslAnalyser
from sensor.content.fingerprint.sevenz import SevenZipAnalyser
from sensor.content.fingerprint.table import FileType, FileTypeTable, default_table
from sensor.content.fingerprint.zip import ZipReader
from sensor.content.unpack.streams import Bzip2Opener, GzipOpener, XzOpener, ZstdOpener
from sensor.content.unpack.tar import TarOpener

__all__ = ["HEAD_BYTES", "HIGH_ENTROPY", "Fingerprint", "Fingerprinter"]

HIGH_ENTROPY = "unknown-high-entropy"
# A headerless object shorter than this is too short for its byte distribution to say anything.
HIGH_ENTROPY_MIN_BYTES = 4096
# The verdict when a format reader failed.
BROKEN = Encryption(None, detail="the format reader failed (fingerprint_error)")


@dataclass(slots=True)
class Fingerprint:
    """What an object is (the `fingerprint` of its file record)."""

    type: str | None
    encrypted: bool | None
    encryption: str | None
    entropy: float | None
    container: str | None
    members: int | None
    contains_encrypted: bool = False
    hides_names: bool = False
    partial: bool = False
    # Why `encrypted` is None: "short" (empty or too short), "damaged" (an analyser could not
    # tell), "high-entropy" (no structure, random-looking); None when it is not.
    undecided: str | None = None
    detail: str | None = None

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "type": self.type,
            "encrypted": self.encrypted,
            "encryption": self.encryption,
            "entropy": None if self.entropy is None else round(self.entropy, 3),
            "container": self.container,
            "members": self.members,
            "contains_encrypted": self.contains_encrypted,
        }
        if self.hides_names:
            record["hides_names"] = True
        if self.partial:
            record["partial"] = True
        if self.detail:
            record["detail"] = self.detail
        return record


def _analyser(name: str) -> Analyser:
    if name == "7z":
        return SevenZipAnalyser()
    if name == "rar":
        return RarAnalyser()
    if name in ("openpgp", "openpgp-armored"):
        return OpenPgpAnalyser(armoured=name == "openpgp-armored")
    if name in ("age", "age-armored"):
        return AgeAnalyser(armoured=name == "age-armored")
    if name in ("openssl", "openssl-base64"):
        return OpenSslAnalyser(base64=name == "openssl-base64")
    if name == "luks":
        return LuksAnalyser()
    if name == "pdf":
        return PdfAnalyser()
    if name == "cfb":
        return CfbAnalyser()
    raise ValueError(f"no analyser {name!r}")  # the table's loader admits only known names


def _opener(name: str, filename: str | None) -> Opener:
    if name == "gzip":
        return GzipOpener(name=filename)
    if name == "bzip2":
        return Bzip2Opener(name=filename)
    if name == "xz":
        return XzOpener(name=filename)
    if name == "zstd":
        return ZstdOpener(name=filename)
    if name == "tar":
        return TarOpener()
    raise ValueError(f"no opener {name!r}")


class _Undecided:
    """The type is not known yet (the head is still filling)."""


_PENDING = _Undecided()


class Fingerprinter:
    """Fingerprints one object as it streams (see the module docstring)."""

    __slots__ = (
        "_analyser",
        "_broken",
        "_cfb",
        "_declared",
        "_filename",
        "_head",
        "_hist",
        "_idle",
        "_members",
        "_open_members",
        "_opener",
        "_opening",
        "_size",
        "_sniffer",
        "_table",
        "_tail",
        "_tail_bytes",
        "_type",
        "_zip",
        "anomalies",
        "may_hold",
        "mime_type",
    )

    def __init__(
        self,
        table: FileTypeTable | None = None,
        *,
        filename: str | None = None,
        declared_type: str | None = None,
        open_members: bool = True,
        sniffer: MimeSniffer | None = None,
    ) -> None:
        self._table = table if table is not None else default_table()
        self._filename = filename
        self._declared = declared_type
        self._open_members = open_members
        self._sniffer = sniffer
        self._head = bytearray()
        self._hist = ByteHistogram()
        self._type: FileType | _Undecided | None = _PENDING
        self._analyser: Analyser | None = None
        self._opener: Opener | None = None
        self._zip: ZipReader | None = None
        self._cfb: CfbAnalyser | None = None
        self._opening = False
        self._broken = False  # a format reader failed (see _guard)
        self._idle = False  # identified, and no reader wants more bytes
        # The opener may hold input back (its per-call bound): the caller drains it.
        self.may_hold = False
        self._tail = bytearray()
        self._tail_bytes = 0
        self._size = 0
        self._members = 0  # member starts seen (directories excluded)
        self.anomalies: list[Anomaly] = []
        self.mime_type: str | None = None

    @property
    def file_type(self) -> FileType | None:
        return None if isinstance(self._type, _Undecided) else self._type

    @property
    def decided(self) -> bool:
        """The type is known (the head filled, a gap came, or the object ended)."""
        return not isinstance(self._type, _Undecided)

    @property
    def type_id(self) -> str | None:
        """The type as far as the head tells (a ZIP's document type comes at the end)."""
        return self._type.id if isinstance(self._type, FileType) else None

    def current_type(self) -> str | None:
        """The type as known now: a ZIP already read as a document (its members named
        word/..., xl/...) says so while it streams."""
        if self._zip is not None:
            try:
                refined = self._zip.document_type()
            except Exception as exc:  # see _guard
                self._break(exc)
                refined = None
            if refined is not None:
                return refined
        return self.type_id

    def head(self) -> bytes:
        """The bytes kept for identification: every byte fed before the type was decided."""
        return bytes(self._head)

    @property
    def opening(self) -> bool:
        """Whether members are being streamed out."""
        return self._opening

    def stop_opening(self) -> None:
        """No more members (a cap of the caller's): the analyser goes on, the opener stops."""
        self._opening = False
        self.may_hold = False
        if self._zip is not None:
            self._zip.stop_opening()

    @property
    def pending(self) -> bool:
        """The opener holds input it has not decoded yet (its per-call output bound): call
        `drain` until this is False (the caller's caps may stop opening first)."""
        opener = self._opener
        return self._opening and opener is not None and getattr(opener, "pending", False)

    def drain(self) -> list[MemberEvent]:
        """The next bounded batch of member events an opener held back."""
        opener = self._opener
        if opener is None or not self._opening:
            return []
        drain = getattr(opener, "drain", None)
        if drain is None:
            return []
        return self._guard(lambda: self._counted(drain()))

    def feed(self, data: bytes) -> list[MemberEvent]:
        if not data:
            return []
        self._size += len(data)
        if self._hist.seen < ENTROPY_BYTES:
            self._hist.feed(data)
        if self._idle:  # decided, and no reader wants the bytes (text, media): the hot path
            return []
        if isinstance(self._type, _Undecided):
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return []
            data = bytes(self._head)
            self._guard(self._decide)
        return self._guard(self._pass, data)

    def gap(self, size: int) -> list[MemberEvent]:
        if size <= 0:
            return []
        return self._guard(self._gap, size)

    def _gap(self, size: int) -> list[MemberEvent]:
        out: list[MemberEvent] = []
        if isinstance(self._type, _Undecided):
            self._decide()
            if self._head:
                out += self._pass(bytes(self._head))
        self._size += size
        if self._tail_bytes:
            self._tail.clear()  # what was before the gap is not this object's end
        if self._zip is not None:
            out += self._counted(self._zip.gap(size))
        else:
            if self._analyser is not None:
                self._analyser.gap(size)
            if self._opener is not None and self._opening:
                out += self._counted(self._opener.gap(size))
        return out

    def finish(self, complete: bool) -> tuple[Fingerprint, list[MemberEvent]]:
        events: list[MemberEvent] = []
        if isinstance(self._type, _Undecided):
            self._guard(self._decide)
            if self._head:
                events += self._guard(self._pass, bytes(self._head))
        if isinstance(self._type, _Undecided):
            self._type = None  # identification itself failed
        file_type = self._type
        verdict = BROKEN
        if not self._broken:
            try:
                more, verdict = self._conclude(complete)
                events += more
            except Exception as exc:  # see _guard
                self._break(exc)
                verdict = BROKEN
        return self._fingerprint(file_type, verdict), events

    def _conclude(self, complete: bool) -> tuple[list[MemberEvent], Encryption]:
        events: list[MemberEvent] = []
        tail = bytes(self._tail[-self._tail_bytes :]) if self._tail_bytes else b""
        if self._zip is not None:
            events += self._counted(self._zip.finish(complete))
            verdict = self._zip.verdict(tail, self._size, complete)
            self.anomalies += self._zip.anomalies
        else:
            if self._opener is not None and self._opening:
                events += self._counted(self._opener.finish(complete))
            if self._opener is not None:
                self.anomalies += self._opener.anomalies
            if self._analyser is not None:
                verdict = self._analyser.finish(tail, self._size, complete)
                self.anomalies += self._analyser.anomalies
            else:
                verdict = PLAIN
        return events, verdict

    # -- inside ----------------------------------------------------------------------------

    def _guard(self, call: Callable[..., object], *args: object) -> list[MemberEvent]:
        """Runs a format reader's step. A bug in one (hostile bytes it did not expect) must
        not lose the object, its hash or the flow: the reader is dropped with a
        `fingerprint_error` anomaly, the member being opened ends incomplete, and the
        object's encryption is unknown."""
        if self._broken:
            return []
        try:
            result = call(*args)
        except Exception as exc:
            self._break(exc)
            return []
        return result if isinstance(result, list) else []

    def _break(self, exc: Exception) -> None:
        self._broken = True
        where = self._type.id if isinstance(self._type, FileType) else "identification"
        self.anomalies.append(
            Anomaly("fingerprint_error", f"{where}: {type(exc).__name__}: {exc}"[:200])
        )
        self._analyser = self._opener = self._zip = self._cfb = None
        self._opening = False
        self._tail_bytes = 0
        self._settle()

    def _decide(self) -> None:
        try:
            self._identify()
        finally:
            self._settle()

    def _identify(self) -> None:
        head = bytes(self._head[:HEAD_BYTES])
        file_type = identify(
            self._table, head, declared_type=self._declared, filename=self._filename
        )
        self._type = file_type
        if file_type is None:
            self.mime_type = self._sniff(head)
            return
        self.mime_type = file_type.mime
        if file_type.analyser == "zip" or file_type.opener == "zip":
            self._zip = ZipReader(open_members=self._open_members)
            self._opening = self._open_members
            self._tail_bytes = self._zip.tail_bytes
            return
        if file_type.analyser is not None:
            self._analyser = _analyser(file_type.analyser)
            self._tail_bytes = self._analyser.tail_bytes
            if isinstance(self._analyser, CfbAnalyser):
                self._cfb = self._analyser
        if file_type.opener is not None:
            self._opener = _opener(file_type.opener, self._filename)
            self._opening = self._open_members

    def _settle(self) -> None:
        """After identification (or a failure): whether any reader still wants the bytes."""
        self._idle = (
            self._analyser is None
            and self._opener is None
            and self._zip is None
            and not self._tail_bytes
        )
        opener = self._opener
        self.may_hold = self._opening and opener is not None and hasattr(opener, "pending")

    def _sniff(self, head: bytes) -> str | None:
        if self._sniffer is None or not head:
            return None
        mime = self._sniffer.sniff(head)
        error = self._sniffer.take_load_error()
        if error is not None:
            self.anomalies.append(Anomaly("content_sniff_unavailable", error))
        return mime

    def _pass(self, data: bytes) -> list[MemberEvent]:
        if self._tail_bytes:
            self._tail += data
            if len(self._tail) > 2 * self._tail_bytes:
                del self._tail[: len(self._tail) - self._tail_bytes]
        if self._zip is not None:
            return self._counted(self._zip.feed(data))
        if self._analyser is not None:
            self._analyser.feed(data)
        if self._opener is not None and self._opening:
            return self._counted(self._opener.feed(data))
        return []

    def _counted(self, events: list[MemberEvent]) -> list[MemberEvent]:
        for event in events:
            if isinstance(event, MemberStart) and not event.is_dir:
                self._members += 1
        return events if self._opening else []

    def _fingerprint(self, file_type: FileType | None, verdict: Encryption) -> Fingerprint:
        entropy = self._hist.entropy()
        type_id = file_type.id if file_type is not None else None
        container = None
        if file_type is not None and (file_type.opener or file_type.analyser in ("7z", "rar")):
            container = file_type.id
        refined = None
        try:
            if self._zip is not None:
                refined = self._zip.document_type()
            elif self._cfb is not None:
                refined = self._cfb.document_type()
        except Exception as exc:  # see _guard
            self._break(exc)
        if refined is not None and refined in self._table.types:
            type_id = refined
            self.mime_type = self._table.types[refined].mime
        undecided = None
        if self._size == 0:
            verdict, undecided = UNDECIDED, "short"
            type_id = None
        elif file_type is None:
            if looks_random(entropy, self._hist.chi_square(), self._size):
                if self._size >= HIGH_ENTROPY_MIN_BYTES:
                    verdict, undecided = Encryption(None, HIGH_ENTROPY), "high-entropy"
                else:
                    verdict, undecided = UNDECIDED, "short"
        elif verdict.encrypted is None:
            undecided = "damaged"
        members = verdict.members
        opened = file_type is not None and file_type.opener is not None
        if members is None and container is not None and opened and self._members:
            members = self._members
        return Fingerprint(
            type=type_id,
            # A member at any depth is encrypted: here, the container's own entries (the
            # caller adds members that are themselves encrypted objects).
            contains_encrypted=bool(verdict.encrypted_members),
            encrypted=verdict.encrypted,
            encryption=verdict.scheme,
            entropy=entropy,
            container=container,
            members=members,
            hides_names=verdict.hides_names,
            partial=verdict.partial,
            undecided=undecided,
            detail=verdict.detail,
        )
