from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from sensor.metering.geo import BundledGeoDb, GeoError, open_geo, open_mmdb
from tests.metering.conftest import MB, T0, MakeMeter, findings, ip, upload

HOST = ip("10.1.2.3")


def tiny_mmdb(path: Path) -> Path:
    """A GeoIP2-Country-shaped database of four networks, written in the test."""
    writer = MMDBWriter(ip_version=6, database_type="Test-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "US"}})
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "DE"}})
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"registered_country": {"iso_code": "CH"}})
    writer.insert_network(IPSet(["2001:db8:1::/48"]), {"country": {"iso_code": "CN"}})
    writer.to_db_file(str(path))
    return path


def test_mmdb_lookup(tmp_path: Path) -> None:
    geo = open_mmdb(tiny_mmdb(tmp_path / "t.mmdb"))
    assert geo.country(ip("198.51.100.9")) == "US"
    assert geo.country(ip("203.0.113.9")) == "DE"
    assert geo.country(ip("192.0.2.9")) == "CH"  # registered_country when no country
    assert geo.country(ip("2001:db8:1::1")) == "CN"
    assert geo.country(ip("8.8.8.8")) is None
    assert "Test-Country" in geo.source


def test_non_eu_transfer_from_a_user_mmdb(tmp_path: Path, make_meter: MakeMeter) -> None:
    meter = make_meter(geo=open_geo(tiny_mmdb(tmp_path / "t.mmdb")))
    upload(meter, T0, HOST, ip("198.51.100.9"), 2 * MB, reply=2 * MB)  # US
    upload(meter, T0, HOST, ip("203.0.113.9"), 2 * MB, reply=2 * MB)  # DE: EU
    upload(meter, T0, ip("fd00::1"), ip("2001:db8:1::1"), 2 * MB, reply=2 * MB)  # CN
    out = findings(meter.finish())
    assert sorted((f.kind, f.host, f.destinations) for f in out) == [
        ("non_eu_transfer", "10.1.2.3", ("198.51.100.9",)),
        ("non_eu_transfer", "fd00::1", ("2001:db8:1::1",)),
    ]


def test_adequacy_countries_can_be_allowed(tmp_path: Path, make_meter: MakeMeter) -> None:
    from sensor.config import EU_EEA_COUNTRIES

    meter = make_meter(
        geo=open_geo(tiny_mmdb(tmp_path / "t.mmdb")),
        transfer_allowed_countries=(*EU_EEA_COUNTRIES, "US"),
    )
    upload(meter, T0, HOST, ip("198.51.100.9"), 2 * MB, reply=2 * MB)
    assert findings(meter.finish()) == []


def test_bad_mmdb_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match="no such GeoIP database"):
        open_mmdb(tmp_path / "absent.mmdb")
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(GeoError, match="not a MaxMind DB file"):
        open_mmdb(junk)


def test_bundled_default_knows_well_known_ranges(make_meter: MakeMeter) -> None:
    geo = BundledGeoDb()
    assert geo.country(ip("8.8.8.8")) == "US"  # Google Public DNS, ARIN
    assert geo.country(ip("2001:4860:4860::8888")) == "US"
    assert geo.country(ip("193.0.6.139")) == "NL"  # RIPE NCC's own servers
    assert geo.country(ip("10.0.0.1")) is None
    meter = make_meter(geo=open_geo(None))
    upload(meter, T0, HOST, ip("8.8.8.8"), 2 * MB, reply=2 * MB)
    upload(meter, T0, HOST, ip("193.0.6.139"), 2 * MB, reply=2 * MB)
    (finding,) = findings(meter.finish())
    assert finding.kind == "non_eu_transfer" and finding.destinations == ("8.8.8.8",)
    assert " in US " in finding.detail and "iptocc" in finding.detail
