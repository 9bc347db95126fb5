# LBC (Learning Best Combination), 2:4, on every conv of the ResNet backbone.
# The 3-channel stem cannot be grouped by M: it stays dense and NMSparsityHook reports it.
# The detector config applies it as `model = dict(backbone=dict(conv_cfg={{_base_.nm_conv_cfg}}))`
# (bases may not share keys, so this file holds no `model`); a pattern is then a one-line
# change in a child config:  model = dict(backbone=dict(conv_cfg=dict(n=2, m=8)))
# Layers inside frozen stages (frozen_stages=1 with ImageNet weights) cannot train their
# scores: they rank candidates by weight magnitude instead (logged at the start).
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='LBCConv2d', n=2, m=4)
# ti=0, tf=None: candidates are removed from the start until half of training (the paper)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
# finished layers take their scores out of the graph (they stop changing): DDP must allow it
find_unused_parameters = True
