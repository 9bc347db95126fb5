"""What the methods whose N:M mask is computed once and then fixed share (ASP's magnitude
prune, the one-shot pruners): a mixin, not a method -- it registers nothing and names none.

The layer trains dense until its method fixes the mask (all ones before: the forward is
the same ``weight * mask`` in both phases, with no host-device sync on a flag). The mask
lives in the persistent bool buffer ``mask`` (shaped like ``weight``) with the flag
``pruned``, so it survives checkpoints and resumes; :meth:`FixedMaskMixin._fix_mask` writes
both and zeroes the pruned weights, :meth:`FixedMaskMixin._keep_pruned_zero` re-zeroes them
after every optimizer step (momentum accumulated while dense, or any optimizer that moves
zero-gradient weights, cannot move them off zero). A checkpoint whose pruned mask does not
keep exactly N of every M is refused.
"""
from typing import Dict, Optional, Tuple

import torch

from ..errors import CheckpointMismatchError
from ..nm import to_groups
from .base import NMSparseMixin


class FixedMaskMixin(NMSparseMixin):
    """State and protocol of a mask computed once (see the module docstring); a method
    mixes it in and decides when and how the mask is computed."""
    nm_extra_state_names: Tuple[str, ...] = ('mask', 'pruned')

    def _nm_init_state(self) -> None:
        device = self.weight.device
        self.register_buffer(
            'mask', torch.ones(self.weight.shape, dtype=torch.bool, device=device))
        self.register_buffer('pruned', torch.tensor(False, device=device))

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

    @torch.no_grad()
    def _fix_mask(self, mask: torch.Tensor, weight: Optional[torch.Tensor] = None) -> bool:
        """Store ``mask`` (bool, shaped like ``weight``), set ``pruned``, write ``weight``
        when given (a pruner that also updates the kept weights) and zero the pruned ones.

        Returns:
            bool: True (the mask changed).
        """
        if weight is not None:
            self.weight.copy_(weight.to(self.weight.dtype))
        self.mask.copy_(mask)
        self.pruned.fill_(True)
        self.weight.mul_(self.mask)
        return True

    @torch.no_grad()
    def _keep_pruned_zero(self) -> None:
        """Re-zero the pruned weights whatever the optimizer did."""
        self.weight.mul_(self.mask)

    def _nm_densities(self) -> Dict[str, float]:
        # dense before pruning; after it the weight gradient is masked too
        d = self.nm_n / self.nm_m if self.is_pruned else 1.0
        return dict(forward=d, input_grad=d, weight_grad=d)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf):
        # dense until the mask is computed at ti, then every pass follows it
        d = 1.0 if t < ti else n / m
        return dict(forward=d, input_grad=d, weight_grad=d)

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
