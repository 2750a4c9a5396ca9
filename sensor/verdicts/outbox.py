"""The durable verdict outbox (verdict delivery stage): verdicts in, backend calls out.

Theory of operation
-------------------
A verdict is *accepted* when the transaction that stores it commits (SQLite, WAL journal,
`synchronous=FULL`, so a commit survives a power cut). Accepting writes the verdict and one
delivery row per (verdict, backend). Workers then push rows to the backends; nothing is ever
sent from inside `accept`, so a backend that is down cannot slow the pipeline or lose a verdict.

Each blocking target is a *key* (action, target): "block host 10.1.2.3" is one key, "block
destination 10.1.2.3" another. Several verdicts may be live for one key (live: accepted, not
revoked, not expired); the *effective* one is the live verdict that expires last (ties: the
one accepted first). Only the effective verdict's rows are sent; the others are `superseded`.
This makes the two rules of the issue precise:

- re-blocking extends: a new verdict for a key whose expiry is later than the effective one's
  becomes effective; the old one's rows turn `superseded` and the new rows send the new
  remaining TTL (a backend refreshes a block to exactly what it is sent). A new verdict that
  expires earlier adds nothing and is stored `superseded` from the start;
- unblocking revokes only what it names: revoking a superseded verdict changes nothing on any
  backend; revoking the effective one hands the key to the next live verdict (its rows are
  re-sent with its own, shorter, remaining TTL) or, when none is left, turns the rows into
  unblocks. Since the effective verdict expires last, once it expires every verdict of its
  key has, so expiry never has to resurrect anything.

Delivery rows
-------------
A row is (verdict, backend, op) with `op` "block" or "unblock" (a revoke rewrites the op of
the same row, so there is still one row per verdict and backend), a `state`, its `attempts`
for the current op, `next_attempt`, `last_error` and a lease (`lease_owner`, `lease_until`).

    state        op       meaning                              next
    pending      block    to be sent (or being sent: leased)   delivered | failed | expired
                                                               superseded | revoked
    pending      unblock  revoked, removal to be sent          revoked | failed
    delivered    block    the backend acknowledged it          expired | superseded | pending
                                                               (revoked or reconciled)
    superseded   block    another verdict holds the key        pending (it became effective
                                                               again) | revoked | expired
    failed       either   a non-transient BackendError         (terminal; `last_error` says)
    expired      block    the verdict ran out; nothing sent    (terminal)
    revoked      either   revoked and no longer on the backend (terminal)

`deliver_due(now, backends)` is one worker pass: it sweeps rows of expired verdicts, *claims*
up to `batch` due rows in one short transaction (lease owner and `lease_until = now + lease`,
`attempts + 1`), calls the backends with the lock released, and records the outcomes in one
commit at the end of the pass (one fsync per pass, not per row), each only if its row still
carries that lease, that op and `pending`: a row revoked or superseded while it was in flight
is merely released, and the change made meanwhile is sent next. A process that dies
between claim and record leaves leases that run out, after which the rows are claimed again:
delivery is at-least-once, so backends are idempotent (the verdict id is the key to
deduplicate on). Within one backend a key is in flight at most once (a claim skips rows whose
key has a live lease), so a block and its unblock never race.

Retries: a transient `BackendError` (or any other exception a backend lets escape: a bug in
one backend must not stop the others) keeps the row pending with `next_attempt = now +
backoff`, where backoff doubles per attempt from `backoff_base` up to `backoff_cap` and is
drawn uniformly from its upper half (equal jitter: it grows, yet two sensors that lost the
same backend at once do not retry in step). There is no attempt cap: a verdict's expiry ends
its retries. A backend is always sent `verdict.remaining(now)`; a row whose verdict has
expired is marked `expired` and never sent.

The reconciler (`reconcile(now, backend)`) reads `backend.held()` first and the database
second (so a block that lands in between is already claimed, hence desired). A delivered
block missing from the backend goes back to `pending` (the worker re-sends it with its
remaining TTL, under the same leases as any delivery); a block the backend holds for Sluice
that no live verdict of that backend wants (expired on a backend without timeouts, revoked
while the backend was down, left over from an older database) is removed at once. `held()`
reports only what Sluice owns, so nothing else is ever touched.

Time: the module reads no clock. Every method that needs the time takes `now` (seconds since
the epoch, the same clock as `Verdict.decided_at`); the RNG of the jitter is injected.

Bounds: a pass holds at most `batch` rows; queries for the CLI take a `limit`; the only
structure proportional to the number of active blocks is the reconciler's desired set of one
backend (the backend's own `held()` list is as large). The file grows with accepted verdicts
until `prune(before)` deletes verdicts that expired before `before`.

Errors: a database that is corrupt, of a newer schema, unreadable or locked for longer than
`busy_timeout` raises `OutboxError` naming the file and the cause; `retryable` tells a runtime
whether waiting can help (locked, busy) or not (corrupt, newer schema), so it can stop with the
message instead of restarting into the same failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import Backend, BackendError, Held

SCHEMA_VERSION = 1
DEFAULT_LEASE = 60.0  # seconds a claim is held; must exceed one pass's backend calls
DEFAULT_BATCH = 200  # rows claimed per pass: bounds its memory; lease > batch x slowest call
DEFAULT_BACKOFF_BASE = 1.0  # seconds before the first retry (upper bound)
DEFAULT_BACKOFF_CAP = 300.0  # the longest wait between two attempts
DEFAULT_BUSY_TIMEOUT = 5.0  # seconds SQLite waits for another writer before "locked"
MAX_ERROR_CHARS = 500  # a backend's error text is cut to this in `last_error`
DEFAULT_QUERY_LIMIT = 1000  # rows `state()` returns at most unless told

STATES = ("pending", "delivered", "superseded", "failed", "expired", "revoked")
OPS = ("block", "unblock")
HELD_KIND = {"block_host": "hosts", "block_destination": "destinations"}
ACTION_OF_KIND = {kind: action for action, kind in HELD_KIND.items()}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    expires_at REAL NOT NULL,
    accepted_at REAL NOT NULL,
    revoked_at REAL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_key ON verdicts (action, target, expires_at);
CREATE INDEX IF NOT EXISTS verdicts_expiry ON verdicts (expires_at);
CREATE TABLE IF NOT EXISTS deliveries (
    verdict_id TEXT NOT NULL REFERENCES verdicts (id),
    backend TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    op TEXT NOT NULL DEFAULT 'block',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    delivered_at REAL,
    PRIMARY KEY (verdict_id, backend)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt);
CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (action, target, backend);
"""


class OutboxError(Exception):
    """The outbox database cannot be used; the message names the file and the cause.
    `retryable`: waiting may help (another process holds the lock), else it will not
    (corrupt file, newer schema, no permission)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """One delivery row as the CLI shows it (`sluice verdicts`, `sluice blocks list`)."""

    verdict_id: str
    action: str
    target: str
    backend: str
    op: str  # "block" | "unblock"
    state: str  # one of STATES
    attempts: int
    last_error: str | None
    next_attempt: float  # when a pending row is due again
    lease_until: float | None  # set while a worker holds it (in flight)
    delivered_at: float | None
    expires_at: float
    revoked_at: float | None


@dataclass(slots=True)
class DeliveryReport:
    """What one `deliver_due` pass did (counts; the runtime turns them into stats)."""

    claimed: int = 0
    delivered: int = 0  # blocks acknowledged
    unblocked: int = 0  # unblocks acknowledged (rows now `revoked`)
    retried: int = 0  # transient errors: the row stays pending with a backoff
    failed: int = 0  # non-transient errors: the row is `failed`
    expired: int = 0  # rows whose verdict ran out before they were sent (by this pass)
    released: int = 0  # rows changed (revoked, superseded) while in flight: outcome dropped
    crashed: int = 0  # of `retried`: a backend raised something other than BackendError


@dataclass(slots=True)
class ReconcileReport:
    """What one `reconcile` pass did for one backend."""

    backend: str
    held: int = 0
    desired: int = 0
    requeued: int = 0  # delivered blocks missing from the backend, pending again
    removed: int = 0  # Sluice-owned blocks no live verdict wants, unblocked
    errors: int = 0  # removals that failed (tried again next pass)
    error: str | None = None  # held() failed: nothing was changed


@dataclass(frozen=True, slots=True)
class _Claim:
    verdict: Verdict
    backend: str
    op: str
    owner: str  # the lease
    attempts: int  # including this one


class _Outcome(NamedTuple):
    claim: _Claim
    error: str | None  # None: the backend acknowledged
    transient: bool


class Outbox:
    def __init__(
        self,
        path: str | Path,
        *,
        rng: random.Random | None = None,
        lease: float = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        readonly: bool = False,
    ) -> None:
        """Open (creating it unless `readonly`) the outbox at `path`. Several `Outbox`
        objects, in one process or many, may share a file: leases keep their deliveries
        apart. One object may be shared by threads (its connection is behind a lock that is
        never held during a backend call)."""
        self.path = Path(path)
        self.rng = rng or random.Random()
        self.lease = lease
        self.batch = batch
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.readonly = readonly
        self._lock = threading.Lock()
        # Distinguishes this object's leases from every other's (another process, or a
        # previous life of this one); not secret, only unique.
        self._owner = os.urandom(8).hex()
        self._claims = 0
        try:
            self._db = self._connect(busy_timeout)
            if not readonly:
                self._migrate()
            self.schema = self._schema_version()
        except sqlite3.Error as exc:
            raise _error(self.path, "cannot open", exc) from None
        except OSError as exc:
            raise OutboxError(f"{self.path}: cannot open the verdict outbox ({exc})") from None
        if self.schema > SCHEMA_VERSION:
            self._db.close()
            raise OutboxError(
                f"{self.path}: verdict outbox schema {self.schema} was written by a newer "
                f"Sluice (this one reads up to {SCHEMA_VERSION})"
            )

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        if self.readonly:
            uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
            db = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=busy_timeout,
                check_same_thread=False,
            )  # fmt: skip
        else:
            # Private from the start: verdicts name internal hosts.
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o640)
            os.close(fd)
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal mode is {mode}, not WAL")
            db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        return db

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                return  # refused by __init__ with a clear message; change nothing
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            # Version 1 is the first: later versions add their migrations here, keyed on
            # the version found.
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )

    def _schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            raise sqlite3.DatabaseError("no schema version (not a verdict outbox)")
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken IMMEDIATE so that two writers queue on the lock
        instead of failing at their first write; SQLite errors become OutboxError."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _error(self.path, "cannot write", exc) from None
            try:
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise _error(self.path, "cannot write", exc) from None
            except BaseException:
                _rollback(db)
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise _error(self.path, "cannot read", exc) from None

    # -- accepting and revoking -----------------------------------------------------------

    def accept(
        self, verdict: Verdict, backends: Iterable[Backend | str], *, now: float | None = None
    ) -> bool:
        """Store `verdict` with one delivery row per backend and commit (the verdict is
        accepted when this returns). False when a verdict with this id was accepted before
        (nothing changes: the first one stands). `now` (default: the verdict's decision
        time) decides which verdicts of the same key are still live."""
        return self.accept_many([verdict], backends, now=now) == 1

    def accept_many(
        self,
        verdicts: Iterable[Verdict],
        backends: Iterable[Backend | str],
        *,
        now: float | None = None,
    ) -> int:
        """`accept` for a burst, in one transaction (one fsync); returns how many were new.
        A verdict that blocks nothing or is not in enforce mode is a ValueError, and then
        nothing of the burst is stored (dry-run and monitor verdicts never reach an outbox)."""
        names = sorted({b if isinstance(b, str) else b.name for b in backends})
        new = 0
        with self._write() as db:
            for verdict in verdicts:
                if not verdict.blocks:
                    raise ValueError(f"verdict {verdict.id}: {verdict.action!r} blocks nothing")
                if verdict.mode != "enforce":
                    raise ValueError(f"verdict {verdict.id}: mode {verdict.mode!r} sends nothing")
                at = verdict.decided_at if now is None else now
                new += _accept(db, verdict, names, at)
        return new

    def revoke(self, verdict_id: str, now: float) -> bool:
        """Revoke the verdict `verdict_id` and nothing else (see the module docstring for
        what that sends). False if it is unknown or was revoked already."""
        with self._write() as db:
            row = db.execute(
                "SELECT action, target, expires_at, revoked_at FROM verdicts WHERE id = ?",
                (verdict_id,),
            ).fetchone()
            if row is None or row[3] is not None:
                return False
            action, target, expires_at, _ = row
            was_effective = _effective(db, action, target, now) == verdict_id
            db.execute("UPDATE verdicts SET revoked_at = ? WHERE id = ?", (now, verdict_id))
            if not was_effective or expires_at <= now:
                # Superseded (another verdict holds the key on every backend) or already
                # out of time (the backend's timeout removed it): nothing to send.
                db.execute(
                    "UPDATE deliveries SET state = 'revoked' WHERE verdict_id = ? "
                    "AND state IN ('pending', 'superseded', 'delivered')",
                    (verdict_id,),
                )
                return True
            successor = _effective(db, action, target, now)
            for backend, state, attempts, lease_until in db.execute(
                "SELECT backend, state, attempts, lease_until FROM deliveries WHERE verdict_id = ?",
                (verdict_id,),
            ).fetchall():
                handed_over = successor is not None and (
                    db.execute(
                        "UPDATE deliveries SET state = 'pending', op = 'block', attempts = 0, "
                        "next_attempt = ?, last_error = NULL WHERE verdict_id = ? AND "
                        "backend = ? AND state IN ('superseded', 'delivered', 'pending')",
                        (now, successor, backend),
                    ).rowcount
                    == 1
                )
                maybe_sent = state == "delivered" or (
                    state == "pending" and (attempts > 0 or lease_until is not None)
                )
                if handed_over or not maybe_sent:
                    # The successor's block overwrites ours; or nothing ever reached it.
                    db.execute(
                        "UPDATE deliveries SET state = 'revoked' "
                        "WHERE verdict_id = ? AND backend = ? AND state NOT IN ('failed')",
                        (verdict_id, backend),
                    )
                else:
                    db.execute(
                        "UPDATE deliveries SET op = 'unblock', state = 'pending', "
                        "attempts = 0, next_attempt = ?, last_error = NULL "
                        "WHERE verdict_id = ? AND backend = ?",
                        (now, verdict_id, backend),
                    )
            return True

    # -- delivering -----------------------------------------------------------------------

    def deliver_due(self, now: float, backends: Sequence[Backend]) -> DeliveryReport:
        """One worker pass over the rows of `backends` that are due at `now`: claim up to
        `batch`, call the backends (lock released), record the outcomes in one commit (a
        crash before it re-sends the pass's rows once their leases run out). Raises
        OutboxError only for the database; a backend's failure is an outcome."""
        by_name = {b.name: b for b in backends}
        report = DeliveryReport()
        report.expired = self._sweep(now, list(by_name))
        outcomes: list[_Outcome] = []
        try:
            for claim in self._claim(now, list(by_name), report):
                backend = by_name[claim.backend]
                try:
                    if claim.op == "block":
                        backend.block(claim.verdict, claim.verdict.remaining(now))
                    else:
                        backend.unblock(claim.verdict)
                except BackendError as exc:
                    outcomes.append(_Outcome(claim, str(exc), exc.transient))
                except Exception as exc:  # a backend bug: retried, counted, never fatal
                    report.crashed += 1
                    outcomes.append(_Outcome(claim, f"{type(exc).__name__}: {exc}", True))
                else:
                    outcomes.append(_Outcome(claim, None, True))
        finally:  # even on KeyboardInterrupt: what was sent is recorded
            if outcomes:
                self._record(outcomes, now, report)
        return report

    def _sweep(self, now: float, names: list[str]) -> int:
        """Rows whose verdict ran out: a pending block is never sent (`expired`), a pending
        unblock has nothing left to remove (the backend's timeout did it: `revoked`), a
        delivered or superseded block is over (`expired`). Leased rows are left to their
        worker's record."""
        if not names:
            return 0
        marks = ",".join("?" * len(names))
        with self._write() as db:
            expired = db.execute(
                f"UPDATE deliveries SET state = 'expired' WHERE backend IN ({marks}) "
                "AND op = 'block' AND state = 'pending' "
                "AND (lease_until IS NULL OR lease_until <= ?) AND verdict_id IN "
                "(SELECT id FROM verdicts WHERE expires_at <= ?)",
                (*names, now, now),
            ).rowcount
            db.execute(
                f"UPDATE deliveries SET state = CASE op WHEN 'unblock' THEN 'revoked' "
                f"ELSE 'expired' END WHERE backend IN ({marks}) "
                "AND state IN ('pending', 'delivered', 'superseded') "
                "AND (lease_until IS NULL OR lease_until <= ?) AND verdict_id IN "
                "(SELECT id FROM verdicts WHERE expires_at <= ?)",
                (*names, now, now),
            )
        return expired

    def _claim(self, now: float, names: list[str], report: DeliveryReport) -> list[_Claim]:
        if not names:
            return []
        marks = ",".join("?" * len(names))
        self._claims += 1
        owner = f"{self._owner}.{self._claims}"
        claims: list[_Claim] = []
        with self._write() as db:
            rows = db.execute(
                "SELECT d.verdict_id, d.backend, d.action, d.target, d.op, d.attempts, v.payload "
                "FROM deliveries d JOIN verdicts v ON v.id = d.verdict_id "
                f"WHERE d.state = 'pending' AND d.next_attempt <= ? AND d.backend IN ({marks}) "
                "AND (d.lease_until IS NULL OR d.lease_until <= ?) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.backend = d.backend "
                "  AND o.action = d.action AND o.target = d.target "
                "  AND o.verdict_id != d.verdict_id AND o.lease_until > ?) "
                "ORDER BY d.next_attempt LIMIT ?",
                (now, *names, now, now, self.batch),
            ).fetchall()
            keys: set[tuple[str, str, str]] = set()
            for verdict_id, backend, action, target, op, attempts, payload in rows:
                if (backend, action, target) in keys:
                    continue  # one row per key and backend in flight: it goes next pass
                keys.add((backend, action, target))
                db.execute(
                    "UPDATE deliveries SET lease_owner = ?, lease_until = ?, "
                    "attempts = attempts + 1 WHERE verdict_id = ? AND backend = ?",
                    (owner, now + self.lease, verdict_id, backend),
                )
                claims.append(_Claim(_verdict_of(payload), backend, op, owner, attempts + 1))
        report.claimed += len(claims)
        return claims

    def _record(self, outcomes: list[_Outcome], now: float, report: DeliveryReport) -> None:
        """Apply outcomes to rows that still carry the claim's lease, op and `pending`
        state; any other row changed while in flight and is only released."""
        where = (
            "WHERE verdict_id = ? AND backend = ? AND lease_owner = ? AND op = ? "
            "AND state = 'pending'"
        )
        with self._write() as db:
            for claim, error, transient in outcomes:
                key = (claim.verdict.id, claim.backend, claim.owner, claim.op)
                if error is None:
                    done = "delivered" if claim.op == "block" else "revoked"
                    changed = db.execute(
                        f"UPDATE deliveries SET state = ?, delivered_at = ? {where}",
                        (done, now, *key),
                    ).rowcount
                    if changed and claim.op == "block":
                        report.delivered += 1
                    elif changed:
                        report.unblocked += 1
                elif transient:
                    delay = self.backoff(claim.attempts)
                    changed = db.execute(
                        f"UPDATE deliveries SET next_attempt = ?, last_error = ? {where}",
                        (now + delay, error[:MAX_ERROR_CHARS], *key),
                    ).rowcount
                    report.retried += changed
                else:
                    changed = db.execute(
                        f"UPDATE deliveries SET state = 'failed', last_error = ? {where}",
                        (error[:MAX_ERROR_CHARS], *key),
                    ).rowcount
                    report.failed += changed
                if not changed:
                    report.released += 1  # revoked, superseded or expired while in flight
                db.execute(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL "
                    "WHERE verdict_id = ? AND backend = ? AND lease_owner = ?",
                    key[:3],
                )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt: the ceiling doubles from
        `backoff_base` to `backoff_cap`; the wait is drawn from [ceiling/2, ceiling]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** min(max(attempts, 1) - 1, 60))
        return self.rng.uniform(ceiling / 2, ceiling)

    # -- reconciling ----------------------------------------------------------------------

    def reconcile(self, now: float, backend: Backend) -> ReconcileReport:
        """Compare what `backend` holds for Sluice with what its live verdicts want:
        delivered blocks it lost go back to pending (the next `deliver_due` re-sends their
        remaining TTL); what it holds that nothing wants is unblocked now."""
        report = ReconcileReport(backend.name)
        try:
            held = backend.held()  # first: see the module docstring
        except BackendError as exc:
            report.error = str(exc)
            return report
        report.held = len(held)
        with self._read() as db:
            desired = {
                (HELD_KIND[action], _canonical(target)): (verdict_id, state)
                for verdict_id, action, target, state in db.execute(
                    "SELECT d.verdict_id, d.action, d.target, d.state FROM deliveries d "
                    "JOIN verdicts v ON v.id = d.verdict_id WHERE d.backend = ? "
                    "AND d.op = 'block' AND d.state IN ('pending', 'delivered') "
                    "AND v.revoked_at IS NULL AND v.expires_at > ?",
                    (backend.name, now),
                )
            }
        report.desired = len(desired)
        holding = {(h.kind, _canonical(h.target)) for h in held}
        lost = [vid for key, (vid, state) in desired.items()
                if state == "delivered" and key not in holding]  # fmt: skip
        if lost:
            with self._write() as db:
                for verdict_id in lost:
                    report.requeued += db.execute(
                        "UPDATE deliveries SET state = 'pending', attempts = 0, "
                        "next_attempt = ?, last_error = ? WHERE verdict_id = ? AND backend = ? "
                        "AND state = 'delivered'",
                        (now, f"reconciler: missing from {backend.name}", verdict_id,
                         backend.name),
                    ).rowcount  # fmt: skip
        for item in held:
            if (item.kind, _canonical(item.target)) in desired:
                continue
            try:
                backend.unblock(self._verdict_for(item, backend.name, now))
                report.removed += 1
            except Exception:  # BackendError or a backend bug: tried again next pass
                report.errors += 1
        return report

    def _verdict_for(self, item: Held, backend: str, now: float) -> Verdict:
        """The verdict a held block was put there for, or a stand-in naming only what
        the backend reported (for blocks whose verdict this database does not know)."""
        if item.verdict_id is not None:
            with self._read() as db:
                row = db.execute(
                    "SELECT payload FROM verdicts WHERE id = ?", (item.verdict_id,)
                ).fetchone()
            if row is not None:
                return _verdict_of(row[0])
        try:
            kind = target_kind(item.target)
        except ValueError:
            kind = "domain"
        return Verdict(
            id=item.verdict_id or "",
            action=ACTION_OF_KIND.get(item.kind, "block_destination"),
            target=item.target,
            target_kind=kind,
            ttl=0.0,
            decided_at=now,
            reason=f"reconciler: held by {backend}, wanted by no live verdict",
            severity="low",
            confidence=0.0,
            finding_ids=(),
            incident_id="",
            policy_rule="",
            mode="enforce",
        )

    # -- queries for the CLI and the runtime ---------------------------------------------

    def state(
        self,
        verdict_id: str | None = None,
        *,
        backend: str | None = None,
        since: float | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
    ) -> list[DeliveryState]:
        """Delivery rows, newest verdict first: of one verdict, one backend, or verdicts
        accepted at or after `since`; at most `limit`."""
        clauses: list[str] = []
        params: list[object] = []
        if verdict_id is not None:
            clauses.append("d.verdict_id = ?")
            params.append(verdict_id)
        if backend is not None:
            clauses.append("d.backend = ?")
            params.append(backend)
        if since is not None:
            clauses.append("v.accepted_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as db:
            rows = db.execute(
                "SELECT d.verdict_id, d.action, d.target, d.backend, d.op, d.state, "
                "d.attempts, d.last_error, d.next_attempt, d.lease_until, d.delivered_at, "
                "v.expires_at, v.revoked_at FROM deliveries d "
                f"JOIN verdicts v ON v.id = d.verdict_id {where} "
                "ORDER BY v.seq DESC, d.backend LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [DeliveryState(*row) for row in rows]

    def verdict(self, verdict_id: str) -> Verdict | None:
        with self._read() as db:
            row = db.execute("SELECT payload FROM verdicts WHERE id = ?", (verdict_id,)).fetchone()
        return None if row is None else _verdict_of(row[0])

    def counts(self) -> dict[tuple[str, str], int]:
        """{(backend, state): rows}: for stats and metrics (pending per backend, failures)."""
        with self._read() as db:
            return {
                (backend, state): n
                for backend, state, n in db.execute(
                    "SELECT backend, state, COUNT(*) FROM deliveries GROUP BY backend, state"
                )
            }

    def oldest_pending(self, backend: str) -> float | None:
        """The acceptance time of the oldest pending row of `backend` (for an age metric)."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(v.accepted_at) FROM deliveries d JOIN verdicts v "
                "ON v.id = d.verdict_id WHERE d.backend = ? AND d.state = 'pending'",
                (backend,),
            ).fetchone()
        return None if row is None else row[0]

    def prune(self, before: float) -> int:
        """Delete verdicts that expired before `before` (and their rows, all terminal by
        then unless a lease is live); returns how many verdicts went."""
        with self._write() as db:
            db.execute(
                "DELETE FROM deliveries WHERE verdict_id IN (SELECT id FROM verdicts "
                "WHERE expires_at < ?) AND (lease_until IS NULL OR lease_until < ?)",
                (before, before),
            )
            return db.execute(
                "DELETE FROM verdicts WHERE expires_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.verdict_id = verdicts.id)",
                (before,),
            ).rowcount


# -- the key logic, inside a write transaction ----------------------------------------------


def _accept(db: sqlite3.Connection, verdict: Verdict, backends: list[str], now: float) -> int:
    if db.execute("SELECT 1 FROM verdicts WHERE id = ?", (verdict.id,)).fetchone():
        return 0  # idempotent: the first acceptance stands
    previous = _effective(db, verdict.action, verdict.target, now)
    db.execute(
        "INSERT INTO verdicts (id, action, target, expires_at, accepted_at, payload) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (verdict.id, verdict.action, verdict.target, verdict.expires_at, now,
         json.dumps(asdict(verdict))),
    )  # fmt: skip
    effective = _effective(db, verdict.action, verdict.target, now)
    if verdict.expires_at <= now:
        state = "expired"
    elif effective == verdict.id:
        state = "pending"
    else:
        state = "superseded"
    db.executemany(
        "INSERT INTO deliveries (verdict_id, backend, action, target, state, next_attempt) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(verdict.id, name, verdict.action, verdict.target, state, now) for name in backends],
    )
    if state == "pending":
        # The key changes hands: the old verdict's rows stop (a leased one is released by
        # its worker's record), and a pending unblock of a revoked one is moot: this block
        # overwrites it (one still in flight goes first: a claim waits for its lease).
        if previous is not None:
            db.execute(
                "UPDATE deliveries SET state = 'superseded' WHERE verdict_id = ? "
                "AND op = 'block' AND state IN ('pending', 'delivered')",
                (previous,),
            )
        db.execute(
            "UPDATE deliveries SET state = 'revoked' WHERE action = ? AND target = ? "
            "AND op = 'unblock' AND state = 'pending'",
            (verdict.action, verdict.target),
        )
    return 1


def _effective(db: sqlite3.Connection, action: str, target: str, now: float) -> str | None:
    """The live verdict of a key that expires last (ties: accepted first), or None."""
    row = db.execute(
        "SELECT id FROM verdicts WHERE action = ? AND target = ? AND revoked_at IS NULL "
        "AND expires_at > ? ORDER BY expires_at DESC, seq ASC LIMIT 1",
        (action, target, now),
    ).fetchone()
    return None if row is None else str(row[0])


def _verdict_of(payload: str) -> Verdict:
    fields = json.loads(payload)
    fields["finding_ids"] = tuple(fields["finding_ids"])
    return Verdict(**fields)


def _canonical(target: str) -> str:
    """One spelling per target, so that the backend's and the verdict's compare equal:
    a /32 or /128 network is its address; a name is lower case without the root dot."""
    try:
        network = ipaddress.ip_network(target, strict=False)
    except ValueError:
        return target.rstrip(".").lower()
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _rollback(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # SQLite may have ended it on the error
        db.execute("ROLLBACK")


def _error(path: Path, doing: str, exc: sqlite3.Error) -> OutboxError:
    text = str(exc)
    busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    if busy:
        why = f"locked by another process for longer than the busy timeout ({text})"
    elif isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        why = f"the file is corrupt or not a verdict outbox ({text})"
    else:
        why = text
    return OutboxError(f"{path}: {doing} the verdict outbox: {why}", retryable=busy)
