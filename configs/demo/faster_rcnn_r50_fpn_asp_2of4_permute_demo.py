# ASP 2:4 Faster R-CNN R50-FPN on the bundled data, with a channel permutation before the
# one-shot prune (Pool & Yu, NeurIPS 2021; docs/deployment.md "Channel permutation"):
# ChannelPermutationHook reorders the input channels of every Bottleneck's conv2/conv3
# (and the producing conv + BN) at `before_train`, after `load_from` has loaded the dense
# weights and before NMSparsityHook prunes at ti=0. It only makes sense from trained
# dense weights, e.g.
#   python tools/train.py configs/demo/faster_rcnn_r50_fpn_asp_2of4_permute_demo.py \
#       --cfg-options load_from=work_dirs/faster_rcnn_r50_fpn_dense_demo/iter_400.pth
# (the `finetune` suites set load_from themselves).
_base_ = './faster_rcnn_r50_fpn_asp_2of4_demo.py'
# A child's list replaces the base's, so the whole list is repeated. The hook's priority
# (ABOVE_NORMAL) runs it before NMSparsityHook whatever its position; it is appended so
# that `custom_hooks.0` stays NMSparsityHook (`--cfg-options custom_hooks.0.ti=...`).
custom_hooks = [
    dict(type='NMSparsityHook', ti=0, tf=None),
    dict(type='RNGStateHook'),
    dict(type='TrainFlopsHook'),
    dict(type='SafeCheckpointHook'),
    dict(type='ChannelPermutationHook', time_limit=10.0),
]
