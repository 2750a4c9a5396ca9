"""The OPNsense backend against a local server speaking the alias_util wire format
(tests/verdicts/opnsense_fake.py), and, in network namespaces, against real traffic.

Wire-level tests run the server without a namespace (the aliases live in the server only);
the traffic tests give it the gateway namespace of a three-namespace lab, where every alias
change becomes an nft set and a forward rule drops what the alias names. Nothing here
touches the root namespace (the server listens on 127.0.0.1 there, a plain socket).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcaps._lib.gatewaylab import CLIENT, SERVER, GatewayLab, gateway_lab, wait
from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError
from sensor.verdicts.opnsense import OpnsenseBackend
from sensor.verdicts.outbox import Outbox
from tests.conftest import require_root_netns, require_tool
from tests.verdicts.opnsense_fake import FakeOpnsense, running

KEY, SECRET = "w86XNZobTestKey", "s3cr3t+Test/Secret=="
HOSTS, DESTS = "sluice_hosts", "sluice_destinations"
ALIASES = {HOSTS: "src", DESTS: "dst"}
OTHER_CLIENT = "10.10.0.11"
T0 = 1_760_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verdict(vid: str, action: str, target: str, ttl: float = 600.0) -> Verdict:
    return Verdict(
        id=vid, action=action, target=target, target_kind=target_kind(target), ttl=ttl,
        decided_at=T0, reason="test", severity="high", confidence=1.0, finding_ids=(),
        incident_id="inc-1", policy_rule="test", mode="enforce",
    )  # fmt: skip


def entries(fake: FakeOpnsense, alias: str) -> set[str]:
    return {str(n) for n in fake.tables[alias]}


def held(backend: OpnsenseBackend) -> dict[str, tuple[str, str | None, float]]:
    return {h.target: (h.kind, h.verdict_id, h.remaining) for h in backend.held()}


@pytest.fixture
def fake() -> Iterator[FakeOpnsense]:
    with running(FakeOpnsense(KEY, SECRET, ALIASES)) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(fake: FakeOpnsense, clock: Clock, tmp_path: Path) -> Iterator[OpnsenseBackend]:
    with OpnsenseBackend(
        fake.url, KEY, SECRET, state_path=tmp_path / "opnsense.db", clock=clock
    ) as b:
        yield b


# -- the wire format -------------------------------------------------------------------------


def test_add_list_delete_round_trip(fake: FakeOpnsense, backend: OpnsenseBackend) -> None:
    backend.block(verdict("v-h", "block_host", "10.1.2.3"), 600)
    backend.block(verdict("v-d", "block_destination", "203.0.113.7"), 300)
    backend.block(verdict("v-n", "block_destination", "198.51.100.0/24"), 120)
    backend.block(verdict("v-6", "block_destination", "2001:DB8:0:0::10"), 60)
    assert entries(fake, HOSTS) == {"10.1.2.3/32"}
    assert entries(fake, DESTS) == {"203.0.113.7/32", "198.51.100.0/24", "2001:db8::10/128"}
    # what went over the wire: JSON POSTs, one address each, lower-case compressed IPv6
    adds = [(p, b) for m, p, b in fake.requests if p.startswith("/api/firewall/alias_util/add")]
    assert adds[0] == (f"/api/firewall/alias_util/add/{HOSTS}", {"address": "10.1.2.3"})
    assert adds[3][1] == {"address": "2001:db8::10"}
    assert held(backend) == {
        "10.1.2.3": ("hosts", "v-h", 600.0),
        "203.0.113.7": ("destinations", "v-d", 300.0),
        "198.51.100.0/24": ("destinations", "v-n", 120.0),
        "2001:db8::10": ("destinations", "v-6", 60.0),
    }
    for vid, action, target in (("v-h", "block_host", "10.1.2.3"),
                                ("v-n", "block_destination", "198.51.100.0/24")):  # fmt: skip
        backend.unblock(verdict(vid, action, target))
    assert entries(fake, HOSTS) == set()
    assert set(held(backend)) == {"203.0.113.7", "2001:db8::10"}


def test_block_is_idempotent_and_a_later_verdict_takes_over(
    fake: FakeOpnsense, backend: OpnsenseBackend, clock: Clock
) -> None:
    v = verdict("v-1", "block_host", "10.1.2.3")
    backend.block(v, 600)
    backend.block(v, 600)  # a retried delivery
    assert entries(fake, HOSTS) == {"10.1.2.3/32"}
    assert held(backend) == {"10.1.2.3": ("hosts", "v-1", 600.0)}
    clock.now += 100
    backend.block(verdict("v-2", "block_host", "10.1.2.3", ttl=3600), 3600)
    assert held(backend) == {"10.1.2.3": ("hosts", "v-2", 3600.0)}
    assert entries(fake, HOSTS) == {"10.1.2.3/32"}


def test_unblock_removes_only_its_own(fake: FakeOpnsense, backend: OpnsenseBackend) -> None:
    a = verdict("v-a", "block_host", "10.1.2.3")
    b = verdict("v-b", "block_host", "10.1.2.4")
    for v in (a, b):
        backend.block(v, 600)
    backend.unblock(a)
    assert entries(fake, HOSTS) == {"10.1.2.4/32"}
    backend.unblock(a)  # absent: success
    # a verdict whose entry a later verdict refreshed removes nothing
    backend.block(verdict("v-c", "block_host", "10.1.2.4"), 900)
    backend.unblock(b)
    assert held(backend) == {"10.1.2.4": ("hosts", "v-c", 900.0)}
    # the same address blocked as a destination is another entry
    backend.block(verdict("v-d", "block_destination", "10.1.2.4"), 60)
    backend.unblock(verdict("v-c", "block_host", "10.1.2.4"))
    assert entries(fake, HOSTS) == set()
    assert entries(fake, DESTS) == {"10.1.2.4/32"}


def test_entries_sluice_does_not_know_are_reported_without_an_owner(
    fake: FakeOpnsense, backend: OpnsenseBackend
) -> None:
    fake.tables[DESTS].add(ipaddress.ip_network("192.0.2.9/32"))  # put there by hand
    assert held(backend) == {"192.0.2.9": ("destinations", None, float("inf"))}
    backend.unblock(verdict("", "block_destination", "192.0.2.9"))  # the reconciler's stand-in
    assert entries(fake, DESTS) == set()


def test_list_pages_beyond_the_first(fake: FakeOpnsense, backend: OpnsenseBackend) -> None:
    many = {ipaddress.ip_network(f"10.{i // 250}.{i % 250}.1/32") for i in range(10_050)}
    fake.tables[HOSTS] |= many
    found = [h.target for h in backend.held() if h.kind == "hosts"]
    assert len(found) == len(set(found)) == 10_050
    lists = [(m, b) for m, p, b in fake.requests if "/list/" in p and HOSTS in p]
    assert lists == [("GET", {}), ("POST", {"current": 2, "rowCount": 9999})]


# -- errors ---------------------------------------------------------------------------------


def test_wrong_credentials_are_not_transient_and_the_secret_stays_out(
    fake: FakeOpnsense, tmp_path: Path
) -> None:
    with OpnsenseBackend(fake.url, KEY, "bad-secret-XYZ", state_path=tmp_path / "s.db") as bad:
        with pytest.raises(BackendError, match="HTTP 401") as exc:
            bad.block(verdict("v-1", "block_host", "10.1.2.3"), 60)
        assert not exc.value.transient
        assert "Authentication Failed" in str(exc.value)
        with pytest.raises(BackendError, match="HTTP 401"):
            bad.held()
        assert "bad-secret-XYZ" not in str(exc.value) and "bad-secret-XYZ" not in repr(bad)
    assert entries(fake, HOSTS) == set()
    with OpnsenseBackend(fake.url, KEY, SECRET, state_path=tmp_path / "t.db") as good:
        assert "Test/Secret" not in repr(good)
        assert good.held() == []  # the state file of the failed block holds nothing


def test_server_down_is_transient(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with OpnsenseBackend(f"http://127.0.0.1:{port}", KEY, SECRET, state_path=tmp_path / "s.db",
                         timeout=2) as b:  # fmt: skip
        with pytest.raises(BackendError, match="ConnectionRefused") as exc:
            b.block(verdict("v-1", "block_host", "10.1.2.3"), 60)
        assert exc.value.transient
        assert b.next_expiry() is None  # the write-ahead row was rolled back


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (503, True), (429, True), (400, False), (404, False), (403, False)],
)
def test_http_status_decides_transience(
    fake: FakeOpnsense, backend: OpnsenseBackend, status: int, transient: bool
) -> None:
    fake.fail_with.append(status)
    with pytest.raises(BackendError, match=f"HTTP {status}") as exc:
        backend.block(verdict("v-1", "block_host", "10.1.2.3"), 60)
    assert exc.value.transient is transient
    backend.block(verdict("v-1", "block_host", "10.1.2.3"), 60)  # and then it goes through
    assert entries(fake, HOSTS) == {"10.1.2.3/32"}


def test_failed_status_in_the_body_carries_its_message(fake: FakeOpnsense, tmp_path: Path) -> None:
    with OpnsenseBackend(fake.url, KEY, SECRET, state_path=tmp_path / "s.db",
                         alias_hosts="no_such_alias") as b:  # fmt: skip
        with pytest.raises(BackendError, match="non existing alias no_such_alias") as exc:
            b.block(verdict("v-1", "block_host", "10.1.2.3"), 60)
        assert not exc.value.transient
        assert b.held() == []  # a missing alias lists as empty; only add tells


@pytest.mark.parametrize(("action", "target", "message"), [
    ("block_destination", "transfer.example", "addresses only"),
    ("alert", "203.0.113.9", "blocks nothing"),
])  # fmt: skip
def test_what_an_alias_cannot_hold_is_refused_for_good(
    fake: FakeOpnsense, backend: OpnsenseBackend, action: str, target: str, message: str
) -> None:
    with pytest.raises(BackendError, match=message) as exc:
        backend.block(verdict("v-x", action, target), 60)
    assert not exc.value.transient
    assert not any("/add/" in p for _, p, _ in fake.requests)


# -- expiry ---------------------------------------------------------------------------------


def test_expiry_removes_the_entry(
    fake: FakeOpnsense, backend: OpnsenseBackend, clock: Clock
) -> None:
    backend.block(verdict("v-short", "block_host", "10.1.2.3", ttl=30), 30)
    backend.block(verdict("v-long", "block_host", "10.1.2.4"), 600)
    assert backend.next_expiry() == T0 + 30
    clock.now += 29
    assert backend.expire() == 0
    assert entries(fake, HOSTS) == {"10.1.2.3/32", "10.1.2.4/32"}
    clock.now += 1
    assert backend.expire() == 1
    assert entries(fake, HOSTS) == {"10.1.2.4/32"}
    # without an explicit expire(): any call sweeps first
    clock.now += 600
    assert backend.held() == []
    assert entries(fake, HOSTS) == set()


def test_expiry_survives_a_restart_and_the_file_is_private(
    fake: FakeOpnsense, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "opnsense.db"
    with OpnsenseBackend(fake.url, KEY, SECRET, state_path=path, clock=clock) as first:
        first.block(verdict("v-1", "block_destination", "203.0.113.7", ttl=60), 60)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    clock.now += 30
    with OpnsenseBackend(fake.url, KEY, SECRET, state_path=path, clock=clock) as second:
        assert held(second) == {"203.0.113.7": ("destinations", "v-1", 30.0)}
        clock.now += 31
        assert second.expire() == 1
    assert entries(fake, DESTS) == set()


def test_with_the_outbox_lost_entries_return_and_expired_ones_go(
    fake: FakeOpnsense, backend: OpnsenseBackend, clock: Clock, tmp_path: Path
) -> None:
    """The real outbox: delivery, a firewall reboot (alias emptied) repaired by reconcile,
    and the expired entry removed by reconcile even though nobody called expire()."""
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        v = verdict("v-1", "block_host", "10.1.2.3", ttl=120)
        assert outbox.accept(v, [backend], now=clock.now)
        assert outbox.deliver_due(clock.now, [backend]).delivered == 1
        assert entries(fake, HOSTS) == {"10.1.2.3/32"}
        fake.flush(HOSTS)
        clock.now += 10
        assert outbox.reconcile(clock.now, backend).requeued == 1
        outbox.deliver_due(clock.now, [backend])
        assert held(backend) == {"10.1.2.3": ("hosts", "v-1", 110.0)}  # the remaining TTL
        # Sluice owns the alias: an entry no live verdict wants goes at the next reconcile
        fake.tables[HOSTS].add(ipaddress.ip_network("10.9.9.9/32"))
        assert outbox.reconcile(clock.now, backend).removed == 1
        assert entries(fake, HOSTS) == {"10.1.2.3/32"}
        # expiry: nobody calls expire(); the outbox's passes and reconcile are enough
        clock.now += 111
        outbox.deliver_due(clock.now, [backend])
        report = outbox.reconcile(clock.now, backend)
        assert entries(fake, HOSTS) == set()
        assert (report.held, report.errors) == (0, 0)
    finally:
        outbox.close()


# -- real traffic ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[GatewayLab]:
    require_root_netns()
    require_tool("nft")
    with gateway_lab("opnse", extra_clients=(OTHER_CLIENT,)) as lab:
        yield lab


@pytest.fixture
def enforcing(lab: GatewayLab) -> Iterator[FakeOpnsense]:
    with running(FakeOpnsense(KEY, SECRET, ALIASES, netns=lab.gateway)) as server:
        yield server


def test_blocks_stop_real_traffic_and_lift(
    lab: GatewayLab, enforcing: FakeOpnsense, clock: Clock, tmp_path: Path
) -> None:
    def reaches(source: str) -> bool:
        return lab.reachable(lab.client, source)

    with OpnsenseBackend(enforcing.url, KEY, SECRET, state_path=tmp_path / "s.db",
                         clock=clock) as b:  # fmt: skip
        assert reaches(CLIENT) and reaches(OTHER_CLIENT)
        host = verdict("v-host", "block_host", CLIENT, ttl=60)
        b.block(host, 60)
        assert enforcing.nft_elements(HOSTS, 4) == [CLIENT]
        assert not reaches(CLIENT)
        assert reaches(OTHER_CLIENT)  # another host keeps flowing
        b.unblock(host)
        assert wait(lambda: reaches(CLIENT), 5)

        dest = verdict("v-dest", "block_destination", f"{SERVER.rsplit('.', 1)[0]}.0/24", ttl=30)
        b.block(dest, 30)
        assert not reaches(CLIENT) and not reaches(OTHER_CLIENT)
        clock.now += 31
        assert b.expire() == 1
        assert enforcing.nft_elements(DESTS, 4) == []
        assert wait(lambda: reaches(CLIENT) and reaches(OTHER_CLIENT), 5)
