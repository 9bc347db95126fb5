"""Results collection from synthetic work dirs (what one training wrote)."""
import json
import os
import os.path as osp

from lbc_mmdet.suite.results import (
    RunResult,
    collect_metrics,
    collect_run,
    load_train_flops,
    read_result,
    training_finished,
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
