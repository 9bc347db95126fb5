"""2:4 backend choice by device (a pure function, stand-in devices), cuSPARSELt tuning's
operands, the GEMM call orders, and the latency benchmark's per-layer status."""
import types

import pytest
import torch
import torch.nn as nn

from lbc_mmdet.deploy import backends
from lbc_mmdet.deploy.backends import (
    BackendUnavailableError,
    choose_backend,
    default_gemm_order,
    tune_cusparselt,
)
from lbc_mmdet.deploy.latency import build_variants, markdown, run_benchmark
from lbc_mmdet.deploy.lowering import LoweredConv2d, plan_layer, plan_model
from lbc_mmdet.gpu_check.models import ResNet, make_2to4_

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32


@pytest.mark.parametrize('cap,cslt,dtype,expect', [
    ((8, 0), True, F16, 'cusparselt'),    # A100: cuSPARSELt where PyTorch has it
    ((8, 0), False, F16, 'cutlass'),      # A100 without cuSPARSELt: CUTLASS
    ((8, 6), False, BF16, 'cutlass'),
    ((8, 9), True, BF16, 'cusparselt'),
    ((9, 0), True, F16, 'cusparselt'),    # H100/H200: cuSPARSELt only
    ((10, 0), True, BF16, 'cusparselt'),
])
def test_auto_backend(cap, cslt, dtype, expect):
    choice = choose_backend(cap, cslt, dtype)
    assert choice.backend == expect and f'{cap[0]}.{cap[1]}' in choice.reason


@pytest.mark.parametrize('cap,cslt,dtype,why', [
    (None, True, F16, 'no CUDA GPU'),
    ((7, 5), True, F16, '7.5 < 8.0'),
    ((9, 0), True, F32, 'float32 has no 2:4 kernel'),
    ((8, 0), True, F32, 'float32 has no 2:4 kernel'),
    ((9, 0), False, F16, '8.x only'),     # Hopper without cuSPARSELt: nothing runs 2:4
])
def test_auto_backend_none(cap, cslt, dtype, why):
    choice = choose_backend(cap, cslt, dtype)
    assert choice.backend is None and why in choice.reason


@pytest.mark.parametrize('cap,cslt,dtype,requested,why', [
    ((9, 0), True, F16, 'cutlass', '8.x only; this GPU is 9.0 (use --backend cusparselt)'),
    ((10, 0), True, F16, 'cutlass', '8.x only'),
    ((8, 0), False, F16, 'cusparselt', 'no cuSPARSELt (torch.backends.cusparselt.is_'
     'available() is False) (use --backend cutlass)'),
    ((9, 0), False, BF16, 'cusparselt', 'no cuSPARSELt'),
    ((9, 0), True, F32, 'cusparselt', 'float32 has no 2:4 kernel'),
    (None, True, F16, 'cutlass', 'no CUDA GPU available'),
    ((7, 0), True, F16, 'cusparselt', '7.0 < 8.0'),
])
def test_requested_backend_that_cannot_run_is_refused(cap, cslt, dtype, requested, why):
    with pytest.raises(BackendUnavailableError, match='cannot run') as info:
        choose_backend(cap, cslt, dtype, requested)
    assert why in str(info.value) and '\n' not in str(info.value)


def test_requested_backend_that_runs_and_bad_names():
    assert choose_backend((8, 0), True, F16, 'cutlass').backend == 'cutlass'
    assert choose_backend((9, 0), True, BF16, 'cusparselt').backend == 'cusparselt'
    with pytest.raises(ValueError, match='unknown backend'):
        choose_backend((8, 0), True, F16, 'triton')
    assert default_gemm_order('cutlass') == 'sparse_first'
    assert default_gemm_order('cusparselt') == default_gemm_order(None) == 'dense_first'


def test_probe_device_reports_versions():
    info = backends.probe_device()
    for key in ('torch', 'cuda', 'cudnn', 'cusparselt', 'cusparselt_available',
                'capability', 'device_name'):
        assert key in info
    assert info['torch'] == torch.__version__
    if not torch.cuda.is_available():
        assert info['capability'] is None and info['device_name'] == 'CPU'


class _FakeSemi:
    """A stand-in cuSPARSELt tensor: PyTorch's shape table, a packed payload."""
    _DTYPE_SHAPE_CONSTRAINTS = {
        F16: types.SimpleNamespace(dense_min_rows=8, dense_min_cols=8)}

    def __init__(self):
        self.packed = torch.zeros(3)
        self.alg_id_cusparselt = 0


@pytest.mark.parametrize('order,n', [('dense_first', 16), ('dense_first', 13),
                                     ('sparse_first', 16), ('sparse_first', 13)])
def test_tune_cusparselt_searches_the_product_the_layer_runs(order, n, monkeypatch):
    calls = []

    def search(packed, dense, bias=None, alpha=None, out_dtype=None,
               transpose_result=False):
        calls.append((packed, dense, transpose_result))
        return 5

    monkeypatch.setattr(torch, '_cslt_sparse_mm_search', search, raising=False)
    weight, k = _FakeSemi(), 24
    operand = torch.randn(n, k, dtype=F16) if order == 'dense_first' else torch.randn(
        k, n, dtype=F16)
    assert tune_cusparselt(weight, operand, order) == 5 and weight.alg_id_cusparselt == 5
    packed, dense, fuse = calls[0]
    assert packed is weight.packed
    n_pad = n + (-n) % 8  # PyTorch pads the dense operand to multiples of 8 first
    if order == 'dense_first':  # F.linear(X, W): cuSPARSELt gets X^T, result transposed
        assert fuse and tuple(dense.shape) == (k, n_pad) and not dense.is_contiguous()
    else:  # W @ X^T: X^T as it is
        assert not fuse and tuple(dense.shape) == (k, n_pad) and dense.is_contiguous()
    with pytest.raises(ValueError, match='GEMM order'):
        tune_cusparselt(weight, operand, 'sideways')


@pytest.mark.parametrize('geometry', [
    (8, 16, 1, 1, 0, 1, 7, 9), (8, 16, 1, 2, 0, 1, 7, 9), (8, 3, 3, 2, 1, 1, 9, 8),
    (12, 20, 3, 1, 2, 2, 10, 11), (16, 8, 7, 2, 3, 1, 15, 13)])
@pytest.mark.parametrize('batch', [1, 3])
def test_sparse_first_order_equals_conv(geometry, batch):
    cin, cout, k, s, p, d, h, w = geometry
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, p, d, bias=True).double()
    x = torch.randn(batch, cin, h, w, dtype=torch.float64)
    plan = plan_layer(conv, dtype=F16, backend='cutlass', check_weight=False)
    low = LoweredConv2d(conv, plan, 'sparse_first')
    y = low(x)
    torch.testing.assert_close(y, conv(x), rtol=1e-12, atol=1e-12)
    assert low.gemm(low.gemm_input(x)[0]).shape == (cout + plan.pad_rows,
                                                    y.shape[0] * y.shape[2] * y.shape[3])
    if batch == 1:  # channel-major [O, 1, H, W] memory *is* contiguous NCHW
        assert y.is_contiguous()
    with pytest.raises(ValueError, match='order'):
        LoweredConv2d(conv, plan, 'backwards')


def _tiny_2to4():
    torch.manual_seed(0)
    model = ResNet((1, 1, 1, 1), 8)
    make_2to4_(model)
    return model.eval()


def test_conversion_failure_runs_that_layer_dense():
    model = _tiny_2to4()
    plans = plan_model(model, dtype=F16, backend='cutlass')

    def converter(w):
        if tuple(w.shape) == (32, 128):  # layer1.0.conv2: 8 x 72, padded for CUTLASS
            raise RuntimeError('Error original_tensor.shape is not supported!\nmore')
        return w.clone()

    _, sparse, execution = build_variants(model, plans, 'dense_first', converter)
    assert execution['layer1.0.conv2'] == ('dense', 'conversion failed: Error '
                                           'original_tensor.shape is not supported!')
    assert [n for n, (e, _) in execution.items() if e == 'dense'] == ['conv1',
                                                                     'layer1.0.conv2']
    assert isinstance(sparse.layer1[0].conv2, nn.Conv2d)
    assert isinstance(sparse.layer1[0].conv1, LoweredConv2d)
    assert execution['layer1.0.conv1'] == ('2:4', None)
    assert execution['conv1'][0] == 'dense' and 'input channels' in execution['conv1'][1]
    x = torch.randn(1, 3, 32, 32)
    for a, b in zip(sparse(x), model(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    _, none, skipped = build_variants(model, plans, 'dense_first', None, 'no GPU here')
    assert none is None and skipped['layer1.0.conv1'] == ('skipped', 'no GPU here')


@pytest.mark.parametrize('order', ['dense_first', 'sparse_first'])
def test_benchmark_states_per_layer_what_ran_and_tunes(order):
    tuned = []

    def tuner(weight, operand, order_):
        tuned.append((tuple(weight.shape), tuple(operand.shape), order_))
        return 7

    result = run_benchmark(_tiny_2to4(), [(1, (32, 32))], torch.device('cpu'), F32,
                           plan_dtype=F16, backend='cusparselt', kxk='im2col', warmup=0,
                           iters=1, converter=lambda w: w.clone(), log=lambda m: None,
                           order=order, tuner=tuner)
    assert result['gemm_order'] == order
    assert result['execution_counts'] == {'2:4': 16, 'dense': 1, 'skipped': 0}
    layers = {e['name']: e for e in result['results'][0]['layers']}
    assert layers['conv1']['execution'] == 'dense'
    assert 'input channels' in layers['conv1']['execution_reason']
    entry = layers['layer2.0.conv2']
    assert entry['execution'] == '2:4' and entry['cusparselt_alg_id'] == 7
    assert entry['max_abs_diff'] < 1e-4 and entry['gemm_sparse_ms'] > 0
    assert len(tuned) == 16 and all(t[2] == order for t in tuned)
    k, n = entry['gemm']['K'], entry['gemm']['N']
    assert (n, k) in [t[1] for t in tuned] or (k, n) in [t[1] for t in tuned]
    report = dict(config='c', checkpoint='k', device='cpu', device_name='CPU',
                  dtype='float32', backend='cusparselt', kxk='im2col',
                  accelerator_note='n', warmup=0, iters=1, timer='t',
                  torch_version=torch.__version__, runtime=backends.probe_device(),
                  backend_reason='why', tune_cusparselt=True, **result)
    md = markdown(report)
    assert f'GEMM order {order}' in md and 'cuSPARSELt algorithm 7' in md
    assert '| layer2.0.conv2 | conv_im2col | 2:4 |' in md
    assert '16 2:4, 1 dense, 0 skipped' in md and 'cuSPARSELt tuning on' in md


def test_latency_tool_refuses_a_backend_that_cannot_run(monkeypatch, capsys):
    from lbc_mmdet.cli import benchmark_latency as tool
    hopper = dict(torch=torch.__version__, cuda='13.0', cudnn=None, cusparselt=602,
                  cusparselt_available=True, capability=[9, 0], device_name='H200')
    monkeypatch.setattr(tool, 'probe_device', lambda: dict(hopper))
    assert tool.cli(['c.py', 'k.pth', '--backend', 'cutlass']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: backend cutlass cannot run on this device: PyTorch\'s CUTLASS '
                   'semi-structured kernels are compiled for compute capability 8.x only; '
                   'this GPU is 9.0 (use --backend cusparselt)']
    ampere = dict(hopper, capability=[8, 0], cusparselt_available=False, cusparselt=None)
    monkeypatch.setattr(tool, 'probe_device', lambda: dict(ampere))
    assert tool.cli(['c.py', 'k.pth', '--tune-cusparselt']) == 2
    assert 'needs the cuSPARSELt backend' in capsys.readouterr().err
    args = tool.parse_args(['c.py', 'k.pth', '--gemm-order', 'sparse_first'])
    assert args.gemm_order == 'sparse_first' and not args.tune_cusparselt
