"""Shared test fixtures. Privileged tests say why they cannot run; under CI=true that is a
failure, never a silent skip (handbook: "Honest tests")."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"


def cannot_run(reason: str) -> None:
    """Skip locally, fail in CI: a privileged test that cannot run there is a defect."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"privileged test cannot run in CI: {reason}")
    pytest.skip(reason)


def require_root_netns() -> None:
    if os.geteuid() != 0:
        cannot_run("needs root to create network namespaces")
    if shutil.which("ip") is None:
        cannot_run("needs iproute2 (`ip`)")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        cannot_run(f"`ip netns` does not work here: {probe.stderr.strip()}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        cannot_run(f"needs `{name}` (installed by `make setup`)")
    assert path is not None
    return path


def require_module(name: str) -> Any:
    """Import `name`, or say why the test cannot run (a dev dependency `make setup` installs)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        cannot_run(f"needs the Python module {name} (installed by `make setup`): {exc}")
        raise  # unreachable: cannot_run raises


@pytest.fixture
def privileged_netns() -> None:
    require_root_netns()


@pytest.fixture(autouse=True)
def _keep_umask() -> Any:
    """`sluice` sets a private umask (0077) when it starts; tests that call its main() in
    this process must not leave it to the tests after them."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)
