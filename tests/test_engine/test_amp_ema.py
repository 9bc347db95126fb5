"""bf16 AMP and EMA with every N:M method in a real MMEngine Runner.

MMEngine's ``AmpOptimWrapper`` refuses to be built without an accelerator; on CPU the
tests lift that check (``torch.autocast('cpu', bfloat16)`` itself works, and the CUDA
``GradScaler`` disables itself). MMEngine's averaged models average only floating-point
state: with ``update_buffers=True`` the bool/int method state (LBC ``alive``, ASP
``mask``/``pruned``, BAME ``mask``/...) would stay as at the first step (dense), so
``NMSparsityHook`` copies it into the EMA model (tested here).
"""
import copy
import os.path as osp

import pytest
import torch
from _common import SPARSE_LAYERS
from _nm_toy import is_exact_nm, method_state, tiny_demo_cfg, toy_model, toy_runner_kwargs
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.datasets.demo_coco import make_demo_coco

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAX_ITERS = 8




#: methods whose mask is recomputed from the (here: averaged) weights at every forward
WEIGHT_FOLLOWING = ('srste', 'maxq')
AMP = dict(type='AmpOptimWrapper', dtype='bfloat16',
           optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))


class LossRecorder(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v.detach()) for k, v in outputs.items()})


def _ema_hook(runner):
    hooks = [h for h in runner.hooks if type(h).__name__ == 'EMAHook']
    assert len(hooks) == 1
    return hooks[0]


def _schedule(method):
    if method == 'asp':
        return dict(ti=2, tf=4)
    return dict(ti=0, tf=4)


def _run_toy(method, work_dir, update_buffers=True, optim_wrapper=AMP):
    kwargs = dict(interval=2) if method == 'bame' else {}
    model = toy_model(method, **kwargs)
    hooks = [dict(type='NMSparsityHook', **_schedule(method)),
             dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002,
                  update_buffers=update_buffers, priority=49)]
    runner = Runner(model=model, **toy_runner_kwargs(
        work_dir, max_iters=MAX_ITERS, custom_hooks=hooks,
        optim_wrapper=copy.deepcopy(optim_wrapper),
        name=f'{method}_{int(update_buffers)}'))
    recorder = LossRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


@pytest.mark.parametrize('update_buffers', [True, False])
@pytest.mark.parametrize('method', sorted(SPARSE_LAYERS))
def test_bf16_amp_and_ema_keep_exact_nm(method, update_buffers, cpu_amp, tmp_path):
    runner, recorder = _run_toy(method, str(tmp_path), update_buffers)
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert runner.optim_wrapper.cast_dtype == torch.bfloat16
    assert len(recorder.losses) == MAX_ITERS
    for losses in recorder.losses:
        for key, value in losses.items():
            assert torch.isfinite(torch.tensor(value)), (key, value)

    live = dict(lbc_mmdet.sparse_layers(runner.model))
    assert len(live) == 4 and all(layer.nm_eligible for layer in live.values())
    for name, layer in live.items():
        assert is_exact_nm(layer), (method, name)

    ema = _ema_hook(runner).ema_model.module
    ema_layers = dict(lbc_mmdet.sparse_layers(ema))
    assert set(ema_layers) == set(live)
    # the EMA model computes with the live model's masks (SR-STE: its own top-N of the
    # averaged weights, which is N:M too)
    live_state, ema_state = method_state(runner.model), method_state(ema)
    for key, value in live_state.items():
        if method in WEIGHT_FOLLOWING and key.endswith('.nm_mask'):
            continue
        torch.testing.assert_close(ema_state[key], value, rtol=0, atol=0, equal_nan=True,
                                   msg=f'{method} {key}')
    for name, layer in ema_layers.items():
        assert is_exact_nm(layer), (method, name)
        # the averaged weights are not N:M themselves: use the effective weights
        assert torch.isfinite(layer.masked_weight()).all()


def test_ema_checkpoint_holds_the_ema_masks(cpu_amp, tmp_path):
    """The checkpoint's ``state_dict`` (EMA weights, as mmdet evaluates) and its
    ``ema_state_dict`` carry the same, final, N:M ``alive``."""
    runner, _ = _run_toy('lbc', str(tmp_path))
    ckpt = torch.load(osp.join(str(tmp_path), f'iter_{MAX_ITERS}.pth'),
                      map_location='cpu', weights_only=True)
    for name, layer in lbc_mmdet.sparse_layers(runner.model):
        alive = ckpt['state_dict'][f'{name}.alive']
        assert torch.equal(alive, layer.alive), name
        assert (alive.sum(1) == 1).all(), name
        assert torch.equal(ckpt['ema_state_dict'][f'module.{name}.alive'], alive), name


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_coco_amp'))
    make_demo_coco(root, num_train=8, num_val=4, img_size=96, seed=0)
    return root


def test_bf16_amp_one_iteration_of_the_lbc_detector(cpu_amp, tiny_data, tmp_path,
                                                    monkeypatch):
    # mmcv's CPU kernels (NMS, RoIAlign) only take float32 (the features/proposals are
    # bf16 under CPU autocast): a limitation of mmcv on CPU, not of the sparse layers
    import importlib

    def as_float32(fn):

        def wrapped(*args, **kwargs):
            dtype = args[0].dtype
            args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a
                    for a in args]
            out = fn(*args, **kwargs)
            return out.to(dtype) if torch.is_tensor(out) else out

        return wrapped

    if not torch.cuda.is_available():
        for module, name in (('mmcv.ops.nms', 'nms'), ('mmcv.ops.roi_align', 'roi_align')):
            module = importlib.import_module(module)
            monkeypatch.setattr(module, name, as_float32(getattr(module, name)))
    cfg = tiny_demo_cfg(osp.join(ROOT, 'configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py'),
                        tiny_data, str(tmp_path), max_iters=1, ti=0, tf=1)
    cfg.optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                             optimizer=cfg.optim_wrapper.optimizer)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder)
    runner.train()
    assert len(recorder.losses) == 1
    for key, value in recorder.losses[0].items():
        assert torch.isfinite(torch.tensor(value)), (key, value)
    layers = [lay for _, lay in lbc_mmdet.sparse_layers(runner.model) if lay.nm_eligible]
    assert layers and all(is_exact_nm(lay) for lay in layers)
