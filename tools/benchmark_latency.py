"""Time the backbone of an exported 2:4 model: dense kernels vs 2:4 semi-structured GEMMs.

On a CUDA GPU with compute capability >= 8.0 (Ampere, Hopper, ...) three variants of the
backbone are timed, per layer and end to end, in fp16 or bf16 on channels-last inputs:

- ``dense``: the model as it is (cuDNN convolutions, ``cudnn.benchmark`` on);
- ``masked_gemm``: every eligible conv lowered to a GEMM (1x1: channels-last activations;
  strided 1x1: subsample first; k x k: im2col, or left dense with ``--kxk dense``) with the
  dense (masked) weight: isolates the cost of the lowering;
- ``sparse_2to4``: the same GEMMs with the weight converted by
  ``torch.sparse.to_sparse_semi_structured`` (cuSPARSELt or CUTLASS).

Per layer, the GEMM alone (``gemm_dense_ms`` / ``gemm_sparse_ms``, lowering excluded) is
timed too. Timing: ``--warmup`` untimed runs, then ``--iters`` runs timed with CUDA events;
medians are reported. Elsewhere (CPU, older GPU) the tool says so in one line and times
``dense`` vs ``masked_gemm`` on the CPU in fp32, so that it runs end to end (no speed-up is
expected there: no 2:4 kernel runs).

CONFIG may be the dense config or the sparse one (its sparse layers are replaced by dense
ones); CHECKPOINT an exported checkpoint (``tools/export.py``) or a finished training
checkpoint of CONFIG (exported in memory).

Writes ``--out`` (JSON) and the same path with ``.md`` (markdown tables).

Example:
    python tools/benchmark_latency.py configs/faster_rcnn_lbc_2of4.py \
        work_dirs/export/frcnn_lbc_2of4.pth --dtype fp16 --input-size 800x1344 \
        --batch-size 1 8 --out work_dirs/benchmark/frcnn_lbc_2of4.json
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

# Runnable as ``python tools/benchmark_latency.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

import lbc_mmdet  # noqa: E402  (registers the sparse layers, safe checkpoint loading)
from lbc_mmdet.deploy.export import (NMExportError, compare_keys,  # noqa: E402
                                     export_sparse_state_dict, strip_sparse_layers)
from lbc_mmdet.deploy.lowering import (LoweredConv2d, default_backend,  # noqa: E402
                                       lower_convs, plan_layer, semi_structured_support,
                                       to_semi_structured)
from lbc_mmdet.sparsify import sparse_layers  # noqa: E402

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
VARIANTS = {
    'dense': 'the model as loaded: dense convolution kernels (cuDNN / CPU)',
    'masked_gemm': 'eligible convs lowered to GEMMs (1x1 on channels-last activations, '
                   'strided 1x1 subsampled, k x k via im2col) with the dense masked weight',
    'sparse_2to4': 'the same GEMMs with torch.sparse.to_sparse_semi_structured weights',
}


class ToolError(Exception):
    pass


def parse_size(text: str) -> Tuple[int, int]:
    """``'800'`` -> (800, 800); ``'800x1344'`` -> (800, 1344) (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split('x')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'bad input size {text!r} (use H or HxW)')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f'bad input size {text!r} (use H or HxW)')
    return parts[0], parts[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time dense vs 2:4 semi-structured sparse execution of the backbone '
        'of an exported N:M model (CUDA, compute capability >= 8.0; elsewhere dense vs '
        'masked GEMMs on the CPU in fp32).')
    parser.add_argument('config', help='dense or sparse config of the model')
    parser.add_argument('checkpoint', help='exported (or finished training) checkpoint')
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
                        'cuSPARSELt when available, else CUTLASS)')
    parser.add_argument('--no-per-layer', action='store_true',
                        help='only time the backbone end to end')
    parser.add_argument('--out', default='work_dirs/benchmark_latency/latency.json',
                        help='JSON output; markdown next to it (.md) '
                        '(default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.iters < 1 or min(args.batch_size) < 1:
        parser.error('need --warmup >= 0, --iters >= 1 and batch sizes >= 1')
    return args


# ----------------------------------------------------------------------------- model
def load_dense_model(config: str, checkpoint: str, cfg_options=None) -> nn.Module:
    """The dense model of ``config`` holding ``checkpoint``'s (exported) weights."""
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint

    if not osp.isfile(config):
        raise ToolError(f'config not found: {config}')
    if not osp.isfile(checkpoint):
        raise ToolError(f'checkpoint not found: {checkpoint}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if state is None:
        raise ToolError(f'{checkpoint} is not a checkpoint dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    if sparse_layers(model):
        missing, unexpected = compare_keys(model, state)
        if not missing and not unexpected:  # a training checkpoint of this sparse config
            model.load_state_dict(state, strict=True)
            try:
                state, _ = export_sparse_state_dict(model)
            except NMExportError as err:
                raise ToolError(str(err)) from err
        strip_sparse_layers(model)
    missing, unexpected = compare_keys(model, state)
    if missing or unexpected:
        raise ToolError(f'checkpoint {checkpoint} does not match config {config}: '
                        f'missing {missing[:5]}, unexpected {unexpected[:5]} '
                        f'({len(missing)} / {len(unexpected)} in all)')
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


# ---------------------------------------------------------------------------- timing
def measure(fn: Callable[[], object], warmup: int, iters: int,
            device: torch.device) -> Dict[str, float]:
    """Median/min/mean milliseconds of ``fn()`` (CUDA events on a GPU)."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            for s, e in zip(starts, ends):
                s.record()
                fn()
                e.record()
            torch.cuda.synchronize(device)
            times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        else:
            times = []
            for _ in range(iters):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1000.0)
    return dict(median_ms=statistics.median(times), min_ms=min(times),
                mean_ms=statistics.fmean(times))


def _max_abs_diff(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.float() - b.float()).abs().max())
    return max(_max_abs_diff(x, y) for x, y in zip(a, b))


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    return num / den if num is not None and den else None


# ------------------------------------------------------------------------- benchmark
def run_benchmark(backbone: nn.Module,
                  settings: Sequence[Tuple[int, Tuple[int, int]]],
                  device: torch.device,
                  dtype: torch.dtype,
                  plan_dtype: torch.dtype,
                  backend: str,
                  kxk: str,
                  warmup: int,
                  iters: int,
                  converter: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                  per_layer: bool = True,
                  log: Callable[[str], None] = print) -> Dict:
    """Time the variants of ``backbone`` for every ``(batch, (h, w))`` in ``settings``.

    ``converter`` turns a padded GEMM weight into the sparse operand
    (:func:`to_semi_structured` on a GPU); without it the ``sparse_2to4`` variant is not
    run. Layers are planned for ``plan_dtype`` (the GPU dtype), run in ``dtype``.
    """
    dense = backbone.to(device=device, dtype=dtype)
    dense = dense.to(memory_format=torch.channels_last)
    dense.eval()  # not chained: mmdet's ResNet.train() returns None
    convs = {n: m for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    plans = [plan_layer(m, name=n, dtype=plan_dtype, backend=backend, kxk=kxk)
             for n, m in convs.items()]
    masked = copy.deepcopy(dense)
    lower_convs(masked, plans)
    sparse = None
    if converter is not None:
        sparse = copy.deepcopy(masked)
        for mod in sparse.modules():
            if isinstance(mod, LoweredConv2d):
                mod.convert_weight(converter)
    accelerated = [p for p in plans if p.accelerated]
    log(f'{len(accelerated)} of {len(plans)} backbone convs lowered to GEMMs'
        + (f'; not: {[(p.name, p.reason) for p in plans if not p.accelerated]}'
           if len(accelerated) < len(plans) else ''))

    results = []
    for batch, (h, w) in settings:
        x = torch.randn(batch, 3, h, w, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        inputs: Dict[str, torch.Tensor] = {}
        hooks = [convs[p.name].register_forward_pre_hook(
            lambda mod, args, name=p.name: inputs.__setitem__(name, args[0]))
            for p in accelerated] if per_layer else []
        with torch.no_grad():
            ref = dense(x)
        for hk in hooks:
            hk.remove()
        e2e = dict(dense=measure(lambda: dense(x), warmup, iters, device),
                   masked_gemm=measure(lambda: masked(x), warmup, iters, device))
        with torch.no_grad():
            diff_masked = _max_abs_diff(ref, masked(x))
            diff_sparse = _max_abs_diff(ref, sparse(x)) if sparse is not None else None
        if sparse is not None:
            e2e['sparse_2to4'] = measure(lambda: sparse(x), warmup, iters, device)
        end_to_end = dict(
            dense_ms=e2e['dense']['median_ms'],
            masked_gemm_ms=e2e['masked_gemm']['median_ms'],
            sparse_2to4_ms=e2e['sparse_2to4']['median_ms'] if sparse is not None else None,
            detail=e2e,
            max_abs_diff_masked_gemm=diff_masked, max_abs_diff_sparse_2to4=diff_sparse)
        end_to_end['speedup_sparse_vs_dense'] = _ratio(end_to_end['dense_ms'],
                                                       end_to_end['sparse_2to4_ms'])
        end_to_end['speedup_masked_gemm_vs_dense'] = _ratio(end_to_end['dense_ms'],
                                                            end_to_end['masked_gemm_ms'])
        layers = []
        for plan in plans if per_layer else []:
            entry = dict(name=plan.name, kind=plan.kind, weight_shape=plan.weight_shape,
                         accelerated=plan.accelerated, reason=plan.reason,
                         pad_rows=plan.pad_rows, pad_cols=plan.pad_cols)
            if plan.accelerated and plan.name in inputs:
                xi = inputs[plan.name]
                entry['input_shape'] = list(xi.shape)
                entry['gemm'] = plan.gemm_shape(xi.shape)
                conv = convs[plan.name]
                low_m = masked.get_submodule(plan.name)
                entry['dense_ms'] = measure(lambda: conv(xi), warmup, iters,
                                            device)['median_ms']
                entry['masked_gemm_ms'] = measure(lambda: low_m(xi), warmup, iters,
                                                  device)['median_ms']
                cols = low_m.gemm_input(xi)[0]
                entry['gemm_dense_ms'] = measure(
                    lambda: F.linear(cols, low_m.gemm_weight), warmup, iters,
                    device)['median_ms']
                entry['sparse_2to4_ms'] = entry['gemm_sparse_ms'] = None
                if sparse is not None:
                    low_s = sparse.get_submodule(plan.name)
                    entry['sparse_2to4_ms'] = measure(lambda: low_s(xi), warmup, iters,
                                                      device)['median_ms']
                    entry['gemm_sparse_ms'] = measure(
                        lambda: F.linear(cols, low_s.gemm_weight), warmup, iters,
                        device)['median_ms']
                entry['speedup'] = _ratio(entry['dense_ms'], entry['sparse_2to4_ms'])
                entry['gemm_speedup'] = _ratio(entry['gemm_dense_ms'],
                                               entry['gemm_sparse_ms'])
            layers.append(entry)
        results.append(dict(batch_size=batch, input_size=[h, w], end_to_end=end_to_end,
                            layers=layers))
        msg = (f'batch {batch}, {h}x{w}: dense {end_to_end["dense_ms"]:.3f} ms, '
               f'masked_gemm {end_to_end["masked_gemm_ms"]:.3f} ms')
        if sparse is not None:
            msg += (f', sparse_2to4 {end_to_end["sparse_2to4_ms"]:.3f} ms '
                    f'(x{end_to_end["speedup_sparse_vs_dense"]:.2f})')
        log(msg)
        del inputs
    return dict(plans=[p.to_dict() for p in plans], results=results)


# --------------------------------------------------------------------------- reports
def _fmt(v, digits=3) -> str:
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{digits}f}' if abs(v) >= 10**-digits or v == 0 else f'{v:.2e}'
    return str(v)


def markdown(report: Dict) -> str:
    lines = [f'# Backbone latency: dense vs 2:4 ({report["config"]})', '',
             f'- checkpoint: `{report["checkpoint"]}`',
             f'- device: {report["device_name"]} ({report["device"]}); dtype '
             f'{report["dtype"]}; backend {report["backend"] or "-"}; kxk: {report["kxk"]}',
             f'- {report["accelerator_note"]}',
             f'- warm-up {report["warmup"]}, {report["iters"]} timed iterations, medians '
             f'in ms ({report["timer"]}); torch {report["torch_version"]}', '']
    for res in report['results']:
        e = res['end_to_end']
        h, w = res['input_size']
        lines += [f'## batch {res["batch_size"]}, input {h}x{w}', '',
                  '| variant | median ms | speed-up vs dense | max abs diff |',
                  '|---|---|---|---|',
                  f'| dense | {_fmt(e["dense_ms"])} | 1.00 | - |',
                  f'| masked_gemm | {_fmt(e["masked_gemm_ms"])} | '
                  f'{_fmt(e["speedup_masked_gemm_vs_dense"], 2)} | '
                  f'{_fmt(e["max_abs_diff_masked_gemm"], 5)} |']
        if e['sparse_2to4_ms'] is not None:
            lines.append(f'| sparse_2to4 | {_fmt(e["sparse_2to4_ms"])} | '
                         f'{_fmt(e["speedup_sparse_vs_dense"], 2)} | '
                         f'{_fmt(e["max_abs_diff_sparse_2to4"], 5)} |')
        if res['layers']:
            lines += ['', '| layer | kind | GEMM M x K x N | dense | masked_gemm | '
                      'sparse_2to4 | speed-up | GEMM dense | GEMM sparse | GEMM speed-up |'
                      ' note |', '|---|---|---|---|---|---|---|---|---|---|---|']
            for layer in res['layers']:
                g = layer.get('gemm')
                shape = f'{g["M"]} x {g["K"]} x {g["N"]}' if g else '-'
                note = layer['reason'] or ''
                lines.append(
                    f'| {layer["name"]} | {layer["kind"]} | {shape} | '
                    f'{_fmt(layer.get("dense_ms"))} | {_fmt(layer.get("masked_gemm_ms"))} | '
                    f'{_fmt(layer.get("sparse_2to4_ms"))} | {_fmt(layer.get("speedup"), 2)} '
                    f'| {_fmt(layer.get("gemm_dense_ms"))} | '
                    f'{_fmt(layer.get("gemm_sparse_ms"))} | '
                    f'{_fmt(layer.get("gemm_speedup"), 2)} | {note} |')
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    ok, why = semi_structured_support()
    if ok:
        device, dtype = torch.device('cuda'), DTYPES[args.dtype]
        backend = default_backend() if args.backend == 'auto' else args.backend
        converter = (lambda w: to_semi_structured(w, backend))  # noqa: E731
        note = f'2:4 semi-structured kernels on {why} via {backend}'
        timer = 'CUDA events'
        torch.backends.cudnn.benchmark = True
    else:
        device, dtype, converter = torch.device('cpu'), torch.float32, None
        backend = None
        note = (f'no CUDA GPU with compute capability >= 8.0 ({why}): 2:4 kernels not run; '
                'timing dense vs masked model on CPU (fp32) instead')
        timer = 'time.perf_counter'
        print(note)
    try:
        model = load_dense_model(args.config, args.checkpoint, args.cfg_options)
    except ToolError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        print('error: the model has no `backbone`', file=sys.stderr)
        return 2
    settings = [(b, s) for b in args.batch_size for s in args.input_size]
    bench = run_benchmark(backbone, settings, device, dtype,
                          plan_dtype=DTYPES[args.dtype],
                          backend=backend or (args.backend if args.backend != 'auto'
                                              else 'cusparselt'),
                          kxk=args.kxk, warmup=args.warmup, iters=args.iters,
                          converter=converter, per_layer=not args.no_per_layer)
    report = dict(
        tool='lbc_mmdet tools/benchmark_latency.py', version=lbc_mmdet.__version__,
        config=args.config, checkpoint=osp.abspath(args.checkpoint),
        device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else 'CPU'),
        accelerated=converter is not None, accelerator_note=note,
        dtype=str(dtype).replace('torch.', ''), requested_dtype=args.dtype,
        backend=backend, kxk=args.kxk, warmup=args.warmup, iters=args.iters,
        timer=timer, torch_version=torch.__version__, variants=VARIANTS,
        **bench)
    out = args.out
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    md_path = osp.splitext(out)[0] + '.md'
    with open(md_path, 'w') as f:
        f.write(markdown(report))
    print(f'wrote {out} and {md_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
