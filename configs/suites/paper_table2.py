# The paper's Table 2: Faster R-CNN R50-FPN on COCO (1x schedule), backbone N:M sparse.
# Needs COCO in data/coco/ and GPUs, e.g. one node of 8:
#
#   python tools/run_suite.py configs/suites/paper_table2.py --launcher pytorch --gpus 8
#
# mmdet's 1x schedule assumes 16 images per step (8 GPUs x 2); with fewer GPUs add
# `--auto-scale-lr` to the configs or set the lr through cfg_options.
title = 'Table 2: Faster R-CNN R50-FPN, COCO val2017 (1x)'
# every run starts from its config's initialisation (mmdet's ImageNet backbone): the
# paper's protocol; one seed by default (add `seeds = [0, 1, 2]` for spread)
work_root = 'work_dirs/suite/paper_table2'

_model = 'Faster R-CNN'
suite = [
    dict(label='Baseline', config='configs/faster_rcnn_dense.py', method='dense',
         pattern='-', model=_model,
         paper=dict(bbox_mAP=37.4)),
    dict(label='SR-STE 2:4', config='configs/faster_rcnn_srste_2of4.py', method='srste',
         pattern='2:4', model=_model,
         paper=dict(bbox_mAP=38.2)),
    dict(label='LBC 2:4', config='configs/faster_rcnn_lbc_2of4.py', method='lbc',
         pattern='2:4', model=_model,
         paper=dict(bbox_mAP=38.5)),
    dict(label='SR-STE 2:8', config='configs/faster_rcnn_srste_2of8.py', method='srste',
         pattern='2:8', model=_model,
         paper=dict(bbox_mAP=37.2)),
    dict(label='LBC 2:8', config='configs/faster_rcnn_lbc_2of8.py', method='lbc',
         pattern='2:8', model=_model,
         paper=dict(bbox_mAP=37.3)),
    # newer methods (no paper figure: none was transcribed from their papers for these rows)
    dict(label='Bi-Mask 2:4', config='configs/faster_rcnn_bimask_2of4.py', method='bimask',
         pattern='2:4', model=_model),
    dict(label='Bi-Mask 2:8', config='configs/faster_rcnn_bimask_2of8.py', method='bimask',
         pattern='2:8', model=_model),
    dict(label='Bi-Mask 1:16', config='configs/faster_rcnn_bimask_1of16.py', method='bimask',
         pattern='1:16', model=_model),
    dict(label='MaxQ 2:4', config='configs/faster_rcnn_maxq_2of4.py', method='maxq',
         pattern='2:4', model=_model),
    dict(label='MaxQ 1:16', config='configs/faster_rcnn_maxq_1of16.py', method='maxq',
         pattern='1:16', model=_model),
]
