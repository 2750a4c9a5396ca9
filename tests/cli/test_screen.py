"""What a person sees: the real `sluice` commands run in a pseudo-terminal (tmux) at 80 and 160
columns, the screen read back as text (and with its colour codes).

tmux runs on its own socket in the test's directory, one server per screen, killed afterwards
even on failure.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.replays import PCAPS

SLUICE = str(Path(sys.executable).parent / "sluice")
DEMO_CAPTURES = [
    PCAPS / n / "input.pcap"
    for n in ("http-put-large", "http-multipart-upload", "smtp-attachments", "ssh-sftp-upload",
              "office-egress")
]  # fmt: skip
ESC = "\x1b["
_SOCKETS = itertools.count()


class Screen:
    """One tmux server and window of a fixed size running one command."""

    def __init__(self, tmp: Path, width: int, height: int = 50) -> None:
        self.tmux = require_tool("tmux")
        self.socket = str(tmp / f"tmux-{next(_SOCKETS)}")  # a private server, not the user's
        self.width, self.height = width, height
        self.tmp = tmp

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-S", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run `argv`; when it ends, the shell prints `[exit N]` and keeps the pane open."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        command = (
            f"env -u COLUMNS -u LINES TERM=xterm-256color {exports} {shlex.join(argv)}; "
            f'echo "[exit $?]"; sleep 600'
        )
        self._tmux(
            "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
            command,
        )  # fmt: skip

    def text(self, colours: bool = False) -> str:
        """The screen and what scrolled off it."""
        return self._tmux("capture-pane", "-p", "-S", "-", "-t", "t", *(["-e"] if colours else []))

    def wait(self, timeout: float = 60, status: int = 0) -> str:
        """The screen once the command ended (without the `[exit N]` line)."""
        shown = self.wait_for(r"(?m)^\[exit \d+\]$", timeout)
        assert f"[exit {status}]" in shown, shown
        return shown.split("[exit ")[0]

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if re.search(pattern, shown):
                return shown
            assert time.monotonic() < deadline, f"no {pattern!r} on screen:\n{shown}"
            time.sleep(0.05)

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def close(self) -> None:
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A replay of real sample traffic under a config that fires findings, in local time."""
    tmp = tmp_path_factory.mktemp("screen")
    config = tmp / "sluice.toml"
    config.write_text(
        "home_net = ['10.10.0.0/16', 'fd00:10::/64']\n"
        "[metering]\ntimezone = 'Europe/Amsterdam'\n"
        "thresholds = [{ name = 'bulk upload', mb = 1, minutes = 10 }]\n"
    )
    out = tmp / "out"
    done = subprocess.run(
        [SLUICE, "replay", *map(str, DEMO_CAPTURES), "--out", str(out), "--config", str(config),
         "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, config


@pytest.fixture
def screens(tmp_path: Path) -> Iterator[list[Screen]]:
    made: list[Screen] = []
    yield made
    for screen in made:
        screen.close()


def _screen(screens: list[Screen], tmp: Path, width: int, height: int = 50) -> Screen:
    screen = Screen(tmp, width, height)
    screens.append(screen)
    return screen


def _rows_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


@pytest.mark.parametrize("width", [80, 160])
def test_top_fits_the_terminal_in_colour(
    demo: tuple[Path, Path], tmp_path: Path, screens: list[Screen], width: int
) -> None:
    out, config = demo
    screen = _screen(screens, tmp_path, width)
    screen.start([SLUICE, "top", "--db", str(out), "--window", "all", "--config", str(config)])
    shown = screen.wait()
    lines = shown.splitlines()
    assert lines[0].startswith("top by host, window all: 2026-11-29") and "CET" in lines[0]
    header = next(line for line in lines if line.startswith("#  HOST"))
    assert ("AVG" in header) == (width >= 120) and ("SHARE" in header) == (width >= 100)
    # One screen line per host (no wrapping), the address and the volume both whole.
    for host, volume in (("10.10.0.10", "MB"), ("10.10.0.11", "MB"), ("10.10.0.12", "kB")):
        (row,) = _rows_with(shown, host)
        assert re.search(rf"^\d  {re.escape(host)} +[\d.]+ {volume} ", row), row
    if width == 80:
        assert "…" in shown  # the long destination names end in an ellipsis, not a new line
    assert ESC in screen.text(colours=True)  # colour on a terminal


@pytest.mark.parametrize("how", ["--no-color", "NO_COLOR"])
def test_no_colour_when_asked(
    demo: tuple[Path, Path], tmp_path: Path, screens: list[Screen], how: str
) -> None:
    out, _ = demo
    screen = _screen(screens, tmp_path, 100)
    argv = [SLUICE, "top", "--db", str(out), "--window", "all"]
    if how == "--no-color":
        screen.start([*argv, "--no-color"])
    else:
        screen.start(argv, env={"NO_COLOR": "1"})
    screen.wait()
    coloured = screen.text(colours=True)
    assert "10.10.0.10" in coloured and ESC not in coloured.replace(f"{ESC}0m", "")


def test_watch_shows_the_refresh_clock_and_quits_on_q(
    demo: tuple[Path, Path], tmp_path: Path, screens: list[Screen]
) -> None:
    out, config = demo
    screen = _screen(screens, tmp_path, 80)
    screen.start(
        [SLUICE, "top", "--db", str(out), "--watch", "0.3", "--window", "all", "--config",
         str(config)]
    )  # fmt: skip
    first = screen.wait_for(r"updated \d\d:\d\d:\d\d \w+, every 0.3 s")
    assert "q or Ctrl-C: quit" in first and "10.10.0.10" in first
    clock = re.search(r"updated (\d\d:\d\d:\d\d)", first)
    assert clock is not None
    screen.wait_for(rf"updated (?!{clock[1]})\d\d:\d\d:\d\d", timeout=10)  # it redraws
    screen.keys("q")
    screen.wait(timeout=10)
    assert not screen.text().count("Traceback")


@pytest.mark.parametrize("width", [80, 160])
def test_host_page(
    demo: tuple[Path, Path], tmp_path: Path, screens: list[Screen], width: int
) -> None:
    out, config = demo
    screen = _screen(screens, tmp_path, width, height=80)
    screen.start(
        [SLUICE, "host", "10.10.0.10", "--db", str(out), "--since", "all", "--config",
         str(config)]
    )  # fmt: skip
    shown = screen.wait()
    lines = shown.splitlines()
    assert lines[0].startswith("host 10.10.0.10, all: 2026-11-29 12:00:00 .. ")
    assert lines[0].rstrip().endswith("CET (packet time)")
    chart = [line for line in lines if "│" in line]
    assert len(chart) == 6 and "█" in "".join(chart)  # a compact chart, not one line per step
    assert re.search(r"peak [\d.]+ MB at \d\d:\d\d", shown)
    assert re.search(r"11-29 \d\d:\d\d:\d\d +medium +volume_threshold", shown)  # local time
    assert re.search(r"rule 'bulk upload': [\d.]+ MB outbound", shown)  # human units
    if width == 160:
        assert "within 10 min (limit 1.0 MB)" in shown
    assert re.search(r"upload +198\.51\.100\.20:8080 +6\.0 MB +PUT /backup/pacs-export", shown)
    assert re.search(r"ssh +198\.51\.100\.20:22 +1\.5 MB +SSH 2\.0 sftp: upload", shown)
    assert re.search(r"mail +198\.51\.100\.20:25 +71\.9 kB +a\.voorbeeld@zorg\.example", shown)
    assert len(lines) < 70  # readable on one screen, not 49 empty bar lines


def test_replay_shows_progress_on_a_terminal_and_leaves_a_clean_summary(
    tmp_path: Path, screens: list[Screen]
) -> None:
    from pcaps._lib.pcapfile import write_pcap
    from probes.pcap import PcapReader

    with PcapReader(str(PCAPS / "http-put-large" / "input.pcap")) as reader:
        frames = list(reader)
    span = frames[-1].ts - frames[0].ts + 1
    big = tmp_path / "big.pcap"  # the same upload again and again: long enough to watch
    write_pcap(
        big,
        frames[0].linktype,
        ((f.ts + k * span, f.data) for k in range(40) for f in frames),
    )
    screen = _screen(screens, tmp_path, 100)
    screen.start([SLUICE, "replay", str(big), "--out", str(tmp_path / "o")])
    bar = screen.wait_for(r"replay .*\d+% +[\d,]+ packets .*MB", timeout=60)
    assert re.search(r"-:--:--|\d+:\d\d:\d\d", bar)  # the time left
    final = screen.wait(timeout=120)
    assert "packets/s" in final and "%" not in final.split("sluice replay:")[0]  # bar gone
    screen2 = _screen(screens, tmp_path, 100)
    screen2.start([SLUICE, "replay", str(big), "--out", str(tmp_path / "o2"), "--no-progress"])
    assert "packets/s" in screen2.wait(timeout=120)
