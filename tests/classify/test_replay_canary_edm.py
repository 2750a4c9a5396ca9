"""Canary tokens and exact data match in a replay, end to end through the CLI: tokens minted
with `sluice canary new` are found in an upload's content, a request URL, a TLS SNI, an SMTP
envelope and a DNS question (critical `canary` findings, never the token in any output); an
export loaded with `sluice edm load` makes `edm_match` findings that count the known records
per object and per host; a broken store is a usage error naming the file."""

from __future__ import annotations

import json
import random
import ssl
from pathlib import Path

import jsonschema
import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pcaps._lib.crafted import (
    T0,
    TcpConversation,
    http_request,
    http_response,
    play,
    upload_exchange,
    write_ether_pcap,
)
from pcaps._lib.netns import CLIENT_V4, SERVER_V4
from sensor.cli.main import main
from tests.data.classify.fake import valid_bsn

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "sensor" / "outputs" / "events.schema.json").read_text()
)
SURNAMES = ["Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"]


def mint(tmp_path: Path, kind: str, label: str, capsys: pytest.CaptureFixture[str]) -> str:
    store, secret = tmp_path / "canaries.json", tmp_path / "secret.key"
    argv = ["canary", "new", "--kind", kind, "--label", label]
    assert main([*argv, "--store", str(store), "--secret", str(secret)]) == 0
    return capsys.readouterr().out.strip()


def write_config(tmp_path: Path, *, enabled: bool = True) -> Path:
    config = tmp_path / "sluice.toml"
    config.write_text(
        f"[classify]\nenabled = {'true' if enabled else 'false'}\n"
        f'secret = "{tmp_path / "secret.key"}"\ncanaries = "{tmp_path / "canaries.json"}"\n'
        f'edm_index = "{tmp_path / "index"}"\n'
    )
    return config


def replay(tmp_path: Path, pcap: Path, config: Path) -> tuple[list[dict[str, object]], Path]:
    out = tmp_path / "out"
    assert main(["replay", str(pcap), "--out", str(out), "--config", str(config), "--quiet"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    return events, out


def findings(events: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    return [
        e["finding"]  # type: ignore[misc]
        for e in events
        if e["event_type"] == "finding" and e["finding"]["kind"] == kind  # type: ignore[index]
    ]


def http_upload(body: bytes, uri: str, port: int, t0: float) -> TcpConversation:
    conv = TcpConversation(client_port=port, t0=t0)
    conv.handshake()
    request, response, _ = upload_exchange(body, uri=uri)
    play(conv, [("client", request), ("server", response)])
    conv.close()
    return conv


def client_hello(server_name: str) -> bytes:
    """A real ClientHello (Python's ssl over memory BIOs) naming `server_name` in its SNI."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_canaries_are_found_everywhere_and_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = {
        kind: mint(tmp_path, kind, f"honey record {kind}", capsys)
        for kind in ("string", "bsn", "iban", "email", "url", "dns-name")
    }
    body = (
        "patient;bsn;iban;notes\n"
        f"Honey;{tokens['bsn']};{tokens['iban']};see {tokens['string']}\n"
        f"Pot;111222333;NL91ABNA0417164300;mail {tokens['email']}\n"
    ).encode()
    convs = [http_upload(body, "/share/export.csv", 49200, T0)]
    url = tokens["url"].removeprefix("https://")
    host, _, path = url.partition("/")
    get = TcpConversation(client_port=49201, server_port=80, t0=T0 + 1)
    get.handshake()
    play(get, [("client", http_request("GET", f"/{path}?x=1", host)),
               ("server", http_response(204, "No Content", b""))])  # fmt: skip
    get.close()
    convs.append(get)
    tls = TcpConversation(client_port=49202, server_port=443, t0=T0 + 2)
    tls.handshake()
    play(tls, [("client", client_hello(tokens["dns-name"]))])
    tls.close()
    convs.append(tls)
    mail = TcpConversation(client_port=49203, server_port=25, t0=T0 + 3)
    mail.handshake()
    play(mail, [
        ("server", b"220 mx.example ESMTP\r\n"), ("client", b"EHLO ws\r\n"),
        ("server", b"250 mx.example\r\n"), ("client", b"MAIL FROM:<dokter@zkh.example>\r\n"),
        ("server", b"250 OK\r\n"), ("client", f"RCPT TO:<{tokens['email']}>\r\n".encode()),
        ("server", b"250 OK\r\n"), ("client", b"DATA\r\n"), ("server", b"354 go\r\n"),
        ("client", b"Subject: hi\r\n\r\nhello\r\n.\r\n"), ("server", b"250 queued\r\n"),
        ("client", b"QUIT\r\n"), ("server", b"221 bye\r\n"),
    ])  # fmt: skip
    mail.close()
    convs.append(mail)
    frames = sorted((f for c in convs for f in c.ether_frames()), key=lambda f: f[0])
    beacon = f"c2VjcmV0.{tokens['dns-name'].upper()}"  # data in front, case randomised
    for n in range(3):  # a beacon repeats: one finding, the rest counted
        query = (
            Ether() / IP(src=CLIENT_V4, dst="10.10.0.53") / UDP(sport=40000 + n, dport=53)
            / DNS(rd=1, qd=DNSQR(qname=beacon))
        )  # fmt: skip
        frames.append((T0 + 10 + n, query))
    pcap = tmp_path / "canaries.pcap"
    write_ether_pcap(pcap, frames)

    events, out = replay(tmp_path, pcap, write_config(tmp_path))
    hits = findings(events, "canary")
    seen = sorted((f["seen_in"], f["canary"]["kind"]) for f in hits)  # type: ignore[index]
    assert seen == [
        ("content", "bsn"), ("content", "email"), ("content", "iban"), ("content", "string"),
        ("dns", "dns-name"), ("smtp-envelope", "email"), ("sni", "dns-name"), ("url", "url"),
    ]  # fmt: skip
    assert {f["severity"] for f in hits} == {"critical"}
    assert all(f["host"] == CLIENT_V4 for f in hits)
    content = [f for f in hits if f["seen_in"] == "content"]
    assert {f["filename"] for f in content} == {"export.csv"}
    # The database has them (`sluice findings`), and no output holds a token.
    assert main(["findings", "--db", str(out), "--kind", "canary"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("canary") >= len(hits) and "honey record url" in listed
    blobs = [p.read_bytes() for p in out.iterdir() if p.is_file()] + [listed.encode()]
    for token in tokens.values():
        for form in {token, token.upper(), token.removeprefix("https://")}:
            assert not any(form.encode() in blob for blob in blobs), form


def edm_export(path: Path, rng: random.Random, count: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for _ in range(count):
        birth = f"19{rng.randrange(40, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        postcode = f"{rng.randrange(1000, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}A"
        rows.append((valid_bsn(rng), birth, postcode, rng.choice(SURNAMES)))
    lines = ["bsn;geboortedatum;postcode;achternaam"] + [";".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return rows


def test_known_records_are_counted_per_object_and_per_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(7)
    export = tmp_path / "patients.csv"
    known = edm_export(export, rng, 300)
    index = tmp_path / "index"
    argv = ["edm", "load", str(export), "--primary", "bsn",
            "--fields", "geboortedatum,postcode,achternaam"]  # fmt: skip
    assert main([*argv, "--index", str(index), "--secret", str(tmp_path / "secret.key")]) == 0
    capsys.readouterr()
    strangers = [(valid_bsn(rng), "1960-01-01", "9999 ZZ", "Onbekend") for _ in range(40)]
    # Upload 1: 120 known patients (other column names and order, dates written the Dutch
    # way) and 40 people the index does not know. Upload 2 (free text, no table): 30 known
    # ones again and 20 new ones: the host total is 140.
    first = ["naam;geb. datum;pc;nummer"] + [
        f"{name};{b[8:10]}-{b[5:7]}-{b[:4]};{pc};{bsn}" for bsn, b, pc, name in known[:120]
    ] + [f"{name};{b};{pc};{bsn}" for bsn, b, pc, name in strangers]  # fmt: skip
    second = "\n\n".join(
        f"Patiënt {name}, BSN {bsn}, geboren {b}, woont in {pc}."
        for bsn, b, pc, name in known[90:140]
    )
    # A BSN of a known patient alone, with no corroborating field, is no match.
    third = f"Alleen het nummer: {known[200][0]}, verder niets."
    pcap = tmp_path / "edm.pcap"
    bodies = ("\n".join(first), second, third)
    convs = [
        http_upload(body.encode(), f"/up/{i}.txt", 49300 + i, T0 + i)
        for i, body in enumerate(bodies)
    ]
    write_ether_pcap(pcap, sorted((f for c in convs for f in c.ether_frames()), key=lambda f: f[0]))
    events, out = replay(tmp_path, pcap, write_config(tmp_path))
    matches = sorted(findings(events, "edm_match"), key=lambda f: str(f["filename"]))
    assert [(f["filename"], f["records"], f["host_records"]) for f in matches] == [
        ("0.txt", 120, 120),
        ("1.txt", 50, 140),
    ]
    assert [f["severity"] for f in matches] == ["critical", "high"]
    assert matches[0]["primary_only"] == 0
    assert main(["findings", "--db", str(out), "--kind", "edm_match"]) == 0
    assert "120 known patient records" in capsys.readouterr().out
    blob = (out / "events.jsonl").read_bytes() + (out / "sluice.db").read_bytes()
    for bsn, _b, _pc, _name in known[:140]:
        assert bsn.encode() not in blob


def test_canaries_in_metadata_need_no_content_classification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = mint(tmp_path, "dns-name", "beacon", capsys)
    query = (
        Ether() / IP(src=CLIENT_V4, dst=SERVER_V4) / UDP(sport=41000, dport=53)
        / DNS(rd=1, qd=DNSQR(qname=token))
    )  # fmt: skip
    pcap = tmp_path / "dns.pcap"
    write_ether_pcap(pcap, [(T0, query)])
    events, _ = replay(tmp_path, pcap, write_config(tmp_path, enabled=False))
    (hit,) = findings(events, "canary")
    assert hit["seen_in"] == "dns" and hit["canary"]["label"] == "beacon"  # type: ignore[index]


def test_a_store_made_with_another_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mint(tmp_path, "string", "x", capsys)
    (tmp_path / "secret.key").unlink()
    other = tmp_path / "other"
    other.mkdir()
    mint(other, "string", "y", capsys)  # a new key in other/secret.key
    (tmp_path / "secret.key").write_bytes((other / "secret.key").read_bytes())
    (tmp_path / "secret.key").chmod(0o600)
    pcap = tmp_path / "empty.pcap"
    write_ether_pcap(pcap, [])
    config = write_config(tmp_path)
    argv = ["replay", str(pcap), "--out", str(tmp_path / "out"), "--config", str(config)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "canaries.json" in err and "another secret key" in err


def test_an_index_with_classification_off_is_said_not_silently_unused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "patients.csv"
    edm_export(export, random.Random(3), 20)
    argv = ["edm", "load", str(export), "--primary", "bsn", "--fields", "postcode"]
    assert (
        main([*argv, "--index", str(tmp_path / "index"), "--secret", str(tmp_path / "secret.key")])
        == 0
    )
    pcap = tmp_path / "empty.pcap"
    write_ether_pcap(pcap, [])
    capsys.readouterr()
    config = write_config(tmp_path, enabled=False)
    argv = ["replay", str(pcap), "--out", str(tmp_path / "out"), "--config", str(config), "--quiet"]
    assert main(argv) == 0
    assert "EDM index is not matched while [classify] enabled = false" in capsys.readouterr().err
