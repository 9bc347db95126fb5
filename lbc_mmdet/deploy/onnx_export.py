"""ONNX export of a detector's backbone and neck, and the checks a sparse deployment needs.

- :func:`export_backbone_neck` writes ``neck(backbone(x))`` (every sparse weight of a
  backbone/neck-sparse detector) with torch's TorchScript-based exporter
  (``torch.onnx.export(..., dynamo=False)``, constant folding on: in eval mode it folds
  each BatchNorm into the preceding Conv's weight and bias, which scales whole output
  channels and so keeps an N:M pattern along the input channels).
- :func:`onnx_convs` reads every ``Conv`` node's weight from the graph (an initializer,
  possibly through ``Identity``/``Transpose`` nodes or a ``Constant``) and matches it to
  the PyTorch module it came from (the exporter's scope name, else execution order; the
  shape must agree).
- :func:`check_convs`: the N:M check of each expected sparse layer *inside the ONNX
  weights*, along the axis TensorRT's sparse kernels use (for a weight ``[K, C, R, S]``,
  every group of 4 consecutive input channels at a fixed output channel and kernel
  position; the project's grouping), and TensorRT's eligibility of every Conv.
- :func:`compare_onnxruntime`: the ONNX outputs against PyTorch's on onnxruntime's CPU.

TensorRT's documented condition (TensorRT Developer Guide, "Structured Sparsity"): for
each output channel and kernel position, every 4 input channels hold at least 2 zeros,
with ``C % 4 == 0``; the builder needs ``kSPARSE_WEIGHTS`` and FP16 or INT8. TensorRT
times sparse and dense tactics and keeps the faster; its maintainers note that sparse conv
kernels win only when C and K are large enough (around 256, a 3x3 kernel counting as 9x
C) and that grouped convs are not considered (see ``docs/deployment.md``).
"""
import importlib
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..errors import LBCError

#: TensorRT's structured-sparsity group along the input channels.
TRT_M = 4
TRT_N = 2
#: Channel size (K and C * R * S) from which TensorRT's sparse kernels tend to win (a
#: maintainer's rule of thumb, NVIDIA/TensorRT issues #3849 and #4065; not a guarantee).
TRT_LARGE = 256


class ONNXUnavailableError(LBCError):
    """``onnx`` / ``onnxruntime`` are not installed."""


def require(module: str):
    """Import ``module`` (``onnx``, ``onnxruntime``) or raise a one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ONNXUnavailableError(f'{module} is not installed ({err}): pip install onnx '
                                   'onnxruntime (requirements/tests.txt)') from err


class BackboneNeck(nn.Module):
    """``neck(backbone(x))`` of a detector as a module returning a tuple of feature maps
    (the backbone's own outputs when the detector has no neck)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone = detector.backbone
        if getattr(detector, 'neck', None) is not None:
            self.neck = detector.neck

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.backbone(x)
        if hasattr(self, 'neck'):
            feats = self.neck(feats)
        return tuple(feats)


def export_backbone_neck(module: nn.Module, path: str, inputs: torch.Tensor,
                         opset: int = 17) -> List[str]:
    """Export ``module`` (a :class:`BackboneNeck`) on ``inputs`` to ``path``; returns the
    output names (``feat0`` ...)."""
    module.eval()
    with torch.no_grad():
        num_out = len(module(inputs))
    names = [f'feat{i}' for i in range(num_out)]
    kwargs = dict(opset_version=opset, input_names=['input'], output_names=names,
                  do_constant_folding=True)
    with torch.no_grad(), warnings.catch_warnings():
        # torch >= 2.9 warns that the TorchScript-based exporter is legacy: it is chosen
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        try:
            torch.onnx.export(module, (inputs, ), path, dynamo=False, **kwargs)
        except TypeError as err:  # a torch without the `dynamo` argument
            if 'dynamo' not in str(err):
                raise
            torch.onnx.export(module, (inputs, ), path, **kwargs)
    return names


def scope_to_module(node_name: str) -> str:
    """The module name an exporter scope name points at:
    ``/backbone/layer1/layer1.0/conv2/Conv`` -> ``backbone.layer1.0.conv2``."""
    parts = [p for p in node_name.strip('/').split('/')[:-1] if p]
    name, last = '', ''
    for part in parts:
        if last and part.startswith(last + '.'):
            name = name[:len(name) - len(last)] + part
        else:
            name = f'{name}.{part}' if name else part
        last = part
    return name


def _resolve_weight(graph, tensor: str) -> Tuple[Optional[np.ndarray], str]:
    """The constant value of ``tensor`` in ``graph`` and where it comes from."""
    from onnx import numpy_helper
    inits = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    perm = None
    steps = []
    while tensor not in inits:
        node = producers.get(tensor)
        if node is None:
            return None, f'{tensor} (a graph input, not a constant)'
        if node.op_type == 'Constant':
            value = numpy_helper.to_array(node.attribute[0].t)
            return (value if perm is None else value.transpose(perm)), f'Constant {tensor}'
        if node.op_type == 'Identity':
            steps.append('Identity')
        elif node.op_type == 'Transpose':
            axes = [list(a.ints) for a in node.attribute if a.name == 'perm'][0]
            perm = axes if perm is None else [axes[p] for p in perm]
            steps.append('Transpose')
        else:
            return None, f'{tensor} (computed by a {node.op_type} node)'
        tensor = node.input[0]
    value = numpy_helper.to_array(inits[tensor])
    if perm is not None:
        value = value.transpose(perm)
    return value, tensor + (f' via {"/".join(steps)}' if steps else '')


def onnx_convs(onnx_model, module: nn.Module, inputs: torch.Tensor) -> List[Dict]:
    """Every Conv node of ``onnx_model`` with its weight (``[K, C, R, S]`` numpy array),
    ``group`` and the name of the ``module`` submodule it came from (``None`` if it cannot
    be matched)."""
    graph = onnx_model.graph
    convs = []
    for node in graph.node:
        if node.op_type != 'Conv':
            continue
        weight, source = _resolve_weight(graph, node.input[1])
        group = [a.i for a in node.attribute if a.name == 'group']
        convs.append(dict(node=node.name, weight=weight, source=source,
                          group=group[0] if group else 1,
                          guess=scope_to_module(node.name)))
    modules = dict(module.named_modules())
    order: List[str] = []
    hooks = [mod.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
             for name, mod in modules.items() if isinstance(mod, nn.Conv2d)]
    try:
        with torch.no_grad():
            module(inputs)
    finally:
        for h in hooks:
            h.remove()

    def fits(name: Optional[str], conv: Dict) -> bool:
        mod = modules.get(name) if name else None
        return (isinstance(mod, nn.Conv2d) and conv['weight'] is not None
                and tuple(mod.weight.shape) == tuple(conv['weight'].shape))

    by_order = order if len(order) == len(convs) else [None] * len(convs)
    for conv, ordered in zip(convs, by_order):
        conv['module'] = (conv['guess'] if fits(conv['guess'], conv) else
                          ordered if fits(ordered, conv) else None)
    return convs


def group_counts(weight: np.ndarray, m: int) -> np.ndarray:
    """Non-zeros of every group of ``m`` input channels of a ``[K, C, R, S]`` weight, at
    each output channel and kernel position (TensorRT's and this project's grouping)."""
    k, c, r, s = weight.shape
    return (weight.transpose(0, 2, 3, 1).reshape(k, r, s, c // m, m) != 0).sum(axis=-1)


def trt_status(conv: Dict) -> Tuple[bool, str]:
    """``(eligible, reason)``: whether TensorRT may run this Conv with sparse kernels."""
    w = conv['weight']
    if w is None:
        return False, f'weight is not a constant: {conv["source"]}'
    if w.ndim != 4:
        return False, f'{w.ndim}-D weight'
    if conv['group'] != 1:
        return False, f'grouped conv (group={conv["group"]}): TensorRT does not consider it'
    if w.shape[1] % TRT_M:
        return False, f'{w.shape[1]} input channels: not a multiple of {TRT_M}'
    bad = int((group_counts(w, TRT_M) > TRT_N).sum())
    if bad:
        return False, (f'not 2:4 along the input channels ({bad} groups of 4 hold more '
                       'than 2 non-zeros)')
    k, c, r, s = w.shape
    if k >= TRT_LARGE and c * r * s >= TRT_LARGE:
        return True, f'2:4 along the input channels (K={k}, C*R*S={c * r * s})'
    return True, (f'2:4 along the input channels, but small (K={k}, C*R*S={c * r * s} '
                  f'< {TRT_LARGE}): TensorRT may pick a dense tactic')


def check_convs(convs: Sequence[Dict], expected: Dict[str, Tuple[int, int]]) -> Dict:
    """The N:M check of the expected sparse layers (``{module name: (n, m)}``) in the
    ONNX weights, and TensorRT's eligibility of every Conv. Returns plain data:
    ``layers`` (one entry per Conv), ``nm`` (``expected``, ``checked``, ``failed``,
    ``missing``, ``ok``) and ``tensorrt`` (``sparse_eligible``, ``large``,
    ``not_eligible``)."""
    layers, failed, seen = [], [], set()
    for conv in convs:
        w, name = conv['weight'], conv['module']
        entry = dict(node=conv['node'], module=name, source=conv['source'],
                     shape=None if w is None else list(w.shape), group=conv['group'])
        if name in expected and w is not None:
            n, m = expected[name]
            seen.add(name)
            counts = group_counts(w, m) if w.shape[1] % m == 0 else None
            bad = -1 if counts is None else int((counts > n).sum())
            entry.update(pattern=f'{n}:{m}', bad_groups=bad, nm_valid=bad == 0,
                         max_nonzero=None if counts is None else int(counts.max()))
            if bad:
                failed.append(name)
        eligible, reason = trt_status(conv)
        entry.update(trt_sparse_eligible=eligible, trt_reason=reason,
                     trt_large=eligible and 'small' not in reason)
        layers.append(entry)
    missing = sorted(set(expected) - seen)

    def label(e: Dict) -> str:
        return e['module'] or e['node']

    return dict(
        layers=layers,
        nm=dict(expected=len(expected), checked=len(seen), failed=failed, missing=missing,
                ok=not failed and not missing and bool(expected)),
        tensorrt=dict(
            sparse_eligible=[label(e) for e in layers if e['trt_sparse_eligible']],
            large=[label(e) for e in layers if e['trt_large']],
            not_eligible=[dict(name=label(e), reason=e['trt_reason']) for e in layers
                          if not e['trt_sparse_eligible']]))


def compare_onnxruntime(path: str, module: nn.Module, inputs: torch.Tensor,
                        atol: float, rtol: float) -> Dict:
    """Run ``path`` with onnxruntime's CPU provider on ``inputs`` and compare with
    ``module(inputs)``: per output the max abs difference against ``atol + rtol *
    max|reference|``."""
    ort = require('onnxruntime')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    with torch.no_grad():
        ref = [t.numpy() for t in module(inputs)]
    if len(got) != len(ref):
        raise LBCError(f'{path}: {len(got)} outputs, PyTorch gives {len(ref)}')
    outputs = []
    for name, a, b in zip([o.name for o in session.get_outputs()], got, ref):
        diff = float(np.abs(a - b).max()) if a.shape == b.shape else float('inf')
        scale = float(np.abs(b).max())
        outputs.append(dict(name=name, shape=list(b.shape), max_abs_diff=diff,
                            max_abs_ref=scale, tolerance=atol + rtol * scale,
                            ok=diff <= atol + rtol * scale))
    return dict(outputs=outputs, max_abs_diff=max(o['max_abs_diff'] for o in outputs),
                ok=all(o['ok'] for o in outputs), provider='CPUExecutionProvider')


__all__ = [
    'TRT_M', 'TRT_N', 'TRT_LARGE', 'ONNXUnavailableError', 'require', 'BackboneNeck',
    'export_backbone_neck', 'scope_to_module', 'onnx_convs', 'group_counts', 'trt_status',
    'check_convs', 'compare_onnxruntime'
]
