"""The delivery stage (sensor/verdicts/delivery.py) between the pipeline and the backends,
with a real outbox file and real guards; the backend records what reaches it (the real
backends are tested against the real things in their own files and end to end in
tests/e2e/test_enforce.py).

- 10,000 block verdicts in a burst: the rate limit engages after the burst, every other
  verdict is a `verdict_refused` event, exactly one `blocking_suspended` finding says so, the
  outbox holds only what was allowed, and memory stays bounded (what the pipeline's thread
  keeps does not grow with the burst).
- The kill switch: nothing reaches the outbox while the file exists; one loud finding.
- Delivery: an accepted verdict reaches the backend with its remaining time; a backend that is
  down loses nothing (delivered once it is back).
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import jsonschema

from sensor.policy.decide import verdict_fields
from sensor.policy.verdict import Verdict, verdict_id
from sensor.verdicts.base import BackendError, Held
from sensor.verdicts.delivery import Delivery
from sensor.verdicts.guards import GuardConfig, Guards, ProtectedSet
from sensor.verdicts.outbox import Outbox

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "sensor" / "outputs" / "events.schema.json").read_text()
)
T0 = 1_800_000_000.0


class Recorder:
    """A backend that records the calls it gets and can be down."""

    name = "recorder"

    def __init__(self) -> None:
        self.blocks: list[tuple[str, float]] = []
        self.down = False

    def block(self, verdict: Verdict, remaining: float) -> None:
        if self.down:
            raise BackendError("connection refused")
        self.blocks.append((verdict.target, remaining))

    def unblock(self, verdict: Verdict) -> None:
        pass

    def held(self) -> list[Held]:
        return [Held(t, "hosts", r, None) for t, r in self.blocks]


def record(n: int, at: float) -> dict[str, Any]:
    target = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    verdict = Verdict(
        id=verdict_id("block_host", target, f"inc-{n}", at), action="block_host",
        target=target, target_kind="ip", ttl=3600.0, decided_at=at, reason="test",
        severity="high", confidence=0.9, finding_ids=(f"f{n}",), incident_id=f"inc-{n}",
        policy_rule="sensitive-upload", mode="enforce",
    )  # fmt: skip
    return {
        "timestamp": "2027-01-15T08:00:00.000000Z", "event_type": "verdict", "src_ip": target,
        "verdict": verdict_fields(verdict),
    }  # fmt: skip


def delivery(
    tmp_path: Path, backend: Recorder, emit: Any, clock: Any = lambda: T0 + 1.0, **kw: Any
) -> Delivery:
    guards = Guards(GuardConfig(max_blocked_hosts=100_000), ProtectedSet.of())
    return Delivery(
        Outbox(tmp_path / "outbox.db"), [backend], guards, emit, lambda _: None,
        clock=clock, **kw,
    )  # fmt: skip


def test_a_burst_of_10000_engages_the_rate_limit_and_stays_bounded(tmp_path: Path) -> None:
    kinds: dict[str, int] = {}
    kept: list[dict[str, Any]] = []  # the first event of each kind, to check the schema

    def emit(event: dict[str, Any]) -> None:
        kind = event["event_type"]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kinds[kind] == 1:
            kept.append(event)

    stage = delivery(tmp_path, Recorder(), emit)
    tracemalloc.start()
    for n in range(10_000):
        stage(record(n, T0))
        if n == 999:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stage.accepted == GuardConfig().burst == 20
    assert stage.refused == 10_000 - 20
    assert kinds == {"verdict_refused": stage.refused, "finding": 1}
    refusal, loud = kept
    assert refusal["verdict_refused"]["rule"] == "rate_limit"
    assert loud["finding"]["kind"] == "blocking_suspended"
    for event in kept:
        jsonschema.validate(event, SCHEMA)
    assert stage.outbox.counts() == {("recorder", "pending"): 20}
    assert peak - base < 1_000_000  # 9,000 more verdicts, nothing kept per verdict


def test_the_kill_switch_stops_every_block_and_says_so_once(tmp_path: Path) -> None:
    emitted: list[dict[str, Any]] = []
    stage = delivery(tmp_path, Recorder(), emitted.append, killed=lambda: True)
    for n in range(50):
        stage(record(n, T0))
    assert stage.accepted == 0 and stage.refused == 50
    assert stage.outbox.counts() == {}
    (finding,) = [e for e in emitted if e["event_type"] == "finding"]
    assert "kill switch" in finding["finding"]["detail"]


def test_a_backend_down_then_back_loses_nothing(tmp_path: Path) -> None:
    backend = Recorder()
    backend.down = True
    now = [T0 + 1.0]
    stage = delivery(tmp_path, backend, lambda _: None, clock=lambda: now[0])
    stage(record(7, T0))
    for _ in range(5):  # down for a while: retried with backoff, nothing lost
        stage._pass()
        now[0] += 1.0
    assert backend.blocks == []
    backend.down = False
    for _ in range(600):
        now[0] += 1.0
        stage._pass()
        if backend.blocks:
            break
    ((target, remaining),) = backend.blocks
    assert target == "10.0.0.7"
    assert remaining == 3600.0 - (now[0] - T0)  # the remaining time, not the full hour


def test_the_guards_ttl_cap_is_what_is_stored_and_sent(tmp_path: Path) -> None:
    backend = Recorder()
    stage = delivery(tmp_path, backend, lambda _: None)
    event = record(1, T0)
    event["verdict"]["ttl"] = 30 * 86400.0  # a policy may ask for 720h
    event["verdict"]["expires_at"] = T0 + 30 * 86400.0
    stage(event)
    stage._pass()
    ((_, remaining),) = backend.blocks
    assert remaining == GuardConfig().ttl_max - 1.0  # clamped to 7 days, 1 s later


def test_the_kill_switch_also_holds_what_was_accepted_before(tmp_path: Path) -> None:
    backend = Recorder()
    killed = [False]
    stage = delivery(tmp_path, backend, lambda _: None, killed=lambda: killed[0])
    stage(record(1, T0))  # accepted before the switch
    killed[0] = True
    stage._pass()
    stage._reconcile(T0 + 2.0)
    assert backend.blocks == []
    killed[0] = False
    stage._pass()
    assert [t for t, _ in backend.blocks] == ["10.0.0.1"]


def test_a_block_whose_target_became_protected_is_revoked_at_start(tmp_path: Path) -> None:
    first = delivery(tmp_path, Recorder(), lambda _: None)
    first(record(1, T0))
    first(record(2, T0))
    first.outbox.close()
    # Restarted with 10.0.0.1 on the never-block list: that block goes, the other stays.
    guards = Guards(GuardConfig(), ProtectedSet.of(networks=["10.0.0.1"]))
    warned: list[str] = []
    second = Delivery(Outbox(tmp_path / "outbox.db"), [Recorder()], guards, lambda _: None,
                      warned.append, clock=lambda: T0 + 5.0)  # fmt: skip
    second.restore(T0 + 5.0)
    assert any("revoking block_host 10.0.0.1" in w for w in warned)
    targets = {st.target for st in second.outbox.state() if st.state == "pending"}
    assert targets == {"10.0.0.2"}
    assert set(guards.active(T0 + 5.0)) == {"10.0.0.2"}  # the host cap counts it


def test_a_block_removed_elsewhere_frees_its_host_slot(tmp_path: Path) -> None:
    guards = Guards(GuardConfig(max_blocked_hosts=1), ProtectedSet.of())
    refused: list[dict[str, Any]] = []
    stage = Delivery(Outbox(tmp_path / "outbox.db"), [Recorder()], guards, refused.append,
                     lambda _: None, clock=lambda: T0 + 1.0)  # fmt: skip
    stage(record(1, T0))
    stage(record(2, T0))  # the cap of one host
    assert [r["verdict_refused"]["rule"] for r in refused if "verdict_refused" in r] == ["host_cap"]
    (held,) = [st for st in stage.outbox.state() if st.target == "10.0.0.1"]
    stage.outbox.revoke(held.verdict_id, T0 + 1.0)  # what `sluice blocks remove` does
    stage.restore(T0 + 1.0)
    refused.clear()
    stage(record(3, T0))
    assert not [r for r in refused if "verdict_refused" in r]


class Hanging(Recorder):
    """A backend whose calls hang until released (a blackholed API)."""

    name = "hanging"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def block(self, verdict: Verdict, remaining: float) -> None:
        self.entered.set()
        self.release.wait(30)
        super().block(verdict, remaining)


def test_a_hanging_backend_does_not_hold_up_the_others(tmp_path: Path) -> None:
    fast, slow = Recorder(), Hanging()
    guards = Guards(GuardConfig(), ProtectedSet.of())
    stage = Delivery(Outbox(tmp_path / "outbox.db"), [slow, fast], guards, lambda _: None,
                     lambda _: None, interval=0.01)  # fmt: skip
    stage.start()
    try:
        stage(record(1, time.time()))
        assert slow.entered.wait(10)  # the hanging backend is in its call...
        deadline = time.monotonic() + 10
        while not fast.blocks and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [t for t, _ in fast.blocks] == ["10.0.0.1"]  # ...and the other delivered
        assert slow.blocks == []
    finally:
        slow.release.set()
        stage.stop()
    assert [t for t, _ in slow.blocks] == ["10.0.0.1"]
