"""The FTP log (the outputs stage): `ftp` records of control connections, and the transfer on
the files of data connections.

A control connection gives one record per transfer command with its outcome (`type`
"transfer") and one for the connection as a whole (`type` "session"; PASS is never kept by the
parser). The file of a data connection names the command that announced it and the control
flow it came from.
"""

from __future__ import annotations

from typing import Any

from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, fields_record, flow_header
from sensor.protocols.base import ObjectStart, ProtocolEvent
from sensor.protocols.ftp import FtpDataLink, FtpSession, FtpTransfer


def ftp_record(flow: Flow[Any], value: FtpTransfer | FtpSession, kind: str) -> Record:
    """An `ftp` record of one transfer command ("transfer") or of the connection ("session")."""
    record = flow_header(flow, "ftp", value.ts)
    body = fields_record(value)
    body["type"] = kind
    record["ftp"] = body
    return record


class FtpLog(ProtocolLog):
    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        if isinstance(event, FtpTransfer):
            return ftp_record(flow, event, "transfer")
        if isinstance(event, FtpSession):
            return ftp_record(flow, event, "session")
        return None

    def file_context(self, start: ObjectStart) -> Record | None:
        link = start.about
        if not isinstance(link, FtpDataLink):
            return None
        expected = link.expected
        return {
            "type": "data",
            "command": expected.command,
            "filename": expected.filename,
            "mode": expected.mode,
            "control_flow_id": link.control_flow_id,
            "control_tx_id": expected.txid,
        }
