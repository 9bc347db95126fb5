"""Training-FLOPs accounting: the maths by hand (lbc_mmdet.accounting) and TrainFlopsHook in
a real MMEngine Runner."""
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import SPARSE_LAYERS

from lbc_mmdet.accounting import (
    TrainFlopsCounter,
    check_densities,
    conv_macs,
    dense_train_cost,
    layer_densities,
    layer_group,
    layer_macs,
    linear_macs,
    train_cost,
    transposed_conv_macs,
)
from lbc_mmdet.layers.lbc import LBCConv2d
from lbc_mmdet.nm import combination_table


def _macs_of(module, x):
    out = module(x)
    return layer_macs(module, (x, ), out)


# --------------------------------------------------------------------------- MACs
def test_conv_and_linear_macs_by_hand():
    x = torch.randn(2, 4, 5, 5)
    # out (2, 8, 5, 5) = 400 elements, each 4 * 3 * 3 multiply-adds
    assert _macs_of(nn.Conv2d(4, 8, 3, padding=1), x) == 400 * 4 * 9 == 14400
    # groups: each output sees 4 / 2 input channels
    assert _macs_of(nn.Conv2d(4, 8, 3, padding=1, groups=2), x) == 400 * 2 * 9
    # stride 2, no padding: out (2, 8, 2, 2)
    assert _macs_of(nn.Conv2d(4, 8, 3, stride=2), x) == 2 * 8 * 2 * 2 * 4 * 9
    # non-square kernel
    assert _macs_of(nn.Conv2d(4, 6, (1, 3), padding=(0, 1)), x) == 2 * 6 * 25 * 4 * 3
    # linear: out (2, 3) = 6 elements, each 10 multiply-adds; extra dims count too
    assert _macs_of(nn.Linear(10, 3), torch.randn(2, 10)) == 60
    assert _macs_of(nn.Linear(10, 3), torch.randn(2, 7, 10)) == 2 * 7 * 3 * 10
    # transposed conv: every input element times out_channels * k * k
    # (1, 4, 3, 3) -> (1, 2, 6, 6): 72 outputs, each 4 channels * 1 kernel tap
    assert _macs_of(nn.ConvTranspose2d(4, 2, 2, stride=2), torch.randn(1, 4, 3, 3)) == 288
    # non-counted modules
    assert layer_macs(nn.ReLU(), (x, ), x) == 0
    # the helpers
    assert conv_macs(10, 6, 3, (3, 3)) == 10 * 2 * 9
    assert linear_macs(5, 7) == 35
    assert transposed_conv_macs(36, 2, 1, (2, 2)) == 288
    with pytest.raises(ValueError):
        conv_macs(10, 5, 2, (1, 1))


def test_train_cost_by_hand():
    half = dict(forward=0.5, input_grad=0.5, weight_grad=0.5)
    srste = dict(forward=0.5, input_grad=0.5, weight_grad=1.0)
    assert train_cost(100, half) == 150
    assert train_cost(100, srste) == 200
    assert dense_train_cost(100) == 300
    assert train_cost(100, srste, input_grad=False) == 150
    assert train_cost(100, srste, weight_grad=False) == 100
    assert dense_train_cost(100, input_grad=False, weight_grad=False) == 100


def test_check_densities_refuses_malformed():
    assert check_densities(dict(forward=1, input_grad=0.5, weight_grad=0)) == dict(
        forward=1.0, input_grad=0.5, weight_grad=0.0)
    with pytest.raises(ValueError, match='missing'):
        check_densities(dict(forward=1.0, input_grad=1.0))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        check_densities(dict(forward=1.5, input_grad=1.0, weight_grad=1.0))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        check_densities(dict(forward=float('nan'), input_grad=1.0, weight_grad=1.0))


# --------------------------------------------------------------------------- LBC states
def _set_alive(layer: LBCConv2d, candidates):
    """Keep only ``candidates`` (indices into the combination table) alive in every
    group."""
    with torch.no_grad():
        layer.alive.fill_(False)
        layer.alive[:, list(candidates)] = True


def test_lbc_densities_at_known_alive_states():
    layer = LBCConv2d(8, 4, 1, n=2, m=4)
    table = combination_table(2, 4)  # [6, 4]: which of the 4 weights each candidate keeps
    rows = [tuple(int(i) for i in torch.nonzero(r).flatten()) for r in table]
    # all 6 candidates alive: their union is every weight -> dense
    assert layer_densities(layer) == dict(forward=1.0, input_grad=1.0, weight_grad=1.0)
    # one candidate left: exactly 2 of 4
    _set_alive(layer, [0])
    assert layer_densities(layer) == dict(forward=0.5, input_grad=0.5, weight_grad=0.5)
    # two overlapping candidates ({a, b}, {a, c}): 3 of 4 weights
    a = rows[0]
    overlap = next(j for j, r in enumerate(rows) if len(set(r) & set(a)) == 1)
    _set_alive(layer, [0, overlap])
    assert layer_densities(layer)['forward'] == pytest.approx(0.75)
    # two disjoint candidates: 4 of 4
    disjoint = next(j for j, r in enumerate(rows) if not set(r) & set(a))
    _set_alive(layer, [0, disjoint])
    assert layer_densities(layer)['weight_grad'] == pytest.approx(1.0)
    assert layer_group(layer) == 'lbc 2:4'
    # the 3-channel stem cannot be grouped: dense
    stem = LBCConv2d(3, 8, 3, n=2, m=4)
    assert not stem.nm_eligible
    assert layer_densities(stem) == dict(forward=1.0, input_grad=1.0, weight_grad=1.0)
    assert layer_group(stem) == 'dense'
    assert layer_group(nn.Conv2d(4, 4, 1)) == 'dense'


def test_every_method_reports_valid_densities():
    for method, kinds in SPARSE_LAYERS.items():
        conv = kinds['Conv2d'](8, 8, 3, n=2, m=4)
        d = layer_densities(conv, method)
        assert set(d) == {'forward', 'input_grad', 'weight_grad'}
        assert layer_group(conv) == f'{method} 2:4'


def test_srste_weight_gradient_is_dense():
    if 'srste' not in SPARSE_LAYERS:
        pytest.skip('SR-STE layer not registered in SPARSE_LAYERS')
    conv = SPARSE_LAYERS['srste']['Conv2d'](8, 8, 1, n=2, m=4)
    assert layer_densities(conv) == dict(forward=0.5, input_grad=0.5, weight_grad=1.0)
    model = nn.Sequential(conv)
    counter = TrainFlopsCounter(model).attach()
    counter.start_iter()
    model(torch.randn(1, 8, 2, 2)).sum().backward()
    counter.end_iter()
    macs = 1 * 8 * 2 * 2 * 8
    assert counter.totals().train_macs == macs * 2.0
    assert counter.ratio() == pytest.approx(2.0 / 3.0)


# --------------------------------------------------------------------------- counter
class _Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                                      LBCConv2d(8, 8, 3, padding=1, n=2, m=4))
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


# per image (3, 4, 4): stem 8*16 outputs * 3*9, LBC conv 8*16 * 8*9, linear 2 * 8
STEM, LBC, HEAD = 8 * 16 * 27, 8 * 16 * 72, 2 * 8


def _step(model, counter, batch=1, backward=True):
    counter.start_iter()
    out = model(torch.randn(batch, 3, 4, 4))
    if backward:
        out.sum().backward()
    return counter.end_iter()


def test_counter_totals_by_hand():
    model = _Toy()
    counter = TrainFlopsCounter(model).attach()
    lbc = model.backbone[1]
    # iteration 1: all candidates alive (dense); iteration 2: one left (2:4)
    _step(model, counter, batch=2)
    _set_alive(lbc, [0])
    it = _step(model, counter, batch=2)
    assert it.forward_macs == 2 * (STEM + LBC + HEAD)
    assert it.train_macs == 2 * (3 * STEM + 1.5 * LBC + 3 * HEAD)
    assert counter.iterations == 2
    dense = 2 * 3 * 2 * (STEM + LBC + HEAD)
    sparse = 2 * (3 * STEM + 3 * LBC + 3 * HEAD) + 2 * (3 * STEM + 1.5 * LBC + 3 * HEAD)
    assert counter.totals().dense_train_macs == dense
    assert counter.ratio() == pytest.approx(sparse / dense)
    assert counter.ratio() < 1
    # backbone only and per group
    bb = (2 * (3 * STEM + 3 * LBC) + 2 * (3 * STEM + 1.5 * LBC)) / (2 * 3 * 2 * (STEM + LBC))
    assert counter.ratio('backbone') == pytest.approx(bb)
    assert counter.ratio('lbc 2:4') == pytest.approx((3 + 1.5) / 6)
    assert counter.ratio('dense') == 1.0
    summary = counter.summary()
    json.dumps(summary)  # plain values
    assert summary['iterations'] == 2
    assert summary['methods_present'] == ['lbc'] and summary['patterns_present'] == ['2:4']
    assert summary['methods']['lbc 2:4']['layers'] == 1
    assert summary['methods']['dense']['layers'] == 2
    assert summary['total']['forward_macs_per_iter'] == 2 * (STEM + LBC + HEAD)
    assert summary['total']['train_flops'] == 2 * summary['total']['train_macs']
    assert {layer['name'] for layer in summary['layers']} == {
        'backbone.0', 'backbone.1', 'head'}


def test_counter_ignores_calls_outside_iterations_and_adds_repeated_calls():
    model = _Toy()
    counter = TrainFlopsCounter(model).attach()
    with torch.no_grad():
        model(torch.randn(4, 3, 4, 4))  # validation: not counted
    assert counter.totals().forward_macs == 0
    counter.start_iter()
    model(torch.randn(1, 3, 4, 4))
    model(torch.randn(1, 3, 4, 4))  # a second call in the same iteration adds up
    it = counter.end_iter()
    assert it.forward_macs == 2 * (STEM + LBC + HEAD)
    counter.detach()
    counter.start_iter()
    model(torch.randn(1, 3, 4, 4))  # hooks removed
    assert counter.end_iter().forward_macs == 0


def test_counter_exact_backward():
    model = _Toy()
    for p in model.head.parameters():
        p.requires_grad_(False)
    counter = TrainFlopsCounter(model, exact_backward=True).attach()
    it = _step(model, counter)
    # stem: input is the image (no input grad); head: frozen weight (no weight grad)
    assert it.dense_train_macs == 2 * STEM + 3 * LBC + 2 * HEAD
    # the simple accounting counts all three passes everywhere
    simple = TrainFlopsCounter(model).attach()
    assert _step(model, simple).dense_train_macs == 3 * (STEM + LBC + HEAD)


def test_counter_density_interval_and_resume_state():
    model = _Toy()
    counter = TrainFlopsCounter(model, density_interval=2).attach()
    lbc = model.backbone[1]
    _step(model, counter)  # reads densities (dense)
    _set_alive(lbc, [0])
    _step(model, counter)  # reuses the dense densities
    assert counter.ratio('lbc 2:4') == 1.0
    _step(model, counter)  # re-reads: 2:4
    assert counter.ratio('lbc 2:4') == pytest.approx((3 + 3 + 1.5) / 9)
    state = json.loads(json.dumps(counter.state_dict()))
    other = TrainFlopsCounter(_Toy(), density_interval=2)
    other.load_state_dict(state)
    assert other.iterations == 3
    assert other.ratio() == pytest.approx(counter.ratio())
    assert other.totals().dense_train_macs == counter.totals().dense_train_macs
    with pytest.raises(ValueError):
        TrainFlopsCounter(model, density_interval=0)


def test_counter_refuses_bad_densities():

    class Bad(nn.Linear):

        def nm_train_densities(self):
            return dict(forward=1.0)

    counter = TrainFlopsCounter(nn.Sequential(Bad(2, 2))).attach()
    with pytest.raises(ValueError, match='0'):
        counter.start_iter()


# --------------------------------------------------------------------------- hook
MAX_ITERS, TF = 6, 3


class _ToyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 4, 4, generator=g), labels=i % 2)


def _toy_model():
    from mmengine.model import BaseModel

    class ToyDetector(BaseModel):

        def __init__(self):
            super().__init__()
            toy = _Toy()
            self.backbone = toy.backbone  # the names the backbone ratio looks for
            self.head = toy.head

        def forward(self, inputs, labels=None, mode='tensor'):
            logits = _Toy.forward(self, inputs)
            if mode == 'loss':
                return dict(loss=F.cross_entropy(logits, labels))
            return logits

    return ToyDetector()


class _DensityRecorder:
    """Records the LBC layer's forward density at every iteration."""

    def __init__(self):
        from mmengine.hooks import Hook

        record = self.record = []

        class Rec(Hook):
            priority = 'LOWEST'

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                lbc = runner.model.backbone[1]
                record.append(lbc.nm_train_densities()['forward'])

        self.hook = Rec()


def _runner(work_dir, max_iters, resume=False, extra_hooks=()):
    from mmengine.runner import Runner
    return Runner(
        model=_toy_model(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=_ToyDataset(),
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_scope='mmdet',
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='NMSparsityHook', ti=0, tf=TF),
                      dict(type='TrainFlopsHook'),
                      dict(type='SafeCheckpointHook')] + list(extra_hooks),
        resume=resume,
        log_level='WARNING',
        randomness=dict(seed=0),
        experiment_name=f'toy_{max_iters}_{int(resume)}')


def test_train_flops_hook_in_runner(tmp_path):
    from mmdet.registry import HOOKS

    import lbc_mmdet.engine.hooks as hooks
    assert HOOKS.get('TrainFlopsHook') is hooks.TrainFlopsHook

    rec = _DensityRecorder()
    runner = _runner(str(tmp_path), MAX_ITERS, extra_hooks=[rec.hook])
    runner.train()
    path = osp.join(runner.log_dir, 'train_flops.json')
    assert osp.isfile(path)
    with open(path) as f:
        data = json.load(f)
    assert data['iterations'] == MAX_ITERS
    # by hand from the densities each iteration ran with (batch 2)
    d = rec.record
    assert len(d) == MAX_ITERS and d[0] == 1.0 and d[-1] == 0.5
    per_iter = 2 * (STEM + LBC + HEAD)
    sparse = sum(2 * (3 * STEM + 3 * di * LBC + 3 * HEAD) for di in d)
    dense = MAX_ITERS * 3 * per_iter
    assert data['ratio'] == pytest.approx(sparse / dense)
    assert data['ratio'] < 1
    bb = sum(3 * STEM + 3 * di * LBC for di in d) / (MAX_ITERS * 3 * (STEM + LBC))
    assert data['backbone_ratio'] == pytest.approx(bb)
    assert data['backbone_ratio'] < data['ratio']
    assert data['total']['forward_macs_per_iter'] == per_iter
    assert data['methods']['lbc 2:4']['layers'] == 1
    assert data['train_time_s'] > 0
    # logged through the message hub
    logged = runner.message_hub.get_scalar('train/flops_ratio').current()
    assert logged == pytest.approx(data['ratio'])


def test_train_flops_hook_resumes_its_totals(tmp_path):
    first = _runner(str(tmp_path), 3)
    first.train()
    resumed = _runner(str(tmp_path), MAX_ITERS, resume=True)
    resumed.train()
    with open(osp.join(resumed.log_dir, 'train_flops.json')) as f:
        data = json.load(f)
    assert data['iterations'] == MAX_ITERS
    assert data['total']['dense_train_macs'] == MAX_ITERS * 3 * 2 * (STEM + LBC + HEAD)
    assert data['ratio'] < 1


def test_train_flops_hook_args():
    from lbc_mmdet.engine.hooks import TrainFlopsHook
    with pytest.raises(ValueError):
        TrainFlopsHook(filename='flops.txt')
    with pytest.raises(ValueError):
        TrainFlopsHook(log_interval=0)
