from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensor.config import ConfigError, load_config
from sensor.config.signatures import (
    ENV_VAR,
    INSTALLED_SUBDIR,
    PREFIX_DEPTHS,
    SignaturesError,
    find_signatures,
)
from sensor.metering.categories import CategoryError, load_categories

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pcaps" / "http-post-raw" / "input.pcap"


def _categories(directory: Path, db_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "categories.toml").write_text(
        f'id = "{db_id}"\nversion = 1\n[[category]]\nid = "file_hosting"\n'
        'domains = ["files.example"]\n'
    )
    # Every signatures directory is whole: the file-type table comes from the same place.
    (directory / "filetypes.toml").write_bytes(
        (ROOT / "signatures" / "filetypes.toml").read_bytes()
    )
    return directory


def _installed_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A wheel install in a venv: (dir holding sensor/, <prefix>/share/sluice/signatures)."""
    prefix = tmp_path / "prefix"
    code_root = prefix / "lib" / "python3.11" / "site-packages"
    code_root.mkdir(parents=True)
    return code_root, _categories(prefix / INSTALLED_SUBDIR, "installed")


# -- search order ---------------------------------------------------------------------------


def test_explicit_wins_over_environment_and_defaults(tmp_path: Path) -> None:
    code_root, _ = _installed_layout(tmp_path)
    mine = _categories(tmp_path / "mine", "mine")
    env = {ENV_VAR: str(_categories(tmp_path / "env", "env"))}
    found = find_signatures(mine, origin="--signatures", environ=env, code_root=code_root)
    assert found.path == mine and found.origin == "--signatures"


def test_environment_wins_over_installed_data(tmp_path: Path) -> None:
    code_root, _ = _installed_layout(tmp_path)
    env = {ENV_VAR: str(_categories(tmp_path / "env", "env"))}
    found = find_signatures(environ=env, code_root=code_root)
    assert found.path == tmp_path / "env" and found.origin == f"${ENV_VAR}"


def test_empty_environment_variable_is_unset(tmp_path: Path) -> None:
    code_root, installed = _installed_layout(tmp_path)
    assert find_signatures(environ={ENV_VAR: ""}, code_root=code_root).path == installed


def test_installed_data_wins_over_a_signatures_dir_beside_the_code(tmp_path: Path) -> None:
    code_root, installed = _installed_layout(tmp_path)
    _categories(code_root / "signatures", "beside")  # not a checkout: no pyproject.toml
    found = find_signatures(environ={}, code_root=code_root)
    assert found.path == installed and found.origin == "the installed data directory"
    shutil.rmtree(installed)
    found = find_signatures(environ={}, code_root=code_root)
    assert found.path == code_root / "signatures" and found.origin == "the source tree"


def test_pip_target_layout(tmp_path: Path) -> None:
    # `pip install --target DIR`: the data scheme's share/ lands in DIR next to sensor/.
    installed = _categories(tmp_path / INSTALLED_SUBDIR, "target")
    assert find_signatures(environ={}, code_root=tmp_path).path == installed


def test_a_checkout_uses_its_own_signatures(tmp_path: Path) -> None:
    # A stale copy in a prefix above the checkout must not shadow the checkout's files.
    checkout = tmp_path / "lib" / "src" / "sluice"
    _categories(checkout / "signatures", "checkout")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'sluice'\n")
    _categories(tmp_path / INSTALLED_SUBDIR, "stale")
    found = find_signatures(environ={}, code_root=checkout)
    assert found.path == checkout / "signatures" and found.origin == "the source tree"


def test_this_checkout_resolves_to_its_signatures() -> None:
    found = find_signatures(environ={})
    assert found.path == ROOT / "signatures"
    assert load_categories(found.file("categories.toml")).id == "sluice-destination-categories"


def test_prefix_depths_cover_the_install_schemes() -> None:
    depths = set()
    for scheme in sysconfig.get_scheme_names():
        paths = sysconfig.get_paths(scheme)
        purelib, data = Path(paths["purelib"]), Path(paths["data"])
        if data in purelib.parents:
            depths.add(len(purelib.relative_to(data).parts))
    assert depths and depths <= set(PREFIX_DEPTHS)


# -- clear errors ---------------------------------------------------------------------------


def test_nothing_found_lists_every_place_searched(tmp_path: Path) -> None:
    code_root = tmp_path / "prefix" / "lib" / "python3.11" / "site-packages"
    code_root.mkdir(parents=True)
    with pytest.raises(SignaturesError) as info:
        find_signatures(environ={}, code_root=code_root)
    message = str(info.value)
    assert str(tmp_path / "prefix" / INSTALLED_SUBDIR) in message
    assert str(code_root / "signatures") in message
    assert ENV_VAR in message and "--signatures" in message and "signatures_dir" in message


@pytest.mark.parametrize("source", ["explicit", "environment"])
def test_a_named_directory_that_is_missing_never_falls_back(tmp_path: Path, source: str) -> None:
    code_root, _ = _installed_layout(tmp_path)
    missing = tmp_path / "typo"
    explicit, env = (missing, {}) if source == "explicit" else (None, {ENV_VAR: str(missing)})
    with pytest.raises(SignaturesError) as info:
        find_signatures(explicit, origin="--signatures", environ=env, code_root=code_root)
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert ("--signatures" if source == "explicit" else ENV_VAR) in str(info.value)


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    plain = tmp_path / "categories.toml"
    plain.write_text("")
    with pytest.raises(SignaturesError, match="is not a directory"):
        find_signatures(plain, environ={})


def test_missing_file_names_the_directory_and_the_search(tmp_path: Path) -> None:
    code_root, installed = _installed_layout(tmp_path)
    (installed / "categories.toml").unlink()
    found = find_signatures(environ={}, code_root=code_root)
    with pytest.raises(SignaturesError) as info:
        found.file("categories.toml")
    message = str(info.value)
    assert f"no categories.toml in signatures directory {installed}" in message
    assert "from the installed data directory" in message
    assert str(code_root.parents[1] / INSTALLED_SUBDIR) in message  # searched before it


def test_load_categories_reports_the_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = _categories(tmp_path / "env", "from-env")
    monkeypatch.setenv(ENV_VAR, str(chosen))
    assert load_categories().id == "from-env"
    assert load_categories(signatures=ROOT / "signatures").id == "sluice-destination-categories"
    (chosen / "categories.toml").write_text("id = 'x'\nversion = 'two'\n")
    with pytest.raises(
        CategoryError, match=re.escape(f"{chosen / 'categories.toml'}: version must")
    ):
        load_categories()
    (chosen / "categories.toml").unlink()
    (chosen / "categories.toml").mkdir()  # unreadable as a file
    with pytest.raises(CategoryError, match="is not a file"):
        load_categories()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(CategoryError, match=re.escape(f"{tmp_path / 'gone'} (from ${ENV_VAR})")):
        load_categories()


# -- the config key -------------------------------------------------------------------------


def test_config_key_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "sluice.toml"
    path.parent.mkdir()
    path.write_text('signatures_dir = "sigs"\n[flows]\nmax_flows = 10\n')
    assert load_config(path).signatures_dir == tmp_path / "etc" / "sigs"
    path.write_text(f'signatures_dir = "{tmp_path / "abs"}"\n')
    assert load_config(path).signatures_dir == tmp_path / "abs"
    assert load_config(None).signatures_dir is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("signatures_dir = 3\n", "signatures_dir must be a directory path"),
        ('signatures_dir = ""\n', "signatures_dir must be a directory path"),
        ('signatures_dir = ["a"]\n', "signatures_dir must be a directory path"),
        ('[flows]\nsignatures_dir = "a"\n', "unknown key flows.signatures_dir"),
        ('signature_dir = "a"\n', "known: home_net, signatures_dir"),
    ],
)
def test_config_key_validation(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


# -- a real wheel, installed elsewhere ------------------------------------------------------

# What a wheel build reads; copied so the build's build/ and *.egg-info stay out of the tree.
BUILD_INPUTS = ("pyproject.toml", "README.md", "sensor", "probes", "signatures")
PROBE = """
import json, sensor
from sensor.config.signatures import find_signatures
from sensor.metering.categories import load_categories
found = find_signatures()
db = load_categories()
print(json.dumps({"sensor": sensor.__file__, "dir": str(found.path), "origin": found.origin,
                  "id": db.id, "entries": len(db)}))
"""


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="sluice-wheel-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(scratch: Path) -> Path:
    source = scratch / "source"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    # Offline and quick: the venv's own setuptools, no isolated build environment.
    _pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(scratch / "dist"),
        str(source),
    )
    (built,) = (scratch / "dist").glob("sluice-*.whl")
    names = zipfile.ZipFile(built).namelist()
    assert any(n.endswith(".data/data/share/sluice/signatures/categories.toml") for n in names)
    return built


def _probe(python: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", PROBE], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.defpath, "PYTHONNOUSERSITE": "1", "LC_ALL": "C.UTF-8", **extra}


def test_wheel_installed_with_target_finds_its_signatures(wheel: Path, scratch: Path) -> None:
    target = scratch / "target"
    _pip("install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel))
    result = _probe(sys.executable, _clean_env(PYTHONPATH=str(target)), scratch)
    assert Path(result["sensor"]).is_relative_to(target)
    assert result["dir"] == str(target / INSTALLED_SUBDIR)
    assert result["origin"] == "the installed data directory"
    assert result["id"] == "sluice-destination-categories" and result["entries"] > 50
    # The whole command line, from the installed copy: the meter needs the categories.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensor.cli.main",
            "replay",
            str(SAMPLE),
            "--quiet",
            "--out",
            str(scratch / "replay"),
        ],
        env=_clean_env(PYTHONPATH=str(target)),
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (scratch / "replay" / "events.jsonl").stat().st_size > 0


def test_wheel_installed_in_a_venv_finds_its_signatures(wheel: Path, scratch: Path) -> None:
    venv = scratch / "venv"
    done = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # --ignore-installed: otherwise pip would first uninstall this venv's own (editable) sluice.
    _pip(
        "install",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        "-q",
        "--prefix",
        str(venv),
        str(wheel),
    )
    result = _probe(str(venv / "bin" / "python"), _clean_env(), scratch)
    assert Path(result["sensor"]).is_relative_to(venv)
    assert result["dir"] == str(venv / INSTALLED_SUBDIR)
    assert result["id"] == "sluice-destination-categories"
