from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from sensor.config import Config, MeteringConfig
from sensor.metering.categories import CategoryDb
from sensor.metering.geo import GeoDb
from sensor.metering.meter import Meter
from sensor.metering.values import Finding, VolumeSummary

HOME_NET = Config().home_net
DAY = 86400.0
MB = 1_000_000
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a day boundary in UTC


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class FixedGeo:
    """A GeoDb answering from a dict of networks (test double)."""

    source = "test"

    def __init__(self, table: dict[str, str]) -> None:
        self._table = [(ipaddress.ip_network(n), c) for n, c in table.items()]

    def country(self, address: bytes) -> str | None:
        a = ipaddress.ip_address(address)
        for net, code in self._table:
            if a.version == net.version and a in net:
                return code
        return None


MakeMeter = Callable[..., Meter]


@pytest.fixture
def make_meter() -> MakeMeter:
    def make(
        categories: CategoryDb | None = None, geo: GeoDb | None = None, **overrides: Any
    ) -> Meter:
        config = replace(MeteringConfig(), **overrides)
        return Meter(config, HOME_NET, categories or CategoryDb.empty(), geo)

    return make


def findings(items: list[VolumeSummary | Finding]) -> list[Finding]:
    return [i for i in items if isinstance(i, Finding)]


def summaries(items: list[VolumeSummary | Finding]) -> list[VolumeSummary]:
    return [i for i in items if isinstance(i, VolumeSummary)]


def upload(
    meter: Meter,
    ts: float,
    host: bytes,
    dest: bytes,
    payload: int,
    *,
    seconds: float = 1.0,
    reply: int = 0,
    port: int = 443,
    segment: int = 1_000_000,
) -> None:
    """`payload` bytes sent from host to dest over `seconds`, in segments of `segment` bytes
    (the meter does not care about MTU; big segments keep long simulations fast), each
    answered by one packet carrying an equal share of the `reply` payload bytes."""
    count = max(1, -(-payload // segment))
    for i in range(count):
        size = min(segment, payload - i * segment)
        back = reply // count + (reply % count if i == count - 1 else 0)
        t = ts + seconds * i / count
        meter.observe(t, host, dest, size + 40, size, port)
        meter.observe(t, dest, host, back + 40, back, 50000)
