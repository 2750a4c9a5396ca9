"""Fake patients, businesses and numbers for the classification evaluation corpus.

Stage: test data (not part of the sensor). In: a `random.Random`. Out: values and records made
only from invented names and random digits; no real person or business is in here.

This adds to pcaps/_lib/fakedata.py (whose `fake_bsn` numbers deliberately FAIL the elfproef
and whose `valid_bsn` ones pass it, so a detector must find them) what the evaluation needs: NL
IBANs with correct mod-97 check digits, postcodes, AGB codes, Dutch phone numbers, KvK/RSIN
pairs and screening results.
A random 9-digit number passes the elfproef about 1 time in 11, so a valid BSN here may equal
an issued one by chance; it is never linked to that person's name, date of birth or address.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from pcaps._lib.fakedata import FIRST, LAST, fake_bsn, valid_bsn

# Names with characters outside ASCII, so that the encoding of a file matters (all of them are
# in cp1252 too).
FIRST_EXTRA = ["Zoë", "Noë", "Chloé", "Inès", "Anaïs", "Maëlle", "René", "Liën"]
LAST_EXTRA = ["Oefenaër", "Demoïsma", "van 't Nepveld", "Testhuijsën", "Proefmaçon", "Nepdorpé"]
STREETS = ["Dorpsstraat", "Kerkstraat", "Schoolstraat", "Molenweg", "Stationsweg",
           "Julianastraat", "Nieuwstraat", "Beatrixlaan", "Parallelweg", "Lindenlaan",
           "Oefenpad", "Voorbeeldsingel"]  # fmt: skip
TOWNS = ["Rijswijk", "Den Haag", "'s-Hertogenbosch", "Leeuwarden", "Utrecht", "Zwolle",
         "Maastricht", "Groningen", "Delft", "Enschede", "Súdwest-Fryslân", "Nijmegen"]  # fmt: skip
# The documentation examples a detector must ignore (research note §1.1; the BSN ones are
# fakedata.EXAMPLE_BSNS): never planted as a "real" value.
EXAMPLE_IBAN = "NL91ABNA0417164300"
EXAMPLE_PAN = "4111111111111111"
NL_BANKS = ["ABNA", "INGB", "RABO", "SNSB", "ASNB", "TRIO", "KNAB", "BUNQ"]

SOORT_ONDERZOEK = ["BVO BMHK uitstrijkje", "BVO BMHK zelfafnameset (ZAS)",
                   "controle-uitstrijkje", "herhalingsuitstrijkje", "cervixcytologie"]  # fmt: skip
# (Pap class, Bethesda, the P digit of the KOPAC-B code, a histology outcome or ""); the KOPAC-B
# letter meanings are unverified (research note §1.4), the codes only need to look the part.
CYTOLOGY = [
    ("PAP1", "NILM", 1, ""),
    ("PAP2", "ASC-US", 2, ""),
    ("PAP3a1", "LSIL", 4, "CIN 1"),
    ("PAP3a2", "ASC-H", 5, "CIN 2"),
    ("PAP3b", "HSIL", 6, "CIN 2"),
    ("PAP4", "HSIL", 8, "CIN 3"),
    ("PAP5", "HSIL", 9, "CIN 3"),
]
REFERENCE_DAY = dt.date(2025, 7, 1)


def elfproef(digits: str) -> bool:
    """The BSN 11-test: weights 9..2 and -1, sum divisible by 11 (research note §1.2)."""
    digits = digits.zfill(9)
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def failing_nine_digits(rng: random.Random) -> str:
    """Nine digits (no leading zero) that fail the elfproef: fakedata's generator."""
    return fake_bsn(rng)


def distinct(
    rng: random.Random, make: Callable[[random.Random], str], count: int, taken: set[str]
) -> list[str]:
    """`count` values from `make(rng)` not in `taken` (which is updated), in draw order."""
    out: list[str] = []
    while len(out) < count:
        value = make(rng)
        if value not in taken:
            taken.add(value)
            out.append(value)
    return out


def nl_iban(rng: random.Random) -> str:
    """An NL IBAN (`NLkk BANK 0123456789`, no spaces) whose mod-97 check digits are correct."""
    bank = rng.choice(NL_BANKS)
    account = "".join(str(rng.randrange(10)) for _ in range(10))
    bban = bank + account
    numeric = "".join(str(int(c, 36)) for c in bban + "NL00")
    iban = f"NL{98 - int(numeric) % 97:02d}{bban}"
    return iban if iban != EXAMPLE_IBAN else nl_iban(rng)


def iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def group_iban(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def postcode(rng: random.Random) -> str:
    """`1234 AB`: first digit 1-9, letters never SA, SD or SS (stdnum.nl.postcode)."""
    while True:
        letters = chr(65 + rng.randrange(26)) + chr(65 + rng.randrange(26))
        if letters not in {"SA", "SD", "SS"}:
            return f"{rng.randrange(1000, 10000)} {letters}"


def agb_code(rng: random.Random) -> str:
    """Eight digits starting with 01 (the GP prefix; unverified, research note §1.1 row 4)."""
    return "01" + "".join(str(rng.randrange(10)) for _ in range(6))


def mobile_number(rng: random.Random) -> str:
    """The nine national digits of a Dutch mobile number: 6, a digit of the ranges the ACM
    numbering plan gives to mobile telephony (06-1 to 06-5 and 06-8; 066 is pagers, 067
    data services, 069 and 060 are not issued), and seven more."""
    return "6" + rng.choice("123458") + "".join(str(rng.randrange(10)) for _ in range(7))


def landline_number(rng: random.Random) -> str:
    """The nine national digits of a Dutch fixed line with a two-digit area code."""
    area = rng.choice(["10", "20", "30", "40", "50", "70", "71", "73", "15", "38"])
    return area + str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(6))


def kvk_number(rng: random.Random) -> str:
    return str(rng.randrange(10_000_000, 100_000_000))


def rsin(rng: random.Random) -> str:
    """An RSIN: nine digits under the same 11-test as a BSN (so it is indistinguishable)."""
    return valid_bsn(rng)


def full_name(rng: random.Random) -> tuple[str, str]:
    """(given name, family name); about one in six carries a character outside ASCII."""
    first = rng.choice(FIRST_EXTRA) if rng.random() < 0.15 else rng.choice(FIRST)
    last = rng.choice(LAST_EXTRA) if rng.random() < 0.15 else rng.choice(LAST)
    return first, last


@dataclass(slots=True, frozen=True)
class GeneralPractitioner:
    name: str
    agb: str


@dataclass(slots=True, frozen=True)
class Screening:
    """One test result of the cervical-screening programme."""

    soort: str
    hpv_positive: bool
    pap: str
    bethesda: str
    kopac: str
    histology: str

    def uitslag(self) -> str:
        """The `testuitslag` text as a lab export writes it in one cell."""
        if not self.hpv_positive:
            return "hrHPV negatief"
        parts = ["hrHPV positief", self.pap, f"KOPAC-B {self.kopac}", self.bethesda]
        if self.histology:
            parts.append(self.histology)
        return "; ".join(parts)


@dataclass(slots=True, frozen=True)
class Patient:
    bsn: str
    given: str
    family: str
    street: str
    house: int
    postcode: str
    town: str
    gender: str  # "V" or "M" as the lab writes it
    birth: dt.date
    gp: GeneralPractitioner
    screening: Screening

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def address(self) -> str:
        return f"{self.street} {self.house}"


def screening(rng: random.Random) -> Screening:
    soort = rng.choice(SOORT_ONDERZOEK)
    if rng.random() >= 0.25:
        return Screening(soort, False, "", "", "", "")
    pap, bethesda, p_digit, histology = rng.choice(CYTOLOGY)
    kopac = f"K{rng.randrange(1, 3)}O{rng.randrange(1, 4)}P{p_digit}A1C{rng.randrange(1, 3)}B1"
    return Screening(soort, True, pap, bethesda, kopac, histology if rng.random() < 0.6 else "")


def practitioners(rng: random.Random, count: int) -> list[GeneralPractitioner]:
    taken: set[str] = set()
    agbs = distinct(rng, agb_code, count, taken)
    out = []
    for agb in agbs:
        given, family = full_name(rng)
        out.append(GeneralPractitioner(f"{given[0]}. {family}, huisarts", agb))
    return out


def patients(
    rng: random.Random,
    count: int,
    *,
    taken: set[str],
    leading_zero_every: int = 0,
    force_non_ascii: bool = True,
) -> list[Patient]:
    """`count` distinct fake patients (BSNs not in `taken`, which is updated).

    Women and men of the screening cohort (born 30 to 65 years before 2025-07-01); the first
    patient carries a non-ASCII name when `force_non_ascii`, so a cp1252 file is never plain
    ASCII. Every `leading_zero_every`-th BSN starts with 0 (an XLSX numeric cell then shows 8
    digits).
    """
    gps = practitioners(rng, max(1, min(25, count // 8 + 1)))
    out: list[Patient] = []
    for i in range(count):
        zero = leading_zero_every > 0 and i % leading_zero_every == leading_zero_every - 1
        while True:
            bsn = valid_bsn(rng, leading_zero=zero)
            if bsn not in taken:
                taken.add(bsn)
                break
        given, family = full_name(rng)
        if i == 0 and force_non_ascii:
            given, family = rng.choice(FIRST_EXTRA), rng.choice(LAST_EXTRA)
        age_days = rng.randrange(30 * 365, 65 * 365)
        out.append(
            Patient(
                bsn=bsn,
                given=given,
                family=family,
                street=rng.choice(STREETS),
                house=rng.randrange(1, 250),
                postcode=postcode(rng),
                town=rng.choice(TOWNS),
                gender="V" if rng.random() < 0.93 else "M",
                birth=REFERENCE_DAY - dt.timedelta(days=age_days),
                gp=rng.choice(gps),
                screening=screening(rng),
            )
        )
    return out
