"""ssh-one-sided (crafted): SSH connections of which the capture holds one direction only, as a
SPAN port or TAP that misses one way delivers them.

Two OpenSSH 9.2-style SFTP sessions to port 22 (byte builders: ../ssh-v1/generate.py), both
with a publickey login and a 500 000-byte file:

1. `put` (upload), only the client's packets kept (SYN, banner, KEXINIT, ECDH, NEWKEYS, the
   encrypted requests and the file; no SYN-ACK, no server byte);
2. `get` (download), only the server's packets kept (SYN-ACK, banner, KEXINIT, ECDH reply,
   NEWKEYS, the encrypted replies and the file).

Sluice must report the side it saw (banner, software, HASSH), null for the other side and for
everything negotiated (that needs both KEXINITs), say that one direction was missing
(`ssh_one_sided`), count the seen direction's encrypted bytes, and still tell the transfer's
direction; sftp cannot be told from scp without the other side (transfer_kind null).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted

CASE = Path(__file__).resolve().parent
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
FILE_SIZE = 500_000


def builders() -> ModuleType:
    """../ssh-v1/generate.py: the SSH byte builders the crafted SSH cases share."""
    return crafted.case_module("ssh-v1")


def main() -> None:
    b = builders()
    rng = random.Random(42533)
    convs, expected, truth = [], [], []
    for port, op, keep in ((50321, "put", "client"), (50322, "get", "server")):
        packets = [*b.LOGIN, *b.SFTP_OPEN, *b.sftp_transfer(op, FILE_SIZE), *b.SFTP_CLOSE]
        sealed = b.sealed_turns(packets, rng)
        turns = b.handshake(BANNER, BANNER, rng) + sealed
        convs.append(b.conversation(turns, port, crafted.T0 + len(convs), keep=keep))
        lost = "server" if keep == "client" else "client"
        seen_bytes = b.encrypted_bytes(sealed)[0 if keep == "client" else 1]
        lists = b.CLIENT_LISTS if keep == "client" else b.SERVER_LISTS
        expected.append({
            "version": "2.0", **b.side_entry(keep, BANNER, lists), **b.side_entry(lost, None, None),
            "kex_alg": None, "host_key_alg": None, "cipher_alg": None, "mac_alg": None,
            "compression_alg": None, "auth_success": True,
            "transfer": "upload" if op == "put" else "download", "transfer_kind": None,
            "encrypted_bytes": [seen_bytes, 0] if keep == "client" else [0, seen_bytes],
        })  # fmt: skip
        truth.append({"app_bytes": FILE_SIZE})
    pcap = CASE / "input.pcap"
    crafted.write_conversations(pcap, *convs)
    # Wireshark 4.0 reads the server's banner of connection 2 but computes no HASSH-server
    # without the client's direction: that one is ground truth by construction.
    b.cross_check(pcap, expected, unread={1: ("server_hassh",)})
    b.write_case(CASE, expected, anomalies=["ssh_one_sided"], truth=truth)


if __name__ == "__main__":
    main()
