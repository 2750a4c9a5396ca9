"""scripts/fuzz.py: the mutators, the minimiser, the judging of a replay, and a short run of the
fuzzer over the sample captures that must find nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from probes.pcap import PcapReader
from tests.replays import PCAPS, ROOT


def _load_fuzz() -> ModuleType:
    """scripts/ is not a package: load the script as a module (registered, so that the pool's
    forked workers unpickle its functions)."""
    spec = importlib.util.spec_from_file_location("sluice_fuzz", ROOT / "scripts" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()

# 100 cases of seed 1 take about 3 s on 2 cores. Case 31 of them is a pcapng whose timestamps
# lie past the year 9999, which crashed the meter before commit 33d3898 (ValueError: year
# 586524 is out of range): this run is that crash's regression test too, as long as the
# sample captures stay as they are (adding one changes the cases).
SHORT_RUN_SEED = 1
SHORT_RUN_CASES = 100
PCAP_SAMPLE = PCAPS / "smtp-plain" / "input.pcap"
PCAPNG_SAMPLE = PCAPS / "link-variants" / "input-pcapng.pcapng"


def _seed(path: Path) -> Any:
    return fuzz.load_seeds((str(path),))[0]


def _frames(data: bytes, tmp_path: Path) -> list[tuple[float, bytes, int]]:
    path = tmp_path / "capture"
    path.write_bytes(data)
    with PcapReader(str(path)) as reader:
        frames = [(f.ts, bytes(f.data), f.linktype) for f in reader]
        assert not reader.report.truncated, reader.report.error
    return frames


def test_split_gives_every_sample_back_byte_for_byte() -> None:
    for path in fuzz.find_seeds():
        data = path.read_bytes()
        capture = fuzz.split(data)
        assert capture.pack() == data
        assert capture.fmt == ("pcapng" if path.suffix == ".pcapng" else "pcap")
        assert capture.tail == b"" or path.parent.name == "truncated-capture"
        with PcapReader(str(path)) as reader:
            frames = sum(1 for _ in reader)
        blocks = len(fuzz._blocks_of(capture, fuzz.BT_EPB, 32))
        assert (blocks if capture.fmt == "pcapng" else len(capture.records)) == frames


@pytest.mark.parametrize(
    ("fmt", "order", "nano"),
    [("pcap", "<", True), ("pcap", ">", False), ("pcapng", "<", False), ("pcapng", ">", False)],
)
def test_re_encoded_captures_read_the_same(
    tmp_path: Path, fmt: str, order: str, nano: bool
) -> None:
    """The encoders write what the reader (probes/pcap.py) reads back unchanged."""
    want = _frames(PCAP_SAMPLE.read_bytes(), tmp_path)
    linktype, found = fuzz.packets(_seed(PCAP_SAMPLE).capture)
    if fmt == "pcap":
        data = fuzz.encode_pcap(linktype, found, order, nano)
    else:
        data = fuzz.encode_pcapng(linktype, found, order)
    have = _frames(data, tmp_path)
    assert [(d, lt) for _, d, lt in have] == [(d, lt) for _, d, lt in want]
    assert [round(ts, 6) for ts, _, _ in have] == [round(ts, 6) for ts, _, _ in want]


def test_cases_depend_only_on_seed_and_index() -> None:
    seeds = fuzz.load_seeds(tuple(str(p) for p in fuzz.find_seeds()))
    first = [fuzz.make_case(seeds, 7, i) for i in range(20)]
    assert [fuzz.make_case(seeds, 7, i) for i in reversed(range(20))][::-1] == first
    other = [fuzz.make_case(seeds, 8, i) for i in range(20)]
    assert sum(a.data != b.data for a, b in zip(first, other, strict=True)) >= 18
    assert all(case.steps for case in first)


def _captures() -> list[tuple[str, Any]]:
    pcap, pcapng = _seed(PCAP_SAMPLE).capture, _seed(PCAPNG_SAMPLE).capture
    big_endian = fuzz.split(fuzz.encode_pcapng(*fuzz.packets(pcap), order=">"))
    raw = fuzz.split(b"not a capture at all")
    return [("pcap", pcap), ("pcapng", pcapng), ("pcapng-be", big_endian), ("raw", raw)]


@pytest.mark.parametrize("mutator", fuzz.MUTATORS, ids=lambda m: m.name)
def test_every_mutator_changes_the_file_and_repeats_for_a_seed(mutator: Any) -> None:
    other = _seed(PCAPS / "http-post-raw" / "input.pcap")
    changed = 0
    for _name, capture in _captures():
        if not mutator.applies(capture):
            continue
        data = capture.pack()
        for n in range(12):
            result = mutator.mutate(capture, random.Random(n), other)
            assert result == mutator.mutate(capture, random.Random(n), other)
            if result is not None:
                assert result[0] != data, result[1]
                assert result[1]
                changed += 1
    assert changed >= 10


def test_mutators_reach_what_the_reader_checks() -> None:
    """Among a few hundred cases: timestamps past 9999 in pcapng, incl_len above orig_len,
    block lengths, headers, splices of two samples."""
    seeds = fuzz.load_seeds(tuple(str(p) for p in fuzz.find_seeds()))
    steps = " ".join(s for i in range(300) for s in fuzz.make_case(seeds, 3, i).steps)
    for mutator in fuzz.MUTATORS:
        assert f"{mutator.name}:" in steps
    assert "year ~1" in steps  # a five-digit year
    for words in ("incl_len", "caplen", "if_tsoffset", "leading length", "section"):
        assert words in steps


def test_ddmin_keeps_exactly_what_the_failure_needs() -> None:
    def fails(units: list[int]) -> bool:
        return {3, 41} <= set(units)

    assert fuzz.ddmin(list(range(60)), fails, time.monotonic() + 10) == [3, 41]


def test_minimise_drops_records_then_bytes_while_it_still_fails() -> None:
    data = PCAP_SAMPLE.read_bytes()
    marker = fuzz.split(data).records[7][16:40]

    def fails(candidate: bytes) -> bool:
        return marker in candidate

    smaller = fuzz.minimise(data, fails, time.monotonic() + 30)
    assert smaller == marker


def _late(candidate: bytes) -> bool:
    """A fake failure: some enhanced packet block is timed past the year 9999."""
    capture = fuzz.split(candidate)
    if capture.fmt != "pcapng":
        return False
    orders = fuzz.block_orders(capture)
    for i in fuzz._blocks_of(capture, fuzz.BT_EPB, 32):
        hi, lo = struct.unpack_from(orders[i] + "II", capture.records[i], 12)
        if (hi << 32) | lo >= fuzz.Y10K * 10**6:
            return True
    return False


def test_minimise_cuts_packets_inside_their_framing() -> None:
    """Cutting bytes out of a length-framed record loses the failure; cutting a packet's data
    with its lengths does not: left are the section header and one empty packet block."""
    capture = _seed(PCAPS / "smtp-auth" / "input.pcap").capture
    capture = fuzz.split(fuzz.encode_pcapng(*fuzz.packets(capture)))
    i = fuzz._blocks_of(capture, fuzz.BT_EPB, 32)[40]
    late = fuzz.Y10K * 10**6 + 1
    stamped = capture.records[i][:12] + struct.pack("<II", late >> 32, late & fuzz.U32)
    data = capture.with_records(
        fuzz._replaced(capture.records, i, stamped + capture.records[i][20:])
    )
    assert _late(data)
    smaller = fuzz.minimise(data, _late, time.monotonic() + 30)
    assert _late(smaller)
    assert len(smaller) == 28 + 32


def test_minimise_stops_at_the_deadline() -> None:
    data = PCAP_SAMPLE.read_bytes()
    assert fuzz.minimise(data, lambda candidate: True, time.monotonic() - 1) == data


def _classify(status: int, stderr: str = "", events: Any = None, timed_out: bool = False) -> Any:
    return fuzz.classify(status, timed_out, 50 << 20, stderr, events, fuzz.Limits())


def _stats(**anomalies: int) -> list[dict[str, Any]]:
    stats = {"anomalies": anomalies, "decoder": {"internal_error": 0}}
    return [{"event_type": "stats", "stats": stats}]


def test_classify() -> None:
    tb = (
        "Traceback (most recent call last):\n"
        f'  File "{ROOT}/sensor/metering/meter.py", line 522, in _local_hour\n'
        "    offset = ...\n"
        "ValueError: year 586524 is out of range\n"
    )
    assert _classify(1 << 8, tb)[:2] == (
        "traceback",
        "traceback ValueError in sensor/metering/meter.py:_local_hour",
    )
    assert _classify(0, timed_out=True)[0] == "hang"
    assert _classify(1 << 8, tb.replace("ValueError", "MemoryError"))[0] == "memory"
    assert _classify(3 << 8, "sluice: error: writing to X failed\n")[0] == "exit"
    assert _classify(signal.SIGSEGV)[:2] == ("exit", "signal SIGSEGV")
    assert _classify(2 << 8, "sluice: error: not a capture\n")[0] is None
    assert _classify(0, events=_stats())[0] is None
    assert _classify(0, events=_stats(parser_error=2))[0] == "internal_error"
    assert _classify(0, events=[])[0] == "bad_output"
    assert _classify(0, events=None)[0] == "bad_output"


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [("hang", "hang"), ("allocate", "memory"), ("raise", "traceback"), ("exit", "exit")],
)
def test_replay_enforces_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str, kind: str
) -> None:
    """The real fork, deadline and RLIMIT_AS, with the CLI replaced by a misbehaving one."""

    def misbehaving(argv: list[str]) -> int:
        if behaviour == "hang":
            time.sleep(60)
        elif behaviour == "allocate":
            return len(bytearray(1 << 30))
        elif behaviour == "raise":
            raise KeyError("boom")
        os.kill(os.getpid(), signal.SIGABRT)
        return 0

    monkeypatch.setattr(fuzz, "sluice_main", misbehaving)
    capture = tmp_path / "c.pcap"
    capture.write_bytes(PCAP_SAMPLE.read_bytes())
    started = time.monotonic()
    # The forked child starts as big as this process (which grows over a full test run): the
    # limit is what it may add, 512 MiB, less than the 1 GiB the "allocate" child asks for.
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limits = fuzz.Limits(timeout=1.0, memory=size + (512 << 20))
    outcome = fuzz.replay(capture, tmp_path, limits)
    assert outcome.kind == kind, outcome
    assert time.monotonic() - started < 10


def test_replay_passes_a_sample_and_refuses_a_non_capture_cleanly(tmp_path: Path) -> None:
    # As above: the forked child starts as big as this process, which after a full run (its
    # threads, nft and TLS libraries) can be near the default 1 GiB RLIMIT_AS; SQLite's mmap
    # then fails ("disk I/O error"). The limit is what the child may add.
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limits = fuzz.Limits(timeout=60, memory=size + fuzz.Limits().memory)
    capture = tmp_path / "c.pcap"
    capture.write_bytes(PCAP_SAMPLE.read_bytes())
    assert fuzz.replay(capture, tmp_path, limits).status == "exit 0"
    capture.write_bytes(b"these are not packets\n")
    outcome = fuzz.replay(capture, tmp_path, limits)
    assert (outcome.kind, outcome.status) == (None, "exit 2")


def test_failures_are_written_with_a_minimal_reproducer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crashes(argv: list[str]) -> int:
        raise RuntimeError("planted")

    monkeypatch.setattr(fuzz, "sluice_main", crashes)  # the pool's workers fork after this
    code = fuzz.main(["--cases", "2", "--out", str(tmp_path), "--minimise-seconds", "5"])
    assert code == 1
    cases = sorted(tmp_path.glob("case-*"))
    assert [c.name for c in cases] == ["case-000000", "case-000001"]
    readme = (cases[0] / "README").read_text()
    assert "seed 1" in readme and "mutations: " in readme and "RuntimeError: planted" in readme
    assert "Traceback" in (cases[0] / "stderr.txt").read_text()
    minimal = next(cases[0].glob("minimal.*"))
    assert minimal.stat().st_size < next(cases[0].glob("input.*")).stat().st_size
    assert "same failure as case-000000" in (cases[1] / "README").read_text()
    out = capsys.readouterr().out
    assert "2 failed (traceback 2)" in out and "traceback RuntimeError" in out


def test_a_short_run_over_the_samples_finds_nothing(tmp_path: Path) -> None:
    report = fuzz.fuzz(
        seed=SHORT_RUN_SEED,
        cases=SHORT_RUN_CASES,
        jobs=2,
        out=tmp_path,
        minimise_seconds=0,
        log=lambda line: None,
    )
    assert report.cases == SHORT_RUN_CASES
    found = [f"case {f.index}: {f.outcome.kind}: {f.outcome.detail}" for f in report.failures]
    assert found == [], "\n".join(found)


def test_case_31_of_seed_1_has_timestamps_past_the_year_9999() -> None:
    """What keeps the short run a regression test of the meter's year-10000 crash."""
    seeds = fuzz.load_seeds(tuple(str(p) for p in fuzz.find_seeds()))
    assert _late(fuzz.make_case(seeds, SHORT_RUN_SEED, 31).data)


@pytest.mark.parametrize("name", ["year-586524.pcapng", "tsoffset-minus-2-62.pcapng"])
def test_what_the_fuzzer_found_stays_fixed(name: str, tmp_path: Path) -> None:
    capture = Path(__file__).parent / "data" / "fuzz" / name
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sluice"), "replay", str(capture), "--out",
         str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    kinds = [
        json.loads(line)["anomaly"]["kind"]
        for line in (tmp_path / "o" / "events.jsonl").open()
        if '"event_type":"anomaly"' in line
    ]
    assert "capture_bad_timestamp" in kinds
