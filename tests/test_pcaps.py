"""Regression: every case under pcaps/ against its expectation file (suricata-verify style).

Expectations were computed by each case's generator from ground truth (the bytes the real
client sent), never from Sluice's output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.replays import Replay, all_inputs, replay

HTTP_KEYS = {"method": "http_method", "host": "hostname", "uri": "url", "status": "status"}


def _match_multiset(
    expected: Iterable[dict[str, Any]],
    actual: list[dict[str, Any]],
    exhaustive: bool,
    what: str,
) -> None:
    remaining = list(actual)
    for want in expected:
        for i, have in enumerate(remaining):
            if all(have.get(k) == v for k, v in want.items()):
                del remaining[i]
                break
        else:
            pytest.fail(f"no {what} matching {want}\n  have: {remaining}")
    if exhaustive:
        assert not remaining, f"unexpected {what}s: {remaining}"


def _http_view(result: Replay) -> list[dict[str, Any]]:
    rows = []
    for event in result.of_type("http"):
        h = event["http"]
        rows.append({key: h.get(field) for key, field in HTTP_KEYS.items()})
    return rows


@pytest.mark.parametrize("capture", all_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(capture: Path) -> None:
    expected = json.loads((capture.parent / "expected.json").read_text())
    result = replay(capture)
    if "objects" in expected:
        _match_multiset(
            expected["objects"], result.files, expected.get("objects_exhaustive", True), "object"
        )
    if "http" in expected:
        _match_multiset(expected["http"], _http_view(result), True, "http request")
    seen = set(result.summary.anomalies)
    for kind in expected.get("anomalies_include", []):
        assert kind in seen, f"anomaly {kind} not reported; saw {sorted(seen)}"
    if expected.get("flows") is not None:
        assert len(result.of_type("flow")) == expected["flows"]
    if expected.get("read_error") == "truncated":
        assert result.summary.capture_errors, "the damaged capture was not reported"
    else:
        assert not result.summary.capture_errors


def test_there_are_cases() -> None:
    assert len(all_inputs()) >= 10
