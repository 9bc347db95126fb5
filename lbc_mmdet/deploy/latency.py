"""Time the backbone of an exported 2:4 model: dense kernels against 2:4 semi-structured
GEMMs (the maths behind ``tools/benchmark_latency.py``; ``docs/deployment.md``).

Variants, per layer and end to end: ``dense`` (the model as it is), ``masked_gemm`` (the
eligible convs lowered to GEMMs with the dense masked weight: the cost of the lowering)
and ``sparse_2to4`` (the same GEMMs with ``torch.sparse.to_sparse_semi_structured``
weights). CUDA events on a GPU, ``time.perf_counter`` elsewhere; medians.
"""
import copy
import statistics
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lowering import LoweredConv2d, lower_convs, plan_layer

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
VARIANTS = {
    'dense': 'the model as loaded: dense convolution kernels (cuDNN / CPU)',
    'masked_gemm': 'eligible convs lowered to GEMMs (1x1 on channels-last activations, '
                   'strided 1x1 subsampled, k x k via im2col) with the dense masked weight',
    'sparse_2to4': 'the same GEMMs with torch.sparse.to_sparse_semi_structured weights',
}


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
        inputs.clear()
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


