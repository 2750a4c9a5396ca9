"""The few bpf(2) commands the loader needs that bcc 0.26's Python API lacks or gets wrong.

Capture side (probes/ebpf/). bcc compiles and loads; this module attaches through BPF links
(the kernel detaches a link when its last fd closes, so even a SIGKILLed sensor leaves no
program behind), reads maps in batches (bcc's batch helpers size per-CPU values for one CPU),
pins, queries attachments and turns on run-time statistics.

Only ``bpf_attr`` layouts from include/uapi/linux/bpf.h are used; enum values are the kernel's
ABI and never change. Errors are `OSError` with the kernel's errno.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

# __NR_bpf per architecture (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h).
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
# Larger than every bpf_attr member used here; the kernel accepts a zero tail.
_ATTR_SIZE = 128
# First batch size for map reads; grows when a hash bucket holds more (ENOSPC).
BATCH_ENTRIES = 4096


class BpfCmd(IntEnum):
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    OBJ_PIN = 6
    OBJ_GET = 7
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    MAP_LOOKUP_BATCH = 24
    LINK_CREATE = 28
    ENABLE_STATS = 32
    LINK_DETACH = 34


class AttachType(IntEnum):
    XDP = 37
    TCX_INGRESS = 46  # Linux 6.6+
    TCX_EGRESS = 47


class MapType(IntEnum):
    HASH = 1
    ARRAY = 2
    PERCPU_ARRAY = 6
    LRU_PERCPU_HASH = 10


# XDP attach modes (include/uapi/linux/if_link.h XDP_FLAGS_*); 0 = driver mode when the
# driver has it, else generic.
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
BPF_STATS_RUN_TIME = 0
# Map update flags.
BPF_ANY = 0
BPF_NOEXIST = 1


@dataclass(frozen=True, slots=True)
class MapInfo:
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_uint]


def syscall_number() -> int | None:
    return _SYS_BPF.get(platform.machine())


def _bpf(cmd: BpfCmd, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = syscall_number()
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2) number unknown for {platform.machine()}")
    ret = _libc.syscall(nr, int(cmd), ctypes.addressof(attr), _ATTR_SIZE)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd.name}): {os.strerror(err)}")
    return int(ret)


def _attr() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_ATTR_SIZE)


def map_lookup(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    """One value (all CPUs' copies for a per-CPU map), or None when the key is absent."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    attr = _attr()
    # struct { u32 map_fd; u64 key; u64 value; u64 flags } (key aligned to 8)
    struct.pack_into("=IxxxxQQQ", attr, 0, map_fd, ctypes.addressof(k), ctypes.addressof(v), 0)
    try:
        _bpf(BpfCmd.MAP_LOOKUP_ELEM, attr)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(map_fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    attr = _attr()
    struct.pack_into("=IxxxxQQQ", attr, 0, map_fd, ctypes.addressof(k), ctypes.addressof(v), flags)
    _bpf(BpfCmd.MAP_UPDATE_ELEM, attr)


def map_delete(map_fd: int, key: bytes) -> bool:
    """Delete one key; False when it was not there."""
    k = ctypes.create_string_buffer(key, len(key))
    attr = _attr()
    struct.pack_into("=IxxxxQ", attr, 0, map_fd, ctypes.addressof(k))
    try:
        _bpf(BpfCmd.MAP_DELETE_ELEM, attr)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def link_create(prog_fd: int, ifindex: int, attach_type: AttachType, flags: int = 0) -> int:
    """Attach a program to an interface as a BPF link; returns the link fd."""
    attr = _attr()
    struct.pack_into("=IIII", attr, 0, prog_fd, ifindex, int(attach_type), flags)
    return _bpf(BpfCmd.LINK_CREATE, attr)


def link_detach(link_fd: int) -> None:
    """Detach now, even if another process still holds a copy of the link fd."""
    attr = _attr()
    struct.pack_into("=I", attr, 0, link_fd)
    _bpf(BpfCmd.LINK_DETACH, attr)


def obj_pin(fd: int, path: str) -> None:
    raw = ctypes.create_string_buffer(os.fsencode(path))
    attr = _attr()
    struct.pack_into("=QI", attr, 0, ctypes.addressof(raw), fd)
    _bpf(BpfCmd.OBJ_PIN, attr)


def obj_get(path: str) -> int:
    raw = ctypes.create_string_buffer(os.fsencode(path))
    attr = _attr()
    struct.pack_into("=Q", attr, 0, ctypes.addressof(raw))
    return _bpf(BpfCmd.OBJ_GET, attr)


def map_info(fd: int) -> MapInfo:
    # struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16], ...
    info = ctypes.create_string_buffer(96)
    attr = _attr()
    struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr)
    mtype, _id, key_size, value_size, max_entries, flags = struct.unpack_from("=6I", info, 0)
    name = info.raw[24:40].split(b"\0", 1)[0].decode(errors="replace")
    return MapInfo(mtype, key_size, value_size, max_entries, flags, name)


def pinned_map_info(path: str) -> MapInfo:
    fd = obj_get(path)
    try:
        return map_info(fd)
    finally:
        os.close(fd)


def map_lookup_batch(
    map_fd: int, key_size: int, value_size: int, batch: int = BATCH_ENTRIES
) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a hash map, read `batch` entries per syscall.

    `value_size` is what the kernel copies per entry: for per-CPU maps that is
    round_up(value, 8) * possible CPUs. Entries the program adds or evicts meanwhile may or
    may not appear, as with any read of a live map.
    """
    token_in = ctypes.create_string_buffer(8)
    token_out = ctypes.create_string_buffer(8)
    first = True
    while True:
        keys = ctypes.create_string_buffer(key_size * batch)
        values = ctypes.create_string_buffer(value_size * batch)
        attr = _attr()
        # struct { in_batch, out_batch, keys, values; u32 count, map_fd; u64 elem_flags, flags }
        struct.pack_into(
            "=QQQQII",
            attr,
            0,
            0 if first else ctypes.addressof(token_in),
            ctypes.addressof(token_out),
            ctypes.addressof(keys),
            ctypes.addressof(values),
            batch,
            map_fd,
        )
        done = False
        try:
            _bpf(BpfCmd.MAP_LOOKUP_BATCH, attr)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # one hash bucket holds more than `batch` entries
                batch *= 2
                continue
            if exc.errno != errno.ENOENT:  # ENOENT = no more entries after these
                raise
            done = True
        count = struct.unpack_from("=I", attr, 32)[0]
        for i in range(count):
            yield (
                keys.raw[i * key_size : (i + 1) * key_size],
                values.raw[i * value_size : (i + 1) * value_size],
            )
        if done:
            return
        ctypes.memmove(token_in, token_out, 8)
        first = False


def prog_query_count(ifindex: int, attach_type: AttachType) -> int:
    """How many programs are attached at (ifindex, attach_type), for mprog hooks such as tcx."""
    attr = _attr()
    # struct { target_fd, attach_type, query_flags, attach_flags; u64 prog_ids; u32 count }
    struct.pack_into("=IIIIQI", attr, 0, ifindex, int(attach_type), 0, 0, 0, 0)
    try:
        _bpf(BpfCmd.PROG_QUERY, attr)
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # hook has never been used on this device
            return 0
        raise
    return int(struct.unpack_from("=I", attr, 24)[0])


def enable_run_time_stats() -> int:
    """Turn on per-program run_cnt/run_time_ns until the returned fd is closed (Linux 5.8+);
    the same as sysctl kernel.bpf_stats_enabled=1 but undone even if the process dies."""
    attr = _attr()
    struct.pack_into("=I", attr, 0, BPF_STATS_RUN_TIME)
    return _bpf(BpfCmd.ENABLE_STATS, attr)


def prog_run_stats(prog_fd: int) -> tuple[int, int]:
    """(run_cnt, run_time_ns) of a loaded program, from /proc/self/fdinfo (0, 0 when stats
    are off)."""
    cnt = ns = 0
    with open(f"/proc/self/fdinfo/{prog_fd}", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key == "run_cnt":
                cnt = int(value)
            elif key == "run_time_ns":
                ns = int(value)
    return cnt, ns
