"""MaxQ (``lbc_mmdet/layers/maxq.py``): incremental schedule, multi-axis soft mask,
straight-through gradient with decay, loss-scale / accumulation invariance, resume and
export. References are written here from the formulas (``docs/methods.md``, MaxQ)."""
import copy
import math
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.deploy import export_sparse_state_dict, verify_nm
from lbc_mmdet.errors import CheckpointMismatchError
from lbc_mmdet.layers import NMScheduleState, get_method, set_nm_grad_scale
from lbc_mmdet.nm import incremental_pruned, remaining_fraction, to_groups

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_engine'))
from _common import scaled_optim_wrapper  # noqa: E402
from _nm_toy import is_exact_nm, method_state, toy_model, toy_runner_kwargs  # noqa: E402

CONV = get_method('maxq').layers['Conv2d']
LINEAR = get_method('maxq').layers['Linear']


def _state(t, ti=0.0, tf=10.0):
    return NMScheduleState(t=float(t), ti=float(ti), tf=float(tf), iteration=int(t))


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------ schedule
# prunable P = M - N = 3 (1:4), window [0, 10]; pruned = floor(P * (1 - r(t)))
HAND = {
    # linear r = 1 - t/10
    ('linear', 3.0): 0,   # 3 * 0.3 = 0.9
    ('linear', 3.4): 1,   # 3 * 0.34 = 1.02
    ('linear', 5.0): 1,   # 3 * 0.5 = 1.5
    ('linear', 7.0): 2,   # 3 * 0.7 = 2.1
    # cos r = cos(pi/2 * t/10)
    ('cos', 5.0): 0,      # 3 * (1 - 0.7071) = 0.88
    ('cos', 7.0): 1,      # 3 * (1 - 0.4540) = 1.64
    ('cos', 9.0): 2,      # 3 * (1 - 0.1564) = 2.53
    # exp (k = 1.5) 1 - r = (1 - e^(-1.5 t/10)) / (1 - e^-1.5)
    ('exp', 1.0): 0,      # 3 * 0.1393 / 0.7769 = 0.54
    ('exp', 3.0): 1,      # 3 * 0.3624 / 0.7769 = 1.40
    ('exp', 5.0): 2,      # 3 * 0.5276 / 0.7769 = 2.04
    ('exp', 9.0): 2,      # 3 * 0.7408 / 0.7769 = 2.86
}


@pytest.mark.parametrize('schedule,t', sorted(HAND))
def test_pruned_per_group_at_chosen_times(schedule, t):
    want = HAND[(schedule, t)]
    assert incremental_pruned(t, 0, 10, 3, schedule) == want
    torch.manual_seed(0)
    layer = CONV(8, 4, 3, n=1, m=4, schedule=schedule)
    layer.nm_update(_state(t))
    assert layer.nm_pruned == want
    counts = to_groups(layer.nm_mask(), 4).sum(1)
    assert bool((counts == 4 - want).all())  # every group prunes exactly `want`
    assert layer.nm_train_densities() == dict(forward=(4 - want) / 4,
                                              input_grad=(4 - want) / 4, weight_grad=1.0)


@pytest.mark.parametrize('schedule', ['linear', 'cos', 'exp'])
def test_schedule_edges_and_monotonic(schedule):
    assert remaining_fraction(1.0, 2.0, 6.0, schedule) == 1.0
    assert remaining_fraction(2.0, 2.0, 6.0, schedule) == 1.0
    assert remaining_fraction(6.0, 2.0, 6.0, schedule) == 0.0
    counts = [incremental_pruned(t / 4, 2.0, 6.0, 14, schedule) for t in range(40)]
    assert counts[:9] == [0] * 9 and counts[24:] == [14] * 16
    assert counts == sorted(counts)


def test_schedule_densities_fall_from_dense_to_n_over_m():
    cls = CONV
    assert cls.nm_schedule_densities(2, 4, 0, 0, 10) == dict(forward=1.0, input_grad=1.0,
                                                            weight_grad=1.0)
    assert cls.nm_schedule_densities(1, 4, 5, 0, 10)['forward'] == 0.75  # linear: 1 pruned
    assert cls.nm_schedule_densities(1, 16, 10, 0, 10) == dict(
        forward=1 / 16, input_grad=1 / 16, weight_grad=1.0)
    assert cls.nm_schedule_densities(1, 4, 5, 0, 10, schedule='cos')['forward'] == 1.0


def test_paper_rule_flops_of_the_official_recipe():
    """ResNet-50, 120 epochs, window [0, 30], 2:4 linear: epochs 0-14 dense, 15-29 one
    pruned (0.75), 30-119 N:M (0.5): mean forward density 71.25 / 120; the paper rule
    counts the input and weight gradients dense: (0.59375 + 2) / 3."""
    from lbc_mmdet.accounting.analytic import schedule_flops
    res = schedule_flops(CONV, 2, 4, 120, 0, 30, convention='paper')
    assert res.ratio == pytest.approx((71.25 / 120 + 2) / 3, abs=1e-9)


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize('n,m', [(2, 4), (1, 4), (2, 8), (1, 16)])
@pytest.mark.parametrize('kind', ['conv', 'linear'])
def test_exactly_nm_after_the_schedule(kind, n, m):
    torch.manual_seed(1)
    layer = CONV(32, 8, 3, n=n, m=m) if kind == 'conv' else LINEAR(64, 6, n=n, m=m)
    layer.nm_update(_state(3))
    assert not layer.nm_is_exact()  # mid-schedule: more than N kept
    layer.nm_update(_state(10))
    assert layer.nm_pruned == m - n and layer.nm_is_exact()
    w = layer.masked_weight()
    nz = (to_groups(w, m) != 0).sum(1)
    assert bool((nz == n).all())
    # the kept weights are the N largest |w| of every group
    groups = to_groups(layer.weight.detach().abs(), m)
    kept = to_groups(layer.nm_mask(), m).bool()
    assert bool((groups[kept].reshape(-1, n).min(1).values >=
                 groups[~kept].reshape(-1, m - n).max(1).values).all())
    assert verify_nm({'x.weight': w}, n, m, all_layers=True).ok


def test_soft_mask_values_at_chosen_weights():
    """A 2:4 Linear of one row: the filter axis keeps the 4 largest |w| of 8 above the
    threshold (0.04 + 0.05) / 2; the hard mask keeps 2 of each group of 4."""
    layer = LINEAR(8, 1, n=2, m=4, tau=0.01)
    row = [0.10, -0.02, 0.05, -0.30, 0.01, 0.20, -0.04, 0.03]
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([row]))
    thr = 0.045
    want = [1 + _sigmoid((0.10 - thr) / 0.01),  # group 1 keeps 0.10 and 0.30
            0.0,
            0.0,  # 0.05 is above the filter threshold but pruned by the hard mask
            1 + _sigmoid((0.30 - thr) / 0.01),
            0.0,  # group 2 keeps 0.20 and 0.04
            1 + _sigmoid((0.20 - thr) / 0.01),
            1.0,  # 0.04 is below the filter threshold: soft mask 0
            0.0]
    torch.testing.assert_close(layer.soft_mask()[0], torch.tensor(want), rtol=1e-6,
                               atol=1e-7)
    torch.testing.assert_close(layer.masked_weight()[0],
                               torch.tensor(row) * torch.tensor(want), rtol=1e-6, atol=1e-7)
    assert layer.nm_mask()[0].tolist() == [1, 0, 0, 1, 0, 1, 1, 0]


def _ref_axis(values, below, tau):
    """One query axis from the formula, in plain Python floats."""
    s = sorted(values)
    thr = (s[below - 1] + s[below]) / 2
    return [_sigmoid((v - thr) / tau) if v > thr else 0.0 for v in values]


def _ref_soft_mask(w, n, m, tau):
    o, i, kh, kw = w.shape
    a = w.abs().double()
    factor = torch.ones(o, i, kh, kw, dtype=torch.float64)
    for f in range(o):  # filter axis: [i, kh, kw] of one output channel
        vals = a[f].flatten().tolist()
        factor[f] += torch.tensor(_ref_axis(vals, (m - n) * len(vals) // m, tau),
                                  dtype=torch.float64).reshape(i, kh, kw)
    if kh * kw > 1:  # kernel axis: one position over every (filter, input channel)
        for y in range(kh):
            for x in range(kw):
                vals = a[:, :, y, x].flatten().tolist()
                factor[:, :, y, x] += torch.tensor(
                    _ref_axis(vals, (m - n) * len(vals) // m, tau),
                    dtype=torch.float64).reshape(o, i)
    hard = torch.zeros(o, i, kh, kw, dtype=torch.float64)
    for f in range(o):  # the project's grouping: M consecutive input channels
        for y in range(kh):
            for x in range(kw):
                for g in range(0, i, m):
                    col = a[f, g:g + m, y, x]
                    keep = sorted(range(m), key=lambda j: -float(col[j]))[:n]
                    for j in keep:
                        hard[f, g + j, y, x] = 1.0
    return hard * factor


@pytest.mark.parametrize('n,m,k', [(2, 4, 3), (1, 4, 3), (2, 8, 1), (1, 4, 2)])
def test_soft_mask_matches_the_formula(n, m, k):
    torch.manual_seed(2)
    layer = CONV(8 if m < 8 else 16, 6, k, n=n, m=m, tau=0.02)
    want = _ref_soft_mask(layer.weight.detach(), n, m, 0.02)
    got = layer.soft_mask().double()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(got.max()) > 2.0 if k > 1 else float(got.max()) < 2.0  # kernel axis
    assert set(got.flatten().tolist()) - {0.0} and float(got[got > 0].min()) >= 1.0


# ------------------------------------------------------------------ gradient
@pytest.mark.parametrize('scale', [1.0, 1024.0])
def test_gradient_is_the_ste_plus_scaled_decay(scale):
    torch.manual_seed(3)
    layer = CONV(8, 4, 3, n=2, m=4, padding=1, lambda_w=0.05)
    layer.nm_update(_state(5))  # mid-schedule: 1 pruned of 4
    x, g = torch.randn(2, 8, 5, 5), torch.randn(2, 4, 5, 5)
    mask = layer.soft_mask().detach()
    weff = (layer.weight.detach() * mask).requires_grad_()
    (F.conv2d(x, weff, layer.bias.detach(), padding=1) * g).sum().backward()
    want = weff.grad + 0.05 * (mask == 0) * layer.weight.detach()
    layer.nm_grad_scale = scale
    (layer(x) * g * scale).sum().backward()
    torch.testing.assert_close(layer.weight.grad / scale, want, rtol=1e-5, atol=1e-6)
    assert bool((mask == 0).any())  # the decay term was exercised


def test_no_grad_forward_equals_training_forward():
    torch.manual_seed(4)
    layer = CONV(8, 8, 3, n=2, m=4, padding=1)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        a = layer(x)
    torch.testing.assert_close(layer(x).detach(), a, rtol=0, atol=0)
    torch.testing.assert_close(a, F.conv2d(x, layer.masked_weight(), layer.bias, padding=1),
                               rtol=0, atol=0)


def test_eval_mask_is_kept_until_the_weight_changes():
    torch.manual_seed(6)
    layer = CONV(8, 8, 3, n=2, m=4, padding=1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        a = layer(x)
        first = layer._eval_soft_mask()
        assert layer._eval_soft_mask() is first  # kept between forwards
        layer.weight.mul_(-2.0)  # an in-place change: its version moves
        b = layer(x)
    torch.testing.assert_close(b, F.conv2d(x, layer.masked_weight(), layer.bias, padding=1),
                               rtol=0, atol=0)
    assert not torch.allclose(a, b)
    layer.nm_update(_state(5))  # p_t changes: 1 pruned, not 2
    with torch.no_grad():
        assert bool((layer._eval_soft_mask() != 0).sum() == 0.75 * layer.weight.numel())
    layer.train()
    assert '_nm_eval_mask' not in layer.__dict__


# ------------------------------------------------------------------ loss scale / accumulation
ITERS = 6




class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = CONV(8, 8, 3, padding=1, n=2, m=4, lambda_w=0.05)
        self.fc = LINEAR(8 * 4 * 4, 4, n=2, m=4, lambda_w=0.05)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))




@pytest.mark.parametrize('kind,accum', [('amp', 1), ('amp', 2), ('plain', 3)])
def test_update_independent_of_loss_scale_and_accumulation(kind, accum, cpu_amp):
    from lbc_mmdet.engine.hooks.nm_sparsity_hook import grad_scale_of
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 4, generator=g))
            for _ in range(ITERS)]
    ref = _Net()
    run, stale = copy.deepcopy(ref), copy.deepcopy(ref)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for start in range(0, ITERS, accum):  # unscaled, one step per window's whole batch
        x = torch.cat([d[0] for d in data[start:start + accum]])
        y = torch.cat([d[1] for d in data[start:start + accum]])
        opt.zero_grad()
        F.mse_loss(ref(x), y).backward()
        opt.step()
    for model, set_scale in ((run, True), (stale, False)):
        ow = scaled_optim_wrapper(model, kind, accum, ITERS)
        for x, y in data:
            if set_scale:
                set_nm_grad_scale(model, grad_scale_of(ow))
            ow.update_params(F.mse_loss(model(x), y))
    for (name, p_ref), p_run in zip(ref.named_parameters(), run.parameters()):
        torch.testing.assert_close(p_run, p_ref, rtol=1e-5, atol=1e-6, msg=name)
    for (_, a), (_, b) in zip(lbc_mmdet.sparse_layers(ref), lbc_mmdet.sparse_layers(run)):
        assert torch.equal(a.nm_mask(), b.nm_mask())
    diff = max(float((a - b).detach().abs().max())
               for a, b in zip(ref.parameters(), stale.parameters()))
    assert diff > 1e-4  # without nm_grad_scale the decay is off by the scale / counts


# ------------------------------------------------------------------ options, checkpoints
@pytest.mark.parametrize('opts,msg', [
    (dict(tau=0), r'`tau` must be > 0'), (dict(lambda_w=-1.0), r'`lambda_w` must be >= 0'),
    (dict(schedule='step'), r'`schedule` must be one of'),
    (dict(exp_rate='1'), r'`exp_rate` must be a number')])
def test_options_are_validated(opts, msg):
    with pytest.raises(ValueError, match=msg):
        CONV(8, 8, 3, n=2, m=4, **opts)


def test_frozen_layers_are_noted():
    layer = CONV(8, 8, 3, n=2, m=4)
    assert layer.nm_warnings() == []
    layer.weight.requires_grad_(False)
    assert 'frozen' in layer.nm_warnings()[0]


def test_checkpoint_round_trip_and_other_pattern_refused():
    a = CONV(8, 8, 3, n=1, m=4)
    a.nm_update(_state(10))
    assert int(a.state_dict()['pruned']) == 3
    b = CONV(8, 8, 3, n=1, m=4)
    b.nm_update(_state(0))
    b.load_state_dict(a.state_dict())
    assert b.nm_pruned == 3 and torch.equal(b.masked_weight(), a.masked_weight())
    with pytest.raises(CheckpointMismatchError, match='another N:M pattern'):
        CONV(8, 8, 3, n=2, m=4).load_state_dict(a.state_dict())
    dense = nn.Conv2d(8, 8, 3).state_dict()
    c = CONV(8, 8, 3, n=2, m=4)
    c.load_state_dict(dense)  # a dense checkpoint: no missing-key error
    assert c.nm_init_from_dense and c.nm_pruned == 2


def test_export_verify_and_stock_mmdet_resnet_load():
    from mmdet.models.backbones import ResNet
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)  # conv_cfg resolves in mmdet's MODELS
    torch.manual_seed(5)
    sparse = ResNet(depth=18, conv_cfg=dict(type='MaxQConv2d', n=2, m=4), norm_eval=False)
    for _, layer in lbc_mmdet.sparse_layers(sparse):
        layer.nm_update(_state(10))
    state, report = export_sparse_state_dict(sparse)
    assert report['methods'] == ['maxq'] and report['summary']['all_nm_valid']
    assert not any(k.endswith('.pruned') for k in state)
    assert verify_nm(state, 2, 4, all_layers=True).ok
    stock = ResNet(depth=18)
    stock.load_state_dict(state, strict=True)
    sparse.eval()
    stock.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(sparse(x), stock(x)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ runner: resume
class _Crash(Exception):
    pass


class _CrashHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == 3:
            raise _Crash()


def _runner(work_dir, name, resume=False):
    hooks = [dict(type='NMSparsityHook', ti=0, tf=4), dict(type='RNGStateHook')]
    return Runner(model=toy_model('maxq'), resume=resume,
                  **toy_runner_kwargs(work_dir, max_iters=8, custom_hooks=hooks,
                                      ckpt_interval=2, name=name))


def test_resume_mid_schedule_is_bitwise_equal(tmp_path):
    full = _runner(str(tmp_path / 'full'), 'full')
    full.train()
    cut = _runner(str(tmp_path / 'cut'), 'cut')
    cut.register_hook(_CrashHook())
    with pytest.raises(_Crash):
        cut.train()
    ckpt = torch.load(str(tmp_path / 'cut' / 'iter_2.pth'), map_location='cpu',
                      weights_only=True)['state_dict']
    assert int(ckpt['conv2.pruned']) == 1  # linear, t=2 of [0, 4]: floor(2 * 0.5)
    resumed = _runner(str(tmp_path / 'cut'), 'resumed', resume=True)
    resumed.train()
    want, got = method_state(full.model), method_state(resumed.model)
    assert set(want) == set(got) and 'conv2.pruned' in want
    for key in want:
        assert torch.equal(got[key], want[key]), key
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
    for _, layer in lbc_mmdet.sparse_layers(resumed.model):
        assert layer.nm_pruned == 2 and is_exact_nm(layer)
