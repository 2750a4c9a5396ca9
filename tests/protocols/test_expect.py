"""sensor/protocols/expect.py: announced connections are claimed once, in time, by their
endpoint, and never outlive their announcer by more than the grace."""

from __future__ import annotations

import socket
from typing import ClassVar

from sensor.protocols.base import Announcement
from sensor.protocols.expect import ANNOUNCER_GONE_GRACE, Expectations
from sensor.protocols.ftp import FtpDataExpected, FtpDataParser

SERVER = socket.inet_aton("198.51.100.20")
CLIENT = socket.inet_aton("10.0.0.7")


class Announced(Announcement):
    app_proto: ClassVar[str] = "test-data"
    timeout: ClassVar[float] = 30.0

    def parser(self, serial: int, announcer: int) -> FtpDataParser:
        made = FtpDataExpected(serial, "STOR", "x", "upload", "", 0, "passive", 0.0)
        return FtpDataParser(made, serial, announcer)


def test_a_claim_takes_the_announcement_once_and_numbers_it() -> None:
    table = Expectations()
    table.announce((SERVER, 5000), Announced(), announcer=7, ts=100.0)
    table.announce((SERVER, 5001), Announced(), announcer=7, ts=100.0)
    first = table.claim(SERVER, 5000, started=101.0)
    second = table.claim(SERVER, 5001, started=99.0)  # connected before the announcement
    assert first is not None and second is not None
    assert first[0] == "test-data"
    assert [claimed[1].serial for claimed in (first, second)] == [1, 2]  # type: ignore[attr-defined]
    assert table.claim(SERVER, 5000, started=101.0) is None  # claimed once
    assert table.stats.claimed == 2 and len(table) == 0


def test_a_connection_that_started_after_the_timeout_is_not_the_announced_one() -> None:
    table = Expectations()
    table.announce((SERVER, 5000), Announced(), announcer=7, ts=100.0)
    assert table.claim(SERVER, 5000, started=100.0 + Announced.timeout + 1) is None
    assert table.stats.expired == 1


def test_the_announcer_s_end_voids_its_announcements_after_the_grace() -> None:
    table = Expectations()
    table.announce((SERVER, 5000), Announced(), announcer=7, ts=100.0)
    table.announce((SERVER, 6000), Announced(), announcer=8, ts=100.0)
    table.announcer_ended(7, last=101.0)
    assert table.claim(SERVER, 5000, started=101.0 + ANNOUNCER_GONE_GRACE + 0.1) is None
    assert table.claim(SERVER, 6000, started=110.0) is not None  # another announcer's


def test_a_connection_under_way_when_the_announcer_ended_still_claims() -> None:
    table = Expectations()
    table.announce((SERVER, 5000), Announced(), announcer=7, ts=100.0)
    table.announcer_ended(7, last=100.5)
    # Its first bytes are seen much later (flushed at the end of a capture): it began in time.
    assert table.claim(SERVER, 5000, started=100.2) is not None


def test_expire_drops_what_is_past_its_deadline_on_the_packet_clock() -> None:
    table = Expectations()
    table.announce((SERVER, 5000), Announced(), announcer=7, ts=100.0)
    table.announce((SERVER, 5001), Announced(), announcer=7, ts=120.0)
    table.expire(100.0 + Announced.timeout + 1)
    assert len(table) == 1 and table.stats.expired == 1
    assert table.claim(SERVER, 5001, started=121.0) is not None


def test_the_table_is_capped_oldest_first_and_a_new_announcement_replaces_an_old_one() -> None:
    table = Expectations(limit=2)
    for port in (1, 2, 3):
        table.announce((SERVER, port), Announced(), announcer=7, ts=100.0)
    assert len(table) == 2 and table.stats.dropped == 1
    assert table.claim(SERVER, 1, started=100.0) is None
    table.announce((SERVER, 2), Announced(), announcer=9, ts=105.0)  # the same endpoint again
    assert len(table) == 2
    table.announcer_ended(7, last=105.0)  # 2 is announcer 9's now
    assert table.claim(SERVER, 2, started=105.0 + ANNOUNCER_GONE_GRACE + 1) is not None


def test_ftp_endpoints_follow_the_control_connection() -> None:
    passive = FtpDataExpected(1, "STOR", "a", "upload", "203.0.113.9", 50000, "passive", 0.0)
    assert passive.endpoint(CLIENT, 40000, SERVER) == (SERVER, 50000)  # the server's address
    active = FtpDataExpected(1, "STOR", "a", "upload", "10.0.0.99", 40001, "active", 0.0)
    assert active.endpoint(CLIENT, 40000, SERVER) == (socket.inet_aton("10.0.0.99"), 40001)
    default = FtpDataExpected(1, "STOR", "a", "upload", "", 0, "active", 0.0)
    assert default.endpoint(CLIENT, 40000, SERVER) == (CLIENT, 40000)  # RFC 959 default port
    broken = FtpDataExpected(1, "STOR", "a", "upload", "not-an-address", 1, "active", 0.0)
    assert broken.endpoint(CLIENT, 40000, SERVER) == (CLIENT, 1)
    v6 = FtpDataExpected(1, "STOR", "a", "upload", "2001:db8::1", 2, "active", 0.0)
    assert v6.endpoint(CLIENT, 40000, SERVER) == (
        socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
        2,
    )
