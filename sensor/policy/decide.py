"""From findings to verdicts, with the state a policy needs over time (decision stage).

In: finding records as the pipeline emits them, and the packet time. Out: `Verdict`s to
record (the `verdict` event) and, when enforcing, to deliver. The policy itself is pure
(policy.py); this module adds the three things that need memory, all bounded:

- Incidents: findings about one (host, destination) that follow each other within
  `incident_window` seconds of packet time are one incident (id derived from the host, the
  destination and the incident's first finding time, so replays decide the same ids). A
  verdict's id is derived from its action, target, incident and packet time.
- Repeats: an alert of the same rule about the same host and destination within the window
  is held back (counted in `held_back`); a block decided again is reported again only when
  it moves the expiry on by at least a tenth of its TTL ("re-blocking extends it").
- Modes: a policy in `monitor` mode makes every verdict `monitor`; otherwise the run says
  `dry-run` (replays: nothing is sent anywhere) or `enforce` (the live sensor).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sensor.policy.policy import Decision, Facts, Policy, facts_of
from sensor.policy.verdict import Verdict, target_kind, verdict_id

DEFAULT_INCIDENT_WINDOW = 3600.0  # seconds of packet time between findings of one incident
MAX_INCIDENTS = 65536  # (host, destination) pairs remembered; the oldest is forgotten first
MAX_VERDICTS = 65536  # verdict ids remembered for repeats
REASON_CHARS = 240
CONFIDENCE = {"low": 0.5, "medium": 0.7, "high": 0.85, "critical": 0.95}
CERTAIN_KINDS = ("canary", "edm_match")  # a planted token or a known record: no doubt


def finding_id(record: Mapping[str, Any]) -> str:
    """A stable id of a finding event (the same capture gives the same ids)."""
    f = record.get("finding", {})
    if "id" in f:
        return str(f["id"])
    key = json.dumps(
        [record.get("timestamp"), record.get("flow_id"), f.get("kind"), f.get("host"),
         f.get("sha256"), f.get("detail")],
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class _Incident:
    id: str
    last: float


class Decider:
    def __init__(
        self,
        policy: Policy,
        run_mode: str,
        internal: Callable[[str], bool],
        incident_window: float = DEFAULT_INCIDENT_WINDOW,
    ) -> None:
        if run_mode not in ("dry-run", "enforce"):
            raise ValueError(f"run mode {run_mode!r}: dry-run or enforce")
        self.policy = policy
        self.mode = "monitor" if policy.mode == "monitor" else run_mode
        self.internal = internal
        self.window = incident_window
        self._incidents: OrderedDict[tuple[str, str], _Incident] = OrderedDict()
        self._alerts: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._expiry: OrderedDict[str, float] = OrderedDict()  # action, target, incident
        self.held_back = 0  # repeats not reported again
        self.decided = 0  # verdicts reported

    def finding(
        self,
        record: Mapping[str, Any],
        now: float,
        lookup: Callable[[str, str], Any] | None = None,
    ) -> list[Verdict]:
        """The verdicts one finding record leads to (repeats held back); `lookup(host,
        destination)`: what the meter knows of the destination (policy.facts_of)."""
        facts = facts_of(record, finding_id(record), self.internal, lookup)
        decisions = self.policy.decide(facts)
        if not decisions:
            return []
        incident = self._incident(facts, now)
        out = []
        for decision in decisions:
            verdict = self._verdict(decision, facts, incident, now)
            if self._news(verdict, facts, now):
                out.append(verdict)
        self.decided += len(out)
        return out

    def _incident(self, facts: Facts, now: float) -> str:
        key = (facts.host, facts.destination or facts.destination_name or "")
        known = self._incidents.get(key)
        if known is not None and now - known.last <= self.window:
            known.last = now
            self._incidents.move_to_end(key)
            return known.id
        digest = hashlib.blake2b(f"{key[0]}\0{key[1]}\0{now:.6f}".encode(), digest_size=8)
        self._incidents[key] = _Incident(digest.hexdigest(), now)
        self._incidents.move_to_end(key)
        while len(self._incidents) > MAX_INCIDENTS:
            self._incidents.popitem(last=False)
        return self._incidents[key].id

    def _verdict(self, d: Decision, facts: Facts, incident: str, now: float) -> Verdict:
        confidence = 1.0 if facts.kind in CERTAIN_KINDS else CONFIDENCE.get(d.severity, 0.5)
        reason = f"{d.rule.name}: {facts.kind}: {facts.detail}"[:REASON_CHARS]
        target = d.target
        try:
            kind = target_kind(target) if target else "ip"
        except ValueError:
            kind = "domain"
        return Verdict(
            id=verdict_id(d.action, target, incident, now),
            action=d.action,
            target=target,
            target_kind=kind,
            ttl=d.ttl,
            decided_at=now,
            reason=reason,
            severity=d.severity,
            confidence=confidence,
            finding_ids=(facts.finding_id,),
            incident_id=incident,
            policy_rule=d.rule.name,
            mode=self.mode,
        )

    def _news(self, verdict: Verdict, facts: Facts, now: float) -> bool:
        if not verdict.blocks:
            key = (verdict.policy_rule, facts.host, facts.destination or "")
            last = self._alerts.get(key)
            if last is not None and now - last <= self.window:
                self.held_back += 1
                return False
            self._alerts[key] = now
            self._alerts.move_to_end(key)
            while len(self._alerts) > MAX_VERDICTS:
                self._alerts.popitem(last=False)
            return True
        target = f"{verdict.action} {verdict.target} {verdict.incident_id}"
        known = self._expiry.get(target)
        if known is not None and verdict.expires_at - known < verdict.ttl / 10:
            self.held_back += 1
            return False
        self._expiry[target] = max(verdict.expires_at, known or 0.0)
        self._expiry.move_to_end(target)
        while len(self._expiry) > MAX_VERDICTS:
            self._expiry.popitem(last=False)
        return True


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The `verdict` sub-object of a verdict event."""
    return verdict.as_record()


def record_time(record: Mapping[str, Any]) -> float:
    """The packet time of an event record (its ISO `timestamp`)."""
    text = str(record["timestamp"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text).timestamp()


def verdict_record(finding: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The `verdict` event of `verdict`, decided on `finding` (its flow fields, if any)."""
    record: dict[str, Any] = {"timestamp": finding["timestamp"], "event_type": "verdict"}
    for key in ("flow_id", "community_id", "src_ip", "src_port", "dest_ip", "dest_port",
                "proto", "app_proto"):  # fmt: skip
        if key in finding:
            record[key] = finding[key]
    record["verdict"] = verdict_fields(verdict)
    return record
