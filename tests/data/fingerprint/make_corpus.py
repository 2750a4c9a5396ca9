"""Make the encrypted-container sample corpus with the REAL tools and write its manifest.

Stage: test data (not part of the sensor). In: the tools on PATH (zip, 7zz, gpg, age, openssl,
qpdf, tar, gzip, bzip2, xz, zstd) and the venv's pyzipper and msoffcrypto-tool. Out:
`corpus/<sample>` and `corpus/manifest.json` (one entry per sample: the exact command, the type
id, whether and how it is encrypted, its container format).

Run from the repository root: `.venv/bin/python tests/data/fingerprint/make_corpus.py`.

RAR: the RAR tool is non-free and not installed, so the `rar4-*.rar` / `rar5-*.rar` samples are
built from the format specifications by tests/content/fingerprint/rarbuild.py (its docstring
says which technote fields it writes); the data of an encrypted entry is random bytes standing
in for ciphertext. They are deterministic (rarbuild's fixed seeds, fakedata's fixed seeds) and
checked with an independent reader, libarchive (through ctypes) when it is installed.
`--rar-only` writes just those files and replaces or appends their manifest entries in place,
leaving every other sample's bytes (and so the captures that upload them) untouched.

The tools draw salts, IVs, session keys and keys at random and embed timestamps, so the output
differs on every run: the corpus is generated once and committed. Regenerating it changes every
encrypted sample's bytes, so `pcaps/encrypted-uploads/` (which uploads corpus files) must be
regenerated after it. Every encrypted sample is decrypted again here with the same tool (or an
independent library) and compared with its input, so a sample is known to be what the manifest
says it is. All payloads are fake (pcaps/_lib/fakedata.py); the passwords are fake too and are
listed in the manifest so tests may decrypt.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import io
import json
import os
import pty
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from pcaps._lib.fakedata import patients_csv, random_bytes  # noqa: E402
from tests.content.fingerprint.rarbuild import rar4, rar5  # noqa: E402

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

PASSWORD = "Nep-Wachtwoord-27"  # fake; every password-based sample uses it
PDF_OWNER_PASSWORD = "Nep-Eigenaar-27"  # fake; the PDF owner password
MTIME = 1751364000  # 2025-07-01 10:00 UTC: input files get this mtime, archives store it
GPG_UID = "Sluice Corpus Test <corpus@sluice.invalid>"
MAX_SAMPLE = 64 * 1024  # the brief's cap per sample (random-64k.bin is exactly at it)
MAX_CORPUS = 2 * 1024 * 1024
# A JPEG shipped by a Debian package on the build machine (Node.js docs, MIT licence); copied,
# not made. When it is missing the committed copy is kept.
JPEG_SOURCE = Path("/usr/share/doc/nodejs/thin-white-stripe.jpg")

CSV = patients_csv(6_000, seed=81)
# msoffcrypto-tool 6.1.0 writes a broken CFB when EncryptedPackage is under 4096 bytes (the
# mini-stream: the stream's bytes do not match its directory entry, and msoffcrypto cannot
# decrypt its own output), so the OOXML inputs are made big enough to stay out of it.
OFFICE_CSV = patients_csv(16_000, seed=83)
OFFICE_ROWS = 300
NOTES = (
    b"Overdracht export week 27 (fictieve testgegevens, geen echte patienten).\n"
    b"Het wachtwoord volgt telefonisch.\n"
)


@dataclass(slots=True)
class Sample:
    """One manifest entry (the keys the brief fixes, then extras for tests)."""

    file: str
    tool: str
    type: str | None
    encrypted: bool | None
    encryption: str | None = None
    hides_names: bool = False
    container: str | None = None
    contains_encrypted: bool = False
    partial: bool = False
    members: int | None = None  # entries the container lists, None when it does not say
    content: str = ""
    note: str | None = None
    size: int = 0
    sha256: str = ""


class Maker:
    """Runs the tools in a scratch directory and collects the samples and their entries."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.gnupghome = work / "gnupg"
        self.samples: list[Sample] = []

    # -- running tools ----------------------------------------------------------------------
    def run(
        self,
        argv: list[str],
        *,
        stdout: str | None = None,
        env: dict[str, str] | None = None,
        input_: bytes | None = None,
    ) -> str:
        """Run one command in the work dir; return it as the manifest records it."""
        full_env = {**os.environ, **(env or {})}
        if stdout is None:
            subprocess.run(
                argv, cwd=self.work, check=True, env=full_env, input=input_, capture_output=True
            )
            return shlex.join(argv)
        with (self.work / stdout).open("wb") as fh:
            subprocess.run(
                argv,
                cwd=self.work,
                check=True,
                env=full_env,
                input=input_,
                stdout=fh,
                stderr=subprocess.PIPE,
            )
        return f"{shlex.join(argv)} > {stdout}"

    def output(self, argv: list[str], env: dict[str, str] | None = None) -> bytes:
        """stdout of a command (for the decryption checks)."""
        return subprocess.run(
            argv, cwd=self.work, check=True, capture_output=True, env={**os.environ, **(env or {})}
        ).stdout

    def gpg(self, *args: str) -> list[str]:
        return ["gpg", "--homedir", "gnupg", "--batch", "--yes", *args]

    def write(self, name: str, data: bytes) -> None:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    # -- inputs -----------------------------------------------------------------------------
    def inputs(self) -> None:
        self.write("patients.csv", CSV)
        self.write("notes.txt", NOTES)
        for i in range(30):
            self.write(f"export/patient-{i:02d}.csv", patients_csv(400, seed=100 + i))
        self.write("plain.docx", ooxml_docx())
        self.write("plain.xlsx", ooxml_xlsx())
        self.write("handmade.pdf", handmade_pdf())
        self.gnupghome.mkdir(mode=0o700)
        self.run(
            self.gpg(
                "--passphrase", "", "--quick-gen-key", GPG_UID, "future-default", "default", "never"
            )
        )
        self.run(["age-keygen", "-o", "age-key.txt"])
        match = re.search(r"public key: (age1\w+)", (self.work / "age-key.txt").read_text())
        assert match, "age-keygen wrote no public key"
        self.age_recipient = match.group(1)

    # -- samples ----------------------------------------------------------------------------
    def zips(self) -> None:
        pw = PASSWORD
        cmd = self.run(["zip", "-X", "-j", "-P", pw, "zip-pkware.zip", "patients.csv"])
        self.add(
            Sample(
                file="zip-pkware.zip",
                tool=cmd,
                type="zip",
                encrypted=True,
                encryption="zip-pkware",
                container="zip",
                contains_encrypted=True,
                members=1,
                content="patients.csv (ZipCrypto, deflated)",
            )
        )
        for bits in (256, 192):
            name = f"zip-aes-{bits}-7zz.zip"
            cmd = self.run(
                ["7zz", "a", "-tzip", f"-p{pw}", f"-mem=AES{bits}", name, "patients.csv"]
            )
            self.add(
                Sample(
                    file=name,
                    tool=cmd,
                    type="zip",
                    encrypted=True,
                    encryption=f"zip-aes-{bits}",
                    container="zip",
                    contains_encrypted=True,
                    members=1,
                    content="patients.csv (WinZip AE-2)",
                )
            )
        self.write("zip-aes-128-pyzipper.zip", pyzipper_aes128({"patients.csv": CSV}))
        self.add(
            Sample(
                file="zip-aes-128-pyzipper.zip",
                tool=(
                    "pyzipper.AESZipFile(f, 'w', compression=pyzipper.ZIP_DEFLATED); "
                    f"setpassword({pw.encode()!r}); setencryption(pyzipper.WZ_AES, "
                    "nbits=128); writestr('patients.csv', ...)"
                ),
                type="zip",
                encrypted=True,
                encryption="zip-aes-128",
                container="zip",
                contains_encrypted=True,
                members=1,
                content="patients.csv (WinZip AE, AES-128)",
            )
        )
        # One member with ZipCrypto, then a second one added without a password.
        first = self.run(["zip", "-X", "-j", "-P", pw, "zip-partial.zip", "patients.csv"])
        second = self.run(["zip", "-X", "-j", "zip-partial.zip", "notes.txt"])
        self.add(
            Sample(
                file="zip-partial.zip",
                tool=f"{first} && {second}",
                type="zip",
                encrypted=True,
                encryption="zip-pkware",
                container="zip",
                contains_encrypted=True,
                partial=True,
                members=2,
                content="patients.csv encrypted (ZipCrypto), notes.txt plain",
            )
        )
        cmd = self.run(["zip", "-X", "-j", "zip-plain.zip", "patients.csv", "notes.txt"])
        self.add(
            Sample(
                file="zip-plain.zip",
                tool=cmd,
                type="zip",
                encrypted=False,
                container="zip",
                members=2,
                content="patients.csv, notes.txt (deflated)",
            )
        )

    def sevenzips(self) -> None:
        pw = PASSWORD
        cmd = self.run(["7zz", "a", "-t7z", f"-p{pw}", "7z-aes.7z", "patients.csv"])
        self.add(
            Sample(
                file="7z-aes.7z",
                tool=cmd,
                type="7z",
                encrypted=True,
                encryption="7z-aes-256",
                container="7z",
                contains_encrypted=True,
                members=1,
                content=(
                    "patients.csv; data encrypted, header plain (0x01) with the 7zAES coder "
                    "id visible"
                ),
            )
        )
        cmd = self.run(["7zz", "a", "-t7z", f"-p{pw}", "7z-aes-30files.7z", "export/*.csv"])
        self.add(
            Sample(
                file="7z-aes-30files.7z",
                tool=cmd,
                type="7z",
                encrypted=True,
                encryption="7z-aes-256",
                container="7z",
                contains_encrypted=True,
                members=30,
                content="30 small CSVs; data encrypted, names not",
                note=(
                    "next header is kEncodedHeader (0x17), LZMA-compressed but not "
                    "encrypted: the 7zAES coder id is only visible after LZMA-decoding it"
                ),
            )
        )
        cmd = self.run(
            [
                "7zz",
                "a",
                "-t7z",
                f"-p{pw}",
                "-mhe=on",
                "7z-aes-hidden-names.7z",
                "patients.csv",
                "notes.txt",
            ]
        )
        self.add(
            Sample(
                file="7z-aes-hidden-names.7z",
                tool=cmd,
                type="7z",
                encrypted=True,
                encryption="7z-aes-256",
                hides_names=True,
                container="7z",
                members=None,
                content="patients.csv, notes.txt; header encrypted (0x17 + 7zAES)",
                note=(
                    "members are not listed without the password, so none is reported and "
                    "contains_encrypted is false"
                ),
            )
        )
        cmd = self.run(["7zz", "a", "-t7z", "-m0=lzma2", "7z-plain-30files.7z", "export/*.csv"])
        self.add(
            Sample(
                file="7z-plain-30files.7z",
                tool=cmd,
                type="7z",
                encrypted=False,
                container="7z",
                members=30,
                content="30 small CSVs, LZMA2",
                note="also an encoded header (0x17): 0x17 alone is not encryption",
            )
        )

    def openpgp(self) -> None:
        sym = ["--pinentry-mode", "loopback", "--passphrase", PASSWORD]
        cmd = self.run(self.gpg(*sym, "-c", "-o", "gpg-symmetric.gpg", "patients.csv"))
        self.add(
            Sample(
                file="gpg-symmetric.gpg",
                tool=cmd,
                type="openpgp",
                encrypted=True,
                encryption="openpgp-symmetric",
                content="patients.csv: SKESK v4 + SEIPD",
            )
        )
        cmd = self.run(self.gpg(*sym, "-a", "-c", "-o", "gpg-symmetric.asc", "patients.csv"))
        self.add(
            Sample(
                file="gpg-symmetric.asc",
                tool=cmd,
                type="openpgp-armored",
                encrypted=True,
                encryption="openpgp-symmetric",
                content="patients.csv, ASCII armour",
            )
        )
        cmd = self.run(
            self.gpg(
                "--trust-model",
                "always",
                "-e",
                "-r",
                "corpus@sluice.invalid",
                "-o",
                "gpg-public-key.gpg",
                "patients.csv",
            )
        )
        self.add(
            Sample(
                file="gpg-public-key.gpg",
                tool=cmd,
                type="openpgp",
                encrypted=True,
                encryption="openpgp-public-key",
                content="patients.csv: PKESK (cv25519 throwaway key) + SEIPD",
                note="the throwaway secret key was not kept",
            )
        )
        cmd = self.run(self.gpg("--clearsign", "-o", "gpg-clearsigned.txt.asc", "notes.txt"))
        self.add(
            Sample(
                file="gpg-clearsigned.txt.asc",
                tool=cmd,
                type="openpgp-signed",
                encrypted=False,
                content="notes.txt, clear-signed (readable text + signature)",
            )
        )
        cmd = self.run(self.gpg("--sign", "-o", "gpg-signed.gpg", "patients.csv"))
        self.add(
            Sample(
                file="gpg-signed.gpg",
                tool=cmd,
                type="openpgp",
                encrypted=False,
                content="patients.csv, signed (compressed data packet), not encrypted",
            )
        )

    def age(self) -> None:
        r = self.age_recipient
        cmd = self.run(["age", "-e", "-r", r, "-o", "age-x25519.age", "patients.csv"])
        self.add(
            Sample(
                file="age-x25519.age",
                tool=cmd,
                type="age",
                encrypted=True,
                encryption="age-x25519",
                content="patients.csv",
                note="the throwaway identity was not kept",
            )
        )
        cmd = self.run(["age", "-e", "-a", "-r", r, "-o", "age-x25519-armored.age", "patients.csv"])
        self.add(
            Sample(
                file="age-x25519-armored.age",
                tool=cmd,
                type="age-armored",
                encrypted=True,
                encryption="age-x25519",
                content="patients.csv, PEM-style armour",
            )
        )
        argv = ["age", "-p", "-o", "age-scrypt.age", "patients.csv"]
        age_on_pty(argv, self.work, PASSWORD)
        self.add(
            Sample(
                file="age-scrypt.age",
                tool=shlex.join(argv)
                + (
                    "  (passphrase typed twice on a pseudo-terminal opened by Python's "
                    "pty.fork: age reads it from the TTY only)"
                ),
                type="age",
                encrypted=True,
                encryption="age-scrypt",
                content="patients.csv",
            )
        )

    def openssl(self) -> None:
        base = [
            "openssl",
            "enc",
            "-aes-256-cbc",
            "-pbkdf2",
            "-salt",
            "-pass",
            f"pass:{PASSWORD}",
            "-in",
            "patients.csv",
        ]
        cmd = self.run([*base, "-out", "openssl-enc.bin"])
        self.add(
            Sample(
                file="openssl-enc.bin",
                tool=cmd,
                type="openssl-enc",
                encrypted=True,
                encryption="openssl-enc",
                content="patients.csv (Salted__ + salt + AES-256-CBC)",
            )
        )
        cmd = self.run([*base, "-a", "-out", "openssl-enc-base64.txt"])
        self.add(
            Sample(
                file="openssl-enc-base64.txt",
                tool=cmd,
                type="openssl-enc-base64",
                encrypted=True,
                encryption="openssl-enc",
                content="patients.csv, base64 (U2FsdGVkX1...)",
            )
        )

    def pdfs(self) -> None:
        cmd = self.run(["qpdf", "--deterministic-id", "handmade.pdf", "pdf-plain.pdf"])
        self.add(
            Sample(
                file="pdf-plain.pdf",
                tool="hand-written one-page PDF (make_corpus.handmade_pdf), then " + cmd,
                type="pdf",
                encrypted=False,
                content="one page of fake patient rows",
            )
        )
        variants = [
            ("pdf-rc4-40.pdf", "pdf-rc4-40", ["40"]),
            ("pdf-rc4-128.pdf", "pdf-rc4-128", ["128", "--use-aes=n"]),
            ("pdf-aes-128.pdf", "pdf-aes-128", ["128", "--use-aes=y"]),
            ("pdf-aes-256.pdf", "pdf-aes-256", ["256"]),
        ]
        for name, scheme, key in variants:
            weak = ["--allow-weak-crypto"] if scheme.startswith("pdf-rc4") else []
            cmd = self.run(
                [
                    "qpdf",
                    *weak,
                    "--encrypt",
                    PASSWORD,
                    PDF_OWNER_PASSWORD,
                    *key,
                    "--",
                    "pdf-plain.pdf",
                    name,
                ]
            )
            self.add(
                Sample(
                    file=name,
                    tool=cmd,
                    type="pdf",
                    encrypted=True,
                    encryption=scheme,
                    content="pdf-plain.pdf with a user and an owner password",
                )
            )
        cmd = self.run(
            [
                "qpdf",
                "--encrypt",
                "",
                PDF_OWNER_PASSWORD,
                "256",
                "--",
                "pdf-plain.pdf",
                "pdf-aes-256-owner-only.pdf",
            ]
        )
        self.add(
            Sample(
                file="pdf-aes-256-owner-only.pdf",
                tool=cmd,
                type="pdf",
                encrypted=True,
                encryption="pdf-aes-256",
                content="pdf-plain.pdf, empty user password",
                note=(
                    "opens without a password (permissions only) but the streams are "
                    "AES-256 encrypted: /Encrypt is present"
                ),
            )
        )

    def office(self) -> None:
        for src, out, kind in (
            ("plain.docx", "docx-agile.docx", "docx"),
            ("plain.xlsx", "xlsx-agile.xlsx", "xlsx"),
        ):
            with (self.work / src).open("rb") as fin, (self.work / out).open("wb") as fout:
                msoffcrypto_encrypt(fin, fout, PASSWORD)
            self.add(
                Sample(
                    file=out,
                    tool=(
                        f"msoffcrypto.OfficeFile(open({src!r}, 'rb')).encrypt({PASSWORD!r}, "
                        f"open({out!r}, 'wb'))"
                    ),
                    type="cfb",
                    encrypted=True,
                    encryption="office-agile",
                    content=f"{src}: CFB with EncryptionInfo (Agile 4.4) + EncryptedPackage",
                    note=(
                        f"an encrypted {kind} is a CFB file, not a ZIP: the extension and the "
                        "magic disagree"
                    ),
                )
            )
        for src, kind, parts in (("plain.docx", "docx", 3), ("plain.xlsx", "xlsx", 5)):
            name = f"{kind}-plain.{kind}"
            shutil.copyfile(self.work / src, self.work / name)
            self.add(
                Sample(
                    file=name,
                    tool=(
                        "zipfile.ZipFile(f, 'w', ZIP_DEFLATED).writestr(...) of a minimal OOXML "
                        f"package (make_corpus.ooxml_{kind})"
                    ),
                    type=kind,
                    encrypted=False,
                    container="zip",
                    members=parts,
                    content="fake patient rows",
                )
            )

    def nested(self) -> None:
        cmd = self.run(["zip", "-X", "-j", "zip-containing-7z-aes.zip", "7z-aes.7z", "notes.txt"])
        self.add(
            Sample(
                file="zip-containing-7z-aes.zip",
                tool=cmd,
                type="zip",
                encrypted=False,
                container="zip",
                contains_encrypted=True,
                members=2,
                content="7z-aes.7z (encrypted) + notes.txt, plain ZIP",
                note="zip > 7z (7z-aes-256)",
            )
        )
        tar = [
            "tar",
            "--format=ustar",
            "--sort=name",
            f"--mtime=@{MTIME}",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
        ]
        cmd = self.run(
            [
                *tar,
                "--use-compress-program=gzip -n -9",
                "-cf",
                "tar-gz-containing-age.tar.gz",
                "age-x25519.age",
                "notes.txt",
            ]
        )
        self.add(
            Sample(
                file="tar-gz-containing-age.tar.gz",
                tool=cmd,
                type="gzip",
                encrypted=False,
                container="gzip",
                contains_encrypted=True,
                members=1,
                content="gzip > tar (age-x25519.age, notes.txt)",
                note="gzip > tar > age (age-x25519)",
            )
        )
        cmd = self.run([*tar, "-cf", "tar-plain.tar", "patients.csv", "notes.txt"])
        self.add(
            Sample(
                file="tar-plain.tar",
                tool=cmd,
                type="tar",
                encrypted=False,
                container="tar",
                members=2,
                content="patients.csv, notes.txt (ustar)",
            )
        )

    def compressors(self) -> None:
        for name, typ, argv in (
            ("patients.csv.gz", "gzip", ["gzip", "-n", "-9", "-c", "patients.csv"]),
            ("patients.csv.bz2", "bzip2", ["bzip2", "-9", "-c", "patients.csv"]),
            ("patients.csv.xz", "xz", ["xz", "-9", "-c", "patients.csv"]),
            ("patients.csv.zst", "zstd", ["zstd", "-19", "-q", "-c", "patients.csv"]),
        ):
            cmd = self.run(argv, stdout=name)
            self.add(
                Sample(
                    file=name,
                    tool=cmd,
                    type=typ,
                    encrypted=False,
                    container=typ,
                    members=1,
                    content="patients.csv, one compressed stream",
                )
            )

    def rars(self) -> None:
        samples = rar_samples()
        for sample, data in samples:
            self.write(sample.file, data)
            self.add(sample)
        verify_rars({sample.file: data for sample, data in samples})

    def plain(self) -> None:
        for name, typ, data in (
            ("patients.csv", "csv", CSV),
            ("notes.txt", "text", NOTES),
            ("patients.json", "json", csv_as_json(CSV)),
        ):
            self.write(name, data)
            self.add(
                Sample(
                    file=name,
                    tool="pcaps/_lib/fakedata.py (make_corpus.py)",
                    type=typ,
                    encrypted=False,
                    content="fake patient data",
                )
            )
        self.write("image.png", tiny_png())
        self.add(
            Sample(
                file="image.png",
                tool="zlib + struct (make_corpus.tiny_png): 32x16 RGB gradient",
                type="png",
                encrypted=False,
                content="a gradient",
            )
        )
        if JPEG_SOURCE.exists():
            shutil.copyfile(JPEG_SOURCE, self.work / "image.jpg")
        else:  # keep the committed copy
            shutil.copyfile(CORPUS / "image.jpg", self.work / "image.jpg")
        self.add(
            Sample(
                file="image.jpg",
                tool=(
                    f"cp {JPEG_SOURCE} image.jpg (Debian package nodejs; Node.js "
                    "documentation, MIT licence)"
                ),
                type="jpeg",
                encrypted=False,
                content="a progressive JFIF image",
            )
        )
        self.write("random-64k.bin", random_bytes(64 * 1024, seed=82))
        self.add(
            Sample(
                file="random-64k.bin",
                tool="pcaps._lib.fakedata.random_bytes(65536, seed=82)",
                type=None,
                encrypted=None,
                encryption="unknown-high-entropy",
                content="pseudo-random bytes: no structure, entropy ~8 bits/byte",
                note="headerless; size is a multiple of 512",
            )
        )


# -- hand-made inputs -------------------------------------------------------------------------

ZIP_TIME = (2025, 7, 1, 12, 0, 0)


def _zip_parts(parts: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text.encode())
    return buf.getvalue()


def _rows(n: int, csv: bytes = CSV) -> list[list[str]]:
    return [line.split(",") for line in csv.decode().splitlines()[: n + 1]]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


CT = "http://schemas.openxmlformats.org/package/2006/content-types"
REL = "http://schemas.openxmlformats.org/package/2006/relationships"
OFFDOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def ooxml_docx() -> bytes:
    """A minimal WordprocessingML package: content types, package rels, one document part."""
    paras = "".join(
        f"<w:p><w:r><w:t>{_esc(', '.join(r))}</w:t></w:r></w:p>"
        for r in _rows(OFFICE_ROWS, OFFICE_CSV)
    )
    return _zip_parts(
        {
            "[Content_Types].xml": XML + f'<Types xmlns="{CT}">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
            "_rels/.rels": XML + f'<Relationships xmlns="{REL}"><Relationship Id="rId1" '
            f'Type="{OFFDOC}/officeDocument" Target="word/document.xml"/></Relationships>',
            "word/document.xml": XML + '<w:document xmlns:w="http://schemas.openxmlformats.org/'
            f'wordprocessingml/2006/main"><w:body>{paras}</w:body></w:document>',
        }
    )


def ooxml_xlsx() -> bytes:
    """A minimal SpreadsheetML package: one sheet of inline-string cells."""
    rows = []
    for r, row in enumerate(_rows(OFFICE_ROWS, OFFICE_CSV), start=1):
        cells = "".join(
            f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{_esc(v)}</t></is></c>'
            for c, v in enumerate(row)
        )
        rows.append(f'<row r="{r}">{cells}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return _zip_parts(
        {
            "[Content_Types].xml": XML + f'<Types xmlns="{CT}">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{sml}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{sml}.worksheet+xml"/>'
            "</Types>",
            "_rels/.rels": XML + f'<Relationships xmlns="{REL}"><Relationship Id="rId1" '
            f'Type="{OFFDOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
            "xl/workbook.xml": XML + f'<workbook xmlns="{main}" xmlns:r="{OFFDOC}"><sheets>'
            '<sheet name="Export" sheetId="1" r:id="rId1"/></sheets></workbook>',
            "xl/_rels/workbook.xml.rels": XML + f'<Relationships xmlns="{REL}"><Relationship '
            f'Id="rId1" Type="{OFFDOC}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
            "xl/worksheets/sheet1.xml": XML + f'<worksheet xmlns="{main}"><sheetData>'
            f"{''.join(rows)}</sheetData></worksheet>",
        }
    )


def handmade_pdf() -> bytes:
    """A one-page PDF 1.4 with a Helvetica text content stream and a correct xref table."""
    lines = ["(Export week 27 - fictieve testgegevens) Tj"]
    for row in _rows(25):
        text = ", ".join(row).replace("\\", "").replace("(", "").replace(")", "")
        lines.append(f"0 -14 Td ({text}) Tj")
    stream = ("BT /F1 9 Tf 40 800 Td\n" + "\n".join(lines) + "\nET\n").encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def tiny_png() -> bytes:
    """A 32x16 8-bit RGB PNG (gradient): signature, IHDR, one zlib IDAT, IEND (RFC 2083)."""
    width, height = 32, 16

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 8, y * 16, 128)) for x in range(width)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def csv_as_json(csv: bytes) -> bytes:
    header, *rows = csv.decode().splitlines()
    keys = header.split(",")
    records = [dict(zip(keys, row.split(","), strict=True)) for row in rows[:40]]
    return (json.dumps({"export": "week27", "patients": records}, indent=1) + "\n").encode()


def pyzipper_aes128(members: dict[str, bytes]) -> bytes:
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED) as zf:
        zf.setpassword(PASSWORD.encode())
        zf.setencryption(pyzipper.WZ_AES, nbits=128)
        for name, data in members.items():
            info = zf.zipinfo_cls(name, date_time=ZIP_TIME)
            info.compress_type = pyzipper.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def msoffcrypto_encrypt(fin: Any, fout: Any, password: str) -> None:
    import msoffcrypto

    msoffcrypto.OfficeFile(fin).encrypt(password, fout)


def age_on_pty(argv: list[str], cwd: Path, passphrase: str) -> bytes:
    """Run `age -p`/`age -d` for a passphrase: age reads it from the terminal only, so give it
    one (pty.fork) and type the passphrase at each prompt. Returns what age printed."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal
        try:
            os.chdir(cwd)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    seen, typed = b"", 0
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        # One answer per prompt: "Enter passphrase", "Confirm passphrase" (or one for -d).
        while seen.lower().count(b"passphrase") > typed:
            os.write(fd, passphrase.encode() + b"\n")
            typed += 1
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {seen!r}")
    return seen


# -- RAR, built from the format specifications ------------------------------------------------

RAR_NOTE = (
    "built from the format specification by tests/content/fingerprint/rarbuild.py, not by the "
    "RAR tool (non-free); the data of an encrypted entry is random bytes standing in for "
    "ciphertext, so it cannot be decrypted"
)
# No directory entry: rarbuild writes a RAR 5 directory header without a data area (the
# technote makes "data size" optional), which libarchive refuses ("no data found in
# file/service block"), so the independent check could not read the archive.
RAR_PLAIN_ENTRIES = [("export/patients.csv", CSV, False), ("notes.txt", NOTES, False)]


def _rar_call(build: str, entries: list[tuple[str, bytes, bool]], **kw: bool) -> str:
    """The rarbuild call as the manifest records it (the data named, not spelled out)."""
    data = {CSV: "CSV", NOTES: "NOTES", b"": "b''"}
    args = ", ".join(f"({n!r}, {data[d]}, {e})" for n, d, e in entries)
    extra = "".join(f", {k}={v}" for k, v in kw.items())
    return f"rarbuild.{build}([{args}]{extra})  (CSV = patients.csv, NOTES = notes.txt)"


def rar_samples() -> list[tuple[Sample, bytes]]:
    """The RAR samples and their bytes (deterministic: rarbuild's seeds, fakedata's seeds).

    What the formats say, which the manifest records: RAR 4.x FILE_HEAD flag 0x0004
    (LHD_PASSWORD) with UNP_VER 29 is AES-128 (RAR 3.x and later; below 29 the old RAR 2.0
    cipher); MAIN_HEAD flag 0x0080 (MHD_PASSWORD) encrypts every later header, so neither names
    nor the number of entries can be read. RAR 5.0: a file encryption extra record (type 0x01)
    is AES-256; an archive encryption header (type 4) right after the signature encrypts every
    later header. Directory entries are not members (no data of their own)."""
    one = [("patients.csv", CSV, True)]
    two = [("patients.csv", CSV, True), ("notes.txt", NOTES, True)]
    out: list[tuple[Sample, bytes]] = []
    for version, build, scheme in ((4, rar4, "rar4-aes-128"), (5, rar5, "rar5-aes-256")):
        kind = f"rar{version}"
        cipher = "AES-128, UNP_VER 29" if version == 4 else "AES-256, file encryption record"
        out.append(
            (
                Sample(
                    file=f"{kind}-encrypted.rar",
                    tool=_rar_call(build.__name__, one),
                    type=kind,
                    encrypted=True,
                    encryption=scheme,
                    container=kind,
                    contains_encrypted=True,
                    members=1,
                    content=f"patients.csv, file encrypted ({cipher}); its name is readable",
                    note=RAR_NOTE,
                ),
                build(one),
            )
        )
        hidden = (
            "MAIN_HEAD flag 0x0080 MHD_PASSWORD: every later header encrypted"
            if version == 4
            else "archive encryption header (type 4): every later header encrypted"
        )
        out.append(
            (
                Sample(
                    file=f"{kind}-encrypted-headers.rar",
                    tool=_rar_call(build.__name__, two, encrypt_headers=True),
                    type=kind,
                    encrypted=True,
                    encryption=scheme,
                    hides_names=True,
                    container=kind,
                    members=None,
                    content=f"patients.csv, notes.txt; {hidden} (rar -hp)",
                    note=RAR_NOTE + "; members are not listed without the password, so none is "
                    "reported and contains_encrypted is false",
                ),
                build(two, encrypt_headers=True),
            )
        )
    out.append(
        (
            Sample(
                file="rar5-plain.rar",
                tool=_rar_call("rar5", RAR_PLAIN_ENTRIES),
                type="rar5",
                encrypted=False,
                container="rar5",
                members=2,
                content="export/patients.csv, notes.txt (stored, method 0)",
                note=RAR_NOTE.split("; ")[0],
            ),
            rar5(RAR_PLAIN_ENTRIES),
        )
    )
    return out


def libarchive() -> ctypes.CDLL | None:
    """libarchive (an independent RAR 4/5 reader) through ctypes, or None when missing."""
    name = ctypes.util.find_library("archive")
    if name is None:
        return None
    la = ctypes.CDLL(name)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    for fn, res, args in (
        ("archive_version_string", cp, []),
        ("archive_read_new", vp, []),
        ("archive_read_support_format_rar", ctypes.c_int, [vp]),
        ("archive_read_support_format_rar5", ctypes.c_int, [vp]),
        ("archive_read_open_memory", ctypes.c_int, [vp, cp, ctypes.c_size_t]),
        ("archive_read_next_header", ctypes.c_int, [vp, ctypes.POINTER(vp)]),
        ("archive_read_data", ctypes.c_ssize_t, [vp, vp, ctypes.c_size_t]),
        ("archive_read_data_skip", ctypes.c_int, [vp]),
        ("archive_error_string", cp, [vp]),
        ("archive_read_free", ctypes.c_int, [vp]),
        ("archive_entry_pathname", cp, [vp]),
        ("archive_entry_size", ctypes.c_int64, [vp]),
        ("archive_entry_is_encrypted", ctypes.c_int, [vp]),
    ):
        getattr(la, fn).restype, getattr(la, fn).argtypes = res, args
    return la


@dataclass(slots=True)
class Listed:
    """One entry as libarchive lists it; `data` only for entries not flagged encrypted."""

    name: str
    size: int
    encrypted: bool
    data: bytes | None


def libarchive_list(la: ctypes.CDLL, raw: bytes) -> tuple[list[Listed], str | None]:
    """The entries libarchive reads from `raw`, and the error that stopped it (None: clean)."""
    handle = la.archive_read_new()
    try:
        la.archive_read_support_format_rar(handle)
        la.archive_read_support_format_rar5(handle)
        if la.archive_read_open_memory(handle, raw, len(raw)) != 0:
            return [], (la.archive_error_string(handle) or b"?").decode()
        entries: list[Listed] = []
        entry = ctypes.c_void_p()
        buf = ctypes.create_string_buffer(1 << 16)
        while (rc := la.archive_read_next_header(handle, ctypes.byref(entry))) == 0:
            encrypted = la.archive_entry_is_encrypted(entry) == 1
            data = None
            if encrypted:
                la.archive_read_data_skip(handle)
            else:
                chunks = []
                while (n := la.archive_read_data(handle, buf, len(buf))) > 0:
                    chunks.append(buf.raw[:n])
                if n < 0:
                    return entries, (la.archive_error_string(handle) or b"?").decode()
                data = b"".join(chunks)
            name = la.archive_entry_pathname(entry).decode()
            entries.append(Listed(name, la.archive_entry_size(entry), encrypted, data))
        error = None if rc == 1 else (la.archive_error_string(handle) or b"?").decode()
        return entries, error
    finally:
        la.archive_read_free(handle)


def verify_rars(files: dict[str, bytes]) -> None:
    """Check the RAR samples with libarchive, which shares no code with rarbuild or Sluice: the
    header CRCs and fields must be readable, names and sizes as built, the plain archive's
    data as put in, and the header-encrypted ones refused for want of a password. libarchive
    3.6 reports RAR 4 data encryption but not RAR 5's (its rar5 reader skips the record), so
    the RAR 5 file encryption is not checked by it."""
    for name, raw in files.items():
        marker = b"Rar!\x1a\x07\x00" if name.startswith("rar4") else b"Rar!\x1a\x07\x01\x00"
        assert raw.startswith(marker), name
    la = libarchive()
    if la is None:
        print("libarchive not found: RAR samples not checked by an independent reader")
        return
    for name in ("rar4-encrypted.rar", "rar5-encrypted.rar"):
        entries, error = libarchive_list(la, files[name])
        assert error is None, (name, error)
        assert [(e.name, e.size) for e in entries] == [("patients.csv", len(CSV))], (name, entries)
        if name.startswith("rar4"):
            assert entries[0].encrypted, name
    for name in ("rar4-encrypted-headers.rar", "rar5-encrypted-headers.rar"):
        entries, error = libarchive_list(la, files[name])
        assert not entries and error and "ncryption" in error, (name, entries, error)
    entries, error = libarchive_list(la, files["rar5-plain.rar"])
    assert error is None, error
    got = [(e.name, e.encrypted, e.data) for e in entries]
    assert got == [(n, False, d) for n, d, _e in RAR_PLAIN_ENTRIES], got


def rarbuild_version() -> str:
    la = libarchive()
    checked = la.archive_version_string().decode() if la is not None else "no independent reader"
    return (
        "tests/content/fingerprint/rarbuild.py (RAR 4.x technote, RAR 5.0 technote); "
        f"checked with {checked}"
    )


def write_rar_only() -> None:
    """Write only the RAR samples and put their entries into the committed manifest: an entry
    of the same file is replaced where it stands, a new one appended. Nothing else changes."""
    samples = rar_samples()
    verify_rars({s.file: data for s, data in samples})
    path = CORPUS / "manifest.json"
    manifest = json.loads(path.read_text())
    entries: list[dict[str, Any]] = manifest["samples"]
    where = {entry["file"]: i for i, entry in enumerate(entries)}
    for sample, data in samples:
        assert len(data) <= MAX_SAMPLE, (sample.file, len(data))
        sample.size, sample.sha256 = len(data), hashlib.sha256(data).hexdigest()
        (CORPUS / sample.file).write_bytes(data)
        if sample.file in where:
            entries[where[sample.file]] = asdict(sample)
        else:
            entries.append(asdict(sample))
    total = sum(entry["size"] for entry in entries)
    assert total < MAX_CORPUS, total
    manifest["tools"]["rarbuild"] = rarbuild_version()
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(samples)} RAR samples; the corpus is {len(entries)} samples, {total} bytes")


# -- checks: every encrypted sample decrypts back to its input --------------------------------


def verify(m: Maker) -> None:
    w, pw = m.work, PASSWORD

    def read(name: str) -> bytes:
        return (w / name).read_bytes()

    with zipfile.ZipFile(w / "zip-pkware.zip") as zf:  # stdlib ZipCrypto: independent of zip
        assert zf.infolist()[0].flag_bits & 1 and zf.read("patients.csv", pwd=pw.encode()) == CSV
    with zipfile.ZipFile(w / "zip-partial.zip") as zf:
        flags = [i.flag_bits & 1 for i in zf.infolist()]
        assert flags == [1, 0], flags
        assert zf.read("patients.csv", pwd=pw.encode()) == CSV and zf.read("notes.txt") == NOTES
    import pyzipper

    for name, strength in (
        ("zip-aes-256-7zz.zip", 3),
        ("zip-aes-192-7zz.zip", 2),
        ("zip-aes-128-pyzipper.zip", 1),
    ):
        raw = read(name)
        # WinZip AE extra 0x9901: vendor "AE", strength 1/2/3 = AES-128/192/256.
        at = raw.find(b"\x01\x99\x07\x00")
        assert at > 0 and raw[at + 8] == strength, (name, raw[at : at + 11].hex())
        with pyzipper.AESZipFile(w / name) as zf:
            zf.setpassword(pw.encode())
            assert zf.read("patients.csv") == CSV, name
    for name in ("7z-aes.7z", "7z-aes-hidden-names.7z"):
        assert m.output(["7zz", "x", f"-p{pw}", "-so", name, "patients.csv"]) == CSV, name
    m.output(["7zz", "t", f"-p{pw}", "7z-aes-30files.7z"])
    headers = {
        n: sevenzip_header_byte(read(n))
        for n in ("7z-aes.7z", "7z-aes-30files.7z", "7z-aes-hidden-names.7z", "7z-plain-30files.7z")
    }
    assert headers == {
        "7z-aes.7z": 0x01,
        "7z-aes-30files.7z": 0x17,
        "7z-aes-hidden-names.7z": 0x17,
        "7z-plain-30files.7z": 0x17,
    }, headers
    assert b"\x06\xf1\x07\x01" in read("7z-aes.7z") and b"\x06\xf1\x07\x01" not in read(
        "7z-plain-30files.7z"
    )
    # -mhe: the names must not be readable without the password.
    assert b"p\x00a\x00t\x00i\x00e\x00n\x00t\x00s" not in read("7z-aes-hidden-names.7z")
    sym = ["--pinentry-mode", "loopback", "--passphrase", pw]
    for name in ("gpg-symmetric.gpg", "gpg-symmetric.asc"):
        assert m.output(m.gpg(*sym, "-d", name)) == CSV, name
    assert m.output(m.gpg("-d", "gpg-public-key.gpg")) == CSV
    assert m.output(m.gpg("-d", "gpg-signed.gpg")) == CSV
    m.output(m.gpg("--verify", "gpg-clearsigned.txt.asc"))
    assert read("gpg-clearsigned.txt.asc").startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    for name in ("age-x25519.age", "age-x25519-armored.age"):
        assert m.output(["age", "-d", "-i", "age-key.txt", name]) == CSV, name
    age_on_pty(["age", "-d", "-o", "age-scrypt.out", "age-scrypt.age"], w, pw)
    assert read("age-scrypt.out") == CSV
    assert read("age-scrypt.age").split(b"\n")[1].startswith(b"-> scrypt ")
    for name, extra in (("openssl-enc.bin", []), ("openssl-enc-base64.txt", ["-a"])):
        out = m.output(
            [
                "openssl",
                "enc",
                "-d",
                "-aes-256-cbc",
                "-pbkdf2",
                *extra,
                "-pass",
                f"pass:{pw}",
                "-in",
                name,
            ]
        )
        assert out == CSV, name
    assert read("openssl-enc.bin").startswith(b"Salted__")
    m.output(["qpdf", "--check", "pdf-plain.pdf"])
    # Standard security handler revisions (ISO 32000-1 7.6.3.2, -2 5.2): R2 = RC4-40, R3 =
    # RC4-128, R4 with AESV2 = AES-128, R6 with AESV3 = AES-256.
    for name, rev, method in (
        ("pdf-rc4-40.pdf", 2, None),
        ("pdf-rc4-128.pdf", 3, None),
        ("pdf-aes-128.pdf", 4, "AESv2"),
        ("pdf-aes-256.pdf", 6, "AESv3"),
    ):
        info = m.output(["qpdf", f"--password={pw}", "--show-encryption", name]).decode()
        assert f"R = {rev}\n" in info and (method is None or method in info), (name, info)
        m.output(["qpdf", f"--password={pw}", "--check", name])
    info = m.output(["qpdf", "--show-encryption", "pdf-aes-256-owner-only.pdf"]).decode()
    assert "AESv3" in info, info
    import msoffcrypto

    for enc, plain in (("docx-agile.docx", "plain.docx"), ("xlsx-agile.xlsx", "plain.xlsx")):
        with (w / enc).open("rb") as fh:
            office = msoffcrypto.OfficeFile(fh)
            assert office.is_encrypted() and office.type == "agile", enc
            office.load_key(password=pw)
            clear = io.BytesIO()
            office.decrypt(clear)
        assert clear.getvalue() == read(plain), enc
        assert read(enc)[:8] == bytes.fromhex("d0cf11e0a1b11ae1")
    listing = m.output(["tar", "-tzf", "tar-gz-containing-age.tar.gz"]).decode().split()
    assert listing == ["age-x25519.age", "notes.txt"], listing
    assert read("image.jpg")[:3] == b"\xff\xd8\xff" and read("image.png")[:4] == b"\x89PNG"


def sevenzip_header_byte(data: bytes) -> int:
    """First byte of a 7z archive's next header (0x01 Header, 0x17 kEncodedHeader)."""
    (offset,) = struct.unpack_from("<Q", data, 12)
    return data[32 + offset]


def zip_version() -> str:
    out = subprocess.run(["zip", "-v"], capture_output=True, text=True, check=False).stdout
    return next((ln.strip() for ln in out.splitlines() if ln.startswith("This is Zip")), "?")


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        return lines[0] if lines else "?"

    from importlib.metadata import version

    return {
        "zip": zip_version(),
        "7zz": first_line(["7zz"]),
        "gpg": first_line(["gpg", "--version"]),
        "age": first_line(["age", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "qpdf": first_line(["qpdf", "--version"]),
        "tar": first_line(["tar", "--version"]),
        "gzip": first_line(["gzip", "--version"]),
        "bzip2": first_line(["bzip2", "--help"]),
        "xz": first_line(["xz", "--version"]),
        "zstd": first_line(["zstd", "--version"]),
        "pyzipper": version("pyzipper"),
        "msoffcrypto-tool": version("msoffcrypto-tool"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rar-only",
        action="store_true",
        help="write only the RAR samples (built from the specs) and update their manifest "
        "entries in place; every other sample stays byte-identical",
    )
    if parser.parse_args().rar_only:
        write_rar_only()
    else:
        write_all()


def write_all() -> None:
    work = Path(tempfile.mkdtemp(prefix="sluice-corpus-"))
    maker = Maker(work)
    try:
        maker.inputs()
        maker.plain()
        maker.zips()
        maker.sevenzips()
        maker.openpgp()
        maker.age()
        maker.openssl()
        maker.pdfs()
        maker.office()
        maker.nested()
        maker.compressors()
        maker.rars()
        verify(maker)
        CORPUS.mkdir(exist_ok=True)
        for old in CORPUS.iterdir():
            old.unlink()
        total = 0
        for sample in maker.samples:
            data = (work / sample.file).read_bytes()
            assert len(data) <= MAX_SAMPLE, (sample.file, len(data))
            total += len(data)
            sample.size, sample.sha256 = len(data), hashlib.sha256(data).hexdigest()
            (CORPUS / sample.file).write_bytes(data)
        assert total < MAX_CORPUS, total
        manifest = {
            "about": "Encrypted-container fingerprint corpus; see README.md. All data is fake.",
            "passwords": {"default": PASSWORD, "pdf_owner": PDF_OWNER_PASSWORD},
            "tools": {**tool_versions(), "rarbuild": rarbuild_version()},
            "samples": [asdict(s) for s in maker.samples],
        }
        (CORPUS / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {len(maker.samples)} samples ({total} bytes) to {CORPUS}")
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(maker.gnupghome), "--kill", "all"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
