"""The paired design's check: the rows that share a seed saw the same first batches.

Every run of a suite records the image ids (and flips) of its first training batches
(:class:`lbc_mmdet.engine.hooks.DataOrderHook`, ``data_order.json`` in its work dir; the
runner copies it into ``results.json``). For each seed, every row's record is compared with
the reference row's (the baseline, else the first row that has one); a row whose order or
augmentation differs is not paired with the baseline at that seed, and the report says so.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .results import RunResult


@dataclass
class PairingIssue:
    """One (row, seed) whose first batches differ from the reference's."""
    label: str
    seed: Optional[int]
    reference: str
    what: str           # 'image order', 'flips', 'number of batches', 'not recorded'

    def format(self) -> str:
        if self.what == 'not recorded':
            return (f'{self.label} (seed {self.seed}): its data order was not recorded '
                    f'(no data_order.json): pairing with {self.reference} not checked')
        return (f'{self.label} (seed {self.seed}): its first training batches differ '
                f'from {self.reference}\'s ({self.what}): NOT PAIRED')


def _compare(a: dict, b: dict) -> Optional[str]:
    ids_a, ids_b = a.get('img_ids') or [], b.get('img_ids') or []
    k = min(len(ids_a), len(ids_b))
    if k == 0:
        return 'number of batches'
    if ids_a[:k] != ids_b[:k]:
        return 'image order'
    flips_a, flips_b = a.get('flips'), b.get('flips')
    if flips_a is not None and flips_b is not None and flips_a[:k] != flips_b[:k]:
        return 'flips'
    return None


def check_pairing(results: Sequence[RunResult],
                  baseline: Optional[str] = None) -> List[PairingIssue]:
    """The (row, seed) pairs whose recorded first batches differ from the reference
    row's at the same seed (only finished runs are compared; runs without a record are
    listed as ``'not recorded'`` when the reference has one)."""
    by_seed: Dict[Optional[int], List[RunResult]] = {}
    for r in results:
        if r.status == 'done':
            by_seed.setdefault(r.seed, []).append(r)
    issues = []
    for seed, group in by_seed.items():
        recorded = [r for r in group if r.data_order]
        if not recorded:
            continue
        ref = next((r for r in recorded if r.label == baseline), recorded[0])
        for r in group:
            if r is ref:
                continue
            if not r.data_order:
                issues.append(PairingIssue(r.label, seed, ref.label, 'not recorded'))
                continue
            what = _compare(ref.data_order, r.data_order)
            if what is not None:
                issues.append(PairingIssue(r.label, seed, ref.label, what))
    return issues


def unpaired(issues: Sequence[PairingIssue]) -> Dict[str, List[Optional[int]]]:
    """label -> the seeds at which the row is known not to be paired (differing data)."""
    out: Dict[str, List[Optional[int]]] = {}
    for issue in issues:
        if issue.what != 'not recorded':
            out.setdefault(issue.label, []).append(issue.seed)
    return out


def format_pairing(issues: Sequence[PairingIssue], checked: bool) -> List[str]:
    """Markdown lines for ``results.md``: a clear warning per issue, or the check's pass."""
    if not checked:
        return ['Pairing: no run recorded its data order; the paired design was not '
                'checked.', '']
    bad = [i for i in issues if i.what != 'not recorded']
    lines = []
    if bad:
        lines += ['**WARNING: paired design broken.** These runs did not see the same '
                  'first training batches as the reference row at their seed; their '
                  'paired differences are not paired comparisons:', '']
        lines += [f'- {i.format()}' for i in bad]
        lines.append('')
    missing = [i for i in issues if i.what == 'not recorded']
    if missing:
        lines += ['Pairing not checked for:', '']
        lines += [f'- {i.format()}' for i in missing]
        lines.append('')
    if not issues:
        lines += ['Pairing: every run saw the same first training batches (image ids and '
                  'flips) as the baseline at its seed.', '']
    return lines
