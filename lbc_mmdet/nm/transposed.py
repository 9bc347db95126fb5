"""N:M masks along the OUTPUT dimension of a weight, after a permutation of its output
channels: the sparsity the input-gradient product ``dX = dY W^T`` needs.

The input gradient of a convolution (a transposed convolution of ``dY`` with the weight)
reduces over the output channels at every (input channel, ky, kx); that of a linear layer
over the outputs of every input. A weight ``[O, ...]`` is therefore grouped here as M
consecutive output channels at one fixed position of the other dimensions, after the
output channels were reordered by a permutation ``perm``: group ``b`` at position ``k``
holds ``weight[perm[b * M + j]].flatten()[k]`` for ``j < M``. The permutation only chooses
which output channels share a group; masks are returned in the weight's own layout.

Plain torch: nothing here knows about training frameworks.
"""
from typing import Optional, Tuple

import torch

from .kernels import fused_available, rank_mask_fused
from .ranks import pairwise_topn_along

#: Up to this M, :func:`output_dim_nm_mask` ranks by ``M (M - 1)`` element-wise comparisons
#: of contiguous slices instead of sorting along the (strided) group dimension (much
#: faster on CPU).
PAIRWISE_MAX_M = 16


def output_group_error(shape, m: int) -> Optional[str]:
    """Why a weight of ``shape`` cannot be grouped by ``m`` along its output channels
    (``shape[0]``), or None if it can.

    Args:
        shape (Sequence[int]): The weight's shape.
        m (int): Group size.

    Returns:
        str or None: The reason, or None.
    """
    if len(shape) < 2:
        return f'weight of rank {len(shape)}'
    if shape[0] % m:
        return f'{shape[0]} output channels are not divisible by M={m}'
    return None


def _permuted_blocks(x: torch.Tensor, m: int, perm: torch.Tensor) -> torch.Tensor:
    """``x[perm]`` as ``[O / m, m, K]``: dimension 1 runs over the output channels of a
    group."""
    o = x.shape[0]
    return x.index_select(0, perm.to(x.device)).reshape(o // m, m, -1)


def _unpermute(blocks: torch.Tensor, perm: torch.Tensor, shape) -> torch.Tensor:
    """Inverse of :func:`_permuted_blocks`: back to ``shape`` in the original order."""
    flat = blocks.reshape(shape[0], -1)
    out = torch.empty_like(flat)
    out[perm.to(flat.device)] = flat
    return out.reshape(shape)


def output_dim_nm_mask(weight: torch.Tensor, n: int, m: int, perm: torch.Tensor,
                       keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Top-``n`` mask of every group of ``m`` permuted output channels (module docstring).

    Entries are ranked by ``|weight|`` (larger first), those ``keep`` leaves out after all
    the others and among themselves by position only (as if their value were 0: the
    top-N of ``|weight * keep|``, with a kept weight of exactly 0 still before them);
    ties go to the earlier position in the permuted group. The mask holds exactly ``n``
    entries per group and, of the entries ``keep`` marks, ``min(n, their count in the
    group)``, the largest ones. Without ``keep`` it is the top-``n`` ``|weight|`` of each
    group.

    Args:
        weight (Tensor): ``[O, ...]`` weight, ``O % m == 0``.
        n (int): Entries kept per group.
        m (int): Group size.
        perm (Tensor): ``[O]`` permutation of the output channels (long).
        keep (Tensor, optional): Bool mask shaped like ``weight`` ranked first.

    Returns:
        Tensor: Bool mask shaped like ``weight``.
    """
    err = output_group_error(tuple(weight.shape), m)
    if err:
        raise ValueError(f'cannot group along the output channels: {err}')
    a = weight.detach().abs()
    if keep is not None:
        a = a.masked_fill(~keep.to(torch.bool), -1.0)  # below every |w| >= 0
    a = _permuted_blocks(a, m, perm)
    if m > PAIRWISE_MAX_M:
        order = torch.sort(a, dim=1, descending=True, stable=True)[1]
        mask = torch.zeros_like(a, dtype=torch.bool)
        mask.scatter_(1, order[:, :n], True)
    elif fused_available(a.device):  # the same rank, one compiled pass (nm/kernels.py)
        mask = rank_mask_fused(a, n)
    else:  # rank = how many of the group beat an entry (ties: the earlier one wins)
        mask = pairwise_topn_along(a, n, dim=1)
    return _unpermute(mask, perm, weight.shape)


def output_dim_counts(mask: torch.Tensor, m: int, perm: torch.Tensor) -> torch.Tensor:
    """True entries of every group of ``m`` permuted output channels: ``[O / m, K]``.

    Args:
        mask (Tensor): Bool ``[O, ...]`` mask.
        m (int): Group size.
        perm (Tensor): ``[O]`` output-channel permutation.

    Returns:
        Tensor: ``[O / m, K]`` counts (``K``: the entries per output channel).
    """
    return _permuted_blocks(mask.to(torch.int32), m, perm).sum(dim=1)


def kept_by_output_groups(keep: torch.Tensor, n: int, m: int,
                          perms: torch.Tensor) -> torch.Tensor:
    """For each candidate permutation, how many entries of ``keep`` an N:M mask along its
    permuted output groups can hold: ``sum over groups of min(n, count)``.

    Args:
        keep (Tensor): Bool ``[O, ...]``.
        n (int), m (int): The pattern.
        perms (Tensor): ``[P, O]`` candidate permutations.

    Returns:
        Tensor: ``[P]`` int64.
    """
    # per candidate: one row gather and M - 1 byte adds (a count fits a byte: M <= 255),
    # ~25x faster on CPU than gathering all candidates at once in int32 and summing
    k = keep.reshape(keep.shape[0], -1).to(torch.uint8)
    perms = perms.to(k.device)
    scores = torch.empty(perms.shape[0], dtype=torch.int64, device=k.device)
    for i, perm in enumerate(perms):
        g = k.index_select(0, perm).view(k.shape[0] // m, m, k.shape[1])
        counts = g[:, 0].clone()
        for j in range(1, m):
            counts += g[:, j]
        scores[i] = counts.clamp_(max=n).sum(dtype=torch.int64)
    return scores


def random_permutations(size: int, count: int, seed: int) -> torch.Tensor:
    """``count`` random permutations of ``range(size)`` (``[count, size]``, long, CPU),
    drawn from a generator seeded with ``seed``: the same for the same arguments, on any
    device and process, whatever the global random state.

    Args:
        size (int): Length of each permutation.
        count (int): Number of permutations.
        seed (int): Seed of the generator.

    Returns:
        Tensor: ``[count, size]`` long permutations.
    """
    gen = torch.Generator(device='cpu')
    gen.manual_seed(int(seed) % (2**63 - 1))
    return torch.stack([torch.randperm(size, generator=gen) for _ in range(count)])


def best_output_permutation(keep: torch.Tensor, n: int, m: int, candidates: int,
                            seed: int) -> Tuple[torch.Tensor, int]:
    """The output-channel permutation, among ``candidates`` random ones
    (:func:`random_permutations` with ``seed``), under which an N:M mask along the output
    groups keeps the most entries of ``keep`` (:func:`kept_by_output_groups`; ties: the
    first candidate drawn).

    Args:
        keep (Tensor): Bool ``[O, ...]`` (the forward mask), ``O % m == 0``.
        n (int), m (int): The pattern.
        candidates (int): How many random permutations to try (>= 1).
        seed (int): Seed of the candidates.

    Returns:
        tuple: The best permutation (``[O]`` long, on ``keep``'s device) and how many
        entries of ``keep`` it lets the output-dim mask hold.
    """
    err = output_group_error(tuple(keep.shape), m)
    if err:
        raise ValueError(f'cannot group along the output channels: {err}')
    if candidates < 1:
        raise ValueError(f'candidates must be >= 1, got {candidates}')
    perms = random_permutations(keep.shape[0], candidates, seed).to(keep.device)
    scores = kept_by_output_groups(keep, n, m, perms)
    best = int(torch.argmax(scores))  # first maximum
    return perms[best].clone(), int(scores[best])


__all__ = ['output_group_error', 'output_dim_nm_mask', 'output_dim_counts',
           'kept_by_output_groups', 'random_permutations', 'best_output_permutation']
