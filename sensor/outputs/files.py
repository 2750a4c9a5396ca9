"""The file log (the outputs stage): `file` records of finished objects, and the flat
`files.jsonl` line of `sluice extract`.

Every object the content stage finishes (a body, a multipart part, a MIME leaf, an FTP transfer)
is one `file` record; the protocol that carried it adds its sub-object (the request, the
envelope, the transfer: `ProtocolLog.file_context`).
"""

from __future__ import annotations

from typing import Any

from sensor.classify.canary import Canary
from sensor.classify.score import Classification, EdmResult
from sensor.content.objects import FileInfo
from sensor.flows.table import Flow
from sensor.metering.units import human_bytes, printable
from sensor.outputs.eve import Record, flow_header, ip_text

DIRECTION_NAMES = ("upload", "download")  # by Direction: TO_SERVER, TO_CLIENT
# An encrypted upload is `high` from this size on (or when its container hides its member
# names), else `medium`; `low` when the destination is itself internal.
ENCRYPTED_UPLOAD_HIGH_BYTES = 50 * 1024**2
DETAIL_NAME_CHARS = 80  # of a file name in a finding's detail
# Known patient records (EDM) in one upload to an outside destination: `medium` for one (a
# referral letter), `high` from EDM_HIGH_RECORDS, `critical` from EDM_CRITICAL_RECORDS (an
# export); `low` to an internal destination.
EDM_HIGH_RECORDS = 10
EDM_CRITICAL_RECORDS = 100
# Where a canary token was seen outside content, as the finding's detail says it.
CANARY_PLACES = {
    "url": "in a request URL",
    "sni": "in a TLS server name",
    "smtp-envelope": "in an SMTP envelope",
    "dns": "in a DNS query",
}
# Findings the pipeline makes itself (the meter writes its own volume findings): these go to
# the findings table of the database through the activity log.
PIPELINE_FINDING_KINDS = frozenset({"encrypted_upload", "sensitive_content", "canary", "edm_match"})


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


def _finding(
    flow: Flow[Any], ts: float, kind: str, severity: str | None, proto: str, fields: Record
) -> Record:
    """A finding of the pipeline's own: the shared fields (the flow's client is the host),
    then the kind's."""
    record = flow_header(flow, "finding", ts)
    record["finding"] = {
        "kind": kind,
        "severity": severity,
        "host": ip_text(flow.client),
        "destination": ip_text(flow.server),
        "destination_port": flow.server_port,
        "proto": proto,
        **fields,
    }
    return record


def sensitive_content_record(
    flow: Flow[Any], ts: float, info: FileInfo, proto: str, c: Classification
) -> Record:
    """The `sensitive_content` finding of an upload whose content reached a severity."""
    counts = ", ".join(f"{n.distinct} {name}" for name, n in sorted(c.identifiers.items()))
    name = printable(info.filename or "(unnamed)")[:DETAIL_NAME_CHARS]
    where = f" inside {' / '.join(info.container_path[:-1])}" if info.container_path else ""
    return _finding(
        flow,
        ts,
        "sensitive_content",
        c.severity,
        proto,
        {
            "sha256": info.sha256,
            "filename": info.filename,
            "size": info.size,
            **({"container_path": list(info.container_path)} if info.container_path else {}),
            **classification_fields(c),
            "detail": f"{name}{where}: {', '.join(c.categories)}; {counts}; {c.records} records, "
            f"over {proto} to {ip_text(flow.server)}:{flow.server_port}",
        },
    )


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
    return _finding(
        flow,
        ts,
        "encrypted_upload",
        severity,
        proto,
        {
            "sha256": info.sha256,
            "filename": info.filename,
            "size": info.size,
            "scheme": fingerprint.encryption,
            "hides_names": fingerprint.hides_names,
            **({"container_path": list(info.container_path)} if info.container_path else {}),
            "detail": f"{name} ({what}, {human_bytes(info.size)}) encrypted with {scheme}{hidden}"
            f"{where}, over {proto} to {ip_text(flow.server)}:{flow.server_port}",
        },
    )


def _object_fields(info: FileInfo) -> Record:
    return {
        "sha256": info.sha256,
        "filename": info.filename,
        "size": info.size,
        **({"container_path": list(info.container_path)} if info.container_path else {}),
    }


def _object_words(info: FileInfo) -> str:
    name = printable(info.filename or "(unnamed)")[:DETAIL_NAME_CHARS]
    where = f" inside {' / '.join(info.container_path[:-1])}" if info.container_path else ""
    return f"{name}{where}"


def canary_record(
    flow: Flow[Any],
    ts: float,
    proto: str,
    canary: Canary,
    place: str,
    info: FileInfo | None = None,
    direction: str = "upload",
) -> Record:
    """The `canary` finding: a registered token was seen (in an object's content, a URL, a
    TLS SNI, an SMTP envelope, a DNS question). Always critical. The token itself is never
    written: its kind, the operator's label and when it was minted say which one it was.
    `direction`: "upload" when the flow's client sent it (metadata always is), "download"
    when a server sent it to the client (a policy should not block the client for that:
    anyone holding a leaked token could get internal hosts blocked by serving it)."""
    what = f"in {_object_words(info)}" if info is not None else CANARY_PLACES.get(place, place)
    proto = proto or ("dns" if place == "dns" else "")
    label = printable(canary.label)[:DETAIL_NAME_CHARS]
    return _finding(
        flow,
        ts,
        "canary",
        "critical",
        proto,
        {
            "canary": {"kind": canary.kind, "label": canary.label, "created": canary.created},
            "seen_in": place,
            "direction": direction,
            **(_object_fields(info) if info is not None else {}),
            "detail": f'canary {canary.kind} "{label}" {what}, over {proto} to '
            f"{ip_text(flow.server)}:{flow.server_port}",
        },
    )


def edm_match_record(
    flow: Flow[Any],
    ts: float,
    info: FileInfo,
    proto: str,
    edm: EdmResult,
    host_records: int,
    *,
    dest_internal: bool,
) -> Record:
    """The `edm_match` finding: an upload holds records of the organisation's own patients
    (primary identifier plus a corroborating field of the same record, `sluice edm load`).
    `records` counts the distinct known records in this object, `host_records` those this
    host sent since the sensor started: the approximate number of data subjects of a GDPR
    Art. 33 notification."""
    if dest_internal:
        severity = "low"
    elif edm.matched >= EDM_CRITICAL_RECORDS:
        severity = "critical"
    elif edm.matched >= EDM_HIGH_RECORDS:
        severity = "high"
    else:
        severity = "medium"
    return _finding(
        flow,
        ts,
        "edm_match",
        severity,
        proto,
        {
            **_object_fields(info),
            "records": edm.matched,
            "primary_only": edm.primary_only,
            "host_records": host_records,
            "detail": f"{_object_words(info)}: {edm.matched} known patient records "
            f"({host_records} from this host so far), over {proto} to "
            f"{ip_text(flow.server)}:{flow.server_port}",
        },
    )
