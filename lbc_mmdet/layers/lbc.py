"""LBC: Learning Best Combination for efficient N:M sparsity (Zhang et al., NeurIPS 2022).

Each group of M weights has a learnable score for every one of its ``C = comb(M, N)``
candidate N-subsets (``scores``, ``[G, C]``) and a record of which candidates survive
(``alive``, ``[G, C]`` bool). The mask keeps a weight iff it belongs to an alive candidate
(Eq. 8); the forward uses ``weight * mask`` (Eq. 7); the scores learn through a
straight-through estimator (Eq. 9): ``dL/dscores[g, j] = sum_{i in j} dL/dmask[g, i]`` with
``dL/dmask = weight * dL/d(weight * mask)``; dead candidates get no gradient, and weights
outside the mask get a zero gradient (no dense gradient, unlike SR-STE). The lowest-scored
alive candidates are removed on the cubic schedule of Eq. 6 until one is left
(:meth:`LBCMixin.nm_update`, driven by ``NMSparsityHook``).

Decisions beyond the paper:

- A removed candidate never returns (``alive`` only ever loses entries).
- Once one candidate is left the scores leave the autograd graph: no gradient, hence no
  momentum and no weight decay; they stop changing.
- A layer whose scores cannot learn (``scores.requires_grad`` is False, e.g. inside a
  frozen ResNet stage) ranks its candidates by weight magnitude (sum of ``|w|`` over the
  candidate) instead of by its untrained, tied scores.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..nm import (
    assign_groups,
    candidate_grad_fused,
    candidate_magnitude,
    combination_table,
    cubic_removed,
    fused_available,
    grouped_product,
    num_combinations,
    to_groups,
)
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .registry import register_method, register_nm_layer


class _LBCMaskedWeight(torch.autograd.Function):
    """``weight * mask`` with the STE gradient of Eq. 9 for the scores. ``mask`` and
    ``alive`` may be bool (they are saved for the backward as they are given)."""

    @staticmethod
    def forward(ctx, weight, scores, mask, alive, table, m):  # noqa: D102
        ctx.save_for_backward(weight, mask, alive, table)
        ctx.m = m
        return weight * mask

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        weight, mask, alive, table = ctx.saved_tensors
        if (ctx.needs_input_grad[0] and ctx.needs_input_grad[1] and weight.is_contiguous()
                and fused_available(grad.device)):  # one compiled pass (nm/kernels.py)
            grad_weight, grad_scores = candidate_grad_fused(grad, weight, mask, alive,
                                                            table, ctx.m)
            return grad_weight, grad_scores, None, None, None, None
        grad_weight = grad * mask if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            # dL/dmask = weight * dL/dW_eff, written straight into the grouped layout
            grad_mask = grouped_product(grad, weight, ctx.m).to(table.dtype)  # [G, M]
            grad_scores = torch.mm(grad_mask, table.t()).mul_(alive)  # [G, C], dead -> 0
        return grad_weight, grad_scores, None, None, None, None


register_method('lbc', display_name='LBC', plot_style=('o', 'tab:red'))


class LBCMixin(NMSparseMixin):
    """The LBC method; combine with :class:`NMSparseConv2d` / :class:`NMSparseLinear`."""
    nm_method = 'lbc'
    nm_extra_state_names: Tuple[str, ...] = ('scores', 'alive')
    SCORE_INITS = ('uniform', 'magnitude')

    @classmethod
    def nm_validate_options(cls, score_init: str = 'uniform') -> dict:
        """LBC's options.

        Args:
            score_init (str): ``'uniform'`` (the paper's ``1 / comb(M-1, N-1)`` for every
                candidate) or ``'magnitude'``: at the start of training (iteration 0)
                every candidate's score is that value times the candidate's share of its
                group's weight magnitude, so that a layer starting from trained dense
                weights removes its smallest candidates first. Defaults to
                ``'uniform'``.

        Returns:
            dict: ``score_init``.
        """
        if score_init not in cls.SCORE_INITS:
            raise ValueError(f'LBC: `score_init` must be one of {cls.SCORE_INITS}, got '
                             f'{score_init!r}')
        return dict(score_init=score_init)

    @torch.no_grad()
    def init_scores_from_magnitude(self) -> None:
        """Scores proportional to the candidates' weight magnitude (``score_init``): the
        uniform value times ``sum(|w| over the candidate) / (N * mean |w| of the
        group)``, so a group of equal weights keeps the uniform scores."""
        n, m = self.nm_n, self.nm_m
        groups = to_groups(self.weight.detach(), m).abs().float()
        cand = candidate_magnitude(groups, self._table)  # [G, C]
        mean = groups.mean(dim=1, keepdim=True).clamp_min(1e-12)
        self.scores.copy_(cand / (n * mean) / math.comb(m - 1, n - 1))

    def _nm_init_state(self) -> None:
        n, m = self.nm_n, self.nm_m
        c = num_combinations(n, m)
        g = self.nm_num_groups
        self.scores = nn.Parameter(
            torch.full((g, c), 1.0 / math.comb(m - 1, n - 1), device=self.weight.device))
        self.register_buffer('alive', torch.ones(g, c, dtype=torch.bool,
                                                 device=self.weight.device))
        self.register_buffer('_table', combination_table(n, m).float(),
                             persistent=False)
        # the mask as bool, in the weight's layout (the forward and backward use it as it
        # is: a bool saved for the backward is a quarter of a float one)
        self.register_buffer('_mask', torch.ones(self.weight.shape, dtype=torch.bool,
                                                 device=self.weight.device),
                             persistent=False)
        # how many alive candidates hold each weight ([G, M]): a removal updates the mask
        # from it without rebuilding the union from `alive`
        self.register_buffer('_cover', torch.zeros(g, m, dtype=torch.int16,
                                                   device=self.weight.device),
                             persistent=False)
        self._mask_key = None

    # ----------------------------------------------------------------- state
    @property
    def num_candidates(self) -> int:
        return self.alive.shape[1]

    @property
    def num_removed(self) -> int:
        """Candidates removed from every group so far (the same for every group)."""
        self._refresh()
        return self._num_removed

    @property
    def finished(self) -> bool:
        """True once a single candidate is left in every group."""
        return self.num_removed == self.num_candidates - 1

    def _cache_key(self) -> tuple:
        return (self.alive.data_ptr(), self.alive._version, self._mask.data_ptr())

    def _refresh(self) -> None:
        """Rebuild the mask from ``alive`` when it changed outside :meth:`remove_to`
        (``load_state_dict``) or moved; ``remove_to`` keeps it up to date itself."""
        if self._cache_key() != self._mask_key:
            cover = self.alive.to(torch.float32) @ self._table  # [G, M] counts
            self._cover.copy_(cover)
            assign_groups(self._mask, cover > 0)
            self._num_removed = (self.num_candidates - int(self.alive[0].sum())
                                 if self.alive.numel() else 0)
            self._mask_key = self._cache_key()

    def _nm_refresh(self) -> None:
        self._refresh()

    def _nm_mask(self) -> torch.Tensor:
        self._refresh()
        return self._mask.to(self.weight.dtype)

    def _nm_densities(self) -> Dict[str, float]:
        # forward, input and weight gradient all follow the union of the alive
        # candidates: weights outside it get no gradient
        self._refresh()
        d = float(self._mask.count_nonzero()) / max(self._mask.numel(), 1)
        return dict(forward=d, input_grad=d, weight_grad=d)

    def _nm_forward_weight(self) -> torch.Tensor:
        self._refresh()
        if self.finished or not self.scores.requires_grad or not torch.is_grad_enabled():
            return self.weight * self._mask
        return _LBCMaskedWeight.apply(self.weight, self.scores, self._mask, self.alive,
                                      self._table, self.nm_m)

    # ----------------------------------------------------------------- removal
    def candidate_ranking(self) -> torch.Tensor:
        """``[G, C]`` importance used for removal: the learned scores, or the candidates'
        weight magnitude when the scores cannot learn (frozen layer)."""
        if self.scores.requires_grad:
            return self.scores.detach().float()
        return candidate_magnitude(to_groups(self.weight, self.nm_m), self._table)

    @torch.no_grad()
    def remove_to(self, target_removed: int) -> bool:
        """Remove the lowest-ranked alive candidates of each group until
        ``target_removed`` are gone (ties: lowest index first). Never revives one.

        Returns:
            bool: Whether any candidate was removed.
        """
        target_removed = min(int(target_removed), self.num_candidates - 1)
        k = target_removed - self.num_removed
        if k <= 0:
            return False
        ranking = torch.where(self.alive, self.candidate_ranking(), float('inf'))  # a copy
        table = self._table.to(self._cover.dtype)
        lost = False
        # k rounds of argmin (first minimum: ties go to the lowest index); k is small,
        # and this is much cheaper than sorting every group
        for i in range(k):
            idx = ranking.argmin(dim=1, keepdim=True)
            self.alive.scatter_(1, idx, False)
            if i + 1 < k:
                ranking.scatter_(1, idx, float('inf'))
            members = table.index_select(0, idx.view(-1))  # [G, M] 0/1
            self._cover.sub_(members)
            # a weight leaves the mask when its last alive candidate goes
            lost = lost or bool(((self._cover == 0) & members.bool()).any())
        if lost:
            assign_groups(self._mask, self._cover > 0)
        self._num_removed += k
        self._mask_key = self._cache_key()
        return True

    def _nm_update(self, state: NMScheduleState) -> bool:
        if (self.score_init == 'magnitude' and state.iteration == 0
                and self.num_removed == 0):
            self.init_scores_from_magnitude()
        return self.remove_to(
            cubic_removed(state.t, state.ti, state.tf, self.num_candidates))

    # ----------------------------------------------------------------- protocol
    def _nm_stats(self) -> Dict[str, float]:
        return dict(alive_mean=float(self.num_candidates - self.num_removed))

    @torch.no_grad()
    def score_margin(self) -> Optional[float]:
        """Mean over the groups of the gap between the best and the second-best alive
        candidate in :meth:`candidate_ranking` (the learned scores); None once a single
        candidate is left (no second best)."""
        if self.num_candidates - self.num_removed < 2:
            return None
        ranking = torch.where(self.alive, self.candidate_ranking(), float('-inf'))
        top2 = ranking.topk(2, dim=1).values  # [G, 2]
        return float((top2[:, 0] - top2[:, 1]).mean())

    def _nm_diagnostics(self, mask: torch.Tensor, start: bool) -> Dict[str, float]:
        margin = self.score_margin()
        return {} if margin is None else dict(score_margin=margin)

    @classmethod
    def _alive_union(cls, n: int, m: int, t: float, ti: float,
                     tf: float) -> Tuple[float, float]:
        """Bounds on the union density of the candidates alive at ``t``: ``k`` alive
        ``n``-subsets of ``m`` weights cover at least the smallest ``j`` with
        ``comb(j, n) >= k`` and at most ``min(m, k * n)`` weights."""
        c = num_combinations(n, m)
        k = c - cubic_removed(t, ti, tf, c)
        low = next(j for j in range(n, m + 1) if math.comb(j, n) >= k)
        high = min(m, k * n)
        if k == c:  # every candidate alive: every weight
            low = high = m
        return low / m, high / m

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf):
        # every pass follows the union of the alive candidates; it is fixed by the
        # schedule when every candidate or one is alive, or for N = 1 (k alive -> k/M)
        low, high = cls._alive_union(n, m, t, ti, tf)
        if low != high:
            return None
        return dict(forward=low, input_grad=low, weight_grad=low)

    @classmethod
    def nm_schedule_density_bounds(cls, n, m, t, ti, tf):
        low, high = cls._alive_union(n, m, t, ti, tf)
        return (dict(forward=low, input_grad=low, weight_grad=low),
                dict(forward=high, input_grad=high, weight_grad=high))

    def nm_warnings(self) -> List[str]:
        if self.nm_eligible and not self.scores.requires_grad:
            return ['in a frozen stage, its LBC scores cannot learn: candidates are ranked '
                    'by weight magnitude']
        return []


@register_nm_layer
class LBCConv2d(LBCMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with LBC. Use as
    ``conv_cfg=dict(type='LBCConv2d', n=2, m=4)``."""


@register_nm_layer
class LBCLinear(LBCMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with LBC."""
