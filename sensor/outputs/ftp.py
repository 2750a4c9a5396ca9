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


def ftp_transfer_record(flow: Flow[Any], tx: FtpTransfer) -> Record:
    record = flow_header(flow, "ftp", tx.ts)
    body = fields_record(tx)
    body["type"] = "transfer"
    record["ftp"] = body
    return record


def ftp_session_record(flow: Flow[Any], session: FtpSession) -> Record:
    record = flow_header(flow, "ftp", session.ts)
    body = fields_record(session)
    body["type"] = "session"
    record["ftp"] = body
    return record


class FtpLog(ProtocolLog):
    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        if isinstance(event, FtpTransfer):
            return ftp_transfer_record(flow, event)
        if isinstance(event, FtpSession):
            return ftp_session_record(flow, event)
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
