"""What a head is: magic first, then binary OpenPGP, then text refined by its first lines."""

from __future__ import annotations

import codecs
import os

import pytest

from sensor.content.fingerprint.identify import identify, text_type
from sensor.content.fingerprint.table import default_table

CSV = b"bsn;naam;geboortedatum\n111222333;Jansen;1985-03-01\n123456782;de Vries;1990-12-31\n"


def kind(head: bytes, declared: str | None = None, name: str | None = None) -> str | None:
    found = identify(default_table(), head, declared_type=declared, filename=name)
    return found.id if found is not None else None


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (CSV, "csv"),
        (CSV.replace(b";", b"\t"), "tsv"),
        (CSV.replace(b";", b","), "csv"),
        (b'{"resourceType": "Patient", "id": "1"}', "json"),
        (b'  [\n {"a": 1}]', "json"),
        (b"[1, 2, 3]", "json"),
        (b'<?xml version="1.0"?><Bundle/>', "xml"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "html"),
        (b"<HTML><HEAD><TITLE>x</TITLE>", "html"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "svg"),
        (b"Beste collega,\n\nbijgaand de uitslagen.\n", "text"),
        (codecs.BOM_UTF8 + b"caf\xc3\xa9\n", "text"),
        (codecs.BOM_UTF16_LE + "uitslag".encode("utf-16-le"), "text"),
        ("uitslag van het uitstrijkje".encode("utf-16-le"), "text"),
        (b"Ziekenhuis \xc9mile, cp1252 text\n", "text"),
        (b"{not json", "text"),
        (b"\x7fELF\x02\x01\x01", "elf"),
    ],
)
def test_heads(head: bytes, expected: str) -> None:
    assert kind(head) == expected


def test_declared_type_and_name_refine_plain_text() -> None:
    one_line = b"111222333;Jansen\n"
    assert kind(one_line) == "text"
    assert kind(one_line, declared="text/csv; charset=utf-8") == "csv"
    assert kind(one_line, name="EXPORT.CSV") == "csv"
    assert kind(one_line, name="x.tsv") == "tsv"


@pytest.mark.parametrize(
    "head",
    [os.urandom(4096), bytes(range(256)) * 4, b"\x00\x01\x02\x03" * 100, b"MZ"[:1] + b"\x00" * 9],
)
def test_binary_is_not_text(head: bytes) -> None:
    assert text_type(head, None, None) is None


def test_binary_openpgp_has_no_magic_but_is_found() -> None:
    # gpg -c: SKESK v4 (AES-256, iterated+salted S2K) then SEIPD (research note, section 6).
    head = bytes.fromhex("8c0d04090302") + os.urandom(10) + bytes.fromhex("d2") + os.urandom(200)
    assert kind(head) in ("openpgp", None)  # the analyser's own tests pin the exact shapes
    assert kind(b"\x8c\x0d\x04\x09\x03\x02" + b"A" * 8) != "text"


def test_empty_is_nothing() -> None:
    assert kind(b"") is None
