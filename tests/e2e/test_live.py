"""End to end, for real: `sluice run` capturing live inside a network namespace.

A real HTTP upload (http.server and urllib) crosses a veth pair while `sluice run` captures on
the client's side and tcpdump records the same interface. Replay and live run the same
pipeline, so `sluice top --json` of the live sensor's database must equal that of a replay of
tcpdump's capture:

- `--probe off`: every counter of every row, destinations included;
- `--probe tc`: outbound bytes and packets then come from the eBPF probe's kernel counters and
  destinations are the probe's /24 networks; the sums must still be exactly the replay's;
- eBPF unavailable (the sensor runs without CAP_BPF/CAP_SYS_ADMIN, as a hardened unit might):
  `--probe auto` says why exactly once and meters from packets; `--probe tc` is an error;
- a restart continues from the probe's pinned counters without counting anything twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pcaps._lib.pcapfile import write_pcap
from probes.ebpf import bpf_syscall as sysbpf
from probes.ebpf.netns import inside_netns
from probes.pcap import PcapReader
from tests.conftest import cannot_run, require_root_netns, require_tool
from tests.e2e.test_capture_replay import CLIENT, SERVER

SLUICE = str(Path(sys.executable).parent / "sluice")
READY = b"capturing on"
# Drop the capabilities eBPF needs (CAP_BPF, CAP_SYS_ADMIN) but keep packet capture's.
WITHOUT_BPF = ["setpriv", "--bounding-set=-bpf,-sys_admin", "--inh-caps=-bpf,-sys_admin", "--"]

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fingerprint" / "corpus"


@dataclass
class Lab:
    net: Any  # pcaps._lib.netns.NetnsPair
    tmp: Path
    bpffs: str


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_root_netns()
    require_tool("tcpdump")
    from pcaps._lib.netns import NetnsPair

    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    bpffs = tempfile.mkdtemp(prefix="sluice-live-bpffs-")
    mounted = False
    try:
        # A private bpffs: the probe's pins never land in the host's /sys/fs/bpf.
        subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True, capture_output=True)
        mounted = True
        with NetnsPair("live") as net:
            yield Lab(net, tmp_path, bpffs)
    finally:
        if mounted:
            subprocess.run(["umount", bpffs], check=False, capture_output=True)
        shutil.rmtree(bpffs, ignore_errors=True)


class Sensor:
    """`sluice run` in the client namespace; stderr collected, stopped by SIGTERM."""

    def __init__(
        self,
        lab: Lab,
        out: Path,
        probe: str,
        prefix: Sequence[str] = (),
        role: str = "client",
        extra: Sequence[str] = (),
    ) -> None:
        argv = [
            "ip", "netns", "exec", lab.net.ns[role], *prefix, SLUICE, "run",
            "--iface", lab.net.dev[role], "--out", str(out), "--probe", probe,
            "--pin-dir", f"{lab.bpffs}/sluice", "--stats-interval", "0.5", *extra,
        ]  # fmt: skip
        events = out / "events.jsonl"
        self.out = out
        self.events_offset = events.stat().st_size if events.exists() else 0  # this run's start
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        self.stderr = b""

    def wait_ready(self, timeout: float = 60) -> None:
        try:
            self.wait_for(READY, timeout)
        except AssertionError:
            self.stop()
            raise

    def wait_for(self, marker: bytes, timeout: float = 30) -> None:
        """Poll stderr until `marker` appears (the sensor must still be running)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while marker not in self.stderr:
            left = deadline - time.monotonic()
            if self.proc.poll() is not None or left <= 0:
                raise AssertionError(f"no {marker!r} from sluice run: {self.stderr.decode()}")
            ready, _, _ = select.select([self.proc.stderr], [], [], left)
            if ready:
                self.stderr += os.read(self.proc.stderr.fileno(), 4096)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        self.stderr += err or b""
        return self.proc.returncode


def upload(lab: Lab, size: int) -> None:
    body = b"".join(b"%d,Patient %d,cervical screening %d\n" % (i, i, i % 5) for i in range(size))
    (lab.tmp / "body.csv").write_bytes(body)
    send(lab, lab.tmp / "body.csv")


def send(lab: Lab, path: Path) -> None:
    """The lab's client POSTs the file at `path` to its server."""
    server = lab.net.spawn("server", [sys.executable, str(lab.tmp / "server.py")])
    lab.net.wait_for_line(server, b"ready")
    lab.net.run("client", [sys.executable, str(lab.tmp / "client.py"), str(path)], 60)
    server.wait(timeout=30)


def top(db: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [SLUICE, "top", "--db", str(db), "--json", "--window", "all", "--limit", "50"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def replayed(lab: Lab, pcap: Path) -> list[dict[str, Any]]:
    out = lab.tmp / "replay"
    done = subprocess.run(
        [SLUICE, "replay", str(pcap), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return top(out)


COUNTERS = ("bytes_out", "packets_out", "bytes_in", "payload_bytes_out")


def by_host(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["host"]: row for row in rows}


def live_and_replay(
    lab: Lab,
    probe: str,
    prefix: Sequence[str] = (),
    running: Callable[[Path], None] | None = None,
    role: str = "client",
) -> tuple[Any, ...]:
    out, pcap = lab.tmp / "live", lab.tmp / "same-iface.pcap"
    sensor = Sensor(lab, out, probe, prefix, role)
    try:
        sensor.wait_ready()
        captured_upload(lab, sensor, pcap, 20_000)
        if running is not None:
            running(out)
    finally:
        rc = sensor.stop()
    return rc, sensor.stderr.decode(), top(out), replayed(lab, pcap), out


def processed(sensor: Sensor) -> int:
    """Packets the running sensor has processed, from its latest periodic `stats` event."""
    latest = 0
    path = sensor.out / "events.jsonl"
    if path.exists():
        with path.open("rb") as events:
            events.seek(sensor.events_offset)  # this run's events only
            for line in events:
                if b'"event_type":"stats"' in line:
                    latest = json.loads(line)["stats"]["packets"]
    return latest


def captured_upload(lab: Lab, sensor: Sensor, pcap: Path, lines: int, timeout: float = 30) -> None:
    """An upload recorded by tcpdump on the sensor's interface; returns once the sensor has
    processed at least as many packets since as tcpdump captured (its stats say so)."""
    before = processed(sensor)
    with lab.net.capture(pcap, bpf=""):
        upload(lab, lines)
    with PcapReader(str(pcap)) as reader:
        expected = before + sum(1 for _ in reader)
    deadline = time.monotonic() + timeout
    while processed(sensor) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"the sensor processed {processed(sensor)} of {expected}")
        time.sleep(0.1)


def seen_while_running(out: Path) -> None:
    """`sluice top --db` against the running sensor's database: the upload shows up once the
    sensor wrote the meter bucket it fell in (every 10 s of capture clock)."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if (out / "sluice.db").exists():
            rows = by_host(top(out))
            if rows.get("10.10.0.10", {}).get("bytes_out", 0) > 600_000:
                return
        time.sleep(0.5)
    raise AssertionError("the running sensor's database never showed the upload")


def test_live_run_without_probe_equals_a_replay_of_the_same_traffic(lab: Lab) -> None:
    rc, stderr, live, replay, out = live_and_replay(lab, "off", running=seen_while_running)
    assert rc == 0, stderr
    assert "eBPF probe: off" in stderr and "dropped 0 " in stderr
    assert "10.10.0.10" in by_host(replay)
    assert by_host(replay)["10.10.0.10"]["bytes_out"] > 600_000  # the upload is in there
    for row in (*live, *replay):
        row.pop("window_start"), row.pop("window_end")
        row.pop("share")  # the live sensor also saw the link's IPv6 neighbour discovery
        row.pop("rate_bps")  # over the window, which the live clock extends past the traffic
        row.pop("rate_now_bps")  # over the newest minute of data: the same, by up to a bucket
        # Per minute up to the newest data: the live clock may have crossed a minute boundary
        # after the traffic, which moves every column by one; what it holds must not change.
        row["last_hour"] = [minute for minute in row["last_hour"] if minute]
    ours, theirs = by_host(live)["10.10.0.10"], by_host(replay)["10.10.0.10"]
    assert {k: v for k, v in ours.items() if ours[k] != theirs.get(k)} == {}
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    http = [e for e in events if e["event_type"] == "http"]
    assert [e["http"]["http_method"] for e in http] == ["POST"]
    stats = [e for e in events if e["event_type"] == "stats"][-1]  # the one at the stop
    assert stats["stats"]["capture"]["dropped"] == 0
    # libpcap's count is read after the last batch: a stray neighbour-discovery packet may
    # arrive in between; nothing of the upload can.
    assert 0 <= stats["stats"]["capture"]["received"] - stats["stats"]["packets"] <= 2
    # Every packet libpcap received is processed or said to be left unread at the stop.
    capture = stats["stats"]["capture"]
    assert capture["received"] == stats["stats"]["packets"] + capture["unread"]


def test_a_live_finding_is_one_line_on_stderr_and_lands_in_the_database(lab: Lab) -> None:
    """What an operator watching the journal sees, and what `sluice findings` and `sluice
    host` then show of the same run."""
    config = lab.tmp / "sluice.toml"
    config.write_text(
        "[metering]\ntimezone = 'Europe/Amsterdam'\n"
        "thresholds = [{ name = 'lab upload', mb = 0.2, minutes = 1 }]\n"
    )
    out = lab.tmp / "live"
    sensor = Sensor(lab, out, "off", extra=["--config", str(config)])
    try:
        sensor.wait_ready()
        assert f"config: {config} (chosen by --config)".encode() in sensor.stderr
        assert b"thresholds lab upload 0.2 MB/1 min" in sensor.stderr
        upload(lab, 20_000)
        sensor.wait_for(b"finding MEDIUM volume_threshold host 10.10.0.10", timeout=40)
    finally:
        assert sensor.stop() == 0, sensor.stderr.decode()
    line = next(x for x in sensor.stderr.decode().splitlines() if "volume_threshold" in x)
    assert line.startswith("sluice run: finding MEDIUM volume_threshold host 10.10.0.10: ")
    assert "rule 'lab upload'" in line and "198.51.100.20" in line
    done = subprocess.run(
        [SLUICE, "findings", "--db", str(out), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (finding,) = json.loads(done.stdout)
    assert (finding["kind"], finding["severity"], finding["host"]) == (
        "volume_threshold", "medium", "10.10.0.10",
    )  # fmt: skip
    done = subprocess.run(
        [SLUICE, "host", "10.10.0.10", "--db", str(out), "--config", str(config), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    host = json.loads(done.stdout)
    assert [f["kind"] for f in host["findings"]] == ["volume_threshold"]
    (sent,) = [a for a in host["activity"] if a["kind"] == "upload"]
    assert sent["bytes"] > 600_000 and "198.51.100.20" in sent["dest"]
    for name in ("events.jsonl", "sluice.db"):
        assert (out / name).stat().st_mode & 0o077 == 0, name  # private to the sensor's user


def test_a_live_encrypted_upload_is_a_finding_on_stderr_and_in_the_database(lab: Lab) -> None:
    """A 7z whose member names are encrypted too (made by 7-Zip, tests/data/fingerprint):
    fingerprinted as it streams past the live sensor, said in the journal, kept for
    `sluice findings` and `sluice host`."""
    archive = CORPUS / "7z-aes-hidden-names.7z"
    out = lab.tmp / "live"
    sensor = Sensor(lab, out, "off")
    try:
        sensor.wait_ready()
        send(lab, archive)
        sensor.wait_for(b"finding HIGH encrypted_upload host 10.10.0.10", timeout=40)
    finally:
        assert sensor.stop() == 0, sensor.stderr.decode()
    line = next(x for x in sensor.stderr.decode().splitlines() if "encrypted_upload" in x)
    assert "encrypted with 7z-aes-256, names hidden" in line and "198.51.100.20" in line
    done = subprocess.run(
        [SLUICE, "findings", "--db", str(out), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (finding,) = json.loads(done.stdout)
    assert (finding["kind"], finding["severity"], finding["host"]) == (
        "encrypted_upload", "high", "10.10.0.10",
    )  # fmt: skip
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    files = [
        e["file"] for e in map(json.loads, (out / "events.jsonl").open())
        if e["event_type"] == "file"
    ]  # fmt: skip
    (sent,) = [f for f in files if f["sha256"] == digest]
    assert sent["fingerprint"]["encryption"] == "7z-aes-256" and sent["fingerprint"]["hides_names"]
    done = subprocess.run(
        [SLUICE, "host", "10.10.0.10", "--db", str(out), "--json"], capture_output=True, text=True
    )
    host = json.loads(done.stdout)
    assert [f["kind"] for f in host["findings"]] == ["encrypted_upload"]
    assert any("[ENCRYPTED 7z-aes-256, names hidden]" in a["summary"] for a in host["activity"])


@pytest.mark.parametrize(
    ("probe", "role"),
    [("tc", "client"), ("xdp", "server")],
    ids=["tc-egress-of-the-sender", "xdp-ingress-of-the-receiving-side"],
)
def test_live_run_with_the_probe_takes_outbound_counts_from_the_kernel(
    lab: Lab, probe: str, role: str
) -> None:
    """tc: the gateway's egress (the client's side of the veth). xdp: a SPAN-like receiving
    side, the server's end of the veth, where the client's packets arrive."""
    reason = _probe_reason()
    if reason is not None:
        cannot_run(reason)
    ns, dev = lab.net.ns[role], lab.net.dev[role]

    def attached() -> tuple[bool, bool]:
        shown = subprocess.run(["ip", "-n", ns, "link", "show", dev], capture_output=True)
        assert shown.returncode == 0
        with inside_netns(ns):
            index = socket.if_nametoindex(dev)
            tcx = sysbpf.prog_query_count(index, sysbpf.AttachType.TCX_EGRESS)
        return b"xdp" in shown.stdout, tcx > 0

    def while_running(_out: Path) -> None:
        assert attached() == (probe == "xdp", probe == "tc")

    rc, stderr, live, replay, out = live_and_replay(lab, probe, running=while_running, role=role)
    assert rc == 0, stderr
    assert f"eBPF probe: {probe} (" in stderr and "warning" not in stderr
    ours, theirs = by_host(live)["10.10.0.10"], by_host(replay)["10.10.0.10"]
    for key in COUNTERS:
        assert ours[key] == theirs[key], key
    (dest,) = [d for d in ours["destinations"] if d["bytes_out"]]
    assert dest["ip"] == "198.51.100.0/24"
    assert dest["bytes_out"] == theirs["destinations"][0]["bytes_out"]
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    stats = [e for e in events if e["event_type"] == "stats"][-1]  # the one at the stop
    assert stats["stats"]["probe"]["counted"] == theirs["packets_out"]
    # Nothing of the probe is left attached to the interface after the sensor stopped.
    assert attached() == (False, False)
    filters = subprocess.run(
        ["tc", "-n", ns, "filter", "show", "dev", dev, "egress"], capture_output=True, text=True
    )
    assert filters.stdout.strip() == ""


@pytest.mark.parametrize("first_end", ["SIGTERM", "SIGKILL"])
def test_a_restart_continues_from_the_pinned_counters_without_double_counting(
    lab: Lab, first_end: str
) -> None:
    """A stopped sensor saved the totals it reported; a killed one saved those of its last
    written bucket, and what it counted after that is attributed by its successor."""
    reason = _probe_reason()
    if reason is not None:
        cannot_run(reason)
    out = lab.tmp / "live"
    pcap_a, pcap_b = lab.tmp / "a.pcap", lab.tmp / "b.pcap"
    for pcap in (pcap_a, pcap_b):
        sensor = Sensor(lab, out, "tc")
        try:
            sensor.wait_ready()
            captured_upload(lab, sensor, pcap, 8_000)
        finally:
            if pcap is pcap_a and first_end == "SIGKILL":
                sensor.proc.kill()
                assert sensor.stop() == -signal.SIGKILL
            else:
                assert sensor.stop() == 0, sensor.stderr.decode()
    assert "not attributed" not in sensor.stderr.decode()  # the first run's totals were saved
    ours = by_host(top(out))["10.10.0.10"]
    a = by_host(replayed(lab, pcap_a))["10.10.0.10"]
    shutil.rmtree(lab.tmp / "replay")
    b = by_host(replayed(lab, pcap_b))["10.10.0.10"]
    assert ours["bytes_out"] == a["bytes_out"] + b["bytes_out"]
    assert ours["packets_out"] == a["packets_out"] + b["packets_out"]


def test_without_bpf_capabilities_auto_says_why_once_and_meters_from_packets(lab: Lab) -> None:
    require_tool("setpriv")
    rc, stderr, live, replay, _ = live_and_replay(lab, "auto", WITHOUT_BPF)
    assert rc == 0, stderr
    warnings = [line for line in stderr.splitlines() if "eBPF probe unavailable" in line]
    assert len(warnings) == 1, stderr
    assert "CAP_BPF" in warnings[0]
    ours, theirs = by_host(live)["10.10.0.10"], by_host(replay)["10.10.0.10"]
    for key in COUNTERS:
        assert ours[key] == theirs[key], key
    assert ours["destinations"][0]["ip"] == "198.51.100.20"  # packets: addresses, not networks


def test_xdp_on_the_sending_side_is_given_up_with_a_warning_and_nothing_lost(lab: Lab) -> None:
    """`auto` is XDP, which sees only what arrives: on the sender's own interface it counts no
    outbound packet. The sensor notices at the first bucket and meters from packets."""
    reason = _probe_reason()
    if reason is not None:
        cannot_run(reason)
    rc, stderr, live, replay, _ = live_and_replay(lab, "auto", running=seen_while_running)
    assert rc == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("sluice: warning")]
    assert len(warnings) == 1 and "counted no outbound packet" in warnings[0], stderr
    ours, theirs = by_host(live)["10.10.0.10"], by_host(replay)["10.10.0.10"]
    for key in COUNTERS:
        assert ours[key] == theirs[key], key


def test_an_explicit_probe_that_cannot_run_is_an_error(lab: Lab) -> None:
    require_tool("setpriv")
    sensor = Sensor(lab, lab.tmp / "live", "tc", WITHOUT_BPF)
    rc = sensor.proc.wait(timeout=60)
    sensor.stop()
    assert rc == 2
    assert "the eBPF probe (tc) cannot run" in sensor.stderr.decode()


def test_an_interface_that_does_not_exist_is_one_clear_error(tmp_path: Path) -> None:
    require_root_netns()
    done = subprocess.run(
        [SLUICE, "run", "--iface", "sluice-nope0", "--out", str(tmp_path), "--probe", "off"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]  # after the config lines every start logs
    assert last.startswith("sluice: error: cannot capture on sluice-nope0")
    assert "Traceback" not in done.stderr


def _probe_reason() -> str | None:
    from probes.ebpf.loader import probe_unavailable_reason

    return probe_unavailable_reason(trial_load=False)


def test_a_link_flap_is_survived_and_traffic_after_it_is_metered(lab: Lab) -> None:
    """The interface goes down under the sensor and comes back: the capture is reopened (with
    a warning, once), the run goes on, and what crosses after the flap is metered."""
    out, pcap = lab.tmp / "live", lab.tmp / "after-flap.pcap"
    sensor = Sensor(lab, out, "off")
    ns = lab.net.ns["client"]
    try:
        sensor.wait_ready()
        subprocess.run(["ip", "-n", ns, "link", "set", "veth-c", "down"], check=True)
        sensor.wait_for(b"reopening the capture")
        subprocess.run(["ip", "-n", ns, "link", "set", "veth-c", "up"], check=True)
        # Link down flushed the client's host route to the server; put it back.
        subprocess.run(["ip", "-n", ns, "route", "replace", "198.51.100.20/32", "dev", "veth-c"],
                       check=True)  # fmt: skip
        sensor.wait_for(b"resumed after")
        captured_upload(lab, sensor, pcap, 8_000)
    finally:
        rc = sensor.stop()
    stderr = sensor.stderr.decode()
    assert rc == 0, stderr
    assert stderr.count("reopening the capture") == 1, stderr
    ours = by_host(top(out))["10.10.0.10"]
    theirs = by_host(replayed(lab, pcap))["10.10.0.10"]
    for key in COUNTERS:
        assert ours[key] == theirs[key], key
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    stats = [e for e in events if e["event_type"] == "stats"][-1]  # the one at the stop
    assert stats["stats"]["capture"]["outages"] == 1


def _syn_flood(path: Path, count: int) -> None:
    """`count` SYNs from 10.10.0.10 to distinct ports of the server (pcap, Ethernet)."""
    records = []
    for i in range(count):
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, bytes([10, 10, 0, 10]),
            bytes([198, 51, 100, 20]),
        )  # fmt: skip
        tcp = struct.pack(
            "!HHIIBBHHH", 1024 + i % 60000, 1 + i // 60000, i * 7919 & 0xFFFFFFFF, 0, 0x50, 2,
            64240, 0, 0,
        )  # fmt: skip
        records.append((1_767_225_600 + i / 1e5, ETHERNET_HEADER + ip + tcp))
    write_pcap(path, 1, records)


ETHERNET_HEADER = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def test_a_stop_during_a_flood_is_quick_and_every_packet_is_accounted_for(lab: Lab) -> None:
    """SIGTERM while tcpreplay floods the interface at top speed: `sluice run` ends within a
    few seconds, and every packet libpcap received is processed or said left unread."""
    require_tool("tcpreplay")
    flood = lab.tmp / "flood.pcap"
    _syn_flood(flood, 200_000)
    out = lab.tmp / "live"
    sensor = Sensor(lab, out, "off")
    replay = None
    try:
        sensor.wait_ready()
        replay = lab.net.spawn(
            "server", ["tcpreplay", "--topspeed", "--loop=5", "-i", lab.net.dev["server"],
                       str(flood)],
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while processed(sensor) < 10_000:  # the flood is in full swing
            assert time.monotonic() < deadline, "the flood never reached the sensor"
            time.sleep(0.2)
        assert replay.poll() is None, "tcpreplay ended before the stop: not a flood any more"
        started = time.monotonic()
        rc = sensor.stop()
        took = time.monotonic() - started
    finally:
        if replay is not None and replay.poll() is None:
            replay.kill()
            replay.wait(timeout=10)
        sensor.stop()
    assert rc == 0, sensor.stderr.decode()
    assert took < 10, f"the stop took {took:.1f} s"
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    stats = [e["stats"] for e in events if e["event_type"] == "stats"][-1]  # at the stop
    capture = stats["capture"]
    assert capture["received"] == stats["packets"] + capture["unread"]
    assert stats["packets"] >= 10_000
    half_open = [e["flow"] for e in events if e["event_type"] == "flow"]
    assert sum(f.get("attempts", 1) for f in half_open) >= 10_000  # the attempts are reported
