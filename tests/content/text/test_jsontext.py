"""JsonExtractor: values with key paths, any split, fast and token paths agree, bounds."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.jsontext import (
    JSON_WINDOW_CHARS,
    MAX_JSON_DEPTH,
    MAX_JSON_STRING_CHARS,
    JsonExtractor,
    unescape,
)

PATIENT = {
    "resourceType": "Patient",
    "identifier": [
        {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "123456782"},
        {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": 999999990},
    ],
    "name": [{"family": "Vries", "given": ["Émile", "J."], "prefix": None}],
    "active": True,
    "contact": {"telecom": [{"value": "+31 6 12345678"}]},
    "note": 'tab\there "quoted" \\ \u20ac',
}


def run(data: bytes, pieces: list[bytes] | None = None, **kw: object) -> list[TextChunk]:
    ex = JsonExtractor(**kw)  # type: ignore[arg-type]
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    return out + ex.finish()


def pairs(chunks: list[TextChunk]) -> list[tuple[str, str | None]]:
    return [(c.text, c.header) for c in chunks]


def test_fhir_patient_paths_every_split() -> None:
    for data in (json.dumps(PATIENT).encode(), json.dumps(PATIENT, indent=2).encode("utf-16")):
        whole = run(data)
        assert pairs(whole) == [
            ("Patient", "resourceType"),
            ("http://fhir.nl/fhir/NamingSystem/bsn", "identifier[0].system"),
            ("123456782", "identifier[0].value"),
            ("urn:oid:2.16.840.1.113883.2.4.6.3", "identifier[1].system"),
            ("999999990", "identifier[1].value"),
            ("Vries", "name[0].family"),
            ("Émile", "name[0].given[0]"),
            ("J.", "name[0].given[1]"),
            ("+31 6 12345678", "contact.telecom[0].value"),
            ('tab\there "quoted" \\ \u20ac', "note"),
        ]
        assert run(data, [bytes([b]) for b in data]) == whole
        for cut in range(len(data) + 1):
            assert run(data, [data[:cut], data[cut:]]) == whole


def test_root_array_ndjson_and_bare_values() -> None:
    data = b'[{"a": 1}, "x"]\n{"b": [2.5e3, -0]}\n"bare" 7'
    assert pairs(run(data)) == [
        ("1", "[0].a"),
        ("x", "[1]"),
        ("2.5e3", "b[0]"),
        ("-0", "b[1]"),
        ("bare", None),
        ("7", None),
    ]


def test_damaged_json_still_yields_values() -> None:
    ex = JsonExtractor()
    out = ex.feed(b'{"a": "one", @ "b": [1, 2}, "c": "three') + ex.finish()
    assert [c.text for c in out] == ["one", "1", "2", "three"]
    assert [a.kind for a in ex.anomalies] == ["text_json_malformed"]


def test_depth_cap() -> None:
    depth = MAX_JSON_DEPTH + 10
    data = ("[" * depth + '"deep", {"k": "v"}' + "]" * depth + ' {"after": 1}').encode()
    for pieces in ([data], [data[i : i + 3] for i in range(0, len(data), 3)]):
        ex = JsonExtractor()
        out: list[TextChunk] = []
        for piece in pieces:
            out += ex.feed(piece)
        out += ex.finish()
        deepest = "[0]" * MAX_JSON_DEPTH
        assert pairs(out) == [
            ("deep", deepest),
            ("k", deepest),
            ("v", deepest),
            ("1", "after"),
        ]
        assert [a.kind for a in ex.anomalies] == ["text_json_too_deep"]


def test_long_string_in_pieces_same_for_every_split() -> None:
    long = "é" * (MAX_JSON_STRING_CHARS + 100) + "\\n" + "z" * 50
    data = ('{"a": {"blob": "' + long + '", "n": 5}}').encode()
    whole = run(data)
    assert [c.header for c in whole] == ["a.blob", "a.blob", "a.n"]
    assert "".join(c.text for c in whole[:2]) == json.loads(data)["a"]["blob"]
    for step in (1, 1000, 65536):
        assert run(data, [data[i : i + step] for i in range(0, len(data), step)]) == whole


def test_large_document_crosses_windows() -> None:
    data = json.dumps([PATIENT] * (JSON_WINDOW_CHARS // 300)).encode()
    whole = run(data)
    assert len(whole) == 10 * (JSON_WINDOW_CHARS // 300)
    assert whole[-4].header == f"[{JSON_WINDOW_CHARS // 300 - 1}].name[0].given[0]"
    assert run(data, [data[i : i + 65536] for i in range(0, len(data), 65536)]) == whole


def test_unescape() -> None:
    assert unescape(r"a\u00e9\n\"") == 'aé\n"'
    assert unescape(r"bad \x and \u12") == "bad x and u12"


def test_cap() -> None:
    ex = JsonExtractor(max_chars=9)
    out = ex.feed(json.dumps(PATIENT).encode()) + ex.finish()
    assert "".join(c.text for c in out) == "Patienthttp"[:9]
    assert [a.kind for a in ex.anomalies] == ["text_cap"]


def reference(value: object, path: str | None, out: list[tuple[str, str | None]]) -> None:
    """What the extractor should say about a value json.loads produced."""
    if isinstance(value, dict):
        for key, item in value.items():
            reference(item, f"{path}.{key[:64]}" if path else key[:64], out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reference(item, f"{path or ''}[{index}]", out)
    elif isinstance(value, str):
        if value:
            out.append((value, path))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append((str(value), path))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.data())
def test_differential_against_json_loads(value: object, data: st.DataObject) -> None:
    raw = json.dumps(value, ensure_ascii=data.draw(st.booleans())).encode()
    expected: list[tuple[str, str | None]] = []
    reference(json.loads(raw), None, expected)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert pairs(run(raw, pieces)) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_hostile_bytes_never_raise_and_split_invariant(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    assert run(data, pieces) == run(data)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('{}[]:,"\\ an1e.-\u00e9u0'), max_size=200), st.data())
def test_json_like_garbage_split_invariant(text: str, data: st.DataObject) -> None:
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert run(raw, pieces) == run(raw)
