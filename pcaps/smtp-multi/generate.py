"""smtp-multi (REAL): several transactions on one SMTP connection.

1. sendmail: a plain-text message, one recipient;
2. sendmail: a message with a CSV attachment to three recipients (To + Cc + a Bcc-only one);
3. MAIL + RCPT, then RSET: an aborted transaction, no content;
4. sendmail: a message forwarding an earlier one as a message/rfc822 attachment (whose own
   leaves - text and a CSV - are objects too).
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import SERVER_V4

PORT = smtpcase.SMTP_PORT
SENDER = mailmsg.SENDER
RCPT_1 = [mailmsg.EXTERNAL]
RCPT_2 = ["export@mailbox.example", "archief@mailbox.example", "b.proefman@partner.example"]
RCPT_ABORTED = ["c.nepdorp@partner.example"]
RCPT_4 = ["b.proefman@partner.example"]

MSG_1 = mailmsg.message(
    subject="Overleg donderdag",
    msg_id="multi-1-20250701120000",
    body_entity=mailmsg.text_entity("Donderdag 14:00 overleg over de export.\n", "7bit"),
)
CSV_2 = patients_csv(6_000, seed=71)
MSG_2 = mailmsg.message(
    subject="Lijst controles",
    msg_id="multi-2-20250701120000",
    to=RCPT_2[:2],
    cc=RCPT_2[2:],
    body_entity=multipart(
        "mixed",
        "=_sluice_multi_2",
        [
            mailmsg.text_entity("Zie bijlage (fictieve testgegevens).\n", "7bit"),
            entity(
                [
                    ("Content-Type", 'text/csv; name="controles.csv"'),
                    ("Content-Disposition", 'attachment; filename="controles.csv"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(CSV_2),
            ),
        ],
    ),
)
CSV_4 = patients_csv(3_000, seed=74)
INNER_4 = mailmsg.message(
    subject="Verwijzingen juni",
    msg_id="multi-inner-20250601090000",
    date="Sun, 01 Jun 2025 09:00:00 +0200",
    body_entity=multipart(
        "mixed",
        "=_sluice_inner_4",
        [
            mailmsg.text_entity("Verwijzingen juni, fictief.\n", "7bit"),
            entity(
                [
                    ("Content-Type", "text/csv"),
                    ("Content-Disposition", 'attachment; filename="verwijzingen-juni.csv"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(CSV_4),
            ),
        ],
    ),
)
MSG_4 = mailmsg.message(
    subject="Fwd: Verwijzingen juni",
    msg_id="multi-4-20250701120000",
    to=RCPT_4,
    body_entity=multipart(
        "mixed",
        "=_sluice_multi_4",
        [
            mailmsg.text_entity("Doorgestuurd bericht hieronder.\n", "7bit"),
            entity(
                [
                    ("Content-Type", "message/rfc822"),
                    ("Content-Disposition", 'attachment; filename="verwijzingen.eml"'),
                ],
                INNER_4,
            ),
        ],
    ),
)
SENT = [(MSG_1, RCPT_1), (MSG_2, RCPT_2), (MSG_4, RCPT_4)]


def server(workdir: Path) -> None:
    smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir), PORT)


def client(workdir: Path) -> None:
    with smtplib.SMTP(SERVER_V4, PORT, local_hostname=smtpcase.CLIENT_HELO, timeout=10) as smtp:
        for i, (msg, rcpts) in enumerate(SENT):
            if i == 2:  # the aborted transaction goes between messages 2 and 3
                assert smtp.mail(SENDER)[0] == 250
                assert smtp.rcpt(RCPT_ABORTED[0])[0] == 250
                assert smtp.rset()[0] == 250
            refused = smtp.sendmail(SENDER, rcpts, msg)
            assert not refused, refused
            smtpcase.record_sent(workdir, msg)


def build_expected(case_dir: Path, workdir: Path) -> None:
    smtpcase.check_delivered(workdir, [(msg, SENDER, rcpts) for msg, rcpts in SENT])
    pcap = case_dir / "input.pcap"
    subjects = [expect.message_subject(msg) for msg, _r in SENT]
    # tshark lists the forwarded message's subject with its carrier's, comma-joined
    subjects[2] += "," + str(expect.message_subject(INNER_4))
    smtpcase.check_imf(pcap, subjects, PORT)
    [stream] = smtpcase.client_streams(pcap)
    assert stream.count(b"\r\nrset\r\n") == 1, "RSET not on the wire"
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    leaves_4 = expect.mime_leaves(MSG_4)
    assert [name for name, _d, _a in leaves_4] == [None, None, "verwijzingen-juni.csv"]
    assert leaves_4[2][1] == CSV_4
    tx = [
        expect.smtp_transaction(
            helo=smtpcase.CLIENT_HELO, mail_from=SENDER, rcpt_to=rcpts, message=msg
        )
        for msg, rcpts in SENT
    ]
    aborted = expect.smtp_transaction(
        helo=smtpcase.CLIENT_HELO, mail_from=SENDER, rcpt_to=RCPT_ABORTED, status="aborted"
    )
    tx.insert(2, aborted)
    expect.write_expected_mail(
        case_dir,
        objects=[obj for msg, _r in SENT for obj in expect.smtp_objects(msg)],
        smtp=tx,
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
