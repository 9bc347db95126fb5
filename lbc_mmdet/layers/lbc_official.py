"""LBC's interoperability with the official code (github zyxxmu/LBC): its checkpoints, and
its way of computing the mask (a benchmark variant).

**Checkpoints** (ResNet-50, :func:`convert_official_lbc`).

The official ResNet-50 checkpoint holds, for every sparse conv, ``<layer>.weight``,
``<layer>.alpha`` (``[G, C]`` scores, removed candidates stored as 0) and
``<layer>.index_list`` (the ``C`` candidates, as a ``[C, M]`` 0/1 membership table or a
``[C, N]`` table of indices), plus the dense stem ``conv1``/``bn1`` and the classifier ``fc``,
optionally under ``module.`` and inside a ``state_dict`` entry.

The result is a backbone checkpoint for this project's ``LBCConv2d`` layers (mmdet's ResNet
uses torchvision's key names): ``alpha -> scores`` with the columns reordered to this
project's candidate order (``itertools.combinations(range(M), N)``), ``alive = alpha != 0``,
``index_list`` and ``fc`` dropped.

**Mask computation** (:class:`OfficialStyleLBCConv2d`, registered as the benchmark
variant ``lbc_official``): the official layer rebuilds its mask from the score matrix at
every forward (``mask = (alive * scores != 0) @ table > 0``) where :class:`LBCConv2d`
caches it until a removal; ``tools/benchmark_training.py`` times both.
"""
import math
from typing import Dict, Optional, Tuple

import torch

from ..nm import combination_table, from_groups
from ..utils import strip_prefix
from .lbc import LBCConv2d, _LBCMaskedWeight
from .registry import register_variant


class OfficialStyleLBCConv2d(LBCConv2d):
    """LBC layer rebuilding its mask from the candidate matrix at every forward, as the
    official code does (a benchmark baseline; the maths is :class:`LBCConv2d`'s)."""

    def _nm_forward_weight(self) -> torch.Tensor:
        sel = (self.scores.detach() * self.alive) != 0
        groups = (sel.to(self._table.dtype) @ self._table) > 0
        mask = from_groups(groups, self.weight.shape).to(self.weight.dtype)
        if self.finished or not self.scores.requires_grad or not torch.is_grad_enabled():
            return self.weight * mask
        return _LBCMaskedWeight.apply(self.weight, self.scores, mask,
                                      self.alive.to(self.scores.dtype), self._table,
                                      self.nm_m)


register_variant('lbc', 'lbc_official', dict(Conv2d=OfficialStyleLBCConv2d),
                 'LBC, mask rebuilt from the scores at every forward (official style)')


def _candidate_order(index_list: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """``perm`` such that official candidate ``k`` is this project's candidate
    ``perm[k]``."""
    table = combination_table(n, m)
    if index_list.shape == (table.shape[0], m) and set(index_list.unique().tolist()) <= {0, 1}:
        member = index_list.bool()
    elif index_list.shape == (table.shape[0], n):
        member = torch.zeros(table.shape[0], m, dtype=torch.bool)
        member.scatter_(1, index_list.long(), True)
    else:
        raise ValueError(f'index_list of shape {tuple(index_list.shape)} is neither '
                         f'[C, M] = [{table.shape[0]}, {m}] nor [C, N] = '
                         f'[{table.shape[0]}, {n}]')
    lookup = {tuple(row.tolist()): j for j, row in enumerate(table)}
    try:
        perm = [lookup[tuple(row.tolist())] for row in member]
    except KeyError as e:
        raise ValueError(f'index_list holds a candidate that is not an {n}-subset of '
                         f'{m}: {e}') from None
    if sorted(perm) != list(range(table.shape[0])):
        raise ValueError('index_list repeats a candidate')
    return torch.tensor(perm)


def _infer_pattern(weight: torch.Tensor, alpha: torch.Tensor) -> Tuple[int, int]:
    g, c = alpha.shape
    if weight.numel() % g:
        raise ValueError(f'alpha has {g} groups, which do not divide the weight\'s '
                         f'{weight.numel()} elements')
    m = weight.numel() // g
    ns = [n for n in range(1, m) if math.comb(m, n) == c]
    if not ns:
        raise ValueError(f'no N with comb({m}, N) = {c}')
    return min(ns), m


def convert_official_lbc(checkpoint: Dict,
                         n: Optional[int] = None,
                         m: Optional[int] = None,
                         prefix: str = '') -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Convert an official LBC ResNet-50 checkpoint.

    Args:
        checkpoint (dict): The loaded checkpoint (with or without ``state_dict``).
        n (int, optional): Expected N; inferred from the shapes when omitted.
        m (int, optional): Expected M; inferred when omitted.
        prefix (str): Prepended to every key (``'backbone.'`` for a whole-detector
            ``load_from``; empty for ``backbone.init_cfg=dict(type='Pretrained')``).

    Returns:
        tuple: ``(state_dict, report)``; the report lists the sparse layers, the pattern
        and the dropped keys.
    """
    sd = checkpoint.get('state_dict', checkpoint)
    sd = strip_prefix(sd)
    out: Dict[str, torch.Tensor] = {}
    report: Dict = dict(sparse_layers=[], dropped=[], pattern=None)
    patterns = set()
    for key, value in sd.items():
        if key.startswith('fc.') or key.endswith('.index_list'):
            report['dropped'].append(key)
            continue
        if key.endswith('.alpha'):
            layer = key[:-len('.alpha')]
            weight = sd.get(layer + '.weight')
            index_list = sd.get(layer + '.index_list')
            if weight is None:
                raise ValueError(f'{key} has no matching {layer}.weight')
            ln, lm = _infer_pattern(weight, value)
            if (n is not None and n != ln) or (m is not None and m != lm):
                raise ValueError(f'{layer}: the checkpoint is {ln}:{lm}, expected {n}:{m}')
            patterns.add((ln, lm))
            perm = (_candidate_order(index_list, ln, lm) if index_list is not None else
                    torch.arange(value.shape[1]))
            scores = torch.empty_like(value, dtype=torch.float32)
            scores[:, perm] = value.float()
            out[prefix + layer + '.scores'] = scores
            out[prefix + layer + '.alive'] = scores != 0
            alive_per_group = (scores != 0).sum(1)
            if (alive_per_group == 0).any():
                raise ValueError(f'{layer}: a group has no candidate left (all alpha 0)')
            report['sparse_layers'].append(
                dict(name=layer, groups=int(value.shape[0]), pattern=f'{ln}:{lm}',
                     alive_min=int(alive_per_group.min()),
                     alive_max=int(alive_per_group.max())))
            continue
        out[prefix + key] = value
    if len(patterns) > 1:
        raise ValueError(f'the checkpoint mixes N:M patterns: {sorted(patterns)}')
    if not patterns:
        raise ValueError('no `.alpha` entries: this is not an official LBC checkpoint')
    ln, lm = patterns.pop()
    report['pattern'] = f'{ln}:{lm}'
    return out, report
