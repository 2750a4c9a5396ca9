"""The scorer's canary and EDM hooks on both scanner engines, on text cut into rows and
batches: a table larger than one scan batch (rows fed before their candidates are scanned),
header-less and sniffed tables, and tokens written in other cases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sensor.classify.canary import KINDS, CanaryStore, mint
from sensor.classify.detectors import load_detectors
from sensor.classify.edm import EdmBuilder, EdmIndex
from sensor.classify.score import BATCH_CHARS, Classification, Classifier
from sensor.content.fingerprint.base import TextChunk, TextPosition
from sensor.content.text.delimited import RowChunk
from tests.data.classify.fake import valid_bsn

KEY = bytes(range(32))
ENGINES = ("hyperscan", "re")


def score(classifier: Classifier, chunks: list[TextChunk]) -> Classification:
    scorer = classifier.scorer()
    for chunk in chunks:
        scorer.text([chunk])
    return scorer.finish()


def prose(text: str) -> TextChunk:
    return TextChunk(text, TextPosition(0))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[CanaryStore, dict[str, str]]:
    path = tmp_path_factory.mktemp("canary") / "canaries.json"
    canaries = CanaryStore(path, KEY)
    rng = random.Random(5)
    tokens = {kind: mint(kind, rng=rng) for kind in KINDS}
    for kind, token in tokens.items():
        canaries.add(kind, token, f"label-{kind}", 0.0)
    return canaries, tokens


@pytest.mark.parametrize("engine", ENGINES)
def test_every_kind_of_token_is_found_in_text(
    engine: str, store: tuple[CanaryStore, dict[str, str]]
) -> None:
    canaries, tokens = store
    classifier = Classifier(load_detectors(), KEY, engine=engine, canaries=canaries)
    for kind, token in tokens.items():
        # Case folds except in a URL path (case-sensitive, RFC 3986 6.2.2.1) and in digits.
        for form in (token, token.upper()) if kind not in ("bsn", "url") else (token,):
            found = score(classifier, [prose(f"x {form}, y")])
            assert [c.label for c in found.canaries] == [f"label-{kind}"], (kind, form)
    # Near misses: one character off, or the same shape with another random part.
    other = mint("string", rng=random.Random(99))
    assert score(classifier, [prose(f"{tokens['string'][:-1]}a {other}")]).canaries == ()


def test_an_empty_store_arms_nothing(tmp_path: Path) -> None:
    empty = Classifier(load_detectors(), KEY, canaries=CanaryStore(tmp_path / "c.json", KEY))
    assert empty.canaries is None
    assert score(empty, [prose(mint("string"))]).canaries == ()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> tuple[EdmIndex, list[tuple[str, ...]]]:
    rng = random.Random(11)
    rows = [
        (valid_bsn(rng), f"19{rng.randrange(30, 99)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}",
         f"{rng.randrange(1000, 9999)} AB", f"Achternaam{rng.randrange(10**6)}")
        for _ in range(4000)
    ]  # fmt: skip
    builder = EdmBuilder(KEY, "bsn", ["geboortedatum", "postcode", "achternaam"])
    for bsn, *fields in rows:
        builder.add(bsn, fields)
    path = tmp_path_factory.mktemp("edm") / "edm.idx"
    builder.write(path)
    return EdmIndex.open(path, KEY), rows


def table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> list[TextChunk]:
    chunks: list[TextChunk] = []
    offset = 0
    for n, row in enumerate(rows, start=2):
        text = "\t".join(row)
        cells, at = [], 0
        for cell in row:
            cells.append(at)
            at += len(cell) + 1
        chunks.append(RowChunk(text, TextPosition(offset, row=n), None, tuple(cells), headers))
        offset += len(text) + 1
    return chunks


@pytest.mark.parametrize("engine", ENGINES)
def test_a_table_larger_than_a_batch_counts_every_known_record(
    engine: str, index: tuple[EdmIndex, list[tuple[str, ...]]]
) -> None:
    edm, rows = index
    classifier = Classifier(load_detectors(), KEY, engine=engine, edm=edm)
    # Surname first, the BSN under a header the index does not know, then the date.
    picked = [(name, bsn, birth) for bsn, birth, _pc, name in rows[:3000]]
    chunks = table(picked, ("Achternaam", "nummer", "Geboortedatum"))
    assert sum(len(c.text) + 1 for c in chunks) > 2 * BATCH_CHARS
    result = score(classifier, chunks)
    assert result.edm is not None and result.edm.matched == 3000
    # The BSN column alone: every primary seen, nothing corroborated.
    alone = score(classifier, table([(bsn,) for bsn, *_ in rows[:40]], ("bsn",)))
    assert alone.edm is not None and (alone.edm.matched, alone.edm.primary_only) == (0, 40)


def test_wrong_fields_do_not_corroborate(index: tuple[EdmIndex, list[tuple[str, ...]]]) -> None:
    edm, rows = index
    classifier = Classifier(load_detectors(), KEY, edm=edm)
    # Each BSN next to ANOTHER patient's birth date and surname: no record matches.
    shifted = [(rows[i][0], rows[i + 1][1], rows[i + 2][3]) for i in range(0, 300, 3)]
    result = score(classifier, table(shifted, ("bsn", "geboortedatum", "achternaam")))
    assert result.edm is not None and (result.edm.matched, result.edm.primary_only) == (0, 100)


def test_ids_of_matched_records_are_the_index_positions(
    index: tuple[EdmIndex, list[tuple[str, ...]]], tmp_path: Path
) -> None:
    edm, rows = index
    classifier = Classifier(load_detectors(), KEY, edm=edm)
    text = " ".join(f"BSN {bsn} geboren {birth}." for bsn, birth, *_ in rows[:10])
    result = score(classifier, [prose(text)])
    assert result.edm is not None
    assert sorted(result.edm.records) == sorted(edm.primary(bsn) for bsn, *_ in rows[:10])
