# The demo benchmark suite: Faster R-CNN R50-FPN on the bundled synthetic shapes, trained
# from scratch on CPU, dense and four 2:4 methods, laid out like the paper's Table 2.
# About 20 minutes in total on 2 otherwise idle CPU cores (each run ~3-4 min: 160
# iterations + evaluation).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo.py      # -> work_dirs/suite/demo/results.md
#
# These numbers say whether the pipeline works and how the methods' training FLOPs
# compare; mAP after 160 iterations on synthetic shapes says nothing about COCO.
title = 'Demo suite: Faster R-CNN R50-FPN, bundled synthetic shapes, 160 iterations, CPU'
note = ('Small bundled synthetic dataset (`tools/make_demo_data.py`), trained from scratch '
        'for 160 iterations at batch 4 on CPU: NOT COCO numbers.')
work_root = 'work_dirs/suite/demo'

_iters = 160
# the 400-iteration demo schedule shrunk to 160 iterations, for every run: the same
# 50-iteration warm-up, decays at 120 and 145, lr 0.01 (from scratch at batch 4, lr 0.02
# right after the warm-up spiked the losses of every method in a 120-iteration trial,
# gradient clipping notwithstanding). A checkpoint every 40 iterations lets
# `--resume` continue an interrupted run.
cfg_options = {
    'train_cfg.max_iters': _iters,
    'train_cfg.val_interval': _iters,
    'optim_wrapper.optimizer.lr': 0.01,
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
