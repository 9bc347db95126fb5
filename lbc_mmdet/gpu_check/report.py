"""The GPU check's markdown report (the JSON is the report dict itself)."""
from typing import Dict, List

from ..deploy.latency import markdown as latency_markdown

PARTS = {
    'a': 'gemm',
    'b': 'model',
    'c': 'training',
    'd': 'latency',
}
TITLES = {
    'gemm': '(a) 2:4 products against the dense product',
    'model': '(b) lowered 2:4 backbone + FPN against the dense model',
    'training': '(c) loss-scaled mixed-precision training',
    'latency': '(d) latency: dense vs 2:4 backbone',
}


def _f(v, digits: int = 2) -> str:
    if v is None:
        return '-'
    if isinstance(v, bool):
        return 'yes' if v else '**no**'
    if isinstance(v, float):
        return f'{v:.{digits}e}' if v and abs(v) < 10**-digits else f'{v:.{digits}f}'
    return str(v)


def verdict(ok) -> str:
    return 'PASS' if ok else '**FAIL**'


def _gemm(part: Dict) -> List[str]:
    lines = [f'Every distinct GEMM shape of the lowered ResNet-50 backbone for '
             f'{part["input"]} (M = output channels, K = kh*kw*input channels, N = pixels); '
             'relative error against fp32 of the same product.', '',
             '| M | K | N | layers | dtype | backend | order | rel err 2:4 | rel err dense '
             '| ok |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in part['results']:
        layers = ', '.join(r.get('layers', [])[:2]) + (
            f' (+{len(r["layers"]) - 2})' if len(r.get('layers', [])) > 2 else '')
        ok = verdict(r['ok']) + (f' ({r["error"]})' if r.get('error') else '')
        lines.append(f'| {r["M"]} | {r["K"]} | {r["N"]} | {layers} | {r["dtype"]} | '
                     f'{r["backend"]} | {r["order"]} | {_f(r["rel_err"], 5)} | '
                     f'{_f(r["rel_err_dense"], 5)} | {ok} |')
    return lines


def _model(part: Dict) -> List[str]:
    lines = [f'Input {part["input"]}, BatchNorm statistics calibrated on random data; '
             'relative error of each FPN output against the fp32 dense model.', '',
             '| dtype | backend | order | 2:4 layers | dense layers | output | shape | '
             'rel err 2:4 | rel err dense | ok |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in part['results']:
        if r.get('error'):
            lines.append(f'| {r["dtype"]} | {r["backend"]} | {r["order"]} | - | - | - | - '
                         f'| - | - | {verdict(False)} ({r["error"]}) |')
            continue
        dense = ', '.join(r['layers_dense']) or '-'
        for o in r['outputs']:
            lines.append(f'| {r["dtype"]} | {r["backend"]} | {r["order"]} | '
                         f'{r["layers_2to4"]} | {dense} | {o["index"]} | '
                         f'{"x".join(map(str, o["shape"]))} | {_f(o["rel_err"], 5)} | '
                         f'{_f(o["rel_err_dense"], 5)} | {verdict(r["ok"])} |')
    return lines


def _training(part: Dict) -> List[str]:
    lines = ['Every registered N:M method, 2:4, trained with autocast and a GradScaler '
             '(`nm_grad_scale` set as NMSparsityHook sets it, `nm_update` driven through '
             'the schedule to its end).', '',
             '| method | steps | AMP | first loss | last loss | finite | skipped steps | '
             'exact N:M layers | ok |', '|---|---|---|---|---|---|---|---|---|']
    for r in part['results']:
        lines.append(f'| {r["method"]} | {r["steps"]} | {r["amp_dtype"]} + GradScaler | '
                     f'{_f(r["first_loss"], 4)} | {_f(r["last_loss"], 4)} | '
                     f'{_f(r["finite_losses"])} | {r["skipped_steps"]} | '
                     f'{r["exact_layers"]}/{r["eligible_layers"]} | {verdict(r["ok"])} |')
    invariance = part.get('invariance') or []
    if invariance:
        lines += ['', 'Loss-scale invariance: one plain SGD step in fp32 with the loss '
                  'multiplied by the scale and the gradients divided by it before the '
                  'step (`nm_grad_scale` set to the scale) against the unscaled step, from '
                  'identical copies; largest relative difference of a parameter or method '
                  'state tensor (`nm_state_tensors`), relative to the unscaled step\'s '
                  'change of it. A term added to the gradient, or a gradient accumulator, '
                  'that does not account for `nm_grad_scale` shows here.', '',
                  '| method | loss scale | tensors (method state) | max rel diff | '
                  'worst tensor | tolerance | ok |', '|---|---|---|---|---|---|---|']
    for r in invariance:
        lines.append(f'| {r["method"]} | {r["scale"]:g} | {r["tensors"]} '
                     f'({r["state_tensors"]}) | {_f(r["max_rel_err"], 3)} | '
                     f'{r["worst_tensor"] or "-"} | {r["tol"]:g} | {verdict(r["ok"])} |')
    return lines


def _latency(part: Dict) -> List[str]:
    md = latency_markdown(part['report'])
    body = md.split('\n', 1)[1] if md.startswith('# ') else md
    return ['#' + line if line.startswith('## ') else line for line in body.splitlines()]


def markdown(report: Dict) -> str:
    """The whole check as markdown."""
    rt = report['runtime']
    cap = rt.get('capability')
    lines = ['# GPU check: 2:4 kernels, lowered model, loss-scaled training, latency', '',
             f'- result: {verdict(report["ok"])} ('
             + ', '.join(f'{key}: {verdict(report[key]["ok"])}'
                         for key in PARTS.values() if key in report) + ')',
             f'- device: {rt["device_name"]} (compute capability '
             f'{".".join(map(str, cap)) if cap else "-"}); torch {rt["torch"]}, CUDA '
             f'{rt.get("cuda") or "-"}, cuDNN {rt.get("cudnn") or "-"}, cuSPARSELt '
             f'{rt.get("cusparselt") or "-"}',
             f'- backend: {report["backend"]} ({report["backend_reason"]}); backends checked '
             f'in (a): {", ".join(report["backends"])}; GEMM order {report["gemm_order"]}; '
             f'cuSPARSELt tuning {"on" if report.get("tune") else "off"}',
             '- wall time: ' + ', '.join(f'{key} {report[key]["seconds"]:.1f} s'
                                         for key in PARTS.values() if key in report), '']
    for key, render in (('gemm', _gemm), ('model', _model), ('training', _training),
                        ('latency', _latency)):
        if key in report:
            lines += [f'## {TITLES[key]}: {verdict(report[key]["ok"])}', '']
            lines += render(report[key]) + ['']
    return '\n'.join(lines)
