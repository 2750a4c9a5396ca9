"""The one "note it and go on" value every stage can produce (Zeek's "weird"), and the
registry of every kind Sluice emits.

`kind` is a stable snake_case name from `KINDS` below (Suricata's lesson: anomalies are an
enum, not free text); `detail` is free text for humans and never carries payload or
credentials. `docs/anomalies.md` is generated from `KINDS` (`python -m sensor.anomaly`), and
tests check that every kind the code can emit is registered and the document is current.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(slots=True, frozen=True)
class Anomaly:
    kind: str
    detail: str = ""
    ts: float = 0.0


# kind -> (layer, what it means). Layers are the `anomaly.layer` values of the event schema.
KINDS = MappingProxyType(
    {
        # capture
        "capture_truncated": (
            "capture",
            "the capture file is cut or corrupt; frames before "
            "the damage were processed, the detail says where",
        ),
        # decode
        "decode_truncated": ("decode", "a frame is shorter than its headers claim"),
        "decode_bad_ip_header": ("decode", "an IPv4/IPv6 header is malformed"),
        "decode_bad_l4_header": (
            "decode",
            "a TCP/UDP header is malformed; the packet is still metered",
        ),
        "decode_unknown_linktype": ("decode", "a link-layer type Sluice does not decode"),
        "decode_internal_error": ("decode", "a decoder bug was contained (should not happen)"),
        "frag_overlap": ("decode", "IP fragments overlap; the first copy is kept"),
        "frag_invalid": ("decode", "an IP fragment is inconsistent (bad offset or length)"),
        "frag_timeout": ("decode", "an IP datagram was never completed within the timeout"),
        "frag_cap": ("decode", "fragment memory cap reached; the oldest datagrams are dropped"),
        # stream
        "tcp_gap": (
            "stream",
            "bytes of a TCP stream were never captured; the parser was "
            "told, objects show missing_bytes",
        ),
        "tcp_overlap_conflict": (
            "stream",
            "a retransmission overlaps earlier data with "
            "different bytes (evasion signal); the first copy is kept",
        ),
        "tcp_stream_cap": (
            "stream",
            "out-of-order data exceeded the per-direction cap; the stream skipped ahead",
        ),
        "tcp_memcap": (
            "stream",
            "the global reassembly memory cap refused data; the stream skipped ahead",
        ),
        "tcp_depth_reached": ("stream", "the configured reassembly depth was reached"),
        "tcp_data_after_fin": ("stream", "data beyond the FIN was ignored"),
        "tcp_fin_conflict": ("stream", "a FIN would cut off data already seen; not believed"),
        "tcp_rst_invalid": ("stream", "an RST behind delivered data was ignored"),
        "tcp_syn_mismatch": ("stream", "a SYN disagrees with the stream already started"),
        # app: protocol parsers
        "parser_error": ("app", "a parser bug was contained; the flow is only counted"),
        "http_bad_request_line": ("app", "not an HTTP request line (parser detached)"),
        "http_bad_status_line": ("app", "not an HTTP status line (parser detached)"),
        "http_bad_version": ("app", "unknown HTTP version (parser detached)"),
        "http_start_line_too_long": ("app", "request/status line over the cap (detached)"),
        "http_header_too_long": ("app", "header block over the cap (detached)"),
        "http_too_many_headers": ("app", "more header fields than the cap (detached)"),
        "http_gap_in_headers": ("app", "capture gap inside a header block (detached)"),
        "http_gap_in_chunked": ("app", "capture gap in chunk framing (detached)"),
        "http_bad_chunk_size": ("app", "unparseable chunk size (detached)"),
        "http_chunk_line_too_long": ("app", "chunk-size line over the cap (detached)"),
        "http_bad_transfer_encoding": (
            "app",
            "request Transfer-Encoding cannot be framed (detached)",
        ),
        "http_bad_content_length": (
            "app",
            "invalid Content-Length (request: detached; response: read until close)",
        ),
        "http_te_and_cl": (
            "app",
            "both Transfer-Encoding and Content-Length; TE wins (request smuggling signal)",
        ),
        "http_conflicting_content_length": (
            "app",
            "several different Content-Length values; the first is used",
        ),
        "http_te_not_chunked": ("app", "Transfer-Encoding without final chunked"),
        "http_obs_fold": ("app", "obsolete header line folding"),
        "http_bad_header_line": ("app", "a header line without a colon was skipped"),
        "http_space_before_colon": ("app", "white space between field name and colon"),
        "http_space_in_uri": ("app", "white space inside the request target"),
        "http_missing_chunk_crlf": ("app", "chunk data not followed by CRLF"),
        "http_too_many_pending": ("app", "too many unanswered requests; the oldest dropped"),
        "http_truncated_head": ("app", "the stream ended inside a message head"),
        "http_unanswered_upgrade": (
            "app",
            "CONNECT/Upgrade never answered; data held over the cap",
        ),
        # content
        "content_decode_error": (
            "content",
            "corrupt or unknown content coding; the rest is kept undecoded, object incomplete",
        ),
        "content_decode_truncated": ("content", "a compressed stream ended early"),
        "content_decode_gap": ("content", "a capture gap inside a compressed body stops decoding"),
        "content_decoded_cap": (
            "content",
            "decoded size over the cap (decompression bomb guard); object truncated",
        ),
        "content_decoded_ratio": ("content", "decompression ratio over the cap (bomb guard)"),
        "content_filename_path": (
            "content",
            "a filename carried a path; only the base name is kept",
        ),
        "content_sniff_unavailable": ("content", "libmagic could not be loaded; no mime_type"),
        "content_store_error": ("content", "an extracted object could not be written to disk"),
        "multipart_boundary_missing": (
            "content",
            "multipart body without its boundary; kept as one object",
        ),
        "multipart_unterminated": ("content", "multipart body without its closing delimiter"),
        "multipart_part_cap": ("content", "more parts than the cap; the rest is one object"),
        "multipart_header_too_long": ("content", "a part's header block over the cap"),
        "multipart_header_malformed": ("content", "a part header line is malformed"),
        "multipart_preamble_data": ("content", "non-blank data before the first part"),
        "multipart_epilogue_data": ("content", "non-blank data after the last part"),
    }
)


def markdown() -> str:
    """docs/anomalies.md, generated from KINDS."""
    lines = [
        "# Anomaly kinds",
        "",
        "Generated from `sensor/anomaly.py` by `python -m sensor.anomaly > docs/anomalies.md`.",
        "Each `anomaly` event carries one `kind` and the `layer` that noticed it. Kinds whose",
        "meaning says *detached* end parsing of that flow (a protocol violation); the flow is",
        "still metered. Counters of every kind are in the `stats` event.",
        "",
        "| kind | layer | meaning |",
        "|---|---|---|",
    ]
    for kind, (layer, meaning) in KINDS.items():
        lines.append(f"| `{kind}` | {layer} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
