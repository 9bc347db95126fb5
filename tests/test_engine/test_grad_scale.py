"""fp16 loss scaling and gradient accumulation: SR-STE's decay and BAME's accumulated
gradient are those of an unscaled, non-accumulated run (``nm_grad_scale``).

The scaled runs go through MMEngine's real ``OptimWrapper`` / ``AmpOptimWrapper``
(``update_params``: ``scale_loss``, ``loss_scaler.scale(loss).backward()``,
``loss_scaler.step``/``update``); ``AmpOptimWrapper`` is lifted onto the CPU as in
``test_amp_ema.py`` and given a real, enabled CPU ``torch.amp.GradScaler`` (the CUDA one
it builds disables itself without CUDA).
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import scaled_optim_wrapper
from _nm_toy import toy_model, toy_runner_kwargs
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.engine.hooks.nm_sparsity_hook import grad_scale_of
from lbc_mmdet.layers import NMScheduleState, get_method, set_nm_grad_scale

ITERS = 6




class Net(nn.Module):
    """A sparse conv and a sparse linear of ``method``."""

    def __init__(self, method, **kwargs):
        super().__init__()
        layers = get_method(method).layers
        torch.manual_seed(0)
        self.conv = layers['Conv2d'](8, 8, 3, padding=1, n=2, m=4, **kwargs)
        self.fc = layers['Linear'](8 * 4 * 4, 4, n=2, m=4, **kwargs)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


def _data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 4, generator=g))
            for _ in range(ITERS)]


def _loss(model, x, y):
    return F.mse_loss(model(x), y)




def _train(model, ow, data, set_scale=True):
    """What the runner does per iteration: NMSparsityHook.before_train_iter, then
    ``train_step`` (``update_params``)."""
    scales = []
    for x, y in data:
        if set_scale:
            scales.append(grad_scale_of(ow))
            set_nm_grad_scale(model, scales[-1])
        ow.update_params(_loss(model, x, y))
    return scales


def _reference(model, data, accum, lr=0.1):
    """Unscaled, non-accumulated: one step per window on the window's whole batch."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for start in range(0, len(data), accum):
        window = data[start:start + accum]
        x = torch.cat([d[0] for d in window])
        y = torch.cat([d[1] for d in window])
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()


def test_grad_scale_of_follows_mmengine(cpu_amp):
    model = Net('srste')
    ow = scaled_optim_wrapper(model, 'plain', 4, ITERS)  # 6 iterations: windows of 4 and then 2
    factors = []
    for x, y in _data():
        factors.append(grad_scale_of(ow))
        assert factors[-1] == pytest.approx(float(ow.scale_loss(torch.tensor(1.0))))
        ow.update_params(_loss(model, x, y))
    assert factors == pytest.approx([1 / 4] * 4 + [1 / 2] * 2)

    amp = scaled_optim_wrapper(Net('srste'), 'amp', 1, ITERS, init_scale=512.0)
    assert grad_scale_of(amp) == 512.0
    amp.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)  # bf16 without scaling
    assert grad_scale_of(amp) == 1.0
    assert grad_scale_of(object()) == 1.0 and grad_scale_of(None) == 1.0


@pytest.mark.parametrize('kind,accum', [('amp', 1), ('amp', 2), ('amp', 4),
                                        ('plain', 3)])
def test_srste_update_independent_of_loss_scale_and_accumulation(kind, accum, cpu_amp):
    data = _data()
    ref = Net('srste', lambda_w=0.05)  # a decay large enough to matter in one step
    run = copy.deepcopy(ref)
    stale = copy.deepcopy(ref)
    _reference(ref, data, accum)
    scales = _train(run, scaled_optim_wrapper(run, kind, accum, ITERS), data)
    if kind == 'amp':
        assert len(set(scales)) > 1  # the dynamic scale changed along the run
    for (name, p_ref), p_run in zip(ref.named_parameters(), run.parameters()):
        torch.testing.assert_close(p_run, p_ref, rtol=1e-5, atol=1e-6, msg=name)
    assert all(torch.equal(a.nm_mask(), b.nm_mask()) for (_, a), (_, b) in zip(
        lbc_mmdet.sparse_layers(ref), lbc_mmdet.sparse_layers(run)))

    # the check has teeth: without nm_grad_scale the decay is off by the scale / counts
    _train(stale, scaled_optim_wrapper(stale, kind, accum, ITERS), data, set_scale=False)
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(ref.parameters(),
                                                                    stale.parameters()))
    assert diff > 1e-4


@pytest.mark.parametrize('kind,accum', [('amp', 1), ('amp', 2), ('plain', 3)])
def test_bame_grad_acc_and_decisions_independent_of_scale(kind, accum, cpu_amp):
    data = _data()
    ref = Net('bame', interval=ITERS)
    start = NMScheduleState(t=0, ti=0, tf=100, iteration=0)
    for _, layer in lbc_mmdet.sparse_layers(ref):
        layer.nm_update(start)  # designates the first blocks
        assert layer.designated.any()
    run = copy.deepcopy(ref)
    stale = copy.deepcopy(ref)
    # the unscaled, non-accumulated per-iteration gradients at the same weights
    for x, y in data:
        ref.zero_grad()
        _loss(ref, x, y).backward()
    # lr 0: the weights stay put
    _train(run, scaled_optim_wrapper(run, kind, accum, ITERS, lr=0.0), data)
    _train(stale, scaled_optim_wrapper(stale, kind, accum, ITERS, lr=0.0), data, set_scale=False)
    ratio = stale.conv.grad_acc.abs().sum() / ref.conv.grad_acc.abs().sum()
    assert not 0.99 < float(ratio) < 1.01  # without nm_grad_scale: off by scale / counts
    pairs = list(zip(lbc_mmdet.sparse_layers(ref), lbc_mmdet.sparse_layers(run)))
    for (name, a), (_, b) in pairs:
        assert a.grad_acc.abs().sum() > 0
        torch.testing.assert_close(b.grad_acc, a.grad_acc, rtol=1e-5, atol=1e-6,
                                   msg=name)
    update = NMScheduleState(t=ITERS, ti=0, tf=100, iteration=ITERS)
    for (name, a), (_, b) in pairs:
        a.nm_update(update)
        b.nm_update(update)
        for key in ('mask', 'designated', 'code', 'n_obs'):
            assert torch.equal(getattr(a, key), getattr(b, key)), (name, key)
        torch.testing.assert_close(b.gain_est, a.gain_est, rtol=1e-5, atol=1e-6,
                                   equal_nan=True)


class _CPUScaler(Hook):
    """Give the runner's AmpOptimWrapper an enabled CPU GradScaler."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        runner.optim_wrapper.loss_scaler = torch.amp.GradScaler(
            'cpu', init_scale=256.0, growth_interval=1)


class _Recorder(Hook):
    """The layers' ``nm_grad_scale`` as the iteration's backward sees it."""
    priority = 'LOW'  # after NMSparsityHook (NORMAL)

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        layers = [lay for _, lay in lbc_mmdet.sparse_layers(runner.model)]
        self.seen.append({lay.nm_grad_scale for lay in layers})


def test_hook_sets_the_scale_in_a_real_runner(cpu_amp, tmp_path):
    ow = dict(type='AmpOptimWrapper', dtype='bfloat16', accumulative_counts=2,
              optimizer=dict(type='SGD', lr=0.01))
    runner = Runner(model=toy_model('srste'), **toy_runner_kwargs(
        str(tmp_path), max_iters=5, optim_wrapper=ow,
        custom_hooks=[dict(type='NMSparsityHook', ti=0, tf=4)]))
    recorder = _Recorder()
    runner.register_hook(_CPUScaler())
    runner.register_hook(recorder)
    runner.train()
    # scale 256, doubled after each step (iterations 2 and 4); the last window holds
    # one iteration (5 = 2 + 2 + 1), whose loss mmengine does not divide
    assert recorder.seen == [{128.0}, {128.0}, {256.0}, {256.0}, {1024.0}]
    assert {lay.nm_grad_scale for _, lay in lbc_mmdet.sparse_layers(runner.model)} == {1.0}
