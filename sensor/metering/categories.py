"""Destination categories (file hosting, paste sites, personal mail), data from
`signatures/categories.toml` (STYLE.md habit 10: data, not code, validated on load).

File format::

    id = "sluice-destination-categories"   # [a-z0-9_.-]+
    version = 3                             # integer >= 1, raised on every change

    [[category]]
    id = "file_hosting"                     # snake_case, unique; the finding's category
    description = "..."                     # optional
    min_bytes = 1000000                     # optional: overrides metering.category_min_bytes
    domains = ["wetransfer.com"]            # the domain and every subdomain of it
    cidrs = ["192.0.2.0/24"]                # IPv4/IPv6 networks

A file that breaks any rule raises `CategoryError` naming the file, the entry and the rule.
`parse_categories` is pure; `load_categories(path)` reads the file (at start-up, by the runtime).
Without a path it reads `categories.toml` from the signatures directory that
`sensor.config.signatures.find_signatures` resolves (operator's choice, $SLUICE_SIGNATURES, the
installed data, the source tree).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor.config.signatures import parse_signatures_toml, read_signatures_file

FILE_NAME = "categories.toml"
# The source tree's copy (tests); the runtime resolves the directory with find_signatures.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "signatures" / FILE_NAME

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_CATEGORY_ID = re.compile(r"[a-z][a-z0-9_]*")
# A hostname of LDH labels (RFC 1123), at least two labels, no trailing dot.
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_TOP_KEYS = {"id", "version", "description", "category"}
_CATEGORY_KEYS = {"id", "description", "min_bytes", "domains", "cidrs"}


class CategoryError(ValueError):
    """A categories file is unusable; the message names the file, the entry and the rule."""


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    description: str = ""
    min_bytes: int | None = None


class CategoryDb:
    """Lookup of a destination (IP bytes, optional name) to its category."""

    def __init__(
        self,
        db_id: str,
        version: int,
        domains: dict[str, Category],
        networks: list[tuple[int, int, int, Category]],
    ) -> None:
        self.id = db_id
        self.version = version
        self._domains = domains
        self._networks = networks  # (ip version, network int, mask int, category)

    @classmethod
    def empty(cls) -> CategoryDb:
        return cls("empty", 1, {}, [])

    def __len__(self) -> int:
        return len(self._domains) + len(self._networks)

    def categories(self) -> set[str]:
        return {c.id for c in self._domains.values()} | {n[3].id for n in self._networks}

    def match(self, ip: bytes, name: str | None) -> Category | None:
        """The name's category (most specific domain first), else the address's."""
        if name:
            labels = name.lower().rstrip(".").split(".")
            for i in range(len(labels) - 1):
                category = self._domains.get(".".join(labels[i:]))
                if category is not None:
                    return category
        if self._networks:
            version = 4 if len(ip) == 4 else 6
            value = int.from_bytes(ip, "big")
            for net_version, network, mask, category in self._networks:
                if net_version == version and value & mask == network:
                    return category
        return None


def parse_categories(text: str, source: str = "<categories>") -> CategoryDb:
    return parse_signatures_toml(text, source, _build, CategoryError)


def load_categories(
    path: str | Path | None = None,
    *,
    signatures: str | Path | None = None,
    origin: str = "--signatures",
) -> CategoryDb:
    """`path` names the file itself; without it the file comes from the signatures directory:
    `signatures` (the operator's, `origin` saying from where) or else the default search."""
    text, source = read_signatures_file(
        FILE_NAME, path, signatures, origin, CategoryError, "categories"
    )
    return parse_categories(text, source)


def _build(raw: dict[str, Any]) -> CategoryDb:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise CategoryError(f"unknown top-level key {sorted(unknown)[0]!r}")
    db_id = raw.get("id")
    if not isinstance(db_id, str) or not _ID.fullmatch(db_id):
        raise CategoryError("id must be a string of [a-z0-9_.-], e.g. 'sluice-categories'")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CategoryError("version must be an integer >= 1")
    entries = raw.get("category")
    if not isinstance(entries, list) or not entries:
        raise CategoryError("needs at least one [[category]] table")
    domains: dict[str, Category] = {}
    networks: list[tuple[int, int, int, Category]] = []
    seen_ids: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"category[{index}]"
        if not isinstance(entry, dict):
            raise CategoryError(f"{where} must be a table")
        unknown = set(entry) - _CATEGORY_KEYS
        if unknown:
            raise CategoryError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        cid = entry.get("id")
        if not isinstance(cid, str) or not _CATEGORY_ID.fullmatch(cid):
            raise CategoryError(f"{where}.id must be snake_case, e.g. 'file_hosting'")
        where = f"category {cid!r}"
        if cid in seen_ids:
            raise CategoryError(f"{where}: duplicate id")
        seen_ids.add(cid)
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise CategoryError(f"{where}.description must be a string")
        min_bytes = entry.get("min_bytes")
        if min_bytes is not None and (
            isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0
        ):
            raise CategoryError(f"{where}.min_bytes must be a non-negative integer")
        category = Category(cid, description, min_bytes)
        names = _string_list(entry.get("domains", []), f"{where}.domains")
        cidrs = _string_list(entry.get("cidrs", []), f"{where}.cidrs")
        if not names and not cidrs:
            raise CategoryError(f"{where}: needs at least one of domains, cidrs")
        for name in names:
            if name != name.lower() or not _DOMAIN.fullmatch(name):
                raise CategoryError(
                    f"{where}.domains: {name!r} is not a lower-case domain name "
                    "(no scheme, path, port or wildcard; subdomains match anyway)"
                )
            if name in domains:
                raise CategoryError(
                    f"{where}.domains: {name!r} is already in category {domains[name].id!r}"
                )
            domains[name] = category
        for cidr in cidrs:
            try:
                net = ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise CategoryError(f"{where}.cidrs: {cidr!r} is not a network ({exc})") from None
            networks.append((net.version, int(net.network_address), int(net.netmask), category))
    # Longest prefix first, so the most specific network wins.
    networks.sort(key=lambda n: -bin(n[2]).count("1"))
    return CategoryDb(db_id, version, domains, networks)


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CategoryError(f"{where} must be a list of strings")
    return list(value)
