"""The production install (`make install`, Makefile) and the runtime dependencies it installs.

`make install` itself runs apt and pip (slow, network), so the tests run its file-copying part
`make install-files` and `make uninstall` with DESTDIR, read `make -n install` for what the rest
would do, and check the wheel's declared dependencies against what the code imports.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT, require_tool

# The runtime set of `make install`; the development set (`make setup`) is larger.
RUNTIME_DEBIAN = {
    "libpcap0.8", "libmagic1", "python3-venv", "python3-bpfcc", "bpfcc-tools",
    "linux-headers-amd64", "nftables", "python3-nftables", "iproute2", "systemd", "ethtool",
}  # fmt: skip
DEVELOPMENT_ONLY_DEBIAN = {
    "openssh-server", "dnsmasq-base", "tcpreplay", "gcc", "tshark", "tmux", "crowdsec",
    "crowdsec-firewall-bouncer",
}  # fmt: skip
# Distribution name -> the top-level module it provides.
IMPORT_NAME = {
    "communityid": "communityid",
    "brotli": "brotli",
    "python-magic": "magic",
    "cryptography": "cryptography",
    "maxminddb": "maxminddb",
    "iptocc": "iptocc",
    "pcapy-ng": "pcapy",
    "rich": "rich",
    "numpy": "numpy",
    "zstandard": "zstandard",
    "python-stdnum": "stdnum",
    "pyahocorasick": "ahocorasick",
    "hyperscan": "hyperscan",
}
FROM_DEBIAN = {"bcc", "nftables"}  # python3-bpfcc, python3-nftables: system site-packages
TEST_AND_TOOL_ONLY = {"scapy", "dpkt", "pyshark"}
FIRST_PARTY = {"sensor", "probes"}
_PACKAGE_LIST = re.compile(r"for p in ([^;]*); do")


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    argv = [require_tool("make"), "--no-print-directory", "-C", str(cwd), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def install_files(dest: Path, example: Path, *extra: str) -> None:
    make("install-files", f"DESTDIR={dest}", f"EXAMPLE_CONFIG={example}", *extra)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_install_files_puts_each_file_in_place_with_its_mode(tmp_path: Path) -> None:
    dest, example = tmp_path / "dest", tmp_path / "example.toml"
    example.write_text("# example\n")
    install_files(dest, example)
    shipped = {
        "etc/systemd/system/sluice@.service": ("systemd/sluice@.service", 0o644),
        "usr/lib/sysusers.d/sluice.conf": ("systemd/sluice.sysusers", 0o644),
        "usr/lib/tmpfiles.d/sluice.conf": ("systemd/sluice.tmpfiles", 0o644),
        "opt/sluice/README.md": ("README.md", 0o644),  # the unit's Documentation=
    }
    for installed, (source, want) in shipped.items():
        assert (dest / installed).read_bytes() == (ROOT / source).read_bytes(), installed
        assert mode(dest / installed) == want, installed
    config = dest / "etc/sluice/sluice.toml"
    assert config.read_text() == "# example\n"
    assert (mode(config), mode(config.parent)) == (0o640, 0o750)
    for doc in (ROOT / "docs").glob("*.md"):  # the README's links work on the appliance
        assert (dest / "opt/sluice/docs" / doc.name).read_bytes() == doc.read_bytes()
    link = dest / "usr/local/bin/sluice"
    assert link.is_symlink() and str(link.readlink()) == "/opt/sluice/venv/bin/sluice"


def test_a_second_install_keeps_the_operators_config(tmp_path: Path) -> None:
    dest, example = tmp_path / "dest", tmp_path / "example.toml"
    example.write_text("# example\n")
    install_files(dest, example)
    config = dest / "etc/sluice/sluice.toml"
    config.write_text("# edited by the operator\n")
    example.write_text("# a newer example\n")
    install_files(dest, example)
    assert config.read_text() == "# edited by the operator\n"


def test_installed_files_name_the_chosen_prefix_and_config_directory(tmp_path: Path) -> None:
    dest, example = tmp_path / "dest", tmp_path / "example.toml"
    example.write_text("")
    install_files(dest, example, "PREFIX=/srv/sluice", "SYSCONFDIR=/etc/sluice-lab")
    unit = (dest / "etc/systemd/system/sluice@.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/srv/sluice/venv/bin/sluice run ")
    assert " --config /etc/sluice-lab/sluice.toml " in exec_start
    assert "/opt/sluice" not in unit
    tmpfiles = (dest / "usr/lib/tmpfiles.d/sluice.conf").read_text()
    assert "z /etc/sluice-lab/sluice.toml 0640 root sluice -" in tmpfiles
    assert (dest / "etc/sluice-lab/sluice.toml").exists()
    assert (dest / "srv/sluice/README.md").exists()


def test_uninstall_removes_what_install_put_and_keeps_config_and_data(tmp_path: Path) -> None:
    dest, example = tmp_path / "dest", tmp_path / "example.toml"
    example.write_text("")
    install_files(dest, example)
    (dest / "opt/sluice/venv/bin").mkdir(parents=True)  # what install-venv would make
    wants = dest / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir()
    (wants / "sluice@eth1.service").symlink_to("/etc/systemd/system/sluice@.service")
    data = dest / "var/lib/sluice/eth1/sluice.db"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"counts")
    make("uninstall", f"DESTDIR={dest}")
    for gone in (
        "etc/systemd/system/sluice@.service",
        "etc/systemd/system/multi-user.target.wants/sluice@eth1.service",
        "usr/lib/sysusers.d/sluice.conf",
        "usr/lib/tmpfiles.d/sluice.conf",
        "opt/sluice",
    ):
        assert not (dest / gone).is_symlink() and not (dest / gone).exists(), gone
    assert (dest / "etc/sluice/sluice.toml").exists()
    assert data.read_bytes() == b"counts"


def test_the_install_recipe_installs_the_runtime_only() -> None:
    recipe = make("-n", "install").stdout
    (packages,) = [set(m.split()) for m in _PACKAGE_LIST.findall(recipe)]
    assert packages == RUNTIME_DEBIAN
    assert "policy-rc.d" in recipe  # no package's service starts during the install
    assert "ln -sfn" in recipe  # kernel headers for bcc where the kernel has no package
    assert "-m venv --system-site-packages" in recipe
    pip = next(line for line in recipe.splitlines() if "pip install" in line)
    assert " -e " not in pip and "[dev]" not in pip and "'/opt/sluice/venv'" in recipe
    development = make("-n", "setup-debian").stdout
    (dev_packages,) = [set(m.split()) for m in _PACKAGE_LIST.findall(development)]
    assert dev_packages >= DEVELOPMENT_ONLY_DEBIAN
    assert not DEVELOPMENT_ONLY_DEBIAN & packages


def test_a_staged_install_touches_nothing_outside_destdir(tmp_path: Path) -> None:
    recipe = make("-n", "install", f"DESTDIR={tmp_path}").stdout
    assert "apt-get" not in recipe
    links = [line for line in recipe.splitlines() if "ln -sfn" in line]
    assert links and all(f"'{tmp_path}/" in line for line in links)  # no kernel-header link
    assert f"venv='{tmp_path}/opt/sluice/venv'" in recipe


def declared_runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match is not None, requirement
        names.add(match.group(0).lower().replace("_", "-"))
    return names


def imported_top_level_modules() -> dict[str, Path]:
    """Absolute imports of every module in sensor/ and probes/: top-level name -> a file."""
    found: dict[str, Path] = {}
    for package in sorted(FIRST_PARTY):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.partition(".")[0], path)
    return found


def test_the_runtime_dependencies_are_exactly_what_the_code_imports() -> None:
    declared = declared_runtime_dependencies()
    assert not declared & TEST_AND_TOOL_ONLY
    assert declared <= IMPORT_NAME.keys(), "map the new dependency to its module in IMPORT_NAME"
    third_party = {
        name: path
        for name, path in imported_top_level_modules().items()
        if name not in sys.stdlib_module_names and name not in FIRST_PARTY | {"__future__"}
    }
    assert not third_party.keys() & TEST_AND_TOOL_ONLY, third_party
    undeclared = third_party.keys() - FROM_DEBIAN - {IMPORT_NAME[d] for d in declared}
    assert not undeclared, {name: str(third_party[name]) for name in undeclared}
    assert {IMPORT_NAME[d] for d in declared} <= third_party.keys()  # nothing declared unused
