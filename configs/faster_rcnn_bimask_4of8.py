# Faster R-CNN R50-FPN, COCO, 1x, Bi-Mask 4:8: one of the paper's ResNet-50
# patterns, a one-line change of the 2:4 config.
_base_ = './faster_rcnn_bimask_2of4.py'
model = dict(backbone=dict(conv_cfg=dict(n=4, m=8)))
