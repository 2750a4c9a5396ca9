from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sensor.cli.main import main
from tests.conftest import cannot_run, require_root_netns, require_tool
from tests.replays import PCAPS

SAMPLE = PCAPS / "http-post-raw" / "input.pcap"
FILE_TYPES = PCAPS.parent / "signatures" / "filetypes.toml"
SLUICE = str(Path(sys.executable).parent / "sluice")


def _fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str], words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sluice: error:") and words in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        ["replay", str(tmp_path / "nope.pcap"), "--out", str(tmp_path / "o")], capsys, "nope.pcap"
    )


def test_not_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are not packets\n" * 10)
    _fails_cleanly(["replay", str(bogus), "--out", str(tmp_path / "o")], capsys, "notes.txt")
    assert not (tmp_path / "o").exists()  # nothing written for a refused input


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails_cleanly(
        ["extract", str(SAMPLE), "--out", str(blocker / "sub")],
        capsys,
        "cannot write to output directory",
    )


def test_broken_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[flows]\nmax_flows = 'lots'\n")
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--config", str(config)],
        capsys,
        "flows.max_flows must be a number",
    )


def test_replay_prints_a_summary_and_is_deterministic(tmp_path: Path) -> None:
    outputs = []
    for run_no in range(2):
        out = tmp_path / f"run{run_no}"
        done = subprocess.run(
            [SLUICE, "replay", str(SAMPLE), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "packets/s" in done.stdout and "uploads (client -> server)" in done.stdout
        outputs.append((out / "events.jsonl").read_bytes())
    assert outputs[0] == outputs[1] and outputs[0]


def test_extract_writes_objects_named_by_hash(tmp_path: Path) -> None:
    out = tmp_path / "x"
    assert main(["extract", str(SAMPLE), "--out", str(out), "--quiet"]) == 0
    lines = (out / "files.jsonl").read_text().splitlines()
    assert lines
    import hashlib
    import json

    for line in lines:
        record = json.loads(line)
        for key in (
            "timestamp",
            "flow_id",
            "community_id",
            "proto",
            "direction",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "filename",
            "mime_type",
            "size",
            "sha256",
            "complete",
            "missing_bytes",
        ):
            assert key in record
        data = (out / "files" / record["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert len(data) == record["size"]


# -- where the signatures come from -----------------------------------------------------------


def _signatures(directory: Path, db_id: str) -> Path:
    """A signatures dir whose categories put the sample's server (198.51.100.20) in one."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "categories.toml").write_text(
        f'id = "{db_id}"\nversion = 1\n[[category]]\nid = "file_hosting"\nmin_bytes = 1\n'
        'cidrs = ["198.51.100.0/24"]\n'
    )
    (directory / "filetypes.toml").write_bytes(FILE_TYPES.read_bytes())
    (directory / "policy.toml").write_bytes((FILE_TYPES.parent / "policy.toml").read_bytes())
    return directory


def test_a_broken_file_type_table_stops_the_replay_naming_file_and_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sigs = _signatures(tmp_path / "sigs", "x")
    table = sigs / "filetypes.toml"
    table.write_text(table.read_text().replace('id = "7z"', 'id = "7Z"', 1))
    assert main(["replay", str(SAMPLE), "--quiet", "--out", str(tmp_path / "o"),
                 "--signatures", str(sigs)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert str(table) in err and "[[type]] #2" in err and "id must be" in err


def _category_source(out: Path) -> str:
    """The categories id named by the replay's category finding."""
    for line in (out / "events.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event_type"] == "finding" and record["finding"]["kind"] == "category_upload":
            return str(record["finding"]["detail"]).split("(file_hosting, ")[1].split(" v")[0]
    return ""


def test_signatures_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "etc" / "sluice.toml"
    config.parent.mkdir()
    config.write_text('signatures_dir = "sigs"\n')  # relative to the config file
    _signatures(tmp_path / "etc" / "sigs", "from-config")
    option = _signatures(tmp_path / "option", "from-option")
    monkeypatch.setenv("SLUICE_SIGNATURES", str(_signatures(tmp_path / "env", "from-env")))
    base = ["replay", str(SAMPLE), "--quiet", "--out"]
    runs = {
        "from-option": ["--config", str(config), "--signatures", str(option)],
        "from-config": ["--config", str(config)],
        "from-env": [],
    }
    for expected, extra in runs.items():
        out = tmp_path / expected
        assert main([*base, str(out), *extra]) == 0
        assert _category_source(out) == expected


def test_missing_signatures_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    _fails_cleanly(
        ["extract", str(SAMPLE), "--out", str(tmp_path / "o"), "--signatures", str(missing)],
        capsys,
        f"signatures directory {missing} (from --signatures) does not exist",
    )


def test_signatures_dir_without_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--signatures", str(empty)],
        capsys,
        f"no categories.toml in signatures directory {empty} from --signatures",
    )


def test_broken_categories_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sigs = _signatures(tmp_path / "sigs", "x")
    (sigs / "categories.toml").write_text("id = 'x'\nversion = 1\n")
    config = tmp_path / "sluice.toml"
    config.write_text(f'signatures_dir = "{sigs}"\n')
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--config", str(config)],
        capsys,
        f"{sigs / 'categories.toml'}: needs at least one [[category]]",
    )


def test_bad_signatures_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_SIGNATURES", str(tmp_path / "typo"))
    _fails_cleanly(
        ["replay", str(SAMPLE), "--out", str(tmp_path / "o")],
        capsys,
        "(from $SLUICE_SIGNATURES) does not exist",
    )


def test_a_full_disk_during_an_extraction_is_one_clear_error(tmp_path: Path) -> None:
    """A real full filesystem (a 1 MiB tmpfs) under --out, filled by the extracted objects of a
    10 MB capture: one line, exit status 3, no traceback."""
    if os.geteuid() != 0:
        cannot_run("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        capture = next(Path(__file__).resolve().parents[2].glob("pcaps/office-egress/input.pcap"))
        done = subprocess.run(
            [sys.executable, "-m", "sensor.cli.main", "extract", str(capture), "--out",
             str(small / "out"), "--quiet"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert done.stderr.startswith("sluice: error: writing to ")
        assert "No space left on device" in done.stderr or "full" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        if subprocess.run(["umount", str(small)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], check=False)


# -- outputs are private ---------------------------------------------------------------------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_every_output_is_private_to_its_owner(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o755)  # an existing directory is left as the operator made it ...
    (out / "events.jsonl").write_text("old\n")
    (out / "events.jsonl").chmod(0o644)  # ... but an old output loses its reading by others
    done = subprocess.run(
        [SLUICE, "extract", str(SAMPLE), "--out", str(out / "new"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    new = out / "new"
    assert _mode(new) == 0o700 and _mode(new / "files") == 0o700
    for name in ("events.jsonl", "files.jsonl", "sluice.db"):
        assert _mode(new / name) == 0o600, name
    assert all(_mode(f) == 0o600 for f in (new / "files").iterdir())
    done = subprocess.run(
        [SLUICE, "replay", str(SAMPLE), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _mode(out / "events.jsonl") == 0o600 and _mode(out) == 0o755


def test_an_operators_group_may_read_the_outputs(tmp_path: Path) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text("[output]\ngroup = 'root'\n")  # group 0 exists everywhere
    out = tmp_path / "out"
    done = subprocess.run(
        [SLUICE, "replay", str(SAMPLE), "--out", str(out), "--config", str(config), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _mode(out) == 0o750  # already root's group: no chown, no set-group-ID needed
    assert _mode(out / "events.jsonl") == 0o640 and _mode(out / "sluice.db") == 0o640
    config.write_text("[output]\ngroup = 'no-such-group-here'\n")
    done = subprocess.run(
        [SLUICE, "replay", str(SAMPLE), "--out", str(tmp_path / "o2"), "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "no group 'no-such-group-here'" in done.stderr


# -- several captures: merged by packet time ---------------------------------------------------


def _split(source: Path, odd: Path, even: Path) -> None:
    """Every other frame of `source` into `odd` and `even` (two captures that overlap in
    time, as from two taps of one link)."""
    from pcaps._lib.pcapfile import write_pcap
    from probes.pcap import PcapReader

    with PcapReader(str(source)) as reader:
        frames = list(reader)
    linktype = frames[0].linktype
    write_pcap(odd, linktype, [(f.ts, f.data) for f in frames[1::2]])
    write_pcap(even, linktype, [(f.ts, f.data) for f in frames[0::2]])


def _events(out: Path) -> list[str]:
    return [
        line
        for line in (out / "events.jsonl").read_text().splitlines()
        if '"event_type":"stats"' not in line  # the per-file capture errors list differs
    ]


def test_captures_are_merged_by_packet_time_whatever_their_order(tmp_path: Path) -> None:
    late = PCAPS / "smtp-attachments" / "input.pcap"
    early = PCAPS / "http-put-large" / "input.pcap"
    odd, even = tmp_path / "odd.pcap", tmp_path / "even.pcap"
    _split(late, odd, even)
    runs = {
        "in order": [early, late],
        "reversed": [late, early],
        "interleaved halves": [odd, early, even],
    }
    results = {}
    for name, paths in runs.items():
        out = tmp_path / name.replace(" ", "-")
        assert main(["replay", *map(str, paths), "--out", str(out), "--quiet"]) == 0
        results[name] = _events(out)
    assert results["reversed"] == results["in order"]
    assert results["interleaved halves"] == results["in order"]


# -- the summary -------------------------------------------------------------------------------


def test_the_summary_lists_findings_mails_sessions_and_says_what_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text(
        "[metering]\nthresholds = [{ name = 'any upload', mb = 0.05, minutes = 10 }]\n"
        "[output]\nmax_anomalies_per_flow = 0\n"
    )
    captures = [
        PCAPS / n / "input.pcap"
        for n in ("smtp-multi", "ssh-sftp-upload", "http-multipart-upload", "smtp-plain")
    ]
    argv = ["replay", *map(str, captures), "--out", str(tmp_path / "o"), "--config", str(config)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"config: {config} (chosen by --config)" in out
    assert re.search(r"findings: \d+", out) and re.search("medium +volume_threshold", out)
    assert "rule 'any upload'" in out
    assert "SSH sessions: 1" in out and "sftp: upload, about" in out
    mails = re.search(r"mail \(SMTP transactions\): (\d+)", out)
    assert mails is not None and int(mails[1]) >= 3
    assert "None" not in out  # a missing subject reads "(no subject)"
    written = sum(
        1 for line in (tmp_path / "o" / "events.jsonl").open() if '"event_type":"anomaly"' in line
    )
    assert written == 0
    counted = re.search(r"anomalies (\d+)", out)
    assert counted is not None
    if int(counted[1]):
        assert f"{counted[1]} over the per-flow cap not written" in out


def test_the_summary_says_how_many_more_there_are(tmp_path: Path) -> None:
    from rich.console import Console

    from sensor.cli.main import print_summary
    from sensor.outputs.digest import Digest
    from sensor.pipeline import Summary

    digest = Digest(limit=1)
    for i in range(3):
        digest(
            {
                "timestamp": f"2026-01-01T00:00:0{i}.000000Z", "event_type": "smtp",
                "src_ip": "10.0.0.1", "dest_ip": "192.0.2.1", "dest_port": 25,
                "smtp": {"mail_from": f"a{i}@x.example", "rcpt_to": ["b@y.example"],
                         "headers": {}, "content_visible": True, "attachments": 0,
                         "status": "accepted"},
            }
        )  # fmt: skip
    stream = io.StringIO()
    console = Console(file=stream, width=100, color_system=None)
    print_summary("replay", ["x.pcap"], Summary(), digest, 1.0, tmp_path, console)
    text = stream.getvalue()
    assert "mail (SMTP transactions): 3" in text and "(no subject)" in text
    assert f"... 2 more in {tmp_path / 'events.jsonl'}" in text
    assert "findings: none" in text


def test_encrypted_uploads_come_first_and_fit_80_columns(tmp_path: Path) -> None:
    from rich.console import Console

    from sensor.cli.main import print_summary, run
    from sensor.config import Config
    from sensor.outputs.digest import Digest

    digest = Digest()
    capture = PCAPS / "encrypted-uploads" / "input.pcap"
    summary, seconds = run([str(capture)], tmp_path, Config(), False, digest=digest)
    stream = io.StringIO()
    console = Console(file=stream, width=80, color_system=None)
    print_summary("replay", [str(capture)], summary, digest, seconds, tmp_path, console)
    lines = stream.getvalue().splitlines()
    # Paths are printed whole (soft-wrapped by the terminal); everything else fits.
    assert all(len(line) <= 80 for line in lines if str(tmp_path) not in line)
    text = "\n".join(lines)
    assert "fingerprints: 11 encrypted" in text
    first = text.index("encrypted uploads: 11")
    assert first < text.index("uploads (client -> server)")
    table = text[first : text.index("uploads (client -> server)")]
    # Who, to where, the scheme and the start of the name survive the width.
    assert "10.10.0.10  198.51.100.20:8080 http  7z-aes-256*" in table
    assert "* the member names are encrypted too" in table
    assert "rar4-aes-128" in table and "pdf-aes-256" in table and "export-week27.7z" in table


def test_sensitive_uploads_lead_with_their_counts_and_fit_80_columns(tmp_path: Path) -> None:
    """patient-exfil with classification on: both exports are listed before the encrypted
    uploads with severity, host, destination, file name, records, categories and the distinct
    values per identifier type (from the capture's expectation), wrapped, never cut, at 80."""
    from rich.console import Console

    from sensor.cli.main import print_summary, run
    from sensor.config import ClassifyConfig, Config
    from sensor.outputs.digest import Digest

    digest = Digest()
    case = PCAPS / "patient-exfil"
    captures = [str(case / "input.pcap"), str(PCAPS / "encrypted-uploads" / "input.pcap")]
    config = Config(classify=ClassifyConfig(enabled=True))
    summary, seconds = run(captures, tmp_path, config, False, digest=digest)
    stream = io.StringIO()
    console = Console(file=stream, width=80, color_system=None)
    print_summary("replay", captures, summary, digest, seconds, tmp_path, console)
    lines = stream.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines if str(tmp_path) not in line)
    text = "\n".join(lines)
    expected = json.loads((case / "expected.json").read_text())["findings"]
    start = text.index(f"sensitive uploads: {len(expected)}")
    assert start < text.index("encrypted uploads: ") < text.index("uploads (client -> server)")
    table = text[start : text.index("encrypted uploads: ")]
    for want in expected:
        to = f"{want['destination']}:{want['destination_port']} {want['proto']}"
        row = f"{want['severity']}  {want['host']}  {to}"
        assert re.search(rf"{re.escape(row)} +{re.escape(want['filename'])}", table), row
        # The wrapped description, read as one text: every count is there whole.
        block = table[table.index(want["filename"]) :]
        words = " ".join(block.split())
        assert f"{want['records']:,} records; {', '.join(want['categories'])};" in words
        for kind, distinct in want["identifiers"].items():
            assert f"{distinct:,} {kind}" in words, (kind, words)
    # The policy's dry-run verdicts come first, each with its rule and reason, wrapped.
    verdicts = text[text.index("verdicts (dry-run): ") : start]
    assert verdicts.count("block_host  10.10.0.10  1h00m  sensitive-upload:") == len(expected)
    assert "encrypted-upload:" in verdicts
    for want in expected:
        assert want["filename"] in " ".join(verdicts.split())


# -- help, version -----------------------------------------------------------------------------


def test_every_command_and_argument_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from sensor.cli.main import _build_parser

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        assert parser.description, f"{name}: no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
                assert action.help, f"{name} {action.option_strings or action.dest}: no help"

    walk(_build_parser(), "sluice")
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.fullmatch(r"sluice \d+\.\d+\.\d+\n", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "(default: " in text


def test_no_library_warning_reaches_stderr(tmp_path: Path) -> None:
    captures = sorted(str(p) for p in PCAPS.glob("*/input*.pcap*"))
    done = subprocess.run(
        [SLUICE, "replay", *captures, "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )  # fmt: skip
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert all(line.startswith("sluice: warning: ") for line in lines), done.stderr


def test_a_member_of_the_operators_group_reads_the_database(tmp_path: Path) -> None:
    """Not root, not the owner: `sluice top` opens the database read-only, with no -shm file
    to create, after the replay that wrote it has ended."""
    require_root_netns()
    setpriv = require_tool("setpriv")
    import grp
    import shutil
    import tempfile

    group = grp.getgrgid(65534).gr_name  # nogroup
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        config = base / "sluice.toml"
        config.write_text(f"[output]\ngroup = '{group}'\n")
        out = base / "out"
        done = subprocess.run(
            [SLUICE, "replay", str(SAMPLE), "--out", str(out), "--config", str(config), "--quiet"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "sluice.db"]
        assert _mode(out) == 0o2750 and out.stat().st_gid == 65534  # the group's, inherited
        before = (out / "sluice.db").read_bytes()
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", SLUICE, "top",
             "--db", str(out), "--json", "--window", "all"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["host"] == "10.10.0.10"
        assert (out / "sluice.db").read_bytes() == before
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["top", "--limit", "1e23"], "invalid int value"),
        (["top", "--watch", "nan"], "--watch needs a positive number"),
        (["top", "--watch", "inf"], "--watch needs a positive number"),
        (["top", "--window", "99999999999999999999d"], "longer than 36500 days"),
        (["host", "10.0.0.1", "--since", "99999999999999999999d"], "longer than 36500 days"),
        (["run", "--iface", "lo", "--out", "OUT", "--duration", "nan"], "--duration must be"),
        (["run", "--iface", "lo", "--out", "OUT", "--duration", "inf"], "--duration must be"),
        (["run", "--iface", "lo", "--out", "OUT", "--stats-interval", "nan"], "--stats-interval"),
    ],
)
def test_hostile_numbers_on_the_command_line_are_one_clear_error(
    tmp_path: Path, argv: list[str], words: str
) -> None:
    """Checked before anything is opened: `run` here never reaches the capture."""
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in argv]
    done = subprocess.run(
        [SLUICE, *argv, *(["--db", str(tmp_path)] if argv[0] in ("top", "host") else [])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_an_unknown_link_type_is_said_on_stderr(tmp_path: Path) -> None:
    from pcaps._lib.pcapfile import write_pcap

    capture = tmp_path / "usb.pcap"
    write_pcap(capture, 189, [(1_700_000_000.0 + i, b"\x00" * 64) for i in range(3)])  # USB
    done = subprocess.run(
        [SLUICE, "replay", str(capture), "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert "frames of 1 link type(s) Sluice does not decode" in done.stderr


def test_extraction_is_bounded_per_object_and_per_run(tmp_path: Path) -> None:
    """A gzip-coded 3 MB body is hashed whole but stored only up to the cap, as
    files/<sha256>.cut; the run's total cap stops storing the rest."""
    import gzip
    import hashlib

    from pcaps._lib.crafted import (
        T0,
        TcpConversation,
        http_request,
        http_response,
        write_conversations,
    )

    bomb = b"".join(b"%d,%d\n" % (i, i * 7919 % 100_003) for i in range(250_000))
    conv = TcpConversation()
    conv.handshake()
    conv.emit_all(conv.segments("client", http_request("GET", "/report.csv", "files.example")))
    conv.emit_all(
        conv.segments(
            "server", http_response(200, "OK", gzip.compress(bomb), [("Content-Encoding", "gzip")])
        )
    )
    conv.close()
    second = TcpConversation(client_port=49200, t0=T0 + 100)  # after the first has ended
    second.handshake()
    upload = b"id,name\n" + b"1,x\n" * 5000
    second.emit_all(second.segments("client", http_request("PUT", "/up.csv", "f.example", upload)))
    second.emit_all(second.segments("server", http_response(201, "Created", b"")))
    second.close()
    capture = tmp_path / "bomb.pcap"
    write_conversations(capture, conv, second)
    config = tmp_path / "sluice.toml"
    config.write_text("[content]\nmax_extract_bytes = 1000000\nmax_extract_total = 1010000\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [SLUICE, "extract", str(capture), "--out", str(out), "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "extraction cut 2 object(s)" in done.stdout, done.stdout
    files = {r["filename"]: r for r in map(json.loads, (out / "files.jsonl").open())}
    whole = files["report.csv"]
    assert whole["size"] == len(bomb) and whole["sha256"] == hashlib.sha256(bomb).hexdigest()
    assert (whole["stored_cut"], whole["stored_bytes"]) == (True, 1_000_000)
    assert (out / "files" / f"{whole['sha256']}.cut").read_bytes() == bomb[:1_000_000]
    assert not (out / "files" / whole["sha256"]).exists()  # never a hash-named partial file
    later = files["up.csv"]  # the run's total left it 10,000 bytes
    assert (later["stored_cut"], later["stored_bytes"]) == (True, 10_000)
    assert sum(f.stat().st_size for f in (out / "files").iterdir()) <= 1_010_000
    kinds = [
        json.loads(line)["anomaly"]["kind"]
        for line in (out / "events.jsonl").open()
        if '"event_type":"anomaly"' in line
    ]
    assert kinds.count("content_extract_cut") == 2
