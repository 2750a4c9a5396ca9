"""Expected connections (the protocols stage): connections that one flow announced for another.

An FTP control connection tells where its data connection will go (PASV/EPSV replies, PORT/EPRT
commands); the data connection is then a flow of its own, whose bytes are a file whatever they
look like. The announcing parser emits an `Announcement` (base.py); the app layer of the
announcing flow puts it here, keyed by the endpoint that accepts the connection (the address
parsing is the announcing protocol's: `Announcement.endpoint`). A new flow's app layer claims it
at its first bytes (`claim`), by its server address and port, and reads the flow with the
parser the announcement names instead of detecting a protocol.

Bounds: an announcement is valid for its protocol's `timeout` of packet time (`expire` on the
packet clock; `claim` checks it too), for at most `ANNOUNCER_GONE_GRACE` more seconds once the
announcing flow has ended (`announcer_ended`: a data connection already under way may deliver
its first bytes just after the control connection closed, or when the capture ends and every
flow is flushed at once), and at most `MAX_EXPECTED` wait at once (the oldest goes first). So an
ended or abandoned transfer never turns a later, unrelated connection to the same address and
port into a file.
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

    def claim(self, server: bytes, port: int, ts: float) -> tuple[str, Parser] | None:
        """A new connection to (server, port) started carrying bytes: its app_proto and parser,
        if it was announced and the announcement is still valid."""
        expected = self._waiting.pop((server, port), None)
        if expected is None:
            return None
        if ts > expected.deadline:
            self.stats.expired += 1
            return None
        self._serial += 1
        self.stats.claimed += 1
        announcement = expected.announcement
        return announcement.app_proto, announcement.parser(self._serial, expected.announcer)

    def announcer_ended(self, announcer: int, ts: float) -> None:
        """The announcing flow ended at `ts`: what it announced and nobody claimed is void
        `ANNOUNCER_GONE_GRACE` seconds later."""
        until = ts + ANNOUNCER_GONE_GRACE
        for expected in self._waiting.values():
            if expected.announcer == announcer and expected.deadline > until:
                expected.deadline = until

    def expire(self, now: float) -> None:
        """Drop announcements past their deadline (packet clock)."""
        stale = [key for key, value in self._waiting.items() if now > value.deadline]
        for key in stale:
            del self._waiting[key]
        self.stats.expired += len(stale)
