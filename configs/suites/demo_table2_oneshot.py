# The paper's Table 2 on the bundled data, ONE-SHOT PRUNERS: magnitude, Wanda and SparseGPT
# (calibration from 8 training batches chosen by the seed: the same batches for every row of
# a seed) at 2:4 and 1:4, evaluated straight after pruning (`evaluate_only`: no fine-tune)
# and after the suite's 50-iteration fine-tune. The protocol, data, pre-training and dense
# row are the core file's (demo_table2.py), reused.
#
# DATA: the default bundled shapes, data/demo_coco (see demo_table2.py).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_table2_oneshot.py
#       # -> work_dirs/suite/demo_table2_oneshot
#
# BUDGET (an ESTIMATE, not a measurement; 2 cores, jobs one after the other): 6 one-shot
# rows x 3 seeds = 18 evaluations at ~2.5 min (start-up, calibration, evaluation) = ~45 min;
# 6 fine-tuned rows x 3 seeds = 18 fine-tunes at ~3.5 min = ~63 min; + ~10 min for the dense
# row and ~25 min for the pre-training when the core file has not run = at most ~2h25m.
title = ('Table 2 on the bundled data, one-shot pruners with and without '
         'fine-tune: Faster R-CNN R50-FPN, 3 paired seeds')
_base_ = './_base_/demo_finetune.py'
# demo_table2.py's pre-training (the dense demo detector, 400 iterations)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')
work_root = 'work_dirs/suite/demo_table2_oneshot'

_m = 'Faster R-CNN'
_demo = 'configs/demo/faster_rcnn_r50_fpn_{}_demo.py'
_oneshot = _demo.format('oneshot_sparsegpt_2of4')
_nm = {'2:4': {}, '1:4': {'model.backbone.conv_cfg.n': 1, 'model.backbone.conv_cfg.m': 4}}
_criteria = [('Magnitude', 'magnitude'), ('Wanda', 'wanda'), ('SparseGPT', 'sparsegpt')]
suite = [
    dict(label='Dense (continued)', config=_demo.format('dense'), method='dense',
         pattern='-', model=_m, paper=dict(bbox_mAP=37.4),
         work_dir='work_dirs/suite/demo_table2/dense_continued'),
]
suite += [
    dict(label=f'{name} {pattern} one-shot' + ('' if evaluate_only else ' + fine-tune'),
         config=_oneshot, method='oneshot', pattern=pattern, model=_m,
         evaluate_only=evaluate_only,
         cfg_options=dict({'model.backbone.conv_cfg.criterion': criterion}, **_nm[pattern]))
    for evaluate_only in (True, False) for pattern in ('2:4', '1:4')
    for name, criterion in _criteria
]
comparisons = [
    ('SparseGPT 2:4 one-shot', 'Magnitude 2:4 one-shot'),
    ('Wanda 2:4 one-shot', 'Magnitude 2:4 one-shot'),
    ('SparseGPT 2:4 one-shot', 'Wanda 2:4 one-shot'),
    ('SparseGPT 1:4 one-shot', 'Magnitude 1:4 one-shot'),
    ('SparseGPT 2:4 one-shot + fine-tune', 'Magnitude 2:4 one-shot + fine-tune'),
]
