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
    digest(
        {
            "event_type": "finding",
            "finding": {"kind": "volume_spike", "severity": "medium", "host": "10.0.0.1",
                        "detail": "x"},
        }
    )  # fmt: skip
    digest({"event_type": "flow"})
    assert [r["file"]["n"] for r in digest.uploads.records] == [0, 1, 2]
    assert (digest.uploads.total, digest.messages.total, digest.findings.total) == (10, 10, 1)
    assert len(digest.messages.records) == 3


def _finding(kind: str, severity: str, host: str) -> dict[str, object]:
    return {
        "event_type": "finding",
        "finding": {"kind": kind, "severity": severity, "host": host, "detail": f"{kind} {host}"},
    }


def test_findings_are_grouped_most_severe_first_with_their_hosts() -> None:
    digest = Digest(limit=2)
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"):
        digest(_finding("volume_threshold", "medium", host))
    digest(_finding("upload_asymmetry", "low", "10.0.0.9"))
    digest(_finding("slow_exfiltration", "high", "10.0.0.4"))
    groups = digest.finding_groups
    assert [(g.kind, g.severity, g.count) for g in groups] == [
        ("slow_exfiltration", "high", 1),
        ("volume_threshold", "medium", 4),
        ("upload_asymmetry", "low", 1),
    ]
    assert groups[1].hosts == ["10.0.0.1", "10.0.0.2"]  # distinct, capped at the limit
    assert groups[1].first_detail == "volume_threshold 10.0.0.1"
    assert digest.findings.total == 6


def test_sensitive_content_findings_are_kept_for_their_own_table() -> None:
    digest = Digest(limit=2)
    for _ in range(3):
        digest(_finding("sensitive_content", "critical", "10.0.0.1"))
    digest(_finding("encrypted_upload", "high", "10.0.0.1"))
    assert digest.sensitive.total == 3 and len(digest.sensitive.records) == 2
    assert {r["finding"]["kind"] for r in digest.sensitive.records} == {"sensitive_content"}
    assert digest.findings.total == 4
