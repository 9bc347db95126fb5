"""Lowering convolutions to the GEMMs that 2:4 semi-structured sparse kernels run.

PyTorch's semi-structured sparse tensors (``torch.sparse.to_sparse_semi_structured``,
CUDA, compute capability >= 8.0) accelerate one operation: a matrix product with a 2:4
sparse 2-D operand (``F.linear(x, W_sparse)``, ``W_sparse @ x``). A convolution runs on
them once it is written as a GEMM ``Y[N, O] = X[N, K] @ W[O, K]^T`` with

- ``M = O``: output channels, the rows of the sparse operand ``W`` (the layer's GEMM
  matrix, :func:`lbc_mmdet.deploy.packing.gemm_matrix`: ``weight.permute(0, 2, 3, 1)
  .reshape(O, kh * kw * I)``, so that the 2:4 groups along each row are the project's N:M
  groups of input channels);
- ``K = kh * kw * I``: the reduction;
- ``N = B * Ho * Wo``: one column per output pixel.

Lowerings (:class:`LoweredConv2d`), all numerically the convolution:

- ``conv1x1``: 1x1, stride 1, no padding: the channels-last activation *is* ``X``;
- ``conv1x1_strided``: 1x1, stride s, no padding: subsample ``x[:, :, ::s, ::s]``, then the
  same;
- ``conv_im2col``: any other kernel: ``F.unfold`` (im2col) reordered to channels-last
  columns (kernel position major, input channel minor) -- it materialises a
  ``kh * kw``-times larger activation, so the GEMM speed-up has to pay for that copy;
- Linear layers are GEMMs already (``linear``).

:func:`plan_layer` says which layers can run this way and why not; the kernels' shape
constraints (rows and columns of the sparse operand a multiple of the backend's minimum,
per dtype, read from PyTorch) are met by zero padding, recorded in the plan.
"""
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils import replace_module
from .backends import (  # noqa: F401  (re-exported: the kernels' side)
    ACCELERATED_DTYPES,
    BACKENDS,
    MIN_CAPABILITY,
    default_backend,
    semi_structured_constraints,
    semi_structured_support,
    to_semi_structured,
)
from .packing import count_2to4_violations, gemm_matrix

_IntPair = Union[int, Tuple[int, int]]


def _pair(v: _IntPair) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_output_size(size: int, kernel: int, stride: int, padding: int,
                     dilation: int) -> int:
    """Output length of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass
class GemmPlan:
    """How one layer runs as a semi-structured GEMM, or why it does not.

    Attributes:
        name (str): Module name.
        kind (str): ``conv1x1``, ``conv1x1_strided``, ``conv_im2col``, ``linear`` or
            ``unsupported``.
        weight_shape (list): The layer's weight shape.
        M (int): Output features (rows of the sparse operand).
        K (int): Reduction length ``kh * kw * I``.
        accelerated (bool): True iff the layer can run on the 2:4 kernel.
        reason (str): Why not (None when accelerated).
        pad_rows (int): Zero rows appended to the sparse operand (output sliced off).
        pad_cols (int): Zero columns appended to it (and to the activations).
    """
    name: str
    kind: str
    weight_shape: List[int]
    M: int
    K: int
    accelerated: bool
    reason: Optional[str] = None
    pad_rows: int = 0
    pad_cols: int = 0
    kernel_size: Tuple[int, int] = (1, 1)
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    notes: List[str] = field(default_factory=list)

    def gemm_shape(self, input_shape: Sequence[int]) -> Dict[str, int]:
        """``{'M', 'K', 'N'}`` of the GEMM for an input of ``input_shape``.

        Args:
            input_shape (Sequence[int]): ``[B, C, H, W]`` (conv) or ``[..., K]`` (linear).
        """
        if self.kind == 'linear':
            return dict(M=self.M, K=self.K, N=int(math.prod(input_shape[:-1])))
        b, _, h, w = input_shape
        ho = conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0],
                              self.dilation[0])
        wo = conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1],
                              self.dilation[1])
        return dict(M=self.M, K=self.K, N=int(b * ho * wo))

    def to_dict(self) -> Dict:
        d = asdict(self)
        for k in ('kernel_size', 'stride', 'padding', 'dilation'):
            d[k] = list(d[k])
        return d


def plan_layer(module: nn.Module,
               name: str = '',
               dtype: torch.dtype = torch.float16,
               backend: str = 'cusparselt',
               kxk: str = 'im2col',
               check_weight: bool = True) -> GemmPlan:
    """Whether (and how) ``module`` runs as a 2:4 semi-structured GEMM.

    Rules, in order: an ``nn.Conv2d`` (not transposed, ``groups == 1``, zero padding mode,
    numeric padding) or ``nn.Linear``; input channels divisible by 4 (the 2:4 groups run
    along them); every group of 4 of the GEMM matrix holds at most 2 non-zeros (2:4, 1:4,
    2:8 ... weights qualify; skipped with ``check_weight=False``); ``dtype`` fp16/bf16; a
    k x k kernel only with ``kxk='im2col'`` (``'dense'`` leaves them to the dense
    convolution). The backend's shape constraints are met by zero padding (``pad_rows``,
    ``pad_cols`` in the plan).

    Args:
        module (nn.Module): The layer.
        name (str): Its name (for the plan).
        dtype (torch.dtype): Compute dtype.
        backend (str): ``'cusparselt'`` or ``'cutlass'``.
        kxk (str): ``'im2col'`` or ``'dense'``.
        check_weight (bool): Check the weight's 2:4 pattern.
    """
    if kxk not in ('im2col', 'dense'):
        raise ValueError(f"kxk must be 'im2col' or 'dense', got {kxk!r}")
    weight = getattr(module, 'weight', None)
    shape = list(weight.shape) if isinstance(weight, torch.Tensor) else []

    def unsupported(reason, kind='unsupported', **kw):
        return GemmPlan(name=name, kind=kind, weight_shape=shape, M=shape[0] if shape else 0,
                        K=int(math.prod(shape[1:])) if shape else 0, accelerated=False,
                        reason=reason, **kw)

    if isinstance(module, nn.Linear):
        kind = 'linear'
        geometry = {}
        in_ch = module.in_features
    elif isinstance(module, nn.Conv2d) and not isinstance(module, nn.ConvTranspose2d):
        if module.groups != 1:
            return unsupported(f'grouped convolution (groups={module.groups})')
        if module.padding_mode != 'zeros':
            return unsupported(f"padding_mode={module.padding_mode!r} (only 'zeros')")
        padding = module.padding
        if isinstance(padding, str):
            if padding != 'valid':
                return unsupported(f'padding={padding!r} (only numeric padding)')
            padding = (0, 0)
        geometry = dict(kernel_size=_pair(module.kernel_size), stride=_pair(module.stride),
                        padding=_pair(padding), dilation=_pair(module.dilation))
        if geometry['kernel_size'] == (1, 1) and geometry['padding'] == (0, 0):
            kind = 'conv1x1' if geometry['stride'] == (1, 1) else 'conv1x1_strided'
        else:
            kind = 'conv_im2col'
        in_ch = module.in_channels
    else:
        return unsupported(f'{type(module).__name__} is not an nn.Conv2d / nn.Linear')

    if in_ch % 4:
        return unsupported(f'{in_ch} input channels not divisible by 4 (no 2:4 groups)',
                           kind=kind, **geometry)
    if check_weight:
        bad = count_2to4_violations(gemm_matrix(weight.detach()))
        if bad:
            return unsupported(f'weight not 2:4: {bad} groups of 4 hold more than 2 '
                               'non-zeros', kind=kind, **geometry)
    limits = semi_structured_constraints(dtype, backend)
    if limits is None:
        return unsupported(f'{dtype} has no 2:4 {backend} kernel (fp16/bf16 only; fp32 '
                           'semi-structured kernels are 1:2 TF32)', kind=kind, **geometry)
    if kind == 'conv_im2col' and kxk == 'dense':
        return unsupported('k x k convolution left to the dense kernel (--kxk dense)',
                           kind=kind, **geometry)
    m_rows, k_cols = shape[0], int(math.prod(shape[1:]))
    pad_rows = (-m_rows) % limits[0]
    pad_cols = (-k_cols) % limits[1]
    notes = []
    if pad_rows:
        notes.append(f'{pad_rows} zero rows padded (output channels {m_rows} -> '
                     f'{m_rows + pad_rows})')
    if pad_cols:
        notes.append(f'{pad_cols} zero columns padded: the activations are padded too')
    if kind == 'conv_im2col':
        notes.append('im2col materialises a kh*kw-times larger activation')
    return GemmPlan(name=name, kind=kind, weight_shape=shape, M=m_rows, K=k_cols,
                    accelerated=True, pad_rows=pad_rows, pad_cols=pad_cols, notes=notes,
                    **geometry)


def im2col(x: torch.Tensor, kernel_size: _IntPair, stride: _IntPair = 1,
           padding: _IntPair = 0,
           dilation: _IntPair = 1) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Channels-last im2col: ``[B * Ho * Wo, kh * kw * C]`` (kernel position major, input
    channel minor: the column order of :func:`gemm_matrix`) and ``(Ho, Wo)``.

    ``im2col(x, ...)[0] @ gemm_matrix(w).t()`` equals ``F.conv2d(x, w, ...)`` reshaped to
    ``[B * Ho * Wo, O]``.

    Args:
        x (Tensor): ``[B, C, H, W]`` input.
        kernel_size (int or tuple[int, int]): The conv's kernel size.
        stride, padding, dilation (int or tuple[int, int]): The conv's stride, padding and
            dilation. Defaults to 1, 0 and 1.

    Returns:
        tuple[Tensor, tuple[int, int]]: The columns and ``(Ho, Wo)``.
    """
    kh, kw = _pair(kernel_size)
    b, c, h, w = x.shape
    cols = F.unfold(x, (kh, kw), dilation=_pair(dilation), padding=_pair(padding),
                    stride=_pair(stride))  # [B, C * kh * kw, L], channel major
    ho = conv_output_size(h, kh, _pair(stride)[0], _pair(padding)[0], _pair(dilation)[0])
    wo = conv_output_size(w, kw, _pair(stride)[1], _pair(padding)[1], _pair(dilation)[1])
    cols = cols.view(b, c, kh * kw, ho * wo).permute(0, 3, 2, 1)
    return cols.reshape(b * ho * wo, kh * kw * c), (ho, wo)


class LoweredConv2d(nn.Module):
    """A ``nn.Conv2d`` computed as a GEMM on its GEMM matrix (see module docstring).

    The GEMM weight is a plain attribute (``gemm_weight``, ``[M + pad_rows, K +
    pad_cols]``) so that it can be swapped for a semi-structured sparse tensor with
    :meth:`convert_weight`; move/cast the *dense* model before lowering it.

    Args:
        conv (nn.Conv2d): The convolution (its current weight, dtype and device are used).
        plan (GemmPlan): Its plan (:func:`plan_layer`): a conv kind; its padding is
            applied (a plan that is not accelerated, e.g. for fp32, lowers to a dense
            GEMM all the same).
        order (str): ``'dense_first'``: ``F.linear(X, W)``, ``X`` ``[B * Ho * Wo, K]``,
            channels-last output; ``'sparse_first'``: ``W @ X^T``, ``X^T`` ``[K, B * Ho *
            Wo]``, channel-major output (``[O, B, Ho, Wo]`` memory viewed as NCHW).
            Which one avoids copies depends on the backend
            (:func:`lbc_mmdet.deploy.backends.default_gemm_order`).
    """

    def __init__(self, conv: nn.Conv2d, plan: GemmPlan, order: str = 'dense_first'):
        super().__init__()
        if plan.kind not in ('conv1x1', 'conv1x1_strided', 'conv_im2col'):
            raise ValueError(f'{plan.name}: cannot lower a {plan.kind} layer '
                             f'({plan.reason})')
        if order not in ('dense_first', 'sparse_first'):
            raise ValueError(f"order must be 'dense_first' or 'sparse_first', got {order!r}")
        self.kind = plan.kind
        self.order = order
        self.out_channels = conv.out_channels
        self.kernel_size, self.stride = plan.kernel_size, plan.stride
        self.padding, self.dilation = plan.padding, plan.dilation
        self.pad_rows, self.pad_cols = plan.pad_rows, plan.pad_cols
        with torch.no_grad():
            w = gemm_matrix(conv.weight.detach())
            self.gemm_weight = F.pad(w, (0, self.pad_cols, 0, self.pad_rows)).contiguous()
            bias = conv.bias.detach() if conv.bias is not None else None
            self.gemm_bias = (F.pad(bias, (0, self.pad_rows)).contiguous()
                              if bias is not None else None)

    def convert_weight(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the GEMM weight by ``fn(gemm_weight)``.

        Args:
            fn (callable): Maps the GEMM weight to its replacement, e.g.
                :func:`to_semi_structured`.
        """
        self.gemm_weight = fn(self.gemm_weight)

    def gemm_input(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """The dense GEMM operand and ``(Ho, Wo)``: ``X`` ``[B * Ho * Wo, K (+ pad_cols)]``
        (``'dense_first'``) or ``X^T`` ``[K (+ pad_cols), B * Ho * Wo]`` (``'sparse_first'``).

        Args:
            x (Tensor): ``[B, C, H, W]`` input.
        """
        if self.order == 'sparse_first':
            return self._gemm_input_t(x)
        if self.kind == 'conv_im2col':
            cols, hw = im2col(x, self.kernel_size, self.stride, self.padding, self.dilation)
        else:
            if self.kind == 'conv1x1_strided':
                x = x[:, :, ::self.stride[0], ::self.stride[1]]
            hw = (x.shape[2], x.shape[3])
            cols = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        if self.pad_cols:
            cols = F.pad(cols, (0, self.pad_cols))
        return cols, hw

    def _gemm_input_t(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``X^T``: rows in :func:`gemm_matrix`'s column order, one column per pixel."""
        b = x.shape[0]
        if self.kind == 'conv_im2col':
            kh, kw = self.kernel_size
            cols = F.unfold(x, (kh, kw), dilation=self.dilation, padding=self.padding,
                            stride=self.stride)  # [B, C * kh * kw, L], channel major
            hw = tuple(conv_output_size(x.shape[2 + i], self.kernel_size[i],
                                        self.stride[i], self.padding[i], self.dilation[i])
                       for i in range(2))
            cols = cols.view(b, x.shape[1], kh * kw, -1).permute(2, 1, 0, 3)
            cols_t = cols.reshape(kh * kw * x.shape[1], -1)
        else:
            if self.kind == 'conv1x1_strided':
                x = x[:, :, ::self.stride[0], ::self.stride[1]]
            hw = (x.shape[2], x.shape[3])
            cols_t = x.transpose(0, 1).reshape(x.shape[1], -1)  # free on [C, B, H, W]
        if self.pad_cols:
            cols_t = F.pad(cols_t, (0, 0, 0, self.pad_cols))
        return cols_t, hw

    def gemm(self, operand: torch.Tensor) -> torch.Tensor:
        """The bare GEMM on :meth:`gemm_input`'s operand: ``[N, M (+ pad_rows)]``
        (``'dense_first'``) or ``[M (+ pad_rows), N]`` (``'sparse_first'``).

        Args:
            operand (Tensor): :meth:`gemm_input`'s operand.
        """
        if self.order == 'sparse_first':
            return torch.mm(self.gemm_weight, operand)
        return F.linear(operand, self.gemm_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x``: ``[B, O, Ho, Wo]`` (channels-last or channel-major).

        Args:
            x (Tensor): ``[B, C, H, W]`` input.
        """
        b, o = x.shape[0], self.out_channels
        operand, (ho, wo) = self.gemm_input(x)
        if self.order == 'sparse_first':
            y = torch.mm(self.gemm_weight, operand)[:o]  # [O, B * Ho * Wo]
            if self.gemm_bias is not None:
                y = y + self.gemm_bias[:o, None]
            # [O, B, Ho, Wo] viewed as NCHW: channel-major memory, no copy
            return y.view(o, b, ho, wo).permute(1, 0, 2, 3)
        y = F.linear(operand, self.gemm_weight, self.gemm_bias)
        if self.pad_rows:
            y = y[:, :o]
        # [B, Ho, Wo, O] viewed as NCHW: channels-last memory, no copy
        return y.reshape(b, ho, wo, o).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'{self.kind}, {self.order}, out={self.out_channels}, k={self.kernel_size}, '
                f's={self.stride}, p={self.padding}, weight={tuple(self.gemm_weight.shape)}'
                f' ({type(self.gemm_weight).__name__})')


def plan_model(model: nn.Module, **kwargs) -> List[GemmPlan]:
    """:func:`plan_layer` for every ``nn.Conv2d`` / ``nn.Linear`` of ``model``.

    Args:
        model (nn.Module): The model.
        **kwargs: Keyword arguments of :func:`plan_layer` (but ``name``).

    Returns:
        list[GemmPlan]: The plans, in ``named_modules`` order.
    """
    return [plan_layer(mod, name=name, **kwargs) for name, mod in model.named_modules()
            if isinstance(mod, (nn.Conv2d, nn.Linear))]


def lower_convs(model: nn.Module, plans: Sequence[GemmPlan],
                order: str = 'dense_first') -> List[str]:
    """Replace, in place, every conv of ``model`` whose plan is accelerated by a
    :class:`LoweredConv2d` (with a dense GEMM weight, in ``order``).

    Args:
        model (nn.Module): The model, modified in place.
        plans (Sequence[GemmPlan]): Plans of its layers (:func:`plan_model`).
        order (str): The GEMM call order. Defaults to ``'dense_first'``.

    Returns:
        list[str]: Names of the lowered convs.
    """
    lowered = []
    for plan in plans:
        if not plan.accelerated or plan.kind == 'linear':
            continue
        conv = model.get_submodule(plan.name)
        replace_module(model, plan.name, LoweredConv2d(conv, plan, order))
        lowered.append(plan.name)
    return lowered


__all__ = [
    'ACCELERATED_DTYPES', 'BACKENDS', 'MIN_CAPABILITY', 'GemmPlan', 'LoweredConv2d',
    'semi_structured_constraints', 'conv_output_size', 'plan_layer', 'plan_model',
    'im2col', 'lower_convs', 'semi_structured_support', 'default_backend',
    'to_semi_structured'
]
