"""ASP: NVIDIA's Automatic SParsity recipe (one-shot magnitude N:M pruning, then fine-tune).

The layer trains dense until the schedule reaches ``ti`` (``state.t >= state.ti`` in
:meth:`ASPMixin.nm_update`, called by ``NMSparsityHook`` after every optimizer step). It
then computes the N:M mask *once* (the N largest ``|w|`` of every group of M, the project's
grouping), stores it in the persistent bool buffer ``mask`` (shaped like ``weight``, so it
survives checkpoints and resumes) with the persistent flag ``pruned``, and zeroes the
pruned weights in place. The mask is fixed afterwards:

- the forward uses ``weight * mask``, so pruned weights get a zero gradient;
- :meth:`ASPMixin.nm_update` re-applies ``weight.mul_(mask)`` after every step, so momentum
  accumulated while dense, or any optimizer that moves zero-gradient weights, cannot move
  them off zero.

For the one-shot use (load a dense checkpoint, prune, fine-tune), call
:meth:`ASPMixin.prune_now` on every layer (or run the hook with ``ti=0``: it prunes at
``before_train``).

Decisions beyond the recipe:

- Before pruning the mask buffer is all ones, so the forward is the same
  ``weight * mask`` in both phases (no host-device sync on the ``pruned`` flag per forward).
- A checkpoint whose ``mask`` does not have the weight's shape, or whose pruned mask does
  not keep exactly N of every M for this layer's pattern, is refused with a RuntimeError.
"""
from typing import Dict

import torch

from ..nm import from_groups, to_groups, topn_magnitude_mask
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear
from .fixed_mask import FixedMaskMixin
from .registry import register_method, register_nm_layer

register_method('asp', display_name='ASP', plot_style=('^', 'tab:green'))


class ASPMixin(FixedMaskMixin):
    """The ASP method; combine with :class:`NMSparseConv2d` / :class:`NMSparseLinear`."""
    nm_method = 'asp'

    @torch.no_grad()
    def prune_now(self) -> bool:
        """Compute the N:M magnitude mask from the current weights, store it and zero the
        pruned weights. Does nothing on an ineligible or already pruned layer (the mask is
        computed once).

        Returns:
            bool: Whether the layer was pruned by this call.
        """
        if not self.nm_eligible or bool(self.pruned):
            return False
        groups = topn_magnitude_mask(to_groups(self.weight.detach(), self.nm_m), self.nm_n)
        return self._fix_mask(from_groups(groups, self.weight.shape))

    @torch.no_grad()
    def _nm_update(self, state: NMScheduleState) -> bool:
        if bool(self.pruned):
            self._keep_pruned_zero()
            return False
        if state.t >= state.ti:
            return self.prune_now()
        return False

    def _nm_stats(self) -> Dict[str, float]:
        return dict(pruned=float(bool(self.pruned)))


@register_nm_layer
class ASPConv2d(ASPMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` pruned once by magnitude (NVIDIA ASP). Use as
    ``conv_cfg=dict(type='ASPConv2d', n=2, m=4)``."""


@register_nm_layer
class ASPLinear(ASPMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` pruned once by magnitude (NVIDIA ASP)."""
