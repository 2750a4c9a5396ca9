"""A local stand-in for an OPNsense firewall's ``alias_util`` API that really blocks.

It is a real HTTP server on 127.0.0.1 (stdlib ``http.server``, one thread per request) that
speaks the wire format `sensor.verdicts.opnsense` documents, with the same sources: it
checks HTTP Basic key:secret (401 ``{"status": 401, "message": "Authentication Failed"}``
otherwise), reads a JSON body only under ``Content-Type: application/json`` (400 on bad
JSON) and a form body otherwise, and answers ``add``/``delete``/``list`` the way the
controller does, HTTP 200 with the outcome in the body ("done", "failed" + ``status_msg``
for an unknown alias on add, "failed" for a missing address or a non-POST, and
"not_an_address" for a value outside ``[0-9a-f:./_]``). Like pfctl, adding what is there or
deleting what is not is "done", and so is a value that passes the pattern but is no address
(pfctl refuses it silently). ``list`` pages on POSTed ``current``/``rowCount`` (default
9999) and returns hosts without a mask, networks with one, sorted as strings.

Each alias is a pf table here: a set of networks in this process, and, when the server is
given a network namespace, two nft interval sets (IPv4, IPv6) of a table
``inet opnsense_fake`` in that namespace, rebuilt in one ``nft -f`` transaction after every
change (overlaps collapsed first, since pf tables allow them and nft interval sets do not).
A forward chain drops traffic from addresses in "source" aliases and to addresses in
"destination" aliases, as an operator's two OPNsense block rules would, so a block sent
through the API stops real packets in that namespace.

Test hooks: `fail_with` makes the next requests answer a given HTTP status; `requests`
records (method, path, parsed body) of every authenticated request.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TABLE = "opnsense_fake"
PREFIX = "/api/firewall/alias_util/"
DEFAULT_ROWS = 9999
_NOT_AN_ADDRESS = re.compile(r"[^0-9a-f:./_]")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class FakeOpnsense:
    """`aliases`: alias name -> "src" or "dst" (which side its block rule matches)."""

    def __init__(
        self,
        key: str,
        secret: str,
        aliases: Mapping[str, str],
        *,
        netns: str | None = None,
    ) -> None:
        self.key = key
        self.secret = secret
        self.aliases = dict(aliases)
        self.netns = netns
        self.tables: dict[str, set[Net]] = {name: set() for name in aliases}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: list[int] = []  # HTTP statuses for the next requests, in order
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeOpnsense:
        if self.netns is not None:
            self._nft(self._ruleset())
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def remove_ruleset(self) -> None:
        if self.netns is not None:
            subprocess.run(
                ["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet", TABLE],
                capture_output=True,
            )

    def flush(self, alias: str) -> None:
        """Empty an alias behind the client's back (what a firewall reboot does to an
        external alias)."""
        with self._lock:
            self.tables[alias].clear()
            self._apply(alias)

    def nft_elements(self, alias: str, family: int) -> list[str]:
        """The elements of an alias's nft set as the kernel lists them."""
        assert self.netns is not None
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "-j", "list", "set", "inet", TABLE,
             _set_name(alias, family)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        listing = json.loads(done.stdout)["nftables"]
        elements = next(o["set"] for o in listing if "set" in o).get("elem", [])
        out = []
        for e in elements:
            if isinstance(e, dict) and "prefix" in e:
                out.append(f"{e['prefix']['addr']}/{e['prefix']['len']}")
            else:
                out.append(str(e))
        return out

    # -- the controller --------------------------------------------------------------------
    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path, body))
            if self.fail_with:
                status = self.fail_with.pop(0)
                return status, {"status": status, "message": "injected failure"}
            if not path.startswith(PREFIX):
                return 404, {"errorMessage": "Endpoint not found"}
            action, _, alias = path[len(PREFIX) :].partition("/")
            if action in ("add", "delete"):
                return 200, self._change(action, method, alias, body)
            if action == "list":
                return 200, self._list(alias, body)
            return 404, {"errorMessage": "Endpoint not found"}

    def _change(self, action: str, method: str, alias: str, body: dict[str, Any]) -> Any:
        address = body.get("address")
        if method != "POST" or not isinstance(address, str):
            return {"status": "failed"}
        if action == "add" and _NOT_AN_ADDRESS.search(address):
            return {"status": "not_an_address"}
        if alias not in self.tables:
            if action == "add":
                return {"status": "failed", "status_msg": f"non existing alias {alias}"}
            return {"status": "done"}  # pfctl on a missing table: ignored, "done"
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            return {"status": "done"}  # pfctl refused it; the controller does not look
        if action == "add":
            self.tables[alias].add(network)
        else:
            self.tables[alias].discard(network)
        self._apply(alias)
        return {"status": "done"}

    def _list(self, alias: str, body: dict[str, Any]) -> Any:
        rows_per_page = int(body.get("rowCount", DEFAULT_ROWS))
        current = int(body.get("current", 1))
        entries = sorted(_pf_spelling(n) for n in self.tables.get(alias, set()))
        phrase = body.get("searchPhrase")
        if isinstance(phrase, str) and phrase:
            entries = [e for e in entries if phrase in e]
        offset = (current - 1) * rows_per_page
        return {
            "total": len(entries),
            "rowCount": rows_per_page,
            "current": current,
            "rows": [{"ip": e} for e in entries[offset : offset + rows_per_page]],
        }

    # -- enforcement -----------------------------------------------------------------------
    def _ruleset(self) -> str:
        lines = [f"table inet {TABLE} {{"]
        for alias in self.aliases:
            for family in (4, 6):
                kind = "ipv4_addr" if family == 4 else "ipv6_addr"
                lines.append(f"  set {_set_name(alias, family)} {{ type {kind}; flags interval; }}")
        lines.append("  chain forward {")
        lines.append("    type filter hook forward priority filter; policy accept;")
        for alias, side in self.aliases.items():
            field = "saddr" if side == "src" else "daddr"
            lines.append(f"    ip {field} @{_set_name(alias, 4)} drop")
            lines.append(f"    ip6 {field} @{_set_name(alias, 6)} drop")
        lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _apply(self, alias: str) -> None:
        if self.netns is None:
            return
        script = []
        for family in (4, 6):
            name = _set_name(alias, family)
            members = [n for n in self.tables[alias] if n.version == family]
            script.append(f"flush set inet {TABLE} {name}")
            if members:
                merged = ipaddress.collapse_addresses(members)  # type: ignore[type-var]
                collapsed = ", ".join(str(n) for n in merged)
                script.append(f"add element inet {TABLE} {name} {{ {collapsed} }}")
        self._nft("\n".join(script) + "\n")

    def _nft(self, script: str) -> None:
        assert self.netns is not None
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "-f", "-"],
            input=script, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"fake OPNsense: nft failed: {done.stderr.strip()}")


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeOpnsense
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not access logs

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.server_fake
        if not self._authenticated(fake):
            self._answer(401, {"status": 401, "message": "Authentication Failed"})
            return
        kind = (self.headers.get("Content-Type") or "").replace(" ", "").lower()
        body: dict[str, Any] = {}
        if kind in ("application/json", "application/json;charset=utf-8"):
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                self._answer(400, {"message": "Invalid JSON syntax", "status": 400})
                return
            body = parsed
        elif raw:
            body = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        path = urllib.parse.urlsplit(self.path).path
        status, answer = fake.handle(method, path, body)
        self._answer(status, answer)

    def _authenticated(self, fake: FakeOpnsense) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            key, _, secret = base64.b64decode(token, validate=True).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(key, fake.key) and hmac.compare_digest(secret, fake.secret)

    def _answer(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _set_name(alias: str, family: int) -> str:
    return f"{alias}_v{family}"


def _pf_spelling(network: Net) -> str:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


@contextmanager
def running(fake: FakeOpnsense) -> Iterator[FakeOpnsense]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
        fake.remove_ruleset()
