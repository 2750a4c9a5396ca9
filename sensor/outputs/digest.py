"""What a replay's summary shows (the outputs stage): the first uploads, mails and findings.

A sink like any other: it sees every record and keeps the first `limit` of each kind the summary
lists, counting all of them, so memory stays bounded however long the input. Only `sluice
replay`/`extract` attach it; the live sensor writes its records and keeps none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sensor.outputs.eve import Record

DIGEST_LIMIT = 50  # records of each kind kept for the summary


@dataclass(slots=True)
class Kept:
    records: list[Record] = field(default_factory=list)
    total: int = 0

    def add(self, record: Record, limit: int) -> None:
        self.total += 1
        if len(self.records) < limit:
            self.records.append(record)


class Digest:
    def __init__(self, limit: int = DIGEST_LIMIT) -> None:
        self.limit = limit
        self.uploads = Kept()  # `file` records of objects sent by a client
        self.messages = Kept()  # `smtp` records
        self.findings = Kept()  # `finding` records

    def __call__(self, record: Record) -> None:
        kind = record["event_type"]
        if kind == "file":
            if record["file"]["direction"] == "upload":
                self.uploads.add(record, self.limit)
        elif kind == "smtp":
            self.messages.add(record, self.limit)
        elif kind == "finding":
            self.findings.add(record, self.limit)
