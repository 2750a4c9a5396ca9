"""Fingerprint stage: the file-type signature table, data from `signatures/filetypes.toml`
(STYLE.md habit 10: data, not code, validated on load).

File format (see the file's own header for every key)::

    id = "sluice-file-types"
    version = 1

    [[type]]
    id = "webp"                                   # unique, [a-z0-9][a-z0-9-]*
    mime = "image/webp"
    magic = [[{at = 0, ascii = "RIFF"}, {at = 8, ascii = "WEBP"}]]   # alternatives of AND-lists
    refines = "zip"                               # instead of magic: one of REFINABLE
    analyser = "zip"                              # optional, one of ANALYSERS
    opener = "zip"                                # optional, one of OPENERS
    compressed = true                             # optional
    text = false                                  # optional

A file that breaks any rule raises `FileTypeError` naming the file, the entry and the rule.
`parse_file_types` is pure; `load_file_types(path)` reads the file (at start-up, by the
runtime; tests and library users get the source tree's copy from `default_table()`).

Matching (`FileTypeTable.match`) is a dictionary look-up on the first byte for magic at offset
0 (longest signature first), then the few signatures at other offsets: a handful of byte
comparisons per object, where libmagic parsed its whole rule set.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor.config.signatures import parse_signatures_toml, read_signatures_file

FILE_NAME = "filetypes.toml"
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "signatures" / FILE_NAME

# The code a type may name (sensor/content/fingerprint/__init__.py builds them).
ANALYSERS = frozenset(
    {"zip", "7z", "rar", "openpgp", "openpgp-armored", "age", "age-armored", "openssl",
     "openssl-base64", "luks", "pdf", "cfb"}
)  # fmt: skip
OPENERS = frozenset({"zip", "gzip", "bzip2", "xz", "zstd", "tar"})
# A signature may test bytes up to this offset: the head the fingerprint keeps is larger.
MAX_MAGIC_END = 4096

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_TYPE_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_TOP_KEYS = {"id", "version", "description", "type"}
_TYPE_KEYS = {
    "id", "mime", "magic", "refines", "analyser", "opener", "compressed", "text", "description"
}  # fmt: skip
# What a magic-less type may refine (identify.py decides these from structure).
REFINABLE = frozenset({"zip", "cfb", "text", "binary"})


class FileTypeError(ValueError):
    """A file-type table is unusable; the message names the file, the entry and the rule."""


@dataclass(frozen=True, slots=True)
class FileType:
    id: str
    mime: str
    analyser: str | None = None
    opener: str | None = None
    compressed: bool = False
    text: bool = False


# One alternative: every (offset, bytes) must match.
Signature = tuple[tuple[int, bytes], ...]


class FileTypeTable:
    """Leading-byte look-up of a file type."""

    __slots__ = ("_by_first", "_elsewhere", "id", "types", "version")

    def __init__(
        self,
        table_id: str,
        version: int,
        entries: list[tuple[FileType, Signature]],
        types: dict[str, FileType] | None = None,
    ) -> None:
        self.id = table_id
        self.version = version
        self.types = types if types is not None else {t.id: t for t, _ in entries}
        by_first: dict[int, list[tuple[Signature, FileType]]] = {}
        elsewhere: list[tuple[Signature, FileType]] = []
        for file_type, signature in entries:
            first = signature[0]
            if first[0] == 0:
                by_first.setdefault(first[1][0], []).append((signature, file_type))
            else:
                elsewhere.append((signature, file_type))
        # Longest first, so that "Rar!\x1a\x07\x01\x00" wins over "Rar!\x1a\x07\x00"-like
        # prefixes and a specific RIFF subtype over another.
        for candidates in by_first.values():
            candidates.sort(key=lambda c: -sum(len(b) for _, b in c[0]))
        self._by_first = by_first
        # Signatures at other offsets (tar at 257, ISO-BMFF at 4, DICOM at 128), keyed by the
        # slice their first test reads: one dictionary look-up per distinct slice.
        at_offsets: dict[tuple[int, int], dict[bytes, list[tuple[Signature, FileType]]]] = {}
        for signature, file_type in elsewhere:
            at, value = signature[0]
            slot = at_offsets.setdefault((at, len(value)), {})
            slot.setdefault(value, []).append((signature, file_type))
        self._elsewhere = sorted(at_offsets.items())

    def __len__(self) -> int:
        return len(self.types)

    def match(self, head: bytes) -> FileType | None:
        if not head:
            return None
        for signature, file_type in self._by_first.get(head[0], ()):
            if all(head.startswith(value, at) for at, value in signature):
                return file_type
        for (at, length), by_value in self._elsewhere:
            for signature, file_type in by_value.get(head[at : at + length], ()):
                if all(head.startswith(value, at) for at, value in signature):
                    return file_type
        return None


def parse_file_types(text: str, source: str = "<filetypes>") -> FileTypeTable:
    return parse_signatures_toml(text, source, _build, FileTypeError)


def load_file_types(
    path: str | Path | None = None,
    *,
    signatures: str | Path | None = None,
    origin: str = "--signatures",
) -> FileTypeTable:
    """`path` names the file itself; without it the file comes from the signatures directory
    (`signatures`, the operator's, else the default search)."""
    text, source = read_signatures_file(
        FILE_NAME, path, signatures, origin, FileTypeError, "file-type table"
    )
    return parse_file_types(text, source)


@functools.cache
def default_table() -> FileTypeTable:
    """The source tree's table (tests, library use); the runtime loads its own at start-up."""
    return load_file_types(DEFAULT_PATH)


def _build(raw: dict[str, Any]) -> FileTypeTable:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise FileTypeError(f"unknown top-level key {sorted(unknown)[0]!r}")
    table_id = raw.get("id")
    if not isinstance(table_id, str) or not _ID.fullmatch(table_id):
        raise FileTypeError("id must be a string of [a-z0-9_.-], e.g. 'sluice-file-types'")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FileTypeError("version must be an integer >= 1")
    types = raw.get("type")
    if not isinstance(types, list) or not types:
        raise FileTypeError("no [[type]] entries")
    entries: list[tuple[FileType, Signature]] = []
    seen: dict[str, FileType] = {}
    types_by_id: dict[str, FileType] = {}
    for n, entry in enumerate(types, 1):
        where = f"[[type]] #{n}"
        if not isinstance(entry, dict):
            raise FileTypeError(f"{where}: must be a table")
        if isinstance(entry.get("id"), str):
            where += f" ({entry['id']})"
        file_type = _type(entry, where)
        if file_type.id in seen:
            raise FileTypeError(f"{where}: duplicate id {file_type.id!r}")
        seen[file_type.id] = file_type
        types_by_id[file_type.id] = file_type
        magic = entry.get("magic")
        refines = entry.get("refines")
        if refines is not None:
            if magic is not None:
                raise FileTypeError(f"{where}: give magic or refines, not both")
            if refines not in REFINABLE:
                raise FileTypeError(f"{where}: refines must be one of {sorted(REFINABLE)}")
            continue
        if not isinstance(magic, list) or not magic:
            raise FileTypeError(f"{where}: magic must be a non-empty list of alternatives")
        for k, alternative in enumerate(magic, 1):
            entries.append((file_type, _signature(alternative, f"{where} magic #{k}")))
    return FileTypeTable(table_id, version, entries, types_by_id)


def _type(entry: dict[str, Any], where: str) -> FileType:
    unknown = set(entry) - _TYPE_KEYS
    if unknown:
        raise FileTypeError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    type_id, mime = entry.get("id"), entry.get("mime")
    if not isinstance(type_id, str) or not _TYPE_ID.fullmatch(type_id):
        raise FileTypeError(f"{where}: id must be a string of [a-z0-9-]")
    if not isinstance(mime, str) or not _MIME.fullmatch(mime):
        raise FileTypeError(f"{where}: mime must be a media type like 'application/zip'")
    analyser, opener = entry.get("analyser"), entry.get("opener")
    if analyser is not None and analyser not in ANALYSERS:
        raise FileTypeError(f"{where}: analyser {analyser!r} is not one of {sorted(ANALYSERS)}")
    if opener is not None and opener not in OPENERS:
        raise FileTypeError(f"{where}: opener {opener!r} is not one of {sorted(OPENERS)}")
    flags = {}
    for key in ("compressed", "text"):
        value = entry.get(key, False)
        if not isinstance(value, bool):
            raise FileTypeError(f"{where}: {key} must be true or false")
        flags[key] = value
    return FileType(type_id, mime, analyser, opener, flags["compressed"], flags["text"])


def _signature(alternative: Any, where: str) -> Signature:
    if not isinstance(alternative, list) or not alternative:
        raise FileTypeError(f"{where}: must be a non-empty list of {{at, hex|ascii}} tests")
    tests: list[tuple[int, bytes]] = []
    for test in alternative:
        if not isinstance(test, dict) or set(test) - {"at", "hex", "ascii"}:
            raise FileTypeError(f"{where}: each test is {{at = N, hex = '..'}} or ascii")
        at = test.get("at")
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise FileTypeError(f"{where}: at must be an offset >= 0")
        if ("hex" in test) == ("ascii" in test):
            raise FileTypeError(f"{where}: give exactly one of hex and ascii")
        try:
            value = bytes.fromhex(test["hex"]) if "hex" in test else test["ascii"].encode("latin-1")
        except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
            raise FileTypeError(f"{where}: bad hex or non-latin-1 ascii value") from None
        if not value:
            raise FileTypeError(f"{where}: empty magic")
        if at + len(value) > MAX_MAGIC_END:
            raise FileTypeError(f"{where}: magic ends past byte {MAX_MAGIC_END}")
        tests.append((at, value))
    # The dictionary look-up keys on the first test: put an offset-0 test first when there is one.
    tests.sort(key=lambda t: t[0])
    return tuple(tests)
