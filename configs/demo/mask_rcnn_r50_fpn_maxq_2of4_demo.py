# MaxQ 2:4 Mask R-CNN R50-FPN on the bundled synthetic shapes (CPU demo): the dense Mask
# R-CNN demo with every ResNet conv a sparse layer of the method (stem dense).
_base_ = ['./mask_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/maxq.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
