"""One-shot N:M pruning maths (plain torch): the OBS solver against independent
computations, the activation-score mask against its definition, the im2col column order
against the grouping, exact N:M masks, and the error ordering on correlated inputs."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from lbc_mmdet.nm import (
    InputStatistics,
    activation_score_mask,
    conv_input_columns,
    matrix_to_weight,
    obs_prune,
    prune_weight,
    to_groups,
    weight_matrix,
)


def _correlated_inputs(samples, cols, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols, cols, generator=g, dtype=dtype)
    scale = torch.logspace(-1, 1, cols, dtype=dtype)[torch.randperm(cols, generator=g)]
    return (torch.randn(samples, cols, generator=g, dtype=dtype) @ mix) * scale


def _reference_sequential_obs(w, h, n, m, mask=None):
    """Column by column, with explicit inverses of the Hessian of the columns not yet
    processed (no Cholesky, no blocks): at the first column of each group choose the N
    largest w_k^2 / [H_{F_k}^-1]_kk, then remove each pruned weight with the OBS
    formula dw_F = -w_j / [H_F^-1]_jj * [H_F^-1]_{:, j}."""
    w = w.clone()
    rows, cols = w.shape
    keep = torch.zeros(rows, cols, dtype=torch.bool) if mask is None else mask.clone()
    for j in range(cols):
        if mask is None and j % m == 0:
            diag = torch.stack([torch.linalg.inv(h[k:, k:])[0, 0]
                                for k in range(j, j + m)])
            score = w[:, j:j + m] ** 2 / diag
            for r in range(rows):
                keep[r, j + torch.topk(score[r], n).indices] = True
        hinv = torch.linalg.inv(h[j:, j:])
        for r in range(rows):
            if not keep[r, j]:
                w[r, j:] -= w[r, j] / hinv[0, 0] * hinv[:, 0]
                w[r, j] = 0.0
    return w, keep


@pytest.mark.parametrize('block_size', [4, 8, 24])
def test_obs_equals_the_sequential_obs_solution(block_size):
    torch.manual_seed(0)
    rows, cols, n, m = 5, 24, 2, 4
    x = _correlated_inputs(200, cols)
    h = 2 * x.t() @ x
    w = torch.randn(rows, cols, dtype=torch.float64)
    new, keep = obs_prune(w, h, n, m, block_size=block_size, damp=0.0)
    ref, ref_keep = _reference_sequential_obs(w, h, n, m)
    assert torch.equal(keep, ref_keep)
    torch.testing.assert_close(new, ref, atol=1e-6, rtol=1e-6)
    assert bool((to_groups(keep, m).sum(1) == n).all())
    assert bool((new[~keep] == 0).all())


def test_obs_with_a_fixed_mask_is_the_least_squares_optimum():
    """One group per row, pruned columns before the kept ones: the OBS update of the kept
    weights is the least-squares solve min ||X w - X_K w'_K||."""
    torch.manual_seed(1)
    rows, cols = 3, 4
    x = _correlated_inputs(100, cols, seed=1)
    h = 2 * x.t() @ x
    w = torch.randn(rows, cols, dtype=torch.float64)
    mask = torch.tensor([[False, False, True, True]] * rows)
    new, keep = obs_prune(w, h, 2, 4, block_size=4, damp=0.0, mask=mask)
    assert torch.equal(keep, mask)
    for r in range(rows):
        target = x @ w[r]
        sol = torch.linalg.lstsq(x[:, 2:], target[:, None]).solution[:, 0]
        torch.testing.assert_close(new[r, 2:], sol, atol=1e-4, rtol=1e-4)
        assert bool((new[r, :2] == 0).all())
    # and it beats keeping the weights unchanged
    err = ((x @ (w - new).t()) ** 2).sum()
    err_plain = ((x @ (w - w * mask).t()) ** 2).sum()
    assert err < err_plain


def test_obs_tiny_damping_is_close_to_none_and_options_are_checked():
    x = _correlated_inputs(100, 8)
    h = 2 * x.t() @ x
    w = torch.randn(4, 8, dtype=torch.float64)
    a, _ = obs_prune(w, h, 2, 4, damp=0.0)
    b, _ = obs_prune(w, h, 2, 4, damp=1e-9)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match='multiple of M'):
        obs_prune(w, h, 2, 4, block_size=6)
    with pytest.raises(ValueError, match='not divisible'):
        obs_prune(w[:, :6], h[:6, :6], 2, 4)


def test_dead_columns_are_zeroed_and_masks_exact():
    x = _correlated_inputs(60, 8)
    x[:, 3] = 0
    h = 2 * x.t() @ x
    w = torch.randn(6, 8, dtype=torch.float64)
    new, keep = obs_prune(w, h, 1, 4, damp=0.01)
    assert bool((new[:, 3] == 0).all())
    assert bool((to_groups(keep, 4).sum(1) == 1).all())
    assert torch.isfinite(new).all()


def test_activation_score_mask_is_topn_of_w_times_x_norm():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 16, generator=g)
    norms = torch.rand(16, generator=g) * 5
    mask = activation_score_mask(w, norms, 2, 4)
    score = w.abs() * norms
    for r, grp in itertools.product(range(6), range(4)):
        s = score[r, 4 * grp:4 * grp + 4]
        expect = torch.zeros(4, dtype=torch.bool)
        expect[torch.topk(s, 2).indices] = True
        assert torch.equal(mask[r, 4 * grp:4 * grp + 4], expect)
    # with uniform norms it is the magnitude mask
    flat = activation_score_mask(w, torch.ones(16), 2, 4)
    mag, _ = prune_weight(w, 2, 4, 'magnitude')
    assert torch.equal(flat, mag != 0)


def test_conv_columns_follow_the_grouping():
    """``columns @ weight_matrix(W).T`` is the conv output, and the matrix's groups of M
    contiguous columns are the rows of to_groups."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 6, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    cols = conv_input_columns(x, 3, 2, 1, 1)
    mat = weight_matrix(conv.weight)
    y = conv(x).permute(0, 2, 3, 1).reshape(-1, 6)
    torch.testing.assert_close(cols @ mat.t(), y)
    assert torch.equal(mat.reshape(-1, 4), to_groups(conv.weight.detach(), 4))
    assert torch.equal(matrix_to_weight(mat, conv.weight.shape), conv.weight.detach())


def test_statistics_accumulate_batches():
    x = torch.randn(30, 8)
    stats = InputStatistics(8, 'hessian')
    stats.add(x[:10])
    stats.add(x[10:])
    torch.testing.assert_close(stats.hessian(), 2 * x.t() @ x / 30, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats.column_norms(), x.norm(dim=0), atol=1e-5, rtol=1e-5)
    norms_only = InputStatistics(8, 'norms')
    norms_only.add(x)
    with pytest.raises(ValueError):
        norms_only.hessian()
    with pytest.raises(ValueError, match='needs calibration'):
        prune_weight(torch.randn(4, 8), 2, 4, 'sparsegpt', norms_only)


@pytest.mark.parametrize('criterion', ['magnitude', 'wanda', 'sparsegpt'])
@pytest.mark.parametrize('nm', [(2, 4), (1, 4), (2, 8)])
def test_every_criterion_gives_exact_nm(criterion, nm):
    n, m = nm
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 8, 3, padding=1, bias=False)
    x = torch.randn(3, 16, 6, 6)
    stats = InputStatistics(16 * 9, 'hessian')
    stats.add(conv_input_columns(x, 3, 1, 1, 1))
    new, mask = prune_weight(conv.weight, n, m, criterion, stats, block_size=16)
    assert new.shape == conv.weight.shape and mask.dtype == torch.bool
    assert bool((to_groups(mask, m).sum(1) == n).all())
    assert bool((to_groups(new, m) != 0).sum(1).le(n).all())


def test_error_ordering_on_correlated_inputs():
    """A tiny random conv layer on correlated, unevenly scaled inputs: the relative output
    error on held-out data is SparseGPT < Wanda < magnitude."""
    torch.manual_seed(0)
    c_in, c_out = 16, 12
    g = torch.Generator().manual_seed(3)
    mix = torch.randn(c_in, c_in, generator=g) / c_in ** 0.5 + torch.eye(c_in)
    scale = torch.logspace(-1, 1, c_in)[torch.randperm(c_in, generator=g)]

    def inputs(b):
        z = torch.randn(b, 12, 12, c_in, generator=g)
        return ((z @ mix) * scale).permute(0, 3, 1, 2)

    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    stats = InputStatistics(c_in * 9, 'hessian')
    for _ in range(4):
        stats.add(conv_input_columns(inputs(4), 3, 1, 1, 1))
    held = inputs(4)
    conv.weight.requires_grad_(False)
    y = F.conv2d(held, conv.weight, padding=1)
    errors = {}
    for criterion in ('magnitude', 'wanda', 'sparsegpt'):
        new, _ = prune_weight(conv.weight, 2, 4, criterion, stats, damp=0.01)
        errors[criterion] = float((F.conv2d(held, new, padding=1) - y).norm() / y.norm())
    assert errors['sparsegpt'] < errors['wanda'] < errors['magnitude'], errors
