# ASP 2:4 Faster R-CNN R50-FPN on the bundled synthetic shapes (CPU demo): the dense demo
# with every ResNet conv an ASPConv2d (stem dense). The base prunes at ti=0, i.e. the
# random initialisation of this from-scratch demo; for ASP's recipe (train dense, prune
# once, fine-tune) move `ti` into training, e.g.
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_asp_2of4_demo.py \
#       --cfg-options custom_hooks.0.ti=150 custom_hooks.0.tf=200
# (configs/suites/demo.py does so).
_base_ = ['./faster_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/asp.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
