"""Test helpers (not a test module): a toy N:M model and dataset for fast real-Runner runs,
and ``RankDumpHook``, which saves every sparse layer's method state per rank (imported by
the distributed test through ``custom_imports``)."""
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from torch.utils.data import Dataset

import lbc_mmdet
from lbc_mmdet.nm import to_groups


class ToyNet(BaseModel):
    """A few convs (channels multiples of 8) and a Linear; loss = MSE to a target."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 8)

    def forward(self, inputs, targets=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.fc(self.conv3(x).flatten(1))
        if mode == 'loss':
            t = torch.stack(targets) if isinstance(targets, (list, tuple)) else targets
            return dict(loss=F.mse_loss(x.float(), t.float()))
        return x


class ToyData(Dataset):

    def __init__(self, size=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 8, 4, 4, generator=g)
        self.y = torch.randn(size, 8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


def toy_model(method, **kwargs):
    torch.manual_seed(0)
    model = ToyNet()
    lbc_mmdet.sparsify(model, method, n=2, m=4, **kwargs)
    return model


def is_exact_nm(layer) -> bool:
    """Every group of M of the layer's effective weight keeps at most N non-zeros and its
    mask exactly N."""
    w = layer.masked_weight()
    nz = (to_groups(w, layer.nm_m) != 0).sum(1)
    return bool((nz <= layer.nm_n).all()) and layer.nm_is_exact()


def method_state(model) -> dict:
    """Every sparse layer's method state buffers and mask, cloned (CPU)."""
    out = {}
    for name, layer in lbc_mmdet.sparse_layers(model):
        if not layer.nm_eligible:
            continue
        for key in layer.nm_extra_state_names:
            buf = layer._buffers.get(key)
            if buf is not None:
                out[f'{name}.{key}'] = buf.detach().cpu().clone()
        out[f'{name}.nm_mask'] = layer.nm_mask().detach().cpu().clone()
    return out


@HOOKS.register_module()
class RankDumpHook(Hook):
    """After every training iteration and at the end, save the method state and the
    effective weights of every sparse layer to ``work_dir/rank{r}_iter{i}.pt``."""
    priority = 'LOWEST'

    def _dump(self, runner, tag):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = method_state(model)
        for name, layer in lbc_mmdet.sparse_layers(model):
            if layer.nm_eligible:
                state[f'{name}.effective_weight'] = layer.masked_weight().cpu().clone()
        torch.save(state, osp.join(runner.work_dir, f'rank{get_rank()}_{tag}.pt'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._dump(runner, f'iter{runner.iter + 1}')

    def after_train(self, runner):
        self._dump(runner, 'final')


def toy_runner_kwargs(work_dir, *, max_iters=8, custom_hooks=(), ckpt_interval=1000,
                      optim_wrapper=None, name='toy'):
    """Keyword arguments of a real ``mmengine.runner.Runner`` on :class:`ToyData`."""
    return dict(
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(
            dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2, num_workers=0, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=10**6),
        optim_wrapper=optim_wrapper or dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=ckpt_interval, max_keep_ckpts=-1)),
        # the hook tools/train.py adds to every config: checkpoints load safely
        custom_hooks=list(custom_hooks) + [dict(type='SafeCheckpointHook')],
        default_scope='mmdet',
        randomness=dict(seed=0),
        log_level='WARNING')


def tiny_demo_cfg(config, data_root, work_dir, *, max_iters=4, ti=0, tf=3,
                  ckpt_interval=None):
    """``config`` (a demo config path) shrunk as in ``test_lbc_runner.py``: tiny data,
    64x64 images, batch 2, no workers, a constant LR, no validation."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] != 'TrainFlopsHook']
    for h in hooks:
        if h['type'] == 'NMSparsityHook':
            h.update(ti=ti, tf=tf)
    cfg.custom_hooks = hooks
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 10**6
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = ckpt_interval or max_iters
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[split]
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = data_root + '/'
        for t in loader.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (64, 64)
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline if t['type'] != 'RandomFlip']
    for split in ('val_evaluator', 'test_evaluator'):
        cfg[split].ann_file = osp.join(data_root, 'annotations/instances_val.json')
    from lbc_mmdet.cli._config import ensure_safe_checkpoint_hook
    ensure_safe_checkpoint_hook(cfg)  # as tools/train.py does
    return cfg
