"""A minimal classic-pcap writer for link types scapy will not stamp (SLL2, NULL, raw IP)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

PCAP_MAGIC_US = 0xA1B2C3D4


def write_pcap(path: Path, linktype: int, records: Iterable[tuple[float, bytes]]) -> None:
    """Little-endian pcap 2.4, microsecond timestamps, snaplen 262144, full records."""
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, 262144, linktype))
        for ts, data in records:
            sec = int(ts)
            usec = round((ts - sec) * 1_000_000)
            fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            fh.write(data)
