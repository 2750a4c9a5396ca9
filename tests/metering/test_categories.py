from __future__ import annotations

from pathlib import Path

import pytest

from sensor.metering.categories import (
    DEFAULT_PATH,
    CategoryError,
    load_categories,
    parse_categories,
)
from tests.metering.conftest import ip

GOOD = """
id = "test-cats"
version = 2
[[category]]
id = "file_hosting"
domains = ["wetransfer.com"]
cidrs = ["192.0.2.0/24", "2001:db8:1::/48"]
[[category]]
id = "special"
min_bytes = 10
cidrs = ["192.0.2.128/25"]
"""


def test_shipped_file_loads() -> None:
    db = load_categories(DEFAULT_PATH)
    assert db.id == "sluice-destination-categories" and db.version >= 1
    assert db.categories() == {"file_hosting", "paste_site", "personal_mail"}
    assert len(db) > 50


def test_matching_by_name_and_address() -> None:
    db = parse_categories(GOOD)
    nowhere = ip("198.51.100.1")
    assert db.match(nowhere, "wetransfer.com").id == "file_hosting"  # type: ignore[union-attr]
    assert db.match(nowhere, "EU.WeTransfer.com.").id == "file_hosting"  # type: ignore[union-attr]
    assert db.match(nowhere, "notwetransfer.com") is None
    assert db.match(nowhere, "wetransfer.com.evil.example") is None
    assert db.match(ip("192.0.2.1"), None).id == "file_hosting"  # type: ignore[union-attr]
    assert db.match(ip("192.0.2.200"), None).id == "special"  # type: ignore[union-attr]
    assert db.match(ip("2001:db8:1::9"), "x.example").id == "file_hosting"  # type: ignore[union-attr]
    assert db.match(ip("2001:db8:2::9"), None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id = 'x'\nversion = 1\n[[category\n", "not valid TOML"),
        ("version = 1\n[[category]]\nid='a'\ndomains=['a.com']\n", "id must be a string"),
        ("id = 'x'\n[[category]]\nid='a'\ndomains=['a.com']\n", "version must be an integer"),
        ("id = 'x'\nversion = 0\n[[category]]\nid='a'\ndomains=['a.com']\n", "version must"),
        ("id = 'x'\nversion = 1\n", "at least one [[category]]"),
        ("id = 'x'\nversion = 1\nextra = 2\n", "unknown top-level key 'extra'"),
        ("id='x'\nversion=1\n[[category]]\nid='File Hosting'\ndomains=['a.com']\n", "snake_case"),
        ("id='x'\nversion=1\n[[category]]\nid='a'\n", "needs at least one of domains, cidrs"),
        ("id='x'\nversion=1\n[[category]]\nid='a'\ndomain=['a.com']\n", "unknown key 'domain'"),
        (
            "id='x'\nversion=1\n[[category]]\nid='a'\ndomains=['https://a.com/']\n",
            "category 'a'.domains: 'https://a.com/' is not a lower-case domain name",
        ),
        ("id='x'\nversion=1\n[[category]]\nid='a'\ndomains=['*.a.com']\n", "wildcard"),
        ("id='x'\nversion=1\n[[category]]\nid='a'\ndomains=['A.com']\n", "lower-case"),
        ("id='x'\nversion=1\n[[category]]\nid='a'\ndomains='a.com'\n", "list of strings"),
        (
            "id='x'\nversion=1\n[[category]]\nid='a'\ncidrs=['10.0.0.0/33']\n",
            "category 'a'.cidrs: '10.0.0.0/33' is not a network",
        ),
        ("id='x'\nversion=1\n[[category]]\nid='a'\ncidrs=['10.0.0.1/8']\n", "host bits set"),
        (
            "id='x'\nversion=1\n[[category]]\nid='a'\ndomains=['a.com']\n"
            "[[category]]\nid='b'\ndomains=['a.com']\n",
            "'a.com' is already in category 'a'",
        ),
        (
            "id='x'\nversion=1\n[[category]]\nid='a'\ndomains=['a.com']\n"
            "[[category]]\nid='a'\ndomains=['b.com']\n",
            "duplicate id",
        ),
        ("id='x'\nversion=1\n[[category]]\nid='a'\nmin_bytes=-1\ncidrs=[]\n", "min_bytes"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "categories.toml"
    path.write_text(text)
    with pytest.raises(CategoryError) as info:
        load_categories(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CategoryError, match="no such categories file"):
        load_categories(tmp_path / "absent.toml")
