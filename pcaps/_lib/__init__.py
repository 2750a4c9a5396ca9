"""Tooling that generates the sample captures under pcaps/ (never imported by the sensor).

- `netns`: two fresh network namespaces joined by a veth pair, real clients and servers, tcpdump.
- `crafted`: hand-built TCP conversations (scapy packets, deterministic timestamps).
- `pcapfile`: a tiny pcap writer for link types scapy cannot set.
- `expect`: helpers that turn ground-truth bytes into `expected.json`.
"""
