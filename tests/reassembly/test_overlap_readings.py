"""Every crafted overlap case (pcaps/tcp-overlap-readings) is found: the marker file is
extracted whole from its connection in some reading, and where the main reading ("first") is
not one that reads the real stream, a tcp-<policy> reading of a receiver that does is.

The generator's byte model computed which receivers read the real stream (cases.json); the
replay is `sluice extract`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sensor.cli.main import run
from sensor.config import Config, ConfigError, StreamConfig, config_from_dict
from tests.replays import PCAPS, replay

CASE = PCAPS / "tcp-overlap-readings"


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CASE / "cases.json").read_text())
    return cases


def test_every_shape_is_there() -> None:
    cases = _cases()
    assert len(cases) >= 25
    assert {c["side"] for c in cases} == {"upload", "download"}
    assert any(c["case"].startswith("syn-data") for c in cases)
    assert any("first" not in c["receivers"] for c in cases)  # the main reading is evaded


def test_every_marker_file_is_extracted_in_a_receivers_reading() -> None:
    result = replay(CASE / "input.pcap")
    by_port: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in result.of_type("file"):
        by_port[event["src_port"]].append(event["file"])
    missed = []
    for case in _cases():
        files = by_port[case["client_port"]]
        readings = {f.get("reading") for f in files if f["sha256"] == case["sha256"]}
        if not readings:
            missed.append(f"{case['case']}: not extracted")
        elif "first" not in case["receivers"] and not readings & {
            f"tcp-{policy}" for policy in case["receivers"]
        }:
            missed.append(f"{case['case']}: found in {readings}, not in a receiver's reading")
    assert not missed, "\n".join(missed)


def test_readings_are_reported_and_bounded() -> None:
    result = replay(CASE / "input.pcap")
    assert "tcp_overlap_readings" in result.summary.anomalies
    per_flow: dict[int, set[str]] = defaultdict(set)
    for event in result.of_type("file"):
        reading = event["file"].get("reading") or ""
        if reading.startswith("tcp-"):
            assert event["file"]["ambiguous"] is True
            per_flow[event["flow_id"]].add(reading.split("+")[0])
    assert per_flow
    assert all(len(names) <= 2 for names in per_flow.values())  # one per other policy
    # One flow, one record: a reading adds objects, not flows or protocol records.
    assert len(result.of_type("flow")) == len(_cases())
    assert len(result.of_type("http")) == len(_cases())


def test_a_configured_os_policy_reads_that_way_only(tmp_path: Path) -> None:
    """[stream] os_policy: towards a destination whose OS is known, the main reading is that
    OS's and no other reading is kept."""
    config = Config(stream=StreamConfig(os_policy=("198.51.100.0/24=linux",)))
    run([str(CASE / "input.pcap")], tmp_path, config, extract=True)
    files = [json.loads(line) for line in (tmp_path / "files.jsonl").open()]
    assert not [f for f in files if (f.get("reading") or "").startswith("tcp-")]
    have = {f["sha256"] for f in files if not f.get("ambiguous")}
    linux = [c for c in _cases() if "linux" in c["receivers"]]
    assert linux and all(c["sha256"] in have for c in linux)


@pytest.mark.parametrize(
    "value", [["10.0.0.0/8"], ["10.0.0.0/8=solaris"], ["10.0.0/33=linux"], "linux", [1]]
)
def test_os_policy_errors_name_the_setting(value: object) -> None:
    with pytest.raises(ConfigError, match=r"stream\.os_policy"):
        config_from_dict({"stream": {"os_policy": value}})
