"""A real-OpenSSH lab: our own sshd in the server namespace, real clients in the client namespace.

`SshLab` (root: namespaces, tcpdump) builds on `NetnsPair`:

- a temporary directory (removed on exit) with freshly generated host keys (ed25519, ecdsa,
  rsa), one client key (ed25519), `authorized_keys` and an `sshd_config`;
- `/usr/sbin/sshd -D -e -f <config> -h ...` started INSIDE the server namespace only, listening
  on 198.51.100.20:22 and :443, key auth for one user (root, confined to the namespace pair that
  has no route anywhere), PasswordAuthentication on (for the failed-login cases; every password
  tried is wrong), UsePAM off;
- session methods that run a real client (OpenSSH `sftp -b`, `scp -O`, `ssh -tt` fed by a
  scripted typist, paramiko for wrong passwords) in the client namespace while tcpdump captures,
  and return the ground truth of that session (what the client was told to do, the negotiated
  algorithms from `ssh -v`, whether the login worked) - never anything computed by Sluice.

Teardown (sshd killed, namespaces deleted, temp dir removed) happens on every exit path.

`replay_ssh(pcap)` (no root) drives `SshParser` over a capture through the real decode and TCP
reassembly stages and returns the `SshSession`s: used by the tests and the accuracy benchmark
while the pipeline does not wire the SSH parser yet.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcaps._lib.netns import SERVER_V4, NetnsPair

SSHD = "/usr/sbin/sshd"
USER = "root"  # one user; the sshd only exists inside the isolated namespace pair
PORTS = (22, 443)
ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")

SSHD_CONFIG = """\
ListenAddress {addr}:22
ListenAddress {addr}:443
HostKey {d}/ssh_host_ed25519_key
HostKey {d}/ssh_host_ecdsa_key
HostKey {d}/ssh_host_rsa_key
PidFile none
UsePAM no
StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
AuthorizedKeysFile {d}/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication no
MaxAuthTries 6
MaxStartups 50
MaxSessions 20
LoginGraceTime 30
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
LogLevel INFO
"""


@dataclass
class Truth:
    """What really happened in one lab session (the benchmark's and expected.json's truth)."""

    name: str
    pcap: str
    transfer: str  # upload | download | interactive | unknown
    transfer_kind: str | None  # sftp | scp | shell | None
    auth_success: bool
    app_bytes: int = 0  # file size for transfers
    client_software: str | None = None
    server_software: str | None = None
    negotiated: dict[str, str] = field(default_factory=dict)  # from `ssh -v`
    extra: dict[str, Any] = field(default_factory=dict)


def _software(banner: str) -> str:
    """Banner "SSH-2.0-OpenSSH_9.2p1 Debian-2" -> "OpenSSH_9.2p1" (RFC 4253 4.2 softwareversion)."""
    return banner.split("-", 2)[2].split(" ", 1)[0]


def openssh_banner() -> str:
    out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=True).stderr
    return "SSH-2.0-" + out.split(",", 1)[0].strip()


_KEX_LINES = {
    "kex_alg": re.compile(r"kex: algorithm: (\S+)"),
    "host_key_alg": re.compile(r"kex: host key algorithm: (\S+)"),
    "c2s": re.compile(r"kex: client->server cipher: (\S+) MAC: (\S+) compression: (\S+)"),
}


def negotiated_from_verbose(stderr: str) -> dict[str, str]:
    """The algorithms OpenSSH's client says it negotiated (`-v` debug lines)."""
    found: dict[str, str] = {}
    for key, rx in _KEX_LINES.items():
        m = rx.search(stderr)
        if not m:
            continue
        if key == "c2s":
            found["cipher_alg"], found["mac_alg"], found["compression_alg"] = m.groups()
        else:
            found[key] = m.group(1)
    return found


class SshLab:
    """`with SshLab("tag") as lab: truth = lab.sftp(pcap, "put", 150_000)`."""

    def __init__(self, tag: str = "ssh", seed: int = 1) -> None:
        self.tag = tag
        self.rng = random.Random(seed)
        self.dir = Path()
        self.net: NetnsPair | None = None
        self.banner = openssh_banner()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> SshLab:
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-sshlab-"))
        try:
            self._prepare()
            self.net = NetnsPair(self.tag)
            self.net.__enter__()
            self._start_sshd()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.net is not None:
                self.net.__exit__()  # SIGTERM to sshd (and tcpdump), then namespaces deleted
                self.net = None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _prepare(self) -> None:
        d = self.dir
        d.chmod(0o755)
        for kind, extra in (("ed25519", []), ("ecdsa", ["-b", "256"]), ("rsa", ["-b", "3072"])):
            key = d / f"ssh_host_{kind}_key"
            subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-f", str(key)],
                           check=True)  # fmt: skip
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")],
                       check=True)  # fmt: skip
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "stray_key")],
                       check=True)  # fmt: skip
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        (d / "sshd_config").write_text(SSHD_CONFIG.format(addr=SERVER_V4, d=d))
        (d / "ssh_config").write_text(
            f"Host *\n  User {USER}\n  UserKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking no\n  GlobalKnownHostsFile /dev/null\n"
            "  BatchMode yes\n  LogLevel VERBOSE\n  SendEnv none\n"
        )
        (d / "files").mkdir()
        (d / "files").chmod(0o777)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir

    def _start_sshd(self) -> None:
        assert self.net is not None
        cfg, log = self.dir / "sshd_config", self.dir / "sshd.log"
        subprocess.run([SSHD, "-t", "-f", str(cfg)], check=True)
        # sh execs sshd, so the spawned pid is sshd's and the teardown's SIGTERM reaches it.
        self.net.spawn("server", ["sh", "-c", f"exec {SSHD} -D -e -f {cfg} >>{log} 2>&1"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            if text.count("Server listening") >= len(PORTS):
                return
            time.sleep(0.1)
        raise RuntimeError(f"sshd did not start: {log.read_text() if log.exists() else ''}")

    # -- helpers ---------------------------------------------------------------------------
    def _client(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        assert self.net is not None
        cmd = ["ip", "netns", "exec", self.net.ns["client"], *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)

    def _opts(self, port: int, cipher: str | None, mac: str | None, key: str = "client_key",
              source: str | None = None) -> list[str]:  # fmt: skip
        opts = ["-F", str(self.dir / "ssh_config"), "-i", str(self.dir / key), "-v"]
        if source:  # one of several client addresses (NetnsPair.add_addresses)
            opts += ["-o", f"BindAddress={source}"]
        if cipher:
            opts += ["-o", f"Ciphers={cipher}"]
        if mac:
            opts += ["-o", f"MACs={mac}"]
        return opts

    def _truth(self, name: str, pcap: Path, stderr: str, **kw: Any) -> Truth:
        truth = Truth(name=name, pcap=str(pcap), client_software=_software(self.banner),
                      server_software=_software(self.banner), **kw)  # fmt: skip
        truth.negotiated = negotiated_from_verbose(stderr)
        return truth

    def make_file(self, name: str, size: int, seed: int) -> Path:
        """Incompressible deterministic content (random bytes) so wire size tracks file size."""
        path = self.dir / "files" / name
        path.write_bytes(random.Random(seed).randbytes(size))
        path.chmod(0o644)
        return path

    # -- sessions --------------------------------------------------------------------------
    def sftp(self, pcap: Path, op: str, size: int, *, seed: int = 0, port: int = 22,
             cipher: str | None = None, mac: str | None = None,
             local: Path | None = None, source: str | None = None,
             capture: bool = True) -> Truth:  # fmt: skip
        """`sftp -b batch`: op "put" (upload) or "get" (download) of one file of `size` bytes.
        `source`: the client address to connect from; `capture=False`: the caller is already
        capturing into `pcap` (one session among other traffic)."""
        assert self.net is not None
        tag = f"{op}{seed}"
        if local is None:
            local = self.make_file(f"local-{tag}.bin", size, seed)
        size = local.stat().st_size
        remote = self.dir / "files" / f"remote-{tag}.bin"
        if op == "get":
            shutil.copy(local, remote)
            remote.chmod(0o644)
            target = self.dir / "files" / f"got-{tag}.bin"
            batch = f"get {remote} {target}\n"
        else:
            target = remote
            batch = f"put {local} {remote}\n"
        (self.dir / "batch").write_text(batch)
        argv = ["sftp", *self._opts(port, cipher, mac, source=source), "-P", str(port), "-b",
                str(self.dir / "batch"), f"{USER}@{SERVER_V4}"]  # fmt: skip
        recording: contextlib.AbstractContextManager[None]
        if capture:
            recording = self.net.capture(pcap, bpf="tcp port 22 or tcp port 443")
        else:
            recording = contextlib.nullcontext()
        with recording:
            res = self._client(argv)
        if res.returncode != 0:
            raise RuntimeError(f"sftp failed: {res.stderr[-2000:]}")
        assert target.read_bytes() == local.read_bytes(), "sftp copy differs"
        target.unlink()
        return self._truth(pcap.parent.name if pcap.name == "input.pcap" else pcap.stem, pcap,
                           res.stderr, transfer="upload" if op == "put" else "download",
                           transfer_kind="sftp", auth_success=True, app_bytes=size)  # fmt: skip

    def scp(self, pcap: Path, op: str, size: int, *, seed: int = 0, port: int = 22,
            cipher: str | None = None, mac: str | None = None) -> Truth:  # fmt: skip
        """Legacy-protocol `scp -O` (OpenSSH >= 9.0 scp speaks SFTP unless -O is given)."""
        assert self.net is not None
        tag = f"scp{op}{seed}"
        local = self.make_file(f"local-{tag}.bin", size, seed)
        remote = self.dir / "files" / f"remote-{tag}.bin"
        if op == "get":
            shutil.copy(local, remote)
            remote.chmod(0o644)
            target = self.dir / "files" / f"got-{tag}.bin"
            src_dst = [f"{USER}@{SERVER_V4}:{remote}", str(target)]
        else:
            target = remote
            src_dst = [str(local), f"{USER}@{SERVER_V4}:{remote}"]
        argv = ["scp", "-O", *self._opts(port, cipher, mac), "-P", str(port), *src_dst]
        with self.net.capture(pcap, bpf="tcp port 22 or tcp port 443"):
            res = self._client(argv)
        if res.returncode != 0:
            raise RuntimeError(f"scp failed: {res.stderr[-2000:]}")
        assert target.read_bytes() == local.read_bytes(), "scp copy differs"
        target.unlink()
        return self._truth(pcap.parent.name if pcap.name == "input.pcap" else pcap.stem, pcap,
                           res.stderr, transfer="upload" if op == "put" else "download",
                           transfer_kind="scp", auth_success=True, app_bytes=size)  # fmt: skip

    def interactive(self, pcap: Path, commands: list[str], *, seed: int = 0, port: int = 22,
                    cipher: str | None = None, mac: str | None = None) -> Truth:  # fmt: skip
        """`ssh -tt` with a scripted typist: one keystroke per write, human-like delays
        (log-normal inter-key time around 150 ms, a pause to "read" the output before the next
        command), ending with `exit`."""
        assert self.net is not None
        rng = random.Random(seed)
        argv = ["ip", "netns", "exec", self.net.ns["client"], "ssh", "-tt",
                *self._opts(port, cipher, mac), "-p", str(port), f"{USER}@{SERVER_V4}"]  # fmt: skip
        typed = 0
        with self.net.capture(pcap, bpf="tcp port 22 or tcp port 443"):
            errfile = (self.dir / "ssh-stderr").open("w+")
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=errfile)  # fmt: skip
            assert proc.stdin is not None
            try:
                time.sleep(1.5)  # login and prompt
                for command in [*commands, "exit"]:
                    for ch in command + "\n":
                        proc.stdin.write(ch.encode())
                        proc.stdin.flush()
                        typed += 1
                        time.sleep(min(0.8, max(0.04, rng.lognormvariate(-1.9, 0.45))))
                    time.sleep(rng.uniform(0.6, 2.0))
                proc.stdin.close()
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                errfile.seek(0)
                stderr = errfile.read()
                errfile.close()
        return self._truth(pcap.parent.name if pcap.name == "input.pcap" else pcap.stem, pcap,
                           stderr, transfer="interactive", transfer_kind="shell",
                           auth_success=True, extra={"keystrokes": typed})  # fmt: skip

    def failed_password(self, pcap: Path, attempts: int = 1, *, port: int = 22) -> Truth:
        """paramiko logs in with a wrong password `attempts` times on one connection."""
        assert self.net is not None
        script = (
            "import logging, sys, paramiko\n"
            "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)\n"
            f"t = paramiko.Transport(('{SERVER_V4}', {port}))\n"
            "t.start_client(timeout=10)\n"
            "ok = False\n"
            f"for i in range({attempts}):\n"
            "    try:\n"
            f"        t.auth_password('{USER}', 'not-the-password-%d' % i)\n"
            "        ok = True\n"
            "    except paramiko.AuthenticationException:\n"
            "        pass\n"
            "print('agreed', t.host_key_type, t.local_cipher, t.local_mac, t.local_compression)\n"
            "print('banner', t.local_version)\n"
            "t.close()\n"
            "sys.exit(0 if not ok else 3)\n"
        )
        with self.net.capture(pcap, bpf="tcp port 22 or tcp port 443"):
            res = self._client([PYTHON, "-c", script])
        if res.returncode != 0:
            raise RuntimeError(f"paramiko session failed: {res.stderr[-2000:]}")
        banner = re.search(r"banner (\S+)", res.stdout)
        truth = Truth(name=pcap.stem, pcap=str(pcap), transfer="unknown", transfer_kind=None,
                      auth_success=False, client_software=_software(banner.group(1)) if banner
                      else None, server_software=_software(self.banner),
                      extra={"attempts": attempts})  # fmt: skip
        m = re.search(r"agreed (\S+) (\S+) (\S+) (\S+)", res.stdout)
        kex = re.search(r"Kex: (\S+)", res.stdout)
        if m and kex:
            truth.negotiated = {"kex_alg": kex.group(1), "host_key_alg": m.group(1),
                                "cipher_alg": m.group(2), "mac_alg": m.group(3),
                                "compression_alg": m.group(4)}  # fmt: skip
        return truth

    def failed_publickey(self, pcap: Path, *, port: int = 22) -> Truth:
        """OpenSSH client offers a key the server does not know (publickey only)."""
        assert self.net is not None
        argv = ["ssh", *self._opts(port, None, None, key="stray_key"), "-o",
                "PreferredAuthentications=publickey", "-o", "IdentitiesOnly=yes",
                "-p", str(port), f"{USER}@{SERVER_V4}", "true"]  # fmt: skip
        with self.net.capture(pcap, bpf="tcp port 22 or tcp port 443"):
            res = self._client(argv)
        if res.returncode != 255 or "Permission denied" not in res.stderr:
            raise RuntimeError(f"expected a refused login: {res.stderr[-2000:]}")
        return self._truth(pcap.stem, pcap, res.stderr, transfer="unknown", transfer_kind=None,
                           auth_success=False)  # fmt: skip


# -- replay (no root) ----------------------------------------------------------------------


def replay_ssh(pcap: Path | str) -> list[Any]:
    """Run `SshParser` over every TCP flow of `pcap` whose first bytes pass `ssh.detect`, through
    the real decoder and `TcpStream` reassembly (the pipeline's stages, not yet its wiring).
    Returns the parser events (SshSession and Anomaly) of all flows, flows in start order."""
    from probes.pcap import PcapReader
    from sensor.decode.decoder import Decoder
    from sensor.decode.packet import PROTO_TCP, TCP_ACK, TCP_SYN
    from sensor.protocols import ssh
    from sensor.protocols.base import Direction, ProtocolViolation
    from sensor.reassembly.tcp import Gap, Memcap, StreamCaps, TcpStream

    decoder = Decoder()
    memcap = Memcap()
    caps = StreamCaps()
    flows: dict[tuple[bytes, int, bytes, int], dict[str, Any]] = {}
    order: list[dict[str, Any]] = []

    def deliver(flow: dict[str, Any], direction: int, items: list[Any], ts: float) -> None:
        for item in items:
            if flow["dead"]:
                return
            d = Direction(direction)
            try:
                if flow["parser"] is None:
                    if isinstance(item, Gap):
                        flow["dead"] = True
                        return
                    flow["head"][direction] += item
                    verdict = ssh.detect(d, bytes(flow["head"][direction]))
                    if verdict is False:
                        flow["dead"] = True
                        return
                    if verdict is None:
                        continue
                    flow["parser"] = ssh.SshParser()
                    item = bytes(flow["head"][direction])
                    other = flow["head"][1 - direction]
                    if other:  # the other side's first bytes, still undecided
                        flow["events"] += flow["parser"].feed(
                            Direction(1 - direction), bytes(other), ts
                        )
                if isinstance(item, Gap):
                    flow["events"] += flow["parser"].gap(d, item.size, ts)
                else:
                    flow["events"] += flow["parser"].feed(d, item, ts)
            except ProtocolViolation as exc:
                flow["events"] += exc.events
                flow["events"].append(ssh.Anomaly(exc.reason, exc.detail, ts))
                flow["dead"] = True

    last_ts = 0.0
    with PcapReader(str(pcap)) as reader:
        for frame in reader:
            pkt = decoder.decode(frame)
            if pkt is None or pkt.proto != PROTO_TCP:
                continue
            last_ts = pkt.ts
            fwd = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
            rev = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
            if fwd in flows:
                flow, direction = flows[fwd], 0
            elif rev in flows:
                flow, direction = flows[rev], 1
            else:
                # The SYN sender is the client; without a SYN, the first packet's sender.
                if pkt.tcp_flags & TCP_SYN and pkt.tcp_flags & TCP_ACK:
                    fwd = rev
                    direction = 1
                else:
                    direction = 0
                flow = {"streams": [TcpStream(caps, memcap), TcpStream(caps, memcap)],
                        "parser": None, "head": [bytearray(), bytearray()], "events": [],
                        "dead": False, "eof": [False, False]}  # fmt: skip
                flows[fwd] = flow
                order.append(flow)
            streams = flow["streams"]
            out = streams[direction].segment(pkt.seq, pkt.payload, pkt.tcp_flags, pkt.ts)
            if out:
                deliver(flow, direction, list(out), pkt.ts)
            if pkt.tcp_flags & TCP_ACK:
                acked = streams[1 - direction].peer_ack(pkt.ack, pkt.ts)
                if acked:
                    deliver(flow, 1 - direction, list(acked), pkt.ts)
            for d in (0, 1):
                if streams[d].done and not flow["eof"][d]:
                    flow["eof"][d] = True
                    deliver(flow, d, list(streams[d].flush(pkt.ts)), pkt.ts)
                    if flow["parser"] is not None and not flow["dead"]:
                        flow["events"] += flow["parser"].eof(Direction(d), pkt.ts)
    events: list[Any] = []
    for flow in order:
        for d in (0, 1):
            if not flow["eof"][d]:
                deliver(flow, d, list(flow["streams"][d].flush(last_ts)), last_ts)
                if flow["parser"] is not None and not flow["dead"]:
                    flow["events"] += flow["parser"].eof(Direction(d), last_ts)
        events += flow["events"]
    return events


if __name__ == "__main__":  # quick look: python -m pcaps._lib.sshlab capture.pcap
    for event in replay_ssh(sys.argv[1]):
        print(event)
    os._exit(0)


# -- sample cases (pcaps/ssh-*/generate.py) --------------------------------------------------


def tshark_hassh(pcap: Path, port: int = 22) -> tuple[str | None, str | None]:
    """(client HASSH, server HASSH) as Wireshark's own SSH dissector computes them: an
    independent implementation, so the expectation never comes from Sluice."""
    argv = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},ssh", "-Y",
            "ssh.kex.hassh || ssh.kex.hasshserver", "-T", "fields", "-e", "ssh.kex.hassh",
            "-e", "ssh.kex.hasshserver"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    client = server = None
    for line in out.splitlines():
        c, _, s = line.partition("\t")
        client = client or c.strip() or None
        server = server or s.strip() or None
    return client, server


def expected_entry(truth: Truth, pcap: Path, port: int = 22) -> dict[str, Any]:
    client_hassh, _server = tshark_hassh(pcap, port)
    return {
        "client_software": truth.client_software,
        "server_software": truth.server_software,
        "client_hassh": client_hassh,
        "kex_alg": truth.negotiated.get("kex_alg"),
        "cipher_alg": truth.negotiated.get("cipher_alg"),
        "auth_success": truth.auth_success,
        "transfer": truth.transfer,
        "transfer_kind": truth.transfer_kind,
    }


def run_ssh_case(script: str, session: Any, port: int = 22, readme_note: str = "") -> None:
    """Entry point of a pcaps/ssh-*/generate.py: one lab session captured to input.pcap and
    expected.json written from its ground truth (`session(lab, pcap) -> Truth`)."""
    import json

    from pcaps._lib import expect

    case_dir = Path(script).resolve().parent
    pcap = case_dir / "input.pcap"
    with SshLab(case_dir.name[:6], seed=len(case_dir.name)) as lab:
        truth = session(lab, pcap)
    os.chown(pcap, case_dir.stat().st_uid, case_dir.stat().st_gid)
    flows = expect.count_flows(pcap)
    entry = expected_entry(truth, pcap, port)
    doc = {
        "case": case_dir.name,
        "objects": [],
        "objects_exhaustive": True,
        "ssh": [entry],
        "ssh_truth": {"app_bytes": truth.app_bytes, **truth.negotiated, **truth.extra},
        "anomalies_include": [],
        "flows": flows,
        "read_error": None,
    }
    (case_dir / "expected.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes)")
