"""http-evasions (crafted): odd-but-valid response framing that browsers accept.

After the public "HTTP evader" test ideas: one flow per trick, each a GET answered with a body
whose bytes on the wire differ from what a browser shows. The expected objects are the decoded
bytes the browser would show; a sensor that parses more strictly than the browser misses them.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import crafted, expect
from pcaps._lib.fakedata import patients_csv

CASE = Path(__file__).resolve().parent
CRLF = b"\r\n"


def head(*lines: str, eol: bytes = CRLF) -> bytes:
    return eol.join(line.encode() for line in ("HTTP/1.1 200 OK", *lines)) + eol + eol


def chunk(data: bytes, size_text: str) -> bytes:
    assert int(size_text.split(";")[0], 16) == len(data)
    return size_text.encode() + CRLF + data + CRLF


def raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # no zlib header/trailer
    return comp.compress(data) + comp.flush()


def tricks() -> list[tuple[str, bytes, bytes, list[str]]]:
    """(uri, response bytes on the wire, decoded body, anomalies) per trick."""
    docs = [patients_csv(2_500 + 300 * i, seed=160 + i) for i in range(8)]
    out = []

    d = docs[0]  # chunk sizes with leading zeros and upper-case hex
    body = (
        chunk(d[:0x1A], "0000001A")
        + chunk(d[0x1A:0x1FF], "01E5")
        + chunk(d[0x1FF:], f"{len(d) - 0x1FF:08X}")
    )
    out.append(
        (
            "/evader/chunk-leading-zeros",
            head("Content-Type: text/csv", "Transfer-Encoding: chunked")
            + body
            + b"0000"
            + CRLF
            + CRLF,
            d,
            [],
        )
    )

    d = docs[1]  # chunk extensions (token, quoted string with ';', bare name) and a trailer
    body = (
        chunk(d[:100], "64;name=value")
        + chunk(d[100:1000], '384;q="a;b=c"')
        + chunk(d[1000:], f"{len(d) - 1000:x};bare")
    )
    out.append(
        (
            "/evader/chunk-extensions",
            head("Content-Type: text/csv", "Transfer-Encoding: chunked", "Trailer: X-Check")
            + body
            + b"0;last"
            + CRLF
            + b"X-Check: 1"
            + CRLF
            + CRLF,
            d,
            [],
        )
    )

    d = docs[2]  # transfer coding gzip applied before chunked
    wire = gzip.compress(d, mtime=0)
    body = b"".join(
        chunk(wire[i : i + 700], f"{len(wire[i : i + 700]):x}") for i in range(0, len(wire), 700)
    )
    out.append(
        (
            "/evader/te-gzip-chunked",
            head("Content-Type: text/csv", "Transfer-Encoding: gzip, chunked")
            + body
            + b"0"
            + CRLF
            + CRLF,
            d,
            [],
        )
    )

    d = docs[3]  # gzip twice, announced in two separate Content-Encoding header lines
    wire = gzip.compress(gzip.compress(d, mtime=0), mtime=0)
    out.append(
        (
            "/evader/double-gzip",
            head(
                "Content-Type: text/csv",
                "Content-Encoding: gzip",
                "Content-Encoding: gzip",
                f"Content-Length: {len(wire)}",
            )
            + wire,
            d,
            [],
        )
    )

    d = docs[4]  # "deflate" without the zlib wrapper (raw RFC 1951), as old IIS sent it
    wire = raw_deflate(d)
    out.append(
        (
            "/evader/raw-deflate",
            head(
                "Content-Type: text/csv",
                "Content-Encoding: deflate",
                f"Content-Length: {len(wire)}",
            )
            + wire,
            d,
            [],
        )
    )

    d = docs[5]  # Content-Length AND chunked: chunked wins (RFC 9112 6.3); the CL reading too
    body = chunk(d[:1000], "3e8") + chunk(d[1000:], f"{len(d) - 1000:x}") + b"0" + CRLF + CRLF
    out.append(
        (
            "/evader/te-and-cl",
            head("Content-Type: text/csv", "Content-Length: 25", "Transfer-Encoding: chunked")
            + body,
            d,
            ["http_te_and_cl"],
        )
    )

    d = docs[6]  # obs-fold header continuation lines (RFC 9112 5.2), gzip announced folded
    wire = gzip.compress(d, mtime=0)
    folded = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/csv;\r\n charset=utf-8\r\n"
        b"Content-Encoding:\r\n\tgzip\r\nContent-Length: %d\r\n\r\n" % len(wire)
    )
    out.append(("/evader/header-folding", folded + wire, d, []))

    d = docs[7]  # bare LF line endings in the status line and headers
    out.append(
        (
            "/evader/bare-lf",
            head("Content-Type: text/csv", f"Content-Length: {len(d)}", eol=b"\n") + d,
            d,
            [],
        )
    )
    return out


def main() -> None:
    convs, objects, http, anomalies = [], [], [], []
    for i, (uri, response, decoded, anoms) in enumerate(tricks()):
        request = crafted.http_request(
            "GET", uri, crafted.HOST, headers=[("Accept-Encoding", "gzip, deflate")]
        )
        conv = crafted.TcpConversation(client_port=50160 + i, t0=crafted.T0 + i)
        conv.handshake()
        conv.emit_all(conv.segments("client", request))
        conv.ack("server")
        conv.emit_all(conv.segments("server", response, 1000))
        conv.ack("client")
        conv.close(first="server")  # no Content-Length on some: the server closes
        convs.append(conv)
        objects.append(expect.http_object("download", decoded, filename=expect.uri_filename(uri)))
        if uri.endswith("/te-and-cl"):  # and the reading of a receiver that trusts the CL
            cl_reading = response.split(CRLF + CRLF, 1)[1][:25]
            cl_object = expect.http_object("download", cl_reading, filename="te-and-cl")
            objects.append({**cl_object, "ambiguous": True, "reading": "content-length"})
        http.append(expect.http_request("GET", crafted.HOST, uri, 200))
        anomalies += anoms
    crafted.write_conversations(CASE / "input.pcap", *convs)
    expect.write_expected(CASE, objects=objects, http=http, anomalies=anomalies, flows=len(convs))


if __name__ == "__main__":
    main()
