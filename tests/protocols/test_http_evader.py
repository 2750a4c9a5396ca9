"""Every case of the evasive HTTP generator (pcaps/http-evader) is found: its marker file is
inside an object Sluice extracted from that case's connection.

The generator computed each case's marker file; the replay is `sluice extract`, so objects are
the files a user gets. A failure lists every missed case with its technique, so one run shows
which reading is missing."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.replays import PCAPS, replay

CASE = PCAPS / "http-evader"


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CASE / "cases.json").read_text())
    return cases


def _objects_by_port(files: list[dict[str, Any]], out: Path) -> dict[int, list[bytes]]:
    by_port: dict[int, list[bytes]] = defaultdict(list)
    for row in files:
        path = out / "files" / row["sha256"]
        if path.exists():
            by_port[row["src_port"]].append(path.read_bytes())  # src: the client
    return by_port


def test_there_are_a_few_hundred_cases_over_every_technique() -> None:
    cases = _cases()
    assert len(cases) >= 300
    techniques = {c["technique"] for c in cases}
    assert {"status line", "transfer-encoding", "chunk-size line", "content coding",
            "te and cl", "not chunked", "status with body", "interim"} <= techniques  # fmt: skip
    assert {c["direction"] for c in cases} == {"upload", "download"}


def test_every_marker_is_found_in_an_extracted_object() -> None:
    result = replay(CASE / "input.pcap")
    by_port = _objects_by_port(result.files, result.out)
    missed = []
    for case in _cases():
        marker = case["marker"].encode()
        if not any(marker in data for data in by_port.get(case["client_port"], [])):
            missed.append(f"{case['technique']}: {case['case']}")
    assert not missed, f"{len(missed)} of {len(_cases())} cases missed:\n" + "\n".join(missed)


def test_every_marker_file_is_extracted_whole() -> None:
    """Stronger than containment: each case has one reading that is exactly its file (the
    one a browser or server shows), not only a raw reading that contains the marker."""
    result = replay(CASE / "input.pcap")
    have = {(row["sha256"]) for row in result.files}
    missed = [f"{c['technique']}: {c['case']}" for c in _cases() if c["sha256"] not in have]
    assert not missed, f"{len(missed)} cases without an exact object:\n" + "\n".join(missed)


def test_ambiguous_objects_name_their_reading() -> None:
    result = replay(CASE / "input.pcap")
    ambiguous = [e["file"] for e in result.of_type("file") if e["file"].get("ambiguous")]
    assert {f["reading"] for f in ambiguous} == {"raw", "content-length", "unframed", "declared"}
    plain = [e["file"] for e in result.of_type("file") if not e["file"].get("ambiguous")]
    assert all("reading" not in f for f in plain)
    extracted = [row for row in result.files if row.get("ambiguous")]
    assert len(extracted) == len(ambiguous)
