"""The HTTP log (the outputs stage): `http` records, and the request on the files of its bodies.

One `http` record per transaction (request and response heads joined by the parser), with the
fields Suricata's http log uses. Credentials never reach a record: of a request's headers only
Host, User-Agent, Referer and Content-Type are written (no Authorization, no Cookie).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sensor.flows.table import Flow
from sensor.outputs.eve import ProtocolLog, Record, flow_header, text
from sensor.protocols.base import ObjectStart, ProtocolEvent
from sensor.protocols.http import HttpRequestHead, HttpResponseHead, HttpTransaction


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def http_fields(request: HttpRequestHead | None, response: HttpResponseHead | None) -> Record:
    body: Record = {}
    if request is not None:
        host = _header(request.headers, b"host")
        if host is not None:
            body["hostname"] = text(host, 256)
        body["url"] = text(request.uri)
        body["http_method"] = text(request.method, 32)
        body["protocol"] = text(request.version, 16)
        for name, key in (
            (b"user-agent", "http_user_agent"),
            (b"referer", "http_refer"),
            (b"content-type", "http_request_content_type"),
        ):
            value = _header(request.headers, name)
            if value is not None:
                body[key] = text(value, 512)
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
                body[key] = text(value, 512)
    return body


def http_record(flow: Flow[Any], tx: HttpTransaction) -> Record:
    record = flow_header(flow, "http", tx.ts)
    body = http_fields(tx.request, tx.response)
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
    __slots__ = ()

    def event(self, flow: Flow[Any], event: ProtocolEvent) -> Record | None:
        if isinstance(event, HttpTransaction):
            return http_record(flow, event)
        return None

    def file_context(self, start: ObjectStart) -> Record | None:
        """A body's file names the request it belongs to (for a response body too)."""
        request = start.about
        return http_fields(request, None) if isinstance(request, HttpRequestHead) else None
