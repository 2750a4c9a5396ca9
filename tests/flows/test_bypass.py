"""sensor/flows/bypass.py: only plain IPv4/TCP frames of a registered flow are counted from
their header bytes, with the same counters and unique-payload rule as the full path."""

from __future__ import annotations

import struct

from sensor.decode.packet import TCP_ACK, TCP_FIN, TCP_PSH
from sensor.flows.bypass import ETH_IP4_TCP_MIN, ETH_IP4_TUPLE, Bypass, count
from sensor.flows.table import Flow

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([198, 51, 100, 7])


def flow(version: int = 4) -> Flow[None]:
    client, server = (CLIENT, SERVER) if version == 4 else (bytes(15) + b"\1", bytes(15) + b"\2")
    return Flow(
        key=(6, client, 50000, server, 443), flow_id=1, proto=6, ip_version=version,
        client=client, client_port=50000, server=server, server_port=443, start=0.0, last=0.0,
    )  # fmt: skip


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, payload: bytes,
          flags: int = TCP_ACK | TCP_PSH, frag: int = 0x4000) -> bytes:  # fmt: skip
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, frag, 64, 6, 0, src, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0)
    return bytes(12) + b"\x08\x00" + ip + tcp + payload


def test_registered_frames_count_both_ways_and_retransmissions_once() -> None:
    f = flow()
    bypass = Bypass()
    bypass.add(f)
    up = frame(CLIENT, SERVER, 50000, 443, 1000, b"x" * 100)
    down = frame(SERVER, CLIENT, 443, 50000, 7000, b"y" * 10)
    for data, ts in ((up, 1.0), (up, 1.1), (down, 1.2)):  # the upload retransmitted once
        hit = bypass.index.get(data[ETH_IP4_TUPLE])
        assert hit is not None and len(data) >= ETH_IP4_TCP_MIN
        assert count(hit, data, ts)
    assert (f.toserver.pkts, f.toserver.bytes, f.toserver.payload) == (2, 280, 100)
    assert (f.toclient.pkts, f.toclient.bytes, f.toclient.payload) == (1, 50, 10)
    assert f.last == 1.2


def test_frames_that_need_the_full_path_are_declined() -> None:
    f = flow()
    bypass = Bypass()
    bypass.add(f)
    hit = bypass.index[frame(CLIENT, SERVER, 50000, 443, 0, b"")[ETH_IP4_TUPLE]]
    fin = frame(CLIENT, SERVER, 50000, 443, 1000, b"", flags=TCP_FIN | TCP_ACK)
    fragment = frame(CLIENT, SERVER, 50000, 443, 1000, b"x", frag=0x2000)  # more fragments
    options = bytearray(frame(CLIENT, SERVER, 50000, 443, 1000, b"x"))
    options[14] = 0x46  # an IPv4 header with options
    for data in (fin, fragment, bytes(options)):
        assert not count(hit, data, 2.0)
    assert f.toserver.pkts == 0


def test_ipv6_flows_stay_on_the_full_path_and_removal_unregisters() -> None:
    bypass = Bypass()
    bypass.add(flow(6))
    assert bypass.index == {}
    f = flow()
    bypass.add(f)
    assert len(bypass.index) == 2  # both orientations of the tuple
    bypass.remove(f)
    assert bypass.index == {}
