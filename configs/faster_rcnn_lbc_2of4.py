# Faster R-CNN R50-FPN, COCO, 1x, LBC 2:4 backbone (stem dense).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', './_base_/sparsity/lbc.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
# the scores train with the weights; their weight decay (the official code decays
# them like the weights) is set here
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.scores': dict(decay_mult=1.0)}))
