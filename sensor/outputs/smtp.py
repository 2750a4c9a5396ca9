"""The SMTP log (the outputs stage): `smtp` records joined with what the MIME engine found.

One `smtp` record per transaction (the envelope and its fate, from the parser), joined with the
message's decoded header block and its size, attachment count and SHA-256 (from the content
stage, which reads the message as it streams). The files of a message (its MIME leaves) name
the envelope. Credentials never appear: the parser keeps only the AUTH mechanism. With STARTTLS
the content was not visible, and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensor.content.mime import MessageHeaders
from sensor.content.router import MessageEnded, MessageHeadersSeen
from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, flow_header
from sensor.protocols.base import ObjectStart, ProtocolEvent
from sensor.protocols.smtp import Envelope, SmtpTransaction


@dataclass(slots=True)
class MessageSummary:
    """What the MIME engine learnt of one SMTP message, joined to its transaction."""

    headers: MessageHeaders | None = None
    attachments: int = 0
    size: int = 0
    sha256: str | None = None
    complete: bool = False


def smtp_record(flow: Flow[Any], tx: SmtpTransaction, message: MessageSummary | None) -> Record:
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


class SmtpLog(ProtocolLog):
    """The messages of one flow's transactions, by txid, until the transaction is reported."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        self._messages: dict[int, MessageSummary] = {}

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        if isinstance(event, SmtpTransaction):
            return smtp_record(flow, event, self._messages.pop(event.txid, None))
        return None

    def message(self, result: MessageHeadersSeen | MessageEnded) -> None:
        summary = self._messages.setdefault(result.start.txid, MessageSummary())
        if isinstance(result, MessageHeadersSeen):
            summary.headers = result.headers
        else:
            summary.attachments = result.attachments
            summary.size = result.size
            summary.sha256 = result.sha256
            summary.complete = result.complete

    def file_context(self, start: ObjectStart) -> Record | None:
        envelope = start.about
        if not isinstance(envelope, Envelope):
            return None
        return {
            "tx_id": start.txid,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_to),
        }
