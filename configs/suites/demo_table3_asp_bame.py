# The paper's Table 3 on the bundled data, ASP AND BAME at 2:4: Mask R-CNN R50-FPN (box and
# mask mAP), the protocol, pre-training and dense row of demo_table3.py (reused: trained
# here only if demo_table3.py has not run).
#
# DATA: the default bundled shapes, data/demo_coco (see demo_table3.py).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_table3_asp_bame.py
#       # -> work_dirs/suite/demo_table3_asp_bame
#
# BUDGET (an ESTIMATE, not a measurement; 2 cores, one job at a time): 2 rows x 3 seeds = 6
# fine-tunes at ~7 min alone (demo_table3.py) = ~45 min; + ~20 min for the dense row and the
# pre-training (measured 49 min) when demo_table3.py has not run.
title = ('Table 3 on the bundled data, ASP and BAME: Mask R-CNN R50-FPN, fine-tuned from one '
         'dense detector, 3 seeds')
_base_ = './_base_/demo_finetune.py'
work_root = 'work_dirs/suite/demo_table3_asp_bame'

pretrain = dict(
    config='configs/demo/mask_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/mask_rcnn_r50_fpn_dense_600it')

_m = 'Mask R-CNN'
_demo = 'configs/demo/mask_rcnn_r50_fpn_{}_demo.py'
suite = [
    dict(label='Dense (continued)', config=_demo.format('dense'), method='dense',
         pattern='-', model=_m, paper=dict(bbox_mAP=38.2, segm_mAP=34.7),
         work_dir='work_dirs/suite/demo_table3/dense_continued'),
    dict(label='ASP 2:4', config=_demo.format('asp_2of4'), method='asp', pattern='2:4',
         model=_m),
    dict(label='BAME 2:4', config=_demo.format('bame_2of4'), method='bame', pattern='2:4',
         model=_m, cfg_options={'model.backbone.conv_cfg.interval': 5}),
]
comparisons = [('BAME 2:4', 'ASP 2:4')]
