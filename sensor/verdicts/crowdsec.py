"""The CrowdSec backend: verdicts become ban decisions in a CrowdSec Local API (verdict
delivery stage; this module talks HTTP to the LAPI).

Theory of operation
-------------------
Sluice writes as a CrowdSec *machine* (the role a crowdsec agent has): it logs in with a
machine id and password (``POST /v1/watchers/login``), receives a JWT and pushes alerts that
carry decisions (``POST /v1/alerts``). Every bouncer attached to that LAPI (the firewall
bouncer, nginx, Traefik, the OPNsense and pfSense plugins) then pulls the decision from its
stream and enforces it; the LAPI keeps the expiry itself, so a block lifts on time even while
Sluice is down.

One verdict is one alert with exactly one decision::

    alert    scenario "sluice/<policy rule>", message "<action> <target>: <reason>",
             meta sluice_verdict_id, sluice_action, sluice_incident
    decision origin "sluice", type "ban", scope "Ip" | "Range", value <target>,
             duration <REMAINING seconds as a Go duration, e.g. "3h59m12s">,
             scenario "sluice/v=<verdict id>"

The decision's scenario names the verdict, which makes Sluice's decisions identifiable and
addressable: ``GET /v1/alerts?origin=sluice&scenario=sluice/v=<id>`` finds them and
``DELETE /v1/decisions?origin=sluice&scenario=sluice/v=<id>`` removes exactly them (both
filters match exactly and combine with AND in 1.4.6, measured). Decisions of other origins
(cscli, crowdsec's own scenarios, CAPI, lists) are never read as ours and never deleted.

Idempotency. ``POST /v1/alerts`` is not idempotent: the same body posted twice makes two
decisions. So `block` first reads the verdict's active decisions, then:

- one of them lasts as long as wanted (within `DURATION_TOLERANCE_S`): nothing is posted;
- none does: a new alert is posted;
- then every other decision of this verdict is deleted by id (a refresh posts the new
  decision BEFORE deleting the old one, so the target is never unblocked in between).

A retry after an ambiguous failure (the POST reached the LAPI but the answer was lost to a
timeout or a dropped connection) therefore finds the decision the lost POST created, sees
that it lasts as long as wanted (both it and the wanted remaining time have counted down by
the same wall-clock interval) and posts nothing. The one window this cannot close: a POST
the LAPI commits only AFTER the retry has read the list (the LAPI took longer than our
timeout plus the outbox's back-off). Then two decisions of the same verdict exist; both
name the verdict, so `unblock` removes both, and the next `block` of that verdict collapses
them to one. Concurrent `block` calls in this process are serialised by a lock; across
processes the outbox's lease gives each delivery one writer.

Measured facts on Debian's crowdsec 1.4.6 that shape the code:

- Login answers 401 "incorrect Username or Password" to a correct password when the
  User-Agent is not of the form ``name/version``; every request sends ``sluice/<version>``.
- A decision's expiry is the alert's ``stop_at`` plus the duration, not "now" plus the
  duration: an alert stamped with the verdict's packet time would lose the time the
  delivery took (and one stamped hours ago is born expired). ``stop_at`` is therefore the
  wall clock at sending (microseconds kept), so "duration" really is the remaining time; a
  clock skew between sensor and LAPI shifts the expiry by that skew. ``start_at`` is the
  verdict's packet time.
- The JWT lives one hour and the LAPI signs it with a key made at start-up (unless
  configured), so a restarted LAPI answers 401 to a valid-looking token. The token is
  renewed `TOKEN_MARGIN_S` before its ``expire`` and once on any 401.
- Input errors are HTTP 500, not 400: a bad duration ("1d": Go durations have no day unit),
  an invalid address, a body failing validation. Targets and durations are therefore checked
  here before anything is sent, and a 500 whose message names such an error is not retried.
- ``GET /v1/alerts`` returns at most 100 alerts unless ``limit`` is given; ``limit=0`` is
  "all", and a ``limit`` larger than the number of matches made the LAPI spin and never
  answer. `held` therefore asks with ``limit=0``.
- An empty result (alerts, the bouncer stream) is JSON ``null``, not ``[]``.
- Deleting a decision keeps its row with an expiry in the past (the bouncer stream reports
  it as deleted); deleting an id that does not exist is HTTP 500 "doesn't exist", which is
  success for us. ``GET /v1/decisions`` is for bouncers only (403 with a machine token);
  a machine reads decisions through the alerts that carry them.
- Debian's firewall bouncer (0.0.25) in nftables mode puts a Range's address without its
  prefix into a set that has no interval flag, so a "198.51.100.0/24" decision blocks
  198.51.100.0 only. Range decisions are sent as CrowdSec defines them; a site whose
  bouncer has this bug should block hosts, not networks, through CrowdSec.

Transport: one short-lived HTTP/1.1 connection per request (stdlib ``http.client``) with a
timeout; TLS with certificate and host name verification, or plain HTTP to a loopback
address only. The password and the token never appear in an error message or a repr.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import urlencode, urlsplit

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held, is_loopback_host

ORIGIN = "sluice"  # the decisions' origin: bouncers can filter on it (`origins=sluice`)
SCENARIO_PREFIX = "sluice/v="  # decision scenario: "sluice/v=<verdict id>"
META_VERDICT, META_ACTION, META_INCIDENT = "sluice_verdict_id", "sluice_action", "sluice_incident"
HELD_KIND = {"block_host": "hosts", "block_destination": "destinations"}
REQUEST_TIMEOUT_S = 5.0  # one HTTP exchange; the outbox retries a timeout
TOKEN_MARGIN_S = 60.0  # renew the JWT this long before it expires
DURATION_TOLERANCE_S = 5.0  # a decision within this of the wanted remaining time is kept
MAX_RESPONSE_BYTES = 128 * 1024 * 1024  # ~150,000 alerts listed by `held`
MAX_MESSAGE_CHARS = 512  # the alert message (the verdict's reason) as shown by cscli
# 500 answers that mean "your request is wrong", not "try later" (see the docstring)
_INPUT_ERRORS = ("unable to parse duration", "invalid addr", "validation failure", "unknown unit")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}  # fmt: skip


def go_duration(seconds: int) -> str:
    """Whole seconds as a Go duration ("4h0m0s", "59m59s", "7s"): the only duration syntax
    the LAPI accepts (no "d" or "w")."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_go_duration(text: str) -> float:
    """A Go duration as the LAPI prints it ("59m59.619550215s", "-2.84ms", "1h2m") in
    seconds; ValueError for anything else."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    total, end = 0.0, 0
    for match in _GO_DURATION.finditer(body):
        if match.start() != end:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        end = match.end()
    if end == 0 or end != len(body):
        raise ValueError(f"not a Go duration: {text!r}")
    return sign * total


@dataclass(frozen=True, slots=True)
class Decision:
    """One of Sluice's decisions as the LAPI lists it."""

    id: int
    value: str
    remaining: float  # seconds left (negative once expired or deleted)
    verdict_id: str
    kind: str  # Held.kind


def _user_agent() -> str:
    try:
        return f"sluice/{metadata.version('sluice')}"
    except metadata.PackageNotFoundError:
        return "sluice/0"


class CrowdsecBackend:
    """Ban decisions in a CrowdSec LAPI (see the module docstring).

    `url`: the LAPI's base URL ("https://lapi.example:8080", or "http://127.0.0.1:8080"; plain
    HTTP is refused for anything but a loopback address). `machine_id`/`password`: a machine
    registered with ``cscli machines add <id> --password ...``. `ca_file`: the CA that signed
    the LAPI's certificate (default: the system's). `clock`: wall-clock seconds (the token's
    expiry is wall-clock time)."""

    name = "crowdsec"

    def __init__(
        self,
        url: str,
        machine_id: str,
        password: str,
        *,
        timeout: float = REQUEST_TIMEOUT_S,
        ca_file: str | None = None,
        origin: str = ORIGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"crowdsec: {url!r} is no http(s) URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"crowdsec: plain http is allowed to a loopback address only, not {url!r}; "
                "configure TLS on the LAPI (api.server.tls) and use https"
            )
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.machine_id = machine_id
        self.timeout = timeout
        self.origin = origin
        self.logins = 0  # successful logins (for an operator and the tests)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._tls = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._password = password
        self._token: str | None = None
        self._token_expires = 0.0
        self._clock = clock
        self._lock = threading.RLock()
        self._agent = _user_agent()

    def __repr__(self) -> str:  # never the password or the token
        return f"CrowdsecBackend(url={self.url!r}, machine_id={self.machine_id!r})"

    def close(self) -> None:
        """Nothing is held open between calls; forget the token."""
        with self._lock:
            self._token = None

    def __enter__(self) -> CrowdsecBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Backend protocol --------------------------------------------------------------
    def block(self, verdict: Verdict, remaining: float) -> None:
        """Make exactly one decision of `verdict` exist, lasting `remaining` seconds (rounded
        up); see "Idempotency" in the module docstring. Nothing to do once expired."""
        scope, value = _decision_target(verdict)
        if remaining <= 0:
            return
        seconds = math.ceil(remaining)
        with self._lock:
            mine = self._decisions(verdict.id)
            keep = next(
                (d for d in sorted(mine, key=lambda d: abs(d.remaining - seconds))
                 if d.value == value and abs(d.remaining - seconds) <= DURATION_TOLERANCE_S),
                None,
            )  # fmt: skip
            if keep is None:
                self._post_alert(verdict, scope, value, seconds)
            for stale in mine:
                if stale is not keep:
                    self._delete_decision(stale.id)

    def unblock(self, verdict: Verdict) -> None:
        """Delete every decision of `verdict` (and nothing else); none there is success."""
        if not verdict.blocks or not verdict.id or verdict.target_kind == "domain":
            return
        query = urlencode({"origin": self.origin, "scenario": SCENARIO_PREFIX + verdict.id})
        with self._lock:
            self._call("DELETE", f"/v1/decisions?{query}", doing=f"unblock {verdict.target}")

    def held(self) -> list[Held]:
        """Sluice's active decisions (this machine's alerts, origin `origin`, scenario
        "sluice/v=..."): target, kind, seconds left and verdict id. Two decisions of one
        verdict for one target (see "Idempotency") are one block, the longer one."""
        with self._lock:
            found = self._list({"origin": self.origin, "has_active_decision": "true"})
        best: dict[tuple[str, str], Decision] = {}
        for decision in found:
            key = (decision.verdict_id, decision.value)
            if key not in best or best[key].remaining < decision.remaining:
                best[key] = decision
        return [Held(d.value, d.kind, d.remaining, d.verdict_id) for d in best.values()]

    # -- LAPI calls ------------------------------------------------------------------------
    def _decisions(self, verdict_id: str) -> list[Decision]:
        """The active decisions of one verdict (the `scenario` filter is exact; it is
        checked again here so a LAPI that ignored it cannot hand us others' decisions)."""
        filters = {"origin": self.origin, "scenario": SCENARIO_PREFIX + verdict_id}
        found = self._list({**filters, "has_active_decision": "true"})
        return [d for d in found if d.verdict_id == verdict_id]

    def _list(self, filters: dict[str, str]) -> list[Decision]:
        query = urlencode({**filters, "limit": "0"})  # 0 = all (see the docstring)
        alerts = self._call("GET", f"/v1/alerts?{query}", doing="list Sluice's decisions")
        if alerts is None:  # the LAPI's "nothing"
            return []
        if not isinstance(alerts, list):
            raise BackendError(f"crowdsec: alerts listing is not a list: {_short(alerts)}")
        found: list[Decision] = []
        for alert in alerts:
            if not isinstance(alert, dict) or alert.get("machine_id") != self.machine_id:
                continue  # another machine's alert: not ours, whatever it claims
            meta = {
                m.get("key"): m.get("value") for m in alert.get("meta") or [] if isinstance(m, dict)
            }
            kind = HELD_KIND.get(str(meta.get(META_ACTION)), "destinations")
            for raw in alert.get("decisions") or []:
                decision = _decision_of(raw, self.origin, kind)
                if decision is not None and decision.remaining > 0:
                    found.append(decision)
        return found

    def _post_alert(self, verdict: Verdict, scope: str, value: str, seconds: int) -> None:
        now = self._clock()
        started = _rfc3339(min(verdict.decided_at, now))
        sent = _rfc3339(now)  # the LAPI counts the duration from here (see the docstring)
        message = f"{verdict.action} {verdict.target}: {verdict.reason}"[:MAX_MESSAGE_CHARS]
        alert = {
            "scenario": f"sluice/{verdict.policy_rule or 'verdict'}",
            "scenario_hash": "",
            "scenario_version": "",
            "message": message,
            "events_count": 1,
            "start_at": started,
            "stop_at": sent,
            "capacity": 0,
            "leakspeed": "0",
            "simulated": False,
            "remediation": True,
            "events": [],
            "source": {"scope": scope, "value": value},
            "meta": [
                {"key": META_VERDICT, "value": verdict.id},
                {"key": META_ACTION, "value": verdict.action},
                {"key": META_INCIDENT, "value": verdict.incident_id},
            ],
            "decisions": [
                {
                    "origin": self.origin,
                    "type": "ban",
                    "scope": scope,
                    "value": value,
                    "duration": go_duration(seconds),
                    "scenario": SCENARIO_PREFIX + verdict.id,
                }
            ],
        }
        answer = self._call("POST", "/v1/alerts", [alert], doing=f"block {verdict.target}")
        if not isinstance(answer, list) or len(answer) != 1:
            raise BackendError(f"crowdsec: unexpected answer to an alert: {_short(answer)}")

    def _delete_decision(self, decision_id: int) -> None:
        try:
            self._call("DELETE", f"/v1/decisions/{decision_id}", doing="remove a stale decision")
        except BackendError as exc:
            if "doesn't exist" not in str(exc):  # gone already (flushed): what we wanted
                raise

    # -- HTTP ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *, doing: str) -> Any:
        """One authenticated request; on 401 log in again and repeat it once (a 401 is
        answered before the LAPI acts, so repeating even a POST cannot duplicate)."""
        token = self._valid_token()
        status, answer = self._exchange(method, path, body, token, doing=doing)
        if status == 401:
            self._token = None
            token = self._valid_token()
            status, answer = self._exchange(method, path, body, token, doing=doing)
        if status == 401:
            raise BackendError(f"crowdsec: {doing}: the LAPI refused a fresh token (401)")
        return answer

    def _valid_token(self) -> str:
        if self._token is not None and self._clock() < self._token_expires - TOKEN_MARGIN_S:
            return self._token
        body = {"machine_id": self.machine_id, "password": self._password, "scenarios": []}
        status, answer = self._exchange("POST", "/v1/watchers/login", body, None, doing="log in")
        if status == 401:
            # Retried, not failed: an operator who fixes the machine's password
            # (cscli machines add --force) gets the pending verdicts through.
            raise BackendError(
                f"crowdsec: login refused for machine {self.machine_id!r}: "
                f"{_message(answer)} (check the password: cscli machines add)"
            )
        if not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
            raise BackendError("crowdsec: login answered without a token")
        try:
            expires = datetime.fromisoformat(str(answer["expire"])).timestamp()
        except (KeyError, ValueError):
            expires = self._clock() + 2 * TOKEN_MARGIN_S  # unknown: renew soon
        self._token, self._token_expires = answer["token"], expires
        self.logins += 1
        return self._token

    def _exchange(
        self, method: str, path: str, body: Any, token: str | None, *, doing: str
    ) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON) for 2xx and 401, raise
        BackendError for everything else (transient for network errors and 5xx, except a
        5xx that names an input error; non-transient for other 4xx)."""
        headers = {"User-Agent": self._agent, "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, self._prefix + path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
        except ssl.SSLCertVerificationError as exc:
            raise BackendError(
                f"crowdsec: {doing}: TLS certificate of {self._host} not trusted "
                f"({exc.verify_message}); give the LAPI's CA as ca_file"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise BackendError(
                f"crowdsec: {doing}: {type(exc).__name__}: {exc or 'no answer'} "
                f"({self.url}, timeout {self.timeout:g} s)"
            ) from None
        finally:
            conn.close()
        if len(data) > MAX_RESPONSE_BYTES:
            raise BackendError(
                f"crowdsec: {doing}: answer larger than {MAX_RESPONSE_BYTES} bytes",
                transient=False,
            )
        try:
            answer = json.loads(data) if data.strip() else None
        except ValueError:
            answer = data[:200].decode(errors="replace")
        if 200 <= status < 300 or status == 401:
            return status, answer
        message = _message(answer)
        if status >= 500:
            permanent = any(mark in message for mark in _INPUT_ERRORS)
            raise BackendError(
                f"crowdsec: {doing}: HTTP {status}: {message}", transient=not permanent
            )
        raise BackendError(f"crowdsec: {doing}: HTTP {status}: {message}", transient=False)


def _decision_target(verdict: Verdict) -> tuple[str, str]:
    """(scope, value) of the decision for `verdict`; non-transient BackendError for what
    CrowdSec decisions cannot carry (domains, alerts, malformed targets)."""
    if not verdict.blocks:
        raise BackendError(f"crowdsec: {verdict.action!r} is no block", transient=False)
    try:
        kind = target_kind(verdict.target)
    except ValueError as exc:
        raise BackendError(f"crowdsec: {exc}", transient=False) from None
    if kind == "ip":
        return "Ip", str(ipaddress.ip_address(verdict.target))
    if kind == "cidr":
        return "Range", str(ipaddress.ip_network(verdict.target))
    raise BackendError(
        f"crowdsec: cannot ban the domain {verdict.target!r} (firewall bouncers enforce "
        "Ip and Range decisions only)",
        transient=False,
    )


def _decision_of(raw: Any, origin: str, kind: str) -> Decision | None:
    """One listed decision if it is one of Sluice's (origin and scenario), else None."""
    if not isinstance(raw, dict) or raw.get("origin") != origin:
        return None
    scenario = str(raw.get("scenario", ""))
    if not scenario.startswith(SCENARIO_PREFIX) or raw.get("type") != "ban":
        return None
    try:
        remaining = parse_go_duration(str(raw.get("duration", "")))
        return Decision(int(raw["id"]), str(raw["value"]), remaining,
                        scenario[len(SCENARIO_PREFIX):], kind)  # fmt: skip
    except (KeyError, ValueError, TypeError):
        return None


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _message(answer: Any) -> str:
    if isinstance(answer, dict) and "message" in answer:
        return str(answer["message"])[:300]
    return _short(answer)


def _short(value: Any) -> str:
    return repr(value)[:200]


__all__ = ["CrowdsecBackend", "Decision", "go_duration", "parse_go_duration"]
