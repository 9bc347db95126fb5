"""The plain-torch N:M maths against hand-written references."""
import itertools
import math

import pytest
import torch

from lbc_mmdet.nm import (
    candidate_mask,
    combination_table,
    cubic_removed,
    from_groups,
    group_size_error,
    to_groups,
    topn_magnitude_mask,
    topn_magnitude_mask_like,
    validate_pattern,
)


@pytest.mark.parametrize('n,m', [(2, 4), (2, 8), (1, 4), (1, 16)])
def test_combination_table_matches_itertools(n, m):
    table = combination_table(n, m)
    combos = list(itertools.combinations(range(m), n))
    assert table.shape == (math.comb(m, n), m)
    for j, combo in enumerate(combos):
        assert table[j].nonzero().flatten().tolist() == list(combo)


def test_conv_grouping_is_m_consecutive_input_channels():
    o, i, kh, kw, m = 3, 8, 2, 3, 4
    w = torch.arange(o * i * kh * kw, dtype=torch.float32).reshape(o, i, kh, kw)
    groups = to_groups(w, m)
    assert groups.shape == (o * kh * kw * i // m, m)
    row = 0
    for a in range(o):
        for y in range(kh):
            for x in range(kw):
                for c0 in range(0, i, m):
                    assert groups[row].tolist() == w[a, c0:c0 + m, y, x].tolist()
                    row += 1
    assert torch.equal(from_groups(groups, w.shape), w)


def test_linear_grouping_and_roundtrip():
    w = torch.randn(5, 8)
    groups = to_groups(w, 4)
    assert torch.equal(groups[1], w[0, 4:8])
    assert torch.equal(from_groups(groups, w.shape), w)


def test_group_size_error_names_the_reason():
    assert group_size_error((64, 3, 7, 7), 4) is not None
    assert '3 input channels' in group_size_error((64, 3, 7, 7), 4)
    assert group_size_error((64, 64, 3, 3), 4) is None
    assert group_size_error((10, 16), 16) is None


def test_candidate_mask_is_union_of_alive_candidates():
    n, m = 2, 4
    table = combination_table(n, m)
    combos = list(itertools.combinations(range(m), n))
    alive = torch.rand(50, len(combos)) > 0.6
    mask = candidate_mask(alive, table)
    for g in range(50):
        expect = set()
        for j, combo in enumerate(combos):
            if alive[g, j]:
                expect |= set(combo)
        assert set(mask[g].nonzero().flatten().tolist()) == expect


def test_topn_magnitude_mask():
    groups = torch.tensor([[0.1, -3.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    mask = topn_magnitude_mask(groups, 2)
    assert mask[0].tolist() == [False, True, True, False]
    assert mask[1].tolist() == [True, True, False, False]  # ties: lowest index


@pytest.mark.parametrize('n,m', [(1, 4), (2, 4), (3, 4), (2, 8), (4, 8), (5, 8), (1, 16)])
@pytest.mark.parametrize('shape', [(6, 16, 3, 3), (5, 32)])
def test_topn_mask_in_the_weight_layout_matches_the_grouped_one(n, m, shape):
    # integer-valued weights: many ties, which must be broken as the stable sort does
    # (lowest index first) whether argmax rounds (n <= 4) or the sort is used
    g = torch.Generator().manual_seed(n * 100 + m)
    w = torch.randint(-3, 4, shape, generator=g).float()
    ref = from_groups(topn_magnitude_mask(to_groups(w, m), n), shape)
    got = topn_magnitude_mask_like(w, n, m)
    assert got.dtype == torch.bool and got.shape == w.shape
    assert torch.equal(got, ref)
    w2 = torch.randn(shape, generator=g)
    assert torch.equal(topn_magnitude_mask_like(w2, n, m),
                       from_groups(topn_magnitude_mask(to_groups(w2, m), n), shape))
    with pytest.raises(ValueError, match='divisible'):
        topn_magnitude_mask_like(torch.zeros(4, m + 1), n, m)


@pytest.mark.parametrize('c', [6, 28, 4, 16])
def test_cubic_removed_schedule(c):
    ti, tf = 2.0, 10.0
    assert cubic_removed(0, ti, tf, c) == 0
    assert cubic_removed(ti, ti, tf, c) == 0
    assert cubic_removed(tf, ti, tf, c) == c - 1
    assert cubic_removed(tf + 5, ti, tf, c) == c - 1
    for t in [2.5, 3.0, 5.0, 7.7, 9.99]:
        expect = math.ceil((c - 1) * (1 - (1 - (t - ti) / (tf - ti))**3))
        assert cubic_removed(t, ti, tf, c) == expect
    values = [cubic_removed(ti + k * 0.1, ti, tf, c) for k in range(100)]
    assert values == sorted(values)


def test_cubic_removed_no_float_overshoot():
    # (C-1) * fraction lands on an integer up to rounding: ceil must not jump past it
    c = 6
    t = 1 - (1 - 0.4)**(1 / 3)  # fraction 0.4 -> 5 * 0.4 = 2.0
    assert cubic_removed(t, 0.0, 1.0, c) == 2


@pytest.mark.parametrize('n,m,field', [(4, 4, 'n'), (5, 4, 'n'), (0, 4, 'n'),
                                       (-1, 4, 'n'), (2, 0, 'm'), (2, 4.0, 'm'),
                                       (2, '4', 'm'), (1.5, 4, 'n')])
def test_validate_pattern_names_the_field(n, m, field):
    with pytest.raises(ValueError, match=f'`{field}`'):
        validate_pattern(n, m)


def test_validate_pattern_refuses_huge_score_tables():
    with pytest.raises(ValueError, match='comb\\(16, 8\\) = 12870'):
        validate_pattern(8, 16)
    validate_pattern(1, 16)
    validate_pattern(2, 8)


@pytest.mark.parametrize('shape,n,m', [((8, 16, 3, 3), 2, 4), ((8, 16, 1, 1), 1, 4),
                                       ((4, 16, 3, 3), 3, 8), ((6, 16), 2, 8),
                                       ((4, 32, 3, 3), 1, 16), ((4, 32), 5, 16)])
def test_topn_mask_like_every_path_equals_the_stable_sort(shape, n, m):
    """Pairwise ranks (M <= 8), argmax rounds and the sort (M = 16) all choose the
    stable sort's top-N, ties included (few distinct magnitudes)."""
    from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask, topn_magnitude_mask_like
    from lbc_mmdet.nm.masks import PAIRWISE_MAX_M
    g = torch.Generator().manual_seed(0)
    for w in (torch.randn(shape, generator=g),
              torch.randint(-3, 4, shape, generator=g).float()):
        got = topn_magnitude_mask_like(w, n, m)
        want = from_groups(topn_magnitude_mask(to_groups(w, m), n), w.shape)
        assert got.dtype == torch.bool and torch.equal(got, want), (shape, n, m)
    assert (m <= PAIRWISE_MAX_M) == (m in (4, 8))


@pytest.mark.parametrize('below', [1, 5, 18, 36])
def test_axis_soft_mask_threshold_is_the_mean_of_the_two_order_statistics(below):
    """One selection (``kthvalue``) plus the next value up gives the threshold of two
    selections, ties across the two ranks and all-equal rows included."""
    from lbc_mmdet.nm import axis_soft_mask
    g = torch.Generator().manual_seed(0)
    for x in (torch.rand(50, 37, generator=g),
              torch.randint(0, 4, (50, 37), generator=g).float(), torch.zeros(3, 37)):
        low = torch.kthvalue(x, below, dim=1, keepdim=True).values
        high = torch.kthvalue(x, below + 1, dim=1, keepdim=True).values
        th = (low + high) / 2
        want = torch.where(x > th, torch.sigmoid((x - th) / 0.1), torch.zeros_like(x))
        assert torch.equal(axis_soft_mask(x, below, 0.1), want)
