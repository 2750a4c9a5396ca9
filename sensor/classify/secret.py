"""The sensor's secret key and the keyed hash every classifier uses instead of clear values.

Stage: classification (its edge: this module reads and creates one file). In: the path of the
secret key file. Out: the 32-byte key, and `keyed_hash()` digests of normalised identifiers
(BSNs counted per object, EDM records, canary tokens) that are useless without the key.

Why a key and not a salt: the BSN space holds only ~9.1e7 elfproef-valid values, a birth date
~36,000; a hash whose salt sits next to it is brute-forced in seconds. The key lives in its
own file, mode 0600, never next to the tables it protects (research note section 3.2).

The file is created on first use: 32 bytes from `secrets`, written to a private temporary
file, fsynced, then hard-linked to its name. `link()` fails when the name exists, so when two
processes race to create it exactly one wins, and nobody ever sees a half-written key (a plain
O_CREAT|O_EXCL on the final name would let the loser read it before the winner has written).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

SECRET_KEY_SIZE = 32  # bytes; BLAKE2b takes keys up to 64
DEFAULT_SECRET_PATH = "/var/lib/sluice/secret.key"
HASH_SIZE = 16  # bytes of every keyed hash: 128 bits, no collision among 1e9 values
KEY_ID_SIZE = 8  # bytes of the key id written in headers (which key built this table)
MAX_DOMAIN = 255  # a domain separator's length is one byte in the hashed message

# Domain separators: one per use, so that a digest from one table never matches in another.
DOMAIN_BSN = b"bsn"
DOMAIN_CANARY = b"canary"
DOMAIN_KEY_ID = b"key-id"
DOMAIN_EDM_PRIMARY = b"edm-primary"
DOMAIN_EDM_FIELD = b"edm-field:"  # + the field name: "edm-field:postcode"

SECRET_HELP = (
    f"the sensor's secret key file (default {DEFAULT_SECRET_PATH}; created with mode 0600 "
    "on first use; keep it off the host that holds the indexes' backups)"
)


class SecretError(Exception):
    """The key file is missing, unsafe or broken: one clear line for the operator."""


def load_secret(path: str | os.PathLike[str], create: bool = True) -> bytes:
    """The key in `path`, created first when it does not exist and `create` is true.

    Refused: a file readable or writable by group or others (anyone else who can read it can
    reverse every table), a file of the wrong size, anything but a regular file.
    """
    where = Path(path)
    try:
        return _read(where)
    except FileNotFoundError:
        if not create:
            raise SecretError(f"{where}: no secret key file") from None
    return _create(where)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretError(f"{path}: cannot open the secret key file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{path}: the secret key is not a regular file")
        if info.st_mode & 0o077:
            raise SecretError(
                f"{path}: the secret key file has mode {stat.S_IMODE(info.st_mode):04o}, "
                f"open to group or others; it must be 0600 (chmod 600 {path}, and replace "
                "the key and rebuild the indexes if others may have read it)"
            )
        if info.st_size != SECRET_KEY_SIZE:
            raise SecretError(
                f"{path}: the secret key file holds {info.st_size} bytes, not {SECRET_KEY_SIZE}"
            )
        key = os.read(fd, SECRET_KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(key) != SECRET_KEY_SIZE:
        raise SecretError(f"{path}: the secret key file changed while being read")
    return key


def _create(path: Path) -> bytes:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(SECRET_KEY_SIZE)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temporary, path)
            except FileExistsError:
                return _read(path)  # a racing creator won: use its key
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(path.parent)
    except OSError as exc:
        raise SecretError(f"{path}: cannot create the secret key file: {exc.strerror}") from None
    return key


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prefix(domain: bytes) -> bytes:
    if not 0 < len(domain) <= MAX_DOMAIN:
        raise ValueError(f"a hash domain is 1..{MAX_DOMAIN} bytes")
    # Length-prefixed so that (domain, value) pairs encode uniquely: ("ab", "c") != ("a", "bc").
    return bytes((len(domain),)) + domain


def keyed_hash(key: bytes, domain: bytes, value: str) -> bytes:
    """BLAKE2b keyed with `key` (a MAC, 0.6 us a value against 1.6 us for HMAC-SHA256) over
    the domain separator and the UTF-8 value, truncated to HASH_SIZE bytes."""
    message = _prefix(domain) + value.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(message, key=key, digest_size=HASH_SIZE).digest()


def keyed_hasher(key: bytes, domain: bytes) -> Callable[[str], bytes]:
    """`keyed_hash` with `key` and `domain` fixed: the keyed state is set up once and copied
    for every value (a quarter faster, for loading a million records)."""
    state = hashlib.blake2b(_prefix(domain), key=key, digest_size=HASH_SIZE)

    def digest(value: str) -> bytes:
        copy = state.copy()
        copy.update(value.encode("utf-8", "surrogatepass"))
        return copy.digest()

    return digest


def key_id(key: bytes) -> str:
    """Which key built a table, as hex: a keyed hash of nothing, so it reveals nothing."""
    return keyed_hash(key, DOMAIN_KEY_ID, "")[:KEY_ID_SIZE].hex()
