"""Mask-health diagnostics of the layer protocol (``nm_diagnostics``) and SR-STE's gradual
schedule (the LBC paper's Table 5 control)."""
import math

import pytest
import torch

from lbc_mmdet.layers import NMScheduleState
from lbc_mmdet.layers.asp import ASPLinear
from lbc_mmdet.layers.lbc import LBCLinear
from lbc_mmdet.layers.srste import SRSTEConv2d, SRSTELinear
from lbc_mmdet.nm import to_groups


def _state(t, ti=0.0, tf=30.0, it=0):
    return NMScheduleState(t=float(t), ti=float(ti), tf=float(tf), iteration=it)


def test_flip_rate_counts_changed_mask_bits():
    torch.manual_seed(0)
    layer = ASPLinear(8, 4, n=2, m=4)
    assert layer.nm_diagnostics() == dict(flip_rate=0.0)  # first call
    assert layer.prune_now()
    # all ones -> 2:4: half of the bits flipped
    assert layer.nm_diagnostics()['flip_rate'] == pytest.approx(0.5)
    # ASP's mask is fixed after its prune: no flip, whatever the optimizer does
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    x = torch.randn(16, 8)
    for it in range(3):
        opt.zero_grad()
        layer(x).pow(2).sum().backward()
        opt.step()
        layer.nm_update(_state(it + 1, tf=0))
        assert layer.nm_diagnostics()['flip_rate'] == 0.0
    # nm_diagnostics_start: 0 and a new reference
    assert layer.nm_diagnostics_start()['flip_rate'] == 0.0


def test_ineligible_layer_has_no_diagnostics():
    layer = SRSTELinear(6, 4, n=2, m=4)  # 6 inputs: not grouped by 4
    assert not layer.nm_eligible and layer.nm_diagnostics() == {}


def test_srste_flips_early_in_training_and_diverges_from_the_start():
    torch.manual_seed(0)
    layer = SRSTEConv2d(8, 8, 3, padding=1, n=2, m=4)
    start = layer.nm_mask().bool()
    assert layer.nm_diagnostics_start() == dict(flip_rate=0.0, divergence_start=0.0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.randn(4, 8, 6, 6)
    for _ in range(2):
        opt.zero_grad()
        (layer(x) - 1.0).pow(2).mean().backward()
        opt.step()
    now = layer.nm_mask().bool()
    d = layer.nm_diagnostics()
    expected = float((now != start).float().mean())
    assert expected > 0
    assert d['flip_rate'] == pytest.approx(expected)
    assert d['divergence_start'] == pytest.approx(expected)
    # 2:4 masks differ in an even number of bits per group: at most all of them
    assert 0 < d['divergence_start'] <= 1.0


def test_lbc_score_margin_by_hand():
    layer = LBCLinear(4, 2, n=2, m=4)  # 2 groups of 4, comb(4, 2) = 6 candidates
    assert layer.scores.shape == (2, 6)
    with torch.no_grad():
        layer.scores.copy_(torch.tensor([[0.1, 0.9, 0.3, 0.5, 0.2, 0.0],
                                         [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))
    # group 0: 0.9 - 0.5; group 1: a tie, 0
    assert layer.nm_diagnostics()['score_margin'] == pytest.approx((0.4 + 0.0) / 2)
    # dead candidates do not count: remove the lowest three of each group
    assert layer.remove_to(3)
    # group 0 keeps 0.9, 0.5, 0.3; group 1 keeps 1.0, 1.0 and one 0.0 (ties: lowest
    # index removed first); a dead candidate's score no longer counts
    assert layer.alive[0].tolist() == [False, True, True, True, False, False]
    with torch.no_grad():
        layer.scores[0, 0] = 5.0  # dead: ignored
        layer.scores[0, 1] = -5.0  # the best alive one becomes the lowest
    assert layer.nm_diagnostics()['score_margin'] == pytest.approx(((0.5 - 0.3) + 0) / 2)
    # one candidate left: no second best, no margin
    layer.remove_to(5)
    assert 'score_margin' not in layer.nm_diagnostics()


# --------------------------------------------------------------------------- gradual
def _cubic_pruned(n, m, t, ti, tf):
    """``ceil((M - N) * (1 - (1 - (t - ti) / (tf - ti)) ** 3))``, written out."""
    if t <= ti:
        return 0
    if t >= tf:
        return m - n
    frac = 1 - (1 - (t - ti) / (tf - ti))**3
    return min(m - n, math.ceil((m - n) * frac - 1e-9))


@pytest.mark.parametrize('n,m', [(1, 4), (2, 8), (2, 4)])
def test_srste_gradual_prunes_on_the_cubic_schedule(n, m):
    torch.manual_seed(0)
    layer = SRSTEConv2d(2 * m, 4, 3, n=n, m=m, gradual=True)
    assert layer.nm_keep == n  # before any schedule state: exact N:M
    changes = 0
    for t in [0, 1, 2.5, 5, 10, 15, 20, 29, 30, 40]:
        before = layer.nm_keep
        changed = layer.nm_update(_state(t, ti=0, tf=30))
        pruned = _cubic_pruned(n, m, t, 0, 30)
        assert changed == (m - pruned != before)
        changes += changed
        counts = to_groups(layer.nm_mask(), m).sum(dim=1)
        assert bool((counts == m - pruned).all()), (t, pruned)
        d = layer.nm_train_densities()
        assert d == dict(forward=(m - pruned) / m, input_grad=(m - pruned) / m,
                         weight_grad=1.0)
        assert d == layer.nm_schedule_densities(n, m, t, 0, 30)
        assert d == layer.nm_schedule_densities(n, m, t, 0, 30, gradual=True)
    assert changes >= 2 and layer.nm_is_exact()  # exact N:M after tf
    # hand values for 1:4, window [0, 30]: t = 1 -> 1, t = 5 -> 2, t = 10 -> 3
    if (n, m) == (1, 4):
        assert [layer.gradual_pruned(1, 4, t, 0, 30) for t in (0, 1, 5, 10)] == [0, 1, 2, 3]


def test_srste_default_ignores_the_schedule():
    torch.manual_seed(0)
    plain = SRSTELinear(8, 4, n=2, m=4)
    mask = plain.nm_mask().clone()
    assert not plain.nm_update(_state(0, ti=0, tf=30))
    assert torch.equal(plain.nm_mask(), mask) and plain.nm_is_exact()
    assert plain.nm_train_densities() == dict(forward=0.5, input_grad=0.5, weight_grad=1.0)
    # the classmethod: explicit gradual=False, or an empty window, is the plain SR-STE
    plain_d = dict(forward=0.5, input_grad=0.5, weight_grad=1.0)
    assert SRSTELinear.nm_schedule_densities(2, 4, 0, 0, 30, gradual=False) == plain_d
    assert SRSTELinear.nm_schedule_densities(2, 4, 0, 0, 0) == plain_d
    assert SRSTELinear.nm_schedule_densities(2, 4, 0, 0, 30)['forward'] == 1.0
    with pytest.raises(ValueError, match='gradual'):
        SRSTELinear(8, 4, n=2, m=4, gradual='yes')
    assert 'gradual' in repr(SRSTELinear(8, 4, n=2, m=4, gradual=True))


def test_srste_gradual_count_reaches_an_ema_copy():
    import copy
    live = SRSTELinear(8, 4, n=1, m=4, gradual=True)
    ema = copy.deepcopy(live)
    live.nm_update(_state(1, ti=0, tf=30))
    assert live.nm_keep == 3 and ema.nm_keep == 1
    live.nm_copy_state_to(ema)
    assert ema.nm_keep == 3
    torch.testing.assert_close(ema.nm_mask(), live.nm_mask(), rtol=0, atol=0)
