"""Find the kernel headers bcc compiles against, or say exactly why there are none.

Capture side (probes/ebpf/). bcc 0.26 looks for a full tree at /lib/modules/$(uname -r)/build
(or build + source). Debian splits its headers: ``linux-headers-<ver>-<flavour>`` holds only
the generated files (autoconf.h, generated UAPI) and a one-line Makefile that includes
``linux-headers-<ver>-common``, which holds everything else. Debian's kernel image package adds
the /lib/modules/<ver>/source link that joins them; a custom kernel linked to Debian headers
(`make setup-kernel-headers`) has only ``build``, and bcc then fails on
``./include/linux/kconfig.h``. For that layout we point bcc at the common tree
(BCC_KERNEL_SOURCE) and add the flavour tree's generated include directories as cflags. Our
program uses only stable UAPI structs, so headers of another kernel version are fine.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

MODULES_DIR = Path("/lib/modules")
IKHEADERS = Path("/sys/kernel/kheaders.tar.xz")
# Kernel ARCH directory names for `platform.machine()`.
_KERNEL_ARCH = {
    "x86_64": "x86",
    "aarch64": "arm64",
    "riscv64": "riscv",
    "ppc64le": "powerpc",
    "s390x": "s390",
}
_INCLUDE_LINE = re.compile(r"^include\s+(\S+)/Makefile\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BuildEnv:
    """What bcc needs besides the program: extra cflags and environment for the compile."""

    cflags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""


class HeadersMissing(Exception):
    """No kernel headers bcc could use; the message says what was looked at."""


def find_build_env(release: str | None = None, modules_dir: Path = MODULES_DIR) -> BuildEnv:
    release = release or platform.release()
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return BuildEnv(description=f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']}")
    build = modules_dir / release / "build"
    source = modules_dir / release / "source"
    if (build / "include" / "linux" / "kconfig.h").is_file():
        return BuildEnv(description=f"full tree at {build}")
    if source.is_dir() and (source / "include" / "linux" / "kconfig.h").is_file():
        return BuildEnv(description=f"split tree {build} + {source}")
    common = _debian_common_tree(build)
    if common is not None:
        arch = _KERNEL_ARCH.get(platform.machine(), platform.machine())
        real = build.resolve()
        cflags = (
            f"-I{real}/include",
            f"-I{real}/include/generated/uapi",
            f"-I{real}/arch/{arch}/include/generated",
            f"-I{real}/arch/{arch}/include/generated/uapi",
        )
        return BuildEnv(
            cflags=cflags,
            env={"BCC_KERNEL_SOURCE": str(common)},
            description=f"Debian split headers {real} + {common}",
        )
    if IKHEADERS.exists():
        return BuildEnv(description=f"in-kernel headers {IKHEADERS}")
    if build.exists():
        raise HeadersMissing(
            f"{build} exists but holds no kernel headers bcc can use "
            f"(no include/linux/kconfig.h there, no {source}, not a Debian split tree)"
        )
    raise HeadersMissing(
        f"no kernel headers for {release}: {build} does not exist and the kernel has no "
        f"{IKHEADERS}; install linux-headers-{release} or run `make setup` to link the newest "
        "installed linux-headers tree there"
    )


def _debian_common_tree(build: Path) -> Path | None:
    """The -common tree a Debian flavour tree's Makefile includes, if it is complete."""
    try:
        makefile = (build / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    match = _INCLUDE_LINE.search(makefile)
    if match is None:
        return None
    common = Path(match.group(1))
    if not (common / "include" / "linux" / "kconfig.h").is_file():
        return None
    if not (build / "include" / "generated" / "autoconf.h").is_file():
        return None
    return common
