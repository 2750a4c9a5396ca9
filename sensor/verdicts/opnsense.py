"""The OPNsense backend: verdicts become entries of two aliases (pf tables) on an OPNsense
firewall, through its ``alias_util`` API (verdict delivery stage; this module talks HTTP).

Theory of operation
-------------------
The operator creates two aliases of type "External (advanced)" on the firewall, by default
``sluice_hosts`` and ``sluice_destinations``, and two block rules that use them (source in
the first, destination in the second). Sluice owns the contents of both aliases and nothing
else: `held()` reports everything in them, the reconciler removes what no live verdict wants.
An external alias is a bare pf table: ``add``/``delete`` change the running table only, no
config revision and no filter reload per call (for "host"/"network" aliases every call would
also rewrite config.xml and reload the filter templates, which is slow, so do not use them).

Wire format (what this module sends and expects; sources below)::

    POST {url}/api/firewall/alias_util/add/{alias}     {"address": "203.0.113.7"}
    POST {url}/api/firewall/alias_util/delete/{alias}  {"address": "203.0.113.0/24"}
         -> 200 {"status": "done"}
            200 {"status": "failed", "status_msg": "non existing alias X"}  (add only)
            200 {"status": "failed"}                   (no address, or not a POST)
            200 {"status": "not_an_address"}           (add: value outside [0-9a-f:./_])
    GET  {url}/api/firewall/alias_util/list/{alias}
    POST {url}/api/firewall/alias_util/list/{alias}    {"current": 2, "rowCount": 9999}
         -> 200 {"total": N, "rowCount": R, "current": P, "rows": [{"ip": "10.1.2.3"}, ...]}
    any  -> 401 {"status": 401, "message": "Authentication Failed"}  (bad key/secret, or
            a key whose user may not use this page), 400 {"status": 400, "message": ...}

- Authentication is HTTP Basic with the API key as user name and its secret as password
  (a key/secret pair is created per user in the user manager; the secret is downloadable
  once). A JSON body is read as the request's form only with ``Content-Type:
  application/json``. An API user needs the "Diagnostics: PF Table IP addresses" privilege.
- The outcome is in the body, not in the HTTP code: every answer of the controller is
  HTTP 200, so "done" is checked explicitly and anything else is an error.
- ``add`` and ``delete`` are idempotent: they run ``pfctl -T add|delete`` on the table and
  answer "done" whether or not the address was there (and, note, also when pfctl rejected
  it: "done" is not proof of presence; the reconciler's ``list`` is). ``delete`` and
  ``list`` do not check that the alias exists (a missing alias lists as empty); ``add``
  does, so a misnamed alias surfaces on the first block as a non-transient error.
- ``list`` is documented as GET; its pager reads ``current`` and ``rowCount`` (default
  9999) from the POSTed form, as the web UI's grid does. A GET (first page of 9999) is
  sent first and, only when ``total`` exceeds that, pages 2, 3, ... are POSTed with the
  same page size. pfctl prints
  a host without its mask and a network with it; both are read back to one spelling.

Sources: the controller, opnsense/core
``src/opnsense/mvc/app/controllers/OPNsense/Firewall/Api/AliasUtilController.php`` (add,
delete, list, status values and ``status_msg``, the address pattern, the pager);
``.../OPNsense/Base/ApiControllerBase.php`` (Basic key:secret authentication, the 401 and
400 bodies, JSON body parsing); ``src/opnsense/scripts/filter/list_table.py`` (rows come
from ``pfctl -vT show``); opnsense/docs ``source/development/api/core/firewall.rst`` (the
endpoint table: add/delete POST, list GET) and ``source/development/how-tos/api.rst``
(key/secret pairs, Basic auth, status in the JSON body). Research notes of this project:
``firewall-block-lists.md`` section 2.4.

Expiry
------
An alias entry has no timeout, and the outbox never sends an unblock when a verdict runs
out: it relies on backends that expire blocks themselves (nftables timeouts), and its
reconciler removes what a backend holds for a verdict that is no longer live. So this
backend keeps the expiry the firewall cannot: a small SQLite file (`state_path`, mode 0600,
``synchronous=FULL``) maps each entry it put there, (alias, address), to the verdict id and
the absolute time it expires. Then:

- `block` writes the row first (write-ahead: whatever crash follows, the file never knows
  less than the firewall holds of Sluice's) and sends ``add``; on an error the previous row
  is restored and the error raised. A refresh by a later verdict rewrites the row.
- `expire(now)` sends ``delete`` for every row whose time has come and drops the row. It is
  also run, best effort, at the start of every `block`, `unblock` and `held` call, so with
  no further wiring an expired entry goes at the latest at the next reconcile (at start-up
  and every ``reconcile_interval``); a runtime that wants it to the second calls
  `expire()` once per delivery pass.
- `held()` lists both aliases and joins the rows: the verdict id and the seconds left
  (``inf`` for an entry the file does not know, e.g. added by an older Sluice or by hand
  into Sluice's alias). The reconciler therefore also removes an expired entry even if
  `expire` never ran, and re-adds one the firewall lost (a reboot empties external
  aliases).
- `unblock(verdict)` removes the entry only when the row names that verdict (or there is
  no row); a later verdict that refreshed the address keeps it.

Restarts: the file survives them; a lost file only loses expiry times, and the reconciler
still removes every entry no live verdict wants. The file holds one row per active block
(bounded by the guards' host cap and rate limit), so its size follows the active set.

Errors: connection refused, timeouts, HTTP 408/429/5xx and bodies that are not JSON are
transient (the outbox retries); 401/403 (credentials or privileges), other 4xx, redirects,
a certificate that does not verify, and "failed"/"not_an_address" statuses are not (the
body's ``status_msg`` is in the message). The secret never appears in a message, a log
line or ``repr``: only the prepared ``Authorization`` header holds it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import math
import os
import re
import sqlite3
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held, is_loopback_host

API_PREFIX = "/api/firewall/alias_util"
DEFAULT_TIMEOUT = 10.0  # seconds per HTTP request (connect + answer)
LIST_PAGE_ROWS = 9_999  # rows per page of `list`: the controller's default, so the GET's
# first page and the POSTed further pages line up
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # one answer; a page of 9,999 rows is ~1 MB
MAX_MESSAGE_CHARS = 200  # of a firewall's error text quoted in a BackendError
EXPIRE_BATCH = 500  # deletes per `expire` call; the rest go on the next one
KIND_OF_ACTION = {"block_host": "hosts", "block_destination": "destinations"}
SCHEMA_VERSION = 1
_ALIAS_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")  # what OPNsense accepts as an alias name
_TRANSIENT_HTTP = {408, 425, 429}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    alias TEXT NOT NULL,
    address TEXT NOT NULL,
    verdict_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (alias, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at);
"""

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class OpnsenseBackend:
    """Blocks as entries of two OPNsense aliases (see the module docstring).

    `url`: the firewall's base URL (``https://fw.example``; a path prefix is kept).
    `key`/`secret`: an API key pair. `verify`: True (system CAs), False (no check: testing
    only) or the path of a CA file. `state_path`: the expiry file (created 0600).
    `clock`: seconds since the epoch, the clock verdict expiry is measured on."""

    name = "opnsense"

    def __init__(
        self,
        url: str,
        key: str,
        secret: str,
        *,
        state_path: str | Path,
        alias_hosts: str = "sluice_hosts",
        alias_destinations: str = "sluice_destinations",
        verify: bool | str = True,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OPNsense URL {url!r}: want http(s)://host[:port][/path]")
        if parts.username or parts.password:
            raise ValueError("OPNsense URL: give the key and secret apart, not in the URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"OPNsense URL {url!r}: https, please (plain http would send the API secret in "
                "clear; it is accepted only to a loopback address)"
            )
        for alias in (alias_hosts, alias_destinations):
            if not _ALIAS_NAME.match(alias):
                raise ValueError(f"OPNsense alias name {alias!r}: 1-32 of [A-Za-z0-9_]")
        if alias_hosts == alias_destinations:
            raise ValueError("OPNsense: hosts and destinations need two different aliases")
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", "")).rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/") + API_PREFIX
        self.aliases = {"hosts": alias_hosts, "destinations": alias_destinations}
        self.timeout = timeout
        self.clock = clock
        token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        self.__authorization = f"Basic {token}"  # the only place the secret lives
        self._tls: ssl.SSLContext | None = None
        if self._https:
            self._tls = ssl.create_default_context(
                cafile=verify if isinstance(verify, str) else None
            )
            if verify is False:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._lock = threading.RLock()
        self.state_path = Path(state_path)
        self._db = _open_state(self.state_path)

    def __repr__(self) -> str:
        return f"OpnsenseBackend({self.url!r}, aliases={self.aliases!r})"

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> OpnsenseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Backend protocol --------------------------------------------------------------
    def block(self, verdict: Verdict, remaining: float) -> None:
        """Put `verdict.target` in its alias until `remaining` seconds from now (a row in
        the expiry file first, then ``add``). Nothing to do once expired."""
        alias, address = self._place(verdict)
        if remaining <= 0:
            return
        with self._lock:
            now = self.clock()
            self._sweep(now)
            previous = self._row(alias, address)
            self._put(alias, address, verdict.id, now + remaining)
            try:
                self._change("add", alias, address)
            except BaseException:
                if previous is None:
                    self._drop(alias, address, verdict.id)
                else:
                    self._put(alias, address, *previous)
                raise

    def unblock(self, verdict: Verdict) -> None:
        """Remove the entry `verdict` put there; an entry a later verdict refreshed is left
        alone, an absent one is success."""
        if verdict.action not in KIND_OF_ACTION or verdict.target_kind == "domain":
            return  # nothing this backend could have put there
        alias, address = self._place(verdict)
        with self._lock:
            self._sweep(self.clock())
            row = self._row(alias, address)
            if row is not None and row[0] != verdict.id:
                return
            self._change("delete", alias, address)
            self._drop(alias, address, verdict.id)

    def held(self) -> list[Held]:
        """Every entry of both aliases, with the verdict id and seconds left from the
        expiry file (None and inf for entries it does not know)."""
        with self._lock:
            now = self.clock()
            self._sweep(now)
            found: list[Held] = []
            for kind, alias in self.aliases.items():
                rows = {
                    address: (vid, expires_at)
                    for address, vid, expires_at in self._db.execute(
                        "SELECT address, verdict_id, expires_at FROM entries WHERE alias = ?",
                        (alias,),
                    )
                }
                for address in self._list(alias):
                    vid, expires_at = rows.get(address, (None, math.inf))
                    found.append(Held(address, kind, max(0.0, expires_at - now), vid))
            return found

    # -- expiry ----------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Delete the entries whose verdict ran out by `now` (default: the clock), at most
        `EXPIRE_BATCH` per call; returns how many went. Raises BackendError on the first
        delete that fails (the rest are tried next time)."""
        with self._lock:
            at = self.clock() if now is None else now
            due = self._db.execute(
                "SELECT alias, address, verdict_id FROM entries WHERE expires_at <= ? "
                "ORDER BY expires_at LIMIT ?",
                (at, EXPIRE_BATCH),
            ).fetchall()
            for alias, address, verdict_id in due:
                self._change("delete", alias, address)
                self._drop(alias, address, verdict_id)
            return len(due)

    def next_expiry(self) -> float | None:
        """When the next entry runs out (for a runtime that schedules `expire`)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(expires_at) FROM entries").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _sweep(self, now: float) -> None:
        """`expire` as a side job of another call: its failures wait for the next call or
        the reconciler and never fail the call that triggered it."""
        with contextlib.suppress(BackendError):
            self.expire(now)

    # -- the expiry file -------------------------------------------------------------------
    def _row(self, alias: str, address: str) -> tuple[str, float] | None:
        row = self._db.execute(
            "SELECT verdict_id, expires_at FROM entries WHERE alias = ? AND address = ?",
            (alias, address),
        ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def _put(self, alias: str, address: str, verdict_id: str, expires_at: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO entries (alias, address, verdict_id, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (alias, address) DO UPDATE SET "
                "verdict_id = excluded.verdict_id, expires_at = excluded.expires_at",
                (alias, address, verdict_id, expires_at),
            )

    def _drop(self, alias: str, address: str, verdict_id: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM entries WHERE alias = ? AND address = ? AND verdict_id = ?",
                (alias, address, verdict_id),
            )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise BackendError(
                f"opnsense: cannot write the expiry file {self.state_path}: {exc}"
            ) from None

    # -- the API ---------------------------------------------------------------------------
    def _place(self, verdict: Verdict) -> tuple[str, str]:
        """The alias a verdict's target belongs in, and the target as the firewall spells
        it (a host without mask, a network with it, IPv6 compressed in lower case)."""
        kind = KIND_OF_ACTION.get(verdict.action)
        if kind is None:
            raise BackendError(
                f"verdict {verdict.id} ({verdict.action}) blocks nothing", transient=False
            )
        try:
            if target_kind(verdict.target) == "domain":
                raise ValueError("a name")
            address = _spelling(ipaddress.ip_network(verdict.target, strict=True))
        except ValueError:
            raise BackendError(
                f"opnsense: {verdict.target!r} is not an address or network; aliases of pf "
                "tables hold addresses only, not names",
                transient=False,
            ) from None
        return self.aliases[kind], address

    def _change(self, op: str, alias: str, address: str) -> None:
        """``add`` or ``delete`` one address; anything but status "done" raises."""
        answer = self._call("POST", f"{op}/{alias}", {"address": address})
        status = answer.get("status") if isinstance(answer, dict) else None
        if status == "done":
            return
        where = f"opnsense: {op} {address} in alias {alias}"
        if status == "failed":
            why = answer.get("status_msg") if isinstance(answer, dict) else None
            detail = _quote(why) if why else "no reason given (no address sent, or not a POST)"
            raise BackendError(f"{where} failed: {detail}", transient=False)
        if status == "not_an_address":
            raise BackendError(f"{where}: the firewall says it is not an address", transient=False)
        raise BackendError(f"{where}: unexpected answer {_quote(json.dumps(answer))}")

    def _list(self, alias: str) -> list[str]:
        """Every address in `alias`, in the firewall's order, each in one spelling."""
        rows, total = _page_rows(self._call("GET", f"list/{alias}", None), alias)
        current = 1
        while len(rows) < total:
            current += 1
            body = {"current": current, "rowCount": LIST_PAGE_ROWS}
            more, total = _page_rows(self._call("POST", f"list/{alias}", body), alias)
            if not more:
                break  # the table shrank meanwhile; what was read is what is there
            rows.extend(more)
        found: list[str] = []
        for row in rows:
            ip = row.get("ip") if isinstance(row, dict) else None
            if not isinstance(ip, str):
                continue
            try:
                found.append(_spelling(ipaddress.ip_network(ip.strip(), strict=False)))
            except ValueError:
                continue  # a negated ("!") or otherwise foreign entry: not Sluice's spelling
        return found

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One request; returns the decoded JSON answer or raises BackendError."""
        target = f"{self._base}/{path}"
        headers = {"Authorization": self.__authorization, "Accept": "application/json"}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        what = f"opnsense {method} {self.url}{target}"
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
        except ssl.SSLCertVerificationError as exc:
            raise BackendError(
                f"{what}: the certificate does not verify ({exc.verify_message}); give the "
                "firewall's CA file", transient=False,
            ) from None  # fmt: skip
        except TimeoutError:
            raise BackendError(f"{what}: no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        status = response.status
        if status != 200:
            message = _error_text(data)
            if status in (401, 403):
                raise BackendError(
                    f"{what}: HTTP {status} {message}: the API key or secret is wrong, or "
                    "its user lacks the privilege for this page", transient=False,
                )  # fmt: skip
            transient = status >= 500 or status in _TRANSIENT_HTTP
            if 300 <= status < 400:
                where = response.getheader("Location", "?")
                message = f"redirected to {_quote(where)}: configure that URL"
            raise BackendError(f"{what}: HTTP {status} {message}", transient=transient)
        if len(data) > MAX_RESPONSE_BYTES:
            raise BackendError(
                f"{what}: answer larger than {MAX_RESPONSE_BYTES} bytes", transient=False
            )
        try:
            return json.loads(data)
        except ValueError:
            raise BackendError(f"{what}: answer is not JSON: {_quote(_text(data))}") from None


# -- helpers -------------------------------------------------------------------------------


def _open_state(path: Path) -> sqlite3.Connection:
    """The expiry file, created private (it names internal hosts)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            db.close()
            raise BackendError(
                f"opnsense: expiry file {path} has schema {version}, newer than this Sluice's "
                f"{SCHEMA_VERSION}",
                transient=False,
            )
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return db
    except (OSError, sqlite3.Error) as exc:
        raise BackendError(
            f"opnsense: cannot open the expiry file {path}: {exc}", transient=False
        ) from None


def _spelling(network: Net) -> str:
    """How pfctl shows an entry: a host as its address, a network with its prefix."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _page_rows(page: Any, alias: str) -> tuple[list[Any], int]:
    if not isinstance(page, dict) or not isinstance(page.get("rows"), list):
        raise BackendError(f"opnsense: list {alias}: unexpected answer {_quote(str(page))}")
    rows: list[Any] = page["rows"]
    total = page.get("total")
    return rows, int(total) if isinstance(total, int) else len(rows)


def _error_text(data: bytes) -> str:
    """The ``message`` of a JSON error body, else the body's start."""
    try:
        body = json.loads(data)
    except ValueError:
        return _quote(_text(data))
    if isinstance(body, dict):
        for key in ("message", "status_msg", "errorMessage"):
            if isinstance(body.get(key), str):
                return _quote(body[key])
    return _quote(json.dumps(body))


def _text(data: bytes) -> str:
    return data[:MAX_MESSAGE_CHARS].decode("utf-8", errors="replace")


def _quote(text: str) -> str:
    """A firewall's text, cut short and without control characters, for a message."""
    clean = "".join(c if c.isprintable() else " " for c in text[:MAX_MESSAGE_CHARS])
    return f'"{clean}"'
