"""ftp-passive-upload (REAL): ftplib logs in to pyftpdlib, STOREs a ~100 KB CSV of fake patients
in passive mode (PASV) and RETRieves another file (a second passive data connection)."""

from __future__ import annotations

import ftplib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, ftpcase, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

UPLOAD = patients_csv(100_000, seed=21)
UPLOAD_ARG = "incoming/patients-export-2025-07.csv"
DOWNLOAD = patients_csv(30_000, seed=22)
DOWNLOAD_ARG = "outgoing/lab-results.csv"


def server(workdir: Path) -> None:
    ftpcase.serve_ftp(workdir, {DOWNLOAD_ARG: DOWNLOAD})


def client(workdir: Path) -> None:
    ports: list[int] = []

    class Client(ftplib.FTP):
        def ntransfercmd(self, cmd, rest=None):  # type: ignore[no-untyped-def]
            conn, size = super().ntransfercmd(cmd, rest)
            ports.append(conn.getpeername()[1])
            return conn, size

    with Client() as ftp:
        ftp.connect(SERVER_V4, ftpcase.FTP_PORT, timeout=10)
        ftp.login(ftpcase.FTP_USER, ftpcase.FTP_PASSWORD)
        ftp.set_pasv(True)
        ftp.storbinary(f"STOR {UPLOAD_ARG}", io.BytesIO(UPLOAD))
        ftpcase.record_client(workdir, "received", UPLOAD_ARG, UPLOAD, data_port=ports[-1])
        got = bytearray()
        ftp.retrbinary(f"RETR {DOWNLOAD_ARG}", got.extend)
        ftpcase.record_client(workdir, "sent", DOWNLOAD_ARG, bytes(got), data_port=ports[-1])
        ftp.quit()


def build_expected(case_dir: Path, workdir: Path) -> None:
    ftpcase.check_transfers(
        workdir, [("received", UPLOAD_ARG, UPLOAD), ("sent", DOWNLOAD_ARG, DOWNLOAD)]
    )
    pcap = case_dir / "input.pcap"
    conns = ftpcase.tcp_connections(pcap)
    data_ports = [rec["data_port"] for rec in realcase.read_records(workdir, "client-files")]
    # The capture holds the control connection and one client-initiated data connection per
    # transfer, to the passive ports ftplib used.
    assert [c["server"][1] for c in conns] == [ftpcase.FTP_PORT, *data_ports], conns
    assert all(p in ftpcase.PASSIVE_PORTS for p in data_ports), data_ports
    assert conns[1]["to_server"] == UPLOAD and conns[2]["to_client"] == DOWNLOAD
    assert ftpcase.FTP_PASSWORD.encode() in conns[0]["to_server"]  # plain FTP: PASS is visible
    flows = expect.count_flows(pcap)
    assert flows == 3, flows
    ftpcase.write_expected_ftp(
        case_dir,
        objects=[
            ftpcase.ftp_object("upload", UPLOAD_ARG, UPLOAD),
            ftpcase.ftp_object("download", DOWNLOAD_ARG, DOWNLOAD),
        ],
        ftp=[
            ftpcase.ftp_transfer("STOR", UPLOAD_ARG, "passive", True),
            ftpcase.ftp_transfer("RETR", DOWNLOAD_ARG, "passive", True),
        ],
        sessions=[{"user": ftpcase.FTP_USER, "auth_tls": False, "login_success": True}],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
