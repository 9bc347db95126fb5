"""Mask-health diagnostics of finished runs: read them, and draw the suite's mask-evolution
figure (``mask_evolution.png``: flip rate against iteration, one line per row of the suite,
coloured by method) with its section of ``results.md``.

Plain python and matplotlib: it reads the JSON lines ``NMSparsityHook`` writes with
``diag_interval`` (``<work_dir>/<timestamp>/nm_diagnostics.jsonl``, one record per
diagnostic point: ``iter``, ``t``, ``methods``, ``start``, ``final``, ``mean`` and
``layers``; see ``docs/methods.md``, "Mask diagnostics").
"""
import glob
import json
import os.path as osp
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

from ..layers import display_name, plot_style

#: The diagnostics file of a run's log directory (``NMSparsityHook``'s ``DIAG_FILE``).
DIAG_FILE = 'nm_diagnostics.jsonl'
#: The suite's figure, next to ``results.md``.
FIGURE_FILE = 'mask_evolution.png'
_LINESTYLES = ('-', '--', ':', '-.')


def diagnostics_files(work_dir: str) -> List[str]:
    """The diagnostics files of a run: ``<work_dir>/<timestamp>/`` :data:`DIAG_FILE`, in
    order (a resumed run writes into a new timestamp folder), or the file itself when
    ``work_dir`` holds one directly."""
    own = osp.join(work_dir, DIAG_FILE)
    found = sorted(glob.glob(osp.join(glob.escape(work_dir), '*', DIAG_FILE)))
    return ([own] if osp.isfile(own) else []) + found


def read_diagnostics(work_dir: str) -> List[dict]:
    """Every diagnostic record of a run, in order of iteration (for records at the same
    iteration, a later file's come last); malformed lines are skipped."""
    records = []
    for order, path in enumerate(diagnostics_files(work_dir)):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get('iter'), int):
                    records.append((rec['iter'], order, rec))
    return [rec for _, _, rec in sorted(records, key=lambda x: (x[0], x[1]))]


def series(records: Sequence[dict], key: str = 'flip_rate',
           layer: Optional[str] = None) -> Tuple[List[int], List[float]]:
    """``(iterations, values)`` of ``key`` (the mean over layers, or one ``layer``'s),
    leaving out the start records (0 by definition) and a final record at the
    iteration of the previous one (no iteration in between)."""
    xs: List[int] = []
    ys: List[float] = []
    for rec in records:
        if rec.get('start'):
            continue
        values = rec.get('layers', {}).get(layer, {}) if layer else rec.get('mean', {})
        if key not in values:
            continue
        if rec.get('final') and xs and xs[-1] == rec['iter']:
            continue
        xs.append(int(rec['iter']))
        ys.append(float(values[key]))
    return xs, ys


def _row_series(results) -> Dict[Tuple[str, str], dict]:
    """(model, label) -> method, pattern and the flip rate averaged over its seeds at
    the iterations every seed logged."""
    rows: Dict[Tuple[str, str], dict] = {}
    for r in results:
        if not r.work_dir or r.status != 'done':
            continue
        xs, ys = series(read_diagnostics(r.work_dir))
        if not xs:
            continue
        row = rows.setdefault((r.model, r.label), dict(
            method=r.method, pattern=r.pattern, seeds=[]))
        row['seeds'].append(dict(zip(xs, ys)))
    for row in rows.values():
        common = sorted(set.intersection(*(set(s) for s in row['seeds'])))
        row['iters'] = common
        row['flip'] = [sum(s[i] for s in row['seeds']) / len(row['seeds']) for i in common]
    return {k: v for k, v in rows.items() if v['iters']}


def plot_mask_evolution(results, path: str, title: str = '') -> Optional[str]:
    """Draw the flip rate against the iteration, one line per (model, row) of
    ``results`` (``RunResult`` objects: ``model``, ``label``, ``method``, ``pattern``,
    ``work_dir``, ``status``), mean over its seeds; colours and markers from the method
    registry. Returns ``path``, or None (nothing drawn) when no run logged
    diagnostics."""
    rows = _row_series(results)
    if not rows:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(model for model, _ in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.0),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        seen: Dict[str, int] = {}
        for (mod, label), row in rows.items():
            if mod != model:
                continue
            marker, color = plot_style(row['method'])
            style = _LINESTYLES[seen.get(row['method'], 0) % len(_LINESTYLES)]
            seen[row['method']] = seen.get(row['method'], 0) + 1
            ax.plot(row['iters'], row['flip'], linestyle=style, color=color,
                    marker=marker, markersize=3, label=label)
        ax.set_title(model)
        ax.set_xlabel('iteration')
        ax.set_ylabel('mask flip rate since the previous log')
        ax.set_yscale('symlog', linthresh=1e-4)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:  # wrapped to the figure's width, as the results plot's
        fig.suptitle(textwrap.fill(title, 55 * len(models)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def mask_evolution_section(results, figure: str = FIGURE_FILE) -> List[str]:
    """The lines of ``results.md`` about mask health: the figure and, per row, the mean
    flip rate over seeds at the first and the last logged point and over the whole run;
    empty when no run logged diagnostics."""
    rows = _row_series(results)
    if not rows:
        return []
    lines = ['## Mask evolution', '', f'![mask flip rate against iteration]({figure})', '',
             '| Model | Row | N:M | flip rate, first log | flip rate, last log | '
             'mean flip rate | logged points |', '|---|---|---|---:|---:|---:|---:|']
    for (model, label), row in rows.items():
        flip = row['flip']
        lines.append(f'| {model} | {label or display_name(row["method"])} | '
                     f'{row["pattern"]} | {flip[0]:.4f} | {flip[-1]:.4f} | '
                     f'{sum(flip) / len(flip):.4f} | {len(flip)} |')
    lines += ['', 'Flip rate: the fraction of the sparse layers\' weights whose mask bit '
              'changed since the previous log (NMSparsityHook `diag_interval`), mean over '
              'the layers, then over the seeds (docs/methods.md, "Mask diagnostics").', '']
    return lines


__all__ = ['DIAG_FILE', 'FIGURE_FILE', 'diagnostics_files', 'read_diagnostics', 'series',
           'plot_mask_evolution', 'mask_evolution_section']
