"""SshParser: handshake dissection (HASSH, negotiation), the encrypted-phase model on real
OpenSSH captures, caps and anomalies, and robustness against arbitrary bytes. No root needed:
the real traffic is the committed captures under pcaps/ssh-*/ (made by pcaps/_lib/sshlab.py)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaps._lib.sshlab import replay_ssh
from sensor.anomaly import KINDS, Anomaly
from sensor.protocols.base import Direction, ProtocolViolation
from sensor.protocols.ssh import (
    MAX_BANNER_LINE,
    SshParser,
    SshSession,
    _geometry,
    _negotiate,
    detect,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p.parent for p in (ROOT / "pcaps").glob("ssh-*/expected.json"))
C, S = Direction.TO_SERVER, Direction.TO_CLIENT
HANDSHAKE_KEYS = ("client_banner", "server_banner", "client_hassh", "client_hassh_string",
                  "server_hassh", "server_hassh_string", "kex_alg", "host_key_alg",
                  "cipher_alg", "mac_alg", "compression_alg")  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------


def segments(pcap: Path) -> list[tuple[Direction, bytes, float]]:
    """TCP payloads of a lossless single-connection capture, in order, as (direction, data, ts)."""
    out = []
    client = None
    with pcap.open("rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            if client is None:
                client = (ip.src, tcp.sport)
            if tcp.data:
                out.append((C if (ip.src, tcp.sport) == client else S, bytes(tcp.data), ts))
    return out


def handshake(pcap: Path) -> dict[Direction, bytes]:
    """Each direction's cleartext: the bytes up to and including its NEWKEYS packet."""
    streams = {C: b"", S: b""}
    for d, data, _ in segments(pcap):
        streams[d] += data
    out = {}
    for d, data in streams.items():
        pos = data.index(b"\n", data.index(b"SSH-")) + 1
        while True:
            length, _pad = struct.unpack_from(">IB", data, pos)
            msg = data[pos + 5]
            pos += 4 + length
            if msg == 21:
                break
        out[d] = data[:pos]
    return out


def run(chunks: list[tuple[Direction, bytes]], eof: bool = True) -> list[object]:
    parser = SshParser()
    events: list[object] = []
    for i, (d, data) in enumerate(chunks):
        events += parser.feed(d, data, float(i))
    if eof:
        events += parser.eof(C, 99.0)
        events += parser.eof(S, 99.0)
    return events


def only_session(events: list[object]) -> SshSession:
    sessions = [e for e in events if isinstance(e, SshSession)]
    assert len(sessions) == 1
    return sessions[0]


def packet(payload: bytes, block: int = 8) -> bytes:
    pad = 4 + (-(4 + 1 + len(payload) + 4) % block)
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + b"\0" * pad


def name_list(text: str) -> bytes:
    return struct.pack(">I", len(text)) + text.encode()


def kexinit(kex: str, hostkey: str, enc: str, mac: str, comp: str = "none") -> bytes:
    lists = [kex, hostkey, enc, enc, mac, mac, comp, comp, "", ""]
    body = b"\x14" + b"\x11" * 16 + b"".join(name_list(x) for x in lists) + b"\0" + b"\0" * 4
    return packet(body)


CLIENT_HELLO = b"SSH-2.0-TestClient_1.0 comment\r\n" + kexinit(
    "curve25519-sha256,kex-b", "ssh-ed25519", "aes128-ctr,chacha20-poly1305@openssh.com",
    "hmac-sha2-256,hmac-sha1",
)  # fmt: skip
SERVER_HELLO = b"SSH-2.0-TestServer_2.0\r\n" + kexinit(
    "kex-b,curve25519-sha256", "rsa-sha2-512,ssh-ed25519",
    "chacha20-poly1305@openssh.com,aes128-ctr", "hmac-sha1,hmac-sha2-256",
)  # fmt: skip


# --- real captures ------------------------------------------------------------------------------


def test_there_are_ssh_cases() -> None:
    assert {c.name for c in CASES} >= {"ssh-sftp-upload", "ssh-scp-download", "ssh-interactive",
                                       "ssh-failed-login", "ssh-on-443"}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_committed_capture_matches_expectation(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    events = replay_ssh(case / "input.pcap")
    sessions = [e for e in events if isinstance(e, SshSession)]
    assert len(sessions) == len(expected["ssh"])
    for want, have in zip(expected["ssh"], sessions, strict=True):
        assert {k: getattr(have, k) for k in want} == want
    truth = expected["ssh_truth"]
    [session] = sessions
    if session.transfer in ("upload", "download"):
        est = session.upload_bytes_est if session.transfer == "upload" else (
            session.download_bytes_est)  # fmt: skip
        assert abs(est - truth["app_bytes"]) <= 0.05 * truth["app_bytes"]
        assert session.transfer_start is not None and session.transfer_end is not None
        assert session.transfer_start <= session.transfer_end
    if "mac_alg" in truth:
        assert session.mac_alg == truth["mac_alg"]
    assert session.host_key_alg == truth["host_key_alg"]
    assert not [e for e in events if isinstance(e, Anomaly)]


def test_interactive_counts_keystrokes() -> None:
    case = ROOT / "pcaps/ssh-interactive"
    truth = json.loads((case / "expected.json").read_text())["ssh_truth"]
    [session] = [e for e in replay_ssh(case / "input.pcap") if isinstance(e, SshSession)]
    # every typed key is one record; a few may be closer than KEY_GAP_MIN to the previous one
    assert truth["keystrokes"] * 0.8 <= session.keystrokes <= truth["keystrokes"]
    assert sum(session.key_gaps) == session.keystrokes


def test_server_hassh_is_md5_of_server_to_client_lists() -> None:
    hs = handshake(ROOT / "pcaps/ssh-sftp-upload/input.pcap")
    session = only_session(run([(C, hs[C]), (S, hs[S])]))
    assert session.server_hassh_string is not None and session.client_hassh_string is not None
    assert session.server_hassh == hashlib.md5(session.server_hassh_string.encode()).hexdigest()
    assert session.client_hassh_string.startswith("sntrup761x25519-sha512,")
    assert session.client_hassh_string.count(";") == 3


@pytest.mark.parametrize("case", ["ssh-sftp-upload", "ssh-failed-login"])
def test_handshake_same_whole_bytewise_random_splits(case: Path) -> None:
    hs = handshake(ROOT / "pcaps" / case / "input.pcap")
    whole = only_session(run([(C, hs[C]), (S, hs[S])]))
    bytewise = only_session(run([(d, hs[d][i : i + 1]) for d in (S, C) for i in range(len(hs[d]))]))
    rng = random.Random(7)
    pieces: dict[Direction, list[bytes]] = {C: [], S: []}
    for d in (C, S):
        pos = 0
        while pos < len(hs[d]):
            n = rng.randint(1, 700)
            pieces[d].append(hs[d][pos : pos + n])
            pos += n
    chunks: list[tuple[Direction, bytes]] = []
    while pieces[C] or pieces[S]:  # random interleaving, each direction in its own order
        d = rng.choice([x for x in (C, S) if pieces[x]])
        chunks.append((d, pieces[d].pop(0)))
    split = only_session(run(chunks))
    for key in HANDSHAKE_KEYS:
        assert getattr(whole, key) == getattr(bytewise, key) == getattr(split, key), key
    assert whole.client_hassh is not None and whole.cipher_alg is not None


def test_trailing_ciphertext_after_newkeys_is_encrypted_phase() -> None:
    hs = handshake(ROOT / "pcaps/ssh-sftp-upload/input.pcap")
    session = only_session(run([(C, hs[C] + b"\xaa" * 44), (S, hs[S])]))
    assert session.encrypted_bytes == (44, 0)
    assert session.auth_success is None  # no server reply after NEWKEYS: nothing to infer


# --- handshake details on hand-made bytes -------------------------------------------------------


def test_negotiation_prefers_client_order() -> None:
    session = only_session(run([(C, CLIENT_HELLO), (S, SERVER_HELLO)]))
    assert session.kex_alg == "curve25519-sha256"
    assert session.host_key_alg == "ssh-ed25519"
    assert session.cipher_alg == "aes128-ctr"
    assert session.mac_alg == "hmac-sha2-256"
    assert session.compression_alg == "none"
    assert session.client_software == "TestClient_1.0"
    assert session.client_banner == "SSH-2.0-TestClient_1.0 comment"
    assert session.server_software == "TestServer_2.0"
    assert (
        session.client_hassh
        == hashlib.md5(
            b"curve25519-sha256,kex-b;aes128-ctr,chacha20-poly1305@openssh.com;"
            b"hmac-sha2-256,hmac-sha1;none"
        ).hexdigest()
    )
    assert session.auth_success is None and session.transfer == "unknown"


def test_aead_cipher_reports_implicit_mac() -> None:
    client = b"SSH-2.0-c\r\n" + kexinit("k", "h", "chacha20-poly1305@openssh.com", "hmac-sha1")
    server = b"SSH-2.0-s\r\n" + kexinit("k", "h", "chacha20-poly1305@openssh.com", "hmac-sha1")
    assert only_session(run([(C, client), (S, server)])).mac_alg == "<implicit>"


def test_no_common_algorithm_is_noted() -> None:
    client = b"SSH-2.0-c\r\n" + kexinit("k", "h", "aes128-ctr", "hmac-sha1")
    server = b"SSH-2.0-s\r\n" + kexinit("k", "h", "aes256-ctr", "hmac-sha1")
    events = run([(C, client), (S, server)])
    assert Anomaly in {type(e) for e in events}
    assert any(isinstance(e, Anomaly) and e.kind == "ssh_no_common_algorithm" for e in events)
    assert _negotiate("a,b", "c,b,a") == "a"
    assert _negotiate("a", "") is None


def test_packet_geometry_matches_observed_minimal_packets() -> None:
    # USERAUTH_SUCCESS as captured: 28 bytes under chacha20-poly1305, 36 under aes-ctr+hmac-sha1
    assert _geometry("chacha20-poly1305@openssh.com", "<implicit>").wire(1) == 28
    assert _geometry("aes128-ctr", "hmac-sha1").wire(1) == 36
    assert _geometry("aes128-gcm@openssh.com", "<implicit>").wire(1) == 36
    # a keystroke (CHANNEL_DATA with one byte) under chacha20-poly1305: 36 bytes on the wire
    assert _geometry("chacha20-poly1305@openssh.com", "<implicit>").wire(10) == 36


def test_server_pre_banner_lines_are_allowed() -> None:
    session = only_session(run([(S, b"Welcome\r\nSSH-2.0-s\r\n"), (C, b"SSH-2.0-c\r\n")]))
    assert session.server_banner == "SSH-2.0-s"


# --- anomalies and violations -------------------------------------------------------------------


def violation(chunks: list[tuple[Direction, bytes]]) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        run(chunks)
    exc = info.value
    assert exc.reason in KINDS and KINDS[exc.reason][0] == "app"
    assert isinstance(exc.events[-1], SshSession)  # the session is reported with the violation
    return exc


def test_oversized_banner_is_a_violation() -> None:
    exc = violation([(C, b"SSH-2.0-" + b"x" * MAX_BANNER_LINE)])
    assert exc.reason == "ssh_banner_too_long"
    exc = violation([(C, b"SSH-2.0-" + b"x" * (MAX_BANNER_LINE + 10) + b"\r\n")])
    assert exc.reason == "ssh_banner_too_long"


def test_long_banner_is_noted() -> None:
    events = run([(C, b"SSH-2.0-" + b"y" * 300 + b"\r\n")])
    assert next(e.kind for e in events if isinstance(e, Anomaly)) == "ssh_banner_long"


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        ([(C, b"GET / HTTP/1.1\r\n")], "ssh_bad_banner"),
        ([(S, b"x\r\n" * 40)], "ssh_bad_banner"),
        ([(C, b"SSH-1.5-old\r\n")], "ssh_version_unsupported"),
        ([(C, b"SSH-2.0-\r\n")], "ssh_bad_banner"),
        ([(C, b"SSH-2.0-c\r\n" + struct.pack(">IB", 2, 1))], "ssh_bad_packet"),
        ([(C, b"SSH-2.0-c\r\n" + struct.pack(">IB", 300_000, 4))], "ssh_packet_too_long"),
        ([(C, b"SSH-2.0-c\r\n" + packet(b"\x14" + b"\0" * 16 + b"\xff\xff\xff\xff"))],
         "ssh_bad_kexinit"),
        ([(C, b"SSH-2.0-c\r\n" + packet(b"\x14" + b"\0" * 16 + name_list("a b") * 10 + b"\0" * 5))],
         "ssh_bad_kexinit"),
    ],
)  # fmt: skip
def test_garbage_is_a_violation(chunks: list[tuple[Direction, bytes]], reason: str) -> None:
    assert violation(chunks).reason == reason


def test_gap_in_handshake_is_a_violation() -> None:
    parser = SshParser()
    parser.feed(C, b"SSH-2.0-c\r\n", 1.0)
    with pytest.raises(ProtocolViolation) as info:
        parser.gap(C, 100, 2.0)
    assert info.value.reason == "ssh_gap_in_handshake"


def test_truncated_handshake() -> None:
    events = run([(C, CLIENT_HELLO[:60]), (S, SERVER_HELLO)])
    kinds = [e.kind for e in events if isinstance(e, Anomaly)]
    assert kinds.count("ssh_truncated_handshake") == 2  # neither side reached NEWKEYS
    session = only_session(events)
    assert session.client_hassh is None and session.server_hassh is not None
    assert session.auth_success is None


def test_session_reported_once_and_nothing_after() -> None:
    parser = SshParser()
    parser.feed(C, CLIENT_HELLO, 1.0)
    parser.eof(C, 2.0)
    assert parser.eof(C, 2.0) == []
    assert isinstance(parser.eof(S, 3.0)[-1], SshSession)
    assert parser.feed(S, b"more", 4.0) == [] and parser.eof(S, 5.0) == []


def test_encrypted_phase_memory_is_bounded() -> None:
    hs = handshake(ROOT / "pcaps/ssh-sftp-upload/input.pcap")
    parser = SshParser()
    parser.feed(C, hs[C], 0.0)
    parser.feed(S, hs[S], 0.0)
    parser.feed(C, b"\0" * 44, 0.05)
    parser.feed(S, b"\0" * 28, 0.1)  # USERAUTH_SUCCESS-sized
    for i in range(20000):
        parser.feed(C if i % 3 else S, b"\0" * (1448 if i % 3 else 36), 1.0 + i * 0.001)
    sides = parser._sides
    assert all(s.buf is None for s in sides)  # ciphertext is counted, never kept
    assert len(parser._key_gaps) == 7
    events = parser.eof(C, 50.0) + parser.eof(S, 50.0)
    assert only_session(events).transfer == "upload"


def test_detect() -> None:
    assert detect(C, b"SSH-2.0-x") is True
    assert detect(S, b"SSH-") is True
    assert detect(C, b"SS") is None
    assert detect(C, b"") is None
    assert detect(S, b"HTTP/1.1 200") is False


# --- robustness ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"SSH-2.0-x\r\n", b"SSH-2.0-x\r\n" + b"\0\0\0\x0c\x04\x14"]),
    chunks=st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12),
    gap=st.booleans(),
)
def test_arbitrary_bytes_raise_only_violation(
    prefix: bytes, chunks: list[tuple[bool, bytes]], gap: bool
) -> None:
    parser = SshParser()
    try:
        parser.feed(C, prefix, 0.0)
        parser.feed(S, prefix, 0.0)
        for i, (to_server, data) in enumerate(chunks):
            parser.feed(C if to_server else S, data, float(i))
        if gap:
            parser.gap(C, 10, 50.0)
        parser.eof(C, 60.0)
        parser.eof(S, 60.0)
    except ProtocolViolation as exc:
        assert exc.reason in KINDS


def test_missed_auth_marker_still_sees_the_transfer() -> None:
    hs = handshake(ROOT / "pcaps/ssh-sftp-upload/input.pcap")
    parser = SshParser()
    parser.feed(C, hs[C], 0.0)
    parser.feed(S, hs[S], 0.0)
    for i in range(3000):
        parser.feed(C if i % 3 else S, b"\0" * (1448 if i % 3 else 60), 1.0 + i * 0.001)
    session = only_session(parser.eof(C, 50.0) + parser.eof(S, 50.0))
    assert session.transfer == "upload" and session.auth_success is True
