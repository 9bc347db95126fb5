"""DataOrderHook: the first K training batches' image ids and flips, written once."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
from mmdet.structures import DetDataSample

from lbc_mmdet.engine.hooks import DataOrderHook
from lbc_mmdet.engine.hooks.data_order_hook import DATA_ORDER_FILE
from lbc_mmdet.suite.results import DATA_ORDER_FILE as RESULTS_NAME
from lbc_mmdet.suite.results import load_data_order


def _batch(ids, flips):
    return dict(inputs=[], data_samples=[DetDataSample(metainfo=dict(img_id=i, flip=f))
                                         for i, f in zip(ids, flips)])


def _train(hook, runner, batches):
    hook.before_train(runner)
    for idx, (ids, flips) in enumerate(batches):
        hook.after_train_iter(runner, idx, _batch(ids, flips))
        runner.iter += 1
    hook.after_train(runner)


def test_records_the_first_batches_once(tmp_path):
    assert DATA_ORDER_FILE == RESULTS_NAME
    runner = SimpleNamespace(iter=0, work_dir=str(tmp_path), rank=0)
    batches = [([3, 1], [True, False]), ([2, 7], [False, False]), ([9, 4], [True, True])]
    _train(DataOrderHook(num_batches=2), runner, batches)
    data = load_data_order(str(tmp_path))
    assert data == dict(num_batches=2, img_ids=[[3, 1], [2, 7]],
                        flips=[[True, False], [False, False]])
    # a resume past the recorded batches keeps the file
    runner.iter = 5
    _train(DataOrderHook(num_batches=2), runner, [([8, 8], [False, False])])
    assert load_data_order(str(tmp_path))['img_ids'] == [[3, 1], [2, 7]]
    # a training shorter than K writes what it saw when it ends
    short = tmp_path / 'short'
    runner = SimpleNamespace(iter=0, work_dir=str(short), rank=0)
    _train(DataOrderHook(num_batches=5), runner, batches[:1])
    with open(osp.join(str(short), DATA_ORDER_FILE)) as f:
        assert json.load(f)['img_ids'] == [[3, 1]]
    with pytest.raises(ValueError):
        DataOrderHook(num_batches=0)
