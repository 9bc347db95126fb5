# The paper's Table 2 on the bundled data: Faster R-CNN R50-FPN, the `finetune` protocol
# (the paper's setting -- a trained backbone -- and the deployment engineer's "make my
# trained dense detector N:M"): one dense detector is trained once (the dense demo config as
# it is, 400 iterations; reused when present), then every row fine-tunes from it for the
# same short schedule (50 iterations: short enough that the patterns separate), 3 seeds
# (the protocol and schedule: configs/suites/_base_/demo_finetune.py).
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
_base_ = './_base_/demo_finetune.py'
work_root = 'work_dirs/suite/demo_table2'

# the one-time dense pre-training: the dense demo config as it is (its floor in the README;
# shared with the ASP permutation suite)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')

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
