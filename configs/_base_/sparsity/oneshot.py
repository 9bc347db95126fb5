# One-shot N:M from calibration data (SparseGPT, Frantar & Alistarh 2023; Wanda, Sun et al.
# 2024; or magnitude), 2:4, on every conv of the ResNet backbone: at the start of training
# (after `load_from` loads the dense detector) CalibrationHook runs `batches` batches of the
# training set (chosen by the run's seed) through the model once, every layer computes its
# mask (SparseGPT also updates the kept weights) and keeps it fixed for the fine-tune
# (pruned weights stay exactly zero). Options: criterion='sparsegpt'|'wanda'|'magnitude',
# damp (SparseGPT damping, fraction of the mean Hessian diagonal), block_size (columns).
# `tools/test.py` with such a config and a dense checkpoint evaluates the one-shot model
# without any training (the hook calibrates before the test).
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='OneShotConv2d', n=2, m=4, criterion='sparsegpt', damp=0.01,
                   block_size=128)
# CalibrationHook (ABOVE_NORMAL) runs before NMSparsityHook, which then keeps the pruned
# weights at zero after every step
custom_hooks = [dict(type='CalibrationHook', batches=8),
                dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
