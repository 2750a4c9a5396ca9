"""The file log (the outputs stage): `file` records of finished objects, and the flat
`files.jsonl` line of `sluice extract`.

Every object the content stage finishes (a body, a multipart part, a MIME leaf, an FTP transfer)
is one `file` record; the protocol that carried it adds its sub-object (the request, the
envelope, the transfer: `ProtocolLog.file_context`).
"""

from __future__ import annotations

from typing import Any

from sensor.classify.score import Classification
from sensor.content.objects import FileInfo
from sensor.flows.table import Flow
from sensor.metering.units import human_bytes, printable
from sensor.outputs.eve import Record, flow_header, ip_text

DIRECTION_NAMES = ("upload", "download")  # by Direction: TO_SERVER, TO_CLIENT
# An encrypted upload is `high` from this size on (or when its container hides its member
# names), else `medium`; `low` when the destination is itself internal.
ENCRYPTED_UPLOAD_HIGH_BYTES = 50 * 1024**2
DETAIL_NAME_CHARS = 80  # of a file name in a finding's detail


def file_record(
    flow: Flow[Any],
    ts: float,
    info: FileInfo,
    direction: str,
    proto: str,
    tx_id: int | None,
    context: Record | None,
    reading: str | None = None,
) -> Record:
    record = flow_header(flow, "file", ts)
    body: Record = {
        "proto": proto,
        "direction": direction,
        "filename": info.filename,
        "mime_type": info.mime_type,
        "declared_type": info.declared_type,
        "size": info.size,
        "sha256": info.sha256,
        "complete": info.complete,
        "missing_bytes": info.missing_bytes,
        "encodings": list(info.encodings),
        "part_index": info.part_index,
        "fingerprint": info.fingerprint.as_record() if info.fingerprint is not None else None,
        **(
            {"parent_sha256": info.parent_sha256, "container_path": list(info.container_path)}
            if info.container_path is not None
            else {}
        ),
        "stored": info.stored_path is not None,
        **({"stored_cut": True, "stored_bytes": info.stored_bytes} if info.stored_cut else {}),
        "tx_id": tx_id,
    }
    if isinstance(info.classification, Classification) and info.classification.severity:
        body["classification"] = classification_fields(info.classification)
    if reading is not None:  # one of several readings of an ambiguous message
        body["ambiguous"] = True
        body["reading"] = reading
    record["file"] = body
    if context:
        record[proto] = context
    return record


def extracted_record(event: Record) -> Record:
    """The flat `files.jsonl` line of `sluice extract`, from a `file` event."""
    f = event["file"]
    return {
        "timestamp": event["timestamp"],
        "flow_id": event["flow_id"],
        "community_id": event["community_id"],
        "proto": f["proto"],
        "direction": f["direction"],
        "src_ip": event["src_ip"],
        "src_port": event["src_port"],
        "dest_ip": event["dest_ip"],
        "dest_port": event["dest_port"],
        "filename": f["filename"],
        "mime_type": f["mime_type"],
        "declared_type": f["declared_type"],
        "size": f["size"],
        "sha256": f["sha256"],
        "complete": f["complete"],
        "missing_bytes": f["missing_bytes"],
        "encodings": f["encodings"],
        "part_index": f["part_index"],
        "fingerprint": f["fingerprint"],
        **(
            {"parent_sha256": f["parent_sha256"], "container_path": f["container_path"]}
            if "container_path" in f
            else {}
        ),
        **({"stored_cut": True, "stored_bytes": f["stored_bytes"]} if f.get("stored_cut") else {}),
        **({"ambiguous": True, "reading": f["reading"]} if f.get("ambiguous") else {}),
        **({"classification": f["classification"]} if "classification" in f else {}),
    }


# A classified upload is a `sensitive_content` finding from this severity on; below, the
# file record says what was found (a single e-mail address in a page is not a finding).
FINDING_SEVERITIES = ("medium", "high", "critical")


def classification_fields(c: Classification) -> Record:
    """What classification found in an object, for its file record and its finding: counts
    and masked samples only, never a value in clear."""
    return {
        "severity": c.severity,
        "categories": list(c.categories),
        "identifiers": {
            name: {"distinct": n.distinct, "with_context": n.with_context,
                   "samples": list(n.samples)}
            for name, n in sorted(c.identifiers.items())
        },
        "records": c.records,
        "health_terms": c.strong_terms,
        "rule": c.rule,
    }  # fmt: skip


def sensitive_content_record(
    flow: Flow[Any], ts: float, info: FileInfo, proto: str, c: Classification
) -> Record:
    """The `sensitive_content` finding of an upload whose content reached a severity."""
    counts = ", ".join(f"{n.distinct} {name}" for name, n in sorted(c.identifiers.items()))
    name = printable(info.filename or "(unnamed)")[:DETAIL_NAME_CHARS]
    where = f" inside {' / '.join(info.container_path[:-1])}" if info.container_path else ""
    record = flow_header(flow, "finding", ts)
    record["finding"] = {
        "kind": "sensitive_content",
        "severity": c.severity,
        "host": ip_text(flow.client),
        "destination": ip_text(flow.server),
        "destination_port": flow.server_port,
        "proto": proto,
        "sha256": info.sha256,
        "filename": info.filename,
        "size": info.size,
        **({"container_path": list(info.container_path)} if info.container_path else {}),
        **classification_fields(c),
        "detail": f"{name}{where}: {', '.join(c.categories)}; {counts}; {c.records} records, "
        f"over {proto} to {ip_text(flow.server)}:{flow.server_port}",
    }
    return record


def encrypted_upload_record(
    flow: Flow[Any], ts: float, info: FileInfo, proto: str, *, dest_internal: bool
) -> Record:
    """The `encrypted_upload` finding of an encrypted object an internal client sent: a
    container nobody on the path can read (and a DLP cannot scan), so what left is unknown."""
    fingerprint = info.fingerprint
    assert fingerprint is not None
    if dest_internal:
        severity = "low"
    elif fingerprint.hides_names or info.size >= ENCRYPTED_UPLOAD_HIGH_BYTES:
        severity = "high"
    else:
        severity = "medium"
    scheme = fingerprint.encryption or "encrypted"
    what = fingerprint.type or "object"
    hidden = ", names hidden" if fingerprint.hides_names else ""
    where = f" inside {' / '.join(info.container_path[:-1])}" if info.container_path else ""
    name = printable(info.filename or "(unnamed)")[:DETAIL_NAME_CHARS]
    record = flow_header(flow, "finding", ts)
    record["finding"] = {
        "kind": "encrypted_upload",
        "severity": severity,
        "host": ip_text(flow.client),
        "destination": ip_text(flow.server),
        "destination_port": flow.server_port,
        "proto": proto,
        "sha256": info.sha256,
        "filename": info.filename,
        "size": info.size,
        "scheme": fingerprint.encryption,
        "hides_names": fingerprint.hides_names,
        **({"container_path": list(info.container_path)} if info.container_path else {}),
        "detail": f"{name} ({what}, {human_bytes(info.size)}) encrypted with {scheme}{hidden}"
        f"{where}, over {proto} to {ip_text(flow.server)}:{flow.server_port}",
    }
    return record
