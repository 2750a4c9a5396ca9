"""End to end, for real: a live sensor on a gateway blocks the host that uploads an encrypted
archive, through the policy, the guards, the durable outbox and nftables.

The lab (pcaps/_lib/gatewaylab.py): client 10.10.0.10, a gateway namespace where `sluice run`
captures and enforces, a server 198.51.100.20:8080. The client POSTs a 7z whose member names
are encrypted (tests/data/fingerprint/corpus) to the server through the gateway. The default
policy decides `block_host 10.10.0.10` for an hour, the guards let it through (the client is
internal, not the gateway itself), the outbox commits it and the nftables backend puts the
client in the `inet sluice` host set: the client's next connection fails while the gateway
still reaches the server. Then `nft flush ruleset` behind Sluice's back: the reconciler puts
the block back. The latency from the upload's last byte to the element in the set is printed;
benchmarks/enforce_bench.py measures its distribution. Nothing touches the root namespace.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcaps._lib.gatewaylab import CLIENT, GatewayLab, gateway_lab, wait
from probes.ebpf.netns import inside_netns
from tests.conftest import require_module, require_root_netns, require_tool

SLUICE = str(Path(sys.executable).parent / "sluice")
CORPUS = Path(__file__).resolve().parents[1] / "data" / "fingerprint" / "corpus"
ARCHIVE = CORPUS / "7z-aes-hidden-names.7z"


@pytest.fixture
def lab() -> Iterator[GatewayLab]:
    require_root_netns()
    require_tool("nft")
    require_module("nftables")
    with gateway_lab("enf") as lab:
        yield lab


def test_a_gateway_blocks_the_host_that_uploaded_an_encrypted_archive(
    lab: GatewayLab, tmp_path: Path
) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text(
        '[verdicts]\nbackends = ["nftables"]\ninterval = 0.05\nreconcile_interval = 1\n'
    )
    out = tmp_path / "live"
    argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out", str(out),
            "--probe", "off", "--config", str(config), "--stats-interval", "0.5"]  # fmt: skip
    sensor = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        assert wait(lambda: out.joinpath("events.jsonl").exists(), 60), "sensor did not start"
        time.sleep(1.0)  # the capture is open once the event log exists; let it settle
        assert lab.blocked_hosts() == []
        sent = lab.post(ARCHIVE.read_bytes())
        assert wait(lambda: CLIENT in lab.blocked_hosts(), 20), "the block never arrived"
        print(f"detection to enforcement: {(time.monotonic() - sent) * 1000:.0f} ms")
        assert not lab.reachable(lab.client, timeout=1.0)  # the client is cut off
        assert lab.reachable(lab.gateway)  # the rest of the network is not
        # Behind Sluice's back: the whole ruleset is flushed; the reconciler restores it.
        assert lab.nft("flush", "ruleset").returncode == 0
        assert lab.blocked_hosts() == []
        assert wait(lambda: CLIENT in lab.blocked_hosts(), 15), "not restored after a flush"
        assert not lab.reachable(lab.client, timeout=1.0)
    finally:
        sensor.terminate()
        _, err = sensor.communicate(timeout=60)
    stderr = err.decode()
    assert sensor.returncode == 0, stderr
    assert "verdicts: enforced through nftables" in stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    (verdict,) = [e["verdict"] for e in events if e["event_type"] == "verdict"]
    assert (verdict["action"], verdict["target"], verdict["mode"]) == (
        "block_host", CLIENT, "enforce",
    )  # fmt: skip
    assert verdict["policy_rule"] == "encrypted-upload" and verdict["ttl"] == 3600
    assert not [e for e in events if e["event_type"] == "verdict_refused"]
    # The element's comment names the verdict.
    listing = lab.nft("-j", "list", "set", "inet", "sluice", "hosts_v4").stdout
    assert f"v={verdict['id']}" in listing
    # `sluice verdicts` shows it delivered to nftables (from the outbox beside the database).
    done = subprocess.run(
        [SLUICE, "verdicts", "--db", str(out), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["id"] == verdict["id"] and row["delivery"]["nftables"]["state"] == "delivered"
    text = subprocess.run([SLUICE, "verdicts", "--db", str(out)], capture_output=True, text=True)
    assert "enforce; nftables delivered" in " ".join(text.stdout.split())


def test_blocks_added_and_removed_by_hand_reach_the_firewall(
    lab: GatewayLab, tmp_path: Path
) -> None:
    """`sluice blocks add` writes to the running sensor's outbox, whose worker puts it in
    nftables; `sluice blocks remove` takes out exactly that block."""
    config = tmp_path / "sluice.toml"
    config.write_text('[verdicts]\nbackends = ["nftables"]\ninterval = 0.05\n')
    out = tmp_path / "live"
    argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out", str(out),
            "--probe", "off", "--config", str(config)]  # fmt: skip
    sensor = subprocess.Popen(argv, stderr=subprocess.PIPE)
    common = ["--db", str(out), "--config", str(config)]

    def blocks(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", lab.gateway, SLUICE, "blocks", *args, *common],
            capture_output=True, text=True,
        )  # fmt: skip

    try:
        assert wait(lambda: out.joinpath("outbox.db").exists(), 60), "sensor did not start"
        added = blocks("add", CLIENT, "--ttl", "10m", "--reason", "incident 42")
        assert added.returncode == 0, added.stderr
        assert wait(lambda: CLIENT in lab.blocked_hosts(), 10), "the manual block never arrived"
        assert not lab.reachable(lab.client, timeout=1.0)
        # The gateway's own address is protected, whatever a hand types.
        refused = blocks("add", "10.10.0.1", "--reason", "oops")
        assert refused.returncode == 2 and "protected" in refused.stderr
        listing = blocks("list", "--json")
        (row,) = json.loads(listing.stdout)
        assert row["target"] == CLIENT and row["reason"] == "by hand: incident 42"
        assert wait(lambda: blocks("list", "--json").stdout.count('"delivered"') == 1, 10)
        removed = blocks("remove", CLIENT)
        assert removed.returncode == 0, removed.stderr
        assert wait(lambda: CLIENT not in lab.blocked_hosts(), 10), "not removed"
        assert wait(lambda: lab.reachable(lab.client), 5)
    finally:
        sensor.terminate()
        _, err = sensor.communicate(timeout=60)
    assert sensor.returncode == 0, err.decode()


def test_a_killed_sensor_restarts_into_the_same_blocks(lab: GatewayLab, tmp_path: Path) -> None:
    """SIGKILL after the block was delivered, the ruleset flushed while the sensor is down:
    the restarted sensor reconciles at start from its outbox, so the block is back (once, with
    its remaining time, not a fresh hour) before any new traffic is seen."""
    config = tmp_path / "sluice.toml"
    config.write_text('[verdicts]\nbackends = ["nftables"]\ninterval = 0.05\n')
    out = tmp_path / "live"
    argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out", str(out),
            "--probe", "off", "--config", str(config)]  # fmt: skip
    first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        assert wait(lambda: out.joinpath("events.jsonl").exists(), 60), "sensor did not start"
        time.sleep(1.0)
        lab.post(ARCHIVE.read_bytes())
        assert wait(lambda: CLIENT in lab.blocked_hosts(), 20), "the block never arrived"
    finally:
        first.kill()  # SIGKILL: no clean shutdown, no last pass
        first.wait(timeout=30)
    time.sleep(2.0)  # the block's remaining time is now visibly below the hour
    assert lab.nft("flush", "ruleset").returncode == 0
    assert lab.blocked_hosts() == []
    second = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        assert wait(lambda: CLIENT in lab.blocked_hosts(), 30), "not restored at start"
        listing = json.loads(lab.nft("-j", "list", "set", "inet", "sluice", "hosts_v4").stdout)
        (element,) = listing["nftables"][1]["set"]["elem"]
        assert element["elem"]["val"] == CLIENT
        assert 3000 < element["elem"]["expires"] < 3598  # the remaining time, not a new hour
        assert not lab.reachable(lab.client, timeout=1.0)
    finally:
        second.terminate()
        _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    done = subprocess.run(
        [SLUICE, "verdicts", "--db", str(out), "--json"], capture_output=True, text=True
    )
    (row,) = json.loads(done.stdout)  # one verdict, decided once, delivered
    assert row["delivery"]["nftables"]["state"] == "delivered"


def _free_port(ns: str) -> int:
    with inside_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(
    ns: str, port: int, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """GET 127.0.0.1:port/path inside `ns`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with inside_netns(ns):
        conn.connect()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_feed_and_the_webhook_carry_a_live_block(lab: GatewayLab, tmp_path: Path) -> None:
    """Backends "feed" and "webhook" of a live sensor: the uploader appears in the served
    /hosts.txt (token required, ETag round trip) and a signed POST reaches a receiver; each
    poll is a `feed_fetch` event, and the token is in no output."""
    token, secret = "feed-token-123456", "hook-secret-654321"
    (tmp_path / "token").write_text(token)
    (tmp_path / "secret").write_text(secret)
    received: list[tuple[dict[str, str], bytes]] = []
    with inside_netns(lab.gateway):
        hook = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hook.bind(("127.0.0.1", 0))
    hook.listen(8)
    hook_port = hook.getsockname()[1]

    def receive() -> None:
        while True:
            try:
                conn, _ = hook.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
                while len(body) < int(headers.get("content-length", 0)):
                    body += conn.recv(65536)
                received.append((headers, body))
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=receive, daemon=True).start()
    feed_port = _free_port(lab.gateway)
    config = tmp_path / "sluice.toml"
    config.write_text(
        '[verdicts]\nbackends = ["feed", "webhook"]\ninterval = 0.05\n'
        f'feed_listen = "127.0.0.1:{feed_port}"\nfeed_token_file = "{tmp_path / "token"}"\n'
        f'webhook_url = "http://127.0.0.1:{hook_port}/sluice"\n'
        f'webhook_secret_file = "{tmp_path / "secret"}"\n'
    )
    out = tmp_path / "live"
    argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out", str(out),
            "--probe", "off", "--config", str(config)]  # fmt: skip
    sensor = subprocess.Popen(argv, stderr=subprocess.PIPE)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        assert wait(lambda: out.joinpath("events.jsonl").exists(), 60), "sensor did not start"
        time.sleep(1.0)
        status, _, body = _get(lab.gateway, feed_port, "/hosts.txt", auth)
        assert (status, body) == (200, b"")  # a valid empty list
        assert _get(lab.gateway, feed_port, "/hosts.txt", {})[0] == 401
        lab.post(ARCHIVE.read_bytes())
        assert wait(lambda: len(received) >= 1, 20), "no webhook call"
        assert wait(lambda: _get(lab.gateway, feed_port, "/hosts.txt", auth)[2] != b"", 10)
        status, headers, body = _get(lab.gateway, feed_port, "/hosts.txt", auth)
        assert (status, body) == (200, f"{CLIENT}\n".encode())
        again = _get(
            lab.gateway, feed_port, "/hosts.txt", {**auth, "If-None-Match": headers["etag"]}
        )
        assert again[0] == 304
        time.sleep(0.3)  # a stats tick writes the polls out
    finally:
        sensor.terminate()
        _, err = sensor.communicate(timeout=60)
        hook.close()
    assert sensor.returncode == 0, err.decode()
    assert "verdicts: enforced through feed, webhook" in err.decode()
    headers, body = received[0]
    mac = hmac.new(secret.encode(), headers["x-sluice-timestamp"].encode() + b"." + body,
                   hashlib.sha256).hexdigest()  # fmt: skip
    assert headers["x-sluice-signature"] == f"sha256={mac}"
    call = json.loads(body)
    assert call["action"] == "block" and call["verdict"]["target"] == CLIENT
    assert 3500 < call["remaining"] <= 3600
    events = (out / "events.jsonl").read_text()
    polls = [json.loads(x)["feed_fetch"] for x in events.splitlines() if '"feed_fetch"' in x]
    assert {(p["path"], p["status"]) for p in polls} >= {("/hosts.txt", 200), ("/hosts.txt", 401),
                                                         ("/hosts.txt", 304)}  # fmt: skip
    for blob in (events, err.decode(), (out / "sluice.db").read_bytes().decode("latin-1")):
        assert token not in blob and secret not in blob


def test_crowdsec_gets_one_decision_across_a_killed_and_restarted_sensor(
    lab: GatewayLab, tmp_path: Path
) -> None:
    """Backend "crowdsec" against a real LAPI (Debian's crowdsec, its own config, in the
    gateway namespace): the uploader becomes one ban decision that every bouncer sees; the
    sensor is SIGKILLed and restarted, reconciles from its outbox, and the LAPI still holds
    exactly one decision (POST /v1/alerts is not idempotent: nothing was sent twice)."""
    from tests.verdicts.test_crowdsec import MACHINE, Lapi

    require_tool("crowdsec")
    lapi = Lapi(tmp_path / "lapi", netns=lab.gateway)
    lapi.prepare()
    lapi.start()
    try:
        (tmp_path / "password").write_text(lapi.password)
        config = tmp_path / "sluice.toml"
        config.write_text(
            '[verdicts]\nbackends = ["crowdsec"]\ninterval = 0.05\n'
            f'crowdsec_url = "{lapi.url}"\ncrowdsec_machine_id = "{MACHINE}"\n'
            f'crowdsec_password_file = "{tmp_path / "password"}"\n'
        )
        out = tmp_path / "live"
        argv = ["ip", "netns", "exec", lab.gateway, SLUICE, "run", "--iface", "g0", "--out",
                str(out), "--probe", "off", "--config", str(config)]  # fmt: skip
        first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            assert wait(lambda: out.joinpath("events.jsonl").exists(), 60), "no start"
            time.sleep(1.0)
            lab.post(ARCHIVE.read_bytes())
            assert wait(lambda: bool(lapi.decisions(CLIENT)), 20, step=0.1), lapi.log_tail()
        finally:
            first.kill()
            first.wait(timeout=30)
        second = subprocess.Popen(argv, stderr=subprocess.PIPE)
        try:
            assert wait(lambda: out.joinpath("outbox.db").exists(), 60)
            time.sleep(3.0)  # start-up reconcile and a few delivery passes
        finally:
            second.terminate()
            _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err.decode()
        (decision,) = lapi.decisions(CLIENT)  # exactly one, after a kill and a restart
        assert decision["type"] == "ban" and decision["origin"] == "sluice"
        assert decision["scenario"].startswith("sluice/v=")
        assert lapi.password not in err.decode()
    finally:
        lapi.stop()
