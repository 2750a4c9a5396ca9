"""Differential test against Wireshark (tshark 4.0, Debian) on the real HTTP sample captures.

For each capture: the HTTP requests (method, host, URI, Content-Length) tshark dissects must
be the requests Sluice reports, and every body tshark exports with `--export-objects http`
must be one of the objects Sluice extracted (same SHA-256). Sluice may find more than tshark:
where it does, by design, the reason is listed below and the test checks that reason holds.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.replays import PCAPS, replay

# Captures made by real clients and servers (see each case's README).
REAL_HTTP_CASES = [
    "http-post-raw",
    "http-chunked-upload",
    "http-multipart-upload",
    "http-keepalive-pipelining",
    "http-encoded-download",
    "http-expect-continue",
    "http-put-large",
    "http-connect-tunnel",
]

# Where tshark's exported object differs from Sluice's by design.
# - multipart: tshark exports the whole multipart/form-data body as one object; Sluice splits it
#   and exports each part (with its own filename), so the whole body is not among its objects.
WHOLE_MULTIPART_BODY = {"http-multipart-upload"}


def _tshark_fields(pcap: Path, *fields: str) -> list[list[str]]:
    argv = [
        "tshark",
        "-r",
        str(pcap),
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [(line.split("\t") + [""] * len(fields))[: len(fields)] for line in out.splitlines()]


def _tshark_requests(pcap: Path) -> Counter[tuple[str, str, str]]:
    rows: Counter[tuple[str, str, str]] = Counter()
    for methods, hosts, uris in _tshark_fields(
        pcap, "http.request.method", "http.host", "http.request.uri"
    ):
        for method, host, uri in zip(
            methods.split("|"), hosts.split("|"), uris.split("|"), strict=False
        ):
            rows[(method, host, uri)] += 1
    return rows


def _tshark_request_lengths(pcap: Path) -> Counter[int]:
    """Content-Length values of requests (requests without one are not listed by tshark)."""
    lengths: Counter[int] = Counter()
    for (value,) in _tshark_fields(pcap, "http.content_length"):
        for item in filter(None, value.split("|")):
            lengths[int(item)] += 1
    return lengths


def _tshark_objects(pcap: Path, directory: Path) -> dict[str, int]:
    directory.mkdir()
    subprocess.run(
        ["tshark", "-r", str(pcap), "-q", "--export-objects", f"http,{directory}"],
        capture_output=True,
        check=True,
    )
    return {
        hashlib.sha256(p.read_bytes()).hexdigest(): p.stat().st_size for p in directory.iterdir()
    }


@pytest.mark.parametrize("case", REAL_HTTP_CASES)
def test_requests_and_bodies_agree_with_tshark(case: str, tmp_path: Path) -> None:
    require_tool("tshark")
    pcap = PCAPS / case / "input.pcap"
    result = replay(pcap)
    ours: Counter[tuple[str, str, str]] = Counter(
        (e["http"].get("http_method", ""), e["http"].get("hostname", ""), e["http"].get("url", ""))
        for e in result.of_type("http")
        if "http_method" in e["http"]
    )
    assert ours == _tshark_requests(pcap)
    body_lengths = Counter(e["http"]["request_body_len"] for e in result.of_type("http"))
    assert not _tshark_request_lengths(pcap) - body_lengths, "request body lengths differ"

    theirs = _tshark_objects(pcap, tmp_path / "tshark")
    mine = {f["sha256"] for f in result.files}
    missing = {sha: size for sha, size in theirs.items() if sha not in mine}
    if case in WHOLE_MULTIPART_BODY:
        # The multipart body tshark exports is the one object we do not keep whole; all its
        # parts must be ours instead.
        assert len(missing) <= 1
        assert sum(1 for f in result.files if f["part_index"] is not None) >= 2
    else:
        assert not missing, f"tshark exported bodies Sluice did not: {missing}"


# Real SMTP captures (aiosmtpd and smtplib, see each case's README); tshark needs to be told
# that port 2525 is SMTP, Sluice finds it by content.
REAL_SMTP_CASES = {
    "smtp-plain": [],
    "smtp-attachments": [],
    "smtp-multi": [],
    "smtp-pipelining": [],
    "smtp-rejected-rcpt": [],
    "smtp-auth": [],
    "smtp-dot-stuffing": [],
    "smtp-submission-2525": ["-d", "tcp.port==2525,smtp"],
}


def _address(parameter: str) -> str:
    """`FROM:<a@b> SIZE=1` -> `a@b` (the path between the angle brackets)."""
    start, end = parameter.find("<"), parameter.find(">")
    return parameter[start + 1 : end] if 0 <= start < end else parameter.split(":", 1)[-1]


@pytest.mark.parametrize("case", sorted(REAL_SMTP_CASES))
def test_smtp_envelopes_and_messages_agree_with_tshark(case: str, tmp_path: Path) -> None:
    """Envelopes as tshark's SMTP dissector reads them, and whole messages as its IMF export
    writes them: every message Sluice saw (its `message_sha256`) is one tshark exported.
    tshark also exports each message/rfc822 attachment as a message of its own; Sluice
    reports those as parts of the outer message, so such extras must lie inside one of ours."""
    require_tool("tshark")
    pcap = PCAPS / case / "input.pcap"
    extra = REAL_SMTP_CASES[case]
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            *extra,
            "-Y",
            "smtp.req",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-e",
            "smtp.req.command",
            "-e",
            "smtp.req.parameter",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    senders: Counter[str] = Counter()
    recipients: Counter[str] = Counter()
    for line in out.splitlines():
        commands, _, parameters = line.partition("\t")
        # Pipelined commands (RFC 2920) share a segment: tshark lists them together, and
        # parameter-less ones (DATA) leave no entry among the parameters.
        params = iter(parameters.split("|"))
        for command in commands.split("|"):
            if command.upper() == "MAIL":
                senders[_address(next(params, ""))] += 1
            elif command.upper() == "RCPT":
                recipients[_address(next(params, ""))] += 1
            elif command.upper() in ("EHLO", "HELO", "AUTH"):
                next(params, "")
    result = replay(pcap)
    transactions = [e["smtp"] for e in result.of_type("smtp")]
    assert Counter(t["mail_from"] for t in transactions if t["mail_from"]) == senders
    assert Counter(a for t in transactions for a in t["rcpt_to"] + t["rcpt_rejected"]) == recipients

    directory = tmp_path / "imf"
    directory.mkdir()
    subprocess.run(
        ["tshark", "-r", str(pcap), *extra, "-q", "--export-objects", f"imf,{directory}"],
        capture_output=True,
        check=True,
    )
    # tshark exports the DATA content as sent, dot-stuffing included; the message is what is
    # left after unstuffing (RFC 5321 4.5.2), which is what Sluice hashes.
    theirs = {}
    for path in directory.iterdir():
        data = path.read_bytes()
        data = (data[1:] if data.startswith(b"..") else data).replace(b"\r\n..", b"\r\n.")
        theirs[hashlib.sha256(data).hexdigest()] = data
    ours = {t["message_sha256"] for t in transactions if "message_sha256" in t}
    assert ours, "no message seen"
    assert ours <= set(theirs), "a message Sluice saw differs from tshark's export"
    for sha, data in theirs.items():
        if sha not in ours:
            assert any(data in theirs[mine] for mine in ours), "tshark exported a message we lack"
