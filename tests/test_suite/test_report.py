"""Tables over seeds: mean ± std, differences within noise, CSV of every seed, plot."""
import csv
import math
import os.path as osp

import pytest

from lbc_mmdet.suite.report import (
    Stat,
    difference,
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


def test_stat_and_difference():
    s = Stat.of([0.70, 0.72, 0.71, None])
    assert s.n == 3 and math.isclose(s.mean, 0.71) and math.isclose(s.std, 0.01)
    assert s.format() == '71.0 ± 1.0 (n=3)'
    assert Stat.of([]) is None and Stat.of([0.5]).format() == '50.0 (n=1)'
    b = Stat.of([0.60, 0.61, 0.605])
    d = difference(b, s)
    assert math.isclose(d.diff, -0.105) and d.within_noise is False
    assert d.format() == '-10.5'
    tie = difference(Stat.of([0.705, 0.715, 0.71]), s)
    se = math.sqrt(0.005**2 / 3 + 0.01**2 / 3)
    assert math.isclose(tie.se, se) and tie.within_noise is True
    assert tie.format() == '+0.0 (within noise)'
    one = difference(Stat.of([0.8]), s)
    assert one.within_noise is None and 'one seed: no ranking' in one.format()
    assert difference(None, s) is None


def test_table_over_seeds_like_the_paper():
    rows = table_rows(group_rows(_table2()), baseline='Baseline')
    assert rows[0] == ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)', 'mAP',
                       'Δ mAP vs Baseline', 'mAP, paper (COCO)', 'FLOPs (Train, hardware)',
                       'Wall time (mean)']
    assert rows[1] == ['Faster R-CNN', 'Baseline', '-', '1.00×', '71.0 ± 1.0 (n=3)', '-',
                       '37.4', '1.00×', '2m 00s']
    assert rows[2][3:7] == ['0.72×', '71.0 ± 0.5 (n=3)', '+0.0 (within noise)', '38.5']
    assert rows[3][5] == '-10.5' and rows[3][6] == '-'
    assert rows[4] == ['Faster R-CNN', 'SR-STE', '2:8'] + ['failed'] * 6


def test_partial_rows_and_masks():
    results = (_seeds('Baseline', 'dense', '-', [0.5, 0.52], model=M3, segm=[0.45, 0.47],
                      flops_ratio=1.0, paper_flops_ratio=1.0, train_time_s=100.0,
                      paper=dict(bbox_mAP=38.2, segm_mAP=34.7))
               + _seeds('LBC 2:4', 'lbc', '2:4', [0.49], model=M3, segm=[0.44],
                        flops_ratio=0.8, paper_flops_ratio=0.7, wall_time_s=60)
               + [RunResult('LBC 2:4', M3, 'lbc', '2:4', seed=1)])
    rows = table_rows(group_rows(results), baseline='Baseline')
    assert rows[0][4:10] == ['Box mAP', 'Δ Box mAP vs Baseline', 'Box mAP, paper (COCO)',
                             'Mask mAP', 'Δ Mask mAP vs Baseline',
                             'Mask mAP, paper (COCO)']
    assert rows[1][4:10] == ['51.0 ± 1.4 (n=2)', '-', '38.2', '46.0 ± 1.4 (n=2)', '-',
                             '34.7']
    assert rows[1][-1] == '1m 40s'  # no wall time: the training time
    assert rows[2][5] == '-2.0 (one seed: no ranking)'
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
    for line in lines[i2 + 2:i3 - 1]:
        assert line.count('|') == header.count('|')
    assert 'within noise' in md and 'standard errors' in md


def test_csv_keeps_every_seed(tmp_path):
    path = write_csv(_table2(), str(tmp_path / 'results.csv'))
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11
    assert [r['seed'] for r in rows[:3]] == ['0', '1', '2']
    assert float(rows[4]['bbox_mAP']) == 0.715 and rows[4]['segm_mAP'] == ''
    assert float(rows[4]['paper_flops_ratio']) == 0.72
    assert rows[9]['status'] == 'failed' and rows[9]['bbox_mAP'] == ''


def test_plot_with_error_bars(tmp_path):
    path = plot_results(_table2(), str(tmp_path / 'results.png'), 'title')
    assert path and osp.getsize(path) > 1000
    assert plot_results([RunResult('x')], str(tmp_path / 'none.png')) is None


@pytest.mark.parametrize('seconds,text', [(3725, '1h 02m'), (185, '3m 05s'), (42, '42s'),
                                          (None, '-')])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
