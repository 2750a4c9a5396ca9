"""Metering stage: how much each internal host sends, and to whom.

Per packet sizes in (`Meter.observe`), destination names in (`Meter.name`), and on the packet
clock (`Meter.tick`) per-host `VolumeSummary` values and `Finding` facts out. Sans-IO: no
clock, no files; `store.py` is the one module here that does I/O (SQLite time series), and the
runtime opens the data files (`load_categories`, `open_geo`) once at start-up.
"""

from sensor.metering.categories import CategoryDb, CategoryError, load_categories
from sensor.metering.geo import BundledGeoDb, GeoDb, GeoError, MmdbGeoDb, open_geo
from sensor.metering.meter import Meter, MeterStats
from sensor.metering.values import KINDS, DestVolume, Finding, Volume, VolumeSummary

__all__ = [
    "KINDS",
    "BundledGeoDb",
    "CategoryDb",
    "CategoryError",
    "DestVolume",
    "Finding",
    "GeoDb",
    "GeoError",
    "Meter",
    "MeterStats",
    "MmdbGeoDb",
    "Volume",
    "VolumeSummary",
    "load_categories",
    "open_geo",
]
