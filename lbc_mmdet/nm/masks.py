"""N:M masks in the grouped ``[G, M]`` layout."""
import torch

from .grouping import from_groups, to_groups
from .kernels import FUSED_MAX_M, fused_available, topn_mask_fused
from .ranks import pairwise_topn_along


def candidate_mask(alive: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """LBC's Eq. 8: weight ``i`` of a group is kept iff it belongs to an alive candidate.

    Args:
        alive (Tensor): ``[G, C]`` bool, the surviving candidates of each group.
        table (Tensor): ``[C, M]`` bool membership table (:func:`combination_table`).

    Returns:
        Tensor: ``[G, M]`` bool mask.
    """
    return (alive.to(torch.float32) @ table.to(torch.float32)) > 0


def candidate_magnitude(groups: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Sum of ``|w|`` over each candidate: ``[G, C]``. A data-driven ranking of the
    candidates for layers whose scores cannot learn (frozen stages).

    Args:
        groups (Tensor): ``[G, M]`` weights.
        table (Tensor): ``[C, M]`` bool membership table (:func:`combination_table`).

    Returns:
        Tensor: ``[G, C]`` float32 sums.
    """
    return groups.detach().abs().to(torch.float32) @ table.to(torch.float32).t()


def topn_magnitude_mask(groups: torch.Tensor, n: int) -> torch.Tensor:
    """Keep the ``n`` largest ``|w|`` of each row (ties: lowest index first).

    Args:
        groups (Tensor): ``[G, M]`` weights.
        n (int): Non-zeros per group.

    Returns:
        Tensor: ``[G, M]`` bool mask with exactly ``n`` True per row.
    """
    order = torch.sort(groups.detach().abs(), dim=1, descending=True, stable=True)[1]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, order[:, :n], True)
    return mask


#: Up to this M, :func:`topn_magnitude_mask_like` ranks the entries of a group by pairwise
#: comparisons (:func:`.ranks.pairwise_topn_along`) of strided slices of the weight itself
#: (``M (M - 1) / 2`` comparisons, each over ``1 / M`` of the weights, and no grouped
#: copy); above it, ``N`` rounds of ``argmax`` over a grouped copy
#: (``N <= ARGMAX_ROUNDS_MAX_N``) or a sort. Measured on ResNet-50 layers
#: (docs/performance.md): pairwise is 2-6x faster at M = 4 and 8, slower at M = 16.
PAIRWISE_MAX_M = 8

#: Up to this N, the grouped path takes N rounds of ``argmax`` (each one pass over the
#: weights) instead of sorting every group.
ARGMAX_ROUNDS_MAX_N = 4


def topn_magnitude_mask_like(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """:func:`topn_magnitude_mask` of ``to_groups(weight, m)`` returned in the weight's own
    layout (bool, shaped like ``weight``; ties: the lowest index first, as the stable
    sort). Computed by pairwise ranks on the weight's layout for ``m <=
    PAIRWISE_MAX_M``; else by ``n`` rounds of ``argmax`` over the groups (first maximum
    on ties) for ``n <= ARGMAX_ROUNDS_MAX_N``, or a sort; where the fused kernels are
    enabled (:mod:`.kernels`) by one compiled pass. (A reduction along the strided group
    dimension of the weight itself was measured 3-4x slower for 3x3 convolutions than on
    a contiguous ``[G, M]`` copy; the pairwise slices need neither.)

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight, ``I % m == 0``.
        n (int): Non-zeros per group.
        m (int): Group size.
    """
    shape = weight.shape
    if weight.dim() not in (2, 4) or shape[1] % m:
        raise ValueError(f'expected a [O, I, kh, kw] or [O, I] weight with I divisible '
                         f'by {m}, got {tuple(shape)}')
    if m <= FUSED_MAX_M and weight.is_contiguous() and fused_available(weight.device):
        return topn_mask_fused(weight, n, m)  # one compiled pass (nm/kernels.py)
    if m <= PAIRWISE_MAX_M and weight.is_contiguous():  # groups: dim 2 of this view
        o, i = shape[:2]
        a = weight.detach().abs().view(o, i // m, m, -1)
        return pairwise_topn_along(a, n, dim=2).view(shape)
    a = to_groups(weight.detach(), m).abs()  # a new tensor: free to overwrite
    if n > ARGMAX_ROUNDS_MAX_N:
        return from_groups(topn_magnitude_mask(a, n), shape)
    mask = torch.zeros_like(a, dtype=torch.bool)
    for r in range(n):
        idx = a.argmax(dim=1, keepdim=True)
        mask.scatter_(1, idx, True)
        if r + 1 < n:  # |w| >= 0: a chosen entry set to -1 is never chosen again
            a.scatter_(1, idx, -1.0)
    return from_groups(mask, shape)


def count_nonzero_per_group(groups: torch.Tensor) -> torch.Tensor:
    """Non-zeros of each ``[G, M]`` row.

    Args:
        groups (Tensor): ``[G, M]`` weights.

    Returns:
        Tensor: ``[G]`` int64 counts.
    """
    return (groups != 0).sum(dim=1)


def is_nm_sparse(groups: torch.Tensor, n: int) -> bool:
    """True iff every row of ``groups`` holds at most ``n`` non-zeros.

    Args:
        groups (Tensor): ``[G, M]`` weights.
        n (int): Non-zeros allowed per group.

    Returns:
        bool: Whether every group is within ``n`` non-zeros.
    """
    return bool((count_nonzero_per_group(groups) <= n).all())
