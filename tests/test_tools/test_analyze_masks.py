"""tools/analyze_masks.py and the suite's mask-evolution figure, on synthetic diagnostics
files (the format ``NMSparsityHook`` writes: ``lbc_mmdet.engine.hooks.nm_diagnostics``)."""
import csv
import os
import os.path as osp

import pytest

from lbc_mmdet.cli.analyze_masks import cli
from lbc_mmdet.engine.hooks import nm_diagnostics
from lbc_mmdet.suite import RunResult
from lbc_mmdet.suite.mask_figure import (
    DIAG_FILE,
    mask_evolution_section,
    plot_mask_evolution,
    read_diagnostics,
    series,
)
from lbc_mmdet.suite.report import format_markdown

LAYERS = ('backbone.layer1.0.conv1', 'backbone.layer1.0.conv2', 'backbone.fc')


def write_run(work_dir, method='srste', scale=1.0, iters=(0, 10, 20, 30), ts='20261206_010000'):
    """A run's diagnostics as the hook writes them: a start record, one every 10
    iterations, and a final one at the last iteration."""
    log_dir = osp.join(work_dir, ts)
    for k, it in enumerate(iters):
        layers = {name: dict(flip_rate=0.0 if k == 0 else scale * (j + 1) / (10 * k),
                             divergence_start=0.01 * k * (j + 1))
                  for j, name in enumerate(LAYERS)}
        mean = {key: sum(v[key] for v in layers.values()) / len(layers)
                for key in ('flip_rate', 'divergence_start')}
        nm_diagnostics.append_record(log_dir, dict(
            iter=it, t=float(it), methods=[method], start=k == 0, final=False, mean=mean,
            layers=layers))
    last = dict(iter=iters[-1], t=float(iters[-1]), methods=[method], start=False,
                final=True, mean=dict(flip_rate=0.0), layers={n: dict(flip_rate=0.0)
                                                              for n in LAYERS})
    nm_diagnostics.append_record(log_dir, last)
    return log_dir


def test_the_file_names_agree():
    assert nm_diagnostics.DIAG_FILE == DIAG_FILE


def test_read_and_series(tmp_path):
    write_run(str(tmp_path))
    records = read_diagnostics(str(tmp_path))
    assert [r['iter'] for r in records] == [0, 10, 20, 30, 30]
    xs, ys = series(records)  # no start record, no final record at the same iteration
    assert xs == [10, 20, 30]
    assert ys == pytest.approx([0.2, 0.1, 0.2 / 3])
    xs, ys = series(records, 'divergence_start', LAYERS[2])
    assert xs == [10, 20, 30] and ys == pytest.approx([0.03, 0.06, 0.09])


def test_analyze_masks_writes_figures_and_summary(tmp_path, capsys):
    write_run(str(tmp_path))
    assert cli([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    out_dir = tmp_path / 'mask_analysis'
    for name in ('flip_rate_layers.png', 'divergence_start_layers.png'):
        path = out_dir / name
        assert path.is_file() and path.read_bytes()[:4] == b'\x89PNG'
    rows = list(csv.DictReader(open(out_dir / 'summary.csv')))
    assert [r['layer'] for r in rows] == list(LAYERS)
    # layer j: flip rates (j + 1) / 10, / 20, / 30
    for j, row in enumerate(rows):
        expected = (j + 1) * (1 / 10 + 1 / 20 + 1 / 30) / 3
        assert float(row['mean flip_rate']) == pytest.approx(expected)
        assert float(row['last divergence_start']) == pytest.approx(0.03 * (j + 1))
    assert 'backbone.layer1.0.conv2' in out and 'methods: srste' in out


def test_analyze_masks_errors(tmp_path, capsys):
    assert cli([str(tmp_path / 'missing')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and 'not a directory' in err[0]
    os.makedirs(tmp_path / 'empty')
    assert cli([str(tmp_path / 'empty')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: no mask diagnostics') and 'diag_interval' in err


def _results(tmp_path):
    results = []
    for method, label, scale in (('srste', 'SR-STE 2:4', 1.0), ('lbc', 'LBC 2:4', 0.1)):
        for seed in (0, 1):
            wd = str(tmp_path / label.replace(' ', '_') / f'seed{seed}')
            write_run(wd, method=method, scale=scale * (1 + seed))
            results.append(RunResult(label=label, model='Faster R-CNN', method=method,
                                     pattern='2:4', work_dir=wd, status='done', seed=seed))
    results.append(RunResult(label='Baseline', model='Faster R-CNN', method='dense',
                             work_dir=str(tmp_path / 'dense'), status='done', seed=0))
    return results


def test_suite_mask_evolution_figure_and_section(tmp_path):
    results = _results(tmp_path)
    path = plot_mask_evolution(results, str(tmp_path / 'mask_evolution.png'), 'suite')
    assert path and open(path, 'rb').read(4) == b'\x89PNG'
    lines = mask_evolution_section(results)
    text = '\n'.join(lines)
    assert '![mask flip rate against iteration](mask_evolution.png)' in text
    srste = next(ln for ln in lines if '| SR-STE 2:4 |' in ln)
    # mean over seeds (scale 1 and 2) of the mean over layers (0.2 at iteration 10)
    cells = [c.strip() for c in srste.strip('|').split('|')]
    assert float(cells[3]) == pytest.approx(0.2 * 1.5, abs=1e-4)
    assert cells[-1] == '3'
    assert not any('Baseline' in ln for ln in lines)  # no diagnostics: no line
    # results.md carries the section
    md = format_markdown(results, baseline='Baseline')
    assert '## Mask evolution' in md and '| LBC 2:4 |' in md
    # nothing logged: no figure, no section
    empty = [RunResult(label='Baseline', method='dense', work_dir=str(tmp_path / 'x'),
                       status='done')]
    assert plot_mask_evolution(empty, str(tmp_path / 'none.png')) is None
    assert mask_evolution_section(empty) == []
    assert '## Mask evolution' not in format_markdown(empty)
