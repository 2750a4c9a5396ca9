"""sensor/classify/canary.py: minting, the store (hashes only), and recognising tokens."""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum.nl import bsn as stdnum_bsn

from sensor.classify.canary import (
    DEFAULT_DOMAIN,
    EXAMPLE_BSNS,
    KINDS,
    NL_BANK_CODES,
    CanaryError,
    CanaryStore,
    check_domain,
    mint,
    normalise,
    register,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CREATED = 1_767_600_000.0  # 2026-01-05T08:00:00Z


@pytest.mark.parametrize("seed", range(5))
def test_every_kind_mints_valid_values(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        token = mint("string", rng=rng)
        assert re.fullmatch(r"slc[a-z2-7]{25}", token)
        number = mint("bsn", rng=rng)
        assert stdnum_bsn.is_valid(number) and len(number) == 9
        assert number not in EXAMPLE_BSNS and not number.startswith("99999")
        account = mint("iban", rng=rng)
        assert stdnum_iban.is_valid(account) and account.startswith("NL")
        assert len(account) == 18 and account[4:8] in NL_BANK_CODES
        assert account != "NL91ABNA0417164300"
        assert re.fullmatch(r"[a-z2-7]{20}@canary\.invalid", mint("email", rng=rng))
        assert re.fullmatch(
            r"https://zorg\.example/[a-z2-7]{6}/[a-z2-7]{25}", mint("url", "Zorg.Example", rng)
        )
        assert re.fullmatch(r"[a-z2-7]{20}\.canary\.invalid", mint("dns-name", rng=rng))


def test_minting_uses_the_system_random_by_default() -> None:
    tokens = {mint("string") for _ in range(100)}
    assert len(tokens) == 100
    assert len({mint("bsn") for _ in range(20)}) > 15


def test_bad_kind_and_domain() -> None:
    with pytest.raises(CanaryError, match="unknown canary kind"):
        mint("pan")
    for domain in ["", "no spaces.nl", "-bad.nl", "a..b", "localhost", "x" * 300 + ".nl"]:
        with pytest.raises(CanaryError, match="not a host name"):
            mint("email", domain)
    assert check_domain("Canary.Example.NL.") == "canary.example.nl"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("bsn", "1234.56.782", "123456782"),
        ("bsn", "12345672", "012345672"),
        ("bsn", "12345678901", None),
        ("iban", "nl91 abna 0417 1643 00", "NL91ABNA0417164300"),
        ("iban", "12", None),
        ("email", "<Abc@Canary.Invalid>", "abc@canary.invalid"),
        ("email", "nope", None),
        ("dns-name", "ABC.Canary.Invalid.", "abc.canary.invalid"),
        ("dns-name", "localhost", None),
        ("url", "HTTP://Zorg.Example:8443/Aa/Bb/?q=1#f", "zorg.example/Aa/Bb"),
        ("url", "zorg.example/aa", "zorg.example/aa"),
        ("url", "http://[::1", None),
        ("string", "  SLCABC ", "slcabc"),
        ("string", "", None),
        ("nope", "x", None),
    ],
)
def test_normalise(kind: str, value: str, expected: str | None) -> None:
    assert normalise(kind, value) == expected


@pytest.fixture
def tokens() -> dict[str, str]:
    rng = random.Random(7)
    return {kind: mint(kind, "zorg.example", rng) for kind in KINDS}


@pytest.fixture
def store_path(tmp_path: Path, tokens: dict[str, str]) -> Path:
    path = tmp_path / "canaries.json"
    store = CanaryStore.load(path, KEY)
    assert len(store) == 0
    for kind, token in tokens.items():
        store.add(kind, token, f"honey record {kind}", CREATED)
    store.save()
    return path


def _variants(kind: str, token: str) -> list[str]:
    if kind == "bsn":
        return [
            token,
            f"{token[:4]}.{token[4:6]}.{token[6:]}",
            f" {token[:3]} {token[3:6]} {token[6:]}",
        ]
    if kind == "iban":
        spaced = " ".join(token[i : i + 4] for i in range(0, len(token), 4))
        return [token, spaced, spaced.lower()]
    if kind == "email":
        return [token, token.upper(), f"<{token}>"]
    if kind == "url":
        host, path = token.removeprefix("https://").split("/", 1)
        return [
            token,
            f"http://{host.upper()}:80/{path}/",
            f"//{host}/{path}?utm=1",
            f"{host}/{path}",
        ]
    if kind == "dns-name":
        return [token, token.upper() + ".", f"x1.x2.{token}"]
    return [token, token.upper(), f"  {token}\n"]


def test_store_holds_no_clear_token_and_is_private(
    store_path: Path, tokens: dict[str, str]
) -> None:
    data = store_path.read_bytes()
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    for kind, token in tokens.items():
        for value in {token, normalise(kind, token) or "", token.upper(), token.split("@")[0]}:
            assert value.encode() not in data, (kind, value)
        if kind in ("url", "dns-name"):
            random_part = token.removeprefix("https://zorg.example/").split(".")[0]
            assert random_part.encode() not in data
    document = json.loads(data)
    assert {entry["kind"] for entry in document["canaries"]} == set(KINDS)
    assert {entry["created"] for entry in document["canaries"]} == {"2026-01-05T08:00:00Z"}


def test_check_finds_every_kind_after_normalisation(
    store_path: Path, tokens: dict[str, str]
) -> None:
    store = CanaryStore.load(store_path, KEY)
    assert len(store) == len(KINDS)
    for kind, token in tokens.items():
        for value in _variants(kind, token):
            for hint in (kind, None):
                hit = store.check(hint, value)
                assert hit is not None, (kind, hint, value)
                assert (hit.kind, hit.label) == (kind, f"honey record {kind}")


def test_dns_canary_seen_as_a_url_host(store_path: Path, tokens: dict[str, str]) -> None:
    store = CanaryStore.load(store_path, KEY)
    hit = store.check("url", f"https://{tokens['dns-name']}/favicon.ico")
    assert hit is not None and hit.kind == "dns-name"


def test_check_ignores_other_values(store_path: Path, tokens: dict[str, str]) -> None:
    store = CanaryStore.load(store_path, KEY)
    rng = random.Random(8)
    for kind in KINDS:
        for _ in range(50):
            other = mint(kind, "zorg.example", rng)
            assert store.check(kind, other) is None
            assert store.check(None, other) is None
    url = tokens["url"]
    host = url.removeprefix("https://").split("/")[0]
    assert store.check("url", f"https://{host}/") is None  # the host alone is no token
    assert store.check("url", url.rsplit("/", 1)[0]) is None
    assert store.check("dns-name", "zorg.example") is None
    assert store.check("dns-name", tokens["dns-name"].split(".", 1)[1]) is None
    assert store.check("string", tokens["string"][:-1]) is None
    assert store.check("email", tokens["email"].replace("@", "@x.")) is None
    assert store.check("bsn", "111222333") is None


def test_wrong_key_finds_nothing(store_path: Path, tokens: dict[str, str]) -> None:
    with pytest.raises(CanaryError, match="another secret key"):
        CanaryStore.load(store_path, OTHER_KEY)
    # A store of the same tokens under the other key: not one hash in common.
    other = CanaryStore(store_path.with_name("other.json"), OTHER_KEY)
    for kind, token in tokens.items():
        other.add(kind, token, "x", CREATED)
    mine = CanaryStore.load(store_path, KEY)
    assert not {c.digest for c in mine} & {c.digest for c in other}
    assert all(other.check(kind, t) is not None for kind, t in tokens.items())


def test_empty_and_damaged_stores(tmp_path: Path, store_path: Path) -> None:
    empty = CanaryStore.load(tmp_path / "absent.json", KEY)
    assert len(empty) == 0 and empty.check(None, "anything") is None
    data = store_path.read_text()
    for damaged in [
        data[: len(data) // 2],
        "[]",
        data.replace('"sluice-canaries"', '"other"'),
        data.replace('"kind": "bsn"', '"kind": "pan"'),
        data.replace('"label": "honey record bsn"', '"label": 5'),
        "\xff\xfe",
    ]:
        broken = tmp_path / "broken.json"
        broken.write_text(damaged, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(CanaryError, match="not a valid canary store"):
            CanaryStore.load(broken, KEY)


def test_add_rejects_bad_labels_and_tokens(tmp_path: Path) -> None:
    store = CanaryStore(tmp_path / "c.json", KEY)
    for label in ["", "   ", "a\nb", "x" * 201]:
        with pytest.raises(CanaryError, match="label"):
            store.add("string", "slcabc", label, CREATED)
    with pytest.raises(CanaryError, match="not a bsn token"):
        store.add("bsn", "12", "label", CREATED)
    with pytest.raises(CanaryError, match="unknown canary kind"):
        store.add("pan", "4111", "label", CREATED)


def _register(path: str, index: int) -> None:
    register(path, KEY, "string", mint("string"), f"racer {index}", CREATED + index)


def test_concurrent_registrations_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "canaries.json"
    context = multiprocessing.get_context("fork")
    racers = [context.Process(target=_register, args=(str(path), i)) for i in range(10)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0
    labels = {c.label for c in CanaryStore.load(path, KEY)}
    assert labels == {f"racer {i}" for i in range(10)}


@given(st.sampled_from([*KINDS, None, "unknown"]), st.text(max_size=300))
def test_check_never_raises(hint: str | None, value: str) -> None:
    store = CanaryStore(Path("/nonexistent"), KEY)
    store.add("string", "slcaaaaaaaaaaaaaaaaaaaaaaaaa", "x", CREATED)
    store.add("dns-name", f"abc.{DEFAULT_DOMAIN}", "y", CREATED)
    store.check(hint, value)
