"""Time the backbone of an exported 2:4 model: dense kernels against 2:4 semi-structured
GEMMs (the maths behind ``tools/benchmark_latency.py``; ``docs/deployment.md``).

Variants, per layer and end to end: ``dense`` (the model as it is), ``masked_gemm`` (the
eligible convs lowered to GEMMs with the dense masked weight: the cost of the lowering)
and ``sparse_2to4`` (the same GEMMs with ``torch.sparse.to_sparse_semi_structured``
weights). Every layer's entry says what it ran in the 2:4 model (``execution``: ``2:4``,
``dense`` and why, or ``skipped`` where no 2:4 model was built). CUDA events on a GPU,
``time.perf_counter`` elsewhere; medians.
"""
import copy
import statistics
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils import replace_module
from .lowering import GemmPlan, LoweredConv2d, lower_convs, plan_layer

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
VARIANTS = {
    'dense': 'the model as loaded: dense convolution kernels (cuDNN / CPU)',
    'masked_gemm': 'eligible convs lowered to GEMMs (1x1 on channels-last activations, '
                   'strided 1x1 subsampled, k x k via im2col) with the dense masked weight',
    'sparse_2to4': 'the same GEMMs with torch.sparse.to_sparse_semi_structured weights',
}
EXECUTIONS = {
    '2:4': 'ran as a 2:4 semi-structured GEMM',
    'dense': 'ran with the dense kernel (not eligible, or its conversion failed: reason)',
    'skipped': 'no 2:4 model was built (no 2:4 kernel on this device)',
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


# ------------------------------------------------------------------------- variants
def build_variants(model: nn.Module, plans: Sequence[GemmPlan], order: str = 'dense_first',
                   converter: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                   skip_reason: str = 'no 2:4 kernel on this device'
                   ) -> Tuple[nn.Module, Optional[nn.Module], Dict[str, Tuple[str, str]]]:
    """``(masked, sparse, execution)``: copies of ``model`` with its accelerated convs
    lowered to GEMMs in ``order`` (dense masked weights), the same with ``converter``
    applied to every GEMM weight (None without a converter), and per planned layer
    ``(execution, reason)`` (:data:`EXECUTIONS`). A layer whose conversion fails runs its
    dense convolution in the sparse model; the error is its reason."""
    masked = copy.deepcopy(model)
    lower_convs(masked, plans, order)
    sparse = copy.deepcopy(masked) if converter is not None else None
    execution: Dict[str, Tuple[str, str]] = {}
    for plan in plans:
        if not plan.accelerated or plan.kind == 'linear':
            execution[plan.name] = ('dense', plan.reason or 'nn.Linear: not lowered here')
        elif sparse is None:
            execution[plan.name] = ('skipped', skip_reason)
        else:
            try:
                sparse.get_submodule(plan.name).convert_weight(converter)
                execution[plan.name] = ('2:4', None)
            except Exception as err:  # noqa: BLE001  (a constraint checked by PyTorch)
                replace_module(sparse, plan.name, copy.deepcopy(model.get_submodule(plan.name)))
                msg = (str(err).strip().splitlines() or [type(err).__name__])[0]
                execution[plan.name] = ('dense', f'conversion failed: {msg}')
    return masked, sparse, execution


def dense_padding_note(weight: torch.Tensor, operand: torch.Tensor) -> Optional[str]:
    """A note when PyTorch pads the dense operand of ``weight``'s semi-structured product
    at every call (its dense shape constraint), i.e. copies the activation."""
    table = getattr(type(weight), '_DTYPE_SHAPE_CONSTRAINTS', None) or {}
    c = table.get(operand.dtype)
    if c is None:
        return None
    rows, cols = operand.shape
    if rows % c.dense_min_rows or cols % c.dense_min_cols:
        return (f'dense operand {rows}x{cols} padded by PyTorch to multiples of '
                f'{c.dense_min_rows}x{c.dense_min_cols} at every call (a copy)')
    return None


def _tune(sparse: nn.Module, inputs: Dict[str, torch.Tensor], order: str,
          tuner: Callable) -> Dict[str, object]:
    """Run ``tuner(weight, operand, order)`` on every 2:4 layer; an algorithm the layer
    then cannot run with is reset to 0 (the entry says why)."""
    out: Dict[str, object] = {}
    with torch.no_grad():
        for name, xi in inputs.items():
            low = sparse.get_submodule(name)
            if not isinstance(low, LoweredConv2d):
                continue
            try:
                out[name] = tuner(low.gemm_weight, low.gemm_input(xi)[0], order)
                low(xi)
            except Exception as err:  # noqa: BLE001
                if hasattr(low.gemm_weight, 'alg_id_cusparselt'):
                    low.gemm_weight.alg_id_cusparselt = 0
                out[name] = f'tuning failed ({type(err).__name__}: {err}); algorithm 0'
    return out


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
                  log: Callable[[str], None] = print,
                  order: str = 'dense_first',
                  tuner: Optional[Callable] = None,
                  skip_reason: str = 'no 2:4 kernel on this device') -> Dict:
    """Time the variants of ``backbone`` for every ``(batch, (h, w))`` in ``settings``.

    ``converter`` turns a padded GEMM weight into the sparse operand
    (:func:`to_semi_structured` on a GPU); without it the ``sparse_2to4`` variant is not
    run. Layers are planned for ``plan_dtype`` (the GPU dtype), run in ``dtype``, with the
    GEMM call ``order`` (:class:`LoweredConv2d`). ``tuner(weight, operand, order)``
    (:func:`~lbc_mmdet.deploy.backends.tune_cusparselt`) picks each 2:4 layer's algorithm
    for every setting before it is timed.
    """
    dense = backbone.to(device=device, dtype=dtype)
    dense = dense.to(memory_format=torch.channels_last)
    dense.eval()  # not chained: mmdet's ResNet.train() returns None
    convs = {n: m for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    plans = [plan_layer(m, name=n, dtype=plan_dtype, backend=backend, kxk=kxk)
             for n, m in convs.items()]
    masked, sparse, execution = build_variants(dense, plans, order, converter, skip_reason)
    accelerated = [p for p in plans if p.accelerated]
    log(f'{len(accelerated)} of {len(plans)} backbone convs lowered to GEMMs ({order})'
        + (f'; not: {[(p.name, p.reason) for p in plans if not p.accelerated]}'
           if len(accelerated) < len(plans) else ''))
    failed = [(n, r) for n, (e, r) in execution.items() if e == 'dense' and
              r and r.startswith('conversion failed')]
    if failed:
        log(f'{len(failed)} layers run dense in the 2:4 model: {failed}')

    results = []
    for batch, (h, w) in settings:
        x = torch.randn(batch, 3, h, w, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        inputs: Dict[str, torch.Tensor] = {}
        hooks = [convs[p.name].register_forward_pre_hook(
            lambda mod, args, name=p.name: inputs.__setitem__(name, args[0]))
            for p in accelerated] if (per_layer or tuner is not None) else []
        with torch.no_grad():
            ref = dense(x)
        for hk in hooks:
            hk.remove()
        tuned = _tune(sparse, inputs, order, tuner) if (
            tuner is not None and sparse is not None) else {}
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
        layers = [_layer_entry(plan, execution[plan.name], convs, masked, sparse, inputs,
                               tuned, warmup, iters, device)
                  for plan in (plans if per_layer else [])]
        results.append(dict(batch_size=batch, input_size=[h, w], end_to_end=end_to_end,
                            layers=layers))
        msg = (f'batch {batch}, {h}x{w}: dense {end_to_end["dense_ms"]:.3f} ms, '
               f'masked_gemm {end_to_end["masked_gemm_ms"]:.3f} ms')
        if sparse is not None:
            msg += (f', sparse_2to4 {end_to_end["sparse_2to4_ms"]:.3f} ms '
                    f'(x{end_to_end["speedup_sparse_vs_dense"]:.2f})')
        log(msg)
        inputs.clear()
    counts = {k: sum(1 for e, _ in execution.values() if e == k) for k in EXECUTIONS}
    return dict(plans=[p.to_dict() for p in plans], gemm_order=order,
                execution_counts=counts, results=results)


def _layer_entry(plan, execution, convs, masked, sparse, inputs, tuned, warmup, iters,
                 device) -> Dict:
    """One layer's timings and status for one setting."""
    entry = dict(name=plan.name, kind=plan.kind, weight_shape=plan.weight_shape,
                 accelerated=plan.accelerated, reason=plan.reason,
                 execution=execution[0], execution_reason=execution[1],
                 pad_rows=plan.pad_rows, pad_cols=plan.pad_cols)
    if not (plan.accelerated and plan.name in inputs):
        return entry
    xi = inputs[plan.name]
    conv, low_m = convs[plan.name], masked.get_submodule(plan.name)
    entry['input_shape'] = list(xi.shape)
    entry['gemm'] = plan.gemm_shape(xi.shape)
    entry['dense_ms'] = measure(lambda: conv(xi), warmup, iters, device)['median_ms']
    entry['masked_gemm_ms'] = measure(lambda: low_m(xi), warmup, iters,
                                      device)['median_ms']
    operand = low_m.gemm_input(xi)[0]
    entry['gemm_dense_ms'] = measure(lambda: low_m.gemm(operand), warmup, iters,
                                     device)['median_ms']
    entry['sparse_2to4_ms'] = entry['gemm_sparse_ms'] = entry['max_abs_diff'] = None
    low_s = sparse.get_submodule(plan.name) if sparse is not None else None
    if isinstance(low_s, LoweredConv2d):
        entry['sparse_2to4_ms'] = measure(lambda: low_s(xi), warmup, iters,
                                          device)['median_ms']
        entry['gemm_sparse_ms'] = measure(lambda: low_s.gemm(operand), warmup, iters,
                                          device)['median_ms']
        with torch.no_grad():
            entry['max_abs_diff'] = _max_abs_diff(conv(xi), low_s(xi))
        note = dense_padding_note(low_s.gemm_weight, operand)
        entry['notes'] = [note] if note else []
        if plan.name in tuned:
            entry['cusparselt_alg_id'] = tuned[plan.name]
    entry['speedup'] = _ratio(entry['dense_ms'], entry['sparse_2to4_ms'])
    entry['gemm_speedup'] = _ratio(entry['gemm_dense_ms'], entry['gemm_sparse_ms'])
    return entry


# --------------------------------------------------------------------------- reports
def _fmt(v, digits=3) -> str:
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{digits}f}' if abs(v) >= 10**-digits or v == 0 else f'{v:.2e}'
    return str(v)


def _runtime_line(report: Dict) -> str:
    rt = report.get('runtime') or {}
    cap = rt.get('capability')
    return (f'- torch {report.get("torch_version", rt.get("torch"))}, CUDA '
            f'{rt.get("cuda") or "-"}, cuDNN {rt.get("cudnn") or "-"}, cuSPARSELt '
            f'{rt.get("cusparselt") or "-"}; compute capability '
            f'{".".join(map(str, cap)) if cap else "-"}')


def markdown(report: Dict) -> str:
    """The report as markdown: one table per setting, end to end and per layer."""
    lines = [f'# Backbone latency: dense vs 2:4 ({report["config"]})', '',
             f'- checkpoint: `{report["checkpoint"]}`',
             f'- device: {report["device_name"]} ({report["device"]}); dtype '
             f'{report["dtype"]}; backend {report["backend"] or "-"} '
             f'({report.get("backend_reason") or "-"}); GEMM order '
             f'{report.get("gemm_order") or "-"}; cuSPARSELt tuning '
             f'{"on" if report.get("tune_cusparselt") else "off"}; kxk: {report["kxk"]}',
             f'- {report["accelerator_note"]}', _runtime_line(report),
             f'- warm-up {report["warmup"]}, {report["iters"]} timed iterations, medians '
             f'in ms ({report["timer"]})']
    counts = report.get('execution_counts')
    if counts:
        lines.append('- layers in the 2:4 model: ' + ', '.join(
            f'{v} {k}' for k, v in counts.items()))
    lines.append('')
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
            lines += ['', '| layer | kind | ran | GEMM M x K x N | dense | masked_gemm | '
                      'sparse_2to4 | speed-up | GEMM dense | GEMM sparse | GEMM speed-up |'
                      ' note |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
            for layer in res['layers']:
                g = layer.get('gemm')
                shape = f'{g["M"]} x {g["K"]} x {g["N"]}' if g else '-'
                notes = [layer.get('execution_reason') or layer['reason'] or '']
                notes += layer.get('notes') or []
                if 'cusparselt_alg_id' in layer:
                    notes.append(f'cuSPARSELt algorithm {layer["cusparselt_alg_id"]}')
                lines.append(
                    f'| {layer["name"]} | {layer["kind"]} | {layer.get("execution", "-")} | '
                    f'{shape} | '
                    f'{_fmt(layer.get("dense_ms"))} | {_fmt(layer.get("masked_gemm_ms"))} | '
                    f'{_fmt(layer.get("sparse_2to4_ms"))} | {_fmt(layer.get("speedup"), 2)} '
                    f'| {_fmt(layer.get("gemm_dense_ms"))} | '
                    f'{_fmt(layer.get("gemm_sparse_ms"))} | '
                    f'{_fmt(layer.get("gemm_speedup"), 2)} | '
                    f'{"; ".join(n for n in notes if n)} |')
        lines.append('')
    return '\n'.join(lines)
