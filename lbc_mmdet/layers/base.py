"""What every N:M sparse layer shares, whatever its method.

A sparse layer *is* an ``nn.Conv2d`` / ``nn.Linear`` (as detectron2's ``Conv2d`` wrapper
and timm's ``StdConv2d``): it keeps the ``weight``/``bias`` names, so pretrained, resumed
and exported checkpoints keep their keys, and its forward computes with
:meth:`NMSparseMixin.forward_weight`. A method is a mixin that implements the ``_nm_*``
hooks below; the public protocol (what the hooks, tools and accounting call) lives here
once, with the eligibility guard, the state-shape check on load and the recognition of a
dense checkpoint. See ``docs/adding_a_method.md``.
"""
import inspect
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointMismatchError
from ..nm import group_size_error, num_groups, to_groups, validate_pattern
from .registry import display_name

#: Per-pass densities of a dense layer (see :meth:`NMSparseMixin.nm_train_densities`).
DENSE_DENSITIES: Dict[str, float] = dict(forward=1.0, input_grad=1.0, weight_grad=1.0)


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

    A method's mixin sets ``nm_method`` (its registry key, declared with its display
    name and plot style by ``register_method`` in the method's file) and
    ``nm_extra_state_names`` (its own parameters and buffers: they travel in checkpoints,
    are shape-checked on load, copied into an EMA model and dropped on export) and
    implements ``_nm_init_state``, ``_nm_mask`` and, where it differs from the defaults,
    the classmethod ``nm_validate_options`` (its options), ``_nm_forward_weight``,
    ``_nm_update``, ``_nm_densities``, ``_nm_stats``, ``_nm_diagnostics``,
    ``_nm_check_loaded`` and ``nm_warnings``. The ``_nm_*`` hooks are only called on
    eligible layers.
    """
    nm_method: str = ''
    nm_extra_state_names: Tuple[str, ...] = ()
    #: How many times larger the gradient reaching this layer's backward is than the
    #: iteration's true gradient: the AMP loss scale divided by the gradient-accumulation
    #: loss factor (``NMSparsityHook`` sets it before every training iteration). A method
    #: that adds to the gradient, or accumulates it, in its backward (SR-STE, BAME) uses
    #: it so that its term does not depend on either; 1.0 outside training.
    nm_grad_scale: float = 1.0

    weight: nn.Parameter

    def _nm_setup(self, n: int, m: int, **method_kwargs) -> None:
        validate_pattern(n, m)
        for name, value in self.nm_validate_options(**method_kwargs).items():
            setattr(self, name, value)
        self.nm_n = n
        self.nm_m = m
        self.nm_skip_reason: Optional[str] = group_size_error(
            tuple(self.weight.shape), m)
        self.nm_eligible = self.nm_skip_reason is None
        #: True after a checkpoint without this method's state (a dense one) was loaded
        self.nm_init_from_dense = False
        if self.nm_eligible:
            self._nm_init_state()
            # the mask at the previous nm_diagnostics() call (flip rate): a plain
            # attribute, not a buffer (MMEngine's EMA pairs buffers by position)
            self._nm_diag_mask: Optional[torch.Tensor] = None

    # ------------------------------------------------------------ method hooks
    @classmethod
    def nm_validate_options(cls) -> Dict[str, Any]:
        """Validate the method's own options and return what the layer stores.

        A method overrides it with its options as keyword parameters with defaults: the
        signature *is* the list of options (``conv_cfg=dict(type=..., n=2, m=4,
        every=2)`` passes ``every`` here). The layer's constructor sets the returned
        items as its attributes; the config check (``validate_sparsity_cfg``) calls it
        before anything is built. It sees the class (its constants), never a layer.

        Returns:
            dict: Attribute name -> value, set on the layer (default: nothing).

        Raises:
            ValueError: An option is invalid (the message says what to change).
        """
        return {}

    def _nm_init_state(self) -> None:
        """Create the method's parameters and buffers."""

    def _nm_mask(self) -> torch.Tensor:
        """The current mask, shaped like ``weight``."""
        raise NotImplementedError

    def _nm_forward_weight(self) -> torch.Tensor:
        """The differentiable weight of the forward pass (``weight * mask``)."""
        return self.weight * self._nm_mask().to(self.weight.dtype)

    def _nm_update(self, state: NMScheduleState) -> bool:
        """Advance the method's schedule; True when the mask changed."""
        return False

    def _nm_densities(self) -> Dict[str, float]:
        """Per-pass densities now (see :meth:`nm_train_densities`); default: every pass
        follows the mask."""
        d = float(self._nm_mask().float().mean())
        return dict(forward=d, input_grad=d, weight_grad=d)

    def _nm_stats(self) -> Dict[str, float]:
        """The method's own statistics (plain numbers), logged as their mean over the
        layers."""
        return {}

    def _nm_diagnostics(self, mask: torch.Tensor, start: bool) -> Dict[str, float]:
        """The method's own mask-health values (plain numbers) for
        :meth:`nm_diagnostics`; ``mask`` is the current mask (bool, weight-shaped),
        ``start`` True at the start of a run (:meth:`nm_diagnostics_start`). Default:
        none."""
        return {}

    def _nm_check_loaded(self, state_dict: dict, prefix: str) -> None:
        """Validate the method's state in a checkpoint beyond shapes (raise
        :class:`~lbc_mmdet.errors.CheckpointMismatchError`)."""

    def nm_warnings(self) -> List[str]:
        """Short notes on this layer the hook lists once at the start of training."""
        return []

    @classmethod
    def nm_schedule_densities(cls, n: int, m: int, t: float, ti: float,
                              tf: float) -> Optional[Dict[str, float]]:
        """The per-pass densities (as :meth:`nm_train_densities`) of an ``n:m`` layer at
        time ``t`` of the window ``[ti, tf]`` when they follow from the schedule alone,
        else None (they depend on what training learns). Used by the training-FLOPs
        tool (``tools/train_flops.py``); default: not known."""
        return None

    @classmethod
    def nm_schedule_density_bounds(cls, n: int, m: int, t: float, ti: float,
                                   tf: float) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Lower and upper per-pass densities when :meth:`nm_schedule_densities` cannot
        tell (default: between ``n/m`` and dense for every pass)."""
        d = n / m
        return dict(forward=d, input_grad=d, weight_grad=d), dict(DENSE_DENSITIES)

    # ------------------------------------------------------------ protocol
    @property
    def nm_num_groups(self) -> int:
        return num_groups(self.weight.shape, self.nm_m)

    @classmethod
    def nm_option_names(cls) -> Tuple[str, ...]:
        """The method's options (the parameters of :meth:`nm_validate_options`); a
        ``TypeError`` when the method still defines the former ``_nm_configure``."""
        if hasattr(cls, '_nm_configure'):
            raise TypeError(f'{cls.__name__}: `_nm_configure(self, ...)` is gone: validate '
                            'the options in the classmethod `nm_validate_options(cls, '
                            '**options) -> dict` (docs/adding_a_method.md)')
        params = inspect.signature(cls.nm_validate_options).parameters.values()
        return tuple(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    @classmethod
    def _nm_split_kwargs(cls, kwargs: dict) -> dict:
        """Pop the method's options (:meth:`nm_option_names`) from ``kwargs``."""
        names = cls.nm_option_names()
        return {k: kwargs.pop(k) for k in list(kwargs) if k in names}

    def nm_mask(self) -> torch.Tensor:
        """The current mask, shaped like ``weight`` (ones for ineligible layers)."""
        if not self.nm_eligible:
            return torch.ones_like(self.weight)
        return self._nm_mask()

    def nm_refresh(self) -> None:
        """Bring what the forward derives from the mask state up to date, without making
        a copy of the mask (what the next forward does first). Methods that cache a
        weight-shaped mask rebuild it here (``_nm_refresh``); default: nothing to do."""
        if self.nm_eligible:
            self._nm_refresh()

    def _nm_refresh(self) -> None:
        """Method hook of :meth:`nm_refresh` (default: the mask is always current)."""

    def forward_weight(self) -> torch.Tensor:
        """The weight the forward computes with, differentiable (``weight`` itself for an
        ineligible layer)."""
        return self._nm_forward_weight() if self.nm_eligible else self.weight

    @torch.no_grad()
    def masked_weight(self) -> torch.Tensor:
        """``weight * mask``, detached: what the layer computes with (what export folds
        in)."""
        return self.weight * self.nm_mask().to(self.weight.dtype)

    def nm_update(self, state: NMScheduleState) -> bool:
        """Advance the method's schedule (``NMSparsityHook`` calls it after every training
        iteration); True when the mask changed."""
        return bool(self._nm_update(state)) if self.nm_eligible else False

    def nm_calibration_needs(self) -> Optional[str]:
        """What the layer still needs from ``CalibrationHook``: None (nothing),
        ``'weights'`` (a call of :meth:`nm_calibrate` without data), ``'norms'`` or
        ``'hessian'`` (:class:`~lbc_mmdet.nm.InputStatistics`); method hook
        ``_nm_calibration_needs`` (default None)."""
        need = getattr(self, '_nm_calibration_needs', None)
        return need() if self.nm_eligible and need is not None else None

    def nm_calibrate(self, stats) -> bool:
        """Use the input statistics asked for (None for ``'weights'``; method hook
        ``_nm_calibrate``); True when the mask changed."""
        return bool(self._nm_calibrate(stats)) if self.nm_eligible else False

    @torch.no_grad()
    def nm_train_densities(self) -> Dict[str, float]:
        """Fractions of the dense layer's multiply-adds each pass of a training step
        costs now: ``forward`` (``x * W``), ``input_grad`` (``dY * W``) and
        ``weight_grad`` (``dY * x`` restricted to the weights that get a gradient).
        Dense for ineligible layers."""
        return self._nm_densities() if self.nm_eligible else dict(DENSE_DENSITIES)

    def nm_is_exact(self) -> bool:
        """True iff every group of the mask keeps exactly N weights."""
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
        stats = dict(eligible=1.0, numel=float(mask.numel()),
                     nonzero=float(mask.count_nonzero()), exact=float(self.nm_is_exact()))
        stats.update(self._nm_stats())
        return stats

    @torch.no_grad()
    def nm_diagnostics(self, start: bool = False) -> Dict[str, float]:
        """Mask-health values of the layer (``docs/methods.md``, "Mask diagnostics"):
        ``flip_rate``, the fraction of its weights whose mask bit changed since the
        previous call (0 on the first call, and with ``start``), and the method's own
        values (``_nm_diagnostics``). Empty for an ineligible layer. Costs one mask and
        keeps a bool copy of it."""
        if not self.nm_eligible:
            return {}
        mask = self.nm_mask().detach() != 0
        prev = self._nm_diag_mask
        if start or prev is None or prev.shape != mask.shape:
            flip = 0.0
        else:
            flip = float((mask != prev.to(mask.device)).count_nonzero()) / max(
                mask.numel(), 1)
        self._nm_diag_mask = mask
        out = dict(flip_rate=flip)
        out.update(self._nm_diagnostics(mask, start))
        return out

    def nm_diagnostics_start(self) -> Dict[str, float]:
        """:meth:`nm_diagnostics` at the start of a run (``NMSparsityHook.before_train``):
        the current mask becomes the reference of the next flip rate and of the methods'
        distances to the start."""
        return self.nm_diagnostics(start=True)

    def nm_state_tensors(self) -> Dict[str, torch.Tensor]:
        """The method's own parameters and buffers that travel in checkpoints."""
        out = {}
        for name in self.nm_extra_state_names:
            value = self._parameters.get(name, self._buffers.get(name))
            if isinstance(value, torch.Tensor) and name not in getattr(
                    self, '_non_persistent_buffers_set', ()):
                out[name] = value
        return out

    @torch.no_grad()
    def nm_copy_state_to(self, other: 'NMSparseMixin') -> None:
        """Copy this layer's method buffers (its mask state) into ``other``, the same
        layer of an averaged (EMA) model (``NMSparsityHook`` keeps the EMA's masks equal
        to the live ones: MMEngine averages only floating-point state). Parameters are
        left to the averaging."""
        if not (self.nm_eligible and getattr(other, 'nm_eligible', False)):
            return
        mine = dict(self.named_buffers(recurse=False))  # type: ignore[attr-defined]
        theirs = dict(other.named_buffers(recurse=False))  # type: ignore[attr-defined]
        for name in self.nm_extra_state_names:
            src, dst = mine.get(name), theirs.get(name)
            if src is not None and dst is not None:
                dst.copy_(src.to(dst.device))

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        state = (f'{self.nm_n}:{self.nm_m}' if self.nm_eligible else
                 f'dense ({self.nm_skip_reason})')
        return f'{base}, nm={self.nm_method} {state}'

    # ------------------------------------------------------------ loading
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        own = self.nm_state_tensors() if self.nm_eligible else {}
        present = [k for k in own if prefix + k in state_dict]
        for name in present:
            saved, mine = state_dict[prefix + name], own[name]
            if isinstance(saved, torch.Tensor) and tuple(saved.shape) != tuple(mine.shape):
                raise CheckpointMismatchError(
                    f'{prefix}{name}: the checkpoint holds shape {tuple(saved.shape)} but '
                    f'this {self.nm_n}:{self.nm_m} {display_name(self.nm_method)}'
                    f' layer has {tuple(mine.shape)}: the checkpoint was trained with '
                    'another N:M pattern or model.')
        if present:
            self._nm_check_loaded(state_dict, prefix)
        n_missing = len(missing_keys)
        super()._load_from_state_dict(  # type: ignore[misc]
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
            error_msgs)
        if own and not present and prefix + 'weight' in state_dict:
            # a dense checkpoint: the method's state keeps its initial value; this is
            # expected, not a missing key (NMSparsityHook reports it in one line)
            expected = {prefix + k for k in own}
            missing_keys[n_missing:] = [k for k in missing_keys[n_missing:]
                                        if k not in expected]
            self.nm_init_from_dense = True

    # ------------------------------------------------------------ creation
    @classmethod
    def from_dense(cls, module: nn.Module, **kwargs) -> nn.Module:
        """Turn ``module`` (an ``nn.Conv2d``/``nn.Linear``) into this sparse class
        *reusing its Parameters*, so that optimizers, tied weights and state_dict keys are
        unaffected."""
        new = cls.__new__(cls)
        new.__dict__ = module.__dict__.copy()
        new._parameters = module._parameters
        new._buffers = module._buffers
        new._modules = module._modules
        new._nm_setup(**kwargs)
        return new


class NMSparseConv2d(NMSparseMixin, nn.Conv2d):
    """``nn.Conv2d`` computing with :meth:`forward_weight`. Extra kwargs: ``n``, ``m``
    (and the method's own)."""

    def __init__(self, *args, n: int = 2, m: int = 4, **kwargs):
        method_kwargs = self._nm_split_kwargs(kwargs)
        super().__init__(*args, **kwargs)
        self._nm_setup(n=n, m=m, **method_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.forward_weight(), self.bias)


class NMSparseLinear(NMSparseMixin, nn.Linear):
    """``nn.Linear`` computing with :meth:`forward_weight`."""

    def __init__(self, *args, n: int = 2, m: int = 4, **kwargs):
        method_kwargs = self._nm_split_kwargs(kwargs)
        super().__init__(*args, **kwargs)
        self._nm_setup(n=n, m=m, **method_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.forward_weight(), self.bias)


def sparse_layers(model: nn.Module) -> List[Tuple[str, NMSparseMixin]]:
    """``(name, layer)`` for every N:M sparse layer of ``model`` (eligible or not)."""
    return [(name, mod) for name, mod in model.named_modules()
            if isinstance(mod, NMSparseMixin)]


def set_nm_grad_scale(model: nn.Module, scale: float) -> None:
    """Set :attr:`NMSparseMixin.nm_grad_scale` of every sparse layer of ``model``."""
    for _, layer in sparse_layers(model):
        layer.nm_grad_scale = float(scale)
