"""The webhook backend (sensor/verdicts/webhook.py) against a real HTTP receiver on
127.0.0.1 that checks every signature itself (its own HMAC, not the module's `verify`), and
with the durable outbox, to show what the reconciler does with a backend that can only
report what it was told."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.policy.verdict import Verdict, target_kind, verdict_id
from sensor.verdicts.base import BackendError
from sensor.verdicts.outbox import Outbox
from sensor.verdicts.webhook import REPLAY_WINDOW, WebhookBackend, sign, verify

T0 = 1_750_000_000.0
SECRET = b"webhook-secret-0123456789abcdef"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signed: bool  # the receiver's own HMAC check with SECRET

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the test receiver got, and what it answers next (statuses, or "hang")."""

    url: str = ""
    received: list[Delivery] = field(default_factory=list)
    script: list[int | str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stamp = self.headers.get("X-Sluice-Timestamp", "")
            mac = hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(
                f"sha256={mac}", self.headers.get("X-Sluice-Signature", "")
            )
            receiver.received.append(Delivery(dict(self.headers.items()), body, signed))
            action = receiver.script.pop(0) if receiver.script else (200 if signed else 401)
            if action == "hang":
                receiver.release.wait(10)
                return
            if action == 302:
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = b'{"ok": true}' if action == 200 else b"nope"
            self.send_response(int(action))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sluice?site=lab"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_verdict(
    target: str = "10.1.2.3", action: str = "block_host", *, incident: str = "inc-1"
) -> Verdict:
    return Verdict(
        id=verdict_id(action, target, incident, T0),
        action=action,
        target=target,
        target_kind=target_kind(target),
        ttl=3600.0,
        decided_at=T0,
        reason="encrypted upload to an unlisted destination",
        severity="high",
        confidence=0.9,
        finding_ids=("f-1", "f-2"),
        incident_id=incident,
        policy_rule="encrypted-upload",
        mode="enforce",
    )


def test_a_block_is_a_signed_json_post(receiver: Receiver, clock: Clock) -> None:
    hook = WebhookBackend(receiver.url, SECRET, clock=clock)
    verdict = make_verdict("2001:db8::7", "block_destination")
    hook.block(verdict, 1799.2)
    [got] = receiver.received
    assert got.signed
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Sluice-Timestamp"] == str(int(T0))
    assert got.headers["Idempotency-Key"] == f"{verdict.id}:block"
    body = got.json
    assert body["action"] == "block"
    assert body["remaining"] == 1800
    assert body["sent_at"] == int(T0)
    assert body["verdict"]["id"] == verdict.id
    assert body["verdict"]["target"] == "2001:db8::7"
    assert body["verdict"]["action"] == "block_destination"
    assert body["verdict"]["expires_at"] == T0 + 3600
    assert body["verdict"]["finding_ids"] == ["f-1", "f-2"]
    assert got.body == hook.body("block", verdict, 1800, int(T0))  # the documented bytes


def test_the_signature_fails_with_another_secret_or_a_changed_body(
    receiver: Receiver, clock: Clock
) -> None:
    with pytest.raises(BackendError) as info:
        WebhookBackend(receiver.url, b"another-secret-0123456789abcdef", clock=clock).block(
            make_verdict(), 60
        )
    assert not info.value.transient  # the receiver's 401
    [got] = receiver.received
    assert not got.signed
    stamp, signature = got.headers["X-Sluice-Timestamp"], got.headers["X-Sluice-Signature"]
    assert verify(b"another-secret-0123456789abcdef", stamp, got.body, signature, now=T0)
    assert not verify(SECRET, stamp, got.body, signature, now=T0)
    assert not verify(b"another-secret-0123456789abcdef", stamp, got.body + b" ", signature, now=T0)


def test_the_timestamp_stops_replays(receiver: Receiver, clock: Clock) -> None:
    WebhookBackend(receiver.url, SECRET, clock=clock).block(make_verdict(), 60)
    [got] = receiver.received
    stamp, signature = got.headers["X-Sluice-Timestamp"], got.headers["X-Sluice-Signature"]
    assert verify(SECRET, stamp, got.body, signature, now=T0 + REPLAY_WINDOW)
    assert not verify(SECRET, stamp, got.body, signature, now=T0 + REPLAY_WINDOW + 1)
    # A replay with a fresh timestamp does not match the MAC.
    assert not verify(SECRET, str(int(T0) + 600), got.body, signature, now=T0 + 600)


def test_unblock_names_the_verdict(receiver: Receiver, clock: Clock) -> None:
    hook = WebhookBackend(receiver.url, SECRET, clock=clock)
    verdict = make_verdict("203.0.113.0/24", "block_destination")
    hook.block(verdict, 600)
    hook.unblock(verdict)
    block, unblock = receiver.received
    assert unblock.signed
    assert unblock.headers["Idempotency-Key"] == f"{verdict.id}:unblock"
    assert block.headers["Idempotency-Key"] != unblock.headers["Idempotency-Key"]
    assert (unblock.json["action"], unblock.json["remaining"]) == ("unblock", None)
    assert unblock.json["verdict"]["id"] == verdict.id


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_are_transient(receiver: Receiver, status: int) -> None:
    receiver.script = [status]
    with pytest.raises(BackendError, match=f"HTTP {status}") as info:
        WebhookBackend(receiver.url, SECRET).block(make_verdict(), 60)
    assert info.value.transient


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 302])
def test_refusals_are_not_transient(receiver: Receiver, status: int) -> None:
    receiver.script = [status]
    with pytest.raises(BackendError, match=f"HTTP {status}") as info:
        WebhookBackend(receiver.url, SECRET).block(make_verdict(), 60)
    assert not info.value.transient
    assert len(receiver.received) == 1  # a redirect is not followed


def test_a_receiver_that_never_answers_is_a_transient_timeout(receiver: Receiver) -> None:
    receiver.script = ["hang"]
    with pytest.raises(BackendError, match=r"no answer within 0\.3 s") as info:
        WebhookBackend(receiver.url, SECRET, timeout=0.3).block(make_verdict(), 60)
    assert info.value.transient


def test_nobody_listening_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendError, match="ConnectionRefused") as info:
        WebhookBackend(f"http://127.0.0.1:{port}/", SECRET, timeout=2).block(make_verdict(), 60)
    assert info.value.transient


def test_the_query_never_appears_in_errors(receiver: Receiver) -> None:
    receiver.script = [500]
    with pytest.raises(BackendError) as info:
        WebhookBackend(receiver.url + "&key=hush", SECRET).block(make_verdict(), 60)
    assert "hush" not in str(info.value)
    assert "/hooks/sluice" in str(info.value)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="URL"):
        WebhookBackend("ftp://example.org/", SECRET)
    with pytest.raises(ValueError, match="secret"):
        WebhookBackend("http://127.0.0.1/", b"short")


def test_held_mirrors_what_the_receiver_acknowledged(receiver: Receiver, clock: Clock) -> None:
    hook = WebhookBackend(receiver.url, SECRET, clock=clock)
    a, b = make_verdict("10.1.2.3"), make_verdict("198.51.100.7/32", "block_destination")
    hook.block(a, 60)
    hook.block(b, 600)
    receiver.script = [503]
    with pytest.raises(BackendError):
        hook.block(make_verdict("10.1.2.4"), 60)  # not acknowledged: not held
    held = {(h.kind, h.target): h for h in hook.held()}
    assert set(held) == {("hosts", "10.1.2.3"), ("destinations", "198.51.100.7")}
    assert held[("hosts", "10.1.2.3")].verdict_id == a.id
    clock.now += 61  # a's time is up
    assert [h.target for h in hook.held()] == ["198.51.100.7"]
    hook.unblock(b)
    assert hook.held() == []


def test_reconcile_resends_nothing_in_steady_state_and_everything_once_after_a_restart(
    receiver: Receiver, clock: Clock, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    hook = WebhookBackend(receiver.url, SECRET, clock=clock)
    verdict = make_verdict()
    outbox.accept(verdict, [hook], now=T0)
    assert outbox.deliver_due(T0, [hook]).delivered == 1
    # Steady state: the reconciler finds what it delivered; nothing goes out again.
    report = outbox.reconcile(T0 + 60, hook)
    assert (report.held, report.requeued, report.removed) == (1, 0, 0)
    assert outbox.deliver_due(T0 + 60, [hook]).claimed == 0
    assert len(receiver.received) == 1
    # A restart: a new backend object knows nothing, so the block is re-asserted once.
    restarted = WebhookBackend(receiver.url, SECRET, clock=clock)
    assert outbox.reconcile(T0 + 120, restarted).requeued == 1
    assert outbox.deliver_due(T0 + 120, [restarted]).delivered == 1
    assert outbox.reconcile(T0 + 180, restarted).requeued == 0
    first, again = receiver.received
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert (first.json["remaining"], again.json["remaining"]) == (3600, 3480)
    outbox.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512), st.integers(0, 2**33), st.binary(min_size=16, max_size=64))
def test_sign_and_verify_agree_and_any_change_breaks_them(
    body: bytes, stamp: int, secret: bytes
) -> None:
    signature = sign(secret, str(stamp), body)
    assert verify(secret, str(stamp), body, signature, now=stamp)
    assert not verify(secret, str(stamp), body + b"x", signature, now=stamp)
    assert not verify(secret + b"x", str(stamp), body, signature, now=stamp)
    assert not verify(secret, str(stamp + 1), body, signature, now=stamp)
