# Dense (no sparsity) Faster R-CNN R50-FPN on the bundled synthetic shapes,
# trained from scratch on CPU (measured times: README):
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py
#
# Same composition as ``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``
# (model + dataset + schedule + runtime), with every component replaced by its
# CPU/demo variant, each of which inherits the stock mmdet component.
_base_ = [
    '../_base_/models/cpu_small_rcnn.py',
    '../_base_/datasets/demo_coco.py',
    '../_base_/schedules/demo_400it.py',
    '../_base_/default_runtime.py',
]
