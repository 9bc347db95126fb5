"""Activation-aware N:M masks: the score ``|w_ij| * ||x_j||_2`` (Sun et al., ICLR 2024,
"A Simple and Effective Pruning Approach for Large Language Models").

``x_j`` is the j-th input column of the layer over the calibration data (for a conv, the
im2col column: input channel ``c`` at kernel position ``p``, see
:mod:`~lbc_mmdet.nm.layer_inputs`). The paper compares weights per output row; with N:M
sparsity the comparison is within each group of M weights (the project's grouping: M
consecutive input channels at one kernel position of one output channel), keeping the N
highest scores.
"""
import torch

from .masks import topn_magnitude_mask


def activation_scores(matrix: torch.Tensor, column_norms: torch.Tensor) -> torch.Tensor:
    """``|W| * ||x||`` of an ``[O, cols]`` weight matrix and its ``[cols]`` input column
    norms.

    Args:
        matrix (Tensor): ``[O, cols]`` weight matrix (:func:`weight_matrix`).
        column_norms (Tensor): ``[cols]`` input column norms ``||x_j||_2``.

    Returns:
        Tensor: ``[O, cols]`` float32 scores.
    """
    if column_norms.shape != matrix.shape[1:]:
        raise ValueError(f'expected {matrix.shape[1]} column norms, got '
                         f'{tuple(column_norms.shape)}')
    return matrix.detach().abs().to(torch.float32) * column_norms.to(torch.float32)[None]


def activation_score_mask(matrix: torch.Tensor, column_norms: torch.Tensor, n: int,
                          m: int) -> torch.Tensor:
    """Bool ``[O, cols]`` mask keeping, in every group of ``m`` contiguous columns of each
    row, the ``n`` weights of highest ``|w| * ||x||`` (ties: lowest index first).

    Args:
        matrix (Tensor): ``[O, cols]`` weight matrix, ``cols % m == 0``.
        column_norms (Tensor): ``[cols]`` input column norms.
        n (int): Non-zeros per group.
        m (int): Group size.

    Returns:
        Tensor: ``[O, cols]`` bool mask.
    """
    if matrix.shape[1] % m:
        raise ValueError(f'{matrix.shape[1]} columns are not divisible by M={m}')
    scores = activation_scores(matrix, column_norms)
    return topn_magnitude_mask(scores.reshape(-1, m), n).reshape(matrix.shape)
