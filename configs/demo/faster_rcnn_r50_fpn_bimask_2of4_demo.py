# Bi-Mask 2:4 Faster R-CNN R50-FPN on the bundled synthetic shapes (CPU demo): the dense
# demo with every ResNet conv a BiMaskConv2d (stem dense).
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_bimask_2of4_demo.py
_base_ = ['./faster_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/bimask.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
