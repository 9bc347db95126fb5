# The paper's Table 2 on the bundled data, OTHER PATTERNS: 1:4 and 2:8 for every training
# method (SR-STE, LBC, ASP, BAME), and the paper's Table 5 fairness control -- SR-STE trained
# on LBC's gradual schedule (ti, tf) -- at 1:4, beside SR-STE 1:4 and LBC 1:4. The protocol,
# data, pre-training and dense row are the core file's (demo_table2.py): its dense row's work
# dirs are reused (trained here only if the core file has not run).
#
# DATA: the default bundled shapes, data/demo_coco (see demo_table2.py).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_table2_patterns.py
#       # -> work_dirs/suite/demo_table2_patterns
#
# BUDGET (an ESTIMATE, not a measurement; 2 cores, jobs one after the other): 9 new rows x
# 3 seeds = 27 fine-tunes at ~3.5 min (SR-STE rows ~5 min; the per-run figures of
# demo_table2.py) -> 18 x 3.5 + 9 x 5 = ~110 min; + ~10 min for the dense row and + ~25 min
# for the pre-training when the core file has not run = at most ~2h25m in one sitting.
title = ('Table 2 on the bundled data, other patterns and the Table 5 '
         'control: Faster R-CNN R50-FPN, fine-tuned from one dense detector, 3 paired seeds')
_base_ = './_base_/demo_finetune.py'
# demo_table2.py's pre-training (the dense demo detector, 400 iterations)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')
work_root = 'work_dirs/suite/demo_table2_patterns'

_m = 'Faster R-CNN'
_demo = 'configs/demo/faster_rcnn_r50_fpn_{}_demo.py'
_mag = {'model.backbone.conv_cfg.score_init': 'magnitude'}
_bame = {'model.backbone.conv_cfg.interval': 5}
_1of4 = {'model.backbone.conv_cfg.n': 1, 'model.backbone.conv_cfg.m': 4}
_2of8 = {'model.backbone.conv_cfg.n': 2, 'model.backbone.conv_cfg.m': 8}
# SR-STE on LBC's cubic schedule from dense at ti to N:M at tf (the NMSparsityHook's ti=0,
# tf=None: half of the fine-tune, as LBC's rows): the SR-STE option `gradual=True`
_gradual = {'model.backbone.conv_cfg.gradual': True}
suite = [
    dict(label='Dense (continued)', config=_demo.format('dense'), method='dense',
         pattern='-', model=_m, paper=dict(bbox_mAP=37.4),
         work_dir='work_dirs/suite/demo_table2/dense_continued'),
    dict(label='SR-STE 1:4', config=_demo.format('srste_2of4'), method='srste',
         pattern='1:4', model=_m, cfg_options=_1of4),
    dict(label='LBC 1:4', config=_demo.format('lbc_2of4'), method='lbc', pattern='1:4',
         model=_m, cfg_options=dict(_1of4, **_mag)),
    dict(label='ASP 1:4', config=_demo.format('asp_2of4'), method='asp', pattern='1:4',
         model=_m, cfg_options=_1of4),
    dict(label='BAME 1:4', config=_demo.format('bame_2of4'), method='bame', pattern='1:4',
         model=_m, cfg_options=dict(_1of4, **_bame)),
    dict(label='SR-STE 1:4 (LBC gradual schedule)', config=_demo.format('srste_2of4'),
         method='srste', pattern='1:4', model=_m, cfg_options=dict(_1of4, **_gradual)),
    dict(label='SR-STE 2:8', config=_demo.format('srste_2of4'), method='srste',
         pattern='2:8', model=_m, cfg_options=_2of8, paper=dict(bbox_mAP=37.2)),
    dict(label='LBC 2:8', config=_demo.format('lbc_2of4'), method='lbc', pattern='2:8',
         model=_m, cfg_options=dict(_2of8, **_mag), paper=dict(bbox_mAP=37.3)),
    dict(label='ASP 2:8', config=_demo.format('asp_2of4'), method='asp', pattern='2:8',
         model=_m, cfg_options=_2of8),
    dict(label='BAME 2:8', config=_demo.format('bame_2of4'), method='bame', pattern='2:8',
         model=_m, cfg_options=dict(_2of8, **_bame)),
]
# paired differences beside the ones to the dense row (results.md, "Paired comparisons"):
# Table 5's question (does LBC's schedule alone explain LBC's gain over SR-STE?)
comparisons = [('SR-STE 1:4 (LBC gradual schedule)', 'SR-STE 1:4'),
               ('LBC 1:4', 'SR-STE 1:4 (LBC gradual schedule)'), ('LBC 1:4', 'SR-STE 1:4'),
               ('LBC 2:8', 'SR-STE 2:8'), ('LBC 1:4', 'LBC 2:8')]
