"""The block-list feed (sensor/verdicts/feed.py): a real HTTP server on 127.0.0.1, fetched
with http.client (and urllib for Basic auth), the way a firewall polls it. Expiry runs on a
fake clock; nothing here sleeps to wait for a condition."""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.policy.verdict import Verdict, target_kind, verdict_id
from sensor.verdicts.base import BackendError
from sensor.verdicts.feed import BlockLists, FeedBackend, FetchRecord, placement

T0 = 1_750_000_000.0
TOKEN = "feed-token-0123456789abcdef"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_verdict(target: str, action: str = "block_destination", *, incident: str = "i") -> Verdict:
    return Verdict(
        id=verdict_id(action, target, incident, T0),
        action=action,
        target=target,
        target_kind=target_kind(target),
        ttl=3600.0,
        decided_at=T0,
        reason="test",
        severity="high",
        confidence=0.9,
        finding_ids=("f1",),
        incident_id=incident,
        policy_rule="test-rule",
        mode="enforce",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def records() -> list[FetchRecord]:
    return []


@pytest.fixture
def feed(clock: Clock, records: list[FetchRecord]) -> Iterator[FeedBackend]:
    with FeedBackend(("127.0.0.1", 0), token=TOKEN, clock=clock, on_fetch=records.append) as f:
        yield f


def get(
    feed: FeedBackend,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    token: str | None = TOKEN,
    method: str = "GET",
    recorded: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    """One request; waits (with a deadline) until the server has logged it, since the
    record is written after the response has left."""
    host, port = feed.address
    before = feed.logged
    conn = HTTPConnection(host, port, timeout=5)
    try:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.setdefault("Authorization", f"Bearer {token}")
        conn.request(method, path, headers=all_headers)
        response = conn.getresponse()
        joined: dict[str, str] = {}
        for key, value in response.getheaders():  # repeated fields joined, as RFC 9110 5.3
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        result = response.status, joined, response.read()
    finally:
        conn.close()
    end = time.monotonic() + 5
    while recorded and feed.logged == before:
        assert time.monotonic() < end, "the request was never logged"
        time.sleep(0.001)
    return result


def lines(body: bytes) -> list[str]:
    return body.decode().splitlines()


# -- the lists ----------------------------------------------------------------------------


def test_empty_lists_are_valid_and_empty(feed: FeedBackend) -> None:
    for path in ("/hosts.txt", "/destinations-ip.txt", "/destinations-domain.txt"):
        status, headers, body = get(feed, path)
        assert status == 200
        assert body == b""
        assert headers["Content-Length"] == "0"
        assert headers["Content-Type"].startswith("text/plain")
        assert headers["ETag"].startswith('"')
        assert "Last-Modified" in headers


def test_each_target_lands_in_its_list_canonically(feed: FeedBackend) -> None:
    feed.block(make_verdict("10.1.2.3", "block_host"), 600)
    feed.block(make_verdict("10.9.0.0/16", "block_host"), 600)
    feed.block(make_verdict("2001:DB8:0:0:0:0:0:7"), 600)
    feed.block(make_verdict("2001:db8:100::/40"), 600)
    feed.block(make_verdict("203.0.113.0/24"), 600)
    feed.block(make_verdict("198.51.100.7/32"), 600)
    feed.block(make_verdict("Transfer.Example."), 600)
    feed.block(make_verdict("a.example"), 600)
    assert lines(get(feed, "/hosts.txt")[2]) == ["10.1.2.3", "10.9.0.0/16"]
    assert lines(get(feed, "/destinations-ip.txt")[2]) == [
        "198.51.100.7",
        "203.0.113.0/24",
        "2001:db8::7",
        "2001:db8:100::/40",
    ]
    assert lines(get(feed, "/destinations-domain.txt")[2]) == ["a.example", "transfer.example"]
    assert get(feed, "/destinations-ip.txt")[2].endswith(b"\n")


def test_a_host_named_by_domain_or_an_alert_is_refused(feed: FeedBackend) -> None:
    with pytest.raises(BackendError) as info:
        feed.block(make_verdict("host.example", "block_host"), 600)
    assert not info.value.transient
    with pytest.raises(BackendError) as info:
        feed.block(make_verdict("10.1.2.3", "alert"), 600)
    assert not info.value.transient


def test_expiry_drops_entries_and_held_reports_what_is_left(
    feed: FeedBackend, clock: Clock
) -> None:
    short, long = make_verdict("203.0.113.1"), make_verdict("203.0.113.2")
    feed.block(short, 60)
    feed.block(long, 600)
    held = {h.target: h for h in feed.held()}
    assert held["203.0.113.1"].remaining == 60
    assert held["203.0.113.2"].kind == "destinations"
    assert held["203.0.113.2"].verdict_id == long.id
    clock.now += 61
    assert lines(get(feed, "/destinations-ip.txt")[2]) == ["203.0.113.2"]
    assert [h.target for h in feed.held()] == ["203.0.113.2"]
    clock.now += 600
    assert get(feed, "/destinations-ip.txt")[2] == b""
    assert feed.held() == []


def test_refresh_and_unblock_only_what_the_verdict_put_there(
    feed: FeedBackend, clock: Clock
) -> None:
    first = make_verdict("203.0.113.9", incident="a")
    later = make_verdict("203.0.113.9", incident="b")
    feed.block(first, 60)
    feed.block(later, 3000)  # the outbox's newer effective verdict refreshes the target
    [held] = feed.held()
    assert (held.verdict_id, held.remaining) == (later.id, 3000)
    feed.unblock(first)  # superseded: its unblock must not lift the later block
    assert lines(get(feed, "/destinations-ip.txt")[2]) == ["203.0.113.9"]
    feed.unblock(later)
    assert get(feed, "/destinations-ip.txt")[2] == b""
    feed.unblock(later)  # absent: success


def test_a_full_list_refuses_new_targets_but_refreshes_old_ones(clock: Clock) -> None:
    with FeedBackend(("127.0.0.1", 0), token=TOKEN, clock=clock, max_entries=2) as feed:
        feed.block(make_verdict("203.0.113.1"), 60)
        feed.block(make_verdict("203.0.113.2"), 60)
        with pytest.raises(BackendError, match="full") as info:
            feed.block(make_verdict("203.0.113.3"), 60)
        assert not info.value.transient
        feed.block(make_verdict("203.0.113.1"), 90)
        feed.block(make_verdict("host.example"), 60)  # another list, its own cap
        clock.now += 61  # .2 expires: room again
        feed.block(make_verdict("203.0.113.3"), 60)
        assert lines(get(feed, "/destinations-ip.txt")[2]) == ["203.0.113.1", "203.0.113.3"]


# -- conditional requests ----------------------------------------------------------------


def test_etag_round_trip(feed: FeedBackend, clock: Clock) -> None:
    feed.block(make_verdict("203.0.113.5"), 600)
    status, headers, body = get(feed, "/destinations-ip.txt")
    etag = headers["ETag"]
    status, again, body = get(feed, "/destinations-ip.txt", {"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert again["ETag"] == etag
    assert get(feed, "/destinations-ip.txt", {"If-None-Match": f'"x", W/{etag}'})[0] == 304
    feed.block(make_verdict("203.0.113.6"), 600)
    status, changed, body = get(feed, "/destinations-ip.txt", {"If-None-Match": etag})
    assert status == 200
    assert changed["ETag"] != etag
    assert lines(body) == ["203.0.113.5", "203.0.113.6"]
    # Expiry changes the content (and the tag) without any call to the backend.
    clock.now += 601
    status, _, body = get(feed, "/destinations-ip.txt", {"If-None-Match": changed["ETag"]})
    assert (status, body) == (200, b"")


def test_last_modified_round_trip(feed: FeedBackend, clock: Clock) -> None:
    feed.block(make_verdict("203.0.113.5"), 600)
    _, headers, _ = get(feed, "/destinations-ip.txt")
    stamp = headers["Last-Modified"]
    assert stamp == formatdate(int(T0), usegmt=True)
    clock.now += 30
    status, _, body = get(feed, "/destinations-ip.txt", {"If-Modified-Since": stamp})
    assert (status, body) == (304, b"")
    feed.block(make_verdict("203.0.113.6"), 600)
    status, headers, body = get(feed, "/destinations-ip.txt", {"If-Modified-Since": stamp})
    assert status == 200
    assert headers["Last-Modified"] == formatdate(int(T0) + 30, usegmt=True)
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    both = {"If-None-Match": '"stale"', "If-Modified-Since": headers["Last-Modified"]}
    assert get(feed, "/destinations-ip.txt", both)[0] == 200


def test_two_contents_in_one_second_never_get_a_wrong_304(feed: FeedBackend, clock: Clock) -> None:
    feed.block(make_verdict("203.0.113.5"), 600)
    _, first, _ = get(feed, "/destinations-ip.txt")
    clock.now += 0.5  # same second
    feed.block(make_verdict("203.0.113.6"), 600)
    _, second, body = get(feed, "/destinations-ip.txt")
    assert second["Last-Modified"] == first["Last-Modified"]
    # A client that cached the first content must get the second.
    status, _, body = get(
        feed, "/destinations-ip.txt", {"If-Modified-Since": first["Last-Modified"]}
    )
    assert status == 200
    assert lines(body) == ["203.0.113.5", "203.0.113.6"]
    clock.now += 1  # a later second: Last-Modified moves on and 304s resume
    _, third, _ = get(feed, "/destinations-ip.txt")
    assert third["Last-Modified"] != first["Last-Modified"]
    assert (
        get(feed, "/destinations-ip.txt", {"If-Modified-Since": third["Last-Modified"]})[0] == 304
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "remove", "fetch", "tick"]),
            st.integers(0, 5),
            st.floats(0.0, 2.0),
        ),
        max_size=40,
    )
)
def test_a_cached_copy_is_only_confirmed_when_it_is_current(
    steps: list[tuple[str, int, float]],
) -> None:
    """A client revalidating by Last-Modified or by ETag gets 304 only when its cached
    bytes equal the current ones, whatever the interleaving of changes, fetches and time."""
    lists = BlockLists()
    now = T0
    cached: dict[str, tuple[bytes, str, str]] = {}
    verdicts = [make_verdict(f"203.0.113.{i}") for i in range(6)]
    for op, i, dt in steps:
        if op == "put":
            lists.put(verdicts[i], 1 + i, now)
        elif op == "remove":
            lists.remove(verdicts[i])
        elif op == "tick":
            now += dt
        else:
            current = lists.render("destinations-ip", now)
            for body, etag, stamp in cached.values():
                by_date = current.not_modified(None, stamp)
                by_tag = current.not_modified(etag, None)
                if by_date or by_tag:
                    assert body == current.body
            stamp = formatdate(current.last_modified, usegmt=True)
            cached[f"{now}"] = (current.body, current.etag, stamp)


@settings(max_examples=100, deadline=None)
@given(
    st.sets(
        st.one_of(
            st.ip_addresses(v=4).map(str),
            st.ip_addresses(v=6).map(str),
            st.builds(
                lambda a, p: str(ipaddress.ip_network(f"{a}/{p}", strict=False)),
                st.ip_addresses(v=4),
                st.integers(8, 32),
            ),
            st.builds(
                lambda a, p: str(ipaddress.ip_network(f"{a}/{p}", strict=False)),
                st.ip_addresses(v=6),
                st.integers(16, 128),
            ),
        ),
        max_size=30,
    )
)
def test_every_served_line_parses_back_to_its_target(targets: set[str]) -> None:
    lists = BlockLists()
    for target in targets:
        lists.put(make_verdict(target), 60, T0)
    served = lines(lists.render("destinations-ip", T0).body)
    # "192.0.2.1" and "192.0.2.1/32" are one entry
    assert len(served) == len({ipaddress.ip_network(t) for t in targets})
    assert {ipaddress.ip_network(line) for line in served} == {
        ipaddress.ip_network(t) for t in targets
    }
    for line in served:  # canonical: what ipaddress would write, no /32 or /128
        network = ipaddress.ip_network(line)
        expected = (
            str(network.network_address)
            if network.prefixlen == network.max_prefixlen
            else str(network)
        )
        assert line == expected
    assert served == sorted(served, key=lambda t: placement(make_verdict(t))[2])


# -- authentication ----------------------------------------------------------------------


def test_the_token_is_required(feed: FeedBackend, records: list[FetchRecord]) -> None:
    feed.block(make_verdict("203.0.113.5"), 600)
    status, headers, body = get(feed, "/destinations-ip.txt", token=None)
    assert "Basic" in headers["WWW-Authenticate"]
    assert "Bearer" in headers["WWW-Authenticate"]
    assert status == 401
    assert b"203.0.113.5" not in body
    assert get(feed, "/destinations-ip.txt", token="wrong-token-0123456789")[0] == 401
    assert get(feed, f"/destinations-ip.txt?token={TOKEN}x", token=None)[0] == 401
    basic_wrong = base64.b64encode(b"fw:nope").decode()
    assert get(feed, "/hosts.txt", {"Authorization": f"Basic {basic_wrong}"})[0] == 401
    # The three ways in
    assert get(feed, "/destinations-ip.txt")[0] == 200
    assert get(feed, f"/destinations-ip.txt?token={TOKEN}", token=None)[0] == 200
    basic = base64.b64encode(f"panos:{TOKEN}".encode()).decode()
    assert get(feed, "/destinations-ip.txt", {"Authorization": f"Basic {basic}"})[0] == 200
    assert [r.auth for r in records] == [None, None, None, None, "bearer", "query", "basic"]
    assert all(TOKEN not in repr(r) for r in records)
    assert all(r.path == "/destinations-ip.txt" for r in records if r.status == 200)


def test_urllib_basic_auth_after_a_challenge(feed: FeedBackend) -> None:
    """A client that sends Basic only once challenged (urllib's handler) gets in."""
    import urllib.request

    host, port = feed.address
    url = f"http://{host}:{port}/hosts.txt"
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, url, "fw", TOKEN)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    with opener.open(url, timeout=5) as response:
        assert response.status == 200


def test_unknown_paths_are_404_after_auth(feed: FeedBackend) -> None:
    assert get(feed, "/etc/passwd", token=None)[0] == 401
    assert get(feed, "/nothing.txt")[0] == 404


# -- the fetch log -------------------------------------------------------------------------


def test_fetch_log_records_who_fetched_what(
    feed: FeedBackend, clock: Clock, records: list[FetchRecord]
) -> None:
    feed.block(make_verdict("203.0.113.5"), 600)
    _, headers, body = get(feed, "/destinations-ip.txt", {"User-Agent": "PAN-OS/11"})
    clock.now += 300
    get(feed, "/destinations-ip.txt", {"If-None-Match": headers["ETag"]})
    get(feed, "/hosts.txt", method="HEAD")
    first, second, third = feed.fetches()
    assert first == FetchRecord(
        at=T0,
        client="127.0.0.1",
        method="GET",
        path="/destinations-ip.txt",
        status=200,
        bytes=len(body),
        etag=headers["ETag"],
        auth="bearer",
        user_agent="PAN-OS/11",
    )
    assert (second.status, second.bytes, second.at) == (304, 0, T0 + 300)
    assert (third.method, third.path, third.bytes) == ("HEAD", "/hosts.txt", 0)
    assert records == [first, second, third]
    assert feed.last_fetched() == {"/destinations-ip.txt": T0 + 300, "/hosts.txt": T0 + 300}


def test_fetch_log_is_bounded_and_a_failing_hook_is_contained(clock: Clock) -> None:
    def broken(record: FetchRecord) -> None:
        raise RuntimeError("hook bug")

    with FeedBackend(
        ("127.0.0.1", 0), token=TOKEN, clock=clock, fetch_log=3, on_fetch=broken
    ) as feed:
        for i in range(5):
            clock.now = T0 + i
            assert get(feed, "/hosts.txt")[0] == 200
        assert [r.at for r in feed.fetches()] == [T0 + 2, T0 + 3, T0 + 4]
        assert feed.hook_errors == 5


# -- bounds ------------------------------------------------------------------------------


def wait_closed(sock: socket.socket, deadline: float = 5.0) -> bytes:
    """Read until the server closes the connection (or the deadline passes)."""
    sock.settimeout(0.2)
    data = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server kept the connection open past its deadline")


def test_oversized_requests_are_431(feed: FeedBackend) -> None:
    status, _, _ = get(feed, "/hosts.txt", {"X-Pad": "a" * 9000}, recorded=False)
    assert status == 431


def test_a_slow_client_is_cut_at_the_deadline(clock: Clock) -> None:
    with FeedBackend(
        ("127.0.0.1", 0), token=TOKEN, clock=clock, read_timeout=30, request_deadline=0.5
    ) as feed:
        with socket.create_connection(feed.address) as slow:
            slow.sendall(b"GET /hosts.txt HTTP/1.1\r\n")  # and then nothing, for 30 s
            started = time.monotonic()
            assert wait_closed(slow) == b""
            assert time.monotonic() - started < 5  # cut by the deadline, not read_timeout
        assert get(feed, "/hosts.txt")[0] == 200  # and the slot is free again


def test_connections_beyond_the_cap_get_503(clock: Clock) -> None:
    with FeedBackend(("127.0.0.1", 0), token=TOKEN, clock=clock, max_connections=1) as feed:
        with socket.create_connection(feed.address) as holder:
            holder.sendall(b"GET /hosts.txt HTTP/1.1\r\n")  # holds the only slot
            with socket.create_connection(feed.address) as second:
                assert wait_closed(second).startswith(b"HTTP/1.1 503")
            holder.sendall(f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
            assert wait_closed(holder).startswith(b"HTTP/1.1 200")
        assert get(feed, "/hosts.txt")[0] == 200


def test_a_taken_port_is_a_clear_error(feed: FeedBackend) -> None:
    other = FeedBackend(feed.address, token=TOKEN)
    with pytest.raises(BackendError, match="cannot listen") as info:
        other.start()
    assert not info.value.transient


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        FeedBackend(("127.0.0.1", 0), token="short")


# -- HTTPS -------------------------------------------------------------------------------


def test_served_over_tls(tmp_path: Path, clock: Clock) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with FeedBackend(("127.0.0.1", 0), token=TOKEN, clock=clock, ssl_context=server_ctx) as feed:
        feed.block(make_verdict("203.0.113.5"), 600)
        host, port = feed.address
        conn = HTTPSConnection(host, port, timeout=5, context=client_ctx)
        conn.request("GET", f"/destinations-ip.txt?token={TOKEN}")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"203.0.113.5\n")
        conn.close()
        # A plain-HTTP client on the TLS port gets nothing and does not hold the server.
        with socket.create_connection((host, port)) as plain:
            plain.sendall(b"GET /hosts.txt HTTP/1.1\r\n\r\n")
            assert b"203.0.113.5" not in wait_closed(plain)
        assert feed.held()[0].target == "203.0.113.5"
