"""Scoring of one object's text: validator, context (window, column header), negative words,
ignored examples, distinct counts by keyed hash, records, categories and the severity table."""

from __future__ import annotations

import os
import random
from dataclasses import replace

import pytest

from sensor.classify.detectors import load_detectors
from sensor.classify.score import Classification, Classifier, mask
from sensor.content.objects import DEFAULT_CAPS, FileObject
from tests.data.classify.fake import failing_nine_digits, valid_bsn

KEY = os.urandom(32)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_detectors(), KEY)


def classify(classifier: Classifier, data: bytes, name: str, chunk: int = 1460) -> Classification:
    """Through the content stage as the pipeline will: fingerprint, text extractor, scorer."""
    scorers = []

    def factory(meta: object) -> object:
        scorer = classifier.scorer()
        scorers.append(scorer)
        return scorer

    obj = FileObject(filename=name, caps=replace(DEFAULT_CAPS, text_consumer=factory))  # type: ignore[arg-type]
    for i in range(0, len(data), chunk):
        obj.update(data[i : i + chunk])
    info = obj.finish(True)
    assert isinstance(info.classification, Classification)
    return info.classification


def bsns(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(valid_bsn(rng))
    return sorted(out)


def patient_csv(numbers: list[str]) -> bytes:
    rows = ["bsn;achternaam;geboortedatum;uitslag"]
    rows += [f"{b};Jansen;1985-03-0{i % 9 + 1};hrHPV positief, PAP{i % 5 + 1}" for i, b in
             enumerate(numbers)]  # fmt: skip
    return ("\n".join(rows) + "\n").encode()


def test_mask() -> None:
    assert mask("123456782") == "*****6782" and mask("abc") == "***"


def test_a_patient_table_with_screening_results_is_severe(classifier: Classifier) -> None:
    numbers = bsns(150)
    result = classify(classifier, patient_csv(numbers), "export.csv")
    assert result.severity in ("high", "critical")
    assert {"national_id", "health"} <= set(result.categories)
    assert result.identifiers["bsn"].distinct == 150
    assert result.identifiers["bsn"].with_context == 150  # the column header names them
    assert result.records == 150
    assert all(
        s.startswith("*****") and s[-4:].isdigit() for s in result.identifiers["bsn"].samples
    )
    text = repr(result)
    assert not any(number in text for number in numbers)  # no clear identifier in the result


@pytest.mark.parametrize("chunk", [1, 97, 4096, 1 << 20])
def test_chunking_does_not_change_the_result(classifier: Classifier, chunk: int) -> None:
    data = patient_csv(bsns(40, seed=chunk))
    whole = classify(classifier, data, "x.csv", chunk=len(data))
    assert classify(classifier, data, "x.csv", chunk=chunk) == whole


def test_one_bsn_in_a_referral_letter_is_not_high(classifier: Classifier) -> None:
    (number,) = bsns(1, seed=5)
    letter = (
        "Beste collega,\n\nHierbij verwijs ik mevrouw Jansen (BSN " + number + ") naar u door "
        "voor colposcopie na een afwijkend uitstrijkje (PAP3a, hrHPV positief).\n\nMet "
        "vriendelijke groet,\nDr. de Vries\n"
    ).encode()
    result = classify(classifier, letter, "verwijzing.txt")
    assert result.identifiers["bsn"].distinct == 1
    assert result.severity in ("low", "medium")


def test_order_numbers_next_to_their_negative_words_do_not_count(classifier: Classifier) -> None:
    rng = random.Random(3)
    lines = [f"factuurnummer {b} bedrag EUR {rng.randint(10, 999)},00" for b in bsns(30, 9)]
    lines += [f"ordernummer {failing_nine_digits(rng)}" for _ in range(30)]
    result = classify(classifier, ("\n".join(lines) + "\n").encode(), "facturen.txt")
    assert "bsn" not in result.identifiers or result.identifiers["bsn"].distinct == 0
    assert result.severity in (None, "low")


def test_documented_example_values_are_ignored(classifier: Classifier) -> None:
    text = b"Voorbeeld: BSN 111222333 of 123456782, IBAN NL91ABNA0417164300.\n"
    result = classify(classifier, text, "handleiding.txt")
    assert "bsn" not in result.identifiers and "iban" not in result.identifiers


def test_nothing_found_is_no_severity(classifier: Classifier) -> None:
    result = classify(classifier, b"Het weer is mooi vandaag.\n" * 100, "weer.txt")
    assert result.severity is None and result.identifiers == {} and result.categories == ()


def test_a_column_headed_by_a_negative_word_does_not_count(classifier: Classifier) -> None:
    rows = ["ordernummer;artikel;aantal"] + [f"{b};schroef M{i % 9};{i}" for i, b in
                                              enumerate(bsns(60, 21))]  # fmt: skip
    result = classify(classifier, ("\n".join(rows) + "\n").encode(), "orderlijst.csv")
    assert "bsn" not in result.identifiers
    assert result.severity in (None, "low")


def test_digits_inside_a_uuid_are_not_a_bsn(classifier: Classifier) -> None:
    (number,) = bsns(1, 31)
    text = f'{{"fullUrl": "urn:uuid:6f1c2a7e-0d3b-4c55-9e21-b4e5{number[:8]}", "bsn": "x"}}'
    result = classify(classifier, text.encode(), "bundle.json")
    assert "bsn" not in result.identifiers


def test_the_digits_of_a_phone_number_are_not_also_a_bsn(classifier: Classifier) -> None:
    # Mobile numbers 06-1..5 and 06-8 whose nine digits also pass the elfproef.
    numbers = [b for b in bsns(600, 41) if b[0] == "6" and b[1] in "123458"][:25]
    assert len(numbers) >= 20
    lines = [f"Jansen +31 {n}" for n in numbers]
    result = classify(classifier, ("\n".join(lines) + "\n").encode(), "lijst.txt")
    assert "phone_nl" in result.identifiers
    assert "bsn" not in result.identifiers


def test_request_ids_in_a_server_log_are_not_bsns(classifier: Classifier) -> None:
    lines = [
        f"2025-07-01T08:16:29Z INFO api request_id={b} path=/api/v1/orders/1 status=200"
        for b in bsns(40, 51)
    ]
    result = classify(classifier, ("\n".join(lines) + "\n").encode(), "server.log")
    assert "bsn" not in result.identifiers and result.severity in (None, "low")
