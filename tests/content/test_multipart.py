"""MultipartSplitter: RFC 2046 sec 5.1 splitting under any segmentation, caps and damage."""

from __future__ import annotations

import email
import email.policy
import itertools
from dataclasses import dataclass, field

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sensor.anomaly import Anomaly
from sensor.content.multipart import (
    MAX_PADDING,
    MultipartSplitter,
    PartData,
    PartEnd,
    PartGap,
    PartStart,
    PreambleData,
)
from sensor.content.objects import ContentCaps

B = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"


@dataclass
class Part:
    headers: list[tuple[bytes, bytes]]
    data: bytes = b""
    missing: int = 0
    complete: bool | None = None


@dataclass
class Result:
    parts: list[Part] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    preamble: bytes = b""


def collect(events: list[object], result: Result) -> None:
    for ev in events:
        if isinstance(ev, PartStart):
            assert ev.index == len(result.parts)
            result.parts.append(Part(ev.headers))
        elif isinstance(ev, PartData):
            result.parts[-1].data += ev.data
        elif isinstance(ev, PartGap):
            result.parts[-1].missing += ev.size
        elif isinstance(ev, PartEnd):
            result.parts[-1].complete = ev.complete
        elif isinstance(ev, PreambleData):
            result.preamble += ev.data
        elif isinstance(ev, Anomaly):
            result.anomalies.append(ev.kind)


def split(
    body: bytes, chunks: list[bytes] | None = None, boundary: bytes = B, **caps: int
) -> Result:
    splitter = MultipartSplitter(boundary, ContentCaps(**caps))
    result = Result()
    for chunk in chunks if chunks is not None else [body]:
        collect(list(splitter.feed(chunk)), result)
    collect(list(splitter.end()), result)
    return result


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# Binary data full of near-misses: partial delimiters, a delimiter not at a line start, a
# delimiter followed by other characters, and bare CR/LF.
TRICKY = (
    b"\x00\xff\r\n\r\n--" + B[:-1] + b"\r\n" + b"--" + B + b"X\r\n" + b"x--" + B + b"\r\n"
    b"\r\r\n-\n--" + B[:5] + b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n-"
)

THREE = (
    b"--" + B + b"\r\n"
    b'Content-Disposition: form-data; name="comment"\r\n\r\n'
    b"hello\r\nworld\r\n"
    b"--" + B + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="scan.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n" + TRICKY + b"\r\n"
    b"--" + B + b"\r\n"
    b"Content-Disposition: form-data; name=\"f2\"; filename*=UTF-8''%e2%82%ac.txt\r\n\r\n"
    b"\r\n"
    b"--" + B + b"--\r\n"
)
THREE_DATA = [b"hello\r\nworld", TRICKY, b""]


def check_three(r: Result) -> None:
    assert [p.data for p in r.parts] == THREE_DATA
    assert all(p.complete for p in r.parts)
    assert r.anomalies == []
    assert r.parts[1].headers == [
        (b"Content-Disposition", b'form-data; name="file"; filename="scan.bin"'),
        (b"Content-Type", b"application/octet-stream"),
    ]


def test_three_parts_whole_and_byte_by_byte() -> None:
    check_three(split(THREE))
    check_three(split(THREE, [THREE[i : i + 1] for i in range(len(THREE))]))


def test_three_parts_split_at_every_position() -> None:
    for cut in range(len(THREE) + 1):
        check_three(split(THREE, [THREE[:cut], THREE[cut:]]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(THREE)), max_size=40))
def test_three_parts_random_splits(cuts: list[int]) -> None:
    check_three(split(THREE, chunked(THREE, cuts)))


def test_bare_lf_and_transport_padding() -> None:
    body = (
        b"preamble\n--" + B + b" \t \n"
        b"Content-Type: text/plain\n\nline1\nline2\n"
        b"--" + B + b"\t\r\n\r\nsecond\n"
        b"--" + B + b"--  \n"
    )
    for cut in range(len(body) + 1):
        r = split(body, [body[:cut], body[cut:]])
        assert [p.data for p in r.parts] == [b"line1\nline2", b"second"]
        assert r.parts[0].headers == [(b"Content-Type", b"text/plain")]
        assert r.anomalies == ["multipart_preamble_data"]


def test_padding_longer_than_cap_is_not_a_delimiter() -> None:
    body = b"--" + B + b"\r\n\r\nA\r\n--" + B + b" " * (MAX_PADDING + 1) + b"\r\nB"
    r = split(body)
    assert r.parts[0].data == b"A\r\n--" + B + b" " * (MAX_PADDING + 1) + b"\r\nB"


def test_missing_final_boundary() -> None:
    body = THREE[: THREE.rindex(b"\r\n--" + B + b"--")]
    r = split(body)
    assert [p.data for p in r.parts] == THREE_DATA
    assert [p.complete for p in r.parts] == [True, True, False]
    assert r.anomalies == ["multipart_unterminated"]


def test_close_delimiter_at_end_without_crlf() -> None:
    body = b"--" + B + b"\r\n\r\nx\r\n--" + B + b"--"
    r = split(body)
    assert [(p.data, p.complete) for p in r.parts] == [(b"x", True)]
    assert r.anomalies == []


def test_no_delimiter_in_body() -> None:
    body = b"this is not multipart at all\r\n--other\r\n"
    r = split(body, [body[:5], body[5:]])
    assert r.parts == []
    assert r.preamble == body  # the caller turns this into the whole-body object
    assert r.anomalies == ["multipart_boundary_missing"]


def test_epilogue_data_is_flagged_not_returned() -> None:
    r = split(THREE + b"exfil in the epilogue")
    check_three_parts = [p.data for p in r.parts]
    assert check_three_parts == THREE_DATA
    assert r.anomalies == ["multipart_epilogue_data"]


def test_part_cap_keeps_the_rest_as_one_part() -> None:
    r = split(THREE, max_parts=1)
    assert len(r.parts) == 2
    assert r.parts[0].data == b"hello\r\nworld" and r.parts[0].complete
    assert r.parts[1].complete is False
    assert TRICKY in r.parts[1].data  # nothing lost
    assert r.anomalies == ["multipart_part_cap"]


def test_header_cap() -> None:
    body = b"--" + B + b"\r\nX-Long: " + b"a" * 500 + b"\r\n\r\nDATA\r\n--" + B + b"--\r\n"
    r = split(body, [body[i : i + 7] for i in range(0, len(body), 7)], max_part_header_bytes=100)
    assert r.anomalies == ["multipart_header_too_long"]
    assert r.parts[0].headers == []
    assert r.parts[0].data.startswith(b"X-Long: aaa") and r.parts[0].data.endswith(b"\r\n\r\nDATA")


def test_header_folding_and_malformed_line() -> None:
    body = b"--" + B + b"\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nnonsense\r\n"
    body += b"\r\nx\r\n--" + B + b"--\r\n"
    r = split(body)
    assert r.parts[0].headers == [(b"Content-Type", b"text/plain; charset=utf-8")]
    assert r.anomalies == ["multipart_header_malformed"]


def test_gap_inside_a_part() -> None:
    cut = THREE.index(TRICKY) + 20
    splitter = MultipartSplitter(B)
    r = Result()
    collect(list(splitter.feed(THREE[:cut])), r)
    collect(list(splitter.gap(30)), r)
    collect(list(splitter.feed(THREE[cut + 30 :])), r)
    collect(list(splitter.end()), r)
    assert len(r.parts) == 3
    assert r.parts[1].missing == 30
    assert r.parts[1].data == TRICKY[:20] + TRICKY[50:]
    assert [p.data for p in r.parts[::2]] == [THREE_DATA[0], THREE_DATA[2]]
    assert r.anomalies == []


def test_buffer_stays_bounded() -> None:
    splitter = MultipartSplitter(B)
    splitter.feed(b"--" + B + b"\r\n\r\n")
    chunk = (b"\r\n--" + B[:-1] + b"\r\n") * 100 + b"\r\n--"
    limit = len(B) + MAX_PADDING + 8
    for _ in range(200):
        splitter.feed(chunk)
        assert len(splitter._buf) <= limit


# -- differential against Python's email package --------------------------------------------

part_payload = st.binary(max_size=300).filter(lambda b: B[:12] not in b)
part_names = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(part_payload, min_size=1, max_size=5),
    names=st.lists(part_names, min_size=5, max_size=5),
    newline=st.sampled_from([b"\r\n", b"\n"]),
    data=st.data(),
)
def test_differential_against_email(
    payloads: list[bytes], names: list[str], newline: bytes, data: st.DataObject
) -> None:
    if newline == b"\n":
        # Bare-LF tolerance is ambiguous for a part ending in CR: "\r\n--B" is read as a CRLF
        # delimiter (the RFC 2046 form), email reads LF only. Not a case real clients produce.
        assume(not any(p.endswith(b"\r") for p in payloads))
    body = b""
    for payload, name in zip(payloads, names, strict=False):
        body += b"--" + B + newline
        body += b'Content-Disposition: form-data; name="' + name.encode() + b'"' + newline
        body += b"Content-Type: application/octet-stream" + newline + newline
        body += payload + newline
    body += b"--" + B + b"--" + newline
    message = b'Content-Type: multipart/form-data; boundary="' + B + b'"' + newline + newline + body
    reference = email.message_from_bytes(message, policy=email.policy.compat32)
    expected = [p.get_payload(decode=True) for p in reference.get_payload()]  # type: ignore[union-attr]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    r = split(body, chunked(body, cuts))
    assert [p.data for p in r.parts] == expected == payloads
    assert [p.complete for p in r.parts] == [True] * len(payloads)
    assert r.anomalies == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_arbitrary_bytes_never_raise(junk: bytes, cuts: list[int]) -> None:
    body = b"--b\r\n" + junk if junk[:1] == b"x" else junk
    r = split(body, chunked(body, [c for c in cuts if c <= len(body)]), boundary=b"b")
    assert all(k.startswith("multipart_") for k in r.anomalies)
