"""Containers opened into members: every member an object of its own, typed and fingerprinted,
recursively, under the tree's caps (sensor/content/objects.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
import zipfile
from dataclasses import replace

import pytest
import pyzipper

from sensor.content.fingerprint.base import MemberEvent
from sensor.content.objects import DEFAULT_CAPS, ContentCaps, FileInfo, FileObject

CSV = b"".join(f"{i};Jansen;1985-03-01;2511 CV\n".encode() for i in range(2000))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def aes_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as z:  # fmt: skip
        z.setpassword(b"geheim")
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run(data: bytes, name: str | None = "upload.bin", caps: ContentCaps = DEFAULT_CAPS,
        chunk: int = 1460) -> tuple[FileInfo, list[FileInfo], list[str]]:  # fmt: skip
    obj = FileObject(filename=name, caps=caps)
    for i in range(0, len(data), chunk):
        obj.update(data[i : i + chunk])
    info = obj.finish(True)
    flat: list[FileInfo] = []
    stack = list(reversed(info.members))
    while stack:
        member = stack.pop()
        flat.append(member)
        stack.extend(reversed(member.members))
    return info, flat, [a.kind for a in obj.anomalies]


def test_zip_members_are_objects_with_their_parent_and_path() -> None:
    data = zip_of({"export/patients.csv": CSV, "readme.txt": b"zie bijlage\n"})
    info, members, anomalies = run(data, "export.zip")
    assert info.fingerprint is not None
    assert (info.fingerprint.type, info.fingerprint.container) == ("zip", "zip")
    assert info.fingerprint.members == 2 and info.fingerprint.encrypted is False
    assert not info.fingerprint.contains_encrypted
    assert [(m.filename, m.sha256, m.size, m.complete) for m in members] == [
        ("export/patients.csv", sha(CSV), len(CSV), True),
        ("readme.txt", sha(b"zie bijlage\n"), 12, True),
    ]
    for m in members:
        assert m.parent_sha256 == info.sha256
        assert m.container_path == ["export.zip", m.filename]
        assert m.fingerprint is not None and m.fingerprint.encrypted is False
    assert members[0].fingerprint.type == "csv"  # type: ignore[union-attr]
    assert anomalies == []


def test_an_encrypted_archive_inside_a_plain_one_is_found_and_flagged() -> None:
    inner = aes_zip({"patients.csv": CSV})
    outer = zip_of({"backup/inner.zip": inner, "notes.txt": b"x\n"}, zipfile.ZIP_STORED)
    info, members, _ = run(outer, "backup.zip")
    assert info.fingerprint is not None and info.fingerprint.encrypted is False
    assert info.fingerprint.contains_encrypted
    inner_info = next(m for m in members if m.filename == "backup/inner.zip")
    assert inner_info.fingerprint is not None and inner_info.fingerprint.encrypted is True
    assert inner_info.fingerprint.encryption == "zip-aes-256"
    assert inner_info.sha256 == sha(inner)
    assert not inner_info.members  # encrypted entries are counted, not opened


def test_tar_gz_opens_two_levels_deep() -> None:
    age = b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n" + random.randbytes(3000)
    data = tar_gz({"out/data.age": age, "out/list.csv": CSV})
    info, members, _ = run(data, "out.tar.gz")
    assert info.fingerprint is not None and info.fingerprint.type == "gzip"
    assert info.fingerprint.contains_encrypted
    tar = members[0]
    assert tar.fingerprint is not None and tar.fingerprint.type == "tar"
    assert tar.container_path == ["out.tar.gz", "out.tar"]
    assert tar.parent_sha256 == info.sha256
    assert [m.filename for m in tar.members] == ["out/data.age", "out/list.csv"]
    aged = tar.members[0]
    assert aged.container_path == ["out.tar.gz", "out.tar", "out/data.age"]
    assert aged.parent_sha256 == tar.sha256 and aged.sha256 == sha(age)
    assert aged.fingerprint is not None and aged.fingerprint.encrypted is True
    assert aged.fingerprint.encryption is not None and aged.fingerprint.encryption.startswith("age")
    assert tar.fingerprint.contains_encrypted


def test_depth_cap_fingerprints_but_does_not_open() -> None:
    data = CSV
    for level in range(6):
        data = zip_of({f"level{level}.zip" if level else "data.csv": data})
    _, members, anomalies = run(data, "nest.zip", replace(DEFAULT_CAPS, max_depth=3))
    assert "archive_depth_cap" in anomalies
    depths = [len(m.container_path or []) - 1 for m in members]
    assert max(depths) == 3
    deepest = [m for m in members if len(m.container_path or []) - 1 == 3]
    assert all(not m.members for m in deepest)
    assert all(m.fingerprint is not None and m.fingerprint.type == "zip" for m in deepest)


def test_member_cap() -> None:
    data = zip_of({f"f{i}.txt": b"x" for i in range(50)})
    info, members, anomalies = run(data, "many.zip", replace(DEFAULT_CAPS, max_members=10))
    assert len(members) == 10 and anomalies.count("archive_member_cap") == 1
    assert info.fingerprint is not None and info.fingerprint.members == 50


def test_a_bomb_stops_at_the_ratio_cap_in_bounded_memory() -> None:
    bomb = gzip.compress(b"\0" * (300 * 1024**2), 9)  # 300 MiB of zeros in ~300 kB
    info, members, anomalies = run(bomb, "bomb.gz", replace(DEFAULT_CAPS, max_ratio=100))
    assert "archive_ratio_cap" in anomalies
    assert members[0].complete is False
    assert members[0].size < 300 * 1024**2
    assert info.complete and info.size == len(bomb)


def test_expanded_bytes_cap() -> None:
    data = zip_of({"a.bin": b"\0" * 3_000_000, "b.bin": b"\0" * 3_000_000})
    _, members, anomalies = run(data, "z.zip", replace(DEFAULT_CAPS, max_expanded_bytes=4_000_000))
    assert anomalies.count("archive_expanded_cap") == 1
    assert members[0].complete and not members[1].complete


def test_names_that_traverse_are_reported_and_long_names_cut() -> None:
    data = zip_of({"../../etc/cron.d/x": b"a", "/abs": b"b", "C:\\win": b"c", "n" * 3000: b"d"})
    _, members, anomalies = run(data, "evil.zip")
    assert anomalies.count("archive_path_traversal") == 1
    # The ZIP reader cuts a long name itself (zip_name_too_long); a shorter cap of the
    # caller's cuts it again.
    assert anomalies.count("zip_name_too_long") == 1
    assert len(members) == 4
    assert len(members[3].filename or "") == DEFAULT_CAPS.max_member_name_bytes
    caps = replace(DEFAULT_CAPS, max_member_name_bytes=100)
    _, members, anomalies = run(data, "evil.zip", caps)
    assert anomalies.count("archive_name_too_long") == 1
    assert len(members[3].filename or "") == 100


def test_a_cut_off_container_reports_its_member_incomplete() -> None:
    data = zip_of({"big.csv": CSV * 5})
    obj = FileObject(filename="cut.zip")
    obj.update(data[: len(data) // 2])
    info = obj.finish(False)
    assert not info.complete
    assert info.members and info.members[0].complete is False


def test_chunking_does_not_change_the_tree() -> None:
    inner = aes_zip({"p.csv": CSV})
    data = tar_gz({"a/inner.zip": inner, "a/p.csv": CSV})
    whole = run(data, "t.tgz", chunk=len(data))
    for chunk in (1, 7, 512, 4096):
        again = run(data, "t.tgz", chunk=chunk)
        assert [(m.sha256, m.container_path, m.fingerprint) for m in again[1]] == [
            (m.sha256, m.container_path, m.fingerprint) for m in whole[1]
        ]
        assert again[0].fingerprint == whole[0].fingerprint


def test_a_failing_format_reader_loses_neither_the_object_nor_its_members_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sensor.content.fingerprint import zip as zipmod

    data = zip_of({"a.csv": CSV, "b.bin": random.Random(3).randbytes(40_000)})
    calls = {"n": 0}
    real_feed = zipmod.ZipReader.feed

    def flaky(self: zipmod.ZipReader, chunk: bytes) -> list[MemberEvent]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise IndexError("a bug on hostile bytes")
        return real_feed(self, chunk)

    monkeypatch.setattr(zipmod.ZipReader, "feed", flaky)
    info, members, anomalies = run(data, "x.zip", chunk=1460)
    assert anomalies.count("fingerprint_error") == 1
    assert info.sha256 == sha(data) and info.size == len(data) and info.complete
    assert info.fingerprint is not None and info.fingerprint.encrypted is None
    assert info.fingerprint.undecided == "damaged" and info.fingerprint.type == "zip"
    assert members and members[-1].complete is False  # the member being opened was cut


def test_anomalies_of_the_format_readers_carry_the_objects_time() -> None:
    import lzma

    obj = FileObject(filename="cut.xz", ts=1234.5)
    obj.update(lzma.compress(CSV)[:200])
    obj.finish(True)
    assert obj.anomalies and all(a.ts == 1234.5 for a in obj.anomalies)
    assert "unpack_truncated" in [a.kind for a in obj.anomalies]
