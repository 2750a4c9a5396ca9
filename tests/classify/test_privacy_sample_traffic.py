"""Privacy over the demo's sample traffic: with classification on, no identifier the capture
generators planted reaches any output in clear (DESIGN.md, "Privacy"; issue 13 item 4).

The run is `make demo` itself (`scripts/demo.sh` into a temp dir: `sluice extract` of every
capture the demo replays under scripts/demo.toml, which turns classification on, then `sluice
findings`, `top` and `host` with their HTML pages), plus `sluice findings --json` and `sluice
host --json`. Scanned: stdout and stderr of all of them and every file the run wrote
(events.jsonl, files.jsonl, sluice.db with its -wal/-shm, the HTML pages), the database also
row by row. Not scanned: the `files/` directory, where `sluice extract` keeps the transferred
objects by design (it holds the planted identifiers: the positive control below shows the
scan finds them there). The demo's own command is used rather than `sluice replay` so that
every output an operator of the demo sees is covered, files.jsonl and the pages included.

Planted identifiers, regenerated from the generators' seeds:
- patient-exfil: the BSNs (elfproef-valid), postcodes and dates of birth of its patients
  (pcaps/_lib/screening.py, the seeds in its generate.py);
- every other demo capture: the BSN-like numbers of each `fakedata.patients_csv(size,
  seed=N)` call in its generate.py (found with `ast`; a call whose arguments cannot be
  resolved fails the test), and for encrypted-uploads the committed corpus CSV it ships inside
  its plain ZIP (tests/data/fingerprint/corpus/patients.csv).

Each is looked for in every form `screening.identifier_forms` names (digits only, dots,
spaces, dashes, `1234.56.789`; postcodes with and without the space; ISO, Dutch and compact
dates): outputs are tokenised with patterns that accept all of them, each token normalised and
looked up, so the scan costs one pass per output however many identifiers there are.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from pcaps._lib import fakedata, screening

ROOT = Path(__file__).resolve().parents[2]
SLUICE = str(Path(sys.executable).parent / "sluice")
CORPUS_CSV = ROOT / "tests" / "data" / "fingerprint" / "corpus" / "patients.csv"

# Tokens that may be a planted identifier in any of its forms; "not next to a letter or digit"
# on both sides, as a reader would delimit it. Lookaheads make the matches overlap, so a token
# next to another digit group is still seen.
_EDGE_BEFORE = rb"(?<![0-9A-Za-z])"
_EDGE_AFTER = rb"(?![0-9A-Za-z])"


def _token(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(_EDGE_BEFORE + b"(?=" + pattern + _EDGE_AFTER + b")")


BSN_TOKEN = _token(rb"([0-9]{3}[ .-]?[0-9]{3}[ .-]?[0-9]{3}|[0-9]{4}\.[0-9]{2}\.[0-9]{3})")
POSTCODE_TOKEN = _token(rb"([1-9][0-9]{3}) ?([A-Z]{2})")
DATE_TOKENS = (
    (_token(rb"((?:19|20)[0-9]{2})-([0-9]{2})-([0-9]{2})"), "ymd"),
    (_token(rb"([0-9]{2})[-/.]([0-9]{2})[-/.]((?:19|20)[0-9]{2})"), "dmy"),
    (_token(rb"((?:19|20)[0-9]{2})([0-9]{2})([0-9]{2})"), "ymd"),
)


@dataclass(frozen=True)
class Planted:
    bsn: frozenset[str]  # nine digits (valid ones and elfproef-failing look-alikes)
    postcode_nl: frozenset[str]  # `1234AB`
    date_of_birth: frozenset[str]  # ISO

    def found_in(self, blob: bytes) -> list[str]:
        """The planted identifiers in `blob`, in any of their forms (normalised, sorted)."""
        hits = set()
        for m in BSN_TOKEN.finditer(blob):
            digits = re.sub(rb"[ .-]", b"", m[1]).decode()
            if digits in self.bsn:
                hits.add(f"bsn {digits}")
        for m in POSTCODE_TOKEN.finditer(blob):
            code = (m[1] + m[2]).decode()
            if code in self.postcode_nl:
                hits.add(f"postcode {code}")
        for pattern, order in DATE_TOKENS:
            for m in pattern.finditer(blob):
                parts = [p.decode() for p in m.groups()]
                y, mo, d = parts if order == "ymd" else parts[::-1]
                if f"{y}-{mo}-{d}" in self.date_of_birth:
                    hits.add(f"date {y}-{mo}-{d}")
        return sorted(hits)


# -- what the generators planted ---------------------------------------------------------------


def demo_captures() -> list[Path]:
    listed = subprocess.run(
        ["bash", "scripts/demo.sh", "--list-captures"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [ROOT / line for line in listed]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generator_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def patients_csv_calls(generator: Path) -> list[tuple[int, int]]:
    """(size, seed) of every `patients_csv(size, seed=N)` call in a generator's source; a name
    as the size is resolved from the module's top-level constant assignments."""
    tree = ast.parse(generator.read_text())
    constants: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, int):
                    constants[target.id] = node.value.value
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name != "patients_csv":
            continue
        size_node = node.args[0]
        seeds = [k.value for k in node.keywords if k.arg == "seed"]
        size = (
            constants.get(size_node.id)
            if isinstance(size_node, ast.Name)
            else size_node.value
            if isinstance(size_node, ast.Constant)
            else None
        )
        seed = seeds[0].value if seeds and isinstance(seeds[0], ast.Constant) else None
        assert isinstance(size, int) and isinstance(seed, int), (
            f"{generator}:{node.lineno}: patients_csv arguments the privacy test cannot "
            "regenerate; use literal or top-level constant arguments"
        )
        calls.append((size, seed))
    return calls


def bsn_column(data: bytes) -> set[str]:
    return {row["bsn"] for row in csv.DictReader(io.StringIO(data.decode()))}


def planted_identifiers() -> Planted:
    bsn: set[str] = set()
    postcodes: set[str] = set()
    dates: set[str] = set()
    for capture in demo_captures():
        generator = capture.parent / "generate.py"
        if capture.parent.name == "patient-exfil":
            module = _load(generator)
            for people in (module.CSV_PEOPLE, module.FHIR_PEOPLE):
                found = screening.planted(people)
                bsn |= found["bsn"]
                postcodes |= found["postcode_nl"]
                dates |= found["date_of_birth"]
            continue
        for size, seed in patients_csv_calls(generator):
            bsn |= bsn_column(fakedata.patients_csv(size, seed=seed))
        if capture.parent.name == "encrypted-uploads":
            bsn |= bsn_column(CORPUS_CSV.read_bytes())
    return Planted(frozenset(bsn), frozenset(postcodes), frozenset(dates))


# -- the run ----------------------------------------------------------------------------------


@dataclass
class DemoRun:
    out: Path
    printed: dict[str, bytes]  # command -> its stdout + stderr


@pytest.fixture(scope="module")
def planted() -> Planted:
    return planted_identifiers()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out = tmp_path_factory.mktemp("privacy") / "demo"
    env = {**os.environ, "SLUICE_DEMO_OUT": str(out), "SLUICE_CONFIG": "scripts/demo.toml"}
    printed = {}
    commands = {
        "make demo": ["bash", "scripts/demo.sh"],
        "findings --json": [SLUICE, "findings", "--db", str(out), "--json"],
        "host --json": [SLUICE, "host", "10.10.0.10", "--db", str(out), "--since", "all",
                        "--json"],
    }  # fmt: skip
    for name, argv in commands.items():
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        printed[name] = done.stdout + done.stderr
    return DemoRun(out, printed)


def written_files(out: Path) -> Iterator[Path]:
    """Every file of the run but the kept objects (`files/`)."""
    for path in sorted(out.rglob("*")):
        if path.is_file() and "files" not in path.relative_to(out).parts[:-1]:
            yield path


def database_rows(path: Path) -> bytes:
    """Every value of every table, as text (blobs as they are)."""
    chunks = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # names from the db itself
                for value in row:
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(chunks)


# -- tests ------------------------------------------------------------------------------------


def test_every_form_of_every_planted_identifier_would_be_seen(planted: Planted) -> None:
    """The scan is not blind: each written form of each planted identifier is found."""
    assert len(planted.bsn) > 2000 and len(planted.postcode_nl) >= 550
    exfil = screening.planted(_load(ROOT / "pcaps" / "patient-exfil" / "generate.py").CSV_PEOPLE)
    for kind, values in exfil.items():
        for value in sorted(values)[:40]:
            for form in screening.identifier_forms(kind, value):
                assert planted.found_in(f"x {form};".encode()), (kind, form)
    assert not planted.found_in(b"sha256 ab12345678cd 0123456789 2025-07-01T10:00:00Z")


def test_the_findings_were_made(demo: DemoRun, planted: Planted) -> None:
    """Not vacuous: the demo classified patient-exfil's exports (400 and 150 BSNs, critical),
    and the kept objects, which the scan leaves out, do hold the planted identifiers."""
    events = [json.loads(line) for line in (demo.out / "events.jsonl").open()]
    sensitive = [e["finding"] for e in events if e["event_type"] == "finding"
                 and e["finding"]["kind"] == "sensitive_content"]  # fmt: skip
    assert sorted(f["identifiers"]["bsn"]["distinct"] for f in sensitive) == [150, 400]
    assert {f["severity"] for f in sensitive} == {"critical"}
    kept = b"".join(p.read_bytes() for p in (demo.out / "files").iterdir())
    hits = planted.found_in(kept)
    assert sum(h.startswith("bsn ") for h in hits) >= 550, "the control found no BSN"
    assert any(h.startswith("postcode ") for h in hits) and any(h.startswith("date ") for h in hits)


def test_no_planted_identifier_in_any_output(demo: DemoRun, planted: Planted) -> None:
    leaks: dict[str, list[str]] = {}
    for name, blob in demo.printed.items():
        leaks[f"output of {name}"] = planted.found_in(blob)
    scanned = []
    for path in written_files(demo.out):
        scanned.append(path.name)
        leaks[str(path.relative_to(demo.out))] = planted.found_in(path.read_bytes())
    leaks["sluice.db rows"] = planted.found_in(database_rows(demo.out / "sluice.db"))
    assert {"events.jsonl", "files.jsonl", "sluice.db", "top.html", "host.html"} <= set(scanned)
    found = {where: hits[:5] for where, hits in leaks.items() if hits}
    assert not found, f"planted identifiers in clear: {found}"
