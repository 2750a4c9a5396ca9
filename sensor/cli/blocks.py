"""`sluice blocks list|add|remove`: the blocks a live sensor enforces, by hand.

They work on the sensor's durable outbox (`outbox.db` in its --out directory, or `[verdicts]
outbox`), which the running sensor's delivery worker polls: a block added here is sent to
every configured backend within `[verdicts] interval`, a block removed here is taken out of
them, and `list` shows what is in force with its reason, expiry and delivery state per
backend. A manual block passes the same guards as the policy's (never the sensor's own
addresses, gateways, DNS servers or `never_block`; scope, prefix, TTL, host cap): what the
guards refuse is refused here too, with their reason.

Exit status: 0 done, 2 a usage error or a refusal.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sensor.config import Config
from sensor.policy.policy import PolicyError, parse_duration
from sensor.policy.verdict import Verdict, target_kind, verdict_id
from sensor.verdicts.delivery import OUTBOX_FILE, build_guards
from sensor.verdicts.outbox import Outbox, OutboxError

EXIT_OK = 0
EXIT_USAGE = 2
SENSORS_DIR = Path("/var/lib/sluice")
_VERDICT_ID = re.compile(r"[0-9a-f]{24}")
MANUAL_RULE = "manual"


class BlocksError(Exception):
    pass


def add_parser(sub: Any) -> None:
    blocks = sub.add_parser(
        "blocks",
        help="list, add or remove the blocks a live sensor enforces",
        description="The blocks in a live sensor's verdict outbox: list them, add one by "
        "hand (it passes the same guards as the policy's), remove one.",
    )
    actions = blocks.add_subparsers(dest="blocks_action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="the blocks in force, with reason, expiry and delivery per backend",
        description="The blocks in force (not expired, not removed): target, action, expiry, "
        "reason and the delivery state on each backend.",
    )
    add = actions.add_parser(
        "add",
        help="block a host or destination by hand",
        description="Block TARGET (an address, a network or a domain) for --ttl: an internal "
        "address (home_net) is a blocked host, anything else a blocked destination.",
    )
    add.add_argument("target", help="address, network (CIDR) or domain name")
    add.add_argument("--ttl", default="1h", help="how long: 90s, 30m, 1h, 24h")
    add.add_argument("--reason", required=True, help="why (shown with the block)")
    remove = actions.add_parser(
        "remove",
        help="remove a block",
        description="Remove the blocks of TARGET (every verdict in force for it), or the one "
        "verdict whose id is given; nothing else is touched.",
    )
    remove.add_argument("target", help="the blocked address, network or domain, or a verdict id")
    for parser in (listing, add, remove):
        parser.add_argument(
            "--db", metavar="DIR", help="the live sensor's --out directory (its outbox.db)"
        )
        parser.add_argument("--config", metavar="PATH", help="the sensor's config file")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from sensor.cli.main import UsageError, load_config_or_fail

    stream = out if out is not None else sys.stdout
    try:
        config = load_config_or_fail(args.config).config
        path = outbox_location(args.db, config)
        if args.blocks_action == "list":
            return _list(path, args.json, stream)
        if args.blocks_action == "add":
            return _add(path, config, args.target, args.ttl, args.reason, stream)
        return _remove(path, args.target, stream)
    except (BlocksError, UsageError) as exc:
        print(f"sluice: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def outbox_location(db: str | None, config: Config) -> Path:
    if db is not None:
        path = Path(db)
        path = path / OUTBOX_FILE if path.is_dir() else path
    elif config.verdicts.outbox:
        path = Path(config.verdicts.outbox)
    else:
        found = sorted(SENSORS_DIR.glob(f"*/{OUTBOX_FILE}"))
        if len(found) != 1:
            raise BlocksError(
                "pass --db DIR (the live sensor's --out directory)"
                + (
                    f": several sensors ({', '.join(str(p.parent) for p in found)})"
                    if found
                    else ""
                )
            )
        path = found[0]
    if not path.is_file():
        raise BlocksError(
            f"no verdict outbox at {path} (a live sensor with [verdicts] backends writes one)"
        )
    return path


def _open(path: Path, readonly: bool = False) -> Outbox:
    try:
        return Outbox(path, readonly=readonly)
    except OutboxError as exc:
        raise BlocksError(str(exc)) from None


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def in_force(outbox: Outbox, now: float) -> list[dict[str, Any]]:
    """The verdicts in force (not expired, not revoked), each with its delivery per backend."""
    by_id: dict[str, dict[str, Any]] = {}
    for st in outbox.state(limit=100_000):
        if st.expires_at <= now or st.revoked_at is not None:
            continue
        entry = by_id.get(st.verdict_id)
        if entry is None:
            verdict = outbox.verdict(st.verdict_id)
            entry = by_id[st.verdict_id] = {
                "id": st.verdict_id, "action": st.action, "target": st.target,
                "expires_at": st.expires_at,
                "reason": verdict.reason if verdict is not None else "",
                "policy_rule": verdict.policy_rule if verdict is not None else "",
                "delivery": {},
            }  # fmt: skip
        entry["delivery"][st.backend] = {
            "state": st.state, "attempts": st.attempts, "last_error": st.last_error,
        }  # fmt: skip
    return sorted(by_id.values(), key=lambda e: (e["target"], e["expires_at"]))


def _list(path: Path, as_json: bool, out: IO[str]) -> int:
    outbox = _open(path, readonly=True)
    try:
        rows = in_force(outbox, time.time())
    except OutboxError as exc:
        raise BlocksError(str(exc)) from None
    finally:
        outbox.close()
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    if not rows:
        out.write(f"no blocks in force ({path})\n")
        return EXIT_OK
    out.write(f"{len(rows)} block(s) in force ({path})\n")
    for row in rows:
        sent = ", ".join(
            f"{b} {d['state']}" + (f" ({d['last_error']})" if d["last_error"] else "")
            for b, d in sorted(row["delivery"].items())
        )
        out.write(
            f"{row['action']} {row['target']} until {_stamp(row['expires_at'])} [{sent}]\n"
            f"  {row['policy_rule']}: {row['reason']}\n"
        )
    return EXIT_OK


def _add(path: Path, config: Config, target: str, ttl_text: str, reason: str, out: IO[str]) -> int:
    if not config.verdicts.backends:
        raise BlocksError("no [verdicts] backends in the config: nothing would enforce it")
    try:
        ttl = parse_duration(ttl_text, "--ttl")
        kind = target_kind(target)
    except (PolicyError, ValueError) as exc:
        raise BlocksError(str(exc)) from None
    internal = False
    if kind != "domain":
        network = ipaddress.ip_network(target, strict=False)
        internal = any(
            network.network_address in n and network.broadcast_address in n for n in config.home_net
        )
    action = "block_host" if internal else "block_destination"
    now = time.time()
    verdict = Verdict(
        id=verdict_id(action, target, MANUAL_RULE, now),
        action=action,
        target=target,
        target_kind=kind,
        ttl=ttl,
        decided_at=now,
        reason=f"by hand: {reason}",
        severity="high",
        confidence=1.0,
        finding_ids=(),
        incident_id=MANUAL_RULE,
        policy_rule=MANUAL_RULE,
        mode="enforce",
    )
    result = build_guards(config, lambda line: print(f"sluice: {line}", file=sys.stderr)).check(
        verdict, now
    )
    if not result.allowed:
        raise BlocksError(f"refused by the guards ({result.rule}): {result.reason}")
    outbox = _open(path)
    try:
        outbox.accept(verdict, config.verdicts.backends, now=now)
    except OutboxError as exc:
        raise BlocksError(str(exc)) from None
    finally:
        outbox.close()
    out.write(f"{action} {target} until {_stamp(verdict.expires_at)}: verdict {verdict.id}\n")
    return EXIT_OK


def _remove(path: Path, target: str, out: IO[str]) -> int:
    outbox = _open(path)
    try:
        now = time.time()
        if _VERDICT_ID.fullmatch(target):
            ids = [target]
        else:
            ids = [row["id"] for row in in_force(outbox, now) if row["target"] == target]
        removed = [vid for vid in ids if outbox.revoke(vid, now)]
    except OutboxError as exc:
        raise BlocksError(str(exc)) from None
    finally:
        outbox.close()
    if not removed:
        raise BlocksError(f"no block in force for {target}")
    for vid in removed:
        out.write(f"removed verdict {vid}\n")
    return EXIT_OK
