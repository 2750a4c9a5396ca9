"""The block-list feed: verdicts become lines of plain-text lists that firewalls poll
(verdict delivery stage; the one backend that is a server, not a client).

Theory of operation
-------------------
Palo Alto's External Dynamic Lists, FortiGate's threat feeds ("external resources"), Check
Point's network feeds and Cisco's network-feed objects all pull the same thing: a text file
over HTTP(S), one entry per line, fetched every few minutes (FortiGate: 1 to 43,200 minutes,
default 5). Sluice serves three such files from memory::

    GET /hosts.txt                 internal hosts to quarantine (block_host: IP or CIDR)
    GET /destinations-ip.txt       destinations to block (block_destination: IP or CIDR)
    GET /destinations-domain.txt   destinations to block (block_destination: domain name)

A block is an entry with an expiry: `block` adds it or refreshes it to exactly the remaining
time it is sent (and the verdict id it came from), `unblock` removes it if that verdict put it
there, and an entry whose time is up disappears from the next response by itself. None of
the pulling firewalls know TTLs, so expiry here is what lifts a block, at the firewall's next
poll. `held()` reports the live entries to the reconciler. Nothing is persisted: after a
restart the feed starts empty and the outbox's reconciler re-asserts what should be there
(`held()` is empty, so every delivered block is re-sent with its remaining time).

Wire format (what every consumer above parses):

- `text/plain; charset=utf-8`, one entry per line, each line ending in ``\\n``, no comments,
  sorted (IPv4 before IPv6, by address then prefix; domains alphabetically), so equal content
  is equal bytes and has an equal ETag.
- Addresses in their canonical text (IPv6 compressed, lower case: ``2001:db8::1``); a network
  as ``address/prefix`` with no host bits (``203.0.113.0/24``, ``2001:db8::/32``); a /32 or
  /128 network is written as the bare address. Domains lower case, without the root dot; no
  wildcards (whether a bare name also covers its subdomains is the consumer's setting).
- Nothing blocked: ``200`` with an EMPTY body (``Content-Length: 0``), never 404 or 5xx. An
  empty file is a valid list for these parsers: FortiGate applies it as "no entries" (its
  feed statistics count comment or junk lines as error lines, so no placeholder comment is
  sent); PAN-OS's format allows a comment only after an entry on the same line. A 404 or 500
  would make PAN-OS keep its last copy, i.e. keep enforcing blocks that have lifted.
- ``ETag`` (a strong tag: a hash of the body) and ``Last-Modified`` (the second in which this
  list's content was first served changed); ``If-None-Match`` (weak comparison, RFC 9110
  13.1.2) and, only without it, ``If-Modified-Since`` (13.1.3) answer ``304``. HTTP dates have
  whole seconds, so when the content changed twice within one second, an If-Modified-Since
  naming that second gets the full list (a wrong 304 would leave a firewall on a stale
  list), and Last-Modified moves to the next second in which the list is served.
- Authentication by one shared token, accepted as ``Authorization: Bearer <token>``, as the
  password of ``Authorization: Basic`` (PAN-OS and FortiGate offer username/password for a
  feed; the username is ignored) or as ``?token=<token>`` (for consumers that only take a
  URL). Compared in constant time; anything else is ``401`` with Basic and Bearer challenges.
  The token never appears in the fetch log (which records the path without the query) and
  the server writes no access log of its own (the stdlib one would print the request line).
  Over plain HTTP the token crosses the network in clear: serve with `ssl_context` (HTTPS)
  anywhere but loopback or a management VLAN.

Caps: each list holds at most `max_entries` (default 50,000: the PAN-OS 7.1 IP-list limit;
a firewall that silently skips entries past its limit would make blocks vanish, so a full
list refuses the next new target with a non-transient `BackendError` instead).

The fetch log: every answered request is a `FetchRecord` (time, client address, method,
path, status, body bytes, ETag, how it authenticated, user agent), kept in a bounded deque
and handed to `on_fetch` (the runtime writes them as events; an operator alarms when a
firewall has not fetched for a few poll intervals, because a feed that is not polled
enforces nothing). `last_fetched()` gives the last good fetch per path.

The server is the stdlib's threaded `http.server`, bounded: at most `max_connections`
connections at once (the next is answered ``503`` and closed), one request per connection,
a request (line plus headers) of at most `MAX_REQUEST_BYTES` (``431`` beyond), `read_timeout`
per socket operation and `request_deadline` for the whole exchange (a reaper on the serving
thread shuts down connections that outstay it, so a client trickling one byte at a time
cannot hold a slot). With `ssl_context` the TLS handshake runs on the connection's own thread
under the same limits. The block state is behind one lock; the outbox worker and the handler
threads share it.

Time: entries expire on `clock` (the wall clock by default, which is what a firewall's poll
runs on); tests pass a fake clock. Deadlines of connections use the monotonic clock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import io
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sensor.policy.verdict import Verdict, target_kind
from sensor.verdicts.base import BackendError, Held

# path -> list name; list name -> Held.kind
PATHS = {
    "/hosts.txt": "hosts",
    "/destinations-ip.txt": "destinations-ip",
    "/destinations-domain.txt": "destinations-domain",
}
HELD_KIND = {
    "hosts": "hosts",
    "destinations-ip": "destinations",
    "destinations-domain": "destinations",
}

DEFAULT_MAX_ENTRIES = 50_000  # per list: PAN-OS 7.1's documented IP-list limit
DEFAULT_MAX_CONNECTIONS = 32  # concurrent connections; firewalls poll every few minutes
DEFAULT_READ_TIMEOUT = 5.0  # seconds per socket operation
DEFAULT_REQUEST_DEADLINE = 20.0  # seconds for a whole exchange (handshake, request, response)
DEFAULT_FETCH_LOG = 1024  # FetchRecords kept in memory
MAX_REQUEST_BYTES = 8192  # request line + headers; a feed GET needs a few hundred
MAX_PATH = 256  # characters of the request path kept in a FetchRecord
MAX_USER_AGENT = 128  # characters of User-Agent kept in a FetchRecord
MIN_TOKEN_CHARS = 16
POLL_INTERVAL = 0.2  # seconds between the serving thread's reaper passes

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\n"
    b"Connection: close\r\n\r\n"
)


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One answered request: who fetched what, when, and what they got. `auth` says how the
    token came ("bearer", "basic", "query") or None when it was missing or wrong."""

    at: float  # `clock` time the response was written
    client: str  # remote address
    method: str  # GET | HEAD
    path: str  # without the query (which may carry the token)
    status: int
    bytes: int  # body bytes sent
    etag: str | None
    auth: str | None
    user_agent: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A list as served now: its body, validators, and whether Last-Modified is ambiguous
    (two contents were served within its second; see the module docstring)."""

    body: bytes
    etag: str
    last_modified: int  # seconds since the epoch
    ambiguous: bool

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """RFC 9110 13.1.2/13.1.3: If-None-Match decides when present (weak comparison,
        "*" matches an existing list); otherwise If-Modified-Since, unless ambiguous."""
        if if_none_match is not None:
            tags = [t.strip() for t in if_none_match.split(",")]
            return any(t == "*" or t.removeprefix("W/") == self.etag for t in tags)
        if if_modified_since is None or self.ambiguous:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False  # an invalid date is ignored (13.1.3)
        return self.last_modified <= since


@dataclass(slots=True)
class _Entry:
    verdict_id: str
    expires_at: float
    order: tuple[int, int, int] | tuple[str]  # sort key: (version, address, prefix) | (name,)


@dataclass(slots=True)
class _Version:
    """A list's validators: the content last served and when it first was."""

    etag: str = ""
    last_modified: int = 0
    ambiguous: bool = False


class BlockLists:
    """The feed's state, sans-IO: entries with expiries per list, rendered on demand with
    their validators. Every method takes `now`; none is thread-safe (FeedBackend locks)."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lists: dict[str, dict[str, _Entry]] = {name: {} for name in HELD_KIND}
        self._versions: dict[str, _Version] = {name: _Version() for name in HELD_KIND}

    def put(self, verdict: Verdict, remaining: float, now: float) -> None:
        """Add `verdict.target` (or refresh it to exactly `remaining` from `now`, owned by
        this verdict). Raises BackendError (non-transient) for what no list can hold."""
        name, target, order = placement(verdict)
        if remaining <= 0:
            return  # expired before it was sent: nothing to serve
        entries = self._purge(name, now)
        if target not in entries and len(entries) >= self.max_entries:
            raise BackendError(
                f"feed: list {name} is full ({self.max_entries} entries); {verdict.target} "
                f"(verdict {verdict.id}) not added: raise max_entries if every consumer of "
                "the list takes more, or lower the cap on concurrent blocks",
                transient=False,
            )
        entries[target] = _Entry(verdict.id, now + remaining, order)

    def remove(self, verdict: Verdict) -> bool:
        """Remove the entry `verdict` put there; an entry a later verdict refreshed stays.
        True if something was removed."""
        try:
            name, target, _ = placement(verdict)
        except BackendError:
            return False  # nothing it names can be here
        entries = self._lists[name]
        entry = entries.get(target)
        if entry is None or entry.verdict_id != verdict.id:
            return False
        del entries[target]
        return True

    def held(self, now: float) -> list[Held]:
        out: list[Held] = []
        for name, kind in HELD_KIND.items():
            for target, entry in self._purge(name, now).items():
                out.append(Held(target, kind, entry.expires_at - now, entry.verdict_id))
        return out

    def render(self, name: str, now: float) -> Rendered:
        """The list `name` as of `now`, with an ETag and a Last-Modified that only move
        when its bytes change (and the ambiguity rule of the module docstring)."""
        entries = self._purge(name, now)
        ordered = sorted(entries, key=lambda target: entries[target].order)
        body = "".join(f"{target}\n" for target in ordered).encode("ascii")
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        version = self._versions[name]
        second = int(now)
        if etag != version.etag:
            version.ambiguous = version.etag != "" and second <= version.last_modified
            version.etag = etag
            version.last_modified = max(second, version.last_modified)
        elif version.ambiguous and second > version.last_modified:
            # A later second with the same bytes: every client that holds the old second
            # gets this content once, then 304s again.
            version.last_modified = second
            version.ambiguous = False
        return Rendered(body, etag, version.last_modified, version.ambiguous)

    def _purge(self, name: str, now: float) -> dict[str, _Entry]:
        entries = self._lists[name]
        for target in [t for t, e in entries.items() if e.expires_at <= now]:
            del entries[target]
        return entries


def placement(verdict: Verdict) -> tuple[str, str, tuple[int, int, int] | tuple[str]]:
    """(list name, canonical target, sort key) of a verdict; BackendError (non-transient)
    for a verdict no list holds (an alert; a host named by a domain)."""
    if verdict.action not in ("block_host", "block_destination"):
        raise BackendError(f"verdict {verdict.id} only alerts; nothing to list", transient=False)
    try:
        kind = target_kind(verdict.target)
    except ValueError as exc:
        raise BackendError(f"verdict {verdict.id}: {exc}", transient=False) from None
    if kind == "domain":
        if verdict.action == "block_host":
            raise BackendError(
                f"verdict {verdict.id}: an internal host is an address, not a name "
                f"({verdict.target!r})",
                transient=False,
            )
        name = verdict.target.rstrip(".").lower()
        return "destinations-domain", name, (name,)
    network = ipaddress.ip_network(verdict.target, strict=True)
    if network.prefixlen == network.max_prefixlen:
        text = str(network.network_address)
    else:
        text = str(network)
    order = (network.version, int(network.network_address), network.prefixlen)
    return ("hosts" if verdict.action == "block_host" else "destinations-ip"), text, order


# -- the server ----------------------------------------------------------------------------


class FeedBackend:
    """Serves the block lists on `listen` (see the module docstring). `start()` binds and
    serves on a thread; `close()` stops and drops every connection. Port 0 picks a free one
    (`address` says which)."""

    name = "feed"

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 8443),
        *,
        token: str,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        fetch_log: int = DEFAULT_FETCH_LOG,
        on_fetch: Callable[[FetchRecord], None] | None = None,
    ) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"feed token must have at least {MIN_TOKEN_CHARS} characters")
        self.listen = listen
        self._token = token.encode()
        self.ssl_context = ssl_context
        self.clock = clock
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.request_deadline = request_deadline
        self.on_fetch = on_fetch
        self.hook_errors = 0  # on_fetch raised (contained: a hook never breaks the feed)
        self.logged = 0  # FetchRecords made so far (the deque keeps the last `fetch_log`)
        self._lists = BlockLists(max_entries=max_entries)
        self._lock = threading.Lock()
        self._log: deque[FetchRecord] = deque(maxlen=fetch_log)
        self._last: dict[str, float] = {}
        self._server: _FeedServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve. Raises BackendError (non-transient) when the address is taken
        or not ours."""
        try:
            self._server = _FeedServer(self)
        except OSError as exc:
            raise BackendError(
                f"feed: cannot listen on {self.listen[0]}:{self.listen[1]}: {exc}",
                transient=False,
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="sluice-feed",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("feed not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.drop_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FeedBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Backend protocol --------------------------------------------------------------
    def block(self, verdict: Verdict, remaining: float) -> None:
        with self._lock:
            self._lists.put(verdict, remaining, self.clock())

    def unblock(self, verdict: Verdict) -> None:
        with self._lock:
            self._lists.remove(verdict)

    def held(self) -> list[Held]:
        with self._lock:
            return self._lists.held(self.clock())

    # -- the fetch log ---------------------------------------------------------------------
    def fetches(self) -> list[FetchRecord]:
        """The last `fetch_log` answered requests, oldest first."""
        with self._lock:
            return list(self._log)

    def last_fetched(self) -> dict[str, float]:
        """Per path, when it was last served (200 or 304) to an authenticated client."""
        with self._lock:
            return dict(self._last)

    # -- called by the handler threads -----------------------------------------------------
    def _render(self, name: str) -> Rendered:
        with self._lock:
            return self._lists.render(name, self.clock())

    def _authenticate(self, authorization: str | None, query: str) -> str | None:
        """How the request proved the token ("bearer", "basic", "query"), or None. Every
        candidate is compared in constant time."""
        offered: list[tuple[str, bytes]] = []
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                offered.append(("bearer", value.strip().encode()))
            elif scheme.lower() == "basic":
                with contextlib.suppress(binascii.Error, ValueError):
                    decoded = base64.b64decode(value.strip(), validate=True)
                    offered.append(("basic", decoded.partition(b":")[2]))
        for value in parse_qs(query, keep_blank_values=True).get("token", [])[:4]:
            offered.append(("query", value.encode()))
        how = None
        for source, candidate in offered:
            if hmac.compare_digest(candidate, self._token) and how is None:
                how = source
        return how

    def _record(self, record: FetchRecord) -> None:
        with self._lock:
            self._log.append(record)
            if record.status in (200, 304) and record.auth is not None:
                self._last[record.path] = record.at
        if self.on_fetch is not None:
            try:
                self.on_fetch(record)
            except Exception:
                with self._lock:
                    self.hook_errors += 1
        with self._lock:
            self.logged += 1  # last: a record counted here has been through the hook


class _RequestTooLarge(Exception):
    pass


class _CappedReader:
    """The request stream with a byte budget: reading past it raises _RequestTooLarge."""

    def __init__(self, raw: io.BufferedIOBase, budget: int) -> None:
        self._raw = raw
        self._left = budget

    def readline(self, size: int = -1) -> bytes:
        limit = self._left + 1 if size < 0 else min(size, self._left + 1)
        line = self._raw.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise _RequestTooLarge
        return line

    def read(self, size: int = -1) -> bytes:
        limit = self._left + 1 if size < 0 else min(size, self._left + 1)
        data = self._raw.read(limit)
        self._left -= len(data)
        if self._left < 0:
            raise _RequestTooLarge
        return data

    def close(self) -> None:
        self._raw.close()


class _Connection:
    """A live connection as the reaper sees it (the socket is replaced once TLS wraps it)."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline


class _FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feed: FeedBackend) -> None:
        self.feed = feed
        host = feed.listen[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(feed.max_connections)
        self._live: dict[int, _Connection] = {}
        self._live_lock = threading.Lock()
        self.refused = 0  # connections answered 503 (all slots taken)
        self.reaped = 0  # connections cut at their deadline
        self.errors = 0  # connections that ended in an error (reset, bad TLS, ...)
        super().__init__(feed.listen, _FeedHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which may block on
        # DNS; the feed has no use for it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        with self._live_lock:
            self._live[id(request)] = _Connection(
                request, time.monotonic() + self.feed.request_deadline
            )
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.feed.read_timeout)
        context = self.feed.ssl_context
        if context is not None:
            conn = self._live.get(id(request))
            try:
                request = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                self.errors += 1
                return
            if conn is not None:
                conn.sock = request
        super().finish_request(request, client_address)

    def _release(self, request: Any) -> None:
        with self._live_lock:
            if self._live.pop(id(request), None) is None:
                return
        self._slots.release()

    def service_actions(self) -> None:
        """On the serving thread between polls: cut connections past their deadline."""
        super().service_actions()
        now = time.monotonic()
        with self._live_lock:
            late = [c for c in self._live.values() if c.deadline <= now]
        for conn in late:
            self.reaped += 1
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> None:
        with self._live_lock:
            conns = list(self._live.values())
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.errors += 1  # never a traceback on stderr for one bad client


class _FeedHandler(BaseHTTPRequestHandler):
    server: _FeedServer
    protocol_version = "HTTP/1.1"
    server_version = "sluice-feed"
    sys_version = ""

    def setup(self) -> None:
        # The socket's timeout was set in finish_request (before any TLS handshake).
        # What send_error and send_response read before a request line was parsed.
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.0"
        super().setup()
        self.rfile = _CappedReader(self.rfile, MAX_REQUEST_BYTES)  # type: ignore[assignment]

    def handle(self) -> None:
        """One request per connection (firewalls poll minutes apart; keep-alive would only
        hold slots)."""
        self.close_connection = True
        try:
            self.handle_one_request()
        except _RequestTooLarge:
            with contextlib.suppress(OSError):
                self.send_error(431, "Request header fields too large")
        except OSError:
            self.server.errors += 1
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line may carry ?token=. The fetch log is the record."""

    def do_GET(self) -> None:
        self._serve(body_wanted=True)

    def do_HEAD(self) -> None:
        self._serve(body_wanted=False)

    def _serve(self, *, body_wanted: bool) -> None:
        feed = self.server.feed
        url = urlsplit(self.path)
        auth = feed._authenticate(self.headers.get("Authorization"), url.query)
        etag: str | None = None
        body = b""
        headers: list[tuple[str, str]] = []
        if auth is None:
            status = 401
            headers.append(("WWW-Authenticate", 'Basic realm="sluice feed"'))
            headers.append(("WWW-Authenticate", 'Bearer realm="sluice feed"'))
        elif url.path not in PATHS:
            status = 404
        else:
            rendered = feed._render(PATHS[url.path])
            etag = rendered.etag
            headers += [
                ("ETag", rendered.etag),
                ("Last-Modified", formatdate(rendered.last_modified, usegmt=True)),
                ("Cache-Control", "no-cache"),
            ]
            if rendered.not_modified(
                self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            ):
                status = 304
            else:
                status = 200
                body = rendered.body
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        if body_wanted and body:
            self.wfile.write(body)
            sent = len(body)
        agent = self.headers.get("User-Agent", "")[:MAX_USER_AGENT]
        feed._record(
            FetchRecord(
                at=feed.clock(),
                client=str(self.client_address[0]),
                method=self.command,
                path=url.path[:MAX_PATH],
                status=status,
                bytes=sent,
                etag=etag,
                auth=auth,
                user_agent=agent.encode("ascii", "replace").decode("ascii"),
            )
        )
