"""Canary tokens: values planted in the organisation's data that must never leave it.

Stage: classification. In: candidate values seen in an object's text or in the flow's
metadata (URLs, Host/SNI, SMTP envelopes, DNS names), with the kind the caller thinks they
are. Out: the `Canary` (kind, label, created) when a value is a registered token; any hit is
a critical `canary` finding (issue 13 item 5, research note section 4).

`sluice canary new` mints a token, prints it once and stores only its keyed hash
(`keyed_hash(key, b"canary:<kind>", normalised token)`) with its kind, label and creation
time: the store is useless without the sensor's secret key, and the token is never in clear
on the sensor. A lookup normalises the value the way the kind is written on the wire and
hashes it: one dict lookup, O(1).

Kinds and what `mint()` makes (random from `secrets` unless a test passes its own `rng`):
- string: "slc" + 25 base32 characters (125 random bits): recognisable by an operator who
  knows the prefix, not guessable.
- bsn: nine random digits passing the elfproef, never a documented example (111222333,
  123456782) nor in the RvIG test range 99999xxxx (the identifier detector ignores those).
  CAUTION: about 9% of nine-digit numbers pass the elfproef and tens of millions are issued,
  so a random canary BSN may be a real person's. That person's number leaving the network
  would raise a canary alert; the label must say it is a canary, and the token should be
  planted with other canary values in the same honey record (research note section 4.2).
- iban: a mod-97-valid NL IBAN with the code of a real Dutch bank and a random ten-digit
  account (it may exist; the same caution as for BSNs), never the published NL91ABNA0417164300.
- email: 20 random base32 characters @ the operator's domain (default canary.invalid).
- url: https://<domain>/<6 random>/<25 random>.
- dns-name: <20 random>.<domain>; a name with more labels in front (a beacon's data) matches.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import random
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stdnum import iban as stdnum_iban
from stdnum.nl import bsn as stdnum_bsn

from sensor.classify.edm import write_private_atomic
from sensor.classify.secret import DOMAIN_CANARY, key_id, keyed_hash

KINDS = ("string", "bsn", "iban", "email", "url", "dns-name")
DEFAULT_STORE_PATH = "/var/lib/sluice/canaries.json"
DEFAULT_DOMAIN = "canary.invalid"  # RFC 2606: never resolves, never delivered
STORE_FORMAT = "sluice-canaries"
STORE_VERSION = 1
TOKEN_PREFIX = "slc"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 alphabet, lower case
STRING_RANDOM = 25  # base32 characters: 125 bits
LOCAL_RANDOM = 20  # base32 characters of an e-mail local part or a DNS label: 100 bits
PATH_RANDOM = (6, 25)  # base32 characters of a URL's two path segments
MAX_LABEL = 200  # characters of an operator's label
MAX_STORE_BYTES = 16 * 1024 * 1024  # a canary store larger than this is not one
MAX_VALUE = 2048  # characters of a value worth normalising (longer is no token)
MAX_DNS_PREFIX_LABELS = 8  # labels in front of a dns-name canary that still match
EXAMPLE_BSNS = frozenset({"111222333", "123456782", "999999990"})
TEST_BSN_PREFIX = "99999"  # RvIG's test BSNs (Haal-Centraal fixtures: 999992351, ...)
EXAMPLE_IBANS = frozenset({"NL91ABNA0417164300", "NL02ABNA0123456789", "NL20INGB0001234567"})
NL_BANK_CODES = ("ABNA", "INGB", "RABO", "SNSB", "ASNB", "TRIO", "KNAB", "BUNQ", "RBRB")
# The grammars of minted tokens, for the scanner (ASCII, matched case-insensitively with an
# alphanumeric boundary, at most MAX_MATCH_CHARS wide): a candidate is then hashed and looked
# up. The BSN and IBAN kinds need none: the identifier detectors validate them first. A host
# here is up to five labels of up to 30 characters (an operator's canary domain).
_LABEL = "[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?"
_DOMAIN = f"{_LABEL}(?:\\.{_LABEL}){{1,4}}"
TOKEN_PATTERNS = {
    "string": f"{TOKEN_PREFIX}[a-z2-7]{{{STRING_RANDOM}}}",
    "email": f"[a-z2-7]{{{LOCAL_RANDOM}}}@{_DOMAIN}",
    "dns-name": f"[a-z2-7]{{{LOCAL_RANDOM}}}\\.{_DOMAIN}",
    "url": f"{_DOMAIN}(?::[0-9]{{1,5}})?/[a-z2-7]{{{PATH_RANDOM[0]}}}/[a-z2-7]{{{PATH_RANDOM[1]}}}",
}
_HOSTNAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_NOT_DIGIT = re.compile(r"[\s.\-]+")
_SPACES = re.compile(r"[\s\-]+")


class CanaryError(Exception):
    """A bad store, argument or key: one clear line, never a token."""


@dataclass(frozen=True, slots=True)
class Canary:
    kind: str
    label: str
    created: str  # ISO 8601, UTC
    digest: str  # hex of the keyed hash (not the token)


# --- minting ------------------------------------------------------------------------------


def _random(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def check_domain(domain: str) -> str:
    """A host name to mint e-mail, URL and DNS canaries under, lower case."""
    name = domain.strip().rstrip(".").casefold()
    if not _HOSTNAME.fullmatch(name):
        raise CanaryError(f"not a host name: {domain!r}")
    return name


def _mint_bsn(rng: random.Random) -> str:
    while True:
        digits = str(rng.randrange(10_000_000, 100_000_000))  # no leading zero
        check = sum((9 - i) * int(d) for i, d in enumerate(digits)) % 11
        value = digits + str(check)
        if (
            check < 10
            and value not in EXAMPLE_BSNS
            and not value.startswith(TEST_BSN_PREFIX)
            and len(set(value)) > 2  # no 111111110-like pattern a human would type
            and stdnum_bsn.is_valid(value)
        ):
            return value


def _mint_iban(rng: random.Random) -> str:
    while True:
        bban = rng.choice(NL_BANK_CODES) + "".join(str(rng.randrange(10)) for _ in range(10))
        numeric = "".join(str(int(c, 36)) for c in bban + "NL00")
        value = f"NL{98 - int(numeric) % 97:02d}{bban}"
        if value not in EXAMPLE_IBANS and stdnum_iban.is_valid(value):
            return value


def mint(kind: str, domain: str = DEFAULT_DOMAIN, rng: random.Random | None = None) -> str:
    """A new token of `kind` (see the module docstring)."""
    chance = rng or secrets.SystemRandom()
    if kind == "string":
        return TOKEN_PREFIX + _random(chance, BASE32, STRING_RANDOM)
    if kind == "bsn":
        return _mint_bsn(chance)
    if kind == "iban":
        return _mint_iban(chance)
    host = check_domain(domain)
    if kind == "email":
        return f"{_random(chance, BASE32, LOCAL_RANDOM)}@{host}"
    if kind == "url":
        first, second = (_random(chance, BASE32, n) for n in PATH_RANDOM)
        return f"https://{host}/{first}/{second}"
    if kind == "dns-name":
        return f"{_random(chance, BASE32, LOCAL_RANDOM)}.{host}"
    raise CanaryError(f"unknown canary kind {kind!r} (kinds: {', '.join(KINDS)})")


# --- normalisation: how each kind is written on the wire ----------------------------------


def _host(name: str) -> str:
    return name.strip().rstrip(".").casefold()


def normalise(kind: str, value: str) -> str | None:
    """The form that is hashed: digits for a BSN, upper case without spaces for an IBAN,
    case-folded e-mail addresses and DNS names, a URL's case-folded host (no port) plus its
    path without a trailing slash (scheme, query and fragment ignored). None when `value`
    cannot be of `kind`."""
    if len(value) > MAX_VALUE:
        return None
    text = value.strip()
    if kind == "string":
        return text.casefold() or None
    if kind == "bsn":
        digits = _NOT_DIGIT.sub("", text)
        if not 8 <= len(digits) <= 9 or not (digits.isascii() and digits.isdigit()):
            return None
        return digits.zfill(9)
    if kind == "iban":
        compact = _SPACES.sub("", text).upper()
        return compact if 15 <= len(compact) <= 34 and compact[:2].isalpha() else None
    if kind == "email":
        if text.startswith("<") and text.endswith(">"):  # an SMTP envelope's path
            text = text[1:-1]
        local, at, domain = text.rpartition("@")
        return f"{local.casefold()}@{_host(domain)}" if at and local and domain else None
    if kind == "dns-name":
        name = _host(text)
        return name if "." in name else None
    if kind == "url":
        try:
            parts = urlsplit(text if "//" in text else "//" + text)
            host = _host(parts.hostname or "")
        except ValueError:
            return None
        return host + parts.path.rstrip("/") if host else None
    return None


# --- the store ----------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CanaryStore:
    """The registered canaries of one sensor: load once, `check()` per candidate."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._by_digest: dict[str, Canary] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: bytes) -> CanaryStore:
        """The store in `path` (empty when the file does not exist yet). A store written
        with another key is an error: nothing in it could ever match."""
        store = cls(Path(path), key)
        try:
            with store.path.open("rb") as stream:
                data = stream.read(MAX_STORE_BYTES + 1)
        except FileNotFoundError:
            return store
        except OSError as exc:
            raise CanaryError(f"{path}: cannot read the canary store: {exc.strerror}") from None
        if len(data) > MAX_STORE_BYTES:
            raise CanaryError(f"{path}: larger than {MAX_STORE_BYTES} bytes: not a canary store")
        try:
            document = json.loads(data)
            entries = _entries(document)
        except (ValueError, TypeError, KeyError):  # also JSON and UTF-8 errors
            raise CanaryError(f"{path}: not a valid canary store (damaged?)") from None
        if document["key_id"] != key_id(key):
            raise CanaryError(
                f"{path}: the canary store was written with another secret key (key id "
                f"{document['key_id']}); its canaries cannot be recognised with this one"
            )
        for canary in entries:
            store._by_digest[canary.digest] = canary
        return store

    def __len__(self) -> int:
        return len(self._by_digest)

    def __iter__(self) -> Iterator[Canary]:
        return iter(sorted(self._by_digest.values(), key=lambda c: (c.created, c.label)))

    def _digest(self, kind: str, normal: str) -> str:
        return keyed_hash(self._key, DOMAIN_CANARY + b":" + kind.encode(), normal).hex()

    def add(self, kind: str, token: str, label: str, created: float) -> Canary:
        """Register `token` (only its keyed hash is kept). Call `save()` after."""
        if kind not in KINDS:
            raise CanaryError(f"unknown canary kind {kind!r} (kinds: {', '.join(KINDS)})")
        text = label.strip()
        if not text or len(text) > MAX_LABEL or not text.isprintable():
            raise CanaryError(f"a label is 1 to {MAX_LABEL} printable characters")
        normal = normalise(kind, token)
        if normal is None:
            raise CanaryError(f"not a {kind} token")
        canary = Canary(kind, text, _iso(created), self._digest(kind, normal))
        self._by_digest[canary.digest] = canary
        return canary

    def save(self) -> None:
        """Write the store atomically, mode 0600."""
        document = {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "key_id": key_id(self._key),
            "canaries": [
                {"hash": c.digest, "kind": c.kind, "label": c.label, "created": c.created}
                for c in self
            ],
        }
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        write_private_atomic(self.path, [text.encode()])

    def check(self, kind_hint: str | None, value: str) -> Canary | None:
        """The canary `value` is, or None. With a hint, the value is read as that kind (a
        URL also as the host name of a dns-name canary; a DNS name also without up to
        MAX_DNS_PREFIX_LABELS leading labels); without one, as every kind."""
        if not self._by_digest:
            return None
        kinds = KINDS if kind_hint is None else (kind_hint,)
        for kind in kinds:
            normal = normalise(kind, value)
            if normal is None:
                continue
            hit = self._by_digest.get(self._digest(kind, normal))
            if hit is not None:
                return hit
            if kind == "url" and kind_hint is not None:
                host = normal.split("/", 1)[0]
                if (hit := self._dns_name(host)) is not None:
                    return hit
            if kind == "dns-name" and (hit := self._dns_name(normal, skip_first=True)):
                return hit
        return None

    def _dns_name(self, name: str, skip_first: bool = False) -> Canary | None:
        labels = name.split(".")
        first = 1 if skip_first else 0
        # A registered name is a random label under the operator's domain: at least 2 labels.
        for start in range(first, min(len(labels) - 1, MAX_DNS_PREFIX_LABELS + 1)):
            hit = self._by_digest.get(self._digest("dns-name", ".".join(labels[start:])))
            if hit is not None:
                return hit
        return None


def _entries(document: Any) -> list[Canary]:
    if (
        not isinstance(document, dict)
        or document.get("format") != STORE_FORMAT
        or document.get("version") != STORE_VERSION
        or not isinstance(document.get("key_id"), str)
        or not isinstance(document.get("canaries"), list)
    ):
        raise ValueError("store")
    entries = []
    for entry in document["canaries"]:
        values = [entry["hash"], entry["kind"], entry["label"], entry["created"]]
        if not all(isinstance(v, str) for v in values) or entry["kind"] not in KINDS:
            raise ValueError("entry")
        entries.append(Canary(entry["kind"], entry["label"], entry["created"], entry["hash"]))
    return entries


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` + ".lock" (0600): two `sluice canary new` at once
    must not lose one canary between one's load and the other's save."""
    lock = os.open(f"{os.fspath(path)}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # closing releases the lock


def register(
    path: str | os.PathLike[str], key: bytes, kind: str, token: str, label: str, created: float
) -> Canary:
    """Add `token` to the store in `path` under its lock, and save it."""
    with locked(path):
        store = CanaryStore.load(path, key)
        canary = store.add(kind, token, label, created)
        store.save()
    return canary
