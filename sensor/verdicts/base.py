"""What every firewall backend offers the outbox (verdict delivery stage).

A backend enforces blocks somewhere (an nftables set, the probe's eBPF map, a CrowdSec LAPI,
an OPNsense alias, a served block list, a webhook). The outbox calls it with one verdict at a
time and the seconds that verdict has left; the reconciler asks what the backend holds and
re-asserts what should be there. Every call is idempotent: blocking what is blocked extends
or keeps it, unblocking what is not there succeeds. A backend owns only what Sluice put there
and never touches anything else. Failures raise `BackendError` (the outbox retries with
backoff); a backend never swallows one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from sensor.policy.verdict import Verdict


class BackendError(Exception):
    """A delivery failed: the backend is down, refused, or answered nonsense. `transient`:
    worth retrying (a timeout, a 5xx, a full set is not)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Held:
    """One block a backend holds: its target, the set it sits in ("hosts" for internal hosts,
    "destinations"), the seconds it has left and the verdict id it was put there for (None
    when the backend cannot say)."""

    target: str
    kind: str  # "hosts" | "destinations"
    remaining: float
    verdict_id: str | None


class Backend(Protocol):
    name: str  # "nftables", "crowdsec", ... (the outbox's delivery rows name it)

    def block(self, verdict: Verdict, remaining: float) -> None:
        """Make `verdict.target` blocked for `remaining` seconds (refreshing a block already
        there to exactly that). Raises BackendError."""
        ...

    def unblock(self, verdict: Verdict) -> None:
        """Remove the block `verdict` put there (and only that). Raises BackendError."""
        ...

    def held(self) -> list[Held]:
        """The blocks Sluice owns in the backend now (for the reconciler)."""
        ...


def is_loopback_host(host: str) -> bool:
    """Whether a URL's host is this machine (the one place plain http may carry a secret)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
