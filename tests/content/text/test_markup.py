"""XmlExtractor (hardened expat) and HtmlExtractor: text, attributes, entities, any split,
billion laughs."""

from __future__ import annotations

import itertools
import time
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.markup import (
    MAX_HTML_PENDING_CHARS,
    MAX_XML_TOKEN_BYTES,
    HtmlExtractor,
    XmlExtractor,
)

FHIR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Patient xmlns="http://hl7.org/fhir">\n'
    b'  <identifier><system value="http://fhir.nl/fhir/NamingSystem/bsn"/>'
    b'<value value="123456782"/></identifier>\n'
    b"  <text>Ziekenhuis &#xC9;mile &amp; Co &lt;AMC&gt; caf&#233;<![CDATA[ <raw> ]]></text>\n"
    b"</Patient>\n"
)

HTML = (
    b"<!DOCTYPE html><html><head><title>Uitslag</title>"
    b"<style>p { color: red } /* 111222333 */</style>"
    b"<script>var bsn = '999999990'; if (a < b) {}</script></head>"
    b"<body><p>BSN <b>123456782</b> &amp; caf&eacute; &#8364;5</p>"
    b'<form action="/send?iban=NL91ABNA0417164300"><input value="J. de Vries"></form>'
    b"<!-- comment 555 --><div>einde<br>regel</div></body></html>"
)


def run(make: type, data: bytes, pieces: list[bytes] | None = None, **kw: object) -> tuple:
    ex = make(**kw)
    out: list[TextChunk] = []
    for piece in pieces if pieces is not None else [data]:
        out += ex.feed(piece)
    out += ex.finish()
    return out, [a.kind for a in ex.anomalies]


def check_every_split(make: type, data: bytes) -> tuple:
    whole = run(make, data)
    assert run(make, data, [bytes([b]) for b in data]) == whole
    for cut in range(len(data) + 1):
        assert run(make, data, [data[:cut], data[cut:]]) == whole
    return whole


def test_fhir_xml_attributes_entities_every_split() -> None:
    chunks, anomalies = check_every_split(XmlExtractor, FHIR_XML)
    assert [(c.text, c.header) for c in chunks] == [
        ("http://fhir.nl/fhir/NamingSystem/bsn", "Patient/identifier/system/@value"),
        ("123456782", "Patient/identifier/value/@value"),
        ("Ziekenhuis Émile & Co <AMC> café <raw>", "Patient/text"),
    ]
    assert anomalies == []


def test_billion_laughs_is_refused_quickly() -> None:
    entities = "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    doc = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>'
        "<lolz a='&lol9;'>&lol9;</lolz>"
    ).encode()
    tracemalloc.start()
    started = time.perf_counter()
    chunks, anomalies = run(XmlExtractor, doc)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert chunks == []
    assert anomalies == ["text_xml_entity_refused"]
    assert elapsed < 1.0 and peak < 5_000_000


def test_internal_entities_in_text_are_not_expanded() -> None:
    # Flat entities are allowed; references in text stay unexpanded (no quadratic blowup),
    # in attribute values expat expands them (bounded by MAX_XML_ENTITY_VALUE).
    doc = b'<!DOCTYPE d [<!ENTITY e "12345">]><d a="&e;&e;">x &e; y</d>'
    chunks, anomalies = run(XmlExtractor, doc)
    assert [c.text for c in chunks] == ["1234512345", "x  y"]
    assert anomalies == []


def test_external_entities_are_not_loaded() -> None:
    doc = b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>a&x;b</d>'
    chunks, _ = run(XmlExtractor, doc)
    assert [c.text for c in chunks] == ["ab"]


def test_malformed_and_truncated_xml() -> None:
    chunks, anomalies = run(XmlExtractor, b"<a><b>keep</b><c>cut")
    assert [c.text for c in chunks] == ["keep", "cut"]
    assert anomalies == ["text_xml_malformed"]
    chunks, anomalies = run(XmlExtractor, b"<a>one</a></oops>more")
    assert [c.text for c in chunks] == ["one"] and anomalies == ["text_xml_malformed"]


def test_huge_token_gives_up() -> None:
    ex = XmlExtractor()
    ex.feed(b'<a b="')
    for _ in range(MAX_XML_TOKEN_BYTES // 65536 + 2):
        ex.feed(b"x" * 65536)
    assert [a.kind for a in ex.anomalies] == ["text_xml_token_too_long"]
    assert ex.feed(b'"/>') == []


def test_declared_charset_overrides() -> None:
    doc = "<a>Émile</a>".encode("cp1252")
    chunks, anomalies = run(XmlExtractor, doc, charset="windows-1252")
    assert [c.text for c in chunks] == ["Émile"] and anomalies == []


def test_html_text_skips_script_style_every_split() -> None:
    chunks, anomalies = check_every_split(HtmlExtractor, HTML)
    text = "".join(c.text for c in chunks)
    assert "BSN 123456782 & café €5" in text
    assert "NL91ABNA0417164300" in text and "J. de Vries" in text
    assert "einde\nregel" in text and "Uitslag" in text
    assert "999999990" not in text and "111222333" not in text and "555" not in text
    assert anomalies == []


def test_html_cp1252_and_unterminated_comment() -> None:
    chunks, _ = run(HtmlExtractor, "<p>Ziekenhuis Émile</p>".encode("cp1252"))
    assert "Ziekenhuis Émile" in "".join(c.text for c in chunks)
    ex = HtmlExtractor()
    out = ex.feed(b"<p>before</p><!-- never closed ")
    for _ in range(MAX_HTML_PENDING_CHARS // 65536 + 2):
        out += ex.feed(b"y" * 65536)
        assert len(ex._parser.rawdata) <= MAX_HTML_PENDING_CHARS
    out += ex.finish()
    assert "before" in "".join(c.text for c in out)
    assert [a.kind for a in ex.anomalies] == ["text_html_unterminated"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500), st.lists(st.integers(0, 1500), max_size=6))
def test_hostile_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
    for make in (XmlExtractor, HtmlExtractor):
        run(make, data, pieces)


markupish = st.text(alphabet=st.sampled_from("<>/=&;#x'\" abp!-[]CDATA19é"), max_size=200)


@settings(max_examples=200, deadline=None)
@given(markupish, st.data())
def test_markup_like_input_split_invariant(text: str, data: st.DataObject) -> None:
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=5))
    edges = sorted({0, len(raw), *cuts})
    pieces = [raw[a:b] for a, b in itertools.pairwise(edges)]
    assert run(XmlExtractor, raw, pieces) == run(XmlExtractor, raw)
    assert run(HtmlExtractor, raw, pieces) == run(HtmlExtractor, raw)


def test_unreadable_encodings_never_raise() -> None:
    # pyexpat looks an encoding up only at the first Parse, and reads no multi-byte codec
    # but UTF-8/UTF-16: an unknown or multi-byte one, declared by the caller or the document.
    ex = XmlExtractor(charset="klingon")
    out = ex.feed(b"<a>x</a>") + ex.finish()
    assert [c.text for c in out] == ["x"]
    assert [a.kind for a in ex.anomalies] == ["text_unknown_charset"]
    for encoding in (b"klingon", b"shift_jis", b"x" * 300):
        doc = b'<?xml version="1.0" encoding="' + encoding + b'"?><a>x</a>'
        ex = XmlExtractor()
        assert ex.feed(doc) + ex.finish() == []
        assert [a.kind for a in ex.anomalies] == ["text_xml_unsupported_encoding"]
    ex = XmlExtractor(charset="shift_jis")
    assert ex.feed(b"<a>x</a>") + ex.finish() == []
    assert [a.kind for a in ex.anomalies] == ["text_xml_unsupported_encoding"]


def test_nothing_after_finish() -> None:
    for ex in (XmlExtractor(), HtmlExtractor()):
        ex.feed(b"<a>x</a>")
        ex.finish()
        assert ex.feed(b"<b>y</b>") == [] and ex.finish() == []
        assert ex.anomalies == []
