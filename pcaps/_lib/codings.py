"""Content-coding builders for crafted cases: raw deflate and gzip members with any header.

Shared by the evasive HTTP generator (pcaps/http-evader) and the decoder tests, which need
gzip streams the standard library does not write (reserved flag bits, every optional field,
a short or missing trailer).
"""

from __future__ import annotations

import zlib

FHCRC, FEXTRA, FNAME, FCOMMENT = 0x02, 0x04, 0x08, 0x10


def raw_deflate(data: bytes) -> bytes:
    """RFC 1951 deflate without the zlib wrapper."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


def gzip_member(data: bytes, flags: int = 0, trailer: int = 8) -> bytes:
    """One RFC 1952 member whose FLG byte is `flags`, with every field it announces (reserved
    bits announce nothing); `trailer`: how many of the 8 trailer bytes to keep."""
    head = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00\x00\x03"
    if flags & FEXTRA:
        head += (6).to_bytes(2, "little") + b"AB\x02\x00xy"
    if flags & FNAME:
        head += b"export.csv\x00"
    if flags & FCOMMENT:
        head += b"nothing to see\x00"
    if flags & FHCRC:
        head += (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little")
    tail = zlib.crc32(data).to_bytes(4, "little") + (len(data) % 2**32).to_bytes(4, "little")
    return head + raw_deflate(data) + tail[:trailer]
