"""How Sluice draws on a terminal (CLI edge): one place for rich's console, tables and styles.

Tables never wrap: on a terminal, columns are sized to its width and long cells end in an
ellipsis (the full values are in --json and events.jsonl). Colour only on a terminal, never
with --no-color or $NO_COLOR (https://no-color.org); piped output is plain text and never cut.
Every cell is a `Text` built from `printable()`: nothing from the traffic is read as rich
markup or reaches the terminal as a control sequence.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sensor.metering.units import printable

PIPE_WIDTH = 1000  # columns when the output is not a terminal: a pipe or file is never cut
SEVERITY_STYLE = {
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def warn(line: str) -> None:
    """A warning for the operator: one line on stderr (the journal under systemd)."""
    print(f"sluice: warning: {line}", file=sys.stderr, flush=True)


def make_console(stream: IO[str], no_color: bool = False, width: int | None = None) -> Console:
    tty = stream.isatty()
    if width is None and not tty:
        width = PIPE_WIDTH
    plain = no_color or bool(os.environ.get("NO_COLOR")) or not tty
    return Console(
        file=stream,
        width=width,
        color_system=None if plain else "auto",
        no_color=plain,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )


def cell(value: object, style: str = "") -> Text:
    return Text(printable(value), style=style, no_wrap=True, overflow="ellipsis")


def wrapped(value: object, style: str = "") -> Text:
    """A cell of a `wrap` column: wraps at spaces, folds a word longer than the column."""
    return Text(printable(value), style=style, overflow="fold")


def severity(level: str) -> Text:
    return cell(level, SEVERITY_STYLE.get(level, ""))


def table(title: str | None = None) -> Table:
    """A compact table: header underlined, no borders, two spaces between columns."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
        title_style="bold",
    )


def column(
    t: Table, title: str, *, right: bool = False, ratio: int | None = None,
    min_width: int | None = None, max_width: int | None = None, wrap: bool = False,
) -> None:  # fmt: skip
    """A column whose cells stay on one line and end in an ellipsis when cut; `wrap`: its
    cells wrap at spaces instead (the row grows), for text that must be read whole."""
    t.add_column(
        title,
        justify="right" if right else "left",
        no_wrap=not wrap,
        overflow="fold" if wrap else "ellipsis",
        ratio=ratio,
        min_width=min_width,
        max_width=max_width,
    )


def freeze(t: Table, width: int) -> Table:
    """Sized for `width` columns: columns without a ratio keep their full width (at 80 columns
    and more a number or an address is never cut); the ratio columns (names, details) share
    what is left and end in an ellipsis. (rich alone would squeeze narrow columns to nothing
    before it cuts a long unwrappable one.)"""
    natural = []
    for col in t.columns:
        texts = [str(col.header), *(str(c) for c in col.cells)]
        natural.append(max(cell_len(line) for text in texts for line in text.split("\n")))
    gaps = 2 * (len(t.columns) - 1)  # one space of padding, one separator
    fixed = sum(
        min(n, col.max_width or n)
        for col, n in zip(t.columns, natural, strict=True)
        if col.ratio is None
    )
    flexible = [(col, n) for col, n in zip(t.columns, natural, strict=True) if col.ratio]
    left = max(0, width - fixed - gaps)
    ratios = sum(col.ratio or 0 for col, _ in flexible)
    for col, n in zip(t.columns, natural, strict=True):
        if col.ratio is None:
            col.min_width = col.width = min(n, col.max_width or n)
    # Flexible columns narrower than their share give the rest to the others.
    for col, n in sorted(flexible, key=lambda cn: cn[1]):
        share = left * (col.ratio or 0) // max(ratios, 1)
        col.width = max(min(n, share), col.min_width or 0)
        left -= col.width
        ratios -= col.ratio or 0
    return t


def lines(values: Sequence[str]) -> Text:
    """Several lines in one cell (the row grows), each cut rather than wrapped."""
    return Text("\n").join(cell(v) for v in values) if values else cell("-")
