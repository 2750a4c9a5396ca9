"""Build and write expected.json (the format the regression test reads, see pcaps/README.md)."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dpkt


def uri_filename(uri: str) -> str | None:
    """Name of a whole (non-multipart) body without Content-Disposition, from its request URI.

    The last path segment, percent-decoded (UTF-8, errors replaced), query string excluded;
    None when that segment is empty ("/", "/api/"). "/api/v1/export?batch=7" -> "export".
    """
    path = uri.partition("?")[0]
    if "://" in path:  # absolute form: drop scheme and authority
        path = "/" + path.partition("://")[2].partition("/")[2]
    segment = path.rpartition("/")[2]
    return urllib.parse.unquote(segment, encoding="utf-8", errors="replace") or None


def http_object(
    direction: str,
    data: bytes | None = None,
    *,
    filename: str | None = None,
    complete: bool = True,
    missing_bytes: int = 0,
    size: int | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """One expected object; pass `data` (decoded bytes) or explicit size/sha256, or neither."""
    obj: dict[str, Any] = {"proto": "http", "direction": direction, "filename": filename}
    if data is not None:
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    if size is not None:
        obj["size"] = size
    if sha256 is not None:
        obj["sha256"] = sha256
    obj["complete"] = complete
    obj["missing_bytes"] = missing_bytes
    return obj


def http_request(method: str, host: str | None, uri: str, status: int | None) -> dict[str, Any]:
    return {"method": method, "host": host, "uri": uri, "status": status}


def write_expected(
    case_dir: Path,
    *,
    objects: Iterable[dict[str, Any]],
    http: Iterable[dict[str, Any]],
    flows: int,
    anomalies: Iterable[str] = (),
    exhaustive: bool = True,
    read_error: str | None = None,
) -> None:
    doc = {
        "case": case_dir.name,
        "objects": list(objects),
        "objects_exhaustive": exhaustive,
        "http": list(http),
        "anomalies_include": list(anomalies),
        "flows": flows,
        "read_error": read_error,
    }
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def count_flows(pcap: Path) -> int:
    """Bidirectional TCP/UDP 5-tuples in an Ethernet pcap (a cross-check of the ground truth)."""
    keys: set[tuple[Any, ...]] = set()
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            l4 = getattr(ip, "data", None)
            if not isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                continue
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            keys.add((type(l4).__name__, *sorted([a, b])))
    return len(keys)
