"""OpenPGP analyser and `looks_like_openpgp`: real gpg output (binary and armoured, symmetric,
public-key, signed, compressed, keys) and hand-built RFC 9580 packets, fed whole, byte by byte
and split at every offset; truncations; negatives; arbitrary bytes never raise."""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.content.fingerprint.base import Encryption
from sensor.content.fingerprint.openpgp import (
    MAX_PACKETS,
    MIN_CUT_BODY,
    OpenPgpAnalyser,
    looks_like_openpgp,
)

GPG = shutil.which("gpg")


def verdict(
    data: bytes, chunks: list[bytes] | None = None, armoured: bool = False, complete: bool = True
) -> Encryption:
    analyser = OpenPgpAnalyser(armoured=armoured)
    for chunk in [data] if chunks is None else chunks:
        analyser.feed(chunk)
    return analyser.finish(b"", len(data), complete)


def same_in_every_split(data: bytes, armoured: bool = False) -> Encryption:
    whole = verdict(data, armoured=armoured)
    assert verdict(data, [data[i : i + 1] for i in range(len(data))], armoured) == whole
    for cut in range(len(data) + 1):
        assert verdict(data, [data[:cut], data[cut:]], armoured) == whole, cut
    return whole


# -- real gpg samples -------------------------------------------------------------------------


class Gpg:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "GNUPGHOME": str(home)}
        self.message = home / "m.txt"
        self.message.write_bytes(b"patient 1234 cervical screening result\n" * 3)

    def run(self, *args: str) -> bytes:
        out = self.home / "out"
        out.unlink(missing_ok=True)
        subprocess.run(
            [
                GPG or "gpg",
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "x",
                "--trust-model",
                "always",
                "-o",
                str(out),
                *args,
            ],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out.read_bytes()


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gpg]:
    assert GPG is not None, "gpg is part of the test environment"
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    tool = Gpg(home)
    for user in ("a <a@example.org>", "b <b@example.org>"):
        subprocess.run(
            [
                GPG,
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                user,
                "future-default",
                "default",
                "never",
            ],
            env=tool.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    try:
        yield tool
    finally:
        # gpg starts an agent per home directory; it must not outlive the tests.
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"], env=tool.env, capture_output=True, timeout=30
        )


def test_gpg_symmetric(gpg: Gpg) -> None:
    data = gpg.run("-c", str(gpg.message))
    assert looks_like_openpgp(data[:8192])
    result = same_in_every_split(data)
    assert result.encrypted is True
    assert result.scheme == "openpgp-symmetric"
    assert result.detail is not None and "cipher=AES-256" in result.detail
    assert "seipd" in result.detail


def test_gpg_symmetric_armoured(gpg: Gpg) -> None:
    data = gpg.run("--armor", "-c", str(gpg.message))
    assert data.startswith(b"-----BEGIN PGP MESSAGE-----")
    result = same_in_every_split(data, armoured=True)
    assert result == verdict(gpg.run("-c", str(gpg.message)))
    # CRLF line endings (armour pasted through a mail client) read the same.
    assert verdict(data.replace(b"\n", b"\r\n"), armoured=True) == result


def test_gpg_symmetric_without_mdc_is_sed(gpg: Gpg) -> None:
    data = gpg.run("--rfc2440", "-c", str(gpg.message))
    result = same_in_every_split(data)
    assert result.encrypted is True and result.scheme == "openpgp-symmetric"
    assert result.detail is not None and result.detail.endswith("sed")


def test_gpg_public_key(gpg: Gpg) -> None:
    data = gpg.run("-e", "-r", "a@example.org", str(gpg.message))
    assert looks_like_openpgp(data[:8192])
    result = same_in_every_split(data)
    assert result == Encryption(True, "openpgp-public-key", detail="recipients=1, seipd")


def test_gpg_two_recipients_and_passphrase(gpg: Gpg) -> None:
    data = gpg.run("-c", "-e", "-r", "a@example.org", "-r", "b@example.org", str(gpg.message))
    result = same_in_every_split(data)
    assert result.scheme == "openpgp-public-key"
    assert result.detail is not None
    assert "recipients=2" in result.detail and "passphrases=1" in result.detail
    armoured = gpg.run(
        "--armor", "-e", "-r", "a@example.org", "-r", "b@example.org", str(gpg.message)
    )
    assert same_in_every_split(armoured, armoured=True).detail == "recipients=2, seipd"


@pytest.mark.parametrize(
    ("args", "note"),
    [
        (("--sign",), "compressed message"),
        (("-z", "0", "--sign"), "signed message"),
        (("--detach-sign",), "signature"),
        (("--store",), "compressed message"),
        (("-z", "0", "--store"), "literal message"),
    ],
)
def test_gpg_not_encrypted(gpg: Gpg, args: tuple[str, ...], note: str) -> None:
    data = gpg.run("-u", "a@example.org", *args, str(gpg.message))
    assert looks_like_openpgp(data[:8192])
    assert same_in_every_split(data) == Encryption(False, detail=note)


@pytest.mark.parametrize(
    ("args", "note"),
    [
        (("--clearsign",), "clear-signed message"),
        (("--armor", "--detach-sign"), "detached signature"),
        (("--armor", "--sign"), None),
    ],
)
def test_gpg_armoured_not_encrypted(gpg: Gpg, args: tuple[str, ...], note: str | None) -> None:
    data = gpg.run("-u", "a@example.org", *args, str(gpg.message))
    result = same_in_every_split(data, armoured=True)
    assert result.encrypted is False
    if note is not None:
        assert result.detail == note


def test_gpg_keys(gpg: Gpg) -> None:
    public = gpg.run("--export", "a@example.org")
    assert looks_like_openpgp(public[:8192])
    assert verdict(public) == Encryption(False, detail="public key block")
    secret = gpg.run("--export-secret-keys", "a@example.org")
    assert looks_like_openpgp(secret[:8192])
    assert verdict(secret) == Encryption(False, detail="private key block")
    armoured = gpg.run("--armor", "--export", "a@example.org")
    assert verdict(armoured, armoured=True) == Encryption(False, detail="public key block")
    armoured = gpg.run("--armor", "--export-secret-keys", "a@example.org")
    assert verdict(armoured, armoured=True) == Encryption(False, detail="private key block")


def test_gpg_truncations(gpg: Gpg) -> None:
    data = gpg.run("-c", str(gpg.message))
    for cut in range(len(data)):
        result = verdict(data[:cut], complete=False)
        if cut < 2 + MIN_CUT_BODY:  # old-format header (8C 0D), then the body's first octets
            assert result.encrypted is None, cut
        else:
            assert result.encrypted is True and result.scheme == "openpgp-symmetric", cut
    armoured = gpg.run("--armor", "-e", "-r", "a@example.org", str(gpg.message))
    for cut in range(len(armoured)):
        assert verdict(armoured[:cut], armoured=True, complete=False).encrypted in (None, True)


# -- hand-built packets (RFC 9580) ------------------------------------------------------------


def new_packet(tag: int, body: bytes) -> bytes:
    assert len(body) < 192
    return bytes([0xC0 | tag, len(body)]) + body


SKESK_V4 = bytes([0x8C, 0x0D, 4, 9, 3, 8]) + bytes(8) + b"\x60"  # AES-256, iterated S2K SHA256
SEIPD_V1 = bytes([0xD2, 0x20, 1]) + os.urandom(31)


def test_rfc9580_v6_skesk_and_seipd_v2() -> None:
    # SKESK v6 (RFC 9580 5.3.2): count of the next five fields, cipher, AEAD, S2K length,
    # S2K (iterated and salted), OCB IV, encrypted key and tag.
    s2k = bytes([3, 8]) + bytes(8) + b"\xff"
    fields = bytes([9, 2, len(s2k)]) + s2k + bytes(15)
    skesk = new_packet(3, bytes([6, len(fields)]) + fields + bytes(48))
    seipd = new_packet(18, bytes([2, 9, 2, 6]) + bytes(32) + os.urandom(40))
    data = skesk + seipd
    assert looks_like_openpgp(data)
    result = same_in_every_split(data)
    assert result == Encryption(
        True, "openpgp-symmetric", detail="passphrases=1, cipher=AES-256, seipd"
    )


def test_pkesk_v6_and_aead_packet() -> None:
    # PKESK v6 (RFC 9580 5.1.2): fingerprint count 33 (v6 key), X25519 (25).
    pkesk = new_packet(1, bytes([6, 33, 6]) + bytes(32) + bytes([25]) + bytes(32 + 1 + 40))
    aead = new_packet(20, bytes([1, 9, 2, 6]) + bytes(16) + os.urandom(30))
    data = pkesk + aead
    assert looks_like_openpgp(data)
    assert same_in_every_split(data) == Encryption(
        True, "openpgp-public-key", detail="recipients=1, aead"
    )


def test_marker_packet_before_session_key() -> None:
    data = bytes([0xA8, 3]) + b"PGP" + SKESK_V4 + SEIPD_V1
    assert looks_like_openpgp(data)
    assert same_in_every_split(data).scheme == "openpgp-symmetric"


def test_partial_length_data_packet() -> None:
    # New-format SEIPD with a partial body length (2^9 octets, RFC 4880 4.2.2.4).
    data = SKESK_V4 + bytes([0xD2, 0xE9, 1]) + os.urandom(600)
    assert same_in_every_split(data[:80]).encrypted is True


def test_many_recipients_stop_at_the_cap() -> None:
    pkesk = bytes([0x84, 13, 3]) + bytes(8) + bytes([1, 0x00, 0x08]) + b"\x80"
    data = pkesk * (MAX_PACKETS + 10) + SEIPD_V1
    assert looks_like_openpgp(data[:8192])
    result = verdict(data)
    assert result.encrypted is True
    assert result.detail == f"recipients={MAX_PACKETS}+, encrypted data not reached"
    assert verdict(pkesk * 3 + SEIPD_V1).detail == "recipients=3, seipd"


def test_garbage_after_session_key_is_an_anomaly() -> None:
    analyser = OpenPgpAnalyser()
    analyser.feed(SKESK_V4 + b"\x0f" * 20)
    result = analyser.finish(b"", 0, True)
    assert result.encrypted is True  # the session key packet says so
    assert [a.kind for a in analyser.anomalies] == ["openpgp_bad_packet"]


def test_gap_before_the_verdict() -> None:
    analyser = OpenPgpAnalyser()
    analyser.feed(SKESK_V4[:5])
    analyser.gap(100)
    analyser.feed(SEIPD_V1)
    assert analyser.finish(b"", 0, False).encrypted is None


def test_armour_without_blank_line_and_with_headers() -> None:
    body = base64.b64encode(SKESK_V4 + SEIPD_V1)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    plain = (
        b"-----BEGIN PGP MESSAGE-----\n"
        + b"\n".join(lines)
        + b"\n=abcd\n-----END PGP MESSAGE-----\n"
    )
    headed = plain.replace(b"-----\n", b"-----\nVersion: x 1\nComment: y: z\n\n", 1)
    assert same_in_every_split(plain, armoured=True).scheme == "openpgp-symmetric"
    assert same_in_every_split(headed, armoured=True).scheme == "openpgp-symmetric"
    # A mail body's leading text before the BEGIN line is skipped.
    assert verdict(b"Hello,\r\nsee below.\r\n\r\n" + headed, armoured=True).encrypted is True


def test_armour_damage() -> None:
    analyser = OpenPgpAnalyser(armoured=True)
    analyser.feed(b"-----BEGIN PGP MESSAGE-----\n\n" + b"A" * 5000)
    assert analyser.finish(b"", 0, True).encrypted is None
    assert [a.kind for a in analyser.anomalies] == ["openpgp_armour_damaged"]
    assert verdict(b"no armour here\n" * 2000, armoured=True).encrypted is None


# -- negatives and hostile input --------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x8c",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"GIF89a\x01\x00",
        b"%PDF-1.7\n",
        b"PK\x03\x04\x14\x00",
        b"\xef\xbb\xbfhello",
        b"Dear colleague, the results are attached.\n",
        "Grüße aus Köln".encode("latin-1"),
        bytes([0x8C, 0x0D, 4, 99, 3, 8]) + bytes(10),  # SKESK with cipher 99
        bytes([0x85, 0x01, 0x8C, 7]) + bytes(12),  # PKESK version 7
        bytes([0xA8, 3]) + b"PGQ",  # marker that does not say PGP
        SKESK_V4 + b"\x0f" * 8,  # second header has bit 7 clear
        SKESK_V4 + new_packet(11, b"b\x00" + bytes(4) + b"x"),  # literal after a session key
        SEIPD_V1,  # encrypted data with no session key first
    ],
)
def test_looks_like_openpgp_rejects(head: bytes) -> None:
    assert not looks_like_openpgp(head)


def test_looks_like_openpgp_rarely_takes_random_bytes() -> None:
    rng = random.Random(4880)
    taken = sum(looks_like_openpgp(rng.randbytes(8192)) for _ in range(3000))
    assert taken <= 3


def run_hostile(feed: Callable[[bytes], None], data: bytes, cuts: list[int]) -> None:
    last = 0
    for cut in sorted(cuts):
        feed(data[last:cut])
        last = cut
    feed(data[last:])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int], armoured: bool) -> None:
    looks_like_openpgp(data)
    for prefix in (b"", SKESK_V4, b"-----BEGIN PGP MESSAGE-----\n\n"):
        analyser = OpenPgpAnalyser(armoured=armoured)
        run_hostile(analyser.feed, prefix + data, [c + len(prefix) for c in cuts])
        result = analyser.finish(b"", 0, bool(cuts))
        assert result.encrypted in (True, False, None)
