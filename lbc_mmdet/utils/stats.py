"""Framework-free statistics of the benchmark suites (plain python; scipy when installed).

- :func:`t_quantile`: the Student t quantile (scipy's when available, else a bisection on
  the regularised incomplete beta function, accurate to ~1e-10);
- :func:`paired_interval`: the mean of paired differences ``a_s - b_s`` over seeds and its
  Student t confidence interval (``n - 1`` degrees of freedom), with the verdict read only
  from whether the interval excludes 0;
- :func:`percentile_interval`: the percentile interval of bootstrap replicates;
- :func:`minimal_detectable_difference`: the half-width of the paired interval of a row
  against an independent copy of itself (from its seed spread).
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

BETTER, WORSE, NO_DIFFERENCE = 'better', 'worse', 'no difference shown'


# --------------------------------------------------------------------------- t quantile
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
          + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """The Student t distribution function with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def _t_quantile_fallback(p: float, df: float) -> float:
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -_t_quantile_fallback(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t
    .ppf`` when scipy is installed, else our own bisection: the same to ~1e-10)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f't_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}')
    try:
        from scipy.stats import t as student_t
    except ImportError:  # pragma: no cover - scipy is a dependency of the dev env
        return _t_quantile_fallback(p, df)
    return float(student_t.ppf(p, df))


# --------------------------------------------------------------------------- intervals
def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError('no values')
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass
class PairedInterval:
    """The mean paired difference, its confidence interval and the verdict.

    ``low``/``high`` are None with a single pair (no interval, no verdict)."""
    mean: float
    low: Optional[float]
    high: Optional[float]
    n: int
    std: Optional[float]
    level: float = 0.95

    @property
    def half_width(self) -> Optional[float]:
        return None if self.low is None else 0.5 * (self.high - self.low)

    @property
    def verdict(self) -> Optional[str]:
        """``'better'`` when the whole interval is above 0, ``'worse'`` below 0, else
        ``'no difference shown'``; None without an interval."""
        if self.low is None:
            return None
        if self.low > 0:
            return BETTER
        if self.high < 0:
            return WORSE
        return NO_DIFFERENCE


def t_interval(values: Sequence[float], level: float = 0.95) -> PairedInterval:
    """The Student t interval of the mean of ``values``: ``mean ± t_{(1+level)/2, n-1} *
    s / sqrt(n)``."""
    mean, std = mean_std(values)
    n = len(values)
    if std is None:
        return PairedInterval(mean, None, None, n, None, level)
    half = t_quantile(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
    return PairedInterval(mean, mean - half, mean + half, n, std, level)


def paired_interval(a: Sequence[float], b: Sequence[float],
                    level: float = 0.95) -> PairedInterval:
    """The interval of the mean of ``a_s - b_s`` (the seeds paired by position)."""
    if len(a) != len(b):
        raise ValueError(f'paired samples of different sizes: {len(a)} and {len(b)}')
    return t_interval([x - y for x, y in zip(a, b)], level)


def minimal_detectable_difference(values: Sequence[float],
                                  level: float = 0.95) -> Optional[float]:
    """The half-width of the paired interval of a row against an independent copy of
    itself at other seeds: ``t_{(1+level)/2, n-1} * sqrt(2) * s / sqrt(n)``, with ``s`` the
    row's seed standard deviation and ``n`` its seeds (the difference of two independent
    runs has variance ``2 s^2``). None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    _, std = mean_std(values)
    return t_quantile(0.5 + level / 2.0, n - 1) * math.sqrt(2.0) * std / math.sqrt(n)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) percentile by linear interpolation (numpy's default)."""
    if not sorted_values:
        raise ValueError('no values')
    pos = q * (len(sorted_values) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def percentile_interval(replicates: Sequence[float],
                        level: float = 0.95) -> Tuple[float, float]:
    """The bootstrap percentile interval: the ``(1-level)/2`` and ``(1+level)/2``
    percentiles of the replicates."""
    values = sorted(float(v) for v in replicates)
    alpha = (1.0 - level) / 2.0
    return percentile(values, alpha), percentile(values, 1.0 - alpha)
