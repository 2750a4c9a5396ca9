"""smtp-bdat (crafted): CHUNKING (RFC 3030) instead of DATA.

Transaction 1: BDAT 1000, then BDAT 500 LAST - a 1500-byte message whose first chunk holds a
line that is only "." (so the bytes CRLF "." CRLF) and a line starting with "..". Under BDAT the
length alone frames the data: that "." line does NOT end the message and nothing is unstuffed.
Transaction 2: BDAT <whole message>, then BDAT 0 LAST (an empty closing chunk).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect, mailmsg
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.mailmsg import b64, entity, multipart

CASE = Path(__file__).resolve().parent
HELO = "ws042.zorg.example"
RCPT = mailmsg.EXTERNAL
CHUNK_1 = 1000
SIZE_1 = 1500


def message_1(pad: int) -> bytes:
    text = (
        "Regel voor de punt.\n.\nDeze regel volgt op een regel met alleen een punt: onder BDAT "
        "is dat geen einde van het bericht.\n..twee punten blijven twee punten\n"
        + "Opvulling "
        + "x" * pad
        + "\n"
    )
    return mailmsg.message(
        subject="BDAT in twee delen",
        msg_id="bdat-1-20250701120000",
        body_entity=multipart(
            "mixed",
            "=_sluice_bdat_1",
            [
                mailmsg.text_entity(text, "8bit"),
                entity(
                    [
                        ("Content-Type", "text/csv"),
                        ("Content-Disposition", 'attachment; filename="bdat.csv"'),
                        ("Content-Transfer-Encoding", "base64"),
                    ],
                    b64(patients_csv(300, seed=151)),
                ),
            ],
        ),
    )


MSG_1 = message_1(SIZE_1 - len(message_1(0)))
MSG_2 = mailmsg.message(
    subject="BDAT met lege LAST",
    msg_id="bdat-2-20250701120000",
    body_entity=multipart(
        "mixed",
        "=_sluice_bdat_2",
        [
            mailmsg.text_entity("Tweede bericht, afgesloten met BDAT 0 LAST.\n", "7bit"),
            entity(
                [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", 'attachment; filename="bdat-2.csv"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(patients_csv(2_000, seed=152)),
            ),
        ],
    ),
)


def main() -> None:
    assert len(MSG_1) == SIZE_1, len(MSG_1)
    dot_line = MSG_1.index(b"\r\n.\r\n")
    assert 0 < dot_line < CHUNK_1 - 5 and b"\r\n..twee" in MSG_1[:CHUNK_1]
    ok = b"250 2.1.0 Ok\r\n"
    conv = crafted.TcpConversation(client_port=50151, server_port=25)
    conv.handshake()
    turns = [
        ("server", b"220 mx.mailbox.example ESMTP Sluice crafted\r\n"),
        ("client", f"EHLO {HELO}\r\n".encode()),
        (
            "server",
            b"250-mx.mailbox.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
            b"250-CHUNKING\r\n250 SIZE 10240000\r\n",
        ),
    ]
    for msg, chunks in ((MSG_1, [MSG_1[:CHUNK_1], MSG_1[CHUNK_1:]]), (MSG_2, [MSG_2, b""])):
        turns += [
            ("client", f"MAIL FROM:<{mailmsg.SENDER}>\r\n".encode()),
            ("server", ok),
            ("client", f"RCPT TO:<{RCPT}>\r\n".encode()),
            ("server", b"250 2.1.5 Ok\r\n"),
        ]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            turns.append(
                ("client", f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
            )
            reply = (
                f"250 2.0.0 Ok: {len(msg)} octets queued"
                if last
                else f"250 2.0.0 {len(chunk)} octets received"
            )
            turns.append(("server", reply.encode() + b"\r\n"))
    turns += [("client", b"QUIT\r\n"), ("server", b"221 2.0.0 Bye\r\n")]
    # 600-byte segments: the first chunk (and the "." line's neighbourhood) spans segments.
    crafted.play(conv, turns, sizes=600)
    conv.close()
    pcap = CASE / "input.pcap"
    crafted.write_conversations(pcap, conv)
    expect.write_expected_mail(
        CASE,
        objects=[obj for msg in (MSG_1, MSG_2) for obj in expect.smtp_objects(msg)],
        smtp=[
            expect.smtp_transaction(helo=HELO, mail_from=mailmsg.SENDER, rcpt_to=[RCPT], message=m)
            for m in (MSG_1, MSG_2)
        ],
        flows=expect.count_flows(pcap),
    )


if __name__ == "__main__":
    main()
