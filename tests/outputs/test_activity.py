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
