"""SSH parser for both directions of one TCP connection (protocols stage).

In: reassembled bytes of the client->server and server->client streams, gaps and eofs (sans-IO,
see base.py). Out: `Anomaly` events as they happen and ONE `SshSession` per connection, when
both directions reached eof (or with the `ProtocolViolation` that stops the parser).

Theory of operation
-------------------
Cleartext phase, per direction (`_Phase`; RFC 4253 for SSH-2):

    BANNER --other line (RFC 4253 4.2)----------------------------------------------> BANNER
    BANNER --"SSH-2.<n>-..." (either side), "SSH-1.99-..." (client)------------------> PACKETS
    BANNER --"SSH-1.<n>-...", n != 99------------------------------------------------> V1_PACKETS
    BANNER --"SSH-1.99-..." (server)-------------------------------------------------> UNDECIDED
    UNDECIDED --the client speaks 2 / 1 (or, client unseen: what follows looks like a
                KEXINIT or not)------------------------------------------> PACKETS / V1_PACKETS
    PACKETS --SSH_MSG_NEWKEYS--------------------------------------------------------> ENCRYPTED
    V1_PACKETS --SSH_SMSG_PUBLIC_KEY (server) / SSH_CMSG_SESSION_KEY (client)--------> ENCRYPTED

BANNER buffers one line (cap `MAX_BANNER_LINE`, 8 KiB, OpenSSH's SSH_MAX_BANNER_LEN; RFC 4253
4.2 says 255 bytes, a longer identification is `ssh_banner_long`, a line over the cap
`ssh_banner_too_long` + violation). Lines that do not begin with "SSH-" are skipped, never kept:
the server may send them before its identification string (4.2); a client must not, and its
first such line is `ssh_client_pre_banner` (noted; the session is still read, as an evasion by a
line of junk would otherwise detach the parser). `MAX_PRE_BANNER_LINES` (1024) such lines per
direction are accepted, as many as OpenSSH's client accepts from a server (its
SSH_MAX_PRE_BANNER_LINES), so a server cannot push Sluice off a session a stock client still
speaks; one more is `ssh_too_many_pre_banner_lines` + violation. Memory stays one line.

Versions (RFC 4253 5). The protoversion is "<major>.<minor>"; like OpenSSH, any major 2 is
SSH-2, "1.99" means "2.0, and 1.x for old clients", any other major 1 is SSH-1, anything else is
`ssh_version_unsupported` + violation. The client chooses: a server's "1.99" is read as what the
client then speaks. UNDECIDED holds the server's first bytes after its banner; when 6 of them
are there and the client's banner is still not known (a capture of the server's direction only;
the server's bytes delivered first), a KEXINIT packet header means SSH-2, anything else SSH-1 (a
real "1.99" server waits for the client's banner, RFC 4253 5.1, so the two agree). Sides that
end up speaking different majors (an "SSH-2.0" client and an "SSH-1.5" server, or a client that
contradicts what the server's bytes looked like) are `ssh_version_mismatch`; each side is still
read as it announced. The session's `version` is the client's protoversion (a client's "1.99"
resolved to what it spoke), or the server's when only the server's banner was seen, else None.

SSH-1 (protocol 1.x, the ssh-1.2 drafts; RFC 4253 does not apply). Its binary packets differ
(uint32 length of type + data + CRC, 1-8 bytes of padding to a multiple of 8, type, data,
CRC-32, no MAC) and it has no KEXINIT: the server's SSH_SMSG_PUBLIC_KEY offers cipher and
authentication masks, the client's SSH_CMSG_SESSION_KEY picks a cipher and sends the session key
encrypted under the server's keys, and from there on both directions are encrypted. Sluice frames
those cleartext packets (caps as for SSH-2) and parses nothing in them: an SSH-1 session has no
HASSH, no kex/host key/cipher/MAC/compression (all None), and its encrypted phase is only counted
(`encrypted_bytes`, per direction, everything after each side's key packet); the model below
(auth, transfer, keystrokes) is SSH-2 packet geometry and is not run (auth None, transfer
"unknown").

SSH-2 PACKETS reads the binary packet protocol (section 6) with no MAC and no encryption: uint32
packet_length, byte padding_length, payload (cap `MAX_PACKET`, 256 KiB, enough for any KEXINIT).
KEXINIT (7.1) name lists give HASSH (client: md5 of "kex;enc c->s;mac c->s;cmp c->s") and
HASSH-server (md5 of "kex;enc s->c;mac s->c;cmp s->c"), and the negotiated algorithms: in every
category the first algorithm of the CLIENT's list that the server also lists (7.1; host-key
compatibility with the kex method is not checked). cipher/mac/compression are reported
client->server. An AEAD cipher (chacha20-poly1305@openssh.com, aes*-gcm@openssh.com) carries its
own tag and ignores the negotiated MAC: `mac_alg` is then "<implicit>" (what OpenSSH's `ssh -v`
prints). Bytes after a direction's NEWKEYS belong to the encrypted phase.

One direction only (a SPAN port or TAP that misses one way; a direction that carried no byte at
all while the other did): the session reports what the seen side sent (its banner, software,
HASSH) and None for the other side and for everything negotiated (that needs both KEXINITs),
with `ssh_one_sided` instead of `ssh_truncated_handshake` for the silent side. For the model
below the packet geometry is then that side's own first cipher and MAC (OpenSSH clients and
servers list the same defaults first; an assumption, never reported), authentication ends after
`AUTH_MAX_CLIENT_RECORDS` records of the seen side, sftp and scp cannot be told apart
(transfer_kind None), and a refused login cannot be told from a capture that lacks the replies
(auth_success None unless a transfer was seen).

Encrypted phase: a model over (direction, size, ts) of each feed() call ("record"; in practice
one TCP segment). Nothing is decrypted; per-session memory is a fixed set of counters.

1. Packet geometry. From the negotiated cipher and MAC the parser knows the wire size of an
   SSH packet carrying p payload bytes: 4 (length) + 1 (padding length) + p + padding (>= 4,
   aligning to the block size, 8 or 16; the length field counts in the alignment except for
   EtM MACs and AEAD ciphers) + MAC/tag. `_Geometry.wire(p)`.
2. Authentication. The smallest possible packet (`wire(1)`; payloads of up to 3 bytes share it)
   sent by the server while authentication is running can only be SSH_MSG_USERAUTH_SUCCESS
   (RFC 4252 5.1: one byte; FAILURE, PK_OK, SERVICE_ACCEPT and BANNER carry strings). Seeing it
   sets auth_success=True and ends the auth phase (which also ends, without a verdict, after
   `AUTH_MAX_CLIENT_RECORDS` (16) client records: a refused client gives up long before, so
   the bulk/typing features below still see the session). Without it, evidence of a working session
   (a bulk transfer or interactive typing, see below) also means True; a session that reached
   the encrypted phase, had the client speak, and ended without either is False (a refused
   login: the client gives up or retries and then disconnects); no encrypted client data ->
   None.
3. Interactive typing. A client record no larger than `wire(9 + 4)` (CHANNEL_DATA with at most
   4 bytes: one key or an escape sequence) that comes `KEY_GAP_MIN`..`KEY_GAP_MAX` (30 ms..5 s)
   after the previous client record is a keystroke. `KEYSTROKES_MIN` (6) keystrokes make the
   session interactive (transfer "interactive", kind "shell"). Inter-key gaps are also binned
   in a small histogram (`key_gaps`) for the output.
4. Bulk. A record of >= `BULK_RECORD` (1024) bytes after authentication is bulk. Per direction
   the transfer window runs from its first to its last bulk record; the window's bytes are
   every record of that direction inside it plus the first small record after it (the last
   partial segment) if it follows within 100 ms. The direction with the most window bytes
   (>= `BULK_MIN_BYTES` 4 KiB and >= 2x the other) is the transfer: upload (client->server)
   or download. transfer_start/end are its window's first and last record times.
5. sftp or scp. SFTP is a request/response protocol that needs several round trips after the
   channel opens before file data flows (subsystem request, INIT/VERSION, REALPATH, OPEN/STAT,
   ...); legacy scp needs the exec request and one or two one-byte acknowledgements. The parser
   counts client "flights" (runs of client records ended by a server record) between the end
   of authentication and the first bulk record: >= `SFTP_MIN_FLIGHTS` (5) -> "sftp", else
   "scp". (OpenSSH >= 9.0 `scp` without -O speaks SFTP on the wire and is reported as sftp.)
6. Byte estimates (application bytes, i.e. file contents for transfers). For the transfer
   direction: window bytes minus framing. SFTP moves 32 KiB per request; a WRITE adds 29 bytes
   of SFTP header (DATA replies 13) and needs two SSH packets (a channel packet carries at most
   32 KiB). Legacy scp streams raw file bytes in channel packets assumed 16 KiB. Every SSH
   packet costs 9 bytes of CHANNEL_DATA header plus `wire(p) - p`. estimate = W * U / (U + F +
   k * (9 + overhead)). Other directions (and interactive sessions): the sum over post-auth
   records of (record - overhead of one minimal packet - 9), floored at 0, which slightly
   over-counts protocol messages as data; interactive uploads are the keystroke count (one
   byte per key record). Compression ("zlib@openssh.com") makes all of this
   wire bytes, not file bytes (not corrected).

Anomaly kinds (stable; "violation" = ProtocolViolation.reason, the parser detaches)
-----------------------------------------------------------------------------------
| kind                          | channel   | meaning                                            |
|-------------------------------|-----------|----------------------------------------------------|
| ssh_banner_long               | anomaly   | identification line over 255 bytes (RFC 4253 4.2)  |
| ssh_banner_too_long           | violation | identification/pre-banner line over MAX_BANNER_LINE|
| ssh_bad_banner                | violation | not "SSH-x.y-software"                             |
| ssh_client_pre_banner         | anomaly   | the client sent a line before its banner (4.2)     |
| ssh_too_many_pre_banner_lines | violation | over MAX_PRE_BANNER_LINES lines before a banner    |
| ssh_version_unsupported       | violation | protocol version neither 2.x nor 1.x               |
| ssh_version_mismatch          | anomaly   | client and server speak different majors (1 vs 2)  |
| ssh_bad_packet                | violation | cleartext packet length/padding impossible         |
| ssh_packet_too_long           | violation | cleartext packet over MAX_PACKET                   |
| ssh_bad_kexinit               | violation | KEXINIT name-lists malformed                       |
| ssh_no_common_algorithm       | anomaly   | client and server share no algorithm in a category |
| ssh_gap_in_handshake          | violation | capture gap before encryption started              |
| ssh_truncated_handshake       | anomaly   | a direction ended before its NEWKEYS / key packet  |
| ssh_one_sided                 | anomaly   | only one direction carried data (module docstring) |
"""

from __future__ import annotations

import enum
import hashlib
import re
import struct
from dataclasses import dataclass

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction, ProtocolEvent, ProtocolViolation

__all__ = ["Anomaly", "SshParser", "SshSession", "SshViolation", "detect"]

# --- caps and thresholds (named, see the module docstring) --------------------------------------
RFC_BANNER_LINE = 255  # RFC 4253 4.2, CR LF included
MAX_BANNER_LINE = 8192  # one identification/pre-banner line (OpenSSH: SSH_MAX_BANNER_LEN)
MAX_PRE_BANNER_LINES = 1024  # lines before "SSH-" (OpenSSH's client: SSH_MAX_PRE_BANNER_LINES)
MAX_PACKET = 256 * 1024  # cleartext packet (KEXINIT is the largest, a few KiB in practice)
MAX_NAME_LIST = 64 * 1024
BULK_RECORD = 1024
BULK_MIN_BYTES = 4096
BULK_DOMINANCE = 2.0
TAIL_WINDOW = 0.1
KEY_GAP_MIN = 0.03
KEY_GAP_MAX = 5.0
KEYSTROKES_MIN = 6
SFTP_MIN_FLIGHTS = 5
AUTH_MAX_CLIENT_RECORDS = 16  # (or server records, when no client byte was seen)
KEY_GAP_BINS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # histogram upper bounds, seconds

MSG_DISCONNECT = 1
MSG_KEXINIT = 20
MSG_NEWKEYS = 21
V1_SMSG_PUBLIC_KEY = 2  # SSH-1: the server's keys, the last packet it sends in clear
V1_CMSG_SESSION_KEY = 3  # SSH-1: the client's session key, the last packet it sends in clear

_PROTOVERSION = re.compile(rb"([0-9]{1,9})\.([0-9]{1,9})")  # "2.0", "1.99", "1.5"

_AEAD = {"chacha20-poly1305@openssh.com": (8, 16), "aes128-gcm@openssh.com": (16, 16),
         "aes256-gcm@openssh.com": (16, 16)}  # fmt: skip
_BLOCK = {"3des-cbc": 8, "blowfish-cbc": 8, "cast128-cbc": 8, "none": 8}  # others: 16 (AES)
_MAC_LEN = {"hmac-sha1": 20, "hmac-sha1-96": 12, "hmac-md5": 16, "hmac-md5-96": 12,
            "hmac-sha2-256": 32, "hmac-sha2-512": 64, "umac-64@openssh.com": 8,
            "umac-128@openssh.com": 16, "hmac-ripemd160": 20, "none": 0}  # fmt: skip
IMPLICIT_MAC = "<implicit>"


# --- events ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class SshSession(ProtocolEvent):
    """One SSH connection. Software = the RFC 4253 softwareversion (banner up to the first
    space, after "SSH-protoversion-"). Algorithms are the negotiated ones, None for SSH-1 and
    when only one side was seen (module docstring)."""

    version: str | None  # protocol version spoken: "2.0", "1.5", ... (module docstring)
    client_banner: str | None
    client_software: str | None
    server_banner: str | None
    server_software: str | None
    client_hassh: str | None
    client_hassh_string: str | None
    server_hassh: str | None
    server_hassh_string: str | None
    kex_alg: str | None
    host_key_alg: str | None
    cipher_alg: str | None
    mac_alg: str | None
    compression_alg: str | None
    auth_success: bool | None
    transfer: str  # "upload" | "download" | "interactive" | "unknown"
    transfer_kind: str | None  # "sftp" | "scp" | "shell" | None
    upload_bytes_est: int
    download_bytes_est: int
    transfer_start: float | None
    transfer_end: float | None
    ts: float
    keystrokes: int = 0
    encrypted_bytes: tuple[int, int] = (0, 0)  # after NEWKEYS/SSH-1 key packet: (to srv, to cli)
    key_gaps: tuple[int, ...] = ()  # keystroke gap histogram, bins KEY_GAP_BINS + overflow


SshEvent = SshSession | Anomaly  # everything SshParser returns


class SshViolation(ProtocolViolation):
    """The SSH parser's violation (carries `events`, see ProtocolViolation)."""


# --- packet geometry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Geometry:
    block: int
    mac: int
    length_in_padding: bool  # False for EtM MACs and AEAD ciphers

    def wire(self, payload: int) -> int:
        """Wire size of an SSH packet with `payload` bytes (RFC 4253 section 6)."""
        head = 4 if self.length_in_padding else 0
        body = head + 1 + payload + 4  # minimum padding is 4
        body += -body % self.block
        return body + (0 if self.length_in_padding else 4) + self.mac

    def overhead(self, payload: int) -> int:
        return self.wire(payload) - payload


def _geometry(cipher: str | None, mac: str | None) -> _Geometry:
    if cipher in _AEAD:
        block, tag = _AEAD[cipher]
        return _Geometry(block, tag, False)
    block = _BLOCK.get(cipher or "", 16)
    name = mac or "none"
    etm = name.endswith("-etm@openssh.com")
    base = name.removesuffix("-etm@openssh.com")
    return _Geometry(block, _MAC_LEN.get(base, 32), not etm)


# --- per-direction state --------------------------------------------------------------------------


class _Phase(enum.Enum):
    BANNER = "banner"  # the identification string, and lines before it
    UNDECIDED = "undecided"  # a "1.99" banner: SSH-1 or SSH-2 follows, as the client chooses
    PACKETS = "packets"  # SSH-2 binary packets in clear, up to NEWKEYS
    V1_PACKETS = "v1 packets"  # SSH-1 packets in clear, up to the key packet
    ENCRYPTED = "encrypted"
    CLOSED = "closed"


@dataclass(slots=True)
class _Side:
    direction: Direction
    phase: _Phase = _Phase.BANNER
    buf: bytearray | None = None
    banner: str | None = None
    proto: str | None = None  # the banner's protoversion, "2.0", "1.99", "1.5"
    both: bool = False  # the banner said "1.99": SSH-2, or SSH-1 for an old peer
    speaks: int | None = None  # major version this side's packets follow: 2, 1, None = unknown
    received: int = 0  # bytes fed or lost in gaps: 0 at the end = this direction not seen
    pre_lines: int = 0
    kexinit: list[str] | None = None  # the 10 name-lists
    eof: bool = False
    # encrypted-phase aggregates
    records: int = 0
    enc_bytes: int = 0
    last_ts: float | None = None
    bulk_first: float | None = None
    bulk_last: float | None = None
    bulk_span: int = 0  # bytes from the first bulk record up to now
    bulk_bytes: int = 0  # bulk_span as of the last bulk record
    tail: int = 0  # first small record after the last bulk record (within TAIL_WINDOW)
    tail_open: bool = False
    small_payload: int = 0  # post-auth estimate from non-bulk reasoning (see docstring, 6.)


def _take_line(buf: bytearray) -> bytes | None:
    nl = buf.find(b"\n")
    if nl < 0:
        return None
    line = bytes(buf[: nl + 1])
    del buf[: nl + 1]
    return line


def _name_lists(payload: bytes) -> list[str]:
    """The ten name-lists of a KEXINIT payload (after the message byte and 16-byte cookie)."""
    pos = 17
    lists: list[str] = []
    for _ in range(10):
        if pos + 4 > len(payload):
            raise SshViolation("ssh_bad_kexinit", "name-list runs past the packet")
        (n,) = struct.unpack_from(">I", payload, pos)
        pos += 4
        if n > MAX_NAME_LIST or pos + n > len(payload):
            raise SshViolation("ssh_bad_kexinit", f"name-list of {n} bytes")
        raw = payload[pos : pos + n]
        pos += n
        if any(b < 0x21 or b > 0x7E for b in raw):  # US-ASCII names, no spaces (RFC 4251 5)
            raise SshViolation("ssh_bad_kexinit", "name-list with non-printable bytes")
        lists.append(raw.decode("ascii"))
    if pos + 5 > len(payload):
        raise SshViolation("ssh_bad_kexinit", "missing first_kex_packet_follows/reserved")
    return lists


def _negotiate(client: str, server: str) -> str | None:
    """RFC 4253 7.1: the first algorithm on the client's list that is also on the server's."""
    offered = set(server.split(","))
    for name in client.split(","):
        if name and name in offered:
            return name
    return None


def _software(banner: str) -> str | None:
    parts = banner.split("-", 2)
    return parts[2].split(" ", 1)[0] if len(parts) == 3 else None


def _looks_like_kexinit(buf: bytearray) -> bool:
    """An SSH-2 binary packet header carrying KEXINIT, the first packet either SSH-2 side sends
    (RFC 4253 7.1). An SSH-1 packet has padding there instead (zeros in clear, OpenSSH)."""
    length, pad, msg = struct.unpack_from(">IBB", buf, 0)
    return msg == MSG_KEXINIT and 4 <= pad < length <= MAX_PACKET


# --- the parser -----------------------------------------------------------------------------------


class SshParser:
    """SSH over one TCP connection. One instance per flow; see the module docstring."""

    name = "ssh"

    def __init__(self) -> None:
        self._sides = (_Side(Direction.TO_SERVER), _Side(Direction.TO_CLIENT))
        self._reported = False
        self._negotiated = False
        self._kex: str | None = None
        self._hostkey: str | None = None
        self._cipher: str | None = None
        self._mac: str | None = None
        self._comp: str | None = None
        self._geo = _geometry(None, None)
        self._min_wire = self._geo.wire(1)
        self._key_max = self._geo.wire(13)
        self._v1 = False  # a side speaks SSH-1: the encrypted phase is only counted
        self._mismatch_noted = False
        # encrypted-phase session features
        self._auth_done = False
        self._auth_marker = False
        self._last_dir: Direction | None = None
        self._flights = 0  # client flights after auth, before the first bulk record
        self._bulk_seen = False
        self._keystrokes = 0
        self._first_key: float | None = None
        self._last_key: float | None = None
        self._key_gaps = [0] * (len(KEY_GAP_BINS) + 1)
        self._ts = 0.0

    # --- public API -------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[SshEvent]:
        side = self._sides[direction]
        self._ts = ts
        out: list[SshEvent] = []
        if self._reported or not data or side.phase is _Phase.CLOSED:
            return out
        side.received += len(data)
        if side.phase is _Phase.ENCRYPTED:
            self._record(side, len(data), ts)
            return out
        try:
            self._cleartext(side, data, ts, out)
        except SshViolation as exc:
            self._violated(exc, out, ts)
            raise
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[SshEvent]:
        side = self._sides[direction]
        self._ts = ts
        if self._reported or side.phase is _Phase.CLOSED or size <= 0:
            return []
        side.received += size
        if side.phase is _Phase.ENCRYPTED:
            # Lost ciphertext is still traffic: counted as bytes of one record, no timing.
            side.enc_bytes += size
            if side.bulk_first is not None:
                side.bulk_span += size
            return []
        exc = SshViolation("ssh_gap_in_handshake", f"{size} bytes missing before encryption")
        self._violated(exc, [], ts)
        raise exc

    def eof(self, direction: Direction, ts: float) -> list[SshEvent]:
        side = self._sides[direction]
        self._ts = ts
        out: list[SshEvent] = []
        if self._reported or side.eof:
            return out
        side.eof = True
        if side.phase not in (_Phase.ENCRYPTED, _Phase.CLOSED) and side.received:
            who = "client" if direction is Direction.TO_SERVER else "server"
            left = len(side.buf) if side.buf else 0
            detail = f"{who} ended in {side.phase.value} phase ({left} bytes unparsed)"
            out.append(Anomaly("ssh_truncated_handshake", detail, ts))
        side.phase = _Phase.CLOSED
        side.buf = None
        if all(s.eof for s in self._sides):
            seen = [s for s in self._sides if s.received]
            if len(seen) == 1:
                way = "client->server" if seen[0].direction is Direction.TO_SERVER else (
                    "server->client")  # fmt: skip
                out.append(Anomaly("ssh_one_sided", f"only {way} data was seen", ts))
            out.append(self._session(ts))
            self._reported = True
        return out

    def _violated(self, exc: SshViolation, out: list[SshEvent], ts: float) -> None:
        """The session goes with the violation; its anomaly is the app layer's to report
        (layer.py adds it after `events`), so it is not in `events` twice."""
        exc.events = [*out, self._session(ts)]
        self._reported = True

    # --- cleartext phase --------------------------------------------------------------------

    def _cleartext(self, side: _Side, data: bytes, ts: float, out: list[SshEvent]) -> None:
        if side.buf is None:
            side.buf = bytearray()
        buf = side.buf
        buf += data
        while side.phase is _Phase.BANNER:
            line = _take_line(buf)
            if line is None:
                if len(buf) > MAX_BANNER_LINE:
                    raise SshViolation("ssh_banner_too_long", f"no line end in {len(buf)} bytes")
                return
            self._banner_line(side, line, ts, out)
        if side.phase is _Phase.UNDECIDED:
            peer = self._sides[1 - side.direction]
            if peer.speaks is not None:
                self._speak(side, peer.speaks, ts, out)
            elif len(buf) >= 6:  # the peer's banner is not known (yet): what follows tells
                self._speak(side, 2 if _looks_like_kexinit(buf) else 1, ts, out)
            else:
                return
        while side.phase is _Phase.PACKETS:
            if len(buf) < 5:
                return
            (length,) = struct.unpack_from(">I", buf, 0)
            pad = buf[4]
            if length > MAX_PACKET:
                raise SshViolation("ssh_packet_too_long", f"packet_length {length}")
            if length < 5 or pad < 4 or pad >= length:
                raise SshViolation("ssh_bad_packet", f"packet_length {length} padding {pad}")
            if len(buf) < 4 + length:
                return
            payload = bytes(buf[5 : 4 + length - pad])
            del buf[: 4 + length]
            self._packet(side, payload, ts, out)
        while side.phase is _Phase.V1_PACKETS:
            if len(buf) < 4:
                return
            (length,) = struct.unpack_from(">I", buf, 0)  # type + data + CRC, padding not counted
            total = 4 + (8 - length % 8) + length
            if total > MAX_PACKET:
                raise SshViolation("ssh_packet_too_long", f"SSH-1 packet length {length}")
            if length < 5:
                raise SshViolation("ssh_bad_packet", f"SSH-1 packet length {length}")
            if len(buf) < total:
                return
            kind = buf[total - length]  # the type byte follows the padding
            del buf[:total]
            last = V1_SMSG_PUBLIC_KEY if side.direction is Direction.TO_CLIENT else (
                V1_CMSG_SESSION_KEY)  # fmt: skip
            if kind == last:  # what follows is encrypted
                side.phase = _Phase.ENCRYPTED
        if side.phase is _Phase.ENCRYPTED:
            rest = len(buf)
            side.buf = None
            if rest:  # first ciphertext arrived in the same segment as NEWKEYS
                self._record(side, rest, ts)

    def _banner_line(self, side: _Side, line: bytes, ts: float, out: list[SshEvent]) -> None:
        if len(line) > MAX_BANNER_LINE:
            raise SshViolation("ssh_banner_too_long", f"{len(line)} byte line")
        text = line.rstrip(b"\r\n")
        if not text.startswith(b"SSH-"):
            # RFC 4253 4.2: only the server may send other lines first; both are capped.
            side.pre_lines += 1
            if side.pre_lines > MAX_PRE_BANNER_LINES:
                raise SshViolation(
                    "ssh_too_many_pre_banner_lines",
                    f"no identification string in {MAX_PRE_BANNER_LINES} lines",
                )
            if side.direction is Direction.TO_SERVER and side.pre_lines == 1:
                out.append(Anomaly("ssh_client_pre_banner", "client line before its banner", ts))
            return
        if len(line) > RFC_BANNER_LINE:
            out.append(Anomaly("ssh_banner_long", f"{len(line)} byte identification", ts))
        parts = text.split(b"-", 2)
        if len(parts) < 3 or not parts[2]:
            raise SshViolation("ssh_bad_banner", "no softwareversion")
        m = _PROTOVERSION.fullmatch(parts[1])
        major, minor = (int(m[1]), int(m[2])) if m else (0, 0)
        if major not in (1, 2):
            version = parts[1][:16].decode("ascii", errors="replace")
            raise SshViolation("ssh_version_unsupported", f"protoversion {version!r}")
        side.banner = text.decode("utf-8", errors="replace")
        side.proto = parts[1].decode("ascii")
        side.both = major == 1 and minor == 99
        if side.both and side.direction is Direction.TO_CLIENT:
            side.phase = _Phase.UNDECIDED  # RFC 4253 5.1: the client's version decides
        else:
            self._speak(side, 2 if major == 2 or side.both else 1, ts, out)

    def _speak(self, side: _Side, major: int, ts: float, out: list[SshEvent]) -> None:
        """`side` speaks SSH-`major` from here on; a server still UNDECIDED follows it."""
        side.speaks = major
        side.phase = _Phase.PACKETS if major == 2 else _Phase.V1_PACKETS
        if major == 1:
            self._v1 = True
        peer = self._sides[1 - side.direction]
        if peer.phase is _Phase.UNDECIDED:
            self._cleartext(peer, b"", ts, out)  # what it holds can be read now
        elif peer.speaks is not None and peer.speaks != major and not self._mismatch_noted:
            self._mismatch_noted = True
            detail = f"client {self._sides[0].proto}, server {self._sides[1].proto}"
            out.append(Anomaly("ssh_version_mismatch", detail, ts))

    def _packet(self, side: _Side, payload: bytes, ts: float, out: list[SshEvent]) -> None:
        if not payload:
            return
        msg = payload[0]
        if msg == MSG_KEXINIT:
            if side.kexinit is None:  # a re-sent KEXINIT before NEWKEYS changes nothing
                side.kexinit = _name_lists(payload)
                self._maybe_negotiate(ts, out)
        elif msg == MSG_NEWKEYS:
            side.phase = _Phase.ENCRYPTED
            if not self._negotiated and side.kexinit is not None:
                # The other KEXINIT is not (yet) seen, e.g. a one-sided capture: until it is,
                # the model assumes this side's first cipher and MAC (never reported).
                cipher = side.kexinit[2].split(",", 1)[0]
                mac = IMPLICIT_MAC if cipher in _AEAD else side.kexinit[4].split(",", 1)[0]
                self._set_geometry(cipher, mac)

    def _maybe_negotiate(self, ts: float, out: list[SshEvent]) -> None:
        c, s = self._sides[0].kexinit, self._sides[1].kexinit
        if c is None or s is None or self._negotiated:
            return
        self._negotiated = True
        # kex, host key, cipher, mac, compression; the client->server lists (RFC 4253 7.1)
        picks = [_negotiate(c[i], s[i]) for i in (0, 1, 2, 4, 6)]
        names = ("kex", "host key", "cipher", "mac", "compression")
        for what, pick in zip(names, picks, strict=True):
            if pick is None and what != "mac":
                out.append(Anomaly("ssh_no_common_algorithm", f"no common {what} algorithm", ts))
        self._kex, self._hostkey, self._cipher, self._mac, self._comp = picks
        if self._cipher in _AEAD:
            self._mac = IMPLICIT_MAC
        elif self._mac is None:
            out.append(Anomaly("ssh_no_common_algorithm", "no common mac algorithm", ts))
        self._set_geometry(self._cipher, self._mac)

    def _set_geometry(self, cipher: str | None, mac: str | None) -> None:
        self._geo = _geometry(cipher, mac)
        self._min_wire = self._geo.wire(1)
        self._key_max = self._geo.wire(13)

    # --- encrypted phase --------------------------------------------------------------------

    def _record(self, side: _Side, size: int, ts: float) -> None:
        """One encrypted record: update the bounded features (module docstring, 2.-6.)."""
        prev_ts = side.last_ts
        side.records += 1
        side.enc_bytes += size
        side.last_ts = ts
        if self._v1:
            return  # SSH-1: counted only (module docstring)
        client = side.direction is Direction.TO_SERVER
        turn = self._last_dir is not side.direction
        self._last_dir = side.direction
        if not self._auth_done:
            if not client and size == self._min_wire and self._sides[0].records > 0:
                self._auth_done = self._auth_marker = True  # USERAUTH_SUCCESS
            elif self._sides[0].records > AUTH_MAX_CLIENT_RECORDS:
                self._auth_done = True  # marker missed: look at what follows (2. below)
            elif not self._sides[0].received and side.records > AUTH_MAX_CLIENT_RECORDS:
                self._auth_done = True  # only the server's direction is seen
            return
        if size >= BULK_RECORD:
            if side.bulk_first is None:
                side.bulk_first = ts
            if side.tail_open:
                side.tail_open = False
            side.bulk_span += size
            side.bulk_bytes = side.bulk_span
            side.bulk_last = ts
            side.tail = 0
            self._bulk_seen = True
            return
        side.small_payload += max(0, size - self._geo.overhead(1) - 8)
        if side.bulk_first is not None:
            side.bulk_span += size
            if side.tail == 0 and side.bulk_last is not None and ts - side.bulk_last <= TAIL_WINDOW:
                side.tail = size
        if client:
            if turn and not self._bulk_seen:
                self._flights += 1
            if size <= self._key_max and prev_ts is not None:
                gap = ts - prev_ts
                if KEY_GAP_MIN <= gap <= KEY_GAP_MAX:
                    self._keystrokes += 1
                    if self._first_key is None:
                        self._first_key = ts
                    self._last_key = ts
                    for i, bound in enumerate(KEY_GAP_BINS):
                        if gap <= bound:
                            self._key_gaps[i] += 1
                            break
                    else:
                        self._key_gaps[-1] += 1

    def _window_estimate(self, side: _Side, kind: str | None) -> int:
        """Application bytes of a transfer direction (module docstring, 6.)."""
        wire = side.bulk_bytes + side.tail
        upload = side.direction is Direction.TO_SERVER
        if kind == "sftp":
            unit, framing, packets = 32768, (29 if upload else 13), 2
        else:
            unit, framing, packets = 16384, 0, 1
        per_packet = 9 + self._geo.overhead(unit // packets)
        return int(wire * unit / (unit + framing + packets * per_packet))

    # --- the session event ------------------------------------------------------------------

    def _version(self) -> str | None:
        """The protocol version spoken (module docstring, Versions)."""
        cs, ss = self._sides
        if cs.proto is None:
            return ss.proto
        if not cs.both:
            return cs.proto
        return "2.0" if cs.speaks == 2 else cs.proto

    def _session(self, ts: float) -> SshSession:
        cs, ss = self._sides
        c_str = s_str = None
        if cs.kexinit is not None:
            c_str = ";".join(cs.kexinit[i] for i in (0, 2, 4, 6))
        if ss.kexinit is not None:
            s_str = ";".join(ss.kexinit[i] for i in (0, 3, 5, 7))
        encrypted = cs.phase is not _Phase.BANNER and (cs.records > 0 or ss.records > 0)
        transfer, kind = "unknown", None
        start = end = None
        up = cs.small_payload
        down = ss.small_payload
        big = max(cs, ss, key=lambda s: s.bulk_bytes + s.tail)
        small = ss if big is cs else cs
        big_bytes = big.bulk_bytes + big.tail
        both_seen = cs.received > 0 and ss.received > 0
        if self._keystrokes >= KEYSTROKES_MIN:
            transfer, kind = "interactive", "shell"
            start, end = self._first_key, self._last_key
            up = self._keystrokes  # one typed byte per keystroke record
            if ss.bulk_first is not None:
                down += ss.bulk_bytes
        elif big_bytes >= BULK_MIN_BYTES and big_bytes >= BULK_DOMINANCE * (
            small.bulk_bytes + small.tail
        ):
            transfer = "upload" if big is cs else "download"
            if both_seen:  # flights are client runs ended by a server record
                kind = "sftp" if self._flights >= SFTP_MIN_FLIGHTS else "scp"
            start, end = big.bulk_first, big.bulk_last
            if big is cs:
                up = self._window_estimate(cs, kind)
            else:
                down = self._window_estimate(ss, kind)
        if self._auth_marker or transfer != "unknown":
            auth: bool | None = True
        elif (
            encrypted
            and both_seen
            and not self._v1
            and cs.records > 1
            and all(s.eof for s in self._sides)
        ):
            auth = False
        else:
            auth = None
        return SshSession(
            version=self._version(),
            client_banner=cs.banner,
            client_software=_software(cs.banner) if cs.banner else None,
            server_banner=ss.banner,
            server_software=_software(ss.banner) if ss.banner else None,
            client_hassh=hashlib.md5(c_str.encode()).hexdigest() if c_str is not None else None,
            client_hassh_string=c_str,
            server_hassh=hashlib.md5(s_str.encode()).hexdigest() if s_str is not None else None,
            server_hassh_string=s_str,
            kex_alg=self._kex,
            host_key_alg=self._hostkey,
            cipher_alg=self._cipher,
            mac_alg=self._mac,
            compression_alg=self._comp,
            auth_success=auth,
            transfer=transfer,
            transfer_kind=kind,
            upload_bytes_est=up if auth else 0,
            download_bytes_est=down if auth else 0,
            transfer_start=start,
            transfer_end=end,
            ts=ts,
            keystrokes=self._keystrokes,
            encrypted_bytes=(cs.enc_bytes, ss.enc_bytes),
            key_gaps=tuple(self._key_gaps),
        )


def detect(direction: Direction, data: bytes) -> bool | None:
    """The prefix "SSH-" starts the identification string either side sends first (RFC 4253 4.2).

    Lines a server sends before its identification string do not match: such a session is found
    by the client's banner, which a client sends first. (Looking past lines would let a client
    that sends "junk CR LF SSH-..." pass for the server and turn the flow round.) So a capture
    of only the server's direction is not recognised when that server sends such lines."""
    prefix = b"SSH-"
    if len(data) < len(prefix):
        return None if prefix.startswith(data) else False
    return data.startswith(prefix)
