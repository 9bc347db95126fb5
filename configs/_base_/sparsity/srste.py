# SR-STE (Zhou et al., ICLR 2021), 2:4, on every conv of the ResNet backbone: the top-N
# magnitude mask is recomputed every step, the dense gradient flows to every weight and
# pruned weights decay with lambda_w.
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='SRSTEConv2d', n=2, m=4, lambda_w=2e-4)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
