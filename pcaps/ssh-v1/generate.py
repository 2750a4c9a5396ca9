"""ssh-v1 (crafted): SSH protocol 1 and the "1.99" compatibility banner (RFC 4253 section 5).

Three connections to port 22, in this order:

1. an SSH-1-only server ("SSH-1.5-", LF only) and an SSH-1 client: both banners, the server's
   SSH_SMSG_PUBLIC_KEY and the client's SSH_CMSG_SESSION_KEY in clear, then an encrypted
   session (password login, a shell, a 20 KB `cat > file` upload and its output);
2. the same session against a server that offers both ("SSH-1.99-"): the client answers
   "SSH-1.5-", so the session speaks SSH-1;
3. that "SSH-1.99-" server with an SSH-2 client: an SSH-2 key exchange (KEXINITs, ECDH,
   NEWKEYS) and a short encrypted session.

Sluice must report each connection: both banners, the version the client chose, no key
exchange for SSH-1 (HASSH and algorithms null) and the encrypted bytes per direction.

The byte builders below (SSH-2 and SSH-1 packets, OpenSSH 9.2's KEXINIT lists, an SSH-2 session
under chacha20-poly1305) are shared by the other crafted SSH cases (ssh-banner-lines,
ssh-one-sided), which load this file as smtp-one-sided loads its source case.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect

CASE = Path(__file__).resolve().parent
SEGMENT = 1448  # TCP payload per segment (an Ethernet MTU with timestamps)

# --- SSH-2 (RFC 4253) --------------------------------------------------------------------------

MSG_SERVICE_REQUEST, MSG_SERVICE_ACCEPT, MSG_KEXINIT, MSG_NEWKEYS = 5, 6, 20, 21
MSG_KEX_ECDH_INIT, MSG_KEX_ECDH_REPLY = 30, 31

# OpenSSH 9.2p1's default lists (client, server), as `ssh -Q`/sshd -T show them and as
# pcaps/ssh-*/ captured them: kex, host key, cipher c->s, s->c, mac c->s, s->c, comp c->s, s->c.
_KEX = ("sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
        "curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
        "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
        "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256")  # fmt: skip
_CIPHERS = ("chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
            "aes128-gcm@openssh.com,aes256-gcm@openssh.com")  # fmt: skip
_MACS = ("umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
         "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,"
         "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1")  # fmt: skip
CLIENT_LISTS = (
    _KEX + ",ext-info-c,kex-strict-c-v00@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,"
    "rsa-sha2-512-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256",
    _CIPHERS, _CIPHERS, _MACS, _MACS,
    "none,zlib@openssh.com,zlib", "none,zlib@openssh.com,zlib", "", "",
)  # fmt: skip
SERVER_LISTS = (
    _KEX + ",kex-strict-s-v00@openssh.com",
    "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
    _CIPHERS, _CIPHERS, _MACS, _MACS, "none,zlib@openssh.com", "none,zlib@openssh.com", "", "",
)  # fmt: skip
# What RFC 4253 7.1 makes of those lists (first client choice the server also lists); the
# generator checks it with `negotiate` below.
NEGOTIATED = {"kex_alg": "sntrup761x25519-sha512", "host_key_alg": "ssh-ed25519",
              "cipher_alg": "chacha20-poly1305@openssh.com", "compression_alg": "none"}  # fmt: skip
CIPHER_TAG, CIPHER_BLOCK = 16, 8  # chacha20-poly1305@openssh.com: Poly1305 tag, 8-byte blocks


def negotiate(client: str, server: str) -> str | None:
    """RFC 4253 7.1, written out here so the expectation does not come from Sluice."""
    offered = server.split(",")
    return next((name for name in client.split(",") if name in offered), None)


def hassh(lists: tuple[str, ...], client: bool) -> tuple[str, str]:
    """(md5, string) of HASSH (client: kex;enc c->s;mac c->s;cmp c->s) or HASSH-server (the
    s->c lists), as salesforce/hassh defines them."""
    text = ";".join(lists[i] for i in ((0, 2, 4, 6) if client else (0, 3, 5, 7)))
    return hashlib.md5(text.encode()).hexdigest(), text


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def clear_packet(payload: bytes, rng: random.Random) -> bytes:
    """An unencrypted SSH-2 binary packet (RFC 4253 6): block size 8, random padding >= 4."""
    pad = 4 + (-(4 + 1 + len(payload) + 4) % 8)
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + rng.randbytes(pad)


def kexinit(lists: tuple[str, ...], rng: random.Random) -> bytes:
    body = bytes([MSG_KEXINIT]) + rng.randbytes(16)
    body += b"".join(ssh_string(x.encode()) for x in lists) + b"\0" + b"\0\0\0\0"
    return clear_packet(body, rng)


def sealed_size(payload: int) -> int:
    """Wire size of an SSH-2 packet with `payload` bytes under chacha20-poly1305@openssh.com
    (PROTOCOL.chacha20poly1305: length encrypted apart, not in the padding; 16-byte tag)."""
    body = 1 + payload + 4
    body += -body % CIPHER_BLOCK
    return 4 + body + CIPHER_TAG


def handshake(client_banner: bytes, server_banner: bytes, rng: random.Random,
              server_first: bytes = b"") -> list[tuple[str, bytes]]:  # fmt: skip
    """Turns of an OpenSSH-style SSH-2 handshake: banners (the client's first, as OpenSSH's
    client sends it on connect), KEXINITs, ECDH (sntrup761x25519: the client's 1190-byte
    public value, the server's host key, 1071-byte reply and signature), NEWKEYS both ways.
    `server_first`: lines the server sends before its banner."""
    host_key = ssh_string(b"ssh-ed25519") + ssh_string(rng.randbytes(32))
    signature = ssh_string(b"ssh-ed25519") + ssh_string(rng.randbytes(64))
    ecdh_init = bytes([MSG_KEX_ECDH_INIT]) + ssh_string(rng.randbytes(1190))
    reply = bytes([MSG_KEX_ECDH_REPLY]) + ssh_string(host_key) + ssh_string(rng.randbytes(1071))
    reply += ssh_string(signature)
    newkeys = bytes([MSG_NEWKEYS])
    return [
        ("client", client_banner),
        ("server", server_first + server_banner),
        ("client", kexinit(CLIENT_LISTS, rng)),
        ("server", kexinit(SERVER_LISTS, rng)),
        ("client", clear_packet(ecdh_init, rng)),
        ("server", clear_packet(reply, rng) + clear_packet(newkeys, rng)),
        ("client", clear_packet(newkeys, rng)),
    ]


# The encrypted part of a session as SSH packets: (sender, payload bytes). Sizes follow RFC
# 4252/4254 and the SFTP draft (filexfer-02) messages OpenSSH sends; contents are random.
LOGIN = [
    ("client", 1 + 4 + 12),  # SERVICE_REQUEST "ssh-userauth"
    ("server", 1 + 4 + 12),  # SERVICE_ACCEPT
    ("client", 90),  # USERAUTH_REQUEST publickey, no signature (a query)
    ("server", 60),  # USERAUTH_PK_OK
    ("client", 180),  # USERAUTH_REQUEST publickey, signed
    ("server", 1),  # USERAUTH_SUCCESS
    ("client", 24),  # CHANNEL_OPEN "session"
    ("server", 17),  # CHANNEL_OPEN_CONFIRMATION
    ("server", 220),  # GLOBAL_REQUEST hostkeys-00@openssh.com
    ("client", 27),  # CHANNEL_REQUEST subsystem "sftp"
    ("server", 9),  # CHANNEL_WINDOW_ADJUST
    ("server", 5),  # CHANNEL_SUCCESS
]
SFTP_OPEN = [  # in CHANNEL_DATA (9 bytes of header each)
    ("client", 9 + 9),  # SSH_FXP_INIT
    ("server", 9 + 110),  # SSH_FXP_VERSION with extensions
    ("client", 9 + 14),  # SSH_FXP_REALPATH "."
    ("server", 9 + 60),  # SSH_FXP_NAME
    ("client", 9 + 40),  # SSH_FXP_STAT of the target
    ("server", 9 + 40),  # SSH_FXP_ATTRS / STATUS
    ("client", 9 + 60),  # SSH_FXP_OPEN
    ("server", 9 + 17),  # SSH_FXP_HANDLE
]
SFTP_CLOSE = [
    ("client", 9 + 17),  # SSH_FXP_CLOSE
    ("server", 9 + 28),  # SSH_FXP_STATUS
    ("client", 5),  # CHANNEL_EOF
    ("client", 5),  # CHANNEL_CLOSE
    ("server", 5),  # CHANNEL_CLOSE
]
SFTP_CHUNK = 32768  # bytes per WRITE request / READ reply
IN_FLIGHT = 4  # requests OpenSSH's sftp keeps outstanding (it grows to 64; 4 keeps turns short)


def sftp_transfer(op: str, size: int) -> list[tuple[str, int]]:
    """WRITE requests (29 bytes of header) or READ requests and DATA replies (13), each request
    or reply of up to 32 KiB in two CHANNEL_DATA packets (9 bytes each), in rounds of
    IN_FLIGHT requests and their answers."""
    mover, asker = ("client", "server") if op == "put" else ("server", "client")
    head = 29 if op == "put" else 13
    out: list[tuple[str, int]] = []
    chunks = [min(SFTP_CHUNK, size - pos) for pos in range(0, size, SFTP_CHUNK)]
    for first in range(0, len(chunks), IN_FLIGHT):
        batch = chunks[first : first + IN_FLIGHT]
        if op == "get":
            out += [(asker, 9 + 29)] * len(batch)  # READ requests
        for chunk in batch:
            data = head + chunk
            out += [(mover, 9 + data // 2), (mover, 9 + data - data // 2)]
        if op == "put":
            out += [(asker, 9 + 28)] * len(batch)  # STATUS replies
    return out


def sealed_turns(packets: list[tuple[str, int]], rng: random.Random) -> list[tuple[str, bytes]]:
    """Consecutive packets of one sender as one turn of ciphertext of their wire sizes."""
    turns: list[tuple[str, bytes]] = []
    for sender, payload in packets:
        data = rng.randbytes(sealed_size(payload))
        if turns and turns[-1][0] == sender:
            turns[-1] = (sender, turns[-1][1] + data)
        else:
            turns.append((sender, data))
    return turns


def encrypted_bytes(turns: list[tuple[str, bytes]]) -> list[int]:
    return [sum(len(d) for s, d in turns if s == who) for who in ("client", "server")]


# --- SSH-1 (draft-ylonen-ssh-protocol-00, "The SSH (Secure Shell) Remote Login Protocol") -------

V1_SMSG_PUBLIC_KEY, V1_CMSG_SESSION_KEY = 2, 3
V1_SSH_CIPHER_3DES = 3


def v1_mpint(bits: int, rng: random.Random) -> bytes:
    """An SSH-1 multiple-precision integer: 16-bit bit count, then the bytes (MSB first)."""
    value = bytearray(rng.randbytes((bits + 7) // 8))
    value[0] |= 0x80 >> (-bits % 8)  # the top bit set, so `bits` is exact
    return struct.pack(">H", bits) + bytes(value)


def v1_packet(kind: int, data: bytes) -> bytes:
    """An SSH-1 packet before encryption: length (type + data + CRC), padding to a multiple of 8
    (zeros while no cipher is on, as OpenSSH sends it), type, data, CRC-32 of padding..data."""
    length = 1 + len(data) + 4
    body = b"\0" * (8 - length % 8) + bytes([kind]) + data
    return struct.pack(">I", length) + body + struct.pack(">I", zlib.crc32(body))


def v1_sealed(data_len: int, rng: random.Random) -> bytes:
    """An encrypted SSH-1 packet carrying `data_len` bytes: the length stays in clear."""
    length = 1 + data_len + 4
    return struct.pack(">I", length) + rng.randbytes(8 - length % 8 + length)


def v1_session(rng: random.Random) -> list[tuple[str, bytes]]:
    """After the banners: the server's keys, the client's session key (the last cleartext
    packets), then an encrypted password login, shell, and a 20 KB upload through `cat`."""
    cookie = rng.randbytes(8)
    public_key = cookie + struct.pack(">I", 768) + v1_mpint(6, rng) + v1_mpint(768, rng)
    public_key += struct.pack(">I", 1024) + v1_mpint(6, rng) + v1_mpint(1024, rng)
    public_key += struct.pack(">III", 2, 1 << V1_SSH_CIPHER_3DES | 1 << 6, 1 << 2 | 1 << 3)
    session_key = bytes([V1_SSH_CIPHER_3DES]) + cookie + v1_mpint(1021, rng)
    session_key += struct.pack(">I", 2)
    sealed: list[tuple[str, int]] = [
        ("server", 0), ("client", 4 + 4), ("server", 0),  # SUCCESS, USER root, FAILURE
        ("client", 4 + 17), ("server", 0),  # AUTH_PASSWORD, SUCCESS
        ("client", 4 + 5 + 4 * 4 + 1), ("server", 0),  # REQUEST_PTY, SUCCESS
        ("client", 0), ("server", 4 + 30),  # EXEC_SHELL, prompt
        ("client", 4 + 28), ("server", 4 + 28),  # "cat > notes.txt", echo
    ]  # fmt: skip
    sealed += [("client", 4 + 4096)] * 5 + [("server", 4 + 2)]  # 20 KB into cat, then ^D
    sealed += [("client", 4 + 4), ("server", 4 + 6), ("server", 4), ("client", 0)]  # exit
    turns = [("server", v1_packet(V1_SMSG_PUBLIC_KEY, public_key)),
             ("client", v1_packet(V1_CMSG_SESSION_KEY, session_key))]  # fmt: skip
    for sender, data_len in sealed:
        data = v1_sealed(data_len, rng)
        if turns[-1][0] == sender and len(turns) > 2:
            turns[-1] = (sender, turns[-1][1] + data)
        else:
            turns.append((sender, data))
    return turns


# --- capture, expectation and cross-checks (shared) ----------------------------------------------


def conversation(turns: list[tuple[str, bytes]], client_port: int, t0: float,
                 keep: str | None = None) -> crafted.TcpConversation:  # fmt: skip
    """One TCP connection to port 22 carrying `turns` lock-step; `keep` "client"/"server":
    only that side's packets stay in the capture (a SPAN port that misses one direction)."""
    conv = crafted.TcpConversation(client_port=client_port, server_port=22,
                                   client_isn=client_port * 7919, server_isn=client_port * 104729,
                                   t0=t0)  # fmt: skip
    conv.handshake()
    crafted.play(conv, turns, sizes=SEGMENT)
    conv.close()
    if keep is not None:
        sender = crafted.CLIENT_V4 if keep == "client" else crafted.SERVER_V4
        conv.packets = [(ts, pkt) for ts, pkt in conv.packets if pkt.src == sender]
    return conv


def tshark_ssh(pcap: Path) -> dict[int, dict[str, list[str]]]:
    """Per TCP stream: Wireshark's SSH dissector's banners (ssh.protocol) and HASSH values, an
    independent reading of the capture."""
    fields = ("tcp.stream", "ssh.protocol", "ssh.kex.hassh", "ssh.kex.hasshserver")
    argv = ["tshark", "-r", str(pcap), "-d", "tcp.port==22,ssh", "-Y", "ssh", "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=|"]  # fmt: skip
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    streams: dict[int, dict[str, list[str]]] = {}
    for line in out.splitlines():
        stream, *values = line.split("\t")
        seen = streams.setdefault(int(stream), {name: [] for name in fields[1:]})
        for name, value in zip(fields[1:], values, strict=True):
            seen[name] += [v for v in value.split("|") if v]
    return streams


def cross_check(pcap: Path, expected: list[dict[str, Any]],
                unread: dict[int, tuple[str, ...]] | None = None) -> None:  # fmt: skip
    """Wireshark's dissector reads the banners and HASSH values the expectation names (streams
    in capture order). `unread`: per stream, what Wireshark 4.0 cannot read there and is left
    out ("server": its banner and HASSH, "server_hassh": the HASSH only)."""
    seen = tshark_ssh(pcap)
    for stream, expectation in enumerate(expected):
        want = dict(expectation)
        for what in (unread or {}).get(stream, ()):
            keys = [what] if what.endswith("_hassh") else [f"{what}_banner", f"{what}_hassh"]
            want.update(dict.fromkeys(keys))
        banners = {want[f"{side}_banner"] for side in ("client", "server")} - {None}
        assert set(seen[stream]["ssh.protocol"]) == banners, (stream, seen[stream])
        for side, name in (("client", "ssh.kex.hassh"), ("server", "ssh.kex.hasshserver")):
            hashes = [want[f"{side}_hassh"]] if want[f"{side}_hassh"] else []
            assert seen[stream][name][:1] == hashes, (stream, name, seen[stream])


def software(banner: bytes) -> str:
    """RFC 4253 4.2 softwareversion: after "SSH-protoversion-", up to a space or the line end."""
    return banner.rstrip(b"\r\n").split(b"-", 2)[2].split(b" ", 1)[0].decode()


def side_entry(prefix: str, banner: bytes | None, lists: tuple[str, ...] | None) -> dict[str, Any]:
    """Expected `client_*`/`server_*` keys of one side (None: that side was not seen)."""
    text = banner.rstrip(b"\r\n").decode() if banner else None
    md5, string = hassh(lists, prefix == "client") if lists else (None, None)
    return {f"{prefix}_banner": text, f"{prefix}_software": software(banner) if banner else None,
            f"{prefix}_hassh": md5, f"{prefix}_hassh_string": string}  # fmt: skip


def write_case(case: Path, ssh: list[dict[str, Any]], anomalies: list[str],
               truth: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    pcap = case / "input.pcap"
    doc: dict[str, Any] = {"case": case.name, "objects": [], "objects_exhaustive": True,
                           "ssh": ssh}  # fmt: skip
    if truth is not None:
        doc["ssh_truth"] = truth
    doc |= {"anomalies_include": anomalies, "flows": expect.count_flows(pcap), "read_error": None}
    (case / "expected.json").write_text(json.dumps(doc, indent=2) + "\n")


# --- this case ------------------------------------------------------------------------------------

V1_SERVER = b"SSH-1.5-OpenSSH_3.9p1\n"  # Protocol 1 only; LF only, as SSH-1 servers end it
BOTH_SERVER = b"SSH-1.99-OpenSSH_3.9p1\n"  # Protocol 2,1 (RFC 4253 5.1: no CR in this mode)
V1_CLIENT = b"SSH-1.5-OpenSSH_3.9p1\n"
V2_CLIENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def main() -> None:
    rng = random.Random(4253)
    assert {k: negotiate(CLIENT_LISTS[i], SERVER_LISTS[i]) for k, i in
            (("kex_alg", 0), ("host_key_alg", 1), ("cipher_alg", 2),
             ("compression_alg", 6))} == NEGOTIATED  # fmt: skip
    convs, expected = [], []
    for port, server_banner in ((50301, V1_SERVER), (50302, BOTH_SERVER)):
        session = v1_session(rng)
        turns = [("server", server_banner), ("client", V1_CLIENT), *session]
        convs.append(conversation(turns, port, crafted.T0 + len(convs)))
        expected.append({
            "version": "1.5", **side_entry("client", V1_CLIENT, None),
            **side_entry("server", server_banner, None), "kex_alg": None, "host_key_alg": None,
            "cipher_alg": None, "mac_alg": None, "compression_alg": None,
            "auth_success": None, "transfer": "unknown",
            # everything after each side's key packet (turns 0 and 1 of the session)
            "encrypted_bytes": encrypted_bytes(session[2:]),
        })  # fmt: skip
    sealed = sealed_turns([*LOGIN, ("client", 9 + 40), ("server", 9 + 40)], rng)
    turns = handshake(V2_CLIENT, BOTH_SERVER, rng) + sealed
    convs.append(conversation(turns, 50303, crafted.T0 + len(convs)))
    expected.append({
        "version": "2.0", **side_entry("client", V2_CLIENT, CLIENT_LISTS),
        **side_entry("server", BOTH_SERVER, SERVER_LISTS), **NEGOTIATED,
        "mac_alg": "<implicit>", "auth_success": True,  # LOGIN ends in USERAUTH_SUCCESS
        "encrypted_bytes": encrypted_bytes(sealed),
    })  # fmt: skip
    pcap = CASE / "input.pcap"
    crafted.write_conversations(pcap, *convs)
    cross_check(pcap, expected)
    write_case(CASE, expected, anomalies=[])


if __name__ == "__main__":
    main()
