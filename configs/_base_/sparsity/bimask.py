# Bi-Mask (Zhang et al., ICML 2023), 2:4, on every conv of the ResNet backbone: the top-N
# magnitude forward mask (groups of 4 input channels) is recomputed every step; the input
# gradient uses a second, N:M mask along the output channels, taken after the best of
# perm_candidates random output-channel permutations, searched every perm_interval
# iterations; the weight gradient is dense and the pruned weights decay with lambda_w
# (docs/methods.md, Bi-Mask). The defaults are the official code's ImageNet settings.
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='BiMaskConv2d', n=2, m=4, lambda_w=2e-4, perm_candidates=100,
                   perm_interval=100, perm_seed=0)
# no schedule window of its own: the masks are N:M from the first iteration (ti, tf only
# matter to the hook's logging)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
