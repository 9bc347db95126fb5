# The paper's Table 2 on the bundled data, ASP AND BAME: 2:4 and 1:16 for the one-shot
# magnitude recipe (ASP) and BAME, beside the core file's dense row. The protocol, data,
# pre-training and dense row are the core file's (demo_table2.py): its dense row's work dirs
# are reused (trained here only if the core file has not run).
#
# DATA: the default bundled shapes, data/demo_coco (see demo_table2.py).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_table2_asp_bame.py
#       # -> work_dirs/suite/demo_table2_asp_bame
#
# BUDGET (an ESTIMATE, not a measurement; 2 cores, jobs one after the other): 4 rows x 3
# seeds = 12 fine-tunes at ~3.5 min (the per-run figures of demo_table2.py) = ~45 min; + ~10
# min for the dense row and ~25 min for the pre-training when the core file has not run.
title = ('Table 2 on the bundled data, ASP and BAME: Faster R-CNN R50-FPN, '
         'fine-tuned from one dense detector, 3 paired seeds')
_base_ = './_base_/demo_finetune.py'
# demo_table2.py's pre-training (the dense demo detector, 400 iterations)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')
work_root = 'work_dirs/suite/demo_table2_asp_bame'

_m = 'Faster R-CNN'
_demo = 'configs/demo/faster_rcnn_r50_fpn_{}_demo.py'
_bame = {'model.backbone.conv_cfg.interval': 5}
_1of16 = {'model.backbone.conv_cfg.n': 1, 'model.backbone.conv_cfg.m': 16}
suite = [
    dict(label='Dense (continued)', config=_demo.format('dense'), method='dense',
         pattern='-', model=_m, paper=dict(bbox_mAP=37.4),
         work_dir='work_dirs/suite/demo_table2/dense_continued'),
    dict(label='ASP 2:4', config=_demo.format('asp_2of4'), method='asp', pattern='2:4',
         model=_m),
    dict(label='BAME 2:4', config=_demo.format('bame_2of4'), method='bame', pattern='2:4',
         model=_m, cfg_options=_bame),
    dict(label='ASP 1:16', config=_demo.format('asp_2of4'), method='asp', pattern='1:16',
         model=_m, cfg_options=_1of16),
    dict(label='BAME 1:16', config=_demo.format('bame_2of4'), method='bame', pattern='1:16',
         model=_m, cfg_options=dict(_1of16, **_bame)),
]
comparisons = [('ASP 2:4', 'ASP 1:16'), ('BAME 2:4', 'BAME 1:16'), ('BAME 2:4', 'ASP 2:4')]
