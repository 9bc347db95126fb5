# ASP 2:4 fine-tuned from the dense demo detector with and without a channel permutation
# before the one-shot prune (docs/deployment.md "Channel permutation"), 3 paired seeds, the
# fine-tune protocol of configs/suites/_base_/demo_finetune.py.
#
# DATA: the default bundled shapes, data/demo_coco (the 400-iteration dense demo detector).
#
#   python tools/make_demo_data.py
#   python tools/run_suite.py configs/suites/demo_asp_permutation.py
#
# BUDGET (an ESTIMATE, not a measurement; 2 cores, one job at a time): 2 rows x 3 seeds = 6
# fine-tunes at ~3.5 min, the permutation rows + up to 3 s of search per layer (~3 min):
# ~40 min; + ~25 min for the 400-iteration pre-training when it is not there yet (measured
# 27 min beside another training) = ~1h05m.
title = 'ASP 2:4 with and without channel permutation, fine-tuned from one dense detector'
note = ('Bundled synthetic shapes, CPU; the finetune protocol of the Table 2 suite (50 '
        'iterations from the 400-iteration dense demo detector). The permutation search is '
        'limited to 3 s per layer. NOT COCO numbers.')
_base_ = './_base_/demo_finetune.py'
work_root = 'work_dirs/suite/demo_asp_permutation'
baseline = 'ASP 2:4'
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_400it')
_m = 'Faster R-CNN'
suite = [
    dict(label='ASP 2:4', config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_demo.py',
         method='asp', pattern='2:4', model=_m),
    dict(label='ASP 2:4 + permutation',
         config='configs/demo/faster_rcnn_r50_fpn_asp_2of4_permute_demo.py', method='asp',
         pattern='2:4', model=_m, cfg_options={'custom_hooks.4.time_limit': 3.0}),
]
