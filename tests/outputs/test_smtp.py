"""sensor/outputs/smtp.py: the smtp record joins what the MIME engine found in its message;
a message's files name their envelope, also when the transaction was reported first."""

from __future__ import annotations

import socket

from sensor.content.mime import MessageHeaders
from sensor.content.router import MessageEnded, MessageHeadersSeen
from sensor.flows.table import Flow
from sensor.outputs.smtp import SmtpLog
from sensor.protocols.base import Direction, ObjectStart
from sensor.protocols.smtp import Envelope, SmtpTransaction

CLIENT, SERVER = socket.inet_aton("10.0.0.1"), socket.inet_aton("198.51.100.25")


def flow() -> Flow[None]:
    return Flow(
        key=(6, CLIENT, 50000, SERVER, 25), flow_id=7, proto=6, ip_version=4, client=CLIENT,
        client_port=50000, server=SERVER, server_port=25, start=1.0, last=1.0,
    )  # fmt: skip


def transaction(txid: int) -> SmtpTransaction:
    return SmtpTransaction(txid, "lab", "a@lab.nl", [], ["b@x.org"], [], None, False, False,
                           "accepted", "250 ok", 100, 2.0)  # fmt: skip


def test_the_record_joins_its_message_and_forgets_it() -> None:
    log = SmtpLog()
    start = ObjectStart(1, Direction.TO_SERVER, 1.0, "smtp", message=True)
    log.message(MessageHeadersSeen(start, MessageHeaders(subject="uitslagen")))
    log.message(MessageEnded(start, 2, 100, "ab" * 32, True))
    record = log.event(flow(), transaction(1))
    assert record is not None
    body = record["smtp"]
    assert body["attachments"] == 2 and body["message_sha256"] == "ab" * 32
    assert body["headers"] == {"subject": "uitslagen"}
    again = log.event(flow(), transaction(1))  # a second report of txid 1 has no message
    assert again is not None and again["smtp"]["attachments"] == 0


def test_files_name_their_envelope_whenever_they_finish() -> None:
    log = SmtpLog()
    start = ObjectStart(3, Direction.TO_SERVER, 1.0, "smtp", message=True,
                        about=Envelope("a@lab.nl", ("b@x.org",)))  # fmt: skip
    log.event(flow(), transaction(3))  # reported before the message's last leaf ended
    assert log.file_context(start) == {"tx_id": 3, "mail_from": "a@lab.nl", "rcpt_to": ["b@x.org"]}
    assert log.file_context(ObjectStart(4, Direction.TO_SERVER, 1.0, "smtp")) is None
