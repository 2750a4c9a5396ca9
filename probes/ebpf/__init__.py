"""eBPF probe: per-host egress counters and a source block list in the kernel (XDP or TC).

Capture side. `EbpfProbe` attaches `sluice_meter.bpf.c` (compiled by bcc at start) to an
interface; `read_counters()` hands `HostCounter`s to the meter. Where eBPF cannot run,
`probe_unavailable_reason()` says why and the sensor meters from packets instead.
"""

from probes.ebpf.counters import (
    DEFAULT_HOME_NETS,
    CounterDeltas,
    CounterIncrements,
    CounterPoller,
    HostCounter,
    PairCounter,
    ProbeStats,
)
from probes.ebpf.loader import EbpfError, EbpfProbe, ProgramRunStats, probe_unavailable_reason

__all__ = [
    "DEFAULT_HOME_NETS",
    "CounterDeltas",
    "CounterIncrements",
    "CounterPoller",
    "EbpfError",
    "EbpfProbe",
    "HostCounter",
    "PairCounter",
    "ProbeStats",
    "ProgramRunStats",
    "probe_unavailable_reason",
]
