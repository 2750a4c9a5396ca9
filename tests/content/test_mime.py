"""MimeMessage: the streaming MIME engine, end to end.

Every sample is fed whole, byte by byte and in random splits and must give the same events; a
corpus of generated messages is compared against Python's `email` package (the independent
implementation); hostile inputs must be capped and never raise.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import random
import re
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.anomaly import KINDS, Anomaly
from sensor.content.entity import ContentCaps, FileInfo, ObjectStore
from sensor.content.fingerprint.table import parse_file_types
from sensor.content.mime import (
    QP_MAX_LINE,
    MessageHeaders,
    MimeCaps,
    MimeEvent,
    MimeMessage,
    rfc2047_decode,
    split_addresses,
)

MIME_SOURCE = Path(__file__).resolve().parents[2] / "sensor/content/mime.py"


def run(
    chunks: list[bytes],
    complete: bool = True,
    caps: MimeCaps | None = None,
    store: ObjectStore | None = None,
) -> tuple[list[MimeEvent], MimeMessage]:
    msg = MimeMessage(1.0, caps or MimeCaps(), store=store)
    out: list[MimeEvent] = []
    for chunk in chunks:
        out += msg.feed(chunk)
    out += msg.end(complete)
    return out, msg


def whole(data: bytes, **kw: object) -> list[MimeEvent]:
    return run([data], **kw)[0]  # type: ignore[arg-type]


def infos(results: list[MimeEvent]) -> list[FileInfo]:
    return [r for r in results if isinstance(r, FileInfo)]


def kinds(results: list[MimeEvent]) -> list[str]:
    # The sample "PDFs" here are a header and filler: the PDF analyser's pdf_no_trailer about
    # them is right and beside the point of these tests.
    return [r.kind for r in results if isinstance(r, Anomaly) and r.kind != "pdf_no_trailer"]


def headers_of(results: list[MimeEvent]) -> MessageHeaders:
    (h,) = [r for r in results if isinstance(r, MessageHeaders)]
    return h


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mp(boundary: bytes, *parts: bytes, close: bool = True) -> bytes:
    body = b""
    for part in parts:
        body += b"--" + boundary + b"\r\n" + part + b"\r\n"
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20
PDF_B64 = base64.encodebytes(PDF).replace(b"\n", b"\r\n")

NESTED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n"
    b'To: "Doe, John" <john@x.org>, b@y.org (Bob, the builder),\r\n'
    b"  =?iso-8859-1?q?Ren=E9?= <r@z.org>\r\n"
    b"Cc: c@x.org\r\n"
    b"Subject: =?utf-8?b?UmFwcG9ydCDigqw=?= and\r\n =?utf-8?q?more?=\r\n"
    b"Date: Mon, 5 Jan 2026 08:00:00 +0100\r\n"
    b"Message-ID: <1@x.org>\r\n"
    b"X-Mailer: Outlook 16\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    + mp(
        b"outer",
        b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
        + mp(
            b"inner",
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"caf=C3=a9 soft=\r\nbreak =ZZ\r\n",
            b"Content-Type: text/html\r\n\r\n<p>hi</p>",
        ),
        b"Content-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0*=iso-8859-1''r%E9sum%E9;\r\n"
        b' filename*1=".pdf"\r\n\r\n' + PDF_B64,
        b"Content-Type: message/rfc822\r\n\r\n"
        b"Subject: inner message\r\nFrom: x@y\r\n\r\ninner body",
    )
)

SAMPLES = {
    "nested": NESTED,
    "plain": b"Subject: hi\r\nFrom: a@b\r\n\r\nJust text.\r\n",
    "bare_lf": NESTED.replace(b"\r\n", b"\n"),
    "no_headers": b"\r\nbody only",
    "unterminated": mp(b"B", b"Content-Type: text/plain\r\n\r\nabc", close=False),
    "qp_long_line": b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    + (b"abc=41 \t=\r\n" + b"x" * 5000 + b"=3D= \t") * 4,
}


# -- headers ---------------------------------------------------------------------------------


def test_top_level_headers_decoded() -> None:
    res = whole(NESTED)
    assert isinstance(res[0], MessageHeaders)  # as soon as the header block ends
    assert headers_of(res) == MessageHeaders(
        from_="Jörg <j@example.org>",
        to=['"Doe, John" <john@x.org>', "b@y.org (Bob, the builder)", "René <r@z.org>"],
        cc=["c@x.org"],
        subject="Rapport € and more",
        date="Mon, 5 Jan 2026 08:00:00 +0100",
        message_id="<1@x.org>",
        user_agent="Outlook 16",
    )


def test_headers_come_once_before_the_body_and_user_agent_wins() -> None:
    msg = MimeMessage(1.0)
    first = msg.feed(b"User-Agent: Thunderbird\r\nX-Mailer: other\r\nto: a@b\r\nTO: c@d\r\n")
    assert first == []  # the header block has not ended yet
    second = msg.feed(b"\r\nbody")
    h = headers_of(second)
    assert h.user_agent == "Thunderbird" and h.to == ["a@b", "c@d"] and h.subject is None
    assert not [r for r in msg.end(True) if isinstance(r, MessageHeaders)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=?utf-8?q?a_b?=", "a b"),
        ("=?utf-8?q?a?= \r\n =?utf-8?q?b?=", "ab"),  # RFC 2047 sec 6.2
        ("x =?utf-8?q?a?= y", "x a y"),
        ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # a character split across two words
        ("=?UTF-8*en?Q?=C3=A9?=", "é"),  # RFC 2231 language suffix
        ("=?x-unknown?q?abc?=", "abc"),
        ("=?utf-8?b?Q?=", "=?utf-8?b?Q?="),  # undecodable: kept as written
        ("no words", "no words"),
    ],
)
def test_rfc2047_decode(text: str, expected: str) -> None:
    assert rfc2047_decode(text) == expected


def test_split_addresses() -> None:
    assert split_addresses('"a, b" <x@y>, <p@q>,, (c, d) r@s, "q\\", x" <t@u>') == [
        '"a, b" <x@y>',
        "<p@q>",
        "(c, d) r@s",
        '"q\\", x" <t@u>',
    ]


def test_message_without_mime_headers_is_one_text_leaf() -> None:
    res = whole(SAMPLES["plain"])
    (info,) = infos(res)
    assert (info.declared_type, info.size, info.encodings, info.part_index) == (
        "text/plain",
        12,
        [],
        0,
    )
    assert kinds(res) == []


def test_message_without_headers() -> None:
    res = whole(b"hello world\r\nsecond line")
    assert kinds(res) == ["mime_header_malformed"]
    (info,) = infos(res)
    assert info.sha256 == sha(b"hello world\r\nsecond line")


def test_header_block_never_ends() -> None:
    res = whole(b"Subject: s\r\nFrom: a@b")
    assert kinds(res) == ["mime_header_unterminated"]
    assert headers_of(res).from_ == "a@b"
    assert [i.size for i in infos(res)] == [0]


def test_header_cap() -> None:
    data = b"Subject: s\r\nX-Junk: " + b"j" * 5000 + b"\r\n\r\nbody"
    for chunks in ([data], [data[i : i + 100] for i in range(0, len(data), 100)]):
        res, _ = run(chunks, caps=MimeCaps(max_header_bytes=1024))
        assert kinds(res) == ["mime_header_too_long"]
        assert headers_of(res).subject == "s"
        (info,) = infos(res)
        assert info.size == len(data) - len(b"Subject: s\r\n")


def test_part_header_cap_uses_the_mime_kind() -> None:
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + mp(
        b"b", b"X: " + b"y" * 3000 + b"\r\n\r\nbody"
    )
    res = whole(data, caps=MimeCaps(max_header_bytes=1024))
    assert kinds(res) == ["mime_header_too_long"]


# -- structure -------------------------------------------------------------------------------


def test_nested_structure() -> None:
    res, msg = run([NESTED])
    assert kinds(res) == []
    text, html, pdf, inner = infos(res)
    assert [i.part_index for i in (text, html, pdf, inner)] == [0, 1, 2, 3]
    assert text.sha256 == sha("café softbreak =ZZ\r\n".encode()) and text.encodings == [
        "quoted-printable"
    ]
    assert (html.declared_type, html.size) == ("text/html", 9)
    assert (pdf.filename, pdf.sha256, pdf.mime_type) == ("résumé.pdf", sha(PDF), "application/pdf")
    assert pdf.encodings == ["base64"] and pdf.complete
    assert inner.sha256 == sha(b"inner body")
    assert msg.attachments == 1 and msg.size == len(NESTED) and msg.sha256 == sha(NESTED)
    assert headers_of(res).subject == "Rapport € and more"  # not the inner message's


def test_outer_boundary_closes_inner_levels() -> None:
    inner = b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n\r\nfirst"  # never closed
    data = b"Content-Type: multipart/mixed; boundary=out\r\n\r\n" + mp(b"out", inner, b"\r\nsecond")
    res = whole(data)
    assert kinds(res) == ["multipart_unterminated"]
    first, second = infos(res)
    assert first.sha256 == sha(b"first") and second.sha256 == sha(b"second")


def test_digest_parts_default_to_messages() -> None:
    data = b"Content-Type: multipart/digest; boundary=d\r\n\r\n" + mp(
        b"d", b"\r\nSubject: one\r\n\r\nbody one", b"\r\nSubject: two\r\n\r\nbody two"
    )
    assert [i.sha256 for i in infos(whole(data))] == [sha(b"body one"), sha(b"body two")]


def test_multipart_without_boundary_or_delimiter_is_one_object() -> None:
    body = b"--nothing\r\nhere\r\n"
    for ctype in (b"multipart/mixed", b"multipart/mixed; boundary=zz"):
        res = whole(b"Content-Type: " + ctype + b"\r\n\r\n" + body)
        assert kinds(res) == ["multipart_boundary_missing"]
        (info,) = infos(res)
        assert info.sha256 == sha(body) and info.declared_type == "multipart/mixed"


def test_encoded_container_is_decoded() -> None:
    inner = mp(b"b", b"Content-Type: text/plain\r\n\r\nsecret")
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(inner)
    )
    res = whole(data)
    assert kinds(res) == ["mime_container_encoded"]
    assert [i.sha256 for i in infos(res)] == [sha(b"secret")]


@pytest.mark.parametrize(
    ("disposition", "ctype", "filename", "attachment"),
    [
        (b"attachment", b"text/plain", None, True),
        (b"inline", b"text/plain", None, False),
        (b'inline; filename="a.png"', b"image/png", "a.png", True),
        (None, b'image/png; name="img.png"', "img.png", True),
        (b'attachment; filename="=?UTF-8?B?w6kvw6kucGRm?="', b"application/pdf", "é.pdf", True),
        (b"attachment; filename*=UTF-8''%E2%82%AC.txt", b"text/plain", "€.txt", True),
        # a codec that is not a charset must not raise (entity._param_filename would)
        (b"attachment; filename*=zlib''%41.txt", b"text/plain", "A.txt", True),
        (b'attachment; filename="C:\\Users\\x\\leak.xlsx"', b"text/plain", "leak.xlsx", True),
    ],
)
def test_filenames_and_attachments(
    disposition: bytes | None, ctype: bytes, filename: str | None, attachment: bool
) -> None:
    head = b"Content-Type: " + ctype + b"\r\n"
    if disposition is not None:
        head += b"Content-Disposition: " + disposition + b"\r\n"
    res, msg = run([head + b"\r\nx"])
    (info,) = infos(res)
    assert info.filename == filename and msg.attachments == int(attachment)
    # "=?UTF-8?B?w6kvw6kucGRm?=" is "é/é.pdf": decoded first, then the path is removed
    assert ("content_filename_path" in kinds(res)) == (filename in ("leak.xlsx", "é.pdf"))


# -- transfer encodings ----------------------------------------------------------------------


def leaf(cte: bytes, body: bytes) -> list[MimeEvent]:
    return whole(b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)


@pytest.mark.parametrize(
    ("body", "decoded", "anomalies"),
    [
        (b"QUJD\r\nREVG\r\n", b"ABCDEF", []),
        (b" Q U\tJ D \r\nRE\r\n", b"ABCD", []),  # white space anywhere, missing padding
        (b"QUJ", b"AB", []),
        (b"QU!JD*", b"ABC", ["mime_base64_invalid"]),  # stray characters
        (b"QQ==QUJD", b"A", ["mime_base64_after_padding"]),  # stop at the padding
        (b"QUI=\r\n\r\n", b"AB", []),
        (b"=QUJD", b"ABC", ["mime_base64_invalid"]),  # "=" that cannot be padding
        (b"QUJDR", b"ABC", ["mime_base64_invalid"]),  # a dangling character
        (b"Q!UI=!QQ*", b"AB", ["mime_base64_invalid", "mime_base64_after_padding"]),
        (b"", b"", []),
    ],
)
def test_base64_lenient(body: bytes, decoded: bytes, anomalies: list[str]) -> None:
    reference = whole(b"Content-Transfer-Encoding: Base64\r\n\r\n" + body)
    for cut in range(len(body) + 1):
        msg = MimeMessage(1.0)
        res = msg.feed(b"Content-Transfer-Encoding: Base64\r\n\r\n" + body[:cut])
        res += msg.feed(body[cut:]) + msg.end(True)
        (info,) = infos(res)
        assert info.sha256 == sha(decoded) and info.encodings == ["base64"]
        assert kinds(res) == anomalies and res == reference  # counts in details included


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b"a=\r\nb=\nc", b"abc"),  # soft line breaks
        (b"=c3=A9=3d\r\n", "é=\r\n".encode()),  # lower-case hex
        (b"50=% =ZZ =4", b"50=% =ZZ =4"),  # invalid sequences kept literally
        (b"trail \t\r\nx  \nend  ", b"trail\r\nx\nend"),  # RFC 2045 6.7 rule 3
        (b"soft= \t\r\nbreak", b"softbreak"),
        (b"end=", b"end"),
    ],
)
def test_quoted_printable(body: bytes, decoded: bytes) -> None:
    for cut in range(len(body) + 1):
        res, _ = run(
            [b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body[:cut], body[cut:]]
        )
        (info,) = infos(res)
        assert info.sha256 == sha(decoded) and info.encodings == ["quoted-printable"]


def test_quoted_printable_long_lines_stream() -> None:
    body = (b"y" * (QP_MAX_LINE + 3) + b"=41=\r\n") * 3 + b"z \t" * QP_MAX_LINE + b"\r\n"
    expected = (b"y" * (QP_MAX_LINE + 3) + b"A") * 3 + b"z \t" * (QP_MAX_LINE - 1) + b"z\r\n"
    data = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    for step in (1, 7, 4096, len(data)):
        res, _ = run([data[i : i + step] for i in range(0, len(data), step)])
        assert infos(res)[0].sha256 == sha(expected)


@pytest.mark.parametrize("cte", [b"7bit", b"8BIT", b"binary", b'"8bit" (comment)'])
def test_identity_encodings(cte: bytes) -> None:
    res = leaf(cte, b"\xff\x00raw")
    assert infos(res)[0].encodings == [] and infos(res)[0].size == 5 and kinds(res) == []


def test_unknown_cte_is_kept_raw() -> None:
    res = leaf(b"x-uuencode", b"begin 644 f\r\n")
    assert kinds(res) == ["mime_unknown_cte"]
    (info,) = infos(res)
    assert info.sha256 == sha(b"begin 644 f\r\n") and info.encodings == []


# -- gaps, early ends, extraction -------------------------------------------------------------


def test_gap_in_base64_attachment_resynchronises() -> None:
    raw = os.urandom(57 * 40)
    text = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    head = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    msg = MimeMessage(1.0)
    cut = 78 * 10 + 30  # mid line 11
    res = msg.feed(head + text[:cut]) + msg.gap(100) + msg.feed(text[cut + 100 :]) + msg.end(True)
    (info,) = infos(res)
    assert not info.complete and info.missing_bytes == 75
    # lines 0-9 and the first 7 quanta of line 10 survive, then decoding resumes at the next
    # line start after the gap
    resumed = (cut + 100) // 78 + 1
    assert info.sha256 == sha(raw[: 57 * 10 + 21] + raw[57 * resumed :])


def test_gap_in_header_block_ends_it() -> None:
    msg = MimeMessage(1.0)
    res = msg.feed(b"Subject: s\r\nX-Cut: abc") + msg.gap(10) + msg.feed(b"rest") + msg.end(True)
    assert headers_of(res).subject == "s"
    (info,) = infos(res)
    assert (info.size, info.missing_bytes, info.complete) == (4, 10, False)


def test_early_end_marks_open_entities_incomplete() -> None:
    cut = NESTED.index(PDF_B64) + 1000
    res, msg = run([NESTED[:cut]], complete=False)
    text, html, pdf = infos(res)
    assert text.complete and html.complete and not pdf.complete
    assert kinds(res) == ["multipart_unterminated"] and msg.size == cut


def test_extraction_stores_decoded_bytes(tmp_path: Path) -> None:
    res, _ = run([NESTED], store=ObjectStore(tmp_path))
    pdf = infos(res)[2]
    assert pdf.stored_path is not None and Path(pdf.stored_path).read_bytes() == PDF
    assert not [n for n in os.listdir(tmp_path / "files") if n.startswith(".partial")]


# -- segmentation: whole, byte by byte, random splits -------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_byte_by_byte_equals_whole(name: str) -> None:
    data = SAMPLES[name]
    reference, ref_msg = run([data])
    bytewise, msg = run([data[i : i + 1] for i in range(len(data))])
    assert bytewise == reference and (msg.sha256, msg.attachments) == (
        ref_msg.sha256,
        ref_msg.attachments,
    )
    assert infos(reference)  # the sample produces objects at all


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), cuts=st.lists(st.integers(0, 10**6), max_size=30))
def test_random_splits_equal_whole(name: str, cuts: list[int]) -> None:
    data = SAMPLES[name]
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert run(chunks)[0] == run([data])[0]


# -- differential against Python's email package -----------------------------------------------

WORDS = ["Rapport", "patiënt", "BSN", "überweisung", "€", "日本語", "naïve", "ok", "data", "x"]


def _text(rng: random.Random, ascii_only: bool = False) -> str:
    words = [w for w in WORDS if w.isascii()] if ascii_only else WORDS
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(5)]
    return "\n".join(lines[: rng.randint(1, 5)]) + rng.choice(["", "\n"])


def _filename(rng: random.Random) -> str:
    stem = "".join(rng.choice(["a", "b", "é", "ü", "日", "1", " ", "-", "_"]) for _ in range(4))
    stem = "f" + stem.strip() + rng.choice(["", "x" * rng.randint(40, 120)])  # long: RFC 2231 *0*
    return stem + rng.choice([".pdf", ".csv", ".bin", ".zip"])


def _leaf(rng: random.Random) -> EmailMessage:
    part = EmailMessage()
    kind = rng.randrange(3)
    if kind == 0:
        ascii_only = rng.random() < 0.3
        identity = rng.choice(["7bit", "8bit"]) if ascii_only else "8bit"
        cte = rng.choice([identity, "quoted-printable", "base64"])
        part.set_content(_text(rng, ascii_only), subtype=rng.choice(["plain", "html"]), cte=cte)
    else:
        payload = rng.randbytes(rng.randint(0, 3000))
        if rng.random() < 0.3:
            payload = b"%PDF-1.4\n" + payload
        disposition = rng.choice(["attachment", "inline"])
        cte = rng.choice(["base64", "base64", "quoted-printable"])
        if kind == 1:
            part.set_content(
                payload, "application", "octet-stream", cte=cte, disposition=disposition,
                filename=_filename(rng),
            )  # fmt: skip
        else:  # only a Content-Type name parameter (what some clients send)
            part.set_content(payload, "image", "png", cte=cte)
            part.set_param("name", _filename(rng))
    return part


def _entity(rng: random.Random, depth: int) -> EmailMessage:
    roll = rng.random()
    if depth < 4 and roll < 0.25:
        container = EmailMessage()
        sub = rng.choice(["mixed", "alternative", "related", "signed", "report"])
        container["Content-Type"] = f"multipart/{sub}"
        for _ in range(rng.randint(1, 4)):
            container.attach(_entity(rng, depth + 1))
        return container
    if depth < 4 and roll < 0.35:
        wrapper = EmailMessage()
        wrapper.set_content(_message(rng, depth + 1))  # message/rfc822
        return wrapper
    return _leaf(rng)


def _message(rng: random.Random, depth: int = 0) -> EmailMessage:
    msg = _entity(rng, depth)  # the body entity, given the message headers below
    msg["From"] = rng.choice(["a@example.org", "Jörg Müller <j@example.org>"])
    to = ["x@y.org", '"Doe, J" <d@x.org>', "Zoë <z@x.org>"]
    msg["To"] = ", ".join(rng.choice(to) for _ in range(rng.randint(1, 3)))
    msg["Subject"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20)))
    msg["Message-ID"] = f"<{rng.randrange(10**9)}@example.org>"
    return msg


def _email_leaves(raw: bytes) -> tuple[list[tuple[str, str | None]], str]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    leaves = []
    for part in parsed.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            leaves.append((sha(payload), part.get_filename()))
    return leaves, str(parsed["subject"])


def corpus(seeds: range) -> list[bytes]:
    out = []
    for seed in seeds:
        rng = random.Random(seed)
        msg = _message(rng)
        # Half SMTP (CRLF), half bare LF (what a local MTA may hand over).
        policy = email.policy.SMTP if seed % 2 else email.policy.default
        out.append(msg.as_bytes(policy=policy))
    return out


CORPUS = corpus(range(220))


def test_corpus_is_varied() -> None:
    joined = b"\n".join(CORPUS)
    for needle in (
        b"multipart/alternative",
        b"message/rfc822",
        b"filename*0*=",
        b"name*=",
        b"8bit",
    ):
        assert needle in joined
    assert sum(b"Content-Transfer-Encoding: quoted-printable" in m for m in CORPUS) > 50
    assert sum(len(infos(whole(m))) > 3 for m in CORPUS) > 30


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_differential_against_email(index: int) -> None:
    raw = CORPUS[index]
    expected, subject = _email_leaves(raw)
    res, msg = run([raw])
    got = [(i.sha256, i.filename) for i in infos(res)]
    assert got == expected
    assert kinds(res) in ([], ["multipart_preamble_data"])  # nothing else is wrong with them
    assert headers_of(res).subject == subject
    # the generator names every attachment and never names a text body
    assert msg.attachments == sum(1 for _, name in expected if name is not None)
    # random splits give the same events
    rng = random.Random(index)
    points = sorted(rng.sample(range(len(raw)), min(len(raw), 40)))
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert run(chunks)[0] == res


@settings(max_examples=40, deadline=None)
@given(rnd=st.randoms(use_true_random=False), cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_differential_hypothesis(rnd: random.Random, cuts: list[int]) -> None:
    raw = _message(random.Random(rnd.getrandbits(64))).as_bytes(policy=email.policy.SMTP)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    res, _ = run(chunks)
    assert [(i.sha256, i.filename) for i in infos(res)] == _email_leaves(raw)[0]


# -- hostile input ----------------------------------------------------------------------------


def test_depth_bomb_is_capped() -> None:
    depth = 5000
    data = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            for i in range(depth)
        )
        + b"\r\ndeep"
    )
    res = whole(data, caps=MimeCaps(max_depth=20))
    assert kinds(res).count("mime_depth_cap") == 1
    (opaque,) = infos(res)
    assert opaque.declared_type == "multipart/mixed"
    # 20 levels are parsed (b0..b19); b20's body, with everything below it, is one object
    head = b"boundary=b20\r\n\r\n"
    assert opaque.size == len(data) - data.index(head) - len(head) and not opaque.complete


def test_message_bomb_is_capped() -> None:
    data = b"Content-Type: message/rfc822\r\n\r\n" * 3000 + b"\r\nbody"
    res = whole(data)
    assert "mime_depth_cap" in kinds(res)
    assert len(infos(res)) == 1


def test_entity_cap() -> None:
    parts = [b"Content-Type: text/plain\r\n\r\npart %d" % i for i in range(50)]
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + mp(b"b", *parts)
    res, _ = run([data], caps=MimeCaps(max_entities=10))
    assert "mime_entity_cap" in kinds(res)
    objects = infos(res)
    assert len(objects) == 11 and [o.part_index for o in objects] == list(range(11))
    rest = objects[-1]
    assert not rest.complete and rest.sha256 == sha(b"".join(b"part %d" % i for i in range(10, 50)))


def test_broken_base64_never_raises() -> None:
    body = b"QUJD\r\n!!!!\r\n====\r\nQ=U=J=D\r\n\xff\xfe\r\nQUJ"
    res = leaf(b"base64", body)
    assert "mime_base64_invalid" in kinds(res) and len(infos(res)) == 1


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"\r\n\r\n",
                    b"Content-Type: multipart/mixed; boundary=b\r\n",
                    b"Content-Type: message/rfc822\r\n",
                    b"Content-Transfer-Encoding: base64\r\n",
                    b"Content-Transfer-Encoding: quoted-printable\r\n",
                    b"\r\n--b\r\n",
                    b"\r\n--b--\r\n",
                    b"=?utf-8?b?",
                ]
            ),
            st.integers(1, 50),
        ),
        max_size=20,
    ),
    complete=st.booleans(),
)
def test_arbitrary_input_never_raises(ops: list[bytes | int], complete: bool) -> None:
    msg = MimeMessage(1.0, MimeCaps(max_depth=3, max_header_bytes=200, max_entities=5))
    res: list[MimeEvent] = []
    for op in ops:
        res += msg.feed(op) if isinstance(op, bytes) else msg.gap(op)
    res += msg.end(complete)
    assert msg.end(True) == [] and msg.feed(b"late") == []
    assert sum(isinstance(r, MessageHeaders) for r in res) == 1
    assert len(infos(res)) <= 6
    for r in res:
        if isinstance(r, Anomaly):
            assert r.kind in KINDS and KINDS[r.kind][0] == "content" and r.ts == 1.0


def test_every_mime_kind_is_registered() -> None:
    # tests/test_anomaly.py scans for kinds of known prefixes only; mime_ is checked here.
    emitted = set(re.findall(r'"(mime_[a-z0-9_]+)"', MIME_SOURCE.read_text()))
    assert len(emitted) >= 9
    assert {k: KINDS.get(k, ("missing",))[0] for k in emitted} == dict.fromkeys(emitted, "content")


def test_memory_stays_flat_for_200_mb_base64_attachment() -> None:
    raw_chunk = os.urandom(57 * 1150)  # 1150 full base64 lines, about 88 KiB encoded
    b64_chunk = base64.encodebytes(raw_chunk).replace(b"\n", b"\r\n")
    n = (200 * 1024 * 1024) // len(raw_chunk)
    head = (
        b"From: a@b\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
        b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="dump.zip"\r\n\r\n'
    )
    step = 64 * 1024
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        msg = MimeMessage(1.0)
        res = msg.feed(head)
        for _ in range(n):
            for i in range(0, len(b64_chunk), step):
                res += msg.feed(b64_chunk[i : i + step])
            expected.update(raw_chunk)
        res += msg.feed(b"\r\n--zz--\r\n") + msg.end(True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (info,) = infos(res)
    assert info.size == n * len(raw_chunk) and info.complete
    assert info.sha256 == expected.hexdigest() and info.filename == "dump.zip"
    assert peak < 3 * 1024 * 1024, peak


def test_content_caps_are_passed_on() -> None:
    table = parse_file_types(
        'id = "t"\nversion = 1\n[[type]]\nid = "x"\nmime = "application/x-test"\n'
        'magic = [[{at = 0, ascii = "%PDF"}]]\n'
    )
    msg = MimeMessage(1.0, content_caps=ContentCaps(file_types=table))
    res = msg.feed(b"\r\n%PDF-1.4 ...") + msg.end(True)
    assert infos(res)[0].mime_type == "application/x-test"  # the caps' table was used
