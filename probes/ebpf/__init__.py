"""eBPF probe: per-host egress counters and a source block list in the kernel (XDP or TC).

Capture side. `EbpfProbe` attaches `sluice_meter.bpf.c` (compiled by bcc at start) to an
interface; the live runtime reads its maps (`read_raw`) before every meter bucket closes and
feeds the increments (`RawDeltas`) to the meter. Where eBPF cannot run,
`probe_unavailable_reason()` says why and the sensor meters from packets instead.
"""

from probes.ebpf.counters import (
    DEFAULT_HOME_NETS,
    CounterDeltas,
    HostCounter,
    PairCounter,
    ProbeStats,
    RawDeltas,
)
from probes.ebpf.loader import EbpfError, EbpfProbe, ProgramRunStats, probe_unavailable_reason

__all__ = [
    "DEFAULT_HOME_NETS",
    "CounterDeltas",
    "EbpfError",
    "EbpfProbe",
    "HostCounter",
    "PairCounter",
    "ProbeStats",
    "ProgramRunStats",
    "RawDeltas",
    "probe_unavailable_reason",
]
