"""Fingerprint stage, shared values: what every format analyser, container opener and text
extractor hands back.

Three plug points, all sans-IO and streaming (one instance per object, bytes fed in order):

- `Analyser`: reads one object of one known format (ZIP, 7z, RAR, OpenPGP, PDF, CFB, ...) and,
  at the end, says whether and how it is encrypted (`Encryption`). It sees every byte once, in
  order (`feed`), learns of lost bytes (`gap`) and gets the object's last `tail_bytes` bytes at
  `finish` for formats whose directory sits at the end (ZIP central directory, 7z header, PDF
  trailer).
- `Opener`: turns a container's bytes into its members as they stream: `MemberStart`, the
  member's decoded bytes (`MemberData`), `MemberEnd`. One member is open at a time, in stream
  order. Caps that depend on the whole tree (depth, member count, expanded bytes, ratio, names)
  are enforced by the caller (sensor/content/objects.py), which sees every member event; an
  opener enforces only what its own format needs (its buffers) and reports damage as anomalies.
- `TextExtractor`: hands out the text inside an object as `TextChunk`s with their position,
  for the classification stage.

No analyser, opener or extractor raises on hostile input: damage is an anomaly (the `anomalies`
list every one of them has, drained by the caller) and a verdict of `encrypted=None` or an
incomplete member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sensor.anomaly import Anomaly


@dataclass(frozen=True, slots=True)
class Encryption:
    """An analyser's verdict on one object.

    encrypted: True (the format says so), False (the format says it is not), None (too short
    or too damaged to tell).
    scheme: the scheme named as the format names it, lower-case with dashes, e.g.
    "zip-pkware", "zip-aes-256", "zip-strong", "7z-aes-256", "rar5-aes-256", "rar4-aes-128",
    "openpgp-symmetric", "openpgp-public-key", "age-x25519", "age-scrypt", "openssl-enc",
    "pdf-aes-256", "pdf-rc4-128", "office-agile", "office-standard", "luks2".
    hides_names: the member names themselves are encrypted (7z -mhe, RAR encrypted headers).
    partial: a container with some members encrypted and some not.
    members: entries the container lists (ZIP central directory, 7z header, RAR headers seen),
    None where the format does not say or the listing was not reached.
    encrypted_members: how many of them are encrypted (None: unknown).
    detail: short free text for humans (key length, KDF, "central directory disagrees with
    local headers"); never payload.
    """

    encrypted: bool | None
    scheme: str | None = None
    hides_names: bool = False
    partial: bool = False
    members: int | None = None
    encrypted_members: int | None = None
    detail: str | None = None


UNDECIDED = Encryption(None)
PLAIN = Encryption(False)


class Analyser(Protocol):
    """Reads one object of a known format as it streams (see the module docstring)."""

    # How many of the object's last bytes `finish` needs (0: none). The caller keeps a ring
    # of that size; the ZIP central directory or a 7z header longer than it is not read, and
    # the verdict says so in `detail`.
    tail_bytes: int
    anomalies: list[Anomaly]

    def feed(self, data: bytes) -> None: ...

    def gap(self, size: int) -> None: ...

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption: ...


@dataclass(frozen=True, slots=True)
class MemberStart:
    """A container member begins. `name` is the raw name as the container spells it (decoded
    with errors="replace"; for single-stream compressors the gzip FNAME or None). `size` is
    the declared uncompressed size when the container states one (it may lie). `encrypted`:
    the member's data is encrypted; no MemberData follows, only its MemberEnd. `scheme` names
    that encryption (as in Encryption.scheme)."""

    name: str | None
    size: int | None = None
    encrypted: bool = False
    scheme: str | None = None
    is_dir: bool = False
    compressed_size: int | None = None


@dataclass(frozen=True, slots=True)
class MemberData:
    data: bytes


@dataclass(frozen=True, slots=True)
class MemberEnd:
    """The member is over. complete=False: the container was cut off or damaged inside it
    (never guessed); `missing` says how many bytes are known to be lost where it is known."""

    complete: bool
    missing: int = 0


MemberEvent = MemberStart | MemberData | MemberEnd


class Opener(Protocol):
    """Streams a container's members out of its bytes (see the module docstring)."""

    anomalies: list[Anomaly]

    def feed(self, data: bytes) -> list[MemberEvent]: ...

    def gap(self, size: int) -> list[MemberEvent]: ...

    def finish(self, complete: bool) -> list[MemberEvent]:
        """The container's bytes are over (complete=False: cut off). A member still open ends
        incomplete."""
        ...


@dataclass(frozen=True, slots=True)
class TextPosition:
    """Where a text chunk sits in its object. `offset` is the character offset of the chunk
    in the object's extracted text; the rest is set where the format has it."""

    offset: int
    part: str | None = None  # the container member or document part (word/document.xml)
    sheet: str | None = None  # spreadsheet sheet name or index
    row: int | None = None  # 1-based row (CSV/TSV, spreadsheet)
    column: int | None = None  # 1-based column
    page: int | None = None  # PDF page / slide number, where known


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str
    position: TextPosition
    header: str | None = None  # the column header of a table cell (CSV/TSV/XLSX), where known


class TextExtractor(Protocol):
    """The text inside one object, as it streams, in bounded chunks."""

    anomalies: list[Anomaly]

    def feed(self, data: bytes) -> list[TextChunk]: ...

    def finish(self) -> list[TextChunk]: ...
