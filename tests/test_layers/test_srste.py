"""SR-STE layers against an independent reference written here (explicit loops)."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import SPARSE_LAYERS

from lbc_mmdet.layers import NMScheduleState
from lbc_mmdet.layers.srste import SRSTEConv2d, SRSTELinear

PATTERNS = [(2, 4), (2, 8), (1, 4), (1, 16)]


def ref_groups(shape, m):
    """Element indices of every N:M group, in group order, by explicit indexing: a Conv2d
    group is M consecutive input channels at a fixed (output channel, ky, kx), i.e. the
    rows of ``w.permute(0, 2, 3, 1).reshape(-1, M)``; a Linear group M consecutive
    inputs of one output."""
    groups = []
    if len(shape) == 4:
        o, i, kh, kw = shape
        for a, y, x in itertools.product(range(o), range(kh), range(kw)):
            for c0 in range(0, i, m):
                groups.append([(a, c, y, x) for c in range(c0, c0 + m)])
    else:
        o, i = shape
        for a in range(o):
            for c0 in range(0, i, m):
                groups.append([(a, c) for c in range(c0, c0 + m)])
    return groups


def ref_topn_mask(weight, n, m):
    """Keep the n largest |w| of each group (ties: lowest position first)."""
    w = weight.detach()
    mask = torch.zeros_like(w)
    for idx in ref_groups(tuple(w.shape), m):
        ranked = sorted(range(m), key=lambda p: (-abs(float(w[idx[p]])), p))
        for p in ranked[:n]:
            mask[idx[p]] = 1.0
    return mask


def ref_counts(tensor, m):
    return [sum(bool(tensor[e] != 0) for e in idx) for idx in ref_groups(tensor.shape, m)]


def make_layer(kind, n, m, **kwargs):
    torch.manual_seed(0)
    if kind == 'conv':
        layer = SRSTEConv2d(m * 2, 3, 3, padding=1, n=n, m=m, **kwargs)
        x = torch.randn(2, m * 2, 5, 5)
        ref_forward = lambda w: F.conv2d(x, w, layer.bias, padding=1)  # noqa: E731
    else:
        layer = SRSTELinear(m * 2, 3, n=n, m=m, **kwargs)
        x = torch.randn(4, m * 2)
        ref_forward = lambda w: F.linear(x, w, layer.bias)  # noqa: E731
    return layer, x, ref_forward


@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
@pytest.mark.parametrize('lambda_w', [2e-4, 0.5])
def test_srste_mask_forward_and_gradient_match_reference(kind, n, m, lambda_w):
    layer, x, ref_forward = make_layer(kind, n, m, lambda_w=lambda_w)
    assert layer.nm_eligible and layer.nm_method == 'srste'
    assert layer.lambda_w == lambda_w
    mask = ref_topn_mask(layer.weight, n, m)
    torch.testing.assert_close(layer.nm_mask(), mask, rtol=0, atol=0)
    assert all(c == n for c in ref_counts(mask, m))
    assert layer.nm_is_exact()

    out = layer(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)

    w = layer.weight.detach()
    w_eff = (w * mask).requires_grad_(True)
    ref_out = ref_forward(w_eff)
    ref_out.backward(grad_out)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(layer.masked_weight(), w * mask)

    kept, pruned = mask == 1, mask == 0
    # kept weights: the plain gradient of the sparse weight
    torch.testing.assert_close(layer.weight.grad[kept], w_eff.grad[kept])
    # pruned weights: the same dense gradient plus the sparse-refined decay
    expect_pruned = w_eff.grad[pruned] + lambda_w * w[pruned]
    torch.testing.assert_close(layer.weight.grad[pruned], expect_pruned)
    # the dense gradient does reach the pruned weights (unlike a masked gradient)
    assert (layer.weight.grad[pruned] != 0).all()
    torch.testing.assert_close(layer.weight.grad,
                               w_eff.grad + lambda_w * (1 - mask) * w)


def test_no_grad_forward_equals_training_forward():
    layer, x, ref_forward = make_layer('conv', 2, 4)
    out = layer(x)
    with torch.no_grad():
        out_ng = layer(x)
    torch.testing.assert_close(out_ng, out.detach())
    layer.weight.requires_grad_(False)
    torch.testing.assert_close(layer(x), out.detach())


def test_lambda_zero_is_the_plain_ste():
    layer, x, ref_forward = make_layer('linear', 2, 4, lambda_w=0)
    out = layer(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    w_eff = (layer.weight.detach() * ref_topn_mask(layer.weight, 2, 4)).requires_grad_()
    ref_forward(w_eff).backward(grad_out)
    torch.testing.assert_close(layer.weight.grad, w_eff.grad)


@pytest.mark.parametrize('kind', ['conv', 'linear'])
def test_mask_follows_the_weights(kind):
    layer, x, ref_forward = make_layer(kind, 2, 4)
    before = layer.nm_mask().clone()
    # swap the magnitudes of a kept and a pruned weight of the first group
    idx = ref_groups(tuple(layer.weight.shape), 4)[0]
    kept = [e for e in idx if before[e] == 1]
    pruned = [e for e in idx if before[e] == 0]
    with torch.no_grad():
        layer.weight[pruned[0]] = 10.0
        layer.weight[kept[0]] = 1e-3
    after = layer.nm_mask()
    torch.testing.assert_close(after, ref_topn_mask(layer.weight, 2, 4), rtol=0, atol=0)
    assert after[pruned[0]] == 1 and after[kept[0]] == 0
    assert not torch.equal(after, before)
    # the forward uses the new mask (recomputed at every forward)
    torch.testing.assert_close(layer(x), ref_forward(layer.weight.detach() * after))
    # and an optimizer step also moves the mask, without any nm_update
    diag0 = layer.nm_diagnostics()
    assert diag0['flip_rate'] == 0.0 and diag0['divergence_start'] == 0.0
    opt = torch.optim.SGD(layer.parameters(), lr=5.0)
    for _ in range(3):
        opt.zero_grad()
        layer(x).pow(2).sum().backward()
        opt.step()
    torch.testing.assert_close(layer.nm_mask(), ref_topn_mask(layer.weight, 2, 4),
                               rtol=0, atol=0)
    flips = float((layer.nm_mask() != after).float().mean())
    assert flips > 0
    diag = layer.nm_diagnostics()
    assert diag['flip_rate'] == pytest.approx(flips)
    assert diag['divergence_start'] == pytest.approx(flips)  # the start: `after`
    diag = layer.nm_diagnostics()
    assert diag['flip_rate'] == 0.0 and diag['divergence_start'] == pytest.approx(flips)
    assert 'flip_rate' not in layer.nm_stats()  # the base's diagnostics provide it


def test_protocol_update_densities_stats_state():
    layer, _, _ = make_layer('conv', 2, 8)
    assert layer.nm_update(NMScheduleState(t=5, ti=0, tf=10, iteration=50)) is False
    assert layer.nm_train_densities() == dict(forward=0.25, input_grad=0.25,
                                              weight_grad=1.0)
    stats = layer.nm_stats()
    assert stats['eligible'] == 1.0 and stats['exact'] == 1.0
    assert stats['nonzero'] == stats['numel'] * 2 / 8
    assert layer.nm_extra_state_names == ()
    assert set(layer.state_dict()) == {'weight', 'bias'}
    assert 'srste 2:8' in repr(layer)
    assert SPARSE_LAYERS['srste'] == {'Conv2d': SRSTEConv2d, 'Linear': SRSTELinear}


@pytest.mark.parametrize('bad', [-1e-4, float('nan'), '1e-4', True, None])
def test_lambda_w_is_validated(bad):
    with pytest.raises(ValueError, match='lambda_w'):
        SRSTEConv2d(8, 4, 3, n=2, m=4, lambda_w=bad)


def test_from_dense_reuses_parameters_and_takes_lambda_w():
    dense = nn.Conv2d(8, 4, 3)
    layer = SRSTEConv2d.from_dense(dense, n=2, m=4, lambda_w=1e-3)
    assert layer.weight is dense.weight and layer.lambda_w == 1e-3
    assert set(layer.state_dict()) == {'weight', 'bias'}


def test_registered_in_mmdet():
    from mmdet.registry import MODELS
    layer = MODELS.build(dict(type='SRSTEConv2d', in_channels=8, out_channels=4,
                              kernel_size=1, n=1, m=4, lambda_w=1e-3))
    assert isinstance(layer, SRSTEConv2d) and layer.lambda_w == 1e-3
    assert isinstance(MODELS.build(dict(type='SRSTELinear', in_features=8,
                                        out_features=2)), SRSTELinear)


def test_stem_is_left_dense():
    stem = SRSTEConv2d(3, 8, 7, n=2, m=4)
    assert not stem.nm_eligible
    assert 'not divisible by M=4' in stem.nm_skip_reason
    x = torch.randn(1, 3, 9, 9)
    out = stem(x)
    torch.testing.assert_close(out, F.conv2d(x, stem.weight, stem.bias))
    out.sum().backward()
    w = stem.weight.detach().requires_grad_()
    F.conv2d(x, w, stem.bias).sum().backward()
    torch.testing.assert_close(stem.weight.grad, w.grad)
    assert torch.equal(stem.nm_mask(), torch.ones_like(stem.weight))
    assert stem.nm_train_densities() == dict(forward=1.0, input_grad=1.0,
                                             weight_grad=1.0)
    assert stem.nm_stats() == dict(eligible=0.0)
    assert set(stem.state_dict()) == {'weight', 'bias'}
