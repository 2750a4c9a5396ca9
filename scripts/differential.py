#!/usr/bin/env python3
"""Do two checkouts of Sluice write the same outputs? A differential check for refactorings.

Usage: differential.py BASE_CHECKOUT [--variants N] [--seed S] [--extra PCAP ...]
                       [--config FILE] [--keep DIR]

Runs `sluice extract` (in-process, one interpreter per checkout, PYTHONPATH pointing at it)
over a corpus and compares `events.jsonl`, `files.jsonl` and the extracted files byte for byte.
The corpus: every sample capture under pcaps/, plus N mutated copies of each (seeded: packets
dropped, duplicated, swapped with their neighbour, cut short, bytes flipped past the first 40,
the file itself cut), plus any `--extra` capture (e.g. the replay benchmark's). The mutations
reach what the friendly samples do not: gaps, retransmissions, reordering, broken parsers,
mid-stream pickups. Nothing runs as root and nothing touches the network.

BASE_CHECKOUT is typically a worktree of the commit before the change:

    git worktree add /tmp/sluice-base HEAD~1
    .venv/bin/python scripts/differential.py /tmp/sluice-base --variants 6

Exit status 0 when every output is identical, 1 when any differs (the first differences are
printed), 2 when the check cannot run.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dpkt

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = ("events.jsonl", "files.jsonl")

# Runs inside each checkout's interpreter: argv = out_root config captures...
DRIVER = """
import sys
from pathlib import Path
from sensor.cli.main import run
from sensor.config import Config, load_config
out_root, config_path, *captures = sys.argv[1:]
config = load_config(config_path) if config_path else Config()
for index, capture in enumerate(captures):
    out = Path(out_root) / str(index)
    out.mkdir(parents=True)
    run([capture], out, config, extract=True)
"""


def mutate(source: Path, target: Path, rng: random.Random) -> None:
    """A damaged copy of a classic pcap: per packet, drop / duplicate / swap / cut / flip."""
    with source.open("rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        linktype = reader.datalink()
        nano = reader.nano if hasattr(reader, "nano") else False
        packets = [(ts, bytes(buf)) for ts, buf in reader]
    out: list[tuple[float, bytes]] = []
    rates = {name: rng.choice((0.0, 0.02, 0.05, 0.1)) for name in ("drop", "dup", "cut", "flip")}
    swap = rng.choice((0.0, 0.03, 0.1))
    for ts, buf in packets:
        if rng.random() < rates["drop"]:
            continue
        if rng.random() < rates["cut"] and len(buf) > 54:
            buf = buf[: rng.randrange(40, len(buf))]
        if rng.random() < rates["flip"] and len(buf) > 41:
            data = bytearray(buf)
            data[rng.randrange(40, len(buf))] ^= 1 << rng.randrange(8)
            buf = bytes(data)
        out.append((ts, buf))
        if rng.random() < rates["dup"]:
            out.append((ts, buf))
    for i in range(len(out) - 1):
        if rng.random() < swap:
            out[i], out[i + 1] = out[i + 1], out[i]
    with target.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=linktype, nano=nano)
        for ts, buf in out:
            writer.writepkt(buf, ts=ts)
    if rng.random() < 0.2:  # a capture cut mid-record
        size = target.stat().st_size
        with target.open("r+b") as handle:
            handle.truncate(rng.randrange(24, size) if size > 24 else size)


def corpus(work: Path, variants: int, seed: int, extra: list[Path]) -> list[Path]:
    samples = sorted(p for p in (REPO / "pcaps").glob("*/input*") if p.suffix == ".pcap")
    samples += sorted((REPO / "pcaps").glob("*/input*.pcapng"))
    captures = list(samples)
    rng = random.Random(seed)
    for sample in samples:
        if sample.suffix != ".pcap":
            continue
        for n in range(variants):
            target = work / "corpus" / f"{sample.parent.name}-{sample.stem}-{n}.pcap"
            target.parent.mkdir(parents=True, exist_ok=True)
            mutate(sample, target, rng)
            captures.append(target)
    return captures + extra


def run_checkout(checkout: Path, out: Path, config: str, captures: list[Path]) -> None:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), config, *map(str, captures)],
        env=env,
        cwd=checkout,
        check=True,
    )


def compare(base: Path, head: Path, captures: list[Path]) -> list[str]:
    problems: list[str] = []
    for index, capture in enumerate(captures):
        a, b = base / str(index), head / str(index)
        for output in OUTPUTS:
            want = (a / output).read_text().splitlines()
            have = (b / output).read_text().splitlines()
            if want != have:
                line = next(
                    (i for i, (x, y) in enumerate(zip(want, have, strict=False)) if x != y),
                    min(len(want), len(have)),
                )
                problems.append(
                    f"{capture.name} {output} line {line + 1}:\n"
                    f"  base: {want[line] if line < len(want) else '<none>'}\n"
                    f"  head: {have[line] if line < len(have) else '<none>'}"
                )
        files = filecmp.dircmp(a / "files", b / "files") if (a / "files").exists() else None
        if files is not None and (files.left_only or files.right_only or files.diff_files):
            problems.append(f"{capture.name}: extracted files differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--variants", type=int, default=4, help="mutated copies per sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more captures")
    parser.add_argument("--config", default="", help="a config file for both runs")
    parser.add_argument("--keep", type=Path, help="keep the corpus and outputs here")
    args = parser.parse_args()
    if not (args.base / "sensor" / "pipeline.py").is_file():
        print(f"differential: {args.base} is not a Sluice checkout", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="sluice-diff-"))
    try:
        captures = corpus(work, args.variants, args.seed, [p.resolve() for p in args.extra])
        config = str(Path(args.config).resolve()) if args.config else ""
        run_checkout(args.base.resolve(), work / "base", config, captures)
        run_checkout(REPO, work / "head", config, captures)
        problems = compare(work / "base", work / "head", captures)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"differential: {len(captures)} captures, {len(problems)} differing outputs")
    for problem in problems[:10]:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
