"""Deterministic RFC 5322 / MIME messages for the SMTP cases, assembled by hand.

Hand assembly (instead of email.generator) keeps every byte under the case's control: fixed
Date, Message-ID and boundaries, the chosen transfer encoding per part, CRLF line ends. The
expectation is NOT computed here but by `expect.mime_leaves` (Python's email parser) on the
finished bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

DATE = "Tue, 01 Jul 2025 12:00:00 +0200"
SENDER = "a.voorbeeld@zorg.example"
EXTERNAL = "export@mailbox.example"
USER_AGENT = "Sluice-pcap/1 (Python smtplib)"


def crlf(text: str | bytes) -> bytes:
    """Any line ends to CRLF."""
    data = text.encode() if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def b64(data: bytes) -> bytes:
    """base64 in 76-character CRLF lines (RFC 2045)."""
    return crlf(base64.encodebytes(data))


def qp(data: bytes) -> bytes:
    """quoted-printable with CRLF line ends; line breaks of the input stay hard breaks."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return crlf(b"\n".join(binascii.b2a_qp(line, quotetabs=False) for line in lines))


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)


def entity(headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """Headers, blank line, body (CRLF-terminated)."""
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return header_block(headers) + b"\r\n" + body


def multipart(subtype: str, boundary: str, parts: Iterable[bytes], close: bool = True) -> bytes:
    """A multipart entity (headers included); `close=False` leaves out the closing delimiter."""
    out = [entity([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')], b"")]
    out[0] = out[0][:-2]  # entity() ended the empty body with CRLF: no preamble wanted
    for part in parts:
        out.append(f"--{boundary}\r\n".encode() + part)
    if close:
        out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def message(
    *,
    subject: str,
    msg_id: str,
    body_entity: bytes,
    sender: str = SENDER,
    to: Iterable[str] = (EXTERNAL,),
    cc: Iterable[str] = (),
    date: str = DATE,
) -> bytes:
    """Top-level headers + MIME-Version + the body entity (which brings its own Content-*)."""
    headers = [
        ("From", f'"A. Voorbeeld" <{sender}>'),
        ("To", ", ".join(f"<{a}>" for a in to)),
    ]
    cc = list(cc)
    if cc:
        headers.append(("Cc", ", ".join(f"<{a}>" for a in cc)))
    headers += [
        ("Subject", subject),
        ("Date", date),
        ("Message-ID", f"<{msg_id}@ws042.zorg.example>"),
        ("User-Agent", USER_AGENT),
        ("MIME-Version", "1.0"),
    ]
    return header_block(headers) + body_entity


def text_entity(text: str, encoding: str = "8bit", subtype: str = "plain") -> bytes:
    raw = crlf(text)
    body = {"8bit": raw, "7bit": raw, "quoted-printable": qp(raw), "base64": b64(raw)}[encoding]
    return entity(
        [
            ("Content-Type", f"text/{subtype}; charset=utf-8"),
            ("Content-Transfer-Encoding", encoding),
        ],
        body,
    )


@contextmanager
def _fixed_zip_salt(seed: int) -> Iterator[None]:
    """pyzipper draws the WinZip-AES salt from Cryptodome.Random; pin it for the duration, so
    the encrypted archive (and with it the expectation) is identical on every run. A fixed salt
    is fine for a throwaway archive of fake data."""
    import pyzipper.zipfile_aes as zaes

    class _Seeded:
        def __init__(self) -> None:
            self._rng = random.Random(seed)

        def new(self) -> _Seeded:
            return self

        def read(self, n: int) -> bytes:
            return self._rng.randbytes(n)

    saved = zaes.Random
    zaes.Random = _Seeded()  # type: ignore[assignment]
    try:
        yield
    finally:
        zaes.Random = saved


def aes_zip(members: dict[str, bytes], password: bytes, seed: int = 7) -> bytes:
    """A WinZip AES-256 encrypted, deflated ZIP (pyzipper), deterministic for equal input."""
    import pyzipper

    buf = io.BytesIO()
    with (
        _fixed_zip_salt(seed),
        pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED) as zf,
    ):
        zf.setpassword(password)
        zf.setencryption(pyzipper.WZ_AES, nbits=256)
        for name, data in members.items():
            info = zf.zipinfo_cls(name, date_time=(2025, 7, 1, 12, 0, 0))
            info.compress_type = pyzipper.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def dot_stuff(message: bytes) -> bytes:
    """DATA transparency (RFC 5321 4.5.2): a line starting with "." gets one more "."; the
    result ends with the CRLF "." CRLF terminator."""
    assert message.endswith(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line
                           for line in message[:-2].split(b"\r\n"))  # fmt: skip
    return stuffed + b"\r\n.\r\n"
