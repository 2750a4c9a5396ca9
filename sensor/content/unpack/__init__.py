"""Fingerprint stage, container openers: uploaded files that hold other files (single-stream
compressors and tar) turned into their members as they stream, through the `Opener` protocol
of sensor/content/fingerprint/base.py."""

from sensor.content.unpack.streams import (
    Bzip2Opener,
    GzipOpener,
    XzOpener,
    ZstdOpener,
    member_name_for,
)
from sensor.content.unpack.tar import TarOpener

__all__ = [
    "Bzip2Opener",
    "GzipOpener",
    "TarOpener",
    "XzOpener",
    "ZstdOpener",
    "member_name_for",
]
