"""`sluice signatures check [DIR]`: validate every signatures file of a directory.

The same parsers the sensor uses at start-up (STYLE.md habit 10), so a file that passes here
loads there: categories.toml (sensor.metering.categories), filetypes.toml
(sensor.content.fingerprint.table), detectors.toml (sensor.classify.detectors) and policy.toml
(sensor.policy.policy). Without
DIR the directory is the one the sensor would use (sensor/config/signatures.py:
$SLUICE_SIGNATURES, the installed data, the source tree).

One line per file on stdout, `ok FILE (id, version N, M entries)` or `error MESSAGE` (the
message names the file, the entry and the rule). Exit status 0 when every file is fine, 2
otherwise (a usage-type error, like a broken config).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sensor.classify.detectors import DetectorError, DetectorSet, parse_detectors
from sensor.config.signatures import SignaturesError, find_signatures
from sensor.content.fingerprint.table import FileTypeError, FileTypeTable, parse_file_types
from sensor.metering.categories import CategoryDb, CategoryError, parse_categories
from sensor.policy.policy import Policy, PolicyError, parse_policy
from sensor.policy.policy import describe as describe_policy

EXIT_OK = 0
EXIT_INVALID = 2


def _describe_categories(db: CategoryDb) -> str:
    return f"{db.id}, version {db.version}, {len(db)} entries"


def _describe_file_types(table: FileTypeTable) -> str:
    return f"{table.id}, version {table.version}, {len(table)} entries"


def _describe_detectors(detectors: DetectorSet) -> str:
    text = (
        f"{detectors.id}, version {detectors.version}, {len(detectors)} entries: "
        f"{len(detectors.detectors)} detectors, {len(detectors.keywords)} keyword sets, "
        f"{len(detectors.severity)} severity rules"
    )
    if not detectors.hyperscan_checked:
        text += "; hyperscan not importable, patterns checked with Python re only"
    return text


def _describe_policy(policy: Policy) -> str:
    return next(iter(describe_policy(policy))).split(": ", 1)[1]


# (file name, parse(text, source) -> what describe takes, its error, describe)
CHECKS: tuple[tuple[str, Callable[[str, str], Any], type[Exception], Callable[[Any], str]], ...] = (
    ("categories.toml", parse_categories, CategoryError, _describe_categories),
    ("filetypes.toml", parse_file_types, FileTypeError, _describe_file_types),
    ("detectors.toml", parse_detectors, DetectorError, _describe_detectors),
    ("policy.toml", parse_policy, PolicyError, _describe_policy),
)


def add_parser(sub: Any) -> None:
    signatures = sub.add_parser(
        "signatures",
        help="check the signatures data files",
        description="Work with the signatures data directory (destination categories, file "
        "types, detectors).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    actions = signatures.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate every signatures file of a directory",
        description="Validate categories.toml, filetypes.toml and detectors.toml with the "
        "parsers the sensor uses at start-up; print one line per file. Exit status 0 when "
        "all are fine, 2 otherwise.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="signatures directory (default: $SLUICE_SIGNATURES, else the installed or "
        "checkout copy)",
    )


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    stream = out if out is not None else sys.stdout
    try:
        directory = find_signatures(getattr(args, "dir", None), origin="the DIR argument").path
    except SignaturesError as exc:
        stream.write(f"error {exc}\n")
        return EXIT_INVALID
    status = EXIT_OK
    for line, ok in check_directory(directory):
        stream.write(line + "\n")
        if not ok:
            status = EXIT_INVALID
    return status


def check_directory(directory: Path) -> list[tuple[str, bool]]:
    """(line, ok) per signatures file of `directory`, in CHECKS order."""
    results: list[tuple[str, bool]] = []
    for name, parse, error, describe in CHECKS:
        path = directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            results.append((f"error {path}: missing", False))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            results.append((f"error {path}: cannot read it ({exc})", False))
            continue
        try:
            parsed = parse(text, str(path))
        except error as exc:
            results.append((f"error {exc}", False))
            continue
        results.append((f"ok {path} ({describe(parsed)})", True))
    return results
