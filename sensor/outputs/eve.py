"""EVE-style event records (the outputs stage): the common part of every record, and the writer.

Every record starts with the common fields of DESIGN.md ("Events") in a fixed order, then one
sub-object named after the event type. This module writes that common header and the records
that belong to no protocol (`flow`, `anomaly`, `stats`); each protocol's own records come from
its log beside this module (http.py, smtp.py, ftp.py, tls.py, ssh.py), file objects from
files.py and the meter's from meter.py. Field names are documented in `events.schema.json`
beside this module, and a test validates every emitted record against it. Wire data stays bytes
until the outputs, where it is decoded with errors="replace".

A protocol's log (`ProtocolLog`) plays the part of Suricata's per-protocol loggers and Zeek's
protocol scripts: one per flow and protocol, it turns the protocol's events into records and
joins them with what the content stage found in the protocol's objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sensor.anomaly import KINDS, Anomaly
from sensor.content.router import MessageEnded, MessageHeadersSeen
from sensor.decode.packet import PROTO_TCP
from sensor.flows.community import community_id, community_id_v1
from sensor.flows.halfopen import MAX_LISTED, Attempts
from sensor.flows.table import Flow
from sensor.metering.store import current_umask
from sensor.protocols.base import ObjectStart, ProtocolEvent

PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP"}

Record = dict[str, Any]
Sink = Callable[[Record], None]  # where records go: a writer, a test's list.append, ...


_MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z


PRIVATE_MODE = 0o640  # before the umask


def open_private(path: Path, append: bool = False) -> IO[str]:
    """A text output file, 0640 less the umask (the CLI's 0077 makes it 0600, or 0640 with
    an operators' group): it names hosts, mailboxes and URLs. An existing file is brought to
    the same mode, so an old output written 0644 loses its reading by others."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE & ~current_umask())
        buffering = 1 if append else -1  # appended (live): line by line, for tail -f
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


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


def flow_header(flow: Flow[Any], event_type: str, ts: float) -> Record:
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


def flow_record(flow: Flow[Any], ts: float, reason: str) -> Record:
    record = flow_header(flow, "flow", ts)
    body: Record = {
        "pkts_toserver": flow.toserver.pkts,
        "pkts_toclient": flow.toclient.pkts,
        "bytes_toserver": flow.toserver.bytes,
        "bytes_toclient": flow.toclient.bytes,
        "start": iso_time(flow.start),
        "end": iso_time(flow.last),
        "age": round(flow.last - flow.start, 6),
        "state": flow.state,
        "reason": reason,
        "midstream": flow.midstream,
    }
    record["flow"] = body
    return record


def half_open_record(attempts: Attempts, ts: float, reason: str) -> Record:
    """Unanswered connection attempts of one client to one server, or of many clients with
    one attempt each (sensor/flows/halfopen.py): one `flow` record, named by the first
    attempt's addresses and ports, with how many there were."""
    client_port, server_port = attempts.first_port
    ports = sorted(attempts.ports)
    body: Record = {
        "pkts_toserver": attempts.syns,
        "pkts_toclient": 0,
        "bytes_toserver": attempts.ip_bytes,
        "bytes_toclient": 0,
        "start": iso_time(attempts.start),
        "end": iso_time(attempts.last),
        "age": round(attempts.last - attempts.start, 6),
        "state": "half_open",
        "reason": reason,
        "midstream": False,
        "attempts": attempts.tuples,
        "dest_ports": {"count": len(ports), "first": ports[:MAX_LISTED]},
    }
    if attempts.client_count > 1:
        body["sources"] = {
            "count": attempts.client_count,
            "first": [ip_text(client) for client in attempts.clients],
        }
    return {
        "timestamp": iso_time(ts),
        "event_type": "flow",
        "flow_id": _half_open_id(attempts),
        "community_id": community_id_v1(
            PROTO_TCP, attempts.client, client_port, attempts.server, server_port
        ),
        "src_ip": ip_text(attempts.client),
        "src_port": client_port,
        "dest_ip": ip_text(attempts.server),
        "dest_port": server_port,
        "proto": "TCP",
        "app_proto": "unknown",
        "flow": body,
    }


def _half_open_id(attempts: Attempts) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(attempts.client + attempts.server)
    h.update(struct.pack("!dI", attempts.start, attempts.tuples))
    return int.from_bytes(h.digest(), "big") & ((1 << 53) - 1)


def anomaly_record(flow: Flow[Any] | None, anomaly: Anomaly, ts: float) -> Record:
    """An anomaly; its `layer` is the one the registry (sensor/anomaly.py) gives its kind."""
    if flow is not None:
        record = flow_header(flow, "anomaly", ts)
    else:
        record = {"timestamp": iso_time(ts), "event_type": "anomaly"}
    body: Record = {"kind": anomaly.kind, "layer": KINDS.get(anomaly.kind, _UNREGISTERED)[0]}
    if anomaly.detail:
        body["detail"] = anomaly.detail[:512]
    record["anomaly"] = body
    return record


_UNREGISTERED = ("app", "")


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


def fields_record(value: object, skip: tuple[str, ...] = ("ts",)) -> Record:
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


class ProtocolLog:
    """One flow's log of one protocol. The pipeline hands it the protocol's events and the
    content results of the protocol's objects; it returns the records to write. The defaults
    log nothing."""

    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        """The record of one of the protocol's events, if it makes one."""
        return None

    def file_context(self, start: ObjectStart) -> Record | None:
        """What the protocol adds to the `file` records of an object (its sub-object named
        after the protocol): the request, the envelope, the transfer."""
        return None

    def message(self, result: MessageHeadersSeen | MessageEnded) -> None:
        """What the content stage learnt of a whole message (SMTP), to join with the
        protocol's own record of it."""


WITHHELD = "[canary]"  # what stands in an output for a canary token seen in flow metadata


def withhold(item: Any, needles: Sequence[str]) -> Any:
    """`item` (a record, or any part of one) with every occurrence of the `needles` (canary
    tokens seen in this flow's metadata: a URL path, a DNS name, an e-mail address) replaced
    by WITHHELD, case-insensitively: the sensor reports that a token was seen, never the
    token, so a reader of the events cannot learn it (and avoid it)."""
    if isinstance(item, str):
        folded = item.casefold()
        if not any(needle in folded for needle in needles):
            return item
        for needle in needles:
            start = folded.find(needle)
            while start >= 0:
                item = item[:start] + WITHHELD + item[start + len(needle) :]
                folded = item.casefold()
                start = folded.find(needle, start + len(WITHHELD))
        return item
    if isinstance(item, dict):
        return {key: withhold(value, needles) for key, value in item.items()}
    if isinstance(item, list):
        return [withhold(value, needles) for value in item]
    return item
