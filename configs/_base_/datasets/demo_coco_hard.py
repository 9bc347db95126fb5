# The harder variant of the bundled synthetic shapes (``python tools/make_demo_data.py
# --variant hard`` -> data/demo_coco_hard/): 7 classes of similar shapes, clutter, partial
# occlusion, a wider spread of scales (lbc_mmdet/datasets/demo_coco_hard.py). Detection
# flavour; the same pipelines and loaders as demo_coco.py, other data. A model config using
# it needs `num_classes = 7` (configs/suites/_base_/demo_finetune_hard.py switches the demo
# configs through cfg_options).
_base_ = './demo_coco.py'

data_root = 'data/demo_coco_hard/'
metainfo = dict(
    classes=('circle', 'ellipse', 'pentagon', 'hexagon', 'square', 'rectangle', 'triangle'),
    palette=[(220, 20, 60), (255, 128, 0), (200, 180, 0), (60, 180, 75), (0, 130, 200),
             (145, 30, 180), (70, 240, 240)])
num_classes = 7

train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
