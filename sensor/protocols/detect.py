"""Content-based protocol detection (the protocols stage), independent of ports.

A detector looks at the first bytes one side of a connection sent and answers True (this is
my protocol, seen from the role the caller asked about), False (certainly not) or None (need
more bytes). Detectors are plain functions, registered in `pipeline.py` in a documented order:

1. http   request line from the client / status line from the server
2. smtp   EHLO/HELO from the client / a "220 ... SMTP" greeting from the server
3. ftp    USER/AUTH/FEAT/... from the client / a "220 ... FTP" greeting from the server
          (a bare "220" greeting waits for the client's first command)
4. tls    a handshake record carrying ClientHello (client) / ServerHello (server)
5. ssh    an identification string "SSH-x.y-" (RFC 4253 section 4.2), either side

Each detector lives in its protocol's module (`detect`). Inside an HTTP CONNECT tunnel the
order is tls, ssh, http.

The first detector to say True wins. A detector that answers True only for the opposite role
tells the session that the flow's orientation was guessed wrong (mid-stream pickup) and the
flow is flipped. When every detector has said False, or `detect_bytes` were seen without an
answer, the flow's `app_proto` is "unknown" and it is only counted from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor.protocols.base import Direction, Parser

__all__ = ["DetectFn", "ParserFactory", "ProtocolSpec"]

DetectFn = Callable[[Direction, bytes], "bool | None"]
ParserFactory = Callable[[], Parser]


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """A protocol Sluice can recognise; `parser` is None where it only names and counts."""

    name: str
    detect: DetectFn
    parser: ParserFactory | None = None
