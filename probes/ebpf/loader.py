"""Load, attach and read the eBPF meter (`sluice_meter.bpf.c`).

Capture side (probes/ebpf/). An interface name and home_net come in; per-host counters
(`HostCounter`), per-destination counters (`PairCounter`) and a kernel block list go out.

Theory of operation
-------------------
`EbpfProbe.attach()` (or ``with EbpfProbe(...)``):

1. makes sure the pin directory is on a bpffs (mounting /sys/fs/bpf when nothing is mounted
   there, as systemd does at boot) and that maps already pinned there have the layout this
   version expects, else it stops with a clear `EbpfError`;
2. compiles the C source with bcc (headers found by `kernel_build`), creating the pinned maps or
   reusing them, so counters and the block list survive a restart of the sensor;
3. writes home_net into `config` (not pinned: configuration is rewritten at every start)
   and refreshes the program's copy of the pinned block list (`blockctl`);
4. attaches through a BPF link: XDP (any mode the driver offers, or the one asked for) or TC
   via tcx (Linux 6.6+). The kernel removes a link when its last fd closes, so the program is
   detached when the sensor exits by any path, SIGKILL included. On kernels without tcx
   (Debian 12's 6.1) TC falls back to a clsact direct-action filter installed with `tc`; that
   one is removed by `detach()`, by `__exit__` and at interpreter exit, but not after SIGKILL.

Any failure inside `attach()` undoes what was done before raising. `detach()` is idempotent and
never raises. Reads are batched (BPF_MAP_LOOKUP_BATCH) and per-CPU copies are summed here.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import ipaddress
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from probes.ebpf import bpf_syscall as sysbpf
from probes.ebpf.bpf_syscall import AttachType, MapType
from probes.ebpf.counters import (
    ADDR_LEN,
    BLOCKCTL_LEN,
    COUNT_LEN,
    DEFAULT_HOME_NETS,
    DROP_COUNT_LEN,
    PAIR_KEY_LEN,
    STAT_LEN,
    STAT_NAMES,
    HostCounter,
    IpAddress,
    PairCounter,
    ProbeStats,
    decode_addr,
    decode_dst_net,
    decode_u64,
    encode_addr,
    encode_blockctl,
    encode_config,
    parse_cpu_list,
    parse_home_nets,
    sum_percpu_counts,
    sum_percpu_u64,
)
from probes.ebpf.kernel_build import BuildEnv, HeadersMissing, find_build_env
from probes.ebpf.netns import inside_netns

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("sluice_meter.bpf.c")
BPFFS_ROOT = "/sys/fs/bpf"
PIN_ROOT = BPFFS_ROOT + "/sluice"
# Bumped whenever a pinned map's key/value layout changes; part of every pin name.
PIN_LAYOUT = "v1"
# Map capacities (entries). Per-CPU maps cost entries x CPUs x 16 bytes.
MAX_HOSTS = 16384
MAX_PAIRS = 65536
MAX_BLOCKED = 4096
# Priority of our clsact filter (fallback TC attach); `tc filter replace` at this priority
# also takes over a filter left behind by a sensor that was killed.
TC_FILTER_PREF = 0x5C1
TC_FILTER_HANDLE = "0x1"
# Lines of compiler/verifier output kept in an EbpfError.
ERROR_TAIL_LINES = 25
_CPU_POSSIBLE = "/sys/devices/system/cpu/possible"
_ZERO_KEY = bytes(4)
_BPF_FS_TYPE = "bpf"
# Capability bits (include/uapi/linux/capability.h).
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_CAP_BPF = 39

Mode = Literal["xdp", "tc"]
TcAttach = Literal["auto", "tcx", "clsact"]
XdpMode = Literal["auto", "native", "generic"]
Direction = Literal["egress", "ingress"]

# Pinned maps: name -> (map type, key size, value size per CPU copy).
_PINNED: dict[str, tuple[MapType, int, int]] = {
    "hosts": (MapType.LRU_PERCPU_HASH, ADDR_LEN, COUNT_LEN),
    "pairs": (MapType.LRU_PERCPU_HASH, PAIR_KEY_LEN, COUNT_LEN),
    "blocked": (MapType.HASH, ADDR_LEN, DROP_COUNT_LEN),
    "blockctl": (MapType.ARRAY, 4, BLOCKCTL_LEN),
    "stats": (MapType.PERCPU_ARRAY, 4, STAT_LEN),
}
_XDP_FLAGS = {
    "auto": 0,
    "native": sysbpf.XDP_FLAGS_DRV_MODE,
    "generic": sysbpf.XDP_FLAGS_SKB_MODE,
}


class EbpfError(Exception):
    """The eBPF probe cannot be set up or used; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ProgramRunStats:
    """Kernel run-time statistics of the attached program (zero unless bpf_stats is on)."""

    run_count: int
    run_time_ns: int

    @property
    def ns_per_run(self) -> float:
        return self.run_time_ns / self.run_count if self.run_count else 0.0


def default_pin_dir(iface: str, mode: str, netns: str | None = None) -> str:
    name = f"{iface}-{mode}" if netns is None else f"{netns}-{iface}-{mode}"
    return f"{PIN_ROOT}/{name}"


def pin_path(pin_dir: str, name: str) -> str:
    return f"{pin_dir}/{name}_{PIN_LAYOUT}"


def possible_cpus() -> int:
    with open(_CPU_POSSIBLE, encoding="ascii") as fh:
        return len(parse_cpu_list(fh.read()))


class EbpfProbe:
    """The eBPF meter on one interface. Use as a context manager, or attach()/detach()."""

    def __init__(
        self,
        iface: str,
        mode: Mode = "xdp",
        home_nets: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = (
            DEFAULT_HOME_NETS
        ),
        pin_dir: str | None = None,
        *,
        netns: str | None = None,
        direction: Direction = "egress",
        tc_attach: TcAttach = "auto",
        xdp_mode: XdpMode = "auto",
        max_hosts: int = MAX_HOSTS,
        max_pairs: int = MAX_PAIRS,
        max_blocked: int = MAX_BLOCKED,
    ) -> None:
        if mode not in ("xdp", "tc"):
            raise ValueError(f"mode must be 'xdp' or 'tc', not {mode!r}")
        if direction not in ("egress", "ingress"):
            raise ValueError(f"direction must be 'egress' or 'ingress', not {direction!r}")
        if tc_attach not in ("auto", "tcx", "clsact"):
            raise ValueError(f"tc_attach must be 'auto', 'tcx' or 'clsact', not {tc_attach!r}")
        if xdp_mode not in _XDP_FLAGS:
            raise ValueError(f"xdp_mode must be one of {sorted(_XDP_FLAGS)}, not {xdp_mode!r}")
        for label, size in (("max_hosts", max_hosts), ("max_pairs", max_pairs)):
            if size < 1:
                raise ValueError(f"{label} must be at least 1")
        if max_blocked < 1:
            raise ValueError("max_blocked must be at least 1")
        self.home_nets = parse_home_nets(home_nets)
        self._config = encode_config(self.home_nets)  # validates the per-family limit
        self.iface = iface
        self.mode: Mode = mode
        self.netns = netns
        self.direction: Direction = direction
        self.tc_attach: TcAttach = tc_attach
        self.xdp_mode: XdpMode = xdp_mode
        self.pin_dir = (pin_dir or default_pin_dir(iface, mode, netns)).rstrip("/")
        # Pin paths become C string literals and bcc section names (split at ':').
        if any(ch in self.pin_dir for ch in '":\\\n\t ') or not self.pin_dir.startswith("/"):
            raise ValueError(
                f"pin_dir must be an absolute path without quotes, ':' or spaces: {self.pin_dir!r}"
            )
        self.max_hosts = max_hosts
        self.max_pairs = max_pairs
        self.max_blocked = max_blocked
        # How the program is attached once attach() succeeded: "xdp", "tcx" or "clsact".
        self.attach_kind: str | None = None
        self._bpf: Any = None
        self._prog_fd = -1
        self._links: list[int] = []
        self._clsact_created = False
        self._map_fds: dict[str, int] = {}
        self._ncpus = 0
        self._atexit_registered = False

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> EbpfProbe:
        return self.attach()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    @property
    def attached(self) -> bool:
        return self.attach_kind is not None

    def attach(self) -> EbpfProbe:
        if self._bpf is not None:
            return self
        try:
            self._attach()
        except BaseException:
            self.detach()
            raise
        return self

    def _attach(self) -> None:
        self._ncpus = possible_cpus()
        ensure_bpffs(self.pin_dir)
        os.makedirs(self.pin_dir, exist_ok=True)
        check_pinned_layout(self.pin_dir)
        defines = [
            f"-DSLUICE_MAX_HOSTS={self.max_hosts}",
            f"-DSLUICE_MAX_PAIRS={self.max_pairs}",
            f"-DSLUICE_MAX_BLOCKED={self.max_blocked}",
        ]
        defines += [f'-DSLUICE_PIN_{n.upper()}="{pin_path(self.pin_dir, n)}"' for n in _PINNED]
        self._bpf = compile_program(defines)
        for name in (*_PINNED, "config"):
            self._map_fds[name] = int(self._bpf.get_table(name.encode()).map_fd)
        sysbpf.map_update(self._map_fds["config"], _ZERO_KEY, self._config)
        # The block list may have been pinned by the previous run: refresh the program's copy.
        self._sync_blockctl()
        self._prog_fd = load_function(self._bpf, self.mode)
        with inside_netns(self.netns):
            try:
                ifindex = socket.if_nametoindex(self.iface)
            except OSError:
                where = f"network namespace {self.netns}" if self.netns else "this namespace"
                raise EbpfError(f"no interface {self.iface!r} in {where}") from None
            if self.mode == "xdp":
                self._attach_xdp(ifindex)
            else:
                self._attach_tc(ifindex)
        log.info(
            "eBPF %s attached to %s (%s), maps pinned in %s",
            self.mode,
            self.iface,
            self.attach_kind,
            self.pin_dir,
        )

    def _attach_xdp(self, ifindex: int) -> None:
        try:
            link = sysbpf.link_create(
                self._prog_fd, ifindex, AttachType.XDP, _XDP_FLAGS[self.xdp_mode]
            )
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise EbpfError(
                    f"{self.iface} already has an XDP program (remove it with "
                    f"`ip link set dev {self.iface} xdp off` if it is a stale one)"
                ) from None
            if exc.errno == errno.EOPNOTSUPP:
                raise EbpfError(
                    f"{self.iface}: XDP mode {self.xdp_mode!r} is not supported by its driver"
                ) from None
            raise EbpfError(f"cannot attach XDP to {self.iface}: {exc.strerror}") from None
        self._links.append(link)
        self.attach_kind = "xdp"

    def _attach_tc(self, ifindex: int) -> None:
        if self.tc_attach in ("auto", "tcx"):
            hook = AttachType.TCX_EGRESS if self.direction == "egress" else AttachType.TCX_INGRESS
            try:
                self._links.append(sysbpf.link_create(self._prog_fd, ifindex, hook))
                self.attach_kind = "tcx"
                return
            except OSError as exc:
                # EINVAL: this kernel has no tcx (before 6.6).
                if self.tc_attach == "tcx" or exc.errno != errno.EINVAL:
                    raise EbpfError(
                        f"cannot attach TC (tcx) to {self.iface}: {exc.strerror}"
                    ) from None
                log.info("kernel has no tcx; attaching a clsact filter with tc instead")
        self._attach_clsact()

    def _tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["tc", *(("-n", self.netns) if self.netns else ()), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise EbpfError("`tc` (iproute2) is needed to attach TC on this kernel") from None
        if check and done.returncode != 0:
            raise EbpfError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
        return done

    def _attach_clsact(self) -> None:
        qdisc = self._tc("qdisc", "add", "dev", self.iface, "clsact", check=False)
        if qdisc.returncode == 0:
            self._clsact_created = True
        elif "File exists" not in qdisc.stderr and "Exclusivity flag" not in qdisc.stderr:
            raise EbpfError(f"cannot add clsact qdisc on {self.iface}: {qdisc.stderr.strip()}")
        # tc takes the program from a pin; the filter keeps it alive once attached.
        prog_pin = f"{self.pin_dir}/tc_prog_{os.getpid()}"
        sysbpf.obj_pin(self._prog_fd, prog_pin)
        try:
            self._tc("filter", "replace", "dev", self.iface, self.direction,
                     "pref", str(TC_FILTER_PREF), "handle", TC_FILTER_HANDLE,
                     "bpf", "direct-action", "object-pinned", prog_pin)  # fmt: skip
        finally:
            os.unlink(prog_pin)
        self.attach_kind = "clsact"
        # Not a BPF link: nothing removes it if we die, so remove it at interpreter exit.
        atexit.register(self.detach)
        self._atexit_registered = True

    def detach(self) -> None:
        """Detach the program and release everything; the pinned maps stay. Never raises."""
        for link in self._links:
            try:
                sysbpf.link_detach(link)
            except OSError as exc:  # e.g. the interface is gone and took the link with it
                log.debug("link detach: %s", exc)
            os.close(link)
        self._links.clear()
        if self.attach_kind == "clsact":
            self._detach_clsact()
        if self._atexit_registered:
            atexit.unregister(self.detach)
            self._atexit_registered = False
        if self._bpf is not None:
            try:
                self._bpf.cleanup()
            except Exception as exc:  # bcc cleanup is best effort; fds close with us anyway
                log.warning("bcc cleanup failed: %s", exc)
            self._bpf = None
        self._map_fds.clear()
        self._prog_fd = -1
        self.attach_kind = None

    def _detach_clsact(self) -> None:
        try:
            pref = str(TC_FILTER_PREF)
            self._tc("filter", "del", "dev", self.iface, self.direction, "pref", pref,
                     "handle", TC_FILTER_HANDLE, "bpf", check=False)  # fmt: skip
            if self._clsact_created:
                others = [
                    self._tc("filter", "show", "dev", self.iface, hook, check=False).stdout
                    for hook in ("ingress", "egress")
                ]
                if not any(o.strip() for o in others):
                    self._tc("qdisc", "del", "dev", self.iface, "clsact", check=False)
        except Exception as exc:
            log.warning("removing the clsact filter from %s failed: %s", self.iface, exc)
        self._clsact_created = False

    def remove_pins(self) -> None:
        """Delete this probe's pinned maps (counters and block list) and its pin directory."""
        remove_pins(self.pin_dir)

    # -- reading -------------------------------------------------------------------------

    def _fd(self, name: str) -> int:
        if self._bpf is None:
            raise EbpfError("the eBPF probe is not attached")
        return self._map_fds[name]

    def read_counters(self) -> list[HostCounter]:
        """Per internal source: outbound packets and IP bytes since the map was created."""
        fd = self._fd("hosts")
        out = [
            HostCounter(str(decode_addr(k)), *sum_percpu_counts(v, self._ncpus))
            for k, v in sysbpf.map_lookup_batch(fd, ADDR_LEN, COUNT_LEN * self._ncpus)
        ]
        out.sort(key=lambda c: (-c.bytes, c.ip))
        return out

    def read_pairs(self) -> list[PairCounter]:
        """Per (internal source, destination /24 or /64): outbound packets and IP bytes."""
        fd = self._fd("pairs")
        out = []
        for k, v in sysbpf.map_lookup_batch(fd, PAIR_KEY_LEN, COUNT_LEN * self._ncpus):
            packets, total = sum_percpu_counts(v, self._ncpus)
            src = decode_addr(k[:ADDR_LEN])
            dst_net = decode_dst_net(k[ADDR_LEN:], isinstance(src, ipaddress.IPv4Address))
            out.append(PairCounter(str(src), dst_net, packets, total))
        out.sort(key=lambda c: (-c.bytes, c.src, c.dst_net))
        return out

    def read_raw(self, name: Literal["hosts", "pairs"]) -> list[tuple[bytes, int, int]]:
        """(key bytes, packets, IP bytes) of every entry of the hosts or pairs map, per-CPU
        copies summed, keys not decoded (see counters.source_bytes / dst_net_bytes)."""
        key_len = ADDR_LEN if name == "hosts" else PAIR_KEY_LEN
        ncpus = self._ncpus
        return [
            (k, *sum_percpu_counts(v, ncpus))
            for k, v in sysbpf.map_lookup_batch(self._fd(name), key_len, COUNT_LEN * ncpus)
        ]

    def read_stats(self) -> ProbeStats:
        fd = self._fd("stats")
        values = []
        for slot in range(len(STAT_NAMES)):
            raw = sysbpf.map_lookup(fd, slot.to_bytes(4, sys.byteorder), STAT_LEN * self._ncpus)
            values.append(sum_percpu_u64(raw, self._ncpus) if raw else 0)
        return ProbeStats(*values)

    def program_run_stats(self) -> ProgramRunStats:
        if self._prog_fd < 0:
            raise EbpfError("the eBPF probe is not attached")
        return ProgramRunStats(*sysbpf.prog_run_stats(self._prog_fd))

    # -- block list ------------------------------------------------------------------------

    def block(self, ip: str | IpAddress) -> None:
        """Drop every packet from `ip` in the kernel (idempotent; keeps the drop count).

        Change the block list only through `block`/`unblock` of one probe (one writer): the
        program scans a copy of a short list (`blockctl`) that these methods rewrite; an entry
        written to the pinned map by anything else takes effect at the next attach.
        """
        key = encode_addr(ip)
        try:
            sysbpf.map_update(self._fd("blocked"), key, bytes(DROP_COUNT_LEN), sysbpf.BPF_NOEXIST)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return
            if exc.errno == errno.E2BIG:
                raise EbpfError(f"block list is full ({self.max_blocked} sources)") from None
            raise EbpfError(f"cannot block {ip}: {exc.strerror}") from None
        self._sync_blockctl()

    def _sync_blockctl(self) -> None:
        """Rewrite the program's copy of the block list (see `struct sluice_blockctl`)."""
        keys = [k for k, _ in sysbpf.map_lookup_batch(self._fd("blocked"), ADDR_LEN,
                                                       DROP_COUNT_LEN)]  # fmt: skip
        sysbpf.map_update(self._fd("blockctl"), _ZERO_KEY, encode_blockctl(sorted(keys)))

    def unblock(self, ip: str | IpAddress) -> bool:
        """Let `ip` through again; False when it was not blocked."""
        removed = sysbpf.map_delete(self._fd("blocked"), encode_addr(ip))
        self._sync_blockctl()
        return removed

    def blocked(self) -> dict[str, int]:
        """Blocked sources and the packets dropped from each since it was blocked."""
        return {
            str(decode_addr(k)): decode_u64(v)
            for k, v in sysbpf.map_lookup_batch(self._fd("blocked"), ADDR_LEN, DROP_COUNT_LEN)
        }


# -- setup steps (also used by probe_unavailable_reason) ----------------------------------


def ensure_bpffs(path: str) -> None:
    """`path` must be on a bpffs; mount one at /sys/fs/bpf when nothing is mounted there."""
    if _bpffs_mount_for(path) is not None:
        return
    if (path + "/").startswith(BPFFS_ROOT + "/") and _bpffs_mount_for(BPFFS_ROOT) is None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"bpf", BPFFS_ROOT.encode(), b"bpf", 0, None) != 0:
            err = ctypes.get_errno()
            raise EbpfError(f"cannot mount bpffs on {BPFFS_ROOT}: {os.strerror(err)}")
        log.info("mounted bpffs on %s", BPFFS_ROOT)
        return
    raise EbpfError(
        f"pin directory {path} is not on a bpffs; mount one (`mount -t bpf bpf {BPFFS_ROOT}`) "
        "or choose a pin_dir under one"
    )


def _bpffs_mount_for(path: str) -> str | None:
    best: str | None = None
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 3 or fields[2] != _BPF_FS_TYPE:
                continue
            mnt = fields[1].replace("\\040", " ")
            if (path.rstrip("/") + "/").startswith(mnt.rstrip("/") + "/") and (
                best is None or len(mnt) > len(best)
            ):
                best = mnt
    return best


def check_pinned_layout(pin_dir: str) -> None:
    """Refuse pins made by another layout instead of letting the program misread them."""
    for name, (mtype, key_size, value_size) in _PINNED.items():
        path = pin_path(pin_dir, name)
        if not os.path.exists(path):
            continue
        try:
            info = sysbpf.pinned_map_info(path)
        except OSError as exc:
            raise EbpfError(f"{path} exists but is not a usable BPF map: {exc.strerror}") from None
        if (info.type, info.key_size, info.value_size) != (int(mtype), key_size, value_size):
            raise EbpfError(
                f"{path} has another layout (type {info.type}, key {info.key_size} B, value "
                f"{info.value_size} B; expected type {int(mtype)}, key {key_size} B, value "
                f"{value_size} B); remove the pins of {pin_dir} to start from zero"
            )


def remove_pins(pin_dir: str) -> None:
    for name in _PINNED:
        with suppress(FileNotFoundError):
            os.unlink(pin_path(pin_dir, name))
    try:
        os.rmdir(pin_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
            raise


@contextmanager
def _stderr_into(sink: list[str]) -> Iterator[None]:
    """Collect what the C++ side of bcc (clang, the verifier log) writes to fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-ERROR_TAIL_LINES:])


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def compile_program(
    defines: list[str], build: BuildEnv | None = None, source: Path = SOURCE
) -> Any:
    """Compile `source` with bcc; an EbpfError carries clang's messages."""
    try:
        import bcc
    except Exception as exc:
        raise EbpfError(f"bcc is not importable ({exc}); install python3-bpfcc") from None
    try:
        build = build or find_build_env()
    except HeadersMissing as exc:
        raise EbpfError(str(exc)) from None
    captured: list[str] = []
    failure: Exception | None = None
    with _environment(build.env), _stderr_into(captured):
        try:
            bpf = bcc.BPF(src_file=os.fsencode(source), cflags=[*build.cflags, *defines])
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise EbpfError(
            f"bcc could not compile {source.name} against {build.description}: {failure}\n"
            f"{_tail(''.join(captured))}"
        )
    if captured and captured[0].strip():
        log.debug("bcc compile output:\n%s", captured[0])
    return bpf


def load_function(bpf: Any, mode: str) -> int:
    """Load (verify) the entry point for `mode` (`sluice_xdp` or `sluice_tc`); returns its fd."""
    import bcc

    if mode == "xdp":
        name, prog_type = "sluice_xdp", bcc.BPF.XDP
    else:
        name, prog_type = "sluice_tc", bcc.BPF.SCHED_CLS
    captured: list[str] = []
    failure: Exception | None = None
    with _stderr_into(captured):
        try:
            fn = bpf.load_func(name.encode(), prog_type)
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise EbpfError(f"the kernel refused {name}: {failure}\n{_tail(''.join(captured))}")
    return int(fn.fd)


def _capabilities_ok() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            eff = next(int(ln.split()[1], 16) for ln in fh if ln.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return os.geteuid() == 0

    def has(bit: int) -> bool:
        return bool(eff >> bit & 1)

    return has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_NET_ADMIN))


def probe_unavailable_reason(*, trial_load: bool = True) -> str | None:
    """Why the eBPF probe cannot run here, or None when it can.

    With `trial_load` the real program is compiled and both entry points are loaded (not
    attached, nothing pinned): the verifier is the only reliable judge (~1 s).
    """
    prefix = "eBPF probe unavailable, metering from packets instead: "
    if sys.platform != "linux":
        return prefix + f"eBPF needs Linux, this is {sys.platform}"
    if sysbpf.syscall_number() is None:
        return prefix + f"bpf(2) is not known on {os.uname().machine}"
    if not _capabilities_ok():
        return prefix + "needs root, or CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)"
    try:
        import bcc  # noqa: F401
    except Exception as exc:
        return prefix + f"bcc is not importable ({exc}); install python3-bpfcc (`make setup`)"
    try:
        find_build_env()
    except HeadersMissing as exc:
        return prefix + str(exc)
    if not os.path.isdir(BPFFS_ROOT):
        return prefix + f"{BPFFS_ROOT} does not exist (kernel without bpffs)"
    if not trial_load:
        return None
    try:
        defines = ["-DSLUICE_NO_PIN", "-DSLUICE_MAX_HOSTS=1", "-DSLUICE_MAX_PAIRS=1",
                   "-DSLUICE_MAX_BLOCKED=1"]  # fmt: skip
        bpf = compile_program(defines)
        try:
            for mode in ("xdp", "tc"):
                load_function(bpf, mode)
        finally:
            bpf.cleanup()
    except EbpfError as exc:
        return prefix + str(exc)
    return None
