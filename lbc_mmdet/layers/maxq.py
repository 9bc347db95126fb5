"""MaxQ: Multi-Axis Query for N:M sparsity (Xiang et al., CVPR 2024; arXiv 2312.07061).

Facts from the paper and the official code (``models/conv_type/
mullt_axis_query_v2_pro_NM.py``, ``masker.py``, ``base_conv.py``), re-implemented:

- **Incremental N:M.** ``p_t`` weights of every group of M are pruned, growing from 0 at
  ``ti`` to ``M - N`` at ``tf`` on a ``linear``, ``cos`` or ``exp`` schedule
  (:func:`~lbc_mmdet.nm.incremental_pruned`); ``NMSparsityHook`` sets ``t`` after every
  iteration. The hard mask ``H`` keeps the ``M - p_t`` largest ``|w|`` of every group and
  follows the weights at every forward.
- **Soft mask.** ``mask = H * (1 + S_filter + S_kernel)``: on each query axis (the
  weights of one output filter; the weights at one kernel position across all filters
  and input channels) the ``(M - N) / M`` smallest ``|w|`` get 0 and the others
  ``sigmoid((|w| - thr) / tau)``, ``thr`` the mean of the two ``|w|`` around that cut
  (:func:`~lbc_mmdet.nm.multi_axis_soft_factor`). The forward computes with
  ``weight * mask``; kept weights are multiplied by 1 to 3, pruned ones by 0.
- **Gradient.** The official straight-through estimator passes the gradient of
  ``weight * mask`` unchanged to every weight; the official decay adds
  ``lambda_w * (1 - clamp(mask, 0, 1)) * w``, i.e. ``lambda_w * w`` on the pruned weights
  (2e-4 by default), as SR-STE. It is added here in the backward as
  ``lambda_w * nm_grad_scale * (1 - H) * w`` so that after unscaling and summing over an
  accumulation window it counts once per optimizer step, whatever the AMP loss scale.

Decisions beyond the paper (``docs/methods.md``, MaxQ):

- No BatchNorm is appended (the official layer appends one): mmdet's ResNet already
  normalises every convolution's output, so the layer is a drop-in ``nn.Conv2d`` whose
  checkpoints load into the stock model.
- The state is one persistent buffer, ``pruned`` (``p_t``), set by ``nm_update``; before
  any update it is ``M - N`` (exact N:M), so a built model evaluates as the N:M model it
  ends as. The masks themselves are recomputed from the weights (no mask buffer).
- ``nm_mask()`` is the hard 0/1 mask ``H`` (exactness, statistics, export checks);
  ``masked_weight()`` folds the whole soft mask, ``weight * H * (1 + S_filter +
  S_kernel)``: what the forward computes with, and what export writes.
- In eval mode the soft mask is kept between forwards while the weight (its storage and
  in-place version) and ``p_t`` are unchanged (``train()`` drops it): inference computes
  it once instead of per image.
- The kernel axis applies to every convolution with more than one kernel position (the
  official code only has 1x1 and 3x3); it is 0 for 1x1 convolutions and Linear layers.
"""
from typing import Dict, List, Tuple

import torch

from ..errors import CheckpointMismatchError
from ..nm import (
    INCREMENTAL_SCHEDULES,
    incremental_pruned,
    multi_axis_soft_factor,
    topn_magnitude_mask_like,
)
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .decay import MaskedWeightWithDecay
from .registry import register_method, register_nm_layer


def _number(name: str, value, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'MaxQ: `{name}` must be a number, got {value!r} '
                         f'({type(value).__name__})')
    if not (value > 0 if positive else value >= 0):  # also refuses NaN
        raise ValueError(f'MaxQ: `{name}` must be {"> 0" if positive else ">= 0"}, got '
                         f'{name}={value}')
    return float(value)


register_method('maxq', display_name='MaxQ', plot_style=('X', 'tab:orange'))


class MaxQMixin(NMSparseMixin):
    """The MaxQ method; combine with :class:`NMSparseConv2d` / :class:`NMSparseLinear`."""
    nm_method = 'maxq'
    nm_extra_state_names: Tuple[str, ...] = ('pruned', )

    @classmethod
    def nm_validate_options(cls, lambda_w: float = 2e-4, tau: float = 0.01,
                            schedule: str = 'linear', exp_rate: float = 1.5) -> dict:
        """MaxQ's options.

        Args:
            lambda_w (float): Decay of the pruned weights. Defaults to ``2e-4``.
            tau (float): Sigmoid temperature of the soft masks, in the weights' unit.
                Defaults to ``0.01``.
            schedule (str): How ``p_t`` grows: ``'linear'``, ``'cos'`` or ``'exp'``.
                Defaults to ``'linear'``.
            exp_rate (float): The ``exp`` schedule's steepness over the window.
                Defaults to ``1.5``.

        Returns:
            dict: The four options, numbers as floats.
        """
        if schedule not in INCREMENTAL_SCHEDULES:
            raise ValueError(f'MaxQ: `schedule` must be one of '
                             f'{list(INCREMENTAL_SCHEDULES)}, got {schedule!r}')
        return dict(lambda_w=_number('lambda_w', lambda_w, positive=False),
                    tau=_number('tau', tau, positive=True), schedule=schedule,
                    exp_rate=_number('exp_rate', exp_rate, positive=True))

    def _nm_init_state(self) -> None:
        # p_t, weights pruned per group: the end of the schedule until nm_update says
        self.register_buffer('pruned', torch.tensor(self.nm_m - self.nm_n,
                                                    dtype=torch.long,
                                                    device=self.weight.device))

    # ----------------------------------------------------------------- masks
    @property
    def nm_pruned(self) -> int:
        """``p_t``: weights pruned per group now."""
        return int(self.pruned)

    @torch.no_grad()
    def hard_mask(self) -> torch.Tensor:
        """Bool ``H``: the ``M - p_t`` largest ``|w|`` of every group, shaped like
        ``weight``."""
        keep = self.nm_m - self.nm_pruned
        if keep >= self.nm_m:
            return torch.ones(self.weight.shape, dtype=torch.bool, device=self.weight.device)
        return topn_magnitude_mask_like(self.weight, keep, self.nm_m)

    @torch.no_grad()
    def soft_factor(self) -> torch.Tensor:
        """``1 + S_filter + S_kernel`` of the current weights (float32, weight-shaped)."""
        return multi_axis_soft_factor(self.weight, self.nm_n, self.nm_m, self.tau)

    @torch.no_grad()
    def soft_mask(self) -> torch.Tensor:
        """``H * (1 + S_filter + S_kernel)`` in the weight's dtype: what the forward
        multiplies the weight by."""
        return (self.soft_factor() * self.hard_mask()).to(self.weight.dtype)

    def _nm_mask(self) -> torch.Tensor:
        return self.hard_mask().to(self.weight.dtype)

    @torch.no_grad()
    def masked_weight(self) -> torch.Tensor:  # type: ignore[override]
        """``weight * H * (1 + S_filter + S_kernel)``, detached: what the layer computes
        with (export folds it in); ``weight`` itself for an ineligible layer."""
        if not self.nm_eligible:
            return self.weight.detach().clone()
        return self.weight * self.soft_mask()

    def _eval_soft_mask(self) -> torch.Tensor:
        """:meth:`soft_mask`, kept between forwards while the layer is in eval mode and
        its weight (storage, in-place version) and ``p_t`` are unchanged: validation and
        inference compute the masks once, not per image."""
        w = self.weight
        key = (w.data_ptr(), w._version, self.nm_pruned, w.device, w.dtype)
        cached = self.__dict__.get('_nm_eval_mask')
        if cached is not None and cached[0] == key:
            return cached[1]
        mask = self.soft_mask()
        self.__dict__['_nm_eval_mask'] = (key, mask)
        return mask

    def train(self, mode: bool = True):  # type: ignore[override]
        self.__dict__.pop('_nm_eval_mask', None)
        return super().train(mode)  # type: ignore[misc]

    def _nm_forward_weight(self) -> torch.Tensor:
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            if not self.training:  # type: ignore[attr-defined]
                return self.weight * self._eval_soft_mask()
            return self.weight * self.soft_mask()
        mask = self.soft_mask()
        # the decay is scaled like the incoming gradient (module docstring)
        return MaskedWeightWithDecay.apply(self.weight, mask, mask != 0,
                                           self.lambda_w * self.nm_grad_scale)

    # ----------------------------------------------------------------- protocol
    def _nm_update(self, state: NMScheduleState) -> bool:
        p = incremental_pruned(state.t, state.ti, state.tf, self.nm_m - self.nm_n,
                               self.schedule, self.exp_rate)
        changed = p != self.nm_pruned
        self.pruned.fill_(p)
        return changed

    def _nm_densities(self) -> Dict[str, float]:
        d = (self.nm_m - self.nm_pruned) / self.nm_m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf, schedule: str = 'linear',
                              exp_rate: float = 1.5):
        # ``schedule``/``exp_rate``: the layer options (tools/train_flops.py
        # --method-opt schedule=cos); the STE gives every weight a gradient
        d = (m - incremental_pruned(t, ti, tf, m - n, schedule, exp_rate)) / m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    def _nm_stats(self) -> Dict[str, float]:
        return dict(pruned_per_group=float(self.nm_pruned))

    def _nm_check_loaded(self, state_dict: dict, prefix: str) -> None:
        saved = state_dict.get(prefix + 'pruned')
        if saved is not None and not 0 <= int(saved) <= self.nm_m - self.nm_n:
            raise CheckpointMismatchError(
                f'{prefix}pruned: the checkpoint prunes {int(saved)} weights per group, '
                f'more than this {self.nm_n}:{self.nm_m} MaxQ layer can '
                f'({self.nm_m - self.nm_n}): it was trained with another N:M pattern.')

    def nm_warnings(self) -> List[str]:
        if self.weight.requires_grad:
            return []
        return ['have frozen weights (MaxQ: their pruning and soft-mask scaling are not '
                'compensated by training)']

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        if not self.nm_eligible:
            return base
        return (f'{base}, lambda_w={self.lambda_w:g}, tau={self.tau:g}, '
                f'schedule={self.schedule}' +
                (f', exp_rate={self.exp_rate:g}' if self.schedule == 'exp' else ''))


@register_nm_layer
class MaxQConv2d(MaxQMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with MaxQ. Use as
    ``conv_cfg=dict(type='MaxQConv2d', n=2, m=4, lambda_w=2e-4, tau=0.01,
    schedule='linear')``."""


@register_nm_layer
class MaxQLinear(MaxQMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with MaxQ."""
