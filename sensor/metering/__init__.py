"""Metering stage: how much each internal host sends, and to whom.

Flows' counts in at every bucket close (`Meter.close_bucket`, `flow_ended`: the meter owns its
buckets and asks the flows itself), destination names in (`Meter.name`), counts from outside
the packets through the `BucketFeed` it was given (the eBPF probe's), and per-host
`VolumeSummary` values and `Finding` facts out (`MeterOutput`). Sans-IO: no clock, no files;
`store.py` is the one module here that does I/O (SQLite time series), and the runtime opens the
data files (`load_categories`, `open_geo`) once at start-up.
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
