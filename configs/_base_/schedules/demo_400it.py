# 400 iterations at batch 4 (~11 min for the dense R50-FPN demo on 2 CPU cores).
max_iters = 400

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[300, 370],
        gamma=0.1)
]

# From scratch at batch 4, lr 0.02 without clipping diverges (NaN losses after
# ~90 iterations); clipping the gradient norm keeps it stable.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))

# The demo learning rate is tuned for batch 4 on one process.
auto_scale_lr = dict(enable=False, base_batch_size=4)
