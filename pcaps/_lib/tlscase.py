"""Helpers of the REAL TLS cases: a throw-away self-signed certificate, a Python `ssl` upload
server and client, and the ground truth of the "tls" expectation.

Ground truth comes from the two endpoints (the SNI the server's callback received, the version,
cipher and ALPN each side negotiated, the certificate the generator made) and, for the
fingerprints, from Wireshark: `tshark` computes JA3/JA3S itself, and JA4 is computed here from
tshark's dissection of the ClientHello (tshark 4.0 has no JA4 field). None of it comes from
Sluice.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import json
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pcaps._lib import realcase

SNI = "files.example.org"
ALPN = ["h2", "http/1.1"]
# OpenSSL name -> IANA name of the suites the cases pin or negotiate.
IANA = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256": "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384": "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "TLS_CHACHA20_POLY1305_SHA256",
}


def make_cert(workdir: Path, ip: str) -> dict[str, Any]:
    """Write cert.pem/key.pem (self-signed, SAN = SNI + ip) and return what Sluice must report."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, SNI),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Sample Lab"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SNI), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (workdir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for path in (workdir / "cert.pem", workdir / "key.pem"):
        path.chmod(0o644)  # the throw-away key must be readable by the client role too
    der = cert.public_bytes(serialization.Encoding.DER)
    info = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": [SNI, ip],
        "serial": f"{cert.serial_number:x}",
        "sha256": hashlib.sha256(der).hexdigest(),
    }
    (workdir / "cert.json").write_text(json.dumps(info))
    return info


def server_context(
    workdir: Path, max_version: ssl.TLSVersion, ciphers: str | None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(workdir / "cert.pem", workdir / "key.pem")
    ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.set_alpn_protocols(ALPN)
    seen: dict[str, str | None] = {}

    def on_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen["sni"] = name

    ctx.sni_callback = on_sni  # type: ignore[assignment]
    ctx.sni_seen = seen  # type: ignore[attr-defined]
    return ctx


def recv_exactly(sock: ssl.SSLSocket | socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(65536, n - len(data)))
        if not chunk:
            raise ConnectionError("peer closed early")
        data += chunk
    return bytes(data)


def serve_one_upload(ctx: ssl.SSLContext, raw: socket.socket, workdir: Path) -> None:
    """Handshake on an accepted socket, read one length-prefixed upload, answer b"ok"."""
    with ctx.wrap_socket(raw, server_side=True) as tls:
        (size,) = struct.unpack("!I", recv_exactly(tls, 4))
        body = recv_exactly(tls, size)
        tls.sendall(b"ok")
        cipher = tls.cipher()
        realcase.append_record(
            workdir,
            "tls-server",
            {
                "sni": ctx.sni_seen.get("sni"),  # type: ignore[attr-defined]
                "version": tls.version(),
                "cipher": cipher[0] if cipher else None,
                "alpn": tls.selected_alpn_protocol(),
                "size": len(body),
                "sha256": realcase.sha256(body),
            },
        )
        with contextlib.suppress(OSError):  # the peer may close first (ssl.SSLError is one)
            tls.unwrap()


def client_context(workdir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(workdir / "cert.pem"))  # verifies SNI vs SAN
    ctx.set_alpn_protocols(ALPN)
    return ctx


def upload_over(sock: socket.socket, workdir: Path, body: bytes, *, spread: float = 0.0) -> None:
    """TLS client on a connected socket: handshake with SNI, upload `body`, read b"ok".
    `spread` > 0: send it in 64 KiB pieces evenly over about that many seconds (a slow sync
    whose one connection spans several of the meter's time buckets)."""
    with client_context(workdir).wrap_socket(sock, server_hostname=SNI) as tls:
        data = struct.pack("!I", len(body)) + body
        piece = 65536 if spread > 0 else len(data)
        pieces = range(0, len(data), piece)
        for offset in pieces:
            if offset:
                time.sleep(spread / len(pieces))
            tls.sendall(data[offset : offset + piece])
        assert recv_exactly(tls, 2) == b"ok"
        realcase.append_record(
            workdir,
            "tls-client",
            {"version": tls.version(), "alpn": tls.selected_alpn_protocol(), "size": len(body)},
        )
        with contextlib.suppress(OSError):  # the peer may close first (ssl.SSLError is one)
            tls.unwrap()


# -- ground truth of the fingerprints (Wireshark) -------------------------------------------

_FIELDS = [
    "tcp.stream",
    "tls.handshake.type",
    "tls.handshake.ja3",
    "tls.handshake.ja3s",
    "tls.handshake.extensions_server_name",
    "tls.handshake.ciphersuite",
    "tls.handshake.extension.type",
    "tls.handshake.sig_hash_alg",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_alpn_str",
    "tls.handshake.version",
]


def _is_grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def _ints(text: str) -> list[int]:
    return [int(v, 0) for v in text.split(",") if v]


def _ja4(client: dict[str, str]) -> str:
    """JA4 per FoxIO-LLC/ja4 technical_details/JA4.md from tshark's ClientHello fields."""
    ciphers = [c for c in _ints(client["tls.handshake.ciphersuite"]) if not _is_grease(c)]
    # tshark lists ClientHello extension types first (a ServerHello's come in another row)
    exts = [e for e in _ints(client["tls.handshake.extension.type"]) if not _is_grease(e)]
    sig = [s for s in _ints(client["tls.handshake.sig_hash_alg"]) if not _is_grease(s)]
    versions = [v for v in _ints(client["tls.handshake.extensions.supported_version"])]
    versions = [v for v in versions if not _is_grease(v)]
    top = max(versions) if versions else int(client["tls.handshake.version"].split(",")[0], 0)
    names = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
    alpn = client["tls.handshake.extensions_alpn_str"].split(",")[0]
    alpn_part = (alpn[0] + alpn[-1]) if alpn else "00"
    a = f"t{names.get(top, '00')}{'d' if 0 in exts else 'i'}{len(ciphers):02d}{len(exts):02d}"
    b = hashlib.sha256(",".join(f"{c:04x}" for c in sorted(ciphers)).encode()).hexdigest()[:12]
    c_text = ",".join(f"{e:04x}" for e in sorted(e for e in exts if e not in (0, 0x10)))
    if sig:
        c_text += "_" + ",".join(f"{s:04x}" for s in sig)
    c = hashlib.sha256(c_text.encode()).hexdigest()[:12]
    return f"{a}{alpn_part}_{b}_{c}"


def tshark_handshakes(pcap: Path, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Per TCP stream with a ClientHello, in stream order: sni, ja3_hash, ja3s_hash, ja4."""
    argv = ["tshark", "-r", str(pcap), "-Y", "tls.handshake.type == 1 || "
            "tls.handshake.type == 2", "-T", "fields", "-E", "separator=\t",
            "-E", "occurrence=a", "-E", "aggregator=,", *extra]  # fmt: skip
    for name in _FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    streams: dict[int, dict[str, Any]] = {}
    for line in out.splitlines():
        row = dict(zip(_FIELDS, line.split("\t"), strict=True))
        entry = streams.setdefault(int(row["tcp.stream"]), {})
        types = _ints(row["tls.handshake.type"])
        if 1 in types:
            entry["sni"] = row["tls.handshake.extensions_server_name"] or None
            entry["ja3_hash"] = row["tls.handshake.ja3"]
            entry["ja4"] = _ja4(row)
        if 2 in types:
            entry["ja3s_hash"] = row["tls.handshake.ja3s"]
    return [streams[k] for k in sorted(streams) if "ja3_hash" in streams[k]]


def tls_expectation(
    server: dict[str, Any], cert: dict[str, Any] | None, wire: dict[str, Any]
) -> dict[str, Any]:
    """One entry of the "tls" list (see pcaps/README.md)."""
    assert wire["sni"] == server["sni"] == SNI, (wire, server)
    entry: dict[str, Any] = {
        "sni": server["sni"],
        "alpn": ALPN,
        "client_version": "TLSv1.3",
        "version": server["version"],
        "cipher_suite": IANA[server["cipher"]],
        "ja3_hash": wire["ja3_hash"],
        "ja3s_hash": wire["ja3s_hash"],
        "ja4": wire["ja4"],
        "ech": False,
        "resumed": False,
    }
    if cert is None:
        entry["certificates"] = []  # TLS 1.3: the chain is encrypted
    else:
        entry["certificates[0].subject"] = cert["subject"]
        entry["certificates[0].issuer"] = cert["issuer"]
        entry["certificates[0].sans"] = cert["sans"]
        entry["certificates[0].serial"] = cert["serial"]
        entry["certificates[0].sha256"] = cert["sha256"]
    return entry


def write_expected_tls(
    case_dir: Path,
    *,
    tls: list[dict[str, Any]],
    http: list[dict[str, Any]],
    flows: int,
    anomalies: list[str] | None = None,
) -> None:
    """expected.json of a TLS case: write_expected's keys (no objects: TLS is opaque) + "tls"."""
    doc = {
        "case": case_dir.name,
        "objects": [],
        "objects_exhaustive": True,
        "http": http,
        "tls": tls,
        "anomalies_include": anomalies or [],
        "flows": flows,
        "read_error": None,
    }
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
