"""The fused (torch.compile) weight-side kernels against the eager code they replace.

The test session runs with ``LBC_MMDET_COMPILE=0`` (conftest); these tests switch the
compiled path on with :func:`set_compile_mode` and compare it with the eager one: masks
bit for bit, floating-point results to one rounding.
"""
import warnings

import pytest
import torch

from lbc_mmdet.layers.bimask import BiMaskConv2d
from lbc_mmdet.layers.lbc import LBCConv2d
from lbc_mmdet.layers.maxq import MaxQConv2d
from lbc_mmdet.layers.srste import SRSTEConv2d
from lbc_mmdet.nm import (
    compile_mode,
    decay_pruned_fused,
    from_groups,
    fused_available,
    kernels,
    output_dim_nm_mask,
    set_compile_mode,
    to_groups,
    topn_magnitude_mask,
    topn_magnitude_mask_like,
)


@pytest.fixture
def compiled():
    """The compiled path on for one test (and the eager one back afterwards)."""
    set_compile_mode('1')
    yield
    set_compile_mode(None)


def _tied_weight(shape, seed=0):
    # few distinct magnitudes: many ties, which the rank must break like the stable sort
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).float() / 4


@pytest.mark.parametrize('shape,n,m', [((8, 16, 3, 3), 2, 4), ((8, 16, 1, 1), 1, 4),
                                       ((4, 32, 3, 3), 1, 16), ((6, 16), 2, 8)])
def test_topn_mask_matches_the_stable_sort(compiled, shape, n, m):
    for seed, w in enumerate([torch.randn(shape), _tied_weight(shape)]):
        assert fused_available(w.device)
        got = topn_magnitude_mask_like(w, n, m)
        want = from_groups(topn_magnitude_mask(to_groups(w, m), n), w.shape)
        assert got.dtype == torch.bool and got.shape == w.shape
        assert torch.equal(got, want), (shape, n, m, seed)
        assert bool((to_groups(got, m).sum(1) == n).all())


def test_output_dim_mask_compiled_equals_eager():
    w = _tied_weight((16, 8, 3, 3), seed=3)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    keep = topn_magnitude_mask_like(w, 2, 4)  # eager (mode 0)
    want = output_dim_nm_mask(w, 2, 4, perm, keep=keep)
    set_compile_mode('1')
    try:
        got = output_dim_nm_mask(w, 2, 4, perm, keep=keep)
    finally:
        set_compile_mode(None)
    assert torch.equal(got, want)


def test_decay_kernel_equals_where(compiled):
    g = torch.Generator().manual_seed(0)
    grad, w = torch.randn(4, 8, 3, 3, generator=g), torch.randn(4, 8, 3, 3, generator=g)
    kept = torch.rand(4, 8, 3, 3, generator=g) > 0.5
    got = decay_pruned_fused(grad, w, kept, 0.25)
    torch.testing.assert_close(got, torch.where(kept, grad, grad + 0.25 * w),
                               rtol=1e-6, atol=1e-7)
    assert torch.equal(got[kept], grad[kept])  # the kept weights: the gradient unchanged


def _step_grads(layer, x):
    layer.zero_grad()
    out = layer(x)
    out.square().sum().backward()
    return {k: p.grad.clone() for k, p in layer.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('cls,used', [
    (SRSTEConv2d, ('_topn_kernel', '_decay_kernel')), (LBCConv2d, ('_candidate_kernel',)),
    (BiMaskConv2d, ('_topn_kernel', '_rank_kernel', '_decay_kernel')),
    (MaxQConv2d, ('_topn_kernel', '_decay_kernel'))])
def test_layer_gradients_compiled_equal_eager(cls, used):
    """One training step of each method's layer: the same output and gradients with the
    fused kernels as without (the weight, scores and input gradients)."""
    torch.manual_seed(0)
    layer = cls(8, 16, 3, padding=1, n=2, m=4)
    if cls is LBCConv2d:  # some candidates removed: a mask that is not all ones
        layer.remove_to(3)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    eager = _step_grads(layer, x)
    gx_eager = x.grad.clone()
    x.grad = None
    before = {name: getattr(kernels, name).compiled_calls for name in used}
    set_compile_mode('1')
    try:
        fused = _step_grads(layer, x)
    finally:
        set_compile_mode(None)
    for name in used:  # the step really ran the compiled kernels
        assert getattr(kernels, name).compiled_calls > before[name], name
    assert eager.keys() == fused.keys() and eager
    for k in eager:
        torch.testing.assert_close(fused[k], eager[k], rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(x.grad, gx_eager, rtol=1e-5, atol=1e-6)


def test_compile_failure_falls_back_to_eager_once(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError('no compiler here')
        return run

    kernel = kernels.FusedKernel(kernels._topn_mask, [(0,)])
    monkeypatch.setattr(torch, 'compile', broken)
    set_compile_mode('1')
    try:
        w = torch.randn(8, 4, 1)
        with pytest.warns(RuntimeWarning, match='no compiler here'):
            got = kernel(w, 2)
        assert torch.equal(got, kernels._topn_mask(w, 2))
        assert not fused_available(w.device)  # eager from then on, no second warning
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            topn_magnitude_mask_like(torch.randn(4, 8), 2, 4)
    finally:
        set_compile_mode(None)  # also forgets the failure
    assert fused_available(torch.device('cpu')) == (compile_mode() != '0')


def test_compile_mode_from_environment(monkeypatch):
    monkeypatch.setenv('LBC_MMDET_COMPILE', 'off')
    assert compile_mode() == '0' and not fused_available(torch.device('cpu'))
    monkeypatch.setenv('LBC_MMDET_COMPILE', 'auto')
    assert fused_available(torch.device('cpu'))
    assert not fused_available(torch.device('meta'))  # auto: CPU only
    monkeypatch.setenv('LBC_MMDET_COMPILE', 'sometimes')
    with pytest.raises(ValueError, match='LBC_MMDET_COMPILE'):
        compile_mode()
    with pytest.raises(ValueError, match='compile mode'):
        set_compile_mode('yes please')
