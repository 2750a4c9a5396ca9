"""SQLite time series of the metering stage: the one module of this package that does I/O.

`MeterStore.write()` takes what `Meter.tick()` returned: every `VolumeSummary` is added (upsert,
summing) to three tiers at once, each row one (bucket, host, destination):

    tier   step     kept for (config [history], defaults)   table
    10s    10 s     ten_second_days = 1                      volume_10s
    1m     60 s     minute_days = 7                          volume_1m
    1h     3600 s   hour_days = 400                          volume_1h

so downsampling is write-through aggregation and needs no batch job. A host's totals are the
sum of its destination rows (the meter folds what it does not name into "other"). `Finding`s go
to the `findings` table, per-host uploads, mails and sessions to `activity`. Time is packet
time: retention is measured back from the newest bucket written, so replaying an old capture
keeps its data. Size is bounded twice: by retention, and by `max_rows` per tier (oldest buckets
deleted first); pruning runs when the newest packet time passes an hour boundary, and where it
deleted rows it records the cut (`pruned_before`), which `sluice top`/`host` state. The
retention the writer used is kept in the file, so readers pick tiers as the writer kept them.
Reopening the same file continues where it stopped (WAL journal). The file is created 0640
less the umask (the CLI's 0077: 0600).

Queries for the CLI pick the finest tier that still holds `since` (relative to the newest data).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sensor.config import HistoryConfig
from sensor.metering.values import OTHER, Finding, KernelTotals, Volume, VolumeSummary

SCHEMA_VERSION = 2  # 2: findings.severity, the activity table
DAY = 86400
_COUNTERS = ("out_bytes", "out_packets", "out_payload", "in_bytes", "in_packets", "in_payload")
_SUMS = ", ".join(f"SUM({c})" for c in _COUNTERS)


class StoreError(Exception):
    """The metering database cannot be used; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    step: int  # seconds per row
    retention: int  # seconds kept, back from the newest bucket written


def tiers_for(history: HistoryConfig) -> tuple[Tier, ...]:
    return (
        Tier("10s", 10, round(history.ten_second_days * DAY)),
        Tier("1m", 60, round(history.minute_days * DAY)),
        Tier("1h", 3600, round(history.hour_days * DAY)),
    )


DEFAULT_TIERS = tiers_for(HistoryConfig())


@dataclass(frozen=True, slots=True)
class ActivityRow:
    ts: float
    host: str
    kind: str
    dest: str
    bytes: int
    summary: str


@dataclass(frozen=True, slots=True)
class TopRow:
    host: str | None  # None when ranked by destination
    dest: str | None  # None when ranked by host
    name: str | None
    volume: Volume


class MeterStore:
    def __init__(
        self, path: str | Path, history: HistoryConfig | None = None, *, readonly: bool = False
    ) -> None:
        """A writer applies `history` (saved in the file; None: what the file was written with,
        else the defaults). `readonly` (the CLI's views): the file is opened read-only and
        never changed, not even migrated, so that a reader cannot disturb a running sensor
        and a member of the operators' group, who may not write, can read it."""
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                self._db = _open_readonly(self.path)
            else:
                self._db = self._open_writer()
            saved = self._meta("history")
            if history is not None and not readonly:
                self._set_meta("history", json.dumps(_history_days(history)))
            elif saved is not None:
                history = HistoryConfig(**json.loads(saved))
            history = history or HistoryConfig()
            self.tiers = tiers_for(history)
            if not readonly:
                self._create()
            self.schema = int(self._meta("schema") or SCHEMA_VERSION)
        except (sqlite3.Error, OSError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot open the metering database ({exc})") from None
        self.max_rows = history.max_rows
        self.findings_retention = history.findings_days * DAY
        self.activity_retention = history.activity_days * DAY
        self.newest = int(self._meta("newest") or 0)
        self._pruned_hour = int(self._meta("pruned_hour") or 0)

    def _open_writer(self) -> sqlite3.Connection:
        """Created private (it names hosts, mailboxes and URLs), an older file tightened to
        the same mode; SQLite gives its -wal and -shm files the database's mode."""
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o640)  # less the umask
        try:
            os.fchmod(fd, 0o640 & ~current_umask())
        finally:
            os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        return db

    # -- schema ---------------------------------------------------------------------------

    def _create(self) -> None:
        db = self._db
        version = self._meta("schema")
        if version is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif version == "1":  # a sensor upgraded in place keeps its history
            with self._transaction():
                db.execute("ALTER TABLE findings ADD COLUMN severity TEXT")
                self._set_meta("schema", SCHEMA_VERSION)
        elif version != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path}: schema version {version}, this Sluice writes {SCHEMA_VERSION}"
            )
        columns = ", ".join(f"{c} INTEGER NOT NULL" for c in _COUNTERS)
        for tier in self.tiers:
            table = _table(tier)
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (ts INTEGER NOT NULL, host TEXT NOT NULL, "
                f"dest TEXT NOT NULL, name TEXT, {columns}, PRIMARY KEY (ts, host, dest)) "
                "WITHOUT ROWID"
            )
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_host ON {table} (host, ts)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS findings (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
            "kind TEXT NOT NULL, host TEXT NOT NULL, window REAL, value REAL, threshold REAL, "
            "detail TEXT, destinations TEXT, severity TEXT)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS findings_ts ON findings (ts)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS activity (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
            "host TEXT NOT NULL, kind TEXT NOT NULL, dest TEXT NOT NULL, bytes INTEGER NOT NULL, "
            "summary TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS activity_host ON activity (host, ts)")
        # The policy's verdicts (sensor/policy/), one row per verdict id: deciding it again
        # (a re-block in the same incident) moves its time and expiry and adds its findings.
        db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (id TEXT PRIMARY KEY, ts REAL NOT NULL, "
            "action TEXT NOT NULL, target TEXT NOT NULL, target_kind TEXT NOT NULL, "
            "ttl REAL NOT NULL, expires_at REAL NOT NULL, reason TEXT NOT NULL, "
            "severity TEXT NOT NULL, confidence REAL NOT NULL, finding_ids TEXT NOT NULL, "
            "incident_id TEXT NOT NULL, policy_rule TEXT NOT NULL, mode TEXT NOT NULL, "
            "decided INTEGER NOT NULL DEFAULT 1)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS verdicts_ts ON verdicts (ts)")
        # The eBPF probe's cumulative counters as of the last bucket written (live runtime):
        # after a restart the probe's pinned maps continue from there, nothing counted twice.
        db.execute(
            "CREATE TABLE IF NOT EXISTS kernel_totals (probe TEXT NOT NULL, kind TEXT NOT NULL, "
            "key TEXT NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL, "
            "PRIMARY KEY (probe, kind, key)) WITHOUT ROWID"
        )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    # -- writing --------------------------------------------------------------------------

    def write(
        self,
        items: Iterable[VolumeSummary | Finding],
        kernel_totals: KernelTotals | None = None,
    ) -> None:
        """One closed bucket's summaries and findings, with the probe's totals handed out up
        to it (`MeterOutput`) in the same transaction, so the two never disagree."""
        rows: list[tuple[int, str, str, str | None, int, int, int, int, int, int]] = []
        findings = []
        newest = self.newest
        for item in items:
            if isinstance(item, Finding):
                findings.append(
                    (item.ts, item.kind, item.host, item.window, item.value, item.threshold,
                     item.detail, json.dumps(list(item.destinations)), item.severity)
                )  # fmt: skip
                continue
            ts = int(item.ts)
            newest = max(newest, ts)
            for dest in item.destinations:
                v = dest.volume
                rows.append(
                    (ts, item.host, dest.ip, dest.name, v.out_bytes, v.out_packets,
                     v.out_payload, v.in_bytes, v.in_packets, v.in_payload)
                )  # fmt: skip
        if not rows and not findings and kernel_totals is None:
            return
        db = self._db
        updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTERS)
        with self._transaction():
            if kernel_totals is not None:
                self._replace_kernel_totals(*kernel_totals)
            for tier in self.tiers:
                step = tier.step
                db.executemany(
                    f"INSERT INTO {_table(tier)} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT (ts, host, dest) DO UPDATE SET {updates}, "
                    "name = COALESCE(excluded.name, name)",
                    ((r[0] - r[0] % step, *r[1:]) for r in rows),
                )
            db.executemany(
                "INSERT INTO findings (ts, kind, host, window, value, threshold, detail, "
                "destinations, severity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                findings,
            )
            if newest != self.newest:
                self.newest = newest
                self._set_meta("newest", newest)
            if newest // 3600 != self._pruned_hour:
                self._prune()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN .. COMMIT; any failure, the COMMIT's own (a full disk) included, rolls back."""
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def add_activity(self, rows: Iterable[tuple[float, str, str, str, int, str]]) -> None:
        """(ts, host, kind, dest, bytes, summary) rows, in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO activity (ts, host, kind, dest, bytes, summary) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def add_verdicts(self, rows: Iterable[dict[str, Any]]) -> None:
        """`verdict` sub-objects with their packet time (`ts`), in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO verdicts (id, ts, action, target, target_kind, ttl, expires_at, "
                "reason, severity, confidence, finding_ids, incident_id, policy_rule, mode) "
                "VALUES (:id, :ts, :action, :target, :target_kind, :ttl, :expires_at, :reason, "
                ":severity, :confidence, :finding_ids, :incident_id, :policy_rule, :mode) "
                "ON CONFLICT (id) DO UPDATE SET ts = excluded.ts, ttl = excluded.ttl, "
                "expires_at = MAX(expires_at, excluded.expires_at), reason = excluded.reason, "
                "decided = decided + 1, finding_ids = (SELECT json_group_array(value) FROM "
                "(SELECT value FROM json_each(verdicts.finding_ids) UNION "
                "SELECT value FROM json_each(excluded.finding_ids)))",
                ({**row, "finding_ids": json.dumps(row["finding_ids"])} for row in rows),
            )

    def verdicts(
        self, since: float = 0.0, until: float = float("inf"), limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The verdicts decided in [since, until), oldest first (at most `limit`, newest)."""
        cursor = self._db.execute(
            "SELECT id, ts, action, target, target_kind, ttl, expires_at, reason, severity, "
            "confidence, finding_ids, incident_id, policy_rule, mode, decided FROM verdicts "
            "WHERE ts >= ? AND ts < ? ORDER BY ts DESC, id LIMIT ?",
            (since, until, limit),
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["finding_ids"] = json.loads(row["finding_ids"])
        return rows[::-1]

    def _prune(self) -> None:
        """Delete what retention and the row bound let go; where rows went, remember the cut
        so that readers can say their window reaches past it."""
        for tier in self.tiers:
            table = _table(tier)
            self._cut(
                table, self._bounded(table, self.newest - tier.retention), f"pruned_{tier.name}"
            )
        self._cut("findings", self.newest - self.findings_retention, "pruned_findings")
        self._cut("verdicts", self.newest - self.findings_retention, "pruned_verdicts")
        activity_cut = self._bounded("activity", self.newest - self.activity_retention)
        self._cut("activity", activity_cut, "pruned_activity")
        self._pruned_hour = self.newest // 3600
        self._set_meta("pruned_hour", self._pruned_hour)

    def _bounded(self, table: str, cut: float) -> float:
        """`cut`, moved later where `table` would still hold more than max_rows rows."""
        (count,) = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        if count > self.max_rows:
            (by_rows,) = self._db.execute(
                f"SELECT ts FROM {table} ORDER BY ts LIMIT 1 OFFSET ?", (count - self.max_rows,)
            ).fetchone()
            return max(cut, float(by_rows))
        return cut

    def _cut(self, table: str, before: float, key: str) -> None:
        deleted = self._db.execute(f"DELETE FROM {table} WHERE ts < ?", (before,)).rowcount
        if deleted > 0:
            self._set_meta(key, max(before, float(self._meta(key) or 0)))

    def pruned_before(self, what: str) -> float | None:
        """Time before which rows of `what` (a tier name, "findings" or "activity") were
        deleted by retention or the row bound; None when nothing was."""
        value = self._meta(f"pruned_{what}")
        return float(value) if value is not None else None

    # -- queries --------------------------------------------------------------------------

    def holds(self, tier: Tier, since: float) -> bool:
        """Whether `tier` still has everything from `since` on: within its retention and after
        any cut the row bound made."""
        cut = self.pruned_before(tier.name)
        return since >= max(self.newest - tier.retention, cut if cut is not None else -math.inf)

    def tier_for(self, since: float, step: float = 0.0) -> Tier:
        """Among tiers still holding `since`, the coarsest with a step <= `step`, else the
        finest; the coarsest tier when none holds it."""
        holding = [t for t in self.tiers if self.holds(t, since)]
        if not holding:
            return max(self.tiers, key=lambda t: t.step)
        fitting = [t for t in holding if t.step <= step]
        if fitting:
            return max(fitting, key=lambda t: t.step)
        return min(holding, key=lambda t: t.step)

    def top(
        self,
        window_start: float,
        window_end: float,
        by: Literal["host", "dest", "pair"] = "host",
        limit: int = 10,
    ) -> list[TopRow]:
        """Largest outbound talkers among rows whose bucket starts in [start, end)."""
        table = _table(self.tier_for(window_start))
        group = {"host": "host", "dest": "dest", "pair": "host, dest"}.get(by)
        if group is None:
            raise ValueError(f"by must be 'host', 'dest' or 'pair', not {by!r}")
        where = "ts >= ? AND ts < ?" + ("" if by == "host" else " AND dest != ?")
        params: list[object] = [int(window_start), window_end]
        if by != "host":
            params.append(OTHER)
        sql = (
            f"SELECT host, dest, MAX(name), {_SUMS} FROM {table} WHERE {where} "
            f"GROUP BY {group} ORDER BY SUM(out_bytes) DESC, {group} LIMIT ?"
        )
        rows = []
        for host, dest, name, *sums in self._db.execute(sql, (*params, limit)):
            rows.append(
                TopRow(
                    host if by != "dest" else None,
                    dest if by != "host" else None,
                    name if by != "host" else None,
                    Volume(*sums),
                )
            )
        return rows

    def host_series(
        self, ip: str, since: float, until: float, step: float
    ) -> list[tuple[int, Volume]]:
        """(bucket start, host total) per `step` seconds; empty buckets are left out."""
        tier = self.tier_for(since, step)
        step_i = max(int(step), tier.step)
        sql = (
            f"SELECT (ts / ?) * ? AS b, {_SUMS} FROM {_table(tier)} "
            "WHERE host = ? AND ts >= ? AND ts < ? GROUP BY b ORDER BY b"
        )
        rows = self._db.execute(sql, (step_i, step_i, ip, int(since), until))
        return [(int(b), Volume(*sums)) for b, *sums in rows]

    def findings(
        self,
        since: float = 0.0,
        until: float = float("inf"),
        kind: str | None = None,
        host: str | None = None,
        limit: int = 1000,
    ) -> list[Finding]:
        severity = "severity" if self.schema >= 2 else "NULL"  # a sensor not yet upgraded
        sql = "SELECT ts, kind, host, window, value, threshold, detail, destinations, "
        sql += f"{severity} FROM findings WHERE ts >= ? AND ts < ?"
        params: list[object] = [since, until]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if host is not None:
            sql += " AND host = ?"
            params.append(host)
        sql += " ORDER BY ts, id LIMIT ?"
        params.append(limit)
        rows = self._db.execute(sql, params)
        return [
            Finding(what, who, ts, window, value, threshold, detail, tuple(json.loads(dests)),
                    level or "")
            for ts, what, who, window, value, threshold, detail, dests, level in rows
        ]  # fmt: skip

    def activity(
        self, host: str, since: float, until: float, limit: int = 200
    ) -> tuple[list[ActivityRow], int]:
        """The host's newest activity rows in [since, until) (oldest first) and how many there
        were in all."""
        where = "FROM activity WHERE host = ? AND ts >= ? AND ts < ?"
        params = (host, since, until)
        (total,) = self._db.execute(f"SELECT COUNT(*) {where}", params).fetchone()
        rows = self._db.execute(
            f"SELECT ts, host, kind, dest, bytes, summary {where} ORDER BY ts DESC, id DESC "
            "LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [ActivityRow(*row) for row in reversed(rows)], int(total)

    def destinations(self, since: float) -> list[tuple[str, float]]:
        """(name or IP, last contact) of every destination sent to since `since`, to seed
        `Meter.learn_destinations` after a restart."""
        tier = self.tier_for(since, float("inf"))
        sql = (
            f"SELECT COALESCE(name, dest), MAX(ts) FROM {_table(tier)} "
            "WHERE ts >= ? AND dest != ? AND out_bytes > 0 GROUP BY 1"
        )
        return [(label, float(ts)) for label, ts in self._db.execute(sql, (int(since), OTHER))]

    def kernel_totals(self, probe: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(kind, key) -> (packets, bytes) saved for the probe `probe` (its pin directory)."""
        sql = "SELECT kind, key, packets, bytes FROM kernel_totals WHERE probe = ?"
        return {(kind, key): (p, b) for kind, key, p, b in self._db.execute(sql, (probe,))}

    def replace_kernel_totals(
        self, probe: str, totals: Iterable[tuple[tuple[str, str], tuple[int, int]]]
    ) -> None:
        """The probe's totals as of now, replacing what was saved for it (one transaction)."""
        with self._transaction():
            self._replace_kernel_totals(probe, list(totals))

    def _replace_kernel_totals(
        self, probe: str, totals: list[tuple[tuple[str, str], tuple[int, int]]]
    ) -> None:
        rows = [(probe, kind, key, p, b) for (kind, key), (p, b) in totals]
        self._db.execute("DELETE FROM kernel_totals WHERE probe = ?", (probe,))
        self._db.executemany("INSERT INTO kernel_totals VALUES (?, ?, ?, ?, ?)", rows)

    def oldest_finding(self) -> float | None:
        (ts,) = self._db.execute("SELECT MIN(ts) FROM findings").fetchone()
        return float(ts) if ts is not None else None

    def oldest(self) -> int | None:
        """Start of the oldest bucket still held by any tier (None when nothing is stored):
        where a query over everything (`sluice top --window all`) begins."""
        starts = [
            self._db.execute(f"SELECT MIN(ts) FROM {_table(t)}").fetchone()[0] for t in self.tiers
        ]
        present = [int(s) for s in starts if s is not None]
        return min(present) if present else None

    def rows(self, tier: str) -> int:
        for t in self.tiers:
            if t.name == tier:
                (count,) = self._db.execute(f"SELECT COUNT(*) FROM {_table(t)}").fetchone()
                return int(count)
        raise ValueError(f"no tier {tier!r}")

    def close(self, settle: bool = False) -> None:
        """`settle`: leave a single file (journal mode DELETE, no -wal/-shm) that any reader
        allowed to read it can open: at the end of a replay or a sensor's run."""
        if settle and not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.close()

    def __enter__(self) -> MeterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _table(tier: Tier) -> str:
    if not tier.name.isalnum():
        raise StoreError(f"tier name {tier.name!r} must be alphanumeric")
    return f"volume_{tier.name}"


def _history_days(history: HistoryConfig) -> dict[str, float]:
    return {
        "ten_second_days": history.ten_second_days,
        "minute_days": history.minute_days,
        "hour_days": history.hour_days,
        "findings_days": history.findings_days,
        "activity_days": history.activity_days,
        "max_rows": history.max_rows,
    }


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only. A database in WAL mode needs its -shm file: while the sensor runs it exists;
    after it stopped a reader who may not create files there opens it as immutable, which is
    safe exactly then (no -wal left: nobody is writing)."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        db.execute("SELECT COUNT(*) FROM meta").fetchone()
        return db
    except sqlite3.OperationalError:
        if Path(f"{path}-wal").exists():
            raise
    db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
    db.execute("SELECT COUNT(*) FROM meta").fetchone()
    return db


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
