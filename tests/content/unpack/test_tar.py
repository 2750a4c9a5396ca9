"""TarOpener: differential against tarfile and GNU tar, every split, base-256 sizes, V7,
checksums, extended headers, sparse files, truncation, gaps and hostile input."""

from __future__ import annotations

import io
import itertools
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import MemberData, MemberEnd, MemberEvent, MemberStart
from sensor.content.unpack import GzipOpener, TarOpener
from sensor.content.unpack.tar import BLOCK, CHUNK, MAX_EXT_RECORD

Member = tuple[str | None, bytes, bool, MemberEnd | None]


def collect(events: list[MemberEvent]) -> list[Member]:
    """Members in order: (name, data, is_dir, end). Checks the event grammar on the way."""
    members: list[list[object]] = []
    open_ = False
    for event in events:
        if isinstance(event, MemberStart):
            assert not open_
            members.append([event.name, b"", event.is_dir, None])
            open_ = True
        elif isinstance(event, MemberData):
            assert open_ and 0 < len(event.data) <= CHUNK
            members[-1][1] += event.data  # type: ignore[operator]
        else:
            assert open_
            members[-1][3] = event
            open_ = False
    return [tuple(m) for m in members]  # type: ignore[misc]


def run(
    chunks: list[bytes], complete: bool = True, opener: TarOpener | None = None
) -> tuple[list[Member], list[str]]:
    opener = opener or TarOpener()
    events: list[MemberEvent] = []
    for chunk in chunks:
        events += opener.feed(chunk)
    events += opener.finish(complete)
    members = collect(events)
    assert all(m[3] is not None for m in members)  # nothing left open
    return members, [a.kind for a in opener.anomalies]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def reference(blob: bytes) -> list[tuple[str, bytes, bool]]:
    """What tarfile's streaming reader sees: regular files with data, directories."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r|*") as archive:
        for info in archive:
            if info.isdir():
                out.append((info.name, b"", True))
            elif info.isreg():
                handle = archive.extractfile(info)
                assert handle is not None
                out.append((info.name, handle.read(), False))
    return out


def simple(members: list[Member]) -> list[tuple[str, bytes, bool]]:
    return [((name or "").rstrip("/") if is_dir else name or "", data, is_dir)
            for name, data, is_dir, _ in members]  # fmt: skip


def build(fmt: int, extra: bool = True) -> bytes:
    buf = io.BytesIO()
    rng = random.Random(fmt)
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:

        def add(name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.linkname = link
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("dossiers", b"", tarfile.DIRTYPE)
        add("dossiers/a.csv", b"BSN;naam\n123456782;Jansen\n")
        add("empty.txt", b"")
        add("exact.bin", rng.randbytes(BLOCK))
        add("link", b"", tarfile.SYMTYPE, "dossiers/a.csv")
        add("hard", b"", tarfile.LNKTYPE, "dossiers/a.csv")
        add("fifo", b"", tarfile.FIFOTYPE)
        if extra:
            add("big.bin", rng.randbytes(70_000))
            # over 100 bytes: the ustar prefix field; over 255: GNU 'L' or pax path only
            add("p/" + "q" * 120 + "/r.txt", b"prefix name\n")
            if fmt != tarfile.USTAR_FORMAT:
                add("long/" + "n" * 300 + ".txt", b"long name\n")
            if fmt == tarfile.PAX_FORMAT:
                add("patiënten/überweisung-日本.txt", "naïve\n".encode())
    return buf.getvalue()


FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
SAMPLES = {name: build(fmt) for name, fmt in FORMATS.items()}
SMALL = {name: build(fmt, extra=False) for name, fmt in FORMATS.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_matches_tarfile(fmt: str) -> None:
    blob = SAMPLES[fmt]
    members, kinds = run([blob])
    assert simple(members) == reference(blob)
    assert all(end == MemberEnd(True) for *_, end in members)
    assert kinds == []
    names = [name for name, *_ in members]
    assert "link" not in names and "hard" not in names and "fifo" not in names
    assert ("dossiers/", b"", True, MemberEnd(True)) in members  # raw name, as the tar spells it


@pytest.mark.parametrize("fmt", FORMATS)
def test_byte_by_byte_and_every_split(fmt: str) -> None:
    blob = SMALL[fmt]
    expected = run([blob])
    assert run([blob[i : i + 1] for i in range(len(blob))]) == expected
    for cut in range(len(blob) + 1):
        assert run(split_at(blob, [cut])) == expected, cut


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40))
def test_random_splits(fmt: str, cuts: list[int]) -> None:
    blob = SAMPLES[fmt]
    assert run(split_at(blob, [c % (len(blob) + 1) for c in cuts])) == EXPECTED[fmt]


EXPECTED = {fmt: run([blob]) for fmt, blob in SAMPLES.items()}


def test_large_member_streams_in_bounded_pieces() -> None:
    data = os.urandom(3 * CHUNK + 5)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("big")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    opener = TarOpener()
    events = opener.feed(buf.getvalue())
    assert max(len(e.data) for e in events if isinstance(e, MemberData)) == CHUNK
    assert collect(events + opener.finish(True))[0][1] == data


# -- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_size_over_8_gib(fmt: int) -> None:
    """GNU writes base-256 in the size field, pax a size record; a truncated body follows."""
    info = tarfile.TarInfo("huge.bin")
    info.size = 9 * 1024**3 + 7
    header = info.tobuf(format=fmt)
    if fmt == tarfile.GNU_FORMAT:
        assert header[124] & 0x80  # base-256
    body = b"x" * 5000
    opener = TarOpener()
    events = opener.feed(header + body) + opener.finish(False)
    start = events[0]
    assert isinstance(start, MemberStart) and start.size == info.size
    assert start.name == "huge.bin"
    assert collect(events) == [("huge.bin", body, False, MemberEnd(False, info.size - 5000))]
    assert [a.kind for a in opener.anomalies] == ["tar_truncated"]


# -- old and odd headers -------------------------------------------------------------------


def with_checksum(header: bytearray, signed: bool = False) -> bytes:
    header[148:156] = b" " * 8
    total = sum((b - 256 if signed and b >= 128 else b) for b in header)
    header[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(header)


def v7_entry(name: bytes, data: bytes, typeflag: bytes = b"\0", signed: bool = False) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = b"0000644\0"
    header[124:136] = b"%011o\0" % len(data)
    header[136:148] = b"14712345670\0"
    header[156:157] = typeflag
    return with_checksum(header, signed) + data + bytes(-len(data) % BLOCK)


def test_v7_tar() -> None:
    blob = v7_entry(b"old.txt", b"seventh edition\n") + v7_entry(b"dir/", b"") + bytes(1024)
    members, kinds = run([blob])
    assert members == [
        ("old.txt", b"seventh edition\n", False, MemberEnd(True)),
        ("dir/", b"", True, MemberEnd(True)),
    ]
    assert kinds == []
    assert simple(members) == reference(blob)


def test_signed_checksum_accepted() -> None:
    name = "café-é.txt".encode("latin-1")
    blob = v7_entry(name, b"data", signed=True) + bytes(1024)
    members, kinds = run([blob])
    assert members == [("caf\ufffd-\ufffd.txt", b"data", False, MemberEnd(True))]
    assert kinds == []


def test_bad_checksum_stops() -> None:
    blob = bytearray(SAMPLES["ustar"])
    second = BLOCK  # the directory header is first; its entry has no data
    blob[second + 10] ^= 0x01
    members, kinds = run([bytes(blob)])
    assert members == [("dossiers/", b"", True, MemberEnd(True))]
    assert kinds == ["tar_bad_checksum"]


def test_not_a_tar() -> None:
    assert run([os.urandom(4096)]) == ([], ["tar_bad_checksum"])


def test_unknown_type_is_a_regular_file() -> None:
    blob = v7_entry(b"odd", b"content", typeflag=b"Z") + bytes(1024)
    members, kinds = run([blob])
    assert members == [("odd", b"content", False, MemberEnd(True))]
    assert kinds == ["tar_unknown_type"]


def test_lone_zero_block_reads_on() -> None:
    blob = v7_entry(b"a", b"1") + bytes(BLOCK) + v7_entry(b"b", b"2") + bytes(1024)
    members, kinds = run([blob])
    assert [m[:2] for m in members] == [("a", b"1"), ("b", b"2")]
    assert kinds == ["tar_lone_zero_block"]


def test_trailing_data_after_end() -> None:
    blob = SMALL["gnu"] + b"hidden"
    members, kinds = run([blob])
    assert members == EXPECTED_SMALL["gnu"][0]
    assert kinds == ["tar_trailing_data"]


EXPECTED_SMALL = {fmt: run([blob]) for fmt, blob in SMALL.items()}


def pax_entry(records: dict[str, str], typeflag: bytes = b"x") -> bytes:
    body = b""
    for key, value in records.items():
        payload = f" {key}={value}\n".encode()
        length = len(payload) + 1
        while length != len(payload) + len(str(length)):  # the length counts its own digits
            length = len(payload) + len(str(length))
        body += str(length).encode() + payload
    return v7_entry(b"PaxHeader", body, typeflag=typeflag)


def test_pax_global_and_local_records() -> None:
    blob = (
        pax_entry({"path": "global-name"}, b"g")
        + v7_entry(b"ignored-1", b"one")
        + pax_entry({"path": "local-name", "size": "3"})
        + v7_entry(b"ignored-2", b"two")
        + pax_entry({"path": ""})  # an empty value unsets the key: the header's name stands
        + v7_entry(b"own-name", b"x")
        + bytes(1024)
    )
    members, kinds = run([blob])
    assert [m[:2] for m in members] == [
        ("global-name", b"one"),
        ("local-name", b"two"),
        ("global-name", b"x"),
    ]
    assert kinds == []
    # tarfile agrees where it applies pax records (it uses global ones only under a local one)
    assert reference(blob)[1] == ("local-name", b"two", False)


def test_bad_pax_record_noted() -> None:
    blob = (
        v7_entry(b"PaxHeader", b"99 path=x\n", typeflag=b"x") + v7_entry(b"f", b"1") + bytes(1024)
    )
    members, kinds = run([blob])
    assert [m[:2] for m in members] == [("f", b"1")]
    assert kinds == ["tar_bad_pax"]


def test_extended_header_over_the_cap() -> None:
    long_path = "d/" * (MAX_EXT_RECORD // 2) + "f.txt"
    blob = pax_entry({"path": long_path}) + v7_entry(b"fallback", b"data") + bytes(1024)
    members, kinds = run([blob[i : i + 1000] for i in range(0, len(blob), 1000)])
    assert [m[:2] for m in members] == [("fallback", b"data")]
    assert kinds == ["tar_header_too_long"]


# -- truncation, gaps ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_everywhere(fmt: str) -> None:
    blob = SMALL[fmt]
    full = EXPECTED_SMALL[fmt][0]
    for cut in range(0, len(blob), 37):
        members, kinds = run([blob[:cut]], complete=False)
        assert len(members) <= len(full)
        for got, want in zip(members, full, strict=False):
            assert got[0] == want[0]
            assert want[1].startswith(got[1])
            end = got[3]
            assert end is not None
            if got[1] != want[1]:
                assert end == MemberEnd(False, len(want[1]) - len(got[1]))
                assert "tar_truncated" in kinds


def test_gap_inside_data_keeps_step() -> None:
    blob = SAMPLES["ustar"]
    members = EXPECTED["ustar"][0]
    data = next(m[1] for m in members if m[0] == "big.bin")
    at = blob.index(data[:64]) + 1000
    opener = TarOpener()
    events = opener.feed(blob[:at]) + opener.gap(500) + opener.feed(blob[at + 500 :])
    got = collect(events + opener.finish(True))
    assert [m[0] for m in got] == [m[0] for m in members]
    big = next(m for m in got if m[0] == "big.bin")
    assert big[1] == data[:1000] + data[1500:]
    assert big[3] == MemberEnd(False, 500)
    assert [m for m in got if m[0] != "big.bin"] == [m for m in members if m[0] != "big.bin"]
    assert [a.kind for a in opener.anomalies] == []


def test_gap_over_a_header_resyncs() -> None:
    blob = SAMPLES["ustar"]
    members = EXPECTED["ustar"][0]
    names = [m[0] for m in members]
    lost = names.index("exact.bin")
    start = blob.index(b"exact.bin")  # its header; lose it and part of its data
    opener = TarOpener()
    events = opener.feed(blob[:start]) + opener.gap(600) + opener.feed(blob[start + 600 :])
    got = collect(events + opener.finish(True))
    assert got == members[:lost] + members[lost + 1 :]
    assert [a.kind for a in opener.anomalies] == ["tar_resync"]


# -- real GNU tar --------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    deep = root / "afdeling" / ("lange-map-" * 12) / ("nog-dieper-" * 10)
    deep.mkdir(parents=True)
    (deep / "uitslagen.csv").write_bytes(b"BSN;uitslag\n123456782;negatief\n" * 500)
    (root / "afdeling" / "leeg.txt").write_bytes(b"")
    (root / "afdeling" / "random.bin").write_bytes(os.urandom(100_000))
    (root / "afdeling" / "link").symlink_to("leeg.txt")


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7"])
def test_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    make_tree(tmp_path / "src")
    out = tmp_path / "a.tar"
    members = ["afdeling"] if fmt not in ("ustar", "v7") else ["afdeling/leeg.txt"]
    subprocess.run(
        ["tar", f"--format={fmt}", "-C", str(tmp_path / "src"), "-cf", str(out), *members],
        check=True,
    )
    blob = out.read_bytes()
    got, kinds = run([blob[i : i + 7000] for i in range(0, len(blob), 7000)])
    assert simple(got) == reference(blob)
    assert kinds == []
    assert got


def test_gnu_tar_czf_long_path_through_gzip(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    out = tmp_path / "a.tgz"
    subprocess.run(["tar", "-C", str(tmp_path / "src"), "-czf", str(out), "afdeling"], check=True)
    blob = out.read_bytes()
    gz = GzipOpener(name="a.tgz")
    tar = TarOpener()
    events: list[MemberEvent] = []
    outer: list[MemberEvent] = []
    for i in range(0, len(blob), 4096):
        outer += gz.feed(blob[i : i + 4096])
    outer += gz.finish(True)
    assert isinstance(outer[0], MemberStart) and outer[0].name == "a.tar"
    assert outer[-1] == MemberEnd(True)
    for event in outer:
        if isinstance(event, MemberData):
            events += tar.feed(event.data)
    events += tar.finish(True)
    got = collect(events)
    with tarfile.open(out, "r:gz") as archive:
        assert simple(got) == reference(out.read_bytes())
        assert any(len(name) > 200 for name in archive.getnames())
    assert any(name and name.endswith("uitslagen.csv") and len(name) > 200 for name, *_ in got)


def test_gnu_sparse_file(tmp_path: Path) -> None:
    src = tmp_path / "sparse.img"
    with open(src, "wb") as handle:
        handle.write(b"A" * 4096)
        handle.seek(4 * 1024 * 1024)
        handle.write(b"B" * 4096)
    out = tmp_path / "s.tar"
    subprocess.run(["tar", "--sparse", "-C", str(tmp_path), "-cf", str(out), "sparse.img"],
                   check=True)  # fmt: skip
    got, kinds = run([out.read_bytes()])
    assert [m[0] for m in got] == ["sparse.img"]
    data = got[0][1]
    assert b"A" * 4096 in data and b"B" * 4096 in data
    assert len(data) < 1024 * 1024  # the holes are not there
    assert "tar_sparse" in kinds


# -- hostile input -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    for blob in (data, SMALL["pax"][:1024] + data):
        run(split_at(blob, [c % (len(blob) + 1) for c in cuts]), complete=False)


@settings(max_examples=200, deadline=None)
@given(
    pos=st.integers(0, 10**6),
    value=st.integers(0, 255),
    gap_at=st.integers(0, 10**6),
    gap=st.integers(0, 2000),
)
def test_mutated_archives_never_raise(pos: int, value: int, gap_at: int, gap: int) -> None:
    blob = bytearray(SMALL["pax"])
    blob[pos % len(blob)] = value
    cut = gap_at % len(blob)
    opener = TarOpener()
    events = opener.feed(bytes(blob[:cut])) + opener.gap(gap) + opener.feed(bytes(blob[cut:]))
    collect(events + opener.finish(True))
