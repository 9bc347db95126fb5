"""N:M along the permuted output channels (``lbc_mmdet/nm/transposed.py``) against loops."""
import itertools

import pytest
import torch

from lbc_mmdet.nm import (
    best_output_permutation,
    kept_by_output_groups,
    output_dim_counts,
    output_dim_nm_mask,
    random_permutations,
    transposed,
)


def groups(shape, m, perm):
    rest = list(itertools.product(*[range(s) for s in shape[1:]]))
    return [[(int(perm[b + j]),) + r for j in range(m)]
            for r in rest for b in range(0, shape[0], m)]


def ref_mask(w, n, m, perm, keep=None):
    keep = torch.ones_like(w, dtype=torch.bool) if keep is None else keep
    mask = torch.zeros_like(w, dtype=torch.bool)
    for idx in groups(tuple(w.shape), m, perm):
        key = [(not bool(keep[e]), -abs(float(w[e])) if keep[e] else 0.0, p)
               for p, e in enumerate(idx)]
        for _, _, p in sorted(key)[:n]:
            mask[idx[p]] = True
    return mask


CASES = [(shape, n, m) for shape in [(8, 4, 3, 3), (16, 6), (32, 2, 1, 1)]
         for n, m in [(2, 4), (1, 4), (3, 8), (1, 16), (4, 32)] if shape[0] % m == 0]


@pytest.mark.parametrize('shape,n,m', CASES)
@pytest.mark.parametrize('with_keep', [False, True])
def test_mask_matches_the_loops(shape, n, m, with_keep, monkeypatch):
    torch.manual_seed(0)
    w = torch.randn(shape)
    w[0].zero_()  # exact zeros and ties
    perm = torch.randperm(shape[0])
    keep = (torch.rand(shape) < 0.5) if with_keep else None
    mask = output_dim_nm_mask(w, n, m, perm, keep=keep)
    torch.testing.assert_close(mask, ref_mask(w, n, m, perm, keep), rtol=0, atol=0)
    assert (output_dim_counts(mask, m, perm) == n).all()
    # the sort path (large M) chooses the same
    monkeypatch.setattr(transposed, 'PAIRWISE_MAX_M', 0)
    torch.testing.assert_close(output_dim_nm_mask(w, n, m, perm, keep=keep), mask,
                               rtol=0, atol=0)


def test_scores_and_best_permutation():
    torch.manual_seed(1)
    keep = torch.rand(16, 3, 2, 2) < 0.5
    perms = random_permutations(16, 7, seed=5)
    assert torch.equal(perms, random_permutations(16, 7, seed=5))
    assert all(torch.equal(p.sort()[0], torch.arange(16)) for p in perms)
    scores = kept_by_output_groups(keep, 2, 4, perms)
    for p, s in zip(perms, scores):
        want = sum(min(2, sum(bool(keep[e]) for e in idx))
                   for idx in groups(tuple(keep.shape), 4, p))
        assert int(s) == want
    best, kept = best_output_permutation(keep, 2, 4, 7, seed=5)
    i = int(torch.argmax(scores))
    assert torch.equal(best, perms[i]) and kept == int(scores.max())
    # the kept count is what the output-dim mask keeps of `keep`
    mask = output_dim_nm_mask(keep.float(), 2, 4, best, keep=keep)
    assert int((mask & keep).sum()) == kept


def test_errors():
    with pytest.raises(ValueError, match='6 output channels are not divisible by M=4'):
        output_dim_nm_mask(torch.randn(6, 4), 2, 4, torch.arange(6))
    with pytest.raises(ValueError, match='candidates must be >= 1'):
        best_output_permutation(torch.ones(4, 4, dtype=torch.bool), 2, 4, 0, 0)
