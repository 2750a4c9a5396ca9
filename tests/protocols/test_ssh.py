"""SshParser: handshake dissection (HASSH, negotiation), the encrypted-phase model on real
OpenSSH captures, SSH-1 and "1.99", lines before the banner, one-sided captures, caps and
anomalies, and robustness against arbitrary bytes. No root needed: the real traffic is the
committed captures under pcaps/ssh-*/ (made by pcaps/_lib/sshlab.py), the crafted ones come from
pcaps/ssh-v1/, ssh-banner-lines/ and ssh-one-sided/ (scapy, deterministic)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterable
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
    MAX_PRE_BANNER_LINES,
    SshParser,
    SshSession,
    _geometry,
    _negotiate,
    detect,
)
from tests.protocols.feeding import (
    assert_same_events,
    draw_splits,
    feed,
    feed_split,
    fuzz_feed,
    runner,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p.parent for p in (ROOT / "pcaps").glob("ssh-*/expected.json"))
CRAFTED = ("ssh-banner-lines", "ssh-one-sided", "ssh-v1")  # several connections, made by scapy
REAL = [case for case in CASES if case.name not in CRAFTED]  # one OpenSSH/paramiko session each
C, S = Direction.TO_SERVER, Direction.TO_CLIENT
run_sample = runner(SshParser, max_cuts=6)
HANDSHAKE_KEYS = ("client_banner", "server_banner", "client_hassh", "client_hassh_string",
                  "server_hassh", "server_hassh_string", "kex_alg", "host_key_alg",
                  "cipher_alg", "mac_alg", "compression_alg")  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------

Conversation = list[tuple[Direction, bytes, float]]


def connections(pcap: Path) -> list[Conversation]:
    """Each TCP connection's payloads (lossless captures, in order) as (direction, data, ts),
    connections in the order they start. The client is the SYN's sender or the SYN-ACK's
    receiver, else the side whose port is not 22 (a capture of one direction may lack both)."""
    found: dict[frozenset[tuple[bytes, int]], tuple[tuple[bytes, int], Conversation]] = {}
    with pcap.open("rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            src, dst = (ip.src, tcp.sport), (ip.dst, tcp.dport)
            key = frozenset((src, dst))
            if key not in found:
                syn_ack = tcp.flags & dpkt.tcp.TH_SYN and tcp.flags & dpkt.tcp.TH_ACK
                client = dst if syn_ack or tcp.sport == 22 else src
                found[key] = (client, [])
            client, conv = found[key]
            if tcp.data:
                conv.append((C if src == client else S, bytes(tcp.data), ts))
    return [conv for _client, conv in found.values()]


def feed_connection(conv: Conversation, split: str = "whole", seed: int = 0) -> list[object]:
    """The connection's segments into a fresh parser (whole segments at their capture times,
    or cut by `split` as tests.protocols.feeding does), both eofs; a violation's events and
    anomaly are returned like the app layer reports them."""
    parser = SshParser()
    events: list[object] = []
    rng = random.Random(seed)
    ts = conv[-1][2] if conv else 0.0
    try:
        for direction, data, ts in conv:
            if split == "whole":
                cuts = [0]
            elif split == "bytes":
                cuts = list(range(len(data)))
            else:
                cuts = [0, *sorted(rng.sample(range(1, len(data)), min(6, len(data) - 1)))]
            for a, b in zip(cuts, [*cuts[1:], len(data)], strict=True):
                events += parser.feed(direction, data[a:b], ts)
        events += parser.eof(C, ts) + parser.eof(S, ts)
    except ProtocolViolation as exc:
        events += [*exc.events, Anomaly(exc.reason, exc.detail, ts)]
    return events


def session_fields(session: SshSession, keys: Iterable[str]) -> dict[str, object]:
    """The named fields, tuples as the JSON lists of expected.json."""
    out = {}
    for key in keys:
        value = getattr(session, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


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


@pytest.mark.parametrize("case", REAL, ids=lambda p: p.name)
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


# Fields that do not depend on how the bytes are cut into feed() calls (the encrypted-phase
# model reads record sizes, so its verdicts do).
SPLIT_INVARIANT = ("version", *HANDSHAKE_KEYS, "client_software", "server_software",
                   "encrypted_bytes")  # fmt: skip


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_capture_matches_expectation(case: str) -> None:
    """Each connection of a crafted capture, fed as captured, gives its expected session; fed
    byte by byte and in random pieces, the same handshake facts, byte counts and anomalies."""
    expected = json.loads((ROOT / "pcaps" / case / "expected.json").read_text())
    convs = connections(ROOT / "pcaps" / case / "input.pcap")
    assert len(convs) == len(expected["ssh"]) == expected["flows"]
    truths = expected.get("ssh_truth", [{}] * len(convs))
    seen: set[str] = set()
    for conv, want, truth in zip(convs, expected["ssh"], truths, strict=True):
        events = feed_connection(conv)
        session = only_session(events)
        assert session_fields(session, want) == want
        if "app_bytes" in truth:
            est = max(session.upload_bytes_est, session.download_bytes_est)
            assert abs(est - truth["app_bytes"]) <= 0.05 * truth["app_bytes"]
        seen.update(anomaly_kinds(events))
        reference = (session_fields(session, SPLIT_INVARIANT), anomaly_kinds(events))
        for split, seed in [("bytes", 0), *(("random", seed) for seed in range(3))]:
            other = feed_connection(conv, split, seed)
            have = (session_fields(only_session(other), SPLIT_INVARIANT), anomaly_kinds(other))
            assert have == reference, (split, seed)
    assert set(expected["anomalies_include"]) == seen


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
        ([(C, b"SSH-2.0\r\n")], "ssh_bad_banner"),
        ([(S, b"x\r\n" * (MAX_PRE_BANNER_LINES + 1))], "ssh_too_many_pre_banner_lines"),
        ([(C, b"SSH-3.0-future\r\n")], "ssh_version_unsupported"),
        ([(C, b"SSH-2.x-odd\r\n")], "ssh_version_unsupported"),
        ([(C, b"SSH-2.0-\r\n")], "ssh_bad_banner"),
        ([(C, b"SSH-1.5-c\n" + struct.pack(">I", 2))], "ssh_bad_packet"),
        ([(C, b"SSH-1.5-c\n" + struct.pack(">I", 300_000))], "ssh_packet_too_long"),
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


# --- versions, pre-banner lines, one-sided captures (hand-made, split-invariant) ----------------


def v1_packet(kind: int, data: bytes) -> bytes:
    """An SSH-1 packet in clear: length (type + data + CRC), 8 - length % 8 padding bytes, type,
    data, CRC-32 (zero here: Sluice does not check it)."""
    length = 1 + len(data) + 4
    return struct.pack(">I", length) + b"\0" * (8 - length % 8) + bytes([kind]) + data + b"\0" * 4


V1_PUBLIC_KEY = v1_packet(2, b"\x01" * 8 + b"\x00" * 300)  # SSH_SMSG_PUBLIC_KEY
V1_SESSION_KEY = v1_packet(3, b"\x03" + b"\x02" * 8 + b"\x00" * 140)  # SSH_CMSG_SESSION_KEY
V1_CLIENT_ENC, V1_SERVER_ENC = b"\xc1" * 300, b"\x5e" * 12
NEWKEYS = packet(b"\x15")
V1_SESSION = [(S, V1_PUBLIC_KEY), (C, V1_SESSION_KEY), (S, V1_SERVER_ENC), (C, V1_CLIENT_ENC)]
SAMPLES: dict[str, list[tuple[Direction, bytes]]] = {
    "v1": [(S, b"SSH-1.5-OldSSHd_1.2.33\n"), (C, b"SSH-1.5-OldSSH_1.2.33\n"), *V1_SESSION],
    "v199-client-v1": [(S, b"SSH-1.99-OpenSSH_3.9p1\n"), (C, b"SSH-1.5-OpenSSH_3.9p1\n"),
                       *V1_SESSION],
    "v199-client-v2": [(S, b"SSH-1.99-OpenSSH_3.9p1\n"), (C, CLIENT_HELLO),
                       (S, SERVER_HELLO[SERVER_HELLO.index(b"\n") + 1 :]),
                       (C, NEWKEYS), (S, NEWKEYS), (S, b"\xee" * 64)],
    "server-lines": [(C, CLIENT_HELLO),
                     (S, b"Authorised use only.\r\n\r\n" + b"=" * 300 + b"\r\nbare LF line\n"),
                     (S, SERVER_HELLO), (C, NEWKEYS), (S, NEWKEYS)],
    "client-line": [(C, b"#!preamble\r\n" + CLIENT_HELLO), (S, SERVER_HELLO), (C, NEWKEYS),
                    (S, NEWKEYS)],
    "only-client": [(C, CLIENT_HELLO), (C, NEWKEYS), (C, b"\xee" * 44)],
    "only-server": [(S, SERVER_HELLO), (S, NEWKEYS), (S, b"\xee" * 28)],
    "only-server-v199-v1": [(S, b"SSH-1.99-OpenSSH_3.9p1\n" + V1_PUBLIC_KEY), (S, V1_SERVER_ENC)],
    "mismatch": [(S, SERVER_HELLO), (C, b"SSH-1.5-OldSSH_1.2.33\n" + V1_SESSION_KEY)],
}  # fmt: skip


def violation_of(chunks: list[tuple[Direction, bytes]], split: str = "whole") -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        feed(SshParser(), chunks, split, max_cuts=6)
    return info.value


def anomaly_kinds(events: list[object]) -> list[str]:
    return [e.kind for e in events if isinstance(e, Anomaly)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_same_events_whole_bytewise_random_splits(name: str) -> None:
    events = assert_same_events(run_sample, SAMPLES[name], seeds=range(6))
    only_session(events)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_hypothesis_splits_agree(name: str, data: st.DataObject) -> None:
    segments = SAMPLES[name]
    assert feed_split(SshParser(), segments, draw_splits(data, segments)) == run_sample(segments)


def test_ssh1_session_is_reported_with_both_banners_and_its_version() -> None:
    events = run_sample(SAMPLES["v1"])
    session = only_session(events)
    assert session.version == "1.5"
    assert session.client_banner == "SSH-1.5-OldSSH_1.2.33"
    assert session.server_banner == "SSH-1.5-OldSSHd_1.2.33"
    assert session.client_software == "OldSSH_1.2.33"
    assert session.server_software == "OldSSHd_1.2.33"
    # SSH-1 has no KEXINIT (RFC 4253 does not apply): no HASSH, no negotiated algorithms
    assert session.client_hassh is None and session.server_hassh is None
    assert session.kex_alg is None and session.cipher_alg is None and session.mac_alg is None
    # everything after each side's key packet (PUBLIC_KEY, SESSION_KEY) is ciphertext
    assert session.encrypted_bytes == (len(V1_CLIENT_ENC), len(V1_SERVER_ENC))
    assert session.transfer == "unknown" and session.auth_success is None
    assert anomaly_kinds(events) == []


def test_server_199_takes_the_clients_version() -> None:
    old = only_session(run_sample(SAMPLES["v199-client-v1"]))
    assert old.version == "1.5" and old.server_banner == "SSH-1.99-OpenSSH_3.9p1"
    assert old.client_banner == "SSH-1.5-OpenSSH_3.9p1" and old.kex_alg is None
    assert old.encrypted_bytes == (len(V1_CLIENT_ENC), len(V1_SERVER_ENC))
    new = only_session(run_sample(SAMPLES["v199-client-v2"]))
    assert new.version == "2.0" and new.kex_alg == "curve25519-sha256"
    assert new.client_hassh is not None and new.server_hassh is not None
    assert new.encrypted_bytes == (0, 64)


def test_server_199_alone_is_read_by_what_follows_its_banner() -> None:
    events = run_sample(SAMPLES["only-server-v199-v1"])
    session = only_session(events)
    assert session.version == "1.99"  # offered both; the client's choice was not captured
    assert session.server_banner == "SSH-1.99-OpenSSH_3.9p1" and session.client_banner is None
    assert session.encrypted_bytes == (0, len(V1_SERVER_ENC))
    assert anomaly_kinds(events) == ["ssh_one_sided"]


def test_incompatible_versions_are_noted() -> None:
    events = run_sample(SAMPLES["mismatch"])
    assert "ssh_version_mismatch" in anomaly_kinds(events)
    assert only_session(events).version == "1.5"


def test_server_lines_before_the_banner_are_accepted_up_to_the_cap() -> None:
    events = run_sample(SAMPLES["server-lines"])
    session = only_session(events)
    assert session.server_banner == "SSH-2.0-TestServer_2.0" and session.kex_alg is not None
    assert anomaly_kinds(events) == []  # a 300-byte pre-banner line is not an identification
    at_cap = [(C, CLIENT_HELLO), (S, b"line\r\n" * MAX_PRE_BANNER_LINES + SERVER_HELLO)]
    assert only_session(run_sample(at_cap)).server_hassh is not None


@pytest.mark.parametrize("split", ["whole", "bytes"])
@pytest.mark.parametrize("direction", [C, S])
def test_too_many_pre_banner_lines_detach(direction: Direction, split: str) -> None:
    exc = violation_of([(direction, b"line\r\n" * (MAX_PRE_BANNER_LINES + 1) + b"SSH-2.0-x\r\n")],
                       split)  # fmt: skip
    assert exc.reason == "ssh_too_many_pre_banner_lines"
    assert isinstance(exc.events[-1], SshSession)


def test_client_line_before_its_banner_is_an_anomaly_not_the_end() -> None:
    events = run_sample(SAMPLES["client-line"])
    assert anomaly_kinds(events) == ["ssh_client_pre_banner"]
    session = only_session(events)
    assert session.client_banner == "SSH-2.0-TestClient_1.0 comment"
    assert session.kex_alg == "curve25519-sha256"


def test_only_the_client_direction_seen() -> None:
    events = run_sample(SAMPLES["only-client"])
    assert anomaly_kinds(events) == ["ssh_one_sided"]
    session = only_session(events)
    assert session.client_banner == "SSH-2.0-TestClient_1.0 comment"
    assert session.client_hassh is not None and session.version == "2.0"
    assert session.server_banner is None and session.server_hassh is None
    assert session.kex_alg is None  # negotiation needs both KEXINITs
    assert session.encrypted_bytes == (44, 0)
    assert session.auth_success is None and session.transfer_kind is None


def test_only_the_server_direction_seen() -> None:
    events = run_sample(SAMPLES["only-server"])
    assert anomaly_kinds(events) == ["ssh_one_sided"]
    session = only_session(events)
    assert session.server_banner == "SSH-2.0-TestServer_2.0" and session.server_hassh is not None
    assert session.client_banner is None and session.client_hassh is None
    assert session.version == "2.0" and session.encrypted_bytes == (0, 28)


def test_violation_events_leave_the_anomaly_to_the_layer() -> None:
    # The app layer (layer.py) reports the violation's anomaly itself: once, not twice.
    exc = violation_of([(C, b"SSH-3.0-future\r\n")])
    assert exc.reason == "ssh_version_unsupported"
    assert "ssh_version_unsupported" not in anomaly_kinds(list(exc.events))
    parser = SshParser()
    parser.feed(C, b"SSH-2.0-c\r\n", 1.0)
    with pytest.raises(ProtocolViolation) as info:
        parser.gap(C, 10, 2.0)
    assert anomaly_kinds(list(info.value.events)) == []


def test_any_minor_of_major_2_is_ssh2_as_openssh_reads_it() -> None:
    # OpenSSH checks only the major version (1.99 counts as 2): "SSH-2.1" must not detach Sluice
    client = b"SSH-2.1-odd\r\n" + CLIENT_HELLO[CLIENT_HELLO.index(b"\n") + 1 :]
    session = only_session(run_sample([(C, client), (S, SERVER_HELLO)]))
    assert session.version == "2.1" and session.kex_alg == "curve25519-sha256"


def test_client_speaking_another_protocol_to_an_ssh_server() -> None:
    events = run_sample([(S, SERVER_HELLO), (C, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")])
    kinds = anomaly_kinds(events)
    assert kinds == ["ssh_client_pre_banner", *["ssh_truncated_handshake"] * 2]  # no NEWKEYS
    session = only_session(events)
    assert session.client_banner is None and session.server_hassh is not None


@pytest.mark.parametrize("client", ["v1", "v2"])
def test_server_199_bytes_before_the_client_banner_read_the_same(client: str) -> None:
    """UNDECIDED: when the server's packets come first (reordered delivery, or a capture that
    lacks the client), what follows its banner decides; the client's banner agrees."""
    wire = SAMPLES[f"v199-client-{client}"]
    server_first = [wire[0], *[seg for seg in wire[2:] if seg[0] is S], wire[1],
                    *[seg for seg in wire[2:] if seg[0] is C]]  # fmt: skip
    assert assert_same_events(run_sample, server_first) == run_sample(wire)


def test_sniffed_server_version_that_the_client_contradicts_is_a_mismatch() -> None:
    hello = SERVER_HELLO[SERVER_HELLO.index(b"\n") + 1 :]  # its KEXINIT packet
    events = run_sample([(S, b"SSH-1.99-s\n" + hello), (C, b"SSH-1.5-c\n" + V1_SESSION_KEY)])
    assert "ssh_version_mismatch" in anomaly_kinds(events)
    session = only_session(events)
    assert session.version == "1.5" and session.server_hassh is not None


def test_ssh1_ends_before_its_key_packet() -> None:
    events = run_sample([(S, b"SSH-1.5-s\n" + V1_PUBLIC_KEY[:40]), (C, b"SSH-1.5-c\n")])
    assert anomaly_kinds(events) == ["ssh_truncated_handshake", "ssh_truncated_handshake"]
    assert only_session(events).version == "1.5"


def test_pre_banner_lines_are_skipped_not_kept() -> None:
    parser = SshParser()
    parser.feed(C, CLIENT_HELLO, 0.0)
    for _ in range(MAX_PRE_BANNER_LINES):
        parser.feed(S, b"x" * 1000 + b"\r\n", 0.0)
    server = parser._sides[S]
    assert server.buf is not None and len(server.buf) == 0  # only ever one partial line
    parser.feed(S, SERVER_HELLO, 0.0)
    assert server.banner == "SSH-2.0-TestServer_2.0"


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from([C, S]), st.binary(max_size=120), st.integers(0, 6)),
        max_size=14,
    )
)
def test_arbitrary_bytes_after_any_banner_raise_only_violation(
    chunks: list[tuple[Direction, bytes, int]],
) -> None:
    prefixes = [b"", b"SSH-1.99-x\n", b"SSH-1.5-x\n", b"SSH-2.0-x\r\n", b"line\r\n",
                b"SSH-1.5-x\n" + V1_PUBLIC_KEY[:30]]  # fmt: skip
    fuzz_feed(SshParser(), chunks, prefixes, gap_action=6)
