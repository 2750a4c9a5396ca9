"""Content-based protocol detection (the protocols stage), independent of ports.

A detector looks at the first bytes one side of a connection sent and answers True (this is
my protocol, seen from the role the caller asked about), False (certainly not) or None (need
more bytes). Detectors are plain functions, registered in `pipeline.py` in a documented order:

1. http   request line from the client / status line from the server
2. tls    a handshake record carrying ClientHello (client) / ServerHello (server)
3. ssh    an identification string "SSH-x.y-" (RFC 4253 section 4.2), either side

The first detector to say True wins. A detector that answers True only for the opposite role
tells the session that the flow's orientation was guessed wrong (mid-stream pickup) and the
flow is flipped. When every detector has said False, or `detect_bytes` were seen without an
answer, the flow's `app_proto` is "unknown" and it is only counted from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor.protocols.base import Direction, Parser

DetectFn = Callable[[Direction, bytes], "bool | None"]
ParserFactory = Callable[[], Parser]


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """A protocol Sluice can recognise; `parser` is None where it only names and counts."""

    name: str
    detect: DetectFn
    parser: ParserFactory | None = None


# TLS record: ContentType handshake(22), legacy version 3.x (RFC 8446 section 5.1), then a
# handshake message: ClientHello(1) from the client, ServerHello(2) from the server.
_TLS_HANDSHAKE = 22


def detect_tls(direction: Direction, data: bytes) -> bool | None:
    if len(data) < 6:
        if not data or data[0] != _TLS_HANDSHAKE or (len(data) > 1 and data[1] != 3):
            return False
        return None
    if data[0] != _TLS_HANDSHAKE or data[1] != 3 or data[2] > 4:
        return False
    wanted = 1 if direction == Direction.TO_SERVER else 2
    return data[5] == wanted


def detect_ssh(direction: Direction, data: bytes) -> bool | None:
    """Both sides send "SSH-protoversion-softwareversion" first (RFC 4253 section 4.2)."""
    prefix = b"SSH-"
    if len(data) < len(prefix):
        return None if prefix.startswith(data) else False
    return data.startswith(prefix)
