"""``python -m lbc_mmdet.gpu_check`` (``bash tools/gpu_check.sh``): check and time the
2:4 paths on a CUDA GPU with compute capability >= 8.0 (``docs/deployment.md``).

Parts: (a) :func:`~.kernels.run_gemm_checks` on every GEMM shape of the lowered ResNet-50
backbone, fp16 and bf16, every backend that runs here, both call orders; (b)
:func:`~.kernels.check_model` on a 2:4 ResNet-50 + FPN; (c) :mod:`.training` for every
registered N:M method; (d)
:func:`~lbc_mmdet.deploy.latency.run_benchmark` on the 2:4 backbone. Writes
``OUT/gpu_check.json`` and ``OUT/gpu_check.md``; exit 0 when every part passes, 1
otherwise. Without such a GPU it prints one line and exits 0.
"""
import argparse
import json
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..cli._common import ToolError, add_debug_arg, parse_size, run_tool
from ..deploy.backends import (
    BACKENDS,
    GEMM_ORDERS,
    MIN_CAPABILITY,
    backend_problem,
    choose_backend,
    default_gemm_order,
    probe_device,
    to_semi_structured,
    tune_cusparselt,
)
from ..deploy.latency import EXECUTIONS, VARIANTS, run_benchmark
from . import kernels, report, training
from .models import (
    BackboneNeck,
    ResNet,
    calibrate_bn_,
    distinct_shapes,
    gemm_shapes,
    make_2to4_,
    resnet50,
)

NO_GPU = 'gpu_check: no CUDA GPU with compute capability >= 8.0 here ({}): nothing checked'


@dataclass
class CheckConfig:
    """What :func:`run_all` runs, and where (the CLI fills it for the GPU; the tests for
    the CPU, with a stand-in converter and a tiny backbone)."""
    device: torch.device
    backend: str
    backends: Sequence[str]
    order: str
    converter: Callable[[torch.Tensor, str], torch.Tensor] = to_semi_structured
    tuner: Optional[Callable] = tune_cusparselt
    parts: str = 'abcd'
    dtypes: Sequence[torch.dtype] = (torch.float16, torch.bfloat16)
    input_size: Tuple[int, int] = (800, 1333)
    batch_sizes: Sequence[int] = (1, 8)
    calib_size: int = 256
    train_steps: int = 30
    train_batch: int = 8
    train_size: int = 128
    amp_dtype: torch.dtype = torch.float16
    warmup: int = 10
    iters: int = 30
    backbone_factory: Callable[[], ResNet] = resnet50
    skip_reason: str = ''
    device_name: str = 'CPU'


def _calibrated(model, cfg: CheckConfig):
    torch.manual_seed(0)
    make_2to4_(model)
    model.to(cfg.device)
    x = torch.randn(2, 3, cfg.calib_size, cfg.calib_size, device=cfg.device)
    with torch.no_grad():
        return calibrate_bn_(model, x)


def _part_gemm(cfg: CheckConfig, log) -> Dict:
    shapes = distinct_shapes(gemm_shapes(cfg.backbone_factory(), 1, cfg.input_size))
    results = kernels.run_gemm_checks(shapes, cfg.dtypes, cfg.backends, GEMM_ORDERS,
                                      cfg.device, cfg.converter, log)
    return dict(input=f'{cfg.input_size[0]}x{cfg.input_size[1]}, batch 1', shapes=shapes,
                results=results, ok=bool(results) and all(r['ok'] for r in results))


def _part_model(cfg: CheckConfig, log) -> Dict:
    model = _calibrated(BackboneNeck(cfg.backbone_factory()), cfg)
    x = torch.randn(1, 3, *cfg.input_size, device=cfg.device)
    results = [kernels.check_model(model, x, dtype, cfg.backend, cfg.order, cfg.converter)
               for dtype in cfg.dtypes]
    for r in results:
        if not r['ok']:
            log(f'(b) FAIL {r}')
    return dict(input=f'{cfg.input_size[0]}x{cfg.input_size[1]}, batch 1', results=results,
                ok=all(r['ok'] for r in results))


def _part_training(cfg: CheckConfig, log) -> Dict:
    results, invariance = [], []
    for method in training.methods():
        r = training.train_check(method, cfg.device, cfg.train_steps, cfg.train_batch,
                                 cfg.train_size, cfg.amp_dtype,
                                 backbone_factory=cfg.backbone_factory)
        log(f'(c) {method}: losses {r["first_loss"]:.4f} -> {r["last_loss"]:.4f}, '
            f'{r["exact_layers"]}/{r["eligible_layers"]} exactly N:M, '
            f'{r["skipped_steps"]} skipped steps')
        results.append(r)
        inv = training.scale_invariance_check(method, cfg.device,
                                              backbone_factory=cfg.backbone_factory)
        err = inv['max_rel_err']
        log(f'(c) {method}: one step at loss scale {inv["scale"]:g} against unscaled: '
            f'max relative difference {"-" if err is None else f"{err:.2e}"} over '
            f'{inv["tensors"]} tensors ({report.verdict(inv["ok"])})')
        invariance.append(inv)
    return dict(results=results, invariance=invariance,
                ok=bool(results) and all(r['ok'] for r in results + invariance))


def _part_latency(cfg: CheckConfig, log) -> Dict:
    backbone = _calibrated(cfg.backbone_factory(), cfg)
    dtype = cfg.dtypes[0]
    bench = run_benchmark(
        backbone, [(b, tuple(cfg.input_size)) for b in cfg.batch_sizes], cfg.device, dtype,
        plan_dtype=dtype, backend=cfg.backend, kxk='im2col', warmup=cfg.warmup,
        iters=cfg.iters, converter=lambda w: cfg.converter(w, cfg.backend), log=log,
        order=cfg.order, tuner=cfg.tuner, skip_reason=cfg.skip_reason)
    failed = [(layer['name'], layer['execution_reason']) for res in bench['results']
              for layer in res['layers'] if layer['accelerated']
              and layer['execution'] != '2:4']
    e2e_finite = all(res['end_to_end']['max_abs_diff_sparse_2to4'] is not None and
                     res['end_to_end']['max_abs_diff_sparse_2to4'] < float('inf')
                     for res in bench['results'])
    rep = dict(config='ResNet-50 backbone, random 2:4 weights (gpu_check)',
               checkpoint='-', device=str(cfg.device), device_name=cfg.device_name,
               dtype=str(dtype).replace('torch.', ''),
               backend=cfg.backend, kxk='im2col', accelerator_note='timed by gpu_check',
               tune_cusparselt=cfg.tuner is not None, warmup=cfg.warmup, iters=cfg.iters,
               timer='CUDA events' if cfg.device.type == 'cuda' else 'time.perf_counter',
               variants=VARIANTS, executions=EXECUTIONS, **bench)
    return dict(report=rep, not_2to4=failed, ok=not failed and e2e_finite)


PART_FUNCS = dict(a=('gemm', _part_gemm), b=('model', _part_model),
                  c=('training', _part_training), d=('latency', _part_latency))


def run_all(cfg: CheckConfig, log: Callable[[str], None] = print) -> Dict:
    """Run the parts of ``cfg`` in order; each part's dict has ``ok`` and ``seconds``
    (an exception fails that part, with its message, and the next part runs)."""
    out: Dict = dict(backend=cfg.backend, backends=list(cfg.backends),
                     gemm_order=cfg.order, tune=cfg.tuner is not None, parts=cfg.parts)
    for letter in cfg.parts:
        key, func = PART_FUNCS[letter]
        t0 = time.perf_counter()
        log(f'({letter}) {report.TITLES[key][4:]} ...')
        try:
            out[key] = func(cfg, log)
        except Exception as err:  # noqa: BLE001  (reported; the other parts still run)
            out[key] = dict(ok=False, error=f'{type(err).__name__}: {err}', results=[])
        out[key]['seconds'] = time.perf_counter() - t0
        log(f'({letter}) {report.verdict(out[key]["ok"])} in {out[key]["seconds"]:.1f} s'
            + (f': {out[key]["error"]}' if out[key].get('error') else ''))
    out['ok'] = all(out[PART_FUNCS[p][0]]['ok'] for p in cfg.parts)
    return out


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='bash tools/gpu_check.sh', description='On a CUDA GPU with compute '
        'capability >= 8.0: check 2:4 semi-structured products on the ResNet-50 GEMM '
        'shapes (a), the lowered 2:4 backbone + FPN (b), loss-scaled fp16 training of every '
        'registered N:M method (c), and time dense vs 2:4 (d). Elsewhere: one line, exit 0. '
        'The shell script also takes --wheels DIR (or LBC_MMDET_WHEELS) to install '
        "lbc_mmdet's dependencies where they are missing.")
    parser.add_argument('--out', default='work_dirs/gpu_check',
                        help='output folder (gpu_check.json, gpu_check.md)')
    parser.add_argument('--parts', default='abcd', help='which parts (default: abcd)')
    parser.add_argument('--backend', choices=('auto', ) + BACKENDS, default='auto',
                        help='backend of parts b and d (default: by device)')
    parser.add_argument('--gemm-order', choices=('auto', ) + GEMM_ORDERS, default='auto')
    parser.add_argument('--no-tune', action='store_true',
                        help="do not tune cuSPARSELt's algorithm in part d")
    parser.add_argument('--input-size', type=parse_size, default=(800, 1333), metavar='HxW')
    parser.add_argument('--batch-size', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--train-steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--iters', type=int, default=30)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if not args.parts or set(args.parts) - set(PART_FUNCS):
        parser.error(f'--parts takes letters of {"".join(PART_FUNCS)}, got {args.parts!r}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rt = probe_device()
    cap = rt['capability']
    if cap is None or tuple(cap) < MIN_CAPABILITY:
        why = ('no CUDA GPU available' if cap is None else
               f'{rt["device_name"]} has compute capability {cap[0]}.{cap[1]}')
        print(NO_GPU.format(why))
        return 0
    choice = choose_backend(cap, rt['cusparselt_available'], torch.float16, args.backend)
    if choice.backend is None:
        raise ToolError(f'no 2:4 backend runs on this GPU: {choice.reason}')
    backends = [b for b in BACKENDS
                if backend_problem(b, tuple(cap), rt['cusparselt_available']) is None]
    order = (default_gemm_order(choice.backend) if args.gemm_order == 'auto'
             else args.gemm_order)
    tuner = tune_cusparselt if choice.backend == 'cusparselt' and not args.no_tune else None
    torch.backends.cudnn.benchmark = True
    cfg = CheckConfig(device=torch.device('cuda'), backend=choice.backend,
                      backends=backends, order=order, tuner=tuner, parts=args.parts,
                      input_size=args.input_size, batch_sizes=args.batch_size,
                      train_steps=args.train_steps, warmup=args.warmup, iters=args.iters,
                      device_name=rt['device_name'])
    print(f'gpu_check on {rt["device_name"]}: backend {choice.backend} ({choice.reason}), '
          f'order {order}, cuSPARSELt tuning {"on" if tuner else "off"}', flush=True)
    out = run_all(cfg, log=lambda msg: print(msg, flush=True))
    out.update(runtime=rt, backend_reason=choice.reason)
    os.makedirs(args.out, exist_ok=True)
    json_path, md_path = osp.join(args.out, 'gpu_check.json'), osp.join(args.out,
                                                                         'gpu_check.md')
    with open(json_path, 'w') as f:
        json.dump(out, f, indent=2, default=str)
    with open(md_path, 'w') as f:
        f.write(report.markdown(out))
    print(f'gpu_check: {report.verdict(out["ok"])}; wrote {json_path} and {md_path}')
    return 0 if out['ok'] else 1


def cli(argv: Optional[List[str]] = None) -> int:
    """``main`` with the tools' error handling."""
    return run_tool(main, argv)
