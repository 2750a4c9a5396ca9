"""The HTTP log (the outputs stage): `http` records, and the request on the files of its bodies.

One `http` record per transaction (request and response heads joined by the parser), with the
fields Suricata's http log uses. Credentials never reach a record: of a request's headers only
Host, User-Agent, Referer and Content-Type are written (no Authorization, no Cookie), and in
every URL written (the request target, Referer, Location, and the Host) userinfo
(`user:password@`) is removed and the values of secret query parameters
(`output.secret_parameters`: password, token, sid, ...) become REDACTED.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from sensor.config import SECRET_PARAMETERS
from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, flow_header, text
from sensor.protocols.base import ObjectStart, ProtocolEvent
from sensor.protocols.http import HttpRequestHead, HttpResponseHead, HttpTransaction


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


REDACTED = "REDACTED"
# scheme://userinfo@ or //userinfo@ (RFC 3986 section 3.2.1), or a bare authority's userinfo.
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#@\s]*@")


class UrlRedactor:
    """URLs as Sluice writes them: no userinfo, no value of a secret query parameter."""

    __slots__ = ("secret",)

    def __init__(self, secret: Iterable[str] = SECRET_PARAMETERS) -> None:
        self.secret = frozenset(name.lower() for name in secret)

    def __call__(self, url: str) -> str:
        match = _USERINFO.match(url)
        if match is not None:
            url = (match.group(1) or "") + url[match.end() :]
        start = url.find("?")
        if start < 0:
            return url
        end = url.find("#", start)
        end = len(url) if end < 0 else end
        parts = []
        for part in url[start + 1 : end].split("&"):
            name, eq, _value = part.partition("=")
            if eq and urllib.parse.unquote_plus(name).strip().lower() in self.secret:
                part = f"{name}={REDACTED}"
            parts.append(part)
        return url[: start + 1] + "&".join(parts) + url[end:]


_DEFAULT_REDACTOR = UrlRedactor()


def http_fields(
    request: HttpRequestHead | None,
    response: HttpResponseHead | None,
    redact: UrlRedactor = _DEFAULT_REDACTOR,
) -> Record:
    body: Record = {}
    if request is not None:
        host = _header(request.headers, b"host")
        if host is not None:
            body["hostname"] = redact(text(host, 256))
        body["url"] = redact(text(request.uri))
        body["http_method"] = text(request.method, 32)
        body["protocol"] = text(request.version, 16)
        for name, key in (
            (b"user-agent", "http_user_agent"),
            (b"referer", "http_refer"),
            (b"content-type", "http_request_content_type"),
        ):
            value = _header(request.headers, name)
            if value is not None:
                body[key] = redact(text(value, 512)) if key == "http_refer" else text(value, 512)
    if response is not None:
        body["status"] = response.status
        if request is None:
            body["protocol"] = text(response.version, 16)
        for name, key in (
            (b"content-type", "http_content_type"),
            (b"server", "server"),
            (b"location", "redirect"),
        ):
            value = _header(response.headers, name)
            if value is not None:
                body[key] = redact(text(value, 512)) if key == "redirect" else text(value, 512)
    return body


def http_record(
    flow: Flow[Any], tx: HttpTransaction, redact: UrlRedactor = _DEFAULT_REDACTOR
) -> Record:
    record = flow_header(flow, "http", tx.ts)
    body = http_fields(tx.request, tx.response, redact)
    body["tx_id"] = tx.txid
    body["request_body_len"] = tx.request_body_len
    body["response_body_len"] = tx.response_body_len
    if tx.request_missing or tx.response_missing:
        body["request_missing_bytes"] = tx.request_missing
        body["response_missing_bytes"] = tx.response_missing
    if tx.interim_statuses:
        body["interim_statuses"] = list(tx.interim_statuses)
    if tx.tunnel:
        body["tunnel"] = True
    record["http"] = body
    return record


class HttpLog(ProtocolLog):
    __slots__ = ("redact",)

    def __init__(self, redact: UrlRedactor = _DEFAULT_REDACTOR) -> None:
        self.redact = redact  # one for the whole run, shared by every flow's log

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        if isinstance(event, HttpTransaction):
            return http_record(flow, event, self.redact)
        return None

    def file_context(self, start: ObjectStart) -> Record | None:
        """A body's file names the request it belongs to (for a response body too)."""
        request = start.about
        if isinstance(request, HttpRequestHead):
            return http_fields(request, None, self.redact)
        return None
