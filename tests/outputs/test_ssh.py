"""sensor/outputs/ssh.py: the ssh record carries the protocol version and puts each side's
fields under `client`/`server`, null for a side that was not seen and for what SSH-1 does not
negotiate; every record matches the schema's `ssh` definition."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sensor.flows.table import Flow
from sensor.outputs.ssh import SshLog, ssh_record
from sensor.protocols.base import Direction, Opaque
from sensor.protocols.ssh import SshParser, SshSession

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "sensor/outputs/events.schema.json").read_text()
)
CLIENT, SERVER = socket.inet_aton("10.0.0.1"), socket.inet_aton("198.51.100.22")
C, S = Direction.TO_SERVER, Direction.TO_CLIENT


def flow() -> Flow[None]:
    f: Flow[None] = Flow(
        key=(6, CLIENT, 50000, SERVER, 22), flow_id=9, proto=6, ip_version=4, client=CLIENT,
        client_port=50000, server=SERVER, server_port=22, start=1.0, last=1.0,
    )  # fmt: skip
    f.app_proto = "ssh"
    return f


def kexinit() -> bytes:
    lists = ["curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha1",
             "hmac-sha1", "none", "none", "", ""]  # fmt: skip
    body = b"\x14" + b"\0" * 16 + b"".join(struct.pack(">I", len(x)) + x.encode() for x in lists)
    body += b"\0" * 5
    pad = 4 + (-(4 + 1 + len(body) + 4) % 8)
    return struct.pack(">IB", 1 + len(body) + pad, pad) + body + b"\0" * pad


def v1_packet(kind: int, size: int) -> bytes:
    length = 1 + size + 4
    return struct.pack(">I", length) + b"\0" * (8 - length % 8) + bytes([kind]) + b"\0" * (size + 4)


def session(chunks: list[tuple[Direction, bytes]]) -> SshSession:
    parser = SshParser()
    events: list[object] = []
    for direction, data in chunks:
        events += parser.feed(direction, data, 2.0)
    events += parser.eof(C, 3.0) + parser.eof(S, 3.0)
    [found] = [e for e in events if isinstance(e, SshSession)]
    return found


def record(chunks: list[tuple[Direction, bytes]]) -> dict[str, Any]:
    rec = SshLog().event(flow(), session(chunks))
    assert rec is not None
    as_json: dict[str, Any] = json.loads(json.dumps(rec))  # as the EVE writer puts it
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(as_json))
    assert not errors, errors[0].message
    return as_json


def test_ssh2_record() -> None:
    body = record([(C, b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n" + kexinit()),
                   (S, b"SSH-1.99-OpenSSH_9.2p1\r\n" + kexinit())])["ssh"]  # fmt: skip
    assert body["version"] == "2.0" and body["kex_alg"] == "curve25519-sha256"
    assert body["client"]["banner"] == "SSH-2.0-OpenSSH_9.2p1 Debian"
    assert body["client"]["software"] == "OpenSSH_9.2p1"
    assert body["server"]["hassh"] is not None
    assert "client_banner" not in body and "ts" not in body


def test_ssh1_record_has_the_version_and_no_key_exchange() -> None:
    rec = record([(S, b"SSH-1.99-OldSSHd\n" + v1_packet(2, 200)),
                  (C, b"SSH-1.5-OldSSH\n" + v1_packet(3, 120) + b"\xaa" * 40),
                  (S, b"\xbb" * 12)])  # fmt: skip
    body = rec["ssh"]
    assert body["version"] == "1.5"
    assert body["client"] == {"banner": "SSH-1.5-OldSSH", "software": "OldSSH", "hassh": None,
                              "hassh_string": None}  # fmt: skip
    assert body["server"]["banner"] == "SSH-1.99-OldSSHd" and body["server"]["hassh"] is None
    for key in ("kex_alg", "host_key_alg", "cipher_alg", "mac_alg", "compression_alg"):
        assert body[key] is None
    assert body["encrypted_bytes"] == [40, 12] and body["auth_success"] is None
    assert rec["app_proto"] == "ssh" and rec["dest_port"] == 22


@pytest.mark.parametrize("seen", [C, S])
def test_one_sided_record_leaves_the_missing_side_null(seen: Direction) -> None:
    banner = b"SSH-2.0-Seen_1\r\n"
    body = record([(seen, banner + kexinit())])["ssh"]
    have, missing = ("client", "server") if seen is C else ("server", "client")
    assert body[have]["banner"] == "SSH-2.0-Seen_1" and body[have]["hassh"] is not None
    assert set(body[missing].values()) == {None}
    assert body["version"] == "2.0" and body["kex_alg"] is None


def test_the_schema_requires_the_version() -> None:
    rec = record([(C, b"SSH-2.0-c\r\n"), (S, b"SSH-2.0-s\r\n")])
    del rec["ssh"]["version"]
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(rec))


def test_other_events_make_no_record() -> None:
    assert SshLog().event(flow(), Opaque("encrypted", 1.0)) is None
    assert ssh_record(flow(), session([(S, b"SSH-2.0-s\r\n")]))["event_type"] == "ssh"
