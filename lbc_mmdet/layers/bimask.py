"""Bi-Mask: Bi-directional Masks for efficient N:M sparse training (Zhang et al., ICML
2023, arXiv 2302.06058).

Two masks, one per direction of the layer's products:

- **forward mask** ``F``: the top N ``|w|`` of every group of M (the project's grouping,
  M consecutive input channels at one output channel and kernel position,
  :func:`~lbc_mmdet.nm.to_groups`), recomputed from the weights at every forward; the
  forward computes with ``w * F``.
- **backward mask** ``B``: N:M along the *output* channels, the reduction axis of the input
  gradient ``dX = dY W^T``: M consecutive output channels at one (input channel, ky, kx),
  after the output channels were reordered by the layer's permutation ``P``
  (:mod:`lbc_mmdet.nm.transposed`). ``B`` keeps, in each such group, the N largest
  ``|w * F|`` (the kept weights first), and the input gradient is computed with
  ``w * F * B``: at most N non-zeros per output group, every one of them a weight the
  forward used.
- ``P`` is the best of ``perm_candidates`` random permutations of the output channels: the
  one under which ``F * B`` keeps the most of ``F``. It is searched again every
  ``perm_interval`` iterations (``nm_update``, driven by ``NMSparsityHook``).

The weight gradient is dense (the straight-through estimator of ``w * F``) plus SR-STE's
decay of the pruned weights::

    dL/dw = dL/d(w * F) + lambda_w * (1 - F) * w

with the decay scaled by ``nm_grad_scale`` as in ``srste.py``: after AMP unscaling and
summing over a gradient-accumulation window it is added once per optimizer step, whatever
the loss scale and the accumulation.

The products are convolutions and their gradients (``F.conv2d`` forward,
``torch.nn.grad.conv2d_input`` with ``w * F * B`` and ``conv2d_weight`` backward) or, for
Linear, ``F.linear`` and matmuls. Decisions beyond the paper (docs/methods.md, Bi-Mask):
the candidates are drawn from a generator seeded with ``perm_seed`` and the iteration
(not the global random state), so a resumed run searches exactly as the uninterrupted
one; a layer whose output channels are not divisible by M, or a grouped convolution,
keeps the forward-masked weight for its input gradient (a warning lists them).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from ..errors import CheckpointMismatchError
from ..nm import (
                  best_output_permutation,
                  output_dim_nm_mask,
                  output_group_error,
                  topn_magnitude_mask_like,
)
from .base import NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .decay import decay_pruned
from .registry import register_method, register_nm_layer


class _BiMaskConv(torch.autograd.Function):
    """``conv2d(x, w * F)``; input gradient with ``w * BF``, dense weight gradient plus
    the decay (``BF`` is the backward mask already multiplied by ``F``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, fmask, bfmask, decay, conv):  # noqa: D102
        ctx.save_for_backward(x, weight, fmask, bfmask)
        ctx.decay, ctx.conv, ctx.has_bias = decay, conv, bias is not None
        return F.conv2d(x, weight * fmask, bias, *conv)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x, weight, fmask, bfmask = ctx.saved_tensors
        gx = gw = gb = None
        dt = grad.dtype  # the forward's compute dtype (autocast)
        if ctx.needs_input_grad[0]:
            gx = conv2d_input(x.shape, (weight * bfmask).to(dt), grad, *ctx.conv)
            gx = gx.to(x.dtype)
        if ctx.needs_input_grad[1]:
            gw = conv2d_weight(x.to(dt), weight.shape, grad, *ctx.conv).to(weight.dtype)
            gw = decay_pruned(gw, weight, fmask, ctx.decay)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None, None, None


class _BiMaskLinear(torch.autograd.Function):
    """:class:`_BiMaskConv` for ``F.linear``."""

    @staticmethod
    def forward(ctx, x, weight, bias, fmask, bfmask, decay):  # noqa: D102
        ctx.save_for_backward(x, weight, fmask, bfmask)
        ctx.decay, ctx.has_bias = decay, bias is not None
        return F.linear(x, weight * fmask, bias)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x, weight, fmask, bfmask = ctx.saved_tensors
        gx = gw = gb = None
        dt = grad.dtype
        g2 = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            gx = grad.matmul((weight * bfmask).to(dt)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            x2 = x.reshape(-1, x.shape[-1]).to(dt)
            gw = decay_pruned(g2.t().matmul(x2).to(weight.dtype), weight, fmask, ctx.decay)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(dim=0)
        return gx, gw, gb, None, None, None


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'Bi-Mask: `{name}` must be a positive integer, got {value!r}')
    return value


register_method('bimask', display_name='Bi-Mask', plot_style=('P', 'tab:brown'))


class BiMaskMixin(NMSparseMixin):
    """The Bi-Mask method; combine with :class:`NMSparseConv2d` /
    :class:`NMSparseLinear`."""
    nm_method = 'bimask'
    nm_extra_state_names: Tuple[str, ...] = ('out_perm', 'perm_iteration')
    #: the input gradient runs with a weight that is N:M along its reduction axis (set
    #: per layer: False where the backward stays dense)
    nm_sparse_input_grad = True

    @classmethod
    def nm_validate_options(cls, lambda_w: float = 2e-4, perm_candidates: int = 100,
                            perm_interval: int = 100, perm_seed: int = 0) -> dict:
        """Bi-Mask's options.

        Args:
            lambda_w (float): SR-STE's decay of the pruned weights. Defaults to ``2e-4``
                (the official code's constant).
            perm_candidates (int): Random output-channel permutations tried per search
                (the paper's and official code's G). Defaults to 100.
            perm_interval (int): Iterations between two searches (I). Defaults to 100.
            perm_seed (int): Seed of the candidates (with the iteration). Defaults to 0.

        Returns:
            dict: The four options, validated.
        """
        if isinstance(lambda_w, bool) or not isinstance(lambda_w, (int, float)):
            raise ValueError(f'Bi-Mask: `lambda_w` must be a number >= 0, got '
                             f'{lambda_w!r} ({type(lambda_w).__name__})')
        if not lambda_w >= 0:  # also refuses NaN
            raise ValueError(f'Bi-Mask: `lambda_w` must be >= 0, got lambda_w={lambda_w}')
        if isinstance(perm_seed, bool) or not isinstance(perm_seed, int) or perm_seed < 0:
            raise ValueError(f'Bi-Mask: `perm_seed` must be an integer >= 0, got '
                             f'{perm_seed!r}')
        return dict(lambda_w=float(lambda_w),
                    perm_candidates=_positive_int('perm_candidates', perm_candidates),
                    perm_interval=_positive_int('perm_interval', perm_interval),
                    perm_seed=perm_seed)

    def _nm_init_state(self) -> None:
        o = self.weight.shape[0]
        grouped = getattr(self, 'groups', 1) != 1
        self.bwd_skip_reason = ('grouped convolution' if grouped else
                                output_group_error(tuple(self.weight.shape), self.nm_m))
        self.nm_sparse_input_grad = self.bwd_skip_reason is None
        # the output-channel permutation of the backward mask, and the iteration it was
        # searched at (-1: never; identity until then)
        self.register_buffer('out_perm', torch.arange(o, device=self.weight.device))
        self.register_buffer('perm_iteration', torch.tensor(-1, dtype=torch.long))
        self._last_search = -1  # host copy of perm_iteration (None: read the buffer)

    # ----------------------------------------------------------------- masks
    @torch.no_grad()
    def _forward_mask(self) -> torch.Tensor:
        return topn_magnitude_mask_like(self.weight, self.nm_n, self.nm_m)

    @torch.no_grad()
    def _backward_forward_mask(self, fmask: torch.Tensor) -> torch.Tensor:
        """``F * B`` (bool): the mask of the input gradient's weight."""
        if not self.nm_sparse_input_grad:
            return fmask
        bmask = output_dim_nm_mask(self.weight, self.nm_n, self.nm_m, self.out_perm,
                                   keep=fmask)
        return fmask & bmask

    @torch.no_grad()
    def nm_backward_mask(self) -> torch.Tensor:
        """The backward mask ``B`` alone: exactly N of every M permuted output channels
        (bool, weight-shaped; the forward mask where the backward stays dense)."""
        fmask = self._forward_mask()
        if not self.nm_sparse_input_grad:
            return fmask
        return output_dim_nm_mask(self.weight, self.nm_n, self.nm_m, self.out_perm,
                                  keep=fmask)

    @torch.no_grad()
    def nm_input_grad_mask(self) -> torch.Tensor:
        """``F * B``: the mask of the weight the input gradient is computed with."""
        return self._backward_forward_mask(self._forward_mask())

    def _nm_mask(self) -> torch.Tensor:
        return self._forward_mask().to(self.weight.dtype)

    def _nm_forward_weight(self) -> torch.Tensor:
        return self.weight * self._forward_mask()

    def _bimask_args(self, x: torch.Tensor):
        """``(fmask, F * B, decay)`` when the custom backward is needed, else None."""
        if not (self.nm_eligible and torch.is_grad_enabled()
                and (self.weight.requires_grad or x.requires_grad)):
            return None
        fmask = self._forward_mask()
        return fmask, self._backward_forward_mask(fmask), self.lambda_w * self.nm_grad_scale

    # ----------------------------------------------------------------- schedule
    @torch.no_grad()
    def search_permutation(self, iteration: int) -> bool:
        """Search ``P`` now with the candidates of ``iteration``; True if it changed."""
        fmask = self._forward_mask()
        seed = self.perm_seed * 1_000_003 + int(iteration)
        perm, _ = best_output_permutation(fmask, self.nm_n, self.nm_m,
                                          self.perm_candidates, seed)
        changed = not torch.equal(perm, self.out_perm)
        self.out_perm.copy_(perm)
        self.perm_iteration.fill_(int(iteration))
        self._last_search = int(iteration)
        return changed

    def _nm_update(self, state) -> bool:
        if not self.nm_sparse_input_grad:
            return False
        if self._last_search is None:  # after a load: one read of the buffer
            self._last_search = int(self.perm_iteration)
        last = self._last_search
        if last == state.iteration or (last >= 0 and state.iteration % self.perm_interval):
            return False  # searched already (a resume), or not a search iteration
        return self.search_permutation(state.iteration)

    # ----------------------------------------------------------------- protocol
    def _nm_densities(self) -> Dict[str, float]:
        return self.nm_schedule_densities(self.nm_n, self.nm_m, 0.0, 0.0, 0.0)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf):
        # no schedule: the forward and the input gradient (its weight N:M along the
        # output channels) at N/M; every weight gets the dense gradient
        d = n / m
        return dict(forward=d, input_grad=d, weight_grad=1.0)

    def _nm_stats(self) -> Dict[str, float]:
        if not self.nm_sparse_input_grad:
            return {}
        fmask = self._forward_mask()
        kept = self._backward_forward_mask(fmask).count_nonzero()
        return dict(bwd_kept=float(kept) / max(float(fmask.count_nonzero()), 1.0))

    def _nm_check_loaded(self, state_dict: dict, prefix: str) -> None:
        self._last_search = None  # perm_iteration is being loaded
        perm = state_dict.get(prefix + 'out_perm')
        if isinstance(perm, torch.Tensor):
            ref = torch.arange(perm.numel(), device=perm.device)
            if perm.dtype != torch.long or not torch.equal(perm.sort()[0], ref):
                raise CheckpointMismatchError(
                    f'{prefix}out_perm is not a permutation of the {perm.numel()} output '
                    'channels: the checkpoint is corrupt or not a Bi-Mask one.')

    def nm_warnings(self) -> List[str]:
        if self.nm_sparse_input_grad:
            return []
        return [f'keep a dense-layout input gradient (Bi-Mask backward mask needs the '
                f'output channels in groups of M: {self.bwd_skip_reason})']

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        if not self.nm_eligible:
            return base
        return (f'{base}, lambda_w={self.lambda_w:g}, perm_candidates='
                f'{self.perm_candidates}, perm_interval={self.perm_interval}')


@register_nm_layer
class BiMaskConv2d(BiMaskMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with Bi-Mask. Use as
    ``conv_cfg=dict(type='BiMaskConv2d', n=2, m=4)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = self._bimask_args(x)
        if args is None:
            return super().forward(x)
        padding = self.padding
        if self.padding_mode != 'zeros' or isinstance(padding, str):
            # as nn.Conv2d: pad first ('same', reflect ...), then convolve unpadded
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, 0)
        conv = (self.stride, padding, self.dilation, self.groups)
        return _BiMaskConv.apply(x, self.weight, self.bias, *args, conv)


@register_nm_layer
class BiMaskLinear(BiMaskMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with Bi-Mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = self._bimask_args(x)
        if args is None:
            return super().forward(x)
        return _BiMaskLinear.apply(x, self.weight, self.bias, *args)
