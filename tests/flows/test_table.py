from __future__ import annotations

import socket

from sensor.config import FlowConfig
from sensor.decode.packet import PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_SYN, Packet
from sensor.flows.community import community_id
from sensor.flows.table import (
    REASON_EVICTED,
    REASON_REUSED,
    STATE_CLOSED,
    STATE_ESTABLISHED,
    TO_CLIENT,
    TO_SERVER,
    FlowTable,
)

A = socket.inet_aton("10.0.0.1")
B = socket.inet_aton("198.51.100.20")


def tcp(
    ts: float, src: bytes, sport: int, dst: bytes, dport: int, flags: int, ip_len: int = 40
) -> Packet:
    return Packet(
        ts=ts,
        ip_version=4,
        src=src,
        dst=dst,
        proto=PROTO_TCP,
        ip_len=ip_len,
        sport=sport,
        dport=dport,
        tcp_flags=flags,
    )


def test_syn_sender_is_client_and_directions_follow() -> None:
    table = FlowTable(FlowConfig())
    flow, d, ended = table.lookup(tcp(1.0, A, 40000, B, 80, TCP_SYN))
    assert (flow.client, flow.client_port, flow.server, flow.server_port) == (A, 40000, B, 80)
    assert d == TO_SERVER and not ended and not flow.midstream
    same, d2, _ = table.lookup(tcp(1.1, B, 80, A, 40000, TCP_SYN | TCP_ACK))
    assert same is flow and d2 == TO_CLIENT
    assert len(table) == 1


def test_synack_first_makes_its_receiver_the_client() -> None:
    table = FlowTable(FlowConfig())
    flow, d, _ = table.lookup(tcp(1.0, B, 8080, A, 8080, TCP_SYN | TCP_ACK))
    assert flow.client == A and flow.server == B and d == TO_CLIENT
    assert flow.midstream


def test_midstream_uses_the_well_known_port_as_server() -> None:
    table = FlowTable(FlowConfig())
    flow, d, _ = table.lookup(tcp(1.0, B, 443, A, 51000, TCP_ACK))
    assert flow.server == B and flow.server_port == 443 and d == TO_CLIENT
    assert flow.midstream
    flow.flip()
    assert flow.client == B and flow.server_port == 51000


def test_udp_orientation_and_idle_timeout() -> None:
    table = FlowTable(FlowConfig(udp_idle_timeout=60))
    pkt = Packet(
        ts=10.0, ip_version=4, src=A, dst=B, proto=PROTO_UDP, ip_len=60, sport=5353, dport=53
    )
    flow, d, _ = table.lookup(pkt)
    flow.last = 10.0
    assert d == TO_SERVER and flow.server_port == 53
    ended, interim = table.expire(69.0)
    assert not ended and not interim
    ended, _ = table.expire(71.0)
    assert ended == [flow] and len(table) == 0 and table.timed_out == 1


def test_tcp_close_states_and_closed_timeout() -> None:
    table = FlowTable(FlowConfig(tcp_closed_timeout=5, tcp_idle_timeout=600))
    flow, d, _ = table.lookup(tcp(1.0, A, 40000, B, 80, TCP_SYN))
    table.update_tcp_state(flow, d, TCP_SYN)
    table.update_tcp_state(flow, TO_SERVER, TCP_ACK)
    assert flow.state == STATE_ESTABLISHED
    table.update_tcp_state(flow, TO_SERVER, TCP_FIN | TCP_ACK)
    assert flow.state == STATE_ESTABLISHED
    table.update_tcp_state(flow, TO_CLIENT, TCP_FIN | TCP_ACK)
    assert flow.state == STATE_CLOSED
    flow.last = 2.0
    assert table.expire(6.0)[0] == []
    assert table.expire(7.5)[0] == [flow]


def test_new_syn_on_closed_tuple_starts_a_new_flow() -> None:
    table = FlowTable(FlowConfig())
    first, _, _ = table.lookup(tcp(1.0, A, 40000, B, 80, TCP_SYN))
    first.state = STATE_CLOSED
    second, d, ended = table.lookup(tcp(2.0, A, 40000, B, 80, TCP_SYN))
    assert second is not first and ended == ((first, REASON_REUSED),)
    assert second.flow_id != first.flow_id and d == TO_SERVER


def test_memory_cap_evicts_least_recently_seen() -> None:
    table = FlowTable(FlowConfig(max_flows=3))
    flows = []
    for i in range(3):
        flow, _, _ = table.lookup(tcp(float(i), A, 40000 + i, B, 80, TCP_SYN))
        flow.last = float(i)
        flows.append(flow)
    flows[0].last = 10.0  # the first flow is the most recent now
    _, _, ended = table.lookup(tcp(11.0, A, 50000, B, 80, TCP_SYN))
    assert ended == ((flows[1], REASON_EVICTED),)
    assert len(table) == 3 and table.evicted == 1


def test_active_timeout_reports_but_keeps_the_flow() -> None:
    table = FlowTable(FlowConfig(active_timeout=100, tcp_idle_timeout=600))
    flow, _, _ = table.lookup(tcp(0.0, A, 40000, B, 80, TCP_SYN))
    flow.state = STATE_ESTABLISHED
    flow.last = 150.0
    ended, interim = table.expire(150.0)
    assert ended == [] and interim == [flow] and len(table) == 1


def test_flow_ids_are_deterministic() -> None:
    ids = []
    for _ in range(2):
        table = FlowTable(FlowConfig())
        flow, _, _ = table.lookup(tcp(1.5, A, 40000, B, 80, TCP_SYN))
        ids.append(flow.flow_id)
    assert ids[0] == ids[1] and 0 < ids[0] < 2**53


def test_community_id_matches_the_specification_example() -> None:
    # The Community ID spec's reference value for TCP 128.232.110.120:34855 -> 66.35.250.204:80
    table = FlowTable(FlowConfig())
    flow, _, _ = table.lookup(
        tcp(
            1.0,
            socket.inet_aton("128.232.110.120"),
            34855,
            socket.inet_aton("66.35.250.204"),
            80,
            TCP_SYN,
        )
    )
    assert community_id(flow) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    flow.flip()  # orientation must not change the id
    flow._community_id = None
    assert community_id(flow) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_fast_community_id_agrees_with_the_reference_package() -> None:
    import random

    import communityid

    from sensor.flows.community import community_id_v1

    rng = random.Random(7)
    cid = communityid.CommunityID(seed=0)
    for _ in range(500):
        size = rng.choice((4, 16))
        a, b = rng.randbytes(size), rng.randbytes(size)
        if rng.random() < 0.1:
            b = a  # same address: the port decides the order
        proto = rng.choice((PROTO_TCP, PROTO_UDP, 132))
        ap, bp = rng.randrange(65536), rng.randrange(65536)
        want = str(cid.calc(communityid.FlowTuple(proto, a, b, ap, bp)))
        assert community_id_v1(proto, a, ap, b, bp) == want
        assert community_id_v1(proto, b, bp, a, ap) == want
