"""age, OpenSSL enc and LUKS analysers: real `openssl enc` and (where installed) `age` output,
byte-exact hand-built headers from the specs (C2SP age, LUKS1 1.2.3, LUKS2 on-disk format),
fed whole, byte by byte and split at every offset; truncations; arbitrary bytes never raise."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Analyser, Encryption
from sensor.content.fingerprint.sealed import (
    AGE_HEADER_CAP,
    LUKS2_JSON_CAP,
    AgeAnalyser,
    LuksAnalyser,
    OpenSslAnalyser,
)


def verdict(
    make: Callable[[], Analyser],
    data: bytes,
    chunks: list[bytes] | None = None,
    complete: bool = True,
) -> Encryption:
    analyser = make()
    for chunk in [data] if chunks is None else chunks:
        analyser.feed(chunk)
    return analyser.finish(b"", len(data), complete)


def same_in_every_split(make: Callable[[], Analyser], data: bytes, every: int = 1) -> Encryption:
    whole = verdict(make, data)
    assert verdict(make, data, [data[i : i + 1] for i in range(len(data))]) == whole
    for cut in range(0, len(data) + 1, every):
        assert verdict(make, data, [data[:cut], data[cut:]]) == whole, cut
    return whole


def b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def wrap(text: bytes, width: int = 64) -> list[bytes]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [b""]


# -- age --------------------------------------------------------------------------------------


def age_stanza(kind: bytes, args: list[bytes], body: bytes) -> bytes:
    lines = wrap(b64(body))
    if len(lines[-1]) == 64:
        lines.append(b"")  # C2SP age: a full final line is followed by an empty one
    return b"-> " + b" ".join([kind, *args]) + b"\n" + b"\n".join(lines) + b"\n"


def age_file(*stanzas: bytes, payload: bytes = b"") -> bytes:
    header = b"age-encryption.org/v1\n" + b"".join(stanzas)
    return header + b"--- " + b64(bytes(32)) + b"\n" + bytes(16) + (payload or os.urandom(40))


def age_armour(data: bytes) -> bytes:
    lines = wrap(base64.b64encode(data))
    return (
        b"-----BEGIN AGE ENCRYPTED FILE-----\n"
        + b"\n".join(lines)
        + b"\n-----END AGE ENCRYPTED FILE-----\n"
    )


X25519 = age_stanza(b"X25519", [b64(os.urandom(32))], os.urandom(32))
SCRYPT = age_stanza(b"scrypt", [b64(os.urandom(16)), b"18"], os.urandom(32))
SSH_ED25519 = age_stanza(b"ssh-ed25519", [b64(os.urandom(4)), b64(os.urandom(32))], os.urandom(32))
SSH_RSA = age_stanza(b"ssh-rsa", [b64(os.urandom(4))], os.urandom(256))
MLKEM = age_stanza(b"mlkem768x25519", [b64(os.urandom(1120))], os.urandom(32))


@pytest.mark.parametrize(
    ("stanzas", "scheme", "detail"),
    [
        ((X25519,), "age-x25519", "recipients=1"),
        ((SCRYPT,), "age-scrypt", "recipients=1"),
        ((SSH_ED25519, X25519), "age-ssh-ed25519", "recipients=2"),
        ((SSH_RSA,), "age-ssh-rsa", "recipients=1"),
        ((MLKEM, X25519, X25519), "age-mlkem768x25519", "recipients=3"),
        ((age_stanza(b"piv-p256", [b"abc"], b""),), "age-piv-p256", "recipients=1"),
    ],
)
def test_age_hand_built(stanzas: tuple[bytes, ...], scheme: str, detail: str) -> None:
    data = age_file(*stanzas)
    assert same_in_every_split(AgeAnalyser, data) == Encryption(True, scheme, detail=detail)
    armoured = age_armour(data)
    assert same_in_every_split(lambda: AgeAnalyser(armoured=True), armoured, every=7) == (
        Encryption(True, scheme, detail=detail)
    )


def test_age_real_tool(tmp_path: Path) -> None:
    age = shutil.which("age")
    keygen = shutil.which("age-keygen")
    if age is None or keygen is None:
        # Not installed here: the hand-built samples above stand in; the corpus adds real ones.
        data = age_file(X25519)
        armoured = age_armour(data)
    else:
        key = tmp_path / "key.txt"
        subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True, timeout=30)
        recipient = next(
            line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line
        )
        message = tmp_path / "m.txt"
        message.write_bytes(b"x" * 100_000)
        data = subprocess.run(
            [age, "-r", recipient, str(message)], check=True, capture_output=True, timeout=30
        ).stdout
        armoured = subprocess.run(
            [age, "-a", "-r", recipient, str(message)], check=True, capture_output=True, timeout=30
        ).stdout
    assert same_in_every_split(AgeAnalyser, data[:400]) == Encryption(
        True, "age-x25519", detail="recipients=1"
    )
    assert verdict(AgeAnalyser, data) == Encryption(True, "age-x25519", detail="recipients=1")
    assert verdict(lambda: AgeAnalyser(armoured=True), armoured).scheme == "age-x25519"


def test_age_damaged_and_short() -> None:
    data = age_file(X25519, SCRYPT)
    cut = data.index(b"--- ")
    result = verdict(AgeAnalyser, data[:cut], complete=False)
    assert result == Encryption(True, "age-x25519", detail="recipients=2+, header damaged")
    broken = data.replace(b"-> scrypt", b"?? scrypt")
    assert verdict(AgeAnalyser, broken).detail == "recipients=1+, header damaged"
    assert verdict(AgeAnalyser, b"age-encryption.org/v1\n") == Encryption(
        True, "age", detail="header damaged"
    )
    for short in (b"", b"age-enc", b"age-encryption.org/v1"):
        assert verdict(AgeAnalyser, short).encrypted is None
    assert verdict(lambda: AgeAnalyser(armoured=True), b"-----BEGIN AGE").encrypted is None


def test_age_header_longer_than_the_cap() -> None:
    data = age_file(*[X25519] * (AGE_HEADER_CAP // len(X25519) + 5))
    result = verdict(AgeAnalyser, data)
    assert result.encrypted is True and result.scheme == "age-x25519"
    assert result.detail is not None and result.detail.endswith("+, header damaged")


def test_age_gap_keeps_the_head() -> None:
    analyser = AgeAnalyser()
    data = age_file(X25519)
    analyser.feed(data[:200])
    analyser.gap(1000)
    analyser.feed(b"junk")
    assert analyser.finish(b"", 0, False).scheme == "age-x25519"


# -- OpenSSL enc ------------------------------------------------------------------------------


def openssl_samples(tmp_path: Path) -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is part of the test environment"
    message = tmp_path / "m.txt"
    message.write_bytes(b"patient data\n" * 10)
    common = [openssl, "enc", "-aes-256-cbc", "-pbkdf2", "-pass", "pass:x", "-in", str(message)]
    raw = subprocess.run(common, check=True, capture_output=True, timeout=30).stdout
    text = subprocess.run([*common, "-a"], check=True, capture_output=True, timeout=30).stdout
    return raw, text


def test_openssl_real_tool(tmp_path: Path) -> None:
    raw, text = openssl_samples(tmp_path)
    assert raw.startswith(b"Salted__") and text.startswith(b"U2FsdGVkX1")
    expected = Encryption(True, "openssl-enc", detail="salted")
    assert same_in_every_split(OpenSslAnalyser, raw) == expected
    assert same_in_every_split(lambda: OpenSslAnalyser(base64=True), text) == expected


def test_openssl_too_short_or_wrong(tmp_path: Path) -> None:
    raw, text = openssl_samples(tmp_path)
    for cut in range(16):
        assert verdict(OpenSslAnalyser, raw[:cut], complete=False).encrypted is None
    assert verdict(OpenSslAnalyser, raw[:16]).encrypted is True
    for cut in range(24):
        result = verdict(lambda: OpenSslAnalyser(base64=True), text[:cut], complete=False)
        assert result.encrypted is None
    assert verdict(OpenSslAnalyser, b"Salted_x" + bytes(30)).encrypted is None
    assert verdict(lambda: OpenSslAnalyser(base64=True), b"U2FsdGVkY1" * 5).encrypted is None


# -- LUKS -------------------------------------------------------------------------------------


def luks1_header(cipher: bytes = b"aes", mode: bytes = b"xts-plain64") -> bytes:
    # LUKS On-Disk Format 1.2.3, section 2.4 (big-endian).
    header = (
        b"LUKS\xba\xbe"
        + struct.pack(">H", 1)
        + cipher.ljust(32, b"\0")
        + mode.ljust(32, b"\0")
        + b"sha256".ljust(32, b"\0")
        + struct.pack(">II", 4096, 64)
        + os.urandom(20 + 32)
        + struct.pack(">I", 100000)
        + b"6f1c2d1e-0000-4000-8000-000000000001".ljust(40, b"\0")
    )
    slots = b"".join(
        struct.pack(">II", 0x00AC71F3, 100000) + os.urandom(32) + struct.pack(">II", 8, 4000)
        for _ in range(8)
    )
    assert len(header + slots) == 592
    return header + slots


LUKS2_JSON = {
    "keyslots": {
        "0": {
            "type": "luks2",
            "key_size": 64,
            "af": {"type": "luks1", "stripes": 4000, "hash": "sha256"},
            "area": {
                "type": "raw",
                "offset": "32768",
                "size": "258048",
                "encryption": "aes-xts-plain64",
                "key_size": 64,
            },
            "kdf": {"type": "argon2id", "time": 4, "memory": 1048576, "cpus": 4, "salt": "AAAA"},
        }
    },
    "tokens": {},
    "segments": {
        "0": {
            "type": "crypt",
            "offset": "16777216",
            "size": "dynamic",
            "iv_tweak": "0",
            "encryption": "serpent-xts-plain64",
            "sector_size": 512,
        }
    },
    "digests": {},
    "config": {"json_size": "12288", "keyslots_size": "16744448"},
}


def luks2_header(meta: object = LUKS2_JSON, hdr_size: int = 16384) -> bytes:
    # LUKS2 On-Disk Format, section 3.1: 4096-byte binary header, then the JSON area.
    binary = (
        b"LUKS\xba\xbe"
        + struct.pack(">HQQ", 2, hdr_size, 1)
        + b"".ljust(48, b"\0")
        + b"sha256".ljust(32, b"\0")
        + os.urandom(64)
        + b"6f1c2d1e-0000-4000-8000-000000000002".ljust(40, b"\0")
        + b"".ljust(48, b"\0")
        + struct.pack(">Q", 0)
    ).ljust(4096, b"\0")
    area = json.dumps(meta).encode().ljust(hdr_size - 4096, b"\0")
    secondary = b"SKUL\xba\xbe" + binary[6:]
    return binary + area + secondary + area


def test_luks1() -> None:
    # cryptsetup is not installed here: byte-exact headers from the spec; the corpus adds
    # real volumes later.
    data = luks1_header() + os.urandom(2000)
    assert same_in_every_split(LuksAnalyser, data, every=13) == Encryption(
        True, "luks1", detail="aes-xts-plain64"
    )
    for cut in (0, 5, 8, 591):
        assert verdict(LuksAnalyser, data[:cut], complete=False).encrypted is None
    assert verdict(LuksAnalyser, data[:592]).scheme == "luks1"
    odd = luks1_header(b"aes\x01\x02", b"cbc")
    assert verdict(LuksAnalyser, odd) == Encryption(True, "luks1")


def test_luks2() -> None:
    data = luks2_header()
    assert same_in_every_split(LuksAnalyser, data[:20000], every=97) == Encryption(
        True, "luks2", detail="serpent-xts-plain64"
    )
    # The keyslot area's cipher stands in when there is no segment.
    meta = {**LUKS2_JSON, "segments": {}}
    assert verdict(LuksAnalyser, luks2_header(meta)).detail == "aes-xts-plain64"
    for cut in (0, 7, 4095):
        assert verdict(LuksAnalyser, data[:cut], complete=False).encrypted is None
    assert verdict(LuksAnalyser, data[:4096]) == Encryption(True, "luks2")


def test_luks2_json_beyond_the_cap_or_broken() -> None:
    padded = {**LUKS2_JSON, "tokens": {"0": {"type": "x", "pad": "p" * LUKS2_JSON_CAP}}}
    cut_json = luks2_header(padded, hdr_size=4096 + 2 * LUKS2_JSON_CAP)
    # The JSON does not parse within the cap: the first "encryption" value is used.
    assert verdict(LuksAnalyser, cut_json).detail == "aes-xts-plain64"
    nested = b"[" * 50000
    data = luks2_header().replace(json.dumps(LUKS2_JSON).encode(), nested[:12000], 1)
    assert verdict(LuksAnalyser, data) == Encryption(True, "luks2")


# -- hostile input ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000), st.integers(0, 5000), st.sampled_from(range(6)))
def test_arbitrary_bytes_never_raise(data: bytes, cut: int, which: int) -> None:
    makers: list[tuple[Callable[[], Analyser], bytes]] = [
        (AgeAnalyser, b"age-encryption.org/v1\n"),
        (lambda: AgeAnalyser(armoured=True), b"-----BEGIN AGE ENCRYPTED FILE-----\n"),
        (OpenSslAnalyser, b"Salted__"),
        (lambda: OpenSslAnalyser(base64=True), b"U2FsdGVkX1"),
        (LuksAnalyser, b"LUKS\xba\xbe\x00\x02"),
        (LuksAnalyser, b"LUKS\xba\xbe\x00\x01"),
    ]
    make, prefix = makers[which]
    for sample in (data, prefix + data):
        analyser = make()
        analyser.feed(sample[:cut])
        analyser.feed(sample[cut:])
        assert analyser.finish(b"", len(sample), True).encrypted in (True, None)
