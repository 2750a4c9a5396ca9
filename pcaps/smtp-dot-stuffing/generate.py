"""smtp-dot-stuffing (REAL): a message whose lines start with ".", "..", and one line that is
only "." - smtplib doubles the leading dot of each on the wire (RFC 5321 4.5.2 transparency).

The objects are the UNSTUFFED bytes: a sensor that keeps the extra dots gets other hashes, one
that treats the "." line as the end of DATA loses the rest of the message.
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.mailmsg import entity, multipart
from pcaps._lib.netns import SERVER_V4

PORT = smtpcase.SMTP_PORT
SUBJECT = "Punten aan het begin van regels"
TEXT = (
    "Regels die met een punt beginnen:\n"
    ".verborgen regel\n"
    "..twee punten\n"
    ".\n"
    "na de regel met alleen een punt\n"
    "...drie punten\n"
)
# An 8bit CSV attachment in which every row starts with "." (a dotfile-style listing).
CSV = b"".join(b"." + row + b"\n" for row in patients_csv(3_000, seed=121).splitlines())
MESSAGE = mailmsg.message(
    subject=SUBJECT,
    msg_id="dot-stuffing-20250701120000",
    body_entity=multipart(
        "mixed",
        "=_sluice_dots",
        [
            mailmsg.text_entity(TEXT, "8bit"),
            entity(
                [
                    ("Content-Type", "text/csv; charset=utf-8"),
                    ("Content-Disposition", 'attachment; filename=".patients.csv"'),
                    ("Content-Transfer-Encoding", "8bit"),
                ],
                mailmsg.crlf(CSV),
            ),
        ],
    ),
)


def server(workdir: Path) -> None:
    smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir), PORT)


def client(workdir: Path) -> None:
    with smtplib.SMTP(SERVER_V4, PORT, local_hostname=smtpcase.CLIENT_HELO, timeout=10) as smtp:
        refused = smtp.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], MESSAGE)
        assert not refused, refused
        smtpcase.record_sent(workdir, MESSAGE)


def build_expected(case_dir: Path, workdir: Path) -> None:
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, [mailmsg.EXTERNAL])])
    pcap = case_dir / "input.pcap"
    [stream] = smtpcase.client_streams(pcap)
    assert mailmsg.dot_stuff(MESSAGE) in stream, "smtplib did not stuff as expected"
    for stuffed in (b"\r\n..verborgen", b"\r\n...twee", b"\r\n..\r\nna de", b"\r\n....drie"):
        assert stuffed in stream, stuffed
    smtpcase.check_imf(pcap, [SUBJECT], PORT)
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    leaves = expect.mime_leaves(MESSAGE)
    assert b"\r\n.\r\nna de regel" in leaves[0][1] and leaves[1][1].startswith(b".patient_id")
    expect.write_expected_mail(
        case_dir,
        objects=expect.smtp_objects(MESSAGE),
        smtp=[
            expect.smtp_transaction(
                helo=smtpcase.CLIENT_HELO,
                mail_from=mailmsg.SENDER,
                rcpt_to=[mailmsg.EXTERNAL],
                message=MESSAGE,
            )
        ],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
