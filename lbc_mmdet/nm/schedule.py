"""Gradual schedules (Zhu & Gupta's cubic schedule, LBC Eq. 6)."""
import math
from typing import Optional


def removal_schedule_error(ti: float, tf: float) -> Optional[str]:
    """Why ``(ti, tf)`` is not a valid removal window, or None."""
    if ti < 0:
        return f'`ti` must be >= 0, got ti={ti}'
    if tf <= ti:
        return f'`tf` must be greater than `ti`, got ti={ti}, tf={tf}'
    return None


def cubic_fraction(t: float, ti: float, tf: float) -> float:
    """``1 - (1 - (t - ti) / (tf - ti)) ** 3`` clipped to ``[0, 1]``: 0 up to ``ti``, 1
    from ``tf`` on."""
    if t <= ti:
        return 0.0
    if t >= tf:
        return 1.0
    return 1.0 - (1.0 - (t - ti) / (tf - ti))**3


def cubic_removed(t: float, ti: float, tf: float, num_candidates: int) -> int:
    """Candidates removed per group by time ``t`` (LBC Eq. 6, cumulative form).

    ``ceil((C - 1) * (1 - (1 - (t - ti) / (tf - ti)) ** 3))`` between ``ti`` and ``tf``,
    none up to ``ti`` and exactly ``C - 1`` from ``tf`` on.
    """
    if t <= ti:
        return 0
    if t >= tf:
        return num_candidates - 1
    value = (num_candidates - 1) * cubic_fraction(t, ti, tf)
    # guard against 2.0000000000000004 -> 3
    return min(num_candidates - 1, int(math.ceil(value - 1e-9)))
