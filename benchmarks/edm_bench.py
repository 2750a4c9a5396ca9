#!/usr/bin/env python3
"""Cost of exact data match (sensor/classify/edm.py): loading, index size, lookups.

Usage: edm_bench.py [--records N] [--seed S] [--lookups L] [--keep DIR]

1. Generates a seeded synthetic patient export of `--records` (1,000,000) rows,
   `bsn;geboortedatum;postcode;achternaam` with elfproef-valid BSNs (about 2 s).
2. Loads it with `sensor.classify.edm.load_csv` in a fresh child interpreter (what `sluice edm load`
   does): wall time, and the child's peak RSS from os.wait4() (ru_maxrss). Target: < 60 s.
3. Index file size. Target: < 200 MB.
4. Opens the index (with and without the body checksum) and times `primary()` on known and
   unknown BSNs, `corroborates()` on a true and a false postcode, and one `EdmWindow` row of
   four candidates: microseconds per call, best of 3 passes of `--lookups` (100,000) calls.

Prints a Markdown table and the command. Never fails on timing.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sensor.classify.edm import EdmIndex, EdmWindow  # noqa: E402

SURNAMES = (
    "de Vries",
    "Jansen",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
)
LETTERS = "ABCEGHJKLMNPRTVWXZ"
WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def bsns(rng: random.Random, count: int) -> list[str]:
    """`count` distinct elfproef-valid BSNs (none of them real people, statistically: the
    benchmark's file never leaves the temporary directory)."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        digits = str(rng.randrange(10_000_000, 100_000_000))
        check = sum(int(d) * w for d, w in zip(digits, WEIGHTS, strict=True)) % 11
        if check == 10:
            continue
        value = digits + str(check)
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def generate(path: Path, records: int, seed: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    rows = [
        (
            number,
            f"{rng.randrange(1935, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            f"{rng.randrange(1000, 10000)} {rng.choice(LETTERS)}{rng.choice(LETTERS)}",
            f"{rng.choice(SURNAMES)}{rng.randrange(1000)}",
        )
        for number in bsns(rng, records)
    ]
    with path.open("w", encoding="utf-8") as stream:
        stream.write("bsn;geboortedatum;postcode;achternaam\n")
        stream.writelines(";".join(row) + "\n" for row in rows)
    return rows


LOAD_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from sensor.classify.edm import load_csv
key = bytes.fromhex(sys.argv[4])
start = time.perf_counter()
load_csv(sys.argv[2], sys.argv[3], key, "bsn", ["geboortedatum", "postcode", "achternaam"])
print(time.perf_counter() - start)
"""


def load_in_child(csv_path: Path, index: Path, key: bytes) -> tuple[float, int]:
    """Load time (s) and peak RSS (bytes) of the load alone, in a fresh interpreter (a fork
    would count the parent's generated rows in the child's peak)."""
    argv = [sys.executable, "-c", LOAD_SCRIPT, str(REPO), str(csv_path), str(index), key.hex()]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = status
    if status:
        raise SystemExit(f"the load failed (status {status})")
    return float(output), usage.ru_maxrss * 1024


def per_call(function: Callable[[int], object], calls: int) -> float:
    """Microseconds per call, best of 3 passes."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(calls):
            function(i)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--keep", metavar="DIR", help="keep the CSV and index here")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="edm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "patients.csv"
    index_path = work / "edm.idx"
    key = random.Random(args.seed).randbytes(32)

    start = time.perf_counter()
    rows = generate(csv_path, args.records, args.seed)
    generate_s = time.perf_counter() - start
    load_s, load_rss = load_in_child(csv_path, index_path, key)
    size = index_path.stat().st_size

    start = time.perf_counter()
    index = EdmIndex.open(index_path, key)
    open_verify_s = time.perf_counter() - start
    index.close()
    start = time.perf_counter()
    index = EdmIndex.open(index_path, key, verify=False)
    open_s = time.perf_counter() - start

    rng = random.Random(args.seed + 1)
    sample = [rows[rng.randrange(len(rows))] for _ in range(args.lookups)]
    known = [row[0] for row in sample]
    loaded = {row[0] for row in rows}
    unknown = [v for v in bsns(random.Random(args.seed + 2), args.lookups * 2) if v not in loaded]
    unknown = unknown[: args.lookups]
    ids = [index.primary(value) or 0 for value in known]
    found = sum(1 for value in known if index.primary(value) is not None)
    false_hits = sum(1 for value in unknown if index.primary(value) is not None)
    postcodes = [row[2] for row in sample]

    def window_row(i: int) -> None:
        window = EdmWindow(index)
        bsn, date, postcode, name = sample[i]
        window.feed("bsn", bsn, 0, 1)
        window.feed("date", date, 10, 1)
        window.feed("postcode", postcode, 21, 1)
        window.feed("name", name, 29, 1)

    calls = args.lookups
    timings = {
        "primary(), known BSN": per_call(lambda i: index.primary(known[i]), calls),
        "primary(), unknown BSN": per_call(lambda i: index.primary(unknown[i]), calls),
        "corroborates(), true postcode": per_call(
            lambda i: index.corroborates(ids[i], "postcode", postcodes[i]), calls
        ),
        "corroborates(), false postcode": per_call(
            lambda i: index.corroborates(ids[i], "postcode", "1234 AB"), calls
        ),
        "EdmWindow: one row of 4 candidates": per_call(window_row, min(calls, 20_000)),
    }
    index.close()

    command = " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv])
    print(f"command: `{command}`\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| records generated (seed {args.seed}) | {args.records:,} in {generate_s:.1f} s |")
    print(f"| load (`load_csv`, read + normalise + hash + sort + write) | {load_s:.1f} s |")
    print(f"| load peak RSS (child, ru_maxrss) | {load_rss / 1e6:.0f} MB |")
    print(f"| index size | {size / 1e6:.1f} MB ({size / args.records:.0f} B/record) |")
    print(
        f"| open with body checksum / without | {open_verify_s * 1e3:.0f} ms / "
        f"{open_s * 1e3:.2f} ms |"
    )
    for name, micros in timings.items():
        print(f"| {name} | {micros:.2f} us |")
    print(f"| known BSNs found | {found:,} / {len(known):,} |")
    print(f"| unknown BSNs found (false hits) | {false_hits:,} / {len(unknown):,} |")
    if not args.keep:
        csv_path.unlink()
        index_path.unlink()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
