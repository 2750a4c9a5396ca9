"""The nftables backend: verdicts become elements of timeout sets in Sluice's own table
(verdict delivery stage, gateway mode; this module talks to the kernel).

Theory of operation
-------------------
Sluice owns one table, ``inet sluice``, and never touches anything outside it::

    table inet sluice
      set hosts_v4, hosts_v6           hash      internal hosts (block_host of an address)
      set hostnets_v4, hostnets_v6     interval  internal networks (block_host of a CIDR)
      set dests_v4, dests_v6           hash      destinations (block_destination, address)
      set destnets_v4, destnets_v6     interval  destination networks (CIDR)
      counter blocked_hosts, blocked_destinations        the drops, for an operator
      chain forward (priority filter - 10)   from blocked hosts, to blocked destinations
      chain input   (priority filter - 10)   from blocked hosts to the gateway itself
      chain output  (priority filter - 10)   from the gateway to blocked destinations

All sets have ``flags timeout`` (interval sets ``flags interval, timeout``) and a ``size``.

A block is one element whose kernel timeout is the verdict's REMAINING time (rounded up to
whole seconds: the JSON API takes integers and silently stores a fractional timeout as "no
timeout at all"), so a block lifts by itself even when Sluice is gone. The element's comment
is ``v=<verdict id>``: `held()` reads it back so the reconciler knows which verdict put an
element there. The chains only ever drop; a drop in any base chain is final, and an accept in
ours would not override anyone else's drop, so the table cannot weaken the site's own rules.
Priority ``filter - 10`` runs the cheap set lookups before the site's filter chains.

Measured facts on this kernel (6.18) and Debian's nft 1.0.6 that shape the code:

- Re-adding an element refreshes its timeout but keeps the OLD comment, so a refresh is
  ``add {x timeout 1s}; delete {x}; add {x timeout T comment c}`` in one transaction: atomic
  (a batch is all or nothing) and valid whether or not x was there. Unblock is the first two.
- A full set answers ``ENFILE`` ("Too many open files in system"); that becomes a
  non-transient `BackendError` that names the set and its size.
- Interval sets reject overlapping elements, and ~100,000 elements in ANY interval set make
  every later nft call cost ~0.5 s (the cache loads interval sets whole); hash sets do not.
  So single addresses always go to the hash sets and the interval sets stay small (`SetSizes`).
- An overlap is resolved here, before the kernel sees it, by reading the (small) interval
  set: a network inside a wider element that lasts at least as long is already enforced, so
  nothing is sent; a wider network replaces the narrower elements it contains when it lasts
  at least as long as each of them (one batch). Anything else would either shorten a block or
  extend one beyond its decision, so it is refused as transient: a retry succeeds once the
  other element has lapsed, and the reconciler retries as well.
- Re-running a declarative table file duplicates rules. Bootstrap therefore sends, in ONE
  transaction, ``add`` for the table, sets, counters and chains (which keeps existing ones and
  their elements) and then ``flush chain`` + ``add rule`` for each chain: running it twice, or
  after ``nft flush ruleset`` (Debian's ``nftables.service`` start/reload/stop), leaves
  exactly one copy of each rule and never a moment without them.
- ``get element`` ignores JSON output in 1.0.6 and drops comments of interval elements, so
  the ownership check in `unblock` reads the hash-set element's text form (one lookup) and
  the interval set's JSON listing (small by design).

Network namespace: libnftables talks netlink in the network namespace of the thread that
opens its socket. Every nft call therefore runs on ONE dedicated worker thread that enters
the namespace (``setns``) once, when it starts, owns the ``nftables.Nftables`` context and
never leaves. No other thread ever changes namespace, so nothing else in the process can end
up acting on the wrong ruleset, and the single thread serialises all nft transactions (the
lock the kernel's generation counter would otherwise make us retry on). A subprocess per
call (``ip netns exec NS python -c ...``) would isolate as well but costs ~50 ms of
interpreter start per verdict; the thread costs nothing per call, and `netns=None` (the
gateway's own namespace, production) is the same code path. ctypes releases the GIL during
``nft_run_cmd_from_buffer``, so a slow nft call never stalls packet processing.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held

FAMILY = "inet"
TABLE = "sluice"
CHAIN_PRIORITY = -10  # "filter - 10": before the site's filter chains
COMMENT_PREFIX = "v="  # element comment: "v=<verdict id>" (nft caps comments at 128 bytes)
REFRESH_STUB_TIMEOUT_S = 1  # the throw-away timeout of add/delete/add
BULK_ELEMENTS = 10_000  # elements per transaction when loading many blocks at once
CALL_TIMEOUT_S = 60.0  # one nft transaction; a hung netlink socket must not hang the outbox
EXPIRY_TOLERANCE_S = 2.0  # the kernel reports whole seconds; within this a block is "as wanted"
# chain (= its hook) -> which sets it drops on: traffic FROM blocked hosts wherever it goes
# (through the gateway or to it), traffic TO blocked destinations (through it or from it)
CHAINS = {"forward": ("hosts", "destinations"), "input": ("hosts",), "output": ("destinations",)}
COUNTERS = {"hosts": "blocked_hosts", "destinations": "blocked_destinations"}

NETNS_RUN_DIR = "/run/netns"  # where `ip netns add` bind-mounts named namespaces
_CLONE_NEWNET = 0x40000000
_COMMENT_RE = re.compile(r'comment "([^"]*)"')

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SetSizes:
    """Capacity of each set (per address family). A set at capacity refuses the next block
    with a non-transient error; the guards cap concurrent blocks below these. Interval sets
    stay small on purpose (see the module docstring). A changed size takes effect only when
    the table is created anew (``nft delete table inet sluice``)."""

    hosts: int = 65_536
    host_networks: int = 1_024
    destinations: int = 262_144
    destination_networks: int = 4_096


@dataclass(frozen=True, slots=True)
class _Slot:
    """One set: where a (kind, family, single-or-network) target lives."""

    name: str
    kind: str  # "hosts" | "destinations" (Held.kind)
    family: int  # 4 | 6
    interval: bool
    size: int

    @property
    def payload(self) -> dict[str, str]:
        return {
            "protocol": "ip" if self.family == 4 else "ip6",
            "field": "saddr" if self.kind == "hosts" else "daddr",
        }


def _slots(sizes: SetSizes) -> dict[str, _Slot]:
    out: dict[str, _Slot] = {}
    for kind, base, single, nets in (
        ("hosts", "host", sizes.hosts, sizes.host_networks),
        ("destinations", "dest", sizes.destinations, sizes.destination_networks),
    ):
        for family in (4, 6):
            for slot in (
                _Slot(f"{base}s_v{family}", kind, family, False, single),
                _Slot(f"{base}nets_v{family}", kind, family, True, nets),
            ):
                out[slot.name] = slot
    return out


@dataclass(slots=True)
class ReconcileReport:
    """What `reconcile` did: counts per outcome and the verdicts it could not assert."""

    kept: int = 0
    added: int = 0
    refreshed: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (verdict id, why)


@dataclass(frozen=True, slots=True)
class _Element:
    """An element as listed: the network it covers, seconds left, the verdict id if ours."""

    network: Net
    remaining: float
    verdict_id: str | None


# -- the namespace-bound worker ------------------------------------------------------------


def _enter_netns_for_good(name: str) -> None:
    """Move the CALLING THREAD into netns `name`, with no way back (see the module docstring)."""
    fd = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class _NftSession:
    """One worker thread inside the namespace, owning one libnftables context."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._ctx: Any = None
        self._failure: str | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sluice-nft", initializer=self._start
        )

    def _start(self) -> None:  # runs on the worker thread, once
        try:
            if self.netns is not None:
                _enter_netns_for_good(self.netns)
            import nftables  # Debian's python3-nftables (ctypes over libnftables.so.1)

            ctx = nftables.Nftables()
            ctx.set_json_output(True)
            self._ctx = ctx
        except ImportError as exc:
            self._failure = f"python3-nftables is not importable ({exc}); install it (make setup)"
        except OSError as exc:
            self._failure = f"cannot enter network namespace {self.netns!r}: {exc}"

    def _call(self, fn: Callable[[Any], tuple[int, Any, str]]) -> tuple[int, Any, str]:
        def on_worker() -> tuple[int, Any, str]:
            if self._failure is not None:
                raise BackendError(f"nftables: {self._failure}", transient=False)
            return fn(self._ctx)

        try:
            return self._pool.submit(on_worker).result(timeout=CALL_TIMEOUT_S)
        except FutureTimeout:
            raise BackendError(f"nftables: no answer within {CALL_TIMEOUT_S:.0f} s") from None
        except RuntimeError as exc:  # submit after close()
            raise BackendError(f"nftables: backend closed ({exc})", transient=False) from None

    def json(self, commands: list[dict[str, Any]]) -> tuple[int, Any, str]:
        return self._call(lambda ctx: ctx.json_cmd({"nftables": commands}))

    def text(self, command: str) -> tuple[int, Any, str]:
        return self._call(lambda ctx: ctx.cmd(command))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# -- the backend ---------------------------------------------------------------------------


class NftablesBackend:
    """Blocks in ``inet sluice`` (see the module docstring). `netns`: the network namespace
    to act in (a name under /run/netns; None = this process's own). Needs CAP_NET_ADMIN."""

    name = "nftables"

    def __init__(self, *, netns: str | None = None, sizes: SetSizes | None = None) -> None:
        self.netns = netns
        self.sizes = sizes or SetSizes()
        self._slots = _slots(self.sizes)
        self._session: _NftSession | None = None
        self._bootstrapped = False
        self._interval_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> NftablesBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bootstrap(self) -> None:
        """Create the table, its sets, counters, chains and rules (idempotent, one batch)."""
        commands: list[dict[str, Any]] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
        for slot in self._slots.values():
            commands.append({"add": {"set": _set_spec(slot)}})
        for counter in COUNTERS.values():
            commands.append({"add": {"counter": {**_where(), "name": counter}}})
        for chain, kinds in CHAINS.items():
            commands.append({"add": {"chain": _chain_spec(chain)}})
            commands.append({"flush": {"chain": {**_where(), "name": chain}}})
            for slot in self._slots.values():
                if slot.kind in kinds:
                    commands.append({"add": {"rule": _drop_rule(chain, slot)}})
        self._run(commands, doing="bootstrap the table")
        self._bootstrapped = True

    # -- the Backend protocol --------------------------------------------------------------
    def block(self, verdict: Verdict, remaining: float) -> None:
        """Put `verdict.target` in its set for `remaining` seconds (rounded up), replacing the
        timeout and comment of an element already there. Nothing to do once expired."""
        slot, network = self._place(verdict)
        if remaining <= 0:
            return
        seconds = _seconds(remaining)
        self._with_table(lambda: self._block(slot, network, verdict.id, seconds))

    def unblock(self, verdict: Verdict) -> None:
        """Remove the element `verdict` put there. An element now carrying another verdict's
        id (a later verdict refreshed the same target) is left alone; absent is success."""
        if not verdict.blocks or verdict.target_kind == "domain":
            return
        slot, network = self._place(verdict)
        if slot.interval:
            with self._interval_lock:
                mine = [e for e in self._list_set(slot) if e.network == network]
                if not mine or mine[0].verdict_id not in (None, verdict.id):
                    return
                self._run(_remove(slot, [network]), doing=f"unblock {verdict.target}", slot=slot)
            return
        rc, out, err = self._session_().text(
            f"get element {FAMILY} {TABLE} {slot.name} {{ {network.network_address} }}"
        )
        if rc != 0:
            if _missing(err):
                return  # no such element (or no table): nothing of this verdict's is there
            raise self._error(err, doing=f"look up {verdict.target}", slot=slot)
        match = _COMMENT_RE.search(str(out))
        owner = _verdict_of(match.group(1)) if match else None
        if owner not in (None, verdict.id):
            return
        self._run(_remove(slot, [network]), doing=f"unblock {verdict.target}", slot=slot)

    def held(self) -> list[Held]:
        """Every element in Sluice's table (nothing outside it): target, set kind, seconds
        left (inf for an element without timeout, which Sluice never adds) and verdict id."""
        rc, out, err = self._session_().json(
            [{"list": {"table": {"family": FAMILY, "name": TABLE}}}]
        )
        if rc != 0:
            if _missing(err):
                return []
            raise self._error(err, doing="list the table")
        found: list[Held] = []
        for slot, element in self._elements(out):
            target = str(element.network) if slot.interval else str(element.network.network_address)
            found.append(Held(target, slot.kind, element.remaining, element.verdict_id))
        return found

    def reconcile(self, desired: Sequence[tuple[Verdict, float]]) -> ReconcileReport:
        """Make the table hold exactly `desired` ((verdict, remaining seconds) pairs): create
        what is missing (after ``nft flush ruleset`` that is everything, the table included),
        re-assert elements whose verdict or expiry differ, and remove elements of Sluice's
        table that no desired verdict names. Of two desired verdicts for one target the one
        lasting longer wins. Hash-set blocks load in bulk (`BULK_ELEMENTS` per transaction);
        network blocks go one by one through the overlap rules of `block`."""
        report = ReconcileReport()
        self.bootstrap()
        wanted: dict[tuple[str, str], tuple[Verdict, int]] = {}
        for verdict, remaining in desired:
            if remaining <= 0 or not verdict.blocks:
                continue
            try:
                slot, network = self._place(verdict)
            except BackendError as exc:
                report.failed.append((verdict.id, str(exc)))
                continue
            key = (slot.name, str(network))
            seconds = _seconds(remaining)
            if key not in wanted or wanted[key][1] < seconds:
                wanted[key] = (verdict, seconds)

        rc, out, err = self._session_().json(
            [{"list": {"table": {"family": FAMILY, "name": TABLE}}}]
        )
        if rc != 0:
            raise self._error(err, doing="list the table")
        present = {(slot.name, str(e.network)): e for slot, e in self._elements(out)}

        stale: dict[str, list[Net]] = {}
        for (set_name, _), element in present.items():
            if (set_name, str(element.network)) not in wanted:
                stale.setdefault(set_name, []).append(element.network)
        for set_name, networks in stale.items():
            slot = self._slots[set_name]
            for chunk in _chunks(networks, BULK_ELEMENTS):
                self._run(_remove(slot, chunk), doing="remove stale blocks", slot=slot)
            report.removed += len(networks)

        fresh: dict[str, list[tuple[Net, str, int]]]
        fresh = {}
        redo: list[tuple[_Slot, Net, str, int]] = []
        for (set_name, _), (verdict, seconds) in wanted.items():
            slot = self._slots[set_name]
            network = _network(verdict.target)
            have = present.get((set_name, str(network)))
            if (
                have is not None
                and have.verdict_id == verdict.id
                and abs(have.remaining - seconds) <= EXPIRY_TOLERANCE_S
            ):
                report.kept += 1
            elif slot.interval or have is not None:
                redo.append((slot, network, verdict.id, seconds))
            else:
                fresh.setdefault(set_name, []).append((network, verdict.id, seconds))

        for set_name, items in fresh.items():
            slot = self._slots[set_name]
            for chunk in _chunks(items, BULK_ELEMENTS):
                commands = [_element_cmd("add", slot, [_elem(slot, n, s, v) for n, v, s in chunk])]
                self._run(commands, doing=f"load {len(chunk)} blocks", slot=slot)
                report.added += len(chunk)
        for slot, network, vid, seconds in redo:
            try:
                self._block(slot, network, vid, seconds)
            except BackendError as exc:
                report.failed.append((vid, str(exc)))
            else:
                if (slot.name, str(network)) in present:
                    report.refreshed += 1
                else:
                    report.added += 1
        return report

    # -- internals -------------------------------------------------------------------------
    def _session_(self) -> _NftSession:
        if self._session is None:
            self._session = _NftSession(self.netns)
        return self._session

    def _place(self, verdict: Verdict) -> tuple[_Slot, Net]:
        """The set a verdict's target belongs in, and the target as a network."""
        if not verdict.blocks:
            raise BackendError(
                f"verdict {verdict.id} only alerts; nothing to block", transient=False
            )
        try:
            kind = target_kind(verdict.target)
        except ValueError as exc:
            raise BackendError(f"verdict {verdict.id}: {exc}", transient=False) from None
        if kind == "domain":
            raise BackendError(
                f"nftables blocks addresses, not names: {verdict.target!r} (verdict "
                f"{verdict.id}) belongs in a domain feed",
                transient=False,
            )
        network = _network(verdict.target)
        single = kind == "ip"
        base = "host" if verdict.action == "block_host" else "dest"
        name = f"{base}{'s' if single else 'nets'}_v{network.version}"
        return self._slots[name], network

    def _block(
        self,
        slot: _Slot,
        network: Net,
        verdict_id: str,
        seconds: int,
    ) -> None:
        if not slot.interval:
            shown = network.network_address
            self._run(
                _refresh(slot, network, seconds, verdict_id), doing=f"block {shown}", slot=slot
            )
            return
        with self._interval_lock:  # the listing below must still hold when the batch lands
            self._block_network(slot, network, verdict_id, seconds)

    def _block_network(self, slot: _Slot, network: Net, verdict_id: str, seconds: int) -> None:
        """Interval sets: resolve overlaps first (module docstring). Only a network that is
        there already gets add/delete/add: on this kernel a throw-away add of a NEW interval
        in a batch that also deletes a neighbour fails, so a new one is a plain add."""
        replaced: list[Net] = []
        exists = False
        for other in self._list_set(slot):
            if other.network == network:
                exists = True
                continue
            if network.subnet_of(other.network):  # type: ignore[arg-type]
                if other.remaining >= seconds:
                    return  # already enforced, at least as long, by the wider element
                raise BackendError(
                    f"{network} lies inside {other.network} (verdict {other.verdict_id}, "
                    f"{other.remaining:.0f} s left) in set {slot.name}; an nftables "
                    "interval set holds no overlapping networks, so it can be added only "
                    "once that block lapses"
                )
            if other.network.subnet_of(network):  # type: ignore[arg-type]
                if other.remaining > seconds:
                    raise BackendError(
                        f"{network} contains {other.network} (verdict {other.verdict_id}), "
                        f"which outlasts it ({other.remaining:.0f} s > {seconds} s) in set "
                        f"{slot.name}; an nftables interval set holds no overlapping "
                        "networks, so it can be added only once that block lapses"
                    )
                replaced.append(other.network)
        commands = _remove(slot, replaced) if replaced else []
        if exists:
            commands += _refresh(slot, network, seconds, verdict_id)
        else:
            commands.append(_element_cmd("add", slot, [_elem(slot, network, seconds, verdict_id)]))
        self._run(commands, doing=f"block {network}", slot=slot)

    def _with_table(self, action: Callable[[], None]) -> None:
        """Run `action`, bootstrapping first on the first call and once more if the table or
        a set has vanished behind our back (``nft flush ruleset``)."""
        if not self._bootstrapped:
            self.bootstrap()
        try:
            action()
        except _TableMissing:
            self.bootstrap()
            action()

    def _list_set(self, slot: _Slot) -> list[_Element]:
        rc, out, err = self._session_().json([{"list": {"set": {**_where(), "name": slot.name}}}])
        if rc != 0:
            if _missing(err):
                return []
            raise self._error(err, doing=f"list set {slot.name}", slot=slot)
        return [element for _, element in self._elements(out)]

    def _elements(self, listing: Any) -> Iterable[tuple[_Slot, _Element]]:
        """The elements of Sluice's sets in a JSON listing (other objects are skipped)."""
        for item in listing.get("nftables", []) if isinstance(listing, dict) else []:
            nft_set = item.get("set") if isinstance(item, dict) else None
            if not nft_set or nft_set.get("table") != TABLE or nft_set.get("family") != FAMILY:
                continue
            slot = self._slots.get(nft_set.get("name", ""))
            if slot is None:
                continue
            for raw in nft_set.get("elem", []):
                element = _parse_element(raw)
                if element is not None:
                    yield slot, element

    def _run(self, commands: list[dict[str, Any]], *, doing: str, slot: _Slot | None = None) -> Any:
        rc, out, err = self._session_().json(commands)
        if rc != 0:
            raise self._error(err, doing=doing, slot=slot)
        return out

    def _error(self, err: str, *, doing: str, slot: _Slot | None = None) -> BackendError:
        text = " ".join(line.strip() for line in err.splitlines() if "Error:" in line)
        text = text.replace("internal:0:0-0: ", "") or err.strip() or "failed"
        where = f" in namespace {self.netns}" if self.netns else ""
        if "Too many open files" in err:
            name = slot.name if slot else "a set"
            size = f" ({slot.size} elements)" if slot else ""
            return BackendError(
                f"nftables: cannot {doing}: set {FAMILY} {TABLE} {name}{size} is full{where} "
                "(the kernel reports a full set as ENFILE, 'Too many open files in system'); "
                "raise its size or lower the cap on concurrent blocks",
                transient=False,
            )
        if _missing(err):
            return _TableMissing(f"nftables: cannot {doing}: {text}{where}")
        if "Operation not permitted" in err:
            return BackendError(
                f"nftables: cannot {doing}: {text}{where} (needs CAP_NET_ADMIN)", transient=False
            )
        return BackendError(f"nftables: cannot {doing}: {text}{where}")


class _TableMissing(BackendError):
    """The table or a set is gone (flushed behind Sluice's back): re-bootstrap and retry."""


# -- JSON building blocks ------------------------------------------------------------------


def _where() -> dict[str, str]:
    return {"family": FAMILY, "table": TABLE}


def _set_spec(slot: _Slot) -> dict[str, Any]:
    flags = ["interval", "timeout"] if slot.interval else ["timeout"]
    name, kind = slot.name, f"ipv{slot.family}_addr"
    return {**_where(), "name": name, "type": kind, "flags": flags, "size": slot.size}


def _chain_spec(chain: str) -> dict[str, Any]:
    hook = {"type": "filter", "hook": chain, "prio": CHAIN_PRIORITY, "policy": "accept"}
    return {**_where(), "name": chain, **hook}


def _drop_rule(chain: str, slot: _Slot) -> dict[str, Any]:
    """``ip saddr @hosts_v4 counter name "blocked_hosts" drop`` and its kin."""
    lookup = {"op": "==", "left": {"payload": slot.payload}, "right": f"@{slot.name}"}
    verdict = [{"match": lookup}, {"counter": COUNTERS[slot.kind]}, {"drop": None}]
    return {**_where(), "chain": chain, "expr": verdict}


def _network(target: str) -> Net:
    return ipaddress.ip_network(target, strict=True)


def _seconds(remaining: float) -> int:
    """Whole seconds, rounded up: never a float (nft would store "no timeout"), never 0."""
    return max(1, math.ceil(remaining))


def _value(slot: _Slot, network: Net) -> Any:
    if not slot.interval:
        return str(network.network_address)
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def _elem(
    slot: _Slot,
    network: Net,
    seconds: int,
    verdict_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"val": _value(slot, network), "timeout": seconds}
    if verdict_id is not None:
        body["comment"] = f"{COMMENT_PREFIX}{verdict_id}"
    return {"elem": body}


def _element_cmd(verb: str, slot: _Slot, elems: list[Any]) -> dict[str, Any]:
    return {verb: {"element": {**_where(), "name": slot.name, "elem": elems}}}


def _refresh(slot: _Slot, network: Net, seconds: int, vid: str) -> list[dict[str, Any]]:
    """add/delete/add: the element ends with exactly this timeout and comment."""
    return [
        _element_cmd("add", slot, [_elem(slot, network, REFRESH_STUB_TIMEOUT_S)]),
        _element_cmd("delete", slot, [_value(slot, network)]),
        _element_cmd("add", slot, [_elem(slot, network, seconds, vid)]),
    ]


def _remove(slot: _Slot, networks: Sequence[Net]) -> list[dict[str, Any]]:
    """Hash sets: add-then-delete, which removes whether or not the element is there (1.0.6
    has no ``destroy``). Interval sets: a plain delete of elements just listed (under the
    interval lock), because the throw-away add trips the kernel's overlap check there."""
    if slot.interval:
        return [_element_cmd("delete", slot, [_value(slot, n) for n in networks])]
    return [
        _element_cmd("add", slot, [_elem(slot, n, REFRESH_STUB_TIMEOUT_S) for n in networks]),
        _element_cmd("delete", slot, [_value(slot, n) for n in networks]),
    ]


def _parse_element(raw: Any) -> _Element | None:
    """One listed element: a bare value (no timeout) or {"elem": {val, expires, comment}}."""
    body = raw.get("elem") if isinstance(raw, dict) else None
    if not isinstance(body, dict):
        body = {"val": raw}
    val = body.get("val")
    try:
        if isinstance(val, str):
            network = ipaddress.ip_network(val)
        elif isinstance(val, dict) and "prefix" in val:
            network = ipaddress.ip_network(f"{val['prefix']['addr']}/{val['prefix']['len']}")
        else:
            return None  # a range: Sluice never adds one (no auto-merge)
    except (ValueError, KeyError, TypeError):
        return None
    expires = body.get("expires")
    remaining = float(expires) if isinstance(expires, int | float) else math.inf
    comment = body.get("comment")
    return _Element(network, remaining, _verdict_of(comment) if isinstance(comment, str) else None)


def _verdict_of(comment: str) -> str | None:
    return comment[len(COMMENT_PREFIX) :] if comment.startswith(COMMENT_PREFIX) else None


def _missing(err: str) -> bool:
    return "No such file or directory" in err


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), n):
        yield items[start : start + n]
