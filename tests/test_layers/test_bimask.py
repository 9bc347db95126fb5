"""Bi-Mask layers against references written here (explicit loops over the groups)."""
import copy
import itertools
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.accounting.analytic import schedule_flops
from lbc_mmdet.accounting.conventions import layer_densities
from lbc_mmdet.deploy.export import export_sparse_state_dict
from lbc_mmdet.deploy.verify import verify_nm
from lbc_mmdet.engine.hooks.nm_sparsity_hook import grad_scale_of
from lbc_mmdet.errors import CheckpointMismatchError
from lbc_mmdet.layers import NMScheduleState, get_method, set_nm_grad_scale
from lbc_mmdet.layers.bimask import BiMaskConv2d, BiMaskLinear
from lbc_mmdet.nm import random_permutations

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_engine'))
from _common import scaled_optim_wrapper  # noqa: E402
from _nm_toy import method_state, toy_model, toy_runner_kwargs  # noqa: E402

PATTERNS = [(2, 4), (1, 4), (2, 8), (1, 16)]


def state(iteration):
    return NMScheduleState(t=float(iteration), ti=0.0, tf=0.0, iteration=iteration)


# --------------------------------------------------------------------------- references
def in_groups(shape, m):
    """Forward groups: M consecutive input channels at one (output, ky, kx)."""
    o, i = shape[:2]
    rest = list(itertools.product(*[range(s) for s in shape[2:]]))
    return [[(a, c) + r for c in range(c0, c0 + m)]
            for a in range(o) for r in rest for c0 in range(0, i, m)]


def out_groups(shape, m, perm):
    """Backward groups: M consecutive permuted output channels at one (input, ky, kx)."""
    o = shape[0]
    rest = list(itertools.product(*[range(s) for s in shape[1:]]))
    return [[(int(perm[b + j]),) + r for j in range(m)]
            for r in rest for b in range(0, o, m)]


def ref_forward_mask(w, n, m):
    mask = torch.zeros(w.shape, dtype=torch.bool)
    for idx in in_groups(tuple(w.shape), m):
        ranked = sorted(range(m), key=lambda p: (-abs(float(w[idx[p]])), p))
        for p in ranked[:n]:
            mask[idx[p]] = True
    return mask


def ref_backward_mask(w, fmask, n, m, perm):
    """Per permuted output group: the top n of |w * F|, forward-kept weights before
    pruned ones (ties: the earlier position in the group)."""
    mask = torch.zeros(w.shape, dtype=torch.bool)
    for idx in out_groups(tuple(w.shape), m, perm):
        ranked = sorted(range(m), key=lambda p: (
            not bool(fmask[idx[p]]), -abs(float(w[idx[p]] * fmask[idx[p]])), p))
        for p in ranked[:n]:
            mask[idx[p]] = True
    return mask


def ref_kept(fmask, n, m, perm):
    return sum(min(n, sum(bool(fmask[e]) for e in idx))
               for idx in out_groups(tuple(fmask.shape), m, perm))


CONVS = [dict(k=3, stride=1, padding=1, dilation=1), dict(k=3, stride=2, padding=1,
                                                          dilation=1),
         dict(k=3, stride=1, padding=2, dilation=2), dict(k=1, stride=2, padding=0,
                                                          dilation=1)]


def make(kind, n, m, conv=None, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('perm_candidates', 6)
    if kind == 'conv':
        c = conv or CONVS[0]
        layer = BiMaskConv2d(m * 2, m * 2, c['k'], stride=c['stride'], padding=c['padding'],
                             dilation=c['dilation'], n=n, m=m, **kwargs)
        x = torch.randn(2, m * 2, 7, 7)
        ref = lambda x_, w, b: F.conv2d(x_, w, b, c['stride'], c['padding'],  # noqa: E731
                                        c['dilation'])
    else:
        layer = BiMaskLinear(m * 2, m * 3, n=n, m=m, **kwargs)
        x = torch.randn(3, 2, m * 2)
        ref = F.linear
    layer.nm_update(state(0))  # the first permutation search
    return layer, x, ref


# --------------------------------------------------------------------------- masks
@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
def test_masks_are_exact_nm_in_their_directions(kind, n, m):
    layer, _, _ = make(kind, n, m)
    assert layer.nm_eligible and layer.nm_method == 'bimask' and layer.nm_sparse_input_grad
    w, perm = layer.weight.detach(), layer.out_perm
    fmask = layer.nm_mask().bool()
    torch.testing.assert_close(fmask, ref_forward_mask(w, n, m), rtol=0, atol=0)
    assert layer.nm_is_exact()
    assert all(sum(bool(fmask[e]) for e in idx) == n for idx in in_groups(w.shape, m))
    # the backward mask: exactly N of every M permuted output channels
    bmask = layer.nm_backward_mask()
    torch.testing.assert_close(bmask, ref_backward_mask(w, fmask, n, m, perm), rtol=0,
                               atol=0)
    for idx in out_groups(tuple(w.shape), m, perm):
        assert sum(bool(bmask[e]) for e in idx) == n
        # the input gradient's weight: at most N per output group, all of them kept by F
        kept = sum(bool(fmask[e]) for e in idx)
        assert sum(bool(bmask[e] and fmask[e]) for e in idx) == min(n, kept)
    torch.testing.assert_close(layer.nm_input_grad_mask(), fmask & bmask, rtol=0, atol=0)
    # the backward mask is not the forward mask (different directions)
    assert not torch.equal(bmask, fmask)


@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', [(2, 4), (1, 4)])
def test_permutation_is_the_best_of_the_seeded_candidates(kind, n, m):
    layer, _, _ = make(kind, n, m, perm_seed=3)
    fmask = layer.nm_mask().bool()
    cands = random_permutations(layer.weight.shape[0], 6, 3 * 1_000_003 + 0)
    scores = [ref_kept(fmask, n, m, p) for p in cands]
    best = max(range(6), key=lambda i: (scores[i], -i))  # first maximum
    assert torch.equal(layer.out_perm, cands[best])
    assert int(layer.perm_iteration) == 0
    assert layer.nm_stats()['bwd_kept'] == pytest.approx(
        scores[best] / int(fmask.sum()))
    # the search is a function of (weights, seed, iteration) only
    torch.manual_seed(123)
    other, _, _ = make(kind, n, m, perm_seed=3)
    assert torch.equal(other.out_perm, layer.out_perm)


def test_search_every_interval_iterations_only():
    layer, _, _ = make('conv', 2, 4, perm_interval=3, perm_candidates=20)
    seen = {0: layer.out_perm.clone()}
    for it in range(1, 8):
        with torch.no_grad():  # the weights move: a search may pick another permutation
            layer.weight.add_(0.3 * torch.randn_like(layer.weight))
        before = layer.out_perm.clone()
        layer.nm_update(state(it))
        if it % 3:
            assert torch.equal(layer.out_perm, before), it
            assert int(layer.perm_iteration) == 3 * (it // 3)
        else:
            assert int(layer.perm_iteration) == it
            seen[it] = layer.out_perm.clone()
    assert not torch.equal(seen[3], seen[6])  # the candidates change with the iteration
    # identity until the first search
    fresh = BiMaskConv2d(8, 8, 1, n=2, m=4)
    assert torch.equal(fresh.out_perm, torch.arange(8)) and int(fresh.perm_iteration) == -1


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize('kind,conv', [('conv', c) for c in CONVS] + [('linear', None)])
@pytest.mark.parametrize('n,m', [(2, 4), (1, 4), (2, 8)])
@pytest.mark.parametrize('lambda_w', [2e-4, 0.5])
def test_gradients_match_hand_computed_ones(kind, conv, n, m, lambda_w):
    layer, x, ref = make(kind, n, m, conv, lambda_w=lambda_w)
    x = x.requires_grad_(True)
    out = layer(x)
    g = torch.randn_like(out)
    out.backward(g)
    w, b = layer.weight.detach(), layer.bias.detach()
    fmask = ref_forward_mask(w, n, m)
    bf = ref_backward_mask(w, fmask, n, m, layer.out_perm) & fmask
    torch.testing.assert_close(out, ref(x.detach(), w * fmask, b))
    # input gradient: with the backward mask only
    x_ref = x.detach().clone().requires_grad_(True)
    ref(x_ref, w * bf, b).backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad)
    # ... which is not the forward-masked (SR-STE) input gradient
    x_fwd = x.detach().clone().requires_grad_(True)
    ref(x_fwd, w * fmask, b).backward(g)
    assert (x.grad - x_fwd.grad).abs().max() > 1e-4
    # weight gradient: the dense STE gradient of w * F plus the decay of the pruned ones
    w_eff = (w * fmask).requires_grad_(True)
    b_ref = b.clone().requires_grad_(True)
    ref(x.detach(), w_eff, b_ref).backward(g)
    torch.testing.assert_close(layer.weight.grad, w_eff.grad + lambda_w * (~fmask) * w)
    torch.testing.assert_close(layer.bias.grad, b_ref.grad)
    assert (layer.weight.grad[~fmask] != 0).all()  # dense: pruned weights get one too


def test_padding_modes_and_no_grad_paths():
    torch.manual_seed(0)
    for kwargs in (dict(padding='same'), dict(padding=1, padding_mode='reflect')):
        layer = BiMaskConv2d(8, 8, 3, n=2, m=4, perm_candidates=4, **kwargs)
        layer.nm_update(state(0))
        x = torch.randn(1, 8, 6, 6, requires_grad=True)
        out = layer(x)
        g = torch.randn_like(out)
        out.backward(g)
        dense = nn.Conv2d(8, 8, 3, **kwargs)
        dense.weight.data.copy_(layer.weight.detach() * layer.nm_input_grad_mask())
        dense.bias.data.copy_(layer.bias.detach())
        x2 = x.detach().clone().requires_grad_(True)
        dense(x2).backward(g)
        torch.testing.assert_close(x.grad, x2.grad)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), out.detach())
    layer.weight.requires_grad_(False)
    torch.testing.assert_close(layer(x.detach()), out.detach())


def test_backward_left_dense_where_outputs_do_not_group():
    torch.manual_seed(0)
    for layer in (BiMaskConv2d(8, 6, 3, n=2, m=4),  # 6 outputs
                  BiMaskConv2d(8, 8, 3, n=2, m=4, groups=2)):  # grouped
        assert layer.nm_eligible and not layer.nm_sparse_input_grad
        assert layer.nm_warnings() and not layer.nm_update(state(0))
        fmask = layer.nm_mask().bool()
        torch.testing.assert_close(layer.nm_input_grad_mask(), fmask)
        x = torch.randn(1, 8, 5, 5, requires_grad=True)
        layer(x).sum().backward()
        x2 = x.detach().clone().requires_grad_(True)
        F.conv2d(x2, layer.weight.detach() * fmask, layer.bias.detach(),
                 groups=layer.groups).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        # the paper convention counts its input gradient dense
        assert layer_densities(layer, convention='paper')['input_grad'] == 1.0


def test_bf16_autocast_runs_with_input_dtypes():
    layer, x, _ = make('conv', 2, 4)
    x = x.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- accounting
def test_densities_and_paper_flops():
    layer, _, _ = make('conv', 2, 4)
    assert layer.nm_train_densities() == dict(forward=0.5, input_grad=0.5, weight_grad=1.0)
    assert layer_densities(layer, convention='paper') == dict(forward=0.5, input_grad=0.5,
                                                              weight_grad=1.0)
    assert BiMaskConv2d.nm_schedule_densities(1, 16, 3.0, 0.0, 0.0) == dict(
        forward=1 / 16, input_grad=1 / 16, weight_grad=1.0)
    # (N/M + N/M + 1) / 3 on ResNet-50's N:M layers; SR-STE pays a dense input gradient
    assert schedule_flops(BiMaskConv2d, 2, 4, 120, 0, 0).ratio == pytest.approx(2 / 3)
    srste = get_method('srste').layers['Conv2d']
    assert schedule_flops(srste, 2, 4, 120, 0, 0).ratio == pytest.approx(5 / 6)
    # at 1:16 the classifier's 1000 outputs do not group by 16: its input gradient is dense
    r = schedule_flops(BiMaskConv2d, 1, 16, 120, 0, 0).ratio
    assert (1 / 16 + 1 / 16 + 1) / 3 < r < (1 / 16 + 1 / 16 + 1) / 3 + 1e-3


# --------------------------------------------------------------------------- options, state
@pytest.mark.parametrize('field,value', [('lambda_w', -1.0), ('lambda_w', 'x'),
                                         ('perm_candidates', 0), ('perm_interval', 1.5),
                                         ('perm_seed', -2), ('perm_interval', True)])
def test_options_are_validated(field, value):
    with pytest.raises(ValueError, match=f'Bi-Mask: `{field}`'):
        BiMaskConv2d(8, 8, 1, n=2, m=4, **{field: value})


def test_defaults_and_registry():
    layer = BiMaskConv2d(8, 8, 1, n=2, m=4)
    assert (layer.lambda_w, layer.perm_candidates, layer.perm_interval,
            layer.perm_seed) == (2e-4, 100, 100, 0)
    method = get_method('bimask')
    assert method.display_name == 'Bi-Mask'
    assert method.layers == dict(Conv2d=BiMaskConv2d, Linear=BiMaskLinear)


def test_checkpoint_round_trip_and_refusals():
    layer, _, _ = make('conv', 2, 4, perm_interval=5)
    layer.nm_update(state(5))
    dst = BiMaskConv2d(8, 8, 3, padding=1, n=2, m=4, perm_interval=5)
    dst.load_state_dict(layer.state_dict())
    assert torch.equal(dst.out_perm, layer.out_perm) and int(dst.perm_iteration) == 5
    assert not dst.nm_update(state(5))  # searched already at this iteration (a resume)
    assert torch.equal(dst.out_perm, layer.out_perm)
    bad = layer.state_dict()
    bad['out_perm'] = torch.zeros(8, dtype=torch.long)
    with pytest.raises(CheckpointMismatchError, match='out_perm is not a permutation'):
        dst.load_state_dict(bad)
    with pytest.raises(CheckpointMismatchError):
        BiMaskConv2d(8, 12, 3, padding=1, n=2, m=4).load_state_dict(layer.state_dict())
    # a dense checkpoint: the state keeps its initial value, searched at the next update
    fresh = BiMaskConv2d(8, 8, 3, padding=1, n=2, m=4, perm_candidates=6)
    fresh.load_state_dict(nn.Conv2d(8, 8, 3, padding=1).state_dict())
    assert fresh.nm_init_from_dense and int(fresh.perm_iteration) == -1
    fresh.nm_update(state(7))
    assert int(fresh.perm_iteration) == 7


# --------------------------------------------------------------------------- scaling
ITERS = 6


class Net(nn.Module):

    def __init__(self, **kwargs):
        super().__init__()
        torch.manual_seed(0)
        self.conv = BiMaskConv2d(8, 8, 3, padding=1, n=2, m=4, perm_candidates=4, **kwargs)
        self.fc = BiMaskLinear(8 * 4 * 4, 4, n=2, m=4, perm_candidates=4, **kwargs)
        for _, layer in lbc_mmdet.sparse_layers(self):
            layer.nm_update(state(0))

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))






@pytest.mark.parametrize('kind,accum', [('amp', 1), ('amp', 2), ('plain', 3)])
def test_update_independent_of_loss_scale_and_accumulation(kind, accum, cpu_amp):
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 4, generator=g))
            for _ in range(ITERS)]
    ref = Net(lambda_w=0.05)  # a decay large enough to matter
    run, stale = copy.deepcopy(ref), copy.deepcopy(ref)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for start in range(0, ITERS, accum):  # unscaled, one step per window on its batch
        x = torch.cat([d[0] for d in data[start:start + accum]])
        y = torch.cat([d[1] for d in data[start:start + accum]])
        opt.zero_grad()
        F.mse_loss(ref(x), y).backward()
        opt.step()
    for model, set_scale in ((run, True), (stale, False)):
        ow = scaled_optim_wrapper(model, kind, accum, ITERS)
        scales = []
        for x, y in data:
            if set_scale:
                scales.append(grad_scale_of(ow))
                set_nm_grad_scale(model, scales[-1])
            ow.update_params(F.mse_loss(model(x), y))
        if set_scale and kind == 'amp':
            assert len(set(scales)) > 1  # the dynamic scale moved along the run
    for (name, p_ref), p_run in zip(ref.named_parameters(), run.parameters()):
        torch.testing.assert_close(p_run, p_ref, rtol=1e-5, atol=1e-6, msg=name)
    # the check has teeth: without nm_grad_scale the decay is off by the scale / counts
    diff = max(float((a - b).abs().max()) for a, b in zip(ref.parameters(),
                                                          stale.parameters()))
    assert diff > 1e-4


# --------------------------------------------------------------------------- runner, resume
class Crash(Exception):
    pass


class CrashHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == 5:
            raise Crash('killed after iteration 5')


def _runner(work_dir, name, resume=False):
    model = toy_model('bimask', perm_interval=3, perm_candidates=8)
    hooks = [dict(type='NMSparsityHook', ti=0, tf=1), dict(type='RNGStateHook')]
    return Runner(model=model, resume=resume, **toy_runner_kwargs(
        work_dir, max_iters=8, custom_hooks=hooks, ckpt_interval=2, name=name))


def test_resume_mid_interval_is_bitwise_equal(tmp_path):
    """Searches at 0, 3, 6; the run dies after 5 and resumes from iteration 4 (between
    two searches): it ends as the uninterrupted run, bit for bit."""
    full = _runner(str(tmp_path / 'full'), 'bm_full')
    full.train()
    cut_dir = str(tmp_path / 'cut')
    cut = _runner(cut_dir, 'bm_cut')
    cut.register_hook(CrashHook())
    with pytest.raises(Crash):
        cut.train()
    ckpt = torch.load(osp.join(cut_dir, 'iter_4.pth'), map_location='cpu',
                      weights_only=True)['state_dict']
    assert int(ckpt['conv2.perm_iteration']) == 3
    resumed = _runner(cut_dir, 'bm_resumed', resume=True)
    resumed.train()
    want, got = method_state(full.model), method_state(resumed.model)
    assert set(want) == set(got) and any(k.endswith('out_perm') for k in want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    for (name, a), (_, b) in zip(full.model.named_parameters(),
                                 resumed.model.named_parameters()):
        assert torch.equal(a, b), name
    layers = dict(lbc_mmdet.sparse_layers(full.model))
    assert all(int(lay.perm_iteration) == 6 for lay in layers.values())
    assert all(lay.nm_is_exact() for lay in layers.values())


# --------------------------------------------------------------------------- export
def test_export_verify_and_stock_mmdet_load():
    from mmdet.models.backbones import ResNet
    torch.manual_seed(0)
    sparse = ResNet(depth=18, conv_cfg=dict(type='BiMaskConv2d', n=2, m=4,
                                            perm_candidates=4), init_cfg=None)
    layers = lbc_mmdet.sparse_layers(sparse)
    assert sum(lay.nm_eligible for _, lay in layers) == len(layers) - 1  # stem dense
    for _, layer in layers:
        layer.nm_update(state(0))
    x = torch.randn(1, 3, 64, 64)
    sparse(x)[-1].sum().backward()  # one training step's backward on the sparse path
    exported, report = export_sparse_state_dict(sparse)
    assert report['methods'] == ['bimask'] and report['summary']['all_nm_valid']
    assert not any('out_perm' in k or 'perm_iteration' in k for k in exported)
    result = verify_nm(exported, 2, 4, include=['layer*'])
    assert result.ok and len(result.checked) == len(layers) - 1
    stock = ResNet(depth=18, init_cfg=None)
    stock.load_state_dict(exported, strict=True)
    sparse.eval()
    stock.eval()
    with torch.no_grad():
        for a, b in zip(sparse(x), stock(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
