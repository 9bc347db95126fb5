"""tools/profile_training.py: the split of a short LBC run adds up to its wall time and
names every part the issue asks for."""
import json
import os.path as osp

import pytest
from _common import data_cfg_options

from lbc_mmdet.cli.profile_training import cli

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LBC_DEMO = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_lbc_2of4_demo.py')


@pytest.fixture(scope='module')
def profile(tiny_coco, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('profile'))
    opts = data_cfg_options(tiny_coco['out_dir']) + [
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=3',
        'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
        'param_scheduler.0.end=2', 'param_scheduler.1.milestones=[2]',
        'model.test_cfg.rcnn.score_thr=0.0']
    assert cli([LBC_DEMO, '--work-dir', work_dir, '--weight-side-reps', '1',
                '--cfg-options'] + opts) == 0
    with open(osp.join(work_dir, 'profile.json')) as f:
        return json.load(f)


def test_split_covers_the_run(profile):
    rows = {r['name']: r for r in profile['rows']}
    for part in ('data', 'forward', 'weight_side_forward', 'backward', 'optimizer',
                 'evaluation', 'hook:NMSparsityHook', 'hook:CheckpointHook'):
        assert part in rows, part
    assert profile['iterations'] == 3
    # every part was measured in the run and they add up to the loop's wall time
    total = sum(r['seconds'] for r in profile['rows'])
    assert total == pytest.approx(profile['train_wall_s'], rel=0.02)
    assert rows['forward']['seconds'] > 0 and rows['backward']['seconds'] > 0
    assert rows['weight_side_forward']['seconds'] > 0  # 52 LBC layers were timed
    assert rows['evaluation']['seconds'] > 0
    assert abs(sum(r['share'] for r in profile['rows']) - 1.0) < 0.02
    assert profile['weight_side_alone_ms']['weights'] > 0
    assert profile['load_average_start'] >= 0


def test_bad_config_is_one_error_line(tmp_path, capsys):
    missing = str(tmp_path / 'nope.py')
    assert cli([missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'error: config file not found: {missing}']
