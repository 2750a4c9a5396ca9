"""link-variants (crafted): one small HTTP POST upload, written with different link layers and
IP encodings. Every input-*.pcap/.pcapng here shares the single expected.json.

Variants: Ethernet pcap; the same as pcapng (editcap); Linux cooked SLL (113) and SLL2 (276);
raw IP (101); BSD loopback/NULL (0, AF_INET=2 in little-endian host order); Ethernet with QinQ
tags (802.1ad S-tag 100 outside an 802.1Q C-tag 200); IPv6 where every packet carries a
Destination Options extension header (PadN) before TCP; IPv4 where the request segment is split
into IP fragments (480-byte fragment payloads, sent in order).
The Host header is a name, so the IPv4 and IPv6 variants carry identical HTTP bytes.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP, fragment
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.fakedata import patients_csv
from pcaps._lib.netns import CLIENT_MAC, SERVER_MAC
from pcaps._lib.pcapfile import write_pcap

URI = "/upload"
NAME = expect.uri_filename(URI)
CASE = Path(__file__).resolve().parent
HOST = "files.example.org:8080"
BODY = patients_csv(900, seed=18)  # request fits one segment, so it can be IP-fragmented
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def conversation(ipv6: bool = False) -> tuple[crafted.TcpConversation, bytes]:
    request, response, answer = crafted.upload_exchange(BODY, URI, HOST)
    assert len(request) <= 1460
    conv = crafted.TcpConversation(client_port=50118, ipv6=ipv6, v6_destopts=ipv6)
    conv.handshake()
    conv.emit_all(conv.segments("client", request))
    conv.ack("server")
    conv.emit_all(conv.segments("server", response))
    conv.ack("client")
    conv.close()
    return conv, answer


def from_client(ip: Packet) -> bool:
    return ip.src.startswith(("10.10.", "fd00:"))


def sll(ip: Packet) -> bytes:
    """Linux cooked v1: packet type, ARPHRD_ETHER, address length, address (8), protocol."""
    ptype, mac = (4, CLIENT_MAC) if from_client(ip) else (0, SERVER_MAC)  # 4 = outgoing
    addr = bytes.fromhex(mac.replace(":", "")) + b"\x00\x00"
    proto = ETH_IPV6 if ip.version == 6 else ETH_IPV4
    return struct.pack(">HHH8sH", ptype, 1, 6, addr, proto) + bytes(ip)


def sll2(ip: Packet) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, addr length, addr."""
    ptype, mac = (4, CLIENT_MAC) if from_client(ip) else (0, SERVER_MAC)
    addr = bytes.fromhex(mac.replace(":", "")) + b"\x00\x00"
    proto = ETH_IPV6 if ip.version == 6 else ETH_IPV4
    return struct.pack(">HHIHBB8s", proto, 0, 2, 1, ptype, 6, addr) + bytes(ip)


def qinq(frame: Packet) -> Packet:
    ip = frame.payload
    return Ether(src=frame.src, dst=frame.dst) / Dot1AD(vlan=100) / Dot1Q(vlan=200) / ip


def fragmented(conv: crafted.TcpConversation) -> list[tuple[float, Packet]]:
    out = []
    for ts, frame in conv.ether_frames():
        ip = frame.payload
        if from_client(ip) and len(ip[IP].payload) > 500:
            ip = ip.copy()
            ip.flags = 0  # clear DF
            for k, frag in enumerate(fragment(ip, fragsize=480)):
                out.append((ts + k * 1e-6, Ether(src=frame.src, dst=frame.dst) / frag))
        else:
            out.append((ts, frame))
    assert len(out) > len(conv.packets) + 1, "request was not fragmented"
    return out


def main() -> None:
    conv, answer = conversation()
    ips = [(ts, ip) for ts, ip in conv.packets]
    eth = CASE / "input-ethernet.pcap"
    crafted.write_ether_pcap(eth, conv.ether_frames())
    pcapng = CASE / "input-pcapng.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(eth), str(pcapng)], check=True)
    write_pcap(CASE / "input-sll.pcap", 113, [(ts, sll(ip)) for ts, ip in ips])
    write_pcap(CASE / "input-sll2.pcap", 276, [(ts, sll2(ip)) for ts, ip in ips])
    write_pcap(CASE / "input-rawip.pcap", 101, [(ts, bytes(ip)) for ts, ip in ips])
    null = [(ts, struct.pack("<I", 2) + bytes(ip)) for ts, ip in ips]
    write_pcap(CASE / "input-null.pcap", 0, null)
    crafted.write_ether_pcap(
        CASE / "input-qinq.pcap", [(ts, qinq(f)) for ts, f in conv.ether_frames()]
    )
    crafted.write_ether_pcap(CASE / "input-ipv4-fragments.pcap", fragmented(conversation()[0]))
    conv6, answer6 = conversation(ipv6=True)
    assert answer6 == answer
    crafted.write_ether_pcap(CASE / "input-ipv6-destopts.pcap", conv6.ether_frames())

    expect.write_expected(
        CASE,
        objects=[
            expect.http_object("upload", BODY, filename=NAME),
            expect.http_object("download", answer, filename=NAME),
        ],
        http=[expect.http_request("POST", HOST, URI, 200)],
        flows=1,
    )


if __name__ == "__main__":
    main()
