"""LBC layers against an independent reference of Eq. 6-9 written here."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from lbc_mmdet.layers import NMScheduleState
from lbc_mmdet.layers.lbc import LBCConv2d, LBCLinear

PATTERNS = [(2, 4), (2, 8), (1, 4), (1, 16)]


def ref_group_index(shape, m):
    """Group id and position of every weight element, by explicit indexing."""
    gid = torch.empty(shape, dtype=torch.long)
    pos = torch.empty(shape, dtype=torch.long)
    if len(shape) == 4:
        o, i, kh, kw = shape
        for a, c, y, x in itertools.product(range(o), range(i), range(kh), range(kw)):
            gid[a, c, y, x] = ((a * kh + y) * kw + x) * (i // m) + c // m
            pos[a, c, y, x] = c % m
    else:
        o, i = shape
        for a, c in itertools.product(range(o), range(i)):
            gid[a, c] = a * (i // m) + c // m
            pos[a, c] = c % m
    return gid, pos


def ref_mask(alive, shape, n, m):
    combos = list(itertools.combinations(range(m), n))
    gid, pos = ref_group_index(shape, m)
    keep = torch.zeros(alive.shape[0], m, dtype=torch.bool)
    for g in range(alive.shape[0]):
        for j, combo in enumerate(combos):
            if alive[g, j]:
                keep[g, list(combo)] = True
    return keep[gid, pos].float()


def ref_score_grad(weight, grad_eff, alive, n, m):
    combos = list(itertools.combinations(range(m), n))
    gid, pos = ref_group_index(weight.shape, m)
    dmask = torch.zeros(alive.shape[0], m)
    dmask.index_put_((gid.flatten(), pos.flatten()),
                     (weight * grad_eff).flatten().detach(), accumulate=True)
    out = torch.zeros(alive.shape, dtype=torch.float32)
    for g in range(alive.shape[0]):
        for j, combo in enumerate(combos):
            if alive[g, j]:
                out[g, j] = dmask[g, list(combo)].sum()
    return out


def make_layer(kind, n, m):
    torch.manual_seed(0)
    if kind == 'conv':
        layer = LBCConv2d(m * 2, 3, 3, padding=1, n=n, m=m)
        x = torch.randn(2, m * 2, 5, 5)
        ref_forward = lambda w: F.conv2d(x, w, layer.bias, padding=1)  # noqa: E731
    else:
        layer = LBCLinear(m * 2, 3, n=n, m=m)
        x = torch.randn(4, m * 2)
        ref_forward = lambda w: F.linear(x, w, layer.bias)  # noqa: E731
    return layer, x, ref_forward


@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
def test_lbc_forward_and_gradients_match_reference(kind, n, m):
    layer, x, ref_forward = make_layer(kind, n, m)
    c = math.comb(m, n)
    assert layer.scores.shape == (layer.weight.numel() // m, c)
    assert torch.allclose(layer.scores, torch.full_like(layer.scores,
                                                        1 / math.comb(m - 1, n - 1)))
    assert layer.alive.all()
    # kill a random subset of candidates, keeping at least one per group
    g = torch.Generator().manual_seed(1)
    alive = torch.rand(layer.alive.shape, generator=g) > 0.5
    alive[:, 0] = True
    layer.alive.copy_(alive)

    out = layer(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)

    mask = ref_mask(alive, layer.weight.shape, n, m)
    w_eff = (layer.weight.detach() * mask).requires_grad_(True)
    ref_out = ref_forward(w_eff)
    ref_out.backward(grad_out)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(layer.nm_mask(), mask)
    # weights outside the mask get exactly zero gradient; inside, the plain gradient
    torch.testing.assert_close(layer.weight.grad, w_eff.grad * mask)
    assert (layer.weight.grad[mask == 0] == 0).all()
    ref_scores = ref_score_grad(layer.weight, w_eff.grad, alive, n, m)
    torch.testing.assert_close(layer.scores.grad, ref_scores, rtol=1e-5, atol=1e-6)
    assert (layer.scores.grad[~alive] == 0).all()


@pytest.mark.parametrize('n,m', PATTERNS)
def test_removal_count_follows_eq6_and_picks_lowest_alive_scores(n, m):
    layer, _, _ = make_layer('conv', n, m)
    c = math.comb(m, n)
    torch.manual_seed(3)
    with torch.no_grad():
        layer.scores.copy_(torch.randn_like(layer.scores))
    ti, tf = 0.0, 10.0
    prev_alive = layer.alive.clone()
    for t in [0, 1, 2.5, 4, 7, 9.5, 10, 12]:
        layer.nm_update(NMScheduleState(t=t, ti=ti, tf=tf, iteration=0))
        expect_removed = 0 if t <= ti else (
            c - 1 if t >= tf else math.ceil((c - 1) * (1 - (1 - (t - ti) /
                                                            (tf - ti))**3)))
        assert (layer.alive.sum(1) == c - expect_removed).all(), t
        # the removed ones are the lowest-scored of those alive before
        newly_dead = prev_alive & ~layer.alive
        for grp in range(layer.alive.shape[0]):
            dead_scores = layer.scores[grp][newly_dead[grp]]
            kept_scores = layer.scores[grp][layer.alive[grp]]
            if len(dead_scores) and len(kept_scores):
                assert dead_scores.max() <= kept_scores.min()
        assert not (layer.alive & ~prev_alive).any()
        prev_alive = layer.alive.clone()
    assert layer.finished and layer.nm_is_exact()
    counts = (layer.masked_weight() != 0).permute(0, 2, 3, 1).reshape(-1, m).sum(1)
    assert (counts <= n).all() and (layer.nm_mask().permute(0, 2, 3, 1).reshape(
        -1, m).sum(1) == n).all()


def test_ties_remove_lowest_index_first():
    layer = LBCLinear(4, 1, n=2, m=4)  # one group, 6 candidates, all scores tied
    layer.remove_to(2)
    assert layer.alive[0].tolist() == [False, False, True, True, True, True]


def test_dead_candidates_never_revive_with_momentum_and_decay():
    layer, x, _ = make_layer('conv', 2, 4)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    history = []
    for it in range(40):
        opt.zero_grad()
        loss = layer(x).pow(2).mean() - layer(x).mean()
        loss.backward()
        if not layer.finished:
            assert (layer.scores.grad[~layer.alive] == 0).all()
        else:
            assert layer.scores.grad is None
        opt.step()
        # push dead candidates' scores far up: momentum would revive them in the
        # official code, where membership is recomputed from scores
        with torch.no_grad():
            layer.scores[~layer.alive] += 100.0
        layer.nm_update(NMScheduleState(t=it + 1, ti=0, tf=30, iteration=it + 1))
        history.append(layer.alive.clone())
    for before, after in zip(history, history[1:]):
        assert not (after & ~before).any()
    assert layer.finished and layer.nm_is_exact()


def test_scores_stop_changing_once_one_candidate_left():
    layer, x, _ = make_layer('linear', 2, 4)
    layer.remove_to(5)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.5)
    before = layer.scores.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        layer(x).sum().backward()
        opt.step()
    assert layer.scores.grad is None
    assert torch.equal(layer.scores, before)


def test_frozen_layer_ranks_by_magnitude_not_ties():
    layer = LBCLinear(4, 1, n=2, m=4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, 5.0, 0.2, 3.0]]))
    layer.weight.requires_grad_(False)
    layer.scores.requires_grad_(False)
    layer.remove_to(5)
    assert layer.nm_mask()[0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_stem_is_left_dense_and_reported():
    stem = LBCConv2d(3, 8, 7, n=2, m=4)
    assert not stem.nm_eligible
    assert 'not divisible by M=4' in stem.nm_skip_reason
    assert not hasattr(stem, 'scores')
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(stem(x), F.conv2d(x, stem.weight, stem.bias))


def test_state_dict_keeps_dense_keys_and_adds_scores_alive():
    layer = LBCConv2d(8, 4, 3, n=2, m=4)
    keys = set(layer.state_dict())
    assert keys == {'weight', 'bias', 'scores', 'alive'}


def test_loading_a_checkpoint_of_another_pattern_is_refused():
    src = LBCConv2d(8, 4, 3, n=2, m=8)
    dst = LBCConv2d(8, 4, 3, n=2, m=4)
    with pytest.raises(RuntimeError, match='another N:M pattern'):
        dst.load_state_dict(src.state_dict())


def test_mask_follows_loaded_alive():
    a = LBCConv2d(8, 4, 3, n=2, m=4)
    b = LBCConv2d(8, 4, 3, n=2, m=4)
    _ = b.nm_mask()
    with torch.no_grad():
        a.scores.copy_(torch.randn_like(a.scores))
    a.remove_to(5)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.nm_mask(), a.nm_mask())


def test_nm_refresh_rebuilds_the_cached_mask_in_place():
    """``nm_refresh`` (what the training benchmark's event timing calls) brings the cached
    bool mask up to date after a load, without returning or copying it."""
    a = LBCConv2d(8, 4, 3, n=2, m=4)
    b = LBCConv2d(8, 4, 3, n=2, m=4)
    b.nm_refresh()
    with torch.no_grad():
        a.scores.copy_(torch.randn_like(a.scores))
    a.remove_to(5)
    b.load_state_dict(a.state_dict())
    assert bool(b._mask.all())  # stale until refreshed
    assert b.nm_refresh() is None
    assert b._mask.dtype == torch.bool
    torch.testing.assert_close(b._mask.float(), a.nm_mask())
    assert 0.5 <= float(b._mask.float().mean()) < 1.0


@pytest.mark.parametrize('n,m', [(2, 4), (1, 4), (2, 8), (1, 16)])
def test_incremental_mask_after_every_removal_event(n, m):
    """``remove_to`` updates the mask and the removal count itself (no rebuild from
    ``alive``); after every event they equal the reference union of the alive candidates,
    and a fresh rebuild gives the same."""
    torch.manual_seed(n * 100 + m)
    layer = LBCConv2d(2 * m, 3, 3, n=n, m=m)
    with torch.no_grad():
        layer.scores.normal_()
    layer.nm_mask()
    for target in range(1, layer.num_candidates):
        layer.remove_to(target)
        assert layer.num_removed == target
        assert torch.equal(layer.nm_mask(), ref_mask(layer.alive, layer.weight.shape, n, m))
        layer._mask_key = None  # force the rebuild from `alive`
        assert torch.equal(layer.nm_mask(), ref_mask(layer.alive, layer.weight.shape, n, m))
    assert layer.finished and layer.nm_is_exact()


def test_magnitude_score_init_at_the_start_of_training_only():
    torch.manual_seed(3)
    layer = LBCConv2d(8, 4, 3, n=2, m=4, score_init='magnitude')
    uniform = 1 / math.comb(3, 1)
    assert torch.allclose(layer.scores, torch.full_like(layer.scores, uniform))
    # iteration 0 (the hook's first update of a fresh run): scores from the weights
    layer.nm_update(NMScheduleState(t=0.0, ti=0.0, tf=10.0, iteration=0))
    groups = layer.weight.detach().permute(0, 2, 3, 1).reshape(-1, 4).abs()
    combos = list(itertools.combinations(range(4), 2))
    expect = torch.stack([groups[:, list(c)].sum(1) for c in combos], 1)
    expect = expect / (2 * groups.mean(1, keepdim=True)) * uniform
    torch.testing.assert_close(layer.scores.detach(), expect)
    assert not layer.alive.logical_not().any()  # nothing removed at t = 0
    # the first removal (one candidate at t=1 of a 100-long window) drops each group's
    # smallest candidate
    layer.nm_update(NMScheduleState(t=1.0, ti=0.0, tf=100.0, iteration=1))
    assert layer.num_removed == 1
    dead = (~layer.alive).float().argmax(1)
    assert torch.equal(dead, expect.argmin(1))
    # a resumed run (iteration > 0) keeps its learned scores
    before = layer.scores.detach().clone()
    layer.nm_update(NMScheduleState(t=1.0, ti=0.0, tf=100.0, iteration=1))
    assert torch.equal(layer.scores.detach(), before)
    # equal weights: the magnitude init is the uniform one
    flat = LBCLinear(8, 2, n=2, m=4, score_init='magnitude')
    with torch.no_grad():
        flat.weight.fill_(0.3)
    flat.nm_update(NMScheduleState(t=0.0, ti=0.0, tf=10.0, iteration=0))
    assert torch.allclose(flat.scores, torch.full_like(flat.scores, uniform))
    with pytest.raises(ValueError, match='score_init'):
        LBCConv2d(8, 4, 1, score_init='random')
