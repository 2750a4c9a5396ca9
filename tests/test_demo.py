"""`make demo` as a newcomer runs it: the sample traffic under the demo site's config fires the
findings a DPO would expect, and the operator's views show them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUICE = str(Path(sys.executable).parent / "sluice")


def test_the_demo_fires_the_expected_findings(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SLUICE_DEMO_OUT": str(out)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # no warning, no traceback
    text = done.stdout
    for heading in (
        "findings:",
        "sensitive uploads: 2",
        "uploads (client -> server):",
        "mail (SMTP transactions):",
        "SSH sessions:",
        "top by host, window all:",
        "host 10.10.0.10, all:",
    ):
        assert heading in text, heading  # fmt: skip
    findings = json.loads(
        subprocess.run(
            [SLUICE, "findings", "--db", str(out), "--json"], capture_output=True, text=True
        ).stdout
    )
    kinds = {(f["kind"], f["host"]) for f in findings}
    # The PACS export and lab backup PUT abroad, the share upload, the SFTP archive upload.
    assert ("volume_threshold", "10.10.0.10") in kinds
    assert ("non_eu_transfer", "10.10.0.10") in kinds
    assert ("novel_destination", "10.10.0.10") in kinds
    assert ("volume_threshold", "10.10.0.11") in kinds
    # Classification is on: patient-exfil's CSV mailed out and FHIR export to transfer.example.
    sensitive = [f for f in findings if f["kind"] == "sensitive_content"]
    assert [f["severity"] for f in sensitive] == ["critical", "critical"]
    assert {f["host"] for f in sensitive} == {"10.10.0.10"}
    assert "bmhk-uitslagen-2025-06.csv" in text and "fhir-export-bmhk-2025-06.json" in text
    assert all(f["severity"] in ("low", "medium", "high", "critical") for f in findings)
    assert "pacs-export-2025-07.bin" in text and "patients-week27.csv" in text
    for page in ("top.html", "host.html"):
        assert (out / page).read_text().startswith("<!DOCTYPE html>")
