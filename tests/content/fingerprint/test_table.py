"""The file-type signature table: the shipped file loads, matches, and bad files are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.content.fingerprint.table import (
    ANALYSERS,
    OPENERS,
    FileTypeError,
    default_table,
    load_file_types,
    parse_file_types,
)

GOOD = """
id = "t"
version = 1
[[type]]
id = "zip"
mime = "application/zip"
magic = [[{at = 0, hex = "504b0304"}]]
"""


def test_the_shipped_table_loads_and_names_only_known_code() -> None:
    table = default_table()
    assert table.id == "sluice-file-types" and table.version >= 1
    assert len(table) >= 40
    for file_type in table.types.values():
        assert file_type.analyser is None or file_type.analyser in ANALYSERS
        assert file_type.opener is None or file_type.opener in OPENERS


@pytest.mark.parametrize(
    ("head", "type_id"),
    [
        (b"PK\x03\x04\x14\x00", "zip"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
        (b"Rar!\x1a\x07\x00\xcf", "rar4"),
        (b"Rar!\x1a\x07\x01\x00", "rar5"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"BZh91AY&SY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x00" * 257 + b"ustar\x0000", "tar"),
        (b"\x00" * 257 + b"ustar  \x00", "tar"),
        (b"age-encryption.org/v1\n-> X25519", "age"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "age-armored"),
        (b"Salted__12345678", "openssl-enc"),
        (b"U2FsdGVkX1+abc", "openssl-enc-base64"),
        (b"LUKS\xba\xbe\x00\x02", "luks"),
        (b"-----BEGIN PGP MESSAGE-----\n", "openpgp-armored"),
        (b"-----BEGIN PGP SIGNED MESSAGE-----\n", "openpgp-signed"),
        (b"%PDF-1.7\n", "pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "cfb"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"\x00\x00\x00\x18ftypmp42", "mp4"),
        (b"{\\rtf1\\ansi", "rtf"),
    ],
)
def test_magic_matches(head: bytes, type_id: str) -> None:
    found = default_table().match(head)
    assert found is not None and found.id == type_id


@pytest.mark.parametrize("head", [b"", b"PK", b"hello world", b"\x00" * 300, b"RIFF\x00\x00"])
def test_no_match(head: bytes) -> None:
    assert default_table().match(head) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("id = 1", "id must be"),
        (GOOD.replace("version = 1", "version = 0"), "version must be"),
        (GOOD + "[[type]]\nid='zip'\nmime='a/b'\nmagic=[[{at=0,hex='00'}]]\n", "duplicate id"),
        (GOOD.replace('hex = "504b0304"', 'hex = "zz"'), "bad hex"),
        (GOOD.replace("at = 0", "at = -1"), "offset"),
        (GOOD.replace("at = 0", "at = 5000"), "past byte"),
        (GOOD.replace('mime = "application/zip"', 'mime = "zip"'), "media type"),
        (GOOD + 'analyser = "unrar"\n', "analyser 'unrar'"),
        (GOOD + 'opener = "cpio"\n', "opener 'cpio'"),
        (GOOD + 'refines = "zip"\n', "magic or refines"),
        (GOOD + "compressed = 1\n", "compressed must be"),
        (GOOD + "colour = 1\n", "unknown key 'colour'"),
        (GOOD.replace('magic = [[{at = 0, hex = "504b0304"}]]', "magic = []"), "magic must"),
        ("id = [", "not valid TOML"),
    ],
)
def test_a_broken_table_is_a_clear_error_naming_the_entry(text: str, says: str) -> None:
    with pytest.raises(FileTypeError, match=r"t\.toml") as error:
        parse_file_types(text, "t.toml")
    assert says in str(error.value)
    if "[[type]]" in text and says not in ("not valid TOML", "id must be", "version must be"):
        assert "#1" in str(error.value) or "#2" in str(error.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileTypeError, match="no such file-type table"):
        load_file_types(tmp_path / "filetypes.toml")
    with pytest.raises(FileTypeError, match=r"no filetypes\.toml"):
        load_file_types(signatures=tmp_path)


def test_the_longest_signature_wins() -> None:
    table = parse_file_types(
        GOOD
        + '[[type]]\nid = "zip-spanned"\nmime = "application/zip"\n'
        + 'magic = [[{at = 0, hex = "504b030414"}]]\n'
    )
    assert table.match(b"PK\x03\x04\x14\x00").id == "zip-spanned"  # type: ignore[union-attr]
    assert table.match(b"PK\x03\x04\x0a\x00").id == "zip"  # type: ignore[union-attr]
