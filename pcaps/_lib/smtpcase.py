"""SMTP side of the REAL cases: an aiosmtpd server with a recording handler (run through
`realcase.run_case` like the HTTP cases), and checks of what the capture shows.

The handler writes one JSON line per delivered message into the work dir (envelope as the
server saw it, sha256 of the exact unstuffed content); clients write what they meant to send.
The orchestrator asserts both agree before it writes expected.json from its own constants.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import subprocess
from collections import defaultdict
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import dpkt

from pcaps._lib import expect, mailmsg, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import CLIENT_V4, CLIENT_V6, SERVER_V4
from pcaps._lib.realcase import append_record, read_records

SMTP_PORT = 25
SERVER_NAME = "mx.mailbox.example"
CLIENT_HELO = "ws042.zorg.example"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RecordingHandler:
    """aiosmtpd handler: refuses the addresses in `refuse` with 550, can add EHLO keywords,
    records every delivered message."""

    def __init__(
        self, workdir: Path, refuse: frozenset[str] = frozenset(), ehlo_extra: tuple[str, ...] = ()
    ) -> None:
        self.workdir, self.refuse, self.ehlo_extra = workdir, refuse, ehlo_extra

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        extra = [f"250-{word}" for word in self.ehlo_extra]
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        content: bytes = envelope.original_content
        auth = session.auth_data
        append_record(
            self.workdir,
            "server-messages",
            {
                "helo": session.host_name,
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
                "tls": session.ssl is not None,
                "auth_login": auth.login.decode() if auth is not None else None,
                "size": len(content),
                "sha256": sha256(content),
            },
        )
        n = len(read_records(self.workdir, "server-messages"))
        return f"250 2.0.0 Ok: queued as SLC{n:04d}"


def serve_smtp(handler: RecordingHandler, port: int = SMTP_PORT, **smtp_kwargs: Any) -> None:
    """Serve aiosmtpd on SERVER_V4:port until terminated; prints READY once listening.

    Plain asyncio rather than aiosmtpd's Controller, which connects to itself at start-up."""
    from aiosmtpd.smtp import SMTP

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname=SERVER_NAME, ident="Sluice test MTA", **smtp_kwargs),
            host=SERVER_V4,
            port=port,
        )
        print("READY", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def record_sent(workdir: Path, message: bytes, **info: Any) -> None:
    """Client side: one line per message it handed to the server."""
    append_record(
        workdir, "client-messages", {"size": len(message), "sha256": sha256(message), **info}
    )


def check_delivered(workdir: Path, expected: list[tuple[bytes, str, list[str]]]) -> None:
    """Assert the server got exactly these (message, mail_from, accepted rcpts), in order."""
    got = read_records(workdir, "server-messages")
    sent = read_records(workdir, "client-messages")
    assert len(got) == len(expected) == len(sent), (len(got), len(expected), len(sent))
    for rec, snt, (msg, mail_from, rcpts) in zip(got, sent, expected, strict=True):
        assert rec["sha256"] == snt["sha256"] == sha256(msg), "server received other bytes"
        assert rec["mail_from"] == mail_from, rec
        assert rec["rcpt_to"] == rcpts, rec


def client_streams(pcap: Path) -> list[bytes]:
    """Client-to-server payload of every TCP connection in a capture without loss, in order of
    the SYN: segments ordered by sequence number, retransmitted copies dropped. For checks of
    what is on the wire (dot-stuffing, one-send pipelining, ciphertext after STARTTLS)."""
    segs: dict[tuple[Any, ...], dict[int, bytes]] = defaultdict(dict)
    order: list[tuple[Any, ...]] = []
    first: dict[tuple[Any, ...], int] = {}
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            src = dpkt.utils.inet_to_str(ip.src)
            if src not in (CLIENT_V4, CLIENT_V6):
                continue
            key = (src, tcp.sport, tcp.dport)
            if key not in order:
                order.append(key)
                first[key] = tcp.seq
            if tcp.data:
                segs[key].setdefault((tcp.seq - first[key]) % 2**32, bytes(tcp.data))
    return [b"".join(data for _seq, data in sorted(segs[key].items())) for key in order]


def check_imf(pcap: Path, subjects: list[str | None], port: int = SMTP_PORT) -> None:
    """tshark's own SMTP/IMF dissectors must find exactly these messages (by decoded Subject):
    the capture looks right to an independent implementation, not just to our generator."""
    argv = ["tshark", "-r", str(pcap)]
    if port != SMTP_PORT:
        argv += ["-d", f"tcp.port=={port},smtp"]
    smtp = subprocess.run(
        [*argv, "-Y", "smtp.req.command"], check=True, capture_output=True, text=True
    ).stdout
    assert smtp.strip(), "tshark sees no SMTP command"
    out = subprocess.run(
        [*argv, "-Y", "imf", "-T", "fields", "-e", "imf.subject"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # tshark prints the raw header value; decode RFC 2047 words the way a mail client would.
    seen = [str(make_header(decode_header(line))) for line in out.split("\n")[:-1]]
    assert seen == [s or "" for s in subjects], f"tshark IMF subjects {seen} != {subjects}"


def client_payloads(pcap: Path) -> list[bytes]:
    """Client-to-server TCP payloads packet by packet, in capture order."""
    out = []
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = getattr(ip, "data", None)
            if isinstance(tcp, dpkt.tcp.TCP) and dpkt.utils.inet_to_str(ip.src) == CLIENT_V4:
                out.append(bytes(tcp.data))
    return out


# --- the plain one-message case (smtp-plain, and smtp-submission-2525 on another port) ---------

PLAIN_SUBJECT_RAW = (
    "=?UTF-8?Q?Uitslagen_r=C3=B6ntgen_?= =?UTF-8?B?d2VlayAyNyDigJMgdmVydHJvdXdlbGlqaw==?="
)
PLAIN_SUBJECT = "Uitslagen röntgen week 27 \u2013 vertrouwelijk"  # EN DASH


def plain_message(msg_id: str, patients_seed: int) -> bytes:
    """One plain-text message: the Subject is two RFC 2047 encoded words (Q then B); the body
    is 8bit UTF-8 with 1,500 fake patient rows (from `patients_seed`)."""
    body = (
        "Beste collega,\n\nHierbij de uitslagen van deze week (fictief, testdata).\n"
        "Met vriendelijke groet,\nA. Voorbeeld\n\n"
        + patients_csv(1_500, seed=patients_seed).decode()
    )
    return mailmsg.message(
        subject=PLAIN_SUBJECT_RAW,
        msg_id=msg_id,
        body_entity=mailmsg.text_entity(body, "8bit"),
    )


def run_plain_case(script: str, *, port: int, msg_id: str, patients_seed: int) -> None:
    """A REAL case's whole generate.py: smtplib sends plain_message(msg_id, patients_seed) to
    aiosmtpd on `port`, one recipient; expected.json has the whole body as the one object."""
    message = plain_message(msg_id, patients_seed)

    def server(workdir: Path) -> None:
        serve_smtp(RecordingHandler(workdir), port)

    def client(workdir: Path) -> None:
        with smtplib.SMTP(SERVER_V4, port, local_hostname=CLIENT_HELO, timeout=10) as smtp:
            refused = smtp.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], message)
            assert not refused, refused
            record_sent(workdir, message)

    def build_expected(case_dir: Path, workdir: Path) -> None:
        check_delivered(workdir, [(message, mailmsg.SENDER, [mailmsg.EXTERNAL])])
        assert expect.message_subject(message) == PLAIN_SUBJECT
        pcap = case_dir / "input.pcap"
        check_imf(pcap, [PLAIN_SUBJECT], port)
        flows = expect.count_flows(pcap)
        assert flows == 1, flows
        expect.write_expected_mail(
            case_dir,
            objects=expect.smtp_objects(message),
            smtp=[
                expect.smtp_transaction(
                    helo=CLIENT_HELO,
                    mail_from=mailmsg.SENDER,
                    rcpt_to=[mailmsg.EXTERNAL],
                    message=message,
                )
            ],
            flows=flows,
        )

    realcase.run_case(script, server, client, build_expected)
