"""The safety guards, rule by rule: each refuses what it must and lets through what it may.

The breakers are tested by counting (allowed verdicts, loud results, sizes of the guards'
structures), never by timing. The never-block rule is also tested as a property: however a
protected address is written (networks containing it, host bits set, IPv4-mapped or NAT64
IPv6, exploded or upper-case IPv6, a zone id), it is never allowed as a block target.
"""

from __future__ import annotations

import ipaddress
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.policy.verdict import Verdict, verdict_id
from sensor.verdicts.guards import (
    ALLOWED,
    EXPIRED,
    HOST_CAP,
    KILL_SWITCH,
    MAX_PROTECTED_ENTRIES,
    NOT_A_BLOCK,
    PREFIX,
    PROTECTED,
    RATE_LIMIT,
    SCOPE,
    TABLE_CAP,
    TARGET,
    TTL,
    GuardConfig,
    Guards,
    ProtectedSet,
    endpoint_host,
    refusal_record,
)

T0 = 1_750_000_000.0
OPEN = GuardConfig(rate_per_minute=1e9, burst=10**9, max_blocked_hosts=10**6)


def verdict(
    target: str,
    action: str = "block_destination",
    *,
    kind: str | None = None,
    ttl: float = 3600.0,
    decided_at: float = T0,
) -> Verdict:
    if kind is None:
        kind = "cidr" if "/" in target else ("domain" if target[-1:].isalpha() else "ip")
        if ":" in target and "/" not in target:
            kind = "ip"
    return Verdict(
        id=verdict_id(action, target, "inc-1", decided_at),
        action=action,
        target=target,
        target_kind=kind,
        ttl=ttl,
        decided_at=decided_at,
        reason="test",
        severity="high",
        confidence=0.9,
        finding_ids=("f-1",),
        incident_id="inc-1",
        policy_rule="rule-1",
        mode="enforce",
    )


def guards(config: GuardConfig = OPEN, **protected: list[str]) -> Guards:
    return Guards(config, ProtectedSet.of(**protected))


# -- rule 1: alerts ---------------------------------------------------------------------


def test_an_alert_blocks_nothing_and_always_passes_even_under_the_kill_switch() -> None:
    g = guards(gateways=["10.0.0.1"])
    result = g.check(verdict("10.0.0.1", "alert"), T0, killed=True)
    assert result.allowed and result.rule == NOT_A_BLOCK


# -- rule 5: the never-block set, containment both ways -----------------------------------


def test_a_protected_address_is_refused_with_why_it_is_protected() -> None:
    g = guards(gateways=["10.0.0.1"], dns=["10.0.0.53"])
    result = g.check(verdict("10.0.0.1", "block_host"), T0)
    assert not result.allowed and result.rule == PROTECTED
    assert "default gateway" in result.reason and "10.0.0.1" in result.reason
    assert result.fallback == "alert"
    assert "DNS server" in g.check(verdict("10.0.0.53", "block_host"), T0).reason
    assert g.check(verdict("10.0.0.7", "block_host"), T0).allowed


def test_a_network_containing_a_protected_address_is_refused() -> None:
    g = guards(GuardConfig(min_prefix_v4=8, rate_per_minute=1e9, burst=10**9), own=["10.0.0.1"])
    for target in ("10.0.0.0/8", "10.0.0.0/24", "10.0.0.0/31", "10.0.0.1/32"):
        result = g.check(verdict(target, "block_host"), T0)
        assert result.rule == PROTECTED, target
    assert g.check(verdict("10.0.1.0/24", "block_host"), T0).allowed


def test_an_address_inside_a_protected_network_is_refused() -> None:
    g = guards(networks=["10.0.0.0/24", "2a00:1450::/32"])
    assert g.check(verdict("10.0.0.9", "block_host"), T0).rule == PROTECTED
    assert g.check(verdict("10.0.0.128/25", "block_host"), T0).rule == PROTECTED
    assert g.check(verdict("2a00:1450:4001::/48"), T0).rule == PROTECTED
    assert g.check(verdict("2a00:1450:4001::5"), T0).rule == PROTECTED
    assert g.check(verdict("10.0.1.9", "block_host"), T0).allowed
    assert g.check(verdict("2a00:1451::5"), T0).allowed


def test_ipv6_containment_both_ways() -> None:
    g = guards(own=["fd00::1"], dns=["2001:4860:4860::8888"])
    assert g.check(verdict("fd00::/64", "block_host"), T0).rule == PROTECTED
    assert g.check(verdict("fd00:0:0:1::5", "block_host"), T0).allowed
    assert g.check(verdict("2001:4860:4860::/48"), T0).rule == PROTECTED
    assert g.check(verdict("2001:4860:4860::8888"), T0).rule == PROTECTED
    assert g.check(verdict("2001:4860:4861::/48"), T0).allowed


def test_ipv4_protection_holds_for_mapped_and_nat64_spellings() -> None:
    g = guards(dns=["8.8.8.8"])
    for target in (
        "::ffff:8.8.8.8",
        "::ffff:808:808",
        "::ffff:8.8.8.0/120",
        "64:ff9b::8.8.8.8",
        "64:ff9b::808:800/120",
        "::/80",  # an IPv6 network wide enough to hold every mapped IPv4 address
    ):
        result = g.check(verdict(target), T0)
        assert result.rule == PROTECTED, target
    assert g.check(verdict("::ffff:8.8.4.4"), T0).allowed
    assert g.check(verdict("64:ff9b::8.8.4.4"), T0).allowed


def test_a_protected_entry_written_as_mapped_ipv6_protects_the_ipv4_address() -> None:
    g = guards(own=["::ffff:10.0.0.2"])
    assert g.check(verdict("10.0.0.2", "block_host"), T0).rule == PROTECTED


def test_protected_domains_match_by_label_suffix_both_ways() -> None:
    g = guards(endpoints=["https://lapi.sec.example:8080/v1/"], domains=["edl.fw.example"])
    for target in (
        "lapi.sec.example",
        "LAPI.Sec.Example.",
        "sec.example",  # a parent: blocking it would block the endpoint
        "x.lapi.sec.example",  # a child of a protected name
        "fw.example",
        "*.edl.fw.example",
    ):
        result = g.check(verdict(target, kind="domain"), T0)
        assert result.rule == PROTECTED, target
        assert result.fallback == "alert"
    assert g.check(verdict("xsec.example", kind="domain"), T0).allowed
    assert g.check(verdict("transfer.example", kind="domain"), T0).allowed


def test_backend_endpoints_are_protected_by_address_however_configured() -> None:
    assert endpoint_host("https://[2001:db8::7]:8443/api") == "2001:db8::7"
    assert endpoint_host("198.51.100.7:8080") == "198.51.100.7"
    assert endpoint_host("2001:db8::7") == "2001:db8::7"
    assert endpoint_host("lapi.example:8080") == "lapi.example"
    g = guards(endpoints=["http://93.184.216.34:8080/", "[2a00:1450::7]:443"])
    assert g.check(verdict("93.184.216.0/24"), T0).rule == PROTECTED
    assert g.check(verdict("2a00:1450::/48"), T0).rule == PROTECTED


def test_the_never_block_set_rejects_garbage_and_is_capped() -> None:
    with pytest.raises(ValueError):
        ProtectedSet.of(networks=["10.0.0.0/33"])
    with pytest.raises(ValueError):
        ProtectedSet.of(endpoints=["https:///nohost"])
    with pytest.raises(ValueError, match="more than"):
        ProtectedSet.of(networks=[f"10.0.{i // 256}.{i % 256}" for i in range(4097)])
    assert len(ProtectedSet.of(networks=["10.0.0.1"] * MAX_PROTECTED_ENTRIES)) > 0


# -- rule 6: prefix floor ----------------------------------------------------------------


def test_networks_wider_than_the_floor_are_refused() -> None:
    g = guards()
    assert g.check(verdict("8.8.0.0/16"), T0).rule == PREFIX
    assert g.check(verdict("0.0.0.0/0"), T0).rule == PREFIX
    assert g.check(verdict("2a00:1450::/32"), T0).rule == PREFIX
    assert g.check(verdict("10.1.0.0/16", "block_host"), T0).rule == PREFIX
    assert g.check(verdict("8.8.8.0/24"), T0).allowed
    assert g.check(verdict("93.184.216.34/24"), T0).allowed  # host bits: read as the /24
    assert g.check(verdict("2a00:1450:4001::/48"), T0).allowed
    wide = guards(GuardConfig(min_prefix_v4=16, rate_per_minute=1e9, burst=10**9))
    assert wide.check(verdict("8.8.0.0/16"), T0).allowed
    assert wide.check(verdict("8.0.0.0/15"), T0).rule == PREFIX


# -- rule 7: scope -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "10.1.2.3",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "192.168.1.0/24",
        "224.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.0/24",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "4000::1",
        "64:ff9b::10.0.0.1",  # NAT64 of a private address
    ],
)
def test_block_destination_refuses_non_public_space(target: str) -> None:
    result = guards().check(verdict(target), T0)
    assert not result.allowed and result.rule == SCOPE
    assert result.fallback is None
    assert "not public" in result.reason


def test_block_destination_allows_public_space_and_the_operators_lab_ranges() -> None:
    g = guards()
    for target in ("8.8.4.4", "2a00:1450::1", "64:ff9b::8.8.4.4", "93.184.216.0/24"):
        assert g.check(verdict(target), T0).allowed, target
    lab = guards(
        GuardConfig(treat_as_external=("203.0.113.0/24",), rate_per_minute=1e9, burst=10**9),
        networks=["203.0.113.53"],
    )
    assert lab.check(verdict("203.0.113.7"), T0).allowed
    assert lab.check(verdict("203.0.113.53"), T0).rule == PROTECTED  # protection still wins
    assert lab.check(verdict("198.51.100.1"), T0).rule == SCOPE


def test_block_destination_refuses_special_use_names() -> None:
    g = guards()
    assert g.check(verdict("printer.local", kind="domain"), T0).rule == SCOPE
    assert g.check(verdict("nas.home.arpa", kind="domain"), T0).rule == SCOPE
    assert g.check(verdict("files.corp.internal", kind="domain"), T0).rule == SCOPE


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1) | st.integers(0, 2**128 - 1))
def test_whatever_the_standard_library_calls_non_global_is_never_an_external_destination(
    value: int,
) -> None:
    """Differential against `ipaddress`: each address it does not call global unicast is
    refused as a destination. (Mapped IPv6 is excluded: the guards read it as the IPv4 it
    names, where the library judges the IPv6 spelling.)"""
    address = ipaddress.ip_address(value)
    if address.version == 6 and address in ipaddress.ip_network("::ffff:0:0/96"):
        return
    result = guards().check(verdict(str(address)), T0)
    if not address.is_global or address.is_multicast:
        assert result.rule == SCOPE, str(address)


def test_block_host_must_be_an_internal_unicast_host() -> None:
    g = guards()
    assert g.check(verdict("8.8.8.8", "block_host"), T0).rule == SCOPE
    assert g.check(verdict("2a00:1450::1", "block_host"), T0).rule == SCOPE
    assert g.check(verdict("127.0.0.1", "block_host"), T0).rule == SCOPE  # in home_net, no host
    assert g.check(verdict("fe80::1", "block_host"), T0).rule == SCOPE
    assert g.check(verdict("ws7.corp.example", "block_host", kind="domain"), T0).rule == SCOPE
    assert g.check(verdict("10.20.30.40", "block_host"), T0).allowed
    assert g.check(verdict("fd12:3456::9", "block_host"), T0).allowed
    assert g.check(verdict("::ffff:192.168.1.9", "block_host"), T0).allowed  # mapped: IPv4


# -- rules 3 and 4: target and TTL --------------------------------------------------------


def test_unreadable_or_mislabelled_targets_are_refused() -> None:
    g = guards()
    assert g.check(verdict("8.8.8.8", kind="domain"), T0).rule == TARGET
    assert g.check(verdict("8.8.8.0/24", kind="ip"), T0).rule == TARGET
    assert g.check(verdict("not an address", kind="ip"), T0).rule == TARGET
    assert g.check(verdict("a..example", kind="domain"), T0).rule == TARGET
    assert g.check(verdict("8.8.8.8", kind="host"), T0).rule == TARGET


def test_ttl_below_the_minimum_is_refused_and_above_the_maximum_clamped() -> None:
    g = guards()
    short = g.check(verdict("8.8.8.8", ttl=30), T0)
    assert short.rule == TTL and short.fallback is None and "minimum" in short.reason
    assert g.check(verdict("8.8.8.8", ttl=math.nan), T0).rule == TTL
    long = g.check(verdict("8.8.4.4", ttl=30 * 86400), T0 + 100)
    assert long.allowed and "clamped" in long.note
    assert long.ttl == pytest.approx(OPEN.ttl_max - 100)
    forever = g.check(verdict("9.9.9.9", ttl=math.inf), T0)
    assert forever.allowed and forever.ttl == OPEN.ttl_max


def test_a_late_verdict_is_sent_its_remaining_time_and_an_expired_one_nothing() -> None:
    g = guards()
    late = g.check(verdict("8.8.8.8", ttl=3600), T0 + 600)
    assert late.allowed and late.ttl == pytest.approx(3000)
    expired = g.check(verdict("8.8.4.4", ttl=3600), T0 + 3600)
    assert expired.rule == EXPIRED and not expired.allowed


# -- rule 2: kill switch -----------------------------------------------------------------


def test_the_kill_switch_blocks_nothing_loudly_once_and_says_when_it_is_gone() -> None:
    config = GuardConfig(kill_switch_path="/run/sluice/stop", burst=2)
    g = guards(config)
    first = g.check(verdict("8.8.8.8"), T0, killed=True)
    second = g.check(verdict("10.0.0.5", "block_host"), T0, killed=True)
    assert (first.rule, first.reason, first.fallback) == (
        KILL_SWITCH,
        "kill switch /run/sluice/stop",
        "alert",
    )
    assert first.loud and not second.loud and second.streak == 2
    # nothing was spent while killed: the whole burst is still there
    after = [g.check(verdict(f"8.8.8.{i}"), T0) for i in (1, 2)]
    assert all(r.allowed for r in after)
    assert "kill switch closed after 2" in after[0].note


# -- breakers: rate limit, host cap, table cap -------------------------------------------


def public(i: int) -> str:
    """The i-th address of 11.0.0.0/8 (public unicast)."""
    return str(ipaddress.IPv4Address(0x0B000000 + i))


def test_a_burst_of_10000_verdicts_engages_the_rate_limit_with_bounded_state() -> None:
    config = GuardConfig(rate_per_minute=30, burst=20)
    g = guards(config)
    results = [g.check(verdict(public(i)), T0) for i in range(10_000)]
    allowed = [r for r in results if r.allowed]
    refused = [r for r in results if not r.allowed]
    assert len(allowed) == config.burst
    assert {r.rule for r in refused} == {RATE_LIMIT}
    assert all(r.fallback == "alert" for r in refused)
    loud = [r for r in results if r.loud]
    assert len(loud) == 1 and loud[0] is refused[0]
    assert loud[0].reason.startswith("rate limit: ") and "alert-only" in loud[0].reason
    assert refused[-1].streak == 10_000 - config.burst
    size = g.footprint()
    assert size["active"] == config.burst
    assert size["expiry_heap"] <= 2 * config.burst + 64
    assert size["counters"] == len(g.counters) + len(g.streaks())
    assert g.counters[RATE_LIMIT] == 10_000 - config.burst

    # a minute of packet time refills the bucket (up to the burst, not beyond)
    later = [g.check(verdict(public(20_000 + i)), T0 + 60) for i in range(40)]
    assert sum(r.allowed for r in later) == config.burst
    assert f"closed after {10_000 - config.burst} verdicts" in later[0].note
    assert sum(r.loud for r in later) == 1  # a new streak, a new loud refusal


def test_the_rate_limit_follows_the_packet_clock() -> None:
    config = GuardConfig(rate_per_minute=30, burst=5)
    g = guards(config)
    seconds = 600
    allowed = sum(g.check(verdict(public(i)), T0 + i).allowed for i in range(seconds))
    expected = config.burst + (seconds - 1) * config.rate_per_minute / 60  # refill 0.5/s
    assert abs(allowed - expected) <= 1
    # time running backwards (interleaved captures) refills nothing
    g2 = guards(config)
    for i in range(config.burst):
        assert g2.check(verdict(public(i)), T0 + 100).allowed
    assert not g2.check(verdict(public(99)), T0).allowed
    assert not g2.check(verdict(public(98)), T0 + 100).allowed


def test_refused_verdicts_spend_no_tokens() -> None:
    g = guards(GuardConfig(burst=2), gateways=["10.0.0.1"])
    for _ in range(100):
        assert g.check(verdict("10.0.0.1", "block_host"), T0).rule == PROTECTED
        assert g.check(verdict("10.0.0.0/8", "block_host"), T0).rule == PROTECTED
    assert g.check(verdict("8.8.8.8"), T0).allowed
    assert g.check(verdict("8.8.4.4"), T0).allowed


def test_the_host_cap_falls_back_to_alert_and_release_frees_a_slot() -> None:
    config = GuardConfig(max_blocked_hosts=3, rate_per_minute=1e9, burst=10**9)
    g = guards(config)
    assert all(g.check(verdict(f"10.0.0.{i}", "block_host"), T0).allowed for i in (1, 2, 3))
    fourth = g.check(verdict("10.0.0.4", "block_host"), T0)
    fifth = g.check(verdict("10.0.0.5", "block_host"), T0)
    assert fourth.rule == HOST_CAP and fourth.loud and fourth.fallback == "alert"
    assert "3 internal hosts" in fourth.reason and "alert-only" in fourth.reason
    assert fifth.rule == HOST_CAP and not fifth.loud and fifth.streak == 2
    # destinations are not hosts; a refresh of a held host needs no new slot
    assert g.check(verdict("8.8.8.8"), T0).allowed
    refresh = g.check(verdict("10.0.0.1", "block_host", ttl=7200), T0 + 10)
    assert refresh.allowed and "refresh" in refresh.note
    assert g.release("10.0.0.2") and not g.release("10.0.0.2")
    sixth = g.check(verdict("10.0.0.6", "block_host"), T0 + 20)
    assert sixth.allowed and "closed after 2" in sixth.note
    assert g.footprint()["active_hosts"] == 3


def test_expiry_on_the_packet_clock_frees_host_slots() -> None:
    g = guards(GuardConfig(max_blocked_hosts=1, rate_per_minute=1e9, burst=10**9))
    assert g.check(verdict("10.0.0.1", "block_host", ttl=60), T0).allowed
    assert g.check(verdict("10.0.0.2", "block_host"), T0 + 59).rule == HOST_CAP
    assert g.check(verdict("10.0.0.2", "block_host", decided_at=T0 + 60), T0 + 60).allowed
    assert set(g.active(T0 + 60)) == {"10.0.0.2"}


def test_a_refresh_extends_the_held_expiry_and_never_shortens_it() -> None:
    g = guards()
    g.check(verdict("8.8.8.8", ttl=7200), T0)
    g.check(verdict("8.8.8.8", ttl=600), T0 + 10)
    assert g.active(T0 + 10)["8.8.8.8"] == T0 + 7200
    g.check(verdict("8.8.8.8/32", ttl=7200, decided_at=T0 + 100), T0 + 100)  # same target
    assert g.active(T0 + 100) == {"8.8.8.8": T0 + 7300}


def test_the_table_cap_bounds_the_active_blocks() -> None:
    config = GuardConfig(max_active_blocks=100, rate_per_minute=1e9, burst=10**9)
    g = guards(config)
    results = [g.check(verdict(public(i)), T0) for i in range(10_000)]
    assert sum(r.allowed for r in results) == 100
    assert sum(r.loud for r in results) == 1
    assert {r.rule for r in results if not r.allowed} == {TABLE_CAP}
    assert g.footprint()["active"] == 100 and g.footprint()["expiry_heap"] <= 264


def test_a_storm_of_refreshes_keeps_the_expiry_heap_bounded() -> None:
    g = guards()
    for i in range(10_000):
        assert g.check(verdict("8.8.8.8", decided_at=T0 + i), T0 + i).allowed
    assert g.footprint()["active"] == 1
    assert g.footprint()["expiry_heap"] <= 2 + 64


def test_release_normalises_spellings() -> None:
    g = guards()
    g.check(verdict("2a00:1450:4001::/48"), T0)
    g.check(verdict("transfer.example", kind="domain"), T0)
    assert g.release("2A00:1450:4001:0000::/48")
    assert g.release("Transfer.Example.")
    assert not g.release("garbage ..")
    assert g.footprint()["active"] == 0


# -- the refusal record ------------------------------------------------------------------


def test_the_refusal_record_names_the_verdict_rule_and_reason() -> None:
    g = guards(gateways=["10.0.0.1"])
    v = verdict("10.0.0.1", "block_host")
    result = g.check(v, T0)
    record = refusal_record(v, result, T0)
    assert record["event_type"] == "verdict_refused"
    assert record["timestamp"].startswith("2025-06-15T")
    body = record["verdict_refused"]
    assert body["verdict_id"] == v.id and body["rule"] == PROTECTED
    assert body["reason"] == result.reason and body["fallback"] == "alert"
    assert body["finding_ids"] == ["f-1"]


def test_config_rejects_nonsense() -> None:
    for bad in (
        {"min_prefix_v4": 33},
        {"ttl_min": 0},
        {"ttl_min": 10, "ttl_max": 5},
        {"rate_per_minute": 0},
        {"burst": 0},
    ):
        with pytest.raises(ValueError):
            GuardConfig(**bad)  # type: ignore[arg-type]


# -- the property: a protected address is never a block target ----------------------------

EVERYTHING = GuardConfig(
    home_net=("0.0.0.0/0", "::/0"),
    treat_as_external=("0.0.0.0/0", "::/0"),
    min_prefix_v4=0,
    min_prefix_v6=0,
    ttl_min=1,
    rate_per_minute=1e9,
    burst=10**9,
    max_blocked_hosts=10**6,
)


def spellings_v4(address: ipaddress.IPv4Address, prefix: int) -> list[str]:
    net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    mapped = ipaddress.IPv6Address(0xFFFF00000000 | int(net.network_address))
    forms = [
        f"{net.network_address}/{prefix}",
        f"{address}/{prefix}",
        f"::ffff:{net.network_address}/{96 + prefix}",
        f"::ffff:{address}/{96 + prefix}",
        f"{mapped.exploded}/{96 + prefix}",
        f"64:ff9b::{net.network_address}/{96 + prefix}",
        f"::/{min(80, prefix)}",
    ]
    if prefix == 32:
        forms += [
            str(address),
            f"::ffff:{address}",
            f"::FFFF:{int(address) >> 16:X}:{int(address) & 0xFFFF:X}",
        ]
    return forms


def spellings_v6(address: ipaddress.IPv6Address, prefix: int) -> list[str]:
    net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    forms = [
        f"{net.network_address}/{prefix}",
        f"{address}/{prefix}",
        f"{net.network_address.exploded.upper()}/{prefix}",
    ]
    if prefix == 128:
        forms += [str(address), address.exploded, f"{address}%eth0"]
    return forms


def protected_spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    if address.version == 4:
        return [str(address), f"{address}/32", f"::ffff:{address}"]
    return [str(address), address.exploded.upper(), f"{address}/128"]


addresses = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address) | st.integers(0, 2**128 - 1).map(
    ipaddress.IPv6Address
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(address=addresses, data=st.data())
def test_a_protected_address_is_never_allowed_however_it_is_written(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    width = 32 if address.version == 4 else 128
    prefix = data.draw(st.integers(0, width), label="prefix")
    spelled = data.draw(st.sampled_from(protected_spellings(address)), label="protected as")
    guarded = Guards(EVERYTHING, ProtectedSet.of(own=[spelled]))
    unguarded = Guards(EVERYTHING, ProtectedSet.of())
    forms = spellings_v4(address, prefix) if address.version == 4 else spellings_v6(address, prefix)
    for target in forms:
        for action in ("block_host", "block_destination"):
            v = verdict(target, action, kind="cidr" if "/" in target else "ip")
            result = guarded.check(v, T0)
            assert not result.allowed and result.rule == PROTECTED, (target, action, spelled)
        # the control: without the protection this configuration lets the same target through
        control = unguarded.check(verdict(target, kind="cidr" if "/" in target else "ip"), T0)
        assert control.allowed, (target, control.reason)


@settings(max_examples=200, deadline=None)
@given(address=addresses, data=st.data())
def test_nothing_inside_a_protected_network_is_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    width = 32 if address.version == 4 else 128
    outer = data.draw(st.integers(0, width), label="protected prefix")
    inner = data.draw(st.integers(outer, width), label="target prefix")
    protected = ipaddress.ip_network(f"{address}/{outer}", strict=False)
    target = ipaddress.ip_network(f"{address}/{inner}", strict=False)
    g = Guards(EVERYTHING, ProtectedSet.of(networks=[str(protected)]))
    result = g.check(verdict(str(target)), T0)
    assert result.rule == PROTECTED, (str(protected), str(target))


def test_the_allowed_rule_is_named() -> None:
    assert guards().check(verdict("8.8.8.8"), T0).rule == ALLOWED
