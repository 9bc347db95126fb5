"""What every N:M sparse layer shares, whatever its method.

A sparse layer *is* an ``nn.Conv2d`` / ``nn.Linear`` (as detectron2's ``Conv2d`` wrapper and
timm's ``StdConv2d``): it keeps the ``weight``/``bias`` names, so pretrained, resumed and
exported checkpoints keep their keys, and it swaps the weight for ``weight * mask`` in
``forward``. Each method (``lbc.py``, ``srste.py``, ``asp.py``, ``bame.py``) is a mixin
that defines how the mask is made and how it evolves.

The protocol the hook and the tools rely on:

- ``nm_n``, ``nm_m``, ``nm_method``, ``nm_eligible`` and ``nm_skip_reason``;
- ``nm_mask()``: the current mask, shaped like ``weight``;
- ``effective_weight()``: ``weight * mask`` (what the layer computes with);
- ``nm_update(state)``: called after every training iteration by ``NMSparsityHook``;
- ``nm_stats()``: plain numbers for the logs;
- ``nm_train_densities()``: the fraction of dense multiply-adds each pass costs now;
- ``nm_extra_state_names``: names of the method's own parameters/buffers, dropped on
  export.
"""
import inspect
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nm import group_size_error, num_groups, to_groups, validate_pattern


@dataclass(frozen=True)
class NMScheduleState:
    """Where training is, as ``NMSparsityHook`` tells the layers.

    Args:
        t (float): Progress in the schedule's unit (epochs, fractional by default, for
            epoch-based loops; iterations for iteration-based loops).
        ti (float): Start of the sparsification window, same unit.
        tf (float): End of the window, same unit.
        iteration (int): Training iterations completed so far.
    """
    t: float
    ti: float
    tf: float
    iteration: int


class NMSparseMixin:
    """State and protocol shared by the sparse layers of every method.

    Subclasses set ``nm_method`` and implement :meth:`_nm_init_state`,
    :meth:`_masked_weight` (the differentiable ``weight * mask`` of the forward),
    :meth:`nm_mask` and :meth:`nm_update`.
    """
    nm_method: str = 'dense'
    nm_extra_state_names: Tuple[str, ...] = ()

    weight: nn.Parameter

    def _nm_setup(self, n: int, m: int, **method_kwargs) -> None:
        validate_pattern(n, m)
        self._nm_configure(**method_kwargs)
        self.nm_n = n
        self.nm_m = m
        self.nm_skip_reason: Optional[str] = group_size_error(
            tuple(self.weight.shape), m)
        self.nm_eligible = self.nm_skip_reason is None
        if self.nm_eligible:
            self._nm_init_state()

    # ----------------------------------------------------------------- protocol
    @property
    def nm_num_groups(self) -> int:
        return num_groups(self.weight.shape, self.nm_m)

    def _nm_configure(self) -> None:
        """Store the method's own options (its keyword arguments, validated)."""

    @classmethod
    def _nm_split_kwargs(cls, kwargs: dict) -> dict:
        """Pop the method's options (the parameters of ``_nm_configure``) from
        ``kwargs``."""
        names = inspect.signature(cls._nm_configure).parameters
        return {k: kwargs.pop(k) for k in list(kwargs) if k in names and k != 'self'}

    def _nm_init_state(self) -> None:
        """Create the method's parameters and buffers (eligible layers only)."""

    def nm_mask(self) -> torch.Tensor:
        """The current mask, shaped like ``weight`` (ones for ineligible layers)."""
        return torch.ones_like(self.weight)

    def nm_update(self, state: NMScheduleState) -> bool:
        """Advance the method's schedule; return True when the mask changed."""
        return False

    def nm_train_densities(self) -> Dict[str, float]:
        """Fractions of the dense layer's multiply-adds each pass of a training step
        costs now: ``forward`` (``x * W``), ``input_grad`` (``dY * W``) and
        ``weight_grad`` (``dY * x`` restricted to the weights that get a gradient).
        Used for the "FLOPs (Train)" accounting. Dense by default."""
        return dict(forward=1.0, input_grad=1.0, weight_grad=1.0)

    def _masked_weight(self) -> torch.Tensor:
        """The weight used by the forward pass (differentiable)."""
        return self.weight

    def sparse_weight(self) -> torch.Tensor:
        """The weight the forward uses: dense for ineligible layers."""
        return self._masked_weight() if self.nm_eligible else self.weight

    @torch.no_grad()
    def effective_weight(self) -> torch.Tensor:
        """``weight * mask``, detached: what the layer computes with."""
        return self.weight * self.nm_mask().to(self.weight.dtype)

    def nm_is_exact(self) -> bool:
        """True iff every group of the effective weight's mask keeps exactly N."""
        if not self.nm_eligible:
            return False
        counts = to_groups(self.nm_mask(), self.nm_m).sum(dim=1)
        return bool((counts == self.nm_n).all())

    @torch.no_grad()
    def nm_stats(self) -> Dict[str, float]:
        """Plain numbers describing the layer's sparsity state."""
        if not self.nm_eligible:
            return dict(eligible=0.0)
        mask = self.nm_mask()
        return dict(eligible=1.0, numel=float(mask.numel()),
                    nonzero=float(mask.count_nonzero()),
                    exact=float(self.nm_is_exact()))

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        state = (f'{self.nm_n}:{self.nm_m}' if self.nm_eligible else
                 f'dense ({self.nm_skip_reason})')
        return f'{base}, nm={self.nm_method} {state}'

    # ----------------------------------------------------------------- creation
    @classmethod
    def from_dense(cls, module: nn.Module, **kwargs) -> nn.Module:
        """Turn ``module`` (an ``nn.Conv2d``/``nn.Linear``) into this sparse class in
        place of a new object, *reusing its Parameters* so that optimizers, tied weights
        and state_dict keys are unaffected."""
        new = cls.__new__(cls)
        new.__dict__ = module.__dict__.copy()
        new._parameters = module._parameters
        new._buffers = module._buffers
        new._modules = module._modules
        new._nm_setup(**kwargs)
        return new


class NMSparseConv2d(NMSparseMixin, nn.Conv2d):
    """``nn.Conv2d`` computing with :meth:`sparse_weight`. Extra kwargs: ``n``, ``m``
    (and the method's own)."""

    def __init__(self, *args, n: int = 2, m: int = 4, **kwargs):
        method_kwargs = self._nm_split_kwargs(kwargs)
        super().__init__(*args, **kwargs)
        self._nm_setup(n=n, m=m, **method_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.sparse_weight(), self.bias)


class NMSparseLinear(NMSparseMixin, nn.Linear):
    """``nn.Linear`` computing with :meth:`sparse_weight`."""

    def __init__(self, *args, n: int = 2, m: int = 4, **kwargs):
        method_kwargs = self._nm_split_kwargs(kwargs)
        super().__init__(*args, **kwargs)
        self._nm_setup(n=n, m=m, **method_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.sparse_weight(), self.bias)
