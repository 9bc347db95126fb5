# Dense (no sparsity) Mask R-CNN R50-FPN on the bundled synthetic shapes,
# trained from scratch on CPU:
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/mask_rcnn_r50_fpn_dense_demo.py
#
# Same composition as ``mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py``
# (model + dataset + schedule + runtime), with every component replaced by its
# CPU/demo variant, each of which inherits the stock mmdet component.
_base_ = [
    '../_base_/models/cpu_small_mask_rcnn.py',
    '../_base_/datasets/demo_coco_instance.py',
    '../_base_/schedules/demo_600it.py',  # 400 iterations left the box head short
    '../_base_/default_runtime.py',
]
