"""Text extraction stage, plain text: text/plain and every other "it is already text" type.

In: the object's bytes in order (any split), the declared charset if any. Out: `TextChunk`s
of the decoded text, cut as `emitter.FlowingText` says (so a token is not split between
chunks), with `part` set to the member name when the object came out of a container.
"""

from __future__ import annotations

from sensor.content.text.charset import TextDecoder
from sensor.content.text.emitter import MAX_TEXT_CHARS, FlowingExtractor


class PlainTextExtractor(FlowingExtractor):
    """Decoded text of one object (see the module docstring)."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._decoder = TextDecoder(charset, self.anomalies)

    def _read(self, data: bytes, final: bool) -> None:
        self._text.add(self._decoder.decode(data, final))
