"""Check that the weights of a checkpoint are N:M sparse, as stored.

Any state dict can be checked (an exported one, a dense one, a training checkpoint): the
*raw* weights are grouped with the standard N:M grouping (:mod:`lbc_mmdet.nm.grouping`:
``weight.permute(0, 2, 3, 1).reshape(-1, M)`` for a 4-D conv weight, ``reshape(-1, M)``
for a 2-D weight) and every group must hold at most N non-zeros. No mask stored next to a
weight is applied: a training checkpoint of a sparse run holds the dense weights plus the
method's state (its ``nm_extra_state_names``), so it fails until it is exported
(``tools/export.py``) -- the result's ``hints`` say so when such state is found.

A key is *eligible* when it ends in ``.weight``, holds a floating-point 4-D tensor whose
``shape[1]`` (input channels per group) is divisible by M, or a 2-D one whose
``shape[1]`` is divisible by M. Which eligible keys are checked is chosen by ``fnmatch``
patterns on the key (default: :data:`DEFAULT_INCLUDE`, the backbone convolutions); with
``all_layers=True`` every eligible weight is checked.
"""
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..layers import all_state_names
from ..nm import count_nonzero_per_group, to_groups
from ..utils import matches

#: Keys checked by default: the backbone's convolutions (4-D weights).
DEFAULT_INCLUDE = ('backbone.*',)


@dataclass
class LayerCheck:
    """The N:M check of one weight."""
    key: str
    shape: List[int]
    groups: int
    bad_groups: int
    max_nonzero: int
    nonzero: int
    numel: int
    nonfinite: int = 0  # NaN / Inf values (they count as non-zeros)

    @property
    def ok(self) -> bool:
        return self.bad_groups == 0 and self.nonfinite == 0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), ok=self.ok, sparsity=self.sparsity)


@dataclass
class VerifyResult:
    """What :func:`verify_nm` found.

    ``ok`` is True iff at least one weight was checked and every checked weight is N:M.
    """
    n: int
    m: int
    include: List[str]
    checked: List[LayerCheck] = field(default_factory=list)
    skipped: List[Dict[str, Any]] = field(default_factory=list)
    hints: List[str] = field(default_factory=list)

    @property
    def offending(self) -> List[LayerCheck]:
        return [c for c in self.checked if not c.ok]

    @property
    def ok(self) -> bool:
        return bool(self.checked) and not self.offending

    def to_dict(self) -> Dict[str, Any]:
        return dict(n=self.n, m=self.m, pattern=f'{self.n}:{self.m}', include=self.include,
                    ok=self.ok, checked=[c.to_dict() for c in self.checked],
                    offending=[c.key for c in self.offending], skipped=self.skipped,
                    hints=self.hints)

    def summary(self, max_list: int = 20) -> str:
        """Human-readable summary (the offending layers first).

        Args:
            max_list (int): Most offending and skipped weights listed. Defaults to 20.

        Returns:
            str: The summary (several lines).
        """
        lines = []
        pattern = f'{self.n}:{self.m}'
        numel = sum(c.numel for c in self.checked)
        nonzero = sum(c.nonzero for c in self.checked)
        sparsity = 1.0 - nonzero / numel if numel else 0.0
        if not self.checked:
            lines.append(f'FAIL: no eligible weight matched {self.include} (eligible: '
                         f'`*.weight`, 2-D or 4-D, input channels divisible by {self.m}); '
                         'nothing was checked')
        elif self.ok:
            lines.append(f'OK: all {len(self.checked)} checked weights are {pattern} '
                         f'({numel} weights, sparsity {sparsity:.4f})')
        else:
            bad = self.offending
            lines.append(f'FAIL: {len(bad)} of {len(self.checked)} checked weights are not '
                         f'{pattern} (groups of {self.m} with more than {self.n} '
                         'non-zeros):')
            for c in bad[:max_list]:
                lines.append(f'  {c.key} {tuple(c.shape)}: {c.bad_groups} of {c.groups} '
                             f'groups bad (max {c.max_nonzero} non-zeros in a group)' +
                             (f', {c.nonfinite} non-finite values' if c.nonfinite else ''))
            if len(bad) > max_list:
                lines.append(f'  ... and {len(bad) - max_list} more')
        if self.skipped:
            lines.append(f'skipped {len(self.skipped)} matching weights that cannot be '
                         f'grouped by {self.m}: ' +
                         ', '.join(s['key'] for s in self.skipped[:max_list]) +
                         (' ...' if len(self.skipped) > max_list else ''))
        lines.extend(f'hint: {h}' for h in self.hints)
        return '\n'.join(lines)


def eligibility_error(key: str, value: Any, m: int) -> Optional[str]:
    """Why ``state_dict[key]`` is not an N:M-checkable weight, or None."""
    if not isinstance(value, torch.Tensor) or not key.endswith('.weight'):
        return 'not a weight tensor'
    if not torch.is_floating_point(value):
        return f'{value.dtype} (not floating point)'
    if value.dim() not in (2, 4):
        return f'rank {value.dim()} (only 2-D and 4-D weights)'
    if value.shape[1] % m:
        return f'{value.shape[1]} input channels not divisible by M={m}'
    return None


@torch.no_grad()
def check_weight(key: str, weight: torch.Tensor, n: int, m: int) -> LayerCheck:
    """N:M check of one weight under the standard grouping."""
    counts = count_nonzero_per_group(to_groups(weight.detach(), m))
    return LayerCheck(key=key, shape=list(weight.shape), groups=int(counts.numel()),
                      bad_groups=int((counts > n).sum()),
                      max_nonzero=int(counts.max()) if counts.numel() else 0,
                      nonzero=int(counts.sum()), numel=int(weight.numel()),
                      nonfinite=int((~torch.isfinite(weight)).sum()))


def verify_nm(state_dict: Dict[str, Any],
              n: int,
              m: int,
              include: Optional[Sequence[str]] = None,
              all_layers: bool = False) -> VerifyResult:
    """Check every eligible weight of ``state_dict`` matching ``include`` for N:M.

    Args:
        state_dict (dict): Key -> tensor (a checkpoint's ``state_dict``; a full checkpoint
            dict with a ``state_dict`` entry is accepted too).
        n (int): Maximum non-zeros per group.
        m (int): Group size.
        include (Sequence[str], optional): ``fnmatch`` patterns on the keys. Defaults to
            :data:`DEFAULT_INCLUDE` (the backbone).
        all_layers (bool): Check every eligible weight (overrides ``include``).

    Returns:
        VerifyResult: checked weights (with their count of bad groups), matching weights
        skipped as ineligible, hints.
    """
    if isinstance(n, bool) or isinstance(m, bool) or not (0 < int(n) < int(m)):
        raise ValueError(f'need 0 < n < m, got n={n}, m={m}')
    n, m = int(n), int(m)
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    patterns = ['*'] if all_layers else list(include or DEFAULT_INCLUDE)
    result = VerifyResult(n=n, m=m, include=patterns)
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor) or not key.endswith('.weight'):
            continue
        if not matches(key, patterns):
            continue
        why = eligibility_error(key, value, m)
        if why is not None:
            if value.dim() in (2, 4):  # a conv/linear weight left dense: worth listing
                result.skipped.append(dict(key=key, shape=list(value.shape), reason=why))
            continue
        result.checked.append(check_weight(key, value, n, m))
    suffixes = tuple('.' + name for name in all_state_names())
    nonfinite = [c.key for c in result.checked if c.nonfinite]
    if nonfinite:
        result.hints.append(f'{len(nonfinite)} checked weights hold non-finite values '
                            f'(NaN/Inf), e.g. {nonfinite[0]!r}: training diverged')
    training_state = [k for k in state_dict if suffixes and k.endswith(suffixes)]
    if training_state and not result.ok:
        result.hints.append(
            f'the checkpoint holds sparse-training state ({len(training_state)} keys, e.g. '
            f'{training_state[0]!r}): its raw weights are not masked. Export it first: '
            'python tools/export.py CONFIG CHECKPOINT OUT.pth')
    return result


__all__ = ['DEFAULT_INCLUDE', 'LayerCheck', 'VerifyResult', 'verify_nm', 'check_weight',
           'eligibility_error']
