#!/usr/bin/env python3
"""MIME engine throughput and memory: Sluice's MimeMessage against Python's email package.

Usage: mime_bench.py [--messages N] [--message-mb MB] [--big-mb MB] [--seed S] [--no-tracemalloc]
                     [--timeout SECONDS]

Generates deterministic messages into a temporary directory (each: a short text body and one
base64 attachment of seeded random bytes, CRLF line ends, as an SMTP server hands them over):
`--messages` (100) messages of about `--message-mb` (1) MB, and one message of `--big-mb` (200)
MB written block by block, so the generator never holds it. Then each contender runs in its own
subprocess (pinned to CPU 0 with `taskset -c 0` when taskset exists), reading each message from
the page cache in 64 KiB chunks:

  sluice  MimeMessage.feed(chunk) ... end(True): headers, leaves, decoded SHA-256, sniffing
  email   email.parser.BytesFeedParser(policy=email.policy.default).feed(chunk) ... close(),
          then walk() the leaves and get_payload(decode=True) each, SHA-256 of the decoded bytes

MB/s = message bytes (10^6) / seconds spent inside the loop (interpreter start and generation
excluded). Peak RSS is ru_maxrss of that very child from os.wait4(). With tracemalloc on (the
default), the 200 MB case runs once more per contender under tracemalloc for the peak of Python
allocations (slower, so it is not timed). Both contenders report the SHA-256 of every decoded
leaf; the table says whether they agree.

Prints a Markdown table and the command, writes benchmarks/out/mime-results.json. Never fails on
timing: the exit status is non-zero only when the benchmark itself cannot run.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
RESULTS = OUT_DIR / "mime-results.json"
CHUNK = 64 * 1024
LINE_RAW = 57  # raw bytes per 76-character base64 line
BLOCK_LINES = 1150  # base64 lines generated per write (about 88 KiB encoded)


# -- generation --------------------------------------------------------------------------------


def _head(index: int, boundary: str) -> bytes:
    return (
        f"From: Lab Export <export{index}@lab.example>\r\n"
        f'To: "Doe, J" <j.doe@mail.example>, backup@drop.example\r\n'
        f"Subject: =?utf-8?q?export_{index}_=E2=82=AC?=\r\n"
        f"Date: Mon, 5 Jan 2026 08:00:00 +0100\r\n"
        f"Message-ID: <{index}@lab.example>\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n"
        f"\r\n"
        f"Hierbij de export, zie bijlage.=0D=0AGroet\r\n"
        f"--{boundary}\r\n"
        f'Content-Type: application/octet-stream; name="export{index}.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="export{index}.bin"\r\n'
        f"\r\n"
    ).encode()


def write_message(path: Path, index: int, size: int, rng: random.Random) -> int:
    """One message of about `size` bytes, written block by block; returns its size."""
    boundary = f"=_sluice_bench_{index}_{rng.getrandbits(32):08x}"
    with path.open("wb") as f:
        written = f.write(_head(index, boundary))
        while written < size:
            lines = min(BLOCK_LINES, max(1, (size - written) // 78))
            raw = rng.randbytes(LINE_RAW * lines)
            written += f.write(base64.encodebytes(raw).replace(b"\n", b"\r\n"))
        written += f.write(f"\r\n--{boundary}--\r\n".encode())
    return written


def generate(directory: Path, messages: int, message_mb: float, big_mb: float, seed: int) -> dict:
    rng = random.Random(seed)
    small = []
    total = 0
    for i in range(messages):
        path = directory / f"msg{i:04d}.eml"
        total += write_message(path, i, int(message_mb * 1e6), rng)
        small.append(str(path))
    big = directory / "big.eml"
    big_size = write_message(big, 999_999, int(big_mb * 1e6), rng)
    return {"small": small, "small_bytes": total, "big": str(big), "big_bytes": big_size}


# -- the contenders (run in a child process) ----------------------------------------------------


def run_sluice(paths: list[str]) -> tuple[int, list[str]]:
    from sensor.content.mime import MimeMessage
    from sensor.content.objects import FileInfo

    total = 0
    digests: list[str] = []
    for path in paths:
        msg = MimeMessage(0.0)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
                for ev in msg.feed(chunk):
                    if isinstance(ev, FileInfo):
                        digests.append(ev.sha256)
        digests += [ev.sha256 for ev in msg.end(True) if isinstance(ev, FileInfo)]
    return total, digests


def run_email(paths: list[str]) -> tuple[int, list[str]]:
    import email.policy
    import hashlib
    from email.parser import BytesFeedParser

    total = 0
    digests: list[str] = []
    for path in paths:
        parser = BytesFeedParser(policy=email.policy.default)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
                parser.feed(chunk)
        message = parser.close()
        for part in message.walk():
            if not part.is_multipart():
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)  # a leaf: decoded bytes
                digests.append(hashlib.sha256(payload).hexdigest())
    return total, digests


def child(contender: str, paths: list[str], traced: bool) -> None:
    import hashlib
    import tracemalloc

    run = run_sluice if contender == "sluice" else run_email
    if contender == "sluice":
        sys.path.insert(0, str(REPO))
        import sensor.content.mime  # noqa: F401  (imports are not what is measured)
        from sensor.content.filetype import default_sniffer

        default_sniffer().sniff(b"warm-up")  # load libmagic's database outside the timed loop
    else:
        import email.parser
        import email.policy  # noqa: F401
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    total, digests = run(paths)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    result = {
        "bytes": total,
        "seconds": seconds,
        "leaves": len(digests),
        "digest_of_leaves": hashlib.sha256("".join(digests).encode()).hexdigest(),
        "tracemalloc_peak": peak,
    }
    print(json.dumps(result))


# -- the parent ---------------------------------------------------------------------------------


def pinned(argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0", *argv] if taskset else argv


def measure(contender: str, list_file: Path, traced: bool, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", contender, "--list", str(list_file)]
    if traced:
        argv.append("--traced")
    proc = subprocess.Popen(pinned(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)  # polling a child of ours with a deadline, not waiting on a condition
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {"rss_mib": usage.ru_maxrss / 1024, "exit": proc.returncode}
    if proc.returncode == 0 and out.strip():
        result.update(json.loads(out.decode().strip().splitlines()[-1]))
    else:
        result["error"] = (err.decode(errors="replace").strip().splitlines() or ["killed"])[-1]
    return result


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        rev = ""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": rev,
        "taskset": shutil.which("taskset") is not None,
        "loadavg_before": list(os.getloadavg()),
    }


def mb_s(r: dict[str, Any]) -> float | None:
    if "seconds" not in r or not r["seconds"]:
        return None
    return float(r["bytes"]) / 1e6 / float(r["seconds"])


def fmt(value: float | None, spec: str = ",.1f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--message-mb", type=float, default=1.0)
    ap.add_argument("--big-mb", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-tracemalloc", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--child", choices=["sluice", "email"], help=argparse.SUPPRESS)
    ap.add_argument("--list", help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, Path(args.list).read_text().split("\n"), args.traced)
        return 0

    command = "benchmarks/mime_bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = machine_info()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mime-bench-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        corpus = generate(tmpdir, args.messages, args.message_mb, args.big_mb, args.seed)
        gen_seconds = time.perf_counter() - t0
        small_list = tmpdir / "small.txt"
        small_list.write_text("\n".join(corpus["small"]))
        big_list = tmpdir / "big.txt"
        big_list.write_text(corpus["big"])
        for path in [*corpus["small"], corpus["big"]]:  # warm the page cache
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass
        cases = [
            (f"{args.messages} x {args.message_mb:g} MB", small_list),
            (f"1 x {args.big_mb:g} MB", big_list),
        ]
        for case, list_file in cases:
            for contender in ("sluice", "email"):
                r = measure(contender, list_file, False, args.timeout)
                if list_file is big_list and not args.no_tracemalloc:
                    traced = measure(contender, list_file, True, args.timeout)
                    r["tracemalloc_peak"] = traced.get("tracemalloc_peak")
                    r["traced_rss_mib"] = traced["rss_mib"]
                rows.append({"case": case, "contender": contender, **r})

    table = [
        "| case | contender | MB/s | seconds | leaves | peak RSS MiB | tracemalloc peak MiB "
        "| Sluice / email |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for case in dict.fromkeys(r["case"] for r in rows):
        pair = {r["contender"]: r for r in rows if r["case"] == case}
        s_rate, e_rate = mb_s(pair["sluice"]), mb_s(pair["email"])
        for name in ("sluice", "email"):
            r = pair[name]
            peak = r.get("tracemalloc_peak")
            ratio = "-" if name == "email" else (
                f"{s_rate / e_rate:.2f}x" if s_rate and e_rate else "n/a"
            )  # fmt: skip
            table.append(
                f"| {case} | {name} | {fmt(mb_s(r))} | {fmt(r.get('seconds'), '.2f')} "
                f"| {r.get('leaves', 'n/a')} | {fmt(r['rss_mib'], ',.0f')} "
                f"| {fmt(None if peak is None else peak / 2**20, ',.1f')} | {ratio} |"
            )
            if "error" in r:
                notes.append(f"{case} {name} failed (exit {r['exit']}): {r['error']}")
        agree = pair["sluice"].get("digest_of_leaves") == pair["email"].get("digest_of_leaves")
        notes.append(f"{case}: decoded leaves {'agree' if agree else 'DIFFER'} (SHA-256 of each)")
    machine["loadavg_after"] = list(os.getloadavg())
    print("\n".join(table))
    print()
    for note in notes:
        print(f"- {note}")
    print(
        f"\nCommand: `.venv/bin/python {command.strip()}`; generation {gen_seconds:.1f} s; "
        f"machine: {machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"pinned to CPU 0: {machine['taskset']}, load before {machine['loadavg_before'][0]:.2f}"
    )
    RESULTS.write_text(
        json.dumps(
            {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": command.strip(),
                "machine": machine,
                "corpus": {
                    "messages": args.messages,
                    "message_mb": args.message_mb,
                    "big_mb": args.big_mb,
                    "seed": args.seed,
                    "small_bytes": corpus["small_bytes"],
                    "big_bytes": corpus["big_bytes"],
                    "generation_seconds": gen_seconds,
                },
                "chunk_bytes": CHUNK,
                "rows": rows,
                "notes": notes,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"Results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
