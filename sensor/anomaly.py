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
        "capture_bad_timestamp": (
            "capture",
            "a frame's time is before 1970 or after 9999; the frame is dropped",
        ),
        "capture_time_backwards": (
            "capture",
            "the capture's time stepped back by more than a second; flows keep their last time",
        ),
        "flow_table_full": (
            "flow",
            "flows.max_flows reached: the least recently seen flows were ended early (their "
            "flow records say reason evicted); said at most once a minute, with the count",
        ),
        "half_open_full": (
            "flow",
            "flows.half_open_memcap reached: the oldest unanswered SYNs were summed into their "
            "half_open record before their timeout (said at most once a minute, with the count)",
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
            "a segment overlaps earlier data with different bytes (evasion signal); the "
            "stream's overlap policy decides which copy is kept",
        ),
        "tcp_overlap_readings": (
            "stream",
            "receivers would keep different copies of overlapping bytes: the flow is also read "
            "as the named policy does (objects with reading tcp-<policy>)",
        ),
        "tcp_reading_unavailable": (
            "stream",
            "a diverging overlap reading was not started: the memcap could not hold its copy",
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
        "http_bad_version": ("app", "a request's HTTP version is not 1.x (parser detached)"),
        "http_start_line_too_long": ("app", "request/status line over the cap (detached)"),
        "http_header_too_long": ("app", "header block over the cap (detached)"),
        "http_too_many_headers": ("app", "more header fields than the cap (detached)"),
        "http_gap_in_headers": ("app", "capture gap inside a header block (detached)"),
        "http_gap_in_chunked": ("app", "capture gap in chunk framing (detached)"),
        "http_bad_chunk_size": (
            "app",
            "unparseable chunk size (detached, unless a raw reading of the body goes on)",
        ),
        "http_chunk_line_too_long": (
            "app",
            "chunk-size line over the cap (detached, unless a raw reading goes on)",
        ),
        "http_not_chunked": (
            "app",
            "a body said chunked and its first line is no chunk size: read by Content-Length "
            "or up to the close",
        ),
        "http_bad_transfer_encoding": (
            "app",
            "request Transfer-Encoding without chunked: read by Content-Length, else up to the "
            "close",
        ),
        "http_odd_status_line": (
            "app",
            "a status line read as browsers read it: odd version ('http/1.1', 'HTTP/1.01'), "
            "status code with extra or missing digits ('0200', '2xx' read as 200)",
        ),
        "http_ambiguous_framing": (
            "app",
            "receivers could frame a body in more than one way: every reading is kept as an "
            "object marked ambiguous (content-length, raw, unframed)",
        ),
        "http_bare_cr": ("app", "a CR alone inside a header line: read as a line end"),
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
        "http_chunk_size_junk": (
            "app",
            "a chunk-size line with junk after its hex digits ('f x', 'f,', 'f\\0'): the size is "
            "read as browsers read it",
        ),
        "http_coding_junk": (
            "app",
            "NUL, vertical tab, form feed, no-break space or a BOM around a Transfer-Encoding or "
            "Content-Encoding token: dropped, as lenient receivers drop it",
        ),
        "http_chunk_blank_line": (
            "app",
            "a blank line where a chunk size should be: skipped, as browsers skip it",
        ),
        "http_missing_chunk_crlf": ("app", "chunk data not followed by CRLF"),
        "http_too_many_pending": ("app", "too many unanswered requests; the oldest dropped"),
        "http_truncated_head": ("app", "the stream ended inside a message head"),
        "http_unanswered_upgrade": (
            "app",
            "CONNECT/Upgrade never answered; data held over the cap",
        ),
        "smtp_line_too_long": (
            "app",
            "SMTP command/reply line over the cap; no line end within 64 KiB: detached",
        ),
        "smtp_bad_reply": (
            "app",
            "SMTP reply line not 'NNN[ -]text', skipped (too many: detached)",
        ),
        "smtp_unknown_command": (
            "app",
            "unknown SMTP command verb (too many: detached); the line is never quoted",
        ),
        "smtp_bad_command": ("app", "MAIL/RCPT without FROM:/TO:, or a bad BDAT argument"),
        "smtp_bdat_bad_size": (
            "app",
            "BDAT chunk size missing, not a number or over the cap (detached)",
        ),
        "smtp_bare_lf_end": (
            "app",
            "bare LF/CR next to a '.' inside DATA (SMTP smuggling signal); only CRLF.CRLF ends it",
        ),
        "smtp_gap": (
            "app",
            "capture gap in SMTP commands/replies; resynchronised at the next line",
        ),
        "smtp_too_many_pending": ("app", "too many unanswered SMTP commands; the oldest dropped"),
        "smtp_too_many_rcpt": ("app", "more RCPT than the cap; the rest are not recorded"),
        "smtp_unmatched_reply": ("app", "an SMTP reply with no command waiting for it"),
        "smtp_unanswered_command": (
            "app",
            "client data held over the cap awaiting a reply to DATA/AUTH/STARTTLS; assumed OK",
        ),
        "tls_bad_record": ("app", "a TLS record header that is not TLS (detached)"),
        "tls_gap_in_handshake": ("app", "capture gap before the TLS handshake ended (detached)"),
        "tls_record_too_long": ("app", "TLS record longer than 2^14+2048 bytes; still read"),
        "tls_handshake_too_long": (
            "app",
            "TLS handshake message over its cap (64 KiB, Certificate 256 KiB); skipped",
        ),
        "tls_bad_handshake": ("app", "malformed TLS hello/Certificate message; it is ignored"),
        "tls_bad_extension": ("app", "malformed TLS hello extension; that extension is ignored"),
        "tls_unexpected_message": ("app", "TLS hello from the wrong side, or repeated; ignored"),
        "tls_truncated_hello": ("app", "the stream ended inside or before a TLS hello"),
        "tls_truncated_handshake": ("app", "the stream ended inside a TLS record or message"),
        "tls_cert_parse_error": ("app", "a certificate is not X.509 DER; only its sha256 kept"),
        "tls_cert_nonconformant": (
            "app",
            "a certificate parses but breaks RFC 5280 (e.g. a negative serial number)",
        ),
        "tls_cert_chain_too_long": ("app", "more certificates than the cap; the rest not parsed"),
        "ftp_line_too_long": ("app", "an FTP command/reply line over the cap; skipped to its end"),
        "ftp_bad_reply": ("app", "an FTP server line that is not a reply; skipped"),
        "ftp_bad_command": ("app", "an FTP client line whose verb is not 3-4 letters; skipped"),
        "ftp_bad_port_argument": (
            "app",
            "unparseable PORT/EPRT argument or 227/229 reply; no data endpoint from it",
        ),
        "ftp_gap": (
            "app",
            "capture gap on the FTP control channel; resynced at the next line, "
            "pending transfers reported without a reply",
        ),
        "ftp_unmatched_reply": ("app", "an FTP reply with no command waiting for it"),
        "ftp_too_many_pending": ("app", "too many unanswered FTP commands; the oldest dropped"),
        "ftp_reply_too_long": ("app", "an FTP multi-line reply over the line cap; ended there"),
        "ftp_truncated_line": ("app", "the FTP control stream ended inside a line"),
        "ftp_unanswered_auth": (
            "app",
            "client data after AUTH over the cap with no reply; the flow is only counted",
        ),
        "ftp_not_ftp": ("app", "too many malformed FTP lines in a row (detached)"),
        "ssh_banner_long": ("app", "SSH identification line over RFC 4253's 255 bytes; accepted"),
        "ssh_banner_too_long": ("app", "SSH identification line over 8 KiB (detached)"),
        "ssh_bad_banner": (
            "app",
            "not an 'SSH-x.y-software' line where the banner must be (detached)",
        ),
        "ssh_version_unsupported": ("app", "SSH protocol version neither 2.x nor 1.x (detached)"),
        "ssh_bad_packet": ("app", "impossible cleartext SSH packet length/padding (detached)"),
        "ssh_packet_too_long": ("app", "cleartext SSH packet over 256 KiB (detached)"),
        "ssh_bad_kexinit": ("app", "malformed SSH KEXINIT name-lists (detached)"),
        "ssh_no_common_algorithm": ("app", "SSH peers share no algorithm in a category"),
        "ssh_gap_in_handshake": ("app", "capture gap before SSH encryption started (detached)"),
        "ssh_truncated_handshake": ("app", "an SSH direction ended before its NEWKEYS"),
        "ssh_client_pre_banner": ("app", "the SSH client sent lines before its identification"),
        "ssh_too_many_pre_banner_lines": ("app", "over 1024 lines before an SSH banner (detached)"),
        "ssh_version_mismatch": ("app", "SSH client and server announced incompatible versions"),
        "ssh_one_sided": ("app", "only one direction of an SSH connection carried data"),
        "ftp_data_both_ways": (
            "app",
            "an FTP data connection carried bytes in both directions; the second is ignored",
        ),
        "dns_truncated": (
            "app",
            "a DNS response ends inside a name or record its counts announce (TC not set); "
            "no names learnt from it, later datagrams of that flow are not read",
        ),
        "dns_malformed": (
            "app",
            "a DNS response with a bad name (pointer loop or forward, reserved label type, over "
            "255 bytes) or record length; no names learnt, the flow's later datagrams not read",
        ),
        # content
        "content_extract_cut": (
            "content",
            "sluice extract stored only the first bytes of an object (content.max_extract_bytes "
            "or max_extract_total); files/<sha256>.cut holds them",
        ),
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
        # containers opened under one transferred object (sensor/content/objects.py)
        "archive_depth_cap": (
            "content",
            "a container nested deeper than content.max_archive_depth was fingerprinted, not "
            "opened (quines, nesting bombs)",
        ),
        "archive_member_cap": (
            "content",
            "more members than content.max_archive_members in one transferred object; the rest "
            "are counted in the fingerprint, not opened",
        ),
        "archive_expanded_cap": (
            "content",
            "members expanded past content.max_archive_bytes; the member being decoded ends "
            "incomplete and opening stops",
        ),
        "archive_ratio_cap": (
            "content",
            "members expanded more than content.max_ratio times the transferred bytes (archive "
            "bomb); opening stops",
        ),
        "archive_name_too_long": ("content", "a member name was cut at 1024 bytes"),
        "archive_path_traversal": (
            "content",
            "a member name is absolute or climbs out with '..' (reported; members are never "
            "written under their names)",
        ),
        # format analysers of the fingerprint (sensor/content/fingerprint/)
        "fingerprint_error": (
            "content",
            "a format reader of the fingerprint failed on this object (a bug, contained): its "
            "encryption is unknown and opening stopped; the object and the flow go on",
        ),
        "zip_gap": ("content", "bytes of a ZIP were lost; the member open there is incomplete"),
        "zip_resync": (
            "content",
            "junk before or between ZIP entries (a self-extractor stub, concatenated archives)",
        ),
        "zip_name_too_long": ("content", "a ZIP member name over 1024 bytes was cut"),
        "zip_extra_too_long": ("content", "a ZIP extra field over 4096 bytes, read in part"),
        "zip_bad_extra": ("content", "a malformed ZIP extra field"),
        "zip_method_unsupported": (
            "content",
            "a ZIP member compressed with a method Sluice does not open (named in the detail)",
        ),
        "zip_bad_data": ("content", "corrupt or cut compressed data in a ZIP member"),
        "zip_size_mismatch": ("content", "a ZIP member's decoded size differs from its header"),
        "zip_bad_descriptor": ("content", "no ZIP data descriptor fits after a bit-3 entry"),
        "zip_truncated": ("content", "a ZIP ends inside an entry, a header or a signature"),
        "zip_bad_central_directory": (
            "content",
            "the ZIP central directory is not where the end record points, or miscounts",
        ),
        "zip_header_mismatch": (
            "content",
            "a ZIP local header disagrees with the central directory (encryption, method, name "
            "or size): lying headers; the central directory is believed",
        ),
        "zip_unseen_members": (
            "content",
            "ZIP central directory entries without a local header in the stream",
        ),
        "zip_unlisted_members": ("content", "ZIP local entries the central directory omits"),
        "zip_overlapping_entries": (
            "content",
            "ZIP entries whose data overlaps (the overlapping-entry zip bomb)",
        ),
        "sevenz_header_crc": (
            "content",
            "a 7z start, next or decoded header fails its CRC32; the header is still read",
        ),
        "sevenz_header_damaged": ("content", "a 7z header cannot be parsed; encryption unknown"),
        "sevenz_header_too_large": (
            "content",
            "a 7z header (or its decoded form) is over the cap; encryption unknown",
        ),
        "sevenz_gap": ("content", "bytes of the 7z signature header were lost"),
        "rar_sfx_stub": ("content", "bytes before the RAR marker (self-extractor or prepended)"),
        "rar_no_marker": ("content", "no RAR marker within the first 4 MiB"),
        "rar_header_crc": ("content", "a RAR block header fails its CRC; the walk goes on"),
        "rar_header_damaged": ("content", "impossible RAR header sizes or fields; the walk stops"),
        "rar_header_too_long": ("content", "a RAR block header over 256 KiB; the walk stops"),
        "rar_gap": ("content", "bytes inside a RAR block header were lost; the walk stops"),
        "openpgp_bad_packet": (
            "content",
            "an implausible OpenPGP packet header or field; parsing stops",
        ),
        "openpgp_armour_damaged": (
            "content",
            "OpenPGP armour with an over-long line, no BEGIN line, or undecodable base64",
        ),
        "pdf_encryption_dict_missing": (
            "content",
            "a PDF names /Encrypt but its encryption dictionary was not found (scheme unknown)",
        ),
        "pdf_no_trailer": ("content", "a complete PDF without a trailer or XRef stream"),
        "pdf_scan_cap": ("content", "too many PDF keyword hits; the scan stopped"),
        "cfb_bad_header": ("content", "a CFB header with a bad signature, byte order or sector"),
        "cfb_fat_cap": ("content", "a CFB with over 109 FAT sectors; only the header's are read"),
        "cfb_candidate_cap": ("content", "too many CFB stream starts to remember"),
        "cfb_name_cap": ("content", "too many CFB directory-name hits; the search stopped"),
        # container openers (sensor/content/unpack/)
        "unpack_corrupt": (
            "content",
            "corrupt compressed data or wrong magic in a .gz/.bz2/.xz/.zst upload; the member "
            "ends incomplete",
        ),
        "unpack_truncated": ("content", "a compressed upload ended before its end marker"),
        "unpack_trailing_data": ("content", "bytes after the last compressed stream (dropped)"),
        "unpack_crc_mismatch": (
            "content",
            "a gzip CRC-32/ISIZE/header CRC or zstd checksum mismatch; member incomplete",
        ),
        "unpack_backlog": (
            "content",
            "compressed input arrived faster than its members were read; the rest was dropped",
        ),
        "unpack_header_too_long": ("content", "a gzip file name over 4096 bytes was cut"),
        "unpack_memory_limit": (
            "content",
            "an xz stream or zstd frame needs more decoder memory than the cap; not opened",
        ),
        "unpack_skippable_frame": ("content", "a zstd skippable frame was skipped"),
        "tar_bad_checksum": ("content", "a tar header fails its checksum; the tar is not read on"),
        "tar_bad_header": ("content", "an unreadable tar size field; the tar is not read on"),
        "tar_header_too_long": ("content", "a pax or GNU long-name record over 64 KiB, ignored"),
        "tar_bad_pax": ("content", "a malformed pax record, ignored"),
        "tar_sparse": ("content", "a sparse tar entry: its member is the stored fragments only"),
        "tar_unknown_type": ("content", "an unknown tar type flag, read as a regular file"),
        "tar_lone_zero_block": ("content", "a single zero block before another tar header"),
        "tar_trailing_data": ("content", "bytes after the tar end-of-archive blocks"),
        "tar_truncated": ("content", "a tar ended inside a header or inside member data"),
        "tar_resync": ("content", "after a gap over a tar header, read on at the next header"),
        # text extraction for classification (sensor/content/text/)
        "text_cap": ("content", "an object's text over the character cap; the rest is dropped"),
        "text_unknown_charset": ("content", "a declared charset Python does not know; detected"),
        "text_csv_record_too_long": ("content", "a CSV record over 64 Ki characters was cut"),
        "text_csv_malformed": ("content", "the CSV reader reported an error (once per object)"),
        "text_xlsx_strings_late": (
            "content",
            "sheet rows waiting for a late shared-string table passed the cap; sent unjoined",
        ),
        "text_xlsx_strings_cap": (
            "content",
            "a shared-string table over its cap; the rest is text",
        ),
        "text_xlsx_strings_missing": (
            "content",
            "a workbook ended with rows waiting for a shared-string table that never came",
        ),
        "text_xlsx_row_too_long": ("content", "a spreadsheet row over its character cap was cut"),
        "text_json_malformed": ("content", "a character that is no JSON token was skipped"),
        "text_json_too_deep": ("content", "JSON nested beyond 64 levels (paths share a level)"),
        "text_xml_malformed": ("content", "an XML error; the rest of the part is not read"),
        "text_xml_entity_refused": (
            "content",
            "an XML DTD declares a nested or oversized entity (billion laughs); not read on",
        ),
        "text_xml_token_too_long": ("content", "4 MiB of XML without a markup event; given up"),
        "text_html_parser_error": ("content", "the HTML parser failed; the rest is not read"),
        "text_html_unterminated": ("content", "over 256 Ki characters of unterminated markup"),
        "text_pdf_bad_stream": ("content", "a PDF FlateDecode stream does not inflate; skipped"),
        "text_pdf_inflate_cap": ("content", "a PDF stream or file inflated beyond its cap"),
        "text_rtf_too_deep": ("content", "RTF groups nested beyond 512"),
        "text_xml_unsupported_encoding": (
            "content",
            "an XML part in an encoding the parser cannot read (unknown or multi-byte other "
            "than UTF-8/16); the part is not read",
        ),
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
        "mime_header_too_long": (
            "content",
            "a mail header block over the cap; the rest is treated as body",
        ),
        "mime_header_unterminated": ("content", "a mail message ended inside its header block"),
        "mime_header_malformed": (
            "content",
            "a line in a mail header block is not a header field; the body starts there",
        ),
        "mime_depth_cap": (
            "content",
            "MIME entities nested deeper than the cap; the deeper content is one opaque object",
        ),
        "mime_entity_cap": (
            "content",
            "more leaf entities than the cap; the rest of the message is one undecoded object",
        ),
        "mime_unknown_cte": ("content", "unknown Content-Transfer-Encoding; the body is kept raw"),
        "mime_container_encoded": (
            "content",
            "a multipart or message entity with a transfer encoding (RFC 2045 6.4); decoded",
        ),
        "mime_base64_invalid": (
            "content",
            "stray characters in a base64 body were ignored, or it ended mid-quantum",
        ),
        "mime_base64_after_padding": (
            "content",
            "base64 data after the padding was ignored (a place to hide data)",
        ),
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
