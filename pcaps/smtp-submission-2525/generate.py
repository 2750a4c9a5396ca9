"""smtp-submission-2525 (REAL): as smtp-plain, but the server listens on port 2525.

Nothing about the port says SMTP: the sensor must recognise the protocol by content
(the 220 greeting, EHLO), as mail submission on non-standard ports does in practice.

The Subject is two RFC 2047 encoded words (Q then B); the body is 8bit UTF-8 with a few fake
patient rows. The whole body is the one object.
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

PORT = 2525
SUBJECT_RAW = "=?UTF-8?Q?Uitslagen_r=C3=B6ntgen_?= =?UTF-8?B?d2VlayAyNyDigJMgdmVydHJvdXdlbGlqaw==?="
SUBJECT = "Uitslagen röntgen week 27 \u2013 vertrouwelijk"  # EN DASH
BODY = (
    "Beste collega,\n\nHierbij de uitslagen van deze week (fictief, testdata).\n"
    "Met vriendelijke groet,\nA. Voorbeeld\n\n" + patients_csv(1_500, seed=58).decode()
)
MESSAGE = mailmsg.message(
    subject=SUBJECT_RAW,
    msg_id="submission-20250701120000",
    body_entity=mailmsg.text_entity(BODY, "8bit"),
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
    assert expect.message_subject(MESSAGE) == SUBJECT
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
                rcpt_to=[mailmsg.EXTERNAL],
                message=MESSAGE,
            )
        ],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
