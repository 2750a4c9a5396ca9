"""Make the evaluation corpus of the classification stage and its ground truth.

Stage: test data (not part of the sensor). In: an output directory, a seed and a scale. Out:
`OUTDIR/positive/*` (fake patient exports in the Clinical Diagnostics shape: CSV, XLSX, DOCX,
PDF, FHIR JSON, HL7 v2, each also inside a plain ZIP, and referral letters naming one patient),
`OUTDIR/negative/*` (the false-positive traps of research note §1.1 and §7: invoices and order
lists with 9-digit numbers, a phone directory, server logs, source code, a screening newsletter,
a KvK/RSIN list, supplier IBANs, a timetable, documentation with the published example values,
a FHIR directory of organisations) and `OUTDIR/labels.json` (one entry per file: README.md).

Run from the repository root:
`.venv/bin/python tests/data/classify/make_eval.py OUTDIR [--seed S] [--scale small|full]`.

Deterministic: every file's bytes follow from (seed, scale) alone. Each file draws from its own
`random.Random` seeded with a SHA-256 of (seed, file name); ZIP entries carry a fixed time; no
set or dict order depends on hashing. All people, businesses and numbers are invented
(tests/data/classify/fake.py, pcaps/_lib/fakedata.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import math
import random
import sys
import time
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.data.classify import fake  # noqa: E402
from tests.data.classify.fake import Patient  # noqa: E402

SCALES = ("small", "full")
# Copies of every variant per scale: the first copy has the variant's fixed size, the others a
# size drawn log-uniformly from its range (5 to 2,000 records for the patient exports).
COPIES = {"small": 1, "full": 12}
MAX_SMALL_BYTES = 5 * 1024 * 1024  # the brief's cap for the corpus the tests generate
ZIP_TIME = (2025, 7, 1, 10, 0, 0)
PDF_MAX_RECORDS = 120  # one A4 page at a 5 pt leading
# A patient export whose BSNs have no context word of their own (no header row, a PDF table
# whose header is far from most rows) holds at least this many: research note §7.2 makes 20
# context-less checksum-valid BSNs HIGH, so a smaller one would not be a fair "must alert".
MIN_RECORDS_WITHOUT_CONTEXT = 20
FHIR_BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
FHIR_AGB_SYSTEM = "http://fhir.nl/fhir/NamingSystem/agb-z"
FHIR_URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
HL7_BSN_OID = "2.16.840.1.113883.2.4.6.3"
HL7_AGB_OID = "2.16.840.1.113883.2.4.6.1"

XLSX_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
DOCX_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
OFFICE_DOC_REL = REL_NS + "/officeDocument"

# ---------------------------------------------------------------------------------------------
# Ground truth


@dataclass(slots=True)
class Facts:
    """What one file really holds: distinct values per identifier type, records, decoys."""

    values: dict[str, set[str]] = field(default_factory=dict)
    records: int = 0
    categories: set[str] = field(default_factory=set)
    decoys: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: Facts) -> None:
        for kind, values in other.values.items():
            self.values.setdefault(kind, set()).update(values)
        self.records += other.records
        self.categories |= other.categories
        for kind, items in other.decoys.items():
            self.decoys.setdefault(kind, []).extend(items)


@dataclass(slots=True)
class Label:
    file: str
    format: str
    kind: str
    expected_severity_min: str | None
    expected_severity_max: str | None
    identifiers: dict[str, int]
    records: int
    categories: list[str]
    note: str
    meta: dict[str, Any]
    planted: dict[str, list[str]]
    decoys: dict[str, list[str]]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def patient_facts(rows: Sequence[Patient]) -> Facts:
    return Facts(
        values={
            "bsn": {p.bsn for p in rows},
            "dob": {p.birth.isoformat() for p in rows},
            "postcode": {p.postcode for p in rows},
            "agb": {p.gp.agb for p in rows},
        },
        records=len(rows),
        categories={"national_id", "health", "contact"},
    )


def nine_digit_decoys(numbers: Sequence[str]) -> dict[str, list[str]]:
    """Split the 9-digit look-alikes of a negative into those failing and passing the 11-test."""
    unique = sorted(set(numbers))
    return {
        "elfproef_fail": [n for n in unique if not fake.elfproef(n)],
        "elfproef_pass": [n for n in unique if fake.elfproef(n)],
    }


# ---------------------------------------------------------------------------------------------
# Containers written by hand (deterministic bytes)


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A plain (unencrypted) deflate ZIP whose entries carry ZIP_TIME."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def xml_doc(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body).encode()


def content_types(overrides: Sequence[tuple[str, str]]) -> bytes:
    parts = [
        f'<Types xmlns="{CT_NS}">',
        '<Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/>',
        '<Default Extension="xml" ContentType="application/xml"/>',
    ]
    parts += [f'<Override PartName="{p}" ContentType="{t}"/>' for p, t in overrides]
    return xml_doc("".join(parts) + "</Types>")


def relationships(rels: Sequence[tuple[str, str, str]]) -> bytes:
    items = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{g}"/>' for i, t, g in rels)
    return xml_doc(f'<Relationships xmlns="{PKG_REL_NS}">{items}</Relationships>')


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def xlsx_bytes(
    rows: Sequence[Sequence[str | int]], sheet: str = "Export", *, strings_first: bool = False
) -> bytes:
    """An OOXML workbook: one sheet, strings in sharedStrings.xml, ints as numeric cells.
    The string table comes after the sheet in the ZIP (as Excel writes it), or before it
    (`strings_first`, as some libraries do): a reader must join them either way."""
    strings: dict[str, int] = {}
    order: list[str] = []
    total_refs = 0
    xml_rows = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{column_letter(c)}{r}"
            if isinstance(value, int):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
                continue
            if value not in strings:
                strings[value] = len(order)
                order.append(value)
            total_refs += 1
            cells.append(f'<c r="{ref}" t="s"><v>{strings[value]}</v></c>')
        xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    sheet_xml = xml_doc(
        f'<worksheet xmlns="{XLSX_NS}" xmlns:r="{REL_NS}"><sheetData>'
        + "".join(xml_rows)
        + "</sheetData></worksheet>"
    )
    sst = xml_doc(
        f'<sst xmlns="{XLSX_NS}" count="{total_refs}" uniqueCount="{len(order)}">'
        + "".join(f'<si><t xml:space="preserve">{escape(s)}</t></si>' for s in order)
        + "</sst>"
    )
    workbook = xml_doc(
        f'<workbook xmlns="{XLSX_NS}" xmlns:r="{REL_NS}"><sheets>'
        f'<sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml."
    return zip_bytes(
        [
            (
                "[Content_Types].xml",
                content_types(
                    [
                        ("/xl/workbook.xml", ct + "sheet.main+xml"),
                        ("/xl/worksheets/sheet1.xml", ct + "worksheet+xml"),
                        ("/xl/sharedStrings.xml", ct + "sharedStrings+xml"),
                    ]
                ),
            ),
            ("_rels/.rels", relationships([("rId1", OFFICE_DOC_REL, "xl/workbook.xml")])),
            ("xl/workbook.xml", workbook),
            (
                "xl/_rels/workbook.xml.rels",
                relationships(
                    [
                        ("rId1", REL_NS + "/worksheet", "worksheets/sheet1.xml"),
                        ("rId2", REL_NS + "/sharedStrings", "sharedStrings.xml"),
                    ]
                ),
            ),
            *(
                [("xl/sharedStrings.xml", sst), ("xl/worksheets/sheet1.xml", sheet_xml)]
                if strings_first
                else [("xl/worksheets/sheet1.xml", sheet_xml), ("xl/sharedStrings.xml", sst)]
            ),
        ]
    )


def docx_run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def docx_paragraph(text: str, *, split_at: int = 0) -> str:
    """A paragraph; `split_at` > 0 cuts the text into two runs there, as Word's rsids do."""
    if 0 < split_at < len(text):
        return f"<w:p>{docx_run(text[:split_at])}{docx_run(text[split_at:])}</w:p>"
    return f"<w:p>{docx_run(text)}</w:p>"


def docx_bytes(
    before: Sequence[str],
    table: Sequence[Sequence[str]] = (),
    after: Sequence[str] = (),
    *,
    split_column: int = -1,
) -> bytes:
    """A WordprocessingML document: paragraphs, an optional table, paragraphs.

    `split_column`: every body cell of that column is written as two runs (cut mid-value), so
    an extractor must join the runs of a paragraph to see the whole number.
    """
    body = [docx_paragraph(t) for t in before]
    if table:
        rows = []
        for r, row in enumerate(table):
            cells = []
            for c, text in enumerate(row):
                split = len(text) // 2 if (c == split_column and r > 0) else 0
                cells.append(f"<w:tc>{docx_paragraph(text, split_at=split)}</w:tc>")
            rows.append(f"<w:tr>{''.join(cells)}</w:tr>")
        body.append(
            '<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/></w:tblPr>' + "".join(rows) + "</w:tbl>"
        )
    body += [docx_paragraph(t) for t in after]
    document = xml_doc(
        f'<w:document xmlns:w="{DOCX_NS}"><w:body>{"".join(body)}<w:sectPr/></w:body></w:document>'
    )
    ct = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    return zip_bytes(
        [
            ("[Content_Types].xml", content_types([("/word/document.xml", ct)])),
            ("_rels/.rels", relationships([("rId1", OFFICE_DOC_REL, "word/document.xml")])),
            ("word/document.xml", document),
        ]
    )


def pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252), with \\ ( ) escaped (PDF 1.7 7.3.4.2)."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf_bytes(lines: Sequence[str]) -> bytes:
    """A one-page PDF 1.4: Helvetica, one FlateDecode content stream of Tj lines, a true xref."""
    leading = min(12.0, 760.0 / max(1, len(lines)))
    size = max(3.0, leading * 0.85)
    ops = [f"BT /F1 {size:.2f} Tf {leading:.2f} TL 36 806 Td".encode()]
    ops += [pdf_string(line) + b" Tj T*" for line in lines]
    ops.append(b"ET")
    stream = zlib.compress(b"\n".join(ops) + b"\n", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Producer (Sluice evaluation corpus) /Title (Export) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Patient exports


HEADERS = {
    "lab": ["naam", "adres", "postcode", "woonplaats", "geslacht", "geboortedatum", "bsn",
            "soort onderzoek", "testuitslag", "naam huisarts", "agb huisarts"],
    "caps": ["Naam", "Adres", "Postcode", "Woonplaats", "Geslacht", "Geboortedatum", "BSN",
             "Soort onderzoek", "Testuitslag", "Huisarts", "AGB-code huisarts"],
    "long": ["patient_naam", "straat_huisnummer", "postcode", "woonplaats", "geslacht",
             "geb_datum", "burgerservicenummer", "onderzoek", "uitslag", "huisarts_naam",
             "huisarts_agb"],
}  # fmt: skip
BSN_COLUMN = 6


def format_bsn(bsn: str, style: str) -> str:
    if style == "dots":
        return f"{bsn[:3]}.{bsn[3:6]}.{bsn[6:]}"
    if style == "spaces":
        return f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}"
    return bsn


def format_date(day: dt.date, style: str) -> str:
    return day.isoformat() if style == "iso" else day.strftime("%d-%m-%Y")


def export_row(p: Patient, *, bsn_style: str = "plain", date_style: str = "nl") -> list[str]:
    return [
        p.name,
        p.address,
        p.postcode,
        p.town,
        p.gender,
        format_date(p.birth, date_style),
        format_bsn(p.bsn, bsn_style),
        p.screening.soort,
        p.screening.uitslag(),
        p.gp.name,
        p.gp.agb,
    ]


def export_rows(
    rng: random.Random, n: int, taken: set[str], *, repeat: float = 0.0, zero_every: int = 0
) -> list[Patient]:
    """`n` rows; a fraction `repeat` of them is a second test of a patient already listed."""
    repeats = int(n * repeat)
    people = fake.patients(rng, n - repeats, taken=taken, leading_zero_every=zero_every)
    rows = list(people)
    for _ in range(repeats):
        rows.append(replace(rng.choice(people), screening=fake.screening(rng)))
    first, rest = rows[0], rows[1:]
    rng.shuffle(rest)
    return [first, *rest]  # the non-ASCII name stays in the first row


def build_csv(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    rows = export_rows(rng, n, taken, repeat=opt.get("repeat", 0.0))
    buf = io.StringIO()
    writer = csv.writer(
        buf,
        delimiter=opt["delimiter"],
        quoting=csv.QUOTE_ALL if opt.get("quote_all") else csv.QUOTE_MINIMAL,
        lineterminator=opt.get("eol", "\n"),
    )
    header = HEADERS[opt.get("header", "lab")] if opt.get("has_header", True) else None
    if header:
        writer.writerow(header)
    for p in rows:
        writer.writerow(export_row(p, bsn_style=opt.get("bsn_style", "plain"),
                                   date_style=opt.get("date_style", "nl")))  # fmt: skip
    facts = patient_facts(rows)
    facts.meta = {
        "encoding": opt["encoding"],
        "delimiter": opt["delimiter"],
        "header": header is not None,
        "columns": HEADERS[opt.get("header", "lab")],
        "bsn_column": BSN_COLUMN,
        "bsn_style": opt.get("bsn_style", "plain"),
    }
    return buf.getvalue().encode(opt["encoding"]), facts


def build_xlsx(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    numeric = opt["bsn_cell"] == "numeric"
    rows = export_rows(rng, n, taken, repeat=opt.get("repeat", 0.0),
                       zero_every=opt.get("zero_every", 0))  # fmt: skip
    header = HEADERS[opt.get("header", "caps")]
    table: list[list[str | int]] = [list(header)]
    for p in rows:
        cells: list[str | int] = list(export_row(p, date_style=opt.get("date_style", "nl")))
        if numeric:
            cells[BSN_COLUMN] = int(p.bsn)  # a BSN starting with 0 shows as 8 digits
        table.append(cells)
    facts = patient_facts(rows)
    strings_first = rng.random() < 0.5
    facts.meta = {"bsn_cell": opt["bsn_cell"], "columns": header, "bsn_column": BSN_COLUMN,
                  "leading_zero_bsns": sum(p.bsn.startswith("0") for p in rows),
                  "strings_first": strings_first}  # fmt: skip
    return xlsx_bytes(table, strings_first=strings_first), facts


REFERRAL_COLUMNS = ["Naam", "Geboortedatum", "BSN", "Postcode", "Uitslag", "Huisarts (AGB)"]


def build_docx(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    rows = export_rows(rng, n, taken)
    table = [REFERRAL_COLUMNS] + [
        [p.name, format_date(p.birth, "nl"), p.bsn, p.postcode, p.screening.uitslag(),
         f"{p.gp.name} ({p.gp.agb})"]
        for p in rows
    ]  # fmt: skip
    before = [
        "Screeningslaboratorium Oefenlab - Bevolkingsonderzoek baarmoederhalskanker",
        "Betreft: verwijzing gynaecoloog, overzicht patiënten met uitslag BVO BMHK",
        "Geachte collega, hierbij het overzicht van de cervixcytologie en hrHPV-uitslagen.",
    ]
    after = ["Met collegiale groet,", "Oefenlab, afdeling pathologie"]
    split = 2 if opt.get("split_runs") else -1
    facts = patient_facts(rows)
    facts.meta = {"columns": REFERRAL_COLUMNS, "bsn_column": 2, "split_runs": split >= 0}
    return docx_bytes(before, table, after, split_column=split), facts


def build_pdf(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    rows = export_rows(rng, min(n, PDF_MAX_RECORDS), taken)
    lines = [f"Patiëntenlijst BVO BMHK - Oefenlab - {len(rows)} patiënten"]
    if opt["style"] == "table":
        lines.append("Naam | Geboortedatum | BSN | Postcode | Woonplaats | Testuitslag")
        lines += [
            f"{p.name} | {format_date(p.birth, 'nl')} | {p.bsn} | {p.postcode} | {p.town} | "
            f"{p.screening.uitslag()}"
            for p in rows
        ]
    else:
        lines += [
            f"{p.name}, geb. {format_date(p.birth, 'nl')}, BSN {p.bsn}, {p.postcode} {p.town}, "
            f"uitslag: {p.screening.uitslag()}"
            for p in rows
        ]
    facts = patient_facts(rows)
    del facts.values["agb"]  # the list names no general practitioner
    facts.meta = {"style": opt["style"], "lines": len(lines)}
    return pdf_bytes(lines), facts


def fhir_uuid(rng: random.Random) -> str:
    return "urn:uuid:" + str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_fhir(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    people = fake.patients(rng, n, taken=taken)
    entries: list[dict[str, Any]] = []
    observations = 0
    for p in people:
        pid = fhir_uuid(rng)
        entries.append(
            {
                "fullUrl": pid,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": FHIR_BSN_SYSTEM, "value": p.bsn}],
                    "name": [{"family": p.family, "given": [p.given]}],
                    "gender": "female" if p.gender == "V" else "male",
                    "birthDate": p.birth.isoformat(),
                    "address": [
                        {
                            "line": [p.address],
                            "city": p.town,
                            "postalCode": p.postcode,
                            "country": "NL",
                        }
                    ],
                    "generalPractitioner": [
                        {
                            "identifier": {"system": FHIR_AGB_SYSTEM, "value": p.gp.agb},
                            "display": p.gp.name,
                        }
                    ],
                },
            }
        )
        s = p.screening
        results = [("hrHPV-test", "positief" if s.hpv_positive else "negatief")]
        if s.hpv_positive:
            results.append(("Cervixcytologie", f"{s.pap} {s.bethesda} KOPAC-B {s.kopac}"))
            if s.histology:
                results.append(("Histologie", s.histology))
        for code_text, value in results:
            observations += 1
            entries.append(
                {
                    "fullUrl": fhir_uuid(rng),
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "observation-category",
                                        "code": "laboratory",
                                    }
                                ]
                            }
                        ],
                        "code": {"text": f"{code_text} ({s.soort})"},
                        "subject": {"reference": pid},
                        "valueString": value,
                    },
                }
            )
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if opt.get("compact"):
        text = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
    facts = patient_facts(people)
    facts.meta = {"patients": len(people), "observations": observations,
                  "compact": bool(opt.get("compact"))}  # fmt: skip
    return text.encode(), facts


def hl7_message(p: Patient, seq: int, rng: random.Random, charset: str) -> list[str]:
    s = p.screening
    stamp = f"202507{rng.randrange(1, 29):02d}{rng.randrange(7, 18):02d}{rng.randrange(60):02d}00"
    order = f"BMHK25-{seq:06d}"
    gp_family = p.gp.name.split(", ")[0]
    segments = [
        f"MSH|^~\\&|BMHKLAB|OEFENLAB|HIS|HUISARTS|{stamp}||ORU^R01^ORU_R01|MSG{seq:08d}|P|2.5"
        f"|||||NLD|{charset}",
        f"PID|1||{p.bsn}^^^NLMINBIZA&{HL7_BSN_OID}&ISO^NNNLD||{p.family}^{p.given}||"
        f"{p.birth.strftime('%Y%m%d')}|{'F' if p.gender == 'V' else 'M'}|||"
        f"{p.address}^^{p.town}^^{p.postcode.replace(' ', '')}^NL",
        "PV1|1|O",
        f"ORC|RE|{order}|{order}-F",
        f"OBR|1|{order}|{order}-F|BMHK^Bevolkingsonderzoek baarmoederhalskanker^L|||{stamp}"
        f"|||||||||{p.gp.agb}^{gp_family}^^^^^^^VEKTIS&{HL7_AGB_OID}&ISO",  # OBR-16
        f"OBX|1|ST|HRHPV^hrHPV-test^L||{'positief' if s.hpv_positive else 'negatief'}||||||F",
    ]
    if s.hpv_positive:
        segments.append(f"OBX|2|ST|CYTO^Cervixcytologie^L||{s.pap} {s.bethesda}||||||F")
        segments.append(f"OBX|3|ST|KOPAC^KOPAC-B^L||{s.kopac}||||||F")
        if s.histology:
            segments.append(f"OBX|4|ST|HIST^Histologie^L||{s.histology}||||||F")
    return segments


def build_hl7(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    rows = export_rows(rng, n, taken, repeat=opt.get("repeat", 0.0))
    encoding = opt["encoding"]
    charset = "8859/1" if encoding == "latin-1" else "UNICODE UTF-8"
    sep = opt.get("segment_end", "\r")
    text = "".join(
        sep.join(hl7_message(p, i, rng, charset)) + sep + opt.get("between", "")
        for i, p in enumerate(rows, start=1)
    )
    facts = patient_facts(rows)
    facts.meta = {"messages": len(rows), "encoding": encoding, "segment_end": sep}
    return text.encode(encoding), facts


Builder = Callable[[random.Random, int, set[str], dict[str, Any]], tuple[bytes, Facts]]


def build_zip(inner: Builder, ext: str, members: int) -> Builder:
    """A plain ZIP of `members` files made by `inner` (distinct patients in each)."""

    def build(
        rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
    ) -> tuple[bytes, Facts]:
        facts = Facts()
        files = []
        for i in range(members):
            data, part = inner(rng, n, taken, opt)
            files.append((f"export/deel-{i + 1:02d}.{ext}", data))
            facts.merge(part)
            facts.meta = {"inner_meta": part.meta}
        facts.meta = {"members": [name for name, _ in files], "member_format": ext,
                      "inner_meta": facts.meta["inner_meta"]}  # fmt: skip
        return zip_bytes(files), facts

    return build


def referral_text(p: Patient) -> list[str]:
    s = p.screening
    return [
        "Beste collega,",
        "",
        f"Graag verwijs ik mevrouw {p.name} (geboortedatum {format_date(p.birth, 'nl')}, "
        f"BSN {format_bsn(p.bsn, 'dots')}), wonende {p.address}, {p.postcode} {p.town}, naar "
        "uw spreekuur voor colposcopie.",
        f"In het kader van het bevolkingsonderzoek baarmoederhalskanker was de uitslag: "
        f"hrHPV positief, {s.pap or 'PAP3a2'}, {s.bethesda or 'ASC-H'}.",
        "Wilt u mij na het biopt de PA-uitslag laten weten?",
        "",
        "Met collegiale groet,",
        p.gp.name + f", AGB {p.gp.agb}",
    ]


def build_referral(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    (p,) = fake.patients(rng, 1, taken=taken)
    lines = referral_text(p)
    data = docx_bytes(lines) if opt["as"] == "docx" else ("\n".join(lines) + "\n").encode()
    return data, patient_facts([p])


# ---------------------------------------------------------------------------------------------
# Negatives

ARTICLES = ["Printerpapier A4 (doos 5x500)", "Koffiebonen 1 kg", "Nitril handschoenen M",
            "Toner zwart HP 305", "Kartonnen dozen 40x30x20", "Tape bruin 50 mm",
            "Bureaustoel Oefenline", "USB-C kabel 2 m", "Whiteboardstiften (set 4)",
            "Schoonmaakdoekjes (pak 50)"]  # fmt: skip
COMPANIES = ["Oefenleverancier B.V.", "Testhandel Demoveld", "Voorbeeld Logistiek B.V.",
             "Nepdorp Kantoorartikelen", "Proefman Techniek V.O.F.", "Mockstra Catering",
             "Stubbing Transport B.V.", "Dummerhof Facilitair", "Fictiefsma Bouw B.V.",
             "Testhuis ICT Diensten"]  # fmt: skip
DEPARTMENTS = ["Inkoop", "Logistiek", "Verkoop", "ICT", "Facilitair", "Financiën", "Magazijn"]


def company(rng: random.Random, i: int) -> str:
    return f"{rng.choice(COMPANIES).split(' B.V.')[0]} {i:03d} B.V."


def btw_id(rng: random.Random) -> tuple[str, str]:
    """An old-style NL BTW-id NL#########B01: its nine digits are an RSIN (11-test passes)."""
    digits = fake.rsin(rng)
    return f"NL{digits}B01", digits


def build_invoices(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    supplier_iban = fake.nl_iban(rng)
    btw, btw_digits = btw_id(rng)
    numbers = [btw_digits]
    out = []
    for _ in range(max(1, n // 10)):
        inv, order = fake.failing_nine_digits(rng), fake.failing_nine_digits(rng)
        numbers += [inv, order]
        out += [
            "FACTUUR",
            f"Oefenleverancier B.V. - Voorbeeldsingel 12 - {fake.postcode(rng)} Rijswijk",
            f"KvK {fake.kvk_number(rng)} - BTW {btw} - IBAN {fake.group_iban(supplier_iban)}",
            f"Factuurnummer: {inv}    Factuurdatum: {rng.randrange(1, 29):02d}-07-2025",
            f"Ordernummer: {order}    Klantnummer: {rng.randrange(1000, 99999)}",
            f"Klant: {company(rng, rng.randrange(1000))}",
            "",
            "Artikelnummer  Omschrijving                       Aantal   Bedrag",
        ]
        total = 0
        for _ in range(10):
            art = fake.failing_nine_digits(rng)
            numbers.append(art)
            qty, cents = rng.randrange(1, 20), rng.randrange(199, 25000)
            total += qty * cents
            out.append(
                f"{art}      {rng.choice(ARTICLES):<34} {qty:>5}   EUR {qty * cents / 100:.2f}"
            )
        out += [f"Totaal excl. BTW: EUR {total / 100:.2f}", "Betaling binnen 30 dagen.", "", ""]
    facts = Facts(values={"bsn": set(), "iban": {supplier_iban}}, categories={"financial"})
    facts.decoys = nine_digit_decoys(numbers)
    return ("\n".join(out)).encode(), facts


def order_numbers(rng: random.Random, n: int, pass_share: float) -> list[str]:
    """Order numbers: most fail the 11-test, a share passes it (by chance, as in real systems)."""
    return [fake.valid_bsn(rng) if rng.random() < pass_share else fake.failing_nine_digits(rng)
            for _ in range(n)]  # fmt: skip


def build_orders(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    numbers = order_numbers(rng, n, opt.get("pass_share", 0.3))
    facts = Facts(values={"bsn": set()}, records=0, decoys=nine_digit_decoys(numbers))
    rows = [
        [num, f"{rng.randrange(1, 29):02d}-06-2025", str(rng.randrange(1000, 99999)),
         rng.choice(ARTICLES), str(rng.randrange(1, 50)), f"{rng.randrange(500, 900000) / 100:.2f}"]
        for num in numbers
    ]  # fmt: skip
    header = ["ordernummer", "orderdatum", "klantnummer", "artikel", "aantal", "bedrag"]
    if opt["as"] == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return buf.getvalue().encode(), facts
    if opt["as"] == "xlsx":
        table: list[list[str | int]] = [list(header)]
        table += [[int(r[0]), *r[1:]] for r in rows]
        strings_first = rng.random() < 0.5
        facts.meta = {"strings_first": strings_first}
        return xlsx_bytes(table, sheet="Orders", strings_first=strings_first), facts
    lines = ["Orderoverzicht juni 2025 - Oefenleverancier B.V.", ""]
    lines += [f"Ordernummer {r[0]} - {r[1]} - klant {r[2]} - {r[3]} x{r[4]} - EUR {r[5]}"
              for r in rows]  # fmt: skip
    return ("\n".join(lines) + "\n").encode(), facts


def ascii_word(text: str) -> str:
    """Lower case, accents dropped, letters only: the local part of an ordinary address."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalpha())


def build_phonebook(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    phones: set[str] = set()
    emails: set[str] = set()
    standalone: list[str] = []
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    w.writerow(["naam", "afdeling", "telefoon", "mobiel", "e-mail"])
    for i in range(n):
        given, family = fake.full_name(rng)
        land, mobile = fake.landline_number(rng), fake.mobile_number(rng)
        phones |= {land, mobile}
        style = i % 4
        if style == 0:
            mob = f"06-{mobile[1:]}"
        elif style == 1:
            mob = f"+31 6 {mobile[1:]}"
        elif style == 2:
            mob = f"+31 {mobile}"  # nine digits standing alone: a BSN look-alike
            standalone.append(mobile)
        else:
            mob = f"0{mobile}"
        email = f"{ascii_word(given)}.{ascii_word(family)}{i}@example.com"
        emails.add(email)
        w.writerow(
            [f"{given} {family}", rng.choice(DEPARTMENTS), f"0{land[:2]}-{land[2:]}", mob, email]
        )
    facts = Facts(values={"bsn": set(), "phone": phones, "email": emails}, categories={"contact"})
    facts.decoys = nine_digit_decoys(standalone)
    return buf.getvalue().encode(), facts


def build_logs(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    users = [f"{ascii_word(fake.full_name(rng)[0])}{i}@example.org" for i in range(30)]
    used: set[str] = set()
    numbers: list[str] = []
    lines = []
    for i in range(n):
        hour = 8 + i * 10 // max(1, n)
        ts = f"2025-07-01T{hour:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
        req = str(rng.randrange(100_000_000, 1_000_000_000))
        dur = str(rng.randrange(100_000_000, 999_999_999))
        if i % 3 != 1:  # the access-log line carries neither
            numbers += [req, dur]
        if i % 3 == 0:
            user = rng.choice(users)
            used.add(user)
            path = f"/api/v1/orders/{rng.randrange(1, 99999)}"
            line = f"{ts}.{rng.randrange(1000):03d}Z INFO api request_id={req} user={user} "
            lines.append(line + f"path={path} status=200 dur_ns={dur}")
        elif i % 3 == 1:
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            lines.append(
                f'{ip} - - [01/Jul/2025:{ts[11:]} +0200] "GET /static/app.js HTTP/1.1" 200 '
                f'{rng.randrange(1000, 99999)} "-" "Mozilla/5.0"'
            )
        else:
            size = rng.choice([1024, 2048, 4096])
            lines.append(f"{ts}.000Z WARN cache evicted size={size} KB id={req} took {dur} ns")
    facts = Facts(values={"bsn": set(), "email": used}, categories={"contact"})
    facts.decoys = nine_digit_decoys(numbers)
    return ("\n".join(lines) + "\n").encode(), facts


PYTHON_SOURCE = '''"""Validate Dutch citizen service numbers (BSN) in the intake form."""

EXAMPLES = ["111222333", "123456782"]  # the documented test values, never real people


def elfproef(bsn: str) -> bool:
    """11-test: weights 9..2 and -1 (see docs/bsn.md)."""
    digits = bsn.zfill(9)
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1)))
    return (total - int(digits[8])) % 11 == 0


def test_examples() -> None:
    assert elfproef("111222333")
    assert elfproef("123456782")
    assert not elfproef("123456789")
'''


def build_source(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    if opt["lang"] == "python":
        facts = Facts(values={"bsn": set()}, decoys={"example_values": ["111222333", "123456782"]})
        facts.decoys.update(nine_digit_decoys(["123456789"]))
        return PYTHON_SOURCE.encode(), facts
    consts = [str(rng.randrange(100_000_000, 1_000_000_000)) for _ in range(min(12, max(3, n)))]
    body = "\n".join(f"    static final long LIMIT_{i} = {c}L; // tuning constant"
                     for i, c in enumerate(consts))  # fmt: skip
    text = (
        "package nl.example.shipping;\n\nimport java.time.Duration;\n\n"
        "public final class Limits {\n"
        "    static final int MAX_BYTES = 268435456;\n"
        "    static final Duration TIMEOUT = Duration.ofNanos(500000000L);\n"
        f"{body}\n\n"
        "    private Limits() {}\n\n"
        "    static boolean fits(long size) {\n        return size <= MAX_BYTES;\n    }\n}\n"
    )
    facts = Facts(values={"bsn": set()})
    facts.decoys = nine_digit_decoys([*consts, "268435456", "500000000"])
    return text.encode(), facts


NEWSLETTER = [
    "Nieuwsbrief Bevolkingsonderzoek Nederland - zomer 2025",
    "Het bevolkingsonderzoek baarmoederhalskanker (BVO BMHK) nodigt vrouwen van 30 tot 65 jaar "
    "uit.",
    "U kunt kiezen voor een uitstrijkje bij de huisarts of voor de zelfafnameset (ZAS) thuis.",
    "Het laboratorium test eerst op hoog-risico HPV (hrHPV). Is de HPV-test positief, dan volgt "
    "cytologie: het screeningslaboratorium beoordeelt de cellen en codeert de uitslag met KOPAC-B "
    "en de Pap-klasse (PAP1 tot en met PAP5).",
    "Bij PAP1 krijgt u na 12 maanden een controle-uitstrijkje. Bij PAP2 of hoger (ASC-US, LSIL, "
    "ASC-H, HSIL) volgt een verwijzing naar de gynaecoloog voor colposcopie en zo nodig een biopt.",
    "De patholoog beschrijft afwijkingen als CIN 1, CIN 2 of CIN 3; PALGA bewaart de PA-uitslag.",
    "Baarmoederhalskanker (cervixcarcinoom) is goed te voorkomen. Lees meer op onze website.",
    "Informatiebijeenkomsten: 3 september, 8 oktober en 12 november 2025, telkens om 19.30 uur.",
]


def build_newsletter(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    paragraphs = list(NEWSLETTER)
    for _ in range(max(0, n // 10)):
        paragraphs.append(rng.choice(NEWSLETTER[1:-1]))
    facts = Facts(values={"bsn": set()})
    if opt["as"] == "pdf":
        return pdf_bytes(paragraphs), facts
    if opt["as"] == "docx":
        return docx_bytes(paragraphs), facts
    return ("\n\n".join(paragraphs) + "\n").encode(), facts


def build_kvk(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    rsins: list[str] = []
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    w.writerow(
        ["handelsnaam", "kvk-nummer", "rsin", "vestigingsnummer", "adres", "postcode", "plaats"]
    )
    for i in range(n):
        r = fake.rsin(rng)
        rsins.append(r)
        w.writerow([company(rng, i), fake.kvk_number(rng), r,
                    f"{rng.randrange(10**11, 10**12):012d}",
                    f"{rng.choice(fake.STREETS)} {rng.randrange(1, 200)}", fake.postcode(rng),
                    rng.choice(fake.TOWNS)])  # fmt: skip
    facts = Facts(values={"bsn": set()}, decoys=nine_digit_decoys(rsins))
    return buf.getvalue().encode(), facts


def build_ibans(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    ibans = fake.distinct(rng, fake.nl_iban, n, set())
    header = ["leverancier", "kvk", "iban", "t.n.v.", "plaats"]
    rows = [[company(rng, i), fake.kvk_number(rng),
             fake.group_iban(iban) if i % 2 else iban, company(rng, i), rng.choice(fake.TOWNS)]
            for i, iban in enumerate(ibans)]  # fmt: skip
    facts = Facts(values={"bsn": set(), "iban": set(ibans)}, categories={"financial"})
    if opt["as"] == "xlsx":
        strings_first = rng.random() < 0.5
        facts.meta = {"strings_first": strings_first}
        return xlsx_bytes([header, *rows], sheet="Crediteuren", strings_first=strings_first), facts
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=",", lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(), facts


def build_timetable(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    lines = ["datum;vertrek;aankomst;lijn;perron;opmerking"]
    for i in range(n):
        day = 1 + i % 28
        h, m = rng.randrange(5, 23), rng.randrange(0, 60, 5)
        service = rng.choice(["IC 1234", "SPR 5678", "Bus 40", "Tram 17"])
        remark = rng.choice(["", "vervalt", "5 min vertraging"])
        date = f"{day:02d}-{7 + i // 28 % 5:02d}-2025"
        times = f"{h:02d}:{m:02d};{(h + 1) % 24:02d}:{m:02d}"
        lines.append(f"{date};{times};{service};{rng.randrange(1, 12)};{remark}")
    return ("\n".join(lines) + "\n").encode(), Facts(values={"bsn": set()})


DOC_TEXT = """# Invoervelden valideren

Het BSN (burgerservicenummer) controleer je met de elfproef. Voorbeelden uit de documentatie:
`111222333` en `123456782` zijn geldig volgens de elfproef, `123456789` niet.
Gebruik in tests nooit een echt BSN van een patiënt; gebruik 111222333.

Een IBAN controleer je met mod-97. Voorbeeld: NL91ABNA0417164300 (NL91 ABNA 0417 1643 00).

Creditcardnummers (PAN) controleer je met Luhn. Testkaart: 4111111111111111 (Visa),
vervaldatum 12/30, CVC 123. Gebruik nooit een echte betaalkaart.

| veld | voorbeeld |
|------|-----------|
| BSN  | 123456782 |
| IBAN | NL91ABNA0417164300 |
| PAN  | 4111 1111 1111 1111 |
"""


def build_docs(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    facts = Facts(values={"bsn": set(), "iban": set(), "pan": set()})
    facts.decoys = {
        "example_values": ["111222333", "123456782", fake.EXAMPLE_IBAN, fake.EXAMPLE_PAN]
    }
    facts.decoys.update(nine_digit_decoys(["123456789"]))
    return (DOC_TEXT * max(1, n // 20)).encode(), facts


def build_fhir_orgs(
    rng: random.Random, n: int, taken: set[str], opt: dict[str, Any]
) -> tuple[bytes, Facts]:
    agbs = fake.distinct(rng, lambda r: "07" + fake.agb_code(r)[2:], n, set())
    entries = []
    for i, agb in enumerate(agbs):
        entries.append({"fullUrl": fhir_uuid(rng), "resource": {
            "resourceType": "Organization",
            "identifier": [{"system": FHIR_AGB_SYSTEM, "value": agb},
                           {"system": FHIR_URA_SYSTEM, "value": str(rng.randrange(10**7, 10**8))}],
            "name": f"Huisartsenpraktijk {rng.choice(fake.LAST_EXTRA + list(fake.STREETS))} {i}",
            "address": [{"line": [f"{rng.choice(fake.STREETS)} {rng.randrange(1, 99)}"],
                         "city": rng.choice(fake.TOWNS), "postalCode": fake.postcode(rng)}],
        }})  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    facts = Facts(values={"bsn": set(), "agb": set(agbs)})
    return (json.dumps(bundle, ensure_ascii=False, indent=2) + "\n").encode(), facts


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass(slots=True, frozen=True)
class Variant:
    stem: str  # file name without the copy number
    ext: str
    fmt: str  # labels.json "format"
    kind: str
    builder: Builder
    n_small: int
    n_min: int
    n_max: int
    severity: tuple[str | None, str | None]
    note: str
    opt: dict[str, Any] = field(default_factory=dict)


MUST_ALERT = ("high", None)
ZIP_INNER: dict[str, tuple[Builder, str, dict[str, Any]]] = {
    "csv": (build_csv, "csv", {"delimiter": ";", "encoding": "utf-8", "has_header": True}),
    "xlsx": (build_xlsx, "xlsx", {"bsn_cell": "numeric"}),
    "docx": (build_docx, "docx", {}),
    "pdf": (build_pdf, "pdf", {"style": "labelled"}),
    "fhir": (build_fhir, "json", {}),
    "hl7": (build_hl7, "hl7", {"encoding": "latin-1"}),
}


def variants() -> list[Variant]:
    # fmt: off
    ctx = MIN_RECORDS_WITHOUT_CONTEXT
    pos = "positive"
    v = [
        Variant("export-semicolon-bom-quoted", "csv", "csv", pos, build_csv, 120, 5, 2000,
                MUST_ALERT, "; CSV, UTF-8 with BOM, every field quoted, 10% repeat tests",
                {"delimiter": ";", "encoding": "utf-8-sig", "quote_all": True, "repeat": 0.1}),
        Variant("export-comma-large", "csv", "csv", pos, build_csv, 2000, 5, 2000, MUST_ALERT,
                ", CSV, UTF-8, header 'caps', minimal quoting",
                {"delimiter": ",", "encoding": "utf-8", "header": "caps"}),
        Variant("export-semicolon-cp1252-noheader", "csv", "csv", pos, build_csv, 40, ctx, 2000,
                MUST_ALERT, "; CSV, cp1252, no header row (no column context)",
                {"delimiter": ";", "encoding": "cp1252", "has_header": False}),
        Variant("export-comma-bom-noheader", "csv", "csv", pos, build_csv, 25, ctx, 2000,
                MUST_ALERT, ", CSV, UTF-8 with BOM, no header row, ISO dates",
                {"delimiter": ",", "encoding": "utf-8-sig", "has_header": False,
                 "date_style": "iso"}),
        Variant("export-cp1252-tiny", "csv", "csv", pos, build_csv, 5, 5, 60, MUST_ALERT,
                "; CSV, cp1252, header 'long' (burgerservicenummer), smallest export",
                {"delimiter": ";", "encoding": "cp1252", "header": "long"}),
        Variant("export-dotted-bsn-crlf", "csv", "csv", pos, build_csv, 60, 5, 2000, MUST_ALERT,
                ", CSV, CRLF, BSN written 123.456.782",
                {"delimiter": ",", "encoding": "utf-8", "bsn_style": "dots", "eol": "\r\n"}),
        Variant("export-numeric-bsn", "xlsx", "xlsx", pos, build_xlsx, 300, 5, 2000, MUST_ALERT,
                "XLSX, BSN as a numeric cell; every 25th BSN starts with 0 and shows 8 digits",
                {"bsn_cell": "numeric", "zero_every": 25, "repeat": 0.05}),
        Variant("export-string-bsn", "xlsx", "xlsx", pos, build_xlsx, 8, 5, 2000, MUST_ALERT,
                "XLSX, BSN as a shared string", {"bsn_cell": "string", "header": "lab"}),
        Variant("verwijzing-tabel", "docx", "docx", pos, build_docx, 12, 5, 300, MUST_ALERT,
                "DOCX referral letter with a patient table", {}),
        Variant("verwijzing-tabel-runs", "docx", "docx", pos, build_docx, 40, 5, 300, MUST_ALERT,
                "DOCX referral table, each BSN cell split over two runs", {"split_runs": True}),
        Variant("patientenlijst-tabel", "pdf", "pdf", pos, build_pdf, 45, ctx, PDF_MAX_RECORDS,
                MUST_ALERT, "one-page PDF, FlateDecode, table with one header line",
                {"style": "table"}),
        Variant("patientenlijst-regels", "pdf", "pdf", pos, build_pdf, 6, 5, PDF_MAX_RECORDS,
                MUST_ALERT, "one-page PDF, FlateDecode, 'BSN' written on every line",
                {"style": "labelled"}),
        Variant("fhir-bundle", "json", "fhir-json", pos, build_fhir, 20, 5, 2000, MUST_ALERT,
                "FHIR Bundle, Patient + Observation, indented", {}),
        Variant("fhir-bundle-compact", "json", "fhir-json", pos, build_fhir, 150, 5, 2000,
                MUST_ALERT, "FHIR Bundle on one line", {"compact": True}),
        Variant("oru-r01", "hl7", "hl7v2", pos, build_hl7, 10, 5, 2000, MUST_ALERT,
                "HL7 v2.5 ORU^R01, ISO 8859-1, segments end in CR", {"encoding": "latin-1"}),
        Variant("oru-r01-crlf", "hl7", "hl7v2", pos, build_hl7, 200, 5, 2000, MUST_ALERT,
                "HL7 v2.5 ORU^R01, UTF-8, CRLF, a blank line between messages, repeat tests",
                {"encoding": "utf-8", "segment_end": "\r\n", "between": "\r\n", "repeat": 0.1}),
    ]
    for key, (inner, ext, opt) in ZIP_INNER.items():
        cap = PDF_MAX_RECORDS if key == "pdf" else 2000
        v.append(Variant(f"zip-{key}", "zip", "zip", pos, build_zip(inner, ext, 1), 30, 5, cap,
                         MUST_ALERT, f"plain ZIP holding one {key} export", opt))
    v.append(Variant("zip-multi-csv", "zip", "zip", pos, build_zip(build_csv, "csv", 3), 15, 5, 700,
                     MUST_ALERT, "plain ZIP holding three CSV exports (distinct patients)",
                     ZIP_INNER["csv"][2]))
    below = (None, "medium")
    v += [
        Variant("verwijsbrief-collega", "txt", "txt", pos, build_referral, 1, 1, 1, below,
                "one patient named in a referral letter to a colleague: must stay BELOW high",
                {"as": "txt"}),
        Variant("verwijsbrief-collega", "docx", "docx", pos, build_referral, 1, 1, 1, below,
                "the same kind of letter as DOCX: must stay BELOW high", {"as": "docx"}),
    ]
    neg, low, medium = "negative", (None, "low"), (None, "medium")
    v += [
        Variant("facturen", "txt", "txt", neg, build_invoices, 30, 10, 300, medium,
                "invoices: factuur/order/artikel numbers fail the 11-test, the BTW-id's RSIN "
                "passes it next to 'BTW'; the supplier's own IBAN", {}),
        Variant("orderlijst", "csv", "csv", neg, build_orders, 200, 20, 2000, medium,
                "order list: 30% of the 'ordernummer' values pass the 11-test by chance",
                {"as": "csv"}),
        Variant("orderlijst", "txt", "txt", neg, build_orders, 80, 20, 2000, medium,
                "'Ordernummer 123...' lines, 30% passing the 11-test", {"as": "txt"}),
        Variant("orderlijst", "xlsx", "xlsx", neg, build_orders, 150, 20, 2000, medium,
                "order list XLSX, numeric 'ordernummer' cells, 30% passing", {"as": "xlsx"}),
        Variant("telefoonlijst", "csv", "csv", neg, build_phonebook, 80, 20, 1000, medium,
                "phone directory: names, Dutch numbers (some '+31 6xxxxxxxx'), e-mail; no health",
                {}),
        Variant("server", "log", "log", neg, build_logs, 600, 100, 20000, medium,
                "server logs: 9-digit request ids and durations, e-mail addresses, '2048 KB'", {}),
        Variant("bsn_check", "py", "python", neg, build_source, 1, 1, 1, low,
                "Python source validating BSNs with the documented example values",
                {"lang": "python"}),
        Variant("Limits", "java", "java", neg, build_source, 10, 3, 12, low,
                "Java source with 9-digit numeric constants", {"lang": "java"}),
        Variant("nieuwsbrief-bvo", "txt", "txt", neg, build_newsletter, 20, 0, 200, low,
                "newsletter full of screening vocabulary, no identifiers", {"as": "txt"}),
        Variant("nieuwsbrief-bvo", "pdf", "pdf", neg, build_newsletter, 0, 0, 40, low,
                "the newsletter as a one-page PDF", {"as": "pdf"}),
        Variant("nieuwsbrief-bvo", "docx", "docx", neg, build_newsletter, 20, 0, 200, low,
                "the newsletter as DOCX", {"as": "docx"}),
        Variant("kvk-rsin", "csv", "csv", neg, build_kvk, 100, 20, 2000, medium,
                "KvK list: every RSIN passes the 11-test, its column says 'rsin'", {}),
        Variant("crediteuren-iban", "csv", "csv", neg, build_ibans, 60, 10, 2000, medium,
                "supplier IBANs (valid mod-97), financial, no health", {"as": "csv"}),
        Variant("crediteuren-iban", "xlsx", "xlsx", neg, build_ibans, 40, 10, 2000, medium,
                "supplier IBANs as XLSX", {"as": "xlsx"}),
        Variant("dienstregeling", "csv", "csv", neg, build_timetable, 300, 50, 5000, low,
                "timetable full of dates and times", {}),
        Variant("validatie-docs", "md", "md", neg, build_docs, 20, 20, 400, low,
                "documentation with BSN 111222333/123456782, IBAN NL91ABNA0417164300, PAN "
                "4111111111111111", {}),
        Variant("fhir-organisaties", "json", "fhir-json", neg, build_fhir_orgs, 30, 5, 500, medium,
                "FHIR Bundle of Organizations (AGB-Z, URA): providers, no patients", {}),
        Variant("zip-facturen", "zip", "zip", neg, build_zip(build_invoices, "txt", 3), 20, 10, 200,
                medium, "plain ZIP holding three invoice files", {}),
    ]
    # fmt: on
    return v


# ---------------------------------------------------------------------------------------------
# Driver


def file_rng(seed: int, name: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    if high <= low:
        return low
    return round(math.exp(rng.uniform(math.log(max(1, low)), math.log(high))))


def make_label(relpath: str, variant: Variant, facts: Facts) -> Label:
    values = {kind: sorted(vals) for kind, vals in sorted(facts.values.items())}
    return Label(
        file=relpath,
        format=variant.fmt,
        kind=variant.kind,
        expected_severity_min=variant.severity[0],
        expected_severity_max=variant.severity[1],
        identifiers={kind: len(vals) for kind, vals in values.items()},
        records=facts.records,
        categories=sorted(facts.categories),
        note=variant.note,
        meta=facts.meta,
        planted=values,
        decoys={k: sorted(set(v)) for k, v in sorted(facts.decoys.items())},
    )


def generate(outdir: Path, seed: int = 1, scale: str = "small") -> list[Label]:
    """Write the corpus and labels.json under `outdir`; return the labels."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    labels: list[Label] = []
    taken: set[str] = set()  # BSNs used so far: a BSN belongs to one patient in one file
    for copy in range(COPIES[scale]):
        for variant in variants():
            relpath = f"{variant.kind}/{variant.stem}-{copy:02d}.{variant.ext}"
            rng = file_rng(seed, relpath)
            n = variant.n_small if copy == 0 else log_uniform(rng, variant.n_min, variant.n_max)
            data, facts = variant.builder(rng, n, taken, dict(variant.opt))
            path = outdir / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            labels.append(make_label(relpath, variant, facts))
    doc = {
        "generator": "tests/data/classify/make_eval.py",
        "seed": seed,
        "scale": scale,
        "files": [label.as_json() for label in labels],
    }
    (outdir / "labels.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", choices=SCALES, default="small")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    labels = generate(args.outdir, args.seed, args.scale)
    size = sum(p.stat().st_size for p in args.outdir.rglob("*") if p.is_file())
    kinds = {k: sum(1 for lb in labels if lb.kind == k) for k in ("positive", "negative")}
    print(
        f"{len(labels)} files ({kinds['positive']} positive, {kinds['negative']} negative), "
        f"{size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s -> {args.outdir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
