"""Tests for sensor.protocols.smtp: envelope, message framing, pipelining, BDAT, AUTH privacy,
STARTTLS, half-duplex captures, gaps, hostile input, detection, and real aiosmtpd/smtplib bytes."""

from __future__ import annotations

import ast
import base64
import smtplib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS, Anomaly
from sensor.protocols.base import (
    Direction,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    Opaque,
    ProtocolViolation,
)
from sensor.protocols.smtp import (
    _TRANSITIONS,
    Envelope,
    SmtpCaps,
    SmtpParser,
    SmtpTransaction,
    _Input,
    _NoTransition,
    _State,
    detect,
)
from tests.conftest import require_module
from tests.protocols.feeding import (
    TS,
    C,
    LoopbackRelay,
    S,
    Segment,
    assert_same_events,
    draw_splits,
    feed_split,
    fuzz_feed,
    kinds,
    merge_adjacent,
    of,
    runner,
)

# --- helpers ------------------------------------------------------------------------------------


def merge(events: list[object]) -> list[object]:
    """Merge adjacent ObjectChunk of the same message: segmentation must not matter otherwise."""
    return merge_adjacent(events, ObjectChunk, key=lambda e: e.txid)


run = runner(SmtpParser, max_cuts=8, merge=merge)


def message(events: list[object], txid: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ObjectChunk) and e.txid == txid)


def txs(events: list[object]) -> list[SmtpTransaction]:
    return sorted(of(events, SmtpTransaction), key=lambda t: t.txid)


# --- sample conversations (wire order) ----------------------------------------------------------

GREETING = b"220 mx.example.org ESMTP Postfix\r\n"
EHLO_REPLY = (
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-CHUNKING\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 STARTTLS\r\n"
)
BODY = (
    b"From: a@lab.example\r\nTo: b@example.org\r\nSubject: results\r\n\r\n"
    b"line one\r\n..starts with a dot\r\n.\tdot and tab\r\n\r\nlast line"
)
BODY_WIRE = BODY.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n"

SAMPLES: dict[str, list[Segment]] = {
    "simple": [
        (S, GREETING),
        (C, b"EHLO client.lab.example\r\n"),
        (S, EHLO_REPLY),
        (C, b"MAIL FROM:<a@lab.example> SIZE=1000 BODY=8BITMIME\r\n"),
        (S, b"250 2.1.0 Ok\r\n"),
        (C, b"RCPT TO:<b@example.org>\r\n"),
        (S, b"250 2.1.5 Ok\r\n"),
        (C, b"RCPT TO:<nobody@example.org>\r\n"),
        (S, b"550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n"),
        (C, b"DATA\r\n"),
        (S, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (C, BODY_WIRE),
        (S, b"250 2.0.0 Ok: queued as 12345\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 2.0.0 Bye\r\n"),
    ],
    "pipelined": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (
            C,
            b"MAIL FROM:<a@lab.example>\r\nRCPT TO:<x@example.org>\r\n"
            b"RCPT TO:<y@example.org>\r\nRCPT TO:<z@example.org>\r\nDATA\r\n",
        ),
        (S, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n450 4.2.0 greylisted\r\n250 Ok\r\n354 go\r\n"),
        # RFC 2920: the message, its end and the next transaction in one group.
        (C, b"msg one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<y@example.org>\r\nDATA\r\n"),
        (S, b"250 2.0.0 queued 1\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (C, b"msg two\r\n.\r\nQUIT\r\n"),
        (S, b"554 5.7.1 rejected: spam\r\n221 Bye\r\n"),
    ],
    "rset_and_rejections": [
        (S, GREETING),
        (C, b"HELO old.client\r\n"),
        (S, b"250 mx\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (S, b"250 Ok\r\n"),
        (C, b"RCPT TO:<b@y>\r\n"),
        (S, b"250 Ok\r\n"),
        (C, b"RSET\r\n"),
        (S, b"250 Ok\r\n"),
        (C, b"MAIL FROM:<spammer@x>\r\n"),
        (S, b"553 5.7.1 sender refused\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (S, b"250 Ok\r\n"),
        (C, b"RCPT TO:<q@y>\r\n"),
        (S, b"550 no\r\n"),
        (C, b"DATA\r\n"),
        (S, b"554 5.5.1 no valid recipients\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 Bye\r\n"),
    ],
    "bdat": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (C, b"MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@y>\r\n"),
        (S, b"250 Ok\r\n250 Ok\r\n"),
        # Chunk bytes hold CRLF.CRLF, a command-looking line and no final CRLF.
        (C, b"BDAT 21\r\nab\r\n.\r\nQUIT\r\nRSET\r\nxyBDAT 0\r\n"),
        (S, b"250 2.0.0 21 octets\r\n250 0 octets\r\n"),
        (C, b"BDAT 3 LAST\r\n\x00\xff."),
        (S, b"250 2.0.0 Ok: queued\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 0 LAST\r\n"),
        (S, b"250 Ok\r\n250 Ok\r\n250 queued empty\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 Bye\r\n"),
    ],
    "auth_plain": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (C, b"AUTH PLAIN " + base64.b64encode(b"\x00drsmith\x00Hunter2Secret") + b"\r\n"),
        (S, b"235 2.7.0 Authentication successful\r\n"),
        (C, b"MAIL FROM:<drsmith@lab.example>\r\nRCPT TO:<out@example.org>\r\nDATA\r\n"),
        (S, b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (C, b"hi\r\n.\r\n"),
        (S, b"250 Ok\r\n"),
    ],
    "auth_login": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (C, b"AUTH LOGIN\r\n"),
        (S, b"334 VXNlcm5hbWU6\r\n"),
        (C, base64.b64encode(b"drsmith") + b"\r\n"),
        (S, b"334 UGFzc3dvcmQ6\r\n"),
        (C, base64.b64encode(b"Hunter2Secret") + b"\r\n"),
        (S, b"235 2.7.0 ok\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (S, b"250 Ok\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 Bye\r\n"),
    ],
    "auth_cram_md5_failed_then_plain": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (C, b"AUTH CRAM-MD5\r\n"),
        (S, b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"),
        (C, base64.b64encode(b"drsmith b913a602c7eda7a495b4e6e7334d3890") + b"\r\n"),
        (S, b"535 5.7.8 Authentication failed\r\n"),
        (C, b"AUTH PLAIN\r\n"),
        (S, b"334 \r\n"),
        (C, b"*\r\n"),
        (S, b"501 cancelled\r\n"),
        (C, b"MAIL FROM:<anon@x>\r\n"),
        (S, b"530 5.7.0 Authentication required\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 Bye\r\n"),
    ],
    "starttls_no_mail": [
        (S, GREETING),
        (C, b"EHLO c.lab.example\r\n"),
        (S, EHLO_REPLY),
        (C, b"STARTTLS\r\n"),
        (S, b"220 2.0.0 Ready to start TLS\r\n"),
        (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))),
        (S, b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03garbage\r\n\r\n"),
        (C, b"\x17\x03\x03\x00\x20MAIL FROM:<hidden@x>\r\n"),
    ],
    "utf8": [
        (S, GREETING),
        (C, b"EHLO c\r\n"),
        (S, EHLO_REPLY),
        (
            C,
            "MAIL FROM:<jos\u00e9@lab.example> SMTPUTF8 BODY=8BITMIME\r\n".encode()
            + b'RCPT TO:<"odd>name"@example.org>\r\nRCPT TO:<bad\xff@example.org>\r\nDATA\r\n',
        ),
        (S, b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (C, "Subject: caf\u00e9\r\n\r\n\u00e9\u00e8\r\n".encode() + b"\xff\xfe\r\n.\r\n"),
        (S, b"250 Ok\r\n"),
    ],
    "bare_lf_smuggling": [
        (S, GREETING),
        (C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 mx\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (
            C,
            b"Subject: one\r\n\r\nbody\n.\r\nMAIL FROM:<admin@bank>\r\nRCPT TO:<v@y>\r\n"
            b"DATA\r\nfake\r\n.\nstill data\r\n.\r\n",
        ),
        (S, b"250 Ok: queued\r\n"),
    ],
    "empty_and_dot_lines": [
        (S, GREETING),
        (C, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 mx\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (C, b".\r\n"),  # an empty message
        (S, b"250 Ok\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
        (S, b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (C, b"\r\n\r\n..\r\n.x\r\n\r\n.\r\n"),
        (S, b"250 Ok\r\n"),
    ],
}

# DATA messages include the CRLF that ends their last line: in CRLF "." CRLF the first CRLF
# belongs to the message (RFC 5321 4.1.1.4). An empty message (".\r\n" right after 354) is b"".
MESSAGES: dict[str, dict[int, bytes]] = {
    "simple": {1: BODY + b"\r\n"},
    "pipelined": {1: b"msg one\r\n", 2: b"msg two\r\n"},
    "bdat": {1: b"ab\r\n.\r\nQUIT\r\nRSET\r\nxy\x00\xff.", 2: b""},
    "auth_plain": {1: b"hi\r\n"},
    "utf8": {1: "Subject: caf\u00e9\r\n\r\n\u00e9\u00e8\r\n".encode() + b"\xff\xfe\r\n"},
    "bare_lf_smuggling": {
        1: b"Subject: one\r\n\r\nbody\n.\r\nMAIL FROM:<admin@bank>\r\nRCPT TO:<v@y>\r\n"
        b"DATA\r\nfake\r\n\nstill data\r\n"
    },
    "empty_and_dot_lines": {1: b"", 2: b"\r\n\r\n.\r\nx\r\n\r\n"},
}


# --- segmentation invariance --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_whole_bytewise_and_random_splits_agree(name: str) -> None:
    whole = assert_same_events(run, SAMPLES[name], seeds=range(6))
    assert of(whole, SmtpTransaction)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_bytes(name: str) -> None:
    events = run(SAMPLES[name])
    for txid, expected in MESSAGES[name].items():
        assert message(events, txid) == expected
        assert of(events, ObjectEnd)[txid - 1] == ObjectEnd(txid, C, True, TS)
        tx = next(t for t in txs(events) if t.txid == txid)
        assert tx.size == len(expected)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_hypothesis_splits_agree(name: str, data: st.DataObject) -> None:
    segments = SAMPLES[name]
    events = feed_split(SmtpParser(), segments, draw_splits(data, segments))
    assert merge(events) == run(segments)


def test_data_is_streamed_not_buffered() -> None:
    parser = SmtpParser()
    for direction, data in SAMPLES["simple"][:11]:
        parser.feed(direction, data, TS)
    assert parser.feed(C, b"x" * 100_000, TS) == [ObjectChunk(1, C, b"x" * 100_000)]
    # Only a possible line end / terminator start is ever held back.
    assert parser.feed(C, b"abc\r", TS) == [ObjectChunk(1, C, b"abc")]
    assert parser.feed(C, b"\n", TS) == []
    assert parser.feed(C, b".", TS) == []
    assert parser.feed(C, b"\r", TS) == []
    # The held-back CRLF ended the last line: it belongs to the message.
    assert parser.feed(C, b"\n", TS) == [ObjectChunk(1, C, b"\r\n"), ObjectEnd(1, C, True, TS)]


# --- semantics ----------------------------------------------------------------------------------


def test_simple_envelope_and_event_order() -> None:
    events = run(SAMPLES["simple"])
    assert [type(e) for e in events] == [
        ObjectStart,
        ObjectChunk,
        ObjectEnd,
        SmtpTransaction,
    ]
    (tx,) = txs(events)
    assert tx.helo == "client.lab.example"
    assert tx.mail_from == "a@lab.example"
    assert tx.mail_params == ["SIZE=1000", "BODY=8BITMIME"]
    assert tx.rcpt_to == ["b@example.org"]
    assert tx.rcpt_rejected == ["nobody@example.org"]
    assert (tx.status, tx.bdat, tx.tls, tx.auth_mechanism) == ("accepted", False, False, None)
    assert tx.last_reply == "250 2.0.0 Ok: queued as 12345"
    assert not kinds(events)


def test_pipelining_matches_replies_in_order() -> None:
    events = run(SAMPLES["pipelined"])
    first, second = txs(events)
    assert first.rcpt_to == ["x@example.org", "z@example.org"]
    assert first.rcpt_rejected == ["y@example.org"]
    assert (first.status, first.last_reply) == ("accepted", "250 2.0.0 queued 1")
    # The next MAIL arrived before the first message's 250: the first still got it.
    assert (second.mail_from, second.rcpt_to) == ("", ["y@example.org"])
    assert (second.status, second.last_reply) == ("rejected", "554 5.7.1 rejected: spam")
    assert not kinds(events)


def test_rset_refused_mail_and_refused_recipients() -> None:
    events = run(SAMPLES["rset_and_rejections"])
    aborted, refused_mail, no_rcpt = txs(events)
    assert (aborted.status, aborted.rcpt_to, aborted.helo) == ("aborted", ["b@y"], "old.client")
    assert (refused_mail.mail_from, refused_mail.status) == ("spammer@x", "rejected")
    assert (no_rcpt.rcpt_rejected, no_rcpt.status) == (["q@y"], "rejected")
    assert no_rcpt.last_reply == "554 5.5.1 no valid recipients"
    assert not of(events, ObjectStart)


def test_bdat_chunks_are_counted_not_scanned() -> None:
    events = run(SAMPLES["bdat"])
    first, second = txs(events)
    assert first.bdat and first.status == "accepted"
    assert first.mail_params == ["BODY=BINARYMIME"]
    assert first.size == 24
    assert first.last_reply == "250 2.0.0 Ok: queued"
    assert (second.size, second.status, second.bdat) == (0, "accepted", True)
    # Each message starts with its envelope, so its objects can name sender and recipients.
    assert of(events, ObjectStart) == [
        ObjectStart(1, C, TS, "smtp", message=True, about=Envelope("a@x", ("b@y",))),
        ObjectStart(2, C, TS, "smtp", message=True, about=Envelope("a@x", ("b@y",))),
    ]
    assert not kinds(events)


def test_multiline_reply_keeps_first_line() -> None:
    parser = SmtpParser()
    parser.feed(S, GREETING, TS)
    parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\n", TS)
    parser.feed(S, EHLO_REPLY + b"250-first line\r\n250 second line\r\n", TS)
    (tx,) = of(parser.feed(C, b"QUIT\r\n", TS), SmtpTransaction)
    assert tx.last_reply == "250 first line"


def test_last_reply_is_capped() -> None:
    ev = run(
        [
            (S, GREETING),
            (C, b"MAIL FROM:<a@x>\r\n"),
            (S, b"250 " + b"y" * 1000 + b"\r\n"),
        ]
    )
    assert len(txs(ev)[0].last_reply or "") == 200


@pytest.mark.parametrize(
    "name", ["auth_plain", "auth_login", "auth_cram_md5_failed_then_plain", "starttls_no_mail"]
)
@pytest.mark.parametrize("half_duplex", [False, True])
def test_credentials_never_reach_events(name: str, half_duplex: bool) -> None:
    segments = [s for s in SAMPLES[name] if not half_duplex or s[0] == C]
    events = run(segments) + run(segments, "bytes")
    text = repr(events)
    for secret in ("drsmith\\x00", "Hunter2", "SHVudGVy", "ZHJzbWl0aC", "b913a602", "ZHJzbWl0"):
        assert secret not in text, secret
    for event in events:
        if isinstance(event, Anomaly):
            assert "ZHJz" not in event.detail


def test_auth_mechanisms_recorded_and_exchange_skipped() -> None:
    (tx,) = txs(run(SAMPLES["auth_plain"]))
    assert (tx.auth_mechanism, tx.status, tx.mail_from) == (
        "PLAIN",
        "accepted",
        "drsmith@lab.example",
    )
    ev = run(SAMPLES["auth_login"])
    (tx,) = txs(ev)
    assert (tx.auth_mechanism, tx.mail_from, tx.status) == ("LOGIN", "a@x", "incomplete")
    assert not kinds(ev)  # the base64 lines were not taken for (unknown) commands
    ev = run(SAMPLES["auth_cram_md5_failed_then_plain"])
    assert not kinds(ev)
    (tx,) = txs(ev)  # the last mechanism tried, even though it was cancelled
    assert (tx.auth_mechanism, tx.status, tx.last_reply) == (
        "PLAIN",
        "rejected",
        "530 5.7.0 Authentication required",
    )


def test_auth_half_duplex_client_only() -> None:
    for name, mechanism in [("auth_plain", "PLAIN"), ("auth_login", "LOGIN")]:
        ev = run([s for s in SAMPLES[name] if s[0] == C])
        (tx,) = txs(ev)
        assert tx.auth_mechanism == mechanism
        assert not kinds(ev)
    # Unknown mechanism without replies: base64-looking lines are skipped until a command.
    ev = run(
        [
            (
                C,
                b"EHLO c\r\nAUTH SCRAM-SHA-256 biws\r\ncj1yb3NlLGE=\r\nZmluYWw=\r\n"
                b"MAIL FROM:<a@x>\r\nQUIT\r\n",
            )
        ]
    )
    (tx,) = txs(ev)
    assert (tx.auth_mechanism, tx.mail_from) == ("SCRAM-SHA-256", "a@x")
    assert not kinds(ev)


def test_starttls_without_mail_reports_encrypted_transaction() -> None:
    events = run(SAMPLES["starttls_no_mail"])
    assert [type(e) for e in events] == [Opaque, SmtpTransaction]
    (tx,) = txs(events)
    assert (tx.status, tx.tls, tx.helo, tx.mail_from, tx.rcpt_to) == (
        "encrypted",
        True,
        "c.lab.example",
        None,
        [],
    )
    assert not kinds(events)  # the TLS records after 220 are not parsed at all


def test_starttls_refused_goes_on_in_clear() -> None:
    events = run(
        [
            (S, GREETING),
            (C, b"EHLO c\r\nSTARTTLS\r\n"),
            (S, b"250 mx\r\n454 4.7.0 TLS not available\r\n"),
            (C, b"MAIL FROM:<a@x>\r\nQUIT\r\n"),
        ]
    )
    assert not of(events, Opaque)
    (tx,) = txs(events)
    assert (tx.mail_from, tx.status, tx.tls) == ("a@x", "incomplete", False)


def test_starttls_after_mail_summarises_what_was_seen() -> None:
    events = run(
        [
            (S, GREETING),
            (C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"),
            (S, b"250 mx\r\n250 Ok\r\n250 Ok\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"220 go ahead\r\n"),
            (C, b"\x16\x03\x01garbage"),
        ]
    )
    (tx,) = txs(events)
    assert (tx.status, tx.mail_from, tx.rcpt_to, tx.tls) == ("encrypted", "a@x", ["b@y"], True)


def test_utf8_addresses_decoded_at_the_edge() -> None:
    (tx,) = txs(run(SAMPLES["utf8"]))
    assert tx.mail_from == "jos\u00e9@lab.example"
    assert tx.mail_params == ["SMTPUTF8", "BODY=8BITMIME"]
    assert tx.rcpt_to == ['"odd>name"@example.org', "bad\ufffd@example.org"]


def test_bare_lf_before_dot_is_reported_not_obeyed() -> None:
    events = run(SAMPLES["bare_lf_smuggling"])
    (tx,) = txs(events)
    assert (tx.mail_from, tx.rcpt_to, tx.status) == ("a@x", ["b@y"], "accepted")
    assert kinds(events) == ["smtp_bare_lf_end"]
    anomaly = of(events, Anomaly)[0]
    assert anomaly.detail.startswith("2 ")  # "<LF>.<CR><LF>" and "<CR><LF>.<LF>"
    # Reported before the end of the message it was found in.
    assert events.index(anomaly) == events.index(of(events, ObjectEnd)[0]) - 1


@pytest.mark.parametrize(
    "content", [b"a\n.\nb", b"a\r.\r\nb", b"a\r\n.\nb", b"a\n..\r\nb", b"a\r\n.\r\r\nb"]
)
def test_smuggling_variants(content: bytes) -> None:
    segments = [(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nDATA\r\n" + content + b"\r\n.\r\n")]
    ev = run(segments)
    assert run(segments, "bytes") == ev
    assert of(ev, ObjectEnd) == [ObjectEnd(1, C, True, TS)]
    if content == b"a\r\n.\r\r\nb":  # dot-stuffing with a stray CR is not a smuggling pattern
        assert not kinds(ev)
    else:
        assert kinds(ev) == ["smtp_bare_lf_end"]


def test_several_transactions_on_one_connection() -> None:
    convo = [(S, GREETING), (C, b"EHLO c\r\n"), (S, b"250 mx\r\n")]
    for i in range(5):
        convo += [
            (C, b"MAIL FROM:<s%d@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n" % i),
            (S, b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            (C, b"message %d\r\n.\r\n" % i),
            (S, b"250 queued %d\r\n" % i),
        ]
    events = run(convo)
    assert [(t.txid, t.mail_from, t.status) for t in txs(events)] == [
        (i + 1, f"s{i}@x", "accepted") for i in range(5)
    ]
    assert [message(events, i + 1) for i in range(5)] == [b"message %d\r\n" % i for i in range(5)]


# --- half-duplex captures -----------------------------------------------------------------------


def test_client_only_capture() -> None:
    client = [s for s in SAMPLES["simple"] if s[0] == C]
    events = run(client)
    assert run(client, "bytes") == events
    assert message(events, 1) == BODY + b"\r\n"
    (tx,) = txs(events)
    assert tx.rcpt_to == ["b@example.org", "nobody@example.org"]  # no reply seen: kept
    assert (tx.status, tx.size, tx.last_reply) == ("incomplete", len(BODY) + 2, None)
    assert not kinds(events)


def test_client_only_capture_with_bdat_and_starttls() -> None:
    client = [s for s in SAMPLES["bdat"] if s[0] == C]
    events = run(client)
    assert message(events, 1) == MESSAGES["bdat"][1]
    assert [t.status for t in txs(events)] == ["incomplete", "incomplete"]
    client = [s for s in SAMPLES["starttls_no_mail"] if s[0] == C]
    events = run(client)
    assert [type(e) for e in events] == [Opaque, SmtpTransaction]


def test_server_only_capture() -> None:
    server = [s for s in SAMPLES["pipelined"] if s[0] == S]
    events = run(server)
    assert run(server, "bytes") == events
    assert [(t.mail_from, t.rcpt_to, t.status, t.last_reply) for t in txs(events)] == [
        (None, [], "accepted", "250 2.0.0 queued 1"),
        (None, [], "rejected", "554 5.7.1 rejected: spam"),
    ]
    assert not kinds(events)
    for name in SAMPLES:
        run([s for s in SAMPLES[name] if s[0] == S])  # no crash


# --- gaps and eof -------------------------------------------------------------------------------


def _to_data(parser: SmtpParser) -> None:
    for direction, data in SAMPLES["simple"][:11]:
        parser.feed(direction, data, TS)


def test_gap_in_data_then_terminator() -> None:
    parser = SmtpParser()
    _to_data(parser)
    ev = parser.feed(C, b"part one\r", TS)
    ev += parser.gap(C, 500, TS)
    ev += parser.feed(C, b"part two\r\n.\r\n", TS)
    ev += parser.feed(S, b"250 queued\r\n", TS)
    ev = merge(ev)
    assert of(ev, ObjectGap) == [ObjectGap(1, C, 500)]
    assert message(ev, 1) == b"part one\rpart two\r\n"
    assert of(ev, ObjectEnd) == [ObjectEnd(1, C, True, TS)]
    (tx,) = of(ev, SmtpTransaction)
    assert (tx.status, tx.size, tx.missing) == ("accepted", 19, 500)


def test_gap_swallowing_terminator_resyncs_on_reply() -> None:
    parser = SmtpParser()
    _to_data(parser)
    ev = parser.feed(C, b"part one\r\n", TS)
    ev += parser.gap(C, 10, TS)
    ev += parser.feed(S, b"250 queued\r\n", TS)
    assert of(ev, ObjectEnd) == [ObjectEnd(1, C, False, TS)]
    (tx,) = of(ev, SmtpTransaction)
    assert tx.status == "accepted"
    # Back in the command channel.
    ev = parser.feed(C, b"MAIL FROM:<next@x>\r\nQUIT\r\n", TS)
    assert not of(ev, SmtpTransaction)  # closed by QUIT, but the reply to MAIL is awaited
    (tx2,) = of(parser.feed(S, b"250 ok\r\n221 bye\r\n", TS), SmtpTransaction)
    assert (tx2.txid, tx2.mail_from) == (2, "next@x")


def test_gap_in_commands_resyncs_at_next_line() -> None:
    parser = SmtpParser()
    parser.feed(S, GREETING, TS)
    ev = parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@", TS)
    ev += parser.gap(C, 7, TS)
    ev += parser.feed(C, b"rest of line>\r\nRCPT TO:<c@y>\r\nQUIT\r\n", TS)
    ev += parser.eof(C, TS) + parser.eof(S, TS)
    assert kinds(ev) == ["smtp_gap"]
    (tx,) = of(ev, SmtpTransaction)
    assert tx.rcpt_to == ["c@y"]


def test_gap_in_replies() -> None:
    parser = SmtpParser()
    parser.feed(S, b"220 mx ESMTP\r\n250-mx", TS)
    ev = parser.gap(S, 20, TS)
    ev += parser.feed(S, b"LINE\r\n250 ok\r\n", TS)
    assert kinds(ev) == ["smtp_gap"]


def test_gap_in_bdat_chunk() -> None:
    parser = SmtpParser()
    ev = parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 10 LAST\r\nabc", TS)
    ev += parser.gap(C, 5, TS)
    ev += parser.feed(C, b"ijQUIT\r\n", TS)
    ev += parser.eof(C, TS)
    ev = merge(ev)
    assert of(ev, ObjectGap) == [ObjectGap(1, C, 5)]
    assert message(ev, 1) == b"abcij"
    assert of(ev, ObjectEnd) == [ObjectEnd(1, C, True, TS)]
    (tx,) = of(ev, SmtpTransaction)
    assert (tx.size, tx.missing, tx.bdat) == (5, 5, True)
    # A gap running past the chunk ends in the command channel.
    parser = SmtpParser()
    parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 3\r\nab", TS)
    ev = parser.gap(C, 10, TS)
    assert of(ev, ObjectGap) == [ObjectGap(1, C, 1)]
    assert kinds(ev) == ["smtp_gap"]


def test_gap_while_waiting_for_354() -> None:
    parser = SmtpParser()
    parser.feed(S, GREETING, TS)
    parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nDATA\r\n", TS)
    ev = parser.gap(C, 30, TS)
    ev += parser.feed(S, b"250 mx\r\n250 ok\r\n354 go\r\n", TS)
    ev += parser.feed(C, b"tail\r\n.\r\n", TS)
    assert of(ev, ObjectGap) == [ObjectGap(1, C, 30)]
    assert message(ev, 1) == b"tail\r\n"


def test_eof_mid_data_is_incomplete() -> None:
    parser = SmtpParser()
    _to_data(parser)
    parser.feed(C, b"partial\r\n", TS)
    ev = parser.eof(C, TS) + parser.eof(S, TS)
    # The held CRLF ended a line of the message: it is content, released at the end.
    assert [type(e) for e in ev] == [ObjectChunk, ObjectEnd, SmtpTransaction]
    assert ev[0] == ObjectChunk(1, C, b"\r\n")
    assert ev[1] == ObjectEnd(1, C, False, TS)
    (tx,) = of(ev, SmtpTransaction)
    assert tx.status == "incomplete" and tx.size == len(b"partial\r\n")


def test_client_eof_waits_for_final_reply() -> None:
    parser = SmtpParser()
    _to_data(parser)
    parser.feed(C, b"body\r\n.\r\nQUIT\r\n", TS)
    assert parser.eof(C, TS) == []  # the 250 may still come
    (tx,) = of(parser.feed(S, b"250 queued\r\n221 bye\r\n", TS), SmtpTransaction)
    assert tx.status == "accepted"


# --- hostile input and caps ---------------------------------------------------------------------


def test_bad_reply_code_is_anomaly() -> None:
    ev = run([(S, GREETING), (C, b"EHLO c\r\n"), (S, b"2x0 what\r\n250 ok\r\n")])
    assert kinds(ev) == ["smtp_bad_reply"]
    assert of(ev, Anomaly)[0].detail == "2x0 what"  # at most 8 printable server bytes


def test_too_many_bad_lines_is_violation() -> None:
    with pytest.raises(ProtocolViolation) as exc:
        run([(S, b"hello there\r\n" * 40)])
    assert exc.value.reason == "smtp_bad_reply"
    with pytest.raises(ProtocolViolation) as exc:
        run([(C, b"GET / HTTP/1.1\r\n" * 40)])
    assert exc.value.reason == "smtp_unknown_command"


def test_unknown_command_detail_never_quotes_the_line() -> None:
    ev = run([(C, b"EHLO c\r\nXSECRET c2VjcmV0\r\n")])
    assert kinds(ev) == ["smtp_unknown_command"]
    assert "XSECRET" not in repr(ev)


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_long_line_anomaly_then_violation(split: str) -> None:
    caps = SmtpCaps(max_line=100)
    ev = run([(C, b"EHLO " + b"a" * 200 + b"\r\nMAIL FROM:<a@x>\r\n")], split, caps=caps)
    assert kinds(ev) == ["smtp_line_too_long"]
    assert txs(ev)[0].mail_from == "a@x"
    parser = SmtpParser(caps)
    events: list[object] = []
    with pytest.raises(ProtocolViolation) as exc:
        for _ in range(100):
            events += parser.feed(S, b"x" * 1000, TS)
    assert exc.value.reason == "smtp_line_too_long"
    assert kinds(events) == ["smtp_line_too_long"]


def test_bdat_bad_size_is_violation_with_events() -> None:
    for bad in (b"BDAT x\r\n", b"BDAT\r\n", b"BDAT -1\r\n", b"BDAT 99999999999 LAST\r\n"):
        parser = SmtpParser(SmtpCaps(max_bdat_chunk=1 << 20))
        parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 2\r\nab", TS)
        with pytest.raises(ProtocolViolation) as exc:
            parser.feed(C, bad, TS)
        assert exc.value.reason == "smtp_bdat_bad_size"
        assert [type(e) for e in exc.value.events] == [ObjectEnd, SmtpTransaction]
        assert exc.value.events[0] == ObjectEnd(1, C, False, TS)
        assert parser.feed(C, b"QUIT\r\n", TS) == []  # detached


def test_too_many_recipients_and_pending() -> None:
    caps = SmtpCaps(max_rcpt=3, max_pending_commands=4)
    rcpts = b"".join(b"RCPT TO:<r%d@y>\r\n" % i for i in range(6))
    ev = run([(S, GREETING), (C, b"MAIL FROM:<a@x>\r\n" + rcpts)], caps=caps)
    assert set(kinds(ev)) == {"smtp_too_many_rcpt", "smtp_too_many_pending"}
    assert kinds(ev).count("smtp_too_many_rcpt") == 1
    (tx,) = txs(ev)
    assert tx.rcpt_to == ["r0@y", "r1@y", "r2@y"]


def test_unanswered_data_held_over_cap() -> None:
    parser = SmtpParser()
    parser.feed(S, GREETING, TS)
    parser.feed(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nDATA\r\n", TS)
    ev = parser.feed(C, b"y" * 70_000, TS)
    assert kinds(ev) == ["smtp_unanswered_command"]
    assert message(merge(ev), 1) == b"y" * 70_000
    # The late 354 is absorbed; the message still ends normally.
    ev = parser.feed(S, b"250 mx\r\n250 ok\r\n354 go\r\n", TS)
    assert not kinds(ev)
    assert of(parser.feed(C, b"\r\n.\r\n", TS), ObjectEnd) == [ObjectEnd(1, C, True, TS)]


def test_unmatched_reply() -> None:
    ev = run([(S, GREETING), (C, b"EHLO c\r\n"), (S, b"250 ok\r\n250 extra\r\n421 bye\r\n")])
    assert kinds(ev) == ["smtp_unmatched_reply"]


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from([C, S]), st.binary(max_size=64), st.integers(0, 5)),
        max_size=14,
    )
)
def test_arbitrary_bytes_only_raise_violation(chunks: list[tuple[Direction, bytes, int]]) -> None:
    parser = SmtpParser(
        SmtpCaps(max_line=64, max_rcpt=4, max_pending_commands=8, max_bdat_chunk=99)
    )
    prefixes = [b"", b"MAIL FROM:<a@x>\r\n", b"DATA\r\n", b"354 go\r\n", b"BDAT 5\r\n"]
    fuzz_feed(parser, chunks, prefixes, gap_action=5)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [
                b"EHLO c\r\n",
                b"MAIL FROM:<a@x>\r\n",
                b"RCPT TO:<b@y>\r\n",
                b"DATA\r\n",
                b"BDAT 3\r\n",
                b"BDAT 0 LAST\r\n",
                b"AUTH LOGIN\r\n",
                b"AUTH PLAIN x\r\n",
                b"STARTTLS\r\n",
                b"RSET\r\n",
                b"QUIT\r\n",
                b".\r\n",
                b"abc\n.\r\n",
                b"220 mx ESMTP\r\n",
                b"250-x\r\n",
                b"250 ok\r\n",
                b"334 x\r\n",
                b"354 go\r\n",
                b"550 no\r\n",
                b"235 ok\r\n",
                b"GAP",
                b"EOF",
            ]
        ),
        max_size=40,
    ),
    directions=st.lists(st.sampled_from([C, S]), min_size=40, max_size=40),
)
def test_structured_fuzz_only_raises_violation(
    data: list[bytes], directions: list[Direction]
) -> None:
    parser = SmtpParser()
    events: list[object] = []
    try:
        for piece, direction in zip(data, directions, strict=False):
            if piece == b"GAP":
                events += parser.gap(direction, 5, TS)
            elif piece == b"EOF":
                events += parser.eof(direction, TS)
            else:
                events += parser.feed(direction, piece, TS)
        events += parser.eof(S, TS) + parser.eof(C, TS)
    except ProtocolViolation as exc:
        events += exc.events
    # Once both sides closed (or the parser gave up): every message started was ended exactly
    # once, and every transaction was reported exactly once.
    started = [e.txid for e in of(events, ObjectStart)]
    assert sorted(started) == sorted(e.txid for e in of(events, ObjectEnd))
    reported = [t.txid for t in of(events, SmtpTransaction)]
    assert len(reported) == len(set(reported))
    assert set(started) <= set(reported)
    assert parser._open == {}


_TOKENS = [
    b"EHLO c\r\n",
    b"MAIL FROM:<a@x>\r\n",
    b"RCPT TO:<b@y>\r\n",
    b"DATA\r\n",
    b"BDAT 4\r\n",
    b"BDAT 0 LAST\r\n",
    b"AUTH LOGIN\r\n",
    b"STARTTLS\r\n",
    b"QUIT\r\n",
    b".\r\n",
    b"..x\r\n",
    b"a\n.\r\n",
    b"\r\n.\n",
    b"\r",
    b"\n",
    b"220 mx ESMTP\r\n",
    b"250-x\r\n",
    b"250 ok\r\n",
    b"334 x\r\n",
    b"354 go\r\n",
    b"550 no\r\n",
    b"x" * 70,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(
        st.tuples(
            st.sampled_from([C, S]),
            st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=4).map(b"".join),
        ),
        max_size=12,
    ),
    seed=st.integers(0, 1000),
)
def test_random_conversations_split_invariant(segments: list[Segment], seed: int) -> None:
    """Any conversation (even a wrong one) gives the same events however it is segmented."""
    caps = SmtpCaps(max_line=64)
    results = []
    for split in ("whole", "bytes", "random"):
        try:
            results.append(("ok", run(segments, split, seed, caps=caps)))
        except ProtocolViolation as exc:
            results.append((exc.reason, []))
    assert results[0] == results[1] == results[2]


# --- the client's state machine: the table and the behaviour agree ----------------------------
#
# Every (state, input) pair is walked: a situation is a conversation that leaves a fresh parser's
# client side in one state (with a server that can still answer, or client-only); a stimulus is
# the bytes or calls that produce one input (a DATA line is DATA with a server, DATA_HALF_DUPLEX
# without: where the line is not read as a command at all, it stands for both). A recording
# parser logs every move of the client machine. Where the table has the pair, the stimulus must
# make exactly that move; where it does not, the stimulus must make no move at all (the input
# cannot arise there: a DATA line in message data is content), unless `_ELSEWHERE` says which
# other inputs those bytes are in that state, and why. Each is fed whole and byte by byte.

Action = tuple[Direction, bytes | int | None]  # bytes: feed, int: a gap of that size, None: eof


class _Recording(SmtpParser):
    """An SmtpParser that logs each move of the client machine as (from, input, to)."""

    def __init__(self) -> None:
        super().__init__()
        self.moves: list[tuple[_State, _Input, _State]] = []

    def _move(self, what: _Input) -> None:
        before = self._client.state
        super()._move(what)
        self.moves.append((before, what, self._client.state))


def _act(parser: SmtpParser, actions: list[Action], bytewise: bool) -> list[object]:
    """Apply actions; `bytewise` feeds one byte per call (payloads over 1 KiB: 1 KiB per call,
    enough to cross the hold cap at any offset without a million calls)."""
    events: list[object] = []
    for direction, what in actions:
        if what is None:
            events += parser.eof(direction, TS)
        elif isinstance(what, int):
            events += parser.gap(direction, what, TS)
        elif not bytewise:
            events += parser.feed(direction, what, TS)
        else:
            step = 1 if len(what) <= 1024 else 1024
            for i in range(0, len(what), step):
                events += parser.feed(direction, what[i : i + step], TS)
    return events


@dataclass(frozen=True)
class _Situation:
    state: _State
    server: bool  # a server is seen and open: a reply can come
    actions: list[Action]


_WITH_SERVER: list[Action] = [(S, GREETING), (C, b"EHLO c\r\n"), (S, b"250 mx\r\n")]
_AWAIT_DATA = [*_WITH_SERVER, (C, b"MAIL FROM:<a@x>\r\n"), (S, b"250 ok\r\n"), (C, b"DATA\r\n")]
_AWAIT_AUTH = [*_WITH_SERVER, (C, b"AUTH LOGIN\r\n")]
_AWAIT_TLS = [*_WITH_SERVER, (C, b"STARTTLS\r\n")]

SITUATIONS: dict[str, _Situation] = {
    "command": _Situation(_State.COMMAND, True, _WITH_SERVER),
    "command, client only": _Situation(_State.COMMAND, False, [(C, b"EHLO c\r\n")]),
    "await 354": _Situation(_State.AWAIT_DATA, True, _AWAIT_DATA),
    "await 334": _Situation(_State.AWAIT_AUTH, True, _AWAIT_AUTH),
    "await 220": _Situation(_State.AWAIT_TLS, True, _AWAIT_TLS),
    "data": _Situation(_State.DATA, True, [*_AWAIT_DATA, (S, b"354 go\r\n")]),
    "data, client only": _Situation(
        _State.DATA, False, [(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nDATA\r\n")]
    ),
    # The server answered MAIL and BDAT early: no reply is pending while the chunk is read.
    "bdat": _Situation(
        _State.BDAT,
        True,
        [*_WITH_SERVER, (C, b"MAIL FROM:<a@x>\r\nBDAT 100\r\n"), (S, b"250 ok\r\n250 ok\r\n")],
    ),
    "bdat, client only": _Situation(
        _State.BDAT, False, [(C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 100\r\n")]
    ),
    "auth answer": _Situation(_State.AUTH, True, [*_AWAIT_AUTH, (S, b"334 VXNlcm5hbWU6\r\n")]),
    "auth, client only": _Situation(
        _State.AUTH_HALF_DUPLEX,
        False,
        [(C, b"EHLO c\r\nAUTH PLAIN\r\n")],  # one line to come
    ),
    "tls": _Situation(_State.TLS, True, [*_AWAIT_TLS, (S, b"220 go ahead\r\n")]),
    "tls, client only": _Situation(_State.TLS, False, [(C, b"EHLO c\r\nSTARTTLS\r\n")]),
    # The client hung up while its STARTTLS waits for the reply.
    "closed": _Situation(_State.CLOSED, True, [*_AWAIT_TLS, (C, None)]),
    "closed, client only": _Situation(_State.CLOSED, False, [(C, b"EHLO c\r\n"), (C, None)]),
}


@dataclass(frozen=True)
class _Stimulus:
    actions: list[Action]
    with_server: _Input  # the input it is when a reply can come
    client_only: _Input | None  # ... and when none can (None: no input at all)

    def input(self, situation: _Situation) -> _Input | None:
        return self.with_server if situation.server else self.client_only


def _stimulus(actions: list[Action], what: _Input) -> _Stimulus:
    """A stimulus that is the same input with or without a server."""
    return _Stimulus(actions, what, what)


STIMULI: dict[str, _Stimulus] = {
    "NOOP": _stimulus([(C, b"NOOP\r\n")], _Input.COMMAND),
    "DATA": _Stimulus([(C, b"DATA\r\n")], _Input.DATA, _Input.DATA_HALF_DUPLEX),
    "BDAT": _stimulus([(C, b"BDAT 5\r\n")], _Input.BDAT),
    "AUTH": _Stimulus([(C, b"AUTH PLAIN\r\n")], _Input.AUTH, _Input.AUTH_HALF_DUPLEX),
    "STARTTLS": _Stimulus([(C, b"STARTTLS\r\n")], _Input.STARTTLS, _Input.STARTTLS_HALF_DUPLEX),
    "dot line": _stimulus([(C, b".\r\n")], _Input.END_OF_DATA),
    "100 bytes": _stimulus([(C, b"x" * 100)], _Input.CHUNK_DONE),
    "base64 line": _stimulus([(C, b"AGEAYg==\r\n")], _Input.AUTH_LINES_DONE),
    "354": _stimulus([(S, b"354 go ahead\r\n")], _Input.REPLY_354),
    "334": _stimulus([(S, b"334 \r\n")], _Input.REPLY_334),
    # Client-only, the server's first 220 is its greeting (RFC 5321 3.1): nothing awaits it.
    "220": _Stimulus([(S, b"220 ready for TLS\r\n")], _Input.REPLY_220, None),
    "503": _stimulus([(S, b"503 5.5.1 bad sequence\r\n")], _Input.REPLY_OTHER),
    "250": _stimulus([(S, b"250 ok\r\n")], _Input.DATA_SETTLED),
    "hold overflow": _stimulus([(C, b"\r\n" * 33_000)], _Input.ASSUMED_ACCEPTED),
    "server eof": _stimulus([(S, None)], _Input.ASSUMED_ACCEPTED),
    "gap": _stimulus([(C, 5)], _Input.GAP),
    "eof": _stimulus([(C, None)], _Input.EOF),
}

_COMMAND_LINES = ("NOOP", "DATA", "BDAT", "AUTH", "STARTTLS")
_REPLIES = ("354", "334", "220", "503", "250")
_ELSEWHERE: dict[tuple[str, str], list[_Input]] = {
    # A "." or base64 line outside message data and AUTH is an (unknown) command.
    **{
        (sit, stim): [_Input.COMMAND]
        for sit in ("command", "command, client only")
        for stim in ("dot line", "base64 line")
    },
    # The reply to a held command that is not the go-ahead it waits for refuses it (or, for
    # AUTH, ends the exchange): REPLY_OTHER, whatever its code.
    **{
        (sit, stim): [_Input.REPLY_OTHER]
        for sit, go in (("await 354", "354"), ("await 334", "334"), ("await 220", "220"))
        for stim in _REPLIES
        if stim not in (go, "503")
    },
    # While message data is read with no command pending, any reply settles it (its end was
    # lost); client-only, a first 220 is the greeting instead (RFC 5321 3.1).
    **{
        (sit, stim): [_Input.DATA_SETTLED]
        for sit in ("data", "bdat")
        for stim in _REPLIES
        if stim != "250"
    },
    **{
        (sit, stim): [_Input.DATA_SETTLED]
        for sit in ("data, client only", "bdat, client only")
        for stim in ("354", "334", "503")
    },
    # 66000 bytes overrun a 100-byte chunk; the rest are blank command lines.
    ("bdat", "hold overflow"): [_Input.CHUNK_DONE],
    ("bdat, client only", "hold overflow"): [_Input.CHUNK_DONE],
    # Answering a 334, any line is the (dropped) response; then the rest is held, over the cap.
    **{("auth answer", stim): [_Input.AUTH_LINES_DONE] for stim in (*_COMMAND_LINES, "dot line")},
    ("auth answer", "hold overflow"): [_Input.AUTH_LINES_DONE, _Input.ASSUMED_ACCEPTED],
    # Half-duplex AUTH PLAIN owes one line: a base64-looking one (an empty line, a bare verb) is
    # taken as it; a line with a space or a dot cannot be base64, so it is the next command.
    **{
        ("auth, client only", stim): [_Input.AUTH_LINES_DONE]
        for stim in ("NOOP", "DATA", "STARTTLS", "hold overflow")
    },
    ("auth, client only", "BDAT"): [_Input.AUTH_LINES_DONE, _Input.BDAT],
    ("auth, client only", "AUTH"): [_Input.AUTH_LINES_DONE, _Input.AUTH_HALF_DUPLEX],
    ("auth, client only", "dot line"): [_Input.AUTH_LINES_DONE, _Input.COMMAND],
}


def _expected(situation: str, stimulus: str) -> list[_Input]:
    """The inputs the stimulus feeds in the situation: its own where the table has a row for
    it, none where not, unless `_ELSEWHERE` says otherwise."""
    if (situation, stimulus) in _ELSEWHERE:
        return _ELSEWHERE[situation, stimulus]
    sit = SITUATIONS[situation]
    what = STIMULI[stimulus].input(sit)
    return [what] if what is not None and (sit.state, what) in _TRANSITIONS else []


def test_walk_covers_every_pair_and_every_row() -> None:
    walked = {
        (sit.state, what)
        for sit in SITUATIONS.values()
        for stim in STIMULI.values()
        for what in (stim.with_server, stim.client_only)
        if what is not None
    }
    assert walked == {(state, what) for state in _State for what in _Input}  # 10 x 19
    # Every row of the table is the whole effect of some stimulus in some situation.
    rows = {
        (sit.state, stim.input(sit))
        for situation, sit in SITUATIONS.items()
        for stimulus, stim in STIMULI.items()
        if _expected(situation, stimulus) == [stim.input(sit)]
    }
    assert rows == set(_TRANSITIONS)
    # `_ELSEWHERE` only speaks of pairs the table does not have.
    for (sit, name), _inputs in _ELSEWHERE.items():
        situation = SITUATIONS[sit]
        assert (situation.state, STIMULI[name].input(situation)) not in _TRANSITIONS, (sit, name)


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_situations_reach_their_state(situation: str) -> None:
    for bytewise in (False, True):
        parser = _Recording()
        _act(parser, SITUATIONS[situation].actions, bytewise)
        assert parser._client.state is SITUATIONS[situation].state


@pytest.mark.parametrize("stimulus", sorted(STIMULI))
@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_client_machine_agrees_with_table(situation: str, stimulus: str) -> None:
    sit = SITUATIONS[situation]
    expected = _expected(situation, stimulus)
    results: list[tuple[list[tuple[_State, _Input, _State]], list[object]]] = []
    for bytewise in (False, True):
        parser = _Recording()
        _act(parser, sit.actions, bytewise)
        parser.moves.clear()
        events = _act(parser, STIMULI[stimulus].actions, bytewise)
        moves = parser.moves
        assert [what for _before, what, _after in moves] == expected, bytewise
        # The moves chain from the situation's state, each one a row of the table.
        state = sit.state
        for before, what, after in moves:
            assert before is state
            assert _TRANSITIONS[before, what] is after
            state = after
        assert parser._client.state is state
        # A pair the table lacks was never attempted from that state.
        what = STIMULI[stimulus].input(sit)
        if what is not None and (sit.state, what) not in _TRANSITIONS:
            assert (sit.state, what) not in {(m[0], m[1]) for m in moves}
        results.append((moves, merge(events)))
    assert results[0] == results[1]  # whole and byte by byte: the same moves and events


def test_table_has_no_unreachable_state_and_uses_every_input() -> None:
    reached = {_State.COMMAND}
    frontier = [_State.COMMAND]
    while frontier:
        state = frontier.pop()
        for (source, _what), target in _TRANSITIONS.items():
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(_State)
    assert {what for _state, what in _TRANSITIONS} == set(_Input)
    # Every state but CLOSED says what the client's eof does.
    assert {state for state, what in _TRANSITIONS if what is _Input.EOF} == set(_State) - {
        _State.CLOSED
    }


def test_missing_row_is_a_parser_bug_not_a_violation() -> None:
    parser = SmtpParser()
    parser.feed(C, b"EHLO c\r\n", TS)
    parser.eof(C, TS)
    with pytest.raises(_NoTransition) as exc:
        parser._move(_Input.DATA)
    assert not isinstance(exc.value, ProtocolViolation)  # the app layer: `parser_error`
    assert "CLOSED" in str(exc.value) and "DATA" in str(exc.value)


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_reply_releases_held_bytes_before_the_next_reply_line(split: str) -> None:
    # Client bytes sent before the 354 are held; the 354, the 250 to their end of data and the
    # 221 to the QUIT after it arrive in one segment: each reply pairs with its own command.
    events = run(
        [
            (S, GREETING),
            (C, b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"),
            (S, b"250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"),
        ],
        split,
    )
    assert [type(e) for e in events] == [ObjectStart, ObjectChunk, ObjectEnd, SmtpTransaction]
    (tx,) = txs(events)
    assert (tx.status, tx.last_reply, tx.size) == ("accepted", "250 queued", 4)
    assert not kinds(events)
    # A refused DATA releases the held commands; the refused transaction, closed by the MAIL
    # among them, is reported once all of them are read (after the unknown command's anomaly).
    events = run(
        [
            (S, GREETING),
            (
                C,
                b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                b"MAIL FROM:<c@x>\r\nXBAD\r\n",
            ),
            (S, b"250 mx\r\n250 ok\r\n250 ok\r\n554 no valid recipients\r\n"),
        ],
        split,
        eof=False,
    )
    assert [type(e) for e in events] == [Anomaly, SmtpTransaction]
    assert (txs(events)[0].mail_from, txs(events)[0].status) == ("a@x", "rejected")


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "data", "expected"),
    [
        (C, b"EHLO client.example\r\n", True),
        (C, b"helo x", True),
        (C, b"LhLo x", True),
        (C, b"EHL", None),
        (C, b"", None),
        (C, b"EHLO\r\n", False),
        (C, b"GET / HTTP/1.1\r\n", False),
        (C, b"USER anonymous\r\n", False),
        (S, b"220 mx.example.org ESMTP Postfix\r\n", True),
        (S, b"220-mx.example.org esmtp ready\r\n", True),
        (S, b"220 ProFTPD Server ready\r\n", None),
        (S, b"22", None),
        (S, b"220", None),
        (S, b"421 busy\r\n", False),
        (S, b"HTTP/1.1 200 OK\r\n", False),
        (S, b"SSH-2.0-OpenSSH\r\n", False),
    ],
)
def test_detect(direction: Direction, data: bytes, expected: bool | None) -> None:
    assert detect(direction, data) is expected


# --- registry -----------------------------------------------------------------------------------


def test_every_smtp_kind_is_registered_in_app_layer() -> None:
    source = Path(__file__).resolve().parents[2] / "sensor/protocols/smtp.py"
    literals = {
        node.value
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("smtp_")
    }
    assert len(literals) >= 10
    for kind in literals:
        assert KINDS.get(kind, ("",))[0] == "app", kind


# --- real software: aiosmtpd server, smtplib client, bytes recorded by a loopback relay -------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_real_aiosmtpd_and_smtplib_session() -> None:
    aiosmtpd_controller = require_module("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult

    received: list[tuple[str, list[str], bytes]] = []

    class Handler:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("blocked"):
                return "550 5.1.1 recipient refused"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            return "250 2.0.0 Message accepted for delivery"

    def authenticator(*args: Any) -> AuthResult:
        return AuthResult(success=True)

    controller = aiosmtpd_controller.Controller(
        Handler(),
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    relay = LoopbackRelay(controller.port)
    body1 = (
        b"From: lab@lab.example\r\nTo: out@example.org\r\nSubject: export\r\n\r\n"
        b"BSN;name\r\n.hidden line\r\n..two dots\r\n.\r\n\r\nend\r\n"
    )
    body2 = "Subject: caf\u00e9\r\n\r\n\u00e9\u00e9n bericht\r\n".encode()
    try:
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
            client.ehlo("workstation.lab.example")
            client.login("drsmith", "Hunter2Secret")
            refused = client.sendmail(
                "lab@lab.example", ["out@example.org", "blocked@example.org"], body1
            )
            assert set(refused) == {"blocked@example.org"}
            client.sendmail(
                "jos\u00e9@lab.example",
                ["out@example.org"],
                body2,
                mail_options=["SMTPUTF8", "BODY=8BITMIME"],
            )
    finally:
        relay.close()
        controller.stop()
    segments = list(relay.segments)
    assert len(received) == 2
    sent1, sent2 = (body if body.endswith(b"\r\n") else body + b"\r\n" for body in (body1, body2))
    client_bytes = b"".join(d for direction, d in segments if direction == C)
    assert b"AUTH" in client_bytes and b"Hunter2Secret" not in client_bytes

    for split in ("whole", "bytes", "random"):
        events = run(segments, split)
        first, second = txs(events)
        assert first.helo == "workstation.lab.example"
        assert first.auth_mechanism in {"PLAIN", "LOGIN"}
        assert (first.mail_from, first.rcpt_to) == ("lab@lab.example", ["out@example.org"])
        assert first.rcpt_rejected == ["blocked@example.org"]
        assert (first.status, second.status) == ("accepted", "accepted")
        assert first.last_reply == "250 2.0.0 Message accepted for delivery"
        assert (second.mail_from, second.mail_params) == (
            "jos\u00e9@lab.example",
            [f"size={len(body2)}", "SMTPUTF8", "BODY=8BITMIME"],  # smtplib adds SIZE
        )
        # Exactly the message smtplib sent (it appends a CRLF when the message lacks one,
        # then dot-stuffs): the CRLF before "." CRLF ends the last line and belongs to the
        # message. The real server agrees (its stored content may drop that final CRLF).
        assert message(events, 1) == sent1
        assert message(events, 2) == sent2
        assert received[0][2] in (sent1, sent1[:-2])
        assert received[1][2] in (sent2, sent2[:-2])
        assert not kinds(events)
        assert "Hunter2" not in repr(events)
        assert "SHVudGVy" not in repr(events)


def test_relay_sees_real_bytes_quickly() -> None:
    """The relay itself works (guards the real-software test against a silent hang)."""
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]

    def serve() -> None:
        conn, _ = echo.accept()
        conn.sendall(b"220 hi SMTP\r\n")
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    relay = LoopbackRelay(port)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        assert sock.recv(100) == b"220 hi SMTP\r\n"
        sock.sendall(b"QUIT\r\n")
        deadline = time.monotonic() + 10
        while sock.recv(100) and time.monotonic() < deadline:
            pass
    relay.close()
    thread.join(timeout=10)
    echo.close()
    assert relay.segments[0] == (S, b"220 hi SMTP\r\n")
