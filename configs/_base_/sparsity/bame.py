# BAME (Block-Aware Mask Evolution), 2:4 -- a reconstruction from the paper's abstract
# (docs/methods.md): sparse forward and backward, loss-aware mask adaptation inside
# designated blocks every `interval` iterations within [ti, tf), oscillation-aware freezing.
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='BAMEConv2d', n=2, m=4, interval=100, criterion='taylor',
                   freeze_min_obs=3, tau=0.5, rho0=0.5)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
