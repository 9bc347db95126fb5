"""Export a trained N:M sparse model to the state dict of its *dense* counterpart.

Every eligible sparse layer's mask is folded into its weight (``masked_weight()``) and
the method's own state (every name in the layer's ``nm_extra_state_names``) is dropped,
so the keys are
those of the stock mmdet model built without ``conv_cfg``/``NMSparsify``: the exported
checkpoint loads into it with ``strict=True`` and computes exactly what the sparse model
computes in eval mode.

Only the sparse-layer protocol (:mod:`lbc_mmdet.layers.base`) is used, so every method's
layers export the same way.
"""
import json
import math
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Set, Tuple

import torch
import torch.nn as nn

from ..errors import LBCError
from ..layers import NMSparseMixin, sparse_layers
from ..nm import count_nonzero_per_group, num_groups, to_groups
from ..utils import replace_module, to_plain

#: Format tag of the export report.
REPORT_FORMAT = 'lbc_mmdet.export/v1'
#: Keys a dense ``nn.Conv2d`` / ``nn.Linear`` holds.
DENSE_LAYER_KEYS = ('weight', 'bias')


class NMExportError(LBCError, ValueError):
    """The model cannot be exported; ``layers`` names the offending layers."""

    def __init__(self, message: str, layers: Iterable[str] = ()):
        super().__init__(message)
        self.layers = list(layers)


class NonFiniteWeightsError(NMExportError):
    """The model holds NaN or Inf values (a diverged training), whatever its masks."""


def _pattern(layer: NMSparseMixin) -> str:
    return f'{layer.nm_n}:{layer.nm_m}'


def _own_keys(state_dict: Dict[str, Any], prefix: str) -> List[str]:
    """Keys of ``state_dict`` that belong to the module at ``prefix`` itself (not to its
    children)."""
    return [k for k in state_dict if k.startswith(prefix) and '.' not in k[len(prefix):]]


@torch.no_grad()
def _canonical_zeros(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` with every zero written as ``+0.0`` (``w * 0`` gives ``-0.0`` for a
    negative ``w``)."""
    weight = weight.detach().clone()
    weight[weight == 0] = 0
    return weight


@torch.no_grad()
def group_stats(weight: torch.Tensor, n: int, m: int) -> Dict[str, Any]:
    """Sparsity numbers of ``weight`` under the standard N:M grouping."""
    counts = count_nonzero_per_group(to_groups(weight, m))
    numel = weight.numel()
    nonzero = int(counts.sum())
    return dict(numel=int(numel), nonzero=nonzero,
                sparsity=(1.0 - nonzero / numel) if numel else 0.0,
                groups=int(num_groups(weight.shape, m)),
                bad_groups=int((counts > n).sum()),
                nm_valid=bool((counts <= n).all()))


@torch.no_grad()
def nonfinite_tensors(model: nn.Module) -> List[Tuple[str, int]]:
    """Non-finite values (NaN, Inf) in what an export keeps of the model's state (the
    sparse methods' own state, which export drops, may use NaN as a marker).

    Args:
        model (nn.Module): The model to export.

    Returns:
        list[tuple[str, int]]: ``(state-dict key, number of non-finite values)`` of every
        kept parameter or buffer that holds one, in state-dict order.
    """
    dropped = {f'{name}.{extra}' if name else extra for name, layer in sparse_layers(model)
               for extra in layer.nm_extra_state_names}
    return [(key, int((~torch.isfinite(value)).sum()))
            for key, value in model.state_dict().items()
            if key not in dropped and isinstance(value, torch.Tensor)
            and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def unfinished_layers(model: nn.Module) -> List[Tuple[str, str]]:
    """``(name, why)`` of every eligible sparse layer whose mask does not keep exactly N of
    every M (``nm_is_exact()`` is False): an export would not be N:M.

    Args:
        model (nn.Module): A model holding sparse layers.

    Returns:
        list[tuple[str, str]]: The unfinished layers' names and why, in module order.
    """
    out = []
    for name, layer in sparse_layers(model):
        if not layer.nm_eligible or layer.nm_is_exact():
            continue
        with torch.no_grad():
            counts = to_groups(layer.nm_mask(), layer.nm_m).sum(dim=1)
        wrong = int((counts != layer.nm_n).sum())
        why = (f'{layer.nm_method} {_pattern(layer)}: {wrong} of {counts.numel()} groups '
               f'keep != {layer.nm_n} weights (mean {float(counts.float().mean()):.2f} '
               'per group)')
        out.append((name, why))
    return out


def export_sparse_state_dict(model: nn.Module,
                             max_names: int = 10) -> Tuple['OrderedDict[str, torch.Tensor]',
                                                           Dict[str, Any]]:
    """The dense-keyed state dict of a trained N:M sparse ``model``, and a report.

    Args:
        model (nn.Module): A model holding sparse layers (``sparse_layers(model)``), e.g.
            built from a config with ``conv_cfg=dict(type='LBCConv2d', ...)`` or
            ``type='NMSparsify'``. It is not modified.
        max_names (int): How many offending layers an error message lists.

    Returns:
        tuple: ``(state_dict, report)``. ``state_dict`` (an ``OrderedDict`` of tensors)
        has the keys of the dense model; ``report`` is plain data (JSON-serialisable):
        ``format``, ``pattern`` (``'2:4'``, or ``'mixed'``), ``patterns``, ``methods``,
        ``summary`` (layer counts, weights in sparse layers, their zeros, sparsity of the
        sparse layers and of all conv/linear weights), ``layers`` (one entry per exported
        sparse layer: ``name``, ``key``,
        ``method``, ``pattern``, ``shape``, ``numel``, ``nonzero``, ``sparsity``,
        ``groups``, ``bad_groups``, ``nm_valid``), ``dense_layers`` (every Conv2d/Linear
        left dense, with ``reason``) and ``dropped_keys``.

    Raises:
        NMExportError: The model has no sparse layer; a parameter or buffer holds NaN or
            Inf (:class:`NonFiniteWeightsError`, one line naming the first); an eligible layer
            is not exactly N:M
            (e.g. an LBC layer with candidates still alive: training did not reach the end
            of the sparsity schedule); or a sparse layer holds state that its method does
            not declare in ``nm_extra_state_names`` (it would not load into the dense
            model). ``err.layers`` names the layers.
    """
    layers = sparse_layers(model)
    if not layers:
        raise NMExportError(
            'the model has no N:M sparse layer: build it from the sparse config it was '
            'trained with (conv_cfg=dict(type=...Conv2d) or type=NMSparsify)')
    nonfinite = nonfinite_tensors(model)
    if nonfinite:  # checked first: NaN * 0 is NaN, so no mask folds it away
        key, count = nonfinite[0]
        more = f' (and {len(nonfinite) - 1} more tensors)' if len(nonfinite) > 1 else ''
        raise NonFiniteWeightsError(
            f'refusing to export: non-finite weights: {key} holds {count} NaN/Inf '
            f'value(s){more}; training diverged: export a checkpoint from before it',
            [k.rsplit('.', 1)[0] for k, _ in nonfinite])
    unfinished = unfinished_layers(model)
    if unfinished:
        names = [n for n, _ in unfinished]
        listed = '\n'.join(f'  {n}: {why}' for n, why in unfinished[:max_names])
        more = (f'\n  ... and {len(unfinished) - max_names} more'
                if len(unfinished) > max_names else '')
        raise NMExportError(
            f'refusing to export: {len(unfinished)} eligible sparse layer(s) are not '
            f'exactly N:M:\n{listed}{more}\nThe sparsity schedule has not finished (e.g. '
            'LBC candidates still alive): export the checkpoint of a finished run (after '
            'the hook\'s `tf`).', names)

    source = model.state_dict()
    state = OrderedDict(source)
    metadata = getattr(source, '_metadata', None)
    dropped: List[str] = []
    undeclared: List[str] = []
    undeclared_names: List[str] = []
    entries: List[Dict[str, Any]] = []
    sparse_names: Set[str] = set()
    dense_entries: List[Dict[str, Any]] = []
    patterns: List[str] = []
    methods: List[str] = []
    for name, layer in layers:
        sparse_names.add(name)
        prefix = name + '.'
        for extra in layer.nm_extra_state_names:
            if prefix + extra in state:
                del state[prefix + extra]
                dropped.append(prefix + extra)
        leftover = [k for k in _own_keys(state, prefix)
                    if k[len(prefix):] not in DENSE_LAYER_KEYS]
        if leftover:
            undeclared.append(f'{name} ({type(layer).__name__}): {leftover}')
            undeclared_names.append(name)
        if not layer.nm_eligible:
            dense_entries.append(dict(name=name, key=prefix + 'weight',
                                      shape=list(layer.weight.shape),
                                      reason=f'ineligible for {_pattern(layer)}: '
                                      f'{layer.nm_skip_reason}'))
            continue
        weight = _canonical_zeros(layer.masked_weight()).to(source[prefix + 'weight'])
        state[prefix + 'weight'] = weight
        stats = group_stats(weight, layer.nm_n, layer.nm_m)
        entries.append(dict(name=name, key=prefix + 'weight', method=layer.nm_method,
                            pattern=_pattern(layer), shape=list(weight.shape), **stats))
        if _pattern(layer) not in patterns:
            patterns.append(_pattern(layer))
        if layer.nm_method not in methods:
            methods.append(layer.nm_method)
    if undeclared:
        raise NMExportError(
            'refusing to export: sparse layer(s) hold state not listed in their '
            '`nm_extra_state_names` (it would not load into the dense model):\n  ' +
            '\n  '.join(undeclared[:max_names]), undeclared_names)
    invalid = [e['name'] for e in entries if not e['nm_valid']]
    if invalid:  # cannot happen with finite weights and exact masks: a protocol violation
        raise NMExportError(
            f'refusing to export: the folded weights of {invalid[:max_names]} are not '
            'N:M although their masks are exact', invalid)
    for name, module in model.named_modules():
        if name in sparse_names or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if any(name.startswith(s + '.') for s in sparse_names):
            continue
        dense_entries.append(dict(name=name, key=name + '.weight',
                                  shape=list(module.weight.shape),
                                  reason='not a sparse layer (not converted by the '
                                  'config: conv_cfg / NMSparsify include/exclude)'))
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]

    in_sparse = sum(e['numel'] for e in entries)
    total = in_sparse + sum(math.prod(e['shape']) for e in dense_entries)
    zeros = sum(e['numel'] - e['nonzero'] for e in entries)
    report = dict(
        format=REPORT_FORMAT,
        pattern=patterns[0] if len(patterns) == 1 else 'mixed',
        patterns=patterns,
        methods=methods,
        summary=dict(sparse_layers=len(entries), dense_layers=len(dense_entries),
                     all_nm_valid=all(e['nm_valid'] for e in entries),
                     conv_linear_weights=total, weights_in_sparse_layers=in_sparse,
                     zeros_in_sparse_layers=zeros,
                     sparsity_of_sparse_layers=(zeros / in_sparse) if in_sparse else 0.0,
                     sparsity_of_conv_linear_weights=(zeros / total) if total else 0.0),
        layers=entries,
        dense_layers=dense_entries,
        dropped_keys=dropped)
    return state, report


def dense_module_class(layer: nn.Module) -> type:
    """The dense class a sparse layer extends (``nn.Conv2d``, ``nn.Linear``, ...): the
    first class of its MRO that is an ``nn.Module`` and not a sparse-layer class."""
    for cls in type(layer).__mro__:
        if (issubclass(cls, nn.Module) and not issubclass(cls, NMSparseMixin)
                and cls.__module__.startswith('torch.nn')):
            return cls
    raise TypeError(f'{type(layer).__name__} does not extend a torch.nn layer')


def strip_sparse_layers(model: nn.Module) -> List[str]:
    """Replace, in place, every sparse layer of ``model`` by its dense class
    (:func:`dense_module_class`) sharing the same ``weight``/``bias`` Parameters, without
    the method's state: the result is the dense model, whose ``state_dict`` keys are those
    :func:`export_sparse_state_dict` writes. Masks are *not* folded: load an exported
    state dict into the result, or fold first.

    Args:
        model (nn.Module): The model, modified in place.

    Returns:
        list[str]: Names of the replaced layers.
    """
    replaced = []
    for name, layer in sparse_layers(model):
        cls = dense_module_class(layer)
        new = cls.__new__(cls)
        new.__dict__ = layer.__dict__.copy()
        drop = set(layer.nm_extra_state_names)
        new._parameters = OrderedDict(
            (k, v) for k, v in layer._parameters.items() if k not in drop)
        new._buffers = OrderedDict(
            (k, v) for k, v in layer._buffers.items()
            if k not in drop and k not in layer._non_persistent_buffers_set)
        new._non_persistent_buffers_set = set()
        new._modules = layer._modules
        replace_module(model, name, new)
        replaced.append(name)
    return replaced


def compare_keys(model: nn.Module,
                 state_dict: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """``(missing, unexpected)`` keys of ``state_dict`` with respect to ``model``.

    Args:
        model (nn.Module): The model.
        state_dict (dict): The state dict to load into it.

    Returns:
        tuple[list[str], list[str]]: The sorted missing and unexpected keys.
    """
    own = set(model.state_dict().keys())
    given = set(state_dict.keys())
    return sorted(own - given), sorted(given - own)


def plain(obj: Any) -> Any:
    """``obj`` as data both torch's safe unpickler and JSON accept: str-keyed dicts,
    lists (tuples too become lists), numbers, str, bool, None; anything else its
    ``str()``."""
    return json.loads(json.dumps(to_plain(obj, fallback=str), default=str))


__all__ = [
    'REPORT_FORMAT', 'NMExportError', 'export_sparse_state_dict', 'unfinished_layers',
    'group_stats', 'dense_module_class', 'strip_sparse_layers', 'compare_keys', 'plain'
]
