"""encrypted-uploads (REAL): encrypted containers from the fingerprint corpus leave over HTTP,
SMTP and FTP, next to plain negatives, in one capture.

The files are the committed samples of tests/data/fingerprint/corpus/ (made with the real
tools by tests/data/fingerprint/make_corpus.py; the RAR samples built from the RAR technotes by
tests/content/fingerprint/rarbuild.py, as no free tool writes RAR); their manifest gives each
object's expected `fingerprint` (type, encrypted, encryption). One internal client, one
external server (198.51.100.20) running three servers (HTTP, SMTP, FTP; one process each):

1. HTTP multipart POST /portal/upload with four files: the 7z with encrypted names (-mhe),
   the ZipCrypto (zip -P) ZIP of the patient CSV, the age (X25519) file and a plain ZIP;
2. HTTP PUT (three requests on one keep-alive connection): the openssl enc file, the gpg -c
   file, the RAR 5 archive with encrypted headers (rar -hp);
3. SMTP: one message with the 7z AES (data encrypted), the 7-Zip AES-256 ZIP of the patient
   CSV, the clear-signed text and the RAR 4 archive with an AES-128 file as attachments
   (base64), plus the text body;
4. FTP (passive): STOR of the AES-256 PDF and of the .tar.gz holding the age file.

Members of the containers Sluice opens are objects too, and expected.json lists them
(objects_exhaustive true): their names, bytes, parent and container path are computed here
with zipfile, gzip and tarfile from the corpus bytes (`member_objects`), never from Sluice's
output. Members whose data is encrypted (ZipCrypto, WinZip AES) are not objects: their bytes
are ciphertext; 7z and RAR are fingerprinted, not opened.
"""

from __future__ import annotations

import argparse
import ftplib
import gzip
import hashlib
import http.client
import io
import json
import shutil
import smtplib
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, ftpcase, mailmsg, realcase, smtpcase
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import SERVER_V4, NetnsPair

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "fingerprint" / "corpus"
MANIFEST = {s["file"]: s for s in json.loads((CORPUS / "manifest.json").read_text())["samples"]}


def sample(name: str) -> bytes:
    data = (CORPUS / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == MANIFEST[name]["sha256"], f"{name} changed"
    return data


# (corpus sample, the name it travels under)
POST_PARTS = [
    ("7z-aes-hidden-names.7z", "export-week27.7z"),
    ("zip-pkware.zip", "patients-week27.zip"),
    ("age-x25519.age", "patients-week27.csv.age"),
    ("zip-plain.zip", "handleiding.zip"),
]
POST_URI = "/portal/upload"
BOUNDARY = "----sluiceEncryptedUpload27"
PUTS = [
    ("openssl-enc.bin", "/upload/patients-week27.csv.enc"),
    ("gpg-symmetric.gpg", "/upload/patients-week27.csv.gpg"),
    ("rar5-encrypted-headers.rar", "/upload/export-week27.rar"),
]
MAIL_ATTACHMENTS = [
    ("7z-aes.7z", "export-week27.7z", "application/x-7z-compressed"),
    ("zip-aes-256-7zz.zip", "patients-week27.zip", "application/zip"),
    ("gpg-clearsigned.txt.asc", "overdracht.txt.asc", "text/plain"),
    ("rar4-encrypted.rar", "patients-week27.rar", "application/vnd.rar"),
]
FTP_STORES = [
    ("pdf-aes-256.pdf", "incoming/uitslagen-week27.pdf"),
    ("tar-gz-containing-age.tar.gz", "incoming/backup-week27.tar.gz"),
]
SUBJECT = "Export week 27 (versleuteld)"
TEXT = (
    "Beste collega,\n\nIn de bijlage de versleutelde export van week 27 (fictieve "
    "testgegevens). Het wachtwoord volgt telefonisch.\n\nMet vriendelijke groet,\nA. Voorbeeld\n"
)
PLAIN_TEXT_FINGERPRINT = {"type": "text", "encrypted": False, "encryption": None}
JSON_FINGERPRINT = {"type": "json", "encrypted": False, "encryption": None}


def fingerprint(name: str) -> dict[str, Any]:
    """The subset of a corpus sample's fingerprint the sensor must report."""
    entry = MANIFEST[name]
    return {key: entry[key] for key in ("type", "encrypted", "encryption")}


# -- members: what the containers hold, read with the standard library ------------------------

GZIP_FNAME = 0x08  # RFC 1952 2.3.1: FLG bit 3, an original file name follows the header
GZIP_FEXTRA = 0x04


def gzip_member_name(outer: str, data: bytes) -> str:
    """The name of a gzip stream's member: its FNAME when gzip wrote one (RFC 1952 2.3.1),
    else the outer name less ".gz" (".tgz" -> ".tar"), as gunzip names its output."""
    assert data[:3] == b"\x1f\x8b\x08", "not a deflate gzip stream"
    flags = data[3]
    if flags & GZIP_FNAME:
        pos = 10
        if flags & GZIP_FEXTRA:
            pos += 2 + int.from_bytes(data[10:12], "little")
        return data[pos : data.index(b"\0", pos)].decode("latin-1")
    for suffix, replacement in ((".tgz", ".tar"), (".gz", "")):
        if outer.lower().endswith(suffix):
            return outer[: -len(suffix)] + replacement
    raise AssertionError(f"no FNAME and no .gz suffix: {outer}")


def opened(name: str, data: bytes) -> tuple[str, list[tuple[str, bytes]]] | None:
    """(format, [(member name, member bytes)]) for the containers Sluice opens, None for the
    rest. ZIP members with encrypted data (flag bit 0) are left out: their bytes are ciphertext
    and become no object; directories have no bytes."""
    buf = io.BytesIO(data)
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(buf) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir() and not i.flag_bits & 0x1]
            return "zip", [(i.filename, zf.read(i)) for i in infos]
    if data[:2] == b"\x1f\x8b":
        return "gzip", [(gzip_member_name(name, data), gzip.decompress(data))]
    if data[257:262] == b"ustar":
        members = []
        with tarfile.open(fileobj=buf, mode="r:") as tf:
            for member in tf.getmembers():
                content = tf.extractfile(member) if member.isfile() else None
                if content is not None:
                    members.append((member.name, content.read()))
        return "tar", members
    return None


def member_fingerprint(data: bytes) -> dict[str, Any]:
    """A member's fingerprint subset: the manifest's when its bytes are a corpus sample (the
    members here are), else the format it was just opened as (a tar from a .tar.gz: plain)."""
    digest = hashlib.sha256(data).hexdigest()
    for entry in MANIFEST.values():
        if entry["sha256"] == digest:
            return fingerprint(entry["file"])
    found = opened("", data)
    assert found is not None and found[0] == "tar", "a member of unknown type"
    return {"type": "tar", "encrypted": False, "encryption": None}


def member_objects(
    base: dict[str, Any], name: str, data: bytes, path: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every member object under the transferred object `data` named `name`, depth first in
    container order: `base` (proto, direction) plus filename, bytes, parent and the container
    path (names from the outermost object down)."""
    path = path or [name]
    found = opened(name, data)
    if found is None:
        return []
    out = []
    parent = hashlib.sha256(data).hexdigest()
    for member, content in found[1]:
        obj = {
            **base,
            "filename": member,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "complete": True,
            "missing_bytes": 0,
            "parent_sha256": parent,
            "container_path": [*path, member],
            "fingerprint": member_fingerprint(content),
        }
        out.append(obj)
        out += member_objects(base, member, content, [*path, member])
    return out


def multipart_body() -> bytes:
    out = b""
    for index, (name, sent_as) in enumerate(POST_PARTS):
        headers = (
            f'Content-Disposition: form-data; name="file{index}"; filename="{sent_as}"\r\n'
            "Content-Type: application/octet-stream\r\n"
        ).encode()
        out += b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + sample(name) + b"\r\n"
    return out + b"--" + BOUNDARY.encode() + b"--\r\n"


def mail_message() -> bytes:
    parts = [mailmsg.text_entity(TEXT, "quoted-printable")]
    for name, sent_as, ctype in MAIL_ATTACHMENTS:
        parts.append(
            entity(
                [
                    ("Content-Type", f'{ctype}; name="{sent_as}"'),
                    ("Content-Disposition", f'attachment; filename="{sent_as}"'),
                    ("Content-Transfer-Encoding", "base64"),
                ],
                b64(sample(name)),
            )
        )
    return mailmsg.message(
        subject=SUBJECT,
        msg_id="encrypted-uploads-20250701120000",
        body_entity=multipart("mixed", "=_sluice_encrypted_27", parts),
    )


BODY = multipart_body()
MESSAGE = mail_message()


class Handler(realcase.RecordingHandler):
    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"stored": len(body)}).encode())

    do_PUT = do_POST


# -- servers (one process each, in the server namespace) --------------------------------------


def serve(role: str, workdir: Path) -> None:
    if role == "http":
        realcase.serve_http(Handler, workdir)
    elif role == "smtp":
        smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir), smtpcase.SMTP_PORT)
    else:
        ftpcase.serve_ftp(workdir, {})


# -- the client (in the client namespace) -----------------------------------------------------


def client(workdir: Path) -> None:
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=10)
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    conn.request("POST", POST_URI, body=BODY, headers={"Content-Type": ctype})
    realcase.save_blob(workdir, "response-0", conn.getresponse().read())
    conn.close()
    conn = http.client.HTTPConnection(SERVER_V4, realcase.HTTP_PORT, timeout=10)
    for index, (name, uri) in enumerate(PUTS, start=1):
        headers = {"Content-Type": "application/octet-stream"}
        conn.request("PUT", uri, body=sample(name), headers=headers)
        realcase.save_blob(workdir, f"response-{index}", conn.getresponse().read())
    conn.close()

    with smtplib.SMTP(SERVER_V4, smtpcase.SMTP_PORT, local_hostname=smtpcase.CLIENT_HELO,
                      timeout=10) as smtp:  # fmt: skip
        refused = smtp.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], MESSAGE)
        assert not refused, refused
        smtpcase.record_sent(workdir, MESSAGE)

    with ftplib.FTP() as ftp:
        ftp.connect(SERVER_V4, ftpcase.FTP_PORT, timeout=10)
        ftp.login(ftpcase.FTP_USER, ftpcase.FTP_PASSWORD)
        ftp.set_pasv(True)
        for name, arg in FTP_STORES:
            data = sample(name)
            ftp.storbinary(f"STOR {arg}", io.BytesIO(data))
            ftpcase.record_client(workdir, "received", arg, data)
        ftp.quit()


# -- expected.json from ground truth ----------------------------------------------------------


def http_expectation(workdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    requests = realcase.read_records(workdir, "server-requests")
    responses = realcase.read_records(workdir, "server-responses")
    bodies = [BODY, *(sample(name) for name, _uri in PUTS)]
    assert [r["method"] for r in requests] == ["POST", *(["PUT"] * len(PUTS))], requests
    assert [r["uri"] for r in requests] == [POST_URI, *(uri for _n, uri in PUTS)], requests
    assert [r["sha256"] for r in requests] == [realcase.sha256(b) for b in bodies], (
        "server received other bytes than were sent"
    )
    objects = []
    upload = {"proto": "http", "direction": "upload"}
    for name, sent_as in POST_PARTS:
        obj = expect.http_object("upload", sample(name), filename=sent_as)
        objects.append({**obj, "fingerprint": fingerprint(name)})
        objects += member_objects(upload, sent_as, sample(name))
    for name, uri in PUTS:
        put_name = expect.uri_filename(uri)
        obj = expect.http_object("upload", sample(name), filename=put_name)
        objects.append({**obj, "fingerprint": fingerprint(name)})
        objects += member_objects(upload, put_name or "", sample(name))
    for index, (req, resp) in enumerate(zip(requests, responses, strict=True)):
        answer = (workdir / f"response-{index}").read_bytes()
        assert realcase.sha256(answer) == resp["sha256"] and resp["status"] == 200
        obj = expect.http_object("download", answer, filename=expect.uri_filename(req["uri"]))
        objects.append({**obj, "fingerprint": JSON_FINGERPRINT})
    http = [
        expect.http_request(req["method"], req["host"], req["uri"], resp["status"])
        for req, resp in zip(requests, responses, strict=True)
    ]
    return objects, http


def smtp_expectation() -> list[dict[str, Any]]:
    """The message's leaves, checked against the parts put in, each with its fingerprint."""
    leaves = expect.mime_leaves(MESSAGE)
    assert [n for n, _d, _a in leaves] == [None, *(s for _n, s, _c in MAIL_ATTACHMENTS)], leaves
    assert [d for _n, d, _a in leaves[1:]] == [sample(n) for n, _s, _c in MAIL_ATTACHMENTS]
    prints = [PLAIN_TEXT_FINGERPRINT, *(fingerprint(n) for n, _s, _c in MAIL_ATTACHMENTS)]
    objects = expect.smtp_objects(MESSAGE)
    assert len(objects) == len(prints), objects
    out = []
    for obj, fp, (_name, data, _att) in zip(objects, prints, leaves, strict=True):
        out.append({**obj, "fingerprint": fp})
        out += member_objects({"proto": "smtp", "direction": "upload"}, obj["filename"] or "", data)
    return out


def check_members(objects: list[dict[str, Any]]) -> None:
    """The members this capture must show, stated by hand as a cross-check of `opened`: the
    plain ZIP's two files, and gzip > tar > (age file, notes) from the .tar.gz (gzip -n wrote
    no FNAME, so the tar is named after the upload); the encrypted containers open to nothing."""
    paths = [o["container_path"] for o in objects if "container_path" in o]
    assert paths == [
        ["handleiding.zip", "patients.csv"],
        ["handleiding.zip", "notes.txt"],
        ["backup-week27.tar.gz", "backup-week27.tar"],
        ["backup-week27.tar.gz", "backup-week27.tar", "age-x25519.age"],
        ["backup-week27.tar.gz", "backup-week27.tar", "notes.txt"],
    ], paths


def build_expected(case_dir: Path, workdir: Path) -> None:
    pcap = case_dir / "input.pcap"
    objects, http = http_expectation(workdir)
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, [mailmsg.EXTERNAL])])
    smtpcase.check_imf(pcap, [SUBJECT])
    objects += smtp_expectation()
    stores = [(arg, sample(name)) for name, arg in FTP_STORES]
    ftpcase.check_transfers(workdir, [("received", arg, data) for arg, data in stores])
    conns = ftpcase.tcp_connections(pcap)
    ports = [c["server"][1] for c in conns]
    # POST, keep-alive PUTs, SMTP, FTP control, one passive data connection per STOR.
    assert ports[:4] == [realcase.HTTP_PORT, realcase.HTTP_PORT, smtpcase.SMTP_PORT,
                         ftpcase.FTP_PORT], ports  # fmt: skip
    assert len(ports) == 6 and all(p in ftpcase.PASSIVE_PORTS for p in ports[4:]), ports
    assert [c["to_server"] for c in conns[4:]] == [data for _arg, data in stores]
    for (name, arg), (_a, data) in zip(FTP_STORES, stores, strict=True):
        obj = ftpcase.ftp_object("upload", arg, data)
        objects.append({**obj, "fingerprint": fingerprint(name)})
        objects += member_objects({"proto": "ftp", "direction": "upload"}, obj["filename"], data)
    check_members(objects)
    flows = expect.count_flows(pcap)
    assert flows == 6, flows
    expect.write_expected(
        case_dir,
        objects=objects,
        http=http,
        flows=flows,
        exhaustive=True,
        extra={
            "smtp": [
                expect.smtp_transaction(
                    helo=smtpcase.CLIENT_HELO,
                    mail_from=mailmsg.SENDER,
                    rcpt_to=[mailmsg.EXTERNAL],
                    message=MESSAGE,
                )
            ],
            "ftp": [ftpcase.ftp_transfer("STOR", arg, "passive", True) for _n, arg in FTP_STORES],
            "ftp_sessions": [{"user": ftpcase.FTP_USER, "auth_tls": False, "login_success": True}],
            "secrets_absent": [ftpcase.FTP_PASSWORD],
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["http", "smtp", "ftp", "client"])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.role == "client":
        client(args.workdir)
        return
    if args.role:
        serve(args.role, args.workdir)
        return

    case_dir = Path(__file__).resolve().parent
    pcap = case_dir / "input.pcap"
    workdir = Path(tempfile.mkdtemp(prefix="sluice-pcap-"))
    workdir.chmod(0o777)
    me = [sys.executable, str(Path(__file__).resolve())]
    try:
        with NetnsPair(case_dir.name) as net:
            for role in ("http", "smtp", "ftp"):
                srv = net.spawn("server", [*me, "--role", role, "--workdir", str(workdir)])
                net.wait_for_line(srv, b"READY")
            with net.capture(pcap):
                net.run("client", [*me, "--role", "client", "--workdir", str(workdir)])
        build_expected(case_dir, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
