"""smtp-pipelining (REAL server advertising PIPELINING, raw-socket client).

EHLO; then MAIL FROM, RCPT TO, RCPT TO and DATA written in ONE send() (RFC 2920), the four
replies read afterwards; then the (dot-stuffed) message, its 250, QUIT. The sensor must pair
the batched commands with the replies in order.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, smtpcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import SERVER_V4

PORT = smtpcase.SMTP_PORT
RCPTS = ["export@mailbox.example", "archief@mailbox.example"]
CSV = patients_csv(8_000, seed=81)
SUBJECT = "Pipelined export"
MESSAGE = mailmsg.message(
    subject=SUBJECT,
    msg_id="pipelining-20250701120000",
    to=RCPTS,
    body_entity=multipart(
        "mixed",
        "=_sluice_pipe",
        [
            mailmsg.text_entity("Export in de bijlage (fictief).\n", "7bit"),
            entity(
                [
                    ("Content-Type", "text/csv"),
                    ("Content-Disposition", 'attachment; filename="pipelined.csv"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(CSV),
            ),
        ],
    ),
)
BATCH = (
    f"MAIL FROM:<{mailmsg.SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in RCPTS) + "DATA\r\n"
).encode()


def server(workdir: Path) -> None:
    handler = smtpcase.RecordingHandler(workdir, ehlo_extra=("PIPELINING",))
    smtpcase.serve_smtp(handler, PORT)


class Replies:
    """Reads complete SMTP replies (multi-line ones joined) from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def read(self) -> bytes:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, "server closed the connection"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] == b" ":
                return b"\n".join(lines)


def client(workdir: Path) -> None:
    with socket.create_connection((SERVER_V4, PORT), timeout=10) as sock:
        replies = Replies(sock)
        assert replies.read().startswith(b"220 ")
        sock.sendall(f"EHLO {smtpcase.CLIENT_HELO}\r\n".encode())
        ehlo = replies.read()
        assert b"250-PIPELINING" in ehlo, ehlo
        sock.sendall(BATCH)  # one send, one segment
        codes = [replies.read()[:3] for _ in range(len(RCPTS) + 2)]
        assert codes == [b"250"] * (len(RCPTS) + 1) + [b"354"], codes
        sock.sendall(mailmsg.dot_stuff(MESSAGE))
        assert replies.read().startswith(b"250 ")
        smtpcase.record_sent(workdir, MESSAGE)
        sock.sendall(b"QUIT\r\n")
        assert replies.read().startswith(b"221 ")


def build_expected(case_dir: Path, workdir: Path) -> None:
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, RCPTS)])
    pcap = case_dir / "input.pcap"
    smtpcase.check_imf(pcap, [SUBJECT], PORT)
    payloads = [p for p in smtpcase.client_payloads(pcap) if p]
    assert BATCH in payloads, "the pipelined batch is not one segment"
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    expect.write_expected_mail(
        case_dir,
        objects=expect.smtp_objects(MESSAGE),
        smtp=[
            expect.smtp_transaction(
                helo=smtpcase.CLIENT_HELO,
                mail_from=mailmsg.SENDER,
                rcpt_to=RCPTS,
                message=MESSAGE,
            )
        ],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
