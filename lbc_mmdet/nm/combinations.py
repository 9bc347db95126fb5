"""Candidate subsets of an N:M group (LBC, Eq. 2).

Combination ``j`` of a group is the j-th tuple of ``itertools.combinations(range(M), N)``;
there are ``C = comb(M, N)`` of them.
"""
import itertools
import math
from functools import lru_cache

import torch

from ..errors import PatternError

#: Largest score table (candidates per group) a layer may ask for. C(16, 8) = 12870
#: scores per group of 16 weights would be ~800x the weights themselves.
MAX_COMBINATIONS = 1820  # C(16, 4); 1:16, 2:8, 2:4 ... all well below it


def validate_pattern(n: int, m: int, max_combinations: int = MAX_COMBINATIONS) -> None:
    """Raise :class:`~lbc_mmdet.errors.PatternError` (a ``ValueError``) when ``n:m`` is
    not a usable pattern; its ``field`` names the offending value.

    Args:
        n (int): Non-zeros kept per group.
        m (int): Group size.
        max_combinations (int): Upper bound on ``comb(m, n)`` (the size of LBC's score
            table per group). Defaults to :data:`MAX_COMBINATIONS`.
    """
    for name, value in (('m', m), ('n', n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PatternError(f'N:M pattern: `{name}` must be a positive integer, '
                               f'got {value!r} ({type(value).__name__})', field=name)
    if m <= 0:
        raise PatternError(f'N:M pattern: `m` must be a positive integer, got m={m}',
                           field='m')
    if n <= 0:
        raise PatternError(f'N:M pattern: `n` must be >= 1 (keep at least one weight per '
                           f'group), got n={n}', field='n')
    if n >= m:
        raise PatternError(f'N:M pattern: `n` must be smaller than `m` (n={n} >= m={m} '
                           'keeps every weight: that is a dense layer)', field='n')
    c = math.comb(m, n)
    if c > max_combinations:
        raise PatternError(
            f'N:M pattern {n}:{m}: comb({m}, {n}) = {c} candidate subsets per group; the '
            f'LBC score table would hold {c} scores for every {m} weights ({c / m:.0f}x '
            f'the weights), above the limit of {max_combinations}. Use a pattern with '
            'fewer combinations (e.g. 2:4, 2:8, 1:4, 1:16).', field='n/m')


def num_combinations(n: int, m: int) -> int:
    """``comb(m, n)``: the number of candidate subsets of one group.

    Args:
        n (int): Non-zeros kept per group.
        m (int): Group size.

    Returns:
        int: ``comb(m, n)``.
    """
    return math.comb(m, n)


@lru_cache(maxsize=None)
def _table(n: int, m: int) -> torch.Tensor:
    combos = list(itertools.combinations(range(m), n))
    table = torch.zeros(len(combos), m, dtype=torch.bool)
    for j, combo in enumerate(combos):
        table[j, list(combo)] = True
    return table


def combination_table(n: int, m: int, device=None) -> torch.Tensor:
    """Membership table ``[C, M]`` (bool): ``table[j, i]`` iff weight ``i`` is in
    candidate ``j``.

    Args:
        n (int): Non-zeros kept per group.
        m (int): Group size.
        device (torch.device or str, optional): Where the table goes. Defaults to None (a
            CPU copy).

    Returns:
        Tensor: ``[comb(m, n), m]`` bool membership table.
    """
    return _table(n, m).to(device) if device is not None else _table(n, m).clone()
