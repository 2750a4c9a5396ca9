"""Exact data match (EDM): are these the organisation's own patient records?

Stage: classification. In: validated candidates from the text of one object (a BSN, a date,
a postcode, a name ...) with their character position and, where the format has one, their
table row. Out: how many distinct known records the object holds (primary identifier plus at
least one corroborating field of the same record nearby), the "approximate number of data
subjects" of a GDPR Art. 33 notification (issue 13 item 6).

Theory of operation (research note section 3.2, Purview's EDM in 3.1):
- `sluice edm load` reads the export once on a trusted host and normalises every field the
  way the sensor will normalise what it sees (`normalise_value`).
- A record is keyed by the keyed hash of its primary (h_p = H("edm-primary", bsn)). Its
  corroborating fields are stored only as pairs H("edm-field:<name>", hex(h_p) + value): a
  birth date or a postcode is never hashed alone (36,000 dates are brute-forced instantly,
  even with a key, by anyone who can query), and a pair means nothing without the key.
- Rows sharing a primary are one record (one person with several results).
- The index file: a header, then two sorted arrays of 16-byte hashes, each followed by a
  bucket table (uint32 offsets by the hash's top k bits, about one hash a bucket). The
  record id is the position of its primary hash in the sorted array. A lookup is one keyed
  hash, two integers read and one 16-byte compare in a memory map: O(1), about 2 us.
- Matching (`EdmWindow`): a primary hit alone is only "primary seen" (Purview gives it
  confidence 65); it becomes a match when a corroborating field of the same record is seen in
  the same table row or within `window` characters (Purview's patternsProximity 300).

No clear value is ever written: the index holds hashes, counts and field names only.

File layout (little-endian integers):
    0   8s  magic b"SLUICEDM"
    8   H   format version (1)
    10  H   reserved (0)
    12  I   header length L
    16  L   header: JSON, space-padded to a multiple of 16
    ... records * 16 bytes  sorted primary hashes
    ... (2**primary_bits + 1) * 4 bytes  bucket table of the primary hashes
    ... pairs * 16 bytes    sorted pair hashes
    ... (2**pair_bits + 1) * 4 bytes  bucket table of the pair hashes
The header's `body` is the BLAKE2b-128 of everything after it (checked on open).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import mmap
import os
import re
import secrets
import struct
import unicodedata
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np
from stdnum.nl import bsn as stdnum_bsn

from sensor.classify.secret import (
    DOMAIN_EDM_FIELD,
    DOMAIN_EDM_PRIMARY,
    HASH_SIZE,
    key_id,
    keyed_hasher,
)

MAGIC = b"SLUICEDM"
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sHHI")
MAX_HEADER = 64 * 1024  # bytes of JSON header: field names and counts only
MAX_FIELDS = 32  # corroborating fields a record may have
MAX_BUCKET_BITS = 26  # bucket tables up to 256 MiB of offsets (> 67 M hashes)
MAX_RECORDS = 2**32 - 1  # record ids and bucket offsets are uint32
INDEX_FILE = "edm.idx"  # inside --index DIR
DEFAULT_INDEX_DIR = "/var/lib/sluice"
CSV_DELIMITERS = ";,\t|"  # tried in this order of preference on the header line
CSV_ENCODINGS = ("utf-8-sig", "cp1252")  # Excel's Dutch exports are one of these
MAX_CSV_FIELD = 1024 * 1024  # characters in one CSV cell
PAIR_SEPARATOR = "\x1f"  # between the primary's hash and a field's value in a pair

DEFAULT_WINDOW = 300  # characters between primary and corroborator (Purview's proximity)
MAX_PENDING = 256  # candidates an EdmWindow remembers while waiting for their partner
MAX_DATE_CACHE = 65536  # distinct date strings remembered by the normaliser (~36k real DOBs)

KINDS = ("bsn", "date", "postcode", "name", "generic")
_KIND_BY_NAME: tuple[tuple[str, str], ...] = (
    # Column names of Dutch and English exports, by the kind of value they hold. A substring
    # match, first hit wins: "geboortedatum" is a date, "achternaam" a name.
    ("bsn", "bsn"),
    ("burgerservicenummer", "bsn"),
    ("sofi", "bsn"),
    ("postcode", "postcode"),
    ("zip", "postcode"),
    ("datum", "date"),
    ("date", "date"),
    ("dob", "date"),
    ("naam", "name"),
    ("name", "name"),
    ("tussenvoegsel", "name"),
    ("voorletters", "name"),
    ("initials", "name"),
    ("woonplaats", "name"),
    ("plaats", "name"),
    ("city", "name"),
    ("straat", "name"),
    ("street", "name"),
)


class EdmError(Exception):
    """A bad index file, a bad export or a bad argument: one clear line, never a value."""


# --- normalisation: exactly the same at load time and on the wire --------------------------

_BSN_SEPARATORS = re.compile(r"[\s.\-]+")
_NOT_WORD = re.compile(r"[\W_]+")
_POSTCODE_NOISE = re.compile(r"[\s\-]+")
_NL_POSTCODE = re.compile(r"[1-9][0-9]{3}[A-Z]{2}")
_DATE_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ][0-9:.+\-Z ]*)?")
_DATE_DMY = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?: [0-9:.]*)?")
_DATE_DIGITS = re.compile(r"\d{8}")
_DATE_TEXT = re.compile(r"(\d{1,2})[\s.\-]*([^\W\d_]+)\.?[\s.\-]*(\d{4})")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("januari", "jan", "january"),
            ("februari", "feb", "february"),
            ("maart", "mrt", "mar", "march"),
            ("april", "apr"),
            ("mei", "may"),
            ("juni", "jun", "june"),
            ("juli", "jul", "july"),
            ("augustus", "aug", "august"),
            ("september", "sep", "sept"),
            ("oktober", "okt", "oct", "october"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
MIN_YEAR = 1850  # a date of birth or of a result, not a version number
MAX_YEAR = 2199


def normalise_bsn(value: str) -> str | None:
    """Nine digits passing the elfproef (8-digit legacy numbers zero-padded), else None."""
    digits = _BSN_SEPARATORS.sub("", value)
    if not 8 <= len(digits) <= 9 or not digits.isdigit() or not digits.isascii():
        return None
    digits = digits.zfill(9)
    # stdnum's checksum() on digits already checked here: its is_valid() would clean and
    # check them again, at three times the cost (4 us against 1.3 us a value).
    if digits == "000000000" or stdnum_bsn.checksum(digits) != 0:
        return None
    return digits


def _iso(year: int, month: int, day: int) -> str | None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        return None


@lru_cache(maxsize=MAX_DATE_CACHE)
def normalise_date(value: str) -> str | None:
    """ISO YYYY-MM-DD from the formats Dutch and ISO exports use: 1985-03-01, 01-03-1985,
    1/3/1985, 01.03.1985, 19850301, 1 maart 1985, 01-mrt-1985 (day first, never US order)."""
    text = value.strip()
    if match := _DATE_ISO.fullmatch(text):
        return _iso(int(match[1]), int(match[2]), int(match[3]))
    if match := _DATE_DMY.fullmatch(text):
        return _iso(int(match[3]), int(match[2]), int(match[1]))
    if _DATE_DIGITS.fullmatch(text):
        # YYYYMMDD (HL7 v2, most databases) first; DDMMYYYY when that is no date.
        return _iso(int(text[:4]), int(text[4:6]), int(text[6:])) or _iso(
            int(text[4:]), int(text[2:4]), int(text[:2])
        )
    if (match := _DATE_TEXT.fullmatch(text)) and (month := _MONTHS.get(match[2].casefold())):
        return _iso(int(match[3]), month, int(match[1]))
    return None


def normalise_postcode(value: str) -> str | None:
    """Upper case without spaces: "2511 cv" -> "2511CV"; a Dutch one loses an "NL" prefix."""
    text = _POSTCODE_NOISE.sub("", value.upper())
    if text.startswith("NL") and _NL_POSTCODE.fullmatch(text, 2):
        return text[2:]
    return text or None


def normalise_name(value: str) -> str | None:
    """Accents, case, punctuation and spaces removed: "De  Vries", "de Vries", "DE VRIES" and
    "de-Vriës" are all "devries" (NFKD splits the accent off as a mark, which is no word
    character)."""
    text = _NOT_WORD.sub("", unicodedata.normalize("NFKD", value).casefold())
    return text or None


def normalise_generic(value: str) -> str | None:
    text = " ".join(value.casefold().split())
    return text or None


NORMALISERS: Mapping[str, Callable[[str], str | None]] = {
    "bsn": normalise_bsn,
    "date": normalise_date,
    "postcode": normalise_postcode,
    "name": normalise_name,
    "generic": normalise_generic,
}


def field_kind(name: str) -> str:
    """The kind of value a column holds, from its name (see _KIND_BY_NAME), else generic."""
    folded = name.casefold()
    for part, kind in _KIND_BY_NAME:
        if part in folded:
            return kind
    return "generic"


def normalise_value(kind: str, value: str) -> str | None:
    return NORMALISERS[kind](value)


# --- building -----------------------------------------------------------------------------


@dataclass(slots=True)
class EdmLoadStats:
    """What a load did, in counts only."""

    rows: int = 0
    records: int = 0
    invalid_primary: int = 0  # rows skipped: no valid primary (a BSN failing the elfproef)
    merged: int = 0  # rows whose primary an earlier row had: one record
    pairs: int = 0  # distinct (record, field, value) pairs indexed
    missing: dict[str, int] = field(default_factory=dict)  # per field: rows without a value
    index_bytes: int = 0


@dataclass(slots=True)
class _FieldSpec:
    name: str
    column: int
    normalise: Callable[[str], str | None]
    hasher: Callable[[str], bytes]


class EdmBuilder:
    """Collects records (sans-IO) and writes the index file once: `add()` per row, then
    `write(path)`. Memory: 16 bytes per record and per (record, field) pair, sorted in
    numpy at the end."""

    def __init__(
        self,
        key: bytes,
        primary: str,
        fields: Sequence[str],
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.key = key
        self.primary = primary
        self.fields = tuple(fields)
        if not self.fields:
            raise EdmError("EDM needs at least one corroborating field")
        if len(self.fields) > MAX_FIELDS:
            raise EdmError(f"at most {MAX_FIELDS} corroborating fields")
        if len(set(self.fields) | {primary}) != len(self.fields) + 1:
            raise EdmError("the primary and the fields must be distinct columns")
        chosen = dict(kinds or {})
        unknown = [kind for kind in chosen.values() if kind not in KINDS]
        if unknown:
            raise EdmError(f"unknown field kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
        self.kinds = {name: chosen.get(name) or field_kind(name) for name in (primary, *fields)}
        self.stats = EdmLoadStats(missing=dict.fromkeys(self.fields, 0))
        self._primary_norm = NORMALISERS[self.kinds[primary]]
        self._primary_hash = keyed_hasher(key, DOMAIN_EDM_PRIMARY)
        self._specs = [
            _FieldSpec(
                name,
                column,
                NORMALISERS[self.kinds[name]],
                keyed_hasher(key, DOMAIN_EDM_FIELD + name.encode()),
            )
            for column, name in enumerate(self.fields)
        ]
        self._primaries = bytearray()
        self._pairs = bytearray()

    def add(self, primary: str, values: Sequence[str]) -> bool:
        """One row: the primary's value and the fields' values in `fields` order (missing
        ones empty). False when the primary is not valid (the row is counted and skipped)."""
        stats = self.stats
        stats.rows += 1
        normal = self._primary_norm(primary)
        if normal is None:
            stats.invalid_primary += 1
            return False
        digest = self._primary_hash(normal)
        self._primaries += digest
        anchor = digest.hex() + PAIR_SEPARATOR
        count = len(values)
        for spec in self._specs:
            value = values[spec.column] if spec.column < count else ""
            normal = spec.normalise(value) if value else None
            if normal is None:
                stats.missing[spec.name] += 1
                continue
            self._pairs += spec.hasher(anchor + normal)
        return True

    def write(self, path: str | os.PathLike[str]) -> EdmLoadStats:
        """Sort, deduplicate and write the index atomically (a temporary file in the same
        directory, fsynced, renamed over the old one), mode 0600."""
        primaries, primary_bits, primary_table = _sorted_table(self._primaries)
        pairs, pair_bits, pair_table = _sorted_table(self._pairs)
        # The sorted copies are all that is needed now; the builder is done.
        self._primaries = bytearray()
        self._pairs = bytearray()
        records = len(primaries) // HASH_SIZE
        if records > MAX_RECORDS:
            raise EdmError(f"more than {MAX_RECORDS} records")
        stats = self.stats
        stats.records = records
        stats.merged = stats.rows - stats.invalid_primary - records
        stats.pairs = len(pairs) // HASH_SIZE
        body = (primaries, primary_table, pairs, pair_table)
        check = hashlib.blake2b(digest_size=HASH_SIZE)
        for part in body:
            check.update(part)
        header = {
            "format": "sluice-edm",
            "version": FORMAT_VERSION,
            "key_id": key_id(self.key),
            "primary": self.primary,
            "fields": list(self.fields),
            "kinds": self.kinds,
            "records": records,
            "pairs": stats.pairs,
            "primary_bits": primary_bits,
            "pair_bits": pair_bits,
            "rows": stats.rows,
            "invalid_primary": stats.invalid_primary,
            "merged": stats.merged,
            "missing": stats.missing,
            "body": check.hexdigest(),
        }
        text = json.dumps(header, sort_keys=True).encode()
        text += b" " * (-len(text) % 16)
        if len(text) > MAX_HEADER:
            raise EdmError("too many or too long field names for the index header")
        prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(text))
        stats.index_bytes = write_private_atomic(Path(path), (prefix, text, *body))
        return stats


def _sorted_table(digests: bytearray) -> tuple[memoryview, int, bytes]:
    """The distinct 16-byte digests in byte order, the bucket bits and the bucket table.
    Temporary arrays are dropped as soon as they are used: a million records with three
    fields sort in about 250 MB."""
    if not digests:
        return memoryview(b""), 0, np.array([0, 0], dtype="<u4").tobytes()
    raw = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    high = raw[:, 0].astype(np.uint64)
    low = raw[:, 1].astype(np.uint64)
    order = np.lexsort((low, high))  # byte order of the digests = (high, low) order
    high = high[order]
    low = low[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    del low
    order = order[keep]
    high = high[keep]
    del keep
    rows = np.ascontiguousarray(raw[order])
    del order
    count = len(rows)
    bits = min(MAX_BUCKET_BITS, max(0, count.bit_length() - 1))  # 1-2 digests a bucket
    if bits == 0:
        table = np.array([0, count], dtype="<u4")
    else:
        buckets = high >> np.uint64(64 - bits)
        table = np.searchsorted(buckets, np.arange(2**bits + 1, dtype=np.uint64)).astype("<u4")
    return rows.data.cast("B"), bits, table.tobytes()


def write_private_atomic(path: Path, parts: Iterable[bytes | memoryview]) -> int:
    """Write `parts` to `path` so that readers see the old file or the whole new one, never
    a part: mode 0600 whatever the umask. Returns the size."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    size = 0
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(os.dup(fd), "wb") as stream:
                for part in parts:
                    stream.write(part)
                    size += len(part)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size


# --- the CSV export -----------------------------------------------------------------------


def _sniff_delimiter(line: str) -> str:
    counts = [(line.count(candidate), -rank) for rank, candidate in enumerate(CSV_DELIMITERS)]
    best = max(range(len(CSV_DELIMITERS)), key=lambda i: counts[i])
    return CSV_DELIMITERS[best]


def _column(header: Sequence[str], name: str, source: Path) -> int:
    folded = [cell.strip().casefold() for cell in header]
    try:
        return folded.index(name.strip().casefold())
    except ValueError:
        # The first line is not printed: without a header it is a patient's record.
        raise EdmError(
            f"{source}: no column named {name!r} in the first line ({len(header)} columns)"
        ) from None


def _read_csv(
    source: Path, stream: IO[str], builder: EdmBuilder, primary: str, fields: Sequence[str]
) -> None:
    first = stream.readline()
    delimiter = _sniff_delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter), [])
    primary_column = _column(header, primary, source)
    columns = [_column(header, name, source) for name in fields]
    reader = csv.reader(stream, delimiter=delimiter)
    add = builder.add
    try:
        for row in reader:
            count = len(row)
            if not count or (count == 1 and not row[0].strip()):
                continue  # blank line
            primary_value = row[primary_column] if primary_column < count else ""
            add(primary_value, [row[c] if c < count else "" for c in columns])
    except csv.Error as exc:
        raise EdmError(f"{source}: line {reader.line_num}: {exc}") from None


def load_csv(
    source: str | os.PathLike[str],
    index: str | os.PathLike[str],
    key: bytes,
    primary: str,
    fields: Sequence[str],
    kinds: Mapping[str, str] | None = None,
) -> EdmLoadStats:
    """Build the index file `index` from a CSV export (`;`, `,`, tab or `|` separated, with a
    header line; UTF-8 with or without BOM, else Windows-1252)."""
    path = Path(source)
    names = [name.strip().casefold() for name in fields]
    primary = primary.strip().casefold()
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        for encoding in CSV_ENCODINGS:
            builder = EdmBuilder(key, primary, names, kinds)
            try:
                with path.open(encoding=encoding, newline="") as stream:
                    _read_csv(path, stream, builder, primary, names)
                break
            except UnicodeDecodeError:
                continue  # the next encoding, from the start
        else:  # pragma: no cover - cp1252 decodes all but five byte values
            raise EdmError(f"{path}: neither UTF-8 nor Windows-1252 text")
    except OSError as exc:
        raise EdmError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        csv.field_size_limit(limit)
    if builder.stats.rows == builder.stats.invalid_primary:
        raise EdmError(
            f"{path}: no row has a valid {primary} ({builder.stats.rows} rows); nothing written"
        )
    return builder.write(index)


# --- lookups ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    start: int  # offset of the first hash
    count: int
    bits: int
    table: int  # offset of the bucket table

    @property
    def end(self) -> int:
        return self.table + (2**self.bits + 1) * 4


def _find(view: mmap.mmap, table: _Table, digest: bytes) -> int:
    """Position of `digest` in a sorted hash array, or -1. Its top `bits` bits pick a bucket
    of one or two hashes: O(1)."""
    if not table.count:
        return -1
    bucket = int.from_bytes(digest[:8], "big") >> (64 - table.bits) if table.bits else 0
    low, high = struct.unpack_from("<II", view, table.table + 4 * bucket)
    offset = table.start + low * HASH_SIZE
    for position in range(low, high):
        if view[offset : offset + HASH_SIZE] == digest:
            return position
        offset += HASH_SIZE
    return -1


def _header_int(header: Mapping[str, Any], name: str, limit: int) -> int:
    value = header.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(name)
    return value


class EdmIndex:
    """An index file, memory-mapped read-only. Open once per sensor; share it."""

    fields: tuple[str, ...]
    primary_field: str  # the column name (the API's `primary` is the lookup method)
    records: int
    pairs: int
    kinds: dict[str, str]
    header: dict[str, Any]

    def __init__(self, path: Path, view: mmap.mmap, header: dict[str, Any], key: bytes) -> None:
        self.path = path
        self._view = view
        self.header = header
        self.primary_field = header["primary"]
        self.fields = tuple(header["fields"])
        self.kinds = dict(header["kinds"])
        self.records = header["records"]
        self.pairs = header["pairs"]
        body = PREFIX.size + header["_length"]
        self._primaries = _Table(
            body, self.records, header["primary_bits"], body + self.records * HASH_SIZE
        )
        start = self._primaries.end
        self._pair_table = _Table(
            start, self.pairs, header["pair_bits"], start + self.pairs * HASH_SIZE
        )
        self._primary_norm = NORMALISERS[self.kinds[self.primary_field]]
        self._primary_hash = keyed_hasher(key, DOMAIN_EDM_PRIMARY)
        self._pair_hash = {
            name: keyed_hasher(key, DOMAIN_EDM_FIELD + name.encode()) for name in self.fields
        }

    @classmethod
    def open(cls, path: str | os.PathLike[str], key: bytes, verify: bool = True) -> EdmIndex:
        """Open and check an index: its format, its size, its key (another key would find
        nothing, so it is an error) and, with `verify`, the checksum of its body."""
        where = Path(path)
        try:
            with where.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                if size < PREFIX.size:
                    raise EdmError(f"{where}: not an EDM index (too short)")
                view = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise EdmError(f"{where}: cannot open the EDM index: {exc.strerror or exc}") from None
        try:
            header = _check(where, view, size, key, verify)
        except BaseException:
            view.close()
            raise
        return cls(where, view, header, key)

    def close(self) -> None:
        self._view.close()

    def __enter__(self) -> EdmIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def normalise(self, field: str, value: str) -> str | None:
        """`value` normalised the way the load normalised column `field` (the primary or a
        corroborating field), or None when it cannot be one."""
        kind = self.kinds.get(field)
        return None if kind is None else NORMALISERS[kind](value)

    def primary(self, value: str) -> int | None:
        """The record id of the record whose primary is `value` (after normalisation)."""
        normal = self._primary_norm(value)
        return None if normal is None else self.primary_normalised(normal)

    def primary_normalised(self, normal: str) -> int | None:
        position = _find(self._view, self._primaries, self._primary_hash(normal))
        return None if position < 0 else position

    def corroborates(self, record: int, field: str, value: str) -> bool:
        """Does record `record` have `value` in column `field`?"""
        normal = self.normalise(field, value)
        return normal is not None and self.corroborates_normalised(record, field, normal)

    def corroborates_normalised(self, record: int, field: str, normal: str) -> bool:
        hasher = self._pair_hash.get(field)
        if hasher is None or not 0 <= record < self.records:
            return False
        start = self._primaries.start + record * HASH_SIZE
        anchor = self._view[start : start + HASH_SIZE].hex()
        return _find(self._view, self._pair_table, hasher(anchor + PAIR_SEPARATOR + normal)) >= 0


def _check(path: Path, view: mmap.mmap, size: int, key: bytes, verify: bool) -> dict[str, Any]:
    magic, version, _reserved, length = PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise EdmError(f"{path}: not an EDM index (written by `sluice edm load`)")
    if version != FORMAT_VERSION:
        raise EdmError(f"{path}: EDM index format {version}, this sensor reads {FORMAT_VERSION}")
    if length > MAX_HEADER or PREFIX.size + length > size:
        raise EdmError(f"{path}: the EDM index is truncated or damaged (header)")
    try:
        header = json.loads(view[PREFIX.size : PREFIX.size + length])
        if not isinstance(header, dict):
            raise ValueError("header")
        records = _header_int(header, "records", MAX_RECORDS)
        pairs = _header_int(header, "pairs", MAX_RECORDS * MAX_FIELDS)
        primary_bits = _header_int(header, "primary_bits", MAX_BUCKET_BITS)
        pair_bits = _header_int(header, "pair_bits", MAX_BUCKET_BITS)
        fields = header.get("fields")
        kinds = header.get("kinds")
        if not (
            isinstance(header.get("primary"), str)
            and isinstance(fields, list)
            and 0 < len(fields) <= MAX_FIELDS
            and all(isinstance(name, str) for name in fields)
            and isinstance(kinds, dict)
            and all(kinds.get(name) in KINDS for name in [header["primary"], *fields])
            and isinstance(header.get("key_id"), str)
            and isinstance(header.get("body"), str)
        ):
            raise ValueError("fields")
    except ValueError:  # also JSON and UTF-8 errors
        raise EdmError(f"{path}: the EDM index is truncated or damaged (header)") from None
    body = PREFIX.size + length
    expected = body + (records + pairs) * HASH_SIZE + (2**primary_bits + 2**pair_bits + 2) * 4
    if size != expected:
        raise EdmError(
            f"{path}: the EDM index is truncated or damaged ({size} bytes, expected {expected})"
        )
    if header["key_id"] != key_id(key):
        raise EdmError(
            f"{path}: the EDM index was built with another secret key (key id "
            f"{header['key_id']}); load the export again with this sensor's key"
        )
    if verify:
        check = hashlib.blake2b(digest_size=HASH_SIZE)
        with memoryview(view) as whole:
            check.update(whole[body:])
        if check.hexdigest() != header["body"]:
            raise EdmError(f"{path}: the EDM index is damaged (checksum mismatch)")
    header["_length"] = length
    return header


# --- matching one object ------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    position: int
    row: Hashable | None
    fields: tuple[str, ...]  # the corroborating fields this value may belong to
    normal: str


@dataclass(slots=True)
class _Primary:
    position: int
    row: Hashable | None
    record: int


def _near(window: int, position: int, row: Hashable | None, other: _Candidate | _Primary) -> bool:
    """Two values of one table row, else of one window of text. Values in two different rows
    never corroborate each other, however close: the next row is another person."""
    if row is not None and other.row is not None:
        return row == other.row
    return abs(position - other.position) <= window


class EdmWindow:
    """The known records one object holds. Feed validated candidates in text order:
    `feed(kind, value, position, row)`; `kind` is a field kind ("bsn", "date", "postcode",
    "name", "generic") or a column name of the index (a CSV header says exactly which column
    a cell is). A record counts as matched when its primary and at least one of its
    corroborating fields are in the same `row` (any hashable: the caller's (part, sheet,
    row)) or, when either is not in a row, within `window` characters of each other.

    Memory: MAX_PENDING candidates of each side plus two bitmaps of `records` bits (125 kB
    for a million records), made on the first primary hit."""

    __slots__ = (
        "_by_kind",
        "_corroborators",
        "_matched",
        "_primaries",
        "_seen",
        "index",
        "matched",
        "primaries_seen",
        "window",
    )

    def __init__(self, index: EdmIndex, window: int = DEFAULT_WINDOW) -> None:
        self.index = index
        self.window = window
        self.matched = 0  # distinct records with primary + a corroborating field
        self.primaries_seen = 0  # distinct records whose primary was seen
        self._seen: bytearray | None = None
        self._matched: bytearray | None = None
        self._primaries: deque[_Primary] = deque(maxlen=MAX_PENDING)
        self._corroborators: deque[_Candidate] = deque(maxlen=MAX_PENDING)
        by_kind: dict[str, tuple[str, ...]] = {}
        for name in index.fields:
            by_kind[name] = (name,)
            kind = index.kinds[name]
            by_kind[kind] = (*by_kind.get(kind, ()), name)
        self._by_kind = by_kind

    @property
    def primary_only(self) -> int:
        """Distinct records whose primary was seen with no corroborating field near it."""
        return self.primaries_seen - self.matched

    def matched_records(self) -> list[int]:
        """The matched record ids (for counting distinct records per host over time)."""
        if self._matched is None:
            return []
        bits = np.unpackbits(np.frombuffer(self._matched, dtype=np.uint8), bitorder="little")
        return [int(record) for record in np.flatnonzero(bits)]

    def feed(self, kind: str, value: str, position: int, row: Hashable | None = None) -> None:
        index = self.index
        window = self.window
        self._forget(position, row)
        if kind in (index.primary_field, index.kinds[index.primary_field]):
            record = index.primary(value)
            if record is not None:
                self._primary(record, position, row)
        fields = self._by_kind.get(kind)
        if not fields:
            return
        normal = index.normalise(fields[0], value)  # fields of one kind share a normaliser
        if normal is None:
            return
        candidate = _Candidate(position, row, fields, normal)
        for primary in self._primaries:
            if (
                _near(window, position, row, primary)
                and not self._is_matched(primary.record)
                and self._corroborated(primary.record, candidate)
            ):
                self._mark_matched(primary.record)
        self._corroborators.append(candidate)

    def _primary(self, record: int, position: int, row: Hashable | None) -> None:
        if self._seen is None:
            size = (self.index.records + 7) // 8
            self._seen = bytearray(size)
            self._matched = bytearray(size)
        byte, bit = divmod(record, 8)
        if not self._seen[byte] & (1 << bit):
            self._seen[byte] |= 1 << bit
            self.primaries_seen += 1
        if self._is_matched(record):
            return
        for candidate in self._corroborators:
            if _near(self.window, position, row, candidate) and self._corroborated(
                record, candidate
            ):
                self._mark_matched(record)
                return
        self._primaries.append(_Primary(position, row, record))

    def _corroborated(self, record: int, candidate: _Candidate) -> bool:
        corroborates = self.index.corroborates_normalised
        return any(corroborates(record, name, candidate.normal) for name in candidate.fields)

    def _is_matched(self, record: int) -> bool:
        return self._matched is not None and bool(self._matched[record >> 3] & (1 << (record & 7)))

    def _mark_matched(self, record: int) -> None:
        assert self._matched is not None  # a primary was seen first
        self._matched[record >> 3] |= 1 << (record & 7)
        self.matched += 1

    def _forget(self, position: int, row: Hashable | None) -> None:
        """Drop what lies more than `window` behind, unless it shares the current row."""
        horizon = position - self.window
        for pending in (self._primaries, self._corroborators):
            while (
                pending
                and pending[0].position < horizon
                and (pending[0].row is None or pending[0].row != row)
            ):
                pending.popleft()
