"""Text extraction stage, markup: XML (and SVG) through a hardened expat, HTML through the
standard library's tolerant `html.parser`.

In: the object's bytes in order (any split), the declared charset if any. Out:
- XML: one `TextChunk` per element's text run (between two tags, whitespace-only runs
  dropped, stripped) and per attribute value (xmlns declarations skipped), `header` = the
  element path ("Patient/identifier/value", "Patient/identifier/value/@value" for an
  attribute: FHIR XML keeps its values in attributes). Entities and character references
  are decoded by expat.
- HTML: the page's text as running text (`FlowingText`), block elements as line breaks,
  plus the values of the attributes in `HTML_TEXT_ATTRIBUTES`; <script>/<style>/<template>
  content is skipped; character references decoded.

Entity expansion (billion laughs, quadratic blowup) cannot happen: `ExpatExtractor` sets a
default handler, which makes expat pass references to internal entities through unexpanded
(expat's XML_SetDefaultHandler), and refuses a DTD that declares an entity whose value
references another entity or is longer than `MAX_XML_ENTITY_VALUE` (`text_xml_entity_refused`:
such values are still expanded inside attribute values). External entities and parameter
entities are never loaded. The OOXML and ODF part extractors (ooxml.py, odf.py) build on
`ExpatExtractor`.
"""

from __future__ import annotations

import codecs
import html.parser
from xml.parsers import expat

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.charset import TextDecoder
from sensor.content.text.emitter import (
    MAX_TEXT_CHARS,
    BoundedExtractor,
    ChunkEmitter,
    FlowingExtractor,
    FlowingText,
)

MAX_XML_ENTITY_VALUE = 1024  # longest internal entity value accepted in a DTD
MAX_XML_DEPTH = 256  # element path entries kept (deeper elements share the deepest path)
MAX_XML_NAME_CHARS = 64  # characters of one element name in a path
# Bytes fed without expat calling back once (one token: a huge tag or attribute value that
# expat would buffer whole) before the part is given up (`text_xml_token_too_long`).
MAX_XML_TOKEN_BYTES = 4 * 1024 * 1024
EXPAT_BUFFER_BYTES = 64 * 1024  # expat's character-data coalescing buffer
# Unparsed HTML `html.parser` may hold (an unterminated comment or tag) before it is dropped.
MAX_HTML_PENDING_CHARS = 256 * 1024

HTML_SKIP = frozenset({"script", "style", "template"})
HTML_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "option", "p", "pre", "section",
        "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
    }
)  # fmt: skip
# Attributes whose values are text a person reads or typed (form values, link targets that
# may carry query parameters); src is left out (data: URIs are images, not text).
HTML_TEXT_ATTRIBUTES = frozenset(
    {"alt", "title", "value", "content", "placeholder", "label", "aria-label", "href", "action"}
)


class _EntityRefused(Exception):
    """Raised inside expat's callback to stop the parse (the only way in pyexpat)."""


class ExpatExtractor(BoundedExtractor):
    """Drives one expat parser over one XML object; subclasses implement `_start`, `_end`,
    `_chars` and `_finish` and emit chunks into `self._out` through `self._emitter`.

    `namespaces`: report names as "uri local" (expat namespace processing), so subclasses
    match local names whatever prefix a producer chose.
    """

    def __init__(
        self,
        *,
        part: str | None = None,
        charset: str | None = None,
        namespaces: bool = False,
        max_chars: int = MAX_TEXT_CHARS,
        emitter: ChunkEmitter | None = None,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars, emitter=emitter)
        self._out: list[TextChunk] = []
        self._dead = False
        self._heard = False  # expat called back during the current Parse call
        self._quiet = 0  # bytes fed since expat last called back
        separator = " " if namespaces else None
        try:
            if charset:
                codecs.lookup(charset)  # pyexpat looks the name up only at the first Parse
            parser = expat.ParserCreate(charset or None, separator)
        except (LookupError, ValueError):
            self.anomalies.append(
                Anomaly(
                    "text_unknown_charset", f"declared charset {(charset or '')[:40]!r} unknown"
                )
            )
            parser = expat.ParserCreate(None, separator)
        parser.buffer_text = True
        parser.buffer_size = EXPAT_BUFFER_BYTES
        parser.specified_attributes = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_chars
        parser.DefaultHandler = self._on_other  # also: internal entities stay unexpanded
        parser.EntityDeclHandler = self._on_entity_decl
        self._parser = parser

    def _extract(self, data: bytes) -> list[TextChunk]:
        if not self._dead and data:
            self._parse(data, False)
        return self._take()

    def _extract_rest(self) -> list[TextChunk]:
        if not self._dead:
            self._parse(b"", True)
        if not self._emitter.capped:
            self._finish()
        return self._take()

    def _take(self) -> list[TextChunk]:
        out, self._out = self._out, []
        return out

    def _parse(self, data: bytes, final: bool) -> None:
        self._heard = False
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            self._dead = True
            self.anomalies.append(
                Anomaly("text_xml_malformed", f"{expat.ErrorString(exc.code)} at line {exc.lineno}")
            )
        except _EntityRefused:
            self._dead = True
            self.anomalies.append(
                Anomaly(
                    "text_xml_entity_refused",
                    "the DTD declares a nested or oversized entity; the rest is not read",
                )
            )
        except RecursionError:
            self._dead = True
            self.anomalies.append(Anomaly("text_xml_malformed", "nesting too deep"))
        except (LookupError, ValueError):
            # An encoding pyexpat cannot read (unknown, or multi-byte other than UTF-8/UTF-16:
            # its unknown-encoding handler maps single-byte codecs only), declared by the
            # caller or by the document's XML declaration.
            self._dead = True
            self.anomalies.append(
                Anomaly("text_xml_unsupported_encoding", "unknown or multi-byte encoding")
            )
        self._quiet = 0 if self._heard else self._quiet + len(data)
        if self._quiet > MAX_XML_TOKEN_BYTES and not self._dead:
            self._dead = True
            self.anomalies.append(
                Anomaly("text_xml_token_too_long", f"no markup for {MAX_XML_TOKEN_BYTES} bytes")
            )

    def _on_start(self, name: str, attrs: dict[str, str]) -> None:
        self._heard = True
        if not self._emitter.capped:
            self._start(name, attrs)

    def _on_end(self, name: str) -> None:
        self._heard = True
        if not self._emitter.capped:
            self._end(name)

    def _on_chars(self, data: str) -> None:
        self._heard = True
        if not self._emitter.capped:
            self._chars(data)

    def _on_other(self, data: str) -> None:
        self._heard = True

    def _on_entity_decl(
        self,
        name: str,
        is_parameter: int,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation: str | None,
    ) -> None:
        self._heard = True
        if value is not None and ("&" in value or len(value) > MAX_XML_ENTITY_VALUE):
            raise _EntityRefused

    # Subclass hooks.
    def _start(self, name: str, attrs: dict[str, str]) -> None:
        raise NotImplementedError

    def _end(self, name: str) -> None:
        raise NotImplementedError

    def _chars(self, data: str) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class XmlExtractor(ExpatExtractor):
    """Text runs and attribute values of a generic XML document (see the module docstring)."""

    def __init__(
        self,
        *,
        part: str | None = None,
        charset: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, charset=charset, max_chars=max_chars)
        self._path: list[str] = []
        self._depth = 0
        self._text = FlowingText()

    def _header(self) -> str:
        return "/".join(self._path)

    def _flush(self) -> None:
        if not len(self._text):
            return
        text = self._text.rest().strip()
        if text:
            self._emitter.emit(self._out, text, part=self._part, header=self._header())

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._flush()
        self._depth += 1
        if self._depth <= MAX_XML_DEPTH:
            self._path.append(name[:MAX_XML_NAME_CHARS])
        if attrs:
            header = self._header()
            for key, value in attrs.items():
                if value.strip() and not key.startswith("xmlns"):
                    self._emitter.emit(
                        self._out, value.strip(), part=self._part, header=f"{header}/@{key}"
                    )

    def _end(self, name: str) -> None:
        self._flush()
        if self._depth <= MAX_XML_DEPTH and self._path:
            self._path.pop()
        self._depth -= 1

    def _chars(self, data: str) -> None:
        self._text.add(data)
        for run in self._text.full():
            self._emitter.emit(self._out, run, part=self._part, header=self._header())

    def _finish(self) -> None:
        self._flush()


class _HtmlText(html.parser.HTMLParser):
    """html.parser callbacks into the owning extractor's running text."""

    def __init__(self, text: FlowingText) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.skipping: str | None = None  # the script/style/template element being skipped

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping:
            return
        if tag in HTML_SKIP:
            self.skipping = tag
            return
        if tag in HTML_BLOCK:
            self.text.add("\n")
        for key, value in attrs:
            if value and key in HTML_TEXT_ATTRIBUTES and value.strip():
                self.text.add(f" {value.strip()} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_SKIP:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping:
                self.skipping = None
            return
        if tag in HTML_BLOCK:
            self.text.add("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.text.add(data)


class HtmlExtractor(FlowingExtractor):
    """The visible text of one HTML document (see the module docstring)."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._decoder = TextDecoder(charset, self.anomalies)
        self._parser = _HtmlText(self._text)
        self._dead = False
        self._noted_pending = False

    def _read(self, data: bytes, final: bool) -> None:
        self._run(self._decoder.decode(data, final), final)

    def _run(self, text: str, final: bool) -> None:
        if self._dead:
            return
        parser = self._parser
        try:
            if text:
                parser.feed(text)
            if final:
                parser.close()
        except Exception as exc:  # html.parser has asserted on odd input in the past
            self._dead = True
            self.anomalies.append(Anomaly("text_html_parser_error", type(exc).__name__))
            return
        if len(parser.rawdata) > MAX_HTML_PENDING_CHARS:
            # An unterminated comment, tag or CDATA section: drop it rather than grow.
            parser.rawdata = ""
            if not self._noted_pending:
                self._noted_pending = True
                self.anomalies.append(
                    Anomaly(
                        "text_html_unterminated",
                        f"more than {MAX_HTML_PENDING_CHARS} chars of unterminated markup",
                    )
                )
