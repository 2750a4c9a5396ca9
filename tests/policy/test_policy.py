"""The policy language, rule by rule, the shipped default policy, the Decider's incidents and
repeats, `sluice policy check`, and verdicts in a replay (dry-run, schema-valid)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sensor.cli.main import main
from sensor.policy.decide import Decider, finding_id
from sensor.policy.policy import Facts, PolicyError, load_policy, parse_duration, parse_policy
from sensor.policy.verdict import target_kind, verdict_id

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "sensor" / "outputs" / "events.schema.json").read_text())
HOME = [ipaddress.ip_network("10.0.0.0/8")]
HEAD = 'format = "sluice-policy"\nversion = 1\n'


def internal(address: str) -> bool:
    return any(ipaddress.ip_address(address) in n for n in HOME)


def facts(**changes: Any) -> Facts:
    base = Facts(
        finding_id="f1", kind="sensitive_content", severity="critical", host="10.1.1.1",
        host_internal=True, destination="198.51.100.7", destination_name="transfer.example",
        destination_internal=False, proto="http", categories=frozenset({"health", "national_id"}),
        records=400, hides_names=False, detail="export.csv",
    )  # fmt: skip
    return replace(base, **changes)


def one_rule(when: str, action: str = "block_host", extra: str = "") -> str:
    ttl = 'ttl = "1h"\n' if action != "alert" else ""
    return f'{HEAD}{extra}[[rule]]\nname = "r"\naction = "{action}"\n{ttl}[rule.when]\n{when}\n'


@pytest.mark.parametrize(
    ("when", "holds", "fails"),
    [
        ('kinds = ["sensitive_content"]', {}, {"kind": "encrypted_upload"}),
        ('min_severity = "high"', {"severity": "high"}, {"severity": "medium"}),
        ('categories_any = ["health", "financial"]', {}, {"categories": frozenset({"contact"})}),
        ('categories_all = ["health", "national_id"]', {},
         {"categories": frozenset({"health"})}),
        ("min_records = 100", {"records": 100}, {"records": 99}),
        ("hides_names = true", {"hides_names": True}, {"hides_names": False}),
        ('protos = ["smtp"]', {"proto": "smtp"}, {"proto": "http"}),
        ("destination_internal = false", {}, {"destination_internal": True}),
    ],
)  # fmt: skip
def test_each_condition_decides(when: str, holds: dict[str, Any], fails: dict[str, Any]) -> None:
    policy = parse_policy(one_rule(when), "p.toml")
    assert [d.action for d in policy.decide(facts(**holds))] == ["block_host"]
    assert policy.decide(facts(**fails)) == []


def test_allowlists_cover_addresses_networks_and_subdomains() -> None:
    extra = (
        '[allowlist.lab]\ndestinations = ["203.0.113.0/24", "lab.example"]\n'
        '[allowlist.relay]\ndestinations = ["192.0.2.25"]\n'
    )
    policy = parse_policy(one_rule("allowlisted = false", extra=extra), "p.toml")
    assert policy.decide(facts())  # transfer.example is on no list
    for destination, name in [("203.0.113.9", None), ("198.51.100.7", "up.lab.example"),
                              ("192.0.2.25", None), ("198.51.100.7", "LAB.example.")]:  # fmt: skip
        dns = facts(destination=destination, destination_name=name, destination_name_verified=True)
        assert policy.decide(dns) == []
    assert policy.allowlisted(facts(destination="192.0.2.25")) == "relay"
    named = facts(destination_name="notlab.example", destination_name_verified=True)
    assert policy.decide(named) != []
    # A name only the client gave (SNI, Host) puts nothing on a domain allowlist: an insider
    # could call any upload "lab.example".
    assert policy.decide(facts(destination_name="lab.example")) != []


def test_targets_never_point_at_the_wrong_side() -> None:
    host = parse_policy(one_rule('kinds = ["sensitive_content"]'), "p.toml")
    assert host.decide(facts(host="198.51.100.9", host_internal=False)) == []
    dest = parse_policy(one_rule('kinds = ["sensitive_content"]', "block_destination"), "p")
    assert [d.target for d in dest.decide(facts())] == ["198.51.100.7"]
    assert dest.decide(facts(destination="10.2.2.2", destination_internal=True)) == []


def test_every_rule_that_holds_decides_unless_one_stops() -> None:
    text = (
        f'{HEAD}[[rule]]\nname = "a"\naction = "alert"\n'
        '[[rule]]\nname = "b"\naction = "block_host"\nttl = "30m"\nstop = true\n'
        '[[rule]]\nname = "c"\naction = "alert"\n'
    )
    decisions = parse_policy(text, "p.toml").decide(facts())
    assert [(d.rule.name, d.ttl) for d in decisions] == [("a", 0.0), ("b", 1800.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nname = \"x\"\naction = \"block_host\"\n", ":3: rule 'x': ttl must"),
        ('[[rule]]\nname = "x"\naction = "nuke"\n', ":3: rule 'x': action must be"),
        ('[[rule]]\nname = "x"\naction = "alert"\n[rule.when]\nkinds = "canary"\n',
         ":3: rule 'x': when.kinds must be a list"),
        ('[[rule]]\nname = "x"\naction = "alert"\n[rule.when]\nkind = ["canary"]\n',
         "unknown condition 'kind'"),
        ('[[rule]]\nname = "x"\naction = "block_host"\nttl = "1w"\n', "'1w' is no duration"),
        ('[[rule]]\nname = "x"\naction = "block_host"\nttl = "10s"\n', "between 1m and 720h"),
        ('[[rule]]\nname = "x"\naction = "alert"\n[[rule]]\nname = "x"\naction = "alert"\n',
         ":6: rule 'x': a second rule"),
        ('[allowlist.a]\ndestinations = ["not a host"]\n[[rule]]\nname = "x"\naction = "alert"\n',
         "'not a host' is no IP address"),
        ('mode = "yolo"\n[[rule]]\nname = "x"\naction = "alert"\n', "mode must be"),
    ],
)  # fmt: skip
def test_errors_name_the_file_the_line_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"^p\.toml") as caught:
        parse_policy(HEAD + text, "p.toml")
    assert message in str(caught.value)


def test_durations() -> None:
    assert [parse_duration(v, "x") for v in ("90s", "30m", "1h", "1h30m", "24h")] == [
        90.0, 1800.0, 3600.0, 5400.0, 86400.0,
    ]  # fmt: skip
    for bad in ("", "1d", "h", "1.5h", 60):
        with pytest.raises(PolicyError):
            parse_duration(bad, "x")


def test_the_shipped_default() -> None:
    policy = load_policy(REPO / "signatures" / "policy.toml")
    decide = policy.decide

    def actions(**changes: Any) -> list[tuple[str, float]]:
        return [(d.action, d.ttl) for d in decide(facts(**changes))]

    assert actions() == [("block_host", 3600.0)]  # critical sensitive content
    assert actions(severity="medium") == [("alert", 0.0)]
    assert actions(destination_internal=True) == [("alert", 0.0)]
    assert actions(kind="encrypted_upload", severity="medium") == [("block_host", 3600.0)]
    assert actions(kind="canary", destination_internal=True, direction="upload") == [
        ("block_host", 86400.0)
    ]
    # A token served to a client (anyone holding a leaked one could do that): alert only.
    assert actions(kind="canary", direction="download") == [("alert", 0.0)]
    assert actions(kind="edm_match", severity="high") == [("block_host", 3600.0)]
    for volume in ("volume_threshold", "slow_exfiltration", "non_eu_transfer"):
        assert actions(kind=volume, severity="high") == [("alert", 0.0)]


def finding(ts: str, kind: str = "sensitive_content", dest: str = "198.51.100.7") -> dict:
    return {
        "timestamp": ts, "event_type": "finding", "src_ip": "10.1.1.1",
        "finding": {"kind": kind, "severity": "critical", "host": "10.1.1.1",
                    "destination": dest, "destination_port": 443, "proto": "http",
                    "categories": ["health", "national_id"], "records": 400,
                    "detail": f"{kind} at {ts}"},
    }  # fmt: skip


def test_incidents_group_findings_and_repeats_are_held_back() -> None:
    decider = Decider(load_policy(REPO / "signatures" / "policy.toml"), "dry-run", internal)
    first = decider.finding(finding("2026-01-01T10:00:00Z"), 1767261600.0)
    again = decider.finding(finding("2026-01-01T10:01:00Z"), 1767261660.0)  # same incident
    later = decider.finding(finding("2026-01-01T10:30:00Z"), 1767263400.0)  # extends by 30 m
    other = decider.finding(finding("2026-01-01T10:31:00Z", dest="203.0.113.5"), 1767263460.0)
    (v1,) = first
    assert again == [] and decider.held_back == 1
    (v3,) = later
    assert v3.id != v1.id and v3.incident_id == v1.incident_id and v3.expires_at > v1.expires_at
    (v4,) = other
    assert v4.incident_id != v1.incident_id and v4.id != v1.id and v4.target == v1.target
    assert v1.id == verdict_id("block_host", "10.1.1.1", v1.incident_id, v1.decided_at)
    assert v1.mode == "dry-run" and v1.remaining(v1.decided_at + 600) == 3000.0
    # The same findings in a new run decide the same ids (replays are deterministic).
    again_run = Decider(load_policy(REPO / "signatures" / "policy.toml"), "dry-run", internal)
    assert again_run.finding(finding("2026-01-01T10:00:00Z"), 1767261600.0)[0].id == v1.id
    assert finding_id(finding("x")) == finding_id(finding("x")) != finding_id(finding("y"))


def test_a_monitor_policy_enforces_nothing(tmp_path: Path) -> None:
    text = (
        (REPO / "signatures" / "policy.toml")
        .read_text()
        .replace('mode = "enforce"', 'mode = "monitor"')
    )
    decider = Decider(parse_policy(text, "p.toml"), "enforce", internal)
    (verdict,) = decider.finding(finding("2026-01-01T10:00:00Z"), 1767261600.0)
    assert verdict.mode == "monitor"


def test_target_kinds() -> None:
    assert [target_kind(t) for t in ("10.1.2.3", "2001:db8::1", "203.0.113.0/24", "a.example")] == [
        "ip", "ip", "cidr", "domain",
    ]  # fmt: skip
    for bad in ("203.0.113.1/24", "localhost", "a..example", "ex ample.com"):
        with pytest.raises(ValueError):
            target_kind(bad)


def test_policy_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 0
    out = capsys.readouterr().out
    assert "7 rules" in out and "canary: block_host for 24h" in out
    broken = tmp_path / "site.toml"
    broken.write_text(HEAD + '[[rule]]\nname = "x"\naction = "block_host"\nttl = "2w"\n')
    assert main(["policy", "check", str(broken)]) == 2
    assert f"{broken}:3: rule 'x'" in capsys.readouterr().out


def test_a_replay_decides_verdicts_in_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    pcaps = [str(REPO / "pcaps" / c / "input.pcap") for c in ("encrypted-uploads", "patient-exfil")]
    config = tmp_path / "sluice.toml"
    config.write_text("[classify]\nenabled = true\n")
    assert main(["replay", *pcaps, "--out", str(out), "--config", str(config), "--quiet"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    findings = {e["finding"]["id"]: e["finding"] for e in events if e["event_type"] == "finding"}
    verdicts = [e for e in events if e["event_type"] == "verdict"]
    for event in verdicts:
        jsonschema.validate(event, SCHEMA)
    rules = sorted(v["verdict"]["policy_rule"] for v in verdicts)
    assert rules.count("sensitive-upload") == 2 and "encrypted-upload" in rules
    for event in verdicts:
        v = event["verdict"]
        assert v["mode"] == "dry-run" and v["target"] == "10.10.0.10"
        assert all(fid in findings for fid in v["finding_ids"])
    # The database has them: `sluice verdicts` lists each with its rule and reason.
    assert main(["verdicts", "--db", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in listed) == sorted(v["verdict"]["id"] for v in verdicts)
    assert all(r["mode"] == "dry-run" and r["target"] == "10.10.0.10" for r in listed)
    assert main(["verdicts", "--db", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("block_host 10.10.0.10") == len(verdicts) and "sensitive-upload:" in text
    # Off in the config: no verdicts.
    config.write_text("[classify]\nenabled = true\n[policy]\nenabled = false\n")
    out2 = tmp_path / "out2"
    assert main(["replay", *pcaps, "--out", str(out2), "--config", str(config), "--quiet"]) == 0
    assert '"verdict"' not in (out2 / "events.jsonl").read_text()


@pytest.mark.parametrize(
    ("when", "holds", "fails"),
    [
        ('destination_categories = ["file_hosting"]', {"destination_category": "file_hosting"},
         {"destination_category": None}),
        ('destination_countries = ["US", "CN"]', {"destination_country": "US"},
         {"destination_country": "NL"}),
        ("outside_allowed_countries = true", {"outside_allowed_countries": True},
         {"outside_allowed_countries": None}),
        ("novel_destination = true", {"novel_destination": True}, {"novel_destination": False}),
    ],
)  # fmt: skip
def test_destination_conditions(when: str, holds: dict[str, Any], fails: dict[str, Any]) -> None:
    policy = parse_policy(one_rule(when, "block_destination"), "p.toml")
    assert [d.target for d in policy.decide(facts(**holds))] == ["198.51.100.7"]
    assert policy.decide(facts(**fails)) == []


def test_the_meter_says_what_it_knows_of_a_destination() -> None:
    """Category by name (signatures/categories.toml), country, novelty, through facts_of."""
    from sensor.cli.main import open_meter
    from sensor.config import Config
    from sensor.policy.policy import facts_of

    meter = open_meter(Config(), None)
    host, dest = ipaddress.ip_address("10.1.1.1").packed, ipaddress.ip_address("198.51.100.7")
    meter.name(dest.packed, "WeTransfer.com", "sni")
    known = meter.destination(host, dest.packed, 1767261600.0)
    assert (known.name, known.category, known.novel) == ("wetransfer.com", "file_hosting", False)

    def lookup(h: str, d: str) -> Any:
        return meter.destination(ipaddress.ip_address(h).packed, ipaddress.ip_address(d).packed, 0)

    f = facts_of(finding("2026-01-01T10:00:00Z"), "f", internal, lookup)
    assert f.destination_category == "file_hosting" and f.destination_name == "wetransfer.com"
    policy = parse_policy(one_rule('destination_categories = ["file_hosting"]'), "p.toml")
    assert [d.action for d in policy.decide(f)] == ["block_host"]
