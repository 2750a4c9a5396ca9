"""Fake cervical-screening patients and the two exports of them that leave in patient-exfil:
a lab's CSV (`bsn;achternaam;voornaam;geboortedatum;postcode;uitslag`) and a FHIR R4 Bundle of
Patient and Observation resources.

Everything is made from a seed with `random.Random`, so the generator and the privacy test
(tests/classify/test_privacy_sample_traffic.py) make the same patients: the test looks for
every identifier planted here, in every form a leak could take (`identifier_forms`). The BSNs
pass the elfproef (`fakedata.valid_bsn`: the classifier must find them); names come from
fakedata's invented lists, dates of birth are of the screening cohort (30 to 65 years old).
No real person is in here; a valid BSN may equal an issued one by chance, but never with that
person's name, date of birth or postcode.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

from pcaps._lib.fakedata import FIRST, LAST, valid_bsn

FHIR_BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
CSV_HEADER = "bsn;achternaam;voornaam;geboortedatum;postcode;uitslag"
REFERENCE_DAY = dt.date(2025, 7, 1)  # the day the export was made
# Outcomes of the programme's test: hrHPV first, cytology (Pap class, Bethesda) on a positive
# one, and a histology outcome (CIN grade) for some of those referred.
CYTOLOGY = [
    ("PAP1", "NILM", ""),
    ("PAP2", "ASC-US", ""),
    ("PAP3a1", "LSIL", "CIN 1"),
    ("PAP3a2", "ASC-H", "CIN 2"),
    ("PAP3b", "HSIL", "CIN 2"),
    ("PAP4", "HSIL", "CIN 3"),
]


@dataclass(frozen=True, slots=True)
class ScreeningPatient:
    bsn: str
    achternaam: str
    voornaam: str
    geboortedatum: dt.date
    postcode: str  # `1234 AB`
    uitslag: str  # the result as the lab writes it in one cell

    @property
    def birth_nl(self) -> str:
        return f"{self.geboortedatum:%d-%m-%Y}"


# Postcode letters never issued (SA, SD, SS), and those that read as a size: the postcode
# detector drops `1234 MB` by design (signatures/detectors.toml), so a planted one would not be
# counted and the expectation would not be what the data holds.
POSTCODE_LETTERS_LEFT_OUT = frozenset({"SA", "SD", "SS", "MB", "KB", "GB", "TB"})


def _postcode(rng: random.Random) -> str:
    """`1234 AB`: first digit 1-9, letters not in POSTCODE_LETTERS_LEFT_OUT."""
    while True:
        letters = chr(65 + rng.randrange(26)) + chr(65 + rng.randrange(26))
        if letters not in POSTCODE_LETTERS_LEFT_OUT:
            return f"{rng.randrange(1000, 10000)} {letters}"


def _uitslag(rng: random.Random) -> str:
    if rng.random() >= 0.3:
        return "hrHPV negatief"
    pap, bethesda, histology = rng.choice(CYTOLOGY)
    parts = ["hrHPV positief", f"cytologie {pap} ({bethesda})"]
    if histology:
        parts.append(f"colposcopie: {histology}")
    return ", ".join(parts)


def screening_patients(
    seed: int, count: int, taken: set[str] | None = None
) -> list[ScreeningPatient]:
    """`count` patients with distinct BSNs (none of them in `taken`, which is updated)."""
    rng = random.Random(seed)
    taken = set() if taken is None else taken
    out: list[ScreeningPatient] = []
    while len(out) < count:
        bsn = valid_bsn(rng)
        if bsn in taken:
            continue
        taken.add(bsn)
        age_days = rng.randrange(30 * 365, 65 * 365)
        out.append(
            ScreeningPatient(
                bsn=bsn,
                achternaam=rng.choice(LAST),
                voornaam=rng.choice(FIRST),
                geboortedatum=REFERENCE_DAY - dt.timedelta(days=age_days),
                postcode=_postcode(rng),
                uitslag=_uitslag(rng),
            )
        )
    return out


def screening_csv(patients: Iterable[ScreeningPatient]) -> bytes:
    """The lab's export: `;`-separated (as Dutch Excel writes CSV), CRLF lines, UTF-8."""
    rows = [CSV_HEADER] + [
        f"{p.bsn};{p.achternaam};{p.voornaam};{p.birth_nl};{p.postcode};{p.uitslag}"
        for p in patients
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


def fhir_bundle(patients: Iterable[ScreeningPatient], seed: int, base: str) -> bytes:
    """A FHIR R4 `collection` Bundle as a lab's FHIR server exports it: every Patient (BSN
    identifier under the Dutch naming system, name, birthDate, postalCode), then one
    Observation per patient with the screening result, referring to its Patient. Resources
    carry the server's ids (`bmhk-p00001`) and full URLs under `base`. Indented as exports
    usually are.

    The Observations' times carry a time of day (`2025-06-12T09:30:00+02:00`), so no date in
    them reads as a date of birth: the planted dates of birth are the Patients' only. (Random
    `urn:uuid:` full URLs are not used: the sensor reads digit runs in them as phone and card
    numbers, which would make the expected counts depend on that weakness.)"""
    rng = random.Random(seed)
    people = list(patients)
    ids = [f"bmhk-p{n:05d}" for n in range(1, len(people) + 1)]
    entries: list[dict[str, object]] = []
    for pid, p in zip(ids, people, strict=True):
        resource: dict[str, object] = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": FHIR_BSN_SYSTEM, "value": p.bsn}],
            "name": [{"family": p.achternaam, "given": [p.voornaam]}],
            "gender": "female",
            "birthDate": p.geboortedatum.isoformat(),
            "address": [{"postalCode": p.postcode, "country": "NL"}],
        }
        entries.append({"fullUrl": f"{base}/Patient/{pid}", "resource": resource})
    for n, (pid, p) in enumerate(zip(ids, people, strict=True), 1):
        taken = REFERENCE_DAY - dt.timedelta(days=rng.randrange(14, 60))
        oid = f"bmhk-o{n:05d}"
        resource = {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"text": "BVO BMHK: hrHPV-test en cytologie (uitstrijkje)"},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"{taken.isoformat()}T{rng.randrange(8, 17):02d}:"
            f"{rng.choice(['00', '15', '30', '45'])}:00+02:00",
            "valueString": p.uitslag,
        }
        entries.append({"fullUrl": f"{base}/Observation/{oid}", "resource": resource})
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": f"{REFERENCE_DAY.isoformat()}T10:00:00+02:00",
        "entry": entries,
    }
    return (json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode()


def planted(patients: Iterable[ScreeningPatient]) -> dict[str, set[str]]:
    """The identifiers in these patients, by detector, as the classifier would count them:
    BSNs, postcodes and dates of birth (normalised: digits, `1234AB`, ISO date)."""
    people = list(patients)
    return {
        "bsn": {p.bsn for p in people},
        "postcode_nl": {p.postcode.replace(" ", "") for p in people},
        "date_of_birth": {p.geboortedatum.isoformat() for p in people},
    }


def identifier_forms(kind: str, value: str) -> list[str]:
    """Every way a planted identifier could be written into an output: digits only and the
    usual separators for a BSN (`123456789`, `123.456.789`, `123 456 789`, `123-456-789`,
    `1234.56.789`), with and without the space for a postcode, ISO, Dutch and US-style dates."""
    if kind == "bsn":
        a, b, c = value[:3], value[3:6], value[6:]
        return [value, f"{a}.{b}.{c}", f"{a} {b} {c}", f"{a}-{b}-{c}",
                f"{value[:4]}.{value[4:6]}.{value[6:]}"]  # fmt: skip
    if kind == "postcode_nl":
        return [value, f"{value[:4]} {value[4:]}"]
    if kind == "date_of_birth":
        day = dt.date.fromisoformat(value)
        return [value, f"{day:%d-%m-%Y}", f"{day:%d/%m/%Y}", f"{day:%Y%m%d}", f"{day:%d.%m.%Y}"]
    raise ValueError(f"no forms known for {kind}")
