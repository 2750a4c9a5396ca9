"""Build and write expected.json (the format the regression test reads, see pcaps/README.md)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dpkt


def uri_filename(uri: str) -> str | None:
    """Name of a whole (non-multipart) body without Content-Disposition, from its request URI.

    The last path segment, percent-decoded (UTF-8, errors replaced), query string excluded;
    None when that segment is empty ("/", "/api/"). "/api/v1/export?batch=7" -> "export".
    """
    path = uri.partition("?")[0]
    if "://" in path:  # absolute form: drop scheme and authority
        path = "/" + path.partition("://")[2].partition("/")[2]
    segment = path.rpartition("/")[2]
    return urllib.parse.unquote(segment, encoding="utf-8", errors="replace") or None


def http_object(
    direction: str,
    data: bytes | None = None,
    *,
    filename: str | None = None,
    complete: bool = True,
    missing_bytes: int = 0,
    size: int | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """One expected object; pass `data` (decoded bytes) or explicit size/sha256, or neither."""
    obj: dict[str, Any] = {"proto": "http", "direction": direction, "filename": filename}
    if data is not None:
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    if size is not None:
        obj["size"] = size
    if sha256 is not None:
        obj["sha256"] = sha256
    obj["complete"] = complete
    obj["missing_bytes"] = missing_bytes
    return obj


def http_request(method: str, host: str | None, uri: str, status: int | None) -> dict[str, Any]:
    return {"method": method, "host": host, "uri": uri, "status": status}


def write_expected(
    case_dir: Path,
    *,
    objects: Iterable[dict[str, Any]],
    http: Iterable[dict[str, Any]] | None,
    flows: int,
    anomalies: Iterable[str] = (),
    exhaustive: bool = True,
    read_error: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """`extra`: more record lists after "http", for a case mixing protocols (e.g. "tls" from
    `tlscase.tls_expectation`, "ssh" from `sshlab.expected_entry`). `http=None`: the case
    states no HTTP transactions."""
    doc = {
        "case": case_dir.name,
        "objects": list(objects),
        "objects_exhaustive": exhaustive,
        **({"http": list(http)} if http is not None else {}),
        **(extra or {}),
        "anomalies_include": list(anomalies),
        "flows": flows,
        "read_error": read_error,
    }
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def count_flows(pcap: Path) -> int:
    """Bidirectional TCP/UDP 5-tuples in an Ethernet pcap (a cross-check of the ground truth)."""
    keys: set[tuple[Any, ...]] = set()
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            l4 = getattr(ip, "data", None)
            if not isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                continue
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            keys.add((type(l4).__name__, *sorted([a, b])))
    return len(keys)


# -- SMTP -------------------------------------------------------------------------------------
# A message's objects are its LEAF MIME entities (text bodies too), decoded as Python's email
# package decodes them: message_from_bytes(policy=email.policy.default), walk() (which descends
# into message/rfc822 parts), every non-multipart part, get_payload(decode=True). Empty leaves are
# not objects.


def mime_leaves(message: bytes) -> list[tuple[str | None, bytes, bool]]:
    """(filename, decoded bytes, is_attachment) of every leaf entity of `message`, in order.

    filename: Content-Disposition filename (RFC 2231 decoded), else the Content-Type name
    parameter, else None (email's get_filename). is_attachment: it has a filename or its
    Content-Disposition is "attachment".
    """
    msg = email.message_from_bytes(message, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        attachment = filename is not None or part.get_content_disposition() == "attachment"
        out.append((filename, data, attachment))
    return out


def message_subject(message: bytes) -> str | None:
    """The Subject header with RFC 2047 encoded words decoded, None if there is none."""
    msg = email.message_from_bytes(message, policy=email.policy.default)
    subject = msg["Subject"]
    return None if subject is None else str(subject)


def smtp_object(
    data: bytes | None = None,
    *,
    filename: str | None = None,
    complete: bool = True,
    missing_bytes: int = 0,
    size: int | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """One expected SMTP object (always an upload: mail goes client to server)."""
    obj = http_object(
        "upload",
        data,
        filename=filename,
        complete=complete,
        missing_bytes=missing_bytes,
        size=size,
        sha256=sha256,
    )
    obj["proto"] = "smtp"
    return obj


def smtp_objects(message: bytes) -> list[dict[str, Any]]:
    """The expected objects of one message: its non-empty leaves."""
    return [smtp_object(data, filename=name) for name, data, _att in mime_leaves(message) if data]


def smtp_transaction(
    *,
    helo: str | None,
    mail_from: str | None,
    rcpt_to: Iterable[str],
    rcpt_rejected: Iterable[str] = (),
    status: str = "accepted",
    tls: bool = False,
    auth_mechanism: str | None = None,
    message: bytes | None = None,
    omit: Iterable[str] = (),
) -> dict[str, Any]:
    """One entry of the "smtp" list. `attachments` and `subject` come from `message` (0 and None
    when no message content was transferred); keys named in `omit` are left out (not checked)."""
    assert status in ("accepted", "rejected", "incomplete", "aborted", "encrypted"), status
    leaves = mime_leaves(message) if message is not None else []
    entry: dict[str, Any] = {
        "helo": helo,
        "mail_from": mail_from,
        "rcpt_to": list(rcpt_to),
        "rcpt_rejected": list(rcpt_rejected),
        "status": status,
        "tls": tls,
        "auth_mechanism": auth_mechanism,
        "attachments": sum(1 for _n, _d, att in leaves if att),
        "subject": message_subject(message) if message is not None else None,
    }
    for key in omit:
        del entry[key]
    return entry


def write_expected_mail(
    case_dir: Path,
    *,
    objects: Iterable[dict[str, Any]],
    smtp: Iterable[dict[str, Any]],
    flows: int,
    anomalies: Iterable[str] = (),
    secrets_absent: Iterable[str] = (),
    exhaustive: bool = True,
    read_error: str | None = None,
) -> None:
    """expected.json of a mail case: write_expected's keys ("http" empty) plus "smtp" and,
    when given, "secrets_absent"."""
    doc: dict[str, Any] = {
        "case": case_dir.name,
        "objects": list(objects),
        "objects_exhaustive": exhaustive,
        "http": [],
        "smtp": list(smtp),
        "anomalies_include": list(anomalies),
        "flows": flows,
        "read_error": read_error,
    }
    secrets = list(secrets_absent)
    if secrets:
        doc["secrets_absent"] = secrets
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
