"""A suite's results laid out like the paper's Tables 2 and 3, over seeds: ``results.md``
(mean ± standard deviation, n; the paired difference to the baseline with its 95 % t
interval and verdict; the bootstrap half-width over validation images; the paper's COCO
figure beside; the suite's minimal detectable difference; the pairing check),
``results.csv`` (every seed, with its bootstrap interval and its row's paired interval) and
``results.png`` (mAP against training FLOPs, error bars: the intervals).

The statistics (:mod:`.intervals`, :mod:`lbc_mmdet.utils.stats`): a row's difference to the baseline
is the mean over the shared seeds of ``row_s - baseline_s`` (the rows of one seed see the same data:
:mod:`.pairing`), its interval the Student t interval with ``n - 1`` degrees of freedom, and the
verdict -- "better", "worse" or "no difference shown" -- comes only from whether that interval
excludes 0. With one seed no interval and no verdict."""
import csv
import math
import statistics
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..layers import display_name, plot_style
from ..utils import atomic_write
from . import intervals as iv
from .mask_figure import mask_evolution_section
from .pairing import check_pairing, format_pairing, unpaired
from .results import RunResult

#: The metrics a table shows (as mmdet names them, fractions in [0, 1]).
TABLE_METRICS = ('bbox_mAP', 'segm_mAP')
#: CSV columns: one row per (run, seed); metrics as mmdet writes them (fractions).
CSV_COLUMNS = ('label', 'seed', 'model', 'method', 'pattern', 'status', 'bbox_mAP',
               'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50', 'segm_mAP_75',
               'paper_flops_ratio', 'flops_ratio', 'backbone_flops_ratio', 'iterations',
               'wall_time_s', 'train_time_s', 'config', 'work_dir',
               'bbox_mAP_boot_low', 'bbox_mAP_boot_high', 'segm_mAP_boot_low',
               'segm_mAP_boot_high', 'bbox_mAP_diff', 'bbox_mAP_diff_low',
               'bbox_mAP_diff_high', 'bbox_mAP_verdict', 'segm_mAP_diff',
               'segm_mAP_diff_low', 'segm_mAP_diff_high', 'segm_mAP_verdict')


# --------------------------------------------------------------------------- numbers
def method_name(method: str) -> str:
    """How a method is shown (its registered display name, ``'Baseline'`` for dense)."""
    return display_name(method)


def format_duration(seconds: Optional[float]) -> str:
    """``'1h 02m'``, ``'3m 05s'``, ``'42s'``; ``'-'`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return '-'
    s = int(round(seconds))
    if s >= 3600:
        return f'{s // 3600}h {s % 3600 // 60:02d}m'
    if s >= 60:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s}s'


def format_map(value: Optional[float]) -> str:
    """A COCO mAP fraction as the paper prints it (percent, one decimal)."""
    return '-' if value is None else f'{100.0 * value:.1f}'


def format_ratio(value: Optional[float]) -> str:
    """A training-FLOPs ratio as ``'0.65×'``."""
    return '-' if value is None else f'{value:.2f}×'


@dataclass
class Stat:
    """Mean, sample standard deviation (None for one value) and count."""
    mean: float
    std: Optional[float]
    n: int

    @classmethod
    def of(cls, values: Sequence[Optional[float]]) -> Optional['Stat']:
        vals = [float(v) for v in values if v is not None]
        if not vals:
            return None
        return cls(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None,
                   len(vals))

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        mean = f'{scale * self.mean:.{digits}f}'
        if self.std is None:
            return f'{mean} (n=1)'
        return f'{mean} ± {scale * self.std:.{digits}f} (n={self.n})'


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One row of a table: the seeds of one run of the suite."""
    label: str
    model: str
    method: str
    pattern: str
    results: List[RunResult]
    paper: Dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> List[RunResult]:
        return [r for r in self.results if r.status == 'done']

    def stat(self, name: str) -> Optional[Stat]:
        """A metric (``'bbox_mAP'``) over the finished seeds."""
        return Stat.of([r.metric(name) for r in self.done])

    def mean(self, attr: str) -> Optional[float]:
        s = Stat.of([getattr(r, attr) for r in self.done])
        return None if s is None else s.mean

    @property
    def status(self) -> str:
        done, total = len(self.done), len(self.results)
        if done == total:
            return 'done'
        return 'partial' if done else ('failed' if any(
            r.status == 'failed' for r in self.results) else 'missing')


def group_rows(results: Sequence[RunResult],
               papers: Optional[Dict[str, Dict[str, float]]] = None) -> List[Row]:
    """The results grouped by (model, label), in order of first appearance.

    Args:
        results (Sequence[RunResult]): The (run, seed) results.
        papers (dict, optional): label -> the paper's figures (else each result's own).
    """
    rows: Dict[Tuple[str, str], Row] = {}
    for r in results:
        row = rows.get((r.model, r.label))
        if row is None:
            row = rows[(r.model, r.label)] = Row(r.label, r.model, r.method, r.pattern, [],
                                      dict((papers or {}).get(r.label) or r.paper or {}))
        row.results.append(r)
    return list(rows.values())


def has_masks(rows: Sequence[Row]) -> bool:
    """Whether any row holds a mask metric (Table 3: box and mask mAP)."""
    return any(row.stat('segm_mAP') is not None for row in rows)


def table_rows(rows: Sequence[Row], baseline: Optional[str] = None,
               unpaired_seeds: Optional[Dict[str, list]] = None) -> List[List[str]]:
    """Header and rows of one model's table (see the module docstring).

    Args:
        rows (Sequence[Row]): The model's rows.
        baseline (str, optional): Label of the baseline row. Defaults to None.
        unpaired_seeds (dict, optional): label -> seeds failing the pairing check (``†``).
    """
    masks = has_masks(rows)
    metrics = TABLE_METRICS if masks else TABLE_METRICS[:1]
    names = dict(bbox_mAP='Box mAP' if masks else 'mAP', segm_mAP='Mask mAP')
    header = ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)']
    for m in metrics:
        header += [names[m], f'Δ {names[m]} vs {baseline or "baseline"} [95 % CI]',
                   f'{names[m]} bootstrap ±', f'{names[m]}, paper (COCO)']
    header += ['FLOPs (Train, hardware)', 'Wall time (mean)']
    base = next((row for row in rows if row.label == baseline), None)
    out = [header]
    # rows sharing a method and pattern (one-shot vs one-shot + fine-tune) show their label
    kinds = [(row.method, row.pattern) for row in rows]
    for row in rows:
        shown = (row.label if kinds.count((row.method, row.pattern)) > 1
                 else method_name(row.method))
        line = [row.model or '-', shown, row.pattern or '-']
        if not row.done:
            out.append(line + ['failed' if row.status == 'failed' else 'not run'] *
                       (len(header) - len(line)))
            continue
        line.append(format_ratio(row.mean('paper_flops_ratio')))
        for m in metrics:
            s = row.stat(m)
            line.append(s.format() if s is not None else '-')
            if base is None or row is base:
                line.append('-')
            else:
                line.append(iv.format_difference(
                    iv.paired_difference(row.done, base.done, m),
                    mark='†' if (unpaired_seeds or {}).get(row.label) else ''))
            line.append(iv.format_half_width(iv.bootstrap_half_width(row.done, m)))
            paper = row.paper.get(m)
            line.append('-' if paper is None else f'{paper:.1f}')
        line.append(format_ratio(row.mean('flops_ratio')))
        wall = [r.wall_time_s if r.wall_time_s is not None else r.train_time_s
                for r in row.done]
        line.append(format_duration(Stat.of(wall).mean if Stat.of(wall) else None))
        if row.status == 'partial':
            line[-1] += f' ({len(row.done)}/{len(row.results)} seeds done)'
        out.append(line)
    return out


def markdown_table(rows: List[List[str]]) -> str:
    """Rows (header first) as a markdown table."""
    lines = ['| ' + ' | '.join(rows[0]) + ' |', '|' + '|'.join(['---'] * len(rows[0])) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows[1:]]
    return '\n'.join(lines)


def group_by_model(rows: Sequence[Row]) -> Dict[str, List[Row]]:
    groups: Dict[str, List[Row]] = {}
    for row in rows:
        groups.setdefault(row.model or 'Model', []).append(row)
    return groups


def format_markdown(results: Sequence[RunResult], title: str = 'Benchmark results',
                    note: str = '', baseline: Optional[str] = None,
                    protocol: str = '', seeds: Sequence[int] = (),
                    comparisons: Sequence[Tuple[str, str]] = ()) -> str:
    """``results.md``: one table per model, as the paper's Tables 2 and 3; then ``comparisons``.

    Args:
        results (Sequence[RunResult]): The (run, seed) results.
        title (str), note (str): The page's title (default ``'Benchmark results'``) and a note.
        baseline (str, optional): Label of the baseline row. Defaults to None.
        protocol (str), seeds (Sequence[int]): The suite's, stated under the title (default: none).
        comparisons (Sequence[tuple[str, str]]): Extra paired comparisons (label A, label B).
    """
    rows = group_rows(results)
    parts = [f'# {title}', '']
    if note:
        parts += [note, '']
    if protocol or seeds:
        parts += [f'Protocol: `{protocol or "scratch"}`; seeds: '
                  f'{", ".join(str(s) for s in seeds) or "-"}.', '']
    issues = check_pairing(results, baseline)
    parts += format_pairing(issues, any(r.data_order for r in results))
    marks = unpaired(issues)
    for model, group in group_by_model(rows).items():
        parts += [f'## {model}', '', markdown_table(table_rows(group, baseline, marks)),
                  '']
        parts += _mdd_lines(group, baseline)
    if comparisons:
        metrics = TABLE_METRICS if has_masks(rows) else TABLE_METRICS[:1]
        by_label = {row.label: row.done for row in rows}
        parts += ['## Paired comparisons', '', markdown_table(
            iv.comparison_rows(by_label, comparisons, metrics)), '']
    parts += mask_evolution_section(results)  # its figure: mask_figure.plot_mask_evolution
    parts += [
        'mAP: COCO mAP@[.5:.95] (x100) of the final evaluation, mean ± sample standard '
        'deviation over the seeds (n). Δ [95 % CI]: the paired difference to the baseline '
        'row, the mean over the seeds both finished of (row - baseline) at the same seed, '
        'with its 95 % Student t interval (n - 1 degrees of freedom); the verdict '
        '("better", "worse", "no difference shown") only says whether that interval '
        'excludes 0. †: the pairing check found a seed at which this row saw other data '
        'than the baseline. Bootstrap ±: the mean half-width over the seeds of each run\'s '
        '95 % percentile interval from resampling the validation images (evaluation noise, '
        'per run; results.csv lists every interval). Minimal detectable difference: the '
        'half-width of the paired interval of the baseline against an independent copy of '
        'itself at other seeds, t(0.975, n-1) x sqrt(2) x s / sqrt(n), s the baseline\'s '
        'seed standard deviation (docs/benchmark.md). Paper (COCO): the LBC paper\'s '
        'figure on COCO val2017 (Tables 2 and 3), for orientation only: not the same '
        'data. FLOPs (Train): '
        'training FLOPs of the N:M layers relative to training them dense, counted the '
        'paper\'s way; hardware: every conv/linear layer of the model at the densities '
        'it really runs (docs/benchmark.md). Wall time: the training command, evaluation '
        'included, mean over the seeds.', '']
    return '\n'.join(parts)


def _mdd_lines(group: Sequence[Row], baseline: Optional[str]) -> List[str]:
    base = next((row for row in group if row.label == baseline), None)
    if base is None:
        return []
    out = []
    for m in TABLE_METRICS:
        mdd = iv.minimal_detectable_difference(base.done, m)
        if mdd is not None:
            out.append(f'Minimal detectable difference ({m}, {baseline} against itself at '
                       f'other seeds, n={len(base.done)}): ±{100 * mdd:.1f} mAP.')
    return out + [''] if out else []


def _interval_values(results: Sequence[RunResult], baseline: Optional[str]
                     ) -> Dict[Tuple[str, str], Dict[str, object]]:
    """(model, label) -> the CSV's paired-difference columns of that row."""
    out: Dict[Tuple[str, str], Dict[str, object]] = {}
    for model, group in group_by_model(group_rows(results)).items():
        base = next((row for row in group if row.label == baseline), None)
        for row in group:
            values: Dict[str, object] = {}
            for m in TABLE_METRICS:
                d = (iv.paired_difference(row.done, base.done, m)
                     if base is not None and row is not base else None)
                if d is not None:
                    values.update({f'{m}_diff': d.mean, f'{m}_diff_low': d.low,
                                   f'{m}_diff_high': d.high, f'{m}_verdict': d.verdict})
            out[(row.model, row.label)] = values
    return out


def write_csv(results: Sequence[RunResult], path: str,
              baseline: Optional[str] = None) -> str:
    """``results.csv``: one row per (run, seed), with its bootstrap interval and its row's
    paired difference to ``baseline`` (repeated on every seed of the row); returns ``path``.

    Args:
        results (Sequence[RunResult]): The (run, seed) results.
        path (str): Where to write.
        baseline (str, optional): Label of the baseline row. Defaults to None.
    """
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    paired = _interval_values(results, baseline)
    for r in results:
        values = {c: getattr(r, c, None) for c in CSV_COLUMNS}
        for name in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50',
                     'segm_mAP_75'):
            values[name] = r.metric(name)
        for m in TABLE_METRICS:
            boot = (r.bootstrap or {}).get(m) or {}
            values[f'{m}_boot_low'], values[f'{m}_boot_high'] = (boot.get('low'),
                                                                 boot.get('high'))
        values.update(paired.get((r.model, r.label), {}))
        writer.writerow(['' if values[c] is None else values[c] for c in CSV_COLUMNS])
    atomic_write(path, buf.getvalue())
    return path


def _points(group: Sequence[Row], metric: str) -> List[Tuple[Row, float, Stat]]:
    out = []
    for row in group:
        x = row.mean('paper_flops_ratio')
        if x is None:
            x = row.mean('flops_ratio')
        s = row.stat(metric)
        if x is not None and s is not None:
            out.append((row, x, s))
    return out


def _error_bar(row: Row, base: Optional[Row], metric: str) -> float:
    """The half-width of the row's paired 95 % interval to the baseline; for the
    baseline (or without a pair) its mean bootstrap half-width; 0 without either."""
    if base is not None and row is not base:
        d = iv.paired_difference(row.done, base.done, metric)
        if d is not None and d.half_width is not None:
            return d.half_width
    return iv.bootstrap_half_width(row.done, metric) or 0.0


def plot_results(results: Sequence[RunResult], path: str, title: str = '',
                 baseline: Optional[str] = None) -> Optional[str]:
    """``results.png``: mAP against the training-FLOPs ratio (paper convention), one panel per
    model, one marker per method (box mAP filled; mask mAP hollow); error bars: the half-width
    of each row's paired 95 % interval to ``baseline``, the baseline's own bar its bootstrap
    interval over validation images. Returns the path, or None when nothing can be drawn.

    Args:
        results (Sequence[RunResult]): The (run, seed) results.
        path (str): Where to write.
        title (str): The figure's title. Defaults to ``''``.
        baseline (str, optional): Label of the baseline row. Defaults to None.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = {m: g for m, g in group_by_model(group_rows(results)).items()
              if _points(g, 'bbox_mAP')}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2),
                             squeeze=False)
    for ax, (model, group) in zip(axes[0], groups.items()):
        seen = set()
        base = next((row for row in group if row.label == baseline), None)
        for metric, hollow in (('bbox_mAP', False), ('segm_mAP', True)):
            for row, x, s in _points(group, metric):
                marker, color = plot_style(row.method)
                name = method_name(row.method)
                ax.errorbar(x, 100 * s.mean, yerr=100 * _error_bar(row, base, metric), fmt=marker,
                            color=color, mfc='none' if hollow else color, ms=8,
                            capsize=3, zorder=3,
                            label=name if (name not in seen and not hollow) else None)
                seen.add(name)
                if not hollow and row.pattern and row.pattern != '-':
                    ax.annotate(row.pattern, (x, 100 * s.mean), textcoords='offset points',
                                xytext=(6, 4), fontsize=8)
        ylabel = ('Box mAP (filled) / Mask mAP (hollow)' if has_masks(group)
                  else 'mAP (x100)')
        ax.set_xlabel('training FLOPs / dense (paper convention)')
        ax.set_ylabel(ylabel + ', mean; bars: 95 % CI')
        ax.set_title(model)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc='best')
    if title:
        fig.suptitle(textwrap.fill(title, 55 * len(groups)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
