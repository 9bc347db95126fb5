# The harder synthetic shapes (demo_coco_hard.py), instance-segmentation flavour (boxes and
# polygon masks; the masks are amodal: occluded parts included).
_base_ = './demo_coco_instance.py'

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
