"""The one-line texts of uploads (replay summary, `sluice host`): what must not be missed first."""

from __future__ import annotations

from typing import Any

from sensor.outputs.activity import upload_text


def _record(**file: Any) -> dict[str, Any]:
    body = {
        "proto": "http",
        "filename": "export.csv",
        "mime_type": "text/csv",
        "size": 40_033,
        "sha256": "ab" * 32,
        "complete": True,
        "missing_bytes": 0,
        **file,
    }
    return {"file": body, "http": {"http_method": "POST", "url": "/upload/" + "x" * 80}}


def test_a_plain_upload_has_no_flags() -> None:
    text = upload_text(_record())
    assert text.startswith("POST /upload/") and "export.csv" in text and "[" not in text


def test_ambiguous_and_incomplete_lead_the_line_so_a_narrow_terminal_keeps_them() -> None:
    text = upload_text(_record(ambiguous=True, reading="tcp-linux", complete=False,
                               missing_bytes=1200))  # fmt: skip
    assert text.startswith("[ambiguous: tcp-linux; INCOMPLETE 1,200 B missing] POST /upload/")
    assert upload_text(_record(complete=False)).startswith("[INCOMPLETE] POST")


def test_a_sensitive_upload_says_so_first() -> None:
    """A classified upload of a finding's severity leads with it and its record count; one
    below (a single e-mail address: low) carries no flag."""
    found = {"severity": "critical", "records": 400, "categories": ["health", "national_id"]}
    text = upload_text(_record(classification=found, fingerprint={"encrypted": False}))
    assert text.startswith("[SENSITIVE critical, 400 records] POST /upload/")
    low = {"severity": "low", "records": 0, "categories": ["contact"]}
    assert "[" not in upload_text(_record(classification=low))
