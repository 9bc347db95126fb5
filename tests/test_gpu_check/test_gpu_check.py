"""The prepared GPU check (``tools/gpu_check.sh``, ``lbc_mmdet.gpu_check``): what a CPU
allows -- the ResNet-50 GEMM shapes, every part's logic with a stand-in converter and a
tiny backbone (part (c) for every registered method, and against a broken stand-in
method defined here), the report, the no-GPU behaviour, the imports -- plus the real
kernels, skipped without a GPU of compute capability >= 8.0."""
import dataclasses
import json
import os.path as osp
import subprocess
import sys
from functools import partial

import pytest
import torch

from lbc_mmdet.gpu_check import CheckConfig, cli, report, run_all, training
from lbc_mmdet.gpu_check.kernels import check_gemm, check_model
from lbc_mmdet.gpu_check.models import (
    BackboneNeck,
    ResNet,
    calibrate_bn_,
    distinct_shapes,
    gemm_shapes,
    make_2to4_,
    resnet50,
)
from lbc_mmdet.layers import (
    NMSparseConv2d,
    NMSparseLinear,
    NMSparseMixin,
    method_names,
    register_method,
    register_nm_layer,
    unregister_method,
)
from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'gpu_check.sh')
TINY = partial(ResNet, (1, 1, 1, 1), 8)
HAS_SPARSE_GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
NEEDS_GPU = pytest.mark.skipif(not HAS_SPARSE_GPU, reason='needs a CUDA GPU with compute '
                               'capability >= 8.0 (2:4 semi-structured kernels)')


def test_resnet50_gemm_shapes_at_800x1333():
    shapes = gemm_shapes(resnet50(), 1, (800, 1333))
    by_name = {s['name']: (s['kind'], s['M'], s['K'], s['N']) for s in shapes}
    assert len(shapes) == 52 and 'conv1' not in by_name  # the 3-channel stem stays dense
    # stem /4: 200 x 334 = 66800 pixels; then 100 x 167, 50 x 84, 25 x 42
    assert by_name['layer1.0.conv2'] == ('conv_im2col', 64, 576, 66800)
    assert by_name['layer2.0.conv1'] == ('conv1x1', 128, 256, 66800)
    assert by_name['layer2.0.downsample.0'] == ('conv1x1_strided', 512, 256, 16700)
    assert by_name['layer3.5.conv3'] == ('conv1x1', 1024, 256, 4200)
    assert by_name['layer4.0.conv2'] == ('conv_im2col', 512, 4608, 1050)
    distinct = distinct_shapes(shapes)
    assert len(distinct) == 19 and sum(len(d['layers']) for d in distinct) == 52
    assert gemm_shapes(resnet50(), 8, (800, 1333))[0]['N'] == 8 * 66800
    neck = {s['name']: s for s in gemm_shapes(BackboneNeck(resnet50()), 1, (800, 1333))}
    assert neck['neck.fpn_convs.3']['K'] == 2304 and neck['neck.lateral_convs.0']['N'] == 66800


def test_resnet50_has_the_parameter_names_of_mmdets():
    from mmdet.models.backbones import ResNet as MMDetResNet
    ours = resnet50().state_dict()
    theirs = MMDetResNet(depth=50).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in theirs.items()}


def test_the_check_imports_nothing_of_mmdet_models_or_mmcv_ops():
    code = (
        'import importlib.abc, sys\n'
        'class Block(importlib.abc.MetaPathFinder):\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        "        if name.split('.')[:2] in (['mmdet', 'models'], ['mmcv', 'ops'],\n"
        "                                   ['mmcv', '_ext']) or name == 'torchvision':\n"
        "            raise ImportError('blocked ' + name)\n"
        'sys.meta_path.insert(0, Block())\n'
        'import lbc_mmdet.gpu_check.cli\n'
        "print('imported')\n")
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and 'imported' in proc.stdout, proc.stderr[-2000:]


@pytest.mark.skipif(HAS_SPARSE_GPU, reason='checks the behaviour without such a GPU')
def test_script_without_gpu_prints_one_line_and_exits_0(tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run(['bash', SCRIPT, '--out', str(out)], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'gpu_check: no CUDA GPU with compute capability >= 8.0 here (no CUDA GPU '
        'available): nothing checked']
    assert proc.stderr == '' and not out.exists()


@pytest.mark.skipif(HAS_SPARSE_GPU, reason='checks the behaviour without such a GPU')
def test_module_without_gpu_prints_one_line_and_exits_0(tmp_path, capsys):
    assert cli.main(['--out', str(tmp_path / 'out')]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith('gpu_check: no CUDA GPU')


def test_script_help_and_bad_arguments(tmp_path):
    proc = subprocess.run(['bash', SCRIPT, '--help'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and 'usage: bash tools/gpu_check.sh' in proc.stdout
    assert '--wheels' in proc.stdout
    with pytest.raises(SystemExit):
        cli.parse_args(['--parts', 'ax'])
    assert cli.parse_args(['--input-size', '800x1333']).input_size == (800, 1333)


def _cpu_config(**kw):
    """Every part on the CPU: a stand-in for the semi-structured conversion (the dense
    2:4 matrix itself), a tiny ResNet, small inputs."""
    cfg = dict(device=torch.device('cpu'), backend='cutlass', backends=('cutlass', ),
               order='sparse_first', converter=lambda w, backend: w.clone(), tuner=None,
               dtypes=(torch.bfloat16, ), input_size=(64, 96), batch_sizes=(1, 2),
               calib_size=64, train_steps=3, train_batch=2, train_size=32,
               amp_dtype=torch.float16, warmup=0, iters=1, backbone_factory=TINY)
    cfg.update(kw)
    return CheckConfig(**cfg)


def test_parts_a_b_d_and_the_report_on_cpu(tmp_path):
    logs = []
    out = run_all(_cpu_config(parts='abd'), log=logs.append)
    assert out['ok'], [m for m in logs if 'FAIL' in m]
    gemm = out['gemm']
    assert len(gemm['shapes']) == len(distinct_shapes(gemm_shapes(TINY(), 1, (64, 96))))
    assert len(gemm['results']) == 2 * len(gemm['shapes'])  # both orders, one dtype
    assert {r['order'] for r in gemm['results']} == {'dense_first', 'sparse_first'}
    model = out['model']['results'][0]
    assert model['layers_2to4'] == 24 and model['layers_dense'] == ['backbone.conv1']
    assert len(model['outputs']) == 4 and model['outputs'][0]['shape'] == [1, 256, 16, 24]
    lat = out['latency']['report']
    assert lat['execution_counts'] == {'2:4': 16, 'dense': 1, 'skipped': 0}
    assert [r['batch_size'] for r in lat['results']] == [1, 2]
    assert 'training' not in out and all(out[k]['seconds'] >= 0 for k in ('gemm', 'model'))

    out.update(runtime=dict(device_name='H200', capability=[9, 0], torch='2.11.0',
                            cuda='13.0', cudnn=91000, cusparselt=700),
               backend_reason='stand-in')
    json.loads(json.dumps(out, default=str))
    md = report.markdown(out)
    assert md.startswith('# GPU check') and '- result: PASS (gemm: PASS, model: PASS' in md
    assert 'H200 (compute capability 9.0); torch 2.11.0, CUDA 13.0' in md
    assert '## (a) 2:4 products against the dense product: PASS' in md
    assert '## (d) latency: dense vs 2:4 backbone: PASS' in md
    assert '| layer2.0.conv2 | conv_im2col | 2:4 |' in md
    assert '\n# ' not in md  # the latency report's title is folded into the section


def test_a_failing_part_fails_the_check_and_the_others_still_run():
    def broken(w, backend):
        raise RuntimeError('no kernel image is available for execution on the device')

    out = run_all(_cpu_config(parts='ab', converter=broken), log=lambda m: None)
    assert not out['ok'] and not out['gemm']['ok'] and not out['model']['ok']
    assert 'no kernel image' in out['gemm']['results'][0]['error']
    assert 'conversion failed' in next(iter(
        out['model']['results'][0]['conversion_failures'].values()))
    md = report.markdown(dict(out, runtime=dict(device_name='X', torch='t'),
                              backend_reason='r'))
    assert '- result: **FAIL**' in md


def test_part_c_checks_every_registered_method_on_cpu():
    out = run_all(_cpu_config(parts='c'), log=lambda m: None)
    part = out['training']
    assert part['ok'], part
    assert [r['method'] for r in part['results']] == method_names()
    assert [r['method'] for r in part['invariance']] == method_names()
    for r in part['results']:
        assert r['finite_losses'] and r['exact_layers'] == r['eligible_layers'] == 16
        assert r['amp_dtype'] == 'float16' and r['scales'][-1] <= 2.0**16
    for r in part['invariance']:
        assert r['ok'] and r['scale'] == 2.0**16 and r['eligible_layers'] == 16, r
        assert r['max_rel_err'] < 1e-6 and r['tensors'] >= 1 + 16  # weights, state
    md = report.markdown(dict(out, runtime=dict(device_name='X', torch='t'),
                              backend_reason='r'))
    assert '## (c) loss-scaled mixed-precision training: PASS' in md
    assert 'Loss-scale invariance' in md
    for name in method_names():
        assert f'| {name} | 3 | float16 + GradScaler |' in md
        assert f'| {name} | 65536 | ' in md


# ------------------------------------------------------------------ a broken stand-in
#: The stand-in's key (registered by the fixture only).
STAND_IN = 'unscaledextra'
#: The constant the stand-in adds to every weight gradient.
EXTRA = 1e-3


class _ExtraGradient(torch.autograd.Function):
    """``weight * mask``; the weight gradient is the dense (straight-through) one plus
    ``extra``."""

    @staticmethod
    def forward(ctx, weight, mask, extra):  # noqa: D102
        ctx.extra = extra
        return weight * mask

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad + ctx.extra, None, None


def _make_stand_in():
    """A method whose backward adds a constant to the weight gradient, by default without
    scaling it like the incoming gradient, by ``nm_grad_scale``, so that after unscaling
    it arrives divided by the loss scale (the bug part (c) must catch); its mask is the
    fixed top-N ``|w|`` of the initial weights."""

    register_method(STAND_IN, display_name='Unscaled extra term')

    class UnscaledExtraMixin(NMSparseMixin):
        nm_method = STAND_IN
        nm_extra_state_names = ('mask', )
        #: True: the term is multiplied by ``nm_grad_scale`` (the fix)
        SCALED = False

        def _nm_init_state(self) -> None:
            groups = topn_magnitude_mask(to_groups(self.weight.detach(), self.nm_m),
                                         self.nm_n)
            self.register_buffer('mask', from_groups(groups, self.weight.shape))

        def _nm_mask(self) -> torch.Tensor:
            return self.mask

        def _nm_forward_weight(self) -> torch.Tensor:
            extra = EXTRA * self.nm_grad_scale if self.SCALED else EXTRA
            return _ExtraGradient.apply(self.weight, self.mask.to(self.weight.dtype), extra)

    @register_nm_layer
    class UnscaledExtraConv2d(UnscaledExtraMixin, NMSparseConv2d):
        """The stand-in's ``nn.Conv2d``."""

    @register_nm_layer
    class UnscaledExtraLinear(UnscaledExtraMixin, NMSparseLinear):
        """The stand-in's ``nn.Linear``."""

    return UnscaledExtraMixin


@pytest.fixture
def stand_in():
    """The registered stand-in's mixin; unregistered afterwards."""
    assert STAND_IN not in method_names()
    mixin = _make_stand_in()
    yield mixin
    unregister_method(STAND_IN)
    assert STAND_IN not in method_names()


def test_part_c_invariance_fails_for_a_method_that_ignores_the_loss_scale(stand_in,
                                                                          monkeypatch):
    cpu = torch.device('cpu')
    broken = training.scale_invariance_check(STAND_IN, cpu, size=32, backbone_factory=TINY)
    assert not broken['ok'] and broken['max_rel_err'] > 100 * broken['tol'], broken
    assert broken['worst_tensor'].endswith('.weight')
    # part (c) picks it up from the registry: it trains fine, the invariance check fails
    out = run_all(_cpu_config(parts='c'), log=lambda m: None)
    part = out['training']
    assert not part['ok'] and STAND_IN in [r['method'] for r in part['results']]
    assert all(r['ok'] for r in part['results'])
    assert [r['method'] for r in part['invariance'] if not r['ok']] == [STAND_IN]
    md = report.markdown(dict(out, runtime=dict(device_name='X', torch='t'),
                              backend_reason='r'))
    assert '## (c) loss-scaled mixed-precision training: **FAIL**' in md
    assert f'| {STAND_IN} | 65536 | ' in md and md.count('| **FAIL** |') == 1
    # scaling the term like the gradient (by nm_grad_scale) fixes it
    monkeypatch.setattr(stand_in, 'SCALED', True)
    fixed = training.scale_invariance_check(STAND_IN, cpu, size=32, backbone_factory=TINY)
    assert fixed['ok'] and fixed['max_rel_err'] < 1e-6, fixed


def test_part_c_invariance_covers_the_terms_that_need_nm_grad_scale(monkeypatch):
    """Without ``nm_grad_scale`` set, the methods whose backward adds to the gradient
    (SR-STE's decay, at its default ``lambda_w``) or accumulates it (BAME's ``grad_acc``)
    fail the check; the others still pass."""
    monkeypatch.setattr(training, 'set_nm_grad_scale', lambda model, scale: None)
    results = {name: training.scale_invariance_check(name, torch.device('cpu'), size=32,
                                                     backbone_factory=TINY)
               for name in method_names()}
    failed = {name for name, r in results.items() if not r['ok']}
    assert {'srste', 'bame'} <= failed
    assert all(results[name]['max_rel_err'] > 10 * results[name]['tol'] for name in failed)
    assert not {'lbc', 'asp'} & failed


def test_relative_difference():
    rel = training.relative_difference
    before = torch.tensor([1.0, 2.0, float('nan')])
    ref = torch.tensor([1.5, 2.0, float('nan')])
    assert rel(ref.clone(), ref, before) == 0.0  # the same NaN is no difference
    assert rel(torch.tensor([1.5, 2.0, 0.0]), ref, before) == float('inf')
    assert rel(torch.tensor([1.55, 2.0, float('nan')]), ref, before) == pytest.approx(0.1)
    assert rel(torch.tensor([True, False]), torch.tensor([True, True]),
               torch.tensor([True, True])) == float('inf')
    assert rel(torch.tensor([3, 4]), torch.tensor([3, 4]), torch.tensor([0, 0])) == 0.0


def _fake_gpu(**kw):
    info = dict(torch=torch.__version__, cuda='12.4', cudnn=90100, cusparselt=602,
                cusparselt_available=True, capability=[8, 0], device_name='A100')
    info.update(kw)
    return lambda: dict(info)


def test_main_on_a_stand_in_gpu_configures_the_parts_and_writes_the_report(monkeypatch,
                                                                          tmp_path):
    monkeypatch.setattr(cli, 'probe_device', _fake_gpu())
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', False)  # main turns it on
    seen = {}
    real_run_all = cli.run_all

    def on_cpu(cfg, log=print):  # the parts run on the CPU, with the GPU's settings
        seen['cfg'] = cfg
        return real_run_all(dataclasses.replace(_cpu_config(parts='a'),
                                                backends=cfg.backends), log)

    monkeypatch.setattr(cli, 'run_all', on_cpu)
    assert cli.main(['--out', str(tmp_path / 'out'), '--parts', 'a']) == 0
    cfg = seen['cfg']
    assert cfg.device.type == 'cuda' and cfg.backend == 'cusparselt'
    assert list(cfg.backends) == ['cusparselt', 'cutlass'] and cfg.order == 'dense_first'
    assert cfg.tuner is cli.tune_cusparselt and cfg.parts == 'a'
    assert cfg.input_size == (800, 1333) and list(cfg.batch_sizes) == [1, 8]
    saved = json.loads((tmp_path / 'out' / 'gpu_check.json').read_text())
    assert saved['ok'] and saved['runtime']['device_name'] == 'A100'
    assert 'A100 (compute capability 8.0)' in (tmp_path / 'out' / 'gpu_check.md').read_text()


def test_main_refuses_a_gpu_where_no_2to4_backend_runs(monkeypatch, capsys):
    monkeypatch.setattr(cli, 'probe_device', _fake_gpu(capability=[9, 0],
                                                       cusparselt_available=False))
    assert cli.cli(['--parts', 'a']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: no 2:4 backend runs on this GPU')
    monkeypatch.setattr(cli, 'probe_device', _fake_gpu(capability=[9, 0]))
    assert cli.cli(['--backend', 'cutlass']) == 2
    assert '8.x only' in capsys.readouterr().err


@NEEDS_GPU
def test_real_kernels_on_this_gpu():
    from lbc_mmdet.deploy.backends import choose_backend
    from lbc_mmdet.deploy.lowering import to_semi_structured
    cap = torch.cuda.get_device_capability()
    backend = choose_backend(cap, torch.backends.cusparselt.is_available(),
                             torch.float16).backend
    dev = torch.device('cuda')
    for dtype in (torch.float16, torch.bfloat16):
        for order in ('dense_first', 'sparse_first'):
            r = check_gemm(256, 576, 4200, dtype, backend, order, dev, to_semi_structured)
            assert r['ok'], r
    model = BackboneNeck(TINY())
    make_2to4_(model)
    model.to(dev)
    calibrate_bn_(model, torch.randn(2, 3, 64, 64, device=dev))
    r = check_model(model, torch.randn(1, 3, 64, 96, device=dev), torch.float16, backend,
                    'dense_first', to_semi_structured)
    assert r['ok'], r
