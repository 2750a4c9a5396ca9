#!/usr/bin/env python3
"""Replay throughput of Sluice against peers measured in the same run on the same capture.

Usage: replay_bench.py [--packets N] [--seed S] [--mix egress|inspected|objects] [--repeat R]
                       [--baseline CHECKOUT] [--keep] [--timeout SECONDS] [--cpu N]

Generates the mixed egress capture (gen_mixed.py) into benchmarks/out/ unless a capture for the
same generator version, packet count and seed is already there, warms the page cache with it,
then runs each contender as its own subprocess, pinned to one CPU (`--cpu`, default 0) with
`taskset -c N` when taskset exists:

  dpkt loop      python -c: iterate dpkt.pcap.Reader, count packets and bytes (reading floor)
  probes loop    python -c: iterate our probes.pcap.PcapReader, count packets and bytes
  sluice replay  sluice replay FILE --out DIR (the whole pipeline)
  tshark http    tshark -r FILE -q --export-objects http,DIR (dissects, reassembles HTTP bodies)
  baseline       with --baseline CHECKOUT: `sluice replay` of another checkout of Sluice (e.g. a
                 `git worktree` of the previous commit) with this interpreter, so a change is
                 measured against the code before it in the same run

`--mix inspected` generates a capture where nearly every packet takes the full path (see
gen_mixed.py); report it next to the default "egress" mix, which mostly rides the flow bypass.
`--mix objects` is made of many small HTTP bodies (both directions), multipart parts, small ZIP
and gzip uploads and mail attachments: the per-object cost of the content stage (typing,
fingerprinting, opening containers) rather than the per-byte one.

Wall time is time.perf_counter() around the child, peak RSS is ru_maxrss of that very child from
os.wait4(). Packets/s and Mbit/s divide the capture's packet count and captured frame bytes (pcap
record headers excluded) by the wall time, interpreter start-up included. The machine is shared,
so absolute numbers drift; compare the ratios, which come from one run. With --repeat R each
contender runs R times, interleaved, and the best wall time and highest RSS are reported.

Prints a Markdown table and writes benchmarks/out/replay-results.json. Never fails on timing: the
exit status is non-zero only when the benchmark itself cannot run (e.g. generation failed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gen_mixed

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
RESULTS = OUT_DIR / "replay-results.json"

TARGET_SLUICE_PPS = 150_000
TARGET_VS_TSHARK = 3.0
TARGET_METER_SHARE = 0.15
TARGET_RSS_MIB = 300

DPKT_LOOP = """\
import sys
import dpkt
n = b = 0
with open(sys.argv[1], "rb") as f:
    for _ts, buf in dpkt.pcap.Reader(f):
        n += 1
        b += len(buf)
print(n, b)
"""

PROBES_LOOP = """\
import sys
from probes.pcap import PcapReader
n = b = 0
with PcapReader(sys.argv[1]) as r:
    for frame in r:
        n += 1
        b += len(frame.data)
print(n, b)
"""


@dataclass(slots=True)
class Measurement:
    """One child process: how long it ran, how much memory it peaked at, how it ended."""

    argv: list[str]
    wall_s: float
    max_rss_kib: int
    exit_code: int
    stdout_tail: str
    stderr_tail: str
    timed_out: bool = False


@dataclass(slots=True)
class Contender:
    """A program replaying the capture, and what its runs measured."""

    key: str
    label: str
    role: str
    build: Callable[[Path, Path], list[str]]  # (pcap, scratch dir) -> argv
    runs: list[Measurement] = field(default_factory=list)
    status: str = "ok"  # ok | n/a | failed
    note: str = ""
    objects: int | None = None  # tshark exported objects / Sluice `file` events

    def best(self) -> Measurement | None:
        good = [m for m in self.runs if m.exit_code == 0 and not m.timed_out]
        return min(good, key=lambda m: m.wall_s) if good else None


def tail(data: bytes, lines: int = 6) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def pinned(argv: list[str], cpu: int = 0) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *argv] if taskset else argv


def measure(argv: list[str], timeout: float) -> Measurement:
    """Run argv to completion; rusage comes from wait4 on this child, not RUSAGE_CHILDREN."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timed_out = not killer.is_alive()
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped; tell Popen
        out.seek(0)
        err.seek(0)
        return Measurement(
            argv=argv,
            wall_s=wall,
            max_rss_kib=usage.ru_maxrss,
            exit_code=proc.returncode,
            stdout_tail=tail(out.read()),
            stderr_tail=tail(err.read()),
            timed_out=timed_out,
        )


def ensure_capture(packets: int, seed: int, mix: str) -> tuple[Path, dict[str, Any]]:
    """Return the cached capture for these parameters, generating it first if needed."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    name = "mixed" if mix == "egress" else mix
    stem = f"{name}-v{gen_mixed.GENERATOR_VERSION}-n{packets}-s{seed}"
    pcap, summary = OUT_DIR / f"{stem}.pcap", OUT_DIR / f"{stem}.json"
    if pcap.exists() and summary.exists():
        print(f"capture: {pcap.relative_to(REPO)} (cached)")
    else:
        print(f"capture: generating {pcap.relative_to(REPO)} ...", flush=True)
        partial = pcap.with_suffix(".pcap.partial")
        argv = [
            sys.executable,
            str(BENCH_DIR / "gen_mixed.py"),
            "--packets",
            str(packets),
            "--seed",
            str(seed),
            "--mix",
            mix,
            "--summary-json",
            str(summary),
            str(partial),
        ]
        subprocess.run(argv, check=True)
        partial.replace(pcap)  # only a complete file is ever cached
    info = json.loads(summary.read_text())
    info["pcap"] = str(pcap)
    return pcap, info


def warm_page_cache(path: Path) -> None:
    """Read the capture once so the first contender does not pay for the disk."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import dpkt

        dpkt_version = str(dpkt.__version__)
    except ImportError:
        dpkt_version = "not installed"
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "dpkt": dpkt_version,
        "tshark": first_line(["tshark", "--version"]),
        "taskset": shutil.which("taskset") is not None,
        "loadavg_before": list(os.getloadavg()),
        "git": git.stdout.strip() or "unknown",
    }


def sluice_executable() -> str:
    venv = REPO / ".venv" / "bin" / "sluice"
    return str(venv) if venv.exists() else (shutil.which("sluice") or "sluice")


def write_nometer_config() -> Path:
    """A config that turns the volume meter off, to measure what metering costs."""
    path = OUT_DIR / "nometer.toml"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text("[metering]\nenabled = false\n")
    return path


BASELINE_REPLAY = """\
import sys
from sensor.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def baseline_contender(checkout: Path) -> Contender:
    """`sluice replay` of another checkout, run from its own tree (PYTHONPATH first)."""

    def build(pcap: Path, d: Path) -> list[str]:
        code = f"import sys; sys.path.insert(0, {str(checkout)!r})\n" + BASELINE_REPLAY
        return [sys.executable, "-c", code, "replay", str(pcap), "--out", str(d)]

    return Contender("baseline", f"sluice replay at {checkout.name}", "subject before", build)


def contenders(baseline: Path | None = None) -> list[Contender]:
    py = sys.executable
    return [
        Contender(
            "dpkt",
            "dpkt read loop",
            "peer A",
            lambda pcap, _d: [py, "-c", DPKT_LOOP, str(pcap)],
        ),
        Contender(
            "probes",
            "probes.pcap read loop",
            "peer B",
            lambda pcap, _d: [py, "-c", PROBES_LOOP, str(pcap)],
        ),
        Contender(
            "sluice",
            "sluice replay",
            "subject",
            lambda pcap, d: [sluice_executable(), "replay", str(pcap), "--out", str(d)],
        ),
        Contender(
            "sluice-nometer",
            "sluice replay, metering off",
            "subject without the meter",
            lambda pcap, d: [
                sluice_executable(),
                "replay",
                str(pcap),
                "--out",
                str(d),
                "--config",
                str(write_nometer_config()),
            ],
        ),
        Contender(
            "tshark",
            "tshark --export-objects http",
            "peer",
            lambda pcap, d: ["tshark", "-r", str(pcap), "-q", "--export-objects", f"http,{d}"],
        ),
        *([baseline_contender(baseline)] if baseline is not None else []),
    ]


def count_file_events(out_dir: Path) -> int | None:
    files = sorted(out_dir.rglob("events*.jsonl"))
    if not files:
        return None
    count = 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event_type") == "file":
                    count += 1
    return count


def judge(c: Contender, m: Measurement, expected: tuple[int, int], out_dir: Path) -> None:
    """Turn one run into status/note/objects; read loops must have seen every packet."""
    if m.timed_out:
        c.status, c.note = "failed", "timed out"
        return
    if m.exit_code != 0:
        missing = "ModuleNotFoundError" in m.stderr_tail or "ImportError" in m.stderr_tail
        c.status = "n/a" if c.key == "probes" and missing else "failed"
        last = m.stderr_tail.splitlines()[-1] if m.stderr_tail else f"exit {m.exit_code}"
        c.note = f"exit {m.exit_code}: {last}"
        return
    if c.key in ("dpkt", "probes"):
        if m.stdout_tail.split()[-2:] != [str(expected[0]), str(expected[1])]:
            c.note = f"counted {m.stdout_tail!r}, expected {expected[0]} {expected[1]}"
    elif c.key in ("sluice", "sluice-nometer", "baseline"):
        c.objects = count_file_events(out_dir)
    elif c.key == "tshark":
        c.objects = sum(1 for p in out_dir.iterdir() if p.is_file())


def fmt_ratio(subject: float | None, peer: float | None) -> str:
    if subject is None or peer is None or peer == 0:
        return "n/a"
    return f"{subject / peer:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mix", choices=sorted(gen_mixed.MIXES), default="egress", help="traffic mix"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (best kept)")
    parser.add_argument(
        "--baseline", type=Path, help="another Sluice checkout to replay side by side"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep Sluice's output and tshark's objects"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument("--cpu", type=int, default=0, help="CPU every child is pinned to")
    args = parser.parse_args(argv)
    command_line = shlex.join([sys.executable, *sys.argv])

    if args.baseline is not None and not (args.baseline / "sensor" / "cli" / "main.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a Sluice checkout")
    pcap, capture = ensure_capture(args.packets, args.seed, args.mix)
    packets, captured = int(capture["packets"]), int(capture["captured_bytes"])
    warm_page_cache(pcap)
    machine = machine_info()
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    keep_root = OUT_DIR / f"run-{stamp}"
    everyone = contenders(args.baseline.resolve() if args.baseline else None)

    for r in range(args.repeat):
        for c in everyone:
            if c.status == "n/a":
                continue
            if args.keep:
                scratch = keep_root / f"{c.key}-{r}"
                scratch.mkdir(parents=True, exist_ok=True)
            else:
                scratch = Path(tempfile.mkdtemp(prefix=f"bench-{c.key}-"))
            try:
                m = measure(pinned(c.build(pcap, scratch), args.cpu), args.timeout)
                c.runs.append(m)
                print(f"  {c.label}: {m.wall_s:.2f} s, exit {m.exit_code}", flush=True)
                judge(c, m, (packets, captured), scratch)
            finally:
                if not args.keep:
                    shutil.rmtree(scratch, ignore_errors=True)

    def pps(c: Contender) -> float | None:
        best = c.best()
        return packets / best.wall_s if best else None

    sluice = next(c for c in everyone if c.key == "sluice")
    tshark = next(c for c in everyone if c.key == "tshark")
    sluice_pps = pps(sluice)
    rows: list[dict[str, object]] = []
    table = [
        "| contender | role | wall s | packets/s | Mbit/s | peak RSS MiB | Sluice / this |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in everyone:
        best = c.best()
        rate = pps(c)
        rss = max((m.max_rss_kib for m in c.runs), default=0) / 1024
        row: dict[str, object] = {
            "key": c.key,
            "label": c.label,
            "role": c.role,
            "status": c.status if best else (c.status if c.status != "ok" else "failed"),
            "note": c.note,
            "argv": c.runs[0].argv if c.runs else [],
            "walls_s": [round(m.wall_s, 4) for m in c.runs],
            "exit_codes": [m.exit_code for m in c.runs],
            "stderr_tail": c.runs[-1].stderr_tail if c.runs else "",
            "packets_per_s": round(rate, 1) if rate else None,
            "mbit_per_s": round(captured * 8 / best.wall_s / 1e6, 2) if best else None,
            "peak_rss_mib": round(rss, 1) if best else None,
            "sluice_ratio": round(sluice_pps / rate, 3) if sluice_pps and rate else None,
            "objects": c.objects,
        }
        rows.append(row)
        if best:
            ratio = "-" if c is sluice else fmt_ratio(sluice_pps, rate)
            table.append(
                f"| {c.label} | {c.role} | {best.wall_s:.2f} | {rate:,.0f} | "
                f"{captured * 8 / best.wall_s / 1e6:,.0f} | {rss:,.0f} | {ratio} |"
            )
        else:
            table.append(f"| {c.label} | {c.role} | n/a | n/a | n/a | n/a | n/a |")

    size_mb = Path(pcap).stat().st_size / 1e6
    print()
    print(
        f"Capture: {pcap.name}, {packets:,} packets, {captured / 1e6:,.1f} MB captured "
        f"({size_mb:,.1f} MB file), {capture['http_bodies']} HTTP bodies, "
        f"{capture.get('smtp_messages', 0)} mails ({capture.get('smtp_attachments', 0)} "
        f"attachments), {capture.get('containers', 0)} ZIP/gzip documents"
    )
    print(
        f"Machine: {machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"{machine['tshark']}; pinned to CPU {args.cpu}: {machine['taskset']}; "
        f"load before {machine['loadavg_before'][0]:.2f}"
    )
    print()
    print("\n".join(table))
    print()
    for c in everyone:
        if c.note:
            print(f"- {c.label}: {c.status}: {c.note}")
    print(
        f"- objects: tshark exported {tshark.objects if tshark.objects is not None else 'n/a'}, "
        f"Sluice file events {sluice.objects if sluice.objects is not None else 'n/a'}, "
        f"generator wrote {capture['http_bodies']} HTTP bodies"
    )
    tshark_pps = pps(tshark)
    sluice_rss = max((m.max_rss_kib for m in sluice.runs), default=0) / 1024
    targets: dict[str, bool | None] = {
        "sluice_pps_ge_150k": None if sluice_pps is None else sluice_pps >= TARGET_SLUICE_PPS,
        "sluice_ge_3x_tshark": (
            None if not (sluice_pps and tshark_pps) else sluice_pps / tshark_pps >= TARGET_VS_TSHARK
        ),
        "sluice_rss_lt_300mib": None if sluice.best() is None else sluice_rss < TARGET_RSS_MIB,
    }
    nometer = next(c for c in everyone if c.key == "sluice-nometer")
    with_meter, without = sluice.best(), nometer.best()
    meter_share = None
    if with_meter and without:
        # Share of the pipeline's time the volume meter takes (target: at most 15%).
        meter_share = max(0.0, (with_meter.wall_s - without.wall_s) / with_meter.wall_s)
        targets["meter_le_15pct"] = meter_share <= TARGET_METER_SHARE
        print(
            f"- metering: {meter_share:.1%} of the pipeline's wall time "
            f"({with_meter.wall_s:.2f} s with, {without.wall_s:.2f} s without)"
        )
    shown = {True: "met", False: "MISSED", None: "n/a"}
    print("- targets: " + ", ".join(f"{k} {shown[v]}" for k, v in targets.items()))
    print()
    print(f"Command: `{command_line}`; each contender ran as:")
    print("```sh")
    for c in everyone:
        if c.runs:
            print(shlex.join(c.runs[0].argv))
    print("```")

    machine["loadavg_after"] = list(os.getloadavg())
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": command_line,
        "repeat": args.repeat,
        "cpu": args.cpu,
        "machine": machine,
        "capture": capture,
        "results": rows,
        "targets": targets,
        "meter_share": meter_share,
        "kept_outputs": str(keep_root) if args.keep else None,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nWrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
