"""smtp-attachments (REAL): one multipart/mixed message to an external mailbox.

multipart/mixed
  multipart/alternative
    text/plain (quoted-printable, UTF-8)
    text/html (base64)
  patients-week27.csv   text/csv, base64, Content-Disposition filename
  echo-0042.bin         application/octet-stream, base64, filename only in Content-Type name
  export-week27.zip     application/zip, base64: WinZip AES-256 (pyzipper), password-protected,
                        holding a CSV
  röntgen-übersicht.csv text/csv, quoted-printable, RFC 2231 filename*= and name*= (UTF-8)

Every leaf is an object (the two text bodies too); four are attachments.
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv, random_bytes
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import SERVER_V4

PORT = smtpcase.SMTP_PORT
SUBJECT = "Export week 27"
ZIP_PASSWORD = b"Week27-Export!"  # fake; the archive holds fake data
CSV = patients_csv(30_000, seed=61)
BINARY = random_bytes(12_000, seed=62)
ZIPPED_CSV = patients_csv(20_000, seed=63)
ZIP = mailmsg.aes_zip({"export-week27.csv": ZIPPED_CSV}, ZIP_PASSWORD)
UMLAUT_CSV = patients_csv(4_000, seed=64).replace(
    b"controle", b"Kontrolle \xc3\xbcberf\xc3\xa4llig"
)
TEXT = (
    "Beste collega,\n\nIn de bijlage de export van week 27 (fictieve testgegevens). Het "
    "wachtwoord van het zip-bestand volgt telefonisch. Zie ook het röntgenoverzicht.\n\n"
    "Met vriendelijke groet,\nA. Voorbeeld\n"
)
HTML = (
    "<html><body><p>Beste collega,</p><p>In de bijlage de export van week 27 "
    "(<b>fictieve</b> testgegevens).</p><p>Met vriendelijke groet,<br>A. Voorbeeld</p>"
    "</body></html>\n"
)

BODY = multipart(
    "mixed",
    "=_sluice_mixed_27",
    [
        multipart(
            "alternative",
            "=_sluice_alt_27",
            [
                mailmsg.text_entity(TEXT, "quoted-printable"),
                mailmsg.text_entity(HTML, "base64", "html"),
            ],
        ),
        entity(
            [
                ("Content-Type", 'text/csv; charset=utf-8; name="patients-week27.csv"'),
                ("Content-Disposition", 'attachment; filename="patients-week27.csv"'),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(CSV),
        ),
        entity(
            [
                ("Content-Type", 'application/octet-stream; name="echo-0042.bin"'),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(BINARY),
        ),
        entity(
            [
                ("Content-Type", 'application/zip; name="export-week27.zip"'),
                ("Content-Disposition", 'attachment; filename="export-week27.zip"'),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(ZIP),
        ),
        entity(
            [
                (
                    "Content-Type",
                    "text/csv; charset=utf-8; name*=utf-8''r%C3%B6ntgen-%C3%BCbersicht.csv",
                ),
                (
                    "Content-Disposition",
                    "attachment;\r\n filename*=utf-8''r%C3%B6ntgen-%C3%BCbersicht.csv",
                ),
                ("Content-Transfer-Encoding", "quoted-printable"),
            ],
            mailmsg.qp(UMLAUT_CSV),
        ),
    ],
)
MESSAGE = mailmsg.message(subject=SUBJECT, msg_id="attachments-20250701120000", body_entity=BODY)


def server(workdir: Path) -> None:
    smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir), PORT)


def client(workdir: Path) -> None:
    with smtplib.SMTP(SERVER_V4, PORT, local_hostname=smtpcase.CLIENT_HELO, timeout=10) as smtp:
        refused = smtp.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], MESSAGE)
        assert not refused, refused
        smtpcase.record_sent(workdir, MESSAGE)


def expected_objects() -> list[dict[str, object]]:
    """The leaves, asserted against the parts the generator put in (ground truth both ways)."""
    leaves = expect.mime_leaves(MESSAGE)
    names = [name for name, _data, _att in leaves]
    assert names == [
        None,
        None,
        "patients-week27.csv",
        "echo-0042.bin",
        "export-week27.zip",
        "röntgen-übersicht.csv",
    ], names
    datas = [data for _name, data, _att in leaves]
    # quoted-printable keeps the CRLF line ends; the CRLF before the next boundary belongs to
    # the delimiter (RFC 2046 5.1.1), so the last line break is not part of the content.
    qp_text = mailmsg.crlf(UMLAUT_CSV).removesuffix(b"\r\n")
    assert datas[2:] == [CSV, BINARY, ZIP, qp_text], "a part decodes wrongly"
    return expect.smtp_objects(MESSAGE)


def build_expected(case_dir: Path, workdir: Path) -> None:
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, [mailmsg.EXTERNAL])])
    pcap = case_dir / "input.pcap"
    smtpcase.check_imf(pcap, [SUBJECT], PORT)
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    expect.write_expected_mail(
        case_dir,
        objects=expected_objects(),
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
