"""A layer's weight as a matrix and its inputs as columns, in the project's N:M grouping,
and the input statistics that data-aware one-shot pruners need (plain torch).

A Conv2d weight ``[O, I, kh, kw]`` becomes the ``[O, kh*kw*I]`` matrix
``weight.permute(0, 2, 3, 1).reshape(O, -1)``: its column ``(p, c)`` is input channel
``c`` at kernel position ``p``, so the N:M groups of :func:`~lbc_mmdet.nm.to_groups` (M
consecutive input channels at one kernel position) are M *contiguous* columns. A layer's
input is turned into rows of the same column order (im2col, :func:`conv_input_columns`),
so that ``y = columns @ matrix.T`` is the layer's output without bias. A Linear weight is
its own matrix.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: What a pruning criterion needs from calibration data: nothing, the squared norms of
#: the input columns, or the full ``X^T X``.
NEEDS = (None, 'norms', 'hessian')


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """``[O, cols]`` matrix of a Conv2d/Linear weight, columns in grouping order (a
    copy).

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight.

    Returns:
        Tensor: ``[O, cols]`` matrix.
    """
    if weight.dim() == 4:
        return weight.detach().permute(0, 2, 3, 1).reshape(weight.shape[0], -1).clone()
    return weight.detach().reshape(weight.shape[0], -1).clone()


def matrix_to_weight(matrix: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`weight_matrix`.

    Args:
        matrix (Tensor): ``[O, cols]`` matrix.
        shape (Sequence[int]): The weight's shape.

    Returns:
        Tensor: Contiguous weight of ``shape``.
    """
    if len(shape) == 4:
        o, i, kh, kw = shape
        return matrix.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return matrix.reshape(tuple(shape)).contiguous()


def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_input_columns(x: torch.Tensor, kernel_size, stride=1, padding=0,
                       dilation=1) -> torch.Tensor:
    """im2col of a conv input ``[B, I, H, W]`` as ``[B*L, kh*kw*I]`` rows whose columns
    follow :func:`weight_matrix` (kernel position outer, input channel inner).

    Args:
        x (Tensor): ``[B, I, H, W]`` input.
        kernel_size (int or tuple[int, int]): The conv's kernel size.
        stride (int or tuple[int, int]): The conv's stride. Defaults to 1.
        padding (int or tuple[int, int]): The conv's padding (no string). Defaults to 0.
        dilation (int or tuple[int, int]): The conv's dilation. Defaults to 1.

    Returns:
        Tensor: ``[B*L, kh*kw*I]`` columns (``L``: output positions).
    """
    kh, kw = _pair(kernel_size)
    if isinstance(padding, str):
        raise ValueError(f'string padding {padding!r} is not supported')
    cols = F.unfold(x, (kh, kw), dilation=_pair(dilation), padding=_pair(padding),
                    stride=_pair(stride))  # [B, I*kh*kw, L], channel outer
    b, _, length = cols.shape
    cols = cols.view(b, x.shape[1], kh * kw, length).permute(0, 3, 2, 1)
    return cols.reshape(b * length, kh * kw * x.shape[1])


def linear_input_columns(x: torch.Tensor) -> torch.Tensor:
    """A Linear input ``[..., I]`` as ``[rows, I]``.

    Args:
        x (Tensor): ``[..., I]`` input.

    Returns:
        Tensor: ``[rows, I]`` view or copy.
    """
    return x.reshape(-1, x.shape[-1])


class InputStatistics:
    """Running statistics of a layer's input columns ``X`` (rows: samples, columns as
    :func:`weight_matrix`), accumulated batch by batch without keeping the inputs.

    Args:
        cols (int): Number of columns.
        need (str): ``'norms'`` (the squared column norms ``sum_rows x_j^2``) or
            ``'hessian'`` (``X^T X``, whose diagonal gives the norms as well). Defaults
            to ``'hessian'``.
        device (torch.device, optional): Where the statistics live. Defaults to None.
    """

    def __init__(self, cols: int, need: str = 'hessian',
                 device: Optional[torch.device] = None) -> None:
        if need not in NEEDS[1:]:
            raise ValueError(f'need must be one of {NEEDS[1:]}, got {need!r}')
        self.need = need
        self.cols = int(cols)
        self.rows = 0
        self.sq_norms = torch.zeros(self.cols, dtype=torch.float64, device=device)
        self.xtx = (torch.zeros(self.cols, self.cols, dtype=torch.float32, device=device)
                    if need == 'hessian' else None)

    @torch.no_grad()
    def add(self, columns: torch.Tensor) -> None:
        """Accumulate ``[rows, cols]`` input columns.

        Args:
            columns (Tensor): ``[rows, cols]`` input columns.
        """
        if columns.shape[-1] != self.cols:
            raise ValueError(f'expected {self.cols} columns, got {columns.shape[-1]}')
        x = columns.detach().to(torch.float32)
        self.rows += x.shape[0]
        self.sq_norms += x.pow(2).sum(0).to(torch.float64).to(self.sq_norms.device)
        if self.xtx is not None:
            self.xtx.addmm_(x.t().to(self.xtx.device), x.to(self.xtx.device))

    def column_norms(self) -> torch.Tensor:
        """``||x_j||_2`` of every column (float32)."""
        return self.sq_norms.sqrt().to(torch.float32)

    def hessian(self) -> torch.Tensor:
        """``H = 2 X^T X / rows`` (the layer-wise reconstruction Hessian, normalised by
        the number of rows; the scale changes neither the mask nor the update)."""
        if self.xtx is None:
            raise ValueError('these statistics hold only the column norms')
        return self.xtx * (2.0 / max(self.rows, 1))


def relative_output_error(columns: torch.Tensor, dense: torch.Tensor,
                          pruned: torch.Tensor) -> Tuple[float, float]:
    """``(||(W - W') X||^2, ||W X||^2)`` of one batch of input columns, ``W``/``W'`` as
    :func:`weight_matrix` (the ratio of their sums over batches, square-rooted, is the
    relative output error).

    Args:
        columns (Tensor): ``[rows, cols]`` input columns.
        dense (Tensor): ``[O, cols]`` dense weight matrix ``W``.
        pruned (Tensor): ``[O, cols]`` pruned weight matrix ``W'``.

    Returns:
        tuple[float, float]: The squared error norm and the squared output norm.
    """
    x = columns.detach().to(torch.float32)
    y = x @ dense.to(torch.float32).t()
    d = x @ (dense - pruned).to(torch.float32).t()
    return float(d.pow(2).sum()), float(y.pow(2).sum())
