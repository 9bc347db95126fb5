# A smoke test of the benchmark machinery (tests/test_suite/test_smoke_suite.py runs it):
# the finetune protocol end to end in a few minutes -- a dense pre-training of a few
# iterations, then 2 entries x 2 seeds fine-tuned from it, tables over the seeds. The
# numbers mean nothing (4 iterations on 64 px images). DATA: data/demo_coco (the test
# points it at a tiny generated copy).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/smoke.py
title = 'Smoke suite: finetune protocol, 2 entries x 2 seeds, a few iterations'
note = 'A test of the machinery, not a benchmark: 4 iterations at 64 px.'
work_root = 'work_dirs/suite/smoke'
protocol = 'finetune'
seeds = [0, 1]

# small and fast: 64 px, batch 2, no workers, 4 iterations, one evaluation
_fast = {
    'train_dataloader.batch_size': 2,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0,
    'val_dataloader.persistent_workers': False,
    'test_dataloader.num_workers': 0,
    'test_dataloader.persistent_workers': False,
    'train_dataloader.dataset.pipeline.2.scale': (64, 64),
    'val_dataloader.dataset.pipeline.1.scale': (64, 64),
    'test_dataloader.dataset.pipeline.1.scale': (64, 64),
    'train_cfg.max_iters': 4,
    'train_cfg.val_interval': 4,
    'param_scheduler.0.end': 2,
    'param_scheduler.1.end': 4,
    'param_scheduler.1.milestones': [3],
    'default_hooks.checkpoint.interval': 4,
    'default_hooks.logger.interval': 1,
}
pretrain = dict(config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py', cfg_options=_fast)
cfg_options = dict(_fast)
baseline = 'Dense (continued)'
_model = 'Faster R-CNN'
suite = [
    dict(label='Dense (continued)', config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
         method='dense', pattern='-', model=_model),
    dict(label='LBC 2:4', config='configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py',
         method='lbc', pattern='2:4', model=_model, paper=dict(bbox_mAP=38.5)),
]
