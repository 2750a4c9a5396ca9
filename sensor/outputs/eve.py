"""EVE-style event records (the outputs stage): pipeline values in, JSON-ready dicts out.

Every record starts with the common fields of DESIGN.md ("Events") in a fixed order, then one
sub-object named after the event type. Field names are documented in `events.schema.json`
beside this module, and a test validates every emitted record against it. Wire data stays bytes
until here, where it is decoded with errors="replace". Credentials never reach a record: of a
request's headers only a fixed, harmless set is written (no Authorization, no Cookie).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import IO, Any

from sensor.anomaly import Anomaly
from sensor.content.entity import FileInfo
from sensor.content.mime import MessageHeaders
from sensor.flows.community import community_id
from sensor.flows.table import Flow
from sensor.metering.values import Finding, Volume, VolumeSummary
from sensor.protocols.ftp import FtpSession, FtpTransfer
from sensor.protocols.http import HttpRequestHead, HttpResponseHead, HttpTransaction
from sensor.protocols.smtp import SmtpTransaction
from sensor.protocols.ssh import SshSession
from sensor.protocols.tls import TlsHandshake

PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP"}

Record = dict[str, Any]
Sink = Callable[[Record], None]  # where records go: a writer, a test's list.append, ...


_MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z


def iso_time(ts: float) -> str:
    """ISO 8601 in UTC with microseconds, from the packet clock. A capture can carry any
    timestamp (a corrupt record, a clock at zero): out-of-range values are clamped, never
    allowed to raise."""
    if not 0.0 <= ts <= _MAX_TS:  # also catches NaN
        ts = 0.0 if not ts > 0.0 else _MAX_TS
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ip_text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def text(value: bytes, limit: int = 2048) -> str:
    """Wire bytes for humans: UTF-8 where valid, replacement characters elsewhere, bounded."""
    return value[:limit].decode("utf-8", errors="replace")


def flow_header(flow: Flow, event_type: str, ts: float) -> Record:
    return {
        "timestamp": iso_time(ts),
        "event_type": event_type,
        "flow_id": flow.flow_id,
        "community_id": community_id(flow),
        "src_ip": ip_text(flow.client),
        "src_port": flow.client_port,
        "dest_ip": ip_text(flow.server),
        "dest_port": flow.server_port,
        "proto": PROTO_NAMES.get(flow.proto, str(flow.proto)),
        "app_proto": flow.app_proto or "unknown",
    }


def flow_record(flow: Flow, ts: float, reason: str) -> Record:
    record = flow_header(flow, "flow", ts)
    body: Record = {
        "pkts_toserver": flow.pkts_toserver,
        "pkts_toclient": flow.pkts_toclient,
        "bytes_toserver": flow.bytes_toserver,
        "bytes_toclient": flow.bytes_toclient,
        "start": iso_time(flow.start),
        "end": iso_time(flow.last),
        "age": round(flow.last - flow.start, 6),
        "state": flow.state,
        "reason": reason,
        "midstream": flow.midstream,
    }
    record["flow"] = body
    return record


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def http_fields(request: HttpRequestHead | None, response: HttpResponseHead | None) -> Record:
    body: Record = {}
    if request is not None:
        host = _header(request.headers, b"host")
        if host is not None:
            body["hostname"] = text(host, 256)
        body["url"] = text(request.uri)
        body["http_method"] = text(request.method, 32)
        body["protocol"] = text(request.version, 16)
        for name, key in (
            (b"user-agent", "http_user_agent"),
            (b"referer", "http_refer"),
            (b"content-type", "http_request_content_type"),
        ):
            value = _header(request.headers, name)
            if value is not None:
                body[key] = text(value, 512)
    if response is not None:
        body["status"] = response.status
        if request is None:
            body["protocol"] = text(response.version, 16)
        for name, key in (
            (b"content-type", "http_content_type"),
            (b"server", "server"),
            (b"location", "redirect"),
        ):
            value = _header(response.headers, name)
            if value is not None:
                body[key] = text(value, 512)
    return body


def http_record(flow: Flow, tx: HttpTransaction, tunnel: bool) -> Record:
    record = flow_header(flow, "http", tx.ts)
    body = http_fields(tx.request, tx.response)
    body["tx_id"] = tx.txid
    body["request_body_len"] = tx.request_body_len
    body["response_body_len"] = tx.response_body_len
    if tx.request_missing or tx.response_missing:
        body["request_missing_bytes"] = tx.request_missing
        body["response_missing_bytes"] = tx.response_missing
    if tx.interim_statuses:
        body["interim_statuses"] = list(tx.interim_statuses)
    if tunnel:
        body["tunnel"] = True
    record["http"] = body
    return record


def file_record(
    flow: Flow,
    ts: float,
    info: FileInfo,
    direction: str,
    proto: str,
    tx_id: int | None,
    context: Record | None,
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
        "stored": info.stored_path is not None,
        "tx_id": tx_id,
    }
    record["file"] = body
    if context:
        record[proto] = context
    return record


@dataclass(slots=True)
class MessageSummary:
    """What the MIME engine learnt of one SMTP message, joined to its transaction."""

    headers: MessageHeaders | None = None
    attachments: int = 0
    size: int = 0
    sha256: str | None = None
    complete: bool = False


def smtp_record(flow: Flow, tx: SmtpTransaction, message: MessageSummary | None) -> Record:
    """One SMTP transaction. Credentials never appear: the parser keeps only the AUTH
    mechanism. With STARTTLS the content was not visible, and the record says so."""
    record = flow_header(flow, "smtp", tx.ts)
    body: Record = {
        "tx_id": tx.txid,
        "helo": tx.helo,
        "mail_from": tx.mail_from,
        "rcpt_to": list(tx.rcpt_to),
        "rcpt_rejected": list(tx.rcpt_rejected),
        "status": tx.status,
        "tls": tx.tls,
        "auth_mechanism": tx.auth_mechanism,
        "bdat": tx.bdat,
        "size": tx.size,
        "last_reply": tx.last_reply,
        "content_visible": not tx.tls,
    }
    if tx.mail_params:
        body["mail_params"] = list(tx.mail_params)
    if message is not None:
        body["attachments"] = message.attachments
        if message.sha256 is not None:
            body["message_sha256"] = message.sha256
        h = message.headers
        if h is not None:
            headers: Record = {
                "from": h.from_,
                "to": list(h.to),
                "cc": list(h.cc),
                "subject": h.subject,
                "date": h.date,
                "message_id": h.message_id,
                "user_agent": h.user_agent,
            }
            body["headers"] = {k: v for k, v in headers.items() if v not in (None, [])}
    else:
        body["attachments"] = 0
    record["smtp"] = body
    return record


def _fields(value: object, skip: tuple[str, ...] = ("ts",)) -> Record:
    """A parser's summary dataclass as a JSON object: same field names, times as ISO 8601."""
    out: Record = {}
    for f in fields(value):  # type: ignore[arg-type]
        if f.name in skip:
            continue
        item = getattr(value, f.name)
        if f.name.endswith(("_start", "_end")) and isinstance(item, float):
            item = iso_time(item)
        out[f.name] = item
    return out


def tls_record(flow: Flow, hs: TlsHandshake) -> Record:
    record = flow_header(flow, "tls", hs.ts)
    record["tls"] = _fields(hs)
    return record


def ssh_record(flow: Flow, session: SshSession) -> Record:
    record = flow_header(flow, "ssh", session.ts)
    body = _fields(session)
    body["client"] = {
        "banner": body.pop("client_banner"),
        "software": body.pop("client_software"),
        "hassh": body.pop("client_hassh"),
        "hassh_string": body.pop("client_hassh_string"),
    }
    body["server"] = {
        "banner": body.pop("server_banner"),
        "software": body.pop("server_software"),
        "hassh": body.pop("server_hassh"),
        "hassh_string": body.pop("server_hassh_string"),
    }
    record["ssh"] = body
    return record


def ftp_transfer_record(flow: Flow, tx: FtpTransfer, data: Record | None) -> Record:
    """One FTP transfer command with its outcome; `data` joins its data connection."""
    record = flow_header(flow, "ftp", tx.ts)
    body = _fields(tx)
    body["type"] = "transfer"
    if data is not None:
        body["data"] = data
    record["ftp"] = body
    return record


def ftp_session_record(flow: Flow, session: FtpSession) -> Record:
    """The control connection as a whole (PASS is never kept by the parser)."""
    record = flow_header(flow, "ftp", session.ts)
    body = _fields(session)
    body["type"] = "session"
    record["ftp"] = body
    return record


def volume_fields(v: Volume) -> Record:
    """A meter volume as the JSON field names events and `sluice top --json` share."""
    return {
        "bytes_out": v.out_bytes,
        "packets_out": v.out_packets,
        "payload_bytes_out": v.out_payload,
        "bytes_in": v.in_bytes,
        "packets_in": v.in_packets,
        "payload_bytes_in": v.in_payload,
    }


def volume_record(summary: VolumeSummary) -> Record:
    """A periodic per-host summary: this bucket, its sliding windows, its destinations."""
    body: Record = {
        "host": summary.host,
        "bucket_start": iso_time(summary.ts),
        "bucket_seconds": summary.duration,
        **volume_fields(summary.volume),
        "windows": {f"{int(seconds)}s": volume_fields(v) for seconds, v in summary.windows},
        "destinations": [
            {"ip": d.ip, "name": d.name, "port": d.port, "country": d.country,
             "category": d.category, **volume_fields(d.volume)}
            for d in summary.destinations
        ],
    }  # fmt: skip
    return {
        "timestamp": iso_time(summary.ts + summary.duration),
        "event_type": "volume",
        "src_ip": summary.host,
        "volume": body,
    }


def finding_record(finding: Finding) -> Record:
    """A volume detector fired (threshold, spike, slow exfiltration, novel destination, ...)."""
    return {
        "timestamp": iso_time(finding.ts),
        "event_type": "finding",
        "src_ip": finding.host,
        "finding": {
            "kind": finding.kind,
            "host": finding.host,
            "window_seconds": finding.window,
            "value": finding.value,
            "threshold": finding.threshold,
            "detail": finding.detail,
            "destinations": list(finding.destinations),
        },
    }


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
    }


def anomaly_record(flow: Flow | None, anomaly: Anomaly, layer: str, ts: float) -> Record:
    if flow is not None:
        record = flow_header(flow, "anomaly", ts)
    else:
        record = {"timestamp": iso_time(ts), "event_type": "anomaly"}
    body: Record = {"kind": anomaly.kind, "layer": layer}
    if anomaly.detail:
        body["detail"] = anomaly.detail[:512]
    record["anomaly"] = body
    return record


def stats_record(ts: float, stats: Record) -> Record:
    return {"timestamp": iso_time(ts), "event_type": "stats", "stats": stats}


class JsonlWriter:
    """One JSON object per line; the only place events become text."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.count = 0

    def __call__(self, record: Record) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        self._stream.write("\n")
        self.count += 1
