"""ssh-on-443 (REAL): `sftp -b` upload of 200 KB to our sshd on port 443 (the classic way round
egress filters); recognised by content ("SSH-2.0-"), not by port."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib.sshlab import SshLab, Truth, run_ssh_case


def session(lab: SshLab, pcap: Path) -> Truth:
    return lab.sftp(pcap, "put", 200_000, seed=443, port=443)


if __name__ == "__main__":
    run_ssh_case(__file__, session, port=443)
