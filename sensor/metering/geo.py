"""Country of a destination address, offline, for the GDPR Art. 44-49 transfer detector.

Two implementations of the `GeoDb` protocol:

* `MmdbGeoDb`: a user-supplied MaxMind-format database (GeoLite2/GeoIP2 Country or City,
  DB-IP lite, or anything with `country.iso_code`), read with the `maxminddb` package.
  The file is memory-mapped when opened; lookups read no file.
* `BundledGeoDb`: the default, from the `iptocc` package, whose wheel embeds the Regional
  Internet Registries' delegation data (refreshed with each release). It answers the country
  a block is *registered* to, which agrees with commercial geolocation for most addresses but
  not for every cloud or CDN range; a MaxMind database is more precise where one is licensed.

Opening is start-up work for the runtime (`open_geo`); the meter only calls `country(ip)`.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol


class GeoError(Exception):
    """A geolocation database cannot be opened; the message says which and why."""


class GeoDb(Protocol):
    source: str  # for findings and stats: which database answered

    def country(self, ip: bytes) -> str | None:
        """ISO 3166-1 alpha-2 code of a packed IPv4/IPv6 address, None when unknown."""
        ...


class MmdbGeoDb:
    def __init__(self, reader: Any, source: str) -> None:
        self._reader = reader
        self.source = source

    def country(self, ip: bytes) -> str | None:
        try:
            record = self._reader.get(ipaddress.ip_address(ip))
        except ValueError:  # an IPv6 address in an IPv4-only database
            return None
        return _country_of(record)

    def close(self) -> None:
        self._reader.close()


def _country_of(record: object) -> str | None:
    """GeoIP2 records carry `country` (where used) and `registered_country` (registry); some
    other producers put a plain code in `country` or `country_code`."""
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        value = record.get(key)
        if isinstance(value, dict):
            code = value.get("iso_code")
            if isinstance(code, str) and code:
                return code.upper()
        elif isinstance(value, str) and len(value) == 2:
            return value.upper()
    code = record.get("country_code")
    return code.upper() if isinstance(code, str) and len(code) == 2 else None


def open_mmdb(path: str | Path) -> MmdbGeoDb:
    import maxminddb  # imported here: only needed when the operator supplies a database

    p = Path(path)
    if not p.is_file():
        raise GeoError(f"{p}: no such GeoIP database")
    try:
        reader = maxminddb.open_database(str(p), maxminddb.MODE_MMAP)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoError(f"{p}: not a MaxMind DB file ({exc})") from None
    meta = reader.metadata()
    built = datetime.fromtimestamp(meta.build_epoch, UTC).strftime("%Y-%m-%d")
    return MmdbGeoDb(reader, f"{p.name} ({meta.database_type}, built {built})")


class BundledGeoDb:
    def __init__(self) -> None:
        try:
            from iptocc import country_code
        except ImportError as exc:
            raise GeoError(f"the bundled GeoIP data (package iptocc) is missing: {exc}") from None
        self._lookup = country_code
        self.source = f"iptocc {metadata.version('iptocc')} (RIR delegation data)"

    def country(self, ip: bytes) -> str | None:
        family = socket.AF_INET if len(ip) == 4 else socket.AF_INET6
        code = self._lookup(socket.inet_ntop(family, ip))
        return code if isinstance(code, str) and code else None


def open_geo(path: str | Path | None) -> GeoDb:
    """The operator's MaxMind database when configured, else the bundled registry data."""
    return open_mmdb(path) if path is not None else BundledGeoDb()
