"""SYN flood, then an upload: what a flood costs the sensor, and whether it still sees the data.

Writes N SYNs from one internal host to distinct ports of one server (50,000 a second of
packet time), followed by the real upload of pcaps/http-post-raw, then runs `sluice replay`
on it and a plain read loop of the same file as the peer, each pinned to one core. Prints
packets/s, peak RSS, the flows the replay logged, and whether the upload after the flood was
extracted (an `http` event with its request body).

    .venv/bin/python benchmarks/flood_bench.py [--syns 500000] [--keep]

Targets (issue 11): peak RSS < 300 MB, >= 150,000 packets/s, the upload extracted. Prints
numbers; never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcaps._lib.pcapfile import write_pcap  # noqa: E402
from probes.pcap import PcapReader  # noqa: E402

SLUICE = str(Path(sys.executable).parent / "sluice")
T0 = 1_767_225_600.0
ETHERNET = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def syns(count: int) -> Iterator[tuple[float, bytes]]:
    src, dst = bytes([10, 0, 0, 5]), bytes([198, 51, 100, 20])
    for i in range(count):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        sport, dport = 1024 + i % 60000, 1 + (i // 60000) * 1000 + i % 997
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, i * 7919 & 0xFFFFFFFF, 0, 0x50, 2, 64240, 0, 0
        )
        yield T0 + i / 50_000, ETHERNET + ip + tcp


def build(path: Path, count: int) -> int:
    with PcapReader(str(ROOT / "pcaps" / "http-post-raw" / "input.pcap")) as reader:
        upload = [(f.ts, f.data) for f in reader]
    shift = T0 + count / 50_000 + 1 - upload[0][0]
    records = [*syns(count), *((ts + shift, data) for ts, data in upload)]
    write_pcap(path, 1, records)
    return len(records)


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child pinned to CPU 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(["taskset", "-c", "0", *argv], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syns", type=int, default=500_000, help="SYNs before the upload")
    parser.add_argument("--keep", action="store_true", help="keep the capture and outputs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-flood-"))
    try:
        capture = work / "flood.pcap"
        packets = build(capture, args.syns)
        reader = [sys.executable, "-c", "import sys; from probes.pcap import PcapReader\n"
                  "n = sum(1 for _ in PcapReader(sys.argv[1]))", str(capture)]  # fmt: skip
        read_s, read_rss = timed(reader)
        out = work / "out"
        replay_s, replay_rss = timed([SLUICE, "replay", str(capture), "--out", str(out),
                                      "--quiet"])  # fmt: skip
        events = [json.loads(line) for line in (out / "events.jsonl").open()]
        flows = sum(1 for e in events if e["event_type"] == "flow")
        found = any(e["event_type"] == "http" and e["http"].get("request_body_len") for e in events)
        print(f"capture: {packets:,} packets ({args.syns:,} SYNs, then pcaps/http-post-raw)")
        print("| contender | wall s | packets/s | peak RSS MiB |")
        print("|---|---:|---:|---:|")
        print(f"| probes.pcap read loop | {read_s:.2f} | {packets / read_s:,.0f} | "
              f"{read_rss / 1024:,.0f} |")  # fmt: skip
        print(f"| sluice replay | {replay_s:.2f} | {packets / replay_s:,.0f} | "
              f"{replay_rss / 1024:,.0f} |")  # fmt: skip
        print(f"flows logged: {flows:,}; the upload after the flood extracted: {found}")
        met = {
            "rss_lt_300mb": replay_rss / 1024 < 300,
            "pps_ge_150k": packets / replay_s >= 150_000,
            "upload_extracted": found,
        }
        print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
        print(f"command: {Path(sys.executable).name} benchmarks/flood_bench.py --syns {args.syns}")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
