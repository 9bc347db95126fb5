"""The demo configs: inheritance from mmdet, demo data, CPU-sized settings."""
import os.path as osp

import pytest
from mmengine.config import Config

from lbc_mmdet.engine import resolve_config_path

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FASTER = osp.join(REPO_ROOT, 'configs/demo/faster_rcnn_r50_fpn_dense_demo.py')
MASK = osp.join(REPO_ROOT, 'configs/demo/mask_rcnn_r50_fpn_dense_demo.py')
CLASSES = ('circle', 'square', 'triangle')


@pytest.fixture(scope='module', params=[FASTER, MASK], ids=['faster', 'mask'])
def cfg(request):
    return Config.fromfile(request.param)


def test_data_points_at_demo_coco(cfg):
    for dl, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                      ('test_dataloader', 'val')):
        ds = cfg[dl].dataset
        assert ds.data_root == 'data/demo_coco/'
        assert ds.ann_file == f'annotations/instances_{split}.json'
        assert ds.data_prefix.img == f'images/{split}/'
        assert tuple(ds.metainfo.classes) == CLASSES
        resize = [t for t in ds.pipeline if t.type == 'Resize'][0]
        assert tuple(resize.scale) == (128, 128) and resize.keep_ratio
        assert cfg[dl].num_workers <= 2
    assert cfg.train_dataloader.batch_size == 4
    assert any(t.type == 'RandomFlip' for t in cfg.train_dataloader.dataset.pipeline)
    for ev in ('val_evaluator', 'test_evaluator'):
        assert cfg[ev].type == 'CocoMetric'
        assert cfg[ev].ann_file == 'data/demo_coco/annotations/instances_val.json'
    # the dense demos need nothing of lbc_mmdet: no custom_imports, so that the sparse
    # demos can add the method's base (mmengine forbids keys shared by sibling bases)
    assert 'custom_imports' not in cfg


def test_model_is_small_from_scratch_r50_fpn(cfg):
    m = cfg.model
    assert m.backbone.type == 'ResNet' and m.backbone.depth == 50
    assert m.neck.type == 'FPN'
    assert m.backbone.init_cfg is None
    assert m.backbone.frozen_stages == -1 and m.backbone.norm_eval is False
    assert m.roi_head.bbox_head.num_classes == 3
    assert m.train_cfg.rpn_proposal.nms_pre == 200
    assert m.train_cfg.rpn_proposal.max_per_img == 100
    # RoI sampling sized for 128 px: 32 RoIs, up to half positive (16, as 64 x 0.25 allowed)
    assert (m.train_cfg.rcnn.sampler.num, m.train_cfg.rcnn.sampler.pos_fraction) == (32, 0.5)
    assert m.test_cfg.rpn.nms_pre == 200 and m.test_cfg.rpn.max_per_img == 100


def test_schedule_and_runtime(cfg):
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    iters = 600 if cfg.filename == MASK else 400  # Mask R-CNN's box head needs longer
    assert cfg.train_cfg.max_iters == iters and cfg.train_cfg.val_interval == iters
    opt = cfg.optim_wrapper.optimizer
    # from scratch at batch 4, SGD diverges at lr 0.02 and reaches only 0.2
    # bbox mAP at lr 0.01 in 400 iterations; AdamW reaches ~0.63
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 0.0002, 0.05)
    assert opt.fused is True  # torch's one-pass AdamW (docs/performance.md)
    assert 'momentum' not in opt
    assert cfg.optim_wrapper.clip_grad.max_norm == 35
    assert cfg.param_scheduler[0].type == 'LinearLR'
    assert all(s.by_epoch is False for s in cfg.param_scheduler)
    assert max(s.end for s in cfg.param_scheduler) == iters
    assert cfg.param_scheduler[1].milestones == {400: [300, 370], 600: [450, 555]}[iters]
    assert cfg.default_hooks.checkpoint.interval == 200
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.default_hooks.logger.interval == 20
    assert cfg.log_processor.by_epoch is False
    # iteration-based: an infinite sampler (no "end of the dataloader" restarts)
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'


def test_matches_stock_mmdet_config_elsewhere():
    """Everything not overridden is the stock 1x config's."""
    stock = Config.fromfile(resolve_config_path(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'))
    demo = Config.fromfile(FASTER)
    assert demo.model.rpn_head.to_dict() == stock.model.rpn_head.to_dict()
    assert demo.model.neck.to_dict() == stock.model.neck.to_dict()
    assert demo.model.data_preprocessor == stock.model.data_preprocessor
    assert demo.model.train_cfg.rpn == stock.model.train_cfg.rpn
    assert demo.default_scope == stock.default_scope == 'mmdet'
    assert demo.visualizer.type == stock.visualizer.type


def test_mask_config_specifics():
    cfg = Config.fromfile(MASK)
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.roi_head.mask_head.num_classes == 3
    assert cfg.model.train_cfg.rcnn.mask_size == 28
    for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        load = [t for t in cfg[dl].dataset.pipeline
                if t.type == 'LoadAnnotations'][0]
        assert load.with_mask is True
    assert list(cfg.val_evaluator.metric) == ['bbox', 'segm']
    assert list(cfg.test_evaluator.metric) == ['bbox', 'segm']
    assert 'mask_head' not in Config.fromfile(FASTER).model.roi_head


def test_mask_model_builds_and_runs_a_train_step(tiny_coco):
    """The Mask R-CNN demo config trains a step and predicts masks."""
    import torch
    from mmdet.registry import DATASETS, MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(MASK)
    init_default_scope('mmdet')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = tiny_coco['out_dir'] + '/'
    dataset = DATASETS.build(ds_cfg)
    assert dataset.metainfo['classes'] == CLASSES
    model = MODELS.build(cfg.model)
    batch = [dataset[i] for i in range(2)]
    data = dict(inputs=[b['inputs'] for b in batch],
                data_samples=[b['data_samples'] for b in batch])
    data = model.data_preprocessor(data, training=True)
    losses = model(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.conv1.weight.grad is not None
