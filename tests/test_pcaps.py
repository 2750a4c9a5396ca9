"""Regression: every case under pcaps/ against its expectation file (suricata-verify style).

Expectations were computed by each case's generator from ground truth (the bytes the real
client sent), never from Sluice's output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sensor.cli.main import METER_DB
from sensor.metering.store import MeterStore
from tests.replays import PCAPS, Replay, all_inputs, internal_errors, replay

HTTP_KEYS = {"method": "http_method", "host": "hostname", "uri": "url", "status": "status"}


def _subset(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """Every key of `want` has its value in `have`; a dict value (the fingerprint) is itself
    compared as a subset."""
    for key, value in want.items():
        got = have.get(key)
        if isinstance(value, dict):
            if not isinstance(got, dict) or not _subset(value, got):
                return False
        elif got != value:
            return False
    return True


def _match_multiset(
    expected: Iterable[dict[str, Any]],
    actual: list[dict[str, Any]],
    exhaustive: bool,
    what: str,
) -> None:
    remaining = list(actual)
    for want in expected:
        for i, have in enumerate(remaining):
            if _subset(want, have):
                del remaining[i]
                break
        else:
            pytest.fail(f"no {what} matching {want}\n  have: {remaining}")
    if exhaustive:
        assert not remaining, f"unexpected {what}s: {remaining}"


SMTP_KEYS = (
    "helo",
    "mail_from",
    "rcpt_to",
    "rcpt_rejected",
    "status",
    "tls",
    "auth_mechanism",
    "attachments",
)


def _smtp_view(result: Replay) -> list[dict[str, Any]]:
    rows = []
    for event in result.of_type("smtp"):
        s = event["smtp"]
        row = {key: s.get(key) for key in SMTP_KEYS}
        row["subject"] = s.get("headers", {}).get("subject")
        rows.append(row)
    return rows


def _lookup(obj: Any, path: str) -> Any:
    """`certificates[0].subject` style paths into an event sub-object; None when absent."""
    for part in path.split("."):
        name, _, index = part.partition("[")
        obj = obj.get(name) if isinstance(obj, dict) else None
        if index:
            i = int(index.rstrip("]"))
            obj = obj[i] if isinstance(obj, list) and len(obj) > i else None
    return obj


def _view(expected: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record reduced to the keys the expectation names (paths resolved)."""
    keys = {key for want in expected for key in want}
    return [{key: _lookup(record, key) for key in keys} for record in records]


def _ssh_body(event: dict[str, Any]) -> dict[str, Any]:
    """The ssh sub-object with client/server flattened to the parser's field names."""
    body = dict(event["ssh"])
    for side in ("client", "server"):
        for key, value in body.pop(side, {}).items():
            body[f"{side}_{key}"] = value
    return body


def _destination_view(result: Replay) -> list[dict[str, Any]]:
    """Every (internal host, destination) pair the meter stored over the whole capture, with
    the destination's name: what `sluice top --by pair --window all --json` ranks."""
    with MeterStore(result.out / METER_DB) as store:
        start = store.oldest()
        rows = [] if start is None else store.top(start, float("inf"), "pair", limit=10_000)
    return [{"host": r.host, "ip": r.dest, "name": r.name} for r in rows]


def _http_view(result: Replay) -> list[dict[str, Any]]:
    rows = []
    for event in result.of_type("http"):
        h = event["http"]
        rows.append({key: h.get(field) for key, field in HTTP_KEYS.items()})
    return rows


def _sensitive_view(result: Replay, keys: set[str]) -> list[dict[str, Any]]:
    """Every `sensitive_content` finding reduced to the keys the expectation names, with
    `identifiers` as {type: distinct values}: compared whole, so a type the data does not hold
    is a difference too."""
    rows = []
    for event in result.of_type("finding"):
        f = event["finding"]
        if f["kind"] == "sensitive_content":
            row = {key: f.get(key) for key in keys}
            row["identifiers"] = {name: n["distinct"] for name, n in f["identifiers"].items()}
            rows.append(row)
    return rows


def _check_findings(capture: Path, expected: list[dict[str, Any]]) -> None:
    """The classification findings of a replay with classification on equal the expectation
    exactly (as a multiset: every one found, none more)."""
    keys = {key for want in expected for key in want}
    have = _sensitive_view(replay(capture, classify=True), keys)

    def canonical(row: dict[str, Any]) -> str:
        return json.dumps(row, sort_keys=True)

    assert sorted(have, key=canonical) == sorted(expected, key=canonical), (
        f"sensitive_content findings differ:\n  want {expected}\n  have {have}"
    )


@pytest.mark.parametrize("capture", all_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(capture: Path) -> None:
    expected = json.loads((capture.parent / "expected.json").read_text())
    result = replay(capture)
    if "objects" in expected:
        _match_multiset(
            expected["objects"], result.files, expected.get("objects_exhaustive", True), "object"
        )
    if "http" in expected:
        _match_multiset(expected["http"], _http_view(result), True, "http request")
    if "smtp" in expected:
        _match_multiset(expected["smtp"], _smtp_view(result), True, "smtp transaction")
    if "destinations" in expected:
        _match_multiset(expected["destinations"], _destination_view(result), True, "destination")
    if "findings" in expected:
        _check_findings(capture, expected["findings"])
    app_records = {
        "tls": [e["tls"] for e in result.of_type("tls")],
        "ssh": [_ssh_body(e) for e in result.of_type("ssh")],
        "ftp": [e["ftp"] for e in result.of_type("ftp") if e["ftp"]["type"] == "transfer"],
        "ftp_sessions": [e["ftp"] for e in result.of_type("ftp") if e["ftp"]["type"] == "session"],
    }
    for key, records in app_records.items():
        if key in expected:
            _match_multiset(expected[key], _view(expected[key], records), True, f"{key} record")
    if expected.get("secrets_absent"):
        text = (result.out / "events.jsonl").read_text() + (result.out / "files.jsonl").read_text()
        for secret in expected["secrets_absent"]:
            assert secret not in text, "a credential reached the output"
    seen = set(result.summary.anomalies)
    for kind in expected.get("anomalies_include", []):
        assert kind in seen, f"anomaly {kind} not reported; saw {sorted(seen)}"
    if expected.get("flows") is not None:
        assert len(result.of_type("flow")) == expected["flows"]
    if expected.get("read_error") == "truncated":
        assert result.summary.capture_errors, "the damaged capture was not reported"
    else:
        assert not result.summary.capture_errors


def test_there_are_cases() -> None:
    assert len(all_inputs()) >= 10


def test_mail_objects_name_their_envelope() -> None:
    """Each MIME leaf of a mail says whose message it is: the sender and the recipients the
    server accepted (a refused recipient never got it)."""
    expected = json.loads((PCAPS / "smtp-rejected-rcpt" / "expected.json").read_text())
    (tx,) = expected["smtp"]
    result = replay(PCAPS / "smtp-rejected-rcpt" / "input.pcap")
    files = [e for e in result.of_type("file") if e["file"]["proto"] == "smtp"]
    assert files
    for event in files:
        assert event["smtp"]["mail_from"] == tx["mail_from"]
        assert event["smtp"]["rcpt_to"] == tx["rcpt_to"]
        assert not set(event["smtp"]["rcpt_to"]) & set(tx["rcpt_rejected"])


@pytest.mark.parametrize("capture", all_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_parser_or_decoder_bug_was_contained(capture: Path) -> None:
    """A parser that raised is detached and counted as `parser_error`, the decoder's own bugs
    as `decode_internal_error`: the outputs would still look plausible, so check for them."""
    assert internal_errors(replay(capture).events) == {}
