"""FTP side of the REAL cases: a pyftpdlib server (plain or TLS) with a recording handler, run
through `realcase.run_case` like the HTTP cases, and checks of what the capture shows.

The handler writes one JSON line per completed file transfer into the work dir (sha256 of the
file as stored or sent); clients write what they meant to send and what they got. The
orchestrator asserts both agree before it writes expected.json from its own constants.

pyftpdlib imports pyOpenSSL when it is installed; the TLS case needs a pyOpenSSL that matches
the venv's `cryptography` (pyOpenSSL >= 25 for cryptography 4x/5x).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import dpkt

from pcaps._lib.netns import SERVER_V4
from pcaps._lib.realcase import append_record, read_records

FTP_PORT = 21
PASSIVE_PORTS = range(30000, 30010)  # pyftpdlib picks the data port from here (PASV/EPSV)
FTP_USER = "labexport"
FTP_PASSWORD = "Nep-Wachtwoord-4711"  # fake; the expectation checks it never reaches the output
BANNER = "Sluice test FTP service (pyftpdlib) ready."


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _self_signed(path: Path) -> None:
    """A throw-away certificate + key (one PEM file) for the TLS case, made at run time."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ftp.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pem)


def serve_ftp(workdir: Path, files: dict[str, bytes], tls: bool = False) -> None:
    """Serve pyftpdlib on SERVER_V4:21 until terminated; prints READY once listening.

    `files` are placed under the FTP root first (relative paths). One user, FTP_USER, may read
    and write. Every finished transfer is recorded in server-files.jsonl."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    root = workdir / "ftproot"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmwMT")
    base: type[FTPHandler] = TLS_FTPHandler if tls else FTPHandler

    class Handler(base):
        def _record(self, event: str, file: str) -> None:
            data = Path(file).read_bytes()
            rel = str(PurePosixPath(Path(file).relative_to(root)))
            record = {"event": event, "path": rel, "size": len(data), "sha256": sha256(data)}
            append_record(workdir, "server-files", record)

        def on_file_received(self, file: str) -> None:
            self._record("received", file)

        def on_file_sent(self, file: str) -> None:
            self._record("sent", file)

    Handler.authorizer = authorizer
    Handler.banner = BANNER
    Handler.passive_ports = list(PASSIVE_PORTS)
    if tls:
        cert = workdir / "throwaway-cert.pem"
        _self_signed(cert)
        Handler.certfile = str(cert)
        Handler.keyfile = str(cert)
        Handler.tls_control_required = True
        Handler.tls_data_required = True
    server = FTPServer((SERVER_V4, FTP_PORT), Handler)
    print("READY", flush=True)
    server.serve_forever(handle_exit=True)


def record_client(workdir: Path, event: str, path: str, data: bytes, **info: Any) -> None:
    """Client side: one line per transfer it made (what it sent or what it received)."""
    record = {"event": event, "path": path, "size": len(data), "sha256": sha256(data), **info}
    append_record(workdir, "client-files", record)


def check_transfers(workdir: Path, expected: list[tuple[str, str, bytes]]) -> None:
    """Assert server and client saw exactly these (event, server path, bytes), in order.
    event: "received" (an upload, seen from the server) or "sent" (a download)."""
    server = read_records(workdir, "server-files")
    client = read_records(workdir, "client-files")
    assert len(server) == len(client) == len(expected), (server, client)
    for srv, cli, (event, path, data) in zip(server, client, expected, strict=True):
        assert srv["event"] == event and srv["path"] == path, srv
        assert srv["sha256"] == cli["sha256"] == sha256(data), "the file bytes differ"


def ftp_object(direction: str, argument: str, data: bytes) -> dict[str, Any]:
    """One expected object carried by an FTP data connection; filename = basename of the
    transfer command's argument."""
    return {
        "proto": "ftp",
        "direction": direction,
        "filename": PurePosixPath(argument).name,
        "size": len(data),
        "sha256": sha256(data),
        "complete": True,
        "missing_bytes": 0,
    }


def ftp_transfer(
    command: str, argument: str | None, mode: str | None, ok: bool | None
) -> dict[str, Any]:
    """One entry of the "ftp" list: filename = the command argument as sent."""
    direction = "upload" if command in ("STOR", "STOU", "APPE") else "download"
    return {"command": command, "filename": argument, "direction": direction, "mode": mode,
            "ok": ok}  # fmt: skip


def write_expected_ftp(
    case_dir: Path,
    *,
    objects: list[dict[str, Any]],
    ftp: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    flows: int,
    anomalies: list[str] | None = None,
) -> None:
    """expected.json of an FTP case: write_expected's keys ("http" empty) plus "ftp" (every
    transfer in order), "ftp_sessions" (one per control connection) and "secrets_absent"."""
    doc: dict[str, Any] = {
        "case": case_dir.name,
        "objects": objects,
        "objects_exhaustive": True,
        "http": [],
        "ftp": ftp,
        "ftp_sessions": sessions,
        "anomalies_include": anomalies or [],
        "flows": flows,
        "read_error": None,
        "secrets_absent": [FTP_PASSWORD],
    }
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# -- what the capture shows ---------------------------------------------------------------------


def tcp_connections(pcap: Path) -> list[dict[str, Any]]:
    """Every TCP connection of a loss-free capture, in SYN order: who connected to whom and the
    payload of each side (segments ordered by sequence number, retransmissions dropped)."""
    conns: dict[tuple[Any, ...], dict[str, Any]] = {}
    segs: dict[tuple[Any, ...], dict[int, bytes]] = defaultdict(dict)
    isn: dict[tuple[Any, ...], int] = {}
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            src = (dpkt.utils.inet_to_str(ip.src), tcp.sport)
            dst = (dpkt.utils.inet_to_str(ip.dst), tcp.dport)
            syn_only = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
            if syn_only and (src, dst) not in conns:
                conns[(src, dst)] = {"client": src, "server": dst}
            if tcp.flags & dpkt.tcp.TH_SYN:
                isn[(src, dst)] = tcp.seq + 1
            if tcp.data and (src, dst) in isn:
                segs[(src, dst)].setdefault((tcp.seq - isn[(src, dst)]) % 2**32, bytes(tcp.data))
    out = []
    for (src, dst), conn in conns.items():
        conn["to_server"] = b"".join(d for _s, d in sorted(segs[(src, dst)].items()))
        conn["to_client"] = b"".join(d for _s, d in sorted(segs[(dst, src)].items()))
        out.append(conn)
    return out
