"""Community ID v1 of a flow, so Sluice events join Zeek, Suricata and Elastic records of the
same connection in a SIEM (https://github.com/corelight/community-id-spec).

TCP, UDP and SCTP flows (nearly all of them) are hashed here directly: the `communityid`
package costs about 30 us a flow, which a DNS-heavy capture with tens of thousands of flows
feels. Everything else (ICMP with its type/code mapping, other protocols) goes through the
package, and a test checks both paths agree with it on random tuples.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import communityid

from sensor.decode.packet import PROTO_TCP, PROTO_UDP
from sensor.flows.table import Flow

PROTO_SCTP = 132
_PORTED = (PROTO_TCP, PROTO_UDP, PROTO_SCTP)
_SEED = 0
_HEAD = struct.Struct("!H")
_TAIL = struct.Struct("!BxHH")  # protocol, one byte of padding, the two ports


def community_id_v1(
    proto: int, a: bytes, a_port: int, b: bytes, b_port: int, seed: int = _SEED
) -> str:
    """Community ID v1 for port-carrying protocols; endpoints ordered as the spec says
    (smaller address first, the port breaking a tie), so both directions hash alike."""
    if (a, a_port) > (b, b_port):
        a, a_port, b, b_port = b, b_port, a, a_port
    digest = hashlib.sha1(_HEAD.pack(seed) + a + b + _TAIL.pack(proto, a_port, b_port)).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")


def _via_package(flow: Flow) -> str:
    cid = communityid.CommunityID(seed=_SEED)
    try:
        if flow.client_port or flow.server_port:
            tup = communityid.FlowTuple(
                flow.proto, flow.client, flow.server, flow.client_port, flow.server_port
            )
        else:
            tup = communityid.FlowTuple(flow.proto, flow.client, flow.server)
        return str(cid.calc(tup))
    except Exception:  # the package rejects odd tuples (e.g. ICMP without type/code)
        return ""


def community_id(flow: Flow) -> str:
    """Computed once per flow and cached on it."""
    cached = flow._community_id
    if cached is None:
        if flow.proto in _PORTED:
            cached = community_id_v1(
                flow.proto, flow.client, flow.client_port, flow.server, flow.server_port
            )
        else:
            cached = _via_package(flow)
        flow._community_id = cached
    return cached
