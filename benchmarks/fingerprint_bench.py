#!/usr/bin/env python3
"""Cost of the fingerprint stage: per small object, per large object, and memory on a huge ZIP.

Usage: fingerprint_bench.py [--repeat R] [--large-mb MB] [--large-repeat R] [--big-zip GB]
                            [--seed S] [--cpu N] [--skip-large] [--skip-big] [--timeout SECONDS]

Every object goes through `sensor.content.objects.FileObject` as the pipeline drives it:
`update(chunk)` ... `finish(True)` (incremental SHA-256, signature table, per-format analysers,
entropy, containers opened into member objects). Each measurement has a peer from the same run:

1. Per-object cost. The small documents of the replay benchmark's "objects" mix (gen_mixed.py's
   ObjectPools: JSON, HTML, CSV, text, PNG, JPEG, PDF, form posts, ZIP, gzip; 200 B - 20 KB) and
   the fingerprint corpus (tests/data/fingerprint/corpus/*), each object fed whole, against
   `hashlib.sha256(data).hexdigest()` alone (the floor), one libmagic call
   (`magic.Magic(mime=True).from_buffer(data[:8192])`) and both together (the path before the
   fingerprint stage: hash + libmagic). Microseconds per object, best of R passes.
2. Large-object throughput. A `--large-mb` (200) MB CSV, random blob, deflate ZIP of CSV (its
   members opened and hashed) and stored ZIP, in 64 KiB chunks, against hashlib.sha256 alone over
   the same chunks. MB/s counts the object's own bytes (10^6), best of `--large-repeat` (2).
3. Memory. A `--big-zip` (2) GB ZIP upload is generated on the fly (local headers, member data
   and central directory from a generator, never on disk nor whole in memory) and streamed in
   64 KiB chunks through one FileObject in a child process; its peak RSS comes from os.wait4()
   (ru_maxrss), next to a peer child that streams the same generator through hashlib.sha256
   only. 20 members: the even ones deflate (100 MiB of CSV each), the odd ones stored CSV filling
   the archive up to the size asked for. At the default 2 GB they decode to 2.8 GB, within
   ContentCaps' default 4 GiB `max_expanded_bytes`, so every member is opened with the defaults
   (a larger --big-zip raises the cap: what is measured is whether memory stays flat, not where
   the budget stops). Target: < 150 MB.

Runs pinned to one CPU (`--cpu`, default 0; the children inherit it). Prints Markdown tables and
the command, writes benchmarks/out/fingerprint-results.json. Never fails on timing: the exit
status is non-zero only when the benchmark itself cannot run.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import gen_mixed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from sensor.content.objects import ContentCaps, FileInfo, FileObject  # noqa: E402

OUT_DIR = BENCH_DIR / "out"
RESULTS = OUT_DIR / "fingerprint-results.json"
CORPUS = REPO / "tests" / "data" / "fingerprint" / "corpus"
CHUNK = 64 * 1024
MAGIC_PREFIX = 8192  # what the libmagic path looked at
CSV_BLOCK = 1024 * 1024  # the repeated unit of every large CSV (and of the ZIP members)
BIG_MEMBERS = 20
BIG_DEFLATE_MEMBER = 100  # blocks of CSV_BLOCK decoded per deflate member of the big ZIP
LARGE_ZIP_MEMBERS = 10
ZIP32_LIMIT = 0xFFFFFFFF  # no ZIP64 records are written: the archive must stay below 4 GiB
TARGET_BIG_RSS_MB = 150
DOS_TIME = 8 << 11  # 08:00:00
DOS_DATE = ((2026 - 1980) << 9) | (1 << 5) | 5  # 2026-01-05

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
END_OF_CENTRAL = struct.Struct("<IHHHHIIH")


# -- inputs ------------------------------------------------------------------------------------


def csv_block(seed: int) -> bytes:
    """CSV_BLOCK bytes of whole CSV lines (the header first) from gen_mixed's text pool."""
    rng = random.Random(seed)
    lines = ["record_id,site,department,quantity,note\n"]
    size = len(lines[0])
    i = 0
    while size < CSV_BLOCK:
        i += 1
        line = (
            f"{i},{rng.choice(gen_mixed.WORDS)}-{rng.randrange(100)},"
            f"{rng.choice(gen_mixed.WORDS)},{rng.randrange(1, 500)},"
            f"{rng.choice(gen_mixed.WORDS)} {rng.choice(gen_mixed.WORDS)}\n"
        )
        lines.append(line)
        size += len(line)
    text = "".join(lines).encode()
    return text[: text.rindex(b"\n", 0, CSV_BLOCK) + 1].ljust(CSV_BLOCK, b"\n")


@dataclass(frozen=True, slots=True)
class ZipMember:
    name: str
    deflate: bool
    blocks: int  # decoded size in units of the repeated block


def deflate_block(block: bytes) -> bytes:
    """The block as raw deflate ending in a full flush: byte-aligned and with the history reset
    (RFC 1951 3.2.4 stored-block marker), so N copies in a row are a valid stream of N blocks."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)


DEFLATE_END = b"\x03\x00"  # a final, empty fixed-Huffman block (BFINAL=1, BTYPE=01, EOB)


def zip_stream(members: list[ZipMember], block: bytes) -> Iterator[bytes]:
    """A ZIP (APPNOTE 4.3: local header + data per member, then the central directory) of
    members that repeat `block`, yielded piece by piece; at most one block is ever held."""
    packed = deflate_block(block)
    crc_block: dict[int, int] = {}
    central: list[bytes] = []
    offset = 0
    for m in members:
        if m.blocks not in crc_block:
            crc = 0
            for _ in range(m.blocks):
                crc = zlib.crc32(block, crc)
            crc_block[m.blocks] = crc
        crc = crc_block[m.blocks]
        usize = len(block) * m.blocks
        csize = len(packed) * m.blocks + len(DEFLATE_END) if m.deflate else usize
        method = 8 if m.deflate else 0
        name = m.name.encode()
        header = LOCAL_HEADER.pack(
            0x04034B50, 20, 0, method, DOS_TIME, DOS_DATE, crc, csize, usize, len(name), 0
        )
        central.append(
            CENTRAL_HEADER.pack(
                0x02014B50,
                20,
                20,
                0,
                method,
                DOS_TIME,
                DOS_DATE,
                crc,
                csize,
                usize,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
        yield header + name
        piece = packed if m.deflate else block
        for _ in range(m.blocks):
            yield piece
        if m.deflate:
            yield DEFLATE_END
        offset += len(header) + len(name) + csize
    directory = b"".join(central)
    yield directory
    yield END_OF_CENTRAL.pack(
        0x06054B50, 0, 0, len(members), len(members), len(directory), offset, 0
    )


def zip_size(members: list[ZipMember], block: bytes) -> int:
    packed = len(deflate_block(block))
    total = 22
    for m in members:
        name = len(m.name.encode())
        data = packed * m.blocks + len(DEFLATE_END) if m.deflate else len(block) * m.blocks
        total += 30 + name + data + 46 + name
    return total


def big_zip_members(target: int, block: bytes) -> list[ZipMember]:
    """BIG_MEMBERS members: even ones deflate BIG_DEFLATE_MEMBER blocks, odd ones stored, sized
    so the archive is about `target` bytes."""
    packed = len(deflate_block(block))
    deflated = (BIG_MEMBERS + 1) // 2
    rest = max(0, target - deflated * packed * BIG_DEFLATE_MEMBER)
    stored_blocks = max(1, rest // (BIG_MEMBERS // 2) // len(block))
    return [
        ZipMember(
            f"export/part-{i:02d}.csv",
            i % 2 == 0,
            BIG_DEFLATE_MEMBER if i % 2 == 0 else stored_blocks,
        )
        for i in range(BIG_MEMBERS)
    ]


def rechunk(pieces: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Exactly `size`-byte chunks (the last one shorter), buffering less than one chunk."""
    pending = bytearray()
    for piece in pieces:
        view = memoryview(piece)
        if pending:
            take = size - len(pending)
            pending += view[:take]
            view = view[take:]
            if len(pending) < size:
                continue
            yield bytes(pending)
            pending.clear()
        full = len(view) - len(view) % size
        for off in range(0, full, size):
            yield bytes(view[off : off + size])
        pending += view[full:]
    if pending:
        yield bytes(pending)


# -- measuring ---------------------------------------------------------------------------------


def pin(cpu: int | None) -> bool:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(0, {cpu})
    return True


def walk(info: FileInfo) -> Iterator[FileInfo]:
    for member in info.members:
        yield member
        yield from walk(member)


def run_file_object(
    chunks: Iterable[bytes], caps: ContentCaps | None = None, **kw: Any
) -> FileObject:
    fo = FileObject(caps=caps, **kw) if caps is not None else FileObject(**kw)
    for chunk in chunks:
        fo.update(chunk)
    return fo


@dataclass(slots=True)
class Group:
    name: str
    docs: list[tuple[bytes, str | None, str | None]]  # (data, filename, declared type)


def small_groups(seed: int) -> list[Group]:
    rng = random.Random(seed)
    pools = gen_mixed.ObjectPools.build(rng, gen_mixed.Pools.build(rng).text)
    groups = []
    for kind, docs in pools.docs.items():
        ctype, ext = gen_mixed.OBJECT_KINDS[kind]
        filename = None if kind == "form" else f"doc{ext.decode()}"
        groups.append(Group(kind, [(d, filename, ctype.decode()) for d in docs]))
    corpus = [
        (p.read_bytes(), p.name, None)
        for p in sorted(CORPUS.iterdir())
        if p.is_file() and p.name != "manifest.json"
    ]
    if corpus:
        groups.append(Group(f"corpus ({len(corpus)} files)", corpus))
    return groups


def per_object(groups: list[Group], repeat: int) -> list[dict[str, Any]]:
    import magic

    m = magic.Magic(mime=True)
    sha256 = hashlib.sha256

    def hash_only(docs: list[tuple[bytes, str | None, str | None]]) -> None:
        for data, _f, _t in docs:
            sha256(data).hexdigest()

    def magic_only(docs: list[tuple[bytes, str | None, str | None]]) -> None:
        for data, _f, _t in docs:
            m.from_buffer(data[:MAGIC_PREFIX])

    def old_path(docs: list[tuple[bytes, str | None, str | None]]) -> None:
        for data, _f, _t in docs:
            sha256(data).hexdigest()
            m.from_buffer(data[:MAGIC_PREFIX])

    def file_object(docs: list[tuple[bytes, str | None, str | None]]) -> None:
        for data, filename, declared in docs:
            fo = FileObject(filename=filename, declared_type=declared)
            fo.update(data)
            fo.finish(True)

    contenders: list[tuple[str, Callable[[list[tuple[bytes, str | None, str | None]]], None]]] = [
        ("sha256", hash_only),
        ("libmagic", magic_only),
        ("sha256+libmagic", old_path),
        ("FileObject", file_object),
    ]
    rows = []
    for g in groups:
        types: collections.Counter[str] = collections.Counter()
        members = 0
        for data, filename, declared in g.docs:  # warm-up, and what the stage made of them
            fo = FileObject(filename=filename, declared_type=declared)
            fo.update(data)
            info = fo.finish(True)
            types[(info.fingerprint.type if info.fingerprint else None) or "-"] += 1
            members += sum(1 for _ in walk(info))
        best = {name: float("inf") for name, _ in contenders}
        for _ in range(repeat):
            for name, fn in contenders:
                started = time.perf_counter()
                fn(g.docs)
                best[name] = min(best[name], time.perf_counter() - started)
        n = len(g.docs)
        rows.append(
            {
                "group": g.name,
                "objects": n,
                "mean_bytes": sum(len(d) for d, _f, _t in g.docs) / n,
                "us_per_object": {k: v / n * 1e6 for k, v in best.items()},
                "types": dict(types.most_common()),
                "members": members,
            }
        )
    return rows


def large_inputs(size: int, seed: int, block: bytes) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, builder) for each large object; built one at a time to bound the parent's memory."""
    reps = max(1, size // len(block))

    def csv() -> bytes:
        return block * reps

    def blob() -> bytes:
        return random.Random(seed).randbytes(size)

    def zipped(deflate: bool) -> bytes:
        unit = len(deflate_block(block)) if deflate else len(block)
        per_member = max(1, size // LARGE_ZIP_MEMBERS // unit)
        members = [
            ZipMember(f"table-{i:02d}.csv", deflate, per_member) for i in range(LARGE_ZIP_MEMBERS)
        ]
        return b"".join(zip_stream(members, block))

    yield "CSV", csv
    yield "random blob", blob
    yield "ZIP, deflate CSV", lambda: zipped(True)
    yield "ZIP, stored CSV", lambda: zipped(False)


def large_objects(size: int, repeat: int, seed: int) -> list[dict[str, Any]]:
    block = csv_block(seed)
    rows = []
    for name, build in large_inputs(size, seed, block):
        data = build()
        chunks = [data[off : off + CHUNK] for off in range(0, len(data), CHUNK)]
        del data
        total = sum(len(c) for c in chunks)
        best_hash = best_fo = float("inf")
        info: FileInfo | None = None
        anomalies: list[str] = []
        for _ in range(repeat):
            started = time.perf_counter()
            h = hashlib.sha256()
            for chunk in chunks:
                h.update(chunk)
            h.hexdigest()
            best_hash = min(best_hash, time.perf_counter() - started)
            started = time.perf_counter()
            fo = run_file_object(chunks, filename="upload" + (".zip" if "ZIP" in name else ""))
            info = fo.finish(True)
            best_fo = min(best_fo, time.perf_counter() - started)
            anomalies = sorted({a.kind for a in fo.anomalies})
        del chunks
        assert info is not None
        members = list(walk(info))
        fp = info.fingerprint
        rows.append(
            {
                "input": name,
                "bytes": total,
                "members": len(members),
                "member_bytes": sum(m.size for m in members),
                "sha256_mb_s": total / best_hash / 1e6,
                "fileobject_mb_s": total / best_fo / 1e6,
                "fileobject_s": best_fo,
                "type": fp.type if fp else None,
                "encrypted": fp.encrypted if fp else None,
                "encryption": fp.encryption if fp else None,
                "member_types": dict(
                    collections.Counter(
                        (m.fingerprint.type if m.fingerprint else None) or "-" for m in members
                    )
                ),
                "anomalies": anomalies,
            }
        )
    return rows


# -- the big ZIP child -------------------------------------------------------------------------


def child_big_zip(gb: float, seed: int, peer: bool) -> int:
    """Stream the big ZIP through FileObject (or, as the peer, hashlib.sha256); JSON to stdout."""
    started = time.perf_counter()
    block = csv_block(seed)
    members = big_zip_members(int(gb * 1e9), block)
    decoded = sum(len(block) * m.blocks for m in members)
    out: dict[str, Any] = {"zip_bytes": zip_size(members, block), "decoded_bytes": decoded}
    chunks = rechunk(zip_stream(members, block))
    if peer:
        h = hashlib.sha256()
        n = 0
        for chunk in chunks:
            h.update(chunk)
            n += len(chunk)
        out.update(streamed=n, sha256=h.hexdigest())
    else:
        # The defaults open every member of the default 2 GB archive (see the docstring).
        caps = ContentCaps(max_expanded_bytes=max(ContentCaps().max_expanded_bytes, 2 * decoded))
        fo = run_file_object(
            chunks, caps=caps, filename="export.zip", declared_type="application/zip"
        )
        info = fo.finish(True)
        found = list(walk(info))
        fp = info.fingerprint
        out.update(
            streamed=info.size,
            sha256=info.sha256,
            fingerprint=fp.as_record() if fp else None,
            members=len(found),
            member_bytes=sum(m.size for m in found),
            member_fingerprints=dict(
                collections.Counter(
                    json.dumps(m.fingerprint.as_record() if m.fingerprint else None, sort_keys=True)
                    for m in found
                )
            ),
            members_complete=sum(1 for m in found if m.complete),
            anomalies=[f"{a.kind}: {a.detail}" for a in fo.anomalies],
        )
    out["seconds"] = time.perf_counter() - started
    print(json.dumps(out))
    return 0


# Why a launcher between this process and each measured child: subprocess starts children with
# vfork, and on Linux exec() folds the high-water RSS of the address space it leaves (here: this
# process's, hundreds of MB after the large objects) into the child's ru_maxrss. The launcher is
# a bare interpreter, so what its own child inherits is a few MB, far below what is measured;
# it reports the child's os.wait4() rusage as the last line of the shared stdout.
WAIT4_LAUNCHER = """\
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_pid, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"exit": child.returncode, "max_rss_kib": usage.ru_maxrss}), flush=True)
"""


def big_zip(gb: float, seed: int, cpu: int | None, timeout: float) -> dict[str, Any]:
    """Run the peer child, then the FileObject child; RSS from os.wait4() on each."""
    results: dict[str, Any] = {}
    for role, extra in (("sha256 peer", ["--peer"]), ("FileObject", [])):
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-big-zip",
            str(gb),
            "--seed",
            str(seed),
            *(["--cpu", str(cpu)] if cpu is not None else []),
            *extra,
        ]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", WAIT4_LAUNCHER, *argv],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a timeout kills the launcher and its child together
            )
            killer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
            killer.start()
            proc.wait()
            wall = time.perf_counter() - started
            timed_out = not killer.is_alive()
            killer.cancel()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        record: dict[str, Any] = {"argv": argv, "wall_s": wall, "timed_out": timed_out}
        lines = stdout.decode(errors="replace").strip().splitlines()
        try:
            usage = json.loads(lines[-1])
            record["exit"] = usage["exit"]
            record["max_rss_mb"] = usage["max_rss_kib"] * 1024 / 1e6  # ru_maxrss is KiB
            record.update(json.loads(lines[-2]))
        except (ValueError, IndexError, KeyError):
            record.setdefault("exit", proc.returncode)
            record.setdefault("max_rss_mb", 0.0)
            record["error"] = stderr.decode(errors="replace").strip().splitlines()[-3:]
        results[role] = record
    return results


# -- report ------------------------------------------------------------------------------------


def machine_info(cpu: int | None) -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        import magic

        magic_version = str(getattr(magic, "__version__", "?"))
    except ImportError:
        magic_version = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_magic": magic_version,
        "loadavg_before": list(os.getloadavg()),
        "git": git.stdout.strip() or "unknown",
    }


def print_per_object(rows: list[dict[str, Any]]) -> None:
    print("### Per-object cost (microseconds per object, best of the passes)\n")
    print(
        "| objects | n | mean B | sha256 | libmagic | sha256+libmagic (old) | FileObject "
        "| FileObject / old | FileObject / sha256 | typed as |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    totals = dict.fromkeys(("sha256", "libmagic", "sha256+libmagic", "FileObject"), 0.0)
    count = 0
    for r in rows:
        us = r["us_per_object"]
        types = ", ".join(f"{k} {v}" for k, v in list(r["types"].items())[:4])
        if len(r["types"]) > 4:
            types += ", ..."
        if r["members"]:
            types += f"; {r['members']} members"
        print(
            f"| {r['group']} | {r['objects']} | {r['mean_bytes']:,.0f} | {us['sha256']:.1f} | "
            f"{us['libmagic']:.1f} | {us['sha256+libmagic']:.1f} | {us['FileObject']:.1f} | "
            f"{us['FileObject'] / us['sha256+libmagic']:.2f}x | "
            f"{us['FileObject'] / us['sha256']:.1f}x | {types} |"
        )
        if not r["group"].startswith("corpus"):
            for k in totals:
                totals[k] += us[k] * r["objects"]
            count += r["objects"]
    if count:
        t = {k: v / count for k, v in totals.items()}
        print(
            f"| all mix pools | {count} | | {t['sha256']:.1f} | {t['libmagic']:.1f} | "
            f"{t['sha256+libmagic']:.1f} | {t['FileObject']:.1f} | "
            f"{t['FileObject'] / t['sha256+libmagic']:.2f}x | "
            f"{t['FileObject'] / t['sha256']:.1f}x | |"
        )
    print()


def print_large(rows: list[dict[str, Any]]) -> None:
    print("### Large objects (64 KiB chunks; MB/s of the object's own bytes)\n")
    print(
        "| input | MB | members (decoded MB) | sha256 MB/s | FileObject MB/s | "
        "FileObject / sha256 | fingerprint | anomalies |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        member_types = ", ".join(f"{k} {v}" for k, v in r["member_types"].items())
        fp = f"{r['type']}, encrypted {r['encrypted']}"
        if r["encryption"]:
            fp += f" ({r['encryption']})"
        if member_types:
            fp += f"; members: {member_types}"
        print(
            f"| {r['input']} | {r['bytes'] / 1e6:,.0f} | {r['members']} "
            f"({r['member_bytes'] / 1e6:,.0f}) | {r['sha256_mb_s']:,.0f} | "
            f"{r['fileobject_mb_s']:,.0f} | {r['fileobject_mb_s'] / r['sha256_mb_s']:.2f}x | "
            f"{fp} | {', '.join(r['anomalies']) or '-'} |"
        )
    print()


def print_big(big: dict[str, Any]) -> bool | None:
    fo = big.get("FileObject", {})
    print("### Memory: one big ZIP upload streamed in 64 KiB chunks (child processes)\n")
    print("| child | ZIP MB | decoded member MB | wall s | peak RSS MB | result |")
    print("|---|---:|---:|---:|---:|---|")
    for role, r in big.items():
        if "error" in r or r.get("exit") != 0:
            print(
                f"| {role} | | | {r['wall_s']:.1f} | {r['max_rss_mb']:.0f} | "
                f"failed (exit {r.get('exit')}): {r.get('error')} |"
            )
            continue
        if role == "FileObject":
            fp = r["fingerprint"] or {}
            result = (
                f"{fp.get('type')}, {r['members']} members found ({r['members_complete']} "
                f"complete), encrypted {fp.get('encrypted')}"
            )
        else:
            result = f"sha256 of {r['streamed'] / 1e6:,.0f} MB"
        print(
            f"| {role} | {r['zip_bytes'] / 1e6:,.0f} | "
            f"{r['decoded_bytes'] / 1e6 if role == 'FileObject' else 0:,.0f} | "
            f"{r['wall_s']:.1f} | {r['max_rss_mb']:,.0f} | {result} |"
        )
    print()
    if "member_fingerprints" in fo:
        print("Member fingerprints (count: record):")
        for record, n in fo["member_fingerprints"].items():
            print(f"- {n}: `{record}`")
        print(f"- anomalies: {fo['anomalies'] or 'none'}")
    if "max_rss_mb" in fo and fo.get("exit") == 0:
        met = fo["max_rss_mb"] < TARGET_BIG_RSS_MB
        print(f"- target: peak RSS < {TARGET_BIG_RSS_MB} MB: {'met' if met else 'MISSED'}")
        return met
    print(f"- target: peak RSS < {TARGET_BIG_RSS_MB} MB: n/a")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="passes over the small objects")
    parser.add_argument("--large-mb", type=int, default=200, help="size of each large object")
    parser.add_argument("--large-repeat", type=int, default=2, help="passes over each large one")
    parser.add_argument("--big-zip", type=float, default=2.0, metavar="GB", help="big ZIP size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (children inherit)")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per big-ZIP child")
    parser.add_argument("--child-big-zip", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pinned = pin(args.cpu)
    if args.child_big_zip is not None:
        return child_big_zip(args.child_big_zip, args.seed, args.peer)
    if not 0 < args.big_zip * 1e9 < ZIP32_LIMIT - (1 << 24):
        parser.error("--big-zip must be above 0 and below 4.2 (no ZIP64 records are written)")
    command_line = shlex.join([sys.executable, *sys.argv])
    machine = machine_info(args.cpu if pinned else None)
    started = dt.datetime.now(dt.UTC)

    print(
        f"Machine: {machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"git {machine['git']}; pinned to CPU {args.cpu}: {pinned}; "
        f"load before {machine['loadavg_before'][0]:.2f}\n",
        flush=True,
    )
    small = per_object(small_groups(args.seed), args.repeat)
    print_per_object(small)
    large: list[dict[str, Any]] = []
    if not args.skip_large:
        large = large_objects(args.large_mb * 1_000_000, args.large_repeat, args.seed)
        print_large(large)
    big: dict[str, Any] = {}
    met: bool | None = None
    if not args.skip_big:
        big = big_zip(args.big_zip, args.seed, args.cpu if pinned else None, args.timeout)
        met = print_big(big)
    print(f"\nCommand: `{command_line}`")
    machine["loadavg_after"] = list(os.getloadavg())
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": started.isoformat(timespec="seconds"),
                "command": command_line,
                "machine": machine,
                "per_object": small,
                "large": large,
                "big_zip": big,
                "targets": {"big_zip_rss_lt_150mb": met},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"Wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
