"""sensor.verdicts.ebpfblock: verdicts in the eBPF probe's kernel block map, for real.

The lab of tests/probes/test_ebpf.py (three network namespaces, a forwarding gateway, a
private bpffs mounted for the pins; the root namespace and /sys/fs/bpf are never touched)::

    lan ns                         gw ns (forwarding)                    wan ns
    lan0 10.99.1.2, .3   <->  gwlan 10.99.1.1     gwwan 10.99.2.1  <->  wan0 10.99.2.2
         fd00:99:1::2, ::3         fd00:99:1::1        fd00:99:2::1          fd00:99:2::2
                           XDP here (ingress)   TC here (egress)

"Blocked" means real UDP datagrams from a lan address stop arriving in the wan namespace and
the map's drop counter for that source goes up; "flowing" means they all arrive.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from probes.ebpf.loader import EbpfProbe
from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held
from sensor.verdicts.ebpfblock import EbpfBlockBackend
from sensor.verdicts.outbox import Outbox
from tests.probes.test_ebpf import (
    H4A,
    H4B,
    H6A,
    H6B,
    SINK4,
    SINK6,
    Lab,
    Sink,
    ebpf_lab,
    poll,
    send_udp,
)

COUNT, SIZE = 20, 300


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with ebpf_lab("sleb") as made:
        yield made


@pytest.fixture
def sink(lab: Lab) -> Iterator[Sink]:
    s = Sink(lab.wan)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def attached(lab: Lab, name: str, mode: str = "xdp", **kw: object) -> Iterator[EbpfProbe]:
    """An attached probe on fresh pins, detached and unpinned afterwards."""
    probe = lab.probe(name, mode, **kw)
    try:
        with probe:
            yield probe
    finally:
        probe.remove_pins()


def verdict(vid: str, target: str, ttl: float = 600.0, action: str = "block_host") -> Verdict:
    return Verdict(
        id=vid, action=action, target=target, target_kind=target_kind(target), ttl=ttl,
        decided_at=time.time(), reason="test", severity="high", confidence=1.0,
        finding_ids=(), incident_id="inc-1", policy_rule="test", mode="enforce",
    )  # fmt: skip


def traffic(
    lab: Lab, sink: Sink, sources: list[str], *, dropped: tuple[str, ...] = ()
) -> dict[str, int]:
    """COUNT datagrams from each source; what arrived from each once the wire is quiet.
    Waits for the sources expected to flow, then for stragglers (`dropped` are expected
    to be blocked: no point waiting for them, but whatever comes is counted)."""
    before = Counter(sink.got)
    for src in sources:
        send_udp(lab, src, SINK6 if ":" in src else SINK4, COUNT, SIZE)
    sink.wait_for(before + Counter({s: COUNT for s in sources if s not in dropped}))
    sink.drain_quiet()
    return {s: sink.got[s] - before[s] for s in sources}


ALL = [H4A, H4B, H6A, H6B]


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["xdp", "tc"])
def test_blocked_sources_are_dropped_others_flow_and_unblock_restores(
    lab: Lab, sink: Sink, mode: str
) -> None:
    with attached(lab, f"eb-drop-{mode}", mode) as probe, EbpfBlockBackend(probe) as backend:
        assert traffic(lab, sink, ALL) == dict.fromkeys(ALL, COUNT)  # the lab works

        v4, v6 = verdict("v-4b", H4B), verdict("v-6b", H6B)
        backend.block(v4, 600.0)
        backend.block(v6, 600.0)
        backend.block(v6, 600.0)  # idempotent
        got = traffic(lab, sink, ALL, dropped=(H4B, H6B))
        assert got == {H4A: COUNT, H4B: 0, H6A: COUNT, H6B: 0}
        assert probe.blocked() == {H4B: COUNT, H6B: COUNT}  # the kernel counted the drops
        held = {h.target: h for h in backend.held()}
        assert set(held) == {H4B, H6B}
        assert held[H4B].verdict_id == "v-4b" and held[H6B].verdict_id == "v-6b"
        assert all(h.kind == "hosts" and 590 < h.remaining <= 600 for h in held.values())

        backend.unblock(verdict("v-other", H4B))  # another verdict's unblock: not ours
        assert set(probe.blocked()) == {H4B, H6B}
        backend.unblock(v4)
        backend.unblock(v4)  # absent is success
        assert traffic(lab, sink, ALL, dropped=(H6B,)) == {
            H4A: COUNT,
            H4B: COUNT,
            H6A: COUNT,
            H6B: 0,
        }
        backend.unblock(v6)
        assert probe.blocked() == {} and backend.held() == []
        assert traffic(lab, sink, ALL) == dict.fromkeys(ALL, COUNT)


@pytest.mark.privileged
def test_a_block_lifts_by_itself_at_expiry(lab: Lab, sink: Sink) -> None:
    with attached(lab, "eb-expiry") as probe, EbpfBlockBackend(probe) as backend:
        blocked_at = time.time()
        backend.block(verdict("v-short", H6A, ttl=1.5), 1.5)
        backend.block(verdict("v-long", H4A), 600.0)
        assert traffic(lab, sink, [H6A, H4B], dropped=(H6A,)) == {H6A: 0, H4B: COUNT}
        assert time.time() < blocked_at + 1.5, "too slow to see the block before its expiry"
        assert poll(lambda: H6A not in probe.blocked(), deadline_s=5.0), probe.blocked()
        lifted_at = time.time()
        assert lifted_at >= blocked_at + 1.5  # not before its time ...
        assert lifted_at < blocked_at + 1.5 + 1.0  # ... and by the timer, promptly
        assert traffic(lab, sink, [H6A]) == {H6A: COUNT}
        assert [(h.target, h.verdict_id) for h in backend.held()] == [(H4A, "v-long")]


@pytest.mark.privileged
def test_expiry_on_an_injected_clock_and_remaining_times(lab: Lab) -> None:
    now = [1_000_000.0]
    with attached(lab, "eb-clock") as probe:
        backend = EbpfBlockBackend(probe, clock=lambda: now[0], timer=False)
        backend.block(verdict("v-a", H4A), 10.0)
        backend.block(verdict("v-b", H4B), 30.0)
        backend.block(verdict("v-a2", H4A), 50.0)  # a re-block refreshes to exactly that
        assert backend.next_expiry() == 1_000_030.0
        now[0] += 20
        assert backend.held() == [Held(H4A, "hosts", 30.0, "v-a2"), Held(H4B, "hosts", 10.0, "v-b")]
        assert backend.expire(now[0] + 9.9) == []
        assert backend.expire(now[0] + 10.0) == [H4B]
        assert set(probe.blocked()) == {H4A}
        now[0] += 30  # held() expires first: what the reconciler sees is never stale
        assert backend.held() == [] and probe.blocked() == {}
        backend.block(verdict("v-late", H4B), 0.0)  # ran out on the way: nothing to do
        assert probe.blocked() == {}


@pytest.mark.privileged
def test_entries_not_put_there_by_us_are_reported_and_never_removed(lab: Lab) -> None:
    with attached(lab, "eb-foreign") as probe:
        backend = EbpfBlockBackend(probe, timer=False)
        probe.block(H6B)  # e.g. an operator, or a run whose ownership was not kept
        assert backend.held() == [Held(H6B, "hosts", math.inf, None)]
        backend.block(verdict("v-6b", H6B), 5.0)  # already enforced; not adopted
        assert backend.held() == [Held(H6B, "hosts", math.inf, None)]
        backend.unblock(verdict("v-6b", H6B))
        backend.unblock(verdict("", H6B))  # the reconciler's stand-in for an unknown owner
        assert backend.expire(time.time() + 3600) == []
        assert set(probe.blocked()) == {H6B}


@pytest.mark.privileged
def test_networks_destinations_names_and_alerts_are_refused_clearly(lab: Lab) -> None:
    cases = [
        (verdict("v-net", "10.99.1.0/24"), "single source addresses"),
        (verdict("v-net6", "fd00:99:1::/64"), "single source addresses"),
        (verdict("v-name", "transfer.example"), "single source addresses"),
        (verdict("v-dst", SINK4, action="block_destination"), "SOURCE address"),
        (verdict("v-alert", H4A, action="alert"), "only alerts"),
    ]
    with attached(lab, "eb-refuse") as probe:
        backend = EbpfBlockBackend(probe, timer=False)
        for v, words in cases:
            with pytest.raises(BackendError, match=words) as err:
                backend.block(v, 600.0)
            assert not err.value.transient, v.target
            assert v.target in str(err.value) or v.id in str(err.value)
            backend.unblock(v)  # nothing of these can be there: success
        assert probe.blocked() == {}


@pytest.mark.privileged
def test_a_full_map_is_a_permanent_error_naming_max_blocked(lab: Lab) -> None:
    with attached(lab, "eb-full", max_blocked=2) as probe:
        backend = EbpfBlockBackend(probe, timer=False)
        backend.block(verdict("v-1", H4A), 60.0)
        backend.block(verdict("v-2", H6A), 60.0)
        with pytest.raises(BackendError, match=r"full \(max_blocked = 2 sources\)") as err:
            backend.block(verdict("v-3", H4B), 60.0)
        assert not err.value.transient
        backend.block(verdict("v-1b", H4A), 90.0)  # refreshing an entry needs no room
        assert set(probe.blocked()) == {H4A, H6A}
        assert {h.target: h.verdict_id for h in backend.held()} == {H4A: "v-1b", H6A: "v-2"}


@pytest.mark.privileged
def test_ownership_survives_a_restart_through_the_state_file(lab: Lab, tmp_path: Path) -> None:
    state = tmp_path / "ebpfblock.json"
    now = [2_000_000.0]
    pin_dir = lab.pin_dir("eb-restart")
    try:
        with lab.probe("eb-restart", "xdp") as first:
            backend = EbpfBlockBackend(first, state_path=state, clock=lambda: now[0], timer=False)
            backend.block(verdict("v-long", H4B), 600.0)
            backend.block(verdict("v-short", H6B), 5.0)
            first.block(H4A)  # not ours
            backend.close()
        assert json.loads(state.read_text())["blocks"] == {
            H4B: {"verdict_id": "v-long", "expires_at": 2_000_600.0},
            H6B: {"verdict_id": "v-short", "expires_at": 2_000_005.0},
        }
        now[0] += 60  # the sensor was down while v-short ran out
        with lab.probe("eb-restart", "xdp") as second:
            assert set(second.blocked()) == {H4A, H4B, H6B}  # the pinned map survived
            forgetful = EbpfBlockBackend(second, timer=False)  # no state file: all foreign
            assert {h.verdict_id for h in forgetful.held()} == {None}
            backend = EbpfBlockBackend(second, state_path=state, clock=lambda: now[0],
                                       timer=False)  # fmt: skip
            assert backend.held() == [Held(H4A, "hosts", math.inf, None),
                                      Held(H4B, "hosts", 540.0, "v-long")]  # fmt: skip
            assert set(second.blocked()) == {H4A, H4B}
            assert set(json.loads(state.read_text())["blocks"]) == {H4B}
    finally:
        EbpfProbe("x", pin_dir=pin_dir).remove_pins()


def test_a_damaged_state_file_is_a_clear_permanent_error(tmp_path: Path) -> None:
    state = tmp_path / "ebpfblock.json"
    state.write_text('{"version": 1, "blocks": {"10.0.0.1": {"verdict_id": "x"}}}')
    with pytest.raises(BackendError, match="damaged") as err:
        EbpfBlockBackend(object(), state_path=state, timer=False)  # type: ignore[arg-type]
    assert not err.value.transient and str(state) in str(err.value)


@pytest.mark.privileged
def test_driven_by_the_outbox_from_verdict_to_drop_to_expiry(
    lab: Lab, sink: Sink, tmp_path: Path
) -> None:
    with attached(lab, "eb-outbox") as probe, EbpfBlockBackend(probe) as backend:
        probe.block(H6A)  # someone else's: the reconciler must leave it
        with Outbox(tmp_path / "outbox.db") as outbox:
            start = time.time()
            v = verdict("v-outbox", H4B, ttl=2.0)
            assert outbox.accept(v, [backend], now=start)
            report = outbox.deliver_due(time.time(), [backend])
            assert report.delivered == 1, report
            assert traffic(lab, sink, [H4A, H4B], dropped=(H4B,)) == {H4A: COUNT, H4B: 0}
            outbox.reconcile(time.time(), backend)
            assert set(probe.blocked()) == {H4B, H6A}
            # The outbox sends nothing at expiry; the backend's own timer lifts the block.
            assert poll(lambda: H4B not in probe.blocked(), deadline_s=5.0)
            assert time.time() >= v.expires_at
            outbox.deliver_due(time.time(), [backend])
            outbox.reconcile(time.time(), backend)
            assert set(probe.blocked()) == {H6A}
            assert traffic(lab, sink, [H4B]) == {H4B: COUNT}


@pytest.mark.privileged
def test_concurrent_blocks_unblocks_and_readers_leave_map_and_table_consistent(
    lab: Lab, sink: Sink
) -> None:
    hosts = [f"10.99.1.{100 + i}" for i in range(24)]  # past the program's 16-entry scan copy
    with attached(lab, "eb-threads") as probe, EbpfBlockBackend(probe) as backend:
        errors: list[BaseException] = []
        stop = threading.Event()

        def writer(mine: list[str]) -> None:
            try:
                for round_ in range(30):
                    for ip in mine:
                        backend.block(verdict(f"v-{ip}-{round_}", ip), 600.0)
                    for ip in mine[::2]:
                        backend.unblock(verdict(f"v-{ip}-{round_}", ip))
            except BaseException as exc:
                errors.append(exc)

        def reader() -> None:
            try:
                while not stop.is_set():
                    probe.read_counters()
                    probe.read_stats()
                    backend.held()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(hosts[i::4],)) for i in range(4)]
        threads.append(threading.Thread(target=reader))
        backend.block(verdict("v-4b", H4B), 600.0)
        for t in threads:
            t.start()
        for t in threads[:4]:
            t.join()
        stop.set()
        threads[4].join()
        assert errors == []
        kept = {ip for i in range(4) for ip in hosts[i::4][1::2]} | {H4B}
        assert set(probe.blocked()) == kept
        assert {h.target for h in backend.held() if h.verdict_id} == kept
        # the program's view agrees: H4B (looked up in the long list) is dropped, H4A is not
        assert traffic(lab, sink, [H4A, H4B], dropped=(H4B,)) == {H4A: COUNT, H4B: 0}
