# BAME (reconstruction) 2:4 Faster R-CNN R50-FPN on the bundled synthetic shapes (CPU
# demo): the dense demo with every ResNet conv a BAMEConv2d (stem dense). The mask adapts
# every `interval` iterations inside [ti, tf) (half of training by default); shorter
# schedules want a smaller interval:  --cfg-options model.backbone.conv_cfg.interval=10
#
#   python tools/make_demo_data.py
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_bame_2of4_demo.py
_base_ = ['./faster_rcnn_r50_fpn_dense_demo.py', '../_base_/sparsity/bame.py']
model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))
