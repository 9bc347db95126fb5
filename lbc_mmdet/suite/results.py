"""Collect the results of training runs and lay them out like the paper's Tables 2 and 3.

Everything here reads files that MMEngine, mmdet and :class:`TrainFlopsHook` wrote into a
run's work dir:

- ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or ``<timestamp>.json`` next to it),
  JSON lines; the validation lines hold mmdet's COCO metrics (``coco/bbox_mAP``,
  ``coco/segm_mAP``, ... as fractions), the training lines the logged scalars (e.g.
  ``flops_ratio``). The last value of every metric wins (the final evaluation; runs
  resumed into a new timestamp are read in order).
- ``<work_dir>/<timestamp>/train_flops.json`` (:class:`TrainFlopsHook`, end of training).
- ``<work_dir>/results.json``: a run's collected result, written by the suite runner.

:func:`format_markdown`, :func:`write_csv` and :func:`plot_results` turn a list of
:class:`RunResult` into ``results.md``, ``results.csv`` and ``results.png``.
"""
import csv
import json
import math
import os
import os.path as osp
import re
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Iterable, List, Optional, Sequence

from ..engine.checkpoint import atomic_write
from ..layers import DENSE, display_name, plot_style

RESULTS_FILE = 'results.json'
FLOPS_FILE = 'train_flops.json'
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')

#: CSV columns (metrics as mmdet writes them: fractions in [0, 1])
CSV_COLUMNS = ('label', 'model', 'method', 'pattern', 'status', 'bbox_mAP', 'bbox_mAP_50',
               'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50', 'segm_mAP_75', 'flops_ratio',
               'backbone_flops_ratio', 'iterations', 'wall_time_s', 'train_time_s',
               'config', 'work_dir')


@dataclass
class RunResult:
    """The collected result of one run of a suite.

    ``status`` is ``'done'`` (trained and evaluated), ``'failed'`` (the training command
    failed or no metric was found), or ``'missing'`` (not run yet). ``metrics`` maps
    mmdet's metric names (``'coco/bbox_mAP'``) to fractions.
    """
    label: str
    model: str = ''
    method: str = DENSE
    pattern: str = '-'
    config: str = ''
    work_dir: str = ''
    status: str = 'missing'
    metrics: Dict[str, float] = field(default_factory=dict)
    flops_ratio: Optional[float] = None
    backbone_flops_ratio: Optional[float] = None
    iterations: Optional[int] = None
    wall_time_s: Optional[float] = None
    train_time_s: Optional[float] = None
    returncode: Optional[int] = None
    log_file: str = ''

    def metric(self, name: str) -> Optional[float]:
        """A COCO metric by short name (``'bbox_mAP'``); looks up ``coco/<name>`` first,
        then any ``<prefix>/<name>``."""
        if f'coco/{name}' in self.metrics:
            return self.metrics[f'coco/{name}']
        for key, value in self.metrics.items():
            if key.split('/', 1)[-1] == name:
                return value
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'RunResult':
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- reading
def log_dirs(work_dir: str) -> List[str]:
    """The ``<timestamp>`` log dirs MMEngine made in ``work_dir``, oldest first."""
    if not osp.isdir(work_dir):
        return []
    return [osp.join(work_dir, d) for d in sorted(os.listdir(work_dir))
            if _TIMESTAMP.match(d) and osp.isdir(osp.join(work_dir, d))]


def read_json_lines(path: str) -> List[dict]:
    """The dicts of a JSON-lines file; malformed lines (a run killed mid-write) are
    skipped."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def scalar_files(log_dir: str) -> List[str]:
    """The scalar log of a log dir: ``vis_data/scalars.json``, else the LoggerHook's
    ``vis_data/<timestamp>.json``."""
    vis = osp.join(log_dir, 'vis_data')
    main = osp.join(vis, 'scalars.json')
    if osp.isfile(main):
        return [main]
    alt = osp.join(vis, osp.basename(log_dir) + '.json')
    return [alt] if osp.isfile(alt) else []


def collect_scalars(work_dir: str) -> Dict[str, float]:
    """The last logged value of every scalar of the run (all log dirs, oldest first).
    Metric keys keep their prefix (``coco/bbox_mAP``)."""
    last: Dict[str, float] = {}
    for d in log_dirs(work_dir):
        for path in scalar_files(d):
            for row in read_json_lines(path):
                for key, value in row.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        last[key] = float(value)
    return last


def collect_metrics(work_dir: str) -> Dict[str, float]:
    """The final evaluation metrics of the run: every logged key with a ``/``
    (``coco/bbox_mAP``, ``coco/segm_mAP_50``, ...). Empty if it was never evaluated."""
    return {k: v for k, v in collect_scalars(work_dir).items() if '/' in k}


def load_train_flops(work_dir: str) -> Optional[dict]:
    """The newest ``train_flops.json`` of the run (written when training ends), or None."""
    for d in reversed(log_dirs(work_dir)):
        path = osp.join(d, FLOPS_FILE)
        if osp.isfile(path):
            try:
                with open(path) as f:
                    return json.load(f)
            except (OSError, json.JSONDecodeError):
                return None
    return None


def collect_run(label: str, work_dir: str, model: str = '', method: str = DENSE,
                pattern: str = '-', config: str = '') -> RunResult:
    """Build a run's :class:`RunResult` from what its work dir holds (without
    ``results.json``): ``'done'`` when COCO metrics were found, ``'missing'`` otherwise.

    A dense run without ``train_flops.json`` gets the ratio 1 (it *is* the dense
    equivalent); a sparse one falls back on the last logged ``flops_ratio``.
    """
    result = RunResult(label=label, model=model, method=method, pattern=pattern,
                       config=config, work_dir=work_dir)
    scalars = collect_scalars(work_dir)
    result.metrics = {k: v for k, v in scalars.items() if '/' in k}
    flops = load_train_flops(work_dir)
    if flops is not None:
        result.flops_ratio = _float(flops.get('ratio'))
        result.backbone_flops_ratio = _float(flops.get('backbone_ratio'))
        result.iterations = flops.get('iterations')
        result.train_time_s = _float(flops.get('train_time_s'))
    elif method == DENSE:
        result.flops_ratio = result.backbone_flops_ratio = 1.0
    elif 'flops_ratio' in scalars:
        result.flops_ratio = scalars['flops_ratio']
    if result.iterations is None and 'iter' in scalars:
        result.iterations = int(scalars['iter'])
    result.status = 'done' if result.metrics else 'missing'
    return result


def _float(value) -> Optional[float]:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def training_finished(work_dir: str) -> bool:
    """True when a run trained outside the suite is complete: ``train_flops.json``
    (written by :class:`TrainFlopsHook` when training ends) and COCO metrics exist."""
    return load_train_flops(work_dir) is not None and bool(collect_metrics(work_dir))


def read_result(work_dir: str) -> Optional[RunResult]:
    """The run's ``results.json``, or None if absent or unreadable."""
    path = osp.join(work_dir, RESULTS_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return RunResult.from_dict(json.load(f))
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def write_result(result: RunResult, work_dir: Optional[str] = None) -> str:
    """Write ``results.json`` into the run's work dir; returns its path."""
    work_dir = work_dir or result.work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, RESULTS_FILE)
    atomic_write(path, json.dumps(result.to_dict(), indent=2))
    return path


# --------------------------------------------------------------------------- formatting
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


def group_by_model(results: Sequence[RunResult]) -> Dict[str, List[RunResult]]:
    """Results per model, models in order of first appearance."""
    groups: Dict[str, List[RunResult]] = {}
    for r in results:
        groups.setdefault(r.model or 'Model', []).append(r)
    return groups


def has_masks(results: Iterable[RunResult]) -> bool:
    """Whether any result holds a mask metric (the table then has Box and Mask mAP)."""
    return any(r.metric('segm_mAP') is not None for r in results)


def table_rows(results: Sequence[RunResult]) -> List[List[str]]:
    """Header and rows of the table of one model: ``Model | Method | N:M Pattern |
    FLOPs (Train) | mAP`` (Table 2) or ``... | Box mAP | Mask mAP`` (Table 3), then the
    backbone's training-FLOPs ratio and the wall time."""
    masks = has_masks(results)
    header = ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)']
    header += ['Box mAP', 'Mask mAP'] if masks else ['mAP']
    header += ['FLOPs (Train, backbone)', 'Wall time']
    rows = [header]
    for r in results:
        row = [r.model or '-', method_name(r.method), r.pattern or '-']
        if r.status == 'done':
            row.append(format_ratio(r.flops_ratio))
            row.append(format_map(r.metric('bbox_mAP')))
            if masks:
                row.append(format_map(r.metric('segm_mAP')))
            row.append(format_ratio(r.backbone_flops_ratio))
            row.append(format_duration(
                r.wall_time_s if r.wall_time_s is not None else r.train_time_s))
        else:
            note = 'failed' if r.status == 'failed' else 'not run'
            row += [note] * (len(header) - len(row))
        rows.append(row)
    return rows


def markdown_table(rows: List[List[str]]) -> str:
    """Rows (header first) as a markdown table."""
    lines = ['| ' + ' | '.join(rows[0]) + ' |',
             '|' + '|'.join(['---'] * len(rows[0])) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows[1:]]
    return '\n'.join(lines)


def format_markdown(results: Sequence[RunResult], title: str = 'Benchmark results',
                    note: str = '') -> str:
    """``results.md``: one table per model, as the paper's Tables 2 (Faster R-CNN, mAP)
    and 3 (Mask R-CNN, Box and Mask mAP)."""
    parts = [f'# {title}', '']
    if note:
        parts += [note, '']
    for model, group in group_by_model(results).items():
        parts += [f'## {model}', '', markdown_table(table_rows(group)), '']
    parts += [
        'mAP: COCO mAP@[.5:.95] (x100) of the last evaluation. FLOPs (Train): training '
        'multiply-adds of every conv/linear layer (forward, input gradient and weight '
        'gradient) relative to training the same model dense for the same iterations '
        '(`TrainFlopsHook`, docs/benchmark.md); FLOPs (Train, backbone): the same for the '
        'backbone only. Wall time: the whole training command (evaluation included).', '']
    return '\n'.join(parts)


def write_csv(results: Sequence[RunResult], path: str) -> str:
    """``results.csv``: one row per run (metrics as fractions, times in seconds)."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in results:
            values = dict(label=r.label, model=r.model, method=r.method, pattern=r.pattern,
                          status=r.status, flops_ratio=r.flops_ratio,
                          backbone_flops_ratio=r.backbone_flops_ratio,
                          iterations=r.iterations, wall_time_s=r.wall_time_s,
                          train_time_s=r.train_time_s, config=r.config,
                          work_dir=r.work_dir)
            for name in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP',
                         'segm_mAP_50', 'segm_mAP_75'):
                values[name] = r.metric(name)
            writer.writerow(['' if values[c] is None else values[c] for c in CSV_COLUMNS])
    return path


def plot_results(results: Sequence[RunResult], path: str, title: str = '') -> Optional[str]:
    """``results.png``: mAP against the training-FLOPs ratio, one panel per model, one
    marker per method (box mAP filled; mask mAP hollow where present). Returns the path,
    or None when no run has both numbers."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = {m: [r for r in g if r.status == 'done' and r.flops_ratio is not None
                  and r.metric('bbox_mAP') is not None]
              for m, g in group_by_model(results).items()}
    groups = {m: g for m, g in groups.items() if g}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2),
                             squeeze=False)
    for ax, (model, group) in zip(axes[0], groups.items()):
        seen = set()
        for r in group:
            key = str(r.method).lower()
            marker, color = plot_style(key)
            name = method_name(r.method)
            ax.scatter(r.flops_ratio, 100 * r.metric('bbox_mAP'), marker=marker,
                       color=color, s=90 if marker == '*' else 55, zorder=3,
                       label=name if name not in seen else None)
            seen.add(name)
            text = r.pattern if r.pattern and r.pattern != '-' else ''
            if text:
                ax.annotate(text, (r.flops_ratio, 100 * r.metric('bbox_mAP')),
                            textcoords='offset points', xytext=(5, 4), fontsize=8)
            segm = r.metric('segm_mAP')
            if segm is not None:
                ax.scatter(r.flops_ratio, 100 * segm, marker=marker, facecolors='none',
                           edgecolors=color, s=55, zorder=3)
        ylabel = 'mAP (x100)'
        if any(r.metric('segm_mAP') is not None for r in group):
            ylabel = 'Box mAP (filled) / Mask mAP (hollow)'
        ax.set_xlabel('training FLOPs / dense training FLOPs')
        ax.set_ylabel(ylabel)
        ax.set_title(model)
        ax.grid(True, alpha=0.3)
        xs = [r.flops_ratio for r in group]
        lo, hi = min(xs + [1.0]), max(xs + [1.0])
        pad = max(0.05, 0.1 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
        ax.legend(fontsize=8, loc='best')
    if title:
        fig.suptitle(textwrap.fill(title, 55 * len(groups)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
