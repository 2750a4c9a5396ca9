"""smtp-rejected-rcpt (REAL): the server refuses one of two recipients with 550.

smtplib's sendmail sends RCPT for both, gets 550 for the unknown mailbox and 250 for the other,
and (at least one accepted) goes on with DATA: the message is delivered to the accepted one.
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
REJECTED = "onbekend@mailbox.example"
ACCEPTED = mailmsg.EXTERNAL
CSV = patients_csv(5_000, seed=91)
SUBJECT = "Export voor twee adressen"
MESSAGE = mailmsg.message(
    subject=SUBJECT,
    msg_id="rejected-rcpt-20250701120000",
    to=[REJECTED, ACCEPTED],
    body_entity=multipart(
        "mixed",
        "=_sluice_rej",
        [
            mailmsg.text_entity("Export in de bijlage (fictief).\n", "7bit"),
            entity(
                [
                    ("Content-Type", 'text/csv; name="export.csv"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(CSV),
            ),
        ],
    ),
)


def server(workdir: Path) -> None:
    smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir, refuse=frozenset({REJECTED})), PORT)


def client(workdir: Path) -> None:
    with smtplib.SMTP(SERVER_V4, PORT, local_hostname=smtpcase.CLIENT_HELO, timeout=10) as smtp:
        refused = smtp.sendmail(mailmsg.SENDER, [REJECTED, ACCEPTED], MESSAGE)
        assert list(refused) == [REJECTED] and refused[REJECTED][0] == 550, refused
        smtpcase.record_sent(workdir, MESSAGE)


def build_expected(case_dir: Path, workdir: Path) -> None:
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, [ACCEPTED])])
    pcap = case_dir / "input.pcap"
    smtpcase.check_imf(pcap, [SUBJECT], PORT)
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    expect.write_expected_mail(
        case_dir,
        objects=expect.smtp_objects(MESSAGE),
        smtp=[
            expect.smtp_transaction(
                helo=smtpcase.CLIENT_HELO,
                mail_from=mailmsg.SENDER,
                rcpt_to=[ACCEPTED],
                rcpt_rejected=[REJECTED],
                message=MESSAGE,
            )
        ],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
