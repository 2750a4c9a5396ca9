"""Deterministic fake content for the sample uploads. No real person is in here.

The BSN-like numbers of `fake_bsn` (and so of every `patients_csv`) are 9 digits that
deliberately FAIL the elfproef (11-test), so none of them can be an issued Dutch citizen service
number. `valid_bsn` makes numbers that PASS it, for the captures and corpora a BSN detector must
find something in (patient-exfil, the classification evaluation corpus); a random 9-digit
number passes about 1 time in 11, so such a number may equal an issued one by chance, but it is
never linked to that person's name, date of birth or address.
"""

from __future__ import annotations

import random

FIRST = ["Anna", "Bram", "Daan", "Emma", "Fleur", "Gijs", "Iris", "Jesse", "Lotte", "Milan",
         "Noor", "Ruben", "Sanne", "Thijs", "Vera", "Wouter", "Yara", "Zoe"]  # fmt: skip
LAST = ["Testhuis", "Voorbeeld", "Proefman", "Nepdorp", "Fictiefsma", "Demoveld", "Dummerhof",
        "Oefenaar", "Mockstra", "Stubbing"]  # fmt: skip
DIAGNOSES = ["controle", "uitstrijkje normaal", "HPV negatief", "herhaling 6 mnd", "verwezen"]
# The documentation examples a BSN detector ignores: never made as a "real" value.
EXAMPLE_BSNS = frozenset({"111222333", "123456782"})


def _elfproef_ok(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def fake_bsn(rng: random.Random) -> str:
    """A 9-digit number that fails the elfproef, so it is not a valid (or real) BSN."""
    while True:
        digits = "".join(str(rng.randrange(10)) for _ in range(9))
        if digits[0] != "0" and not _elfproef_ok(digits):
            return digits


def valid_bsn(rng: random.Random, *, leading_zero: bool = False) -> str:
    """Nine digits that pass the elfproef, not a documentation example, never all zeros.
    `leading_zero`: the first digit is 0 and the second is not (so a spreadsheet's numeric
    cell shows exactly 8 digits)."""
    while True:
        first = "0" + str(rng.randrange(1, 10)) if leading_zero else str(rng.randrange(1, 10))
        head = first + "".join(str(rng.randrange(10)) for _ in range(8 - len(first)))
        total = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True))
        last = total % 11
        if last == 10:
            continue  # no single check digit makes this prefix valid
        bsn = head + str(last)
        if bsn not in EXAMPLE_BSNS and int(bsn) != 0 and _elfproef_ok(bsn):
            return bsn


def patients_csv(target_size: int, seed: int) -> bytes:
    """A CSV of fake patient rows, at least `target_size` bytes, identical for equal seeds."""
    rng = random.Random(seed)
    lines = ["patient_id,bsn,first_name,last_name,birth_date,result"]
    size = len(lines[0]) + 1
    n = 0
    while size < target_size:
        n += 1
        row = (
            f"P{seed:02d}{n:06d},{fake_bsn(rng)},{rng.choice(FIRST)},{rng.choice(LAST)},"
            f"{rng.randrange(1940, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},"
            f"{rng.choice(DIAGNOSES)}"
        )
        lines.append(row)
        size += len(row) + 1
    return ("\n".join(lines) + "\n").encode()


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)
