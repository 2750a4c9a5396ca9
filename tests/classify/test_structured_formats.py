"""Formats whose structure decides what their numbers are, classified through the content
stage: a document made of parts is one object (an xlsx's column headers, in its shared
strings, reach its numeric cells, whatever the order of the two in the ZIP); an HL7 v2
field's position and issuer say whether its number is a BSN, a date of birth or an AGB code.

The files are the evaluation corpus's (tests/data/classify/make_eval.py), built here small:
the cases that decided precision, recall and counts on the full corpus.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from dataclasses import replace

import pytest

from sensor.classify.detectors import load_detectors
from sensor.classify.score import Classification, Classifier
from sensor.content.objects import DEFAULT_CAPS, FileInfo, FileObject, ObjectMeta
from tests.data.classify import make_eval

KEY = os.urandom(32)
HIGH = ("high", "critical")


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_detectors(), KEY)


def classify(classifier: Classifier, data: bytes, name: str, chunk: int = 1460) -> FileInfo:
    def factory(meta: ObjectMeta) -> Classifier:
        return classifier.scorer()  # type: ignore[return-value]

    obj = FileObject(filename=name, caps=replace(DEFAULT_CAPS, text_consumer=factory))  # type: ignore[arg-type]
    for i in range(0, len(data), chunk):
        obj.update(data[i : i + chunk])
    return obj.finish(True)


def verdict(info: FileInfo) -> Classification:
    """The document's classification; none of its parts has one of its own."""
    assert isinstance(info.classification, Classification)
    assert all(member.classification is None for member in info.members)
    return info.classification


def reorder(data: bytes, strings_first: bool) -> bytes:
    """The same workbook with xl/sharedStrings.xml before or after the sheet."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(name, zf.read(name)) for name in zf.namelist()]
    rank = {"xl/sharedStrings.xml": 0 if strings_first else 2, "xl/worksheets/sheet1.xml": 1}
    members.sort(key=lambda m: rank.get(m[0], -1))
    return make_eval.zip_bytes(members)


def national_ids(result: Classification) -> int:
    return sum(result.counts().get(d, 0) for d in ("bsn", "bsn_legacy"))


@pytest.mark.parametrize("strings_first", [True, False])
@pytest.mark.parametrize("rows", [12, 19, 300])
def test_a_numeric_bsn_export_is_high(
    classifier: Classifier, rows: int, strings_first: bool
) -> None:
    """10-19 numeric BSN cells with no context word of their own were missed: the `BSN`
    header and the screening results live in sharedStrings.xml."""
    rng = random.Random(rows)
    data, facts = make_eval.build_xlsx(rng, rows, set(), {"bsn_cell": "numeric", "zero_every": 7})
    result = verdict(classify(classifier, reorder(data, strings_first), "export.xlsx"))
    assert result.severity in HIGH
    assert national_ids(result) == len(facts.values["bsn"])  # 8-digit cells too, by the header
    assert result.records == facts.records
    assert "health" in result.categories and "national_id" in result.categories
    # A date of birth counts through its column header, in every row.
    assert result.counts()["date_of_birth"] == len(facts.values["dob"])


@pytest.mark.parametrize("strings_first", [True, False])
def test_an_order_list_is_not_high(classifier: Classifier, strings_first: bool) -> None:
    """Nine-digit order numbers, 30% passing the elfproef, under an `ordernummer` header
    that sits in sharedStrings.xml."""
    rng = random.Random(5)
    data, facts = make_eval.build_orders(rng, 400, set(), {"as": "xlsx", "pass_share": 0.3})
    assert len(facts.decoys["elfproef_pass"]) > 20
    result = verdict(classify(classifier, reorder(data, strings_first), "orders.xlsx"))
    assert result.severity not in HIGH
    assert national_ids(result) == 0


def test_the_member_order_does_not_change_the_verdict(classifier: Classifier) -> None:
    rng = random.Random(3)
    data, _ = make_eval.build_xlsx(rng, 40, set(), {"bsn_cell": "string"})
    first = verdict(classify(classifier, reorder(data, True), "a.xlsx", chunk=512))
    late = verdict(classify(classifier, reorder(data, False), "a.xlsx", chunk=4096))
    assert (first.severity, first.counts(), first.records) == (
        late.severity,
        late.counts(),
        late.records,
    )


def test_a_workbook_inside_a_zip(classifier: Classifier) -> None:
    rng = random.Random(11)
    data, facts = make_eval.build_xlsx(rng, 15, set(), {"bsn_cell": "numeric"})
    outer = make_eval.zip_bytes([("export/deel-01.xlsx", data)])
    info = classify(classifier, outer, "export.zip")
    (workbook,) = info.members
    result = verdict(workbook)
    assert result.severity in HIGH and national_ids(result) == len(facts.values["bsn"])


def test_a_docx_is_one_finding(classifier: Classifier) -> None:
    rng = random.Random(2)
    data, facts = make_eval.build_docx(rng, 12, set(), {"split_runs": True})
    result = verdict(classify(classifier, data, "verwijzing.docx"))
    assert result.severity in HIGH
    assert result.counts()["bsn"] == len(facts.values["bsn"])


@pytest.mark.parametrize(
    "opt",
    [
        {"encoding": "latin-1"},
        {"encoding": "utf-8", "segment_end": "\r\n", "between": "\r\n", "repeat": 0.1},
    ],
)
def test_hl7_fields_count_as_what_they_are(classifier: Classifier, opt: dict[str, object]) -> None:
    """PID-3 issued by the BSN's OID is a BSN, PID-7 a date of birth (and not also an AGB
    code or an 8-digit BSN because OIDs stand nearby); one record per message."""
    rng = random.Random(17)
    data, facts = make_eval.build_hl7(rng, 60, set(), opt)
    info = classify(classifier, data, "uitslagen.hl7", chunk=1000)
    result = info.classification
    assert isinstance(result, Classification)
    counts = result.counts()
    assert counts["bsn"] == len(facts.values["bsn"])
    assert "bsn_legacy" not in counts
    assert counts["date_of_birth_compact"] == len(facts.values["dob"])
    assert counts["agb"] == len(facts.values["agb"])
    assert result.records == facts.records == facts.meta["messages"]
    assert result.identifiers["bsn"].with_context == len(facts.values["bsn"])
    assert result.severity in HIGH
