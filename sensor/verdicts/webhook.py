"""The webhook backend: every block and unblock is a signed JSON POST to one URL (verdict
delivery stage, for firewalls and SOAR tools no other backend speaks to).

Wire format
-----------
``POST <url>`` with ``Content-Type: application/json`` and this body (compact JSON, keys
sorted; the bytes sent are the bytes signed)::

    {"action": "block" | "unblock",
     "remaining": <seconds the block has left: an integer, rounded up; null for unblock>,
     "sent_at": <unix seconds, = X-Sluice-Timestamp>,
     "verdict": {"id", "action" (block_host | block_destination), "target",
                 "target_kind" (ip | cidr | domain), "ttl", "decided_at", "expires_at",
                 "reason", "severity", "confidence", "finding_ids", "incident_id",
                 "policy_rule", "mode"}}

Headers:

- ``X-Sluice-Timestamp: <unix seconds>`` and ``X-Sluice-Signature: sha256=<hex>``, where the
  hex is HMAC-SHA256 keyed with the shared secret over ``<timestamp> "." <body bytes>``. The
  timestamp is inside the MAC, so a captured request cannot be replayed later with a fresh
  one. A receiver recomputes the MAC over the raw body (before any JSON parsing), compares
  in constant time, and rejects a timestamp more than `REPLAY_WINDOW` seconds from its own
  clock; `verify()` is the reference implementation.
- ``Idempotency-Key: <verdict id>:<block|unblock>``: the same for every retry of one
  operation (delivery is at-least-once). Use it to deduplicate side effects (a ticket, a
  page). A block itself is a state assertion ("target blocked until verdict.expires_at, for
  verdict id"); apply it every time it arrives, since a re-sent block may carry a shorter or
  longer remaining time after the outbox hands a target from one verdict to another.
- An unblock names the verdict it revokes: remove the block only if it was put there by
  that verdict id (a later verdict may hold the same target), and answer 2xx when there is
  nothing to remove.

Outcome: any 2xx is delivered. 408, 425, 429 and 5xx, timeouts, refused or reset
connections and TLS failures are transient `BackendError`s (the outbox retries with backoff
until the verdict expires). Other 4xx are non-transient (the receiver refuses: bad secret,
bad URL); so are 3xx: a signed request goes only where it was configured, never where a
redirect points. `timeout` bounds the whole exchange (connect, send, answer), not each read.

What `held()` reports, and why
------------------------------
A webhook receiver cannot be asked what it holds. The reconciler (outbox.py) reads
`held()` and re-queues every *delivered* block that is missing from it, so `held() == []`
would re-send every live block on every reconcile pass (every minute, forever); raising
`BackendError` from `held()` would turn reconciling off, including its start-up
re-assertion. Instead `held()` reports what this process saw the receiver acknowledge (2xx)
and has not since unblocked or seen expire. The outcome:

- steady state: nothing is re-sent;
- after a restart the mirror is empty, so the first reconcile re-sends each live block
  once, with its remaining time and the same Idempotency-Key: a start-up re-assertion;
- a block the mirror holds that no live verdict wants (revoked while a pass was in flight)
  is unblocked by the reconciler.

What the receiver does after a 2xx (its own restart, a lost table) is invisible to Sluice;
a receiver that can lose state should keep it durably or rebuild it from its own log.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensor.policy.verdict import Verdict
from sensor.verdicts.base import BackendError, Held

SIGNATURE_HEADER = "X-Sluice-Signature"
TIMESTAMP_HEADER = "X-Sluice-Timestamp"
REPLAY_WINDOW = 300  # seconds a receiver should accept between our clock and its own
DEFAULT_TIMEOUT = 10.0  # seconds for one whole request
MAX_RESPONSE_BYTES = 65_536  # of a receiver's answer read (the rest is ignored)
MAX_ERROR_TEXT = 200  # characters of a receiver's answer quoted in an error
MIN_SECRET_BYTES = 16
TRANSIENT_4XX = frozenset({408, 425, 429})  # timeout, too early, too many requests
HELD_KIND = {"block_host": "hosts", "block_destination": "destinations"}
USER_AGENT = "sluice-webhook/1"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Sluice-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    window: float = REPLAY_WINDOW,
) -> bool:
    """A receiver's check: the signature matches (constant time) and the timestamp is
    within `window` seconds of `now`."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True, slots=True)
class _Mirror:
    verdict_id: str
    expires_at: float


class WebhookBackend:
    """POSTs signed verdicts to `url` (see the module docstring). `secret`: the shared
    HMAC key. `ssl_context`: for https (default: the system's trust store)."""

    def __init__(
        self,
        url: str,
        secret: bytes | str,
        *,
        name: str = "webhook",
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host/...: {url!r}")
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(f"webhook secret must have at least {MIN_SECRET_BYTES} bytes")
        self.name = name
        self.url = url
        self.timeout = timeout
        self.clock = clock
        self._secret = key
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # never the query
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._mirror: dict[tuple[str, str], _Mirror] = {}
        self._lock = threading.Lock()

    # -- the Backend protocol --------------------------------------------------------------
    def block(self, verdict: Verdict, remaining: float) -> None:
        """POST a block with `remaining` seconds (rounded up); nothing once expired."""
        if verdict.action not in HELD_KIND:
            raise BackendError(
                f"verdict {verdict.id} only alerts; nothing to block", transient=False
            )
        if remaining <= 0:
            return
        seconds = max(1, math.ceil(remaining))
        self._post("block", verdict, seconds)
        with self._lock:
            self._mirror[_key(verdict)] = _Mirror(verdict.id, self.clock() + seconds)

    def unblock(self, verdict: Verdict) -> None:
        """POST an unblock naming `verdict` (the receiver removes only that verdict's)."""
        if verdict.action not in HELD_KIND:
            return
        self._post("unblock", verdict, None)
        with self._lock:
            held = self._mirror.get(_key(verdict))
            if held is not None and held.verdict_id == verdict.id:
                del self._mirror[_key(verdict)]

    def held(self) -> list[Held]:
        """What the receiver acknowledged and this process has not seen end (see the module
        docstring: empty after a restart, so the reconciler re-sends each live block once)."""
        now = self.clock()
        with self._lock:
            for key in [k for k, m in self._mirror.items() if m.expires_at <= now]:
                del self._mirror[key]
            return [
                Held(target, kind, m.expires_at - now, m.verdict_id)
                for (kind, target), m in self._mirror.items()
            ]

    # -- the request -----------------------------------------------------------------------
    def body(self, op: str, verdict: Verdict, remaining: int | None, sent_at: int) -> bytes:
        """The exact bytes POSTed (and signed) for `op` on `verdict`."""
        payload: dict[str, Any] = {
            "action": op,
            "remaining": remaining,
            "sent_at": sent_at,
            "verdict": {**verdict.as_record(), "decided_at": verdict.decided_at},
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    def _post(self, op: str, verdict: Verdict, remaining: int | None) -> None:
        sent_at = int(self.clock())
        timestamp = str(sent_at)
        body = self.body(op, verdict, remaining, sent_at)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "Idempotency-Key": f"{verdict.id}:{op}",
            "Connection": "close",
        }
        what = f"webhook {self._where}: {op} {verdict.target} (verdict {verdict.id})"
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        # The socket timeout bounds each operation; this timer bounds the whole exchange
        # (a receiver trickling its answer a byte at a time is cut off as well).
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, cut)
        timer.daemon = True
        timer.start()
        try:
            conn.request("POST", self._target, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(MAX_RESPONSE_BYTES)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise BackendError(f"{what}: no answer within {self.timeout:g} s") from None
            raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None
        finally:
            timer.cancel()
            conn.close()
        if 200 <= status < 300:
            return
        text = answer[:MAX_ERROR_TEXT].decode("utf-8", "replace")
        transient = status >= 500 or status in TRANSIENT_4XX
        if 300 <= status < 400:
            raise BackendError(
                f"{what}: HTTP {status} redirect not followed (a signed request goes only to "
                "the configured URL; configure the final one)",
                transient=False,
            )
        raise BackendError(f"{what}: HTTP {status} {text!r}", transient=transient)


def _key(verdict: Verdict) -> tuple[str, str]:
    """(Held.kind, canonical target): one spelling per target, as the outbox compares."""
    kind = HELD_KIND[verdict.action]
    try:
        network = ipaddress.ip_network(verdict.target, strict=False)
    except ValueError:
        return kind, verdict.target.rstrip(".").lower()
    if network.prefixlen == network.max_prefixlen:
        return kind, str(network.network_address)
    return kind, str(network)
