"""One method, one registration: a toy N:M method defined in this file only goes through
everything the project offers a method, without a line of ``lbc_mmdet/`` naming it.

The toy ("magnitude re-selection"): the mask keeps the top-N ``|w|`` of every group,
computed at construction and recomputed every ``every`` iterations inside the schedule
window; the forward uses ``weight * mask``, the weight gradient is dense (a
straight-through estimator, so pruned weights can grow back), hence per-pass densities
``(N/M, N/M, 1)``. It is registered inside a fixture and unregistered afterwards
(``unregister_method``), so the other test modules, which iterate over the registered
methods, never see it.
"""
import glob
import json
import os.path as osp
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook

import lbc_mmdet
from lbc_mmdet.errors import CheckpointMismatchError
from lbc_mmdet.layers import (
    NMSparseConv2d,
    NMSparseLinear,
    NMSparseMixin,
    get_method,
    method_names,
    register_method,
    register_nm_layer,
    register_variant,
    sparse_layer_types,
    unregister_method,
)
from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask

# the toy model and Runner settings of the engine tests (tests/test_engine/_nm_toy.py)
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_engine'))
from _nm_toy import ToyData, ToyNet, toy_model, toy_runner_kwargs  # noqa: E402

N, M = 2, 4
MAX_ITERS = 8


def _make_toy_method():
    """Define and register the toy method (its whole wiring: ``register_method`` and
    ``@register_nm_layer``)."""
    register_method('toy', display_name='Toy', plot_style=('D', 'tab:olive'))

    class ToyMixin(NMSparseMixin):
        nm_method = 'toy'
        nm_extra_state_names = ('mask',)
        #: a class constant the options are checked against (config validation calls
        #: ``nm_validate_options`` on the class, without building a layer)
        MAX_EVERY = 1000

        @classmethod
        def nm_validate_options(cls, every: int = 1) -> dict:
            if isinstance(every, bool) or not isinstance(every, int) or \
                    not 1 <= every <= cls.MAX_EVERY:
                raise ValueError(f'Toy: `every` must be an integer in [1, {cls.MAX_EVERY}],'
                                 f' got {every!r}')
            return dict(every=every)

        def _nm_init_state(self) -> None:
            self.register_buffer('mask', self._magnitude_mask())
            self.mask_changes = 0

        @torch.no_grad()
        def _magnitude_mask(self) -> torch.Tensor:
            groups = topn_magnitude_mask(to_groups(self.weight, self.nm_m), self.nm_n)
            return from_groups(groups, self.weight.shape)

        def _nm_mask(self) -> torch.Tensor:
            return self.mask

        def _nm_forward_weight(self) -> torch.Tensor:
            mask = self.mask.to(self.weight.dtype)
            # value weight * mask; gradient dense (straight-through)
            return self.weight * mask + (self.weight - self.weight.detach()) * (1 - mask)

        def _nm_update(self, state) -> bool:
            if not state.ti <= state.t < state.tf or state.iteration % self.every:
                return False
            new = self._magnitude_mask()
            if torch.equal(new, self.mask):
                return False
            self.mask.copy_(new)
            self.mask_changes += 1
            return True

        def _nm_densities(self):
            d = self.nm_n / self.nm_m
            return dict(forward=d, input_grad=d, weight_grad=1.0)

        def _nm_stats(self):
            return dict(mask_changes=float(self.mask_changes))

        def _nm_check_loaded(self, state_dict, prefix) -> None:
            kept = to_groups(state_dict[prefix + 'mask'], self.nm_m).sum(dim=1)
            if not bool((kept == self.nm_n).all()):
                raise CheckpointMismatchError(
                    f'{prefix}mask: the checkpoint\'s mask does not keep exactly '
                    f'{self.nm_n} of every {self.nm_m} weights')

        @classmethod
        def nm_schedule_densities(cls, n, m, t, ti, tf):
            return dict(forward=n / m, input_grad=n / m, weight_grad=1.0)

    @register_nm_layer
    class ToyConv2d(ToyMixin, NMSparseConv2d):
        """Toy N:M ``nn.Conv2d``."""

    @register_nm_layer
    class ToyLinear(ToyMixin, NMSparseLinear):
        """Toy N:M ``nn.Linear``."""

    class ToySlowConv2d(ToyConv2d):
        """A benchmark variant: the same maths."""

    return types.SimpleNamespace(Conv2d=ToyConv2d, Linear=ToyLinear, Mixin=ToyMixin,
                                 SlowConv2d=ToySlowConv2d)


@pytest.fixture(scope='module')
def toy():
    """The registered toy method; unregistered (from mmdet's MODELS too) afterwards."""
    assert 'toy' not in method_names()
    method = _make_toy_method()
    yield method
    unregister_method('toy')
    from mmdet.registry import MODELS
    assert 'toy' not in method_names()
    assert MODELS.get('ToyConv2d') is None and 'ToyConv2d' not in sparse_layer_types()


def test_registration(toy):
    method = get_method('toy')
    assert method.display_name == 'Toy' and method.plot_style == ('D', 'tab:olive')
    assert method.state_names == ('mask',)
    assert method.layers == {'Conv2d': toy.Conv2d, 'Linear': toy.Linear}
    assert 'toy' in method_names()
    from mmdet.registry import MODELS
    assert MODELS.get('ToyConv2d') is toy.Conv2d and MODELS.get('ToyLinear') is toy.Linear
    assert 'mask' in lbc_mmdet.layers.all_state_names()


def test_conversion(toy):
    model = ToyNet()
    dense_keys = set(model.state_dict())
    weight = model.conv2.weight
    converted = lbc_mmdet.sparsify(model, 'toy', n=N, m=M, every=2)
    assert converted == ['conv1', 'conv2', 'conv3', 'fc']
    assert isinstance(model.conv2, toy.Conv2d) and isinstance(model.fc, toy.Linear)
    assert model.conv2.weight is weight  # the Parameter is reused
    assert model.conv2.every == 2
    assert set(model.state_dict()) == dense_keys | {f'{n}.mask' for n in converted}
    for _, layer in lbc_mmdet.sparse_layers(model):
        assert layer.nm_eligible and layer.nm_is_exact()
    # the forward computes with weight * mask, the weight gradient is dense
    x = torch.randn(2, 8, 4, 4)
    conv = model.conv1
    ref = nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias, padding=1)
    out = conv(x)
    assert torch.allclose(out, ref)
    out.sum().backward()
    assert bool((conv.weight.grad[~conv.mask.bool()] != 0).any())


def test_configs(toy):
    from mmcv.cnn import build_conv_layer
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    from lbc_mmdet.engine import SparsityConfigError, validate_sparsity_cfg
    cfg = dict(model=dict(backbone=dict(conv_cfg=dict(type='ToyConv2d', n=N, m=M))))
    assert validate_sparsity_cfg(cfg) == 1
    cfg['model']['backbone']['conv_cfg']['every'] = 0
    with pytest.raises(SparsityConfigError, match=r'^model\.backbone\.conv_cfg: Toy: `every` '
                       r'must be an integer in \[1, 1000\], got 0'):
        validate_sparsity_cfg(cfg)
    cfg['model']['backbone']['conv_cfg'] = dict(type='ToyConv2d', n=N, m=M, evry=2)
    with pytest.raises(SparsityConfigError, match=r"unknown option\(s\) \['evry'\] for "
                       r'ToyConv2d \(its options: n, m, every\)'):
        validate_sparsity_cfg(cfg)
    cfg['model']['backbone']['conv_cfg'] = dict(type='ToyConv2d', n=4, m=M)
    with pytest.raises(SparsityConfigError, match=r'^model\.backbone\.conv_cfg\.n: '):
        validate_sparsity_cfg(cfg)
    nms = dict(model=dict(type='NMSparsify', model=dict(type='ResNet', depth=18),
                          layer=dict(method='toy', n=N, m=M, every=3)))
    assert validate_sparsity_cfg(nms) == 1
    # conv_cfg, the way mmdet's ResNet/FPN/ConvModule build their convs (in mmdet's scope)
    with DefaultScope.overwrite_default_scope('mmdet'):
        conv = build_conv_layer(dict(type='ToyConv2d', n=N, m=M), 8, 16, 3, padding=1)
        backbone = MODELS.build(dict(type='ResNet', depth=18, num_stages=1,
                                     out_indices=(0, ), strides=(1, ), dilations=(1, ),
                                     conv_cfg=dict(type='ToyConv2d', n=N, m=M)))
        # the NMSparsify builder
        model = MODELS.build(dict(type='NMSparsify', model=dict(type='ResNet', depth=18),
                                  layer=dict(method='toy', n=N, m=M, every=3),
                                  include=['layer1.*']))
    assert isinstance(conv, toy.Conv2d) and conv.nm_is_exact()
    kinds = {type(mod).__name__ for mod in backbone.modules()}
    assert 'ToyConv2d' in kinds and backbone.conv1.nm_skip_reason  # the stem stays dense
    layers = lbc_mmdet.sparse_layers(model)
    assert layers and all(name.startswith('layer1.') for name, _ in layers)
    assert all(isinstance(layer, toy.Conv2d) and layer.every == 3 for _, layer in layers)


class MaskRecorder(Hook):
    """Records ``conv2``'s mask after every training iteration."""
    priority = 'LOWEST'

    def __init__(self):
        self.masks = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.masks.append(runner.model.conv2.mask.clone())


@pytest.fixture(scope='module')
def trained(toy, tmp_path_factory):
    """A short real MMEngine Runner training of the toy method (with the N:M hook, EMA
    with averaged buffers and the FLOPs hook)."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('toy_run'))
    recorder = MaskRecorder()
    kwargs = toy_runner_kwargs(
        work_dir, max_iters=MAX_ITERS, ckpt_interval=MAX_ITERS, name='toy_method',
        custom_hooks=[dict(type='NMSparsityHook', ti=0, tf=6),
                      dict(type='EMAHook', momentum=0.5, update_buffers=True),
                      dict(type='TrainFlopsHook', backbone_prefix='conv'), recorder])
    kwargs['log_level'] = 'INFO'
    runner = Runner(model=toy_model('toy'), **kwargs)
    initial = runner.model.conv2.mask.clone()
    runner.train()
    text = open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()
    return dict(runner=runner, log=text, initial=initial, masks=recorder.masks,
                work_dir=work_dir)


def test_hook_drives_the_toy_schedule(trained):
    runner, log = trained['runner'], trained['log']
    assert 'N:M sparsity: 4 sparse layers (toy 2:4), 0 left dense' in log
    assert 'N:M sparsity at the end of training: 4/4 layers exactly N:M, sparsity 0.5000' in log
    masks = trained['masks']
    assert len(masks) == MAX_ITERS
    # the mask moved inside the window [0, 6) and stayed put after it
    assert any(not torch.equal(mk, trained['initial']) for mk in masks[:6])
    assert all(torch.equal(mk, masks[5]) for mk in masks[5:])
    hub = runner.message_hub
    assert hub.get_scalar('train/nm_sparsity').current() == pytest.approx(0.5)
    assert hub.get_scalar('train/nm_exact_layers').current() == 4
    changes = sum(layer.mask_changes for _, layer in lbc_mmdet.sparse_layers(runner.model))
    assert changes > 0
    assert hub.get_scalar('train/nm_mask_changes').current() == pytest.approx(changes / 4)


def test_ema_model_follows_the_masks(trained):
    runner = trained['runner']
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook').ema_model.module
    assert not torch.equal(runner.model.conv2.mask, trained['initial'])
    for name, layer in lbc_mmdet.sparse_layers(runner.model):
        assert torch.equal(dict(ema.named_modules())[name].mask, layer.mask), name


def test_flops_accounting(trained, toy):
    from lbc_mmdet.accounting import TrainFlopsCounter
    d = N / M
    expected = dict(hardware=(d + d + 1) / 3, paper=(d + 1 + 1) / 3)
    model = toy_model('toy')
    for convention, ratio in expected.items():
        counter = TrainFlopsCounter(model, convention=convention).attach()
        for _ in range(2):
            counter.start_iter()
            batch = ToyData(size=2)[0]
            out = model(batch['inputs'][None])
            out.sum().backward()
            counter.end_iter()
        counter.detach()
        assert counter.ratio() == pytest.approx(ratio)
        summary = counter.summary()
        assert summary['methods_present'] == ['toy'] and 'toy 2:4' in summary['methods']
    # the hook of the real training counted the same
    path = glob.glob(osp.join(trained['runner'].log_dir, 'train_flops.json'))[0]
    report = json.load(open(path))
    assert report['ratio'] == pytest.approx(expected['hardware'])
    assert report['paper_ratio'] == pytest.approx(expected['paper'])
    assert report['methods_present'] == ['toy']


def test_train_flops_tool(toy, capsys):
    from lbc_mmdet.cli import train_flops
    assert train_flops.cli(['--method', 'toy', '--epochs', '4', '--convention',
                            'hardware']) == 0
    out = capsys.readouterr().out
    assert out.startswith('Toy 2:4') and 'FLOPs (Train): ' in out


def test_checkpoint_export_and_verify(trained, toy, tmp_path):
    from mmengine.runner import load_checkpoint

    from lbc_mmdet.deploy.export import export_sparse_state_dict
    from lbc_mmdet.deploy.verify import verify_nm
    runner = trained['runner']
    ckpt = osp.join(trained['work_dir'], f'iter_{MAX_ITERS}.pth')
    # the checkpoint restores the masks
    model = toy_model('toy')
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    for (name, a), (_, b) in zip(lbc_mmdet.sparse_layers(model),
                                 lbc_mmdet.sparse_layers(runner.model)):
        assert torch.equal(a.mask, b.mask), name
    # a training checkpoint's raw weights are not N:M: verify says so and hints export
    raw = verify_nm(torch.load(ckpt, weights_only=True), N, M, all_layers=True)
    assert not raw.ok and any('Export it first' in h for h in raw.hints)
    state, report = export_sparse_state_dict(runner.model)
    assert report['methods'] == ['toy'] and report['pattern'] == '2:4'
    assert sorted(report['dropped_keys']) == ['conv1.mask', 'conv2.mask', 'conv3.mask',
                                              'fc.mask']
    dense = ToyNet()
    dense.load_state_dict(state, strict=True)
    x = ToyData(size=2)[0]['inputs'][None]
    runner.model.eval()
    assert torch.allclose(dense(x), runner.model(x), atol=1e-6)
    result = verify_nm(state, N, M, all_layers=True)
    assert result.ok and len(result.checked) == 4


def test_checkpoint_of_another_pattern_is_refused(toy, tmp_path):
    torch.manual_seed(0)
    model = ToyNet()
    lbc_mmdet.sparsify(model, 'toy', n=2, m=8)
    state = model.state_dict()
    with pytest.raises(CheckpointMismatchError, match='conv1.mask: .*exactly 2 of every 4'):
        toy_model('toy').load_state_dict(state)


def test_suite_names_and_plots(toy, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from lbc_mmdet.suite.report import format_markdown, method_name, plot_results
    from lbc_mmdet.suite.results import RunResult
    assert method_name('toy') == 'Toy'
    results = [
        RunResult(label='dense', model='Toy net', method='dense', status='done',
                  metrics={'coco/bbox_mAP': 0.30}, flops_ratio=1.0),
        RunResult(label='toy 2:4', model='Toy net', method='toy', pattern='2:4',
                  status='done', metrics={'coco/bbox_mAP': 0.25}, flops_ratio=2 / 3),
    ]
    table = format_markdown(results)
    assert '| Toy net | Toy | 2:4 |' in table
    drawn = {}
    save = Figure.savefig

    def spy(fig, path, **kwargs):
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                line = handle[0] if isinstance(handle, tuple) else handle  # errorbar
                drawn[label] = (line.get_marker(), line.get_color())
        return save(fig, path, **kwargs)

    monkeypatch.setattr(Figure, 'savefig', spy)
    path = plot_results(results, str(tmp_path / 'results.png'))
    assert path and osp.getsize(path) > 0
    assert drawn['Toy'] == ('D', 'tab:olive') and drawn['Baseline'] == ('*', 'black')


def test_benchmark_entries(toy):
    from lbc_mmdet.benchmark.training import _entry_method, benchmark_entries
    entries = benchmark_entries()
    assert entries[0] == 'dense' and 'toy' in entries
    register_variant('toy', 'toy_slow', dict(Conv2d=toy.SlowConv2d, Linear=toy.Linear),
                     doc='the same maths, another class')
    try:
        entries = benchmark_entries()
        assert entries[entries.index('toy') + 1] == 'toy_slow'
        assert _entry_method('toy_slow') == ('toy', 'toy_slow')
    finally:
        get_method('toy').variants.pop('toy_slow')
        get_method('toy').variant_docs.pop('toy_slow')
    assert 'toy_slow' not in benchmark_entries()


REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DENSE_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_dense_demo.py')
#: the demo detector shrunk to R18
SMALL = {'model.backbone.depth': 18, 'model.neck.in_channels': [64, 128, 256, 512]}


@pytest.fixture(scope='module')
def detector_run(toy, tiny_coco, tmp_path_factory):
    """``tools/train.py``, ``tools/test.py`` and ``tools/export.py`` (in this process, where
    the toy is registered) on the demo Faster R-CNN with every backbone conv a
    ``ToyConv2d``, shrunk to R18 and 2 iterations."""
    from _common import data_cfg_options

    from lbc_mmdet.cli import export as export_tool
    from lbc_mmdet.cli import test as test_tool
    from lbc_mmdet.cli import train as train_tool
    work = str(tmp_path_factory.mktemp('toy_detector'))
    cfg = osp.join(work, 'toy_detector.py')
    with open(cfg, 'w') as f:
        f.write(f'_base_ = {DENSE_DEMO!r}\n'
                "model = dict(backbone=dict(conv_cfg=dict(type='ToyConv2d', n=2, m=4, "
                'every=1)))\n'
                "custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=2)]\n")
    small = [f'{k}={v}'.replace(' ', '') for k, v in SMALL.items()]
    opts = data_cfg_options(tiny_coco['out_dir']) + small + [
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2',
        'model.test_cfg.rcnn.score_thr=0.0']
    assert train_tool.cli([cfg, '--work-dir', work, '--cfg-options'] + opts) == 0
    ckpt = osp.join(work, 'iter_2.pth')
    test_dir = osp.join(work, 'test')
    assert test_tool.cli([cfg, ckpt, '--work-dir', test_dir, '--cfg-options'] + opts) == 0
    out = osp.join(work, 'export', 'toy_detector.pth')
    assert export_tool.cli([cfg, ckpt, out, '--cfg-options'] + small) == 0
    return dict(work=work, cfg=cfg, ckpt=ckpt, test_dir=test_dir, out=out)


def test_train_test_and_export_tools_run_the_toy(detector_run):
    from lbc_mmdet.apis import build_model
    from lbc_mmdet.deploy.verify import verify_nm
    run = detector_run
    # trained: the checkpoint holds the toy's state of every backbone conv but the stem
    state = torch.load(run['ckpt'], map_location='cpu', weights_only=True)['state_dict']
    masks = [k for k in state if k.startswith('backbone.') and k.endswith('.mask')]
    assert masks and 'backbone.conv1.mask' not in masks
    # tested: the test run wrote its COCO metrics
    logs = glob.glob(osp.join(run['test_dir'], '*', '*.json'))
    metrics = json.load(open(logs[0]))
    assert 'coco/bbox_mAP' in metrics
    # exported: dense keys, loads strictly into the dense model, exactly 2:4
    report = json.load(open(run['out'] + '.json'))
    assert report['methods'] == ['toy'] and report['pattern'] == '2:4'
    exported = torch.load(run['out'], map_location='cpu', weights_only=True)['state_dict']
    assert not any(k.endswith('.mask') for k in exported)
    _, dense = build_model(DENSE_DEMO, SMALL)
    dense.load_state_dict(exported, strict=True)
    assert verify_nm(exported, N, M).ok


def test_no_library_file_names_the_toy():
    """Nothing of the package knows the toy: it exists only in this file."""
    root = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                    'lbc_mmdet')
    for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
        text = open(path).read()
        assert 'ToyConv2d' not in text and "'toy'" not in text, path
