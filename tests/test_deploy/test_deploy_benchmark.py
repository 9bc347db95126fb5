"""tools/benchmark_latency.py: the CPU path end to end, and the GPU path's bookkeeping
with a stand-in for the semi-structured converter."""
import json

import pytest
import torch
from deploy_helpers import load_tool, run_tool


@pytest.fixture(scope='module')
def bench():
    """What the tool uses: its argument parser, the model loader and the timing."""
    import types

    from lbc_mmdet.apis import load_dense_model
    from lbc_mmdet.deploy.latency import markdown, run_benchmark
    from lbc_mmdet.errors import LBCError
    return types.SimpleNamespace(parse_args=load_tool('benchmark_latency').parse_args,
                                 load_dense_model=load_dense_model, ToolError=LBCError,
                                 run_benchmark=run_benchmark, markdown=markdown)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallback')
def test_cpu_path_runs_end_to_end(tiny_files, workdir):
    out = workdir / 'bench' / 'latency.json'
    proc = run_tool('benchmark_latency.py', tiny_files['config'], tiny_files['exported'],
                    '--input-size', '64', '48x80', '--batch-size', '1', '--warmup', '1',
                    '--iters', '1', '--out', str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if 'compute capability' in line]
    assert len(notes) == 1 and 'timing dense vs masked model on CPU (fp32)' in notes[0]
    report = json.loads(out.read_text())
    for key in ('device', 'device_name', 'accelerated', 'accelerator_note', 'dtype',
                'requested_dtype', 'backend', 'kxk', 'warmup', 'iters', 'timer',
                'torch_version', 'variants', 'plans', 'results'):
        assert key in report, key
    assert report['accelerated'] is False and report['device'] == 'cpu'
    assert report['dtype'] == 'float32' and report['requested_dtype'] == 'fp16'
    assert [r['input_size'] for r in report['results']] == [[64, 64], [48, 80]]
    res = report['results'][0]
    e2e = res['end_to_end']
    assert e2e['dense_ms'] > 0 and e2e['masked_gemm_ms'] > 0
    assert e2e['sparse_2to4_ms'] is None and e2e['speedup_sparse_vs_dense'] is None
    assert e2e['max_abs_diff_masked_gemm'] < 1e-3
    layers = {layer['name']: layer for layer in res['layers']}
    assert not layers['conv1']['accelerated']
    assert 'input channels not divisible by 4' in layers['conv1']['reason']
    down = layers['layer2.0.downsample.0']
    assert down['kind'] == 'conv1x1_strided' and down['accelerated']
    assert down['gemm'] == dict(M=32, K=16, N=8 * 8)  # 64 px: stem /4, stride 2 -> 8x8
    assert down['dense_ms'] > 0 and down['masked_gemm_ms'] > 0 and down['gemm_dense_ms'] > 0
    assert down['sparse_2to4_ms'] is None
    md = (workdir / 'bench' / 'latency.md').read_text()
    assert '| masked_gemm |' in md and 'layer2.0.downsample.0' in md


def test_training_checkpoint_is_exported_in_memory(bench, tiny_files):
    from_export = bench.load_dense_model(tiny_files['config'], tiny_files['exported'])
    from_train = bench.load_dense_model(tiny_files['config'], tiny_files['finished'])
    a, b = from_export.state_dict(), from_train.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(bench.ToolError, match='not exactly N:M'):
        bench.load_dense_model(tiny_files['config'], tiny_files['unfinished'])
    with pytest.raises(bench.ToolError, match='checkpoint not found'):
        bench.load_dense_model(tiny_files['config'], 'missing.pth')


def test_sparse_variant_bookkeeping_with_a_stand_in_converter(bench, tiny_files):
    model = bench.load_dense_model(tiny_files['config'], tiny_files['exported'])
    converted = []

    def converter(w):  # the GPU path calls to_semi_structured here
        converted.append(tuple(w.shape))
        return w.clone()

    result = bench.run_benchmark(model.backbone, [(2, (32, 32))], torch.device('cpu'),
                                 torch.float32, plan_dtype=torch.float16,
                                 backend='cutlass', kxk='dense', warmup=0, iters=1,
                                 converter=converter, log=lambda msg: None)
    plans = {p['name']: p for p in result['plans']}
    assert plans['layer1.0.conv1']['reason'].startswith('k x k convolution left')
    lowered = [p for p in plans.values() if p['accelerated']]
    assert len(converted) == len(lowered) == 3  # the 1x1 downsample convs only
    assert all(r % 32 == 0 and c % 64 == 0 for r, c in converted)  # CUTLASS padding
    e2e = result['results'][0]['end_to_end']
    assert e2e['sparse_2to4_ms'] > 0 and e2e['speedup_sparse_vs_dense'] > 0
    assert e2e['max_abs_diff_sparse_2to4'] < 1e-4
    layer = next(x for x in result['results'][0]['layers']
                 if x['name'] == 'layer3.0.downsample.0')
    assert layer['gemm_sparse_ms'] > 0 and layer['speedup'] > 0
    report = dict(config='c', checkpoint='k', device='cpu', device_name='CPU',
                  dtype='float32', backend='cutlass', kxk='dense', accelerator_note='n',
                  warmup=0, iters=1, timer='t', torch_version=torch.__version__,
                  **result)
    md = bench.markdown(report)
    assert '| sparse_2to4 |' in md and 'layer3.0.downsample.0' in md


def test_arguments(bench):
    args = bench.parse_args(['c.py', 'k.pth', '--input-size', '800x1344', '512',
                             '--batch-size', '1', '8', '--dtype', 'bf16'])
    assert args.input_size == [(800, 1344), (512, 512)] and args.batch_size == [1, 8]
    with pytest.raises(SystemExit):
        bench.parse_args(['c.py', 'k.pth', '--input-size', '800x'])
    with pytest.raises(SystemExit):
        bench.parse_args(['c.py', 'k.pth', '--dtype', 'fp32'])
