"""One-shot N:M pruning from calibration data at the start of training: magnitude, Wanda
(Sun et al., ICLR 2024) or SparseGPT (Frantar & Alistarh, ICML 2023), then a fine-tune
with the mask fixed.

``conv_cfg=dict(type='OneShotConv2d', n=2, m=4, criterion='sparsegpt')`` with
``CalibrationHook`` (which runs the calibration forward passes at ``before_train``, before
``NMSparsityHook``, and calls :meth:`~lbc_mmdet.layers.base.NMSparseMixin.nm_calibrate`
on every layer whose :meth:`nm_calibration_needs` is not None). The layer trains dense
until then (mask all ones). At calibration it computes the mask (and, for
``'sparsegpt'``, the OBS update of the kept weights) from the statistics of its inputs
(:func:`~lbc_mmdet.nm.prune_weight`), writes the new weights in place, and stores the mask
in the persistent bool buffer ``mask`` with the flag ``pruned``: a resumed run loads both
and is not pruned again. Afterwards it behaves as ASP: the forward uses ``weight * mask``
(pruned weights get no gradient) and :meth:`nm_update` re-zeroes them after every step.

Options: ``criterion`` (``'magnitude'``, ``'wanda'``, ``'sparsegpt'``; default
``'sparsegpt'``), ``damp`` (SparseGPT's damping, a fraction of the mean diagonal of the
Hessian; default 0.01) and ``block_size`` (SparseGPT's lazy-update block, in columns; a
multiple of M; default 128).

Decisions beyond the papers:

- ``'magnitude'`` needs no data: the layer prunes at the first :meth:`nm_update` with
  ``t >= ti`` (as ASP).
- A layer that needs data but was never calibrated (no ``CalibrationHook`` in the config)
  falls back to the magnitude mask at the first :meth:`nm_update` with ``t >= ti``, so the
  model still ends exactly N:M; it says so in its statistics (``fallback``) and in the
  hook's start-of-training notes.
"""
from typing import Dict, List, Optional

import torch

from ..nm import ONE_SHOT_CRITERIA, criterion_needs, prune_weight
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear
from .fixed_mask import FixedMaskMixin
from .registry import register_method, register_nm_layer

register_method('oneshot', display_name='One-shot', plot_style=('v', 'tab:cyan'))


class OneShotMixin(FixedMaskMixin):
    """The one-shot method; combine with :class:`NMSparseConv2d` /
    :class:`NMSparseLinear`."""
    nm_method = 'oneshot'
    #: True once the layer was pruned by magnitude for want of calibration (not saved)
    nm_fallback: bool = False

    @classmethod
    def nm_validate_options(cls, criterion: str = 'sparsegpt', damp: float = 0.01,
                            block_size: int = 128) -> dict:
        """The one-shot options.

        Args:
            criterion (str): ``'magnitude'``, ``'wanda'`` or ``'sparsegpt'``. Defaults
                to ``'sparsegpt'``.
            damp (float): SparseGPT's damping, a fraction of the mean diagonal of the
                Hessian (>= 0). Defaults to 0.01.
            block_size (int): SparseGPT's lazy-update block in columns (a positive
                multiple of M). Defaults to 128.

        Returns:
            dict: ``criterion``, ``damp`` (a float) and ``block_size``.
        """
        if criterion not in ONE_SHOT_CRITERIA:
            raise ValueError(f'One-shot: `criterion` must be one of '
                             f'{sorted(ONE_SHOT_CRITERIA)}, got {criterion!r}')
        if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not damp >= 0:
            raise ValueError(f'One-shot: `damp` must be a number >= 0, got {damp!r}')
        if isinstance(block_size, bool) or not isinstance(block_size, int) or \
                block_size < 1:
            raise ValueError(f'One-shot: `block_size` must be a positive integer, got '
                             f'{block_size!r}')
        return dict(criterion=criterion, damp=float(damp), block_size=block_size)

    def _nm_init_state(self) -> None:
        if self.block_size % self.nm_m:
            raise ValueError(f'One-shot: `block_size` ({self.block_size}) must be a '
                             f'multiple of M={self.nm_m}')
        super()._nm_init_state()

    # ----------------------------------------------------------------- pruning
    def _nm_calibration_needs(self) -> Optional[str]:
        # magnitude needs no data, but is pruned by the calibration hook all the same, so
        # that an evaluate-only run (tools/test.py, no schedule) evaluates it pruned
        return None if bool(self.pruned) else (criterion_needs(self.criterion) or 'weights')

    @torch.no_grad()
    def _nm_calibrate(self, stats) -> bool:
        if bool(self.pruned):
            return False
        new, mask = prune_weight(self.weight, self.nm_n, self.nm_m, self.criterion, stats,
                                 damp=self.damp, block_size=self.block_size)
        return self._fix_mask(mask, new)

    @torch.no_grad()
    def _nm_update(self, state: NMScheduleState) -> bool:
        if bool(self.pruned):
            self._keep_pruned_zero()
            return False
        if state.t < state.ti:
            return False
        # magnitude needs no data; a data criterion never calibrated falls back to it
        self.nm_fallback = criterion_needs(self.criterion) is not None
        new, mask = prune_weight(self.weight, self.nm_n, self.nm_m, 'magnitude')
        return self._fix_mask(mask, new)

    # ----------------------------------------------------------------- protocol
    def nm_warnings(self) -> List[str]:
        if not self.nm_eligible or bool(self.pruned) or \
                criterion_needs(self.criterion) is None:
            return []
        return [f'not calibrated ({self.criterion} needs calibration data: add '
                'CalibrationHook to custom_hooks); it will be pruned by magnitude']

    def _nm_stats(self) -> Dict[str, float]:
        return dict(pruned=float(bool(self.pruned)), fallback=float(self.nm_fallback))

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        return f'{base}, criterion={self.criterion}' if self.nm_eligible else base


@register_nm_layer
class OneShotConv2d(OneShotMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` pruned once from calibration data. Use as
    ``conv_cfg=dict(type='OneShotConv2d', n=2, m=4, criterion='sparsegpt')``."""


@register_nm_layer
class OneShotLinear(OneShotMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` pruned once from calibration data."""
