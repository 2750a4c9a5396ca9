"""The named validators: valid and invalid values of every kind, normalisation, and that no
text makes one raise."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.classify import validators as v
from sensor.classify.validators import VALIDATORS

BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def elfproef_remainder(digits: str) -> int:
    """Written here from the rule (research note §1.2), independent of python-stdnum."""
    return sum(w * int(d) for w, d in zip(BSN_WEIGHTS, digits, strict=True)) % 11


def make_bsns(count: int, seed: int) -> list[str]:
    """Valid BSNs: 8 random digits and the one last digit (if any) that makes the sum 0."""
    rng = random.Random(seed)
    found: list[str] = []
    while len(found) < count:
        prefix = f"{rng.randrange(10_000_000, 100_000_000):08d}"
        if prefix.startswith("10"):
            continue
        for last in "0123456789":
            if elfproef_remainder(prefix + last) == 0:
                found.append(prefix + last)
    return found


def make_onderwijsnummer(seed: int) -> str:
    rng = random.Random(seed)
    while True:
        candidate = "10" + f"{rng.randrange(0, 10_000_000):07d}"
        if elfproef_remainder(candidate) == 5:
            return candidate


def iban_with_check_digits(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def luhn_complete(body: str) -> str:
    for last in "0123456789":
        digits = body + last
        total = 0
        for i, d in enumerate(reversed(digits)):
            n = int(d) * (2 if i % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


# -- BSN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bsn", make_bsns(20, seed=13))
def test_bsn_valid_in_every_spelling(bsn: str) -> None:
    spaced = f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}"
    dotted = f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}"
    dashed = f"{bsn[:3]}-{bsn[3:6]}-{bsn[6:]}"
    for text in (bsn, spaced, dotted, dashed):
        assert v.validate_bsn(text) == bsn


def test_bsn_agrees_with_the_elfproef_on_every_last_digit() -> None:
    rng = random.Random(1)
    for _ in range(300):
        prefix = f"{rng.randrange(20_000_000, 100_000_000):08d}"
        for last in "0123456789":
            candidate = prefix + last
            expected = candidate if elfproef_remainder(candidate) == 0 else None
            assert v.validate_bsn(candidate) == expected, candidate


def test_bsn_documentation_examples_pass_the_validator() -> None:
    # They are valid numbers: the detectors file ignores them (tests/classify/test_detectors).
    assert v.validate_bsn("111222333") == "111222333"
    assert v.validate_bsn("123456782") == "123456782"


def test_bsn_legacy_eight_digits_are_zero_padded() -> None:
    rng = random.Random(5)
    checked = 0
    while checked < 20:
        nine = f"0{rng.randrange(0, 10_000_000):07d}{rng.randrange(10)}"
        if elfproef_remainder(nine) == 0 and nine != "000000000":
            assert v.validate_bsn(nine[1:]) == nine
            checked += 1
        elif nine != "000000000":
            assert v.validate_bsn(nine[1:]) is None


@pytest.mark.parametrize(
    "text", ["000000000", "00000000", "12345678", "1234567890", "12345678a", "", "123 456 78", "x"]
)
def test_bsn_invalid(text: str) -> None:
    assert v.validate_bsn(text) is None


@pytest.mark.parametrize("seed", range(5))
def test_onderwijsnummer_is_no_bsn(seed: int) -> None:
    number = make_onderwijsnummer(seed)
    assert v.validate_bsn(number) is None
    assert v.validate_onderwijsnummer(number) == number


# -- IBAN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "bban"),
    [
        ("NL", "INGB0007654321"),
        ("NL", "RABO0123456789"),
        ("DE", "500105175407324931"),
        ("BE", "063012345610"),  # BBAN's own mod-97 pair: 0630123456 % 97 == 10
    ],
)
def test_iban_valid(country: str, bban: str) -> None:
    iban = iban_with_check_digits(country, bban)
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert v.validate_iban(iban) == iban
    assert v.validate_iban(grouped.lower()) == iban
    assert (v.validate_iban_nl(iban) == iban) == (country == "NL")


def test_iban_wrong_checksum() -> None:
    iban = iban_with_check_digits("NL", "INGB0007654321")
    wrong = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    assert v.validate_iban(wrong) is None
    assert v.validate_iban(iban[:-1] + str((int(iban[-1]) + 1) % 10)) is None


def test_iban_wrong_length_with_a_right_checksum() -> None:
    # mod-97 holds, but an NL IBAN is 18 characters with a 4-letter bank code
    assert v.validate_iban(iban_with_check_digits("NL", "INGB00076543210")) is None
    assert v.validate_iban(iban_with_check_digits("NL", "INGB000765432")) is None
    assert v.validate_iban(iban_with_check_digits("NL", "1NGB0007654321")) is None
    assert v.validate_iban(iban_with_check_digits("DE", "50010517540732493")) is None


# -- payment cards ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "length"),
    [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
     ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14), ("62", 19), ("50", 12)],
)  # fmt: skip
def test_payment_card_valid(prefix: str, length: int) -> None:
    rng = random.Random(prefix)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    number = luhn_complete(body)
    assert v.validate_payment_card(number) == number
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    assert v.validate_payment_card(grouped) == number
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert v.validate_payment_card(broken) is None


@pytest.mark.parametrize(
    "body",
    ["9" + "1" * 14, "1" + "2" * 14, "37" + "1" * 13, "51" + "1" * 12, "2721" + "0" * 11],
)
def test_payment_card_luhn_valid_but_no_issuer_or_wrong_length(body: str) -> None:
    number = luhn_complete(body)
    assert v.validate_luhn(number) == number
    assert v.validate_payment_card(number) is None


def test_payment_card_test_numbers_pass_the_validator() -> None:
    # ignored by the detectors file, not by the validator
    assert v.validate_payment_card("4111 1111 1111 1111") == "4111111111111111"


# -- postcode, phone, e-mail ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2311 EZ", "2311EZ"), ("1012AB", "1012AB"), ("9999 zz", "9999ZZ"), ("1000 AA", "1000AA")],
)
def test_postcode_valid(text: str, expected: str) -> None:
    assert v.validate_postcode_nl(text) == expected


@pytest.mark.parametrize(
    "text", ["1234 SA", "1234 SD", "1234ss", "0123 AB", "123 AB", "12345 AB", "1234 A1", "1234"]
)
def test_postcode_invalid(text: str) -> None:
    assert v.validate_postcode_nl(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06-12345678", "+31612345678"),
        ("06 1234 5678", "+31612345678"),
        ("0612345678", "+31612345678"),
        ("+31 6 12345678", "+31612345678"),
        ("+31 (0)6 1234 5678", "+31612345678"),
        ("0031612345678", "+31612345678"),
        ("020-1234567", "+31201234567"),
        ("010 123 4567", "+31101234567"),
        ("0598-123456", "+31598123456"),
        ("088 123 4567", "+31881234567"),
    ],
)
def test_phone_valid(text: str, expected: str) -> None:
    assert v.validate_phone_nl(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0800 1234", "0900-1234567", "066 1234567", "06-1234567", "061234567890", "+32 2 1234567",
     "612345678", "00 31 6", "+31 0 12345678", "0612345abc"],
)  # fmt: skip
def test_phone_invalid(text: str) -> None:
    assert v.validate_phone_nl(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anna@ziggo.nl", "anna@ziggo.nl"),
        ("Anna.de-Vries@Ziggo.NL", "Anna.de-Vries@ziggo.nl"),
        ("j.jansen+lab@zorg-instelling.example.org", "j.jansen+lab@zorg-instelling.example.org"),
        ("o'brien@mail.co.uk", "o'brien@mail.co.uk"),
    ],
)
def test_email_valid(text: str, expected: str) -> None:
    assert v.validate_email(text) == expected


@pytest.mark.parametrize(
    "text",
    ["a..b@example.nl", ".a@example.nl", "a.@example.nl", "a@localhost", "a@-x.nl", "a@x-.nl",
     "a@x.n", "a@x.123", "@x.nl", "a@@x.nl", "a" * 65 + "@x.nl", "a@" + "b" * 64 + ".nl"],
)  # fmt: skip
def test_email_invalid(text: str) -> None:
    assert v.validate_email(text) is None


# -- dates --------------------------------------------------------------------------------

TODAY = date(2025, 7, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14-03-1985", "1985-03-14"),
        ("4-3-1985", "1985-03-04"),
        ("14/03/1985", "1985-03-14"),
        ("14.03.1985", "1985-03-14"),
        ("1985-03-14", "1985-03-14"),
        ("19850314", "1985-03-14"),
        ("3 maart 1962", "1962-03-03"),
        ("3 March 1962", "1962-03-03"),
        ("1 okt. 1950", "1950-10-01"),
        ("1 Dec 1950", "1950-12-01"),
        ("29-02-2000", "2000-02-29"),
        ("01-01-1900", "1900-01-01"),
        ("06-07-2025", "2025-07-06"),
    ],
)
def test_birth_date_valid(text: str, expected: str) -> None:
    assert v.validate_birth_date(text, TODAY) == expected


@pytest.mark.parametrize(
    "text",
    ["31-02-1990", "29-02-1900", "14-13-1985", "00-01-1985", "31-12-1899", "07-07-2025",
     "14-03/1985", "3 maand 1962", "1985-3-14", "1985/03/14", "14-03-85", ""],
)  # fmt: skip
def test_birth_date_invalid(text: str) -> None:
    assert v.validate_birth_date(text, TODAY) is None


def test_birth_date_default_today_refuses_the_future() -> None:
    assert v.validate_birth_date(f"01-01-{date.today().year + 1}") is None
    assert VALIDATORS["birth_date"]("14-03-1985") == "1985-03-14"
    assert VALIDATORS["date"]("01-01-2099") == "2099-01-01"


# -- care providers, ICD-10 ---------------------------------------------------------------


def test_agb_big_uzi_structure() -> None:
    assert v.validate_agb("01234567") == "01234567"
    assert v.validate_agb("00123456") is None
    assert v.validate_agb("1234567") is None
    assert v.validate_big("09012345601") == "09012345601"
    assert v.validate_big("9012345601") is None
    assert v.validate_uzi("900012345") == "900012345"
    assert v.validate_uzi("90001234") is None
    assert v.validate_uzi("90001234x") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("C53.9", "C53.9"), ("c53", "C53"), ("D06.1", "D06.1"), ("R87.810", "R87.810"),
     ("U07.1", "U07.1"), ("Z12.4", "Z12.4"), ("T98", "T98"), ("S00", "S00")],
)  # fmt: skip
def test_icd10_valid(text: str, expected: str) -> None:
    assert v.validate_icd10(text) == expected


@pytest.mark.parametrize(
    "text", ["E95", "K99.1", "P99", "T99", "Y99", "U99", "C5", "C53.", "C53.12345", "53.1", "CC3"]
)
def test_icd10_invalid(text: str) -> None:
    assert v.validate_icd10(text) is None


# -- EU identifiers (python-stdnum's own documented samples) ------------------------------

EU_SAMPLES = {
    "be.nn": ("85 07 30 033 28", "85073003328", "85 07 30 033 29"),
    "be.bis": ("98 47 28 997 65", "98472899765", "98 47 28 997 66"),
    "de.idnr": ("36 574 261 809", "36574261809", "36 574 261 808"),
    "fr.nir": ("2 95 10 99 126 111 93", "295109912611193", "2 95 10 99 126 111 94"),
    "es.dni": ("54362315-K", "54362315K", "54362315-Z"),
    "es.nie": ("x-2482300w", "X2482300W", "x-2482300a"),
    "it.codicefiscale": ("RCCMNL83S18D969H", "RCCMNL83S18D969H", "RCCMNL83S18D969X"),
    "pl.pesel": ("44051401359", "44051401359", "44051401358"),
    "se.personnummer": ("880320-0016", "880320-0016", "880320-0017"),
    "dk.cpr": ("211062-5629", "2110625629", "321062-5629"),
    "fi.hetu": ("131052-308T", "131052-308T", "131052-308U"),
    "at.vnr": ("1237 010180", "1237010180", "1238 010180"),
    "ee.ik": ("36805280109", "36805280109", "36805280108"),
    "ro.cnp": ("1630615123457", "1630615123457", "1630615123458"),
    "gb.nhs": ("943-476-5870", "9434765870", "943-476-5871"),
}


@pytest.mark.parametrize("module", sorted(EU_SAMPLES))
def test_eu_ids(module: str) -> None:
    valid, normalised, invalid = EU_SAMPLES[module]
    validate = VALIDATORS[f"eu_id:{module}"]
    assert validate(valid) == normalised
    assert validate(invalid) is None
    assert validate("") is None


def test_registry_is_read_only_and_complete() -> None:
    for module in v.EU_ID_MODULES:
        assert f"eu_id:{module}" in VALIDATORS
    for name in ("bsn", "iban", "payment_card", "postcode_nl", "phone_nl", "email", "icd10"):
        assert name in VALIDATORS
    with pytest.raises(TypeError):
        VALIDATORS["x"] = v.validate_bsn  # type: ignore[index]


def test_nl_document_number_structure_only() -> None:
    assert v.validate_nl_document_number("XR1001R58") == "XR1001R58"
    assert v.validate_nl_document_number("XO1001R58") is None  # no letter O
    assert v.validate_nl_document_number("XR1001R5A") is None


# -- hostile input ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_no_text_makes_a_validator_raise(text: str) -> None:
    for validate in VALIDATORS.values():
        result = validate(text)
        assert result is None or isinstance(result, str)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789 .-/+()ABNLXSZabz@", max_size=40))
def test_no_number_like_text_makes_a_validator_raise(text: str) -> None:
    for validate in VALIDATORS.values():
        result = validate(text)
        assert result is None or isinstance(result, str)


def test_huge_candidates_are_refused_cheaply() -> None:
    for validate in VALIDATORS.values():
        assert validate("1" * 100_000) is None


# -- the fast paths agree with python-stdnum's full validate() ----------------------------


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"\A[0-9]{8,9}\Z", fullmatch=True))
def test_bsn_agrees_with_stdnum(digits: str) -> None:
    """validate_bsn runs stdnum's checksum on the compacted digits; the verdict is the one of
    stdnum.nl.bsn.validate unless stdnum.nl.onderwijsnummer.validate accepts the number."""
    from stdnum.nl import bsn, onderwijsnummer

    expected = bsn.is_valid(digits) and not onderwijsnummer.is_valid(digits)
    assert (v.validate_bsn(digits) is not None) == expected


def test_bsn_agrees_with_stdnum_on_every_check_digit() -> None:
    from stdnum.nl import bsn, onderwijsnummer

    rng = random.Random(5)
    prefixes = [f"{rng.randrange(10**8):08d}" for _ in range(300)] + ["10" + "0" * 6, "10123456"]
    for prefix in prefixes:
        for last in "0123456789":
            number = prefix + last
            expected = bsn.is_valid(number) and not onderwijsnummer.is_valid(number)
            assert (v.validate_bsn(number) is not None) == expected, number


def test_iban_agrees_with_stdnum() -> None:
    """The mod 97-10 pre-check refuses nothing that stdnum.iban.validate accepts."""
    from stdnum import iban

    rng = random.Random(11)
    valid = [iban_with_check_digits("NL", f"ABNA0{rng.randrange(10**9):09d}") for _ in range(50)]
    valid += [iban_with_check_digits("DE", f"{rng.randrange(10**18):018d}") for _ in range(50)]
    broken = []
    for number in valid:
        i = rng.randrange(4, len(number))
        broken.append(number[:i] + str((int(number[i], 36) + 1) % 10) + number[i + 1 :])
    for number in valid + broken + ["NL91", "XX00ABCD", "NL00ABNA0000000000"]:
        expected = iban.validate(number) if iban.is_valid(number) else None
        assert v.validate_iban(number) == expected, number


def test_payment_card_agrees_with_stdnum_luhn() -> None:
    from stdnum import luhn

    rng = random.Random(3)
    for _ in range(500):
        number = "4" + "".join(str(rng.randrange(10)) for _ in range(15))
        assert (v.validate_payment_card(number) is not None) == luhn.is_valid(number)


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"\A(?:NL)?[0-9]{4}[ -]?[A-Za-z]{2}\Z", fullmatch=True) | st.text(max_size=10))
def test_postcode_agrees_with_stdnum(text: str) -> None:
    from stdnum.nl import postcode

    expected = postcode.compact(postcode.validate(text)) if postcode.is_valid(text) else None
    assert v.validate_postcode_nl(text) == expected
