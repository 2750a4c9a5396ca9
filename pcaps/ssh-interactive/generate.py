"""ssh-interactive (REAL): `ssh -tt` shell; a scripted typist sends one key at a time with
human-like delays (three short commands, then exit)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib.sshlab import SshLab, Truth, run_ssh_case


def session(lab: SshLab, pcap: Path) -> Truth:
    return lab.interactive(pcap, ["pwd", "echo hello", "uname -s"], seed=5)


if __name__ == "__main__":
    run_ssh_case(__file__, session)
