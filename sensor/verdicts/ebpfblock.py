"""The eBPF block-map backend: `block_host` verdicts become entries of the probe's kernel
source block list (verdict delivery stage, inline XDP/TC deployments; this module talks to
the kernel through the attached probe).

Theory of operation
-------------------
The eBPF probe (probes/ebpf/) drops, at XDP or TC, every packet whose SOURCE address is a key
of its pinned ``blocked`` hash map (value: packets dropped since the entry was made). This
backend is the only writer of that map while the sensor runs; it enforces exactly one kind of
verdict: ``block_host`` of a single IPv4 or IPv6 address. Anything else is refused with a
non-transient `BackendError` saying why: a network (the map is an exact-match list of
sources, not a prefix trie), a destination (the program matches sources only), a name.

Ownership. The map holds a key and a drop counter, nothing else: no timeout and no room for
a verdict id. So the backend keeps an *ownership table* (address -> verdict id, expiry in
wall-clock seconds) and the map stays the truth of what is blocked:

- `block` puts the address in the map (if absent) and records (verdict id, now + remaining)
  for it; a re-block refreshes the record to exactly the new remaining time. An address
  already in the map that the table does not name was put there by someone else: it is
  already enforced, so `block` succeeds, but the entry is not adopted (never timed, never
  removed by us).
- `unblock` removes the address only when the table says this very verdict put it there; an
  entry that carries a later verdict's id, or none, is left alone; absent is success.
- `held` lists every entry of the map: ours with the seconds they have left and their verdict
  id, others with ``remaining = inf`` and ``verdict_id = None`` (the outbox's reconciler then
  asks to remove them with a stand-in verdict whose id matches nothing, which is a no-op).

Expiry. The outbox never sends an unblock when a verdict runs out: it relies on backends
with their own timeouts (nftables) and sweeps its rows. The kernel map has none, so expiry
is done here, by `expire(now)`: every owned entry whose expiry has passed is removed from
the map and from the table. `expire` runs

1. on a timer thread the backend starts (``timer=True``, the default): it sleeps on a
   condition until the earliest expiry (woken early when a block adds an earlier one, at
   most `MAX_WAIT_S` so a wall-clock jump is noticed), so a block lifts within
   milliseconds of its expiry without any caller's help;
2. at the start of every `block` and `held`, so what the reconciler sees is never stale.

A removal that fails (the probe went away) keeps the entry and is retried `RETRY_S` later.

Restarts. The map is pinned and survives the sensor; an in-memory table would not, and an
entry whose owner is forgotten would be "someone else's" and never lift. With `state_path`
the table is kept in a small JSON file, rewritten atomically (temporary file, fsync, rename)
on every change and read when the backend is made. It is written BEFORE an entry enters the
map and AFTER one leaves it, so after any crash the file names a superset of our entries: a
recorded address missing from the map is merely forgotten at its expiry (the reconciler
re-sends a block that should be there), and nothing we put in the map is ever unowned. A
block whose expiry passed while the sensor was down lifts at the first `expire` after the
start. Without `state_path` (tests, or a map that is not pinned) ownership lasts as long as
the process; entries left by an earlier run are then reported and kept as foreign.

Threads. The outbox worker calls `block`/`unblock`/`held`, the timer thread calls `expire`,
and the runtime's meter reads the probe's counter maps. One lock serialises everything this
backend does with the map and the table (the probe's block list wants a single writer: each
change rewrites the program's copy of a short list, `blockctl`, from the map). Reads of the
probe's other maps by other threads are independent syscalls on other maps and need no lock.
`close()` stops the timer and must come before the probe is detached (the runtime closes the
delivery stage first); the blocks stay in the pinned map.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from probes.ebpf.counters import parse_ip
from probes.ebpf.loader import EbpfError
from sensor.classify.edm import write_private_atomic
from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held

log = logging.getLogger(__name__)

NAME = "ebpf"
HELD_KIND = "hosts"  # the map holds internal sources only
STATE_VERSION = 1
RETRY_S = 1.0  # a failed removal at expiry is tried again after this long
MAX_WAIT_S = 60.0  # the timer looks at the clock at least this often (wall-clock jumps)


class BlockMap(Protocol):
    """What this backend needs of the probe (`probes.ebpf.loader.EbpfProbe`)."""

    max_blocked: int

    @property
    def attached(self) -> bool: ...

    def block(self, ip: str) -> None: ...

    def unblock(self, ip: str) -> bool: ...

    def blocked(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Owned:
    """An entry this backend put in the map: for which verdict, until when (epoch seconds)."""

    verdict_id: str
    expires_at: float


class EbpfBlockBackend:
    """`block_host` verdicts in the probe's kernel block list (see the module docstring).
    `probe`: the attached `EbpfProbe` of the live runtime; `state_path`: where the ownership
    table is kept across restarts (None: in memory only); `clock`: wall-clock seconds, the
    clock the outbox computes remaining times on; `timer`: run expiry on a thread of ours."""

    name = NAME

    def __init__(
        self,
        probe: BlockMap,
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        timer: bool = True,
    ) -> None:
        self.probe = probe
        self.state_path = state_path
        self.clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._owned: dict[str, Owned] = _load(state_path) if state_path is not None else {}
        self._closed = False
        self._thread: threading.Thread | None = None
        if timer:
            self._thread = threading.Thread(target=self._run, name="sluice-ebpf-expiry",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def close(self) -> None:
        """Stop the expiry timer (the blocks stay in the pinned map). Idempotent."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EbpfBlockBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Backend protocol --------------------------------------------------------------

    def block(self, verdict: Verdict, remaining: float) -> None:
        """Drop every packet from `verdict.target` for `remaining` seconds (a re-block sets
        exactly that). Non-transient errors: not a single internal host, or the map is full."""
        addr = _source(verdict)
        now = self.clock()
        with self._lock:
            self._require_attached()
            self._expire_locked(now)
            if remaining <= 0:
                return  # ran out on the way here: nothing to enforce
            present = self._read_map(doing=f"read the block map to block {addr}")
            mine = self._owned.get(addr)
            if addr in present and mine is None:
                log.info("%s is already in the eBPF block map, not put there by Sluice: "
                         "left as it is (verdict %s)", addr, verdict.id)  # fmt: skip
                return
            if addr not in present and len(present) >= self.probe.max_blocked:
                raise self._full(addr)
            self._owned[addr] = Owned(verdict.id, now + remaining)
            self._save_locked(restore={addr: mine})  # before the map: see "Restarts"
            if addr not in present:
                try:
                    self.probe.block(addr)
                except (EbpfError, OSError) as exc:
                    if mine is None:
                        del self._owned[addr]
                    else:
                        self._owned[addr] = mine
                    with contextlib.suppress(BackendError):
                        self._save_locked()
                    if len(self._read_map(doing="count the block map")) >= self.probe.max_blocked:
                        raise self._full(addr) from None
                    raise BackendError(f"eBPF block map: cannot block {addr}: {exc}") from None
            self._changed.notify_all()

    def unblock(self, verdict: Verdict) -> None:
        """Remove `verdict.target` from the map if this verdict put it there (else nothing)."""
        try:
            addr = _source(verdict)
        except BackendError:
            return  # nothing of this verdict can be in the map
        with self._lock:
            mine = self._owned.get(addr)
            if mine is None or mine.verdict_id != verdict.id:
                return
            self._require_attached()
            self._remove_locked(addr)

    def held(self) -> list[Held]:
        """Every entry of the map: ours with their remaining seconds and verdict id, others
        with ``inf`` and None (we never remove those)."""
        now = self.clock()
        with self._lock:
            self._require_attached()
            self._expire_locked(now)
            present = self._read_map(doing="list the block map")
            out = []
            for addr in sorted(present):
                mine = self._owned.get(addr)
                if mine is None:
                    out.append(Held(addr, HELD_KIND, math.inf, None))
                else:
                    out.append(Held(addr, HELD_KIND, max(0.0, mine.expires_at - now),
                                    mine.verdict_id))  # fmt: skip
            return out

    # -- expiry ----------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """Remove every owned entry whose expiry is at or before `now` (default: the clock);
        returns the addresses removed. A removal that fails is kept for the next call."""
        with self._lock:
            return self._expire_locked(self.clock() if now is None else now)

    def next_expiry(self) -> float | None:
        """The earliest expiry among the owned entries, or None."""
        with self._lock:
            return min((o.expires_at for o in self._owned.values()), default=None)

    def _expire_locked(self, now: float) -> list[str]:
        due = [addr for addr, o in self._owned.items() if o.expires_at <= now]
        removed = []
        for addr in due:
            try:
                self._remove_locked(addr)
            except BackendError as exc:
                log.warning("eBPF block of %s expired but could not be lifted yet: %s", addr, exc)
                continue
            removed.append(addr)
        return removed

    def _run(self) -> None:
        with self._lock:
            while not self._closed:
                now = self.clock()
                self._expire_locked(now)
                earliest = min((o.expires_at for o in self._owned.values()), default=None)
                if earliest is None:
                    wait = MAX_WAIT_S
                elif earliest <= now:  # a removal failed: try again a little later
                    wait = RETRY_S
                else:
                    wait = min(earliest - now, MAX_WAIT_S)
                self._changed.wait(wait)

    # -- the map and the table (lock held) -------------------------------------------------

    def _require_attached(self) -> None:
        if not self.probe.attached:
            raise BackendError("the eBPF probe is not attached: its block map cannot be used")

    def _read_map(self, *, doing: str) -> dict[str, int]:
        try:
            return self.probe.blocked()
        except (EbpfError, OSError) as exc:
            raise BackendError(f"eBPF block map: cannot {doing}: {exc}") from None

    def _remove_locked(self, addr: str) -> None:
        """Out of the map, then out of the table (see "Restarts")."""
        if not self.probe.attached:
            raise BackendError(f"the eBPF probe is not attached: cannot unblock {addr}")
        try:
            self.probe.unblock(addr)  # False when already gone: success all the same
        except (EbpfError, OSError) as exc:
            raise BackendError(f"eBPF block map: cannot unblock {addr}: {exc}") from None
        mine = self._owned.pop(addr)
        try:
            self._save_locked()
        except BackendError:
            # The map no longer has it; a stale record only lifts a missing entry later.
            log.warning("eBPF block of %s lifted, but its ownership file was not updated", addr)
        else:
            log.info("eBPF block of %s lifted (verdict %s)", addr, mine.verdict_id)

    def _full(self, addr: str) -> BackendError:
        return BackendError(
            f"eBPF block map is full (max_blocked = {self.probe.max_blocked} sources): "
            f"cannot block {addr}; raise the probe's max_blocked or lower "
            "[verdicts] max_blocked_hosts",
            transient=False,
        )

    def _save_locked(self, restore: dict[str, Owned | None] | None = None) -> None:
        """Write the table to `state_path` (nothing without one). On failure the changes
        named in `restore` are undone in memory and a transient BackendError is raised."""
        if self.state_path is None:
            return
        doc = {
            "version": STATE_VERSION,
            "blocks": {a: {"verdict_id": o.verdict_id, "expires_at": o.expires_at}
                       for a, o in sorted(self._owned.items())},
        }  # fmt: skip
        try:
            _write_state(self.state_path, json.dumps(doc, indent=1) + "\n")
        except OSError as exc:
            for addr, old in (restore or {}).items():
                if old is None:
                    self._owned.pop(addr, None)
                else:
                    self._owned[addr] = old
            raise BackendError(
                f"cannot write the eBPF block ownership file {self.state_path}: {exc.strerror}"
            ) from None


def _source(verdict: Verdict) -> str:
    """The map key (canonical address text) a verdict blocks; non-transient BackendError for
    everything the source map cannot express."""
    if verdict.action != "block_host":
        what = "only alerts" if not verdict.blocks else f"is {verdict.action} of {verdict.target}"
        raise BackendError(
            f"the eBPF block map drops packets by their internal SOURCE address; verdict "
            f"{verdict.id} {what}, which belongs in a destination block list (nftables, a "
            "firewall API)",
            transient=False,
        )
    try:
        kind = target_kind(verdict.target)
    except ValueError as exc:
        raise BackendError(f"verdict {verdict.id}: {exc}", transient=False) from None
    if kind != "ip":
        raise BackendError(
            f"the eBPF block map is a list of single source addresses, not networks or "
            f"names: block_host {verdict.target} (verdict {verdict.id}) cannot be enforced by "
            "it; use the nftables backend for networks",
            transient=False,
        )
    # IPv4-mapped IPv6 is the IPv4 host (the map stores IPv4 that way), as the probe decodes it.
    return str(parse_ip(ipaddress.ip_address(verdict.target)))


def _load(path: Path) -> dict[str, Owned]:
    """The ownership table kept in `path` (empty when there is none yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BackendError(
            f"cannot read the eBPF block ownership file {path}: {exc.strerror}", transient=False
        ) from None
    try:
        doc = json.loads(text)
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"version {doc.get('version')!r}, expected {STATE_VERSION}")
        out = {}
        for addr, entry in doc["blocks"].items():
            out[str(parse_ip(addr))] = Owned(str(entry["verdict_id"]),
                                             float(entry["expires_at"]))  # fmt: skip
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendError(
            f"the eBPF block ownership file {path} is damaged ({exc}); Sluice cannot tell its "
            "blocks from others'. Compare it with the probe's block map, lift stale entries "
            "by hand and remove the file",
            transient=False,
        ) from None


def _write_state(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one; mode 0600."""
    write_private_atomic(path, [text.encode("utf-8")])
