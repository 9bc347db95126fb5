# The `scratch` protocol on the bundled data: Faster R-CNN R50-FPN, dense and four 2:4
# methods, every run from random initialisation for 160 iterations, 3 seeds. From scratch
# and this short, it measures how fast each method starts more than what sparsity costs;
# the headline benchmark is the `finetune` suite, configs/suites/demo_table2.py.
#
# DATA: the default bundled shapes, data/demo_coco (the README demo's).
# BUDGET (an ESTIMATE, not a measurement; 2 cores, one job at a time): 5 rows x 3 seeds =
# 15 trainings of 160 iterations at ~2.2 s + evaluation and start-up: ~7.5 min each, ~1h55m.
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo.py      # -> work_dirs/suite/demo/results.md
title = ('Scratch suite: Faster R-CNN R50-FPN from random initialisation, 160 iterations, '
         '3 seeds, bundled synthetic shapes, CPU')
note = ('Small bundled synthetic dataset (`tools/make_demo_data.py`), trained from scratch '
        'for 160 iterations at batch 4 on CPU: NOT COCO numbers.')
work_root = 'work_dirs/suite/demo'
protocol = 'scratch'
seeds = [0, 1, 2]

_iters = 160
# the 400-iteration demo schedule shrunk to 160 iterations, for every run: the same
# 50-iteration warm-up, decays at 120 and 145. A checkpoint every 40 iterations lets
# `--resume` continue an interrupted run.
cfg_options = {
    'train_cfg.max_iters': _iters,
    'train_cfg.val_interval': _iters,
    'param_scheduler.1.end': _iters,
    'param_scheduler.1.milestones': [120, 145],
    'default_hooks.checkpoint.interval': 40,
    'default_hooks.logger.interval': 10,
    'log_processor.window_size': 10,
}
_model = 'Faster R-CNN'
suite = [
    dict(label='Baseline', config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
         method='dense', pattern='-', model=_model),
    dict(label='LBC 2:4', config='configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py',
         method='lbc', pattern='2:4', model=_model),
    dict(label='SR-STE 2:4', config='configs/demo/faster_rcnn_r50_fpn_srste_2of4_demo.py',
         method='srste', pattern='2:4', model=_model),
    # ASP's recipe: dense through the warm-up (50 iterations), prune once (magnitude
    # 2:4), fine-tune 110 (`custom_hooks.0` is the NMSparsityHook; ASP only uses ti,
    # tf must exceed it)
    dict(label='ASP 2:4', config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_demo.py',
         method='asp', pattern='2:4', model=_model,
         cfg_options={'custom_hooks.0.ti': 50, 'custom_hooks.0.tf': 100}),
    # BAME adapts its masks every 10 iterations inside [0, 80) (tf: half of training)
    dict(label='BAME 2:4', config='configs/demo/faster_rcnn_r50_fpn_bame_2of4_demo.py',
         method='bame', pattern='2:4', model=_model,
         cfg_options={'model.backbone.conv_cfg.interval': 10}),
]
