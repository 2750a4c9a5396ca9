"""dns-named-upload (REAL): names from DNS answers name uploads that carry none.

A real DNS server, Debian's dnsmasq, answers on 198.51.100.20:53 in the server namespace from
its command line only (no resolv.conf, no hosts file, no upstream, no files outside the run's
temp dir):

    files.example.com     CNAME  edge.cdn.example.net
    edge.cdn.example.net  A      198.51.100.20
    vault.example.org     AAAA   2001:db8::20

The client resolves both names through glibc (`socket.getaddrinfo`, A for the first, AAAA for
the second; `ip netns exec` bind-mounts /etc/netns/<client ns>/resolv.conf over
/etc/resolv.conf, which this script writes before the client runs and removes on exit, also
after a failure), then sends a fake patient CSV to each resolved address over plain TCP (a
bare byte stream on port 9000: no SNI, no Host header), so the meter can only learn the
destinations' names from the DNS answers. Ground truth: what getaddrinfo returned to the client
and the sha256 of what the server received from each client address.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import expect, fakedata, realcase
from pcaps._lib.netns import CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6, NetnsPair

CNAME = "files.example.com"
CANONICAL = "edge.cdn.example.net"
V6_NAME = "vault.example.org"
PORT = 9000
UPLOADS = {
    CNAME: (socket.AF_INET, fakedata.patients_csv(150_000, seed=91)),
    V6_NAME: (socket.AF_INET6, fakedata.patients_csv(90_000, seed=92)),
}
DNSMASQ = "dnsmasq"


def dnsmasq_argv(workdir: Path) -> list[str]:
    return [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",  # not /etc/dnsmasq.conf
        "--no-resolv",  # no upstream servers: answer from the lines below only
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={SERVER_V4}",
        "--port=53",
        f"--pid-file={workdir / 'dnsmasq.pid'}",
        "--local-ttl=300",  # what the answers carry (dnsmasq gives local names 0 by default)
        "--log-queries",
        "--log-facility=/dev/stdout",  # read by the orchestrator: "started" means listening
        f"--host-record={CANONICAL},{SERVER_V4}",
        f"--cname={CNAME},{CANONICAL}",
        f"--host-record={V6_NAME},{SERVER_V6}",
    ]


def server(workdir: Path) -> None:
    """A TCP sink on both server addresses: records who sent how many bytes and their sha256."""

    def serve(family: int, address: str) -> None:
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.bind((address, PORT))
            listener.listen()
            ready.release()
            while True:
                conn, peer = listener.accept()
                with conn:
                    digest, size = hashlib.sha256(), 0
                    while chunk := conn.recv(65536):
                        digest.update(chunk)
                        size += len(chunk)
                    realcase.append_record(
                        workdir,
                        "server-received",
                        {"peer": peer[0], "size": size, "sha256": digest.hexdigest()},
                    )
                    conn.sendall(b"OK %d\n" % size)

    ready = threading.Semaphore(0)
    for family, address in ((socket.AF_INET, SERVER_V4), (socket.AF_INET6, SERVER_V6)):
        threading.Thread(target=serve, args=(family, address), daemon=True).start()
    ready.acquire()
    ready.acquire()
    print("READY", flush=True)
    threading.Event().wait()


def client(workdir: Path) -> None:
    for name, (family, body) in UPLOADS.items():
        infos = socket.getaddrinfo(name, PORT, family, socket.SOCK_STREAM)
        address = str(infos[0][4][0])
        realcase.append_record(
            workdir,
            "client-resolved",
            {"name": name, "addresses": sorted({i[4][0] for i in infos})},
        )
        with socket.create_connection((address, PORT), timeout=30) as conn:
            conn.sendall(body)
            conn.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := conn.recv(1024):
                reply += chunk
        assert reply == b"OK %d\n" % len(body), reply


def build_expected(case_dir: Path, workdir: Path) -> None:
    resolved = {
        r["name"]: r["addresses"] for r in realcase.read_records(workdir, "client-resolved")
    }
    assert resolved == {CNAME: [SERVER_V4], V6_NAME: [SERVER_V6]}, resolved
    received = {r["peer"]: r for r in realcase.read_records(workdir, "server-received")}
    for client_address, name in ((CLIENT_V4, CNAME), (CLIENT_V6, V6_NAME)):
        body = UPLOADS[name][1]
        assert received[client_address]["sha256"] == realcase.sha256(body), client_address
    flows = expect.count_flows(case_dir / "input.pcap")
    assert flows == 4, flows  # one UDP lookup and one TCP upload per name
    expect.write_expected(
        case_dir,
        objects=[],  # a bare byte stream is no object
        http=[],
        flows=flows,
        extra={
            "destinations": [
                {"host": CLIENT_V4, "ip": SERVER_V4, "name": CNAME},
                {"host": CLIENT_V6, "ip": SERVER_V6, "name": V6_NAME},
            ]
        },
    )


def orchestrate(script: Path) -> None:
    if shutil.which(DNSMASQ) is None:
        raise SystemExit("dns-named-upload needs dnsmasq (Debian: apt-get install dnsmasq-base)")
    case_dir = script.parent
    pcap = case_dir / "input.pcap"
    workdir = Path(tempfile.mkdtemp(prefix="sluice-pcap-"))
    workdir.chmod(0o777)
    me = [sys.executable, str(script)]
    netns_dir = Path("/etc/netns")
    made_netns_dir = not netns_dir.exists()
    resolv_dir: Path | None = None
    try:
        with NetnsPair(case_dir.name) as net:
            # glibc in the client namespace asks our dnsmasq and nothing else.
            resolv_dir = netns_dir / net.ns["client"]
            resolv_dir.mkdir(parents=True)
            (resolv_dir / "resolv.conf").write_text(
                f"nameserver {SERVER_V4}\noptions timeout:2 attempts:2\n"
            )
            dns = net.spawn("server", dnsmasq_argv(workdir))
            net.wait_for_line(dns, b"started, version")
            srv = net.spawn("server", [*me, "--role", "server", "--workdir", str(workdir)])
            net.wait_for_line(srv, b"READY")
            with net.capture(pcap, bpf="tcp or udp port 53"):
                net.run("client", [*me, "--role", "client", "--workdir", str(workdir)])
        build_expected(case_dir, workdir)
    finally:
        if resolv_dir is not None:
            shutil.rmtree(resolv_dir, ignore_errors=True)
        if made_netns_dir:
            # Unless something else put a namespace's files there meanwhile.
            with contextlib.suppress(OSError):
                netns_dir.rmdir()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["server", "client"])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.role == "server":
        server(args.workdir)
    elif args.role == "client":
        client(args.workdir)
    else:
        orchestrate(Path(__file__).resolve())


if __name__ == "__main__":
    main()
