"""Differential test of the volume meter against Wireshark on real multi-host traffic.

pcaps/office-egress (four internal hosts, three external servers, HTTP, TLS, SFTP, IPv4 and
IPv6) goes through `sluice replay`; what `sluice top --json --window all` then reports for each
internal host must equal, to the byte and the packet, an independent count of the same capture
by tshark: wire bytes are IP lengths (IPv4 total length, IPv6 payload length + the 40-byte
fixed header), out = packets the host sent, in = packets it received. The per-destination
break-down (`--by pair`) must match tshark's per (host, server) sums as well. Unique payload
per pair is compared with the union of tshark's TCP sequence ranges (the capture has reordered
segments in the IPv6 download: a reordered segment is payload, not a retransmission).

Which addresses are internal is the sensor's documented default `home_net` (RFC 1918, ULA,
loopback); the test also pins the set of hosts the generator put in the capture.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sensor.cli.main import main
from sensor.config import Config
from tests.conftest import require_tool
from tests.replays import PCAPS

CAPTURE = PCAPS / "office-egress" / "input.pcap"
HOSTS = {"10.10.0.10", "10.10.0.11", "10.10.0.12", "fd00:10::11"}  # see its generate.py
IPV6_HEADER = 40  # fixed header, not counted in the payload length (RFC 8200 section 3)
FIELDS = ("ip.src", "ip.dst", "ip.len", "ipv6.src", "ipv6.dst", "ipv6.plen", "tcp.srcport",
          "tcp.dstport", "tcp.seq_raw", "tcp.len")  # fmt: skip


@dataclass
class Tally:
    """What tshark's dissection adds up to, per internal host and per (host, server)."""

    bytes_out: Counter[str] = field(default_factory=Counter)
    packets_out: Counter[str] = field(default_factory=Counter)
    bytes_in: Counter[str] = field(default_factory=Counter)
    packets_in: Counter[str] = field(default_factory=Counter)
    pair_out: Counter[tuple[str, str]] = field(default_factory=Counter)
    pair_in: Counter[tuple[str, str]] = field(default_factory=Counter)
    # unique TCP payload (each sequence number once, whatever order it arrived in)
    pair_payload_out: Counter[tuple[str, str]] = field(default_factory=Counter)
    pair_payload_in: Counter[tuple[str, str]] = field(default_factory=Counter)


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in net for net in Config().home_net if net.version == ip.version)


def unique_payload(segments: list[tuple[int, int]]) -> int:
    """Sequence-number bytes covered by (seq, length) segments of one TCP direction, counted
    once: the union of their ranges, relative to the first segment (RFC 9293 sequence space,
    modulo 2**32)."""
    base = segments[0][0]
    spans = sorted(((seq - base) % 2**32, (seq - base) % 2**32 + n) for seq, n in segments if n)
    total = reach = 0
    for start, end in spans:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def tshark_tally(pcap: Path) -> Tally:
    argv = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=\t",
            "-E", "occurrence=f"]  # fmt: skip
    for name in FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    tally = Tally()
    segments: dict[tuple[str, str, str, str], list[tuple[int, int]]] = {}
    lines = out.splitlines()
    assert lines, "tshark dissected nothing"
    for line in lines:
        src4, dst4, len4, src6, dst6, plen6, sport, dport, seq, tcp_len = line.split("\t")
        if src4:
            src, dst, wire = src4, dst4, int(len4)
        else:
            assert src6, f"a packet without IP in the capture: {line!r}"
            src, dst, wire = src6, dst6, int(plen6) + IPV6_HEADER
        src, dst = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
        assert seq, f"the case is TCP only: {line!r}"
        segments.setdefault((src, sport, dst, dport), []).append((int(seq), int(tcp_len)))
        if _internal(src) and not _internal(dst):
            tally.bytes_out[src] += wire
            tally.packets_out[src] += 1
            tally.pair_out[src, dst] += wire
        elif _internal(dst) and not _internal(src):
            tally.bytes_in[dst] += wire
            tally.packets_in[dst] += 1
            tally.pair_in[dst, src] += wire
        else:
            pytest.fail(f"not egress traffic, the case should have none: {src} -> {dst}")
    for (src, _sport, dst, _dport), segs in segments.items():
        if _internal(src):
            tally.pair_payload_out[src, dst] += unique_payload(segs)
        else:
            tally.pair_payload_in[dst, src] += unique_payload(segs)
    return tally


def sluice_top(capsys: pytest.CaptureFixture[str], db: Path, by: str) -> list[dict[str, Any]]:
    status = main(["top", "--db", str(db), "--json", "--window", "all", "--by", by,
                   "--limit", "100"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


@pytest.fixture(scope="module")
def tally() -> Tally:
    require_tool("tshark")
    return tshark_tally(CAPTURE)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sluice replay` of the case into a fresh directory (its sluice.db is what top reads)."""
    out = tmp_path_factory.mktemp("office-egress")
    assert main(["replay", str(CAPTURE), "--out", str(out), "--quiet"]) == 0
    return out


def test_tshark_sees_the_hosts_the_generator_made(tally: Tally) -> None:
    assert set(tally.bytes_out) == set(tally.bytes_in) == HOSTS
    # The capture ranks its hosts clearly: ~6.3 MB, ~2.1 MB, ~0.3 MB out, and one host that
    # mostly downloads (its outbound bytes are acknowledgements).
    ranked = [host for host, _ in tally.bytes_out.most_common()]
    assert ranked == ["10.10.0.10", "10.10.0.11", "10.10.0.12", "fd00:10::11"]
    assert tally.bytes_in["fd00:10::11"] > 10 * tally.bytes_out["fd00:10::11"]


def test_per_host_volumes_equal_tshark(
    tally: Tally, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = sluice_top(capsys, db, "host")
    ours = {r["host"]: (r["bytes_out"], r["packets_out"], r["bytes_in"], r["packets_in"])
            for r in rows}  # fmt: skip
    theirs = {
        host: (tally.bytes_out[host], tally.packets_out[host], tally.bytes_in[host],
               tally.packets_in[host])
        for host in tally.bytes_out
    }  # fmt: skip
    assert ours == theirs
    assert [r["host"] for r in rows] == [host for host, _ in tally.bytes_out.most_common()]


def test_per_destination_volumes_equal_tshark(
    tally: Tally, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = sluice_top(capsys, db, "pair")
    ours_out = {(r["host"], r["dest"]): r["bytes_out"] for r in rows}
    ours_in = {(r["host"], r["dest"]): r["bytes_in"] for r in rows}
    assert ours_out == dict(tally.pair_out)
    assert ours_in == dict(tally.pair_in)
    # 10.10.0.10 talks to two servers: the break-down is not just the host total again.
    assert sum(1 for host, _dest in ours_out if host == "10.10.0.10") == 2


def test_per_destination_unique_payload_equals_tshark(
    tally: Tally, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = sluice_top(capsys, db, "pair")
    assert {(r["host"], r["dest"]): r["payload_bytes_out"] for r in rows} == dict(
        tally.pair_payload_out
    )
    assert {(r["host"], r["dest"]): r["payload_bytes_in"] for r in rows} == dict(
        tally.pair_payload_in
    )
