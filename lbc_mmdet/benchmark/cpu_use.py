"""How much of the machine other processes took while a measurement ran.

The load average cannot tell: it counts the measuring process's own threads (a benchmark
with 2 torch threads on 2 cores ends at a load of about 2 by itself) and it trails the
past minutes. :class:`CpuWatch` reads the kernel's CPU counters (``/proc/stat``) and this
process's own CPU time at the start and at the end: what the CPUs were busy with beyond
this process is what other processes took (in cores, averaged over the measurement), and
the hypervisor's ``steal`` time is what the virtual machine did not get.
"""
import os
import time
from typing import Dict, Optional, Tuple

#: ``/proc/stat`` ``cpu`` line fields counted as busy (user nice system irq softirq)
_BUSY = (0, 1, 2, 5, 6)
_STEAL = 7


def _proc_stat() -> Optional[Tuple[float, float]]:
    """``(busy, steal)`` CPU seconds of the whole machine since boot, or None where there
    is no ``/proc/stat``."""
    try:
        with open('/proc/stat') as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        tick = float(os.sysconf('SC_CLK_TCK'))
    except (OSError, ValueError, AttributeError):
        return None
    busy = sum(fields[i] for i in _BUSY if i < len(fields))
    steal = fields[_STEAL] if len(fields) > _STEAL else 0.0
    return busy / tick, steal / tick


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuWatch:
    """Start at construction; :meth:`stop` returns what the machine did meanwhile:
    ``wall_s``, ``own_cores`` (this process), ``others_cores`` (every other process) and
    ``steal_cores`` (time the hypervisor gave elsewhere), each averaged over ``wall_s``;
    the last two are None where the platform has no ``/proc/stat``."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._own = _own_cpu()
        self._stat = _proc_stat()

    def stop(self) -> Dict[str, Optional[float]]:
        wall = max(time.monotonic() - self._wall, 1e-9)
        own = _own_cpu() - self._own
        result = dict(wall_s=wall, own_cores=own / wall, others_cores=None,
                      steal_cores=None)
        stat = _proc_stat()
        if stat is not None and self._stat is not None:
            busy = stat[0] - self._stat[0]
            result['others_cores'] = max(busy - own, 0.0) / wall
            result['steal_cores'] = max(stat[1] - self._stat[1], 0.0) / wall
        return result
