"""The SSH log (the outputs stage): one `ssh` record per session (protocol version, banners,
software, HASSH, algorithms, and what the session model inferred after the key exchange).

The parser's fields as they are, the client's and server's under `client` and `server`: an
SSH-1 session or one whose other direction was not captured keeps those fields, null (the
schema's `ssh` definition says which)."""

from __future__ import annotations

from typing import Any

from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, fields_record, flow_header
from sensor.protocols.base import ProtocolEvent
from sensor.protocols.ssh import SshSession


def ssh_record(flow: Flow[Any], session: SshSession) -> Record:
    record = flow_header(flow, "ssh", session.ts)
    body = fields_record(session)
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


class SshLog(ProtocolLog):
    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        return ssh_record(flow, event) if isinstance(event, SshSession) else None
