"""Tests for the streaming ZIP reader (sensor/content/fingerprint/zip.py).

Samples are made here by real writers: stdlib `zipfile` (stored, deflate, bzip2, LZMA, data
descriptors through a non-seekable stream, zip64), `pyzipper` (WinZip AES) and Info-ZIP
`zip -P` (traditional PKWARE encryption, with data descriptors when writing to a pipe).
Member bytes are checked against `zipfile`'s `read()`.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
import pyzipper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Encryption, MemberData, MemberEnd, MemberStart
from sensor.content.fingerprint.zip import (
    BUFFER_CAP,
    DECODE_BLOCK,
    NAME_CAP,
    PIECE,
    TAIL_BYTES,
    ZipReader,
)

# ----- helpers ---------------------------------------------------------------------------------


@dataclass
class Result:
    events: list[tuple[object, ...]]  # MemberData merged per member: chunking does not show
    verdict: Encryption
    kinds: list[str]
    reader: ZipReader


def _norm(events: Iterable[object]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, MemberData):
            assert 0 < len(e.data) <= PIECE
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + e.data)  # type: ignore[operator]
            else:
                out.append(("data", e.data))
        elif isinstance(e, MemberStart):
            out.append(("start", e))
        else:
            assert isinstance(e, MemberEnd)
            out.append(("end", e.complete, e.missing))
    return out


def run(
    data: bytes,
    pieces: Sequence[bytes] | None = None,
    *,
    open_members: bool = True,
    complete: bool = True,
) -> Result:
    r = ZipReader(open_members=open_members)
    events: list[object] = []
    for p in [data] if pieces is None else pieces:
        events += r.feed(p)
        assert len(r._buf) <= BUFFER_CAP
    events += r.finish(complete)
    v = r.verdict(data[-r.tail_bytes :], len(data), complete)
    return Result(_norm(events), v, [a.kind for a in r.anomalies], r)


def members(res: Result) -> list[tuple[str | None, bytes, bool]]:
    """(name, data, complete) per member."""
    out: list[tuple[str | None, bytes, bool]] = []
    name: str | None = None
    data = b""
    for ev in res.events:
        if ev[0] == "start":
            start = ev[1]
            assert isinstance(start, MemberStart)
            name, data = start.name, b""
        elif ev[0] == "data":
            data += ev[1]  # type: ignore[operator]
        else:
            out.append((name, data, bool(ev[1])))
    return out


def starts(res: Result) -> list[MemberStart]:
    return [ev[1] for ev in res.events if ev[0] == "start"]  # type: ignore[misc]


def splits_two(data: bytes) -> Iterable[list[bytes]]:
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_pieces(data: bytes, rng: random.Random, most: int = 700) -> list[bytes]:
    out = []
    i = 0
    while i < len(data):
        n = rng.randint(1, most)
        out.append(data[i : i + n])
        i += n
    return out


class NonSeekable(io.RawIOBase):
    """A write-only stream without seek: zipfile then writes data descriptors (bit 3)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.buf += b
        return len(b)


def make_zip(
    files: Sequence[tuple[str, bytes, int]], *, seekable: bool = True, zip64: bool = False
) -> bytes:
    sink: io.BytesIO | NonSeekable = io.BytesIO() if seekable else NonSeekable()
    with zipfile.ZipFile(sink, "w") as z:
        for name, data, method in files:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            if zip64 or not seekable:
                with z.open(info, "w", force_zip64=zip64) as w:
                    w.write(data)
            else:
                z.writestr(info, data)
    return sink.getvalue() if isinstance(sink, io.BytesIO) else bytes(sink.buf)


def zipfile_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def aes_zip(
    files: Sequence[tuple[str, bytes]], nbits: int, *, seekable: bool = True, method: int = 8
) -> bytes:
    sink: io.BytesIO | NonSeekable = io.BytesIO() if seekable else NonSeekable()
    with pyzipper.AESZipFile(sink, "w", compression=method, encryption=pyzipper.WZ_AES) as z:
        z.setpassword(b"correct horse")
        z.setencryption(pyzipper.WZ_AES, nbits=nbits)
        for name, data in files:
            z.writestr(name, data)
    return sink.getvalue() if isinstance(sink, io.BytesIO) else bytes(sink.buf)


TEXT = b"".join(b"patient %d, BSN 1112223%02d, Utrecht\n" % (i, i % 100) for i in range(400))
RANDOM = random.Random(7).randbytes(3000)

PLAIN_FILES: list[tuple[str, bytes, int]] = [
    ("a.txt", TEXT, zipfile.ZIP_DEFLATED),
    ("dir/", b"", zipfile.ZIP_STORED),
    ("dir/b.bin", RANDOM, zipfile.ZIP_STORED),
    ("empty.txt", b"", zipfile.ZIP_DEFLATED),
    ("c.bz2.txt", TEXT[:5000], zipfile.ZIP_BZIP2),
    ("d.lzma.txt", TEXT[:7000], zipfile.ZIP_LZMA),
]
SMALL_PLAIN = make_zip([("x.txt", b"hello hello hello", 8), ("y.txt", b"stored!", 0)])


@pytest.fixture(scope="module")
def infozip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Info-ZIP samples: encrypted to a file (sizes known, bit 3 kept), encrypted to a pipe
    (bit 3, sizes only in the descriptors), partial encryption."""
    d = tmp_path_factory.mktemp("infozip")
    (d / "secret.txt").write_bytes(TEXT)
    (d / "rand.bin").write_bytes(RANDOM)
    (d / "plain.txt").write_bytes(b"nothing to see\n" * 20)

    def zip_(*args: str, stdout: bool = False) -> bytes:
        p = subprocess.run(["zip", "-q", "-X", *args], cwd=d, check=True, capture_output=True)
        return p.stdout

    zip_("-P", "pw", "enc.zip", "secret.txt", "rand.bin")
    piped = zip_("-P", "pw", "-", "secret.txt", "rand.bin")
    zip_("-P", "pw", "partial.zip", "secret.txt")
    zip_("partial.zip", "plain.txt")
    zip_("-P", "pw", "small.zip", "plain.txt")
    enc = (d / "enc.zip").read_bytes()
    # Info-ZIP spools its input, so it always knows the sizes; with bit 3 set a writer may
    # leave them zero (4.4.4), which makes the reader find each entry's end by its descriptor.
    nosizes = enc
    for off in _lfh_offsets(enc):
        assert struct.unpack_from("<H", enc, off + 6)[0] & 8
        nosizes = nosizes[: off + 14] + bytes(12) + nosizes[off + 26 :]
    return {
        "enc": enc,
        "nosizes": nosizes,
        "piped": piped,
        "partial": (d / "partial.zip").read_bytes(),
        "small": (d / "small.zip").read_bytes(),
    }


# ----- plain archives: differential against zipfile -------------------------------------------


@pytest.mark.parametrize("seekable", [True, False])
@pytest.mark.parametrize("zip64", [False, True])
def test_plain_members_equal_zipfile(seekable: bool, zip64: bool) -> None:
    data = make_zip(PLAIN_FILES, seekable=seekable, zip64=zip64)
    want = zipfile_members(data)
    whole = run(data)
    assert [(n, b) for n, b, _ in members(whole)] == want
    assert all(ok for _, _, ok in members(whole))
    assert whole.kinds == []
    assert whole.verdict == Encryption(False, members=len(PLAIN_FILES), encrypted_members=0)
    st0 = starts(whole)
    assert [s.is_dir for s in st0] == [False, True, False, False, False, False]
    if seekable:
        assert [s.size for s in st0] == [len(b) for _, b in want]
    rng = random.Random(1)
    for pieces in (bytewise(data), random_pieces(data, rng), random_pieces(data, rng, 5)):
        again = run(data, pieces)
        assert again.events == whole.events
        assert again.verdict == whole.verdict
        assert again.kinds == whole.kinds


@pytest.mark.parametrize("sample", ["small_plain", "small_descriptor"])
def test_small_plain_every_split(sample: str) -> None:
    data = (
        SMALL_PLAIN
        if sample == "small_plain"
        else make_zip([("x", b"abc" * 30, 8), ("y", b"stored", 0)], seekable=False)
    )
    whole = run(data)
    assert [(n, b) for n, b, _ in members(whole)] == zipfile_members(data)
    assert whole.kinds == []
    for pieces in splits_two(data):
        res = run(data, pieces)
        assert res.events == whole.events, len(pieces[0])
        assert res.verdict == whole.verdict


def test_open_members_false_same_starts_and_ends() -> None:
    for data in (make_zip(PLAIN_FILES), make_zip(PLAIN_FILES, seekable=False)):
        opened = run(data)
        closed = run(data, open_members=False)
        assert not [e for e in closed.events if e[0] == "data"]
        assert closed.events == [e for e in opened.events if e[0] != "data"]
        assert closed.verdict == opened.verdict
        assert closed.kinds == []


def test_empty_archive_is_not_encrypted() -> None:
    data = make_zip([])
    assert len(data) == 22  # the end record only
    res = run(data)
    assert res.events == []
    assert res.verdict == Encryption(False, members=0, encrypted_members=0)
    assert res.kinds == []


def test_not_a_zip() -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 10
    res = run(data)
    assert res.events == []
    assert res.verdict.encrypted is None
    assert res.kinds == ["zip_resync"]


def test_thousand_members() -> None:
    files = [(f"f{i:04d}.txt", b"row %d\n" % i * (i % 7), i % 2 * 8) for i in range(1000)]
    data = make_zip(files)
    res = run(data, random_pieces(data, random.Random(3), 4096))
    assert [(n, b) for n, b, _ in members(res)] == zipfile_members(data)
    assert res.verdict == Encryption(False, members=1000, encrypted_members=0)
    assert res.kinds == []


def test_bomb_streams_in_bounded_pieces() -> None:
    size = 200 * 1024 * 1024
    sink = io.BytesIO()
    zero = bytes(1024 * 1024)
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("zeros.bin", "w") as w:
            for _ in range(size // len(zero)):
                w.write(zero)
        z.writestr("after.txt", b"still here")
    data = sink.getvalue()
    assert len(data) < size // 500
    r = ZipReader()
    total = 0
    biggest = 0
    tail = b""
    chunk = 16 * 1024
    for i in range(0, len(data), chunk):
        piece = data[i : i + chunk]
        out_here = 0
        for ev in r.feed(piece):
            if isinstance(ev, MemberData):
                biggest = max(biggest, len(ev.data))
                out_here += len(ev.data)
                if total < size:
                    total += len(ev.data)
                else:
                    tail += ev.data
        # deflate's ratio (1032:1) bounds one feed: its input plus the block held before it
        assert out_here <= 1032 * (len(piece) + DECODE_BLOCK) + PIECE
    r.finish(True)
    assert biggest <= PIECE
    assert total == size
    assert tail == b"still here"
    assert r.anomalies == []


def test_self_extractor_stub() -> None:
    stub = b"MZ\x90\x00" + random.Random(5).randbytes(20000)
    data = stub + make_zip(PLAIN_FILES)
    res = run(data, random_pieces(data, random.Random(2), 3000))
    assert [(n, b) for n, b, _ in members(res)] == zipfile_members(data)
    assert res.kinds == ["zip_resync"]
    assert "20004 bytes" in res.reader.anomalies[0].detail
    # the central directory's offsets do not count the stub: still matched, no disagreement
    assert res.verdict == Encryption(False, members=len(PLAIN_FILES), encrypted_members=0)


def test_concatenated_archives_both_opened() -> None:
    first = make_zip([("one.txt", b"first archive", 8)])
    second = make_zip([("two.txt", b"second archive", 8)])
    res = run(first + second)
    assert [(n, b) for n, b, _ in members(res)] == [
        ("one.txt", b"first archive"),
        ("two.txt", b"second archive"),
    ]
    assert "zip_resync" in res.kinds
    assert "zip_unlisted_members" in res.kinds  # the first archive is not in the last CD
    assert res.verdict.members == 1


def test_trailing_junk_after_end_record() -> None:
    data = SMALL_PLAIN + b"\x00" * 100
    res = run(data)
    assert [(n, b) for n, b, _ in members(res)] == zipfile_members(SMALL_PLAIN)
    assert res.kinds == []
    assert res.verdict.encrypted is False and res.verdict.members == 2


# ----- encryption ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["enc", "piped", "nosizes"])
def test_infozip_pkware(infozip: dict[str, bytes], name: str) -> None:
    data = infozip[name]
    res = run(data)
    assert [s.name for s in starts(res)] == ["secret.txt", "rand.bin"]
    if name == "nosizes":
        assert [s.compressed_size for s in starts(res)] == [None, None]
    assert all(s.encrypted and s.scheme == "zip-pkware" for s in starts(res))
    assert [e for e in res.events if e[0] == "data"] == []
    assert [e for e in res.events if e[0] == "end"] == [("end", True, 0)] * 2
    assert res.verdict == Encryption(
        True, scheme="zip-pkware", members=2, encrypted_members=2, detail=None
    )
    assert res.kinds == []
    for pieces in (bytewise(data), random_pieces(data, random.Random(4), 50)):
        assert run(data, pieces).events == res.events


def test_small_encrypted_every_split(infozip: dict[str, bytes]) -> None:
    data = infozip["small"]
    whole = run(data)
    assert whole.verdict.encrypted is True and whole.verdict.scheme == "zip-pkware"
    assert whole.kinds == []
    for pieces in splits_two(data):
        res = run(data, pieces)
        assert res.events == whole.events
        assert res.verdict == whole.verdict


def test_partial_encryption(infozip: dict[str, bytes]) -> None:
    res = run(infozip["partial"])
    assert [(s.name, s.encrypted) for s in starts(res)] == [
        ("secret.txt", True),
        ("plain.txt", False),
    ]
    assert members(res)[1] == ("plain.txt", b"nothing to see\n" * 20, True)
    v = res.verdict
    assert v.encrypted is True and v.partial is True
    assert (v.members, v.encrypted_members, v.scheme) == (2, 1, "zip-pkware")


@pytest.mark.parametrize(("nbits", "scheme"), [(128, "zip-aes-128"), (256, "zip-aes-256")])
@pytest.mark.parametrize("seekable", [True, False])
def test_pyzipper_aes(nbits: int, scheme: str, seekable: bool) -> None:
    data = aes_zip([("a.txt", TEXT), ("b.bin", RANDOM)], nbits, seekable=seekable)
    res = run(data)
    assert [(s.name, s.encrypted, s.scheme) for s in starts(res)] == [
        ("a.txt", True, scheme),
        ("b.bin", True, scheme),
    ]
    assert [e for e in res.events if e[0] == "end"] == [("end", True, 0)] * 2
    assert res.verdict == Encryption(
        True, scheme=scheme, members=2, encrypted_members=2, detail="AE-2"
    )
    assert res.kinds == []
    assert run(data, random_pieces(data, random.Random(9), 40)).events == res.events


def test_aes_stored_with_descriptors() -> None:
    data = aes_zip([("s.bin", RANDOM), ("t.txt", b"tiny")], 192, seekable=False, method=0)
    res = run(data, bytewise(data))
    assert [e for e in res.events if e[0] == "end"] == [("end", True, 0)] * 2
    assert res.verdict.scheme == "zip-aes-192" and res.verdict.encrypted_members == 2
    assert res.kinds == []


def test_mixed_schemes_name_the_strongest(infozip: dict[str, bytes]) -> None:
    # A PKWARE archive with an AES one appended, its central directory cut off: the verdict
    # comes from the local headers, which show both schemes.
    aes = aes_zip([("a.txt", TEXT)], 128)
    pk = infozip["small"]
    data = pk + aes[: aes.find(b"PK\x01\x02")]
    res = run(data, complete=False)
    assert {s.scheme for s in starts(res)} == {"zip-pkware", "zip-aes-128"}
    v = res.verdict
    assert (v.encrypted, v.scheme, v.members, v.encrypted_members) == (True, "zip-aes-128", 2, 2)
    assert v.detail is not None and "schemes: zip-pkware, zip-aes-128" in v.detail


def _lfh_offsets(data: bytes) -> list[int]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [i.header_offset for i in z.infolist()]


def _cd_offsets(data: bytes) -> list[int]:
    out = []
    i = data.find(b"PK\x01\x02")
    while i >= 0:
        out.append(i)
        i = data.find(b"PK\x01\x02", i + 1)
    return out


def _patch16(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<H", value) + data[at + 2 :]


def _patch32(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def test_lying_local_header_says_encrypted() -> None:
    data = SMALL_PLAIN
    lfh = _lfh_offsets(data)[1]
    flags = struct.unpack_from("<H", data, lfh + 6)[0]
    liar = _patch16(data, lfh + 6, flags | 1)  # local: encrypted, central: plain
    res = run(liar)
    assert starts(res)[1].encrypted is True
    assert "zip_header_mismatch" in res.kinds
    assert "y.txt" in res.reader.anomalies[res.kinds.index("zip_header_mismatch")].detail
    v = res.verdict
    assert v.encrypted is False  # the central directory is authoritative
    assert v.detail is not None and "disagrees" in v.detail


def test_lying_local_header_says_plain(infozip: dict[str, bytes]) -> None:
    data = infozip["enc"]
    lfh = _lfh_offsets(data)[1]
    flags = struct.unpack_from("<H", data, lfh + 6)[0]
    liar = _patch16(data, lfh + 6, flags & ~1)  # local: plain, central: encrypted
    res = run(liar)
    assert starts(res)[1].encrypted is False
    assert "zip_header_mismatch" in res.kinds
    v = res.verdict
    assert v.encrypted is True and v.encrypted_members == 2
    assert v.detail is not None and "disagrees" in v.detail


def test_central_directory_says_encrypted() -> None:
    data = SMALL_PLAIN
    cd = _cd_offsets(data)[0]
    flags = struct.unpack_from("<H", data, cd + 8)[0]
    res = run(_patch16(data, cd + 8, flags | 1))
    assert "zip_header_mismatch" in res.kinds
    assert res.verdict.encrypted is True and res.verdict.partial is True


def test_overlapping_entries() -> None:
    data = make_zip([("a", b"A" * 100, 0), ("b", b"B" * 100, 0), ("c", b"C" * 10, 0)])
    cds = _cd_offsets(data)
    bomb = _patch32(data, cds[1] + 42, _lfh_offsets(data)[0] + 10)  # b starts inside a
    res = run(bomb)
    assert "zip_overlapping_entries" in res.kinds
    assert "zip_unseen_members" in res.kinds
    assert res.verdict.detail is not None and "overlapping" in res.verdict.detail
    plain = run(data)
    assert "zip_overlapping_entries" not in plain.kinds


def test_strong_and_central_directory_encryption_flags(infozip: dict[str, bytes]) -> None:
    data = infozip["small"]
    lfh = _lfh_offsets(data)[0]
    cd = _cd_offsets(data)[0]
    strong = _patch16(data, lfh + 6, 0x41 | 8)
    strong = _patch16(strong, cd + 8, 0x41 | 8)
    v = run(strong).verdict
    assert (v.encrypted, v.scheme, v.hides_names) == (True, "zip-strong", False)
    masked = _patch16(data, lfh + 6, 0x2041 | 8)
    v = run(masked).verdict
    assert (v.encrypted, v.scheme, v.hides_names) == (True, "zip-strong", True)
    cd_masked = _patch16(data, cd + 8, 0x2041 | 8)
    v = run(cd_masked).verdict
    assert (v.encrypted, v.scheme, v.hides_names) == (True, "zip-strong", True)


# ----- damage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "descriptor", "enc", "nosizes"])
def test_truncated_at_many_points(infozip: dict[str, bytes], kind: str) -> None:
    data = {
        "plain": make_zip(PLAIN_FILES),
        "descriptor": make_zip(PLAIN_FILES, seekable=False),
        "enc": infozip["enc"],
        "nosizes": infozip["nosizes"],
    }[kind]
    encrypted = kind in ("enc", "nosizes")
    full = members(run(data))
    cuts = sorted(set(range(1, len(data), max(1, len(data) // 300))) | {29, 30, 31, 45})
    for cut in cuts:
        part = data[:cut]
        res = run(part, random_pieces(part, random.Random(cut), 500), complete=False)
        got = members(res)
        n_started = len(starts(res))
        assert len(got) == n_started  # every started member ended
        for i, (name, body, ok) in enumerate(got):
            assert name == full[i][0]
            assert full[i][1].startswith(body)  # data is a prefix, never made up
            if ok:
                assert body == full[i][1]
        if got and got[-1][2] is False:
            assert "zip_truncated" in res.kinds or "zip_bad_data" in res.kinds
        v = res.verdict
        if n_started == 0:
            assert v.encrypted is None
        else:
            assert v.encrypted is encrypted  # from the local headers seen
            assert v.members == n_started


def test_gap_inside_known_size_member() -> None:
    data = make_zip([("a", RANDOM, 0), ("b", TEXT, 8), ("c", b"tail", 0)])
    at = _lfh_offsets(data)[0] + 30 + 1 + 1000
    r = ZipReader()
    ev = r.feed(data[:at]) + r.gap(500) + r.feed(data[at + 500 :]) + r.finish(False)
    res = _norm(ev)
    assert res[2] == ("end", False, 500)
    got = members(Result(res, Encryption(None), [], r))
    assert got[1:] == [("b", TEXT, True), ("c", b"tail", True)]
    assert [a.kind for a in r.anomalies] == ["zip_gap"]


def test_gap_inside_known_size_deflate_member() -> None:
    big = random.Random(3).randbytes(60000).hex().encode()  # several decoder blocks
    data = make_zip([("a", big, 8), ("b", TEXT, 8), ("c", b"tail", 0)])
    csize = struct.unpack_from("<I", data, 18)[0]
    assert csize > 3 * DECODE_BLOCK
    for at in (31 + 5000, 31 + DECODE_BLOCK, 31 + 2 * DECODE_BLOCK + 77):
        r = ZipReader()
        ev = []
        for p in random_pieces(data[:at], random.Random(at), 999):
            ev += r.feed(p)
        ev += r.gap(300)
        for p in random_pieces(data[at + 300 :], random.Random(at), 999):
            ev += r.feed(p)
        ev += r.finish(False)
        got = members(Result(_norm(ev), Encryption(None), [], r))
        assert got[0][0] == "a" and got[0][2] is False and big.startswith(got[0][1])
        assert len(got[0][1]) > 0
        assert got[1:] == [("b", TEXT, True), ("c", b"tail", True)]
        assert [a.kind for a in r.anomalies] == ["zip_gap"]
        assert ("end", False, 300) in _norm(ev)


def test_gap_inside_descriptor_member_resyncs() -> None:
    data = make_zip([("a", TEXT, 8), ("b", RANDOM, 0), ("c", b"tail", 8)], seekable=False)
    at = _lfh_offsets(data)[0] + 200
    r = ZipReader()
    ev = r.feed(data[:at]) + r.gap(100) + r.feed(data[at + 100 :]) + r.finish(False)
    got = members(Result(_norm(ev), Encryption(None), [], r))
    assert got[0][0] == "a" and got[0][2] is False
    assert got[1:] == [("b", RANDOM, True), ("c", b"tail", True)]
    v = r.verdict(data[-TAIL_BYTES:], len(data), False)
    assert v == Encryption(False, members=3, encrypted_members=0)


def test_corrupt_deflate() -> None:
    data = make_zip([("a", TEXT, 8), ("b", b"after", 0)])
    at = _lfh_offsets(data)[0] + 30 + 1 + 10
    bad = data[:at] + bytes(x ^ 0x5A for x in data[at : at + 40]) + data[at + 40 :]
    res = run(bad)
    got = members(res)
    assert got[0][2] is False
    assert got[1] == ("b", b"after", True)
    assert "zip_bad_data" in res.kinds or "zip_size_mismatch" in res.kinds


def test_unsupported_method() -> None:
    data = make_zip([("a", b"x" * 50, 0), ("b", b"after", 0)])
    lfh = _lfh_offsets(data)[0]
    cd = _cd_offsets(data)[0]
    patched = _patch16(_patch16(data, lfh + 8, 93), cd + 10, 93)
    res = run(patched)
    assert members(res) == [("a", b"", False), ("b", b"after", True)]
    assert "zip_method_unsupported" in res.kinds
    assert "93 (zstd)" in res.reader.anomalies[0].detail
    assert "zip_header_mismatch" not in res.kinds


def test_name_too_long() -> None:
    long_name = "n" * 3000 + ".txt"
    data = make_zip([(long_name, b"body", 0), ("next", b"x", 0)])
    res = run(data, random_pieces(data, random.Random(1), 100))
    st0 = starts(res)
    assert st0[0].name == long_name[:NAME_CAP]
    assert members(res)[0][1] == b"body" and members(res)[1] == ("next", b"x", True)
    assert res.kinds == ["zip_name_too_long"]
    assert "zip_header_mismatch" not in res.kinds


def test_extra_field_too_long() -> None:
    info = zipfile.ZipInfo("big-extra.txt", date_time=(2024, 1, 2, 3, 4, 6))
    info.extra = struct.pack("<HH", 0xCAFE, 6000) + bytes(6000)
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as z:
        z.writestr(info, TEXT, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("next.txt", b"next")
    data = sink.getvalue()
    res = run(data, random_pieces(data, random.Random(8), 900))
    assert [(n, b) for n, b, _ in members(res)] == zipfile_members(data)
    assert res.kinds == ["zip_extra_too_long"]
    assert res.verdict == Encryption(False, members=2, encrypted_members=0)


def test_bad_central_directory_count() -> None:
    data = SMALL_PLAIN
    eocd = data.rfind(b"PK\x05\x06")
    liar = _patch16(_patch16(data, eocd + 8, 5), eocd + 10, 5)  # says 5 entries, holds 2
    res = run(liar)
    assert "zip_bad_central_directory" in res.kinds
    assert res.verdict.encrypted is False and res.verdict.members == 2


def test_descriptor_that_does_not_fit() -> None:
    data = make_zip([("a", b"abc" * 50, 8), ("b", b"after", 0)], seekable=False)
    dd = data.find(b"PK\x07\x08")
    bad = _patch32(data, dd + 8, 999)  # the descriptor's compressed size is wrong
    res = run(bad)
    assert "zip_bad_descriptor" in res.kinds
    assert members(res) == [("a", b"abc" * 50, True), ("b", b"after", True)]


def test_cut_inside_a_signature() -> None:
    data = SMALL_PLAIN
    second = _lfh_offsets(data)[1]
    res = run(data[: second + 2], complete=False)
    assert res.kinds == ["zip_truncated"]
    assert [m[0] for m in members(res)] == ["x.txt"]


def test_central_directory_beyond_tail() -> None:
    files = [(f"{i:05d}-" + "p" * 90, b"", 0) for i in range(8000)]
    data = make_zip(files)
    res = run(data, random_pieces(data, random.Random(1), 65536), open_members=False)
    v = res.verdict
    assert v.encrypted is False and v.members == 8000
    assert v.detail is not None and f"beyond {TAIL_BYTES} bytes not read" in v.detail


# ----- document types --------------------------------------------------------------------------


def _doc(files: Sequence[tuple[str, bytes, int]]) -> str | None:
    res = run(make_zip(files), open_members=False)
    return res.reader.document_type()


def test_document_types() -> None:
    ct = ("[Content_Types].xml", b"<Types/>", 8)
    assert _doc([ct, ("_rels/.rels", b"<r/>", 8), ("word/document.xml", b"<w/>", 8)]) == "docx"
    assert _doc([ct, ("xl/workbook.xml", b"<x/>", 8)]) == "xlsx"
    assert _doc([ct, ("ppt/presentation.xml", b"<p/>", 8)]) == "pptx"
    assert _doc([("word/document.xml", b"<w/>", 8)]) is None  # no content types
    for mime, kind in (
        (b"application/vnd.oasis.opendocument.text", "odt"),
        (b"application/vnd.oasis.opendocument.spreadsheet", "ods"),
        (b"application/vnd.oasis.opendocument.presentation", "odp"),
        (b"application/epub+zip", "epub"),
    ):
        assert _doc([("mimetype", mime, 0), ("content.xml", b"<c/>", 8)]) == kind
    # "mimetype" must be first and stored
    assert _doc([("a", b"", 0), ("mimetype", b"application/epub+zip", 0)]) is None
    assert _doc([("mimetype", b"application/epub+zip", 8)]) is None
    assert _doc([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", 8)]) == "jar"
    assert _doc(PLAIN_FILES) is None


# ----- properties ------------------------------------------------------------------------------


def _split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        if p > last:
            out.append(data[last:p])
            last = p
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    whole = run(data)
    split = run(data, _split_at(data, cuts))
    assert split.events == whole.events
    assert split.verdict == whole.verdict


SEEDS = [
    SMALL_PLAIN,
    make_zip([("x", TEXT[:300], 8), ("y", b"stored", 0)], seekable=False),
    make_zip([("z", b"zip64", 8)], zip64=True),
    aes_zip([("a", b"secret" * 20)], 256, seekable=False),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 1000),
    cuts=st.lists(st.integers(0, 1000), max_size=6),
    gap_at=st.one_of(st.none(), st.integers(0, 1000)),
)
def test_mutated_archives_never_raise(
    seed: int, edits: list[tuple[int, int]], cut: int, cuts: list[int], gap_at: int | None
) -> None:
    buf = bytearray(SEEDS[seed])
    for at, value in edits:
        buf[at % len(buf)] = value
    data = bytes(buf[: len(buf) - cut % 50])
    whole = run(data)
    split = run(data, _split_at(data, cuts))
    assert split.events == whole.events
    assert split.verdict == whole.verdict
    assert split.kinds == whole.kinds
    for kind in whole.kinds:
        assert kind.startswith("zip_")
    # a gap anywhere: still no exception, every start has its end
    r = ZipReader()
    g = (gap_at or 0) % (len(data) + 1)
    ev = r.feed(data[:g]) + (r.gap(7) if gap_at is not None else []) + r.feed(data[g:])
    ev += r.finish(gap_at is None)
    r.verdict(data[-TAIL_BYTES:], len(data), gap_at is None)
    opened = sum(isinstance(e, MemberStart) for e in ev)
    assert opened == sum(isinstance(e, MemberEnd) for e in ev)


def test_random_splits_keep_member_bytes() -> None:
    data = make_zip(PLAIN_FILES, seekable=False)
    want = zipfile_members(data)
    rng = random.Random(11)
    for _ in range(20):
        res = run(data, random_pieces(data, rng, rng.choice([3, 64, 999, 9999])))
        assert [(n, b) for n, b, _ in members(res)] == want


def test_deflate_stream_matches_raw_zlib() -> None:
    # sanity for the helper: what the reader decodes is exactly zlib's raw inflate
    body = TEXT * 3
    data = make_zip([("t", body, 8)])
    lfh = _lfh_offsets(data)[0]
    csize = struct.unpack_from("<I", data, lfh + 18)[0]
    raw = data[lfh + 31 : lfh + 31 + csize]
    assert zlib.decompress(raw, -15) == body
    assert members(run(data)) == [("t", body, True)]
