"""probes.pcap: pcap/pcapng reading, damage reports and clear errors.

Captures are built with small writers here (so every field is under test control) and, where
the Wireshark tools are installed, converted by editcap so a real writer is covered too; scapy's
reader is the independent reference for frame bytes and timestamps.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import probes.pcap as pcap_module
from probes.frame import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, Frame
from probes.pcap import PcapError, PcapReader, ReadReport
from tests.conftest import require_tool

# (ts_sec, ts_frac, data) records.
Record = tuple[int, int, bytes]
# Explicit MACs: a default Ether() makes scapy resolve addresses on the network (slow, flaky).
M1 = "02:00:00:00:00:01"
M2 = "02:00:00:00:00:02"


def _frames(count: int = 6) -> list[bytes]:
    rng = random.Random(count)
    return [bytes(rng.randrange(256) for _ in range(14 + i * 13 % 97)) for i in range(count)]


def write_pcap(
    path: Path,
    datas: Sequence[bytes],
    *,
    order: str = "<",
    nano: bool = False,
    linktype: int = LINKTYPE_ETHERNET,
    snaplen: int = 65535,
    wire_extra: int = 0,
) -> list[int]:
    """Write a classic pcap; returns the byte offset of every record."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    offsets = []
    for i, data in enumerate(datas):
        offsets.append(len(out))
        frac = (i * 1001) % (1_000_000_000 if nano else 1_000_000)
        out += struct.pack(
            order + "IIII", 1_700_000_000 + i, frac, len(data), len(data) + wire_extra
        )
        out += data
    path.write_bytes(bytes(out))
    return offsets


def _opt(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    blen = len(body) + 12
    return struct.pack(order + "II", btype, blen) + body + struct.pack(order + "I", blen)


def shb(order: str = "<", major: int = 1) -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1))


def idb(
    order: str,
    linktype: int,
    name: str | None = None,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    snaplen: int = 0,
) -> bytes:
    opts = b""
    if name is not None:
        opts += _opt(order, 2, name.encode())
    if tsresol is not None:
        opts += _opt(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += _opt(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, if_id: int, ts_units: int, data: bytes, wire_len: int | None = None) -> bytes:
    hdr = struct.pack(
        order + "IIIII",
        if_id,
        ts_units >> 32,
        ts_units & 0xFFFFFFFF,
        len(data),
        len(data) if wire_len is None else wire_len,
    )
    return _block(order, 6, hdr + data)


def spb(order: str, data: bytes) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(data)) + data)


def opb(order: str, if_id: int, ts_units: int, data: bytes) -> bytes:
    hdr = struct.pack(
        order + "HHIIII", if_id, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data)
    )
    return _block(order, 2, hdr + data)


def read_all(path: Path) -> tuple[list[Frame], ReadReport]:
    with PcapReader(str(path)) as reader:
        frames = list(reader)
    return frames, reader.report


# -- classic pcap --------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    datas = _frames()
    path = tmp_path / "x.pcap"
    write_pcap(path, datas, order=order, nano=nano, wire_extra=7)
    frames, report = read_all(path)
    assert [f.data for f in frames] == datas
    for i, f in enumerate(frames):
        frac = (i * 1001) % (1_000_000_000 if nano else 1_000_000)
        assert f.ts == pytest.approx(1_700_000_000 + i + frac * (1e-9 if nano else 1e-6), abs=1e-6)
        assert f.linktype == LINKTYPE_ETHERNET
        assert f.iface is None
        assert f.wire_len == len(datas[i]) + 7
    assert report == ReadReport(
        path=str(path),
        frames=len(datas),
        bytes=sum(map(len, datas)),
        truncated=False,
        error=None,
        error_offset=None,
        linktypes={LINKTYPE_ETHERNET},
    )


def test_linktype_passes_through_and_fcs_bits_are_masked(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    write_pcap(path, _frames(2), linktype=LINKTYPE_LINUX_SLL)
    frames, report = read_all(path)
    assert {f.linktype for f in frames} == {LINKTYPE_LINUX_SLL} == report.linktypes
    # Upper bits of the link-type field carry FCS information, not the link type.
    write_pcap(path, _frames(2), linktype=(1 << 28) | (1 << 26) | LINKTYPE_RAW)
    frames, report = read_all(path)
    assert {f.linktype for f in frames} == {LINKTYPE_RAW}


def test_chunk_boundaries_do_not_change_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = _frames(40)
    path = tmp_path / "x.pcap"
    write_pcap(path, datas)
    expected, _ = read_all(path)
    for chunk in (1, 7, 16, 17, 100, 4096):
        monkeypatch.setattr(pcap_module, "CHUNK_SIZE", chunk)
        frames, report = read_all(path)
        assert frames == expected, chunk
        assert not report.truncated


def test_pcap_cut_at_every_offset(tmp_path: Path) -> None:
    datas = _frames(5)
    full = tmp_path / "full.pcap"
    offsets = write_pcap(full, datas)
    blob = full.read_bytes()
    cut_path = tmp_path / "cut.pcap"
    for cut in range(len(blob)):
        cut_path.write_bytes(blob[:cut])
        if cut < 24:
            with pytest.raises(PcapError, match=r"cut\.pcap"):
                PcapReader(str(cut_path))
            continue
        frames, report = read_all(cut_path)
        complete = [i for i, o in enumerate(offsets) if o + 16 + len(datas[i]) <= cut]
        assert [f.data for f in frames] == [datas[i] for i in complete], cut
        assert report.frames == len(complete)
        at_boundary = cut == 24 or cut in offsets
        assert report.truncated is not at_boundary, cut
        if not at_boundary:
            assert report.error is not None and "ends inside" in report.error
            assert report.error_offset == offsets[len(complete)]


def test_caplen_over_snaplen_is_corruption(tmp_path: Path) -> None:
    datas = [b"a" * 60, b"b" * 100, b"c" * 60]
    path = tmp_path / "x.pcap"
    offsets = write_pcap(path, datas, snaplen=64)
    frames, report = read_all(path)
    assert [f.data for f in frames] == datas[:1]
    assert report.truncated and report.error_offset == offsets[1]
    assert report.error is not None and "captured length 100" in report.error


def test_absurd_caplen_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    offsets = write_pcap(path, [b"a" * 60, b"b" * 60], snaplen=0)
    blob = bytearray(path.read_bytes())
    struct.pack_into("<I", blob, offsets[1] + 8, 300 * 1024)
    path.write_bytes(bytes(blob))
    frames, report = read_all(path)
    assert len(frames) == 1
    assert report.truncated and report.error_offset == offsets[1]


# -- pcapng --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_blocks_options_and_sections(tmp_path: Path, order: str) -> None:
    other = ">" if order == "<" else "<"
    blob = (
        shb(order)
        + idb(order, LINKTYPE_ETHERNET, name="eth0")  # microseconds by default
        + idb(order, LINKTYPE_RAW, name="tun0", tsresol=9, tsoffset=100)  # nanoseconds
        + idb(order, LINKTYPE_ETHERNET, tsresol=0x80 | 20)  # 2**-20 seconds
        + epb(order, 0, 1_700_000_000_250_000, b"A" * 20, wire_len=1500)
        + _block(order, 0x00000BAD, b"unknown block, skipped")
        + epb(order, 1, 1_700_000_000_123_456_789, b"B" * 21)
        + epb(order, 2, 3 << 20, b"C" * 22)
        + opb(order, 0, 1_700_000_001_000_000, b"D" * 23)
        + spb(order, b"E" * 24)
        # A second section in the other byte order: interface ids start over.
        + shb(other)
        + idb(other, LINKTYPE_LINUX_SLL, name="any")
        + epb(other, 0, 1_700_000_002_000_000, b"F" * 25)
    )
    path = tmp_path / "x.pcapng"
    path.write_bytes(blob)
    frames, report = read_all(path)
    assert [(f.data, f.linktype, f.iface) for f in frames] == [
        (b"A" * 20, LINKTYPE_ETHERNET, "eth0"),
        (b"B" * 21, LINKTYPE_RAW, "tun0"),
        (b"C" * 22, LINKTYPE_ETHERNET, None),
        (b"D" * 23, LINKTYPE_ETHERNET, "eth0"),
        (b"E" * 24, LINKTYPE_ETHERNET, "eth0"),
        (b"F" * 25, LINKTYPE_LINUX_SLL, "any"),
    ]
    assert frames[0].ts == pytest.approx(1_700_000_000.25)
    assert frames[0].wire_len == 1500
    assert frames[1].ts == pytest.approx(1_700_000_100.123456789)
    assert frames[2].ts == 3.0
    assert frames[3].ts == pytest.approx(1_700_000_001.0)
    assert frames[4].ts == frames[3].ts  # an SPB has no timestamp: the clock stays put
    assert frames[5].ts == pytest.approx(1_700_000_002.0)
    assert report.linktypes == {LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL}
    assert not report.truncated and report.frames == 6


def test_spb_respects_interface_snaplen(tmp_path: Path) -> None:
    blob = shb() + idb("<", LINKTYPE_ETHERNET, snaplen=10) + spb("<", b"x" * 30)
    path = tmp_path / "x.pcapng"
    path.write_bytes(blob)
    frames, _ = read_all(path)
    assert frames[0].data == b"x" * 10 and frames[0].wire_len == 30


def test_pcapng_cut_at_every_offset(tmp_path: Path) -> None:
    blocks = [shb(), idb("<", LINKTYPE_ETHERNET, name="eth0")]
    blocks += [epb("<", 0, 1_000_000 * i, bytes([i]) * (10 + i)) for i in range(4)]
    blob = b"".join(blocks)
    ends = []
    pos = 0
    for b in blocks:
        pos += len(b)
        ends.append(pos)
    path = tmp_path / "cut.pcapng"
    for cut in range(len(blob)):
        path.write_bytes(blob[:cut])
        if cut < 16:
            with pytest.raises(PcapError, match=r"cut\.pcapng"):
                PcapReader(str(path))
            continue
        frames, report = read_all(path)
        whole = [i for i, e in enumerate(ends) if e <= cut]
        assert len(frames) == len([i for i in whole if i >= 2]), cut
        at_boundary = cut in ends
        assert report.truncated is not at_boundary, cut
        if not at_boundary:
            assert report.error_offset == (ends[whole[-1]] if whole else 0)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("trailer", "trailing length"),
        ("length", "corrupt block length"),
        ("huge", "corrupt block length"),
        ("iface", "undeclared interface"),
        ("caplen", "does not fit"),
    ],
)
def test_pcapng_corruption_is_reported_at_the_block(
    tmp_path: Path, damage: str, message: str
) -> None:
    good = epb("<", 0, 1, b"g" * 16)
    bad = bytearray(epb("<", 0, 2, b"b" * 16))
    if damage == "trailer":
        struct.pack_into("<I", bad, len(bad) - 4, len(bad) + 4)
    elif damage == "length":
        struct.pack_into("<I", bad, 4, 13)
    elif damage == "huge":
        struct.pack_into("<I", bad, 4, 1 << 30)
    elif damage == "iface":
        struct.pack_into("<I", bad, 8, 3)
    elif damage == "caplen":
        struct.pack_into("<I", bad, 20, 1000)
    head = shb() + idb("<", LINKTYPE_ETHERNET)
    path = tmp_path / "x.pcapng"
    path.write_bytes(head + good + bytes(bad) + good)
    frames, report = read_all(path)
    assert [f.data for f in frames] == [b"g" * 16]
    assert report.truncated
    assert report.error is not None and message in report.error
    assert report.error_offset == len(head) + len(good)


# -- not a capture -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    with pytest.raises(PcapError, match=r"nope\.pcap: no such file"):
        PcapReader(str(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(PcapError, match=r"empty\.pcap: empty file"):
        PcapReader(str(path))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="directory"):
        PcapReader(str(tmp_path))


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "random.bin"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000))))
    with pytest.raises(PcapError, match=r"random\.bin"):
        PcapReader(str(path))


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    with pytest.raises(PcapError, match="not a pcap or pcapng file"):
        PcapReader(str(path))


def test_unsupported_versions(tmp_path: Path) -> None:
    path = tmp_path / "v.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1))
    with pytest.raises(PcapError, match=r"unsupported pcap version 3\.0"):
        PcapReader(str(path))
    path.write_bytes(shb("<", major=2))
    with pytest.raises(PcapError, match="unsupported pcapng version 2"):
        PcapReader(str(path))


def test_single_pass_and_close(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    write_pcap(path, _frames(3))
    reader = PcapReader(str(path))
    it = iter(reader)
    next(it)
    it.close()  # counters are flushed per chunk and when iteration ends, even early
    assert reader.report.frames == 1
    with pytest.raises(RuntimeError):
        iter(reader)
    reader.close()


# -- real writers (editcap) and an independent reader (scapy) ------------------------------


def _scapy_frames(path: Path) -> list[tuple[float, bytes]]:
    from scapy.utils import PcapReader as ScapyPcapReader

    with ScapyPcapReader(str(path)) as r:
        return [(float(p.time), bytes(p)) for p in r]


@pytest.mark.parametrize("target", ["pcapng", "nsecpcap", "pcap"])
def test_editcap_outputs_match_scapy(tmp_path: Path, target: str) -> None:
    editcap = require_tool("editcap")
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = [
        Ether(src=M1, dst=M2) / IP(dst="192.0.2.1") / TCP(dport=25) / (b"x" * n)
        for n in (0, 1, 100, 1400)
    ]
    for i, p in enumerate(packets):
        p.time = 1_700_000_000 + i * 0.25
    src = tmp_path / "src.pcap"
    wrpcap(str(src), packets)
    out = tmp_path / f"out.{target}"
    subprocess.run([editcap, "-F", target, str(src), str(out)], check=True, capture_output=True)
    frames, report = read_all(out)
    reference = _scapy_frames(out)
    assert [(f.ts, f.data) for f in frames] == [
        (pytest.approx(ts, abs=1e-6), data) for ts, data in reference
    ]
    assert report.frames == len(packets) and not report.truncated


def test_editcap_snaplen_sets_wire_len(tmp_path: Path) -> None:
    editcap = require_tool("editcap")
    src = tmp_path / "src.pcap"
    write_pcap(src, [b"z" * 200, b"y" * 50])
    out = tmp_path / "snap.pcapng"
    subprocess.run(
        [editcap, "-F", "pcapng", "-s", "64", str(src), str(out)], check=True, capture_output=True
    )
    frames, _ = read_all(out)
    assert [(len(f.data), f.wire_len) for f in frames] == [(64, 200), (50, 50)]


def test_large_file_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcap_module, "CHUNK_SIZE", 64 * 1024)
    datas = [os.urandom(1500)] * 2000  # ~3 MB over ~47 chunks
    path = tmp_path / "big.pcap"
    write_pcap(path, datas)
    n = 0
    with PcapReader(str(path)) as reader:
        for f in reader:
            assert len(f.data) == 1500
            n += 1
    assert n == 2000 == reader.report.frames


# -- hostile files -------------------------------------------------------------------------


def _sample_files() -> list[bytes]:
    pcapng = (
        shb("<")
        + idb("<", LINKTYPE_ETHERNET, name="eth0", tsresol=6)
        + b"".join(epb("<", 0, i, bytes([i]) * (20 + i)) for i in range(4))
        + spb("<", b"s" * 30)
        + shb(">")
        + idb(">", LINKTYPE_RAW)
        + opb(">", 0, 5, b"o" * 21)
    )
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    pcap = head + b"".join(
        struct.pack("<IIII", i, i, 20 + i, 20 + i) + bytes([i]) * (20 + i) for i in range(4)
    )
    return [pcapng, pcap]


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=1),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(0, 255)), max_size=6
    ),
    cut=st.integers(min_value=0, max_value=500),
)
def test_mutated_files_never_raise_past_the_header(
    which: int, edits: list[tuple[int, int]], cut: int
) -> None:
    blob = bytearray(_sample_files()[which])
    for pos, value in edits:
        if pos < len(blob):
            blob[pos] = value
    data = bytes(blob[:cut])
    with tempfile.NamedTemporaryFile(suffix=".cap") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            reader = PcapReader(tmp.name)
        except PcapError as exc:
            assert tmp.name in str(exc)
            return
        with reader:
            frames = list(reader)
        report = reader.report
        assert report.frames == len(frames)
        assert report.bytes == sum(len(f.data) for f in frames)
        assert report.truncated == (report.error is not None)
        if report.truncated:
            assert report.error_offset is not None and 0 <= report.error_offset <= len(data)


# -- chunking: how the file is cut into read chunks never shows in what comes out ----------
# A record or block that straddles a chunk is read again from the file at the start of the
# next chunk, and one longer than a whole chunk is grown by concatenation (PcapReader._refill).
# Both must give the same frames, damage report (text and offset) and counters as one read.

WHOLE_FILE = 1 << 30  # one read takes any test file at once: the reference


def _read(path: str) -> tuple[list[Frame], ReadReport]:
    with PcapReader(path) as reader:
        frames = list(reader)
    return frames, reader.report


def _read_with_chunk(
    monkeypatch: pytest.MonkeyPatch, path: str, chunk: int
) -> tuple[list[Frame], ReadReport]:
    with monkeypatch.context() as m:
        m.setattr(pcap_module, "CHUNK_SIZE", chunk)
        return _read(path)


def _assert_chunking_invisible(monkeypatch: pytest.MonkeyPatch, path: str, chunk: int) -> None:
    expected = _read_with_chunk(monkeypatch, path, WHOLE_FILE)
    frames, report = _read_with_chunk(monkeypatch, path, chunk)
    assert frames == expected[0], chunk
    assert report == expected[1], chunk


@pytest.mark.parametrize("which", ["pcapng", "pcap"])
@pytest.mark.parametrize("chunk", [1, 5, 12, 16, 31, 64, 100])
def test_every_cut_reads_the_same_in_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, chunk: int
) -> None:
    blob = _sample_files()[0 if which == "pcapng" else 1]
    path = tmp_path / f"cut.{which}"
    for cut in range(24, len(blob) + 1):
        path.write_bytes(blob[:cut])
        _assert_chunking_invisible(monkeypatch, str(path), chunk)


def test_cut_record_after_a_chunk_boundary_keeps_frames_and_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = [bytes([i]) * (60 + i) for i in range(50)]
    path = tmp_path / "cut.pcap"
    offsets = write_pcap(path, datas)
    blob = path.read_bytes()
    path.write_bytes(blob[: offsets[40] + 30])  # record 40 cut inside its data
    frames, report = _read_with_chunk(monkeypatch, str(path), 256)
    assert [f.data for f in frames] == datas[:40]
    assert report.truncated and report.frames == 40
    assert report.error_offset == offsets[40]
    assert report.error == "file ends inside a packet record (30 bytes left)"


def test_pcapng_block_longer_than_a_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = bytes(range(256)) * 40  # a 10 KiB packet in 1 KiB chunks grows by concatenation
    path = tmp_path / "big.pcapng"
    path.write_bytes(
        shb("<")
        + idb("<", LINKTYPE_ETHERNET)
        + epb("<", 0, 1, b"a" * 60)
        + epb("<", 0, 2, big)
        + epb("<", 0, 3, b"b" * 60)
    )
    frames, report = _read_with_chunk(monkeypatch, str(path), 1024)
    assert [f.data for f in frames] == [b"a" * 60, big, b"b" * 60]
    assert not report.truncated
    _assert_chunking_invisible(monkeypatch, str(path), 1024)


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=1),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(0, 255)), max_size=6
    ),
    cut=st.integers(min_value=0, max_value=500),
    chunk=st.integers(min_value=1, max_value=128),
)
def test_mutated_files_read_the_same_in_any_chunk_size(
    which: int, edits: list[tuple[int, int]], cut: int, chunk: int
) -> None:
    blob = bytearray(_sample_files()[which])
    for pos, value in edits:
        if pos < len(blob):
            blob[pos] = value
    with tempfile.NamedTemporaryFile(suffix=".cap") as tmp:
        tmp.write(bytes(blob[:cut]))
        tmp.flush()
        try:
            PcapReader(tmp.name).close()
        except PcapError:
            return
        with pytest.MonkeyPatch.context() as monkeypatch:
            _assert_chunking_invisible(monkeypatch, tmp.name, chunk)


# -- CaptureSet: several captures as one stream in packet-time order ---------------------------


def _tiny(path: Path, times: list[float], tag: bytes) -> Path:
    """An Ethernet pcap whose frames carry `tag` and their index, at `times`."""
    from pcaps._lib.pcapfile import write_pcap

    write_pcap(path, 1, [(t, tag + bytes([i]) * 60) for i, t in enumerate(times)])
    return path


def _merged(paths: list[Path]) -> list[bytes]:
    from probes.pcap import CaptureSet

    with CaptureSet([str(p) for p in paths]) as captures:
        return [f.data[:2] for f in captures]


def test_a_capture_set_merges_by_time_and_breaks_ties_by_file_not_by_argument_order(
    tmp_path: Path,
) -> None:
    a = _tiny(tmp_path / "a.pcap", [5.0, 5.0, 6.0], b"A")
    b = _tiny(tmp_path / "b.pcap", [5.0, 5.0, 7.0], b"B")
    c = _tiny(tmp_path / "c.pcap", [1.0, 9.0], b"C")
    expected = [b"C\x00", b"A\x00", b"A\x01", b"B\x00", b"B\x01", b"A\x02", b"B\x02", b"C\x01"]
    assert _merged([a, b, c]) == expected
    assert _merged([c, b, a]) == expected


def test_a_capture_set_reports_every_file_empty_and_damaged_ones_too(tmp_path: Path) -> None:
    from probes.pcap import CaptureSet

    good = _tiny(tmp_path / "good.pcap", [1.0, 2.0, 3.0], b"G")
    empty = _tiny(tmp_path / "empty.pcap", [], b"E")
    cut = _tiny(tmp_path / "cut.pcap", [1.5, 2.5], b"D")
    cut.write_bytes(cut.read_bytes()[:-10])  # the last record is cut short
    captures = CaptureSet([str(good), str(empty), str(cut)])
    with captures:
        frames = [f.data[:1] for f in captures]
    assert frames == [b"G", b"D", b"G", b"G"]
    reports = {Path(r.path).name: r for r in captures.reports}
    assert set(reports) == {"good.pcap", "empty.pcap", "cut.pcap"}
    assert reports["cut.pcap"].truncated and reports["cut.pcap"].frames == 1
    assert reports["empty.pcap"].frames == 0 and not reports["good.pcap"].truncated
    assert captures.bytes_read() == captures.size  # every file read to its end


def test_a_capture_set_stopped_early_closes_its_files(tmp_path: Path) -> None:
    from probes.pcap import CaptureSet

    paths = [str(_tiny(tmp_path / f"{n}.pcap", [n, n + 10.0], b"X")) for n in range(3)]
    captures = CaptureSet(paths)
    with captures:
        next(iter(captures))
    assert captures._open == [] and len(captures.reports) == 1  # the others never opened
