"""Tables over seeds: mean ± std, paired differences with their t intervals, CSV of every
seed, plot."""
import csv
import math
import os.path as osp

import pytest

from lbc_mmdet.suite.report import (
    Stat,
    format_duration,
    format_markdown,
    group_rows,
    plot_results,
    table_rows,
    write_csv,
)
from lbc_mmdet.suite.results import RunResult

M2, M3 = 'Faster R-CNN', 'Mask R-CNN'


def _seeds(label, method, pattern, maps, model=M2, segm=None, **kw):
    out = []
    for i, v in enumerate(maps):
        metrics = {'coco/bbox_mAP': v}
        if segm is not None:
            metrics['coco/segm_mAP'] = segm[i]
        out.append(RunResult(label, model, method, pattern, status='done', seed=i,
                             metrics=metrics, **kw))
    return out


def _table2():
    return (_seeds('Baseline', 'dense', '-', [0.70, 0.72, 0.71], flops_ratio=1.0,
                   paper_flops_ratio=1.0, wall_time_s=120, paper=dict(bbox_mAP=37.4))
            + _seeds('LBC 2:4', 'lbc', '2:4', [0.705, 0.715, 0.71], flops_ratio=0.86,
                     paper_flops_ratio=0.72, wall_time_s=180, paper=dict(bbox_mAP=38.5))
            + _seeds('LBC 1:16', 'lbc', '1:16', [0.60, 0.61, 0.605], flops_ratio=0.73,
                     paper_flops_ratio=0.45, wall_time_s=180)
            + [RunResult('SR-STE 2:8', M2, 'srste', '2:8', status='failed', seed=0),
               RunResult('SR-STE 2:8', M2, 'srste', '2:8', seed=1)])


def test_stat():
    s = Stat.of([0.70, 0.72, 0.71, None])
    assert s.n == 3 and math.isclose(s.mean, 0.71) and math.isclose(s.std, 0.01)
    assert s.format() == '71.0 ± 1.0 (n=3)'
    assert Stat.of([]) is None and Stat.of([0.5]).format() == '50.0 (n=1)'


def test_table_over_seeds_like_the_paper():
    rows = table_rows(group_rows(_table2()), baseline='Baseline')
    assert rows[0] == ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)', 'mAP',
                       'Δ mAP vs Baseline [95 % CI]', 'mAP bootstrap ±',
                       'mAP, paper (COCO)', 'FLOPs (Train, hardware)', 'Wall time (mean)']
    assert rows[1] == ['Faster R-CNN', 'Baseline', '-', '1.00×', '71.0 ± 1.0 (n=3)', '-',
                       '-', '37.4', '1.00×', '2m 00s']
    # paired by seed: d = +0.5, -0.5, 0 (x100), s = 0.5, half-width 4.303 * 0.5 / sqrt(3)
    assert rows[2][3:8] == ['0.72×', '71.0 ± 0.5 (n=3)',
                            '+0.0 [-1.2, +1.2] no difference shown', '-', '38.5']
    # d = -10, -11, -10.5: the interval excludes 0
    assert rows[3][5] == '-10.5 [-11.7, -9.3] worse' and rows[3][7] == '-'
    assert rows[4] == ['Faster R-CNN', 'SR-STE', '2:8'] + ['failed'] * 7


def test_partial_rows_and_masks():
    results = (_seeds('Baseline', 'dense', '-', [0.5, 0.52], model=M3, segm=[0.45, 0.47],
                      flops_ratio=1.0, paper_flops_ratio=1.0, train_time_s=100.0,
                      paper=dict(bbox_mAP=38.2, segm_mAP=34.7))
               + _seeds('LBC 2:4', 'lbc', '2:4', [0.49], model=M3, segm=[0.44],
                        flops_ratio=0.8, paper_flops_ratio=0.7, wall_time_s=60)
               + [RunResult('LBC 2:4', M3, 'lbc', '2:4', seed=1)])
    rows = table_rows(group_rows(results), baseline='Baseline')
    assert rows[0][4:12] == ['Box mAP', 'Δ Box mAP vs Baseline [95 % CI]',
                             'Box mAP bootstrap ±', 'Box mAP, paper (COCO)', 'Mask mAP',
                             'Δ Mask mAP vs Baseline [95 % CI]', 'Mask mAP bootstrap ±',
                             'Mask mAP, paper (COCO)']
    assert rows[1][4:12] == ['51.0 ± 1.4 (n=2)', '-', '-', '38.2', '46.0 ± 1.4 (n=2)', '-',
                             '-', '34.7']
    assert rows[1][-1] == '1m 40s'  # no wall time: the training time
    # paired: only seed 0 finished on both rows (0.49 - 0.50)
    assert rows[2][5] == '-1.0 (n=1: no interval)'
    assert rows[2][-1] == '1m 00s (1/2 seeds done)'


def test_markdown_one_table_per_model_and_the_protocol():
    md = format_markdown(_table2() + _seeds('Baseline', 'dense', '-', [0.5, 0.5], model=M3,
                                            segm=[0.4, 0.42]),
                         title='My suite', note='Synthetic data.', baseline='Baseline',
                         protocol='finetune', seeds=[0, 1, 2])
    lines = md.splitlines()
    assert lines[0] == '# My suite' and 'Synthetic data.' in lines
    assert 'Protocol: `finetune`; seeds: 0, 1, 2.' in lines
    i2, i3 = lines.index('## Faster R-CNN'), lines.index('## Mask R-CNN')
    assert i2 < i3
    header = lines[i2 + 2]
    table = lines[i2 + 2:lines.index('', i2 + 2)]
    assert len(table) == 2 + 4
    for line in table:
        assert line.count('|') == header.count('|')
    # the minimal detectable difference follows the table: t(0.975, 2) x sqrt(2) x 1.0 /
    # sqrt(3) = 3.5 (x100)
    assert 'Minimal detectable difference (bbox_mAP, Baseline against itself at other ' \
           'seeds, n=3): ±3.5 mAP.' in lines[i2 + 2 + len(table) + 1:i3]
    assert 'within noise' not in md and '95 % Student t interval' in md
    assert 'Minimal detectable difference (bbox_mAP, Baseline against itself' in md
    # no run recorded its data order: said so
    assert 'the paired design was not checked' in md


def test_csv_keeps_every_seed(tmp_path):
    path = write_csv(_table2(), str(tmp_path / 'results.csv'))
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11
    assert [r['seed'] for r in rows[:3]] == ['0', '1', '2']
    assert float(rows[4]['bbox_mAP']) == 0.715 and rows[4]['segm_mAP'] == ''
    assert float(rows[4]['paper_flops_ratio']) == 0.72
    assert rows[9]['status'] == 'failed' and rows[9]['bbox_mAP'] == ''
    # the row's paired interval on every seed of it, each run's bootstrap interval
    results = _table2()
    results[0].bootstrap = {'bbox_mAP': dict(low=0.68, high=0.72, full=0.70)}
    path = write_csv(results, str(tmp_path / 'paired.csv'), baseline='Baseline')
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]['bbox_mAP_boot_low']) == 0.68 and rows[1]['bbox_mAP_boot_low'] == ''
    assert rows[0]['bbox_mAP_diff'] == '' and rows[0]['bbox_mAP_verdict'] == ''
    for r in rows[6:9]:  # LBC 1:16: d = -0.10, -0.11, -0.105
        assert math.isclose(float(r['bbox_mAP_diff']), -0.105)
        assert float(r['bbox_mAP_diff_high']) < 0 and r['bbox_mAP_verdict'] == 'worse'


def test_plot_with_error_bars(tmp_path):
    path = plot_results(_table2(), str(tmp_path / 'results.png'), 'title')
    assert path and osp.getsize(path) > 1000
    assert plot_results([RunResult('x')], str(tmp_path / 'none.png')) is None


@pytest.mark.parametrize('seconds,text', [(3725, '1h 02m'), (185, '3m 05s'), (42, '42s'),
                                          (None, '-')])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
