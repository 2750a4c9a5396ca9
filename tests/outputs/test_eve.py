from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pcaps._lib.crafted import TcpConversation, http_request, http_response, write_conversations
from sensor.cli.main import run
from sensor.config import Config
from sensor.outputs.eve import iso_time
from tests.replays import all_inputs, replay

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "sensor/outputs/events.schema.json").read_text()
)


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("capture", all_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_emitted_event_matches_the_schema(capture: Path) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    result = replay(capture)
    assert result.events, "a replay always writes at least flow and stats events"
    for event in result.events:
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, f"{event['event_type']} event breaks the schema: {errors[0].message}"
    assert result.events[-1]["event_type"] == "stats"


def test_schema_rejects_an_undocumented_field() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    event = {"timestamp": iso_time(0.0), "event_type": "stats", "surprise": 1, "stats": {}}
    assert list(validator.iter_errors(event))


def test_credentials_never_reach_the_events(tmp_path: Path) -> None:
    secret_basic = "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    conv = TcpConversation()
    conv.handshake()
    request = http_request(
        "POST",
        "/login",
        "198.51.100.20:8080",
        b"patient=1",
        [
            ("Authorization", f"Basic {secret_basic}"),
            ("Cookie", "session=s3cr3tcookie"),
            ("Proxy-Authorization", "Bearer t0ken-xyz"),
        ],
    )
    conv.emit_all(conv.segments("client", request))
    conv.emit_all(
        conv.segments("server", http_response(200, "OK", b"ok", [("Set-Cookie", "id=s3tc00kie")]))
    )
    conv.close()
    pcap = tmp_path / "creds.pcap"
    write_conversations(pcap, conv)
    out = tmp_path / "out"
    out.mkdir()
    run([str(pcap)], out, Config(), extract=True)
    text = (out / "events.jsonl").read_text() + (out / "files.jsonl").read_text()
    assert '"http_method":"POST"' in text  # the transaction itself is logged
    for secret in (secret_basic, "s3cr3tcookie", "t0ken-xyz", "s3tc00kie"):
        assert secret not in text
