# LBC 2:4 Mask R-CNN R50-FPN on the bundled synthetic shapes (CPU demo): the dense Mask
# R-CNN demo with every ResNet conv an LBCConv2d (stem dense).
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/mask_rcnn_r50_fpn_lbc_2of4_demo.py
_base_ = ['./mask_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/lbc.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
