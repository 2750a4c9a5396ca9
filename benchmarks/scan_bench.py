"""Benchmark of the classification scanner (sensor/classify/scanner.py), issue 13 item 7.

Prints Markdown tables of MB/s (1 MB = 10^6 characters of text), fed in 64 KiB chunks, on
(a) sparse newsletter-like Dutch text with about 0.5% identifier tokens, (b) an extreme dense
identifier table (CSV rows of BSN;IBAN;e-mail;date;postcode, a candidate per 9 characters)
and (c) a realistic dense table, a lab's patient export (bsn;achternaam;voornaam;
geboortedatum;postcode;uitslag). Never fails on timing.

1. The Scanner on its two engines with 12 patterns and 300 keywords, beside a plain `re`
   scan of the same patterns (`re.finditer` of each over the same data, no streaming, no
   keywords) in the same run.
2. The shipped detectors (signatures/detectors.toml): the Scanner alone, the whole scoring
   of one object (`ObjectScorer`: scan, validate, context, keyed-hash counts) and a plain
   `re` scan of the same detector patterns.

    .venv/bin/python benchmarks/scan_bench.py [--mb 50]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from sensor.classify.detectors import load_detectors
from sensor.classify.scanner import Pattern, Scanner
from sensor.classify.score import Classifier
from sensor.content.fingerprint.base import TextChunk, TextPosition

CHUNK = 64 * 1024

PATTERNS = [
    Pattern("bsn", r"\d{9}|\d{3}[ .-]\d{3}[ .-]\d{3}|\d{4}\.\d{2}\.\d{3}", boundary="digits"),
    Pattern(
        "iban", r"[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?", boundary="alnum"
    ),
    Pattern("nl_iban", r"NL\d{2} ?[A-Z]{4}(?: ?\d{4}){2} ?\d{2}", boundary="alnum"),
    Pattern("email", r"[\w.+-]{1,64}@[\w-]{1,40}(?:\.[\w-]{1,20}){1,4}", boundary="word"),
    Pattern(
        "nl_phone", r"(?:\+31|0031|0)[ -]?(?:6[ -]?\d{8}|[1-57-9]\d[ -]?\d{7})", boundary="digits"
    ),
    Pattern(
        "date",
        r"(?:[12]\d|3[01]|0?[1-9])[-/.](?:1[0-2]|0?[1-9])[-/.](?:19|20)\d{2}",
        boundary="digits",
    ),
    Pattern("date_iso", r"(?:19|20)\d{2}-[01]\d-[0-3]\d", boundary="digits"),
    Pattern("postcode", r"[1-9]\d{3} ?[A-Z]{2}", boundary="alnum"),
    Pattern("pan", r"\d(?:[ -]?\d){12,18}", boundary="digits"),
    Pattern("icd10", r"[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?", boundary="alnum"),
    Pattern("agb", r"\d{8}", boundary="digits"),
    Pattern("nl_docnr", r"[A-NP-Z]{2}[A-NP-Z0-9]{6}\d", boundary="alnum"),
]

_BASE_KEYWORDS = [
    "bsn",
    "burgerservicenummer",
    "sofinummer",
    "sofi",
    "persoonsnummer",
    "bsn-nummer",
    "citizen-service-number",
    "iban",
    "rekeningnummer",
    "bankrekening",
    "rekeninghouder",
    "incasso",
    "machtiging",
    "sepa",
    "creditcard",
    "kaartnummer",
    "betaalkaart",
    "vervaldatum",
    "cvc",
    "cvv",
    "postcode",
    "adres",
    "straat",
    "woonplaats",
    "huisnummer",
    "telefoon",
    "telefoonnummer",
    "mobiel",
    "gsm",
    "email",
    "e-mail",
    "mailadres",
    "geboortedatum",
    "geboren",
    "leeftijd",
    "dob",
    "agb",
    "agb-code",
    "zorgverlenerscode",
    "praktijkcode",
    "big",
    "big-nummer",
    "big-register",
    "uzi",
    "uzi-nummer",
    "uzi-pas",
    "icd",
    "icd-10",
    "diagnose",
    "diagnosecode",
    "dbc",
    "verrichting",
    "icpc",
    "huisarts",
    "patient",
    "patiënt",
    "cliënt",
    "uitstrijkje",
    "hrhpv",
    "hpv",
    "cytologie",
    "pap1",
    "pap2",
    "pap3a",
    "pap3b",
    "pap4",
    "pap5",
    "kopac",
    "kopac-b",
    "asc-us",
    "lsil",
    "hsil",
    "cin",
    "cin1",
    "cin2",
    "cin3",
    "colposcopie",
    "bevolkingsonderzoek",
    "baarmoederhalskanker",
    "baarmoederhals",
    "cervix",
    "cervixcytologie",
    "screening",
    "zelfafnametest",
    "uitslag",
    "testuitslag",
    "laboratorium",
    "labnummer",
    "monsternummer",
    "aanvraagnummer",
    "verwijzing",
    "gynaecoloog",
    "biopt",
    "histologie",
    "pathologie",
    "oncologie",
    "diagnose",
    "behandeling",
    "medicatie",
    "recept",
    "ziekenhuis",
    "zorgverzekeraar",
    "uzovi",
    "polisnummer",
]


def keywords() -> dict[str, list[str]]:
    # About 300: the vocabulary above plus compounds of the kind health texts are full of.
    words = list(dict.fromkeys(_BASE_KEYWORDS))
    rng = random.Random(7)
    stems = ["zorg", "patiënt", "onderzoek", "uitslag", "screening", "verwijs", "lab", "cyto"]
    tails = ["dossier", "gegevens", "nummer", "brief", "code", "register", "datum", "traject"]
    prefixes = ["", "landelijk ", "regionaal ", "digitaal "]
    while len(words) < 300:
        word = rng.choice(prefixes) + rng.choice(stems) + rng.choice(tails)
        if word not in words:
            words.append(word)
    half = len(words) // 2
    return {"context": words[:half], "health": words[half:]}


_PROSE = [
    "de",
    "het",
    "een",
    "en",
    "van",
    "in",
    "op",
    "voor",
    "met",
    "is",
    "dat",
    "die",
    "niet",
    "zijn",
    "aan",
    "ook",
    "als",
    "bij",
    "nieuwsbrief",
    "bevolkingsonderzoek",
    "uitnodiging",
    "vrouwen",
    "tussen",
    "jaar",
    "gemeente",
    "afspraak",
    "informatie",
    "lees",
    "meer",
    "over",
    "onze",
    "activiteiten",
    "deze",
    "maand",
    "bijeenkomst",
    "vrijwilligers",
    "welkom",
    "zomer",
    "programma",
    "aanmelden",
    "website",
    "contact",
    "vragen",
    "bel",
    "ons",
    "kantoor",
    "open",
    "maandag",
    "tot",
    "vrijdag",
    "gezondheid",
    "preventie",
    "onderzoek",
    "resultaten",
    "landelijk",
    "regio",
]


def sparse_text(size: int, rng: random.Random) -> str:
    # Newsletter-like prose; about 1 token in 200 is a number/identifier.
    idents = ["111222333", "12-03-1984", "2511 CV", "06-12345678", "info@voorbeeld.nl", "2024"]
    parts: list[str] = []
    n = 0
    while n < size:
        word = rng.choice(idents) if rng.random() < 0.005 else rng.choice(_PROSE)
        if rng.random() < 0.03:
            word = word.capitalize() + "."
        parts.append(word)
        n += len(word) + 1
    return " ".join(parts)[:size]


def dense_text(size: int, rng: random.Random) -> str:
    rows = ["bsn;iban;email;geboortedatum;postcode;uitslag\n"]
    n = len(rows[0])
    while n < size:
        row = (
            f"{rng.randrange(10**8, 10**9)};"
            f"NL{rng.randrange(10, 99)}ABNA0{rng.randrange(10**8, 10**9)};"
            f"p{rng.randrange(10**6)}@mail{rng.randrange(99)}.nl;"
            f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-{rng.randint(1940, 2000)};"
            f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}{rng.choice('ABCDEFGHJK')};"
            f"{rng.choice(['PAP1', 'PAP2', 'PAP3A', 'hrHPV negatief'])}\n"
        )
        rows.append(row)
        n += len(row)
    return "".join(rows)[:size]


_GIVEN = ["Anna", "Sanne", "Fleur", "Maria", "Eva", "Lotte", "Noor", "Julia", "Emma", "Inge"]
_FAMILY = ["de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "Bos",
           "Mulder", "de Boer", "van Dijk", "Peters", "Hendriks", "Dekker", "Brouwer"]  # fmt: skip
_RESULTS = [
    "hrHPV negatief",
    "hrHPV negatief",
    "hrHPV negatief",
    "hrHPV positief; PAP1; KOPAC-B K1O1P1A1C1B1",
    "hrHPV positief; PAP2; KOPAC-B K1O2P2A1C1B1; ASC-US",
    "hrHPV positief; PAP3a2; KOPAC-B K2O1P5A1C2B1; HSIL; CIN 2",
]


def _bsn(rng: random.Random) -> str:
    """Nine digits passing the elfproef (weights 9..2, -1)."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        last = sum((9 - i) * d for i, d in enumerate(digits)) % 11
        if last < 10 and digits[:2] != [1, 0]:
            return "".join(map(str, digits)) + str(last)


def patient_text(size: int, rng: random.Random) -> str:
    """A lab's patient export: one identifier-like value per 12 characters or so."""
    rows = ["bsn;achternaam;voornaam;geboortedatum;postcode;uitslag\n"]
    n = len(rows[0])
    while n < size:
        row = (
            f"{_bsn(rng)};{rng.choice(_FAMILY)};{rng.choice(_GIVEN)};"
            f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-{rng.randint(1950, 2000)};"
            f"{rng.randint(1000, 9999)} {rng.choice('ABCEGHJKLMNPRTVXZ')}"
            f"{rng.choice('ABCEGHJKLMNPRTVXZ')};{rng.choice(_RESULTS)}\n"
        )
        rows.append(row)
        n += len(row)
    return "".join(rows)[:size]


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = fn()
    return time.perf_counter() - start, count


def scanner_run(scanner: Scanner, text: str) -> Callable[[], int]:
    def run() -> int:
        stream = scanner.stream()
        count = 0
        for i in range(0, len(text), CHUNK):
            count += len(stream.feed(text[i : i + CHUNK]))
        return count + len(stream.finish())

    return run


def scorer_run(classifier: Classifier, text: str) -> Callable[[], int]:
    """The scoring of one object: identifiers accepted (occurrences)."""

    def run() -> int:
        scorer = classifier.scorer()
        for i in range(0, len(text), CHUNK):
            scorer.text([TextChunk(text[i : i + CHUNK], TextPosition(i))])
        return sum(c.occurrences for c in scorer.finish().identifiers.values())

    return run


def plain_re_run(text: str, patterns: list[Pattern] = PATTERNS) -> Callable[[], int]:
    compiled = []
    for p in patterns:
        cls = {"digits": "0-9", "alnum": "A-Za-z0-9", "word": "A-Za-z0-9_"}.get(p.boundary or "")
        rx = f"(?<![{cls}])(?:{p.regex})(?![{cls}])" if cls else p.regex
        compiled.append(re.compile(rx, re.ASCII | (re.I if p.caseless else 0)))

    def run() -> int:
        return sum(1 for rx in compiled for _ in rx.finditer(text))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of each data set (10^6 chars)")
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    rng = random.Random(13)
    kws = keywords()
    data = {
        "sparse text": sparse_text(size, rng),
        "dense CSV": dense_text(size, rng),
        "patient export": patient_text(size, rng),
    }
    scanners = {
        "Scanner hyperscan (12 patterns + 300 keywords)": Scanner(
            PATTERNS, kws, engine="hyperscan"
        ),
        "Scanner re (12 patterns + 300 keywords)": Scanner(PATTERNS, kws, engine="re"),
        "keywords only, hyperscan literals": Scanner([], kws, engine="hyperscan"),
        "keywords only, pyahocorasick": Scanner([], kws, engine="re"),
    }
    results: dict[str, dict[str, tuple[float, int]]] = {}
    for dname, text in data.items():
        for sname, scanner in scanners.items():
            results.setdefault(sname, {})[dname] = timed(scanner_run(scanner, text))
        results.setdefault("plain re.finditer per pattern (no keywords)", {})[dname] = timed(
            plain_re_run(text)
        )
    print(
        f"{len(PATTERNS)} patterns, {sum(map(len, kws.values()))} keywords, "
        f"{args.mb:g} MB per data set, {CHUNK // 1024} KiB chunks\n"
    )
    print_table(results, data, "candidates")

    classifier = Classifier(load_detectors(), bytes(32))
    shipped = list(classifier.patterns)
    second: dict[str, dict[str, tuple[float, int]]] = {}
    for dname, text in data.items():
        for name, run in (
            (f"Scanner {classifier.scanner.engine} alone (candidates)", scanner_run(
                classifier.scanner, text)),
            ("ObjectScorer: scan, validate, score (identifiers accepted)", scorer_run(
                classifier, text)),
            ("plain re.finditer per pattern (matches)", plain_re_run(text, shipped)),
        ):  # fmt: skip
            second.setdefault(name, {})[dname] = timed(run)
    print(
        f"\nThe shipped detectors ({len(shipped)} patterns, their context and negative words "
        "and the health vocabulary):\n"
    )
    print_table(second, data, "count")
    print("\nTargets (issue 13): >= 100 MB/s sparse, >= 30 MB/s dense, per core.")


def print_table(
    results: dict[str, dict[str, tuple[float, int]]], data: dict[str, str], what: str
) -> None:
    print("| engine | " + " | ".join(f"{d} MB/s | {what}" for d in data) + " |")
    print("|---|" + "---:|---:|" * len(data))
    for name, per in results.items():
        cells = []
        for dname in data:
            seconds, count = per[dname]
            cells += [f"{len(data[dname]) / seconds / 1e6:.1f}", str(count)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
