"""Content stage entry point: every protocol's objects in, finished content out.

In: the object contract of the protocols stage (`ObjectStart`, `ObjectChunk`, `ObjectGap`,
`ObjectEnd`, see sensor/protocols/base.py) of one flow, in wire order, and `close` when the
flow stops being analysed. Nothing here knows which protocol carried an object: the start says
what it is (a body with its header fields and content codings, or a whole Internet message for
the MIME engine) and names it by (txid, direction) until its end.

Out, from every call: `ObjectFile` for each finished file object (a body, each multipart part,
each MIME leaf), `MessageHeadersSeen` and `MessageEnded` for a message's header block and its
end, `Anomaly` values. Each result carries the `ObjectStart` it belongs to, so whoever writes
it (the protocol's log in sensor/outputs/) has the protocol's context at hand.

This is where later stages attach to objects (fingerprinting, classification): they see every
object's bytes here, whatever the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sensor.anomaly import Anomaly
from sensor.content.entity import BodyEntity
from sensor.content.mime import MessageHeaders, MimeCaps, MimeMessage
from sensor.content.objects import ContentCaps, FileInfo, ObjectStore
from sensor.protocols.base import (
    Direction,
    ObjectChunk,
    ObjectEvent,
    ObjectGap,
    ObjectStart,
    reading_name,
)


@dataclass(slots=True)
class ObjectFile:
    """A file object finished: a body, a multipart part or a MIME leaf of `start`'s object,
    or a member opened from one of those (`info.container_path` is set; the transferred
    object comes first, then its members depth-first)."""

    start: ObjectStart
    info: FileInfo


@dataclass(slots=True)
class MessageHeadersSeen:
    """The top-level header block of a message (`start.message`), as soon as it ended."""

    start: ObjectStart
    headers: MessageHeaders


@dataclass(slots=True)
class MessageEnded:
    """A message is over: what the MIME engine learnt of it as a whole."""

    start: ObjectStart
    attachments: int
    size: int
    sha256: str | None
    complete: bool


ContentResult = ObjectFile | MessageHeadersSeen | MessageEnded | Anomaly
Entity = BodyEntity | MimeMessage


class ObjectRouter:
    """One flow's objects in transfer: (txid, direction, reading) -> the engine reading it."""

    __slots__ = ("_caps", "_last", "_mime_caps", "_open", "_partial", "_store")

    def __init__(
        self, caps: ContentCaps, mime_caps: MimeCaps, store: ObjectStore | None = None
    ) -> None:
        self._caps = caps
        self._mime_caps = mime_caps
        self._store = store
        self._open: dict[tuple[int, int, str | None], tuple[ObjectStart, Entity]] = {}
        self._last: ObjectStart | None = None  # the flow's latest start (see _entity)
        self._partial: set[tuple[int, int, str | None]] = set()  # twins begun mid-object

    def route(self, event: ObjectEvent, ts: float) -> list[ContentResult]:
        """One object event; `ts` is the packet time it came with."""
        if isinstance(event, ObjectChunk):
            start, entity = self._entity(event.txid, event.direction, event.reading, ts)
            return self._results(start, entity.feed(event.data))
        if isinstance(event, ObjectStart):
            self._last = event
            key = (event.txid, event.direction, event.reading)
            # An object still open under the same name (a reading that died without ending
            # it) ends incomplete first: its entity never leaks.
            ended = self._end(key, complete=False) if key in self._open else []
            self._open[key] = (event, self._new_entity(event))
            return ended
        if isinstance(event, ObjectGap):
            start, entity = self._entity(event.txid, event.direction, event.reading, ts)
            return self._results(start, entity.gap(event.size))
        return self._end((event.txid, event.direction, event.reading), event.complete)

    def fork(self, reading: str) -> None:
        """The flow is also read as `reading` from now on: each object open now gets a twin
        in that reading, which sees only the bytes from here (it ends incomplete)."""
        for (txid, direction, current), (start, _) in list(self._open.items()):
            if current is not None and current.startswith("tcp-"):
                continue  # already another reading's
            tagged = reading_name(reading, current)
            twin = replace(start, reading=tagged)
            key = (txid, direction, tagged)
            self._open[key] = (twin, self._new_entity(twin))
            self._partial.add(key)

    def close(self) -> list[ContentResult]:
        """The flow is no longer analysed: every object still open ends incomplete."""
        out: list[ContentResult] = []
        for key in list(self._open):
            out += self._end(key, complete=False)
        return out

    def _new_entity(self, start: ObjectStart) -> Entity:
        if start.message:
            return MimeMessage(start.ts, self._mime_caps, self._caps, self._store)
        return BodyEntity(
            start.headers, start.encodings, start.ts, self._caps, self._store, start.name
        )

    def _entity(
        self, txid: int, direction: int, reading: str | None, ts: float
    ) -> tuple[ObjectStart, Entity]:
        found = self._open.get((txid, direction, reading))
        if found is None:
            # Data of an object that never started (a parser bug; parsers start every object
            # they feed): read it as an unnamed object like the flow's latest one.
            like = self._last
            start = ObjectStart(
                txid,
                Direction(direction),
                ts,
                like.proto if like is not None else "unknown",
                message=like.message if like is not None else False,
                reading=reading,
            )
            found = self._open[(txid, direction, reading)] = (start, self._new_entity(start))
        return found

    def _end(self, key: tuple[int, int, str | None], complete: bool) -> list[ContentResult]:
        found = self._open.pop(key, None)
        if found is None:
            return []
        if key in self._partial:
            self._partial.discard(key)
            complete = False
        start, entity = found
        out = self._results(start, entity.end(complete))
        if isinstance(entity, MimeMessage):
            out.append(
                MessageEnded(start, entity.attachments, entity.size, entity.sha256, complete)
            )
        return out

    @staticmethod
    def _results(
        start: ObjectStart, results: Sequence[FileInfo | Anomaly | MessageHeaders]
    ) -> list[ContentResult]:
        out: list[ContentResult] = []
        for result in results:
            if isinstance(result, FileInfo):
                out += (ObjectFile(start, info) for info in _tree(result))
            elif isinstance(result, MessageHeaders):
                out.append(MessageHeadersSeen(start, result))
            else:
                out.append(result)
        return out


def _tree(info: FileInfo) -> list[FileInfo]:
    """`info` and every member under it, depth-first, each container before its members."""
    out = [info]
    stack = list(reversed(info.members))
    while stack:
        member = stack.pop()
        out.append(member)
        stack.extend(reversed(member.members))
    return out
