"""smtp-one-sided (derived): smtp-attachments' capture with only the client-to-server packets,
as a SPAN port or TAP that misses one direction delivers it.

No SYN-ACK, no 220 greeting, no replies at all - but every command and the whole message are
there, so every attachment must still come out. Reply-dependent facts (status, rejected
recipients) are not pinned. Input: ../smtp-attachments/input.pcap (run that generator first;
generate_all.sh does).
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, mailmsg, smtpcase
from pcaps._lib.netns import CLIENT_V4

CASE = Path(__file__).resolve().parent
SOURCE_CASE = CASE.parent / "smtp-attachments"


def source_generator():  # type: ignore[no-untyped-def]
    """smtp-attachments' generator module: its MESSAGE constant is the ground truth."""
    spec = importlib.util.spec_from_file_location("smtp_attachments", SOURCE_CASE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_side_only(raw: bytes) -> tuple[bytes, int, int]:
    """The pcap with only records whose IP source is the client; (pcap, kept, dropped)."""
    assert struct.unpack_from("<I", raw)[0] == 0xA1B2C3D4, "expects tcpdump's LE pcap"
    out, pos, kept, dropped = [raw[:24]], 24, 0, 0
    while pos < len(raw):
        incl = struct.unpack_from("<IIII", raw, pos)[2]
        record = raw[pos : pos + 16 + incl]
        ip = dpkt.ethernet.Ethernet(record[16:]).data
        if dpkt.utils.inet_to_str(ip.src) == CLIENT_V4:
            out.append(record)
            kept += 1
        else:
            dropped += 1
        pos += 16 + incl
    return b"".join(out), kept, dropped


def main() -> None:
    message = source_generator().MESSAGE
    data, kept, dropped = client_side_only((SOURCE_CASE / "input.pcap").read_bytes())
    assert kept and dropped, (kept, dropped)
    pcap = CASE / "input.pcap"
    pcap.write_bytes(data)
    [stream] = smtpcase.client_streams(pcap)
    assert mailmsg.dot_stuff(message) in stream, "the message is not complete in the capture"
    flows = expect.count_flows(pcap)
    assert flows == 1, flows
    expect.write_expected_mail(
        CASE,
        objects=expect.smtp_objects(message),
        smtp=[
            expect.smtp_transaction(
                helo=smtpcase.CLIENT_HELO,
                mail_from=mailmsg.SENDER,
                rcpt_to=[mailmsg.EXTERNAL],
                message=message,
                omit=("status", "rcpt_rejected"),  # replies are not in the capture
            )
        ],
        flows=flows,
    )


if __name__ == "__main__":
    main()
