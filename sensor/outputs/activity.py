"""Per-host activity (the outputs stage): what `sluice host` lists besides volume, and the
content findings (encrypted uploads) for the findings table the meter's findings go to.

In: the records every sink sees. Out: one `Activity` per upload (a file a client sent: an HTTP
request body or multipart part with its URL, a mail attachment, an FTP upload), mail (an SMTP
transaction) and SSH session, written to the metering database's `activity` table, so a host's
page shows them without reading events.jsonl. Requests without a body are not kept (browsing
would drown the uploads); events.jsonl has them all.

The one-line descriptions are shared with the replay summary, so both read the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sensor.metering.store import MeterStore
from sensor.metering.units import human_bytes, printable
from sensor.metering.values import Finding
from sensor.outputs.eve import Record
from sensor.outputs.files import FINDING_SEVERITIES, PIPELINE_FINDING_KINDS

FLUSH_ROWS = 256  # rows buffered before a write; the rest go at flush()


@dataclass(frozen=True, slots=True)
class Activity:
    ts: float
    host: str  # the client: the internal host for egress
    kind: str  # "upload" | "mail" | "ssh"
    dest: str  # "name ip:port" or "ip:port"
    bytes: int  # what the client sent in it
    summary: str  # one line for humans


def subject_text(subject: object) -> str:
    return "(no subject)" if subject is None else repr(printable(subject))


def upload_text(record: Record) -> str:
    """What was uploaded and how: `POST /api/x  export.csv  text/csv  40,033 B  sha256 ...`."""
    f = record["file"]
    if f["proto"] == "smtp":
        mail = record.get("smtp", {})
        rcpts = ", ".join(mail.get("rcpt_to", [])[:3])
        how = f"mail {mail.get('mail_from') or '?'} -> {rcpts or '?'}"
    elif f["proto"] == "ftp":
        ftp = record.get("ftp", {})
        how = f"FTP {ftp.get('command', '')} ({ftp.get('mode', '')})"
    else:
        how = http_text(record, status=False)
    # What the operator must not miss comes first: a narrow terminal cuts the end of the line.
    flags = []
    found = f.get("classification") or {}
    if found.get("severity") in FINDING_SEVERITIES:  # a `sensitive_content` finding
        flags.append(f"SENSITIVE {found['severity']}, {found['records']:,} records")
    fingerprint = f.get("fingerprint") or {}
    if fingerprint.get("encrypted"):
        hidden = ", names hidden" if fingerprint.get("hides_names") else ""
        flags.append(f"ENCRYPTED {fingerprint.get('encryption') or '?'}{hidden}")
    elif fingerprint.get("contains_encrypted"):
        flags.append("CONTAINS ENCRYPTED")
    if f.get("ambiguous"):  # one of several readings of the same message
        flags.append(f"ambiguous: {f['reading']}")
    if not f["complete"]:
        missing = f" {f['missing_bytes']:,} B missing" if f["missing_bytes"] else ""
        flags.append(f"INCOMPLETE{missing}")
    state = f"[{'; '.join(flags)}] " if flags else ""
    return printable(
        f"{state}{how}  {_name(f)}  {f['mime_type'] or '-'}  "
        f"{human_bytes(f['size'])}  sha256 {f['sha256'][:16]}"
    )


def _name(f: Record) -> str:
    """The file name; a member's is its path from the transferred object down."""
    path = f.get("container_path")
    if path:
        return " / ".join(p or "-" for p in path)
    return str(f["filename"] or "-")


def mail_text(record: Record) -> str:
    m = record["smtp"]
    rcpts = ", ".join(m["rcpt_to"][:3]) + (
        f" (+{len(m['rcpt_to']) - 3})" if len(m["rcpt_to"]) > 3 else ""
    )
    seen = "" if m["content_visible"] else "  (TLS: content not visible)"
    subject = subject_text(m.get("headers", {}).get("subject"))
    return printable(
        f"{m['mail_from'] or '-'} -> {rcpts or '-'}  {subject}  "
        f"{m['attachments']} attachment(s)  {m['status']}{seen}"
    )


def ssh_text(record: Record) -> str:
    """`SSH 2.0 sftp: upload, about 1.5 MB up / 2.1 kB down (client -> server software)`;
    for SSH-1, whose sizes Sluice does not model, the encrypted bytes each way."""
    s = record["ssh"]
    version = s.get("version")
    kind = s.get("transfer_kind") or "session"
    if version is not None and str(version).startswith("1"):
        up, down = (s.get("encrypted_bytes") or [0, 0])[:2]
        sizes = f"{human_bytes(up)} up / {human_bytes(down)} down encrypted"
    else:
        sizes = (
            f"about {human_bytes(s['upload_bytes_est'])} up / "
            f"{human_bytes(s['download_bytes_est'])} down"
        )
    client = (s.get("client") or {}).get("software") or "?"
    server = (s.get("server") or {}).get("software") or "?"
    return printable(
        f"SSH {version or '?'} {kind}: {s.get('transfer') or 'none'}, {sizes}  "
        f"({client} -> {server})"
    )


def http_text(record: Record, status: bool = True) -> str:
    """`POST files.example.org/share/upload -> 201` (the URL as the client named it)."""
    h = record.get("http", {})
    url = h.get("url", "")
    name = h.get("hostname", "")
    same = name.split(":")[0] in ("", record.get("dest_ip"))  # the destination names it
    target = f"{name}{url}" if url.startswith("/") and not same else url
    answer = f" -> {h.get('status') or '-'}" if status else ""
    return printable(f"{h.get('http_method', '?')} {target}{answer}")


def _dest(record: Record) -> str:
    where = f"{record['dest_ip']}:{record['dest_port']}"
    name = record.get("http", {}).get("hostname") or record.get("tls", {}).get("sni")
    return (
        printable(f"{name} {where}")
        if name and not str(name).startswith(record["dest_ip"])
        else where
    )


def activity_of(record: Record, ts: float) -> Activity | None:
    kind = record["event_type"]
    if kind == "file" and record["file"]["direction"] == "upload":
        f = record["file"]
        if "container_path" in f:  # a member: its bytes were counted with its container
            if not (f.get("fingerprint") or {}).get("encrypted"):
                return None
            return Activity(ts, record["src_ip"], "upload", _dest(record), 0, upload_text(record))
        return Activity(ts, record["src_ip"], "upload", _dest(record), f["size"],
                        upload_text(record))  # fmt: skip
    if kind == "smtp":
        size = record["smtp"].get("size") or 0
        return Activity(ts, record["src_ip"], "mail", _dest(record), size, mail_text(record))
    if kind == "ssh":
        up = record["ssh"]["upload_bytes_est"]
        return Activity(ts, record["src_ip"], "ssh", _dest(record), up, ssh_text(record))
    return None


def content_finding(record: Record) -> Finding:
    """A content finding's row of the findings table (`sluice findings`): its size is the
    value, its destination the destination."""
    f = record["finding"]
    dest = f"{f['destination']}:{f['destination_port']}" if "destination" in f else ""
    return Finding(
        kind=f["kind"],
        host=f["host"],
        ts=parse_time(record["timestamp"]),
        window=0.0,
        value=float(f.get("size") or 0),
        threshold=0.0,
        detail=f["detail"],
        destinations=(dest,) if dest else (),
        severity=f["severity"],
    )


def parse_time(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class ActivityLog:
    """A sink writing `Activity` rows to the metering database in batches. A write that
    fails (disk full, locked) loses that batch, counted in `lost` and said once per streak
    through `warn`; the sensor goes on."""

    def __init__(self, store: MeterStore, warn: Callable[[str], None]) -> None:
        self.store = store
        self.warn = warn
        self.rows: list[Activity] = []
        self.findings: list[Finding] = []  # content findings (the meter writes its own)
        self.verdicts: list[dict[str, Any]] = []  # the policy's verdicts
        self.lost = 0
        self._failing = False

    def __call__(self, record: Record) -> None:
        kind = record["event_type"]
        if kind == "finding" and record["finding"]["kind"] in PIPELINE_FINDING_KINDS:
            self.findings.append(content_finding(record))
            if len(self.findings) >= FLUSH_ROWS:
                self.flush()
            return
        if kind == "verdict":  # rare, and what an operator asks for first after a crash
            self.verdicts.append({**record["verdict"], "ts": parse_time(record["timestamp"])})
            self.flush()
            return
        if kind not in ("file", "smtp", "ssh"):
            return
        activity = activity_of(record, parse_time(record["timestamp"]))
        if activity is not None:
            self.rows.append(activity)
            if len(self.rows) >= FLUSH_ROWS:
                self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        findings, self.findings = self.findings, []
        verdicts, self.verdicts = self.verdicts, []
        if not rows and not findings and not verdicts:
            return
        try:
            if rows:
                self.store.add_activity(
                    (a.ts, a.host, a.kind, a.dest, a.bytes, a.summary) for a in rows
                )
            if findings:
                self.store.write(findings)
            if verdicts:
                self.store.add_verdicts(verdicts)
        except (sqlite3.Error, OSError) as exc:  # the sensor goes on
            self.lost += len(rows) + len(findings) + len(verdicts)
            if not self._failing:
                self.warn(f"writing host activity to {self.store.path} failed ({exc})")
            self._failing = True
            return
        self._failing = False
