"""The cubic schedule of gradual sparsity (Zhu & Gupta; LBC Eq. 6), shared by every method
that follows it (LBC's candidate removal, BAME's designated fraction)."""
import math
from typing import Optional


def removal_schedule_error(ti: float, tf: float) -> Optional[str]:
    """Why ``(ti, tf)`` is not a valid schedule window, or None.

    Args:
        ti (float): Start of the window.
        tf (float): End of the window.

    Returns:
        str or None: The error message, or None.
    """
    if ti < 0:
        return f'`ti` must be >= 0, got ti={ti}'
    if tf <= ti:
        return f'`tf` must be greater than `ti`, got ti={ti}, tf={tf}'
    return None


def window_progress(t: float, ti: float, tf: float) -> float:
    """``(t - ti) / (tf - ti)`` clipped to ``[0, 1]``. A window with ``tf <= ti`` is a step:
    1 from ``ti`` on (everything happens at once).

    Args:
        t (float): The current time.
        ti (float): Start of the window.
        tf (float): End of the window.

    Returns:
        float: The progress in ``[0, 1]``.
    """
    if t >= tf and t >= ti:
        return 1.0
    if t <= ti:
        return 0.0
    return (t - ti) / (tf - ti)


def cubic_remaining(t: float, ti: float, tf: float) -> float:
    """``(1 - progress) ** 3``: 1 up to ``ti``, falling to 0 at ``tf``.

    Args:
        t (float), ti (float), tf (float): As in :func:`window_progress`.

    Returns:
        float: The remaining fraction in ``[0, 1]``.
    """
    return (1.0 - window_progress(t, ti, tf))**3


def cubic_fraction(t: float, ti: float, tf: float) -> float:
    """``1 - (1 - (t - ti) / (tf - ti)) ** 3``: 0 up to ``ti``, 1 from ``tf`` on.

    Args:
        t (float), ti (float), tf (float): As in :func:`window_progress`.

    Returns:
        float: The fraction done in ``[0, 1]``.
    """
    return 1.0 - cubic_remaining(t, ti, tf)


def ceil_count(value: float, limit: int) -> int:
    """``ceil(value)`` clipped to ``[0, limit]``, robust to float error
    (``2.0000000000000004`` counts 2).

    Args:
        value (float): The value to round up.
        limit (int): Upper bound of the result.

    Returns:
        int: ``ceil(value)`` in ``[0, limit]``.
    """
    if value <= 0:
        return 0
    return min(int(limit), int(math.ceil(value - 1e-9)))


def cubic_removed(t: float, ti: float, tf: float, num_candidates: int) -> int:
    """Candidates removed per group by time ``t`` (LBC Eq. 6, cumulative form):
    ``ceil((C - 1) * cubic_fraction(t, ti, tf))``, none up to ``ti`` and exactly ``C - 1``
    from ``tf`` on.

    Args:
        t (float): The current time.
        ti (float): Start of the window.
        tf (float): End of the window.
        num_candidates (int): ``C``, the candidates per group.

    Returns:
        int: Candidates removed, in ``[0, C - 1]``.
    """
    return ceil_count((num_candidates - 1) * cubic_fraction(t, ti, tf), num_candidates - 1)
