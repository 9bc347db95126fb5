# The paper's Table 2 on the bundled data: Faster R-CNN R50-FPN, the `finetune` protocol
# (the paper's setting -- a trained backbone -- and the deployment engineer's "make my
# trained dense detector N:M"): one dense detector is trained once (the dense demo config as
# it is, 400 iterations; reused when present), then every row fine-tunes from it for the
# same short schedule (50 iterations: short enough that the patterns separate), 3 seeds.
# The rows of the paper, plus ASP and BAME at 2:4; `_extra_rows` holds LBC at 1:16 (the
# hardest pattern) and LBC with the paper's uniform score start (add them to `suite`).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_table2.py   # -> work_dirs/suite/demo_table2
#
# NOT COCO: 300 synthetic training images (128 px), 200 validation images; the paper's COCO
# figures are shown beside for orientation only.
title = ('Table 2 on the bundled data: Faster R-CNN R50-FPN, fine-tuned from one dense '
         'detector, 3 seeds')
note = ('Bundled synthetic shapes (`tools/make_demo_data.py`: 300 training, 200 validation '
        'images, 128 px), CPU. Protocol `finetune`: a dense detector trained once (the dense '
        'demo config: 400 iterations, AdamW, batch 4), then every row fine-tuned from it '
        'for 50 iterations (AdamW lr 1e-4, 5-iteration warm-up, decay x0.1 at 40); the '
        'dense row continues the same schedule without sparsity. ASP prunes once at the '
        'start of the fine-tune (its one-shot recipe); LBC starts from scores proportional '
        'to the candidates\' magnitude (`score_init=\'magnitude\'`) and removes candidates '
        'until half of it; BAME adapts every 5 iterations until half of it. NOT COCO '
        'numbers.')
work_root = 'work_dirs/suite/demo_table2'
protocol = 'finetune'
seeds = [0, 1, 2]
baseline = 'Dense (continued)'

# the one-time dense pre-training: the dense demo config as it is (its floor in the README;
# shared with the ASP permutation suite)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')

# the fine-tune schedule, the same for every row
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
_demo = 'configs/demo/faster_rcnn_r50_fpn_{}_demo.py'
_mag = {'model.backbone.conv_cfg.score_init': 'magnitude'}
_2of8 = {'model.backbone.conv_cfg.n': 2, 'model.backbone.conv_cfg.m': 8}
_1of16 = {'model.backbone.conv_cfg.n': 1, 'model.backbone.conv_cfg.m': 16}
suite = [
    dict(label='Dense (continued)', config=_demo.format('dense'), method='dense',
         pattern='-', model=_m, paper=dict(bbox_mAP=37.4)),
    dict(label='SR-STE 2:4', config=_demo.format('srste_2of4'), method='srste',
         pattern='2:4', model=_m, paper=dict(bbox_mAP=38.2)),
    dict(label='LBC 2:4', config=_demo.format('lbc_2of4'), method='lbc', pattern='2:4',
         model=_m, cfg_options=_mag, paper=dict(bbox_mAP=38.5)),
    dict(label='SR-STE 2:8', config=_demo.format('srste_2of4'), method='srste',
         pattern='2:8', model=_m, cfg_options=_2of8, paper=dict(bbox_mAP=37.2)),
    dict(label='LBC 2:8', config=_demo.format('lbc_2of4'), method='lbc', pattern='2:8',
         model=_m, cfg_options=dict(_2of8, **_mag), paper=dict(bbox_mAP=37.3)),
    dict(label='ASP 2:4', config=_demo.format('asp_2of4'), method='asp', pattern='2:4',
         model=_m),
    dict(label='BAME 2:4', config=_demo.format('bame_2of4'), method='bame', pattern='2:4',
         model=_m, cfg_options={'model.backbone.conv_cfg.interval': 5}),
]
_extra_rows = [
    dict(label='LBC 1:16', config=_demo.format('lbc_2of4'), method='lbc', pattern='1:16',
         model=_m, cfg_options=dict(_1of16, **_mag)),
    dict(label='LBC 2:4 (uniform init)', config=_demo.format('lbc_2of4'), method='lbc',
         pattern='2:4', model=_m),
]
