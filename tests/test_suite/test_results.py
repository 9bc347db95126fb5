"""Results collection, tables, CSV and plot from synthetic work dirs."""
import csv
import json
import os
import os.path as osp

import pytest

from lbc_mmdet.suite.results import (
    RunResult,
    collect_metrics,
    collect_run,
    format_duration,
    format_markdown,
    load_train_flops,
    plot_results,
    read_result,
    table_rows,
    training_finished,
    write_csv,
    write_result,
)


def fake_run(work_dir, metrics, flops=None, timestamp='20260101_000000', extra_train=None,
             alt_name=False):
    """A work dir as MMEngine + TrainFlopsHook leave it: a log dir with a JSON-lines
    scalars file (train lines, then validation lines) and optionally train_flops.json."""
    log_dir = osp.join(work_dir, timestamp)
    vis = osp.join(log_dir, 'vis_data')
    os.makedirs(vis, exist_ok=True)
    lines = [dict(lr=0.02, loss=1.5, flops_ratio=0.9, iter=10, step=10),
             dict(lr=0.02, loss=1.2, flops_ratio=0.8, iter=20, step=20, **(extra_train or {}))]
    lines += [dict(m, step=20) for m in metrics]
    name = f'{timestamp}.json' if alt_name else 'scalars.json'
    with open(osp.join(vis, name), 'w') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
        f.write('{"truncated": \n')  # a run killed mid-write
    if flops is not None:
        with open(osp.join(log_dir, 'train_flops.json'), 'w') as f:
            json.dump(flops, f)
    return work_dir


def test_collect_metrics_last_value_and_newest_log_dir(tmp_path):
    wd = str(tmp_path / 'run')
    # an early evaluation, then the final one
    fake_run(wd, [{'coco/bbox_mAP': 0.1}, {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5}],
             flops=dict(ratio=0.9, backbone_ratio=0.8, iterations=10))
    # resumed into a newer log dir
    fake_run(wd, [{'coco/bbox_mAP': 0.3}], timestamp='20260102_000000',
             flops=dict(ratio=0.7, backbone_ratio=0.6, iterations=20, train_time_s=12.5))
    os.makedirs(osp.join(wd, 'not_a_timestamp'))
    metrics = collect_metrics(wd)
    assert metrics == {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5}
    assert load_train_flops(wd)['ratio'] == 0.7
    r = collect_run('LBC 2:4', wd, model='Faster R-CNN', method='lbc', pattern='2:4')
    assert r.status == 'done'
    assert r.metric('bbox_mAP') == 0.3 and r.metric('segm_mAP') is None
    assert (r.flops_ratio, r.backbone_flops_ratio, r.iterations, r.train_time_s) == (
        0.7, 0.6, 20, 12.5)
    assert training_finished(wd)


def test_collect_run_fallbacks(tmp_path):
    # the LoggerHook's <timestamp>.json when scalars.json is missing
    wd = fake_run(str(tmp_path / 'alt'), [{'coco/bbox_mAP': 0.2}], alt_name=True)
    assert collect_metrics(wd) == {'coco/bbox_mAP': 0.2}
    # dense without train_flops.json: it is the dense equivalent
    dense = collect_run('Baseline', wd, method='dense')
    assert dense.flops_ratio == 1.0 and dense.backbone_flops_ratio == 1.0
    assert not training_finished(wd)
    # sparse without train_flops.json: the last logged ratio
    sparse = collect_run('LBC', wd, method='lbc', pattern='2:4')
    assert sparse.flops_ratio == 0.8 and sparse.backbone_flops_ratio is None
    # nothing there yet
    empty = collect_run('x', str(tmp_path / 'nothing'))
    assert empty.status == 'missing' and empty.metrics == {}


def test_results_json_round_trip(tmp_path):
    r = RunResult(label='LBC 2:4', model='Faster R-CNN', method='lbc', pattern='2:4',
                  status='done', metrics={'coco/bbox_mAP': 0.374}, flops_ratio=0.6,
                  wall_time_s=61.0)
    path = write_result(r, str(tmp_path))
    assert path == osp.join(str(tmp_path), 'results.json')
    assert read_result(str(tmp_path)) == r
    with open(path, 'w') as f:
        f.write('{broken')
    assert read_result(str(tmp_path)) is None
    assert read_result(str(tmp_path / 'none')) is None


def _table2():
    m = 'Faster R-CNN'
    return [
        RunResult('Baseline', m, 'dense', '-', status='done',
                  metrics={'coco/bbox_mAP': 0.374}, flops_ratio=1.0,
                  backbone_flops_ratio=1.0, wall_time_s=3725),
        RunResult('SR-STE 2:4', m, 'srste', '2:4', status='done',
                  metrics={'coco/bbox_mAP': 0.382}, flops_ratio=0.8123,
                  backbone_flops_ratio=0.6667, wall_time_s=185),
        RunResult('LBC 2:4', m, 'lbc', '2:4', status='done',
                  metrics={'coco/bbox_mAP': 0.3851}, flops_ratio=0.7,
                  backbone_flops_ratio=0.55, wall_time_s=42),
        RunResult('LBC 2:8', m, 'lbc', '2:8', status='failed'),
        RunResult('SR-STE 2:8', m, 'srste', '2:8'),
    ]


def _table3():
    m = 'Mask R-CNN'
    return [
        RunResult('Baseline', m, 'dense', '-', status='done',
                  metrics={'coco/bbox_mAP': 0.382, 'coco/segm_mAP': 0.347},
                  flops_ratio=1.0, backbone_flops_ratio=1.0, train_time_s=100.0),
        RunResult('LBC 2:4', m, 'lbc', '2:4', status='done',
                  metrics={'coco/bbox_mAP': 0.386, 'coco/segm_mAP': 0.351},
                  flops_ratio=0.72, backbone_flops_ratio=0.56, wall_time_s=7200),
    ]


def test_table_layout_like_the_paper():
    rows = table_rows(_table2())
    assert rows[0] == ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)', 'mAP',
                       'FLOPs (Train, backbone)', 'Wall time']
    assert rows[1] == ['Faster R-CNN', 'Baseline', '-', '1.00×', '37.4', '1.00×', '1h 02m']
    assert rows[2] == ['Faster R-CNN', 'SR-STE', '2:4', '0.81×', '38.2', '0.67×', '3m 05s']
    assert rows[3] == ['Faster R-CNN', 'LBC', '2:4', '0.70×', '38.5', '0.55×', '42s']
    assert rows[4] == ['Faster R-CNN', 'LBC', '2:8'] + ['failed'] * 4
    assert rows[5] == ['Faster R-CNN', 'SR-STE', '2:8'] + ['not run'] * 4
    rows = table_rows(_table3())
    assert rows[0] == ['Model', 'Method', 'N:M Pattern', 'FLOPs (Train)', 'Box mAP',
                       'Mask mAP', 'FLOPs (Train, backbone)', 'Wall time']
    # no wall time recorded: the training time of train_flops.json
    assert rows[1] == ['Mask R-CNN', 'Baseline', '-', '1.00×', '38.2', '34.7', '1.00×',
                       '1m 40s']
    assert rows[2] == ['Mask R-CNN', 'LBC', '2:4', '0.72×', '38.6', '35.1', '0.56×',
                       '2h 00m']


def test_markdown_one_table_per_model():
    md = format_markdown(_table2() + _table3(), title='My suite', note='Synthetic data.')
    lines = md.splitlines()
    assert lines[0] == '# My suite'
    assert 'Synthetic data.' in lines
    i2, i3 = lines.index('## Faster R-CNN'), lines.index('## Mask R-CNN')
    assert i2 < i3
    assert lines[i2 + 2] == ('| Model | Method | N:M Pattern | FLOPs (Train) | mAP | '
                             'FLOPs (Train, backbone) | Wall time |')
    assert lines[i2 + 3] == '|---|---|---|---|---|---|---|'
    assert lines[i2 + 6] == '| Faster R-CNN | LBC | 2:4 | 0.70× | 38.5 | 0.55× | 42s |'
    assert '| Box mAP | Mask mAP |' in lines[i3 + 2]
    # every table row has as many cells as its header
    for line in lines:
        if line.startswith('| Faster'):
            assert line.count('|') == 8
        if line.startswith('| Mask'):
            assert line.count('|') == 9


def test_csv(tmp_path):
    path = write_csv(_table2() + _table3(), str(tmp_path / 'results.csv'))
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert rows[0]['label'] == 'Baseline' and rows[0]['method'] == 'dense'
    assert float(rows[2]['bbox_mAP']) == 0.3851 and rows[2]['segm_mAP'] == ''
    assert float(rows[2]['flops_ratio']) == 0.7
    assert rows[3]['status'] == 'failed' and rows[3]['bbox_mAP'] == ''
    assert float(rows[6]['segm_mAP']) == 0.351
    assert float(rows[1]['wall_time_s']) == 185


def test_plot(tmp_path):
    path = plot_results(_table2() + _table3(), str(tmp_path / 'results.png'), 'title')
    assert path and osp.getsize(path) > 1000
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # nothing to plot
    assert plot_results([RunResult('x')], str(tmp_path / 'none.png')) is None
    assert not osp.exists(tmp_path / 'none.png')


@pytest.mark.parametrize('seconds,text', [(None, '-'), (5.4, '5s'), (65, '1m 05s'),
                                          (3600, '1h 00m'), (7322, '2h 02m')])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
