"""ftp-active-upload (REAL): ftplib in active mode (PORT) STOREs a CSV of fake patients; the
pyftpdlib server opens the data connection back to the client."""

from __future__ import annotations

import ftplib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, ftpcase, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import CLIENT_V4, SERVER_V4

UPLOAD = patients_csv(60_000, seed=23)
UPLOAD_ARG = "screening-batch-17.csv"


def server(workdir: Path) -> None:
    ftpcase.serve_ftp(workdir, {})


def client(workdir: Path) -> None:
    with ftplib.FTP() as ftp:
        ftp.connect(SERVER_V4, ftpcase.FTP_PORT, timeout=10)
        ftp.login(ftpcase.FTP_USER, ftpcase.FTP_PASSWORD)
        ftp.set_pasv(False)  # ftplib sends PORT with its own address and a listening port
        ftp.storbinary(f"STOR {UPLOAD_ARG}", io.BytesIO(UPLOAD))
        ftpcase.record_client(workdir, "received", UPLOAD_ARG, UPLOAD)
        ftp.quit()


def build_expected(case_dir: Path, workdir: Path) -> None:
    ftpcase.check_transfers(workdir, [("received", UPLOAD_ARG, UPLOAD)])
    pcap = case_dir / "input.pcap"
    control, data = ftpcase.tcp_connections(pcap)
    assert control["server"] == (SERVER_V4, ftpcase.FTP_PORT), control
    # Active mode: the SERVER connects to the address/port the client announced with PORT.
    port_line = next(
        line for line in control["to_server"].split(b"\r\n") if line.startswith(b"PORT ")
    )
    numbers = [int(n) for n in port_line[5:].split(b",")]
    assert data["server"] == (CLIENT_V4, numbers[4] * 256 + numbers[5]), (data, port_line)
    assert data["client"][0] == SERVER_V4
    assert data["to_client"] == UPLOAD  # the upload flows server-ward over a server-opened flow
    # What happens (see the README): pyftpdlib does not bind port 20, it connects from an
    # ephemeral port, and it does so as soon as PORT arrives, before the STOR is sent.
    assert data["client"][1] != 20
    print(f"data connection {data['client']} -> {data['server']}")
    flows = expect.count_flows(pcap)
    assert flows == 2, flows
    ftpcase.write_expected_ftp(
        case_dir,
        objects=[ftpcase.ftp_object("upload", UPLOAD_ARG, UPLOAD)],
        ftp=[ftpcase.ftp_transfer("STOR", UPLOAD_ARG, "active", True)],
        sessions=[{"user": ftpcase.FTP_USER, "auth_tls": False, "login_success": True}],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
