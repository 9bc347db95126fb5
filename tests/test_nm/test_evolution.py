"""BAME's plain-torch evolution maths against references written here with Python loops."""
import math

import pytest
import torch

from lbc_mmdet.nm import (
    designate,
    designation_fraction,
    designation_scores,
    evolve_blocks,
    freeze_decision,
    lma_select,
    mask_code,
    mask_gain,
    num_designated,
    oscillated,
    oscillation_frequency,
    selection_scores,
)


def ref_rho(t, ti, tf, rho0):
    if t < ti or t >= tf:
        return 0.0
    return rho0 * (1 - (t - ti) / (tf - ti))**3


def ref_topn(scores_row, kept_row, n):
    """Top-n indices: highest score, then kept ones, then lowest index."""
    m = len(scores_row)
    order = sorted(range(m), key=lambda i: (-scores_row[i], not kept_row[i], i))
    return set(order[:n])


@pytest.mark.parametrize('ti,tf,rho0', [(0, 10, 0.5), (2, 7, 1.0), (0.5, 3.25, 0.3)])
def test_designation_schedule(ti, tf, rho0):
    g = 37
    for t in [ti - 1, ti, ti + 0.01, (ti + tf) / 2, tf - 0.01, tf, tf + 5]:
        assert designation_fraction(t, ti, tf, rho0) == pytest.approx(
            ref_rho(t, ti, tf, rho0))
        k = num_designated(t, ti, tf, rho0, g)
        expect = math.ceil(ref_rho(t, ti, tf, rho0) * g - 1e-9) if ti <= t < tf else 0
        assert k == expect
        if ti <= t < tf:
            assert 1 <= k <= g
    assert num_designated(0, 0, 10, 1.0, 12) == 12
    # exact products must not be rounded up by float noise
    assert num_designated(0, 0, 10, 0.5, 8) == 4


def test_selection_scores():
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    g = torch.tensor([[-4.0, 1.0, 0.1, 2.0]])
    assert selection_scores(w, g, 'taylor').tolist() == [[4.0, 2.0, pytest.approx(0.3),
                                                          1.0]]
    assert selection_scores(w, g, 'magnitude').tolist() == [[1.0, 2.0, 3.0, 0.5]]
    with pytest.raises(ValueError, match='criterion'):
        selection_scores(w, g, 'fisher')


@pytest.mark.parametrize('n,m', [(2, 4), (1, 4), (2, 8), (1, 16)])
def test_lma_select_matches_reference(n, m):
    gen = torch.Generator().manual_seed(n * 100 + m)
    g = 50
    # coarse scores so that ties happen
    scores = torch.randint(0, 3, (g, m), generator=gen).float()
    mask = torch.zeros(g, m, dtype=torch.bool)
    for r in range(g):
        mask[r, torch.randperm(m, generator=gen)[:n]] = True
    new = lma_select(scores, mask, n)
    assert (new.sum(1) == n).all()
    for r in range(g):
        keep = ref_topn(scores[r].tolist(), mask[r].tolist(), n)
        assert set(new[r].nonzero().flatten().tolist()) == keep


def test_lma_ties_keep_current_mask_then_lowest_index():
    scores = torch.zeros(2, 4)
    mask = torch.tensor([[False, False, True, True], [False, True, False, False]])
    new = lma_select(scores, mask, 2)
    assert new[0].tolist() == [False, False, True, True]  # current mask kept
    assert new[1].tolist() == [True, True, False, False]  # kept one, then lowest index


def test_mask_gain():
    s = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    old = torch.tensor([[False, True, False, True]])
    new = torch.tensor([[True, False, True, False]])
    assert mask_gain(s, new, old).tolist() == [4.0]
    assert mask_gain(s, old, old).tolist() == [0.0]
    assert mask_gain(s, old, new).tolist() == [0.0]  # clipped at 0


def test_mask_code_is_the_bit_pattern():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(20, 16, generator=gen) > 0.5
    code = mask_code(mask)
    for r in range(20):
        assert int(code[r]) == sum(1 << i for i in range(16) if mask[r, i])
    with pytest.raises(ValueError, match='`m`'):
        mask_code(torch.zeros(1, 64, dtype=torch.bool))


def test_oscillation_and_freezing_rules():
    new = torch.tensor([5, 5, 3, 6])
    code = torch.tensor([3, 5, 3, 3])
    prev = torch.tensor([5, 5, -1, 5])
    # equal to two ago and differs from last -> only block 0
    assert oscillated(new, code, prev).tolist() == [True, False, False, False]
    osc_count = torch.tensor([2, 1, 2, 0])
    n_obs = torch.tensor([3, 3, 2, 0])
    assert oscillation_frequency(osc_count, n_obs).tolist() == pytest.approx(
        [2 / 3, 1 / 3, 1.0, 0.0])
    assert freeze_decision(osc_count, n_obs, 3, 0.5).tolist() == [True, False, False,
                                                                  False]
    assert freeze_decision(osc_count, n_obs, 2, 0.5).tolist() == [True, False, True,
                                                                  False]


def test_designation_joint_score_never_measured_first_frozen_excluded():
    nan = float('nan')
    gain = torch.tensor([1.0, nan, 3.0, 2.0, nan, 5.0, 0.5])
    osc = torch.tensor([0.0, 0.0, 0.5, 0.0, 0.0, 0.9, 0.0])
    frozen = torch.tensor([False, False, False, False, True, False, False])
    j = designation_scores(gain, osc, frozen)
    assert j[1] == float('inf') and j[4] == float('-inf')
    assert j[2].item() == pytest.approx(1.5) and j[5].item() == pytest.approx(0.5)
    # reference ranking: never measured, then by J, ties lowest index
    ref_key = []
    for b in range(7):
        if frozen[b]:
            continue
        jb = math.inf if math.isnan(gain[b]) else float(gain[b]) * (1 - float(osc[b]))
        ref_key.append((-jb, b))
    ref_order = [b for _, b in sorted(ref_key)]
    for k in range(0, 9):
        d = designate(gain, osc, frozen, k)
        assert set(d.nonzero().flatten().tolist()) == set(ref_order[:k])
        assert not (d & frozen).any()
        assert int(d.sum()) == min(k, 6)


def test_designation_ties_lowest_index_first():
    gain = torch.full((6, ), float('nan'))
    frozen = torch.tensor([False, True, False, False, False, False])
    d = designate(gain, torch.zeros(6), frozen, 3)
    assert d.tolist() == [True, False, True, True, False, False]


def test_evolve_blocks_adapts_designated_unfrozen_blocks_only():
    gen = torch.Generator().manual_seed(3)
    g, m, n = 12, 4, 2
    w = torch.randn(g, m, generator=gen)
    grad = torch.randn(g, m, generator=gen)
    mask = torch.zeros(g, m, dtype=torch.bool)
    mask[:, :n] = True
    designated = torch.tensor([True] * 6 + [False] * 6)
    frozen = torch.tensor([False, True] * 6)
    code = mask_code(mask)
    prev = torch.full((g, ), -1)
    n_obs = torch.zeros(g, dtype=torch.int64)
    osc_count = torch.zeros(g, dtype=torch.int64)
    gain_est = torch.full((g, ), float('nan'))
    inputs = [t.clone() for t in (mask, designated, frozen, code, prev, n_obs, osc_count,
                                  gain_est)]
    res = evolve_blocks(w, grad, mask, designated, frozen, code, prev, n_obs, osc_count,
                        gain_est, n=n, k=3, criterion='taylor')
    # inputs untouched
    for before, now in zip(inputs, (mask, designated, frozen, code, prev, n_obs,
                                    osc_count, gain_est)):
        torch.testing.assert_close(before, now, equal_nan=True, rtol=0, atol=0)
    s = (w * grad).abs()
    for b in range(g):
        if designated[b] and not frozen[b]:
            keep = ref_topn(s[b].tolist(), mask[b].tolist(), n)
            assert set(res.mask[b].nonzero().flatten().tolist()) == keep
            ref_gain = sum(s[b, i].item() for i in keep) - s[b, :n].sum().item()
            assert res.gain_est[b].item() == pytest.approx(ref_gain, abs=1e-6)
            assert res.n_obs[b] == 1 and res.prev_code[b] == code[b]
            assert res.code[b] == sum(1 << i for i in keep)
        else:
            assert torch.equal(res.mask[b], mask[b])
            assert math.isnan(res.gain_est[b]) and res.n_obs[b] == 0
            assert res.code[b] == code[b] and res.prev_code[b] == -1
    assert res.changed.tolist() == (res.mask != mask).any(1).tolist()
    # next designation: 3 unfrozen blocks, never measured ones first (6, 8, 10)
    assert res.designated.nonzero().flatten().tolist() == [6, 8, 10]


def test_evolve_blocks_freezes_an_a_b_a_b_block():
    a = torch.tensor([[3.0, 2.0, 0.1, 0.2]])  # A = {0, 1}
    b = torch.tensor([[0.1, 0.2, 3.0, 2.0]])  # B = {2, 3}
    state = dict(mask=lma_select(a.abs(), torch.zeros(1, 4, dtype=torch.bool), 2),
                 designated=torch.tensor([True]), frozen=torch.tensor([False]),
                 code=None, prev_code=torch.tensor([-1]), n_obs=torch.tensor([0]),
                 osc_count=torch.tensor([0]), gain_est=torch.tensor([float('nan')]))
    state['code'] = mask_code(state['mask'])
    history = [state['mask'][0].tolist()]
    for w in (b, a, b, a, b):
        res = evolve_blocks(w, torch.zeros_like(w), n=2, k=1, criterion='magnitude',
                            **state)
        state = {k: getattr(res, k) for k in state}
        history.append(state['mask'][0].tolist())
        if len(history) == 4:  # A, B, A, B
            assert res.frozen.tolist() == [True] and res.designated.tolist() == [False]
            assert res.osc_count.tolist() == [2] and res.n_obs.tolist() == [3]
    ma, mb = [True, True, False, False], [False, False, True, True]
    assert history == [ma, mb, ma, mb, mb, mb]  # frozen on B for good
