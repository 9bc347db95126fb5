"""Fused weight-side kernels: the N:M maths that runs at every training step, compiled
with ``torch.compile`` (TorchInductor) into one loop over the weights where eager PyTorch
takes one pass per operation, with the eager code as the fallback.

What is fused (each kernel reads its inputs once and writes its outputs once):

- :func:`topn_mask_fused`: the top-N ``|w|`` mask of every group of M consecutive input
  channels at one kernel position (the project's grouping), compiled from the eager
  pairwise rank :func:`.ranks.pairwise_topn_along` (ties to the earlier entry, as the
  stable sort of :func:`~lbc_mmdet.nm.topn_magnitude_mask` decides);
- :func:`rank_mask_fused`: the same rank along dimension 1 of ``[B, M, L]`` blocks (the
  output-channel groups of a transposed mask);
- :func:`decay_pruned_fused`: ``grad + decay * w`` outside the kept weights, ``grad``
  on them (the sparse-refined decay's backward);
- :func:`candidate_grad_fused`: the straight-through gradients of learned candidate
  subsets: ``grad * mask`` for the weight and, for every candidate subset of a group,
  the sum of ``grad * weight`` over its members where the candidate is alive.

Control (environment variable ``LBC_MMDET_COMPILE``, or :func:`set_compile_mode`):

- ``0`` (default): never compile; the eager code of each caller runs;
- ``auto``: compile for CPU tensors, eager elsewhere (the CUDA path of Inductor needs
  Triton and is not tested here);
- ``1``: compile on every device.

Off by default: on the 2-core CPU machine of docs/performance.md the compiled kernels
were not faster than the eager code they replace (the measured comparison is there).

Compiling costs seconds once per kernel and shape family on a fresh machine (Inductor
caches the result on disk, ``TORCHINDUCTOR_CACHE_DIR``). A failure (no C++ compiler, an
unsupported build) is reported once with :func:`warnings.warn` and the eager code runs
from then on. Every kernel is also plain PyTorch: called eagerly it gives the same
values (masks bit for bit; floating-point results up to the last bit, where a fused
multiply-add rounds once), which is what the tests compare.
"""
import os
import warnings
from typing import Callable, Optional, Sequence, Tuple

import torch

from .ranks import pairwise_topn_along

COMPILE_MODES = ('auto', '0', '1')
_mode: Optional[str] = None
_failed: Optional[str] = None  # why compiling failed in this process (eager from then on)


def compile_mode() -> str:
    """The current mode: :func:`set_compile_mode`'s value, else ``LBC_MMDET_COMPILE``
    (default ``'0'``)."""
    if _mode is not None:
        return _mode
    mode = os.environ.get('LBC_MMDET_COMPILE', '0').strip().lower()
    mode = {'off': '0', 'false': '0', 'on': '1', 'true': '1'}.get(mode, mode)
    if mode not in COMPILE_MODES:
        raise ValueError(f'LBC_MMDET_COMPILE must be one of {COMPILE_MODES}, got {mode!r}')
    return mode


def set_compile_mode(mode: Optional[str]) -> None:
    """Override ``LBC_MMDET_COMPILE`` for this process (``None``: back to it).

    Args:
        mode (str, optional): ``'auto'``, ``'0'`` or ``'1'``.
    """
    global _mode, _failed
    _failed = None
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f'compile mode must be one of {COMPILE_MODES}, got {mode!r}')
    _mode = mode


class FusedKernel:
    """A function run compiled where :func:`compile_mode` allows it, eagerly otherwise.

    Args:
        fn (Callable): Plain PyTorch on canonical views; its tensor arguments come first,
            then integers that select a specialisation (group size, N).
        dynamic_dims (Sequence[Sequence[int]]): For each tensor argument, the dimensions
            whose size varies from layer to layer (marked dynamic, so that one compiled
            kernel serves every layer of a shape family).
    """

    def __init__(self, fn: Callable, dynamic_dims: Sequence[Sequence[int]]):
        self.fn = fn
        self.dynamic_dims = [tuple(d) for d in dynamic_dims]
        self._compiled: Optional[Callable] = None
        self.compiled_calls = 0  # calls that ran the compiled kernel (diagnostics, tests)
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not fused_available(tensors[0].device):
            return self.fn(*args)
        if self._compiled is None:
            _raise_recompile_limit()
            self._compiled = torch.compile(self.fn, dynamic=False)
        for t, dims in zip(tensors, self.dynamic_dims):
            for d in dims:
                if t.shape[d] > 1:  # a size-1 dimension is specialised anyway
                    torch._dynamo.mark_dynamic(t, d)
        try:
            out = self._compiled(*args)
            self.compiled_calls += 1
            return out
        except Exception as exc:  # noqa: BLE001 - any compile failure: eager from now on
            global _failed
            first = str(exc).splitlines()[0] if str(exc) else ''
            _failed = f'{self.__name__}: {type(exc).__name__}: {first}'
            warnings.warn(f'lbc_mmdet: torch.compile failed ({_failed}); the N:M layers '
                          f'use their eager code from now on (set LBC_MMDET_COMPILE=0 to '
                          f'skip compiling)', RuntimeWarning)
            return self.fn(*args)


def fused_available(device: torch.device) -> bool:
    """Whether the fused kernels run compiled for tensors on ``device`` (the mode allows
    it and no compile has failed in this process). Callers use their own eager code
    when it is False.

    Args:
        device (torch.device): The tensors' device.

    Returns:
        bool: Whether to call the fused kernels.
    """
    mode = compile_mode()
    if mode == '0' or _failed is not None or not hasattr(torch, 'compile'):
        return False
    return mode == '1' or device.type == 'cpu'


def _raise_recompile_limit(limit: int = 64) -> None:
    """Each (pattern, kernel size) pair is one specialisation: allow more than Dynamo's
    default of 8 per function before it falls back to eager."""
    cfg = torch._dynamo.config
    for name in ('recompile_limit', 'cache_size_limit'):
        if hasattr(cfg, name) and getattr(cfg, name) < limit:
            setattr(cfg, name, limit)


# --------------------------------------------------------------------------- kernels
def _topn_mask(w: torch.Tensor, n: int) -> torch.Tensor:
    """``w``: the weight viewed as ``[O * I / M, M, K]`` (K = kh * kw, 1 for Linear)."""
    return pairwise_topn_along(w.abs(), n, dim=1)


def _rank_mask(blocks: torch.Tensor, n: int) -> torch.Tensor:
    """``blocks``: ``[B, M, L]``, ranked along dimension 1."""
    return pairwise_topn_along(blocks, n, dim=1)


def _decay_pruned(grad: torch.Tensor, weight: torch.Tensor, kept: torch.Tensor,
                  decay: torch.Tensor) -> torch.Tensor:
    return torch.where(kept, grad, grad + decay * weight)


def _candidate_grad(grad: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                    alive: torch.Tensor, table: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``grad``, ``weight``, ``mask``: ``[O, I / M, M, K]``; ``alive``: ``[O, K, I / M,
    C]`` (the grouped order); ``table``: ``[C, M]`` float membership."""
    grad_weight = grad * mask
    gm = (grad * weight).permute(0, 3, 1, 2).to(table.dtype)  # [O, K, I/M, M]
    grad_scores = (gm.unsqueeze(-2) * table).sum(dim=-1) * alive  # [O, K, I/M, C]
    return grad_weight, grad_scores


_topn_kernel = FusedKernel(_topn_mask, [(0,)])
_rank_kernel = FusedKernel(_rank_mask, [(0, 2)])
_decay_kernel = FusedKernel(_decay_pruned, [(0,), (0,), (0,)])
_candidate_kernel = FusedKernel(_candidate_grad, [(0, 1), (0, 1), (0, 1), (0, 2)])

#: Up to this group size the pairwise kernels are used (M - 1 comparisons per entry).
FUSED_MAX_M = 16


def _grouped_view(weight: torch.Tensor, m: int) -> torch.Tensor:
    """``[O, I, kh, kw]`` or ``[O, I]`` as ``[O, I / M, M, kh * kw]`` (a view)."""
    o, i = weight.shape[:2]
    return weight.view(o, i // m, m, -1)


def topn_mask_fused(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Bool top-``n`` ``|w|`` mask of every group of ``m`` input channels, shaped like
    ``weight`` (contiguous, ``[O, I, kh, kw]`` or ``[O, I]``, ``I % m == 0``,
    ``m <= FUSED_MAX_M``).

    Args:
        weight (Tensor): Contiguous ``[O, I, kh, kw]`` or ``[O, I]`` weight.
        n (int): Non-zeros per group.
        m (int): Group size.

    Returns:
        Tensor: Bool mask shaped like ``weight``.
    """
    o, i = weight.shape[:2]
    w = weight.detach().view(o * (i // m), m, -1)
    return _topn_kernel(w, n).view(weight.shape)


def rank_mask_fused(blocks: torch.Tensor, n: int) -> torch.Tensor:
    """Bool top-``n`` of every ``[M]`` column of ``[B, M, L]`` non-negative blocks (ties:
    the earlier entry), ``M <= FUSED_MAX_M``.

    Args:
        blocks (Tensor): ``[B, M, L]`` non-negative values.
        n (int): Entries kept per group.

    Returns:
        Tensor: ``[B, M, L]`` bool mask.
    """
    return _rank_kernel(blocks, n)


def decay_pruned_fused(grad: torch.Tensor, weight: torch.Tensor, kept: torch.Tensor,
                       decay: float) -> torch.Tensor:
    """``grad`` on ``kept``, ``grad + decay * weight`` elsewhere (same shapes,
    contiguous).

    Args:
        grad (Tensor): The weight's gradient.
        weight (Tensor): The weight.
        kept (Tensor): Bool mask of the kept weights.
        decay (float): Decay of the pruned weights.

    Returns:
        Tensor: The new gradient, shaped like ``grad``.
    """
    d = torch.tensor(decay, dtype=grad.dtype, device=grad.device)
    out = _decay_kernel(grad.reshape(-1), weight.reshape(-1), kept.reshape(-1), d)
    return out.view(grad.shape)


def candidate_grad_fused(grad: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                         alive: torch.Tensor, table: torch.Tensor,
                         m: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(grad * mask, grad_scores)``: ``grad_scores[g, c]`` is the sum of ``grad *
    weight`` over the members of candidate ``c`` of group ``g`` (the project's grouped
    order), 0 where ``alive`` is False.

    Args:
        grad, weight, mask (Tensor): Weight-shaped (``mask`` bool).
        alive (Tensor): ``[G, C]`` bool.
        table (Tensor): ``[C, M]`` float membership table.
        m (int): Group size.

    Returns:
        tuple[Tensor, Tensor]: The weight's gradient (weight-shaped) and ``[G, C]``.
    """
    o, i = weight.shape[:2]
    k = weight[0, 0].numel() if weight.dim() == 4 else 1
    gw, gs = _candidate_kernel(_grouped_view(grad.contiguous(), m),
                               _grouped_view(weight.detach(), m), _grouped_view(mask, m),
                               alive.view(o, k, i // m, -1), table)
    return gw.view(weight.shape), gs.reshape(alive.shape)
