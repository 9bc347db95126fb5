# One-shot SparseGPT 2:4 Faster R-CNN R50-FPN on the bundled synthetic shapes (CPU demo),
# fine-tuned from the trained dense demo detector: at the start of training CalibrationHook
# prunes every ResNet conv (stem dense) with SparseGPT from 8 calibration batches of the
# training set (chosen by the seed), then the 2:4 model fine-tunes for 50 iterations
# (the schedule of configs/suites/_base_/demo_finetune.py) with the masks fixed.
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py \
#       --work-dir work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_oneshot_sparsegpt_2of4_demo.py
#
# Evaluate the one-shot model with no fine-tune at all (the hook prunes before the test):
#   python tools/test.py configs/demo/faster_rcnn_r50_fpn_oneshot_sparsegpt_2of4_demo.py \
#       work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it/iter_400.pth
# Wanda or magnitude instead: --cfg-options model.backbone.conv_cfg.criterion=wanda
_base_ = ['./faster_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/oneshot.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
load_from = 'work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it/iter_400.pth'

_iters = 50
train_cfg = dict(max_iters=_iters, val_interval=_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=_iters, milestones=[40],
         gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.0001))
default_hooks = dict(checkpoint=dict(interval=_iters), logger=dict(interval=10))
