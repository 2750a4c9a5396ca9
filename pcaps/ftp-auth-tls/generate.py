"""ftp-auth-tls (REAL): ftplib.FTP_TLS against pyftpdlib's TLS_FTPHandler (explicit FTPS, RFC
4217) with a throw-away self-signed certificate made at run time. AUTH TLS is the last clear
command; login, PROT P and a passive STOR all happen inside TLS."""

from __future__ import annotations

import ftplib
import io
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, ftpcase, realcase
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import SERVER_V4

UPLOAD = patients_csv(40_000, seed=24)
UPLOAD_ARG = "encrypted-batch.csv"


def server(workdir: Path) -> None:
    ftpcase.serve_ftp(workdir, {}, tls=True)


def client(workdir: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is a throw-away self-signed one
    with ftplib.FTP_TLS(context=context) as ftp:
        ftp.connect(SERVER_V4, ftpcase.FTP_PORT, timeout=10)
        ftp.login(ftpcase.FTP_USER, ftpcase.FTP_PASSWORD)  # sends AUTH TLS first
        ftp.prot_p()  # data connections are TLS too
        ftp.set_pasv(True)
        ftp.storbinary(f"STOR {UPLOAD_ARG}", io.BytesIO(UPLOAD))
        ftpcase.record_client(workdir, "received", UPLOAD_ARG, UPLOAD)
        ftp.quit()


def build_expected(case_dir: Path, workdir: Path) -> None:
    ftpcase.check_transfers(workdir, [("received", UPLOAD_ARG, UPLOAD)])
    pcap = case_dir / "input.pcap"
    control, data = ftpcase.tcp_connections(pcap)
    assert control["server"] == (SERVER_V4, ftpcase.FTP_PORT), control
    # The clear part of the control channel ends with AUTH TLS / 234; TLS records follow.
    head, sep, rest = control["to_server"].partition(b"AUTH TLS\r\n")
    assert sep and head == b"" and rest[:2] == b"\x16\x03", control["to_server"][:64]
    _greeting, sep, reply_rest = control["to_client"].partition(b"\r\n234 ")
    assert sep and reply_rest.split(b"\r\n", 1)[1][:2] == b"\x16\x03"
    everything = b"".join(c["to_server"] + c["to_client"] for c in (control, data))
    for clear in (ftpcase.FTP_PASSWORD.encode(), ftpcase.FTP_USER.encode(), b"STOR", UPLOAD[:64]):
        assert clear not in everything, clear
    assert data["to_server"][:2] == b"\x16\x03" and data["server"][1] in ftpcase.PASSIVE_PORTS
    flows = expect.count_flows(pcap)
    assert flows == 2, flows
    ftpcase.write_expected_ftp(
        case_dir,
        objects=[],  # everything after AUTH TLS (including the STOR's data) is ciphertext
        ftp=[],
        sessions=[{"user": None, "auth_tls": True, "login_success": None}],
        flows=flows,
    )


if __name__ == "__main__":
    realcase.run_case(__file__, server, client, build_expected)
