"""sensor/classify/secret.py: the key file's creation and checks, and the keyed hash."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensor.classify.secret import (
    HASH_SIZE,
    SECRET_KEY_SIZE,
    SecretError,
    key_id,
    keyed_hash,
    keyed_hasher,
    load_secret,
)


def test_created_on_first_use_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "lib" / "secret.key"
    old = os.umask(0)  # the file is 0600 whatever the umask
    try:
        key = load_secret(path)
    finally:
        os.umask(old)
    assert len(key) == SECRET_KEY_SIZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_secret(path) == key
    assert load_secret(path, create=False) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left
    assert load_secret(tmp_path / "other.key") != key


def test_missing_without_create_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="no secret key file"):
        load_secret(tmp_path / "secret.key", create=False)
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620])
def test_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret.key"
    load_secret(path)
    path.chmod(mode)
    with pytest.raises(SecretError, match=f"mode {mode:04o}"):
        load_secret(path)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(SecretError, match=f"holds {size} bytes"):
        load_secret(path)


def test_symlink_and_directory_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_secret(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(SecretError, match="cannot open"):
        load_secret(link)
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(SecretError):
        load_secret(tmp_path / "dir.key")


def _racer(path: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(load_secret(path))


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bytes] = context.Queue()
    racers = [context.Process(target=_racer, args=(str(path), queue)) for _ in range(12)]
    for racer in racers:
        racer.start()
    keys = {queue.get(timeout=30) for _ in racers}
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0
    assert keys == {path.read_bytes()}
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_keyed_hash_separates_keys_domains_and_values() -> None:
    key, other = b"a" * 32, b"b" * 32
    digest = keyed_hash(key, b"bsn", "123456782")
    assert len(digest) == HASH_SIZE
    assert digest == keyed_hash(key, b"bsn", "123456782")
    assert digest != keyed_hash(other, b"bsn", "123456782")
    assert digest != keyed_hash(key, b"canary", "123456782")
    assert digest != keyed_hash(key, b"bsn", "123456783")
    # the domain is length-prefixed: moving a byte between domain and value changes the hash
    assert keyed_hash(key, b"ab", "c") != keyed_hash(key, b"a", "bc")
    assert keyed_hasher(key, b"bsn")("123456782") == digest
    with pytest.raises(ValueError):
        keyed_hash(key, b"", "x")
    with pytest.raises(ValueError):
        keyed_hash(key, b"x" * 256, "x")


def test_key_id_names_the_key_without_revealing_it() -> None:
    key = bytes(range(32))
    ident = key_id(key)
    assert len(ident) == 16 and int(ident, 16) >= 0
    assert ident == key_id(key) != key_id(bytes(32))
    assert key.hex()[:16] not in ident


@given(st.text(), st.binary(min_size=1, max_size=64))
def test_hasher_equals_hash_for_any_text(value: str, domain: bytes) -> None:
    key = b"k" * 32
    assert keyed_hasher(key, domain)(value) == keyed_hash(key, domain, value)
