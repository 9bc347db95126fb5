"""Time dense vs 2:4 semi-structured sparse execution of the backbone of an exported N:M
model (CUDA, compute capability >= 8.0; elsewhere dense vs masked GEMMs on the CPU in fp32).

``tools/benchmark_latency.py`` (the paragraph above is its ``--help``; see
``docs/deployment.md``). On a CUDA GPU with compute capability >= 8.0 the backbone is timed
dense, with its convs lowered to GEMMs (dense masked weights) and with 2:4 semi-structured
weights, per layer and end to end, in fp16 or bf16 on channels-last inputs. The backend
follows the device (cuSPARSELt where PyTorch has it, CUTLASS only on compute capability 8.x;
``--backend`` overrides, refused in one line where it cannot run;
:mod:`lbc_mmdet.deploy.backends`). Elsewhere the tool says so in one line and times dense
against the lowered model on the CPU in fp32 (no speed-up expected: no 2:4 kernel runs).
CONFIG may be the dense or the sparse config; CHECKPOINT an exported checkpoint or a finished
training checkpoint of CONFIG (exported in memory).
"""
import argparse
import json
import os.path as osp
from typing import List, Optional

import torch

from .. import __version__
from ..apis import load_dense_model
from ..deploy.backends import (
    GEMM_ORDERS,
    BackendUnavailableError,
    choose_backend,
    default_gemm_order,
    probe_device,
    to_semi_structured,
    tune_cusparselt,
)
from ..deploy.latency import DTYPES, EXECUTIONS, VARIANTS, markdown, run_benchmark
from ..utils import atomic_write
from ._common import ToolError, add_model_args, parse_size, parse_tool_args, tool_cli, tool_parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(__doc__)
    add_model_args(parser, 'dense or sparse config of the model',
                   'exported (or finished training) checkpoint')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp16',
                        help='GPU compute dtype (default: %(default)s; CPU runs fp32)')
    parser.add_argument('--input-size', nargs='+', type=parse_size,
                        default=[(800, 1344)], metavar='HxW',
                        help='input sizes, H or HxW (default: 800x1344)')
    parser.add_argument('--batch-size', nargs='+', type=int, default=[1],
                        help='batch sizes (default: 1)')
    parser.add_argument('--warmup', type=int, default=10,
                        help='untimed runs before timing (default: %(default)s)')
    parser.add_argument('--iters', type=int, default=50,
                        help='timed runs; the median is reported (default: %(default)s)')
    parser.add_argument('--kxk', choices=('im2col', 'dense'), default='im2col',
                        help='k x k convs: lower via im2col, or leave them to the dense '
                        'kernel (default: %(default)s)')
    parser.add_argument('--backend', choices=('auto', 'cusparselt', 'cutlass'),
                        default='auto', help='semi-structured backend (default: '
                        'cuSPARSELt where PyTorch has it, CUTLASS only on compute '
                        'capability 8.x; a backend that cannot run here is an error)')
    parser.add_argument('--tune-cusparselt', action='store_true',
                        help="pick cuSPARSELt's algorithm per layer and setting "
                        '(torch._cslt_sparse_mm_search) instead of algorithm 0')
    parser.add_argument('--gemm-order', choices=('auto',) + GEMM_ORDERS, default='auto',
                        help='dense_first: F.linear(X, W); sparse_first: W @ X^T (default: '
                        'dense_first for cuSPARSELt, sparse_first for CUTLASS, which '
                        'otherwise copies every output transposed)')
    parser.add_argument('--no-per-layer', action='store_true',
                        help='only time the backbone end to end')
    parser.add_argument('--out', default='work_dirs/benchmark_latency/latency.json',
                        help='JSON output; markdown next to it (.md) '
                        '(default: %(default)s)')
    args = parse_tool_args(parser, argv, cfg_options=True)
    if args.warmup < 0 or args.iters < 1 or min(args.batch_size) < 1:
        parser.error('need --warmup >= 0, --iters >= 1 and batch sizes >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    runtime = probe_device()
    try:
        choice = choose_backend(runtime['capability'], runtime['cusparselt_available'],
                                DTYPES[args.dtype], args.backend)
    except BackendUnavailableError as err:
        raise ToolError(str(err)) from None
    backend = choice.backend
    tuner = None
    if backend is not None:
        device, dtype = torch.device('cuda'), DTYPES[args.dtype]
        converter = (lambda w: to_semi_structured(w, backend))  # noqa: E731
        if args.tune_cusparselt:
            if backend != 'cusparselt':
                raise ToolError(f'--tune-cusparselt needs the cuSPARSELt backend; this run '
                                f'uses {backend}')
            tuner = tune_cusparselt
        note = (f'2:4 semi-structured kernels on {runtime["device_name"]} via {backend} '
                f'({choice.reason})')
        timer = 'CUDA events'
        torch.backends.cudnn.benchmark = True
        skip_reason = ''
    else:
        device, dtype, converter = torch.device('cpu'), torch.float32, None
        note = (f'no CUDA GPU with compute capability >= 8.0 ({choice.reason}): 2:4 kernels '
                'not run; timing dense vs masked model on CPU (fp32) instead'
                + ('; --tune-cusparselt ignored' if args.tune_cusparselt else ''))
        timer = 'time.perf_counter'
        skip_reason = f'no 2:4 kernel on this device ({choice.reason})'
        print(note)
    order = default_gemm_order(backend) if args.gemm_order == 'auto' else args.gemm_order
    model = load_dense_model(args.config, args.checkpoint, args.cfg_options)
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ToolError('the model has no `backbone`')
    settings = [(b, s) for b in args.batch_size for s in args.input_size]
    bench = run_benchmark(backbone, settings, device, dtype,
                          plan_dtype=DTYPES[args.dtype],
                          backend=backend or (args.backend if args.backend != 'auto'
                                              else 'cusparselt'),
                          kxk=args.kxk, warmup=args.warmup, iters=args.iters,
                          converter=converter, per_layer=not args.no_per_layer,
                          order=order, tuner=tuner, skip_reason=skip_reason)
    report = dict(
        tool='lbc_mmdet tools/benchmark_latency.py', version=__version__,
        config=args.config, checkpoint=osp.abspath(args.checkpoint),
        device=str(device),
        device_name=runtime['device_name'] if device.type == 'cuda' else 'CPU',
        accelerated=converter is not None, accelerator_note=note,
        dtype=str(dtype).replace('torch.', ''), requested_dtype=args.dtype,
        backend=backend, requested_backend=args.backend, backend_reason=choice.reason,
        tune_cusparselt=tuner is not None, kxk=args.kxk, warmup=args.warmup,
        iters=args.iters, timer=timer, torch_version=torch.__version__, runtime=runtime,
        variants=VARIANTS, executions=EXECUTIONS, **bench)
    md_path = osp.splitext(args.out)[0] + '.md'
    atomic_write(args.out, json.dumps(report, indent=2))
    atomic_write(md_path, markdown(report))
    print(f'wrote {args.out} and {md_path}')
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
