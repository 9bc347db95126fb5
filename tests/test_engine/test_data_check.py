"""check_dataset_paths: readable errors for missing dataset files."""
import os.path as osp

import pytest
from mmengine.config import Config

from lbc_mmdet.engine import (
    DatasetNotFoundError,
    check_dataset_paths,
    resolve_config_path,
)
from lbc_mmdet.engine.data_check import find_missing_dataset_paths

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo',
                'faster_rcnn_r50_fpn_dense_demo.py')


def _point_at(cfg, root):
    root = root.rstrip('/') + '/'
    for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[dl].dataset.data_root = root
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = root + 'annotations/instances_val.json'
    return cfg


def test_existing_dataset_passes(tiny_coco):
    cfg = _point_at(Config.fromfile(DEMO), tiny_coco['out_dir'])
    for phase in ('train', 'val', 'test'):
        check_dataset_paths(cfg, phase)
        assert find_missing_dataset_paths(cfg, phase) == []


def test_missing_dataset_names_paths_and_fix(tmp_path):
    root = str(tmp_path / 'absent')
    cfg = _point_at(Config.fromfile(DEMO), root)
    with pytest.raises(DatasetNotFoundError) as info:
        check_dataset_paths(cfg, 'train')
    msg = str(info.value)
    assert osp.join(root, 'annotations/instances_train.json') in msg
    assert osp.join(root, 'annotations/instances_val.json') in msg
    assert 'train_dataloader.dataset.ann_file' in msg
    assert 'tools/make_demo_data.py' in msg and DEMO in msg
    assert isinstance(info.value, FileNotFoundError)
    # test phase: only the test data; a path is reported once
    missing = find_missing_dataset_paths(cfg, 'test')
    assert missing == [('test_dataloader.dataset.ann_file',
                        osp.join(root, 'annotations/instances_val.json'))]
    cfg.test_evaluator.ann_file = '/elsewhere/val.json'
    assert find_missing_dataset_paths(cfg, 'test')[1] == (
        'test_evaluator.ann_file', '/elsewhere/val.json')


def test_missing_image_folder_is_reported(tiny_coco):
    cfg = _point_at(Config.fromfile(DEMO), tiny_coco['out_dir'])
    cfg.train_dataloader.dataset.data_prefix.img = 'images/nope/'
    missing = find_missing_dataset_paths(cfg, 'train')
    assert missing == [('train_dataloader.dataset.data_prefix.img',
                        osp.join(tiny_coco['out_dir'], 'images/nope/'))]


def test_wrappers_lists_and_remote_paths(tiny_coco, tmp_path):
    ok = dict(type='CocoDataset', data_root=tiny_coco['out_dir'],
              ann_file='annotations/instances_train.json')
    bad = dict(type='CocoDataset', data_root=str(tmp_path),
               ann_file='annotations/x.json')
    remote = dict(type='CocoDataset', data_root='s3://bucket/coco/',
                  ann_file='annotations/x.json')
    cfg = dict(
        train_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2,
            dataset=dict(type='ConcatDataset', datasets=[ok, bad, remote]))),
        train_cfg=dict(), val_cfg=None,
        val_evaluator=[dict(type='CocoMetric', ann_file='/no/such.json')])
    missing = find_missing_dataset_paths(cfg, 'train')
    assert missing == [(
        'train_dataloader.dataset.dataset.datasets[1].ann_file',
        osp.join(str(tmp_path), 'annotations/x.json'))]
    cfg['val_cfg'] = dict()
    assert ('val_evaluator[0].ann_file', '/no/such.json') in \
        find_missing_dataset_paths(cfg, 'train')
    with pytest.raises(ValueError):
        find_missing_dataset_paths(cfg, 'predict')


def test_resolve_config_path():
    stock = resolve_config_path(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    assert osp.isfile(stock) and stock.endswith(
        'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    assert resolve_config_path(DEMO) == DEMO
    with pytest.raises(FileNotFoundError):
        resolve_config_path('configs/none.py')
    with pytest.raises(FileNotFoundError):
        resolve_config_path('mmdet::none/none.py')
