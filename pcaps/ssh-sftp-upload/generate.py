"""ssh-sftp-upload (REAL): OpenSSH `sftp -b` puts a ~1.5 MB .tar.gz archive to our own sshd."""

from __future__ import annotations

import io
import random
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib.sshlab import SshLab, Truth, run_ssh_case


def archive() -> bytes:
    """A gzip'd tar of one incompressible 1.5 MB member: the shape of an exfiltration archive."""
    data = random.Random(11).randbytes(1_500_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("export/lab-results-2025-07.bin")
        info.size, info.mtime = len(data), 1751328000
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def session(lab: SshLab, pcap: Path) -> Truth:
    local = lab.dir / "files" / "lab-results-2025-07.tar.gz"
    local.write_bytes(archive())
    return lab.sftp(pcap, "put", 0, local=local)


if __name__ == "__main__":
    run_ssh_case(__file__, session)
