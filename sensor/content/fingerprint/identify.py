"""Fingerprint stage: what an object is, from its first bytes.

In: the object's head (its first `HEAD_BYTES`, fewer for a short object), its declared type and
file name. Out: a `FileType` of the signature table (sensor/content/fingerprint/table.py), or
None when nothing here knows it (the caller then asks libmagic, off the hot path).

Order: the table's magic; then binary OpenPGP, which has no magic and is recognised by the
shape of its first packets; then text, refined into CSV/TSV, JSON, XML, HTML or SVG from the
first lines. Text is decided on bytes only: no NUL (UTF-16 is recognised by its BOM or by NULs
at every other byte), almost no C0 control characters.
"""

from __future__ import annotations

import codecs

from sensor.content.fingerprint.openpgp import looks_like_openpgp
from sensor.content.fingerprint.table import FileType, FileTypeTable

HEAD_BYTES = 8192  # what identification looks at (and what the object keeps for it)
TEXT_SAMPLE = 4096  # bytes of the head the text tests read
# C0 control bytes other than whitespace (TAB LF VT FF CR) and ESC: a text file has almost none.
_CONTROLS = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_CONTROLS_MAX = 0.01  # share of control bytes above which a head is binary
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
         codecs.BOM_UTF16_BE)  # fmt: skip
_DELIMITERS = (b"\t", b";", b",", b"|")
_CSV_LINES = 20  # lines of the head a delimiter must be consistent in
_HTML_MARKS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<title", b"<div")
_CSV_NAMES = (".csv",)
_TSV_NAMES = (".tsv", ".tab")


def identify(
    table: FileTypeTable,
    head: bytes,
    *,
    declared_type: str | None = None,
    filename: str | None = None,
) -> FileType | None:
    """The type of an object whose first bytes are `head`, or None (unknown binary)."""
    found = table.match(head)
    if found is not None:
        return found
    if looks_like_openpgp(head):
        return table.types.get("openpgp")
    text = text_type(head, declared_type, filename)
    return table.types.get(text) if text is not None else None


def text_type(head: bytes, declared_type: str | None, filename: str | None) -> str | None:
    """ "text", "csv", "tsv", "json", "xml", "html" or "svg" for a text head, else None."""
    sample = head[:TEXT_SAMPLE]
    if not sample:
        return None
    bom = next((b for b in _BOMS if sample.startswith(b)), None)
    if bom is not None and bom not in (codecs.BOM_UTF8,):
        return _refine_declared(declared_type, filename) or "text"
    if b"\x00" in sample:
        if not _utf16_without_bom(sample):
            return None
        return _refine_declared(declared_type, filename) or "text"
    body = sample[len(bom) :] if bom else sample
    controls = len(body) - len(body.translate(None, _CONTROLS))
    if controls > _CONTROLS_MAX * len(body):
        return None
    return _refine(body) or _refine_declared(declared_type, filename) or _csv(body) or "text"


def _utf16_without_bom(sample: bytes) -> bool:
    """ASCII-range UTF-16: NUL in (almost) every other byte, and nowhere else."""
    even, odd = sample[0::2], sample[1::2]
    n = len(odd)
    if n < 8:
        return False
    return (odd.count(0) > 0.9 * n and even.count(0) < 0.1 * n) or (
        even.count(0) > 0.9 * n and odd.count(0) < 0.1 * n
    )


def _refine(body: bytes) -> str | None:
    start = body.lstrip()[:1024]
    if not start:
        return None
    first = start[:1]
    if first in (b"{", b"["):
        rest = start[1:].lstrip()[:1]
        if rest in (b'"', b"{", b"[", b"]", b"}") or rest.isdigit() or rest == b"-":
            return "json"
        return None
    if first == b"<":
        lower = start.lower()
        if b"<svg" in lower:
            return "svg"
        if any(mark in lower for mark in _HTML_MARKS):
            return "html"
        if lower.startswith(b"<?xml") or lower.startswith(b"<!--") or lower[1:2].isalpha():
            return "xml"
    return None


def _refine_declared(declared_type: str | None, filename: str | None) -> str | None:
    declared = (declared_type or "").partition(";")[0].strip().lower()
    name = (filename or "").lower()
    if declared == "text/csv" or name.endswith(_CSV_NAMES):
        return "csv"
    if declared == "text/tab-separated-values" or name.endswith(_TSV_NAMES):
        return "tsv"
    return None


def _csv(body: bytes) -> str | None:
    """ "csv"/"tsv" when one delimiter splits the first lines into the same number of fields
    (at least two lines, at least two fields), else None."""
    lines = body.split(b"\n", _CSV_LINES + 1)[:_CSV_LINES]
    if len(lines) > 2 and not body.endswith(b"\n"):
        lines = lines[:-1]  # the last line is cut by the head
    lines = [line for line in lines if line.strip()]
    if len(lines) < 2:
        return None
    for delimiter in _DELIMITERS:
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return "tsv" if delimiter == b"\t" else "csv"
    return None
