"""Where the `signatures/` data lives (STYLE.md habit 10: data, not code).

Start-up code (the runtime, `load_categories`) asks `find_signatures()` for the directory and
reads its files from there, so every installation finds one consistent set of signature files.
The search order:

1. explicit: `--signatures DIR` on the command line, else `signatures_dir` in the config file;
2. the `SLUICE_SIGNATURES` environment variable;
3. the installed data directory: a wheel carries `signatures/` as data files that pip puts
   into the installation's data scheme, `<prefix>/share/sluice/signatures` (pyproject.toml,
   `[tool.setuptools.data-files]`);
4. the source tree: `signatures/` next to `sensor/` in a checkout, which is also where an
   editable install (`make setup`) runs from.

A directory named by the operator (1, 2) that is missing or unreadable is an error: never a
silent fall back to other data. Of 3 and 4 the first directory that exists wins; when none does,
the error lists every place searched. A missing file inside the chosen directory is an error
too: files from different directories are never mixed.

Step 3 is skipped when `sensor` itself runs from a checkout: that code's data is the checkout's
`signatures/`, and a copy installed elsewhere (an older wheel, or data files that some setuptools
versions copy on an editable install) may be stale.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ENV_VAR = "SLUICE_SIGNATURES"
INSTALLED_SUBDIR = Path("share", "sluice", "signatures")  # matches pyproject.toml data-files

# The directory holding the `sensor` package: site-packages for an installed wheel, the
# repository root for a checkout or an editable install.
_CODE_ROOT = Path(__file__).resolve().parents[2]

# How far the installation prefix (where pip puts a wheel's data files) lies above the
# directory holding `sensor/`, in the install schemes pip uses: 0 for `pip install --target
# DIR` (pip moves the data into DIR itself), 2 for <prefix>/Lib/site-packages (Windows) and
# `--home` (<home>/lib/python), 3 for <prefix>/lib/pythonX.Y/site-packages (venv, system,
# --user, --prefix) and Debian's /usr/lib/python3/dist-packages. A test checks this against
# sysconfig's schemes.
PREFIX_DEPTHS = (0, 2, 3)


class SignaturesError(Exception):
    """No usable signatures directory or file; the message names the path and the search."""


@dataclass(frozen=True, slots=True)
class SignaturesDir:
    """The chosen signatures directory, how it was chosen, and what was searched for it."""

    path: Path
    origin: str  # e.g. "--signatures", "$SLUICE_SIGNATURES", "the installed data directory"
    searched: tuple[Path, ...] = ()

    def file(self, name: str) -> Path:
        """The path of `name` in this directory; an error when it is not a readable file."""
        path = self.path / name
        if not path.exists():
            raise SignaturesError(f"no {name} in signatures directory {self._how()}")
        if not path.is_file():
            raise SignaturesError(f"{path} is not a file (signatures directory {self._how()})")
        if not os.access(path, os.R_OK):
            raise SignaturesError(f"{path} is not readable (signatures directory {self._how()})")
        return path

    def _how(self) -> str:
        how = f"{self.path} from {self.origin}"
        before = [str(p) for p in self.searched if p != self.path]
        if before:
            how += "; searched before it: " + ", ".join(before)
        return how


def installed_candidates(code_root: Path = _CODE_ROOT) -> tuple[Path, ...]:
    """Where an installed wheel's signatures can be, nearest prefix first."""
    bases = [code_root, *code_root.parents]
    return tuple(bases[d] / INSTALLED_SUBDIR for d in PREFIX_DEPTHS if d < len(bases))


def is_checkout(code_root: Path = _CODE_ROOT) -> bool:
    """True when `sensor` runs from a source tree (checkout or editable install)."""
    return (code_root / "pyproject.toml").is_file() and (code_root / "signatures").is_dir()


def find_signatures(
    explicit: str | Path | None = None,
    *,
    origin: str = "--signatures",
    environ: Mapping[str, str] | None = None,
    code_root: Path = _CODE_ROOT,
) -> SignaturesDir:
    """The signatures directory, in the order of the module docstring.

    `explicit` is the operator's choice and `origin` names where it came from (the option or
    the config key); `environ` defaults to the process environment.
    """
    if explicit is not None:
        return _checked(Path(explicit), origin)
    env = os.environ if environ is None else environ
    from_env = env.get(ENV_VAR, "")
    if from_env:
        return _checked(Path(from_env), f"${ENV_VAR}")
    searched: list[Path] = []
    candidates: list[tuple[Path, str]] = []
    if not is_checkout(code_root):
        candidates += [(p, "the installed data directory") for p in installed_candidates(code_root)]
    candidates.append((code_root / "signatures", "the source tree"))
    for path, how in candidates:
        searched.append(path)
        if path.is_dir():
            return _checked(path, how, tuple(searched))
    raise SignaturesError(
        "no signatures directory found (searched: "
        + ", ".join(str(p) for p in searched)
        + f"); set signatures_dir in the config, pass --signatures DIR or set {ENV_VAR}"
    )


def _checked(path: Path, origin: str, searched: tuple[Path, ...] = ()) -> SignaturesDir:
    if not path.exists():
        raise SignaturesError(f"signatures directory {path} (from {origin}) does not exist")
    if not path.is_dir():
        raise SignaturesError(f"signatures directory {path} (from {origin}) is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise SignaturesError(f"signatures directory {path} (from {origin}) is not readable")
    return SignaturesDir(path, origin, searched)


def read_signatures_file(
    name: str,
    path: str | Path | None,
    signatures: str | Path | None,
    origin: str,
    error: type[Exception],
    what: str,
) -> tuple[str, str]:
    """The text of one signatures file and the name to report it by. `path` names the file
    itself; without it, `name` is read from the signatures directory (`signatures`, the
    operator's, else the default search). Every failure is `error` naming the file; `what`
    says what the file is ("categories", "file-type table")."""
    if path is None:
        try:
            path = find_signatures(signatures, origin=origin).file(name)
        except SignaturesError as exc:
            raise error(str(exc)) from None
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except FileNotFoundError:
        raise error(f"{p}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read the {what} ({exc})") from None


def parse_signatures_toml(
    text: str, source: str, build: Callable[[dict[str, Any]], T], error: type[Exception]
) -> T:
    """A signatures file's text parsed as TOML and built by `build`; every failure is
    `error` prefixed with `source`, the file's name."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML ({exc})") from None
    try:
        return build(raw)
    except error as exc:
        raise error(f"{source}: {exc}") from None
