"""Export a trained (sparse or exported) detector's backbone and neck to ONNX and check
that the file computes what PyTorch computes and keeps every N:M layer N:M."""
import json
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import torch

from ..deploy.onnx_export import (
    BackboneNeck,
    check_convs,
    compare_onnxruntime,
    export_backbone_neck,
    onnx_convs,
    require,
)
from ..deploy.verify import DEFAULT_INCLUDE
from ..errors import LBCError
from ..layers import sparse_layers
from ..utils import atomic_write, matches
from .models import build_model, load_dense_model

#: Format tag of the report.
REPORT_FORMAT = 'lbc_mmdet.onnx/v1'
#: Exit status when the ONNX file fails a check.
EXIT_CHECK_FAILED = 1


class ONNXCheckError(LBCError):
    """The ONNX file does not match PyTorch, or an N:M layer is not N:M in it."""
    exit_code = EXIT_CHECK_FAILED


def expected_patterns(config: str, model: torch.nn.Module, n: int, m: int,
                      include: Optional[Sequence[str]] = None,
                      cfg_options: Optional[dict] = None) -> Tuple[Dict, str]:
    """``({module name: (n, m)}, how)``: the layers that must be N:M in the export.

    With a sparse config: its eligible sparse layers with their own patterns. With a
    dense config: every conv of ``model`` (the dense model) matching ``include`` (default
    ``backbone.*``) whose input channels are divisible by ``m``, at ``n:m``.
    """
    _, sparse_model = build_model(config, cfg_options)
    layers = [(name, lay) for name, lay in sparse_layers(sparse_model) if lay.nm_eligible]
    if layers:
        exported = dict(model.named_modules())
        inside = {name: (lay.nm_n, lay.nm_m) for name, lay in layers if name in exported}
        outside = len(layers) - len(inside)
        return inside, 'sparse layers of the config' + (
            f' ({outside} more outside the backbone and neck, not exported)'
            if outside else '')
    patterns = list(include or DEFAULT_INCLUDE)
    found = {name: (n, m) for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Conv2d) and matches(name, patterns)
             and mod.groups == 1 and mod.in_channels % m == 0}
    return found, f'convs matching {patterns} at {n}:{m} (dense config)'


def export_onnx(config: str, checkpoint: str, out: str,
                input_size: Tuple[int, int] = (320, 320), opset: int = 17,
                atol: float = 1e-4, rtol: float = 1e-4, n: int = 2, m: int = 4,
                include: Optional[Sequence[str]] = None, check_only: bool = False,
                report_path: Optional[str] = None, cfg_options: Optional[dict] = None,
                seed: int = 0, log=print) -> Dict:
    """Export (unless ``check_only``) and check ``out``; write the JSON report
    (``out + '.json'`` by default) and return it.

    Args:
        config (str): The sparse config (or the dense one), as ``tools/benchmark_latency``.
        checkpoint (str): An exported checkpoint, or a finished training checkpoint of the
            sparse config (exported in memory, ``load_dense_model``).
        out (str): The ``.onnx`` path.
        input_size (tuple): ``(H, W)`` of the export and comparison input.
        atol, rtol (float): A feature map passes when its max abs difference to PyTorch is
            at most ``atol + rtol * max|PyTorch|``.
        n, m, include: The expected pattern for a dense config (see
            :func:`expected_patterns`).
        check_only (bool): Check an existing ``out`` without exporting.

    Raises:
        ONNXCheckError: A check failed (exit status 1; the report is written first).
        LBCError: Bad input (missing files, mismatch, onnx not installed).
    """
    onnx = require('onnx')
    ort = require('onnxruntime')
    start = time.time()
    model = load_dense_model(config, checkpoint, cfg_options)
    module = BackboneNeck(model).eval()
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(1, 3, *input_size, generator=gen)
    if check_only:
        if not osp.isfile(out):
            raise LBCError(f'ONNX file not found: {out}')
        log(f'checking {out} (not re-exported)')
    else:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        log(f'exporting backbone + neck of {config} to {out} (input 1x3x{input_size[0]}x'
            f'{input_size[1]}, opset {opset})')
        export_backbone_neck(module, out, inputs, opset=opset)
    onnx_model = onnx.load(out)
    convs = onnx_convs(onnx_model, module, inputs)
    expected, how = expected_patterns(config, module, n, m, include, cfg_options)
    checks = check_convs(convs, expected)
    runtime = compare_onnxruntime(out, module, inputs, atol, rtol)
    ok = checks['nm']['ok'] and runtime['ok']
    report = dict(
        format=REPORT_FORMAT, ok=ok, onnx=osp.abspath(out), config=config,
        checkpoint=osp.abspath(checkpoint), input_shape=list(inputs.shape), opset=opset,
        exported=not check_only, exporter='torch.onnx.export(dynamo=False) (TorchScript)',
        versions=dict(torch=torch.__version__, onnx=onnx.__version__,
                      onnxruntime=ort.__version__),
        expected_layers=how, tolerance=dict(atol=atol, rtol=rtol), onnxruntime=runtime,
        nm=checks['nm'], tensorrt=checks['tensorrt'], layers=checks['layers'],
        seconds=time.time() - start)
    report_path = report_path or out + '.json'
    atomic_write(report_path, json.dumps(report, indent=2))
    for line in summary_lines(report):
        log(line)
    log(f'wrote {report_path}')
    if not ok:
        raise ONNXCheckError('\n'.join(failure_lines(report)))
    return report


def summary_lines(report: Dict) -> list:
    """The printed summary of a report."""
    rt, nm, trt = report['onnxruntime'], report['nm'], report['tensorrt']
    lines = [f"onnxruntime vs PyTorch: max abs diff {rt['max_abs_diff']:.3g} over "
             f"{len(rt['outputs'])} feature maps ({'OK' if rt['ok'] else 'FAIL'})"]
    lines.append(f"N:M in the ONNX weights ({report['expected_layers']}): "
                 f"{nm['checked'] - len(nm['failed'])}/{nm['expected']} layers N:M"
                 f"{'' if nm['ok'] else ' (FAIL)'}")
    lines.append(f"TensorRT 2:4 sparse-eligible convs: {len(trt['sparse_eligible'])} "
                 f"({len(trt['large'])} with K and C*R*S >= 256); not eligible: "
                 f"{len(trt['not_eligible'])}")
    reasons: Dict[str, int] = {}
    for item in trt['not_eligible']:
        key = item['reason'].split(' (')[0] if 'not 2:4' in item['reason'] else item['reason']
        reasons[key] = reasons.get(key, 0) + 1
    lines += [f'  {count} x {why}' for why, count in sorted(reasons.items())]
    return lines


def failure_lines(report: Dict) -> list:
    """The error message of a failed check: what failed and which layers."""
    nm, rt = report['nm'], report['onnxruntime']
    lines = [f"ONNX check failed for {report['onnx']}"]
    bad = {e['module']: e for e in report['layers'] if e.get('nm_valid') is False}
    for name in nm['failed']:
        e = bad[name]
        lines.append(f"{name} (ONNX node {e['node']}, initializer {e['source']}): "
                     f"{e['bad_groups']} groups of {e['pattern'].split(':')[1]} input "
                     f"channels hold more than {e['pattern'].split(':')[0]} non-zeros "
                     f"(max {e['max_nonzero']})")
    if nm['missing']:
        lines.append(f"{len(nm['missing'])} expected N:M layers not found in the ONNX "
                     f"graph: {', '.join(nm['missing'][:6])}")
    if not nm['expected']:
        lines.append('no N:M layer expected: pass the sparse config, or --n/--m/--include')
    for o in rt['outputs']:
        if not o['ok']:
            lines.append(f"output {o['name']}: max abs diff {o['max_abs_diff']:.3g} > "
                         f"tolerance {o['tolerance']:.3g}")
    return lines


__all__ = ['REPORT_FORMAT', 'EXIT_CHECK_FAILED', 'ONNXCheckError', 'expected_patterns',
           'export_onnx', 'summary_lines', 'failure_lines']
