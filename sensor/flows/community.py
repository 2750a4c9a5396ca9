"""Community ID v1 of a flow (the `communityid` package), so Sluice events join Zeek,
Suricata and Elastic records of the same connection in a SIEM."""

from __future__ import annotations

import communityid

from sensor.decode.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from sensor.flows.table import Flow

# TCP, UDP, SCTP carry ports in the hash; ICMP carries type and code in their place.
_PORTED_OR_ICMP = (PROTO_TCP, PROTO_UDP, 132, PROTO_ICMP, PROTO_ICMPV6)
_CID = communityid.CommunityID(seed=0)


def community_id(flow: Flow) -> str:
    """Computed once per flow (about 30 us in the package) and cached on the flow."""
    cached = flow._community_id
    if cached is not None:
        return cached
    try:
        if flow.proto in _PORTED_OR_ICMP:
            # For ICMP the decoder leaves type/code out of the ports: hashed as 0/0.
            tup = communityid.FlowTuple(
                flow.proto, flow.client, flow.server, flow.client_port, flow.server_port
            )
        else:
            tup = communityid.FlowTuple(flow.proto, flow.client, flow.server)
        value = str(_CID.calc(tup))
    except Exception:  # the package rejects odd tuples; the event still needs a value
        value = ""
    flow._community_id = value
    return value
