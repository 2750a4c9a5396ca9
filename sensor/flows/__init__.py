"""Flows stage: decoded packets in, flows out.

`table.py` keeps the bidirectional flow table on the packet clock (orientation, TCP state,
timeouts, memory cap, per-direction `Side` counters with the unique-payload rule);
`bypass.py` is the index beside it through which flows that are only counted skip decoding;
`community.py` computes Community ID v1.
"""
