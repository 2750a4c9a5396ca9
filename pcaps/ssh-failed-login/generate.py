"""ssh-failed-login (REAL): paramiko tries two wrong passwords on one connection, gives up."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib.sshlab import SshLab, Truth, run_ssh_case


def session(lab: SshLab, pcap: Path) -> Truth:
    return lab.failed_password(pcap, attempts=2)


if __name__ == "__main__":
    run_ssh_case(__file__, session)
