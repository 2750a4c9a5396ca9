"""truncated-capture: case http-post-raw's capture cut in the middle of a late packet record.

As when tcpdump is killed or a disk fills: the file ends inside the record that carries the
server's response body (header complete, data half there). Everything before the cut must be
reported - the whole upload and the response status - plus a "truncated" read error; the
response body object is partial, so it is not pinned down (objects_exhaustive is false).
Input: ../http-post-raw/input.pcap (run that generator first; generate_all.sh does).
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect
from pcaps._lib.netns import SERVER_V4

CASE = Path(__file__).resolve().parent
SOURCE_CASE = CASE.parent / "http-post-raw"


def source_generator():  # type: ignore[no-untyped-def]
    """Case 1's generator module: its CSV constant is the ground truth of the upload."""
    spec = importlib.util.spec_from_file_location("http_post_raw", SOURCE_CASE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset of the record header, frame bytes) for each record of a little-endian pcap."""
    assert struct.unpack_from("<I", raw)[0] == 0xA1B2C3D4, "expects tcpdump's LE pcap"
    out, pos = [], 24
    while pos < len(raw):
        _sec, _usec, incl, _orig = struct.unpack_from("<IIII", raw, pos)
        out.append((pos, raw[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def main() -> None:
    raw = (SOURCE_CASE / "input.pcap").read_bytes()
    from_server, from_client = [], []
    for offset, frame in records(raw):
        ip = dpkt.ethernet.Ethernet(frame).data
        if isinstance(ip.data, dpkt.tcp.TCP) and ip.data.data:
            side = from_server if dpkt.utils.inet_to_str(ip.src) == SERVER_V4 else from_client
            side.append((offset, frame, bytes(ip.data.data)))
    # Cut inside the last server record with payload (the response body), keeping its status
    # line/header when that record holds them too.
    offset, frame, payload = from_server[-1]
    assert max(o for o, _f, _p in from_client) < offset, "upload must lie before the cut"
    response = b"".join(p for _o, _f, p in from_server)
    status = int(response.split(b" ", 2)[1])
    request = b"".join(p for _o, _f, p in from_client)
    uri = request.split(b" ", 2)[1].decode()
    host = request.split(b"\r\nHost: ", 1)[1].split(b"\r\n", 1)[0].decode()
    header_in_record = payload.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in payload else 0
    payload_start = len(frame) - len(payload)
    keep = payload_start + header_in_record + max(1, (len(payload) - header_in_record) // 2)
    assert keep < len(frame)
    (CASE / "input.pcap").write_bytes(raw[: offset + 16 + keep])

    csv = source_generator().CSV
    expect.write_expected(
        CASE,
        objects=[expect.http_object("upload", csv, filename=expect.uri_filename(uri))],
        exhaustive=False,
        http=[expect.http_request("POST", host, uri, status)],
        flows=1,
        read_error="truncated",
    )


if __name__ == "__main__":
    main()
