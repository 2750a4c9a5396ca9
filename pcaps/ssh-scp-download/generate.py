"""ssh-scp-download (REAL): legacy-protocol `scp -O` fetches a 1 MB file from our own sshd."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib.sshlab import SshLab, Truth, run_ssh_case


def session(lab: SshLab, pcap: Path) -> Truth:
    return lab.scp(pcap, "get", 1_000_000, seed=21)


if __name__ == "__main__":
    run_ssh_case(__file__, session)
