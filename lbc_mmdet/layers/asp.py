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
from typing import Dict, Tuple

import torch

from ..errors import CheckpointMismatchError
from ..nm import from_groups, to_groups, topn_magnitude_mask
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .registry import register_method, register_nm_layer

register_method('asp', display_name='ASP', plot_style=('^', 'tab:green'))


class ASPMixin(NMSparseMixin):
    """The ASP method; combine with :class:`NMSparseConv2d` / :class:`NMSparseLinear`."""
    nm_method = 'asp'
    nm_extra_state_names: Tuple[str, ...] = ('mask', 'pruned')

    def _nm_init_state(self) -> None:
        device = self.weight.device
        self.register_buffer(
            'mask', torch.ones(self.weight.shape, dtype=torch.bool, device=device))
        self.register_buffer('pruned', torch.tensor(False, device=device))

    # ----------------------------------------------------------------- state
    @property
    def is_pruned(self) -> bool:
        """True once the mask has been computed (ineligible layers: never)."""
        return bool(self.nm_eligible and self.pruned)

    def _nm_mask(self) -> torch.Tensor:
        # all ones before pruning: dense forward and gradient
        return self.mask.to(self.weight.dtype)

    def _nm_forward_weight(self) -> torch.Tensor:
        # the bool mask as it is (autograd saves it for the backward: a quarter of a
        # float copy)
        return self.weight * self.mask

    # ----------------------------------------------------------------- pruning
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
        self.mask.copy_(from_groups(groups, self.weight.shape))
        self.pruned.fill_(True)
        self.weight.mul_(self.mask)
        return True

    @torch.no_grad()
    def _nm_update(self, state: NMScheduleState) -> bool:
        if bool(self.pruned):
            # keep the pruned weights exactly zero whatever the optimizer did
            self.weight.mul_(self.mask)
            return False
        if state.t >= state.ti:
            return self.prune_now()
        return False

    # ----------------------------------------------------------------- protocol
    def _nm_densities(self) -> Dict[str, float]:
        # dense before pruning; after it the weight gradient is masked too
        d = self.nm_n / self.nm_m if self.is_pruned else 1.0
        return dict(forward=d, input_grad=d, weight_grad=d)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf):
        # dense until the mask is computed at ti, then every pass follows it
        d = 1.0 if t < ti else n / m
        return dict(forward=d, input_grad=d, weight_grad=d)

    def _nm_stats(self) -> Dict[str, float]:
        return dict(pruned=float(bool(self.pruned)))

    def _nm_check_loaded(self, state_dict: dict, prefix: str) -> None:
        saved_mask = state_dict.get(prefix + 'mask')
        saved_pruned = state_dict.get(prefix + 'pruned')
        if saved_mask is not None and saved_pruned is not None and bool(saved_pruned):
            counts = to_groups(saved_mask.to(torch.int32), self.nm_m).sum(dim=1)
            if not bool((counts == self.nm_n).all()):
                raise CheckpointMismatchError(
                    f'{prefix}mask: the checkpoint\'s mask does not keep exactly '
                    f'{self.nm_n} of every {self.nm_m} weights: it was pruned with '
                    'another N:M pattern.')


@register_nm_layer
class ASPConv2d(ASPMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` pruned once by magnitude (NVIDIA ASP). Use as
    ``conv_cfg=dict(type='ASPConv2d', n=2, m=4)``."""


@register_nm_layer
class ASPLinear(ASPMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` pruned once by magnitude (NVIDIA ASP)."""
