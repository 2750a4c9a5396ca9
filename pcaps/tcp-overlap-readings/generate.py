"""tcp-overlap-readings (crafted): overlapping TCP copies that different receivers read
differently, each hiding a marker file from a sensor that keeps the wrong copy.

One connection per case: a POST of a marker file (or a GET answered with one) where an attacker
sends a junk copy of some of the stream's bytes so that a receiver of one OS reads the real
upload while a sensor resolving overlaps another way reads junk (Ptacek & Newsham 1998). The
shapes: junk before or after the real copy, out of order or in order, starting before, at or
inside the real copy, covering part or all of it, in the request head or the body, on the
upload or the download side, in the SYN (TCP Fast Open data a server without Fast Open drops),
and retransmissions with new content of delivered or of buffered bytes.

Ground truth: a byte model of the three overlap policies (below, independent of Sluice's
reassembler) computes what each receiver gets; a case is kept only if at least one receiver
gets the real stream, and cases.json names those receivers. The expectation is that the marker
file is among the objects Sluice extracts from that connection (in whichever reading).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.crafted import MOD, Segment, TcpConversation
from pcaps._lib.overlap import POLICIES, received

CASE = Path(__file__).resolve().parent
SEG = 500  # segment size of the real copies


def marker_file(name: str) -> bytes:
    rows = [f"SLUICE-OVERLAP:{name}", "patient_id,bsn,test,result"]
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    for i in range(60):
        n = (seed * (i + 3)) % 10**8
        rows.append(f"P{n:08d},{(n * 41) % 10**9:09d},cytologie,PAP{1 + n % 5}")
    return ("\n".join(rows) + "\n").encode()


def junk(length: int) -> bytes:
    return (b"#" * 7 + b"\n") * (length // 8) + b"#" * (length % 8)


# --- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    shape: str
    side: str  # "upload" (junk in the client's stream) or "download" (in the server's)
    marker: bytes
    conv: TcpConversation
    receivers: list[str]


Plan = Callable[[list[Segment], int], list[tuple[Segment, bool]]]  # (segments, where) -> order


def junk_copy(segs: list[Segment], at: int, length: int) -> Segment:
    """A junk copy of `length` stream bytes starting `at` bytes into the stream."""
    first = segs[0]
    return Segment(first.sender, (first.seq + at) % MOD, junk(length))


def shapes() -> dict[str, tuple[str, Plan]]:
    """name -> (what it is, plan). A plan orders the real segments and the junk copies; the
    bool says "this copy rides on the SYN"."""

    def seq_index(segs: list[Segment], at: int) -> int:
        return at // SEG

    def junk_first(length: int, shift: int = 0) -> Plan:
        # Junk for [at+shift, at+shift+length) out of order, then every real segment in order.
        return lambda segs, at: [
            (junk_copy(segs, at + shift, length), False),
            *((s, False) for s in segs),
        ]

    def ofo_both(real_first: bool, shift: int, length: int) -> Plan:
        # The real segment k and a junk copy both out of order, then the rest in order.
        def plan(segs: list[Segment], at: int) -> list[tuple[Segment, bool]]:
            k = seq_index(segs, at)
            bad = junk_copy(segs, k * SEG + shift, length)
            pair = [(segs[k], False), (bad, False)]
            pair = pair if real_first else pair[::-1]
            rest = [segs[k - 1], *segs[k + 1 :]]
            return [*((s, False) for s in segs[: k - 1]), *pair, *((s, False) for s in rest)]

        return plan

    def retransmit_delivered(segs: list[Segment], at: int) -> list[tuple[Segment, bool]]:
        k = seq_index(segs, at)
        bad = junk_copy(segs, k * SEG, SEG)
        return [
            *((s, False) for s in segs[: k + 1]),
            (bad, False),
            *((s, False) for s in segs[k + 1 :]),
        ]

    return {
        "junk-first-inside": (
            "junk out of order, the in-order copy starts before it",
            junk_first(200, 100),
        ),
        "junk-first-tail": (
            "junk out of order over a segment's last bytes, the in-order copy covers it",
            junk_first(200, SEG - 200),
        ),
        "junk-first-all-but-one": (
            "junk out of order over all of a segment but its first byte",
            junk_first(SEG - 1, 1),
        ),
        "ofo-junk-then-real-same-start": (
            "both out of order: junk, then the real copy",
            ofo_both(False, 0, SEG),
        ),
        "ofo-junk-then-real-before": (
            "both out of order: junk, then a real copy starting before",
            ofo_both(False, 100, 200),
        ),
        "ofo-real-then-junk": (
            "both out of order: the real copy first, junk after",
            ofo_both(True, 0, SEG),
        ),
        "retransmit-delivered": (
            "a delivered segment sent again with new content",
            retransmit_delivered,
        ),
    }


def build(
    name: str, side: str, shape: str, plan: Plan, at: int, port: int, t0: float
) -> Case | None:
    marker = marker_file(name)
    request, response, _ = crafted.upload_exchange(marker, f"/upload/{name}")
    if side == "download":
        request = crafted.http_request("GET", f"/export/{name}", crafted.HOST)
        response = crafted.http_response(200, "OK", marker, [("Content-Type", "text/csv")])
    conv = TcpConversation(client_port=port, t0=t0)
    conv.handshake()
    sender = "client" if side == "upload" else "server"
    data = request if side == "upload" else response
    if side == "download":
        conv.emit_all(conv.segments("client", request))
        conv.ack("server")
    segs = conv.segments(sender, data, SEG)
    order = plan(segs, at)
    base = segs[0].seq
    copies = [((s.seq - base) % MOD, s.payload, syn) for s, syn in order]
    for seg, _ in order:
        conv.emit(seg)
    conv.ack(crafted.PEER[sender])
    if side == "upload":
        conv.emit_all(conv.segments("server", response))
        conv.ack("client")
    conv.close(first="server")
    receivers = [p for p in POLICIES if received(p, copies) == data]
    return Case(name, shape, side, marker, conv, receivers) if receivers else None


def syn_case(port: int, t0: float) -> Case:
    """Junk in the SYN (Fast Open data), the real request after the handshake."""
    name = "syn-data-junk"
    marker = marker_file(name)
    request, response, _ = crafted.upload_exchange(marker, f"/upload/{name}")
    conv = TcpConversation(client_port=port, t0=t0)
    isn = conv.next_seq["client"]
    conv.packet("client", isn, None, "S", junk(300))  # not acknowledged: no Fast Open
    conv.next_seq["client"] = (isn + 1) % MOD
    s_isn = conv.next_seq["server"]
    conv.packet("server", s_isn, conv.next_seq["client"], "SA", b"")
    conv.next_seq["server"] = (s_isn + 1) % MOD
    conv.ack("client")
    conv.emit_all(conv.segments("client", request, SEG))
    conv.ack("server")
    conv.emit_all(conv.segments("server", response))
    conv.ack("client")
    conv.close(first="server")
    copies = [(0, junk(300), True), (0, request, False)]
    receivers = [p for p in POLICIES if received(p, copies) == request]
    assert receivers
    return Case(
        name, "SYN payload a server without Fast Open drops", "upload", marker, conv, receivers
    )


def cases() -> list[Case]:
    out: list[Case] = []
    port, t0 = 21000, crafted.T0
    for shape_name, (what, plan) in shapes().items():
        for side in ("upload", "download"):
            # In the head (the request or status line), and deep in the body.
            # Early (in the head where the shape allows) and deep in the body.
            early = SEG if shape_name.startswith(("ofo-", "retransmit")) else 0
            for where, at in (("early", early), ("body", 3 * SEG)):
                name = f"{shape_name}-{side}-{where}"
                case = build(name, side, what, plan, at, port, t0)
                if case is None:
                    print(f"{name}: every receiver reads junk: not an evasion, left out")
                    continue
                out.append(case)
                port += 1
                t0 += 1
    out.append(syn_case(port, t0))
    return out


def main() -> None:
    all_cases = cases()
    crafted.write_conversations(CASE / "input.pcap", *(c.conv for c in all_cases))
    index = [
        {
            "case": c.name,
            "shape": c.shape,
            "side": c.side,
            "client_port": c.conv.addr["client"][1],
            "marker": f"SLUICE-OVERLAP:{c.name}",
            "sha256": hashlib.sha256(c.marker).hexdigest(),
            "receivers": c.receivers,
        }
        for c in all_cases
    ]
    (CASE / "cases.json").write_text(json.dumps(index, indent=1) + "\n")
    expect.write_expected(
        CASE,
        objects=[{"sha256": row["sha256"]} for row in index],
        http=None,
        flows=len(all_cases),
        anomalies=["tcp_overlap_conflict", "tcp_overlap_readings"],
        exhaustive=False,  # junk readings are objects too
    )


if __name__ == "__main__":
    main()
