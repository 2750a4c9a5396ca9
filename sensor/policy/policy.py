"""The policy: which findings become which verdicts (decision stage, pure).

In: a `Facts` value made from one finding record (`facts_of`), and the packet time. Out: the
`Decision`s of the rules that hold. `Policy.decide(facts)` reads no clock, no file and no
state: the same facts always give the same decisions. What has state (grouping findings into
incidents, holding back repeated alerts) is `Decider` (sensor/policy/decide.py), which calls
it.

The policy file (TOML; the default is `signatures/policy.toml`, a site names its own with
`[policy] file`):

    format = "sluice-policy"
    version = 1
    mode = "enforce"               # or "monitor": decide and record, enforce nothing

    [allowlist.partner_lab]        # sanctioned destinations: IPs, networks, domain names
    destinations = ["203.0.113.40", "lab.example"]   # a domain also covers its subdomains,
    # for a destination whose address a DNS answer on the wire gave that name (never by the
    # SNI or Host the client sends: an insider could name any upload "lab.example")

    [[rule]]
    name = "encrypted-upload"      # unique; verdicts and events name it
    action = "block_host"          # alert | block_host | block_destination
    ttl = "1h"                     # Go-style: 90s, 30m, 1h, 24h, 1h30m (blocks only)
    severity = "high"              # of the verdict; default: the finding's
    [rule.when]                    # every condition given must hold
    kinds = ["encrypted_upload"]   # finding kinds
    min_severity = "medium"        # the finding's severity at least this
    categories_any = ["health"]    # sensitive_content categories (also categories_all)
    min_records = 5                # records (sensitive_content) or known records (edm_match)
    hides_names = true             # encrypted_upload: the container hides its member names
    protos = ["http", "smtp"]      # the protocol that carried it
    directions = ["upload"]        # canary: the client sent it ("download": a server did)
    destination_internal = false   # the destination is (not) in home_net
    allowlisted = false            # the destination is (not) on an allowlist
    destination_categories = ["file_hosting", "paste"]   # signatures/categories.toml ids
    destination_countries = ["US"] # ISO 3166 codes (a country database must know them)
    outside_allowed_countries = true   # not in [metering] transfer_allowed_countries
    novel_destination = true       # never contacted within the retention (after learning)

Rules are tried in order and EVERY rule that holds decides (an alert rule and a block rule
may both fire); `stop = true` on a rule ends the evaluation when it holds. A finding whose
host is not internal never leads to `block_host` (there is nothing of ours to block).

Errors name the file, the line and the entry: `PolicyError`.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.config.signatures import read_signatures_file
from sensor.policy.verdict import ACTIONS

FORMAT = "sluice-policy"
POLICY_FILE = "policy.toml"  # in the signatures directory: the default policy
VERSION = 1
SEVERITIES = ("low", "medium", "high", "critical")
MIN_TTL = 60.0  # seconds: a shorter block is noise
MAX_TTL = 30 * 86400.0  # a month: longer needs a human, not a sensor
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_WHEN_KEYS = {
    "kinds", "min_severity", "categories_any", "categories_all", "min_records", "hides_names",
    "protos", "directions", "destination_internal", "allowlisted", "destination_categories",
    "destination_countries", "outside_allowed_countries", "novel_destination",
}  # fmt: skip
_RULE_KEYS = {"name", "action", "ttl", "severity", "when", "stop", "description"}
_TOP_KEYS = {"format", "version", "mode", "allowlist", "rule"}


class PolicyError(Exception):
    """A policy file that cannot be used: one line naming the file, the line and the entry."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What a policy can know of one finding (made by `facts_of`)."""

    finding_id: str
    kind: str
    severity: str
    host: str  # the internal host it is about (the flow's client)
    host_internal: bool
    destination: str | None  # the server address
    destination_name: str | None  # its name where known (Host, SNI, DNS)
    destination_internal: bool
    proto: str | None
    # The name came from a DNS answer seen on the wire, not from what the client itself said
    # (SNI, Host): only such a name may put a destination on a domain allowlist entry.
    destination_name_verified: bool = False
    categories: frozenset[str] = frozenset()
    records: int = 0  # sensitive_content records, edm_match known records
    hides_names: bool = False
    detail: str = ""
    direction: str | None = None  # "upload" | "download" where the finding says
    # What the meter knows of the destination (None: no meter, or it does not know).
    destination_category: str | None = None
    destination_country: str | None = None
    outside_allowed_countries: bool | None = None
    novel_destination: bool | None = None


@dataclass(frozen=True, slots=True)
class When:
    kinds: frozenset[str] | None = None
    min_severity: str | None = None
    categories_any: frozenset[str] | None = None
    categories_all: frozenset[str] | None = None
    min_records: int | None = None
    hides_names: bool | None = None
    protos: frozenset[str] | None = None
    directions: frozenset[str] | None = None
    destination_internal: bool | None = None
    allowlisted: bool | None = None
    destination_categories: frozenset[str] | None = None
    destination_countries: frozenset[str] | None = None
    outside_allowed_countries: bool | None = None
    novel_destination: bool | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: str
    ttl: float  # seconds; 0 for alerts
    severity: str | None  # None: the finding's
    when: When
    stop: bool = False
    description: str = ""
    line: int = 0  # in the policy file, for messages


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule that held for some facts: what the Decider turns into a verdict."""

    rule: Rule
    action: str
    target: str  # the host, the destination address or name; "" for alerts without one
    ttl: float
    severity: str


@dataclass(frozen=True, slots=True)
class Allowlist:
    name: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    domains: tuple[str, ...]  # lower case, no trailing dot

    def holds(self, address: str | None, name: str | None) -> bool:
        if address:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            if ip is not None and any(ip in network for network in self.networks):
                return True
        if name:
            host = name.rstrip(".").lower()
            return any(host == d or host.endswith("." + d) for d in self.domains)
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    path: str
    mode: str
    rules: tuple[Rule, ...]
    allowlists: tuple[Allowlist, ...] = field(default_factory=tuple)

    def allowlisted(self, facts: Facts) -> str | None:
        """The allowlist the destination is on, or None."""
        name = facts.destination_name if facts.destination_name_verified else None
        for allowlist in self.allowlists:
            if allowlist.holds(facts.destination, name):
                return allowlist.name
        return None

    def decide(self, facts: Facts) -> list[Decision]:
        """The decisions of every rule that holds for `facts`, in rule order (pure)."""
        listed = self.allowlisted(facts) is not None
        out = []
        for rule in self.rules:
            if not _holds(rule.when, facts, listed):
                continue
            decision = _decision(rule, facts)
            if decision is not None:
                out.append(decision)
            if rule.stop:
                break
        return out


def _at_least(severity: str, floor: str) -> bool:
    return (
        SEVERITIES.index(severity) >= SEVERITIES.index(floor) if severity in SEVERITIES else False
    )


def _holds(w: When, f: Facts, listed: bool) -> bool:
    return (
        (w.kinds is None or f.kind in w.kinds)
        and (w.min_severity is None or _at_least(f.severity, w.min_severity))
        and (w.categories_any is None or bool(w.categories_any & f.categories))
        and (w.categories_all is None or w.categories_all <= f.categories)
        and (w.min_records is None or f.records >= w.min_records)
        and (w.hides_names is None or f.hides_names == w.hides_names)
        and (w.protos is None or (f.proto or "") in w.protos)
        and (w.directions is None or (f.direction or "") in w.directions)
        and (w.destination_internal is None or f.destination_internal == w.destination_internal)
        and (w.allowlisted is None or listed == w.allowlisted)
        and (w.destination_categories is None or f.destination_category in w.destination_categories)
        and (w.destination_countries is None or f.destination_country in w.destination_countries)
        and (
            w.outside_allowed_countries is None
            or f.outside_allowed_countries == w.outside_allowed_countries
        )
        and (w.novel_destination is None or f.novel_destination == w.novel_destination)
    )


def _decision(rule: Rule, f: Facts) -> Decision | None:
    severity = rule.severity or f.severity
    if rule.action == "block_host":
        if not f.host_internal:
            return None  # nothing of ours to block
        return Decision(rule, rule.action, f.host, rule.ttl, severity)
    if rule.action == "block_destination":
        target = f.destination or f.destination_name
        if not target or f.destination_internal:
            return None  # never block our own side as a "destination"
        return Decision(rule, rule.action, target, rule.ttl, severity)
    return Decision(rule, "alert", f.host, 0.0, severity)


# --- facts from a finding record ----------------------------------------------------------


def facts_of(
    record: Mapping[str, Any],
    finding_id: str,
    internal: Callable[[str], bool],
    lookup: Callable[[str, str], Any] | None = None,
) -> Facts:
    """The facts of one `finding` event. `internal(address)` says home_net; `lookup(host,
    destination)` is what the meter knows of a destination (an object with `category`,
    `country`, `outside_allowed` and `novel`), when there is a meter."""
    f = record["finding"]
    destination = f.get("destination")
    if destination is None and f.get("destinations"):
        first = str(f["destinations"][0])
        destination = first.rsplit(":", 1)[0] if first.count(":") == 1 else first
    records = f.get("records") or 0
    host = str(f.get("host") or record.get("src_ip") or "")
    known = None
    if lookup is not None and host and isinstance(destination, str):
        try:
            known = lookup(host, destination)
        except ValueError:  # not an address (a volume finding's "other" bucket)
            known = None
    return Facts(
        finding_id=finding_id,
        kind=str(f["kind"]),
        severity=str(f["severity"]),
        host=host,
        host_internal=bool(host) and _internal(internal, host),
        destination=destination,
        destination_name=f.get("destination_name") or (known.name if known else None),
        destination_name_verified=known is not None and known.name_source == "dns",
        destination_internal=destination is not None and _internal(internal, destination),
        proto=f.get("proto"),
        categories=frozenset(f.get("categories") or ()),
        records=int(records) if isinstance(records, int) else 0,
        hides_names=bool(f.get("hides_names")),
        detail=str(f.get("detail") or ""),
        direction=f.get("direction"),
        destination_category=known.category if known is not None else None,
        destination_country=known.country if known is not None else None,
        outside_allowed_countries=known.outside_allowed if known is not None else None,
        novel_destination=known.novel if known is not None else None,
    )


def _internal(internal: Callable[[str], bool], address: str) -> bool:
    try:
        return bool(internal(address))
    except ValueError:
        return False


# --- the file -----------------------------------------------------------------------------


def parse_duration(value: object, where: str) -> float:
    """Go-style durations as CrowdSec and operators write them: 90s, 30m, 1h, 1h30m."""
    if not isinstance(value, str) or not value:
        raise PolicyError(f'{where}: ttl must be a duration such as "1h" or "30m"')
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()):
        raise PolicyError(f"{where}: {value!r} is no duration (write 90s, 30m, 1h, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _lines_of(text: str, header: str) -> list[int]:
    """The 1-based line of each `header` (`[[rule]]`) in `text`, in order."""
    return [
        n for n, line in enumerate(text.splitlines(), 1) if line.split("#", 1)[0].strip() == header
    ]


def _strings(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return frozenset(value)


def _when(raw: object, where: str) -> When:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: [rule.when] must be a table")
    unknown = set(raw) - _WHEN_KEYS
    if unknown:
        raise PolicyError(
            f"{where}: unknown condition {sorted(unknown)[0]!r} "
            f"(known: {', '.join(sorted(_WHEN_KEYS))})"
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}: when.{key}"
        if key in ("kinds", "categories_any", "categories_all", "protos", "directions",
                   "destination_categories", "destination_countries"):  # fmt: skip
            values[key] = _strings(value, at)
        elif key == "min_severity":
            if value not in SEVERITIES:
                raise PolicyError(f"{at} must be one of {', '.join(SEVERITIES)}")
            values[key] = value
        elif key == "min_records":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PolicyError(f"{at} must be a whole number >= 0")
            values[key] = value
        else:  # the booleans
            if not isinstance(value, bool):
                raise PolicyError(f"{at} must be true or false")
            values[key] = value
    return When(**values)


def _rule(raw: object, line: int, where: str, names: set[str]) -> Rule:
    at = f"{where}:{line}: rule"
    if not isinstance(raw, dict):
        raise PolicyError(f"{at} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
        raise PolicyError(f"{at} needs a name: lower-case letters, digits, - _ . (64 at most)")
    at = f"{where}:{line}: rule {name!r}"
    if name in names:
        raise PolicyError(f"{at}: a second rule of this name")
    names.add(name)
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise PolicyError(f"{at}: unknown key {sorted(unknown)[0]!r}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{at}: action must be one of {', '.join(ACTIONS)}")
    ttl = 0.0
    if action != "alert":
        ttl = parse_duration(raw.get("ttl"), at)
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise PolicyError(f"{at}: ttl must lie between 1m and 720h")
    elif "ttl" in raw:
        raise PolicyError(f"{at}: an alert has no ttl")
    severity = raw.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise PolicyError(f"{at}: severity must be one of {', '.join(SEVERITIES)}")
    stop = raw.get("stop", False)
    if not isinstance(stop, bool):
        raise PolicyError(f"{at}: stop must be true or false")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise PolicyError(f"{at}: description must be a string")
    return Rule(
        name, action, ttl, severity, _when(raw.get("when", {}), at), stop, description, line
    )


def _allowlist(name: str, raw: object, where: str) -> Allowlist:
    at = f"{where}: allowlist {name!r}"
    if not isinstance(raw, dict) or set(raw) - {"destinations", "description"}:
        raise PolicyError(f"{at}: a table with `destinations` (and a `description`)")
    networks = []
    domains = []
    for item in sorted(_strings(raw.get("destinations", []), f"{at}: destinations")):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
            continue
        except ValueError:
            pass
        domain = item.rstrip(".").lower()
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", domain):
            raise PolicyError(f"{at}: {item!r} is no IP address, network or domain name")
        domains.append(domain)
    return Allowlist(name, tuple(networks), tuple(domains))


def parse_policy(text: str, where: str) -> Policy:
    """The policy in `text` (read from `where`, for messages)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise PolicyError(f'{where}: not a policy file (format = "{FORMAT}", version = {VERSION})')
    mode = raw.get("mode", "enforce")
    if mode not in ("enforce", "monitor"):
        raise PolicyError(f'{where}: mode must be "enforce" or "monitor"')
    allowlists_raw = raw.get("allowlist", {})
    if not isinstance(allowlists_raw, dict):
        raise PolicyError(f"{where}: [allowlist.NAME] tables")
    allowlists = tuple(_allowlist(n, v, where) for n, v in sorted(allowlists_raw.items()))
    rules_raw = raw.get("rule", [])
    if not isinstance(rules_raw, list) or not rules_raw:
        raise PolicyError(f"{where}: no [[rule]]")
    lines = _lines_of(text, "[[rule]]")
    names: set[str] = set()
    rules = tuple(
        _rule(r, lines[i] if i < len(lines) else 0, where, names) for i, r in enumerate(rules_raw)
    )
    return Policy(where, mode, rules, allowlists)


def load_policy(
    path: str | Path | None = None,
    signatures: str | Path | None = None,
    origin: str = "--signatures",
) -> Policy:
    """The policy in `path`, else `policy.toml` of the signatures directory."""
    text, where = read_signatures_file(POLICY_FILE, path, signatures, origin, PolicyError, "policy")
    return parse_policy(text, where)


def describe(policy: Policy) -> Iterable[str]:
    """One line per rule, for `sluice policy check`."""
    yield f"{policy.path}: mode {policy.mode}, {len(policy.rules)} rules, " + (
        f"allowlists {', '.join(a.name for a in policy.allowlists)}"
        if policy.allowlists
        else "no allowlists"
    )
    for rule in policy.rules:
        ttl = f" for {_human(rule.ttl)}" if rule.ttl else ""
        yield f"  line {rule.line}: {rule.name}: {rule.action}{ttl}" + (
            f" ({rule.description})" if rule.description else ""
        )


def _human(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"
