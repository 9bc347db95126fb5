# Mask R-CNN R50-FPN, COCO, 1x, Bi-Mask 2:4 backbone (stem dense).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/sparsity/bimask.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
