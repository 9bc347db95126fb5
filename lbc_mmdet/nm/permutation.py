"""Input-channel permutations that raise the magnitude N:M pruning keeps.

Top-N magnitude pruning keeps, in every group of M consecutive input channels, the N
largest ``|w|``. Reordering the input channels (the columns of the layer's matrix) changes
which weights share a group, hence how much magnitude survives; a permutation of a
layer's input channels, undone by permuting the output channels of the layer that
produces them, leaves the network's function unchanged (Pool & Yu, *Channel Permutations
for N:M Sparsity*, NeurIPS 2021; NVIDIA apex ``permutation_lib``).

The layer's matrix is ``[R, I]`` with one column per input channel: a conv weight
``[O, I, kh, kw]`` as ``weight.permute(0, 2, 3, 1).reshape(-1, I)`` (rows = output channel
and kernel position), a 2-D weight as it is. Its groups of M consecutive columns are the
project's N:M groups (:mod:`lbc_mmdet.nm.grouping`).

:func:`search_permutation` is a greedy search written for this project:

1. **channel swaps**: the exact gain of swapping any two columns of different groups is
   kept in an ``[I, I]`` table (replacing one weight of a group changes its top-N sum by
   ``relu(|x| - t)``, ``t`` the N-th largest of the other M-1; so the table costs
   ``O(I^2 R)`` once and ``O(M I R)`` per swap to update); the best swap is applied while
   it gains.
2. **stripe pairs**: at a local optimum, pairs of groups are re-split exhaustively (all
   ways of dealing their 2M columns into two groups, M <= 4), the most promising pairs
   first; an improving re-split is applied and the swaps resume.

Both are bounded by a time limit and a move count. The result never keeps less than the
identity: if the search finds nothing better, the identity is returned.
"""
import itertools
import math
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import torch

#: Largest M whose stripe-pair re-splits are enumerated (C(2M, M) / 2 splits: 35 for M=4).
MAX_STRIPE_M = 4


@dataclass
class PermutationResult:
    """A permutation of a layer's input channels and what it keeps.

    ``permutation[k]`` is the original input channel placed at position ``k``: the
    permuted weight is ``weight[:, permutation]``. Magnitudes are sums of ``|w|``.
    """
    permutation: torch.Tensor
    n: int
    m: int
    total: float
    kept_before: float
    kept_after: float
    row_bound: float
    moves: int
    seconds: float
    stopped: str

    @property
    def identity(self) -> bool:
        return bool(torch.equal(self.permutation, torch.arange(self.permutation.numel())))

    @property
    def gain(self) -> float:
        """Relative gain of kept magnitude, ``after / before - 1``."""
        return self.kept_after / self.kept_before - 1.0 if self.kept_before else 0.0

    @property
    def efficacy(self) -> float:
        """Fraction of the possible gain achieved: ``(after - before) / (row_bound -
        before)`` (apex's "efficacy"; ``row_bound`` keeps the largest ``N/M`` of every row,
        which no permutation can beat)."""
        room = self.row_bound - self.kept_before
        return (self.kept_after - self.kept_before) / room if room > 0 else 0.0

    def to_dict(self, with_permutation: bool = False) -> Dict:
        """The result as plain data (a JSON report entry).

        Args:
            with_permutation (bool): Include the permutation as a list. Defaults to False.

        Returns:
            dict: The fields (the permutation only with ``with_permutation``), the
            pattern, ``gain``, ``efficacy``, ``identity`` and the kept fractions.
        """
        out = {k: v for k, v in asdict(self).items() if k != 'permutation'}
        out.update(pattern=f'{self.n}:{self.m}', gain=self.gain, efficacy=self.efficacy,
                   identity=self.identity,
                   kept_fraction_before=self.kept_before / self.total if self.total else 0.0,
                   kept_fraction_after=self.kept_after / self.total if self.total else 0.0)
        if with_permutation:
            out['permutation'] = self.permutation.tolist()
        return out


def channel_matrix(weight: torch.Tensor) -> torch.Tensor:
    """The ``[R, I]`` matrix of ``weight`` with one column per input channel (see module
    docstring).

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight.

    Returns:
        Tensor: ``[R, I]`` matrix (``R = O * kh * kw`` for a conv).
    """
    if weight.dim() == 4:
        return weight.permute(0, 2, 3, 1).reshape(-1, weight.shape[1])
    if weight.dim() == 2:
        return weight
    raise ValueError(f'only 2-D and 4-D weights have input channels to permute, got '
                     f'shape {tuple(weight.shape)}')


def _check(weight: torch.Tensor, n: int, m: int) -> None:
    if not 0 < n < m:
        raise ValueError(f'need 0 < N < M, got {n}:{m}')
    if weight.dim() not in (2, 4) or weight.shape[1] % m:
        raise ValueError(f'weight of shape {tuple(weight.shape)}: its input channels '
                         f'(dim 1) are not divisible by M={m}')


def _kept(mat_abs: torch.Tensor, n: int, m: int) -> float:
    return float(torch.topk(mat_abs.reshape(-1, m), n, dim=1).values.sum())


@torch.no_grad()
def kept_magnitude(weight: torch.Tensor, n: int, m: int,
                   permutation: Optional[torch.Tensor] = None) -> float:
    """Sum of ``|w|`` that top-N magnitude pruning keeps (float64), after permuting the
    input channels by ``permutation`` (``weight[:, permutation]``) when given.

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight, ``I % m == 0``.
        n (int): Non-zeros per group.
        m (int): Group size.
        permutation (Tensor, optional): ``[I]`` input-channel order. Defaults to None.

    Returns:
        float: The kept magnitude.
    """
    _check(weight, n, m)
    mat = channel_matrix(weight.detach()).abs().to(torch.float64)
    if permutation is not None:
        mat = mat[:, permutation.to(mat.device)]
    return _kept(mat, n, m)


def permute_input_channels(weight: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """``weight`` with its input channels (dim 1) reordered: ``weight[:, permutation]``.

    Args:
        weight (Tensor): A weight with input channels on dim 1.
        permutation (Tensor): ``[I]`` input-channel order.

    Returns:
        Tensor: The permuted weight (a copy).
    """
    return weight.index_select(1, permutation.to(weight.device))


def _splits(m: int) -> torch.Tensor:
    """``[S, M]`` indices (into 2M columns) of the first group of every distinct way to
    deal 2M columns into two groups of M (column 0 always goes to the first group)."""
    rest = range(1, 2 * m)
    return torch.tensor([(0, ) + c for c in itertools.combinations(rest, m - 1)],
                        dtype=torch.long)


class _SwapSearch:
    """State of the greedy search on one ``[R, I]`` absolute-value matrix (float64)."""

    def __init__(self, mat: torch.Tensor, n: int, m: int, chunk_elems: int):
        self.a = mat.clone()
        self.n, self.m = n, m
        self.rows, self.cols = mat.shape
        self.groups = self.cols // m
        self.perm = torch.arange(self.cols)
        self.chunk = max(1, chunk_elems // max(1, self.rows * self.cols))
        self.kept = torch.zeros(self.groups, dtype=torch.float64)
        self.base = torch.zeros(self.cols, dtype=torch.float64)
        self.thresh = torch.zeros(self.rows, self.cols, dtype=torch.float64)
        self.table = torch.zeros(self.cols, self.cols, dtype=torch.float64)
        gid = torch.arange(self.cols) // m
        self.same = gid[:, None] == gid[None, :]
        self._update_groups(torch.arange(self.groups))

    def _update_groups(self, groups: torch.Tensor) -> None:
        """Recompute the kept sum of ``groups`` and, for each of their positions, the
        top-N of the other M-1 (``base``) and its N-th largest (``thresh``)."""
        n, m = self.n, self.m
        pos = (groups[:, None] * m + torch.arange(m)).reshape(-1)
        vals = self.a[:, pos].reshape(self.rows, -1, m)
        srt, order = torch.sort(vals, dim=2, descending=True)
        rank = torch.argsort(order, dim=2)  # rank of each position in its group
        top = srt[..., :n].sum(dim=2, keepdim=True)
        in_top = rank < n
        nth = srt[..., n:n + 1].expand_as(vals)
        nth_minus = srt[..., n - 1:n].expand_as(vals)
        thresh = torch.where(in_top, nth, nth_minus)
        base = torch.where(in_top, top - vals + nth, top.expand_as(vals))
        self.kept[groups] = top.sum(dim=0).reshape(-1)
        self.thresh[:, pos] = thresh.reshape(self.rows, -1)
        self.base[pos] = base.sum(dim=0).reshape(-1)
        for start in range(0, pos.numel(), self.chunk):
            p = pos[start:start + self.chunk]
            gain = (self.a[:, None, :] - self.thresh[:, p, None]).clamp_min_(0).sum(dim=0)
            self.table[p] = gain + (self.base[p] - self.kept[p // m])[:, None]

    def best_swap(self) -> Tuple[float, int, int]:
        gain = self.table + self.table.t()
        gain.masked_fill_(self.same, -math.inf)
        flat = int(torch.argmax(gain))
        i, j = divmod(flat, self.cols)
        return float(gain[i, j]), i, j

    def swap(self, i: int, j: int) -> None:
        idx = torch.tensor([j, i])
        self.a[:, [i, j]] = self.a[:, idx]
        self.perm[[i, j]] = self.perm[idx]
        self.table[:, [i, j]] = self.table[:, idx]
        self._update_groups(torch.tensor(sorted({i // self.m, j // self.m})))

    def pair_order(self) -> List[Tuple[int, int]]:
        """Pairs of groups, the one holding the best (least bad) swap first."""
        gain = self.table + self.table.t()
        gain.masked_fill_(self.same, -math.inf)
        g, m = self.groups, self.m
        best = gain.reshape(g, m, g, m).amax(dim=(1, 3))
        iu = torch.triu_indices(g, g, offset=1)
        order = torch.argsort(best[iu[0], iu[1]], descending=True)
        return [(int(iu[0, k]), int(iu[1, k])) for k in order]

    def resplit(self, pairs: List[Tuple[int, int]], splits: torch.Tensor,
                tol: float) -> Optional[Tuple[int, int, torch.Tensor]]:
        """Best improving re-split among ``pairs`` (None if none improves)."""
        m, n = self.m, self.n
        pa = torch.tensor(pairs, dtype=torch.long)
        cols = (pa[:, :, None] * m + torch.arange(m)).reshape(len(pairs), 2 * m)
        vals = self.a[:, cols]  # [R, B, 2M]
        full = torch.arange(2 * m)
        other = torch.stack([full[~torch.isin(full, s)] for s in splits])
        first = torch.topk(vals[:, :, splits], n, dim=3).values.sum(dim=(0, 3))
        second = torch.topk(vals[:, :, other], n, dim=3).values.sum(dim=(0, 3))
        gain = first + second - (self.kept[pa[:, 0]] + self.kept[pa[:, 1]])[:, None]
        flat = int(torch.argmax(gain))
        b, s = divmod(flat, splits.shape[0])
        if float(gain[b, s]) <= tol:
            return None
        return pairs[b][0], pairs[b][1], torch.cat([cols[b, splits[s]], cols[b, other[s]]])

    def apply_resplit(self, ga: int, gb: int, new_cols: torch.Tensor) -> None:
        m = self.m
        slots = torch.cat([torch.arange(ga * m, ga * m + m), torch.arange(gb * m, gb * m + m)])
        self.a[:, slots] = self.a[:, new_cols]
        self.perm[slots] = self.perm[new_cols]
        self.table[:, slots] = self.table[:, new_cols]
        self._update_groups(torch.tensor([ga, gb]))


@torch.no_grad()
def search_permutation(weight: torch.Tensor, n: int, m: int, time_limit: float = 10.0,
                       max_moves: Optional[int] = None, stripe_pairs: bool = True,
                       chunk_elems: int = 1 << 23) -> PermutationResult:
    """Find an input-channel permutation of ``weight`` keeping more magnitude under N:M.

    Args:
        weight (Tensor): A 2-D ``[O, I]`` or conv ``[O, I, kh, kw]`` weight, ``I % m == 0``.
        n, m (int): The pattern (N kept of every M).
        time_limit (float): Seconds of search (checked between moves; the initial gain
            table is always built). Defaults to 10.
        max_moves (int, optional): At most this many swaps / re-splits.
        stripe_pairs (bool): Re-split pairs of groups at local optima (M <= 4 only).
        chunk_elems (int): Elements of the temporary tensors (memory bound).

    Returns:
        PermutationResult: ``kept_after >= kept_before`` always (the identity when
        nothing better was found); ``stopped`` says why the search ended
        (``converged``, ``time_limit``, ``max_moves`` or ``single_group``).
    """
    _check(weight, n, m)
    start = time.monotonic()
    mat = channel_matrix(weight.detach()).abs().to('cpu', torch.float64)
    total = float(mat.sum())
    before = _kept(mat, n, m)
    k = mat.shape[1] * n // m
    row_bound = float(torch.topk(mat, k, dim=1).values.sum())
    identity = torch.arange(mat.shape[1])
    if mat.shape[1] // m < 2:
        return PermutationResult(identity, n, m, total, before, before, row_bound, 0,
                                 time.monotonic() - start, 'single_group')
    tol = 1e-12 * max(total, 1e-30)
    search = _SwapSearch(mat, n, m, chunk_elems)
    splits = _splits(m) if stripe_pairs and m <= MAX_STRIPE_M else None
    moves, stopped = 0, 'converged'
    batch = max(1, chunk_elems // max(1, mat.shape[0] * (0 if splits is None else
                                                          splits.shape[0]) * m * 2))
    while True:
        if max_moves is not None and moves >= max_moves:
            stopped = 'max_moves'
            break
        if time.monotonic() - start > time_limit:
            stopped = 'time_limit'
            break
        gain, i, j = search.best_swap()
        if gain > tol:
            search.swap(i, j)
            moves += 1
            continue
        if splits is None:
            break
        found = None
        pairs = search.pair_order()
        for s in range(0, len(pairs), batch):
            found = search.resplit(pairs[s:s + batch], splits, tol)
            if found is not None or time.monotonic() - start > time_limit:
                break
        if found is None:
            if time.monotonic() - start > time_limit:
                stopped = 'time_limit'
            break
        search.apply_resplit(*found)
        moves += 1
    perm = search.perm.clone()
    after = _kept(mat[:, perm], n, m)
    if after <= before:
        perm, after = identity, before
    return PermutationResult(perm, n, m, total, before, after, row_bound, moves,
                             time.monotonic() - start, stopped)


__all__ = [
    'MAX_STRIPE_M', 'PermutationResult', 'channel_matrix', 'kept_magnitude',
    'permute_input_channels', 'search_permutation'
]
