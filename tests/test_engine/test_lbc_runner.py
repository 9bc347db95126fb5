"""LBC end to end in a real MMEngine Runner on a tiny bundled-style dataset:
exact N:M at the end, alive counts never increase, COCO mAP computed, exact resume."""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.datasets.demo_coco import make_demo_coco

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAX_ITERS, TF = 7, 6


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_coco'))
    make_demo_coco(root, num_train=8, num_val=4, img_size=96, seed=0)
    return root


def lbc_cfg(data_root: str, work_dir: str) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, 'configs/faster_rcnn_lbc_2of4.py'))
    demo = Config.fromfile(osp.join(ROOT, 'configs/demo/faster_rcnn_r50_fpn_dense_demo.py'))
    # the COCO LBC config's sparsity on the demo model/data/schedule
    demo.model.backbone.conv_cfg = cfg.model.backbone.conv_cfg
    demo.custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=TF), dict(type='RNGStateHook'),
                         dict(type='SafeCheckpointHook')]
    demo.work_dir = work_dir
    demo.train_cfg.max_iters = MAX_ITERS
    demo.train_cfg.val_interval = MAX_ITERS
    demo.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    demo.default_hooks.logger.interval = 1
    demo.default_hooks.checkpoint.interval = 2
    demo.default_hooks.checkpoint.max_keep_ckpts = -1
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = demo[split]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.dataset.data_root = data_root + '/'
    demo.train_dataloader.dataset.pipeline = [
        t for t in demo.train_dataloader.dataset.pipeline if t['type'] != 'RandomFlip']
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for t in demo[split].dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (64, 64)  # small and fast
    for split in ('val_evaluator', 'test_evaluator'):
        demo[split].ann_file = osp.join(data_root, 'annotations/instances_val.json')
    return demo


class AliveRecorder(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.history = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.history.append({
            name: layer.alive.sum(1).clone()
            for name, layer in lbc_mmdet.sparse_layers(runner.model) if layer.nm_eligible
        })
        for loss in outputs.values():
            assert torch.isfinite(loss).all()


def run(cfg, resume_from=None):
    cfg = copy.deepcopy(cfg)
    if resume_from:
        cfg.load_from = resume_from
        cfg.resume = True
    runner = Runner.from_cfg(cfg)
    recorder = AliveRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


@pytest.fixture(scope='module')
def full_run(tiny_data, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('lbc_full'))
    runner, recorder = run(lbc_cfg(tiny_data, work_dir))
    return runner, recorder, work_dir


def test_runner_ends_exactly_nm_and_alive_never_increases(full_run):
    runner, recorder, work_dir = full_run
    layers = [(n, lay) for n, lay in lbc_mmdet.sparse_layers(runner.model) if lay.nm_eligible]
    assert len(layers) == 52  # every ResNet-50 conv but the stem
    assert not runner.model.backbone.conv1.nm_eligible
    for name, layer in layers:
        w = layer.masked_weight()
        groups = w.permute(0, 2, 3, 1).reshape(-1, 4)
        assert ((groups != 0).sum(1) == 2).all(), name
        assert (layer.alive.sum(1) == 1).all(), name
    assert len(recorder.history) == MAX_ITERS
    for before, after in zip(recorder.history, recorder.history[1:]):
        for name in before:
            assert (after[name] <= before[name]).all(), name
    # the schedule: at iteration t after ti=0, ceil(5 * (1 - (1 - t/4)^3)) removed
    expected = [min(5, math.ceil(5 * (1 - (1 - t / TF)**3) - 1e-9)) for t in
                range(1, MAX_ITERS + 1)]
    name0 = next(iter(recorder.history[0]))
    assert [int(6 - h[name0][0]) for h in recorder.history] == expected

    logs = ''.join(open(f).read() for f in glob.glob(osp.join(work_dir, '*', '*.log')))
    assert 'coco/bbox_mAP:' in logs
    assert 'left dense: backbone.conv1' in logs
    assert f'tf={TF} (iterations' in logs
    assert 'nm_sparsity:' in logs and 'nm_alive_mean:' in logs


def test_resume_mid_schedule_reproduces_alive_and_masks(full_run, tiny_data, tmp_path):
    runner, _, work_dir = full_run
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # the checkpoint is mid-schedule: candidates still alive
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    alive2 = state['backbone.layer2.0.conv2.alive']
    assert 1 < int(alive2[0].sum()) < 6
    resumed, recorder = run(lbc_cfg(tiny_data, str(tmp_path)), resume_from=ckpt)
    assert len(recorder.history) == MAX_ITERS - 2
    full = dict(lbc_mmdet.sparse_layers(runner.model))
    for name, layer in lbc_mmdet.sparse_layers(resumed.model):
        if not layer.nm_eligible:
            continue
        assert torch.equal(layer.alive, full[name].alive), name
        assert torch.equal(layer.nm_mask(), full[name].nm_mask()), name
