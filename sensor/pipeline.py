"""The one place where Sluice's stages are wired in order (DESIGN.md "Data flow").

    Frame -> decode -> flows -> reassembly + protocols (the app layer) -> content -> outputs
                         |                                   names          |
                         +-----------------> metering <---------------------+

`Pipeline.process(frame)` is the per-packet path, `tick(now)` moves the packet clock when no
packet comes (live capture), `finish()` ends every flow at the end of input. Time is the
packet's timestamp throughout, so replaying a capture is deterministic and equals what the live
sensor would decide. Records leave through `sinks` (callables taking one record); the pipeline
itself opens no files and reads no clock.

The pipeline knows no protocol, header or port: per analysed flow it keeps one object of each
stage (`FlowState`), hands the flow's packets to its app layer (sensor/protocols/layer.py) and
routes what comes back: objects to the content stage (sensor/content/router.py), names to the
meter, everything else to the outputs (the log of the protocol that produced it, or the anomaly
log). The meter closes its buckets on the same clock.

Where a new piece goes
----------------------
* A protocol: a module in sensor/protocols/ (detector, parser returning typed events), its log
  in sensor/outputs/, and one `Registration` line in `registrations()` below.
* An object consumer (fingerprints, classifiers): in sensor/content/, attached where
  router.py hands object bytes to the content engines; it never needs to know the protocol.
* A decision stage (policy, verdicts, evidence): takes the findings and file results as values
  from here and returns values; its records go out through the outputs like any other.
"""

from __future__ import annotations

import ipaddress
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from probes.frame import LINKTYPE_ETHERNET, Frame
from sensor.anomaly import Anomaly
from sensor.classify.assets import ClassifyAssets
from sensor.classify.canary import Canary
from sensor.classify.detectors import DetectorSet, load_detectors
from sensor.classify.score import Classification, Classifier
from sensor.config import OS_POLICIES, Config
from sensor.content.fingerprint.fingerprinter import Fingerprint
from sensor.content.fingerprint.table import FileTypeTable
from sensor.content.mime import MimeCaps
from sensor.content.objects import ContentCaps, FileInfo, ObjectMeta, ObjectStore, TextConsumer
from sensor.content.router import ContentResult, ObjectFile, ObjectRouter
from sensor.decode.decoder import DecodeCaps, Decoder
from sensor.decode.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
)
from sensor.flows.bypass import ETH_IP4_TCP_MIN, ETH_IP4_TUPLE, Bypass, tuple_key
from sensor.flows.bypass import count as count_bypassed
from sensor.flows.halfopen import (
    SYN_FLAGS_AT,
    HalfOpen,
    cut,
    flow_key,
    merge_singles,
    summarize,
    syn_key,
)
from sensor.flows.table import (
    REASON_EVICTED,
    STATE_CLOSED,
    STATE_ESTABLISHED,
    STATE_NEW,
    TO_CLIENT,
    TO_SERVER,
    Flow,
)
from sensor.flows.table import FlowTable as _FlowTable
from sensor.metering.meter import DestinationFacts, Meter, MeterOutput
from sensor.metering.store import MeterStore
from sensor.outputs import eve
from sensor.outputs.eve import ProtocolLog, withhold
from sensor.outputs.files import (
    DIRECTION_NAMES,
    FINDING_SEVERITIES,
    canary_record,
    edm_match_record,
    encrypted_upload_record,
    file_record,
    sensitive_content_record,
)
from sensor.outputs.ftp import FtpLog
from sensor.outputs.http import HttpLog, UrlRedactor
from sensor.outputs.meter import meter_records
from sensor.outputs.smtp import SmtpLog
from sensor.outputs.ssh import SshLog
from sensor.outputs.tls import TlsLog
from sensor.policy.decide import Decider, finding_id, record_time, verdict_record
from sensor.protocols import dns, ftp, http, smtp, ssh, tls
from sensor.protocols.base import (
    AddressName,
    AppProto,
    Counted,
    Direction,
    NamesServer,
    ObjectChunk,
    ObjectEnd,
    ObjectGap,
    ObjectStart,
    ReadingForked,
)
from sensor.protocols.detect import ProtocolSpec
from sensor.protocols.expect import Expectations
from sensor.protocols.layer import AppLayer, Event, FlowApp, TcpApp
from sensor.reassembly.tcp import Memcap, StreamCaps, StreamTotals

Sink = eve.Sink
_STATE_FLAGS = TCP_FIN | TCP_SYN | TCP_RST  # the flags that can change a flow's TCP state
# Packet times outside [1970, 9999] cannot be evidence (and no date type holds them): such a
# frame is dropped with an anomaly. A step back by more than the slack is noted; flows keep
# their last time (an age never goes negative).
MAX_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z
BACKWARD_SLACK = 1.0  # seconds; smaller steps are ordinary multi-queue capture jitter
# A TCP flow stays embryonic (no reassembly, no app layer, no content state: a few hundred
# bytes instead of kilobytes) until it carries payload, a FIN or an RST; its control packets
# wait, at most this many, and are fed to the state built then. A SYN flood is then cheap.
EMBRYO_PACKETS = 6
# Plain SYNs are held in the half-open table (sensor/flows/halfopen.py) once this many flows
# wait for their first payload: a flood or a scan. Below, a SYN is an embryonic flow as
# always, which costs less per answered connection than holding its frame and replaying it.
HOLD_AFTER = 1000
# A canary token seen again from the same host in the same place (a beacon's DNS lookups,
# retried requests) within this many seconds of packet time is counted, not reported again.
CANARY_REPEAT = 600.0
MAX_CANARY_SEEN = 4096  # (host, token, place) remembered for that; beyond, forgotten at once
# Known records remembered per host for the `host_records` count of edm_match findings (a
# set of record ids, ~60 bytes each), and hosts remembered; beyond, the count stops growing.
MAX_EDM_RECORDS_PER_HOST = 200_000
MAX_EDM_HOSTS = 256
EVICTION_NOTE_SECONDS = 60.0  # at most one flow_table_full anomaly per minute of packet time
_NO_LOG = ProtocolLog()  # for layers that log nothing ("unknown", "ftp-data")


@dataclass(frozen=True, slots=True)
class Registration:
    """A protocol Sluice reads: its detector and parser (protocols stage), its log (outputs),
    and its rank in the detection order inside an HTTP CONNECT tunnel (0: never there)."""

    spec: ProtocolSpec
    log: Callable[[], ProtocolLog]
    tunnel: int = 0


def registrations(config: Config) -> tuple[Registration, ...]:
    """Detection order (sensor/protocols/detect.py): first match wins."""
    caps = http.HttpCaps(
        max_header_bytes=config.http.max_header_bytes, max_headers=config.http.max_headers
    )
    redact = UrlRedactor(config.output.secret_parameters)
    return (
        Registration(
            ProtocolSpec("http", http.detect, lambda: http.HttpParser(caps)),
            lambda: HttpLog(redact),
            3,
        ),
        Registration(ProtocolSpec("smtp", smtp.detect, smtp.SmtpParser), SmtpLog),
        Registration(ProtocolSpec("ftp", ftp.detect, ftp.FtpParser), FtpLog),
        Registration(ProtocolSpec("tls", tls.detect, tls.TlsParser), TlsLog, 1),
        Registration(ProtocolSpec("ssh", ssh.detect, ssh.SshParser), SshLog, 2),
    )


def _needle(kind: str, value: str) -> str:
    """What of a canary `value` must not reach an output: a URL's path (its host is the
    operator's canary domain, named in configs anyway), else the whole value, case-folded."""
    if kind == "url":
        path = value.split("://", 1)[-1].partition("/")[2]
        value = "/" + path.split("?", 1)[0].split("#", 1)[0]
    return value.casefold()


def _tells_more(held: list[tuple[int, Packet]]) -> bool:
    """Whether an embryonic flow's control packets hold more than a handshake: an ACK beyond
    the peer's ISN + 1 (bytes sent but not captured), an ACK without the peer's SYN seen, or
    SYNs that disagree. Only then does its end need the streams."""
    isn: dict[int, int] = {}
    for direction, pkt in held:
        if pkt.tcp_flags & TCP_SYN and isn.setdefault(direction, pkt.seq) != pkt.seq:
            return True
    for direction, pkt in held:
        if pkt.tcp_flags & TCP_ACK:
            peer = isn.get(1 - direction)
            if peer is None or pkt.ack != (peer + 1) & 0xFFFFFFFF:
                return True
    return False


@dataclass(slots=True, eq=False)
class FlowState:
    """What the pipeline keeps per analysed flow: one object per stage."""

    app: FlowApp
    objects: ObjectRouter | None  # content: the flow's objects in transfer
    logs: dict[str, ProtocolLog] = field(default_factory=dict)  # outputs, by app_proto
    anomalies: int = 0  # written so far (capped by output.max_anomalies_per_flow)
    counted: bool = False  # analysis over: only counted from now on
    bypassed: bool = False  # in the flow bypass
    withheld: list[str] | None = None  # canary tokens seen in its metadata (eve.withhold)


FlowTable = _FlowTable[FlowState]


@dataclass(slots=True)
class Summary:
    """Counters of one run (also the `stats` event's)."""

    packets: int = 0
    bytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    flows: int = 0
    objects: int = 0  # transferred objects
    members: int = 0  # objects opened from containers
    # Fingerprint outcomes: "encrypted", and why `encrypted` was null: "short", "damaged",
    # "high-entropy".
    fingerprints: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    # over output.max_anomalies_per_flow: counted above, no event written
    anomalies_unwritten: int = 0
    canary_repeats: int = 0  # canary hits held back as repeats (CANARY_REPEAT)
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
        stats_source: Callable[[], eve.Record] | None = None,
        file_types: FileTypeTable | None = None,
        detectors: DetectorSet | None = None,
        classify: ClassifyAssets | None = None,
        decider: Decider | None = None,
    ) -> None:
        """`stats_source`: the runtime's own counters (capture, eBPF probe), added to every
        `stats` event. `file_types`: the signature table the runtime loaded from the
        signatures directory (None: the source tree's). `classify`: the key, canary store and
        EDM index the runtime loaded (None: a random key, no canaries, no EDM). `decider`:
        the policy that turns findings into `verdict` events (None: no verdicts)."""
        self.config = config
        self._sinks = tuple(sinks)
        d = config.decode
        self.decoder = Decoder(
            DecodeCaps(
                max_frag_bytes=d.max_frag_bytes,
                max_frag_datagrams=d.max_frag_datagrams,
                frag_timeout=d.frag_timeout,
            ),
            verify_checksums=d.verify_checksums,
        )
        self.flows: FlowTable = _FlowTable(config.flows)
        self._bypass = Bypass()
        self._bypassed = self._bypass.index  # read per frame: one attribute, not two
        self._bypass_on = config.flows.bypass
        # Unanswered SYNs are held as frames, not flows (sensor/flows/halfopen.py).
        self._half_open = (
            HalfOpen(config.flows.tcp_new_timeout, config.flows.half_open_memcap)
            if config.flows.half_open_memcap > 0
            else None
        )
        self._half_open_early = 0  # summed early (over the cap), not yet said in an anomaly
        self._next_half_open_note = 0.0
        s = config.stream
        self._stream_caps = StreamCaps(
            max_pending_bytes=s.max_pending_bytes,
            max_pending_segments=s.max_pending_segments,
            depth=s.depth,
        )
        self.memcap = Memcap(s.memcap)
        # Young flows' delivered bytes kept for overlap readings (layer.TcpApp), all flows.
        self.reading_logs = Memcap(s.readings_memcap)
        # [stream] os_policy, most specific network first.
        self._os_policy = sorted(
            (
                (ipaddress.ip_network(cidr, strict=False), OS_POLICIES[policy])
                for cidr, _, policy in (item.partition("=") for item in s.os_policy)
            ),
            key=lambda rule: rule[0].prefixlen,
            reverse=True,
        )
        self._evictions = 0  # not yet said in a flow_table_full anomaly
        self._next_eviction_note = 0.0
        # Embryonic TCP flows' control packets (see EMBRYO_PACKETS), by flow.
        self._embryos: dict[Flow[FlowState], list[tuple[int, Packet]]] = {}
        self._stream_totals = StreamTotals()
        c = config.content
        self._content_caps = ContentCaps(
            max_decoded_bytes=c.max_decoded_bytes,
            max_ratio=c.max_ratio,
            max_parts=c.max_parts,
            max_part_header_bytes=c.max_part_header_bytes,
            max_depth=c.max_archive_depth,
            max_members=c.max_archive_members,
            max_expanded_bytes=c.max_archive_bytes,
            file_types=file_types,
            text_consumer=self._classifier_of(config, detectors, classify),
        )
        canaries = classify.canaries if classify is not None else None
        # Planted tokens in flow metadata (URLs, Host, SNI, envelopes, DNS names) are looked up
        # whether or not content is classified.
        self._canaries = canaries if canaries is not None and len(canaries) else None
        self._canary_seen: dict[tuple[bytes, str, str], float] = {}  # repeats held back
        self._edm_hosts: dict[bytes, set[int]] = {}  # known records each host sent
        self.decider = decider
        self._mime_caps = MimeCaps()
        self._store = store
        registered = registrations(config)
        self._specs = tuple(r.spec for r in registered)
        self._tunnel_specs = tuple(
            r.spec for r in sorted((r for r in registered if r.tunnel), key=lambda r: r.tunnel)
        )
        self._logs = {r.spec.name: r.log for r in registered}
        # UDP protocols by server port (DNS over UDP is recognised by its port, not content).
        self._udp: dict[int, Callable[[], FlowApp]] = {dns.PORT: dns.DnsResponses}
        self.expectations = Expectations()
        self._meter = meter
        self._meter_store = meter_store
        self._stats_source = stats_source
        self._horizon = -float("inf")  # packet time of the next timeout scan or bucket close
        self._now = 0.0
        self.summary = Summary()

    # -- per packet ----------------------------------------------------------------------

    def process(self, frame: Frame) -> None:
        """One captured frame through every stage. This is the hot path: keep it flat."""
        summary = self.summary
        summary.packets += 1
        ts, data, linktype, _iface, _wire_len = frame
        size = len(data)
        summary.bytes += size
        # Flows that are only counted skip decoding (sensor/flows/bypass.py); a packet due a
        # timeout scan or bucket close takes the full path.
        bypassed = self._bypassed
        if (
            bypassed
            and 0.0 <= ts < self._horizon
            and linktype == LINKTYPE_ETHERNET
            and size >= ETH_IP4_TCP_MIN
        ):
            hit = bypassed.get(data[ETH_IP4_TUPLE])
            if hit is not None and count_bypassed(hit, data, ts):
                self._now = ts
                return
        half = self._half_open
        if (
            half is not None
            and size >= ETH_IP4_TCP_MIN
            and data[SYN_FLAGS_AT] & 0x3F == TCP_SYN  # cheap first: most packets are no SYN
            and (len(self._embryos) >= HOLD_AFTER or half.index)  # under pressure only
            and 0.0 <= ts < self._horizon
            and linktype == LINKTYPE_ETHERNET
        ):
            key = syn_key(data)
            if (
                key is not None
                and ts >= self._now - BACKWARD_SLACK  # a step back: the full path says it
                and self._holds(half, key, ts, cut(data))
            ):
                self._now = ts
                return
        if not 0.0 <= ts <= MAX_TIMESTAMP:
            self._anomaly(None, None, Anomaly("capture_bad_timestamp", f"{ts!r}"), self._now)
            return
        if ts < self._now - BACKWARD_SLACK:
            detail = f"{self._now - ts:.3f} s back"
            self._anomaly(None, None, Anomaly("capture_time_backwards", detail), ts)
        self._decoded(frame, False)

    def _decoded(self, frame: Frame, held: bool) -> None:
        """Decode a frame and take it through the flows and what follows. `held`: a SYN the
        half-open table kept, run now, at its own (earlier) time: the clock stays."""
        decoder = self.decoder
        pkt = decoder.decode(frame)
        if decoder.pending_anomalies:
            self._decode_anomalies(frame.ts)
        if pkt is None:
            return
        ts = pkt.ts
        if not held:
            self._now = ts
            if ts >= self._horizon:
                if self.summary.first_ts is None:
                    self.summary.first_ts = ts
                self._advance(ts)
        # Fast path: a known flow. A SYN on a closed connection's tuple (a new connection) and
        # every new flow take the table's full lookup.
        flows = self.flows
        flags = pkt.tcp_flags
        flow = flows.index.get((pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if flow is None and self._half_open is not None and self._half_open.index:
            flow = self._release(pkt)
        if flow is None or (flags & TCP_SYN and flow.state == STATE_CLOSED):
            flow, direction, ended = flows.lookup(pkt)
            if ended:
                self._ended_early(ended, self._now if held else ts)  # a held SYN is old
        elif pkt.sport == flow.client_port and pkt.src == flow.client:
            direction = TO_SERVER
        else:
            direction = TO_CLIENT
        if ts > flow.last:
            flow.last = ts
        side = flow.toserver if direction == TO_SERVER else flow.toclient
        side.pkts += 1
        side.bytes += pkt.ip_len
        size = len(pkt.payload) + pkt.payload_missing
        if pkt.proto == PROTO_TCP:
            if size:
                side.advance(pkt.seq, size)
            if flags & _STATE_FLAGS or flow.state == STATE_NEW:
                flows.update_tcp_state(flow, direction, flags)
            state = flow.analysis
            if state is None:
                embryo = self._embryos.get(flow)
                if not size and not flags & (TCP_FIN | TCP_RST):
                    if embryo is None:
                        self._embryos[flow] = [(direction, pkt)]
                        return
                    if len(embryo) < EMBRYO_PACKETS:
                        embryo.append((direction, pkt))
                        return
                state = flow.analysis = self._new_tcp_state(flow.server)
                if embryo is not None:
                    self._hatch(flow, state, self._embryos.pop(flow))
            if not state.counted:
                events = state.app.packet(flow, direction, pkt)
                if events:
                    self._route(flow, state, events, ts)
            elif self._bypass_on and not state.bypassed and flow.state == STATE_ESTABLISHED:
                state.bypassed = True
                self._bypass.add(flow)
            return
        side.payload += size
        if pkt.proto == PROTO_UDP:
            self._datagram(flow, direction, pkt)

    # -- half-open attempts (sensor/flows/halfopen.py) -------------------------------------

    def _holds(self, half: HalfOpen, key: bytes, ts: float, data: bytes) -> bool:
        """Hold a plain SYN whose tuple has no flow; False: the full path takes it."""
        if flow_key(data) in self.flows.index:
            return False
        if not half.hold(key, ts, data):
            self._release_key(key)  # a seventh SYN: the tuple becomes a flow after all
            return False
        if half.over_cap():
            self._sum_attempts(half.expired(ts), ts, REASON_EVICTED)
        return True

    def _release(self, pkt: Packet) -> Flow[FlowState] | None:
        """A packet of a tuple with no flow: SYNs held for it (either direction) run first,
        then the packet's flow is whatever they made."""
        if pkt.ip_version != 4 or pkt.proto != PROTO_TCP:
            return None
        self._release_key(tuple_key(pkt.src, pkt.sport, pkt.dst, pkt.dport))
        self._release_key(tuple_key(pkt.dst, pkt.dport, pkt.src, pkt.sport))
        return self.flows.index.get((pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))

    def _release_key(self, key: bytes) -> None:
        assert self._half_open is not None
        frames = self._half_open.take(key)
        for ts, data in frames or ():
            self._decoded(Frame(ts, data, LINKTYPE_ETHERNET, None, len(data)), True)

    def _sum_attempts(
        self, groups: Iterator[list[tuple[float, bytes]]], now: float, reason: str = "timeout"
    ) -> None:
        """Unanswered attempts: one `flow` record (state half_open) per client and server."""
        assert self._half_open is not None
        pairs = summarize(groups)
        meter = self._meter
        for attempts in pairs:
            self._half_open.aggregated += attempts.tuples
            if reason == REASON_EVICTED:
                self._half_open_early += attempts.tuples
            if meter is not None:  # per client, before singles are merged per server
                meter.add(
                    meter.bucket_time(attempts.last),
                    attempts.client,
                    attempts.server,
                    attempts.ip_bytes,
                    attempts.syns,
                    0,
                    attempts.first_port[1],
                )
        for attempts in merge_singles(pairs):
            self.summary.flows += 1
            self._emit(eve.half_open_record(attempts, now, reason))
        if self._half_open_early and now >= self._next_half_open_note:
            self._note_half_open(now)

    def _note_half_open(self, now: float) -> None:
        count, self._half_open_early = self._half_open_early, 0
        self._next_half_open_note = now + EVICTION_NOTE_SECONDS
        detail = f"{count} unanswered attempts summed before their timeout (over the cap)"
        self._anomaly(None, None, Anomaly("half_open_full", detail), now)

    def _ended_early(self, ended: Sequence[tuple[Flow[FlowState], str]], ts: float) -> None:
        """Flows a lookup ended (a port reused, or evicted at flows.max_flows). Evictions are
        said as one `flow_table_full` anomaly per EVICTION_NOTE_SECONDS of packet time, with
        their count: a flood is visible without an anomaly per flow."""
        for old, reason in ended:
            self._end_flow(old, reason, ts)
            if reason == REASON_EVICTED:
                self._evictions += 1
        if self._evictions and ts >= self._next_eviction_note:
            self._note_evictions(ts)

    def _note_evictions(self, ts: float) -> None:
        detail = (
            f"{self._evictions} least recently seen flows ended early: the table holds "
            f"flows.max_flows = {self.config.flows.max_flows}"
        )
        self._anomaly(None, None, Anomaly("flow_table_full", detail), ts)
        self._evictions = 0
        self._next_eviction_note = ts + EVICTION_NOTE_SECONDS

    def _hatch(
        self, flow: Flow[FlowState], state: FlowState, held: list[tuple[int, Packet]]
    ) -> None:
        """An embryonic flow's control packets, fed to its new state as they came."""
        for direction, pkt in held:
            if state.counted:
                return
            events = state.app.packet(flow, direction, pkt)
            if events:
                self._route(flow, state, events, pkt.ts)

    def _new_layer(self) -> AppLayer:
        return AppLayer(self._specs, self._tunnel_specs, self.config.stream.detect_bytes)

    def _policy_for(self, server: bytes) -> str | None:
        """The overlap policy configured for this destination ([stream] os_policy), if any."""
        if not self._os_policy:
            return None
        address = ipaddress.ip_address(server)
        for network, policy in self._os_policy:
            if address.version == network.version and address in network:
                return policy
        return None

    def _new_tcp_state(self, server: bytes) -> FlowState:
        app = TcpApp(
            self._new_layer(),
            self._stream_caps,
            self.memcap,
            self._stream_totals,
            self.expectations,
            policy=self._policy_for(server),
            new_layer=self._new_layer,
            log_budget=self.reading_logs,
        )
        return FlowState(app, ObjectRouter(self._content_caps, self._mime_caps, self._store))

    def _datagram(self, flow: Flow[FlowState], direction: int, pkt: Packet) -> None:
        state = flow.analysis
        if state is None:
            app = self._udp.get(flow.server_port)
            if app is None:
                return
            state = flow.analysis = FlowState(app(), None)
        if not state.counted:
            events = state.app.packet(flow, direction, pkt)
            if events:
                self._route(flow, state, events, pkt.ts)

    # -- routing what the app layer found ------------------------------------------------

    def _route(
        self, flow: Flow[FlowState], state: FlowState, events: Sequence[Event], ts: float
    ) -> None:
        """The app layer's events, in order: objects to the content stage, names to the
        meter, the rest to the log of the protocol that produced them."""
        for event in events:
            if isinstance(event, ObjectChunk | ObjectStart | ObjectGap | ObjectEnd):
                assert state.objects is not None
                if isinstance(event, ObjectStart) and self._canaries is not None:
                    self._indicators(flow, state, event.about, event.proto, ts)
                results = state.objects.route(event, ts)
                if results:
                    at = event.ts if isinstance(event, ObjectEnd) else ts
                    self._content(flow, state, results, at)
            elif isinstance(event, Anomaly):
                self._anomaly(flow, state, event, ts)
            elif isinstance(event, AppProto):
                flow.app_proto = event.name
            elif isinstance(event, ReadingForked):
                assert state.objects is not None
                state.objects.fork(event.reading)
            elif isinstance(event, Counted):
                flow.app_proto = event.app_proto
                state.counted = True
                if state.objects is not None:
                    self._content(flow, state, state.objects.close(), ts)
            elif isinstance(event, AddressName):
                if self._meter is not None:
                    self._meter.name(event.address, event.name, event.source)
            else:
                if self._canaries is not None and self._indicators(
                    flow, state, event, flow.app_proto or "", ts
                ):
                    pass  # a canary names no destination for the meter
                elif self._meter is not None and isinstance(event, NamesServer):
                    name = event.server_name()
                    if name is not None:
                        self._meter.name(flow.server, name, event.name_source)
                record = self._log(state, flow.app_proto).event(flow, event)
                if record is not None:
                    if state.withheld is not None:
                        record = withhold(record, state.withheld)
                    self._emit(record)

    def _content(
        self, flow: Flow[FlowState], state: FlowState, results: list[ContentResult], ts: float
    ) -> None:
        for result in results:
            if isinstance(result, ObjectFile):
                start = result.start
                context = self._log(state, start.proto).file_context(start)
                if context is not None and state.withheld is not None:
                    context = withhold(context, state.withheld)
                info = result.info
                if info.container_path is None:
                    self.summary.objects += 1
                else:
                    self.summary.members += 1
                direction = DIRECTION_NAMES[start.direction]
                self._emit(
                    file_record(
                        flow, ts, info, direction, start.proto, start.txid, context, start.reading
                    )
                )
                fingerprint = info.fingerprint
                if fingerprint is not None:
                    self._fingerprinted(flow, info, fingerprint, start.direction, start.proto, ts)
            elif isinstance(result, Anomaly):
                self._anomaly(flow, state, result, ts)
            else:
                self._log(state, result.start.proto).message(result)

    @staticmethod
    def _classifier_of(
        config: Config, detectors: DetectorSet | None, assets: ClassifyAssets | None
    ) -> Callable[[ObjectMeta], TextConsumer | None] | None:
        """The text consumer that classifies each object, when classification is on.
        Without canaries or an EDM index the keyed hashes need a key only for the run:
        distinct values are counted per object."""
        if not config.classify.enabled:
            return None
        classifier = Classifier(
            detectors or load_detectors(),
            assets.key if assets is not None else os.urandom(32),
            canaries=assets.canaries if assets is not None else None,
            edm=assets.edm if assets is not None else None,
            edm_window=config.classify.edm_window,
        )

        def scorer(meta: ObjectMeta) -> TextConsumer:
            return classifier.scorer()

        return scorer

    def _fingerprinted(
        self,
        flow: Flow[FlowState],
        info: FileInfo,
        fingerprint: Fingerprint,
        direction: Direction,
        proto: str,
        ts: float,
    ) -> None:
        """Count what the fingerprint said; an encrypted object an internal client sent is an
        `encrypted_upload` finding."""
        classification = info.classification
        if isinstance(classification, Classification):
            self._classified(flow, info, classification, direction, proto, ts)
        counts = self.summary.fingerprints
        if fingerprint.encrypted:
            counts["encrypted"] += 1
        elif fingerprint.undecided is not None:
            counts[fingerprint.undecided] += 1
        if (
            fingerprint.encrypted
            and direction == Direction.TO_SERVER
            and self._internal(flow.client)
        ):
            self._emit(
                encrypted_upload_record(
                    flow, ts, info, proto, dest_internal=self._internal(flow.server)
                )
            )

    def _classified(
        self,
        flow: Flow[FlowState],
        info: FileInfo,
        c: Classification,
        direction: Direction,
        proto: str,
        ts: float,
    ) -> None:
        """An upload's content findings: sensitive content from an internal client, known
        patient records (EDM) from an internal client to an outside destination, and any
        canary token, whichever way it moved."""
        for canary in c.canaries:
            way = DIRECTION_NAMES[direction]
            self._emit(canary_record(flow, ts, proto, canary, "content", info, way))
        if direction != Direction.TO_SERVER or not self._internal(flow.client):
            return
        if c.severity in FINDING_SEVERITIES:
            self._emit(sensitive_content_record(flow, ts, info, proto, c))
        if c.edm is not None and c.edm.matched:
            seen = self._edm_hosts.get(flow.client)
            if seen is None:
                if len(self._edm_hosts) >= MAX_EDM_HOSTS:  # the longest-known host goes
                    del self._edm_hosts[next(iter(self._edm_hosts))]
                seen = self._edm_hosts[flow.client] = set()
            if len(seen) < MAX_EDM_RECORDS_PER_HOST:
                seen.update(c.edm.records)
            self._emit(
                edm_match_record(
                    flow, ts, info, proto, c.edm, len(seen),
                    dest_internal=self._internal(flow.server),
                )
            )  # fmt: skip

    def _indicators(
        self, flow: Flow[FlowState], state: FlowState, event: object, proto: str, ts: float
    ) -> bool:
        """Canary tokens in what a protocol event names (a URL, a Host or SNI name, an SMTP
        envelope, a DNS question); True when there was one. A token seen again from the same
        host in the same place within CANARY_REPEAT seconds is counted, not reported again.
        The flow's records withhold the token from then on."""
        assert self._canaries is not None
        indicators: Callable[[], tuple[tuple[str, str, str], ...]] | None
        indicators = getattr(event, "indicators", None)  # events, and an object's `about`
        if indicators is None:
            return False
        hit = False
        for kind, value, where in indicators():
            canary = self._canaries.check(kind, value)
            if canary is None:
                continue
            hit = True
            if state.withheld is None:
                state.withheld = []
            state.withheld.append(_needle(kind, value))
            if self._canary_news(flow.client, canary, where, ts):
                self._emit(canary_record(flow, ts, proto, canary, where))
        return hit

    def _canary_news(self, host: bytes, canary: Canary, where: str, ts: float) -> bool:
        seen = self._canary_seen
        key = (host, canary.digest, where)
        last = seen.get(key)
        if last is not None and ts - last < CANARY_REPEAT:
            self.summary.canary_repeats += 1
            return False
        if len(seen) >= MAX_CANARY_SEEN:
            seen.clear()
        seen[key] = ts
        return True

    def _destination_facts(self, host: str, destination: str) -> DestinationFacts:
        """What the meter knows of `destination` as `host`'s (for the policy)."""
        assert self._meter is not None
        return self._meter.destination(
            ipaddress.ip_address(host).packed, ipaddress.ip_address(destination).packed, self._now
        )

    def _internal(self, ip: bytes) -> bool:
        if self._meter is not None:
            return self._meter.is_internal(ip)
        address = ipaddress.ip_address(ip)
        return any(address in network for network in self.config.home_net)

    def _log(self, state: FlowState, app_proto: str | None) -> ProtocolLog:
        """The flow's log for `app_proto`, made at first use."""
        log = state.logs.get(app_proto or "")
        if log is None:
            factory = self._logs.get(app_proto or "")
            log = state.logs[app_proto or ""] = factory() if factory is not None else _NO_LOG
        return log

    # -- output --------------------------------------------------------------------------

    def _emit(self, record: eve.Record) -> None:
        kind = record["event_type"]
        if kind == "finding":  # an id the verdicts decided on it name
            record["finding"]["id"] = finding_id(record)
        self.summary.events[kind] += 1
        for sink in self._sinks:
            sink(record)
        if self.decider is not None and kind == "finding":
            lookup = self._destination_facts if self._meter is not None else None
            for verdict in self.decider.finding(record, record_time(record), lookup):
                self._emit(verdict_record(record, verdict))

    def _anomaly(
        self, flow: Flow[FlowState] | None, state: FlowState | None, anomaly: Anomaly, ts: float
    ) -> None:
        self.summary.anomalies[anomaly.kind] += 1
        if state is not None:
            state.anomalies += 1
            if state.anomalies > self.config.output.max_anomalies_per_flow:
                self.summary.anomalies_unwritten += 1
                return  # counted in stats, not written again
        self._emit(eve.anomaly_record(flow, anomaly, anomaly.ts or ts))

    def _decode_anomalies(self, ts: float) -> None:
        for anomaly in self.decoder.take_anomalies():
            self._anomaly(None, None, anomaly, ts)

    # -- the packet clock: timeouts and the meter's buckets --------------------------------

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
        """The packet clock reached the horizon: timeouts and meter bucket closes due."""
        flows = self.flows
        if now >= flows.next_scan:
            self._expire(now)
        meter = self._meter
        if meter is None:
            self._horizon = flows.next_scan
            return
        if now >= meter.next_close:
            self._metered(meter.close_bucket(now, flows))
        self._horizon = min(flows.next_scan, meter.next_close)

    def _expire(self, now: float) -> None:
        """Timeouts on the packet clock: held IP fragments, idle flows, long flows, announced
        connections that never came."""
        self.decoder.tick(now)
        self._decode_anomalies(now)
        ended, interim = self.flows.expire(now)
        for flow in ended:
            self._end_flow(flow, "timeout", now)
        if self._half_open is not None and self._half_open.index:
            self._sum_attempts(self._half_open.expired(now), now)
        for flow in interim:
            self._emit(eve.flow_record(flow, now, "active_timeout"))
            flow.report_start = now
        self.expectations.expire(now)

    def _metered(self, output: MeterOutput) -> None:
        for record in meter_records(output.results, self.config.metering.volume_event_interval):
            self._emit(record)
        if self._meter_store is not None and (output.results or output.kernel_totals):
            self._meter_store.write(output.results, output.kernel_totals)

    # -- flow ends -----------------------------------------------------------------------

    def _end_flow(self, flow: Flow[FlowState], reason: str, ts: float) -> None:
        state = flow.analysis
        if state is None:
            held = self._embryos.pop(flow, None)
            if held is not None and _tells_more(held):
                # The control packets say something the streams would report (data acked
                # that was never captured, a second SYN): analyse them as a whole flow would.
                state = flow.analysis = self._new_tcp_state(flow.server)
                self._hatch(flow, state, held)
        if state is not None and state.bypassed:
            self._bypass.remove(flow)
        if self._meter is not None:
            self._meter.flow_ended(flow, ts)
        if state is not None:
            self._route(flow, state, state.app.end(flow, ts), ts)
            flow.analysis = None
        self.summary.flows += 1
        self._emit(eve.flow_record(flow, ts, reason))

    def finish(self) -> Summary:
        """End of input: every flow ends (reason "shutdown"), then a `stats` record."""
        ts = self._now
        self.summary.last_ts = ts if self.summary.first_ts is not None else None
        if self._evictions:
            self._note_evictions(ts)
        for flow in self.flows.drain():
            self._end_flow(flow, "shutdown", ts)
        if self._half_open is not None:
            self._sum_attempts(self._half_open.expired(ts, every=True), ts, "shutdown")
            if self._half_open_early:
                self._note_half_open(ts)
        self.decoder.finish(ts)  # every held fragment expires now
        self._decode_anomalies(ts)
        if self._meter is not None:
            self._metered(self._meter.end(ts, ()))
        self._emit(eve.stats_record(ts, self.stats()))
        return self.summary

    def capture_error(self, path: str, message: str) -> None:
        """A capture file was damaged; what came before the damage was processed."""
        ts = self._now
        self.summary.capture_errors.append(f"{path}: {message}")
        self._anomaly(None, None, Anomaly("capture_truncated", f"{path}: {message}", ts), ts)

    def stats(self) -> eve.Record:
        s = self.summary
        totals = self._stream_totals
        return {
            "packets": s.packets,
            "bytes": s.bytes,
            "decoder": self.decoder.stats.as_dict(),
            "flows": {
                "created": self.flows.created,
                "half_open": self._half_open.aggregated if self._half_open is not None else 0,
                "ended": s.flows,
                "timed_out": self.flows.timed_out,
                "evicted": self.flows.evicted,
                "peak": self.flows.peak,
                "bypassed_packets": s.packets - self.decoder.stats.frames,
            },
            "stream": {
                "gap_bytes": totals.gap_bytes,
                "retransmitted_bytes": totals.retransmitted_bytes,
                "overlap_conflicts": totals.overlap_conflicts,
                "memcap_peak": self.memcap.peak,
                "memcap_refusals": self.memcap.refusals,
            },
            "objects": s.objects,
            "members": s.members,
            "fingerprints": {
                key: s.fingerprints[key]
                for key in ("encrypted", "short", "damaged", "high-entropy")
            },
            "anomalies": dict(sorted(s.anomalies.items())),
            "anomalies_unwritten": s.anomalies_unwritten,
            "events": dict(sorted(s.events.items())),
            "capture_errors": list(s.capture_errors),
            **(self._stats_source() if self._stats_source is not None else {}),
        }

    def emit_stats(self) -> None:
        """A `stats` event now (the live runtime's periodic one)."""
        self._emit(eve.stats_record(self._now, self.stats()))
