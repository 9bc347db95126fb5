# The `finetune` protocol of the bundled-data suites (demo_table2, demo_table3,
# demo_asp_permutation): one dense detector trained once (the suite's `pretrain`: the dense
# demo config as it is; reused when present), then every row fine-tuned from it for the
# same short schedule below, 3 seeds; the dense row ("Dense (continued)") continues the
# same schedule without sparsity. A suite file inherits it with `_base_` and adds its
# `title`, `work_root`, `pretrain` and `suite` (and may override anything here).
note = ('Bundled synthetic shapes (`tools/make_demo_data.py`: 300 training, 200 validation '
        'images, 128 px), CPU. Protocol `finetune`: a dense detector trained once (the dense '
        'demo config as it is: AdamW, batch 4; its schedule and mAP in the README), then '
        'every row fine-tuned from it for 50 iterations (AdamW lr 1e-4, 5-iteration '
        'warm-up, decay x0.1 at 40); the dense row continues the same schedule without '
        'sparsity. ASP prunes once at the start of the fine-tune (its one-shot recipe); LBC '
        'starts from scores proportional to the candidates\' magnitude '
        '(`score_init=\'magnitude\'`) and removes candidates until half of it; BAME adapts '
        'every 5 iterations until half of it. NOT COCO numbers.')
protocol = 'finetune'
seeds = [0, 1, 2]
baseline = 'Dense (continued)'

# the fine-tune schedule, the same for every row
_iters = 50
cfg_options = {
    'train_cfg.max_iters': _iters,
    'train_cfg.val_interval': _iters,
    'param_scheduler.0.end': 5,
    'param_scheduler.0.start_factor': 0.1,
    'param_scheduler.1.end': _iters,
    'param_scheduler.1.milestones': [40],
    'optim_wrapper.optimizer.lr': 0.0001,
    'default_hooks.checkpoint.interval': _iters,
    'default_hooks.logger.interval': 10,
    'log_processor.window_size': 10,
}
