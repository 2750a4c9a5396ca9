"""Classification switched on in a replay: a patient export uploaded over HTTP is a
`sensitive_content` finding with counts and masked samples, the events match the schema, and
no planted identifier appears in clear in any output (events, files.jsonl, the database, the
summary)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema

from pcaps._lib.crafted import TcpConversation, play, upload_exchange, write_conversations
from sensor.cli.main import main
from tests.data.classify.fake import valid_bsn

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "sensor" / "outputs" / "events.schema.json").read_text()
)


def capture(path: Path, body: bytes) -> None:
    conv = TcpConversation()
    conv.handshake()
    request, response, _ = upload_exchange(body, uri="/export/patients.csv")
    play(conv, [("client", request), ("server", response)])
    conv.close()
    write_conversations(path, conv)


def test_a_patient_export_is_found_counted_and_never_written_in_clear(
    tmp_path: Path, capsys: object
) -> None:
    rng = random.Random(12)
    numbers = sorted({valid_bsn(rng) for _ in range(400)})
    rows = ["bsn;achternaam;geboortedatum;uitslag"] + [
        f"{n};Jansen;1971-0{i % 9 + 1}-1{i % 9};hrHPV positief, PAP{i % 5 + 1}"
        for i, n in enumerate(numbers)
    ]
    pcap = tmp_path / "upload.pcap"
    capture(pcap, ("\n".join(rows) + "\n").encode())
    config = tmp_path / "sluice.toml"
    config.write_text("[classify]\nenabled = true\n")
    out = tmp_path / "out"
    assert main(["extract", str(pcap), "--out", str(out), "--config", str(config)]) == 0
    printed = capsys.readouterr()  # type: ignore[attr-defined]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    (finding,) = [e["finding"] for e in events if e["event_type"] == "finding"]
    assert finding["kind"] == "sensitive_content" and finding["severity"] == "critical"
    assert {"national_id", "health"} <= set(finding["categories"])
    assert finding["identifiers"]["bsn"]["distinct"] == len(numbers)
    assert finding["records"] == len(numbers)
    assert all(s.startswith("*****") for s in finding["identifiers"]["bsn"]["samples"])
    (upload,) = [e["file"] for e in events if e["event_type"] == "file"
                 and e["file"]["direction"] == "upload"]  # fmt: skip
    assert upload["classification"]["severity"] == "critical"
    # Privacy: no planted identifier in clear in any output but the extracted file itself.
    outputs = [
        (out / "events.jsonl").read_bytes(),
        (out / "files.jsonl").read_bytes(),
        (out / "sluice.db").read_bytes(),
        printed.out.encode(),
        printed.err.encode(),
    ]
    for number in numbers:
        for blob in outputs:
            assert number.encode() not in blob


def test_classification_is_off_by_default(tmp_path: Path) -> None:
    rng = random.Random(2)
    body = "\n".join(f"{valid_bsn(rng)};hrHPV positief" for _ in range(50)).encode()
    pcap = tmp_path / "upload.pcap"
    capture(pcap, body)
    out = tmp_path / "out"
    assert main(["replay", str(pcap), "--out", str(out), "--quiet"]) == 0
    text = (out / "events.jsonl").read_text()
    assert "sensitive_content" not in text and '"classification"' not in text
