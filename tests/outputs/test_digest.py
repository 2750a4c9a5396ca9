"""sensor/outputs/digest.py: a replay's summary keeps the first records of each kind, and
counts them all, however long the input (the live sensor attaches no digest)."""

from __future__ import annotations

from sensor.outputs.digest import Digest


def test_the_digest_is_capped_and_counts_everything() -> None:
    digest = Digest(limit=3)
    for i in range(10):
        digest({"event_type": "file", "file": {"direction": "upload", "n": i}})
        digest({"event_type": "file", "file": {"direction": "download", "n": i}})
        digest({"event_type": "smtp", "n": i})
    digest({"event_type": "finding", "n": 0})
    digest({"event_type": "flow"})
    assert [r["file"]["n"] for r in digest.uploads.records] == [0, 1, 2]
    assert (digest.uploads.total, digest.messages.total, digest.findings.total) == (10, 10, 1)
    assert len(digest.messages.records) == 3
