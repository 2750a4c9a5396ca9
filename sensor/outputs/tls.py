"""The TLS log (the outputs stage): one `tls` record per handshake (SNI, ALPN, versions, cipher,
JA3/JA3S/JA4, the server's certificates where visible)."""

from __future__ import annotations

from typing import Any

from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, fields_record, flow_header
from sensor.protocols.base import ProtocolEvent
from sensor.protocols.tls import TlsHandshake


def tls_record(flow: Flow[Any], hs: TlsHandshake) -> Record:
    record = flow_header(flow, "tls", hs.ts)
    record["tls"] = fields_record(hs)
    return record


class TlsLog(ProtocolLog):
    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        return tls_record(flow, event) if isinstance(event, TlsHandshake) else None
