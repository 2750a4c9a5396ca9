"""What a replay's summary shows (the outputs stage): the sensitive uploads (what classification
found in them), the encrypted uploads, the first uploads, mails and SSH sessions, and every
finding grouped by kind.

A sink like any other: it sees every record and keeps the first `limit` of each kind the summary
lists, counting all of them, so memory stays bounded however long the input. Findings are kept
as groups (kind, severity, count, hosts), bounded by the number of kinds and `limit` hosts per
kind. Only `sluice replay`/`extract` attach it; the live sensor writes its records and keeps
none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sensor.outputs.eve import Record

DIGEST_LIMIT = 50  # records of each kind kept for the summary
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(slots=True)
class Kept:
    records: list[Record] = field(default_factory=list)
    total: int = 0

    def add(self, record: Record, limit: int) -> None:
        self.total += 1
        if len(self.records) < limit:
            self.records.append(record)


@dataclass(slots=True)
class FindingGroup:
    kind: str
    severity: str
    count: int = 0
    hosts: list[str] = field(default_factory=list)  # in order of first finding, capped
    first_detail: str = ""


class Digest:
    def __init__(self, limit: int = DIGEST_LIMIT) -> None:
        self.limit = limit
        self.uploads = Kept()  # `file` records of objects sent by a client (not members)
        self.encrypted = Kept()  # uploaded objects (or members of one) that are encrypted
        self.sensitive = Kept()  # `sensitive_content` findings: what classified uploads hold
        self.messages = Kept()  # `smtp` records
        self.sessions = Kept()  # `ssh` records
        self.findings = Kept()  # `finding` records
        self.verdicts = Kept()  # `verdict` records: what the policy decided
        self.cut = 0  # objects the extraction caps stored only in part
        self._groups: dict[tuple[str, str], FindingGroup] = {}

    def __call__(self, record: Record) -> None:
        kind = record["event_type"]
        if kind == "file":
            if record["file"].get("stored_cut"):
                self.cut += 1
            f = record["file"]
            if f["direction"] == "upload":
                fingerprint = f.get("fingerprint") or {}
                if fingerprint.get("encrypted"):
                    self.encrypted.add(record, self.limit)
                if "container_path" not in f:
                    self.uploads.add(record, self.limit)
        elif kind == "smtp":
            self.messages.add(record, self.limit)
        elif kind == "ssh":
            self.sessions.add(record, self.limit)
        elif kind == "verdict":
            self.verdicts.add(record, self.limit)
        elif kind == "finding":
            self.findings.add(record, self.limit)
            f = record["finding"]
            if f["kind"] == "sensitive_content":
                self.sensitive.add(record, self.limit)
            key = (f["kind"], f["severity"])
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = FindingGroup(f["kind"], f["severity"])
                group.first_detail = f["detail"]
            group.count += 1
            if f["host"] not in group.hosts and len(group.hosts) < self.limit:
                group.hosts.append(f["host"])

    @property
    def finding_groups(self) -> list[FindingGroup]:
        """Most severe first, then the most frequent."""
        return sorted(
            self._groups.values(),
            key=lambda g: (SEVERITY_ORDER.get(g.severity, 9), -g.count, g.kind),
        )
