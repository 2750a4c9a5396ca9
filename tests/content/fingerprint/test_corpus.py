"""The encrypted-container corpus (tests/data/fingerprint/corpus, made with the real tools by
make_corpus.py): every encrypted sample is flagged with its scheme, nothing plain is, and any
chunking gives the same fingerprint as feeding the object whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from sensor.content.objects import FileInfo, FileObject

CORPUS = Path(__file__).resolve().parents[2] / "data" / "fingerprint" / "corpus"
SAMPLES: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())["samples"]
# The corpus says what the tools made; where Sluice names a type more precisely it says so here:
# an encrypted OOXML document is a CFB container holding EncryptionInfo + EncryptedPackage.
REFINED = {"docx-agile.docx": "office-encrypted", "xlsx-agile.xlsx": "office-encrypted"}


def fingerprint(data: bytes, name: str, chunk: int) -> FileInfo:
    obj = FileObject(filename=name)
    for i in range(0, len(data), chunk):
        obj.update(data[i : i + chunk])
    return obj.finish(True)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["file"])
def test_corpus_sample(sample: dict[str, Any]) -> None:
    data = (CORPUS / sample["file"]).read_bytes()
    info = fingerprint(data, sample["file"], 1460)
    fp = info.fingerprint
    assert fp is not None
    want = {
        "type": REFINED.get(sample["file"], sample["type"]),
        "encrypted": sample["encrypted"],
        "encryption": sample["encryption"],
        "hides_names": sample["hides_names"],
        "container": sample["container"],
        "contains_encrypted": sample["contains_encrypted"],
        "partial": sample["partial"],
        "members": sample["members"],
    }
    have = {key: getattr(fp, key) for key in want}
    assert have == want


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["file"])
def test_any_chunking_gives_the_same_fingerprint_and_members(sample: dict[str, Any]) -> None:
    data = (CORPUS / sample["file"]).read_bytes()
    whole = fingerprint(data, sample["file"], len(data) or 1)
    for chunk in (1, 3, 61, 512, 4099):
        if chunk == 1 and len(data) > 20_000:
            continue  # byte by byte for the small ones: the split tests per format cover all
        again = fingerprint(data, sample["file"], chunk)
        assert again.fingerprint == whole.fingerprint, chunk
        assert [m.sha256 for m in again.members] == [m.sha256 for m in whole.members]


def test_the_corpus_covers_every_scheme_it_claims() -> None:
    schemes = {s["encryption"] for s in SAMPLES if s["encrypted"]}
    assert {"zip-pkware", "zip-aes-128", "zip-aes-256", "7z-aes-256", "openpgp-symmetric",
            "openpgp-public-key", "age-x25519", "age-scrypt", "openssl-enc", "pdf-aes-256",
            "office-agile"} <= schemes  # fmt: skip
    assert sum(1 for s in SAMPLES if s["encrypted"] is False) >= 15


SMALL = [s for s in SAMPLES if s["size"] <= 16_384]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SMALL),
    st.lists(st.integers(1, 2000), min_size=1, max_size=40),
)
def test_property_any_chunks_same_fingerprint(sample: dict[str, Any], cuts: list[int]) -> None:
    data = (CORPUS / sample["file"]).read_bytes()
    whole = fingerprint(data, sample["file"], len(data) or 1)
    obj = FileObject(filename=sample["file"])
    i = 0
    for cut in cuts * (len(data) // max(sum(cuts), 1) + 1):
        obj.update(data[i : i + cut])
        i += cut
    obj.update(data[i:])
    again = obj.finish(True)
    assert again.fingerprint == whole.fingerprint
    assert [(m.sha256, m.fingerprint) for m in again.members] == [
        (m.sha256, m.fingerprint) for m in whole.members
    ]
