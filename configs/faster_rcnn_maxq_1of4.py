# Faster R-CNN R50-FPN, COCO, 1x, MaxQ 1:4: a one-line change of the 2:4 config.
_base_ = './faster_rcnn_maxq_2of4.py'
model = dict(backbone=dict(conv_cfg=dict(n=1, m=4)))
