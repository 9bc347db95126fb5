# MaxQ (Xiang et al., CVPR 2024), 2:4, on every conv of the ResNet backbone: incremental N:M
# (the number pruned per group of 4 grows from 0 at ti to 2 at tf, linear schedule) and the
# multi-axis soft mask (filter and kernel axes, tau=0.01); straight-through gradient with
# the pruned weights decayed by lambda_w. No extra BatchNorm: mmdet's ResNet normalises
# every conv output (docs/methods.md, MaxQ).
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='MaxQConv2d', n=2, m=4, lambda_w=2e-4, tau=0.01, schedule='linear')
# ti=0, tf=None: incremental sparsity from the start until half of training, the window
# every method of the suite shares (the paper: the first 30 of 120 ImageNet epochs)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
