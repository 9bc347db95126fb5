# ASP 2:4 fine-tuned from the dense demo detector with and without a channel permutation
# before the one-shot prune (docs/deployment.md "Channel permutation"), 3 seeds, the
# protocol and pre-training of configs/suites/demo_table2.py. The rows without
# permutation are the Table 2 suite's own (same work dirs: reused when that suite ran).
#
#   python tools/run_suite.py configs/suites/demo_asp_permutation.py
title = 'ASP 2:4 with and without channel permutation, fine-tuned from one dense detector'
note = ('Bundled synthetic shapes, CPU; the finetune protocol of the Table 2 suite (50 '
        'iterations from the 400-iteration dense demo detector). The permutation search is '
        'limited to 3 s per layer. NOT COCO numbers.')
work_root = 'work_dirs/suite/demo_asp_permutation'
protocol = 'finetune'
seeds = [0, 1, 2]
baseline = 'ASP 2:4'
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')
_iters = 50
cfg_options = {
    'train_cfg.max_iters': _iters,
    'train_cfg.val_interval': _iters,
    'param_scheduler.0.end': 5,
    'param_scheduler.0.start_factor': 0.1,
    'param_scheduler.1.end': _iters,
    'param_scheduler.1.milestones': [40],
    'optim_wrapper.optimizer.lr': 0.0001,
    'default_hooks.checkpoint.interval': _iters,
    'default_hooks.logger.interval': 10,
    'log_processor.window_size': 10,
}
_m = 'Faster R-CNN'
suite = [
    dict(label='ASP 2:4', config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_demo.py',
         method='asp', pattern='2:4', model=_m,
         work_dir='work_dirs/suite/demo_table2/asp_2of4'),
    dict(label='ASP 2:4 + permutation',
         config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_permute_demo.py', method='asp',
         pattern='2:4', model=_m, cfg_options={'custom_hooks.4.time_limit': 3.0}),
]
