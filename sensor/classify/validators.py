"""Classification stage: the named validators that `signatures/detectors.toml` refers to.

In: the candidate text exactly as a detector's pattern matched it (separators, case and all).
Out: the normalised value when the candidate is a valid identifier of that kind (digits only,
upper-case IBAN, `+31...` phone, ISO date, ...), else None. The normalised value is what the
scorer counts distinct (through a keyed hash) and what a detector's `ignore` list is compared
against, so two spellings of one BSN count once.

A validator never raises on any text: hostile input is a None, not an exception.

python-stdnum does the checksums wherever it has a module for the number (BSN elfproef, IBAN
mod-97 with the per-country BBAN layout, Luhn, postcode, the EU national identifiers); the
rest is written here because stdnum has nothing for it (phone numbers, e-mail, dates, card
issuer prefixes, AGB/BIG/UZI, ICD-10). Research note §1.1 and §1.2 give the rules; the items
marked [U] there are marked so here too.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType, ModuleType

from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_97_10 as stdnum_mod_97_10
from stdnum.nl import bsn as stdnum_bsn
from stdnum.nl import onderwijsnummer as stdnum_onderwijsnummer
from stdnum.nl import postcode as stdnum_postcode

Validator = Callable[[str], str | None]

# A candidate longer than this is no identifier of any kind here (the longest, an e-mail
# address, is capped at 254 by RFC 5321 §4.5.3.1.3); refusing early bounds the work per match.
MAX_CANDIDATE = 320

# Separators people put inside numbers ("123 456 782", "123.456.782", "1234-56-782").
_NUMBER_SEPARATORS = str.maketrans("", "", " .-/\u00a0")

# Dates of birth: a person alive now was born after this (research note §1.1 row 10).
EARLIEST_BIRTH_YEAR = 1900


def _digits(text: str) -> str | None:
    """`text` without number separators when what is left is all ASCII digits."""
    if len(text) > MAX_CANDIDATE:
        return None
    compact = text.translate(_NUMBER_SEPARATORS)
    if not compact or not compact.isascii() or not compact.isdigit():
        return None
    return compact


# -- Dutch national identifiers -----------------------------------------------------------


def validate_bsn(text: str) -> str | None:
    """BSN: 9 digits (8 for a legacy number, left-padded with 0) passing the elfproef, weights
    9..2 and -1 (stdnum.nl.bsn). Returned as 9 digits. 000000000 passes the sum but is no BSN.
    An onderwijsnummer (education number, starts with 10) uses the same weights with remainder
    5 instead of 0; it is explicitly refused so that a change in either rule cannot let one
    through as the other."""
    digits = _digits(text)
    if digits is None or len(digits) not in (8, 9):
        return None
    digits = digits.zfill(9)
    if digits == "000000000":
        return None
    # stdnum's checksum on the digits `_digits` already compacted: what bsn.validate and
    # onderwijsnummer.validate check after their own (costly, Unicode-aware) clean-up.
    remainder = stdnum_bsn.checksum(digits)
    if remainder == 5 and digits.startswith("10"):  # stdnum.nl.onderwijsnummer
        return None
    return digits if remainder == 0 else None


def validate_onderwijsnummer(text: str) -> str | None:
    """Onderwijsnummer (stdnum.nl.onderwijsnummer): for detectors that want to know one."""
    digits = _digits(text)
    if digits is None or len(digits) != 9:
        return None
    return digits if _stdnum_ok(stdnum_onderwijsnummer, digits) else None


# -- financial ----------------------------------------------------------------------------


def validate_iban(text: str) -> str | None:
    """IBAN: mod 97-10 plus the country's length and BBAN layout (stdnum.iban, ISO 13616).
    Returned upper-case without spaces."""
    if len(text) > MAX_CANDIDATE:
        return None
    compact = text.replace(" ", "").replace("-", "").upper()
    if not compact.isascii() or not compact.isalnum():
        return None
    # The mod 97-10 check first (stdnum.iso7064, as iban.validate does it): it refuses 96 in
    # 97 random strings before the costlier per-country layout look-up.
    if not stdnum_mod_97_10.is_valid(compact[4:] + compact[:4]):
        return None
    try:
        return str(stdnum_iban.validate(compact))
    except (ValidationError, ValueError, KeyError, IndexError):
        return None


def validate_iban_nl(text: str) -> str | None:
    """An IBAN of a Dutch account (NL, 18 characters, BBAN 4 letters + 10 digits)."""
    value = validate_iban(text)
    return value if value is not None and value.startswith("NL") else None


# Card issuers: (first digits low, high, card lengths). Research note §1.1 row 3 marks the
# exact ranges [U]; these are the ranges the schemes publish in their acceptance guides as
# commonly reproduced (Visa, Mastercard incl. the 2-series, Amex, Discover, JCB, Diners,
# UnionPay, Maestro). A number outside every range is refused: a Luhn pass alone is 1 in 10.
CARD_ISSUERS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (14, 15, 16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("56", "69", (12, 13, 14, 15, 16, 17, 18, 19)),
)


def card_issuer_ok(digits: str) -> bool:
    """True when the number's prefix and length belong to a card scheme in CARD_ISSUERS."""
    for low, high, lengths in CARD_ISSUERS:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return True
    return False


def validate_payment_card(text: str) -> str | None:
    """Payment card number (PAN): 12-19 digits, Luhn (stdnum.luhn) and an issuer prefix with
    a length that scheme issues. Returned as digits only."""
    digits = _digits(text)
    if digits is None or not 12 <= len(digits) <= 19 or not card_issuer_ok(digits):
        return None
    return digits if stdnum_luhn.checksum(digits) == 0 else None


def validate_luhn(text: str) -> str | None:
    """Any digit string passing Luhn mod 10 (stdnum.luhn)."""
    digits = _digits(text)
    if digits is None or len(digits) < 2:
        return None
    return digits if _stdnum_ok(stdnum_luhn, digits) else None


# -- contact and personal details ---------------------------------------------------------


# The common spelling, "1234 AB" or "1234AB", checked here at a tenth of the cost of
# stdnum's Unicode-aware compact(); anything else goes through stdnum. The letters SA, SD
# and SS are not issued (PostNL; stdnum.nl.postcode refuses them the same way).
_POSTCODE = re.compile(r"([1-9][0-9]{3}) ?([A-Z]{2})", re.ASCII)
_POSTCODE_UNUSED = frozenset({"SA", "SD", "SS"})


def validate_postcode_nl(text: str) -> str | None:
    """Dutch postcode: 1000-9999 and two letters other than SA, SD and SS (stdnum.nl.postcode).
    Returned as "1234AB"."""
    if len(text) > 16:
        return None
    if shape := _POSTCODE.fullmatch(text):  # as the detector writes it: skip stdnum's clean-up
        return None if shape[2] in _POSTCODE_UNUSED else shape[1] + shape[2]
    try:
        return str(stdnum_postcode.compact(stdnum_postcode.validate(text)))
    except (ValidationError, ValueError):
        return None


# National significant numbers are 9 digits after the trunk 0 / country code 31 (Numbering
# plan of the ACM). The first digit: 6 is mobile (06-1..06-5, 06-8; 066 pagers and 067 data
# services are no personal numbers), 1-5 and 7 geographic (area codes 010..079), 8 and 9
# non-geographic 9-digit ranges (084/085/087/088/091). 0800/0900 service numbers are shorter
# and no personal data.
_PHONE_MOBILE = re.compile(r"6[1-58]\d{7}")
_PHONE_FIXED = re.compile(r"(?:[1-57]\d|8[4578]|91)\d{7}")


def validate_phone_nl(text: str) -> str | None:
    """Dutch phone number: 06 mobile, 0XX/0XXX landline, 084/085/087/088/091, written
    nationally (0...) or internationally (+31, 0031, +31 (0)...). Returned as +31 and the 9
    digits of the national significant number."""
    if len(text) > 32:
        return None
    compact = text.replace("(0)", "")
    compact = "".join(c for c in compact if c not in " -./()\u00a0")
    if compact.startswith("+31"):
        national = compact[3:]
    elif compact.startswith("0031"):
        national = compact[4:]
    elif compact.startswith("0") and not compact.startswith("00"):
        national = compact[1:]
    else:
        return None
    if len(national) != 9 or not national.isascii() or not national.isdigit():
        return None
    if _PHONE_MOBILE.fullmatch(national) or _PHONE_FIXED.fullmatch(national):
        return "+31" + national
    return None


# A pragmatic subset of RFC 5322 §3.4.1 addr-spec: a dot-atom local part (no quoted strings,
# no comments) and a domain of LDH labels (RFC 1123) with an alphabetic TLD of 2+ letters.
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = re.compile(
    rf"(?P<local>{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*)@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


def validate_email(text: str) -> str | None:
    """E-mail address (pragmatic RFC 5322 subset; local part at most 64 characters, the whole
    at most 254: RFC 5321 §4.5.3.1). Returned with the domain in lower case (the local part
    is case-sensitive by the RFC, though hardly any server treats it so)."""
    if len(text) > 254:
        return None
    match = _EMAIL.fullmatch(text)
    if match is None or len(match["local"]) > 64:
        return None
    return f"{match['local']}@{match['domain'].lower()}"


MONTHS: Mapping[str, int] = MappingProxyType(
    {
        # Dutch, full and abbreviated (mrt, mei, okt are the Dutch abbreviations)
        "januari": 1, "februari": 2, "maart": 3, "april": 4, "mei": 5, "juni": 6,
        "juli": 7, "augustus": 8, "september": 9, "oktober": 10, "november": 11,
        "december": 12, "mrt": 3, "okt": 10,
        # English, full and abbreviated
        "january": 1, "february": 2, "march": 3, "may": 5, "june": 6, "july": 7,
        "august": 8, "october": 10,
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
        "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    }
)  # fmt: skip

_DATE_DMY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_DATE_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")  # HL7 v2 DT (PID-7), FHIR-less exports
_DATE_TEXT = re.compile(r"(\d{1,2})\s+([A-Za-z]+)\.?\s+(\d{4})")


def parse_date(text: str) -> date | None:
    """A calendar date written dd-mm-yyyy, dd/mm/yyyy, dd.mm.yyyy, yyyy-mm-dd, yyyymmdd or
    "d month yyyy" (Dutch or English month, full or abbreviated); None when it is not one or
    does not exist (31-02-1990)."""
    if len(text) > 40:
        return None
    text = text.strip()
    try:
        if m := _DATE_DMY.fullmatch(text):
            return date(int(m[4]), int(m[3]), int(m[1]))
        if m := _DATE_YMD.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DATE_COMPACT.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DATE_TEXT.fullmatch(text):
            month = MONTHS.get(m[2].lower())
            return None if month is None else date(int(m[3]), month, int(m[1]))
    except ValueError:  # no such day
        return None
    return None


def validate_birth_date(text: str, today: date | None = None) -> str | None:
    """A date that can be a living person's date of birth: EARLIEST_BIRTH_YEAR-01-01 up to
    `today`. Returned as an ISO date (yyyy-mm-dd).

    `today` defaults to the host's date: the one clock read in this module, because a
    validator takes only the candidate. It bounds nothing but future dates, so a replay of
    an old capture differs at most in dates between the capture and the replay."""
    parsed = parse_date(text)
    if parsed is None or parsed.year < EARLIEST_BIRTH_YEAR:
        return None
    if parsed > (today if today is not None else date.today()):
        return None
    return parsed.isoformat()


# -- care-provider identifiers ------------------------------------------------------------


def validate_agb(text: str) -> str | None:
    """AGB-code (Vektis): 8 digits, no checksum is known, so only the structure is checked.
    The first two digits are the zorgverlenersoort [U: research note §1.1 row 4]; 00 is no
    soort in the Vektis COD016 table as far as known [U], so a number starting 00 is refused."""
    digits = _digits(text)
    if digits is None or len(digits) != 8 or digits.startswith("00"):
        return None
    return digits


def validate_big(text: str) -> str | None:
    """BIG-nummer: 11 digits, leading zeros kept; no public checksum [U: none found]."""
    digits = _digits(text)
    return digits if digits is not None and len(digits) == 11 else None


def validate_uzi(text: str) -> str | None:
    """UZI-nummer: 9 digits (uziregister.nl FAQ [S]); no public checksum [U: none found]."""
    digits = _digits(text)
    return digits if digits is not None and len(digits) == 9 else None


# -- health -------------------------------------------------------------------------------

# WHO ICD-10 (2019) chapters as (first code, last code): a code outside every block is no
# ICD-10 code (E95, K99, P99, T99...). U00-U85 are the WHO's provisional codes (U07.1 COVID).
ICD10_BLOCKS: tuple[tuple[str, str], ...] = (
    ("A00", "B99"), ("C00", "D48"), ("D50", "D89"), ("E00", "E90"), ("F00", "F99"),
    ("G00", "G99"), ("H00", "H59"), ("H60", "H95"), ("I00", "I99"), ("J00", "J99"),
    ("K00", "K93"), ("L00", "L99"), ("M00", "M99"), ("N00", "N99"), ("O00", "O99"),
    ("P00", "P96"), ("Q00", "Q99"), ("R00", "R99"), ("S00", "T98"), ("U00", "U85"),
    ("V01", "Y98"), ("Z00", "Z99"),
)  # fmt: skip
# A category (letter + 2 digits), optionally "." and a subdivision: 1 character in WHO
# ICD-10, up to 4 in ICD-10-CM (R87.810, high-risk HPV positive: research note row 13).
_ICD10 = re.compile(r"([A-Z]\d\d)(?:\.([0-9A-Z]{1,4}))?")


def validate_icd10(text: str) -> str | None:
    """ICD-10 code in a WHO chapter: returned upper-case with its dot ("C53.9")."""
    if len(text) > 8:
        return None
    match = _ICD10.fullmatch(text.upper())
    if match is None:
        return None
    category = match[1]
    if not any(low <= category <= high for low, high in ICD10_BLOCKS):
        return None
    return match[0]


# -- EU/EEA national identifiers (python-stdnum) ------------------------------------------

# The personal-identifier modules of python-stdnum 2.2 (research note §1.3), registered as
# "eu_id:<module>". EEA and neighbouring countries (no, ch, gb) are included: people living
# in the Netherlands carry them too.
EU_ID_MODULES: tuple[str, ...] = (
    "at.vnr", "be.bis", "be.nn", "bg.egn", "ch.ssn", "cz.rc", "de.idnr", "dk.cpr", "ee.ik",
    "es.dni", "es.nie", "fi.hetu", "fr.nir", "gb.nhs", "gr.amka", "hr.oib", "ie.pps",
    "it.codicefiscale", "lt.asmens", "no.fodselsnummer", "pl.pesel", "pt.cc", "ro.cnp",
    "se.personnummer", "si.emso", "sk.rc",
)  # fmt: skip


def _stdnum_ok(module: ModuleType, value: str) -> bool:
    try:
        module.validate(value)
    except (ValidationError, ValueError, KeyError, IndexError, TypeError):
        return False
    return True


def stdnum_validator(module: ModuleType) -> Validator:
    """A validator of one python-stdnum module: its `validate()` result (the compact form)
    upper-cased, or None when it refuses the number."""

    def validate(text: str) -> str | None:
        if len(text) > MAX_CANDIDATE:
            return None
        try:
            return str(module.validate(text)).upper()
        except (ValidationError, ValueError, KeyError, IndexError, TypeError):
            return None

    validate.__doc__ = f"python-stdnum {module.__name__.removeprefix('stdnum.')}"
    return validate


def validate_nl_document_number(text: str) -> str | None:
    """Dutch passport/ID-card number (stdnum.nl.identiteitskaartnummer): 2 letters, 6 letters
    or digits, 1 digit, no letter O. There is no check digit: structure only."""
    return _NL_DOCUMENT(text)


_NL_DOCUMENT = stdnum_validator(importlib.import_module("stdnum.nl.identiteitskaartnummer"))


def _registry() -> Mapping[str, Validator]:
    named: dict[str, Validator] = {
        "bsn": validate_bsn,
        "onderwijsnummer": validate_onderwijsnummer,
        "iban": validate_iban,
        "iban_nl": validate_iban_nl,
        "payment_card": validate_payment_card,
        "luhn": validate_luhn,
        "postcode_nl": validate_postcode_nl,
        "phone_nl": validate_phone_nl,
        "email": validate_email,
        "date": lambda text: None if (d := parse_date(text)) is None else d.isoformat(),
        "birth_date": validate_birth_date,
        "agb": validate_agb,
        "big": validate_big,
        "uzi": validate_uzi,
        "icd10": validate_icd10,
        "nl_document_number": validate_nl_document_number,
    }
    for name in EU_ID_MODULES:
        named[f"eu_id:{name}"] = stdnum_validator(importlib.import_module(f"stdnum.{name}"))
    return MappingProxyType(named)


# Read-only: the detectors file names its validators from here (a name not in it is a load
# error). Built once from the functions above; nothing adds to it at run time.
VALIDATORS: Mapping[str, Validator] = _registry()
