"""N:M pruning with the Optimal Brain Surgeon update, column by column (Frantar &
Alistarh, ICML 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot", Algorithm 1 with its N:M mask selection).

The problem, for a layer with weight matrix ``W`` (``[rows, cols]``, columns in the
project's grouping order: :func:`~lbc_mmdet.nm.layer_inputs.weight_matrix`) and
calibration inputs ``X`` (``[samples, cols]``): find an N:M mask and new kept weights
``W'`` with a small ``||W X^T - W' X^T||^2``. With ``H = 2 X^T X + lambda I`` (damping
``lambda = damp * mean(diag H)``) and the upper Cholesky factor ``U`` of ``H^-1``
(``H^-1 = U^T U``), row ``j`` of ``U`` holds the inverse Hessian of the columns not yet
processed, ``F_j = {j, ..., cols-1}``: ``[H_{F_j}^-1]_jj = U_jj^2``. The columns are
processed in order:

- at the first column of each group of M, the mask of the group is chosen: in every row,
  keep the N weights with the largest OBS error ``w_k^2 / U_kk^2`` (= ``w_k^2 /
  [H_{F_k}^-1]_kk``, the increase of the reconstruction error if ``w_k`` alone were
  removed), with the weights as updated so far;
- column ``j`` is then fixed: its pruned entries ``w`` become 0 and the OBS update
  ``W[:, F_j] -= (w / U_jj) U[j, F_j]`` moves the columns not yet processed to
  compensate; kept entries are left as they are (no error, no update).

The update is applied lazily by blocks of ``block_size`` columns (inside a block column
by column, then once to the columns after the block, ``W[:, after] -= E U[block,
after]``): the same result as one column at a time, in fewer large products. Columns
whose input is always zero (``H_jj = 0``) get ``H_jj = 1`` and their weights are set to
0 (they contribute nothing on the calibration data), as in the paper's code.

Note: the result is the exact least-squares optimum for the final mask only where all
pruned columns precede the kept ones (a kept column is never revisited after it is
fixed); in general it is the sequential OBS solution above (``tests/test_nm/
test_oneshot_pruning.py`` checks both against independent computations).
"""
from typing import Optional, Tuple

import torch


def damped_inverse_cholesky(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor ``U`` of ``(H + lambda I)^-1`` (``lambda = damp *
    mean(diag H)``), ``H`` changed in place (dead columns get ``H_jj = 1``).

    Args:
        hessian (Tensor): ``[cols, cols]`` Hessian ``H``, modified in place.
        damp (float): Damping, a fraction of the mean diagonal of ``H``.

    Returns:
        Tensor: ``[cols, cols]`` upper triangular ``U``.

    Raises:
        ValueError: ``H + lambda I`` is not positive definite (increase ``damp``).
    """
    diag = torch.diagonal(hessian)
    dead = diag == 0
    diag[dead] = 1.0
    diag += float(damp) * float(diag.mean())
    chol, info = torch.linalg.cholesky_ex(hessian)
    if int(info) != 0:
        raise ValueError(f'the damped Hessian is not positive definite (damp={damp}); '
                         'use a larger damp')
    inv = torch.cholesky_inverse(chol)
    return torch.linalg.cholesky(inv, upper=True)


@torch.no_grad()
def obs_prune(matrix: torch.Tensor, hessian: torch.Tensor, n: int, m: int,
              block_size: int = 128, damp: float = 0.01,
              mask: Optional[torch.Tensor] = None,
              dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Prune an ``[rows, cols]`` weight matrix to N:M along its columns with OBS updates
    (module docstring).

    Args:
        matrix (Tensor): ``[rows, cols]`` weights, columns in grouping order (``cols % m
            == 0``).
        hessian (Tensor): ``[cols, cols]`` ``2 X^T X`` of the calibration inputs (any
            positive scale).
        n (int): Weights kept in every ``m`` consecutive columns of each row.
        m (int): Group size.
        block_size (int): Columns per lazy-update block (a multiple of ``m``; clipped to
            ``cols``). Defaults to 128.
        damp (float): Damping, a fraction of the mean diagonal of ``H``. Defaults to 0.01.
        mask (Tensor, optional): A fixed bool ``[rows, cols]`` N:M mask to use instead of
            choosing one (only the update is computed). Defaults to None.
        dtype (torch.dtype): Precision of the computation. Defaults to ``torch.float64``.

    Returns:
        tuple[Tensor, Tensor]: ``(new matrix, bool mask)``, the matrix in ``matrix``'s
        dtype with exactly the pruned entries zero.
    """
    rows, cols = matrix.shape
    if cols % m:
        raise ValueError(f'{cols} columns are not divisible by M={m}')
    if not 0 < n < m:
        raise ValueError(f'need 0 < n < m, got n={n}, m={m}')
    if block_size < m or block_size % m:
        raise ValueError(f'block_size must be a positive multiple of M={m}, got '
                         f'{block_size}')
    if damp < 0:
        raise ValueError(f'damp must be >= 0, got {damp}')
    if hessian.shape != (cols, cols):
        raise ValueError(f'expected a [{cols}, {cols}] Hessian, got '
                         f'{tuple(hessian.shape)}')
    w = matrix.detach().to(dtype).clone()
    h = hessian.detach().to(dtype=dtype, device=w.device).clone()
    w[:, torch.diagonal(h) == 0] = 0
    u = damped_inverse_cholesky(h, damp)
    del h
    keep = torch.zeros((rows, cols), dtype=torch.bool, device=w.device)
    if mask is not None:
        keep.copy_(mask.to(torch.bool).reshape(rows, cols))
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].clone()
        u1 = u[i1:i2, i1:i2]
        d1 = torch.diagonal(u1)
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            if mask is None and i % m == 0:
                score = w1[:, i:i + m].pow(2) / d1[i:i + m].pow(2)[None]
                top = torch.topk(score, n, dim=1, largest=True, sorted=False)[1]
                keep[:, i1 + i:i1 + i + m].scatter_(1, top, True)
            col = w1[:, i]
            q = torch.where(keep[:, i1 + i], col, torch.zeros_like(col))
            err = (col - q) / d1[i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        if i2 < cols:
            w[:, i2:] -= err1 @ u[i1:i2, i2:]
    w[~keep] = 0
    return w.to(matrix.dtype), keep
