"""Text extraction stage, output side: how extracted text leaves an extractor.

In: text an extractor found, with the position facts its format has. Out: `TextChunk`s of at
most `MAX_CHUNK_CHARS` characters whose `position.offset` counts the characters handed out
before them (the object's extracted text is the concatenation of its chunks' texts), and at
most `max_chars` characters per object: beyond that one `text_cap` anomaly and nothing more.

`FlowingText` cuts running text (plain text, RTF, PDF, HTML) into chunks at places that
depend only on the text, never on how the bytes were split, so every segmentation of an
object yields the same chunks: a chunk is cut only once `MAX_CHUNK_CHARS` characters are
waiting, at the last whitespace in its second half (so a number or IBAN is not split unless
a run of `MAX_CHUNK_CHARS // 2` characters holds no whitespace).

`BoundedExtractor` is the frame every extractor shares: its `anomalies`, its `ChunkEmitter`,
its part name, and the `TextExtractor` rule that nothing comes out once the object is finished
or the `max_chars` budget is spent. `FlowingExtractor` adds the running text of the formats
that hand out `FlowingText` chunks.
"""

from __future__ import annotations

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import TextChunk, TextPosition

MAX_CHUNK_CHARS = 64 * 1024  # characters per TextChunk
MAX_TEXT_CHARS = 8 * 1024 * 1024  # characters handed out per object (the default max_chars)
# A whitespace cut may shorten a chunk to no less than this.
MIN_CUT_CHARS = MAX_CHUNK_CHARS // 2
_CUT_AT = (" ", "\n", "\t", "\r")


class ChunkEmitter:
    """Counts offsets and enforces `max_chars` for one object."""

    __slots__ = ("anomalies", "capped", "limit", "offset")

    def __init__(self, anomalies: list[Anomaly], max_chars: int = MAX_TEXT_CHARS) -> None:
        self.anomalies = anomalies
        self.limit = max(0, max_chars)
        self.offset = 0
        self.capped = False

    def room(self, size: int) -> int:
        """How many of `size` characters may still go out; the first refusal says text_cap."""
        if self.capped:
            return 0
        left = self.limit - self.offset
        if size <= left:
            return size
        self.capped = True
        self.anomalies.append(
            Anomaly("text_cap", f"more than {self.limit} characters of text; the rest is dropped")
        )
        return left

    def emit(
        self,
        out: list[TextChunk],
        text: str,
        *,
        part: str | None = None,
        sheet: str | None = None,
        row: int | None = None,
        column: int | None = None,
        page: int | None = None,
        header: str | None = None,
    ) -> None:
        """Append `text` (split into MAX_CHUNK_CHARS pieces, cut to the budget) to `out`."""
        size = self.room(len(text))
        if size <= 0:
            return
        if size < len(text):
            text = text[:size]
        for start in range(0, size, MAX_CHUNK_CHARS):
            piece = text[start : start + MAX_CHUNK_CHARS] if size > MAX_CHUNK_CHARS else text
            out.append(
                TextChunk(piece, TextPosition(self.offset, part, sheet, row, column, page), header)
            )
            self.offset += len(piece)


def cut_point(text: str, start: int) -> int:
    """Where a chunk starting at `start` of `text` (at least MAX_CHUNK_CHARS long) ends."""
    end = start + MAX_CHUNK_CHARS
    best = max(text.rfind(ch, start + MIN_CUT_CHARS, end) for ch in _CUT_AT)
    return best + 1 if best >= 0 else end


class FlowingText:
    """Running text waiting to be cut into chunks; holds fewer than MAX_CHUNK_CHARS between
    calls to `full`."""

    __slots__ = ("_pieces", "_size")

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, text: str) -> None:
        if text:
            self._pieces.append(text)
            self._size += len(text)

    def full(self) -> list[str]:
        """The chunks that are complete (each cut as the module docstring says)."""
        if self._size < MAX_CHUNK_CHARS:
            return []
        text = "".join(self._pieces)
        runs: list[str] = []
        start = 0
        while len(text) - start >= MAX_CHUNK_CHARS:
            end = cut_point(text, start)
            runs.append(text[start:end])
            start = end
        rest = text[start:]
        self._pieces = [rest] if rest else []
        self._size = len(rest)
        return runs

    def rest(self) -> str:
        """Everything still waiting (call after `full`); empties the buffer."""
        text = "".join(self._pieces)
        self._pieces = []
        self._size = 0
        return text


class BoundedExtractor:
    """The shared frame of a `TextExtractor`: `feed`/`finish` hand out nothing once the object
    is finished or the budget is spent, else what the subclass's `_extract`/`_extract_rest`
    return. Subclasses emit through `self._emitter` with `part=self._part`.

    `emitter`: one shared by every part of a document read as one object (text/document.py),
    so offsets run on over the parts and `max_chars` holds for the document; its `text_cap`
    then lands in the document's anomalies. None: the extractor's own."""

    def __init__(
        self,
        *,
        part: str | None = None,
        max_chars: int = MAX_TEXT_CHARS,
        emitter: ChunkEmitter | None = None,
    ) -> None:
        self.anomalies: list[Anomaly] = []
        self._emitter = emitter if emitter is not None else ChunkEmitter(self.anomalies, max_chars)
        self._part = part
        self._done = False

    def feed(self, data: bytes) -> list[TextChunk]:
        if self._done or self._emitter.capped:
            return []
        return self._extract(data)

    def finish(self) -> list[TextChunk]:
        if self._done or self._emitter.capped:
            self._done = True
            return []
        self._done = True
        return self._extract_rest()

    def _extract(self, data: bytes) -> list[TextChunk]:
        """The chunks complete once `data` (the next bytes of the object) is read."""
        raise NotImplementedError

    def _extract_rest(self) -> list[TextChunk]:
        """The chunks still held when the object is over."""
        raise NotImplementedError


class FlowingExtractor(BoundedExtractor):
    """A `BoundedExtractor` whose text is running text: the subclass's `_read` adds what it
    finds to `self._text`, and the chunks `FlowingText` completes go out (all that is left,
    at the end)."""

    # Drop runs that are only whitespace (a format that adds line breaks of its own).
    DROP_BLANK_RUNS = False

    def __init__(self, *, part: str | None = None, max_chars: int = MAX_TEXT_CHARS) -> None:
        super().__init__(part=part, max_chars=max_chars)
        self._text = FlowingText()

    def _read(self, data: bytes, final: bool) -> None:
        """Read the next bytes (`final`: the object is over, `data` is empty) into `_text`."""
        raise NotImplementedError

    def _extract(self, data: bytes) -> list[TextChunk]:
        self._read(data, final=False)
        return self._emit(self._text.full())

    def _extract_rest(self) -> list[TextChunk]:
        self._read(b"", final=True)
        runs = self._text.full()
        runs.append(self._text.rest())
        return self._emit(runs)

    def _emit(self, runs: list[str]) -> list[TextChunk]:
        out: list[TextChunk] = []
        drop_blank = self.DROP_BLANK_RUNS
        for run in runs:
            if run and not (drop_blank and run.isspace()):
                self._emitter.emit(out, run, part=self._part)
        return out
