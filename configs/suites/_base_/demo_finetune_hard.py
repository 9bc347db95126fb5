# The `finetune` protocol of demo_finetune.py on the HARD variant of the bundled data
# (`python tools/make_demo_data.py --variant hard` -> data/demo_coco_hard: 7 classes of
# similar shapes, clutter, partial occlusion, a wider spread of scales; 300 training and 200
# validation images, 128 px). The demo configs are switched to it through cfg_options (the
# same settings as configs/_base_/datasets/demo_coco_hard.py, and 7 classes), for the
# pre-training and every row. Used by demo_table2.py and demo_table2_patterns.py: on the
# default shapes a dense detector is close to its ceiling after 400 iterations and the
# patterns' differences are compressed.
_base_ = './demo_finetune.py'

note = ('Bundled synthetic shapes, HARD variant (`tools/make_demo_data.py --variant hard`: '
        '7 classes of similar shapes, clutter, partial occlusion, scales 4-30 % of the image; '
        '300 training, 200 validation images, 128 px), CPU. Protocol `finetune`: a dense '
        'detector trained once on it (the dense demo config with 600 iterations, AdamW, '
        'batch 4), then every row fine-tuned from it for 50 iterations (AdamW lr 1e-4, '
        '5-iteration warm-up, decay x0.1 at 40); the dense row continues the same schedule '
        'without sparsity. ASP prunes once at the start of the fine-tune (its one-shot '
        'recipe); LBC starts from scores proportional to the candidates\' magnitude '
        '(`score_init=\'magnitude\'`) and removes candidates until half of it; BAME adapts '
        'every 5 iterations until half of it. Rows at one seed see the same batches (the '
        'pairing check below). NOT COCO numbers.')

_root = 'data/demo_coco_hard/'
_classes = ('circle', 'ellipse', 'pentagon', 'hexagon', 'square', 'rectangle', 'triangle')
_palette = [(220, 20, 60), (255, 128, 0), (200, 180, 0), (60, 180, 75), (0, 130, 200),
            (145, 30, 180), (70, 240, 240)]
_hard_data = {
    'train_dataloader.dataset.data_root': _root,
    'train_dataloader.dataset.metainfo.classes': _classes,
    'train_dataloader.dataset.metainfo.palette': _palette,
    'val_dataloader.dataset.data_root': _root,
    'val_dataloader.dataset.metainfo.classes': _classes,
    'val_dataloader.dataset.metainfo.palette': _palette,
    'test_dataloader.dataset.data_root': _root,
    'test_dataloader.dataset.metainfo.classes': _classes,
    'test_dataloader.dataset.metainfo.palette': _palette,
    'val_evaluator.ann_file': _root + 'annotations/instances_val.json',
    'test_evaluator.ann_file': _root + 'annotations/instances_val.json',
    'model.roi_head.bbox_head.num_classes': len(_classes),
}
# every row: the fine-tune schedule (demo_finetune.py) and the hard data
cfg_options = dict(_hard_data)

# the one-time dense pre-training on the hard data: the dense demo config with the
# 600-iteration schedule of configs/_base_/schedules/demo_600it.py (reused when present)
pretrain = dict(
    config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
    work_dir='work_dirs/pretrain/faster_rcnn_r50_fpn_dense_hard_600it',
    cfg_options=dict(_hard_data, **{
        'train_cfg.max_iters': 600,
        'train_cfg.val_interval': 600,
        'param_scheduler.1.end': 600,
        'param_scheduler.1.milestones': [450, 555],
    }))
