"""The one place where Sluice's stages are wired in order (DESIGN.md "Data flow").

    Frame -> decode -> flows -> reassembly -> protocols -> content -> outputs

`Pipeline.process(frame)` is the per-packet path; `Pipeline.finish()` ends every flow at the
end of input. Time is the packet's timestamp throughout, so replaying a capture is
deterministic and equals what the live sensor would decide. Events leave through `sinks`
(callables taking one record); the pipeline itself opens no files and reads no clock.

Per flow, the pipeline keeps an `Analysis`: the two TCP streams, the protocol session and the
content entities of bodies in progress. A flow whose protocol was not recognised, whose parser
detached, or which became a tunnel is only counted from then on: its streams are released.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from probes.frame import LINKTYPE_ETHERNET, Frame
from sensor.anomaly import Anomaly
from sensor.config import Config
from sensor.content.entity import BodyEntity, ContentCaps, FileInfo
from sensor.content.mime import MessageHeaders, MimeCaps, MimeMessage
from sensor.content.objects import ObjectStore
from sensor.decode.decoder import DecodeCaps, Decoder
from sensor.decode.packet import PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet
from sensor.flows.table import (
    STATE_CLOSED,
    STATE_ESTABLISHED,
    STATE_NEW,
    TO_CLIENT,
    TO_SERVER,
    Flow,
    FlowTable,
)
from sensor.metering.meter import Meter
from sensor.metering.store import MeterStore
from sensor.metering.values import Finding, VolumeSummary
from sensor.outputs import eve
from sensor.protocols import dns, ftp, ftpdata, http, smtp, ssh, tls
from sensor.protocols.base import Direction
from sensor.protocols.detect import ProtocolSpec
from sensor.protocols.session import COUNTING, DETECTING, AppSession
from sensor.reassembly.tcp import Gap, Memcap, StreamCaps, TcpStream

Sink = eve.Sink

DIRECTION_NAMES = ("upload", "download")  # TO_SERVER, TO_CLIENT
_STATE_FLAGS = TCP_FIN | TCP_SYN | TCP_RST  # the flags that can change a flow's TCP state
_PORTS = struct.Struct("!HH")
_SEQ = struct.Struct("!I")
# Ethernet type + IPv4 version/IHL + TOS (one word), total length, flags/fragment offset,
# protocol, TCP sequence number, data offset, flags: what the flow bypass reads of a frame, in
# one unpack.
_BYPASS_HEADER = struct.Struct("!12xIH2xHxB2x8x4xI4xBB")
_BYPASS_ETH_IP4 = 0x08004500  # the word above without TOS: Ethernet IPv4, 20-byte header
_MAX_FTP_EXPECTED = 4096  # announced FTP data connections waiting to be seen
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?")
# A segment this far beyond the highest sequence number seen (plus its own length) counts only
# its own payload: a corrupt or forged sequence number must not add gigabytes.
_MAX_PAYLOAD_HOLE = 16 << 20


def protocol_specs(config: Config) -> tuple[ProtocolSpec, ...]:
    """Detection order (see sensor/protocols/detect.py): first match wins."""
    caps = http.HttpCaps(
        max_header_bytes=config.http.max_header_bytes, max_headers=config.http.max_headers
    )
    return (
        ProtocolSpec("http", http.detect, lambda: http.HttpParser(caps)),
        ProtocolSpec("smtp", smtp.detect, smtp.SmtpParser),
        ProtocolSpec("ftp", ftp.detect, ftp.FtpParser),
        ProtocolSpec("tls", tls.detect, tls.TlsParser),
        ProtocolSpec("ssh", ssh.detect, ssh.SshParser),
    )


def tunnel_specs(specs: tuple[ProtocolSpec, ...]) -> tuple[ProtocolSpec, ...]:
    """What may run inside an HTTP CONNECT tunnel: TLS above all, SSH, or plain HTTP."""
    order = ("tls", "ssh", "http")
    by_name = {spec.name: spec for spec in specs}
    return tuple(by_name[name] for name in order if name in by_name)


# An object in transfer: (protocol, transaction id, direction) -> the content-stage consumer.
EntityKey = tuple[str, int, int]
Entity = BodyEntity | MimeMessage


@dataclass(slots=True)
class Analysis:
    """Per-flow analysis state of a TCP flow (Flow.app)."""

    streams: list[TcpStream] | None
    session: AppSession
    eof_sent: list[bool] = field(default_factory=lambda: [False, False])
    requests: dict[int, http.HttpRequestHead] = field(default_factory=dict)
    entities: dict[EntityKey, Entity] = field(default_factory=dict)
    messages: dict[int, eve.MessageSummary] = field(default_factory=dict)  # SMTP, by txid
    mail_context: dict[int, dict[str, Any]] = field(default_factory=dict)  # envelope, by txid
    linked: bool = False  # the FTP data-connection check was made
    ftp_upload: bool = False
    ftp_context: dict[str, Any] | None = None

    def ftp_key(self, txid: int) -> EntityKey:
        return ("ftp", txid, TO_SERVER if self.ftp_upload else TO_CLIENT)

    flipped: bool = False
    tunnel: bool = False
    anomalies: int = 0


@dataclass(slots=True)
class Summary:
    packets: int = 0
    bytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    flows: int = 0
    objects: int = 0
    uploads: list[eve.Record] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    messages: list[eve.Record] = field(default_factory=list)  # smtp events
    anomalies: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    capture_errors: list[str] = field(default_factory=list)


class Pipeline:
    def __init__(
        self,
        config: Config,
        sinks: Iterable[Sink],
        store: ObjectStore | None = None,
        meter: Meter | None = None,
        meter_store: MeterStore | None = None,
    ) -> None:
        self.config = config
        self._sinks = tuple(sinks)
        self._store = store
        d = config.decode
        self.decoder = Decoder(
            DecodeCaps(
                max_frag_bytes=d.max_frag_bytes,
                max_frag_datagrams=d.max_frag_datagrams,
                frag_timeout=d.frag_timeout,
            ),
            verify_checksums=d.verify_checksums,
        )
        self.flows = FlowTable(config.flows)
        s = config.stream
        self._stream_caps = StreamCaps(
            max_pending_bytes=s.max_pending_bytes,
            max_pending_segments=s.max_pending_segments,
            depth=s.depth,
        )
        self.memcap = Memcap(s.memcap)
        c = config.content
        self._content_caps = ContentCaps(
            max_decoded_bytes=c.max_decoded_bytes,
            max_ratio=c.max_ratio,
            max_parts=c.max_parts,
            max_part_header_bytes=c.max_part_header_bytes,
        )
        self._mime_caps = MimeCaps()
        self._specs = protocol_specs(config)
        self._tunnel_specs = tunnel_specs(self._specs)
        self._handlers = self._event_handlers()
        # FTP data connections announced on control connections: (accepting address, port)
        # -> (control flow, announcement). Linked at the data connection's first byte.
        self._ftp_expected: dict[tuple[bytes, int], tuple[Flow, ftp.FtpDataExpected]] = {}
        self._meter = meter
        self._meter_store = meter_store
        self.stats_extra: eve.Record = {}  # the runtime's counters, added to `stats` events
        # The live runtime's call just before every meter bucket closes, after the flows'
        # counts are in it: the probe's last kernel counts (and their totals) go with it.
        self.bucket_hook: Callable[[float], None] | None = None
        self._meter_due = -math.inf if meter is not None else math.inf
        self._horizon = -math.inf  # packet time of the next timeout scan or meter bucket end
        self._bypass_on = config.flows.bypass
        self._bypass: dict[bytes, tuple[Flow, int]] = {}
        self._bypassed = 0
        self._ftp_serial = 0
        self.summary = Summary()
        self._gap_bytes = 0
        self._retransmitted = 0
        self._overlap_conflicts = 0
        self._now = 0.0

    # -- output --------------------------------------------------------------------------

    def _emit(self, record: eve.Record) -> None:
        self.summary.events[record["event_type"]] += 1
        for sink in self._sinks:
            sink(record)

    def _anomaly(self, flow: Flow | None, anomaly: Anomaly, layer: str, ts: float) -> None:
        self.summary.anomalies[anomaly.kind] += 1
        if flow is not None and isinstance(flow.app, Analysis):
            flow.app.anomalies += 1
            if flow.app.anomalies > self.config.output.max_anomalies_per_flow:
                return  # counted in stats, not written again
        self._emit(eve.anomaly_record(flow, anomaly, layer, anomaly.ts or ts))

    # -- per packet ----------------------------------------------------------------------

    def process(self, frame: Frame) -> None:
        """One captured frame through every stage. This is the hot path: keep it flat."""
        summary = self.summary
        summary.packets += 1
        ts, data, linktype, _iface, _wire_len = frame
        size = len(data)
        summary.bytes += size
        # Flow bypass (Suricata's idea): once a flow is only counted (TLS, SSH after detection,
        # unknown protocols), its plain Ethernet/IPv4/TCP packets without SYN/FIN/RST need
        # nothing but the counters, read straight from the header bytes. Everything else, and
        # any packet due a timeout scan, takes the full path below. Most packets that get this
        # far are bypassed, so the table lookup comes before the header checks and the
        # counting does the fewest operations it can (each one shows in the replay benchmark).
        bypass = self._bypass
        if bypass and ts < self._horizon and linktype == LINKTYPE_ETHERNET and size >= 54:
            hit = bypass.get(data[26:38])
            if hit is not None:
                head, ip_len, frag, proto, seq, doff, flags = _BYPASS_HEADER.unpack_from(data)
                if (
                    head & 0xFFFFFF00 == _BYPASS_ETH_IP4
                    and proto == PROTO_TCP
                    and not flags & _STATE_FLAGS
                    and not frag & 0x3FFF
                    and ip_len >= 40
                ):
                    counted, way = hit
                    self._now = counted.last = ts
                    self._bypassed += 1
                    # Unique payload: only bytes beyond the highest sequence number seen
                    # count (serial arithmetic, RFC 1982), so retransmissions do not; see
                    # _track_payload for the holes a reordered segment leaves.
                    plen = ip_len - 20 - ((doff & 0xF0) >> 2)
                    if way == TO_SERVER:
                        counted.pkts_toserver += 1
                        counted.bytes_toserver += ip_len
                        if plen > 0:
                            end = (seq + plen) & 0xFFFFFFFF
                            high = counted.seq_high_toserver
                            ahead = (end - high) & 0xFFFFFFFF if high >= 0 else plen
                            if 0 < ahead < 0x80000000:
                                counted.payload_toserver += (
                                    ahead if ahead <= plen + _MAX_PAYLOAD_HOLE else plen
                                )
                                counted.seq_high_toserver = end
                    else:
                        counted.pkts_toclient += 1
                        counted.bytes_toclient += ip_len
                        if plen > 0:
                            end = (seq + plen) & 0xFFFFFFFF
                            high = counted.seq_high_toclient
                            ahead = (end - high) & 0xFFFFFFFF if high >= 0 else plen
                            if 0 < ahead < 0x80000000:
                                counted.payload_toclient += (
                                    ahead if ahead <= plen + _MAX_PAYLOAD_HOLE else plen
                                )
                                counted.seq_high_toclient = end
                    return
        decoder = self.decoder
        pkt = decoder.decode(frame)
        if decoder.pending_anomalies:
            for anomaly in decoder.take_anomalies():
                self._anomaly(None, anomaly, "decode", frame.ts)
        if pkt is None:
            return
        ts = pkt.ts
        self._now = ts
        flows = self.flows
        if ts >= self._horizon:
            if summary.first_ts is None:
                summary.first_ts = ts
            self._advance(ts)
        # Fast path: a known flow. A SYN on a closed connection's tuple (a new connection) and
        # every new flow take the table's full lookup.
        flags = pkt.tcp_flags
        flow = flows.index.get((pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if flow is None or (flags & TCP_SYN and flow.state == STATE_CLOSED):
            flow, direction, ended = flows.lookup(pkt)
            for old, reason in ended:
                self._end_flow(old, reason, ts)
        elif pkt.sport == flow.client_port and pkt.src == flow.client:
            direction = TO_SERVER
        else:
            direction = TO_CLIENT
        flow.last = ts
        if direction == TO_SERVER:
            flow.pkts_toserver += 1
            flow.bytes_toserver += pkt.ip_len
        else:
            flow.pkts_toclient += 1
            flow.bytes_toclient += pkt.ip_len
        plen = len(pkt.payload) + pkt.payload_missing
        if plen:
            if pkt.proto == PROTO_TCP:
                _track_payload(flow, direction, _SEQ.pack(pkt.seq), plen)
            elif direction == TO_SERVER:
                flow.payload_toserver += plen
            else:
                flow.payload_toclient += plen
        if pkt.proto == PROTO_TCP:
            if flags & _STATE_FLAGS or flow.state == STATE_NEW:
                flows.update_tcp_state(flow, direction, flags)
            if not flow.counted:
                self._tcp(flow, direction, pkt)
            elif flow.state == STATE_ESTABLISHED and not flow.bypassed and self._bypass_on:
                self._start_bypass(flow)
        elif pkt.proto == PROTO_UDP and pkt.sport == 53 and not flow.counted:
            self._dns(flow, pkt)

    def _start_bypass(self, flow: Flow) -> None:
        """Register an established, only-counted IPv4 TCP flow for the header-bytes fast path,
        keyed by src+dst address and ports as they stand in the packet, both directions."""
        flow.bypassed = True
        if flow.ip_version != 4:
            return
        to_server = flow.client + flow.server + _PORTS.pack(flow.client_port, flow.server_port)
        to_client = flow.server + flow.client + _PORTS.pack(flow.server_port, flow.client_port)
        self._bypass[to_server] = (flow, TO_SERVER)
        self._bypass[to_client] = (flow, TO_CLIENT)

    # -- the live runtime's clock and the eBPF probe's counts ------------------------------

    def tick(self, now: float) -> None:
        """Live capture: time passed without packets. The runtime calls this a few times a
        second with the wall clock, the clock libpcap stamps packets with. Runs what a packet
        at `now` would have run: timeouts and a meter bucket close. A `now` behind the
        pipeline's clock does nothing."""
        if now <= self._now:
            return
        self._now = now
        if now >= self._horizon:
            self._advance(now)

    def _advance(self, now: float) -> None:
        """The packet clock reached the horizon: flow timeouts and meter bucket closes due."""
        if now >= self.flows.next_scan:
            self._expire(now)
        if self._meter is not None and now >= self._meter_due:
            self._meter_flush(now)
        self._horizon = min(self.flows.next_scan, self._meter_due)

    def add_kernel_counts(self, src: bytes, dst: bytes, ip_bytes: int, packets: int) -> None:
        """Outbound counts from the eBPF probe (`Meter.add_kernel`) into the meter's open
        bucket: the meter takes outbound wire bytes from there instead of from packets."""
        if self._meter is not None:
            self._meter.add_kernel(self._meter_time(self._now), src, dst, ip_bytes, packets)

    # -- metering ------------------------------------------------------------------------

    def _meter_flow(self, flow: Flow, ts: float) -> None:
        """Hand the meter what this flow carried since it was last metered."""
        now = (
            flow.bytes_toserver, flow.pkts_toserver, flow.payload_toserver,
            flow.bytes_toclient, flow.pkts_toclient, flow.payload_toclient,
        )  # fmt: skip
        before = flow.metered
        if now == before:
            return
        flow.metered = now
        meter = self._meter
        assert meter is not None
        if now[1] != before[1]:
            meter.add(ts, flow.client, flow.server, now[0] - before[0], now[1] - before[1],
                      now[2] - before[2], flow.server_port)  # fmt: skip
        if now[4] != before[4]:
            meter.add(ts, flow.server, flow.client, now[3] - before[3], now[4] - before[4],
                      now[5] - before[5], flow.client_port)  # fmt: skip

    def _meter_flush(self, now: float) -> None:
        """A meter bucket ended: every flow's counts since the last flush belong to it (all
        were seen before `now`), then the meter closes the bucket and reports."""
        meter = self._meter
        assert meter is not None
        inside = self._meter_time(now)
        for flow in self.flows:
            self._meter_flow(flow, inside)
        # Only around a real bucket close (not at the first flush, which opens the first
        # bucket); the hook must not raise: the runtime contains its own errors.
        if self.bucket_hook is not None and self._meter_due != -math.inf:
            self.bucket_hook(now)
        self._meter_results(meter.tick(now))
        bucket = self.config.metering.bucket_seconds
        self._meter_due = math.floor(now / bucket) * bucket + bucket

    def _meter_time(self, ts: float) -> float:
        """A time inside the meter's open bucket: counts gathered since the last flush were all
        seen before the bucket ended, so they belong to it (`ts` before the first bucket)."""
        if self._meter_due == -math.inf:
            return ts
        return self._meter_due - self.config.metering.bucket_seconds / 2

    def _meter_results(self, results: list[VolumeSummary | Finding]) -> None:
        interval = self.config.metering.volume_event_interval
        for result in results:
            if isinstance(result, Finding):
                self._emit(eve.finding_record(result))
                self.summary.findings.append(result)
            elif interval and (result.ts + result.duration) % interval < result.duration:
                self._emit(eve.volume_record(result))
        if self._meter_store is not None and results:
            self._meter_store.write(results)

    def _end_bypass(self, flow: Flow) -> None:
        if flow.bypassed and flow.ip_version == 4:
            self._bypass.pop(
                flow.client + flow.server + _PORTS.pack(flow.client_port, flow.server_port), None
            )
            self._bypass.pop(
                flow.server + flow.client + _PORTS.pack(flow.server_port, flow.client_port), None
            )

    def _tcp(self, flow: Flow, direction: int, pkt: Packet) -> None:
        flags = pkt.tcp_flags
        analysis = flow.app
        if analysis is None:
            analysis = flow.app = Analysis(
                streams=[
                    TcpStream(self._stream_caps, self.memcap),
                    TcpStream(self._stream_caps, self.memcap),
                ],
                session=AppSession(self._specs, self.config.stream.detect_bytes),
            )
        assert isinstance(analysis, Analysis)
        streams = analysis.streams
        if streams is None:
            return  # only counted
        ts = pkt.ts
        out = streams[direction].segment(pkt.seq, pkt.payload, flags, ts)
        if out:
            flipped = analysis.flipped
            self._deliver(flow, analysis, direction, out, ts)
            if analysis.flipped != flipped:
                direction = 1 - direction  # the flow was turned round under this packet
        if flags & TCP_ACK and analysis.streams is not None:
            other = 1 - direction
            acked = analysis.streams[other].peer_ack(pkt.ack, ts)
            if acked:
                self._deliver(flow, analysis, other, acked, ts)
        if analysis.streams is not None:
            self._check_stream_ends(flow, analysis, ts)

    def _check_stream_ends(self, flow: Flow, analysis: Analysis, ts: float) -> None:
        streams = analysis.streams
        assert streams is not None
        for direction in (TO_SERVER, TO_CLIENT):
            stream = streams[direction]
            anomalies = stream.take_anomalies()
            for anomaly in anomalies:
                self._anomaly(flow, anomaly, "stream", ts)
            if stream.done and not analysis.eof_sent[direction]:
                analysis.eof_sent[direction] = True
                events = analysis.session.eof(Direction(direction), ts)
                self._app_events(flow, analysis, events, ts)
                if analysis.streams is None:
                    return

    def _deliver(
        self, flow: Flow, analysis: Analysis, direction: int, items: list[bytes | Gap], ts: float
    ) -> None:
        if analysis.session.state == DETECTING and self._ftp_expected and not analysis.linked:
            analysis.linked = True
            self._link_ftp_data(flow, analysis)
        for item in items:
            session = analysis.session  # a CONNECT tunnel hands over to a new session
            if session.state == COUNTING:
                break
            if isinstance(item, Gap):
                self._gap_bytes += item.size
                self._anomaly(
                    flow, Anomaly("tcp_gap", f"{item.size} bytes missing", ts), "stream", ts
                )
                events = session.gap(Direction(direction), item.size, ts)
            else:
                events = session.feed(Direction(direction), item, ts)
            if session.flip and not analysis.flipped:
                self._flip(flow, analysis)
                direction = 1 - direction
            if events:
                self._app_events(flow, analysis, events, ts)
        if analysis.session.state == COUNTING or analysis.tunnel:
            self._stop_analysis(flow, analysis, ts)

    def _flip(self, flow: Flow, analysis: Analysis) -> None:
        """Detection found client and server the other way round (mid-stream pickup)."""
        analysis.flipped = True
        flow.flip()
        if analysis.streams is not None:
            analysis.streams.reverse()
        analysis.eof_sent.reverse()

    def _stop_analysis(self, flow: Flow, analysis: Analysis, ts: float) -> None:
        """From now on the flow is only counted: free its reassembly buffers."""
        flow.app_proto = analysis.session.app_proto
        flow.counted = True
        if analysis.streams is not None:
            for stream in analysis.streams:
                stream.flush(ts)
                self._collect_stream_stats(stream)
            analysis.streams = None
        for key in list(analysis.entities):
            self._finish_entity(flow, analysis, key, complete=False, ts=ts)

    def _collect_stream_stats(self, stream: TcpStream) -> None:
        self._retransmitted += stream.retransmitted_bytes
        self._overlap_conflicts += stream.overlap_conflicts

    # -- application events --------------------------------------------------------------

    def _app_events(self, flow: Flow, analysis: Analysis, events: list[object], ts: float) -> None:
        flow.app_proto = analysis.session.app_proto
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(flow, analysis, event, ts)
            elif isinstance(event, Anomaly):
                self._anomaly(flow, event, "app", ts)

    def _event_handlers(self) -> dict[type, Callable[[Flow, Analysis, Any, float], None]]:
        """Parser event type -> what the pipeline does with it (built once, no isinstance chain
        per event)."""
        return {
            http.HttpRequestHead: self._on_http_request,
            http.BodyStart: self._on_http_body_start,
            http.BodyData: lambda f, a, e, ts: self._feed(
                f, a, ("http", e.txid, e.direction), e.data, ts
            ),
            http.BodyGap: lambda f, a, e, ts: self._gap(
                f, a, ("http", e.txid, e.direction), e.size, ts
            ),
            http.BodyEnd: lambda f, a, e, ts: self._finish_entity(
                f, a, ("http", e.txid, e.direction), e.complete, e.ts
            ),
            http.HttpTransaction: self._on_http_transaction,
            http.TunnelStart: self._on_http_tunnel,
            http.TunnelData: self._on_http_tunnel_data,
            smtp.MessageStart: self._on_smtp_message,
            smtp.MessageData: lambda f, a, e, ts: self._feed(
                f, a, ("smtp", e.txid, TO_SERVER), e.data, ts
            ),
            smtp.MessageGap: lambda f, a, e, ts: self._gap(
                f, a, ("smtp", e.txid, TO_SERVER), e.size, ts
            ),
            smtp.MessageEnd: lambda f, a, e, ts: self._finish_entity(
                f, a, ("smtp", e.txid, TO_SERVER), e.complete, e.ts
            ),
            smtp.SmtpTransaction: self._on_smtp_transaction,
            smtp.StartTls: self._on_tunnel,
            tls.TlsHandshake: self._on_tls_handshake,
            tls.TlsEncrypted: self._on_tunnel,
            ssh.SshSession: lambda f, a, e, ts: self._emit(eve.ssh_record(f, e)),
            ftp.FtpDataExpected: self._on_ftp_expected,
            ftp.FtpTransfer: lambda f, a, e, ts: self._emit(eve.ftp_transfer_record(f, e, None)),
            ftp.FtpSession: self._on_ftp_session,
            ftpdata.DataStart: self._on_ftp_data_start,
            ftpdata.DataChunk: lambda f, a, e, ts: self._feed(f, a, a.ftp_key(e.txid), e.data, ts),
            ftpdata.DataGap: lambda f, a, e, ts: self._gap(f, a, a.ftp_key(e.txid), e.size, ts),
            ftpdata.DataEnd: lambda f, a, e, ts: self._finish_entity(
                f, a, a.ftp_key(e.txid), e.complete, e.ts
            ),
        }

    def _on_tunnel(self, flow: Flow, analysis: Analysis, event: object, ts: float) -> None:
        """CONNECT, Upgrade or STARTTLS: the rest of the flow is opaque, only counted."""
        analysis.tunnel = True

    def _on_http_tunnel(
        self, flow: Flow, analysis: Analysis, event: http.TunnelStart, ts: float
    ) -> None:
        """CONNECT accepted: what runs inside (TLS above all) gets its own detection and
        parser; an Upgrade (e.g. WebSocket) is only counted."""
        request = analysis.requests.get(event.txid)
        if request is None or request.method.upper() != b"CONNECT":
            analysis.tunnel = True
            return
        analysis.session = AppSession(self._tunnel_specs, self.config.stream.detect_bytes)
        if event.held_to_server:
            events = analysis.session.feed(Direction.TO_SERVER, event.held_to_server, ts)
            self._app_events(flow, analysis, events, ts)

    def _on_http_tunnel_data(
        self, flow: Flow, analysis: Analysis, event: http.TunnelData, ts: float
    ) -> None:
        """Bytes the HTTP parser saw after the tunnel started (the server's first TLS bytes in
        the segment of its 200, say): to the tunnel's own session. An Upgrade is counted only."""
        if analysis.tunnel:
            return
        events = analysis.session.feed(event.direction, event.data, ts)
        self._app_events(flow, analysis, events, ts)

    def _on_tls_handshake(
        self, flow: Flow, analysis: Analysis, event: tls.TlsHandshake, ts: float
    ) -> None:
        self._emit(eve.tls_record(flow, event))
        if self._meter is not None and event.sni:
            self._meter.name(flow.server, event.sni, "sni")

    def _dns(self, flow: Flow, pkt: Packet) -> None:
        """A UDP datagram from port 53: a DNS response names the addresses it resolves, the
        meter's third name source after SNI and Host. Read only from the server of a flow
        whose client spoke first (sent the query), so an unsolicited datagram names nothing.
        A malformed one is an anomaly and the flow's later datagrams are only counted."""
        if pkt.src != flow.server or not flow.pkts_toserver:
            return
        try:
            answers = dns.parse_response(pkt.payload)
        except dns.DnsViolation as exc:
            flow.counted = True
            detail = f"{exc.detail} (capture cut)" if pkt.payload_missing else exc.detail
            self._anomaly(flow, Anomaly(exc.reason, detail, pkt.ts), "app", pkt.ts)
            return
        meter = self._meter
        if meter is not None:
            for answer in answers:
                if answer.query:
                    for address in answer.addresses:
                        meter.name(address, answer.query, "dns")

    def _on_ftp_expected(
        self, flow: Flow, analysis: Analysis, event: ftp.FtpDataExpected, ts: float
    ) -> None:
        """Remember where the announced data connection will go. Clients connect to the
        control server's address whatever a 227 says, so passive endpoints are keyed by it."""
        if event.mode == "passive":
            host = flow.server
        else:
            try:
                host = (
                    socket.inet_pton(
                        socket.AF_INET6 if ":" in event.host else socket.AF_INET, event.host
                    )
                    if event.host
                    else flow.client
                )
            except OSError:
                host = flow.client
        port = event.port or flow.client_port
        if len(self._ftp_expected) >= _MAX_FTP_EXPECTED:
            self._ftp_expected.pop(next(iter(self._ftp_expected)))
        self._ftp_expected[(host, port)] = (flow, event)

    def _on_ftp_session(
        self, flow: Flow, analysis: Analysis, event: ftp.FtpSession, ts: float
    ) -> None:
        self._emit(eve.ftp_session_record(flow, event))
        if event.auth_tls:
            analysis.tunnel = True

    def _link_ftp_data(self, flow: Flow, analysis: Analysis) -> None:
        """A new connection's first byte: is it a data connection an FTP control connection
        announced? Then its bytes are that transfer's file, whatever they look like."""
        link = self._ftp_expected.pop((flow.server, flow.server_port), None)
        if link is None:
            return
        control, expected = link
        self._ftp_serial += 1
        parser = ftpdata.FtpDataParser(expected, self._ftp_serial)
        analysis.session = AppSession.attached("ftp-data", parser)
        analysis.ftp_context = {
            "type": "data",
            "command": expected.command,
            "filename": expected.filename,
            "mode": expected.mode,
            "control_flow_id": control.flow_id,
            "control_tx_id": expected.txid,
        }

    def _on_ftp_data_start(
        self, flow: Flow, analysis: Analysis, event: ftpdata.DataStart, ts: float
    ) -> None:
        analysis.ftp_upload = event.upload
        analysis.entities[analysis.ftp_key(event.txid)] = BodyEntity(
            [], [], event.ts, self._content_caps, self._store, event.filename
        )

    def _on_http_request(
        self, flow: Flow, analysis: Analysis, event: http.HttpRequestHead, ts: float
    ) -> None:
        analysis.requests[event.txid] = event
        if self._meter is not None:
            for key, value in event.headers:
                if key.lower() == b"host":
                    name = _host_name(value)
                    if name is not None:
                        self._meter.name(flow.server, name, "http")
                    break

    def _on_http_transaction(
        self, flow: Flow, analysis: Analysis, event: http.HttpTransaction, ts: float
    ) -> None:
        analysis.requests.pop(event.txid, None)
        self._emit(eve.http_record(flow, event, analysis.tunnel))

    def _on_http_body_start(
        self, flow: Flow, analysis: Analysis, event: http.BodyStart, ts: float
    ) -> None:
        request = analysis.requests.get(event.txid)
        name_hint = _uri_basename(request.uri) if request is not None else None
        analysis.entities[("http", event.txid, int(event.direction))] = BodyEntity(
            event.headers, event.encodings, event.ts, self._content_caps, self._store, name_hint
        )

    def _on_smtp_message(
        self, flow: Flow, analysis: Analysis, event: smtp.MessageStart, ts: float
    ) -> None:
        analysis.entities[("smtp", event.txid, TO_SERVER)] = MimeMessage(
            event.ts, self._mime_caps, self._content_caps, self._store
        )
        analysis.mail_context[event.txid] = {
            "tx_id": event.txid,
            "mail_from": event.mail_from,
            "rcpt_to": list(event.rcpt_to),
        }

    def _on_smtp_transaction(
        self, flow: Flow, analysis: Analysis, event: smtp.SmtpTransaction, ts: float
    ) -> None:
        message = analysis.messages.pop(event.txid, None)
        analysis.mail_context.pop(event.txid, None)
        record = eve.smtp_record(flow, event, message)
        self.summary.messages.append(record)
        self._emit(record)

    def _entity(self, analysis: Analysis, key: EntityKey) -> Entity:
        entity = analysis.entities.get(key)
        if entity is None:  # data without a start (a parser quirk): an unlabelled body
            if key[0] == "smtp":
                entity = MimeMessage(self._now, self._mime_caps, self._content_caps, self._store)
            else:
                entity = BodyEntity([], [], self._now, self._content_caps, self._store, None)
            analysis.entities[key] = entity
        return entity

    def _feed(self, flow: Flow, analysis: Analysis, key: EntityKey, data: bytes, ts: float) -> None:
        self._entity_results(flow, analysis, key, self._entity(analysis, key).feed(data), ts)

    def _gap(self, flow: Flow, analysis: Analysis, key: EntityKey, size: int, ts: float) -> None:
        self._entity_results(flow, analysis, key, self._entity(analysis, key).gap(size), ts)

    def _finish_entity(
        self, flow: Flow, analysis: Analysis, key: EntityKey, complete: bool, ts: float
    ) -> None:
        entity = analysis.entities.pop(key, None)
        if entity is None:
            return
        self._entity_results(flow, analysis, key, entity.end(complete), ts)
        if isinstance(entity, MimeMessage):
            summary = analysis.messages.setdefault(key[1], eve.MessageSummary())
            summary.attachments = entity.attachments
            summary.size = entity.size
            summary.sha256 = entity.sha256
            summary.complete = complete

    def _entity_results(
        self,
        flow: Flow,
        analysis: Analysis,
        key: EntityKey,
        results: Sequence[FileInfo | Anomaly | MessageHeaders],
        ts: float,
    ) -> None:
        proto, txid, direction = key
        for result in results:
            if isinstance(result, Anomaly):
                self._anomaly(flow, result, "content", ts)
                continue
            if isinstance(result, MessageHeaders):
                analysis.messages.setdefault(txid, eve.MessageSummary()).headers = result
                continue
            context = None
            if proto == "http":
                request = analysis.requests.get(txid)
                context = eve.http_fields(request, None) if request is not None else None
            elif proto == "ftp":
                context = analysis.ftp_context
            elif proto == "smtp":
                context = analysis.mail_context.get(txid)
            record = eve.file_record(
                flow, ts, result, DIRECTION_NAMES[direction], proto, txid, context
            )
            self.summary.objects += 1
            if direction == TO_SERVER:
                self.summary.uploads.append(record)
            self._emit(record)

    # -- flow ends -----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Timeouts on the packet clock: held IP fragments, idle flows, long flows."""
        for anomaly in self.decoder.tick(now):
            self._anomaly(None, anomaly, "decode", now)
        ended, interim = self.flows.expire(now)
        for flow in ended:
            self._end_flow(flow, "timeout", now)
        for flow in interim:
            self._emit(eve.flow_record(flow, now, "active_timeout"))
            flow.report_start = now

    def _end_flow(self, flow: Flow, reason: str, ts: float) -> None:
        self._end_bypass(flow)
        if self._meter is not None:
            self._meter_flow(flow, self._meter_time(ts))
        analysis = flow.app
        if isinstance(analysis, Analysis):
            if analysis.streams is not None:
                for direction in (TO_SERVER, TO_CLIENT):
                    streams = analysis.streams
                    if streams is None:
                        break
                    rest = streams[direction].flush(ts)
                    if rest:
                        self._deliver(flow, analysis, direction, rest, ts)
                if analysis.streams is not None:
                    self._check_stream_ends(flow, analysis, ts)
            for direction in (TO_SERVER, TO_CLIENT):
                if not analysis.eof_sent[direction]:
                    analysis.eof_sent[direction] = True
                    events = analysis.session.eof(Direction(direction), ts)
                    self._app_events(flow, analysis, events, ts)
            self._stop_analysis(flow, analysis, ts)
            flow.app_proto = analysis.session.app_proto
            flow.app = None
        self.summary.flows += 1
        self._emit(eve.flow_record(flow, ts, reason))

    def finish(self) -> Summary:
        """End of input: every flow ends (reason "shutdown"), then a `stats` record."""
        ts = self._now
        self.summary.last_ts = ts if self.summary.first_ts is not None else None
        if self._meter is not None:
            inside = self._meter_time(ts)
            for flow in self.flows:
                self._meter_flow(flow, inside)
        for flow in self.flows.drain():
            self._end_flow(flow, "shutdown", ts)
        for anomaly in self.decoder.tick(float("inf")):  # every held fragment expires now
            self._anomaly(None, Anomaly(anomaly.kind, anomaly.detail, ts), "decode", ts)
        if self._meter is not None:
            self._meter_results(self._meter.finish())
        self._emit(eve.stats_record(ts, self.stats()))
        return self.summary

    def capture_error(self, path: str, message: str) -> None:
        """A capture file was damaged; what came before the damage was processed."""
        ts = self._now
        self.summary.capture_errors.append(f"{path}: {message}")
        self._anomaly(None, Anomaly("capture_truncated", f"{path}: {message}", ts), "capture", ts)

    def stats(self) -> eve.Record:
        s = self.summary
        return {
            "packets": s.packets,
            "bytes": s.bytes,
            "decoder": self.decoder.stats.as_dict(),
            "flows": {
                "created": self.flows.created,
                "ended": s.flows,
                "timed_out": self.flows.timed_out,
                "evicted": self.flows.evicted,
                "peak": self.flows.peak,
                "bypassed_packets": self._bypassed,
            },
            "stream": {
                "gap_bytes": self._gap_bytes,
                "retransmitted_bytes": self._retransmitted,
                "overlap_conflicts": self._overlap_conflicts,
                "memcap_peak": self.memcap.peak,
                "memcap_refusals": self.memcap.refusals,
            },
            "objects": s.objects,
            "anomalies": dict(sorted(s.anomalies.items())),
            "events": dict(sorted(s.events.items())),
            "capture_errors": list(s.capture_errors),
            **self.stats_extra,
        }

    def emit_stats(self, extra: eve.Record) -> None:
        """A `stats` event now (the live runtime's periodic one), with the runtime's own
        counters (capture, eBPF probe) added."""
        self.stats_extra = extra
        self._emit(eve.stats_record(self._now, self.stats()))


def _uri_basename(uri: bytes) -> str | None:
    """The last path segment of a request URI, as a filename hint (as Suricata does)."""
    try:
        path = urlsplit(uri.decode("latin-1")).path
    except ValueError:
        return None
    name = posixpath.basename(unquote_to_bytes(path).decode("utf-8", errors="replace"))
    return name or None


def _host_name(value: bytes) -> str | None:
    """The name in an HTTP Host header (RFC 9110 7.2), without port; None for an IP literal
    (it names nothing the address does not) or for something that is not a host name."""
    text = value.strip().decode("ascii", errors="replace").lower()
    if text.startswith("["):  # IPv6 literal, with or without a port
        return None
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if not host or len(host) > 253 or not _HOSTNAME.fullmatch(host):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.rstrip(".")
    return None


def _track_payload(flow: Flow, direction: int, seq_bytes: bytes, size: int) -> None:
    """Unique payload bytes of a TCP direction: the sequence space up to the highest sequence
    number seen (serial arithmetic, RFC 1982), so retransmissions do not count. A segment that
    jumps ahead counts the hole before it too (up to `_MAX_PAYLOAD_HOLE`): the sender sent
    those bytes, and the reordered (or uncaptured) segment filling it later lies below the
    high-water mark."""
    end = (int.from_bytes(seq_bytes, "big") + size) & 0xFFFFFFFF
    if direction == TO_SERVER:
        high = flow.seq_high_toserver
        if high < 0:
            flow.payload_toserver += size
            flow.seq_high_toserver = end
        else:
            ahead = (end - high) & 0xFFFFFFFF
            if 0 < ahead < 0x80000000:
                flow.payload_toserver += ahead if ahead <= size + _MAX_PAYLOAD_HOLE else size
                flow.seq_high_toserver = end
    else:
        high = flow.seq_high_toclient
        if high < 0:
            flow.payload_toclient += size
            flow.seq_high_toclient = end
        else:
            ahead = (end - high) & 0xFFFFFFFF
            if 0 < ahead < 0x80000000:
                flow.payload_toclient += ahead if ahead <= size + _MAX_PAYLOAD_HOLE else size
                flow.seq_high_toclient = end
