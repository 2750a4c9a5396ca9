"""The meter's log (the outputs stage): `volume` and `finding` records from what the metering
stage hands out at each bucket close.

A `finding` record for every finding; a `volume` record per active host every
`metering.volume_event_interval` seconds of packet time (the bucket that ends on the interval),
so a busy sensor writes a summary per host and interval, not per bucket. `volume_fields` are the
field names `sluice top --json` shares.
"""

from __future__ import annotations

from collections.abc import Iterable

from sensor.metering.values import Finding, Volume, VolumeSummary
from sensor.outputs.eve import Record, iso_time


def volume_fields(v: Volume) -> Record:
    """A meter volume as the JSON field names events and `sluice top --json` share."""
    return {
        "bytes_out": v.out_bytes,
        "packets_out": v.out_packets,
        "payload_bytes_out": v.out_payload,
        "bytes_in": v.in_bytes,
        "packets_in": v.in_packets,
        "payload_bytes_in": v.in_payload,
    }


def volume_record(summary: VolumeSummary) -> Record:
    """A periodic per-host summary: this bucket, its sliding windows, its destinations."""
    body: Record = {
        "host": summary.host,
        "bucket_start": iso_time(summary.ts),
        "bucket_seconds": summary.duration,
        **volume_fields(summary.volume),
        "windows": {f"{int(seconds)}s": volume_fields(v) for seconds, v in summary.windows},
        "destinations": [
            {"ip": d.ip, "name": d.name, "port": d.port, "country": d.country,
             "category": d.category, **volume_fields(d.volume)}
            for d in summary.destinations
        ],
    }  # fmt: skip
    return {
        "timestamp": iso_time(summary.ts + summary.duration),
        "event_type": "volume",
        "src_ip": summary.host,
        "volume": body,
    }


def finding_record(finding: Finding) -> Record:
    """A volume detector fired (threshold, spike, slow exfiltration, novel destination, ...)."""
    return {
        "timestamp": iso_time(finding.ts),
        "event_type": "finding",
        "src_ip": finding.host,
        "finding": {
            "kind": finding.kind,
            "severity": finding.severity,
            "host": finding.host,
            "window_seconds": finding.window,
            "value": finding.value,
            "threshold": finding.threshold,
            "detail": finding.detail,
            "destinations": list(finding.destinations),
        },
    }


def meter_records(results: Iterable[VolumeSummary | Finding], interval: float) -> list[Record]:
    """The records of one bucket close: every finding; the volume summaries when the bucket
    ends on `interval` (0: none)."""
    out: list[Record] = []
    for result in results:
        if isinstance(result, Finding):
            out.append(finding_record(result))
        elif interval and (result.ts + result.duration) % interval < result.duration:
            out.append(volume_record(result))
    return out
