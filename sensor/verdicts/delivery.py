"""From the live sensor's verdicts to the firewalls (verdict delivery stage, runtime edge).

In: `verdict` event records, as a sink of the pipeline (`Delivery.__call__`). Out: blocks in
the configured backends, and records of what happened (`verdict_refused` events, and a
`blocking_suspended` finding when a breaker starts refusing) through `emit`.

The path of one block verdict in enforce mode:

1. The guards (guards.py) judge it on the pipeline's thread, at its packet time: a refused
   verdict is a `verdict_refused` event with its reason and never reaches the outbox; the
   first refusal of a breaker streak (rate limit, host cap, table cap) or of the kill switch
   is also a high `blocking_suspended` finding, so an operator learns that blocking fell
   back to alert-only.
2. The outbox (outbox.py) accepts it: committed to SQLite (WAL, synchronous=FULL) before this
   call returns, one delivery row per backend. From here on a crash loses nothing.
3. Each backend's worker thread wakes (at once for a new verdict, else every `interval`
   seconds) and runs one `deliver_due` pass for its backend: leases, at-least-once
   delivery, retries with backoff and jitter until the verdict expires, always sending the
   remaining TTL. A backend that hangs until its timeout delays only itself.
4. Every `reconcile_interval` seconds (and at start) each backend's state is compared with
   what the outbox says should be there: a block that vanished (`nft flush ruleset`, a
   firewall reload) is re-asserted, a Sluice-owned block nothing wants is removed.

Time: the guards and the outbox's acceptance use packet time (the verdict's); the worker's
passes use the wall clock (`clock`), which is what a firewall's timeouts run on. Live, the
two agree to within the capture's latency.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sensor.config import Config
from sensor.outputs.eve import iso_time
from sensor.policy.verdict import Verdict
from sensor.verdicts.base import Backend, BackendError
from sensor.verdicts.crowdsec import CrowdsecBackend
from sensor.verdicts.ebpfblock import EbpfBlockBackend
from sensor.verdicts.feed import FeedBackend, FetchRecord
from sensor.verdicts.guards import (
    PREFIX,
    PROTECTED,
    SCOPE,
    TARGET,
    GuardConfig,
    GuardResult,
    Guards,
    ProtectedSet,
    endpoint_host,
    refusal_record,
)
from sensor.verdicts.nftables import NftablesBackend
from sensor.verdicts.opnsense import OpnsenseBackend
from sensor.verdicts.outbox import Outbox, OutboxError
from sensor.verdicts.protect import discover_protected
from sensor.verdicts.webhook import WebhookBackend

Record = dict[str, Any]
OUTBOX_FILE = "outbox.db"  # in the live sensor's --out directory, beside sluice.db
EBPF_STATE_FILE = "ebpfblock.json"  # which map entries are ours, with their expiry
OPNSENSE_STATE_FILE = "opnsense.db"  # which alias entries are ours, with their expiry
MAX_PENDING_FETCHES = 4096  # feed polls waiting to be written as events
MAX_RESTORE = 100_000  # delivery rows read when the guards learn the blocks in force
# Guard rules whose refusal of a block already in force means it must go (not a breaker).
STATIC_RULES = frozenset({PROTECTED, SCOPE, PREFIX, TARGET})


def verdict_of(fields: Mapping[str, Any]) -> Verdict:
    """The `Verdict` a `verdict` event's sub-object describes."""
    return Verdict(
        id=str(fields["id"]),
        action=str(fields["action"]),
        target=str(fields["target"]),
        target_kind=str(fields["target_kind"]),
        ttl=float(fields["ttl"]),
        decided_at=float(fields["expires_at"]) - float(fields["ttl"]),
        reason=str(fields["reason"]),
        severity=str(fields["severity"]),
        confidence=float(fields["confidence"]),
        finding_ids=tuple(fields["finding_ids"]),
        incident_id=str(fields["incident_id"]),
        policy_rule=str(fields["policy_rule"]),
        mode=str(fields["mode"]),
    )


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        backends: Sequence[Backend],
        guards: Guards,
        emit: Callable[[Record], None],
        warn: Callable[[str], None],
        *,
        killed: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
        interval: float = 0.2,
        reconcile_interval: float = 60.0,
        fetches: deque[FetchRecord] | None = None,
    ) -> None:
        self.outbox = outbox
        self.backends = list(backends)
        self.guards = guards
        self.emit = emit
        self.warn = warn
        self.killed = killed
        self.clock = clock
        self.interval = interval
        self.reconcile_interval = reconcile_interval
        self.accepted = 0
        self.refused = 0
        self.failed_passes = 0
        self._wakes: list[threading.Event] = []  # one per backend's worker
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failing = False
        # Polls of the served feed, from its threads; written as events from the pipeline's.
        self._fetches = fetches if fetches is not None else deque()
        self._next_restore = 0.0

    # -- the pipeline's side ---------------------------------------------------------------

    def __call__(self, record: Record) -> None:
        while self._fetches:
            self.emit(fetch_record(self._fetches.popleft()))
        if record["event_type"] in ("stats", "verdict"):  # not a clock read per record
            now = self.clock()
            if now >= self._next_restore:  # the guards are the pipeline thread's: learn here
                self._next_restore = now + self.reconcile_interval
                self.restore(now)
        if record["event_type"] != "verdict":
            return
        fields = record["verdict"]
        if fields["mode"] != "enforce" or fields["action"] == "alert":
            return
        verdict = verdict_of(fields)
        result = self.guards.check(verdict, verdict.decided_at, killed=self.killed())
        if not result.allowed:
            self._refuse(record, verdict, result)
            return
        if result.ttl < verdict.ttl:  # clamped to the guards' ttl_max: that is what is sent
            verdict = replace(verdict, ttl=result.ttl)
        try:
            self.outbox.accept(verdict, self.backends, now=verdict.decided_at)
        except OutboxError as exc:
            # Not lost in silence: a refusal event and a loud finding say it was not enforced.
            self.guards.release(verdict.target)
            self._refuse(record, verdict, GuardResult(False, "outbox", str(exc), loud=True))
            return
        self.accepted += 1
        self._wake_all()

    def _refuse(self, record: Record, verdict: Verdict, result: GuardResult) -> None:
        self.refused += 1
        refusal = refusal_record(verdict, result, verdict.decided_at)
        for key in ("flow_id", "community_id", "src_ip", "dest_ip"):
            if key in record:
                refusal[key] = record[key]
        self.emit(refusal)
        if result.loud:  # the first refusal of a breaker's streak, or the outbox failing
            self.emit(_suspended_finding(record, verdict, result.reason))

    def restore(self, now: float) -> None:
        """At start, and every reconcile: the guards learn the blocks in force from the
        outbox (a restart keeps the host cap; a `sluice blocks remove` frees its slot), and
        a block in force that the guards now refuse outright (its target became protected,
        `never_block` grew) is revoked rather than re-asserted."""
        try:
            states = self.outbox.state(limit=MAX_RESTORE)
        except OutboxError:
            return
        in_force: dict[str, Verdict] = {}
        for st in states:
            if st.expires_at > now and st.revoked_at is None and st.verdict_id not in in_force:
                verdict = self.outbox.verdict(st.verdict_id)
                if verdict is not None:
                    in_force[st.verdict_id] = verdict
        targets = {v.target for v in in_force.values()}
        for target in list(self.guards.active(now)):
            if target not in targets:
                self.guards.release(target)
        for verdict in in_force.values():
            result = self.guards.check(verdict, now)
            if not result.allowed and result.rule in STATIC_RULES:
                self.warn(f"revoking {verdict.action} {verdict.target}: {result.reason}")
                with contextlib.suppress(OutboxError):
                    self.outbox.revoke(verdict.id, now)

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        """Learn what the outbox holds (a restart), then start one worker per backend, which
        first re-asserts it and delivers what is due, and only then opens what others poll
        (the feed): a firewall never fetches a list that is empty only because the sensor
        has just started, capture does not wait for a slow backend, and a backend that hangs
        until its timeout does not delay the others (the outbox's leases keep the workers
        apart)."""
        now = self.clock()
        self.restore(now)
        self._next_restore = now + self.reconcile_interval
        for backend in self.backends:
            wake = threading.Event()
            self._wakes.append(wake)
            thread = threading.Thread(
                target=self._run, args=(backend, wake), name=f"sluice-{backend.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _wake_all(self) -> None:
        for wake in self._wakes:
            wake.set()

    def stop(self) -> None:
        """Stop the workers after one last pass (what was accepted stays in the outbox)."""
        self._stop.set()
        self._wake_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._pass()
        while self._fetches:
            self.emit(fetch_record(self._fetches.popleft()))

    def _run(self, backend: Backend, wake: threading.Event) -> None:
        self._reconcile(self.clock(), [backend])
        self._pass([backend])
        start = getattr(backend, "start", None)
        if start is not None:
            try:
                start()
            except BackendError as exc:
                self.warn(f"{backend.name}: {exc}")
        next_reconcile = self.clock() + self.reconcile_interval
        while not self._stop.is_set():
            now = self.clock()
            if now >= next_reconcile:
                self._reconcile(now, [backend])
                next_reconcile = now + self.reconcile_interval
            self._pass([backend])
            wake.wait(self.interval)
            wake.clear()

    def _pass(self, backends: Sequence[Backend] | None = None) -> None:
        if self.killed():  # the kill switch holds what is pending too: nothing is sent
            return
        chosen = self.backends if backends is None else backends
        now = self.clock()
        for backend in chosen:  # a backend without timeouts of its own lets go here
            expire = getattr(backend, "expire", None)
            if expire is not None:
                try:
                    expire(now)
                except BackendError as exc:
                    self.warn(f"{backend.name}: expiring blocks failed: {exc}")
        try:
            self.outbox.deliver_due(now, chosen)
        except OutboxError as exc:
            self.failed_passes += 1
            if not self._failing:
                self.warn(f"verdict delivery: {exc}")
            self._failing = True
            return
        self._failing = False

    def _reconcile(self, now: float, backends: Sequence[Backend] | None = None) -> None:
        if self.killed():  # nothing is re-asserted while the kill switch is there
            return
        for backend in self.backends if backends is None else backends:
            bootstrap = getattr(backend, "bootstrap", None)
            if bootstrap is not None:  # the rules too, not only the elements (nftables)
                try:
                    bootstrap()
                except BackendError as exc:
                    self.warn(f"{backend.name}: {exc}")
            with contextlib.suppress(OutboxError):  # said by the next pass
                self.outbox.reconcile(now, backend)


def fetch_record(fetch: FetchRecord) -> Record:
    """The `feed_fetch` event of one poll of the served block lists (never the token)."""
    return {
        "timestamp": iso_time(fetch.at),
        "event_type": "feed_fetch",
        "src_ip": fetch.client,
        "feed_fetch": {
            "method": fetch.method,
            "path": fetch.path,
            "status": fetch.status,
            "bytes": fetch.bytes,
            "etag": fetch.etag,
            "auth": fetch.auth,
            "user_agent": fetch.user_agent[:256],
        },
    }


def _suspended_finding(record: Record, verdict: Verdict, reason: str) -> Record:
    """A loud finding: blocking fell back to alert-only (a breaker or the kill switch)."""
    out: Record = {"timestamp": record["timestamp"], "event_type": "finding"}
    for key in ("flow_id", "community_id", "src_ip", "src_port", "dest_ip", "dest_port"):
        if key in record:
            out[key] = record[key]
    out.setdefault("src_ip", verdict.target)
    out["finding"] = {
        "kind": "blocking_suspended",
        "severity": "high",
        "host": verdict.target,
        "detail": f"{verdict.action} {verdict.target} not enforced: {reason}; verdicts fall "
        "back to alert-only until it clears",
    }
    return out


def build_delivery(
    config: Config,
    out: Path,
    emit: Callable[[Record], None],
    warn: Callable[[str], None],
    probe: Any = None,
) -> Delivery | None:
    """The delivery stage `[verdicts]` configures (None without backends). Discovers what
    must never be blocked (this host's addresses, default gateways, DNS servers, the
    firewall APIs it talks to), opens the outbox and the backends. Raises OutboxError or
    BackendError (the caller stops); `probe`: the attached eBPF probe, if any."""
    v = config.verdicts
    if not v.backends:
        return None
    guards = build_guards(config, warn)
    backends: list[Backend] = []
    if "nftables" in v.backends:
        nft = NftablesBackend(netns=v.nftables_netns or None)
        nft.bootstrap()
        backends.append(nft)
    if "ebpf" in v.backends:
        if probe is None:
            raise BackendError("backend ebpf: no eBPF probe attached (--probe)", transient=False)
        backends.append(EbpfBlockBackend(probe, state_path=out / EBPF_STATE_FILE))
    if "crowdsec" in v.backends:
        password = _secret(v.crowdsec_password_file, "crowdsec", "crowdsec_password_file")
        if not v.crowdsec_machine_id:
            raise BackendError(
                "backend crowdsec needs [verdicts] crowdsec_machine_id", transient=False
            )
        try:
            backends.append(
                CrowdsecBackend(
                    v.crowdsec_url,
                    v.crowdsec_machine_id,
                    password,
                    ca_file=v.crowdsec_ca_file or None,
                )
            )
        except ValueError as exc:
            raise BackendError(str(exc), transient=False) from None
    if "opnsense" in v.backends:
        backends.append(_opnsense(config, out))
    fetches: deque[FetchRecord] = deque(maxlen=MAX_PENDING_FETCHES)
    if "feed" in v.backends:
        backends.append(_feed(config, fetches.append))
    if "webhook" in v.backends:
        secret = _secret(v.webhook_secret_file, "webhook", "webhook_secret_file")
        if not v.webhook_url:
            raise BackendError("backend webhook needs [verdicts] webhook_url", transient=False)
        try:
            backends.append(WebhookBackend(v.webhook_url, secret))
        except ValueError as exc:
            raise BackendError(str(exc), transient=False) from None
    outbox = Outbox(outbox_path(config, out))
    return Delivery(
        outbox,
        backends,
        guards,
        emit,
        warn,
        killed=lambda: os.path.exists(v.kill_switch),
        interval=v.interval,
        reconcile_interval=v.reconcile_interval,
        fetches=fetches,
    )


def _secret(path: str, backend: str, key: str) -> str:
    if not path:
        raise BackendError(f"backend {backend} needs [verdicts] {key}", transient=False)
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BackendError(f"{path}: {exc.strerror}", transient=False) from None
    if not text:
        raise BackendError(f"{path}: empty", transient=False)
    return text


def _feed(config: Config, on_fetch: Callable[[FetchRecord], None]) -> FeedBackend:
    v = config.verdicts
    host, _, port = v.feed_listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise BackendError(f"feed_listen {v.feed_listen!r}: want ADDRESS:PORT", transient=False)
    context = None
    if v.feed_cert_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(v.feed_cert_file, v.feed_key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise BackendError(f"feed certificate: {exc}", transient=False) from None
    token = _secret(v.feed_token_file, "feed", "feed_token_file")
    return FeedBackend((host, int(port)), token=token, ssl_context=context, on_fetch=on_fetch)


def _opnsense(config: Config, out: Path) -> OpnsenseBackend:
    v = config.verdicts
    if not (v.opnsense_url and v.opnsense_key and v.opnsense_secret_file):
        raise BackendError(
            "backend opnsense needs [verdicts] opnsense_url, opnsense_key and opnsense_secret_file",
            transient=False,
        )
    try:
        secret = Path(v.opnsense_secret_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BackendError(f"{v.opnsense_secret_file}: {exc.strerror}", transient=False) from None
    try:
        return OpnsenseBackend(
            v.opnsense_url,
            v.opnsense_key,
            secret,
            state_path=out / OPNSENSE_STATE_FILE,
            alias_hosts=v.opnsense_alias_hosts,
            alias_destinations=v.opnsense_alias_destinations,
            verify=v.opnsense_ca_file or True,
        )
    except ValueError as exc:
        raise BackendError(str(exc), transient=False) from None


def _resolved(endpoints: Sequence[str], warn: Callable[[str], None]) -> list[str]:
    """The addresses the endpoints' host names resolve to now (at start)."""
    out: list[str] = []
    for endpoint in endpoints:
        host = endpoint_host(endpoint)
        try:
            ipaddress.ip_address(host)
            continue  # an address is protected as it is
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            warn(f"guards: cannot resolve backend endpoint {host}: {exc}")
            continue
        out += sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    return out


def outbox_path(config: Config, out: Path) -> Path:
    """`[verdicts] outbox`, else outbox.db in the sensor's --out directory."""
    return Path(config.verdicts.outbox) if config.verdicts.outbox else out / OUTBOX_FILE


def build_guards(config: Config, warn: Callable[[str], None]) -> Guards:
    """The guards `[verdicts]` configures, protecting what discovery finds in this network
    namespace (own addresses, default gateways, DNS servers) besides `never_block`."""
    v = config.verdicts
    found = discover_protected()
    for problem in found.problems:
        warn(f"guards: {problem}")
    endpoints = [v.opnsense_url] if "opnsense" in v.backends and v.opnsense_url else []
    if "webhook" in v.backends and v.webhook_url:
        endpoints.append(v.webhook_url)
    if "crowdsec" in v.backends and v.crowdsec_url:
        endpoints.append(v.crowdsec_url)
    endpoints += _resolved(endpoints, warn)  # a name's addresses are protected as well
    protected = ProtectedSet.of(
        networks=v.never_block,
        own=found.addresses,
        gateways=found.gateways,
        dns=found.dns_servers,
        endpoints=endpoints,
    )
    return Guards(
        GuardConfig(
            never_block=v.never_block,
            home_net=tuple(str(n) for n in config.home_net),
            treat_as_external=v.treat_as_external,
            min_prefix_v4=v.min_prefix_v4,
            min_prefix_v6=v.min_prefix_v6,
            rate_per_minute=v.rate_per_minute,
            burst=v.burst,
            max_blocked_hosts=v.max_blocked_hosts,
            kill_switch_path=v.kill_switch,
        ),
        protected,
    )


def close_delivery(delivery: Delivery) -> None:
    delivery.stop()
    delivery.outbox.close()
    for backend in delivery.backends:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
