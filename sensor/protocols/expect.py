"""Expected connections (the protocols stage): connections that one flow announced for another.

An FTP control connection tells where its data connection will go (PASV/EPSV replies, PORT/EPRT
commands); the data connection is then a flow of its own, whose bytes are a file whatever they
look like. The announcing parser emits an `Announcement` (base.py); the app layer of the
announcing flow puts it here, keyed by the endpoint that accepts the connection (the address
parsing is the announcing protocol's: `Announcement.endpoint`). A new flow's app layer claims it
at its first bytes (`claim`), by its server address and port, and reads the flow with the
parser the announcement names instead of detecting a protocol. The claim happens at the first
bytes, not at the handshake, because the announcement may come after the connection opened
(ftplib connects to a PASV port before it sends STOR).

Bounds: an announcement is valid for its protocol's `timeout` of packet time, and no longer
than `ANNOUNCER_GONE_GRACE` seconds after the announcing flow's last packet once that flow has
ended (`announcer_ended`). A flow claims it only if the flow *started* while it was valid, so a
connection that began in time still gets its file when its first bytes reach the parser late
(held by reassembly, or flushed when the capture ends). Expired announcements are dropped on
the packet clock (`expire`), and at most `MAX_EXPECTED` wait at once (the oldest goes first).
So an ended or abandoned transfer never turns a later, unrelated connection to the same
address and port into a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensor.protocols.base import Announcement, Parser

MAX_EXPECTED = 4096  # announced connections waiting at once
ANNOUNCER_GONE_GRACE = 5.0  # seconds an announcement outlives the flow that made it

Endpoint = tuple[bytes, int]  # (packed address, port) that accepts the connection


@dataclass(slots=True)
class _Expected:
    announcement: Announcement
    announcer: int  # flow_id of the announcing flow
    deadline: float


@dataclass(slots=True)
class ExpectStats:
    announced: int = 0
    claimed: int = 0
    expired: int = 0  # timed out, or their announcing flow ended first
    dropped: int = 0  # pushed out by MAX_EXPECTED


class Expectations:
    def __init__(self, limit: int = MAX_EXPECTED) -> None:
        self._limit = limit
        self._waiting: dict[Endpoint, _Expected] = {}  # insertion order = age
        self._serial = 0  # numbers the claimed connections (their transfers' tx_id)
        self.stats = ExpectStats()

    def __len__(self) -> int:
        return len(self._waiting)

    def announce(
        self, endpoint: Endpoint, announcement: Announcement, announcer: int, ts: float
    ) -> None:
        """A connection to `endpoint` is expected; a newer announcement for the same endpoint
        replaces an older one."""
        waiting = self._waiting
        if endpoint in waiting:
            del waiting[endpoint]  # re-inserted below: the newest goes to the end
        elif len(waiting) >= self._limit:
            waiting.pop(next(iter(waiting)))
            self.stats.dropped += 1
        waiting[endpoint] = _Expected(announcement, announcer, ts + announcement.timeout)
        self.stats.announced += 1

    def claim(self, server: bytes, port: int, started: float) -> tuple[str, Parser] | None:
        """A new connection to (server, port), which started at `started`, carries its first
        bytes: its app_proto and parser, if it was announced and began while that was valid."""
        expected = self._waiting.pop((server, port), None)
        if expected is None:
            return None
        if started > expected.deadline:
            self.stats.expired += 1
            return None
        self._serial += 1
        self.stats.claimed += 1
        announcement = expected.announcement
        return announcement.app_proto, announcement.parser(self._serial, expected.announcer)

    def announcer_ended(self, announcer: int, last: float) -> None:
        """The announcing flow ended; `last` is the time of its last packet. What it announced
        and nobody claimed is void `ANNOUNCER_GONE_GRACE` seconds after that."""
        until = last + ANNOUNCER_GONE_GRACE
        for expected in self._waiting.values():
            if expected.announcer == announcer and expected.deadline > until:
                expected.deadline = until

    def expire(self, now: float) -> None:
        """Drop announcements past their deadline (packet clock)."""
        stale = [key for key, value in self._waiting.items() if now > value.deadline]
        for key in stale:
            del self._waiting[key]
        self.stats.expired += len(stale)
