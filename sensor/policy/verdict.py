"""The value a policy decision produces: a `Verdict` (decision stage, pure data).

A verdict says what to do about one target (block an internal host, block a destination, or
only alert), for how long, why, and on which findings it rests. It is the unit everything
after the policy works on: the `verdict` event, the durable outbox (one delivery per verdict
and backend), every firewall backend and the guards in front of them.

Identity: `id` is the idempotency key. It is derived from what the verdict enforces (action,
target), the incident it belongs to and its packet time, never from a wall clock or a
counter, so a replay of the same capture decides the same ids and a retried delivery names
the same verdict. Times are
packet time (seconds since the epoch), like everything else in the pipeline: `expires_at =
decided_at + ttl`; a backend is always sent the REMAINING time (`remaining(now)`), so a
verdict delivered late does not outlive its decision.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

ACTIONS = ("alert", "block_host", "block_destination")
TARGET_KINDS = ("ip", "cidr", "domain")
MODES = ("dry-run", "enforce", "monitor")


@dataclass(frozen=True, slots=True)
class Verdict:
    id: str  # idempotency key (verdict_id())
    action: str  # one of ACTIONS
    target: str  # "10.1.2.3", "203.0.113.0/24", "transfer.example"
    target_kind: str  # one of TARGET_KINDS
    ttl: float  # seconds the decision asked for
    decided_at: float  # packet time of the finding that completed it
    reason: str  # one line for an operator: what was found, by which rule
    severity: str  # low | medium | high | critical
    confidence: float  # 0..1
    finding_ids: tuple[str, ...]  # the findings it rests on
    incident_id: str
    policy_rule: str  # the rule's name in the policy file
    mode: str  # one of MODES

    @property
    def expires_at(self) -> float:
        return self.decided_at + self.ttl

    def remaining(self, now: float) -> float:
        """Seconds left at `now` (0 once expired): what a backend is sent."""
        return max(0.0, self.expires_at - now)

    @property
    def blocks(self) -> bool:
        return self.action != "alert"

    def as_record(self) -> dict[str, Any]:
        """The `verdict` sub-object of a verdict event (its expiry, not its decision time)."""
        return {
            "id": self.id,
            "action": self.action,
            "target": self.target,
            "target_kind": self.target_kind,
            "ttl": self.ttl,
            "expires_at": self.expires_at,
            "reason": self.reason,
            "severity": self.severity,
            "confidence": self.confidence,
            "finding_ids": list(self.finding_ids),
            "incident_id": self.incident_id,
            "policy_rule": self.policy_rule,
            "mode": self.mode,
        }


def verdict_id(action: str, target: str, incident_id: str, decided_at: float) -> str:
    """The idempotency key: this action on this target in this incident, decided at this
    packet time. A re-block later in the incident is a new verdict (the outbox lets the one
    that expires last hold the block); a retried delivery or a replay names the same id."""
    key = f"{action}\0{target}\0{incident_id}\0{decided_at:.6f}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def target_kind(target: str) -> str:
    """ "ip" for one address, "cidr" for a network, "domain" for a name; ValueError else."""
    try:
        ipaddress.ip_address(target)
        return "ip"
    except ValueError:
        pass
    if "/" in target:
        ipaddress.ip_network(target, strict=True)  # raises ValueError on host bits set
        return "cidr"
    labels = target.rstrip(".").split(".")
    if len(labels) < 2 or not all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        raise ValueError(f"{target!r} is no IP address, network or domain name")
    return "domain"
