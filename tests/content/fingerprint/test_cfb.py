"""CFB analyser: an agile-encrypted docx made by msoffcrypto-tool, and compound files built here
byte-exactly from MS-CFB (checked with olefile) holding standard/extensible EncryptionInfo,
legacy Word/Excel encryption flags, PowerPoint, Outlook msg and MSI markers; fed whole, byte by
byte, split at every offset or at random offsets; truncations, gaps, decoys, arbitrary bytes."""

from __future__ import annotations

import io
import os
import struct
import zipfile

import olefile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msoffcrypto.format.ooxml import OOXMLFile

from sensor.content.fingerprint.base import Encryption
from sensor.content.fingerprint.cfb import CfbAnalyser

FREE, END, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
MSI_CLSID = bytes([0x84, 0x10, 0x0C, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46])


def build_cfb(
    streams: list[tuple[str, bytes]],
    *,
    shift: int = 9,
    directory_first: bool = False,
    root_clsid: bytes = bytes(16),
) -> bytes:
    """A compound file (MS-CFB 2.2-2.6) with `streams` under the root. Streams under 4096 bytes
    go to the mini stream (2.4), the rest get regular sectors."""
    size = 1 << shift
    mini = [(n, d) for n, d in streams if len(d) < 4096]
    regular = [(n, d) for n, d in streams if len(d) >= 4096]

    ministream = bytearray()
    minifat: list[int] = []
    mini_start: dict[str, int] = {}
    for name, data in mini:
        first = len(ministream) // 64
        count = max(1, -(-len(data) // 64))
        mini_start[name] = first if data else END
        minifat += [first + i + 1 for i in range(count - 1)] + [END]
        ministream += data.ljust(count * 64, b"\0")

    entries = [("Root Entry", 5)] + [(n, 2) for n, _ in streams]
    dir_bytes_len = -(-len(entries) * 128 // size) * size
    pieces: list[tuple[str, bytes]] = []  # (label, sector-padded bytes) in file order
    directory_piece = ("dir", bytes(dir_bytes_len))
    if directory_first:
        pieces.append(directory_piece)
    for name, data in regular:
        pieces.append((name, data.ljust(-(-len(data) // size) * size, b"\0")))
    if ministream:
        pieces.append(
            ("ministream", bytes(ministream).ljust(-(-len(ministream) // size) * size, b"\0"))
        )
        minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
        pieces.append(
            ("minifat", minifat_bytes.ljust(-(-len(minifat_bytes) // size) * size, b"\xff"))
        )
    if not directory_first:
        pieces.append(directory_piece)

    data_sectors = sum(len(p) // size for _, p in pieces)
    n_fat = 1
    while n_fat * size // 4 < data_sectors + n_fat:
        n_fat += 1
    fat = [FATSECT] * n_fat
    starts: dict[str, int] = {}
    for label, piece in pieces:
        count = len(piece) // size
        starts[label] = len(fat)
        fat += [len(fat) + i + 1 for i in range(count - 1)] + [END]
    fat += [FREE] * (n_fat * size // 4 - len(fat))

    def entry(name: str, kind: int, start: int, length: int, clsid: bytes = bytes(16)) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (
            encoded.ljust(64, b"\0")
            + struct.pack("<HBB", len(encoded), kind, 1)
            + struct.pack("<III", FREE, FREE, FREE)
            + clsid
            + bytes(4 + 16)
            + struct.pack("<IQ", start, length)
        )

    raw_entries = []
    for index, (name, kind) in enumerate(entries):
        if kind == 5:
            start = starts.get("ministream", END)
            blob = entry(name, 5, start, len(ministream), root_clsid)
            blob = blob[:76] + struct.pack("<I", 1) + blob[80:]  # child: the first stream
        else:
            data = dict(streams)[name]
            start = mini_start[name] if len(data) < 4096 else starts[name]
            blob = entry(name, 2, start, len(data))
            if index + 1 < len(entries):
                blob = blob[:72] + struct.pack("<I", index + 1) + blob[76:]  # right sibling
        raw_entries.append(blob)
    directory = b"".join(raw_entries).ljust(dir_bytes_len, b"\0")
    body = b"".join(directory if label == "dir" else piece for label, piece in pieces)

    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3 if shift == 9 else 4, 0xFFFE, shift, 6)
        + bytes(6)
        + struct.pack("<II", 0 if shift == 9 else dir_bytes_len // size, n_fat)
        + struct.pack("<II", starts["dir"], 0)
        + struct.pack("<I", 4096)
        + struct.pack("<II", starts.get("minifat", END), 1 if ministream else 0)
        + struct.pack("<II", END, 0)
        + b"".join(struct.pack("<I", i) for i in range(n_fat))
    ).ljust(512, b"\xff")
    header = header.ljust(size, b"\0")
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    out = header + fat_bytes + body
    ole = olefile.OleFileIO(out)  # the builder's files must be valid compound files
    assert sorted(ole.listdir()) == sorted([[n] for n, _ in streams])
    for name, data in streams:
        assert ole.openstream(name).read() == data
    return out


def verdict(
    data: bytes, chunks: list[bytes] | None = None, complete: bool = True
) -> tuple[Encryption, str | None]:
    analyser = CfbAnalyser()
    for chunk in [data] if chunks is None else chunks:
        analyser.feed(chunk)
    return analyser.finish(b"", len(data), complete), analyser.document_type()


def same_in_every_split(data: bytes, every: int = 1) -> tuple[Encryption, str | None]:
    whole = verdict(data)
    assert verdict(data, [data[i : i + 1] for i in range(len(data))]) == whole
    for cut in range(0, len(data) + 1, every):
        assert verdict(data, [data[:cut], data[cut:]]) == whole, cut
    return whole


def minimal_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<w:document>cervical screening</w:document>")
    return buffer.getvalue()


def test_msoffcrypto_agile_docx() -> None:
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(minimal_docx())).encrypt("x", encrypted)
    data = encrypted.getvalue()
    result, kind = same_in_every_split(data)
    assert result == Encryption(True, "office-agile", detail="EncryptionInfo 4.4")
    assert kind == "office-encrypted"
    # EncryptionInfo sits in the mini stream past its first sector: with the FAT entry that
    # leads there broken, the agile header is still known by its content.
    root_start = struct.unpack_from("<I", data, data.index("Root Entry".encode("utf-16-le")) + 116)[
        0
    ]
    broken = bytearray(data)
    broken[512 + 4 * root_start : 512 + 4 * root_start + 4] = struct.pack("<I", FREE)
    assert verdict(bytes(broken)) == (
        Encryption(True, "office-agile", detail="EncryptionInfo 4.4 (by content)"),
        "office-encrypted",
    )


def encryption_info(major: int, minor: int) -> bytes:
    # MS-OFFCRYPTO 2.3.4.5: version, flags (fCryptoAPI | fAES), header size, EncryptionHeader.
    csp = "Microsoft Enhanced RSA and AES Cryptographic Provider\0".encode("utf-16-le")
    header = struct.pack("<IIIIIIII", 0x24, 0, 0x660E, 0x8004, 128, 0x18, 0, 0) + csp
    verifier = struct.pack("<I", 16) + os.urandom(16 + 16) + struct.pack("<I", 20) + os.urandom(32)
    return struct.pack("<HHII", major, minor, 0x24, len(header)) + header + verifier


def encrypted_ooxml(major: int, minor: int, **layout: object) -> bytes:
    package = struct.pack("<Q", 9000) + os.urandom(9008)
    return build_cfb(
        [("EncryptionInfo", encryption_info(major, minor)), ("EncryptedPackage", package)],
        **layout,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("major", "minor", "scheme"),
    [
        (3, 2, "office-standard"),
        (4, 2, "office-standard"),
        (2, 2, "office-standard"),
        (3, 3, "office-extensible"),
        (4, 3, "office-extensible"),
    ],
)
def test_standard_and_extensible(major: int, minor: int, scheme: str) -> None:
    data = encrypted_ooxml(major, minor)
    expected = (
        Encryption(True, scheme, detail=f"EncryptionInfo {major}.{minor}"),
        "office-encrypted",
    )
    assert same_in_every_split(data, every=3) == expected
    assert verdict(encrypted_ooxml(major, minor, directory_first=True)) == expected
    assert verdict(encrypted_ooxml(major, minor, shift=12)) == expected


def test_encryption_info_not_located() -> None:
    data = bytearray(encrypted_ooxml(4, 2))
    info = encryption_info(4, 2)
    at = bytes(data).index(info[:16])
    data[at : at + 4] = b"\x09\x00\x09\x00"  # not a version: its first bytes are unknown
    result, kind = verdict(bytes(data))
    assert result == Encryption(True, None, detail="EncryptionInfo version unknown")
    assert kind == "office-encrypted"


def word_document(flags: int) -> bytes:
    # MS-DOC 2.5.2 FibBase: wIdent, nFib, unused, lid, pnNext, flags (fEncrypted 0x0100).
    return struct.pack("<HHHHHH", 0xA5EC, 0x00C1, 0, 0x0409, 0, flags) + os.urandom(5000)


def workbook(filepass: int | None) -> bytes:
    bof = struct.pack("<HH", 0x0809, 16) + struct.pack("<HHHHII", 0x0600, 5, 0x0DBB, 0x07CC, 0, 6)
    records = bof
    if filepass is not None:
        records += struct.pack("<HHH", 0x002F, 54, filepass) + os.urandom(52)
    return records + struct.pack("<HH", 0x0042, 2) + b"\xe4\x04"


@pytest.mark.parametrize(
    ("streams", "expected", "kind"),
    [
        (
            [("WordDocument", word_document(0x1200)), ("1Table", os.urandom(900))],
            Encryption(False),
            "doc",
        ),
        (
            [("WordDocument", word_document(0x0300)), ("1Table", os.urandom(900))],
            Encryption(True, "office-rc4", detail="WordDocument fEncrypted"),
            "doc",
        ),
        (
            [("WordDocument", word_document(0x8100))],
            Encryption(True, "office-xor", detail="WordDocument fEncrypted"),
            "doc",
        ),
        ([("Workbook", workbook(None))], Encryption(False), "xls"),
        (
            [("Workbook", workbook(1))],
            Encryption(True, "office-rc4", detail="Workbook FilePass"),
            "xls",
        ),
        (
            [("Book", workbook(0) + os.urandom(5000))],
            Encryption(True, "office-xor", detail="Workbook FilePass"),
            "xls",
        ),
        (
            [("PowerPoint Document", os.urandom(5000)), ("Current User", os.urandom(60))],
            Encryption(False),
            "ppt",
        ),
        (
            [("PowerPoint Document", os.urandom(300)), ("EncryptedSummary", os.urandom(60))],
            Encryption(True, "office-rc4", detail="EncryptedSummary stream"),
            "ppt",
        ),
        (
            [
                ("__substg1.0_0037001F", "Subject".encode("utf-16-le")),
                ("__properties_version1.0", bytes(32)),
            ],
            Encryption(False),
            "msg",
        ),
        ([("SummaryInformation", os.urandom(200))], Encryption(False), None),
    ],
)
def test_legacy_documents(
    streams: list[tuple[str, bytes]], expected: Encryption, kind: str | None
) -> None:
    data = build_cfb(streams)
    assert same_in_every_split(data, every=5) == (expected, kind)


def test_msi() -> None:
    data = build_cfb([("\u4840\u3b3f", os.urandom(100))], root_clsid=MSI_CLSID)
    assert same_in_every_split(data) == (Encryption(False), "msi")


def test_truncated_gapped_and_damaged() -> None:
    data = encrypted_ooxml(4, 2)
    directory_at = len(data) - 512
    for cut in range(0, directory_at, 64):
        assert verdict(data[:cut], complete=False)[0].encrypted is None, cut
    plain = build_cfb([("WordDocument", word_document(0))])
    assert verdict(plain[:-600], complete=False)[0].encrypted is None
    analyser = CfbAnalyser()
    analyser.feed(data[:1000])
    analyser.gap(333)
    analyser.feed(data[1333:])
    assert analyser.finish(b"", len(data), True).encrypted is True  # the directory came after
    analyser = CfbAnalyser()
    analyser.feed(plain[:1000])
    analyser.gap(333)
    analyser.feed(plain[1333:])
    assert analyser.finish(b"", len(plain), True).encrypted is None
    analyser = CfbAnalyser()
    analyser.feed(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    assert analyser.finish(b"", 0, True).encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["cfb_bad_header"]


def test_fat_beyond_the_header_difat() -> None:
    data = bytearray(build_cfb([("WordDocument", word_document(0))]))
    data[0x2C:0x30] = struct.pack("<I", 200)
    analyser = CfbAnalyser()
    analyser.feed(bytes(data))
    assert analyser.finish(b"", 0, True).encrypted is False
    assert [a.kind for a in analyser.anomalies] == ["cfb_fat_cap"]


def test_name_decoys_in_stream_data() -> None:
    decoy = ("EncryptedPackage\0").encode("utf-16-le")
    # Unaligned, and aligned with a wrong name length field: neither is a directory entry.
    payload = (b"x" + decoy).ljust(128, b"\0") + decoy.ljust(64, b"\0") + b"\x10\x00\x02\x01"
    data = build_cfb([("WordDocument", word_document(0) + payload.ljust(4096, b"\0"))])
    assert verdict(data) == (Encryption(False), "doc")


BIG = build_cfb(
    [
        ("EncryptionInfo", b"\x04\x00\x04\x00\x40\x00\x00\x00<?xml?>" + bytes(5000)),
        ("EncryptedPackage", os.urandom(150_000)),
        ("\x06DataSpaces", os.urandom(300)),
    ]
)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, len(BIG)), max_size=15))
def test_random_splits(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [BIG[a:b] for a, b in zip([0, *points], [*points, len(BIG)], strict=True)]
    assert verdict(BIG, chunks) == (
        Encryption(True, "office-agile", detail="EncryptionInfo 4.4"),
        "office-encrypted",
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000), st.integers(0, 700))
def test_arbitrary_bytes_never_raise(data: bytes, cut: int, gap: int) -> None:
    head = build_cfb([("EncryptionInfo", encryption_info(4, 2))])[:512]
    for sample in (data, head + data, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + data):
        analyser = CfbAnalyser()
        analyser.feed(sample[:cut])
        analyser.gap(gap)
        analyser.feed(sample[cut:])
        assert analyser.finish(b"", 0, True).encrypted in (True, False, None)
        assert analyser.document_type() in (
            None,
            "office-encrypted",
            "doc",
            "xls",
            "ppt",
            "msg",
            "msi",
        )
