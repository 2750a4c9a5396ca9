"""Anomaly kinds are a registry, not free text: every kind the code can emit is registered,
and docs/anomalies.md is generated from the registry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sensor.anomaly import KINDS, markdown
from tests.replays import ROOT, all_inputs, replay

KIND_SHAPE = re.compile(
    r"^(capture|decode|frag|tcp|http|smtp|ftp|tls|ssh|dns|content|multipart|mime|parser)_[a-z0-9_]+$"
)
LAYERS = {"capture", "decode", "flow", "stream", "app", "content"}

# String literals of that shape that are not anomaly kinds (event fields, counters).
NOT_KINDS = {
    "capture_errors",
    "content_type",
    "content_visible",
    "http_content_type",
    "http_method",
    "http_refer",
    "http_request_content_type",
    "http_user_agent",
    "mime_type",
    "tcp_checksum_bad",
}


def _kind_literals() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in [*ROOT.glob("sensor/**/*.py"), *ROOT.glob("probes/**/*.py")]:
        if path.name == "anomaly.py" and path.parent.name == "sensor":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and KIND_SHAPE.match(node.value)
                and node.value not in NOT_KINDS
            ):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def test_every_kind_in_the_code_is_registered() -> None:
    literals = _kind_literals()
    assert len(literals) > 40  # the scan sees the parsers' kinds
    unregistered = {k: where for k, where in literals.items() if k not in KINDS}
    assert not unregistered, f"register these in sensor/anomaly.py: {unregistered}"


def test_registry_is_well_formed() -> None:
    for kind, (layer, meaning) in KINDS.items():
        assert re.fullmatch(r"[a-z0-9_]+", kind) and layer in LAYERS and meaning


def test_docs_are_generated_from_the_registry() -> None:
    assert (Path(ROOT) / "docs/anomalies.md").read_text() == markdown(), (
        "run: .venv/bin/python -m sensor.anomaly > docs/anomalies.md"
    )


def test_sample_replays_emit_only_registered_kinds() -> None:
    for capture in all_inputs():
        result = replay(capture)
        for event in result.of_type("anomaly"):
            assert event["anomaly"]["kind"] in KINDS
            assert KINDS[event["anomaly"]["kind"]][0] == event["anomaly"]["layer"]
