"""sensor/outputs/http.py: what an `http` record says, and what it never says (credentials:
userinfo and secret query values are removed from every URL written)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pcaps._lib.crafted import TcpConversation, http_request, http_response, write_conversations
from sensor.outputs.http import UrlRedactor

SLUICE = str(Path(sys.executable).parent / "sluice")


# -- secrets in URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "written"),
    [
        ("/login?user=ann&password=hunter2&token=abc",
         "/login?user=ann&password=REDACTED&token=REDACTED"),
        ("http://user:pass@host.example/x?q=1", "http://host.example/x?q=1"),
        ("//bob:pw@host.example/", "//host.example/"),
        ("user:pw@host.example:8080", "host.example:8080"),  # a Host header with userinfo
        ("/a?SID=42&Pass%77ord=x&page=2#frag?token=t",
         "/a?SID=REDACTED&Pass%77ord=REDACTED&page=2#frag?token=t"),
        ("/a?api_key=&key=k&keyboard=qwerty", "/a?api_key=REDACTED&key=REDACTED&keyboard=qwerty"),
        ("/plain/path", "/plain/path"),
        ("/a?token", "/a?token"),  # a bare name carries no value
    ],
)  # fmt: skip
def test_urls_lose_userinfo_and_secret_values(url: str, written: str) -> None:
    assert UrlRedactor()(url) == written


def test_the_secret_names_are_a_setting() -> None:
    assert UrlRedactor(["PatientId"])("/r?patientid=123&token=t") == "/r?patientid=REDACTED&token=t"


def test_no_output_of_a_run_holds_the_secrets_of_its_urls(tmp_path: Path) -> None:
    conv = TcpConversation()
    conv.handshake()
    body = b"id,result\n1,ok\n" * 200
    request = http_request(
        "POST", "/api/upload?batch=7&password=hunter2&access_token=abc123xyz",
        "ann:s3cr3tpw@files.example.org", body,
        [("Referer", "https://portal.example.org/view?sid=sess-9f8e7d&page=3")],
    )  # fmt: skip
    response = http_response(302, "Found", b"", [("Location", "/done?token=tok-5a5a5a")])
    conv.emit_all(conv.segments("client", request))
    conv.emit_all(conv.segments("server", response))
    conv.close()
    capture = tmp_path / "secrets.pcap"
    write_conversations(capture, conv)
    out = tmp_path / "out"
    done = subprocess.run(
        [SLUICE, "extract", str(capture), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "password=REDACTED" in done.stdout  # the upload is in the summary, masked
    written = done.stdout + done.stderr
    for name in ("events.jsonl", "files.jsonl"):
        written += (out / name).read_text()
    db = sqlite3.connect(out / "sluice.db")
    written += repr(db.execute("SELECT * FROM activity").fetchall())
    assert "batch=7" in written and "files.example.org" in written
    for secret in ("hunter2", "abc123xyz", "s3cr3tpw", "ann:", "sess-9f8e7d", "tok-5a5a5a"):
        assert secret not in written, secret
