"""`sluice edm load|info`: build and inspect the exact-data-match index of known records.

The runtime edge of sensor/classify/edm.py: reads the export and the secret key, writes the
index (hashes only, mode 0600), prints counts. Nothing printed, logged or written ever holds a
value of the export: errors name files, columns and line numbers only. Exit status 0 when
done, 2 on a usage error (a missing file or column, an unsafe key, a damaged index).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sensor.classify.edm import (
    DEFAULT_INDEX_DIR,
    INDEX_FILE,
    KINDS,
    EdmError,
    EdmIndex,
    load_csv,
)
from sensor.classify.secret import DEFAULT_SECRET_PATH, SECRET_HELP, SecretError, load_secret

EXIT_OK = 0
EXIT_USAGE = 2
INDEX_HELP = f"directory of the index file {INDEX_FILE} (default {DEFAULT_INDEX_DIR})"


def add_parser(subparsers: Any) -> None:
    edm = subparsers.add_parser(
        "edm",
        help="exact data match: index the organisation's own patient records (hashes only)",
        description="Exact data match: an index of keyed hashes of known patient records, so "
        "that an object holding them is reported with the number of distinct records it "
        "holds. A match needs the primary field (the BSN) and at least one other field of "
        "the same record in the same row or within 300 characters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    actions = edm.add_subparsers(dest="edm_action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load",
        help="build the index from a CSV export",
        description="Read a CSV export (a header line; `;`, `,`, tab or `|` separated; "
        "UTF-8 with or without BOM, else Windows-1252), normalise the fields (BSN: nine "
        "digits passing the elfproef, rows without one are counted and skipped; dates to "
        "ISO; postcodes upper case without spaces; names without case, accents, spaces and "
        "punctuation) and write keyed hashes of the primary and of (primary, field) pairs "
        "to the index, replacing the old one atomically. No clear value is written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    load.add_argument("csv", metavar="FILE.csv", help="the export")
    load.add_argument("--primary", default="bsn", help="column of the primary identifier")
    load.add_argument(
        "--fields",
        required=True,
        help="comma-separated corroborating columns, e.g. geboortedatum,postcode,achternaam",
    )
    load.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="COLUMN=KIND",
        help=f"how a column is normalised when its name does not say ({', '.join(KINDS)}); "
        "repeatable",
    )
    load.add_argument("--index", metavar="DIR", default=DEFAULT_INDEX_DIR, help=INDEX_HELP)
    load.add_argument("--secret", metavar="PATH", default=DEFAULT_SECRET_PATH, help=SECRET_HELP)
    info = actions.add_parser(
        "info",
        help="check the index and show its fields and counts",
        description="Open the index with this sensor's key, verify its checksum and print "
        "its fields and counts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    info.add_argument("--index", metavar="DIR", default=DEFAULT_INDEX_DIR, help=INDEX_HELP)
    info.add_argument("--secret", metavar="PATH", default=DEFAULT_SECRET_PATH, help=SECRET_HELP)


def _kinds(pairs: list[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for pair in pairs:
        column, equals, kind = pair.partition("=")
        if not equals or kind.strip() not in KINDS:
            raise EdmError(f"--kind {pair!r}: expected COLUMN=KIND, KIND one of {', '.join(KINDS)}")
        kinds[column.strip().casefold()] = kind.strip()
    return kinds


def run(args: argparse.Namespace) -> int:
    try:
        if args.edm_action == "load":
            return _load(args)
        return _info(args)
    except (EdmError, SecretError) as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"sluice: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _load(args: argparse.Namespace) -> int:
    fields = [name.strip() for name in args.fields.split(",") if name.strip()]
    kinds = _kinds(args.kind)
    directory = Path(args.index)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = load_secret(args.secret)
    start = time.perf_counter()
    stats = load_csv(args.csv, directory / INDEX_FILE, key, args.primary, fields, kinds)
    seconds = time.perf_counter() - start
    print(
        f"{stats.records:,} records from {stats.rows:,} rows of {args.csv} in {seconds:.1f} s "
        f"({stats.invalid_primary:,} rows without a valid {args.primary.strip().casefold()} "
        f"skipped, {stats.merged:,} rows merged into an earlier record with the same one)"
    )
    missing = ", ".join(f"{name} {count:,}" for name, count in stats.missing.items())
    print(f"{stats.pairs:,} field pairs; rows without a usable value: {missing}")
    print(f"index: {directory / INDEX_FILE} ({stats.index_bytes / 1e6:.1f} MB, mode 0600)")
    if stats.invalid_primary:
        print(
            f"sluice: warning: {stats.invalid_primary:,} rows had no valid primary and are "
            "not in the index",
            file=sys.stderr,
        )
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    path = Path(args.index) / INDEX_FILE
    key = load_secret(args.secret, create=False)
    with EdmIndex.open(path, key) as index:
        header = index.header
        size = path.stat().st_size
        print(f"index: {path} ({size / 1e6:.1f} MB), checksum and key ok")
        print(f"primary: {index.primary_field} ({index.kinds[index.primary_field]})")
        print("fields: " + ", ".join(f"{name} ({index.kinds[name]})" for name in index.fields))
        print(
            f"records: {index.records:,}; field pairs: {index.pairs:,}; rows read: "
            f"{header.get('rows', 0):,} ({header.get('invalid_primary', 0):,} skipped, "
            f"{header.get('merged', 0):,} merged)"
        )
    return EXIT_OK
