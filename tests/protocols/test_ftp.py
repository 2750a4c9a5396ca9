"""Tests for sensor.protocols.ftp: replies, data endpoints, transfers, AUTH TLS, gaps, caps,
privacy, the connection state machine (every state x input pair against the table), detection,
segmentation, and a real pyftpdlib/ftplib conversation."""

from __future__ import annotations

import copy
import ftplib
import io
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS
from sensor.protocols.base import Direction, Opaque, ProtocolViolation
from sensor.protocols.ftp import (
    _TRANSITIONS,
    FtpCaps,
    FtpDataExpected,
    FtpParser,
    FtpSession,
    FtpStateError,
    FtpTransfer,
    FtpViolation,
    _Input,
    _State,
    detect,
)
from tests.protocols.feeding import (
    TS,
    C,
    LoopbackRelay,
    S,
    Segment,
    assert_same_events,
    draw_splits,
    feed_split,
    kinds,
    of,
    runner,
)

PASSWORD = "Zr7-geheim-Wachtwoord"

# --- helpers ------------------------------------------------------------------------------------


run = runner(FtpParser, max_cuts=6)


def session(events: list[object]) -> FtpSession:
    [sess] = of(events, FtpSession)
    return sess


def summary(events: list[object]) -> list[tuple[Any, ...]]:
    """Transfers as (command, filename, direction, mode, reply_code, ok)."""
    return [
        (t.command, t.filename, t.direction, t.mode, t.reply_code, t.ok)
        for t in of(events, FtpTransfer)
    ]


def endpoints(events: list[object]) -> list[tuple[Any, ...]]:
    return [
        (d.command, d.filename, d.direction, d.host, d.port, d.mode)
        for d in of(events, FtpDataExpected)
    ]


# --- sample conversations (wire order) ----------------------------------------------------------

GREETING = b"220-Welcome to the lab FTP service\r\n220-  Authorised use only\r\n220 ready.\r\n"

SAMPLES: dict[str, list[Segment]] = {
    "passive": [
        (S, GREETING),
        (C, b"USER nurse\r\n"),
        (S, b"331 Username ok, send password.\r\n"),
        (C, b"PASS " + PASSWORD.encode() + b"\r\n"),
        (S, b"230 Login successful.\r\n"),
        (C, b"TYPE I\r\n"),
        (S, b"200 Type set to: Binary.\r\n"),
        (C, b"PASV\r\n"),
        (S, b"227 Entering passive mode (198,51,100,20,195,81).\r\n"),
        (C, b"STOR /incoming/patients.csv\r\n"),
        (S, b"125 Data connection already open. Transfer starting.\r\n"),
        (S, b"226 Transfer complete.\r\n"),
        (C, b"EPSV\r\n"),
        (S, b"229 Entering extended passive mode (|||50002|).\r\n"),
        (C, b"RETR report 2025.pdf\r\n"),
        (S, b"150 File status okay. About to open data connection.\r\n"),
        (S, b"226 Transfer complete.\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 Goodbye.\r\n"),
    ],
    "active": [
        (S, b"220 ProFTPD Server ready\r\n"),
        (C, b"USER anonymous\r\n"),
        (S, b"230 Anonymous access granted\r\n"),
        (C, b"PORT 10,10,0,10,4,1\r\n"),
        (S, b"200 PORT command successful\r\n"),
        (C, b"STOR export.zip\r\n"),
        (S, b"150 Opening BINARY mode data connection\r\n226 Transfer complete\r\n"),
        (C, b"EPRT |1|10.10.0.10|50123|\r\n"),
        (S, b"200 EPRT command successful\r\n"),
        (C, b"APPE log.txt\r\n"),
        (S, b"150 ok\r\n226 ok\r\n"),
        (C, b"EPRT |2|fd00:10:0::10|50124|\r\n"),
        (S, b"200 EPRT command successful\r\n"),
        (C, b"LIST\r\n"),
        (S, b"150 Here comes the directory listing.\r\n226 Directory send OK.\r\n"),
        (C, b"NLST\r\n"),
        (S, b"150 default port\r\n226 done\r\n"),
    ],
    "failures": [
        (S, b"220 FTP server\r\n"),
        (C, b"USER u\r\nPASS x\r\n"),
        (S, b"331 pw\r\n230 ok\r\n"),
        (C, b"PASV\r\n"),
        (S, b"227 =198,51,100,20,8,0\r\n"),
        (C, b"RETR missing.csv\r\n"),
        (S, b"550 No such file or directory.\r\n"),
        (C, b"PASV\r\n"),
        (S, b"227 Entering Passive Mode 198,51,100,20,8,1\r\n"),
        (C, b"STOR big.bin\r\n"),
        (S, b"150 ok\r\n426 Connection closed; transfer aborted.\r\n"),
        (C, b"PORT 10,10,0,10,8,2\r\n"),
        (S, b"200 ok\r\n"),
        (C, b"MLSD /\r\n"),
        (S, b"425 Can't open data connection.\r\n"),
    ],
    "pipelined": [
        (S, b"220 FTP ready\r\n"),
        (
            C,
            b"USER u\r\nPASS pw\r\nTYPE I\r\nPASV\r\nSTOR a.csv\r\nPASV\r\nRETR b.csv\r\n"
            b"REST 100\r\nPASV\r\nRETR c.csv\r\nQUIT\r\n",
        ),
        (
            S,
            b"331 pw\r\n230 ok\r\n200 binary\r\n227 (198,51,100,20,10,1)\r\n150 go\r\n226 ok\r\n"
            b"227 (198,51,100,20,10,2)\r\n150 go\r\n226 ok\r\n"
            b"350 Restarting at 100\r\n227 (198,51,100,20,10,3)\r\n150 go\r\n226 ok\r\n"
            b"221 bye\r\n",
        ),
    ],
    "stou": [
        (S, b"220 FTP\r\n"),
        (C, b"PASV\r\n"),
        (S, b"227 Entering Passive Mode (198,51,100,20,31,64)\r\n"),
        (C, b"STOU\r\n"),
        (S, b"150 FILE: upload-0001.dat\r\n226 Transfer complete.\r\n"),
    ],
    "multiline": [
        (S, b"120-Service ready in 1 minute\r\n120 wait\r\n"),
        (S, b"220 FTP finally ready\r\n"),
        (C, b"FEAT\r\n"),
        (
            S,
            b"211-Features:\r\n EPRT\r\n 227 not a reply\r\n211-still inside\r\n"
            b"2111 also inside\r\n UTF8\r\n211 End\r\n",
        ),
        (C, b"SYST\r\n"),
        (S, b"215 UNIX Type: L8\r\n"),
    ],
    "abor_telnet": [
        (S, b"220 FTP\r\n"),
        (C, b"PASV\r\n"),
        (S, b"227 (198,51,100,20,4,4)\r\n"),
        (C, b"RETR huge.iso\r\n"),
        (S, b"150 ok\r\n"),
        (C, b"\xff\xf4\xff\xf2ABOR\r\n"),
        (S, b"426 Transfer aborted\r\n226 ABOR successful\r\n"),
    ],
    "auth_refused": [
        (S, b"220 FTP\r\n"),
        (C, b"AUTH TLS\r\nUSER clear\r\n"),
        (S, b"504 AUTH not supported\r\n331 pw\r\n"),
        (C, b"PASS " + PASSWORD.encode() + b"\r\n"),
        (S, b"530 Login incorrect.\r\n"),
    ],
}


def test_samples_use_only_registered_kinds() -> None:
    for name, segments in SAMPLES.items():
        for kind in kinds(run(segments)):
            assert kind in KINDS and KINDS[kind][0] == "app", (name, kind)


# --- segmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_same_events_whole_bytes_and_random_splits(name: str) -> None:
    assert_same_events(run, SAMPLES[name], seeds=range(5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_any_split_gives_the_same_events(name: str, data: st.DataObject) -> None:
    splits = draw_splits(data, SAMPLES[name], inner=True)
    assert feed_split(FtpParser(), SAMPLES[name], splits) == run(SAMPLES[name])


# --- transfers and endpoints --------------------------------------------------------------------


def test_passive_session() -> None:
    events = run(SAMPLES["passive"])
    assert endpoints(events) == [
        ("STOR", "/incoming/patients.csv", "upload", "198.51.100.20", 195 * 256 + 81, "passive"),
        ("RETR", "report 2025.pdf", "download", "", 50002, "passive"),
    ]
    assert summary(events) == [
        ("STOR", "/incoming/patients.csv", "upload", "passive", 226, True),
        ("RETR", "report 2025.pdf", "download", "passive", 226, True),
    ]
    stor = of(events, FtpDataExpected)[0]
    assert (stor.txid, stor.transfer_type, stor.rest) == (1, "I", 0)
    assert of(events, FtpTransfer)[0].reply_text == "Transfer complete."
    sess = session(events)
    assert (sess.user, sess.auth_tls, sess.login_success, sess.commands) == (
        "nurse",
        False,
        True,
        8,
    )
    assert sess.server_banner == "Welcome to the lab FTP service\n  Authorised use only\nready."
    assert kinds(events) == []
    # Each announcement precedes its transfer's outcome, and the session comes last.
    order = [type(e).__name__ for e in events]
    assert order == ["FtpDataExpected", "FtpTransfer"] * 2 + ["FtpSession"]


def test_active_session() -> None:
    events = run(SAMPLES["active"])
    assert endpoints(events) == [
        ("STOR", "export.zip", "upload", "10.10.0.10", 1025, "active"),
        ("APPE", "log.txt", "upload", "10.10.0.10", 50123, "active"),
        ("LIST", None, "download", "fd00:10::10", 50124, "active"),
        ("NLST", None, "download", "", 0, "active"),  # RFC 959 default data port
    ]
    assert [t.ok for t in of(events, FtpTransfer)] == [True] * 4
    assert session(events).login_success is True
    assert session(events).user == "anonymous"


def test_failures() -> None:
    events = run(SAMPLES["failures"])
    assert summary(events) == [
        ("RETR", "missing.csv", "download", "passive", 550, False),
        ("STOR", "big.bin", "upload", "passive", 426, False),
        ("MLSD", "/", "download", "active", 425, False),
    ]
    assert [d.port for d in of(events, FtpDataExpected)] == [2048, 2049, 2050]


def test_pipelined_commands_pair_replies_in_order() -> None:
    events = run(SAMPLES["pipelined"])
    # The transfers were sent before any PASV was answered: each waits for its own PASV.
    assert [(d.filename, d.port, d.transfer_type, d.rest) for d in of(events, FtpDataExpected)] == [
        ("a.csv", 2561, "I", 0),
        ("b.csv", 2562, "I", 0),
        ("c.csv", 2563, "I", 100),
    ]
    assert [t.rest for t in of(events, FtpTransfer)] == [0, 0, 100]
    assert [t.ok for t in of(events, FtpTransfer)] == [True] * 3
    assert session(events).commands == 11
    assert kinds(events) == []


def test_stou_takes_the_name_from_the_reply() -> None:
    events = run(SAMPLES["stou"])
    assert endpoints(events) == [
        ("STOU", "upload-0001.dat", "upload", "198.51.100.20", 8000, "passive")
    ]
    assert summary(events) == [("STOU", "upload-0001.dat", "upload", "passive", 226, True)]


def test_stou_refused_announces_nothing() -> None:
    events = run([(S, b"220 FTP\r\n"), (C, b"PASV\r\n"), (S, b"227 (1,2,3,4,5,6)\r\n"),
                  (C, b"STOU\r\n"), (S, b"553 no\r\n")])  # fmt: skip
    assert of(events, FtpDataExpected) == []
    assert summary(events) == [("STOU", None, "upload", "passive", 553, False)]


def test_multiline_replies() -> None:
    events = run(SAMPLES["multiline"])
    sess = session(events)
    assert sess.server_banner == "FTP finally ready"
    assert sess.commands == 2
    assert kinds(events) == []  # "227 not a reply" and "2111" are inside the FEAT reply


def test_abor_with_telnet_sequences() -> None:
    events = run(SAMPLES["abor_telnet"])
    assert summary(events) == [("RETR", "huge.iso", "download", "passive", 426, False)]
    assert session(events).commands == 3
    assert kinds(events) == []


@pytest.mark.parametrize(
    ("reply", "host", "port"),
    [
        (b"227 Entering Passive Mode (10,0,0,1,4,1).", "10.0.0.1", 1025),
        (b"227 Entering Passive Mode 10,0,0,1,4,1", "10.0.0.1", 1025),
        (b"227 =10,0,0,1,4,1", "10.0.0.1", 1025),
        (b"227 Passive (10, 0, 0, 1, 255, 255)", "10.0.0.1", 65535),
        (b"227-multi\r\n227 (192,168,7,9,0,21)", "192.168.7.9", 21),
        (b"229 Entering Extended Passive Mode (|||6446|)", "", 6446),
        (b"229 EPSV ok (!!!2121!)", "", 2121),
    ],
)
def test_passive_reply_formats(reply: bytes, host: str, port: int) -> None:
    verb = b"EPSV" if reply.startswith(b"229") else b"PASV"
    events = run([(S, b"220 FTP\r\n"), (C, verb + b"\r\nRETR f\r\n"), (S, reply + b"\r\n")])
    assert endpoints(events) == [("RETR", "f", "download", host, port, "passive")]


@pytest.mark.parametrize(
    "segments",
    [
        [(C, b"PORT 10,0,0,1,4\r\n")],
        [(C, b"PORT 10,0,0,300,4,1\r\n")],
        [(C, b"PORT 10,0,0,1,0,0\r\n")],
        [(C, b"EPRT |1|10.0.0.1|99999|\r\n")],
        [(C, b"EPRT |2|10.0.0.1|2000|\r\n")],
        [(C, b"EPRT |1|not-an-ip|2000|\r\n")],
        [(C, b"EPRT 1|10.0.0.1|2000\r\n")],
        [(C, b"PASV\r\n"), (S, b"227 Entering Passive Mode\r\n")],
        [(C, b"PASV\r\n"), (S, b"227 (10,0,0,1,256,1)\r\n")],
        [(C, b"EPSV\r\n"), (S, b"229 Entering Extended Passive Mode (|||0|)\r\n")],
        [(C, b"EPSV\r\n"), (S, b"229 (|||70000|)\r\n")],
    ],
)
def test_bad_port_arguments(segments: list[Segment]) -> None:
    events = run([(S, b"220 FTP\r\n"), *segments, (C, b"RETR f\r\n")])
    assert "ftp_bad_port_argument" in kinds(events)
    assert all(d.port == 0 for d in of(events, FtpDataExpected))  # only the default port


def test_failed_port_and_pasv_are_not_used() -> None:
    events = run([
        (S, b"220 FTP\r\n"),
        (C, b"PORT 10,0,0,1,4,1\r\n"), (S, b"501 Rejected data connection to foreign address\r\n"),
        (C, b"RETR a\r\n"), (S, b"425 no\r\n"),
        (C, b"PASV\r\nRETR b\r\n"), (S, b"425 Too many connections\r\n425 no\r\n"),
    ])  # fmt: skip
    assert endpoints(events) == [("RETR", "a", "download", "", 0, "active")]
    assert summary(events) == [
        ("RETR", "a", "download", "active", 425, False),
        ("RETR", "b", "download", None, 425, False),
    ]


def test_type_and_rest_follow_their_replies() -> None:
    events = run([
        (S, b"220 FTP\r\n"),
        (C, b"TYPE I\r\n"), (S, b"200 ok\r\n"),
        (C, b"TYPE X\r\n"), (S, b"504 unknown type\r\n"),
        (C, b"REST 5\r\n"), (S, b"502 REST not implemented\r\n"),
        (C, b"RETR a\r\n"), (S, b"150 ok\r\n226 ok\r\n"),
        (C, b"TYPE A\r\n"), (S, b"200 ok\r\n"),
        (C, b"REST 1234\r\n"), (S, b"350 Restarting\r\n"),
        (C, b"STOR b\r\n"), (S, b"150 ok\r\n226 ok\r\n"),
        (C, b"RETR c\r\n"), (S, b"150 ok\r\n226 ok\r\n"),
    ])  # fmt: skip
    assert [(d.filename, d.transfer_type, d.rest) for d in of(events, FtpDataExpected)] == [
        ("a", "I", 0),
        ("b", "A", 1234),
        ("c", "A", 0),
    ]


def test_login_outcomes() -> None:
    def login(*replies: bytes) -> bool | None:
        segs: list[Segment] = [(S, b"220 FTP\r\n"), (C, b"USER u\r\nPASS p\r\n")]
        segs += [(S, r + b"\r\n") for r in replies]
        return session(run(segs)).login_success

    assert login(b"331 pw", b"230 ok") is True
    assert login(b"331 pw", b"530 Login incorrect") is False
    assert login(b"530 Not allowed", b"503 Login with USER first") is False
    assert login(b"331 pw") is None
    assert login(b"331 pw", b"332 need account") is None


def test_eof_reports_unanswered_transfers() -> None:
    events = run([(S, b"220 FTP\r\n"), (C, b"PASV\r\n"), (S, b"227 (1,2,3,4,0,80)\r\n"),
                  (C, b"STOR half.csv\r\n"), (S, b"150 ok\r\n")])  # fmt: skip
    assert summary(events) == [("STOR", "half.csv", "upload", "passive", None, None)]
    assert type(events[-1]) is FtpSession


def test_session_is_emitted_once_after_both_eofs() -> None:
    parser = FtpParser()
    assert parser.feed(S, b"220 FTP\r\n", TS) == []
    assert of(parser.eof(S, TS), FtpSession) == []
    assert len(of(parser.eof(C, TS), FtpSession)) == 1
    assert parser.eof(C, TS) == [] and parser.feed(C, b"USER x\r\n", TS) == []


def test_unmatched_reply() -> None:
    events = run([(S, b"220 FTP\r\n200 what\r\n421 Timeout\r\n")])
    assert kinds(events) == ["ftp_unmatched_reply"]


def test_mid_stream_pickup_without_greeting() -> None:
    events = run([(C, b"PASV\r\n"), (S, b"227 (1,2,3,4,0,80)\r\n"), (C, b"RETR x\r\n"),
                  (S, b"150 ok\r\n226 ok\r\n")])  # fmt: skip
    assert summary(events) == [("RETR", "x", "download", "passive", 226, True)]
    assert session(events).server_banner is None


# --- AUTH TLS -----------------------------------------------------------------------------------

CLIENT_HELLO = bytes.fromhex("160301002a0100002603035a") + b"\x00" * 40
SERVER_HELLO = bytes.fromhex("160303004a0200004603035b") + b"\x01" * 40


def test_auth_tls_stops_parsing() -> None:
    events = run([
        (S, b"220 FTP\r\n"),
        (C, b"AUTH TLS\r\n" + CLIENT_HELLO),  # the client did not even wait
        (S, b"234 AUTH TLS successful\r\n" + SERVER_HELLO),
        (C, b"\x17\x03\x03\x00\x20USER secret\r\nSTOR x\r\n"),
        (S, b"\x17\x03\x03\x00\x20226 ok\r\n"),
    ])  # fmt: skip
    assert [type(e) for e in events] == [FtpSession, Opaque]  # the app layer stops here
    sess = session(events)
    assert (sess.auth_tls, sess.user, sess.commands, sess.server_banner) == (True, None, 1, "FTP")


def test_auth_refused_goes_on_in_clear() -> None:
    events = run(SAMPLES["auth_refused"])
    sess = session(events)
    assert (sess.auth_tls, sess.user, sess.login_success, sess.commands) == (
        False,
        "clear",
        False,
        3,
    )
    assert kinds(events) == []


def test_gap_over_the_auth_reply_with_tls_after_it() -> None:
    parser = FtpParser()
    events = parser.feed(S, b"220 FTP\r\n", TS) + parser.feed(C, b"AUTH SSL\r\n" + CLIENT_HELLO, TS)
    events += parser.gap(S, 40, TS)
    assert kinds(events) == ["ftp_gap"]
    assert session(events).auth_tls is True
    assert of(events, Opaque) == [Opaque("auth_tls", TS)]
    assert parser.feed(C, b"STOR a\r\n", TS) == []


def test_unanswered_auth_over_the_cap() -> None:
    caps = FtpCaps(max_held=100)
    events = run([(S, b"220 FTP\r\n"), (C, b"AUTH TLS\r\n" + b"\x16" * 200)], caps=caps)
    assert kinds(events) == ["ftp_unanswered_auth"]
    assert session(events).auth_tls is False


# --- privacy ------------------------------------------------------------------------------------


def test_password_is_never_in_any_event() -> None:
    secret = PASSWORD.encode()
    cases: list[list[Segment]] = [
        *SAMPLES.values(),
        [(C, b"PASS " + secret + b"\r\n")],  # no greeting, unmatched
        [(S, b"220 FTP\r\n"), (C, b"PASS " + secret * 400 + b"\r\n")],  # over the line cap
        [(S, b"220 FTP\r\n"), (C, b"ACCT " + secret + b"\r\n"), (S, b"530 no\r\n")],
        [(S, b"220 FTP\r\n"), (C, b"PASS " + secret)],  # eof inside the line
        [(S, b"220 FTP\r\n"), (C, b"pass " + secret + b"\r\n"), (S, b"230 ok\r\n")],
    ]
    caps = FtpCaps(max_line=512)
    for segments in cases:
        for split in ("whole", "bytes"):
            events = run(segments, split, caps=caps)
            assert events
            text = repr(events)
            assert PASSWORD not in text and str(len(secret)) not in text, events


# --- gaps, caps, hostile bytes ------------------------------------------------------------------


def test_gap_resyncs_at_the_next_line() -> None:
    parser = FtpParser()
    events = parser.feed(S, b"220 FTP\r\n", TS)
    events += parser.feed(C, b"PASV\r\n", TS) + parser.feed(S, b"227 (1,2,3,4,0,80)\r\n", TS)
    events += parser.feed(C, b"STOR a.csv\r\nNOOP\r\nST", TS)
    events += parser.gap(C, 100, TS)
    events += parser.feed(C, b"OR rest-of-a-line\r\nPASV\r\n", TS)
    events += parser.feed(S, b"150 ok\r\n226 ok\r\n200 noop\r\n", TS)  # answers lost commands
    events += parser.feed(S, b"227 (1,2,3,4,0,81)\r\n", TS)
    events += parser.feed(C, b"RETR b.csv\r\n", TS)
    events += parser.feed(S, b"150 ok\r\n226 ok\r\n", TS)
    events += parser.eof(C, TS) + parser.eof(S, TS)
    assert kinds(events) == ["ftp_gap"]
    assert summary(events)[0] == ("STOR", "a.csv", "upload", "passive", None, None)
    # The 226 and 200 answer the swallowed commands: they do not fit PASV and are skipped.
    assert endpoints(events)[-1] == ("RETR", "b.csv", "download", "1.2.3.4", 81, "passive")
    assert summary(events)[-1] == ("RETR", "b.csv", "download", "passive", 226, True)
    assert session(events).commands == 5


def test_gap_inside_a_multiline_reply() -> None:
    parser = FtpParser()
    events = parser.feed(S, b"220 FTP\r\n", TS) + parser.feed(C, b"FEAT\r\n", TS)
    events += parser.feed(S, b"211-Features:\r\n MDTM\r\n", TS) + parser.gap(S, 30, TS)
    events += parser.feed(S, b"X\r\n211 End\r\n", TS)
    events += parser.feed(C, b"PASV\r\n", TS) + parser.feed(S, b"227 (1,2,3,4,0,80)\r\n", TS)
    events += parser.feed(C, b"RETR z\r\n", TS)
    assert kinds(events) == ["ftp_gap"]  # the stray "211 End" is expected after a gap
    assert endpoints(events) == [("RETR", "z", "download", "1.2.3.4", 80, "passive")]


def test_line_cap() -> None:
    caps = FtpCaps(max_line=64)
    long = b"RETR " + b"a" * 100 + b"\r\n"
    segs: list[Segment] = [(S, b"220 FTP\r\n"), (C, long + b"PASV\r\n"),
                           (S, b"227 (1,2,3,4,0,80)\r\n" + b"2" * 100 + b"\r\n")]  # fmt: skip
    for split in ("whole", "bytes", "random"):
        events = run(segs, split, caps=caps)
        assert kinds(events) == ["ftp_line_too_long", "ftp_line_too_long"]
        assert session(events).commands == 1


def test_multiline_reply_cap() -> None:
    caps = FtpCaps(max_reply_lines=3)
    events = run([(S, b"220-a\r\nb\r\nc\r\nd\r\ne\r\n")], caps=caps)
    assert "ftp_reply_too_long" in kinds(events)


def test_too_many_pending() -> None:
    caps = FtpCaps(max_pending=4)
    events = run([(S, b"220 FTP\r\n"), (C, b"PASV\r\nRETR a\r\n" + b"NOOP\r\n" * 5)], caps=caps)
    assert kinds(events).count("ftp_too_many_pending") == 3
    assert summary(events) == [("RETR", "a", "download", None, None, None)]


def test_bad_lines_are_skipped_then_the_parser_gives_up() -> None:
    events = run([(S, b"220 FTP\r\nhello\r\n200\r\n"), (C, b"NOOP\r\n1234 x\r\nNOOP\r\n")])
    assert kinds(events).count("ftp_bad_reply") == 1
    assert kinds(events).count("ftp_bad_command") == 1
    parser = FtpParser()
    with pytest.raises(FtpViolation) as info:
        parser.feed(C, b"\x00\x01garbage\n" * 40, TS)
    assert info.value.reason == "ftp_not_ftp"
    assert kinds(info.value.events).count("ftp_bad_command") == FtpCaps().max_bad_lines
    assert parser.feed(C, b"USER x\r\n", TS) == []  # detached


def test_truncated_line_at_eof() -> None:
    assert kinds(run([(S, b"220 FTP\r\n"), (C, b"NOOP\r\nSTOR par")])) == ["ftp_truncated_line"]


def test_registry_has_every_kind_with_layer_app() -> None:
    source = Path(__file__).resolve().parents[2] / "sensor/protocols/ftp.py"
    import re

    found = set(re.findall(r'"(ftp_[a-z_]+)"', source.read_text()))
    assert len(found) >= 10
    for kind in found:
        assert KINDS.get(kind, ("",))[0] == "app", kind


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from([C, S]), st.binary(max_size=200)), min_size=1, max_size=12
    ),
    gap_at=st.integers(-1, 12),
)
def test_arbitrary_bytes_raise_only_violations(
    chunks: list[tuple[Direction, bytes]], gap_at: int
) -> None:
    parser = FtpParser(FtpCaps(max_line=64, max_reply_lines=4))
    try:
        for i, (direction, data) in enumerate(chunks):
            if i == gap_at:
                parser.gap(direction, 7, TS)
            parser.feed(direction, data, TS)
        parser.eof(C, TS)
        parser.eof(S, TS)
    except ProtocolViolation:
        pass


_WORDS = [b"USER u", b"PASS p", b"PASV", b"EPSV", b"RETR f", b"STOR g", b"STOU", b"AUTH TLS",
          b"PORT 1,2,3,4,5,6", b"EPRT |2|::1|9|", b"REST 3", b"TYPE I", b"227 (1,2,3,4,5,6)",
          b"229 (|||7|)", b"150 FILE: n", b"226 ok", b"234 go", b"211-x", b"211 y", b"550 no",
          b"\xff\xf4", b"", b" "]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(st.sampled_from([C, S]), st.sampled_from(_WORDS)), max_size=30),
    seed=st.integers(0, 1000),
)
def test_protocol_shaped_input_is_split_invariant(
    lines: list[tuple[Direction, bytes]], seed: int
) -> None:
    segments = [(d, w + b"\r\n") for d, w in lines]
    assert_same_events(run, segments, seeds=[seed])


# --- the connection state machine ----------------------------------------------------------------
#
# Every (state, input) pair is tried: a fresh parser is driven into the state by a conversation
# (REACH), then given the bytes or calls that produce the input (STIMULUS), whole and byte by
# byte. A TracingParser records each transition. A pair in the table must fire and end in the
# table's state; a pair outside it is either ignored (the call is dropped before any parsing:
# no event, no transition) or cannot arise (the stimulus does something else, listed below).
# Where it ends, the parser must also BEHAVE as that state (probes on copies of it, `behaviour`),
# and the table must equal SPEC, the transitions written out independently of the module.

# ("feed", side, bytes) | ("gap", side, size) | ("eof", side, 0)
Step = tuple[str, Direction, bytes | int]
Transition = tuple[_State, _Input, _State]

MACHINE_CAPS = FtpCaps(max_held=256, max_bad_lines=3)
GREETED = b"220 FTP ready\r\n"


def fed(direction: Direction, data: bytes) -> Step:
    return ("feed", direction, data)


def gapped(direction: Direction, size: int) -> Step:
    return ("gap", direction, size)


def ended(direction: Direction) -> Step:
    return ("eof", direction, 0)


REACH: dict[_State, list[Step]] = {
    # The server asks the client to wait (RFC 959 section 5.4): the greeting is still due.
    _State.GREETING: [fed(S, b"120 Service ready in 2 minutes\r\n")],
    # A client that does not wait for the greeting.
    _State.GREETING_AUTH_WAIT: [fed(C, b"AUTH TLS\r\n")],
    _State.COMMANDS: [
        fed(S, GREETED), fed(C, b"USER lab\r\n"), fed(S, b"331 Password required\r\n"),
    ],
    _State.AUTH_WAIT: [fed(S, GREETED), fed(C, b"AUTH TLS\r\n")],
    _State.TLS: [fed(S, GREETED), fed(C, b"AUTH TLS\r\n"), fed(S, b"234 AUTH TLS successful\r\n")],
    # The client starts TLS without waiting, the server never answers: over max_held.
    _State.OPAQUE: [fed(S, GREETED), fed(C, b"AUTH TLS\r\n" + CLIENT_HELLO + bytes(256))],
    _State.CLOSED: [
        fed(S, GREETED), fed(C, b"USER lab\r\n"), fed(S, b"331 Password required\r\n"),
        fed(C, b"QUIT\r\n"), fed(S, b"221 Goodbye.\r\n"), ended(C), ended(S),
    ],
    # Not an FTP client: more than max_bad_lines malformed lines in a row.
    _State.VIOLATED: [fed(S, GREETED), fed(C, b"\x00\x01 not ftp\r\n" * 4)],
}  # fmt: skip

STIMULUS: dict[_Input, list[Step]] = {
    _Input.GREETING_REPLY: [fed(S, GREETED)],
    _Input.NO_GREETING: [fed(S, b"150 Opening BINARY mode data connection\r\n")],
    _Input.AUTH_SENT: [fed(C, b"AUTH TLS\r\n")],
    _Input.AUTH_ACCEPTED: [fed(S, b"234 AUTH TLS successful\r\n")],
    _Input.AUTH_REFUSED: [fed(S, b"504 AUTH not supported\r\n")],
    _Input.HOLD_OVERFLOW: [fed(C, CLIENT_HELLO + bytes(256))],
    _Input.GAP: [gapped(S, 40)],
    _Input.GAP_THEN_TLS: [fed(C, CLIENT_HELLO), gapped(S, 40)],
    _Input.CLIENT_EOF: [ended(C)],
    _Input.SERVER_EOF: [ended(S)],
    _Input.LAST_EOF: [ended(C), ended(S)],
    _Input.VIOLATION: [fed(S, b"hello\r\n" * 4)],
}

G, GA, CMD, AW = _State.GREETING, _State.GREETING_AUTH_WAIT, _State.COMMANDS, _State.AUTH_WAIT

# Pairs of a reading state and an input that cannot arise there: what the stimulus does instead.
CANNOT_ARISE: dict[tuple[_State, _Input], list[Transition]] = {
    # No AUTH is queued before the greeting: a 234 or 504 is the first reply, so not a greeting.
    (G, _Input.AUTH_ACCEPTED): [(G, _Input.NO_GREETING, CMD)],
    (G, _Input.AUTH_REFUSED): [(G, _Input.NO_GREETING, CMD)],
    (G, _Input.HOLD_OVERFLOW): [],  # nothing is held: an unfinished command line
    (G, _Input.GAP_THEN_TLS): [(G, _Input.GAP, G)],  # nothing is held: a plain gap
    (GA, _Input.AUTH_SENT): [],  # the client's bytes are held, not parsed
    # The reply first settles the greeting (there was none), then answers the AUTH.
    (GA, _Input.AUTH_ACCEPTED): [
        (GA, _Input.NO_GREETING, AW), (AW, _Input.AUTH_ACCEPTED, _State.TLS),
    ],
    (GA, _Input.AUTH_REFUSED): [
        (GA, _Input.NO_GREETING, AW), (AW, _Input.AUTH_REFUSED, CMD),
    ],
    (CMD, _Input.GREETING_REPLY): [],  # after the greeting a 220 is an unmatched reply
    (CMD, _Input.NO_GREETING): [],  # a preliminary reply with nothing queued
    (CMD, _Input.AUTH_ACCEPTED): [],  # no AUTH is queued: an unmatched reply
    (CMD, _Input.AUTH_REFUSED): [],
    (CMD, _Input.HOLD_OVERFLOW): [],  # nothing is held: an unfinished command line
    (CMD, _Input.GAP_THEN_TLS): [(CMD, _Input.GAP, CMD)],  # nothing is held: a plain gap
    (AW, _Input.GREETING_REPLY): [(AW, _Input.AUTH_REFUSED, CMD)],  # a 220 answers the AUTH
    (AW, _Input.NO_GREETING): [],  # a preliminary reply to the AUTH
    (AW, _Input.AUTH_SENT): [],  # the client's bytes are held, not parsed
}  # fmt: skip

# Calls dropped before any parsing: feed() and gap() in the states that read nothing, eof() too
# in the states with nothing left to report.
EOFS = frozenset({_Input.CLIENT_EOF, _Input.SERVER_EOF, _Input.LAST_EOF})
NOT_READ = frozenset({_State.TLS, _State.OPAQUE, _State.CLOSED, _State.VIOLATED})
ENDED = frozenset({_State.TLS, _State.CLOSED, _State.VIOLATED})
IGNORED = {(s, i) for s in NOT_READ for i in _Input if s in ENDED or i not in EOFS}

TABLE = {(s, i): target for s, row in _TRANSITIONS.items() for i, target in row.items()}
ALL_PAIRS = [(s, i) for s in _State for i in _Input]

# The transitions as read from RFC 959 section 5.4 (greeting), RFC 4217 section 4 (AUTH) and
# the parser's behaviour before its state became a table; "-" = no row. Columns in _Input order.
SPEC = """
                    GREET NOGRT AUTH  234   REFSD OVFLW GAP   GPTLS CEOF  SEOF  LAST  VIOL
GREETING            CMD   CMD   GA    -     -     -     G     -     G     G     CL    V
GREETING_AUTH_WAIT  AW    AW    -     -     -     OP    G     TLS   GA    G     CL    V
COMMANDS            -     -     AW    -     -     -     CMD   -     CMD   CMD   CL    V
AUTH_WAIT           -     -     -     TLS   CMD   OP    CMD   TLS   AW    CMD   CL    V
TLS                 -     -     -     -     -     -     -     -     -     -     -     -
OPAQUE              -     -     -     -     -     -     -     -     OP    OP    CL    -
CLOSED              -     -     -     -     -     -     -     -     -     -     -     -
VIOLATED            -     -     -     -     -     -     -     -     -     -     -     -
"""
SPEC_NAMES = {"G": G, "GA": GA, "CMD": CMD, "AW": AW, "TLS": _State.TLS, "OP": _State.OPAQUE,
              "CL": _State.CLOSED, "V": _State.VIOLATED}  # fmt: skip


def spec_table() -> dict[tuple[_State, _Input], _State]:
    header, *rows = SPEC.strip("\n").splitlines()
    assert len(header.split()) == len(_Input)
    table = {}
    for row in rows:
        name, *cells = row.split()
        assert len(cells) == len(_Input), name
        for cause, cell in zip(_Input, cells, strict=True):
            if cell != "-":
                table[_State[name], cause] = SPEC_NAMES[cell]
    return table


def behaviour(
    parser: FtpParser, performed: Sequence[Step], history: list[object]
) -> dict[str, Any]:
    """What the parser observably does from here, found by probing copies of it and closing
    them (client side first): does it report a session at close, parse the server's lines (four
    bad ones are a violation), take a 220 as the greeting, parse the client's lines (a NOOP is
    counted; while an AUTH is held it is not); and how did it end, if it did. Each probe starts
    with an empty line, which ends a line skipped after a gap and is otherwise ignored."""

    def closed(*probe: Step) -> list[object]:
        return drive(copy.deepcopy(parser), [*probe, ended(C), ended(S)], "whole")

    control = of(closed(), FtpSession)
    seen: dict[str, Any] = {"session_at_close": bool(control)}
    if ended(S) not in performed:
        seen["reads_server"] = ("violation", "ftp_not_ftp") in closed(
            fed(S, b"\r\n" + b"hello\r\n" * 4)
        )
        greeted = of(closed(fed(S, b"\r\n220 probe\r\n")), FtpSession)
        seen["awaits_greeting"] = bool(greeted) and greeted[0].server_banner == "probe"
    if ended(C) not in performed:
        counted = of(closed(fed(C, b"\r\nNOOP\r\n")), FtpSession)
        seen["reads_client"] = bool(counted) and counted[0].commands == control[0].commands + 1
    marks = [end_mark(e) for e in history if end_mark(e)]
    seen["ended_with"] = marks[-1] if marks else None
    return seen


def end_mark(event: object) -> str | None:
    if isinstance(event, tuple):
        return "violation"  # noted by drive
    return type(event).__name__ if isinstance(event, FtpSession | Opaque) else None


def behaviour_of(state: _State, performed: Sequence[Step]) -> dict[str, Any]:
    """What `behaviour` must find in `state`."""
    reading = state in (G, GA, CMD, AW)
    expected: dict[str, Any] = {"session_at_close": reading or state is _State.OPAQUE}
    if ended(S) not in performed:
        expected["reads_server"] = reading
        expected["awaits_greeting"] = state in (G, GA)
    if ended(C) not in performed:
        expected["reads_client"] = state in (G, CMD)  # GA, AW hold the client's bytes
    # TLS ends with Opaque (after its session), CLOSED with the session, VIOLATED raised.
    ends = {_State.TLS: "Opaque", _State.CLOSED: "FtpSession", _State.VIOLATED: "violation"}
    expected["ended_with"] = ends.get(state)
    return expected


class TracingParser(FtpParser):
    """An FtpParser that records every transition as (state before, input, state after)."""

    def __init__(self, caps: FtpCaps = MACHINE_CAPS) -> None:
        super().__init__(caps)
        self.trace: list[Transition] = []

    def _advance(self, cause: _Input) -> None:
        before = self._state
        super()._advance(cause)
        self.trace.append((before, cause, self._state))


def perform(parser: FtpParser, step: Step) -> list[Any]:
    kind, direction, arg = step
    if kind == "feed":
        assert isinstance(arg, bytes)
        return parser.feed(direction, arg, TS)
    if kind == "gap":
        assert isinstance(arg, int)
        return parser.gap(direction, arg, TS)
    return parser.eof(direction, TS)


def drive(parser: FtpParser, steps: Sequence[Step], split: str) -> list[object]:
    """Perform the steps, each feed whole or one byte per call ("bytes"); a violation is noted
    as an event and the steps go on (the parser must then drop everything)."""
    events: list[object] = []
    for kind, direction, arg in steps:
        calls = [(kind, direction, arg)]
        if kind == "feed" and split == "bytes":
            assert isinstance(arg, bytes)
            calls = [(kind, direction, arg[i : i + 1]) for i in range(len(arg))]
        for step in calls:
            try:
                events += perform(parser, step)
            except FtpViolation as exc:
                events += [*exc.events, ("violation", exc.reason)]
    return events


def reached(state: _State, split: str) -> tuple[TracingParser, list[object]]:
    """A fresh parser driven into `state` by its REACH conversation (trace cleared), and the
    events that took it there."""
    parser = TracingParser()
    events = drive(parser, REACH[state], split)
    assert parser._state is state, (state, parser._state, split)
    parser.trace.clear()
    return parser, events


def test_the_table_is_the_spec() -> None:
    assert spec_table() == TABLE


def test_the_table_covers_every_state_and_input() -> None:
    assert set(_TRANSITIONS) == set(_State)  # a row, possibly empty, for every state
    assert set(REACH) == set(_State) and set(STIMULUS) == set(_Input)
    # Every input moves some state; every state but the first is the target of some pair.
    assert {i for _s, i in TABLE} == set(_Input)
    assert set(TABLE.values()) | {_State.GREETING} == set(_State)
    # The pairs split three ways, with nothing left over and nothing counted twice.
    assert not (set(TABLE) & IGNORED) and not (set(TABLE) & set(CANNOT_ARISE))
    assert not (IGNORED & set(CANNOT_ARISE))
    assert set(TABLE) | IGNORED | set(CANNOT_ARISE) == set(ALL_PAIRS)
    assert (len(TABLE), len(CANNOT_ARISE), len(IGNORED)) == (35, 16, 45)


@pytest.mark.parametrize("state", list(_State), ids=lambda s: s.name)
def test_every_state_is_reached_whole_and_byte_by_byte(state: _State) -> None:
    whole, bytewise = TracingParser(), TracingParser()
    events = drive(whole, REACH[state], "whole")
    assert drive(bytewise, REACH[state], "bytes") == events
    assert whole._state is bytewise._state is state
    assert whole.trace == bytewise.trace
    for before, cause, after in whole.trace:
        assert TABLE[before, cause] is after
    assert behaviour(whole, REACH[state], events) == behaviour_of(state, REACH[state])


@pytest.mark.parametrize(
    ("state", "cause"), ALL_PAIRS, ids=[f"{s.name}-{i.name}" for s, i in ALL_PAIRS]
)
def test_every_state_input_pair_agrees_with_the_table(state: _State, cause: _Input) -> None:
    runs = []
    for split in ("whole", "bytes"):
        parser, before = reached(state, split)
        events = drive(parser, STIMULUS[cause], split)
        runs.append((parser, before + events, events, parser.trace, parser._state))
    assert runs[0][1:] == runs[1][1:]  # whole and byte by byte: same events and transitions
    parser, history, events, trace, end = runs[0]
    # Wherever it ends, the parser behaves as that state.
    performed = [*REACH[state], *STIMULUS[cause]]
    assert behaviour(parser, performed, history) == behaviour_of(end, performed)
    if (state, cause) in TABLE:
        target = TABLE[state, cause]
        # The input fires in this state (after self-loops only, e.g. LAST_EOF's CLIENT_EOF)
        # and the parser ends in the table's state.
        assert trace[-1] == (state, cause, target)
        assert all(before == after == state for before, _i, after in trace[:-1])
        assert end is target
    elif (state, cause) in IGNORED:
        assert (events, trace, end) == ([], [], state)
    else:
        assert trace == CANNOT_ARISE[state, cause]
        assert all(step[:2] != (state, cause) for step in trace)


def test_the_machine_drives_the_events() -> None:
    """The outputs tied to transitions: the session once, on entering TLS or CLOSED, with
    auth_tls exactly when the state is TLS; Opaque only on entering TLS."""
    for state in _State:
        for cause in _Input:
            parser, _ = reached(state, "whole")
            events = drive(parser, STIMULUS[cause], "whole")
            entered = {after for _b, _i, after in parser.trace}
            sessions = of(events, FtpSession)
            if entered & {_State.TLS, _State.CLOSED}:
                assert len(sessions) == 1, (state, cause)
                assert sessions[0].auth_tls is (_State.TLS in entered)
            else:
                assert sessions == [], (state, cause)
            assert bool(of(events, Opaque)) is (_State.TLS in entered), (state, cause)


def test_a_pair_missing_from_the_table_is_a_bug_not_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not issubclass(FtpStateError, ProtocolViolation)
    parser, _ = reached(_State.TLS, "whole")
    with pytest.raises(FtpStateError, match="AUTH_SENT in state TLS"):
        parser._advance(_Input.AUTH_SENT)
    # A row taken out of the table: the real bytes that need it raise the bug, not a violation.
    monkeypatch.delitem(_TRANSITIONS[_State.COMMANDS], _Input.AUTH_SENT)
    parser, _ = reached(_State.COMMANDS, "whole")
    with pytest.raises(FtpStateError):
        parser.feed(C, b"AUTH TLS\r\n", TS)


# What the transitions do besides changing the state, where no sample conversation shows it.


def test_a_gap_over_the_auth_reply_releases_the_held_commands_at_once() -> None:
    """AUTH_WAIT --GAP--> COMMANDS: the lost reply was no 234 (no TLS record follows), so the
    held bytes are commands, parsed right away."""
    parser, _ = reached(_State.AUTH_WAIT, "whole")
    assert parser.feed(C, b"USER late\r\n", TS) == []  # held
    assert kinds(parser.gap(S, 40, TS)) == ["ftp_gap"]
    events = parser.eof(C, TS) + parser.eof(S, TS)
    assert kinds(events) == []  # no held line left behind to be cut at eof
    assert (session(events).user, session(events).commands) == ("late", 2)


def test_the_servers_eof_ends_an_auth_wait() -> None:
    """AUTH_WAIT --SERVER_EOF--> COMMANDS: no reply can come any more, so the AUTH is forgotten
    and the client's bytes are parsed again (the held ones with the next bytes that come)."""
    parser, _ = reached(_State.AUTH_WAIT, "whole")
    assert parser.feed(C, b"USER first\r\n", TS) == []  # held
    assert parser.eof(S, TS) == []
    assert parser.feed(C, b"USER second\r\n", TS) == []
    events = parser.eof(C, TS)
    assert (session(events).user, session(events).commands) == ("second", 3)


def test_held_bytes_are_no_cut_line_at_the_clients_eof() -> None:
    """AUTH_WAIT --CLIENT_EOF--> AUTH_WAIT: held bytes were never read as lines (a TLS record,
    here), so the eof reports no ftp_truncated_line; the AUTH still gets its reply."""
    parser, _ = reached(_State.AUTH_WAIT, "whole")
    assert parser.feed(C, CLIENT_HELLO, TS) == []
    assert parser.eof(C, TS) == []
    assert [type(e) for e in parser.feed(S, b"234 AUTH TLS successful\r\n", TS)] == [
        FtpSession,
        Opaque,
    ]


def test_opaque_reports_its_transfers_and_session_at_the_last_eof() -> None:
    """OPAQUE --SERVER_EOF--> OPAQUE --LAST_EOF--> CLOSED: nothing was read, so the server's eof
    reports nothing; the last eof reports the unanswered transfer and the session."""
    parser = TracingParser()
    events = drive(parser, [fed(S, GREETED), fed(C, b"PASV\r\nRETR f.csv\r\nAUTH TLS\r\n"),
                            fed(C, CLIENT_HELLO + bytes(256))], "whole")  # fmt: skip
    assert kinds(events) == ["ftp_unanswered_auth"] and parser._state is _State.OPAQUE
    assert parser.eof(S, TS) == []
    events = parser.eof(C, TS)
    assert summary(events) == [("RETR", "f.csv", "download", None, None, None)]
    assert type(events[-1]) is FtpSession and events[-1].auth_tls is False


_MACHINE_WORDS = [
    (C, b"AUTH TLS\r\n"), (C, b"USER u\r\n"), (C, b"PASV\r\nRETR f\r\n"), (C, CLIENT_HELLO),
    (C, bytes(120)), (C, b"\x00bad\r\n"), (S, b"220 ready\r\n"), (S, b"120 wait\r\n"),
    (S, b"421 bye\r\n"), (S, b"234 go\r\n"), (S, b"334 adat\r\n"), (S, b"504 no\r\n"),
    (S, b"150 ok\r\n"), (S, b"227 (1,2,3,4,5,6)\r\n226 ok\r\n"), (S, b"hello\r\n"),
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.sampled_from(_MACHINE_WORDS).map(lambda w: fed(*w)),
            st.sampled_from([C, S]).map(lambda d: gapped(d, 9)),
            st.sampled_from([C, S]).map(ended),
        ),
        max_size=25,
    )
)
def test_any_conversation_stays_inside_the_table(steps: list[Step]) -> None:
    """Gaps, eofs and FTP lines in any order: no pair outside the table ever arises (it would
    raise FtpStateError), and the trace is one connected walk through the table."""
    parser = TracingParser()
    drive(parser, steps, "whole")
    state = _State.GREETING
    for before, cause, after in parser.trace:
        assert before is state and TABLE[before, cause] is after
        state = after
    assert parser._state is state


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "data", "verdict"),
    [
        (C, b"USER anonymous\r\n", True),
        (C, b"user x\r\n", True),
        (C, b"AUTH TLS\r\n", True),
        (C, b"FEAT\r\n", True),
        (C, b"SYST\n", True),
        (C, b"OPTS UTF8 ON\r\n", True),
        (C, b"", None),
        (C, b"US", None),
        (C, b"FEAT", None),
        (C, b"OPTIONS * HTTP/1.1\r\n", False),
        (C, b"EHLO mail\r\n", False),
        (C, b"GET / HTTP/1.1\r\n", False),
        (C, b"\x16\x03\x01", False),
        (S, b"220 ProFTPD 1.3.8 Server (Debian)\r\n", True),
        (S, b"220 pyftpdlib 2.2.0 ready.\r\n", True),
        (S, b"220-FileZilla Server\r\n220-written by\r\n220 Please visit ftp.example", True),
        (S, b"220 mail.example.org ESMTP Postfix\r\n", False),
        (S, b"220 smtp ftp-gateway\r\n", False),
        (S, b"220 Welcome\r\n", None),
        (S, b"22", None),
        (S, b"", None),
        (S, b"230 ok\r\n", False),
        (S, b"2200 FTP", False),
        (S, b"SSH-2.0-OpenSSH\r\n", False),
    ],
)
def test_detect(direction: Direction, data: bytes, verdict: bool | None) -> None:
    assert detect(direction, data) is verdict


# --- a real conversation: pyftpdlib server, ftplib client, a recording relay -------------------


def _import_pyftpdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyftpdlib imports pyOpenSSL when present; a system pyOpenSSL that does not match the
    venv's cryptography raises AttributeError at import. Plain FTP needs no TLS: hide it."""
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        pass
    except Exception:
        monkeypatch.setitem(sys.modules, "OpenSSL", None)
        for name in [m for m in sys.modules if m.startswith("pyftpdlib")]:
            monkeypatch.delitem(sys.modules, name)


class _RecordingFTP(ftplib.FTP):
    """ftplib client that remembers the port of every data connection it opened."""

    data_ports: list[int]

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, Any]:
        conn, size = super().ntransfercmd(cmd, rest)
        self.data_ports.append(conn.getpeername()[1])
        return conn, size


@pytest.fixture
def ftp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    _import_pyftpdlib(monkeypatch)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    root = tmp_path / "ftproot"
    root.mkdir()
    (root / "outgoing").mkdir()
    (root / "outgoing" / "results.csv").write_bytes(b"id,result\n1,negative\n" * 200)
    authorizer = DummyAuthorizer()
    authorizer.add_user("nurse", PASSWORD, str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "lab ftp"})
    server = FTPServer(("127.0.0.1", 0), handler)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1], root
    finally:
        stop.set()
        thread.join(timeout=10)


def test_real_pyftpdlib_conversation(ftp_server: tuple[int, Path]) -> None:
    port, root = ftp_server
    relay = LoopbackRelay(port)
    upload = b"patient_id,name\n" + b"P000001,Anna Testhuis\n" * 3000
    ftp = _RecordingFTP()
    ftp.data_ports = []
    ftp.connect("127.0.0.1", relay.port, timeout=10)
    ftp.login("nurse", PASSWORD)
    ftp.set_pasv(True)
    ftp.storbinary("STOR patients-export.csv", io.BytesIO(upload))
    got = bytearray()
    ftp.retrbinary("RETR outgoing/results.csv", got.extend)
    ftp.quit()
    relay.close()
    assert (root / "patients-export.csv").read_bytes() == upload
    assert bytes(got) == (root / "outgoing" / "results.csv").read_bytes()

    # Sanity of the recording: commands and replies really crossed the relay.
    assert any(d is C and b"STOR patients-export.csv" in b for d, b in relay.segments)
    whole = assert_same_events(run, relay.segments, seeds=[7])
    assert endpoints(whole) == [
        ("STOR", "patients-export.csv", "upload", "127.0.0.1", ftp.data_ports[0], "passive"),
        ("RETR", "outgoing/results.csv", "download", "127.0.0.1", ftp.data_ports[1], "passive"),
    ]
    assert summary(whole) == [
        ("STOR", "patients-export.csv", "upload", "passive", 226, True),
        ("RETR", "outgoing/results.csv", "download", "passive", 226, True),
    ]
    assert all(d.transfer_type == "I" for d in of(whole, FtpDataExpected))
    sess = session(whole)
    assert (sess.user, sess.login_success, sess.auth_tls, sess.server_banner) == (
        "nurse",
        True,
        False,
        "lab ftp",
    )
    assert kinds(whole) == []
    assert PASSWORD not in repr(whole)


# --- the committed REAL captures: their control channel through the parser ----------------------

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
FTP_CASES = sorted(p.parent.name for p in PCAPS.glob("ftp-*/input.pcap"))


def _control_segments(pcap: Path) -> tuple[list[Segment], list[tuple[str, int]]]:
    """Payload of the port-21 connection in capture order (directions interleaved as on the
    wire, retransmitted copies dropped), and the (address, port) every other SYN went to."""
    import dpkt

    segments: list[Segment] = []
    seen: set[tuple[Direction, int]] = set()
    data_dests: list[tuple[str, int]] = []
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            if 21 not in (tcp.sport, tcp.dport):
                if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                    data_dests.append((socket.inet_ntop(socket.AF_INET, ip.dst), tcp.dport))
                continue
            direction = C if tcp.dport == 21 else S
            if tcp.data and (direction, tcp.seq) not in seen:
                seen.add((direction, tcp.seq))
                segments.append((direction, bytes(tcp.data)))
    return segments, data_dests


@pytest.mark.parametrize("case", FTP_CASES)
def test_real_capture_control_channel(case: str) -> None:
    import json

    expected = json.loads((PCAPS / case / "expected.json").read_text())
    segments, data_dests = _control_segments(PCAPS / case / "input.pcap")
    events = run(segments)
    assert events == run(segments, "bytes")
    rows = [
        {
            "command": t.command,
            "filename": t.filename,
            "direction": t.direction,
            "mode": t.mode,
            "ok": t.ok,
        }
        for t in of(events, FtpTransfer)
    ]
    assert rows == expected["ftp"]
    sess = session(events)
    assert [
        {"user": sess.user, "auth_tls": sess.auth_tls, "login_success": sess.login_success}
    ] == expected["ftp_sessions"]
    for secret in expected["secrets_absent"]:
        assert secret not in repr(events)
    # Every announced endpoint is where a data connection really went (host "" = control
    # server for EPSV; the capture's server is 198.51.100.20, the client 10.10.0.10).
    announced = [(d.host, d.port) for d in of(events, FtpDataExpected)]
    assert announced == (data_dests if expected["ftp"] else [])  # FTPS: nothing announced
    assert kinds(events) == []
