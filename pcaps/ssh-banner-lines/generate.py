"""ssh-banner-lines (crafted): lines before the identification string (RFC 4253 section 4.2).

Four OpenSSH 9.2-style SSH-2 connections to port 22 (byte builders: ../ssh-v1/generate.py):

1. the server sends four lines before its banner (a notice, an empty line, a 300-byte line, a
   contact line; in 100-byte TCP segments, so lines span segments), then the handshake and a
   short encrypted session;
2. the server sends exactly 1024 lines first, as many as OpenSSH's client accepts
   (SSH_MAX_PRE_BANNER_LINES), then the same;
3. the server sends 1025 lines and its banner; a stock client gives up there and so does
   Sluice: anomaly `ssh_too_many_pre_banner_lines`, the session reported with what was seen;
4. the CLIENT sends a line before its banner (the RFC allows that to servers only): anomaly
   `ssh_client_pre_banner`, and the session is still read.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted

CASE = Path(__file__).resolve().parent
CLIENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
SERVER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
NOTICE = (b"Authorised use only. Activity on this system is logged.\r\n\r\n"
          + b"=" * 298 + b"\r\n" + b"Contact: it-security@zorg.example\r\n")  # fmt: skip
OPENSSH_MAX_LINES = 1024  # OpenSSH ssh.h SSH_MAX_PRE_BANNER_LINES
CLIENT_PREAMBLE = b"#!sluice-crafted client preamble\r\n"


def builders() -> ModuleType:
    """../ssh-v1/generate.py: the SSH byte builders the crafted SSH cases share."""
    return crafted.case_module("ssh-v1")


def lines(count: int) -> bytes:
    return b"".join(b"Line %04d of the login notice.\r\n" % i for i in range(1, count + 1))


def main() -> None:
    b = builders()
    rng = random.Random(42532)
    # connections 1, 2 and 4 log in (b.LOGIN ends in USERAUTH_SUCCESS) and negotiate in full
    full = {"version": "2.0", **b.side_entry("client", CLIENT, b.CLIENT_LISTS),
            **b.side_entry("server", SERVER, b.SERVER_LISTS), **b.NEGOTIATED,
            "mac_alg": "<implicit>", "auth_success": True}  # fmt: skip
    convs, expected = [], []

    # 1 and 2: lines before the server's banner, accepted
    for port, first in ((50311, NOTICE), (50312, lines(OPENSSH_MAX_LINES))):
        assert first.count(b"\n") <= OPENSSH_MAX_LINES
        sealed = b.sealed_turns([*b.LOGIN, ("client", 9 + 40), ("server", 9 + 40)], rng)
        turns = b.handshake(CLIENT, SERVER, rng, server_first=first) + sealed
        conv = crafted.TcpConversation(client_port=port, server_port=22, client_isn=port * 7919,
                                       server_isn=port * 104729,
                                       t0=crafted.T0 + len(convs))  # fmt: skip
        conv.handshake()
        for sender, data in turns:  # the server's lines in 100-byte segments (port 50311)
            size = 100 if port == 50311 and data.startswith(first) else b.SEGMENT
            conv.emit_all(conv.segments(sender, data, size))
            conv.ack(crafted.PEER[sender])
        conv.close()
        convs.append(conv)
        expected.append({**full, "encrypted_bytes": b.encrypted_bytes(sealed)})

    # 3: one line more than OpenSSH's client reads; the client disconnects
    over = lines(OPENSSH_MAX_LINES + 1) + SERVER
    convs.append(b.conversation([("client", CLIENT), ("server", over)], 50313,
                                crafted.T0 + len(convs)))  # fmt: skip
    expected.append({"version": "2.0", **b.side_entry("client", CLIENT, None),
                     **b.side_entry("server", None, None), "kex_alg": None,
                     "encrypted_bytes": [0, 0]})  # fmt: skip

    # 4: a line before the CLIENT's banner
    sealed = b.sealed_turns([*b.LOGIN, ("client", 9 + 40), ("server", 9 + 40)], rng)
    turns = b.handshake(CLIENT_PREAMBLE + CLIENT, SERVER, rng) + sealed
    convs.append(b.conversation(turns, 50314, crafted.T0 + len(convs)))
    expected.append({**full, "encrypted_bytes": b.encrypted_bytes(sealed)})

    pcap = CASE / "input.pcap"
    crafted.write_conversations(pcap, *convs)
    # Wireshark 4.0's SSH dissector does not skip lines before a banner: it then reads neither
    # that side's banner nor its KEXINIT (in connection 4 not the server's KEXINIT either). It
    # cross-checks what it reads; the rest is ground truth by construction.
    b.cross_check(pcap, expected, unread={0: ("server",), 1: ("server",), 2: ("server",),
                                          3: ("client", "server_hassh")})  # fmt: skip
    b.write_case(CASE, expected, anomalies=["ssh_too_many_pre_banner_lines",
                                            "ssh_client_pre_banner"])  # fmt: skip


if __name__ == "__main__":
    main()
