"""Input-channel permutation search (lbc_mmdet.nm.permutation): pure torch."""
import itertools

import pytest
import torch

from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask
from lbc_mmdet.nm.permutation import (
    channel_matrix,
    kept_magnitude,
    permute_input_channels,
    search_permutation,
)


def kept_by_mask(weight, n, m):
    """What the project's own top-N mask keeps (the reference)."""
    mask = from_groups(topn_magnitude_mask(to_groups(weight, m), n), weight.shape)
    return float((weight.abs().double() * mask).sum())


def is_permutation(perm, size):
    return perm.dtype == torch.long and torch.equal(perm.sort().values, torch.arange(size))


@pytest.mark.parametrize('shape', [(8, 16), (6, 8, 3, 3), (5, 12, 1, 1)])
@pytest.mark.parametrize('nm', [(2, 4), (1, 4)])
def test_kept_magnitude_is_the_projects_top_n_grouping(shape, nm):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    assert kept_magnitude(w, *nm) == pytest.approx(kept_by_mask(w, *nm), rel=1e-12)
    perm = torch.randperm(shape[1], generator=torch.Generator().manual_seed(1))
    permuted = permute_input_channels(w, perm)
    assert torch.equal(permuted[:, 0], w[:, perm[0]])
    assert kept_magnitude(w, *nm, perm) == pytest.approx(kept_by_mask(permuted, *nm),
                                                         rel=1e-12)


def test_channel_matrix_columns_are_input_channels():
    w = torch.randn(3, 8, 2, 2)
    mat = channel_matrix(w)
    assert mat.shape == (3 * 2 * 2, 8)
    # row (o, i_h, i_w), column c is w[o, c, i_h, i_w]
    assert torch.equal(mat[1 * 4 + 1 * 2 + 0], w[1, :, 1, 0])
    assert torch.equal(channel_matrix(w[:, :, 0, 0]), w[:, :, 0, 0])


@pytest.mark.parametrize('shape', [(64, 32), (16, 32, 3, 3)])
def test_search_improves_random_weights_and_reports_truthfully(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    r = search_permutation(w, 2, 4, time_limit=30)
    assert is_permutation(r.permutation, shape[1])
    assert r.kept_after > r.kept_before
    assert r.kept_before == pytest.approx(kept_by_mask(w, 2, 4), rel=1e-12)
    assert r.kept_after == pytest.approx(
        kept_by_mask(permute_input_channels(w, r.permutation), 2, 4), rel=1e-12)
    assert r.kept_after <= r.row_bound + 1e-9
    assert 0 < r.efficacy <= 1 and r.gain > 0 and not r.identity
    assert r.total == pytest.approx(float(w.abs().double().sum()))
    assert r.stopped == 'converged' and r.moves > 0
    d = r.to_dict(with_permutation=True)
    assert d['pattern'] == '2:4' and len(d['permutation']) == shape[1]


def test_two_groups_reach_the_exhaustive_optimum():
    """With 2 groups the stripe-pair step enumerates every split: the global optimum."""
    for seed in range(5):
        w = torch.randn(10, 8, generator=torch.Generator().manual_seed(seed))
        splits = [(0, ) + c + tuple(sorted(set(range(1, 8)) - set(c)))
                  for c in itertools.combinations(range(1, 8), 3)]
        best = max(kept_magnitude(w, 2, 4, torch.tensor(p)) for p in splits)
        r = search_permutation(w, 2, 4)
        assert r.kept_after == pytest.approx(best, rel=1e-12)
        no_stripes = search_permutation(w, 2, 4, stripe_pairs=False)
        assert no_stripes.kept_after <= r.kept_after + 1e-12


def test_never_lowers_kept_magnitude():
    # already optimal: each row's two large weights sit in different groups' top-2
    w = torch.tensor([[9., 8., 0., 0., 7., 6., 0., 0.]] * 3)
    r = search_permutation(w, 2, 4)
    assert r.identity and r.kept_after == r.kept_before == pytest.approx(90.0)
    # all equal: no permutation can gain
    r = search_permutation(torch.ones(4, 16), 2, 4)
    assert r.identity and r.kept_after == r.kept_before
    # a search stopped at once keeps the identity
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(3))
    for kwargs in (dict(max_moves=0), dict(time_limit=0.0)):
        r = search_permutation(w, 2, 4, **kwargs)
        assert r.identity and r.kept_after == r.kept_before
        assert r.stopped in ('max_moves', 'time_limit')


def test_bounded_by_moves():
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(4))
    r = search_permutation(w, 2, 4, max_moves=3)
    assert r.moves == 3 and r.stopped == 'max_moves' and r.kept_after > r.kept_before


@pytest.mark.parametrize('nm', [(1, 4), (2, 8), (3, 4)])
def test_other_patterns(nm):
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(5))
    r = search_permutation(w, *nm, time_limit=30)
    assert r.kept_after >= r.kept_before
    assert r.kept_after == pytest.approx(kept_magnitude(w, *nm, r.permutation), rel=1e-12)
    assert r.to_dict()['pattern'] == f'{nm[0]}:{nm[1]}' and (r.n, r.m) == nm


def test_single_group_and_bad_input():
    r = search_permutation(torch.randn(5, 4), 2, 4)
    assert r.stopped == 'single_group' and r.identity
    with pytest.raises(ValueError, match='divisible by M=4'):
        search_permutation(torch.randn(5, 6), 2, 4)
    with pytest.raises(ValueError, match='0 < N < M'):
        kept_magnitude(torch.randn(5, 8), 4, 4)
    with pytest.raises(ValueError, match='2-D and 4-D'):
        channel_matrix(torch.randn(2, 3, 4))
