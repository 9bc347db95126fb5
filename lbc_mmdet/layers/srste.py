"""SR-STE: Sparse-Refined Straight-Through Estimator (Zhou et al., ICLR 2021).

The mask keeps the N largest ``|w|`` of every group of M weights (the project's grouping,
:func:`~lbc_mmdet.nm.to_groups`) and is recomputed from the current weights at every
forward; the forward uses ``weight * mask``. The backward is the straight-through estimator
with the sparse-refined term (the paper's Eq. 5/6)::

    dL/dw = dL/d(weight * mask) + lambda_w * (1 - mask) * w

i.e. every weight, pruned or kept, receives the dense gradient of the sparse weight, and the
pruned ones are additionally decayed towards zero by ``lambda_w`` (``2e-4`` by default, the
paper's value for detection). By default SR-STE has no schedule (``nm_update`` does
nothing) and no state of its own: the mask follows the weights.

``gradual=True`` (the LBC paper's Table 5 fairness control: SR-STE "at the same gradual
sparsity schedule" as LBC) keeps the ``M - p_t`` largest ``|w|`` of every group instead,
with ``p_t = ceil((M - N) * (1 - (1 - (t - ti) / (tf - ti)) ** 3))`` pruned per group: none
up to ``ti``, ``M - N`` (exact N:M) from ``tf`` on, on LBC's cubic schedule (Eq. 6, the
count of pruned weights in place of removed candidates). The mask still follows the
weights at every forward; ``nm_update`` only sets ``p_t``.

Under AMP loss scaling and gradient accumulation the gradient reaching the backward is
``nm_grad_scale`` (loss scale / accumulation loss factor, set by ``NMSparsityHook``) times
the true one, and the optimizer wrapper divides the summed ``weight.grad`` by the loss
scale. The decay is therefore added as ``lambda_w * nm_grad_scale * (1 - mask) * w``: after
unscaling and summing over the accumulation window it contributes ``lambda_w * (1 - mask)
* w`` exactly once per optimizer step, as in an unscaled, non-accumulated run.

Decisions beyond the paper:

- Without autograd (``torch.no_grad()``, inference, or a frozen weight) the forward is the
  plain ``weight * mask``; the custom function only runs when a weight gradient is wanted.
- The flip rate is the base's (``nm_diagnostics()``); SR-STE adds ``divergence_start``,
  the normalised Hamming distance from the current mask to the mask at the start of the
  run (the paper's sparse architecture divergence, divided by the weight count).
- ``gradual=True`` keeps no state of its own: the number kept per group is set by
  ``nm_update`` from the schedule (``NMSparsityHook`` brings it to the current point at the
  start of every run); before any ``nm_update`` it is ``N`` (exact N:M), so a trained
  checkpoint evaluates as the N:M model it ends as.
"""
from typing import Dict, Optional, Tuple

import torch

from ..nm import ceil_count, cubic_fraction, topn_magnitude_mask_like
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .decay import MaskedWeightWithDecay
from .registry import register_method, register_nm_layer

register_method('srste', display_name='SR-STE', plot_style=('s', 'tab:blue'))


class SRSTEMixin(NMSparseMixin):
    """The SR-STE method; combine with :class:`NMSparseConv2d` /
    :class:`NMSparseLinear`."""
    nm_method = 'srste'
    nm_extra_state_names: Tuple[str, ...] = ()

    @classmethod
    def nm_validate_options(cls, lambda_w: float = 2e-4, gradual: bool = False) -> dict:
        """SR-STE's options.

        Args:
            lambda_w (float): The decay of the pruned weights. Defaults to ``2e-4``.
            gradual (bool): Follow LBC's cubic schedule from dense at ``ti`` to N:M at
                ``tf`` (module docstring). Defaults to False.

        Returns:
            dict: ``lambda_w`` (a float) and ``gradual``.
        """
        if isinstance(lambda_w, bool) or not isinstance(lambda_w, (int, float)):
            raise ValueError(f'SR-STE: `lambda_w` must be a number >= 0, got '
                             f'{lambda_w!r} ({type(lambda_w).__name__})')
        if not lambda_w >= 0:  # also refuses NaN
            raise ValueError(f'SR-STE: `lambda_w` must be >= 0, got lambda_w={lambda_w}')
        if not isinstance(gradual, bool):
            raise ValueError(f'SR-STE: `gradual` must be True or False, got {gradual!r}')
        return dict(lambda_w=float(lambda_w), gradual=gradual)

    def _nm_init_state(self) -> None:
        # weights kept per group (N unless gradual=True and the schedule says otherwise)
        self.nm_keep = self.nm_n
        # the mask at the start of the run (divergence_start): a plain attribute, not a
        # buffer (MMEngine's EMA pairs buffers by position)
        self._diag_start_mask: Optional[torch.Tensor] = None

    @staticmethod
    def gradual_pruned(n: int, m: int, t: float, ti: float, tf: float) -> int:
        """Weights pruned per group at ``t`` under ``gradual=True``: ``ceil((M - N) *
        cubic_fraction(t, ti, tf))``, 0 up to ``ti``, ``M - N`` from ``tf`` on."""
        return ceil_count((m - n) * cubic_fraction(t, ti, tf), m - n)

    # ----------------------------------------------------------------- mask
    @torch.no_grad()
    def _topn_mask(self) -> torch.Tensor:
        """Bool top-N ``|w|`` mask of the current weights, shaped like ``weight``
        (computed in the weight's layout: no grouped copy)."""
        if self.nm_keep >= self.nm_m:  # gradual, before any pruning: dense
            return torch.ones(self.weight.shape, dtype=torch.bool,
                              device=self.weight.device)
        return topn_magnitude_mask_like(self.weight, self.nm_keep, self.nm_m)

    def _nm_mask(self) -> torch.Tensor:
        return self._topn_mask().to(self.weight.dtype)

    def _nm_forward_weight(self) -> torch.Tensor:
        mask = self._topn_mask()  # bool: `weight * mask` saves it as bool
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return self.weight * mask
        # the decay is scaled like the incoming gradient (module docstring)
        return MaskedWeightWithDecay.apply(self.weight, mask, mask,
                                        self.lambda_w * self.nm_grad_scale)

    # ----------------------------------------------------------------- protocol
    def _nm_update(self, state: NMScheduleState) -> bool:
        # default: no schedule, the mask follows the weights at every forward
        if not self.gradual:
            return False
        keep = self.nm_m - self.gradual_pruned(self.nm_n, self.nm_m, state.t, state.ti,
                                               state.tf)
        changed = keep != self.nm_keep
        self.nm_keep = keep
        return changed

    def nm_copy_state_to(self, other) -> None:
        # the kept count is a plain attribute: the EMA copy follows the schedule too
        super().nm_copy_state_to(other)
        if self.nm_eligible and getattr(other, 'nm_eligible', False):
            other.nm_keep = self.nm_keep

    def _nm_densities(self) -> Dict[str, float]:
        d = self.nm_keep / self.nm_m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf, gradual: Optional[bool] = None):
        # every weight gets the dense gradient: the weight gradient is dense. `gradual`
        # None (the training-FLOPs tool): gradual iff the window is not empty (tf > ti)
        if gradual is None:
            gradual = tf > ti
        d = (m - cls.gradual_pruned(n, m, t, ti, tf)) / m if gradual else n / m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    def _nm_diagnostics(self, mask: torch.Tensor, start: bool) -> Dict[str, float]:
        ref = self._diag_start_mask
        if start or ref is None or ref.shape != mask.shape:
            self._diag_start_mask = ref = mask
        div = float((mask != ref.to(mask.device)).count_nonzero()) / max(mask.numel(), 1)
        return dict(divergence_start=div)

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        if not self.nm_eligible:
            return base
        return f'{base}, lambda_w={self.lambda_w:g}' + (', gradual' if self.gradual else '')


@register_nm_layer
class SRSTEConv2d(SRSTEMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with SR-STE. Use as
    ``conv_cfg=dict(type='SRSTEConv2d', n=2, m=4, lambda_w=2e-4)``."""


@register_nm_layer
class SRSTELinear(SRSTEMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with SR-STE."""
