"""ASP layers against an independent reference written here (explicit loops)."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import SPARSE_LAYERS

from lbc_mmdet.layers import NMScheduleState
from lbc_mmdet.layers.asp import ASPConv2d, ASPLinear

PATTERNS = [(2, 4), (2, 8), (1, 4), (1, 16)]


def ref_groups(shape, m):
    """Element indices of every N:M group by explicit indexing (Conv2d: M consecutive
    input channels at a fixed output channel and kernel position; Linear: M consecutive
    inputs of one output)."""
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
    mask = torch.zeros(w.shape, dtype=torch.bool)
    for idx in ref_groups(tuple(w.shape), m):
        ranked = sorted(range(m), key=lambda p: (-abs(float(w[idx[p]])), p))
        for p in ranked[:n]:
            mask[idx[p]] = True
    return mask


def ref_counts(tensor, m):
    return [sum(bool(tensor[e] != 0) for e in idx) for idx in ref_groups(tensor.shape, m)]


def make_layer(kind, n, m):
    torch.manual_seed(0)
    if kind == 'conv':
        layer = ASPConv2d(m * 2, 3, 3, padding=1, n=n, m=m)
        x = torch.randn(2, m * 2, 5, 5)
        ref_forward = lambda w: F.conv2d(x, w, layer.bias, padding=1)  # noqa: E731
    else:
        layer = ASPLinear(m * 2, 3, n=n, m=m)
        x = torch.randn(4, m * 2)
        ref_forward = lambda w: F.linear(x, w, layer.bias)  # noqa: E731
    return layer, x, ref_forward


def state(t, ti=2.0, it=0):
    return NMScheduleState(t=float(t), ti=ti, tf=10.0, iteration=it)


@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
def test_dense_before_ti_then_pruned_once_at_ti(kind, n, m):
    layer, x, ref_forward = make_layer(kind, n, m)
    assert layer.nm_method == 'asp' and layer.nm_eligible
    assert layer.mask.dtype == torch.bool and layer.mask.shape == layer.weight.shape
    assert layer.pruned.shape == () and not bool(layer.pruned)
    # before ti: dense forward, dense gradient, dense accounting
    for t in (0.0, 1.0, 1.99):
        assert layer.nm_update(state(t)) is False
    assert torch.equal(layer.nm_mask(), torch.ones_like(layer.weight))
    assert layer.nm_train_densities() == dict(forward=1.0, input_grad=1.0,
                                              weight_grad=1.0)
    out = layer(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    w = layer.weight.detach().clone().requires_grad_()
    ref_out = ref_forward(w)
    ref_out.backward(grad_out)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(layer.weight.grad, w.grad)

    # at ti: the magnitude mask of the weights of that moment, pruned weights zeroed
    w_at_ti = layer.weight.detach().clone()
    expect = ref_topn_mask(w_at_ti, n, m)
    assert layer.nm_update(state(2.0)) is True
    assert bool(layer.pruned)
    assert torch.equal(layer.mask, expect)
    assert torch.equal(layer.nm_mask(), expect.float())
    assert torch.equal(layer.weight.detach(), w_at_ti * expect)
    assert (layer.weight[~expect] == 0).all()
    assert all(c == n for c in ref_counts(layer.masked_weight(), m))
    assert layer.nm_is_exact()
    assert layer.nm_train_densities() == dict(forward=n / m, input_grad=n / m,
                                              weight_grad=n / m)
    stats = layer.nm_stats()
    assert stats['pruned'] == 1.0 and stats['exact'] == 1.0
    assert stats['nonzero'] == stats['numel'] * n / m

    # after: masked forward, zero gradient on pruned weights, never re-pruned
    layer.weight.grad = None
    out = layer(x)
    out.backward(grad_out)
    w_eff = (w_at_ti * expect).requires_grad_()
    ref_out = ref_forward(w_eff)
    ref_out.backward(grad_out)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(layer.weight.grad, w_eff.grad * expect)
    assert (layer.weight.grad[~expect] == 0).all()
    with torch.no_grad():
        layer.weight.copy_(torch.randn_like(layer.weight))  # new magnitudes
    assert layer.nm_update(state(5.0)) is False
    assert torch.equal(layer.mask, expect)
    assert (layer.weight[~expect] == 0).all()


@pytest.mark.parametrize('kind', ['conv', 'linear'])
def test_mask_fixed_and_pruned_weights_stay_zero_under_momentum_and_decay(kind):
    n, m = 2, 4
    layer, x, _ = make_layer(kind, n, m)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05, momentum=0.9, weight_decay=0.05)
    ti = 5
    mask = None
    moved_off_zero = False
    for it in range(20):
        opt.zero_grad()
        loss = (layer(x) - 1.0).pow(2).mean()
        loss.backward()
        if mask is not None:
            assert (layer.weight.grad[~mask] == 0).all()
        opt.step()
        if mask is not None:
            # the momentum gathered while dense moves them; nm_update puts them back
            moved_off_zero |= bool((layer.weight[~mask] != 0).any())
        before = layer.weight.detach().clone()
        changed = layer.nm_update(state(it + 1, ti=ti, it=it + 1))
        assert changed == (it + 1 == ti)
        if changed:
            mask = ref_topn_mask(before, n, m)
            first_mask = layer.mask.clone()
            w_prune = layer.weight.detach().clone()
        if mask is not None:
            assert torch.equal(layer.mask, mask)
            assert (layer.weight[~mask] == 0).all()
            assert all(c == n for c in ref_counts(layer.masked_weight(), m))
    assert moved_off_zero
    assert torch.equal(layer.mask, first_mask)
    # the kept weights did keep training
    assert not torch.equal(layer.weight.detach()[mask], w_prune[mask])
    assert torch.equal(layer.nm_mask(), first_mask.float())


def test_prune_now_for_one_shot_fine_tuning():
    dense = nn.Conv2d(8, 4, 3)
    torch.nn.init.normal_(dense.weight)
    layer = ASPConv2d(8, 4, 3, n=2, m=4)
    # a dense checkpoint has no mask/pruned: load it non-strictly, then prune
    # (the method's state is not reported missing: the layer is marked instead)
    missing, unexpected = layer.load_state_dict(dense.state_dict(), strict=False)
    assert not missing and not unexpected and layer.nm_init_from_dense
    assert layer.prune_now() is True
    expect = ref_topn_mask(dense.weight, 2, 4)
    assert torch.equal(layer.mask, expect)
    assert torch.equal(layer.weight.detach(), dense.weight.detach() * expect)
    assert layer.prune_now() is False  # once
    assert torch.equal(layer.mask, expect)
    # the hook later finds it pruned and does not recompute
    assert layer.nm_update(state(100.0)) is False
    assert torch.equal(layer.mask, expect)


def test_state_survives_state_dict_round_trip():
    a, x, _ = make_layer('conv', 2, 8)
    a.nm_update(state(3.0))
    sd = a.state_dict()
    assert set(sd) == {'weight', 'bias', 'mask', 'pruned'}
    assert sd['mask'].dtype == torch.bool and bool(sd['pruned'])
    b = ASPConv2d(16, 3, 3, padding=1, n=2, m=8)
    assert not bool(b.pruned)
    b.load_state_dict(sd)
    assert bool(b.pruned) and torch.equal(b.mask, a.mask)
    torch.testing.assert_close(b(x), a(x))
    # resumed: not pruned again from the (different) current weights
    with torch.no_grad():
        b.weight.add_(torch.randn_like(b.weight))
    assert b.nm_update(state(4.0)) is False
    assert torch.equal(b.mask, a.mask)
    assert (b.weight[~b.mask] == 0).all()


def test_loading_a_mask_of_another_shape_is_refused():
    a = ASPConv2d(8, 4, 3, n=2, m=4)
    sd = a.state_dict()
    sd['mask'] = torch.ones(4, 8, 1, 1, dtype=torch.bool)
    with pytest.raises(RuntimeError,
                       match=r'mask: the checkpoint holds shape \(4, 8, 1, 1\)'):
        a.load_state_dict(sd)
    with pytest.raises(RuntimeError, match='mask'):
        a.load_state_dict(ASPConv2d(16, 4, 3, n=2, m=4).state_dict())


def test_loading_a_mask_of_another_pattern_is_refused():
    src = ASPConv2d(8, 4, 3, n=2, m=8)
    src.prune_now()
    dst = ASPConv2d(8, 4, 3, n=2, m=4)
    with pytest.raises(RuntimeError, match='another N:M pattern'):
        dst.load_state_dict(src.state_dict())
    # an unpruned (all-ones) mask of the same shape loads fine
    dst.load_state_dict(ASPConv2d(8, 4, 3, n=2, m=8).state_dict())


def test_stem_is_left_dense():
    stem = ASPConv2d(3, 8, 7, n=2, m=4)
    assert not stem.nm_eligible
    assert 'not divisible by M=4' in stem.nm_skip_reason
    assert not hasattr(stem, 'mask') and not hasattr(stem, 'pruned')
    assert stem.nm_update(state(100.0)) is False
    assert stem.prune_now() is False
    x = torch.randn(1, 3, 9, 9)
    out = stem(x)
    torch.testing.assert_close(out, F.conv2d(x, stem.weight, stem.bias))
    assert (stem.weight != 0).all()
    assert torch.equal(stem.nm_mask(), torch.ones_like(stem.weight))
    assert stem.nm_train_densities() == dict(forward=1.0, input_grad=1.0,
                                             weight_grad=1.0)
    assert set(stem.state_dict()) == {'weight', 'bias'}


def test_registry_and_sparse_layers():
    from mmdet.registry import MODELS
    layer = MODELS.build(dict(type='ASPConv2d', in_channels=8, out_channels=4,
                              kernel_size=1, n=1, m=4))
    assert isinstance(layer, ASPConv2d)
    assert isinstance(MODELS.build(dict(type='ASPLinear', in_features=8,
                                        out_features=2)), ASPLinear)
    assert SPARSE_LAYERS['asp'] == {'Conv2d': ASPConv2d, 'Linear': ASPLinear}
    assert ASPConv2d.nm_extra_state_names == ('mask', 'pruned')
    dense = nn.Linear(8, 2)
    conv = ASPLinear.from_dense(dense, n=2, m=4)
    assert conv.weight is dense.weight
