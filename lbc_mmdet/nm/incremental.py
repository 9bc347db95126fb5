"""Incremental N:M sparsity: how many weights of every group of M are pruned at time ``t``
(MaxQ's incremental schedule, Xiang et al., CVPR 2024), and the soft masks that weigh
the kept weights by their rank along an axis of the weight tensor (MaxQ's multi-axis
query). Plain torch, no framework.

Schedule: the *remaining* fraction ``r(t)`` of the prunable weights falls from 1 (up to
``ti``) to 0 (from ``tf`` on); with ``p = (t - ti) / (tf - ti)``:

- ``linear``: ``r = 1 - p``;
- ``cos``:    ``r = cos(p * pi / 2)``;
- ``exp``:    ``r = 1 - (1 - exp(-k p)) / (1 - exp(-k))`` (``k = exp_rate``).

The number pruned per group is ``floor(P * (1 - r))`` with ``P = M - N`` prunable weights
per group: 0 up to ``ti``, exactly ``M - N`` from ``tf`` on.
"""
import math
from typing import Tuple

import torch

from .schedule import window_progress

#: The shapes of the incremental schedule.
INCREMENTAL_SCHEDULES: Tuple[str, ...] = ('linear', 'cos', 'exp')


def remaining_fraction(t: float, ti: float, tf: float, schedule: str = 'linear',
                       exp_rate: float = 1.5) -> float:
    """``r(t)`` of the module docstring: 1 up to ``ti``, 0 from ``tf`` on.

    Args:
        t (float): The current time (iteration or epoch).
        ti (float): Start of the pruning window.
        tf (float): End of the pruning window.
        schedule (str): One of :data:`INCREMENTAL_SCHEDULES`. Defaults to ``'linear'``.
        exp_rate (float): ``k`` of the ``exp`` schedule, > 0. Defaults to 1.5.

    Returns:
        float: ``r(t)`` in ``[0, 1]``.
    """
    if schedule not in INCREMENTAL_SCHEDULES:
        raise ValueError(f'unknown incremental schedule {schedule!r}; known: '
                         f'{list(INCREMENTAL_SCHEDULES)}')
    p = window_progress(t, ti, tf)
    if p >= 1.0:
        return 0.0
    if p <= 0.0:
        return 1.0
    if schedule == 'linear':
        return 1.0 - p
    if schedule == 'cos':
        return math.cos(p * math.pi / 2.0)
    if exp_rate <= 0:
        raise ValueError(f'`exp_rate` must be > 0, got {exp_rate}')
    return 1.0 - (1.0 - math.exp(-exp_rate * p)) / (1.0 - math.exp(-exp_rate))


def floor_count(value: float, limit: int) -> int:
    """``floor(value)`` clipped to ``[0, limit]``, robust to float error
    (``0.9999999999999998`` counts 1).

    Args:
        value (float): The value to floor.
        limit (int): Upper bound of the result.

    Returns:
        int: ``floor(value)`` in ``[0, limit]``.
    """
    if value <= 0:
        return 0
    return min(int(limit), int(math.floor(value + 1e-9)))


def incremental_pruned(t: float, ti: float, tf: float, prunable: int,
                       schedule: str = 'linear', exp_rate: float = 1.5) -> int:
    """Weights pruned per group at time ``t``: ``floor(prunable * (1 - r(t)))``, 0 up to
    ``ti`` and ``prunable`` (``M - N``) from ``tf`` on.

    Args:
        t (float): The current time (iteration or epoch).
        ti (float): Start of the pruning window.
        tf (float): End of the pruning window.
        prunable (int): Prunable weights per group, ``M - N``.
        schedule (str): One of :data:`INCREMENTAL_SCHEDULES`. Defaults to ``'linear'``.
        exp_rate (float): ``k`` of the ``exp`` schedule, > 0. Defaults to 1.5.

    Returns:
        int: Weights pruned per group, in ``[0, prunable]``.
    """
    r = remaining_fraction(t, ti, tf, schedule, exp_rate)
    return floor_count(prunable * (1.0 - r), prunable)


@torch.no_grad()
def axis_soft_mask(magnitude: torch.Tensor, below: int, tau: float) -> torch.Tensor:
    """The soft mask of one query axis, row by row: the ``below`` smallest entries of each
    row get 0, the others ``sigmoid((x - threshold) / tau)``, the threshold being the mean
    of the ``below``-th and ``below + 1``-th smallest values of the row (an entry equal
    to the threshold gets 0).

    Args:
        magnitude (Tensor): ``[R, L]`` non-negative values (``|w|``).
        below (int): Entries per row below the threshold, ``1 <= below < L``.
        tau (float): Sigmoid temperature, in the values' unit.

    Returns:
        Tensor: ``[R, L]`` float32, in ``{0} U (0.5, 1)``.
    """
    length = magnitude.shape[1]
    if not 1 <= below < length:
        raise ValueError(f'`below` must be in [1, {length}), got {below}')
    x = magnitude.detach().to(torch.float32)
    low = torch.kthvalue(x, below, dim=1, keepdim=True).values
    # the (below + 1)-th smallest without a second selection: ``low`` again when more
    # than ``below`` entries are <= it (a tie across the two ranks), else the smallest
    # entry above it
    above = x > low
    next_up = torch.where(above, x, float('inf')).amin(dim=1, keepdim=True)
    tied = (x.shape[1] - above.sum(dim=1, keepdim=True)) > below
    high = torch.where(tied, low, next_up)
    threshold = (low + high) / 2.0
    soft = torch.sigmoid((x - threshold) / tau)
    return torch.where(x > threshold, soft, torch.zeros_like(soft))


@torch.no_grad()
def multi_axis_soft_factor(weight: torch.Tensor, n: int, m: int,
                           tau: float) -> torch.Tensor:
    """``1 + S_filter + S_kernel`` shaped like ``weight`` (float32): the soft masks of
    two query axes, each with the pattern's pruned fraction ``(M - N) / M`` below its
    threshold.

    - filter axis: each output filter's ``|w|`` (``[O, I * kh * kw]``, or the rows of
      a Linear weight);
    - kernel axis: each kernel position's ``|w|`` over all filters and input channels
      (``[kh * kw, O * I]``); 0 for a 1x1 convolution and for a Linear weight.

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight.
        n (int): Non-zeros per group.
        m (int): Group size.
        tau (float): Sigmoid temperature of :func:`axis_soft_mask`.

    Returns:
        Tensor: float32 factor shaped like ``weight``, in ``[1, 3)``.
    """
    a = weight.detach().abs().to(torch.float32)
    o = a.shape[0]
    per_filter = a[0].numel()
    factor = 1.0 + axis_soft_mask(a.reshape(o, per_filter), (m - n) * per_filter // m,
                                  tau).reshape(a.shape)
    if a.dim() == 4 and a.shape[2] * a.shape[3] > 1:
        positions = a.shape[2] * a.shape[3]
        cols = o * a.shape[1]
        kernel = axis_soft_mask(a.reshape(cols, positions).t(), (m - n) * cols // m, tau)
        factor += kernel.t().reshape(a.shape)
    return factor
