"""Text extraction stage, plain text: text/plain and every other "it is already text" type.

In: the object's bytes in order (any split), the declared charset if any. Out: `TextChunk`s
of the decoded text, cut as `emitter.FlowingText` says (so a token is not split between
chunks), with `part` set to the member name when the object came out of a container.
"""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.charset import TextDecoder
from sensor.content.text.emitter import MAX_TEXT_CHARS, ChunkEmitter, FlowingText


class PlainTextExtractor:
    """Decoded text of one object (see the module docstring)."""

    def __init__(
        self,
        *,
        charset: str | None = None,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self.anomalies: list[Anomaly] = []
        self._decoder = TextDecoder(charset, self.anomalies)
        self._emitter = ChunkEmitter(self.anomalies, max_chars)
        self._text = FlowingText()
        self._part = part
        self._done = False

    def feed(self, data: bytes) -> list[TextChunk]:
        if self._done or self._emitter.capped:
            return []
        self._text.add(self._decoder.decode(data))
        return self._emit(self._text.full())

    def finish(self) -> list[TextChunk]:
        if self._done or self._emitter.capped:
            self._done = True
            return []
        self._done = True
        self._text.add(self._decoder.finish())
        runs = self._text.full()
        runs.append(self._text.rest())
        return self._emit(runs)

    def _emit(self, runs: list[str]) -> list[TextChunk]:
        out: list[TextChunk] = []
        for run in runs:
            if run:
                self._emitter.emit(out, run, part=self._part)
        return out
