"""smtp-auth (REAL): authenticated submission over PLAIN TEXT, two connections.

Connection 1 authenticates with AUTH PLAIN (initial response), connection 2 with AUTH LOGIN
(user name as initial response, password after the 334 challenge); each then sends one
message. The server (aiosmtpd, auth_require_tls=False) accepts exactly one fake account.

The fake password is in the capture, base64-encoded. Sluice may report the mechanism (and the
user name) but must never log the password in any form: expected.json lists the password and
its base64 forms under "secrets_absent".
"""

from __future__ import annotations

import base64
import smtplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import SERVER_V4

PORT = smtpcase.SMTP_PORT
USER = "a.voorbeeld"
PASSWORD = "Fake-Sluice-Pw-7781!"  # fake, exists only in this test capture
SECRETS = [
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),  # AUTH LOGIN answer
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),  # AUTH PLAIN response
]
MECHANISMS = ["PLAIN", "LOGIN"]


def make_message(i: int, mechanism: str) -> bytes:
    return mailmsg.message(
        subject=f"Ingelogd verzonden ({mechanism})",
        msg_id=f"auth-{mechanism.lower()}-20250701120000",
        body_entity=multipart(
            "mixed",
            f"=_sluice_auth_{i}",
            [
                mailmsg.text_entity(f"Verzonden na AUTH {mechanism} (fictief).\n", "7bit"),
                entity(
                    [
                        ("Content-Type", "text/csv"),
                        ("Content-Disposition", f'attachment; filename="auth-{i}.csv"'),
                        ("Content-Transfer-Encoding", "base64"),
                    ],
                    b64(patients_csv(4_000, seed=130 + i)),
                ),
            ],
        ),
    )


MESSAGES = [make_message(i, mech) for i, mech in enumerate(MECHANISMS, 1)]


def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, auth_data=auth_data if ok else None)


def server(workdir: Path) -> None:
    smtpcase.serve_smtp(
        smtpcase.RecordingHandler(workdir),
        PORT,
        authenticator=authenticator,
        auth_require_tls=False,
    )


def client(workdir: Path) -> None:
    for mechanism, message in zip(MECHANISMS, MESSAGES, strict=True):
        with smtplib.SMTP(SERVER_V4, PORT, local_hostname=smtpcase.CLIENT_HELO, timeout=10) as s:
            s.ehlo()
            assert mechanism in s.esmtp_features["auth"].split(), s.esmtp_features
            s.user, s.password = USER, PASSWORD
            code, _ = s.auth(mechanism, getattr(s, f"auth_{mechanism.lower()}"))
            assert code == 235, code
            refused = s.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], message)
            assert not refused, refused
            smtpcase.record_sent(workdir, message, auth=mechanism)


def build_expected(case_dir: Path, workdir: Path) -> None:
    expected = [(msg, mailmsg.SENDER, [mailmsg.EXTERNAL]) for msg in MESSAGES]
    smtpcase.check_delivered(workdir, expected)
    records = realcase.read_records(workdir, "server-messages")
    assert [r["auth_login"] for r in records] == [USER, USER], records
    pcap = case_dir / "input.pcap"
    streams = smtpcase.client_streams(pcap)
    assert f"AUTH PLAIN {SECRETS[2]}\r\n".encode() in streams[0].replace(b"auth", b"AUTH")
    assert f"\r\n{SECRETS[1]}\r\n".encode() in streams[1], "LOGIN password line not found"
    smtpcase.check_imf(pcap, [expect.message_subject(m) for m in MESSAGES], PORT)
    flows = expect.count_flows(pcap)
    assert flows == 2, flows
    expect.write_expected_mail(
        case_dir,
        objects=[obj for msg in MESSAGES for obj in expect.smtp_objects(msg)],
        smtp=[
            expect.smtp_transaction(
                helo=smtpcase.CLIENT_HELO,
                mail_from=mailmsg.SENDER,
                rcpt_to=[mailmsg.EXTERNAL],
                auth_mechanism=mechanism,
                message=msg,
            )
            for mechanism, msg in zip(MECHANISMS, MESSAGES, strict=True)
        ],
        flows=flows,
        secrets_absent=SECRETS,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
