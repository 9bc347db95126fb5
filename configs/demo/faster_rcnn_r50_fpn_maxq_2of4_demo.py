# MaxQ 2:4 Faster R-CNN R50-FPN on the bundled synthetic shapes (CPU demo): the dense demo
# with every ResNet conv a MaxQConv2d (stem dense). The number pruned per group grows from
# 0 to 2 until half of training (NMSparsityHook ti=0, tf=None); every layer is exactly 2:4
# from then on.
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_maxq_2of4_demo.py
_base_ = ['./faster_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/maxq.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
