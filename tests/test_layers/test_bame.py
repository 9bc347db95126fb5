"""BAME layers (reconstruction, see ``docs/bame_spec.md``) against references written here."""
import itertools
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import SPARSE_LAYERS
from mmdet.registry import MODELS

from lbc_mmdet.layers import NMScheduleState
from lbc_mmdet.layers.bame import BAMEConv2d, BAMELinear

PATTERNS = [(2, 4), (1, 4), (2, 8)]
STATE_NAMES = {'mask', 'designated', 'frozen', 'code', 'prev_code', 'n_obs', 'osc_count',
               'gain_est', 'grad_acc', 'last_update', 'initialized'}


def S(t, ti=0.0, tf=30.0, it=None):  # noqa: N802
    return NMScheduleState(t=float(t), ti=float(ti), tf=float(tf),
                           iteration=int(t if it is None else it))


def ref_group_index(shape, m):
    """Group id and position of every weight element, by explicit indexing."""
    gid = torch.empty(shape, dtype=torch.long)
    pos = torch.empty(shape, dtype=torch.long)
    if len(shape) == 4:
        o, i, kh, kw = shape
        for a, c, y, x in itertools.product(range(o), range(i), range(kh), range(kw)):
            gid[a, c, y, x] = ((a * kh + y) * kw + x) * (i // m) + c // m
            pos[a, c, y, x] = c % m
    else:
        o, i = shape
        for a, c in itertools.product(range(o), range(i)):
            gid[a, c] = a * (i // m) + c // m
            pos[a, c] = c % m
    return gid, pos


def ref_grouped(tensor, gid, pos, g, m):
    """Weight-shaped tensor -> [G, M] by the explicit index."""
    out = torch.zeros(g, m, dtype=tensor.dtype)
    out[gid.flatten(), pos.flatten()] = tensor.flatten()
    return out


def ref_k(t, ti, tf, rho0, g):
    if not ti <= t < tf:
        return 0
    return math.ceil(round(rho0 * (1 - (t - ti) / (tf - ti))**3 * g, 9))


def make_layer(kind, n, m, channels=2, **kwargs):
    torch.manual_seed(0)
    if kind == 'conv':
        layer = BAMEConv2d(m * channels, 3, 3, padding=1, n=n, m=m, **kwargs)
        x = torch.randn(2, m * channels, 5, 5)
        ref_forward = lambda w, x=x: F.conv2d(x, w, layer.bias, padding=1)  # noqa: E731
    else:
        layer = BAMELinear(m * channels, 3, n=n, m=m, **kwargs)
        x = torch.randn(4, m * channels)
        ref_forward = lambda w, x=x: F.linear(x, w, layer.bias)  # noqa: E731
    return layer, x, ref_forward


def channel_gate(x, m, positions):
    """Zero every input channel whose position inside its group is not in
    ``positions``: only those weights then get a non-zero gradient."""
    keep = torch.zeros(x.shape[1])
    for c in range(x.shape[1]):
        keep[c] = float(c % m in positions)
    shape = [1, -1] + [1] * (x.dim() - 2)
    return x * keep.view(shape)


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
def test_forward_and_gradients_match_reference(kind, n, m):
    layer, x, ref_forward = make_layer(kind, n, m)
    g = layer.nm_num_groups
    gid, pos = ref_group_index(layer.weight.shape, m)
    # initial mask: top-n |w| of every group
    wg = ref_grouped(layer.weight.detach(), gid, pos, g, m)
    for r in range(g):
        top = sorted(range(m), key=lambda i: (-abs(wg[r, i].item()), i))[:n]
        assert set(layer.mask[r].nonzero().flatten().tolist()) == set(top)
    gen = torch.Generator().manual_seed(1)
    layer.designated.copy_(torch.rand(g, generator=gen) > 0.5)
    mask = layer.mask[gid, pos].float()
    support = (layer.mask | layer.designated[:, None])[gid, pos].float()
    torch.testing.assert_close(layer.nm_mask(), mask)
    torch.testing.assert_close(layer.nm_support(), support)

    xin = x.clone().requires_grad_(True)
    out = layer(xin)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    w_eff = (layer.weight.detach() * mask).requires_grad_(True)
    xref = x.clone().requires_grad_(True)
    ref_out = ref_forward(w_eff, xref)
    ref_out.backward(grad_out)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(xin.grad, xref.grad)  # input gradient through W * mask
    torch.testing.assert_close(layer.weight.grad, w_eff.grad * support)
    assert (layer.weight.grad[support == 0] == 0).all()
    torch.testing.assert_close(layer.grad_acc, layer.weight.grad)
    # a second backward accumulates
    first = layer.weight.grad.clone()
    layer.weight.grad = None
    layer(x).pow(2).sum().backward()
    torch.testing.assert_close(layer.grad_acc, first + layer.weight.grad)
    # no accumulation without grad, nor when nothing is designated
    before = layer.grad_acc.clone()
    with torch.no_grad():
        layer(x)
    layer.designated.zero_()
    layer.weight.grad = None
    layer(x).sum().backward()
    assert torch.equal(layer.grad_acc, before)
    torch.testing.assert_close(layer.weight.grad,
                               layer.weight.grad * mask)


# --------------------------------------------------------------------------- training loop
@pytest.mark.parametrize('kind', ['conv', 'linear'])
@pytest.mark.parametrize('n,m', PATTERNS)
def test_sgd_training_loop_keeps_every_invariant(kind, n, m):
    interval, ti, tf, total = 3, 0, 33, 40
    layer, x, _ = make_layer(kind, n, m, channels=2, interval=interval, rho0=1.0)
    g = layer.nm_num_groups
    gid, pos = ref_group_index(layer.weight.shape, m)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    # the important weights alternate between positions A and B every interval
    xa = channel_gate(x, m, set(range(n)))
    xb = channel_gate(x, m, set(range(n, 2 * n)))
    assert layer.nm_update(S(0, ti, tf)) in (True, False)
    assert int(layer.designated.sum()) == ref_k(0, ti, tf, 1.0, g) == g
    ref_acc = torch.zeros_like(layer.weight)
    frozen_at = {}
    prev_frozen = layer.frozen.clone()
    updates = 0
    for it in range(total):
        mask, designated = layer.mask.clone(), layer.designated.clone()
        support = (mask | designated[:, None])[gid, pos]
        opt.zero_grad()
        xin = xa if (it // interval) % 2 == 0 else xb
        out = layer(xin)
        (out.pow(2).mean() + out.mean()).backward()
        # zero weight gradient outside mask OR designated block
        assert (layer.weight.grad[~support] == 0).all()
        if designated.any():
            ref_acc += layer.weight.grad
        torch.testing.assert_close(layer.grad_acc, ref_acc, rtol=1e-6, atol=1e-7)
        opt.step()
        t = it + 1
        layer.nm_update(S(t, ti, tf))
        # exactly n kept per group, and the effective weight is n:m sparse
        assert (layer.mask.sum(1) == n).all()
        assert layer.nm_is_exact()
        eff = ref_grouped(layer.masked_weight(), gid, pos, g, m)
        assert ((eff != 0).sum(1) <= n).all()
        if int(layer.last_update) == t:  # an update ran
            updates += 1
            assert t % interval == 0 and ti <= t < tf
            ref_acc.zero_()
            assert (layer.grad_acc == 0).all()
            unfrozen = int((~layer.frozen).sum())
            assert int(layer.designated.sum()) == min(ref_k(t, ti, tf, 1.0, g), unfrozen)
        else:
            assert torch.equal(layer.mask, mask)  # the mask changes only at updates
        assert not (layer.designated & layer.frozen).any()
        assert not (prev_frozen & ~layer.frozen).any()  # frozen for good
        for b in layer.frozen.nonzero().flatten().tolist():
            frozen_at.setdefault(b, layer.mask[b].clone())
            assert torch.equal(layer.mask[b], frozen_at[b])
        prev_frozen = layer.frozen.clone()
        if t >= tf:  # from tf on: nothing designated, nothing accumulated
            assert not layer.designated.any() and (layer.grad_acc == 0).all()
            ref_acc.zero_()
    assert updates == len(range(interval, tf, interval))
    assert frozen_at, 'the alternating inputs should make some block oscillate'
    # fully sparse after tf: no designated block, zero gradient outside the mask
    opt.zero_grad()
    layer(xa).pow(2).mean().backward()
    assert (layer.weight.grad[layer.nm_mask() == 0] == 0).all()
    d = n / m
    assert layer.nm_train_densities() == dict(forward=d, input_grad=d, weight_grad=d)


# --------------------------------------------------------------------------- LMA / OBF
@pytest.mark.parametrize('criterion', ['taylor', 'magnitude'])
def test_lma_picks_top_n_in_designated_unfrozen_blocks_only(criterion):
    n, m, interval = 2, 4, 5
    layer = BAMELinear(8, 6, n=n, m=m, interval=interval, criterion=criterion)
    g = layer.nm_num_groups
    layer.nm_update(S(0, 0, 100))  # first designation
    gen = torch.Generator().manual_seed(4)
    designated = torch.rand(g, generator=gen) > 0.4
    frozen = (torch.rand(g, generator=gen) > 0.6) & ~designated
    frozen[0] = True  # designated and frozen: must not adapt
    designated[0] = True
    layer.designated.copy_(designated)
    layer.frozen.copy_(frozen)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(6, 8, generator=gen))
    layer.grad_acc.copy_(torch.randn(6, 8, generator=gen))
    old = layer.mask.clone()
    wg = layer.weight.detach().reshape(g, m)
    gg = layer.grad_acc.reshape(g, m) / interval
    changed = layer.nm_update(S(interval, 0, 100))
    assert changed == bool((layer.mask != old).any())
    for b in range(g):
        if designated[b] and not frozen[b]:
            s = (wg[b] * gg[b]).abs() if criterion == 'taylor' else wg[b].abs()
            top = sorted(range(m), key=lambda i: -s[i].item())[:n]
            assert set(layer.mask[b].nonzero().flatten().tolist()) == set(top)
            gain = s[top].sum() - s[old[b]].sum()
            assert layer.gain_est[b].item() == pytest.approx(gain.item(), rel=1e-5,
                                                             abs=1e-6)
            assert layer.n_obs[b] == 1
        else:
            assert torch.equal(layer.mask[b], old[b])
            assert math.isnan(layer.gain_est[b]) and layer.n_obs[b] == 0
    # the next designation ranks the never-measured blocks first
    never = layer.gain_est.isnan() & ~layer.frozen
    k = ref_k(interval, 0, 100, 0.5, g)
    if k <= int(never.sum()):
        assert not (layer.designated & ~never).any()


def test_a_b_a_b_block_is_frozen_with_defaults():
    layer = BAMELinear(4, 1, n=2, m=4, interval=1)  # one block, default tau/min_obs
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[4.0, 3.0, 1.0, 0.5]]))
    a, b = [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]
    layer.nm_update(S(0, 0, 1000))
    assert layer.nm_mask()[0].tolist() == a and layer.designated.tolist() == [True]
    seq = [a]
    for it, target in enumerate([b, a, b, a, b, a], start=1):
        # the gradient makes the target positions the most important ones
        layer.grad_acc.copy_(torch.tensor([target]) * 10.0)
        layer.nm_update(S(it, 0, 1000))
        seq.append(layer.nm_mask()[0].tolist())
        if it == 3:
            assert layer.frozen.tolist() == [True]
            assert layer.n_obs.tolist() == [3] and layer.osc_count.tolist() == [2]
            assert layer.osc.tolist() == [pytest.approx(2 / 3)]
            assert not layer.designated.any()
        if it < 3:
            assert layer.frozen.tolist() == [False]
    assert seq == [a, b, a, b, b, b, b]  # frozen on B for good
    stats = layer.nm_stats()
    assert stats['frozen_frac'] == 1.0 and stats['designated_frac'] == 0.0
    assert stats['osc_mean'] == pytest.approx(2 / 3)


def test_freezing_disabled_by_tau_above_one():
    layer = BAMELinear(4, 1, n=2, m=4, interval=1, tau=1.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.nm_update(S(0, 0, 1000))  # tied |w|: initial mask [1, 1, 0, 0]
    assert layer.nm_mask()[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    for it in range(1, 7):
        target = [1.0, 1.0, 0.0, 0.0] if it % 2 == 0 else [0.0, 0.0, 1.0, 1.0]
        layer.grad_acc.copy_(torch.tensor([target]))
        with torch.no_grad():
            layer.weight.fill_(1.0)
        layer.nm_update(S(it, 0, 1000))
        assert layer.nm_mask()[0].tolist() == target
    assert not layer.frozen.any() and layer.osc_count.item() == 5


def test_no_update_off_the_grid_nor_outside_the_window():
    layer = BAMELinear(16, 4, n=2, m=4, interval=10)
    g = layer.nm_num_groups
    assert not layer.nm_update(S(3, ti=5, tf=50))  # before ti: nothing designated
    assert not layer.designated.any() and int(layer.last_update) == -1
    layer.nm_update(S(7, ti=5, tf=50))  # first call inside: designation off the grid
    assert int(layer.last_update) == 7
    assert int(layer.designated.sum()) == ref_k(7, 5, 50, 0.5, g)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    for it in (8, 9, 11, 15):
        layer.nm_update(S(it, ti=5, tf=50))
    for k, v in layer.state_dict().items():
        torch.testing.assert_close(v, state[k], equal_nan=True)
    layer.nm_update(S(10, ti=5, tf=50))
    assert int(layer.last_update) == 10
    # a repeated call for the same iteration (resume: before_train) does nothing
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.grad_acc.fill_(1.0)
    layer.nm_update(S(10, ti=5, tf=50))
    assert int(layer.last_update) == 10 and (layer.grad_acc == 1).all()
    # from tf on: nothing designated
    layer.nm_update(S(50, ti=5, tf=50))
    assert not layer.designated.any() and (layer.grad_acc == 0).all()
    assert layer.nm_train_densities()['weight_grad'] == 0.5


# --------------------------------------------------------------------------- densities
def test_train_densities_and_stats():
    layer = BAMEConv2d(8, 4, 3, n=1, m=4)
    g = layer.nm_num_groups
    layer.designated[: g // 3] = True
    a = (g // 3) / g
    dens = layer.nm_train_densities()
    assert dens['forward'] == dens['input_grad'] == 0.25
    assert dens['weight_grad'] == pytest.approx(0.25 + 0.75 * a)
    stats = layer.nm_stats()
    assert stats['designated_frac'] == pytest.approx(a)
    assert stats['frozen_frac'] == 0.0 and stats['osc_mean'] == 0.0
    assert stats['exact'] == 1.0 and stats['nonzero'] == layer.weight.numel() / 4


# --------------------------------------------------------------------------- state
def _train(layer, x, iters, start=0, ti=0, tf=20):
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for it in range(start, start + iters):
        opt.zero_grad()
        layer(x).pow(2).mean().backward()
        opt.step()
        layer.nm_update(S(it + 1, ti, tf))


def test_state_dict_round_trip_and_resume():
    a, x, _ = make_layer('conv', 2, 4, interval=2)
    a.nm_update(S(0, 0, 20))
    _train(a, x, 7)
    sd = a.state_dict()
    assert set(sd) == STATE_NAMES | {'weight', 'bias'}
    assert set(a.nm_extra_state_names) == STATE_NAMES
    b, _, _ = make_layer('conv', 2, 4, interval=2)
    b.nm_update(S(0, 0, 20))
    b.load_state_dict(sd)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(b.nm_mask(), a.nm_mask())
    torch.testing.assert_close(b.nm_support(), a.nm_support())
    torch.testing.assert_close(b(x), a(x))
    # the loaded layer is initialised: no mask recomputation on the next call
    b.nm_update(S(7, 0, 20))
    torch.testing.assert_close(b.nm_mask(), a.nm_mask())
    # both continue identically (optimizers without state)
    _train(a, x, 9, start=7)
    _train(b, x, 9, start=7)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, equal_nan=True)


def test_initial_mask_recomputed_once_from_loaded_weights():
    layer = BAMELinear(8, 2, n=2, m=4)
    with torch.no_grad():  # e.g. pretrained weights loaded after the model was built
        layer.weight.copy_(torch.tensor([[1., 2., 3., 4., 4., 3., 2., 1.],
                                         [0., 0., 9., 9., 9., 0., 9., 0.]]))
    assert layer.nm_update(S(0, ti=5, tf=10))  # before the window: mask refreshed
    assert layer.mask.tolist() == [[False, False, True, True], [True, True, False, False],
                                   [False, False, True, True], [True, False, True, False]]
    assert bool(layer.initialized)
    with torch.no_grad():
        layer.weight.neg_().add_(10)
    assert not layer.nm_update(S(1, ti=5, tf=10))  # only once


def test_loading_a_checkpoint_of_another_pattern_is_refused():
    dst = BAMEConv2d(8, 4, 3, n=2, m=4)
    with pytest.raises(RuntimeError, match='another N:M pattern'):
        dst.load_state_dict(BAMEConv2d(8, 4, 3, n=2, m=8).state_dict())
    with pytest.raises(RuntimeError, match='exactly 2 of every 4'):
        dst.load_state_dict(BAMEConv2d(8, 4, 3, n=1, m=4).state_dict())


def test_ineligible_layer_stays_dense():
    stem = BAMEConv2d(3, 8, 7, n=2, m=4)
    assert not stem.nm_eligible and 'not divisible by M=4' in stem.nm_skip_reason
    assert set(stem.state_dict()) == {'weight', 'bias'}
    assert not stem.nm_update(S(0, 0, 10))
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(stem(x), F.conv2d(x, stem.weight, stem.bias))
    stem(x).sum().backward()
    assert (stem.weight.grad != 0).all()
    assert stem.nm_train_densities() == dict(forward=1.0, input_grad=1.0, weight_grad=1.0)
    assert stem.nm_stats() == dict(eligible=0.0)
    assert (stem.nm_mask() == 1).all()


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize('field,value', [
    ('interval', 0), ('interval', 2.5), ('interval', True), ('criterion', 'fisher'),
    ('freeze_min_obs', 0), ('freeze_min_obs', 1.5), ('tau', 0), ('tau', 'x'),
    ('rho0', 0), ('rho0', 1.5), ('rho0', None)
])
def test_options_are_validated(field, value):
    with pytest.raises(ValueError, match=f'`{field}`'):
        BAMELinear(8, 2, n=2, m=4, **{field: value})


def test_defaults_registry_and_sparsify():
    layer = MODELS.build(dict(type='BAMEConv2d', in_channels=8, out_channels=4,
                              kernel_size=3, n=2, m=4))
    assert isinstance(layer, BAMEConv2d) and layer.nm_method == 'bame'
    assert (layer.interval, layer.criterion, layer.freeze_min_obs, layer.tau,
            layer.rho0) == (100, 'taylor', 3, 0.5, 0.5)
    assert SPARSE_LAYERS['bame'] == {'Conv2d': BAMEConv2d, 'Linear': BAMELinear}
    dense = nn.Linear(16, 4)
    sparse = BAMELinear.from_dense(dense, n=1, m=4, interval=7)
    assert sparse.weight is dense.weight and sparse.interval == 7
    assert sparse.nm_is_exact()
    with pytest.raises(ValueError, match='`m`'):
        BAMELinear(64, 2, n=1, m=64)


# --------------------------------------------------------------------------- DDP
DDP_SCRIPT = textwrap.dedent('''
    import os
    import sys

    import types

    import torch
    import torch.distributed as dist

    rank, out, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # import torch and the BAME layer only (skip mmdet/mmengine: a faster start)
    for name in ('lbc_mmdet', 'lbc_mmdet.layers'):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, *name.split('.'))]
        sys.modules[name] = pkg
    registry = types.ModuleType('mmdet.registry')
    registry.MODELS = types.SimpleNamespace(
        module_dict={}, register_module=lambda *args, **kwargs: (lambda cls: cls))
    sys.modules['mmdet'] = types.ModuleType('mmdet')
    sys.modules['mmdet.registry'] = registry
    from lbc_mmdet.layers.base import NMScheduleState
    from lbc_mmdet.layers.bame import BAMELinear

    dist.init_process_group('gloo', init_method=f'file://{out}/rendezvous', rank=rank,
                            world_size=2)
    torch.manual_seed(0)
    layer = BAMELinear(16, 8, n=2, m=4, interval=2)
    # MMEngine's wrapper default; with True rank 0 would overwrite grad_acc every forward
    model = torch.nn.parallel.DistributedDataParallel(layer, broadcast_buffers=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = torch.randn(9, 8, 16, generator=torch.Generator().manual_seed(1))
    layer.nm_update(NMScheduleState(t=0.0, ti=0.0, tf=16.0, iteration=0))
    for it in range(9):
        opt.zero_grad()
        # each rank sees its own half of the batch
        model(xs[it][rank * 4:(rank + 1) * 4]).pow(2).mean().backward()
        opt.step()
        layer.nm_update(NMScheduleState(t=it + 1.0, ti=0.0, tf=16.0, iteration=it + 1))
    torch.save(layer.state_dict(), f'{out}/rank{rank}.pt')
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)
''')


def test_ddp_ranks_agree_and_match_the_full_batch(tmp_path):
    """Two gloo ranks with different data: grad_acc holds rank-local gradients, the
    update all-reduces it, so both ranks take the same decisions as one process on the
    full batch."""
    script = tmp_path / 'ddp.py'
    script.write_text(DDP_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    env = {'PYTHONPATH': str(root), 'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin',
           'PYTHONWARNINGS': 'ignore'}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path),
                               str(root)],
                              cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    r0 = torch.load(tmp_path / 'rank0.pt')
    r1 = torch.load(tmp_path / 'rank1.pt')
    # single process, full batch: the DDP-averaged gradient is the full-batch gradient
    torch.manual_seed(0)
    ref = BAMELinear(16, 8, n=2, m=4, interval=2)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    xs = torch.randn(9, 8, 16, generator=torch.Generator().manual_seed(1))
    ref.nm_update(S(0, 0, 16))
    for it in range(9):
        opt.zero_grad()
        ((ref(xs[it][:4]).pow(2).mean() + ref(xs[it][4:]).pow(2).mean()) / 2).backward()
        opt.step()
        ref.nm_update(S(it + 1, 0, 16))
    assert int(ref.n_obs.sum()) > 0
    for name in STATE_NAMES - {'grad_acc'}:  # grad_acc holds local partial sums
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(r0[name], ref.state_dict()[name], equal_nan=True,
                                   rtol=1e-4, atol=1e-6)
