"""The intervals of a suite's tables, from the runs of its rows (lists of
:class:`RunResult` of one row, one per seed):

- :func:`paired_difference`: the mean over the shared seeds of ``row_s - baseline_s`` and its
  95 % Student t interval (``n - 1`` degrees of freedom); the verdict ("better", "worse",
  "no difference shown") only from whether the interval excludes 0;
- :func:`bootstrap_half_width`: the mean half-width of the runs' bootstrap intervals over
  validation images (evaluation noise);
- :func:`minimal_detectable_difference`: the half-width of the paired interval of the
  baseline against an independent copy of itself at other seeds,
  ``t_{0.975, n-1} * sqrt(2) * s / sqrt(n)`` (``s``: the baseline's seed standard
  deviation; docs/benchmark.md).
"""
from typing import Dict, Optional, Sequence

from ..utils import stats
from .results import RunResult

LEVEL = 0.95


def seed_values(runs: Sequence[RunResult], metric: str) -> Dict[Optional[int], float]:
    """seed -> the metric of the finished runs that have it."""
    out = {}
    for r in runs:
        value = r.metric(metric) if r.status == 'done' else None
        if value is not None:
            out[r.seed] = float(value)
    return out


def paired_difference(runs: Sequence[RunResult], baseline: Sequence[RunResult],
                      metric: str, level: float = LEVEL) -> Optional[stats.PairedInterval]:
    """The paired difference of a row to the baseline over the seeds both finished (None
    when they share none)."""
    a, b = seed_values(runs, metric), seed_values(baseline, metric)
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    return stats.paired_interval([a[s] for s in seeds], [b[s] for s in seeds], level)


def bootstrap_half_width(runs: Sequence[RunResult], metric: str) -> Optional[float]:
    """The mean over the finished runs of half their bootstrap interval (None without)."""
    widths = [0.5 * (r.bootstrap[metric]['high'] - r.bootstrap[metric]['low'])
              for r in runs if r.status == 'done' and metric in (r.bootstrap or {})]
    return sum(widths) / len(widths) if widths else None


def minimal_detectable_difference(baseline: Sequence[RunResult], metric: str,
                                  level: float = LEVEL) -> Optional[float]:
    """See the module docstring (None with fewer than two finished seeds)."""
    return stats.minimal_detectable_difference(
        list(seed_values(baseline, metric).values()), level)


def format_difference(d: Optional[stats.PairedInterval], scale: float = 100.0,
                      mark: str = '') -> str:
    """``'-10.5 [-12.1, -8.9] worse'`` (x100), ``'+0.3 (n=1: no interval)'``, ``'-'``."""
    if d is None:
        return '-'
    text = f'{scale * d.mean:+.1f}{mark}'
    if d.low is None:
        return f'{text} (n=1: no interval)'
    return f'{text} [{scale * d.low:+.1f}, {scale * d.high:+.1f}] {d.verdict}'


def format_half_width(value: Optional[float], scale: float = 100.0) -> str:
    return '-' if value is None else f'±{scale * value:.1f}'


def comparison_rows(runs_by_label: Dict[str, Sequence[RunResult]], comparisons,
                    metrics: Sequence[str]) -> list:
    """Header and rows of the extra paired comparisons (``A - B`` at the same seeds)."""
    out = [['A', 'B'] + [f'Δ {m} (A - B) [95 % CI]' for m in metrics]]
    for a, b in comparisons:
        line = [a, b]
        for m in metrics:
            d = (paired_difference(runs_by_label[a], runs_by_label[b], m)
                 if a in runs_by_label and b in runs_by_label else None)
            line.append(format_difference(d))
        out.append(line)
    return out
