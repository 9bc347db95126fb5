"""Per-layer mask-health figures of one run (``tools/analyze_masks.py WORK_DIR``).

Reads the diagnostics ``NMSparsityHook`` logged with ``diag_interval``
(``WORK_DIR/<timestamp>/nm_diagnostics.jsonl``), draws into ``WORK_DIR/mask_analysis/``:

- ``<value>_layers.png`` for every logged value (``flip_rate``, and the methods' own, e.g.
  ``divergence_start``, ``score_margin``): a heatmap, one row per layer, against the
  iteration, with the mean over the layers above it;
- ``divergence_final_layers.png``: when ``WORK_DIR`` holds two or more checkpoints
  (``iter_*.pth`` / ``epoch_*.pth``), the normalised Hamming distance of every layer's mask
  in each checkpoint to its mask in the last one (the distance to the final mask, known
  only after training), each mask rebuilt by the layer's method from the checkpoint;
- ``summary.csv``: per layer, the mean flip rate over the run and every value's last one;

and prints the summary table. See ``docs/methods.md``, "Mask diagnostics".
"""
import argparse
import csv
import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from ..suite.mask_figure import DIAG_FILE, read_diagnostics, series
from ..utils import atomic_write
from ._common import ToolError, parse_tool_args, tool_cli

OUT_DIR = 'mask_analysis'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-layer mask-health figures (flip rate and the methods\' own '
        'values against the iteration) of one training run, from the diagnostics '
        f'NMSparsityHook logs with diag_interval > 0 (<timestamp>/{DIAG_FILE}).',
        epilog='example: python tools/analyze_masks.py work_dirs/my_run '
        '(docs/methods.md, "Mask diagnostics")')
    parser.add_argument('work_dir', metavar='WORK_DIR', help="the run's work dir")
    parser.add_argument('--out', metavar='DIR', default=None,
                        help=f'where the figures go (default: WORK_DIR/{OUT_DIR})')
    parser.add_argument('--no-checkpoints', action='store_true',
                        help="skip the distances to the final mask (they read WORK_DIR's "
                        'checkpoints)')
    return parse_tool_args(parser, argv)


def layer_names(records: List[dict]) -> List[str]:
    """Every layer that logged a value, in the order of its first appearance."""
    return list(dict.fromkeys(name for rec in records for name in rec.get('layers', {})))


def value_keys(records: List[dict]) -> List[str]:
    """Every logged value (``flip_rate`` first)."""
    keys = dict.fromkeys(['flip_rate'])
    for rec in records:
        for values in rec.get('layers', {}).values():
            keys.update(dict.fromkeys(values))
    return [k for k in keys if any(series(records, k, name)[0]
                                   for name in layer_names(records))]


def summary(records: List[dict]) -> List[Dict[str, object]]:
    """One row per layer: its mean flip rate over the run and the last value of every
    logged value (empty where the layer never logged it)."""
    rows = []
    keys = value_keys(records)
    for name in layer_names(records):
        row: Dict[str, object] = dict(layer=name)
        _, flips = series(records, 'flip_rate', name)
        row['mean flip_rate'] = sum(flips) / len(flips) if flips else ''
        for key in keys:
            _, ys = series(records, key, name)
            row[f'last {key}'] = ys[-1] if ys else ''
        rows.append(row)
    return rows


def plot_value(records: List[dict], key: str, path: str) -> str:
    """The heatmap of ``key`` (layers x logged iterations) with the mean above it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in layer_names(records) if series(records, key, n)[0]]
    iters = sorted({x for n in names for x in series(records, key, n)[0]})
    col = {it: j for j, it in enumerate(iters)}
    grid = np.full((len(names), len(iters)), np.nan)
    for i, name in enumerate(names):
        for x, y in zip(*series(records, key, name)):
            grid[i, col[x]] = y
    height = 2.0 + 0.18 * len(names)
    fig, (top, ax) = plt.subplots(2, 1, figsize=(8, height + 1.5),
                                  gridspec_kw=dict(height_ratios=[1.5, height]),
                                  sharex=False)
    mx, my = series(records, key)
    top.plot(mx, my, color='black', marker='.')
    top.set_ylabel(f'mean {key}')
    top.set_xlim(min(iters) - 0.5, max(iters) + 0.5)
    top.grid(alpha=0.3)
    extent = (min(iters) - 0.5, max(iters) + 0.5, len(names) - 0.5, -0.5)
    im = ax.imshow(grid, aspect='auto', interpolation='nearest', cmap='viridis',
                   extent=extent if len(iters) > 1 else None)
    if len(iters) <= 1:
        ax.set_xticks([0])
        ax.set_xticklabels([str(iters[0])])
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel('iteration')
    fig.colorbar(im, ax=ax, label=key)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_CHECKPOINT = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def checkpoints(work_dir: str) -> List[Tuple[int, str]]:
    """``(number, path)`` of the run's ``iter_*.pth`` / ``epoch_*.pth``, in order."""
    found = []
    for path in glob.glob(osp.join(glob.escape(work_dir), '*.pth')):
        match = _CHECKPOINT.match(osp.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def rebuild_mask(info: dict, name: str, state_dict: dict):
    """The bool mask of layer ``name`` in ``state_dict``: a layer of its method, pattern
    and options (``info``, the start record's ``layer_info``) loaded with the layer's
    entries; None when the checkpoint lacks its weight."""
    from ..layers import layer_class
    weight = state_dict.get(f'{name}.weight')
    if weight is None or weight.dim() not in (2, 4):
        return None
    kind = 'Conv2d' if weight.dim() == 4 else 'Linear'
    cls = layer_class(info['method'], kind)
    kwargs = dict(n=info['n'], m=info['m'], bias=False, **info.get('options', {}))
    shape = tuple(weight.shape)
    layer = (cls(shape[1], shape[0], shape[2:], **kwargs) if kind == 'Conv2d' else
             cls(shape[1], shape[0], **kwargs))
    prefix = name + '.'
    own = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix) and '.' not in k[len(prefix):] and k != prefix + 'bias'}
    layer.load_state_dict(own, strict=False)
    return layer.nm_mask() != 0


def final_divergence(work_dir: str, records: List[dict]) -> List[dict]:
    """Records (as the diagnostics') of ``divergence_final``: per checkpoint, every
    layer's normalised Hamming distance to its mask in the last checkpoint. Empty with
    fewer than two checkpoints or no ``layer_info``."""
    info = next((r['layer_info'] for r in reversed(records) if r.get('layer_info')), None)
    ckpts = checkpoints(work_dir)
    if not info or len(ckpts) < 2:
        return []
    from ..engine.checkpoint import load_from_local

    def masks(path):
        ckpt = load_from_local(path, map_location='cpu')
        sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
        out = {name: rebuild_mask(i, name, sd) for name, i in info.items()}
        return {k: v for k, v in out.items() if v is not None}

    final = masks(ckpts[-1][1])
    out = []
    for number, path in ckpts:
        now = final if path == ckpts[-1][1] else masks(path)
        layers = {name: dict(divergence_final=float((now[name] != mask).float().mean()))
                  for name, mask in final.items() if name in now}
        if layers:
            mean = sum(v['divergence_final'] for v in layers.values()) / len(layers)
            out.append(dict(iter=number, layers=layers, mean=dict(divergence_final=mean)))
    return out


def format_table(rows: List[Dict[str, object]]) -> str:
    if not rows:
        return '(no layer)'
    cols = list(rows[0])
    cells = [list(cols)] + [[f'{r[c]:.4g}' if isinstance(r[c], float) else str(r[c])
                                    for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return '\n'.join('  '.join(v.ljust(w) for v, w in zip(row, widths)) for row in cells)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.work_dir):
        raise ToolError(f'WORK_DIR is not a directory: {args.work_dir}')
    records = read_diagnostics(args.work_dir)
    if not records:
        raise ToolError(f'no mask diagnostics ({DIAG_FILE}) under {args.work_dir}: train '
                        'with NMSparsityHook(diag_interval > 0) (the default is 10)')
    out = args.out or osp.join(args.work_dir, OUT_DIR)
    os.makedirs(out, exist_ok=True)
    written = [plot_value(records, key, osp.join(out, f'{key}_layers.png'))
               for key in value_keys(records)]
    rows = summary(records)
    final = [] if args.no_checkpoints else final_divergence(args.work_dir, records)
    if final:
        written.append(plot_value(final, 'divergence_final',
                                  osp.join(out, 'divergence_final_layers.png')))
        for row in rows:
            first = final[0]['layers'].get(str(row['layer']), {})
            row['first ckpt divergence_final'] = first.get('divergence_final', '')
        print('distance to the final mask, mean over the layers, by checkpoint: '
              + ', '.join(f'{r["iter"]}: {r["mean"]["divergence_final"]:.4g}'
                          for r in final))
    import io
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(osp.join(out, 'summary.csv'), buf.getvalue())
    written.append(osp.join(out, 'summary.csv'))
    methods = sorted({m for rec in records for m in rec.get('methods', [])})
    last = records[-1]
    if last.get('final') and len(records) > 1 and records[-2]['iter'] == last['iter']:
        last = records[-2]  # the final record adds no iteration
    print(f'{len(records)} diagnostic records, iterations {records[0]["iter"]} to '
          f'{last["iter"]}, methods: {", ".join(methods) or "-"}')
    print(format_table(rows))
    mean = ', '.join(f'{k}={v:.4g}' for k, v in sorted(last.get('mean', {}).items()))
    print(f'mean over the layers at iteration {last["iter"]}: {mean or "-"}')
    print('wrote ' + ', '.join(written))
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
