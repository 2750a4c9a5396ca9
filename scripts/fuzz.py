#!/usr/bin/env python3
"""Mutation fuzzer for `sluice replay`: does a damaged capture ever crash it, hang it or make it
eat memory?

Usage: fuzz.py [--seconds N] [--cases N] [--case I] [--seed S] [--jobs J] [--out DIR]
               [--timeout T] [--memory-mib M] [--minimise-seconds M] [--runner fork|cli]

Theory of operation
-------------------
Seeds are the sample captures, `pcaps/*/input*.pcap*`. Case I of --seed S is built from a
`random.Random` seeded with (S, I) alone, so it is the same capture whatever --jobs and whatever
ran before it: `--seed S --case I` rebuilds and replays just that case. A case takes one sample
(a classic pcap is re-encoded as pcapng a third of the time, so the pcapng paths of the reader
see every sample, not only the one pcapng seed) and applies one to three mutators from
MUTATORS: bytes flipped, overwritten with boundary values, inserted, deleted, the file cut;
records duplicated, dropped, reordered, spliced in from a second sample (as they are,
re-encoded, or as a new pcapng section in the other byte order); file headers broken (pcap
magic, version, snaplen, link type; pcapng section and interface blocks, if_tsresol,
if_tsoffset); record timestamps and lengths edited (zero, huge, negative-looking, past the year
9999, incl_len above orig_len or the snaplen, with the data moved along or not); pcapng block
lengths; re-encoding; and scripts/differential.py's packet damage.

Each case is replayed in a child process with a deadline (--timeout, default 30 s) and an
address-space limit (RLIMIT_AS, --memory-mib, default 1 GiB). The `fork` runner (default)
forks a worker that has imported Sluice already and calls the `sluice` console script's
main() in the child: the same code, without an interpreter start per case (about 15 times the
cases per second). `--runner cli` execs `.venv/bin/sluice` itself. Either way the command is
`sluice replay FILE --out DIR --quiet --config EMPTY` (the built-in defaults, whatever
/etc/sluice or $SLUICE_CONFIG say).

A case fails (FAILURE_KINDS) when the child outlives the deadline (`hang`), hits the memory
bound (`memory`), writes a traceback (`traceback`), exits with a status other than 0 or 2
(2 = a clean usage error such as "not a capture") or dies by a signal (`exit`), or exits 0
with contained bugs counted in events.jsonl (`internal_error`, as tests/replays.py's
`internal_errors` counts them) or without a final stats event (`bad_output`).

Every failing case goes to DIR/case-NNNNNN/ (default build/fuzz/): the mutated capture,
README (seed, sample, mutations, failure, how to replay it) and stderr.txt. The first case of
each distinct failure (same kind, exception and function) is then delta-minimised: records,
then bytes, are dropped while the replay still fails the same way, for at most
--minimise-seconds (after the --seconds of fuzzing), into minimal.pcap[ng].

Exit status: 0 when no case failed, 1 when any did, 2 when the fuzzer cannot run.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import functools
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import dpkt

REPO = Path(__file__).resolve().parent.parent
# Run as a script, only scripts/ is on sys.path: tests.replays needs the repository root.
for _path in (str(REPO / "scripts"), str(REPO)):
    if _path not in sys.path:
        sys.path.append(_path)

from differential import mutate as damage_packets  # noqa: E402, I001
from probes.pcap import (  # noqa: E402
    MAX_BLOCK_LEN,
    MAX_CAPLEN,
    PCAP_MAGIC_NSEC,
    PCAP_MAGIC_USEC,
    PCAPNG_BYTE_ORDER_MAGIC,
    PCAPNG_SHB,
)
from sensor.cli.main import main as sluice_main  # noqa: E402
from tests.replays import INTERNAL_ERRORS, internal_errors  # noqa: E402

SEEDS = "pcaps/*/input*.pcap*"
SLUICE = REPO / ".venv" / "bin" / "sluice"
DEFAULT_OUT = REPO / "build" / "fuzz"
DEFAULT_SECONDS = 300.0
DEFAULT_TIMEOUT = 30.0  # per case
DEFAULT_MEMORY = 1 << 30  # RLIMIT_AS of a case's child
DEFAULT_MINIMISE_SECONDS = 60.0  # per distinct failure
OUTPUT_LIMIT = 1 << 30  # RLIMIT_FSIZE: a runaway events.jsonl fails the case, not the disk
CLEAN_EXITS = (0, 2)  # done; usage error ("not a capture")
PROGRESS_EVERY = 100  # cases between progress lines
PCAPNG_SHARE = 0.33  # of classic pcap samples re-encoded as pcapng before mutation
STDERR_TAIL = 64 * 1024  # bytes of a child's stderr kept
MINIMISE_BYTES_LIMIT = 64 * 1024  # byte-level minimisation only of files up to this size
FAILURE_KINDS = ("traceback", "exit", "hang", "memory", "internal_error", "bad_output")

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
Y10K = 253402300800  # 10000-01-01T00:00:00Z in Unix seconds: datetime's year limit
SECONDS_PER_YEAR = 31556952
SHB_BYTES = struct.pack("<I", PCAPNG_SHB)  # a palindrome: the same in either byte order
BT_IDB = 1
BT_EPB = 6
OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14
LINKTYPES = (0, 1, 9, 12, 101, 105, 108, 113, 127, 147, 228, 229, 276, 0xFFFF)
# Edge values of fields: zero, one, the sign bit, all ones, the reader's caps (probes/pcap.py).
U32_EDGES = (0, 1, 0x7FFFFFFF, 0x80000000, U32)
CAPLEN_EDGES = (*U32_EDGES, 14, 1500, MAX_CAPLEN, MAX_CAPLEN + 1)
# Snap lengths the header mutators try: zero, below one header, around a frame, the reader's cap.
SNAPLENS = (0, 1, 14, 54, 64, 1500, MAX_CAPLEN, MAX_CAPLEN + 1, 0x7FFFFFFF, U32)
BLOCK_LENGTH_EDGES = (*U32_EDGES, 8, 12, 13, 16, 28, 32, MAX_BLOCK_LEN, MAX_BLOCK_LEN + 4)
# if_tsoffset seconds (signed 64 bits): past either end of datetime's years, and of 64 bits.
TSOFFSETS = (-1, 1, -(1 << 31), 1 << 31, -Y10K, Y10K, -(1 << 62), 1 << 62, -(1 << 63),
             (1 << 63) - 1)  # fmt: skip
# pcapng timestamps (at the default microseconds): the ends of 32 and 64 bits, negative-looking
# ones, 2038, the last second of 9999 and the first of 10000 (datetime's limit).
EPB_TIMESTAMPS = (0, 1, U32, 1 << 32, 1 << 63, (1 << 63) - 1, U64, 0xFFFFFFFF00000000,
                  (1 << 31) * 10**6, (Y10K - 1) * 10**6, Y10K * 10**6)  # fmt: skip

T = TypeVar("T")


# -- captures as pieces ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    """A capture cut into pieces, whatever its damage: `head` (the classic pcap file header;
    empty for pcapng, whose Section Header Block is a block like the others), `records` (pcap:
    16-byte record header and data; pcapng: whole blocks) and `tail` (whatever follows the last
    whole record). `pack()` gives the file back byte for byte."""

    fmt: str  # "pcap", "pcapng" or "raw" (neither: everything is tail)
    order: str  # struct byte order of the pcap header or of the first pcapng section
    head: bytes
    records: tuple[bytes, ...]
    tail: bytes

    def pack(self) -> bytes:
        return self.head + b"".join(self.records) + self.tail

    def with_records(self, records: Sequence[bytes]) -> bytes:
        return dataclasses.replace(self, records=tuple(records)).pack()


@dataclass(frozen=True, slots=True)
class Packet:
    """A packet to re-encode: timestamp in units of `per_second`, wire length, captured data."""

    ts: int
    per_second: int
    orig_len: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Seed:
    name: str  # relative to the repository
    data: bytes
    capture: Capture


def split(data: bytes) -> Capture:
    if len(data) >= 24:
        for order in "<>":
            if struct.unpack_from(order + "I", data)[0] in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
                return _split_pcap(data, order)
    if len(data) >= 12 and data[:4] == SHB_BYTES:
        return _split_pcapng(data)
    return Capture("raw", "<", b"", (), data)


def _split_pcap(data: bytes, order: str) -> Capture:
    records: list[bytes] = []
    pos, n = 24, len(data)
    while pos + 16 <= n:
        end = pos + 16 + struct.unpack_from(order + "I", data, pos + 8)[0]
        if end > n:
            break
        records.append(data[pos:end])
        pos = end
    return Capture("pcap", order, data[:24], tuple(records), data[pos:])


def _split_pcapng(data: bytes) -> Capture:
    first = order = _bom_order(data, 0) or "<"
    records: list[bytes] = []
    pos, n = 0, len(data)
    while pos + 12 <= n:
        if data[pos : pos + 4] == SHB_BYTES:
            order = _bom_order(data, pos) or order
        blen = struct.unpack_from(order + "I", data, pos + 4)[0]
        if blen < 12 or blen % 4 or pos + blen > n:
            break
        records.append(data[pos : pos + blen])
        pos += blen
    return Capture("pcapng", first, b"", tuple(records), data[pos:])


def _bom_order(data: bytes, pos: int) -> str | None:
    for order in "<>":
        if struct.unpack_from(order + "I", data, pos + 8)[0] == PCAPNG_BYTE_ORDER_MAGIC:
            return order
    return None


def block_orders(capture: Capture) -> list[str]:
    """The byte order of each pcapng block: its section's."""
    order, orders = capture.order, []
    for block in capture.records:
        if block[:4] == SHB_BYTES:
            order = _bom_order(block, 0) or order
        orders.append(order)
    return orders


def _btype(block: bytes, order: str) -> int:
    return int(struct.unpack_from(order + "I", block)[0])


def _blocks_of(capture: Capture, btype: int, min_len: int) -> list[int]:
    orders = block_orders(capture)
    return [
        i
        for i, block in enumerate(capture.records)
        if len(block) >= min_len and _btype(block, orders[i]) == btype
    ]


def packets(capture: Capture) -> tuple[int, list[Packet]]:
    """The link type and packets of a capture, as far as they can be read."""
    if capture.fmt == "pcap":
        order = capture.order
        magic, _, _, _, _, _, linktype = struct.unpack_from(order + "IHHiIII", capture.head)
        per = 10**9 if magic == PCAP_MAGIC_NSEC else 10**6
        found = []
        for record in capture.records:
            sec, frac, _incl, orig = struct.unpack_from(order + "IIII", record)
            found.append(Packet(sec * per + frac, per, orig, record[16:]))
        return linktype & 0xFFFF, found
    linktype, found, orders = 1, [], block_orders(capture)
    idbs = _blocks_of(capture, BT_IDB, 20)
    if idbs:
        linktype = struct.unpack_from(orders[idbs[0]] + "H", capture.records[idbs[0]], 8)[0]
    for i in _blocks_of(capture, BT_EPB, 32):
        block, order = capture.records[i], orders[i]
        _if, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", block, 8)
        found.append(
            Packet((hi << 32) | lo, 10**6, orig, block[28 : min(28 + caplen, len(block) - 4)])
        )
    return linktype, found


# -- encoders ----------------------------------------------------------------------------------


def block(order: str, btype: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, body padded to 32 bits, total length again."""
    body += b"\0" * (-len(body) & 3)
    blen = len(body) + 12
    return struct.pack(order + "II", btype, blen) + body + struct.pack(order + "I", blen)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def pcap_record(order: str, per_second: int, packet: Packet) -> bytes:
    sec, frac = divmod(packet.ts * per_second // packet.per_second, per_second)
    fields = (sec & U32, frac, len(packet.data), packet.orig_len & U32)
    return struct.pack(order + "IIII", *fields) + packet.data


def epb(order: str, packet: Packet, if_id: int = 0) -> bytes:
    ts = packet.ts * 10**6 // packet.per_second & U64
    fields = (if_id, ts >> 32, ts & U32, len(packet.data), packet.orig_len & U32)
    return block(order, BT_EPB, struct.pack(order + "IIIII", *fields) + packet.data)


def encode_pcap(
    linktype: int, found: Sequence[Packet], order: str = "<", nano: bool = False
) -> bytes:
    magic, per = (PCAP_MAGIC_NSEC, 10**9) if nano else (PCAP_MAGIC_USEC, 10**6)
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, MAX_CAPLEN, linktype)
    return head + b"".join(pcap_record(order, per, p) for p in found)


def encode_pcapng(linktype: int, found: Sequence[Packet], order: str = "<") -> bytes:
    shb = block(order, PCAPNG_SHB, struct.pack(order + "IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1))
    idb = block(order, BT_IDB, struct.pack(order + "HHI", linktype, 0, 0))
    return shb + idb + b"".join(epb(order, p) for p in found)


# -- mutators ----------------------------------------------------------------------------------
# Each takes the capture, the case's random source and a second sample, and returns the new
# file and what was done, different from the input whenever it returns; None when it cannot
# apply after all. Mutators never change their arguments.

Mutated = tuple[bytes, str] | None


def _pick(rng: random.Random, values: Sequence[int], current: int) -> int:
    """One of `values` that is not `current`."""
    choices = [v for v in dict.fromkeys(values) if v != current]
    return rng.choice(choices) if choices else current ^ 1


def _index(rng: random.Random, n: int) -> int:
    """A record to edit: the first and the last more often than the rest."""
    r = rng.random()
    return 0 if r < 0.15 else n - 1 if r < 0.3 else rng.randrange(n)


def _resize(rng: random.Random, data: bytes, size: int) -> bytes:
    if size <= len(data):
        return data[:size]
    more = size - len(data)
    fill = rng.choice(("zeros", "random", "repeat"))
    if fill == "zeros":
        return data + bytes(more)
    if fill == "random" or not data:
        return data + rng.randbytes(more)
    return (data * (size // len(data) + 1))[:size]


def _replaced(records: tuple[bytes, ...], i: int, record: bytes) -> tuple[bytes, ...]:
    return (*records[:i], record, *records[i + 1 :])


def _year(ts_seconds: float) -> str:
    return f"year ~{int(1970 + ts_seconds / SECONDS_PER_YEAR)}"


def flip_bits(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    data = bytearray(capture.pack())
    spots: set[tuple[int, int]] = set()
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        at = rng.randrange(min(len(data), 64)) if rng.random() < 0.25 else rng.randrange(len(data))
        spots.add((at, rng.randrange(8)))  # distinct bits: two flips never cancel
    for at, bit in spots:
        data[at] ^= 1 << bit
    return bytes(data), "bits " + ", ".join(f"{at}.{bit}" for at, bit in sorted(spots))


INTERESTING = {
    1: (0, 1, 0x7F, 0x80, 0xFF),
    2: (0, 1, 0x7FFF, 0x8000, 0xFFFF, 1514),
    4: (0, 1, 0x7FFFFFFF, 0x80000000, U32, MAX_CAPLEN, MAX_CAPLEN + 1, MAX_BLOCK_LEN + 4),
    8: (0, 1 << 63, U64, Y10K * 10**6),
}


def set_interesting(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    data = capture.pack()
    width = rng.choice([w for w in INTERESTING if w <= len(data)])
    at = rng.randrange(len(data) - width + 1)
    order = rng.choice("<>")
    current = int.from_bytes(data[at : at + width], "little" if order == "<" else "big")
    value = _pick(rng, INTERESTING[width], current)
    packed = value.to_bytes(width, "little" if order == "<" else "big")
    return data[:at] + packed + data[at + width :], f"{width} bytes at {at} = {value:#x}"


def insert_bytes(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    data = capture.pack()
    at = rng.randrange(len(data) + 1)
    size = rng.choice((1, 2, 4, 16, 64, 1024))
    kind = rng.choice(("random", "zeros", "ff", "copy"))
    if kind == "copy" and data:
        start = rng.randrange(len(data))
        piece = data[start : start + size]
    elif kind == "zeros":
        piece = bytes(size)
    elif kind == "ff":
        piece = b"\xff" * size
    else:
        piece = rng.randbytes(size)
    return data[:at] + piece + data[at:], f"{len(piece)} bytes ({kind}) at {at}"


def delete_bytes(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    data = capture.pack()
    size = min(len(data), rng.choice((1, 2, 4, 16, 64, 1024)))
    at = rng.randrange(len(data) - size + 1)
    return data[:at] + data[at + size :], f"{size} bytes at {at}"


def truncate(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    data = capture.pack()
    if capture.records and rng.random() < 0.5:  # inside a record: the usual cut capture
        i = rng.randrange(len(capture.records))
        start = len(capture.head) + sum(len(r) for r in capture.records[:i])
        at = start + rng.randrange(len(capture.records[i]))
    else:
        at = rng.randrange(min(len(data), 64)) if rng.random() < 0.3 else rng.randrange(len(data))
    return data[:at], f"cut at byte {at} of {len(data)}"


def duplicate_records(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    records = capture.records
    i = rng.randrange(len(records))
    run = records[i : i + rng.randint(1, 4)]
    times = rng.choice((1, 1, 2, 8, 64))
    at = i + len(run) if rng.random() < 0.7 else rng.randrange(len(records) + 1)
    new = records[:at] + run * times + records[at:]
    return capture.with_records(new), f"records {i}..{i + len(run) - 1} x{times} at {at}"


def drop_records(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    records = capture.records
    i = rng.randrange(len(records))
    count = rng.randint(1, max(1, (len(records) - i) // rng.choice((1, 2, 8, 64))))
    new = records[:i] + records[i + count :]
    return capture.with_records(new), f"records {i}..{i + count - 1} dropped"


def reorder_records(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    records = list(capture.records)
    mode = rng.choice(("reverse", "shuffle", "swap"))
    i = rng.randrange(len(records) - 1)
    j = min(len(records), i + rng.choice((2, 3, 8, 64, len(records))))
    new = list(records)
    if mode == "reverse":
        new[i:j] = new[i:j][::-1]
    elif mode == "shuffle":
        window = new[i:j]
        rng.shuffle(window)
        new[i:j] = window
    if new == records:  # a swap, or a window of identical records: swap two that differ
        mode, j = "swap", i + 1
        while records[j] == records[i]:
            i, j = rng.randrange(len(records)), rng.randrange(len(records))
        new = list(records)
        new[i], new[j] = new[j], new[i]
        return capture.with_records(new), f"records {i} and {j} swapped"
    return capture.with_records(new), f"records {i}..{j - 1} {mode}d"


def splice(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    """Records of a second sample into this one: as they are, re-encoded in this file's format,
    or (pcapng) as a section of their own in either byte order."""
    records = capture.records
    at = rng.randint(1 if capture.fmt == "pcapng" else 0, len(records))
    modes = ["converted", "section"] if capture.fmt == "pcapng" else ["converted"]
    if other.capture.fmt == capture.fmt:
        modes.append("raw")
    mode = rng.choice(modes)
    linktype, found = packets(other.capture)
    if mode != "raw" and not found:
        return None
    if mode == "raw":
        start = rng.randrange(len(other.capture.records))
        piece = other.capture.records[start : start + rng.choice((1, 4, 64, 4096))]
    else:
        start = rng.randrange(len(found))
        run = found[start : start + rng.choice((1, 4, 64, 4096))]
        if mode == "section":
            piece = split(encode_pcapng(linktype, run, rng.choice("<>"))).records
        elif capture.fmt == "pcap":
            magic = struct.unpack_from(capture.order + "I", capture.head)[0]
            per = 10**9 if magic == PCAP_MAGIC_NSEC else 10**6
            piece = tuple(pcap_record(capture.order, per, p) for p in run)
        else:
            order = block_orders(capture)[at - 1]
            piece = tuple(epb(order, p) for p in run)
    new = records[:at] + tuple(piece) + records[at:]
    return capture.with_records(new), f"{len(piece)} records ({mode}) of {other.name} at {at}"


def reencode(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    linktype, found = packets(capture)
    if capture.fmt == "pcap":
        magic = struct.unpack_from(capture.order + "I", capture.head)[0]
        current = ("pcap", capture.order, magic == PCAP_MAGIC_NSEC)
    else:
        current = ("pcapng", capture.order, False)
    targets = [
        (fmt, order, nano)
        for fmt, order, nano in (
            ("pcap", "<", False),
            ("pcap", "<", True),
            ("pcap", ">", False),
            ("pcap", ">", True),
            ("pcapng", "<", False),
            ("pcapng", ">", False),
        )
        if (fmt, order, nano) != current
    ]
    fmt, order, nano = rng.choice(targets)
    endian = "big-endian" if order == ">" else "little-endian"
    if fmt == "pcapng":
        return encode_pcapng(linktype, found, order), f"as {endian} pcapng"
    unit = "ns" if nano else "us"
    return encode_pcap(linktype, found, order, nano), f"as {endian} pcap ({unit})"


def packet_damage(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    """scripts/differential.py's mutation: packets dropped, duplicated, swapped, cut, flipped."""
    source = capture.pack()
    snaplen = struct.unpack_from(capture.order + "I", capture.head, 16)[0]
    with tempfile.TemporaryDirectory(prefix="sluice-fuzz-") as tmp:
        given, damaged = Path(tmp) / "given.pcap", Path(tmp) / "damaged.pcap"
        given.write_bytes(source)
        for _ in range(8):  # a draw of all-zero rates changes nothing: draw again
            try:
                damage_packets(given, damaged, rng)
            except (dpkt.dpkt.Error, ValueError, struct.error):
                return None
            out = damaged.read_bytes()
            if len(out) >= 24:
                # dpkt writes snaplen 1500, which the reader enforces: keep the sample's, so
                # that the first full-size Ethernet frame does not end every damaged capture.
                order = split(out).order
                out = out[:16] + struct.pack(order + "I", snaplen) + out[20:]
            if out != source:
                return out, "packets dropped/duplicated/swapped/cut/flipped (differential.py)"
    return None


def pcap_header(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    order, head = capture.order, capture.head
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack(order + "IHHiIII", head)
    name = rng.choice(("magic", "version", "zone", "snaplen", "linktype"))
    if name == "magic":
        swapped = struct.unpack(">I" if order == "<" else "<I", struct.pack(order + "I", magic))[0]
        other_res = PCAP_MAGIC_NSEC if magic == PCAP_MAGIC_USEC else PCAP_MAGIC_USEC
        magic = _pick(
            rng, (swapped, other_res, 0xA1B2CD34, PCAPNG_SHB, 0, rng.getrandbits(32)), magic
        )
        what = f"magic {magic:#010x}"
    elif name == "version":
        versions = ((0, 0), (1, 0), (2, 0), (2, 4), (2, 0xFFFF), (3, 0), (0xFFFF, 0xFFFF))
        major, minor = rng.choice([v for v in versions if v != (major, minor)])
        what = f"version {major}.{minor}"
    elif name == "zone":
        zone, sigfigs = rng.choice(((-(1 << 31), U32), ((1 << 31) - 1, 0), (-3600, 6)))
        what = f"thiszone {zone}, sigfigs {sigfigs}"
    elif name == "snaplen":
        # Ethernet's 1514 and tcpdump's old 65535 too, in the order the cases were seeded with.
        snaplen = _pick(rng, (*SNAPLENS[:6], 1514, 65535, *SNAPLENS[6:]), snaplen)
        what = f"snaplen {snaplen}"
    else:
        values = (*LINKTYPES, 0x10000001, 0xFFFF0001, rng.getrandbits(16))  # FCS bits set
        linktype = _pick(rng, values, linktype)
        what = f"linktype {linktype:#x}"
    fields = (magic, major, minor, zone, sigfigs, snaplen, linktype)
    head = struct.pack(order + "IHHiIII", *fields)
    return head + b"".join(capture.records) + capture.tail, f"file header {what}"


def pcap_record_fields(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    order, records = capture.order, capture.records
    i = _index(rng, len(records))
    sec, frac, incl, orig = struct.unpack_from(order + "IIII", records[i])
    data = records[i][16:]
    snaplen = struct.unpack_from(order + "I", capture.head, 16)[0]
    name = rng.choice(("ts_sec", "ts_frac", "incl_len", "incl_len+data", "orig_len"))
    if name == "ts_sec":
        prev = struct.unpack_from(order + "I", records[i - 1])[0] if i else sec
        later = min(sec + 80 * SECONDS_PER_YEAR, U32)
        values: tuple[int, ...] = (
            *U32_EDGES,
            max(prev - 1, 0),
            max(sec - SECONDS_PER_YEAR, 0),
            later,
        )
        sec = _pick(rng, values, sec)
        what = f"ts_sec {sec:#x} ({_year(sec)})"
    elif name == "ts_frac":
        frac = _pick(rng, (999_999, 1_000_000, 999_999_999, 1_000_000_000, U32), frac)
        what = f"ts_frac {frac}"
    elif name == "incl_len":  # the data stays: the records after it are read out of step
        values = (*CAPLEN_EDGES, max(incl - 1, 0), incl + 1, orig + 1, min(snaplen + 1, U32))
        incl = _pick(rng, values, incl)
        what = f"incl_len {incl} (orig_len {orig}, snaplen {snaplen}; data not moved)"
    elif name == "incl_len+data":  # the data grows or shrinks with it: still in step
        values = (0, 1, 14, orig + 1, orig + rng.randint(2, 2000), MAX_CAPLEN, MAX_CAPLEN + 1)
        values += (min(snaplen + 1, MAX_CAPLEN + 1),)
        incl = _pick(rng, values, incl)
        data = _resize(rng, data, incl)
        what = f"incl_len {incl} with its data (orig_len {orig}, snaplen {snaplen})"
    else:
        values = (*U32_EDGES, max(incl - 1, 0), 0xFFFF, 0x10000 + incl)
        orig = _pick(rng, values, orig)
        what = f"orig_len {orig} (incl_len {incl})"
    record = struct.pack(order + "IIII", sec, frac, incl, orig) + data
    new = _replaced(records, i, record)
    return capture.with_records(new), f"record {i} {what}"


def pcapng_epb_fields(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    i = rng.choice(_blocks_of(capture, BT_EPB, 32))
    old, order = capture.records[i], block_orders(capture)[i]
    if_id, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", old, 8)
    ts = (hi << 32) | lo
    data = old[28 : min(28 + caplen, len(old) - 4)]
    options = old[28 + caplen + (-caplen & 3) : -4]
    name = rng.choice(("timestamp", "timestamp", "caplen", "caplen+data", "origlen", "interface"))
    resized = False
    if name == "timestamp":
        beyond = (Y10K * 10**6 + rng.randrange(10**15), rng.randrange(Y10K * 10**6, U64))
        values: tuple[int, ...] = (
            *EPB_TIMESTAMPS,
            *beyond,
            max(ts - SECONDS_PER_YEAR * 10**6, 0),
            ts + 1,
        )
        ts = _pick(rng, values, ts)
        what = f"timestamp {ts:#x} ({_year(ts / 1e6)} at microseconds)"
    elif name == "caplen":  # the block stays as it is
        values = (*CAPLEN_EDGES, max(caplen - 1, 0), caplen + 1, caplen + 4, orig + 1)
        values += (len(old) - 31, len(old))
        caplen = _pick(rng, values, caplen)
        what = f"caplen {caplen} (origlen {orig}, block {len(old)} bytes)"
    elif name == "caplen+data":  # the block grows or shrinks with it
        values = (0, 1, 14, orig + 1, orig + rng.randint(2, 2000), MAX_CAPLEN, MAX_CAPLEN + 1)
        caplen = _pick(rng, values, caplen)
        data, resized = _resize(rng, data, caplen), True
        what = f"caplen {caplen} with its data (origlen {orig})"
    elif name == "origlen":
        orig = _pick(rng, (*U32_EDGES, max(caplen - 1, 0), 0xFFFF), orig)
        what = f"origlen {orig} (caplen {caplen})"
    else:
        if_id = _pick(rng, (1, 2, 0xFFFF, 0x80000000, U32), if_id)
        what = f"interface id {if_id}"
    fields = struct.pack(order + "IIIII", if_id, ts >> 32, ts & U32, caplen, orig)
    if resized:
        new_block = block(order, BT_EPB, fields + data + b"\0" * (-len(data) & 3) + options)
    else:
        new_block = old[:8] + fields + old[28:]
    new = _replaced(capture.records, i, new_block)
    return capture.with_records(new), f"enhanced packet block {i} {what}"


def pcapng_block_length(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    i = _index(rng, len(capture.records))
    old, order = capture.records[i], block_orders(capture)[i]
    blen = len(old)
    mode = rng.choice(("leading", "trailing", "both", "grow", "shrink" if blen > 12 else "grow"))
    if mode in ("leading", "trailing", "both"):
        values: tuple[int, ...] = (*BLOCK_LENGTH_EDGES, blen - 4, blen + 1, blen + 4)
        value = _pick(rng, values, blen)
        packed = struct.pack(order + "I", value)
        if mode == "trailing":  # the trailer may be damaged already: change it for sure
            value = _pick(rng, values, struct.unpack_from(order + "I", old, blen - 4)[0])
            packed = struct.pack(order + "I", value)
        lead = packed if mode != "trailing" else old[4:8]
        trail = packed if mode != "leading" else old[-4:]
        new_block = old[:4] + lead + old[8:-4] + trail
        what = f"{mode} length {value} (is {blen})"
    else:  # both lengths agree with the new size: the body's contents do not
        body = old[8:-4]
        size = 4 * rng.randint(1, 64 if mode == "grow" else len(body) // 4)
        body = body + bytes(size) if mode == "grow" else body[: len(body) - size]
        new_block = old[:4] + struct.pack(order + "I", len(body) + 12) + body
        new_block += struct.pack(order + "I", len(body) + 12)
        what = f"{'grown' if mode == 'grow' else 'shrunk'} by {size} bytes"
    new = _replaced(capture.records, i, new_block)
    return capture.with_records(new), f"block {i} {what}"


def pcapng_section(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    i = rng.choice(_blocks_of(capture, PCAPNG_SHB, 28))
    old, order = capture.records[i], block_orders(capture)[i]
    name = rng.choice(("byte-order magic", "version", "section length"))
    if name == "byte-order magic":
        current = struct.unpack_from(order + "I", old, 8)[0]
        value = _pick(rng, (0x4D3C2B1A, 0, rng.getrandbits(32)), current)
        new_block = old[:8] + struct.pack(order + "I", value) + old[12:]
        what = f"{value:#010x}"
    elif name == "version":
        current = struct.unpack_from(order + "HH", old, 12)
        versions = ((0, 0), (1, 1), (1, 0xFFFF), (2, 0), (0xFFFF, 0))
        major, minor = rng.choice([v for v in versions if v != current])
        new_block = old[:12] + struct.pack(order + "HH", major, minor) + old[16:]
        what = f"{major}.{minor}"
    else:
        current = struct.unpack_from(order + "q", old, 16)[0]
        value = _pick(rng, (0, 1, 28, -2, 1 << 62, -(1 << 63)), current)
        new_block = old[:16] + struct.pack(order + "q", value) + old[24:]
        what = str(value)
    new = _replaced(capture.records, i, new_block)
    return capture.with_records(new), f"section header {i} {name} {what}"


def pcapng_interface(capture: Capture, rng: random.Random, other: Seed) -> Mutated:
    i = rng.choice(_blocks_of(capture, BT_IDB, 20))
    old, order = capture.records[i], block_orders(capture)[i]
    linktype, reserved, snaplen = struct.unpack_from(order + "HHI", old, 8)
    options = old[16:-4] or option(order, OPT_ENDOFOPT, b"")
    name = rng.choice(("linktype", "snaplen", "if_tsresol", "if_tsoffset", "if_name", "option"))
    if name == "linktype":
        linktype = _pick(rng, (*LINKTYPES, rng.getrandbits(16)), linktype)
        what = str(linktype)
    elif name == "snaplen":
        snaplen = _pick(rng, SNAPLENS, snaplen)
        what = str(snaplen)
    elif name == "if_tsresol":  # high bit: a power of two; else a power of ten
        resol = rng.choice(
            (0, 1, 3, 6, 9, 12, 19, 20, 38, 0x7F, 0x80, 0x8A, 0x9E, 0xBF, 0xC0, 0xFF)
        )
        options = option(order, IF_TSRESOL, bytes([resol])) + options
        what = f"{resol:#04x}"
    elif name == "if_tsoffset":
        value = rng.choice(TSOFFSETS)
        options = option(order, IF_TSOFFSET, struct.pack(order + "q", value)) + options
        what = f"{value} s"
    elif name == "if_name":
        ifname = rng.choice((b"", b"\xff\xfe\xfd", b"eth0" * 1000, bytes(range(256))))
        options = option(order, IF_NAME, ifname) + options
        what = f"{len(ifname)} bytes"
    else:
        code, length = rng.choice(
            ((IF_NAME, 0xFFFF), (IF_TSRESOL, 0), (IF_TSOFFSET, 4), (rng.getrandbits(16), 8))
        )
        options = struct.pack(order + "HH", code, length) + b"\xaa" * min(length, 8) + options
        what = f"code {code} length {length}"
        name = "option"
    body = struct.pack(order + "HHI", linktype, reserved, snaplen) + options
    new = _replaced(capture.records, i, block(order, BT_IDB, body))
    return capture.with_records(new), f"interface block {i} {name} {what}"


@dataclass(frozen=True, slots=True)
class Mutator:
    name: str
    weight: int
    applies: Callable[[Capture], bool]
    mutate: Callable[[Capture, random.Random, Seed], Mutated]


def _any(capture: Capture) -> bool:
    return len(capture.pack()) > 0


def _has_records(capture: Capture) -> bool:
    return capture.fmt != "raw" and len(capture.records) > 0


def _is_pcap(capture: Capture) -> bool:
    return capture.fmt == "pcap"


def _is_pcapng_with_blocks(capture: Capture) -> bool:
    return capture.fmt == "pcapng" and len(capture.records) > 0


def _pcapng_with(btype: int, min_len: int) -> Callable[[Capture], bool]:
    def applies(capture: Capture) -> bool:
        return capture.fmt == "pcapng" and bool(_blocks_of(capture, btype, min_len))

    return applies


MUTATORS = (
    Mutator("flip_bits", 3, _any, flip_bits),
    Mutator("set_interesting", 2, _any, set_interesting),
    Mutator("insert_bytes", 1, lambda c: True, insert_bytes),
    Mutator("delete_bytes", 1, _any, delete_bytes),
    Mutator("truncate", 1, _any, truncate),
    Mutator("duplicate_records", 2, _has_records, duplicate_records),
    Mutator("drop_records", 1, _has_records, drop_records),
    Mutator(
        "reorder_records", 2, lambda c: _has_records(c) and len(set(c.records)) > 1, reorder_records
    ),
    Mutator("splice", 2, lambda c: _is_pcap(c) or _has_records(c), splice),
    Mutator("reencode", 1, lambda c: _has_records(c) and bool(packets(c)[1]), reencode),
    Mutator("packet_damage", 1, lambda c: _is_pcap(c) and len(c.records) > 1, packet_damage),
    Mutator("pcap_header", 2, _is_pcap, pcap_header),
    Mutator("pcap_record_fields", 4, lambda c: _is_pcap(c) and bool(c.records), pcap_record_fields),
    Mutator("pcapng_epb_fields", 4, _pcapng_with(BT_EPB, 32), pcapng_epb_fields),
    Mutator("pcapng_block_length", 2, _is_pcapng_with_blocks, pcapng_block_length),
    Mutator("pcapng_section", 1, _pcapng_with(PCAPNG_SHB, 28), pcapng_section),
    Mutator("pcapng_interface", 2, _pcapng_with(BT_IDB, 20), pcapng_interface),
)


def mutate_once(capture: Capture, rng: random.Random, other: Seed) -> tuple[bytes, str]:
    """One mutation, chosen by weight among those that apply."""
    candidates = [m for m in MUTATORS if m.applies(capture)]
    while candidates:
        mutator = rng.choices(candidates, weights=[m.weight for m in candidates])[0]
        result = mutator.mutate(capture, rng, other)
        if result is not None:
            return result[0], f"{mutator.name}: {result[1]}"
        candidates.remove(mutator)
    raise AssertionError("insert_bytes always applies")


@dataclass(frozen=True, slots=True)
class Case:
    index: int
    sample: str
    steps: tuple[str, ...]
    data: bytes


def make_case(seeds: Sequence[Seed], seed: int, index: int) -> Case:
    """Case `index` of `seed`: depends on nothing else (not on the cases before it)."""
    rng = random.Random(f"sluice-fuzz/{seed}/{index}")
    base, other = rng.choice(seeds), rng.choice(seeds)
    capture, steps = base.capture, []
    if capture.fmt == "pcap" and rng.random() < PCAPNG_SHARE:
        capture = split(encode_pcapng(*packets(capture)))
        steps.append("re-encoded as pcapng")
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        data, step = mutate_once(capture, rng, other)
        capture = split(data)
        steps.append(step)
    return Case(index, base.name, tuple(steps), capture.pack())


def find_seeds() -> list[Path]:
    return sorted(p for p in REPO.glob(SEEDS) if p.suffix in (".pcap", ".pcapng"))


@functools.cache
def load_seeds(paths: tuple[str, ...]) -> tuple[Seed, ...]:
    seeds = []
    for path in map(Path, paths):
        data = path.read_bytes()
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        seeds.append(Seed(name, data, split(data)))
    return tuple(seeds)


# -- replaying a case --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
    runner: str = "fork"  # or "cli"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str | None  # one of FAILURE_KINDS, None when the case passed
    signature: str  # what makes two failures the same bug ("" when passed)
    detail: str  # one line
    status: str  # "exit 0", "signal SIGSEGV", "timeout"
    seconds: float
    max_rss: int  # bytes
    stderr: str  # its last STDERR_TAIL bytes


def replay(capture: Path, work: Path, limits: Limits) -> Outcome:
    """`sluice replay CAPTURE` in a child process under `limits`, judged."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    config = work / "empty.toml"  # the built-in defaults, whatever /etc/sluice says
    config.touch()
    stderr_path = work / "stderr"
    argv = ["replay", str(capture), "--out", str(out), "--quiet", "--config", str(config)]
    started = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(argv, stderr_path, limits)
    status, usage, timed_out = _wait(pid, limits.timeout)
    seconds = time.monotonic() - started
    stderr = ""
    if stderr_path.exists():
        with stderr_path.open("rb") as handle:
            handle.seek(max(0, stderr_path.stat().st_size - STDERR_TAIL))
            stderr = handle.read().decode("utf-8", "replace")
    events = None
    if not timed_out and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        events = read_events(out / "events.jsonl")
    # The scratch directory differs per run and worker: not part of what a failure is.
    judged = stderr.replace(str(work), "WORK")
    kind, signature, detail = classify(
        status, timed_out, usage.ru_maxrss * 1024, judged, events, limits
    )
    if timed_out:
        shown = "timeout"
    elif os.WIFSIGNALED(status):
        shown = f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        shown = f"exit {os.WEXITSTATUS(status)}"
    return Outcome(kind, signature, detail, shown, seconds, usage.ru_maxrss * 1024, stderr)


def _child(argv: list[str], stderr_path: Path, limits: Limits) -> NoReturn:
    """In the forked child: stdout to /dev/null, stderr to a file, the limits, then the CLI."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        # The parent's sys.stderr may not be fd 2 (pytest replaces it): bind both anew.
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - flushed before _exit
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
        # A crash in C code leaves the Python stack in stderr.txt (and not on the terminal
        # of a parent that had enabled faulthandler itself, as pytest does).
        faulthandler.enable(sys.stderr, all_threads=True)
        os.environ["PYTHONFAULTHANDLER"] = "1"  # the same for --runner cli
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
        if limits.runner == "cli":
            os.execv(SLUICE, [str(SLUICE), *argv])
        code = sluice_main(argv)  # what the console script does: sys.exit(main())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        try:  # as the interpreter reports an uncaught exception
            traceback.print_exc()
        except BaseException:
            os.write(2, b"Traceback (most recent call last):\n  (unprintable)\n")
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float) -> tuple[int, Any, bool]:
    """Wait for the child until `timeout` seconds, then kill it: (status, rusage, timed out)."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage, not ready


def read_events(path: Path) -> list[dict[str, Any]] | None:
    """The events of a run, or None when the file is missing or not JSON lines."""
    try:
        with path.open() as handle:
            return [json.loads(line) for line in handle]
    except (OSError, ValueError):
        return None


_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)', re.MULTILINE)
_MEMORY_WORDS = ("MemoryError", "Cannot allocate memory", "out of memory")


def traceback_site(stderr: str) -> tuple[str, str]:
    """The last traceback's exception line and the innermost frame in this repository
    (file:function; without line numbers, which move as the code is edited)."""
    tb = stderr[stderr.rfind("Traceback (most recent call last):") :]
    lines = [line for line in tb.splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if not line.startswith(" ")), "")
    frames = _FRAME.findall(tb)
    site = ""
    for file, function in reversed(frames):
        if file.startswith(str(REPO)) and "/.venv/" not in file:
            site = f"{Path(file).relative_to(REPO)}:{function}"
            break
    else:
        if frames:
            site = f"{Path(frames[-1][0]).name}:{frames[-1][1]}"
    return exception, site


def _digits(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def classify(
    status: int,
    timed_out: bool,
    max_rss: int,
    stderr: str,
    events: list[dict[str, Any]] | None,
    limits: Limits,
) -> tuple[str | None, str, str]:
    """(kind, signature, detail) of a finished child; kind None when it passed."""
    if timed_out:
        return "hang", "hang", f"still running after {limits.timeout:g} s"
    exception, site = traceback_site(stderr) if "Traceback" in stderr else ("", "")
    if max_rss > limits.memory or any(word in stderr for word in _MEMORY_WORDS):
        where = f" in {site}" if site else ""
        return "memory", f"memory{where}", f"over {limits.memory >> 20} MiB{where}: {exception}"
    if exception or site:
        kind_of = exception.split(":")[0]
        return "traceback", f"traceback {kind_of} in {site}", f"{exception} (in {site})"
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return "exit", f"signal {name}", f"killed by {name}"
    code = os.WEXITSTATUS(status)
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if code not in CLEAN_EXITS:
        return "exit", f"exit {code} {_digits(last)}", f"exit status {code}: {last}"
    if code == 2:
        return None, "", last
    if events is None or not any(e.get("event_type") == "stats" for e in events):
        return "bad_output", "bad_output", "exit 0 without a stats event in events.jsonl"
    found = internal_errors(events)
    if found:
        contained = [
            e["anomaly"]
            for e in events
            if e.get("event_type") == "anomaly" and e["anomaly"]["kind"] in INTERNAL_ERRORS
        ]
        # The exception's type tells contained bugs apart: "parser_error KeyError".
        kinds = sorted({f"{a['kind']} {a.get('detail', '').split(':')[0]}" for a in contained})
        shown = ", ".join(f"{k} {v}" for k, v in sorted(found.items()))
        first = f": {contained[0].get('detail', '')}" if contained else ""
        return "internal_error", "internal_error " + "; ".join(kinds), f"{shown}{first}"
    return None, "", ""


# -- the worker side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker process needs; picklable."""

    seeds: tuple[str, ...]
    seed: int
    limits: Limits
    scratch: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    index: int
    sample: str
    steps: tuple[str, ...]
    size: int
    outcome: Outcome
    data: bytes  # the capture, when the case failed


def _workdir(job: Job) -> Path:
    path = Path(job.scratch) / f"worker-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def replay_bytes(job: Job, data: bytes) -> Outcome:
    work = _workdir(job)
    capture = work / "capture"
    capture.write_bytes(data)
    return replay(capture, work, job.limits)


def run_case(job: Job, index: int) -> CaseResult:
    case = make_case(load_seeds(job.seeds), job.seed, index)
    outcome = replay_bytes(job, case.data)
    kept = case.data if outcome.kind else b""
    return CaseResult(case.index, case.sample, case.steps, len(case.data), outcome, kept)


# -- minimising --------------------------------------------------------------------------------


def ddmin(units: Sequence[T], fails: Callable[[list[T]], bool], deadline: float) -> list[T]:
    """Delta debugging (Zeller), complements only: drop ever smaller chunks of `units` while
    `fails` stays true, until no single unit can go or the deadline passes. `fails(units)` is
    assumed true."""
    current = list(units)
    if current and time.monotonic() < deadline and fails([]):
        return []
    chunks = 2
    while len(current) >= 2 and time.monotonic() < deadline:
        size = -(-len(current) // chunks)
        for start in range(0, len(current), size):
            candidate = current[:start] + current[start + size :]
            if fails(candidate):
                current = candidate
                chunks = max(chunks - 1, 2)
                break
            if time.monotonic() >= deadline:
                return current
        else:
            if chunks >= len(current):
                break
            chunks = min(chunks * 2, len(current))
    return current


def shrunk_packet(capture: Capture, i: int, order: str, size: int) -> bytes | None:
    """Record `i` with its packet data cut to `size` bytes and its lengths to match (a pcap
    record or a pcapng enhanced packet block whose lengths agree with its data); None for
    other records, and for those whose lengths do not agree: that may be the failure."""
    record = capture.records[i]
    if capture.fmt == "pcap":
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", record)
        if incl != len(record) - 16 or size >= incl:
            return None
        return struct.pack(order + "IIII", sec, frac, size, orig) + record[16 : 16 + size]
    if len(record) < 32 or _btype(record, order) != BT_EPB:
        return None
    if_id, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", record, 8)
    options = record[28 + caplen + (-caplen & 3) : -4]
    if 28 + caplen > len(record) - 4 or size >= caplen:
        return None
    data = record[28 : 28 + size] + b"\0" * (-size & 3)
    fields = struct.pack(order + "IIIII", if_id, hi, lo, size, orig)
    return block(order, BT_EPB, fields + data + options)


def minimise(data: bytes, fails: Callable[[bytes], bool], deadline: float) -> bytes:
    """A smaller capture that still `fails`: whole records (pcap records or pcapng blocks)
    dropped first, then the cut-off tail, then each packet's data cut short with its lengths
    to match (dropping bytes inside length-framed records seldom keeps a failure), then single
    bytes (files up to MINIMISE_BYTES_LIMIT)."""
    seen: dict[bytes, bool] = {}  # by digest: candidates of a large capture are megabytes

    def cached(candidate: bytes) -> bool:
        key = hashlib.sha256(candidate).digest()
        if key not in seen:
            seen[key] = fails(candidate)
        return seen[key]

    capture = split(data)
    if capture.records:
        kept = ddmin(capture.records, lambda rs: cached(capture.with_records(rs)), deadline)
        capture = dataclasses.replace(capture, records=tuple(kept))
        data = capture.pack()
        if capture.tail and time.monotonic() < deadline:
            without = dataclasses.replace(capture, tail=b"").pack()
            data = without if cached(without) else data
            capture = split(data)
        orders = block_orders(capture) if capture.fmt == "pcapng" else []
        for i in range(len(capture.records)):
            order = orders[i] if orders else capture.order
            for size in (0, 16, 64, len(capture.records[i]) // 2):
                shorter = shrunk_packet(capture, i, order, size)
                if time.monotonic() >= deadline or shorter is None:
                    break
                candidate = capture.with_records(_replaced(capture.records, i, shorter))
                if cached(candidate):
                    capture, data = split(candidate), candidate
                    break
    if len(data) <= MINIMISE_BYTES_LIMIT and time.monotonic() < deadline:
        data = bytes(ddmin(list(data), lambda bs: cached(bytes(bs)), deadline))
    return data


# -- the driver --------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    failures: list[CaseResult] = field(default_factory=list)
    minimal: dict[str, Path] = field(default_factory=dict)  # signature -> minimal capture
    statuses: Counter[str] = field(default_factory=Counter)  # "exit 0", "exit 2"...
    slowest: tuple[float, int] = (0.0, -1)  # seconds, case
    max_rss: int = 0

    def count(self, result: CaseResult) -> None:
        self.cases += 1
        self.statuses[result.outcome.status] += 1
        self.slowest = max(self.slowest, (result.outcome.seconds, result.index))
        self.max_rss = max(self.max_rss, result.outcome.max_rss)
        if result.outcome.kind:
            self.failures.append(result)

    def by_kind(self) -> Counter[str]:
        return Counter(f.outcome.kind for f in self.failures if f.outcome.kind)

    def distinct(self) -> dict[str, list[CaseResult]]:
        found: dict[str, list[CaseResult]] = {}
        for failure in sorted(self.failures, key=lambda f: f.index):
            found.setdefault(failure.outcome.signature, []).append(failure)
        return found


def _suffix(data: bytes) -> str:
    return ".pcapng" if data[:4] == SHB_BYTES else ".pcap"


def case_dir(out: Path, index: int) -> Path:
    return out / f"case-{index:06d}"


def write_failure(out: Path, seed: int, result: CaseResult, extra: Sequence[str] = ()) -> Path:
    directory = case_dir(out, result.index)
    directory.mkdir(parents=True, exist_ok=True)
    capture = directory / f"input{_suffix(result.data)}"
    capture.write_bytes(result.data)
    outcome = result.outcome
    shown = capture.relative_to(REPO) if capture.is_relative_to(REPO) else capture
    lines = [
        f"fuzz case {result.index} of seed {seed} (`scripts/fuzz.py --seed {seed} "
        f"--case {result.index}` builds and replays it again)",
        f"sample: {result.sample}",
        f"mutations: {'; '.join(result.steps)}",
        f"failure: {outcome.kind} ({outcome.status}, {outcome.seconds:.1f} s, "
        f"max RSS {outcome.max_rss >> 20} MiB): {outcome.detail}",
        f"replay: .venv/bin/sluice replay {shown} --out /tmp/sluice-fuzz-out --quiet",
        *extra,
    ]
    (directory / "README").write_text("\n".join(lines) + "\n")
    (directory / "stderr.txt").write_text(outcome.stderr)
    return directory


def fuzz(
    seed: int = 1,
    seconds: float | None = None,
    cases: int | None = None,
    first: int = 0,
    jobs: int = 2,
    out: Path = DEFAULT_OUT,
    limits: Limits | None = None,
    minimise_seconds: float = DEFAULT_MINIMISE_SECONDS,
    log: Callable[[str], None] = print,
) -> Report:
    """Cases `first`, `first + 1`... until `seconds` are used or `cases` have run."""
    paths = tuple(str(p) for p in find_seeds())
    if not paths:
        raise FileNotFoundError(f"no sample captures match {REPO / SEEDS}")
    load_seeds(paths)  # before the workers fork: they inherit it
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("case-*"):
        shutil.rmtree(stale, ignore_errors=True)
    limits = limits or Limits()
    report = Report(seed)
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")
    end = first + cases if cases is not None else None
    with tempfile.TemporaryDirectory(prefix="sluice-fuzz-") as scratch:
        job = Job(paths, seed, limits, scratch)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            pending: set[Future[CaseResult]] = set()
            index = first
            while True:
                while (
                    len(pending) < 2 * jobs
                    and (end is None or index < end)
                    and time.monotonic() < deadline
                ):
                    pending.add(pool.submit(run_case, job, index))
                    index += 1
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    report.count(result)
                    if result.outcome.kind:
                        where = write_failure(out, seed, result)
                        log(
                            f"fuzz: case {result.index} FAILED: {result.outcome.kind}: "
                            f"{result.outcome.detail} -> {where}"
                        )
                    if report.cases % PROGRESS_EVERY == 0:
                        elapsed = time.monotonic() - started
                        log(
                            f"fuzz: {report.cases} cases in {elapsed:.0f} s "
                            f"({report.cases / elapsed:.1f}/s), {len(report.failures)} failed"
                        )
            report.seconds = time.monotonic() - started
            for signature, failures in report.distinct().items():
                _minimise_failure(
                    pool, job, out, signature, failures, report, minimise_seconds, log
                )
    for line in summary(report, jobs):
        log(line)
    (out / "summary.txt").write_text("\n".join(summary(report, jobs)) + "\n")
    return report


def _minimise_failure(
    pool: ProcessPoolExecutor,
    job: Job,
    out: Path,
    signature: str,
    failures: list[CaseResult],
    report: Report,
    budget: float,
    log: Callable[[str], None],
) -> None:
    """Minimise the first case of a distinct failure; the others' READMEs point to it."""
    first = failures[0]
    for other in failures[1:]:
        write_failure(out, job.seed, other, [f"same failure as {case_dir(out, first.index).name}"])
    if budget <= 0:
        return
    started = time.monotonic()

    def fails(data: bytes) -> bool:
        return pool.submit(replay_bytes, job, data).result().signature == signature

    if not fails(first.data):
        write_failure(out, job.seed, first, ["minimal: not made, the failure did not recur"])
        return
    smaller = minimise(first.data, fails, started + budget)
    target = case_dir(out, first.index) / f"minimal{_suffix(smaller)}"
    target.write_bytes(smaller)
    report.minimal[signature] = target
    records = len(split(smaller).records), len(split(first.data).records)
    line = (
        f"minimal: {target.name}: {records[0]} of {records[1]} records, {len(smaller)} of "
        f"{len(first.data)} bytes, fails the same way (minimised in "
        f"{time.monotonic() - started:.0f} s)"
    )
    write_failure(out, job.seed, first, [line])
    log(f"fuzz: {signature}: {line}")


def summary(report: Report, jobs: int) -> list[str]:
    rate = report.cases / report.seconds if report.seconds else 0.0
    kinds = ", ".join(f"{k} {n}" for k, n in report.by_kind().most_common()) or "none"
    lines = [
        f"fuzz: seed {report.seed}: {report.cases} cases in {report.seconds:.0f} s "
        f"({rate:.1f}/s, {jobs} jobs); {len(report.failures)} failed ({kinds})",
        f"  outcomes: {', '.join(f'{k} {n}' for k, n in sorted(report.statuses.items()))}; "
        f"slowest case {report.slowest[1]} ({report.slowest[0]:.2f} s), "
        f"largest RSS {report.max_rss >> 20} MiB",
    ]
    for signature, failures in report.distinct().items():
        first = failures[0]
        minimal = report.minimal.get(signature)
        lines.append(
            f"  {signature}: {len(failures)} case(s), first case {first.index}: "
            f"{first.outcome.detail}" + (f" -> {minimal}" if minimal else "")
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help=f"fuzzing time (default {DEFAULT_SECONDS:g} unless --cases is given)",
    )
    parser.add_argument("--cases", type=int, help="stop after this many cases")
    parser.add_argument("--case", type=int, help="run only this case (of --seed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="cases replayed at once")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="failing cases go here")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per case")
    parser.add_argument(
        "--memory-mib", type=int, default=DEFAULT_MEMORY >> 20, help="address-space limit per case"
    )
    parser.add_argument(
        "--minimise-seconds",
        type=float,
        default=DEFAULT_MINIMISE_SECONDS,
        help="per distinct failure, after the fuzzing",
    )
    parser.add_argument(
        "--runner",
        choices=("fork", "cli"),
        default="fork",
        help="fork a preloaded worker, or exec .venv/bin/sluice per case",
    )
    args = parser.parse_args(argv)
    seconds, cases, first = args.seconds, args.cases, 0
    if args.case is not None:
        seconds, cases, first = None, 1, args.case
    elif seconds is None and cases is None:
        seconds = DEFAULT_SECONDS
    if args.jobs < 1 or (cases is not None and cases < 1):
        parser.error("--jobs and --cases must be at least 1")
    limits = Limits(args.timeout, args.memory_mib << 20, args.runner)
    try:
        report = fuzz(
            args.seed,
            seconds,
            cases,
            first,
            args.jobs,
            args.out.resolve(),
            limits,
            args.minimise_seconds,
            lambda line: print(line, flush=True),
        )
    except FileNotFoundError as exc:
        print(f"fuzz: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the failing cases found so far are in --out already
        print("fuzz: interrupted", file=sys.stderr)
        return 130
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
