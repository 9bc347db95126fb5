# The demo benchmark suite: Faster R-CNN R50-FPN on the bundled synthetic shapes, trained
# from scratch on CPU, dense and four 2:4 methods, laid out like the paper's Table 2.
# About 20 minutes in total on 2 CPU cores (each run ~3-4 min: 120 iterations + eval).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo.py      # -> work_dirs/suite/demo/results.md
#
# These numbers say whether the pipeline works and how the methods' training FLOPs
# compare; mAP after 120 iterations on synthetic shapes says nothing about COCO.
title = 'Demo suite: Faster R-CNN R50-FPN, bundled synthetic shapes, 120 iterations, CPU'
note = ('Small bundled synthetic dataset (`tools/make_demo_data.py`), trained from scratch '
        'for 120 iterations at batch 4 on CPU: NOT COCO numbers.')
work_root = 'work_dirs/suite/demo'

_iters = 120
# the 400-iteration demo schedule shrunk to 120 iterations, for every run: the same
# 50-iteration warm-up, decays at 90 and 110, and half the learning rate (from scratch,
# lr 0.02 right after the warm-up spiked the losses of every method in a 120-iteration
# trial, gradient clipping notwithstanding)
cfg_options = {
    'train_cfg.max_iters': _iters,
    'train_cfg.val_interval': _iters,
    'optim_wrapper.optimizer.lr': 0.01,
    'param_scheduler.1.end': _iters,
    'param_scheduler.1.milestones': [90, 110],
    'default_hooks.checkpoint.interval': _iters,
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
    # ASP's recipe: dense for 40 iterations, prune once (magnitude 2:4), fine-tune 80
    # (`custom_hooks.0` is the NMSparsityHook; ASP only uses ti, tf must exceed it)
    dict(label='ASP 2:4', config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_demo.py',
         method='asp', pattern='2:4', model=_model,
         cfg_options={'custom_hooks.0.ti': 40, 'custom_hooks.0.tf': 80}),
    # BAME adapts its masks every 10 iterations inside [0, 60) (tf: half of training)
    dict(label='BAME 2:4', config='configs/demo/faster_rcnn_r50_fpn_bame_2of4_demo.py',
         method='bame', pattern='2:4', model=_model,
         cfg_options={'model.backbone.conv_cfg.interval': 10}),
]
