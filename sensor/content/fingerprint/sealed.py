"""Fingerprint stage: formats that are always encrypted (age, OpenSSL `enc`, LUKS).

In: the bytes of one object the identifier matched by magic (`age-encryption.org/v1`, the
armoured age BEGIN line, `Salted__` or its base64 `U2FsdGVkX1`, `LUKS\\xba\\xbe`), fed in order
in chunks of any size.
Out: an `Encryption` verdict: True with the scheme the header names, or None when the object
is too short to hold the header that makes it what the magic says.

Each analyser keeps only a bounded head (a named cap below) and reads the header from it; the
rest of the object is ciphertext and is not looked at.
"""

from __future__ import annotations

import binascii
import json
import re
import struct

from sensor.anomaly import Anomaly
from sensor.content.fingerprint.base import Encryption

# -- age (C2SP age specification, "age-encryption.org/v1") -----------------------------------

# The header (version line, recipient stanzas, MAC line) is read from at most this many bytes
# (decoded bytes for the armoured form). A stanza is ~100-600 bytes, so this holds dozens of
# recipients; a longer header is counted as far as it goes.
AGE_HEADER_CAP = 32768
# How many armoured characters are kept to decode that head (base64 is 4/3 of it plus newlines).
AGE_ARMOUR_CAP = AGE_HEADER_CAP * 3 // 2 + 1024

_AGE_VERSION_LINE = b"age-encryption.org/v1"
_AGE_ARMOUR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
# Stanza types are arbitrary strings (plugins); only a tame spelling goes into a scheme name.
_AGE_TYPE_CHARS = re.compile(rb"[A-Za-z0-9._+-]{1,32}\Z")
# The age spec wraps stanza bodies at 64 columns; a shorter (possibly empty) line ends a body.
_AGE_COLUMNS = 64


class AgeAnalyser:
    """Analyser for age files, binary or armoured (`-----BEGIN AGE ENCRYPTED FILE-----`)."""

    __slots__ = ("_armoured", "_gapped", "_head", "anomalies", "tail_bytes")

    def __init__(self, armoured: bool = False) -> None:
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._armoured = armoured
        self._head = bytearray()
        self._gapped = False

    def feed(self, data: bytes) -> None:
        cap = AGE_ARMOUR_CAP if self._armoured else AGE_HEADER_CAP
        if self._gapped or len(self._head) >= cap:
            return
        self._head += data[: cap - len(self._head)]

    def gap(self, size: int) -> None:
        self._gapped = True

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        head = bytes(self._head)
        if self._armoured:
            decoded = self._dearmour(head)
            if decoded is None:
                return Encryption(None)
            head = decoded
        return self._read_header(head)

    def _dearmour(self, text: bytes) -> bytes | None:
        lines = text.split(b"\n")
        if lines[0].strip() != _AGE_ARMOUR_BEGIN:
            return None
        body: list[bytes] = []
        rest = lines[1:]
        if len(text) >= AGE_ARMOUR_CAP:
            rest = rest[:-1]  # the last line is cut by the cap: only whole lines are decoded
        for line in rest:
            line = line.strip()
            if line.startswith(b"-----END"):
                break
            body.append(line)
        chars = b"".join(body)
        chars = chars[: len(chars) - len(chars) % 4]
        try:
            return binascii.a2b_base64(chars)
        except (binascii.Error, ValueError):
            return b""

    def _read_header(self, head: bytes) -> Encryption:
        if not head.startswith(_AGE_VERSION_LINE + b"\n"):
            # Too short to hold the version line, or not age after all.
            return Encryption(None)
        lines = head.split(b"\n")
        # The last element is either b"" (head ends in a newline) or a cut line.
        whole = lines[1:-1]
        first_type: str | None = None
        recipients = 0
        in_body = False
        mac = False
        for line in whole:
            if in_body:
                if len(line) < _AGE_COLUMNS:
                    in_body = False
                continue
            if line.startswith(b"-> "):
                recipients += 1
                args = line[3:].split(b" ")
                if first_type is None and _AGE_TYPE_CHARS.match(args[0]):
                    first_type = args[0].decode("ascii").lower()
                in_body = True
                continue
            if line.startswith(b"--- "):
                mac = True
                break
            break
        parts: list[str] = []
        if recipients:
            parts.append(f"recipients={recipients}{'' if mac else '+'}")
        if not mac:
            # Cut before the MAC line or a line that is not a stanza: still age (the version
            # line says so), so still encrypted.
            parts.append("header damaged")
        scheme = f"age-{first_type}" if first_type else "age"
        return Encryption(True, scheme=scheme, detail=", ".join(parts))


# -- OpenSSL enc ------------------------------------------------------------------------------

_OPENSSL_MAGIC = b"Salted__"
_OPENSSL_BASE64_MAGIC = b"U2FsdGVkX1"
# Magic and the 8-byte salt; 24 base64 characters encode them.
_OPENSSL_HEADER = 16
_OPENSSL_BASE64_HEADER = 24
OPENSSL_HEAD_CAP = 64


class OpenSslAnalyser:
    """Analyser for `openssl enc` output with a salt header (`Salted__` + 8-byte salt), raw or
    base64 (`-a`)."""

    __slots__ = ("_base64", "_gapped", "_head", "anomalies", "tail_bytes")

    def __init__(self, base64: bool = False) -> None:
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._base64 = base64
        self._head = bytearray()
        self._gapped = False

    def feed(self, data: bytes) -> None:
        if not self._gapped and len(self._head) < OPENSSL_HEAD_CAP:
            self._head += data[: OPENSSL_HEAD_CAP - len(self._head)]

    def gap(self, size: int) -> None:
        # Only the first bytes matter; bytes after a loss are not the header.
        self._gapped = True

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        head = bytes(self._head)
        if self._base64:
            text = head.replace(b"\r", b"").replace(b"\n", b"")
            if not text.startswith(_OPENSSL_BASE64_MAGIC):
                return Encryption(None)
            if len(text) < _OPENSSL_BASE64_HEADER:
                return Encryption(None)
            try:
                head = binascii.a2b_base64(text[:_OPENSSL_BASE64_HEADER])
            except (binascii.Error, ValueError):
                return Encryption(None)
        if not head.startswith(_OPENSSL_MAGIC):
            return Encryption(None)
        if len(head) < _OPENSSL_HEADER:
            return Encryption(None)
        return Encryption(True, scheme="openssl-enc", detail="salted")


# -- LUKS (cryptsetup "LUKS On-Disk Format Specification" 1.2.3 and "LUKS2 On-Disk Format") ---

_LUKS_MAGIC = b"LUKS\xba\xbe"
# LUKS1: the header is 592 bytes; the cipher name and mode are at 8 and 40 (32 bytes each).
_LUKS1_HEADER = 592
# LUKS2: a 4096-byte binary header, then the JSON metadata area (hdr_size - 4096 bytes, 12 KiB
# by default, at most 4 MiB). Only this much of the JSON area is kept.
_LUKS2_BINARY_HEADER = 4096
LUKS2_JSON_CAP = 65536
LUKS_HEAD_CAP = _LUKS2_BINARY_HEADER + LUKS2_JSON_CAP
_LUKS_NAME = re.compile(rb"[A-Za-z0-9_.:+-]{1,64}\Z")
_LUKS2_ENCRYPTION = re.compile(rb'"encryption"\s*:\s*"([A-Za-z0-9_.:+-]{1,64})"')


def _c_string(raw: bytes) -> str | None:
    """A NUL-terminated header field, if it is a tame name."""
    name = raw.split(b"\0", 1)[0]
    return name.decode("ascii") if _LUKS_NAME.match(name) else None


def _luks2_cipher(area: bytes) -> str | None:
    """The data segment's cipher from the LUKS2 JSON metadata (falls back to the first
    "encryption" value when the JSON is cut by the cap or does not parse)."""
    text = area.split(b"\0", 1)[0]
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        meta = None
    if isinstance(meta, dict):
        for group in ("segments", "keyslots"):
            entries = meta.get(group)
            if not isinstance(entries, dict):
                continue
            for entry in entries.values():
                if not isinstance(entry, dict):
                    continue
                cipher = entry.get("encryption")
                if cipher is None and isinstance(entry.get("area"), dict):
                    cipher = entry["area"].get("encryption")
                if isinstance(cipher, str) and _LUKS_NAME.match(cipher.encode("utf-8", "replace")):
                    return cipher
    found = _LUKS2_ENCRYPTION.search(text)
    return found.group(1).decode("ascii") if found else None


class LuksAnalyser:
    """Analyser for LUKS1 and LUKS2 volumes (header at offset 0)."""

    __slots__ = ("_gapped", "_head", "anomalies", "tail_bytes")

    def __init__(self) -> None:
        self.tail_bytes = 0
        self.anomalies: list[Anomaly] = []
        self._head = bytearray()
        self._gapped = False

    def feed(self, data: bytes) -> None:
        if not self._gapped and len(self._head) < LUKS_HEAD_CAP:
            self._head += data[: LUKS_HEAD_CAP - len(self._head)]

    def gap(self, size: int) -> None:
        self._gapped = True

    def finish(self, tail: bytes, size: int, complete: bool) -> Encryption:
        head = bytes(self._head)
        if len(head) < 8 or not head.startswith(_LUKS_MAGIC):
            return Encryption(None)
        version = struct.unpack_from(">H", head, 6)[0]
        if version == 1:
            if len(head) < _LUKS1_HEADER:
                return Encryption(None)
            cipher = _c_string(head[8:40])
            mode = _c_string(head[40:72])
            detail = f"{cipher}-{mode}" if cipher and mode else None
            return Encryption(True, scheme="luks1", detail=detail)
        if version == 2:
            if len(head) < _LUKS2_BINARY_HEADER:
                return Encryption(None)
            hdr_size = struct.unpack_from(">Q", head, 8)[0]
            end = min(max(hdr_size, _LUKS2_BINARY_HEADER), LUKS_HEAD_CAP)
            return Encryption(
                True, scheme="luks2", detail=_luks2_cipher(head[_LUKS2_BINARY_HEADER:end])
            )
        return Encryption(True, scheme="luks", detail=f"version {version}")
