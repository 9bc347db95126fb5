"""SR-STE: Sparse-Refined Straight-Through Estimator (Zhou et al., ICLR 2021).

The mask keeps the N largest ``|w|`` of every group of M weights (the project's grouping,
:func:`~lbc_mmdet.nm.to_groups`) and is recomputed from the current weights at every
forward; the forward uses ``weight * mask``. The backward is the straight-through estimator
with the sparse-refined term (the paper's Eq. 5/6)::

    dL/dw = dL/d(weight * mask) + lambda_w * (1 - mask) * w

i.e. every weight, pruned or kept, receives the dense gradient of the sparse weight, and the
pruned ones are additionally decayed towards zero by ``lambda_w`` (``2e-4`` by default, the
paper's value for detection). SR-STE has no schedule (``nm_update`` does nothing) and no
state of its own: the mask follows the weights.

Under AMP loss scaling and gradient accumulation the gradient reaching the backward is
``nm_grad_scale`` (loss scale / accumulation loss factor, set by ``NMSparsityHook``) times
the true one, and the optimizer wrapper divides the summed ``weight.grad`` by the loss
scale. The decay is therefore added as ``lambda_w * nm_grad_scale * (1 - mask) * w``: after
unscaling and summing over the accumulation window it contributes ``lambda_w * (1 - mask)
* w`` exactly once per optimizer step, as in an unscaled, non-accumulated run.

Decisions beyond the paper:

- Without autograd (``torch.no_grad()``, inference, or a frozen weight) the forward is the
  plain ``weight * mask``; the custom function only runs when a weight gradient is wanted.
- ``nm_stats()`` adds ``flip_rate``: the fraction of the layer's weights whose mask entry
  changed since the previous ``nm_stats()`` call (the paper's "flip rate" diagnostic;
  0 on the first call).
"""
from typing import Dict, Tuple

import torch

from ..nm import topn_magnitude_mask_like
from .base import NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .registry import register_nm_layer


class _SRSTEMaskedWeight(torch.autograd.Function):
    """``weight * mask`` whose weight gradient is the dense STE gradient plus
    ``lambda_w * (1 - mask) * weight`` (``lambda_w`` as given: the layer passes its
    ``lambda_w * nm_grad_scale``)."""

    @staticmethod
    def forward(ctx, weight, mask, lambda_w):  # noqa: D102
        # `mask` is bool: saved as it is (a quarter of a float mask); the weight is the
        # parameter itself (saving it costs no memory)
        ctx.save_for_backward(weight, mask)
        ctx.lambda_w = lambda_w
        return weight * mask

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        weight, mask = ctx.saved_tensors
        grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_weight = grad
            if ctx.lambda_w:
                # kept weights: grad; pruned ones: grad + lambda_w * w
                grad_weight = torch.where(mask, grad, grad + ctx.lambda_w * weight)
        return grad_weight, None, None


class SRSTEMixin(NMSparseMixin):
    """The SR-STE method; combine with :class:`NMSparseConv2d` /
    :class:`NMSparseLinear`."""
    nm_method = 'srste'
    nm_display_name = 'SR-STE'
    nm_plot_style = ('s', 'tab:blue')
    nm_extra_state_names: Tuple[str, ...] = ()

    def _nm_configure(self, lambda_w: float = 2e-4) -> None:
        if isinstance(lambda_w, bool) or not isinstance(lambda_w, (int, float)):
            raise ValueError(f'SR-STE: `lambda_w` must be a number >= 0, got '
                             f'{lambda_w!r} ({type(lambda_w).__name__})')
        if not lambda_w >= 0:  # also refuses NaN
            raise ValueError(f'SR-STE: `lambda_w` must be >= 0, got lambda_w={lambda_w}')
        self.lambda_w = float(lambda_w)

    def _nm_init_state(self) -> None:
        # the mask seen by the previous nm_stats() call (flip rate); not saved
        self.register_buffer('_stats_mask', None, persistent=False)

    # ----------------------------------------------------------------- mask
    @torch.no_grad()
    def _topn_mask(self) -> torch.Tensor:
        """Bool top-N ``|w|`` mask of the current weights, shaped like ``weight``
        (computed in the weight's layout: no grouped copy)."""
        return topn_magnitude_mask_like(self.weight, self.nm_n, self.nm_m)

    def _nm_mask(self) -> torch.Tensor:
        return self._topn_mask().to(self.weight.dtype)

    def _nm_forward_weight(self) -> torch.Tensor:
        mask = self._topn_mask()  # bool: `weight * mask` saves it as bool
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return self.weight * mask
        # the decay is scaled like the incoming gradient (module docstring)
        return _SRSTEMaskedWeight.apply(self.weight, mask,
                                        self.lambda_w * self.nm_grad_scale)

    # ----------------------------------------------------------------- protocol
    # no schedule (_nm_update): the mask follows the weights at every forward

    def _nm_densities(self) -> Dict[str, float]:
        return self.nm_schedule_densities(self.nm_n, self.nm_m, 0.0, 0.0, 0.0)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf):
        # no schedule; every weight gets the dense gradient: the weight gradient is dense
        d = n / m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    def _nm_stats(self) -> Dict[str, float]:
        mask = self._topn_mask()
        prev = self._stats_mask
        if prev is None or prev.shape != mask.shape:
            flip_rate = 0.0
        else:
            flip_rate = float((mask != prev.to(mask.device)).count_nonzero()) / max(
                mask.numel(), 1)
        self._stats_mask = mask
        return dict(flip_rate=flip_rate)

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        return f'{base}, lambda_w={self.lambda_w:g}' if self.nm_eligible else base


@register_nm_layer
class SRSTEConv2d(SRSTEMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with SR-STE. Use as
    ``conv_cfg=dict(type='SRSTEConv2d', n=2, m=4, lambda_w=2e-4)``."""


@register_nm_layer
class SRSTELinear(SRSTEMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with SR-STE."""
