"""Permute the input channels of a detector's convolutions without changing its function.

A convolution whose input comes from another convolution through only a BatchNorm and an
element-wise activation can take any order of its input channels, provided the producer's
output channels (weight rows, bias), the BatchNorm's affine parameters and running
statistics are reordered the same way. In mmdet's ResNet blocks these are:

- ``Bottleneck``: ``conv2`` (fed by ``conv1 -> norm1 -> ReLU``) and ``conv3`` (fed by
  ``conv2 -> norm2 -> ReLU``);
- ``BasicBlock``: ``conv2`` (fed by ``conv1 -> norm1 -> ReLU``).

``conv1`` and ``downsample`` read the residual stream (shared with the identity path and
the other blocks), so they are left alone, as is everything outside these blocks (the
stem, the neck, the heads). A block is recognised by its class (mmdet's, or a subclass
that keeps its ``forward``) and refused with a reason when it has plugins, a grouped or
deformable conv, or a norm other than BatchNorm.

Sparse layers (subclasses of ``nn.Conv2d`` holding an N:M method's state) are permuted
through their ``weight``/``bias`` only, and only while the method's state (its persistent
``nm_state_tensors()``) is *initial*: as a fresh ``_nm_init_state()`` on a scratch copy
would make it, or never loaded from a checkpoint (``nm_init_from_dense``: a dense
checkpoint was loaded). That is, before any mask is
computed (before ``NMSparsityHook``'s first update). The state is then re-initialised in
place for the permuted weight (for a method whose initial state depends on the weight,
e.g. BAME's initial top-N mask); the methods' caches rebuild from it. A method whose mask
follows the weights (SR-STE) or starts from the weights (BAME) then masks differently:
that is the point (more magnitude kept); the *dense* function is what is preserved.
Everything is done in place under ``no_grad``: the Parameter objects (and so an
optimizer's references to them) are kept.

Plain torch and the sparse-layer protocol only; mmdet is never imported.
"""
import copy
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import LBCError
from ..layers import NMSparseMixin
from ..nm.permutation import PermutationResult, search_permutation
from ..utils import matches

#: mmdet block classes whose dataflow is known: class name -> (producer, norm, consumer).
BLOCK_RECIPES: Dict[str, Tuple[Tuple[str, str, str], ...]] = {
    'Bottleneck': (('conv1', 'norm1', 'conv2'), ('conv2', 'norm2', 'conv3')),
    'BasicBlock': (('conv1', 'norm1', 'conv2'), ),
}
#: Module of the classes of :data:`BLOCK_RECIPES`.
BLOCK_MODULE = 'mmdet.models.backbones.resnet'
#: Names never compared or reset as method state (the weights themselves).
WEIGHT_NAMES = ('weight', 'bias')


class PermutationError(LBCError, RuntimeError):
    """A layer's channels cannot be permuted (e.g. its N:M mask is already computed)."""


@dataclass
class PermutableLayer:
    """A consumer conv whose input channels may be permuted, with the producer conv and
    the BatchNorm between them (qualified module names and the modules)."""
    name: str
    consumer: nn.Conv2d
    producer_name: str
    producer: nn.Conv2d
    norm_name: str
    norm: _BatchNorm


def _recipe(block: nn.Module) -> Optional[Tuple[Tuple[str, str, str], ...]]:
    for cls in type(block).__mro__:
        if cls.__module__ == BLOCK_MODULE and cls.__name__ in BLOCK_RECIPES:
            return BLOCK_RECIPES[cls.__name__] if type(block).forward is cls.forward else None
    return None


def _pair_problem(block: nn.Module, producer, norm, consumer) -> Optional[str]:
    if getattr(block, 'with_plugins', False):
        return 'the block has plugins between its convs'
    for what, conv in (('producer', producer), ('consumer', consumer)):
        if not isinstance(conv, nn.Conv2d):
            return f'the {what} is a {type(conv).__name__}, not a Conv2d (e.g. DCN)'
        if conv.groups != 1:
            return f'the {what} is a grouped conv (groups={conv.groups})'
    if not isinstance(norm, _BatchNorm):
        return f'the norm is a {type(norm).__name__}, not a BatchNorm'
    if not (producer.out_channels == norm.num_features == consumer.in_channels):
        return 'channel counts of producer, norm and consumer differ'
    return None


def find_permutable_layers(model: nn.Module) -> Tuple[List[PermutableLayer],
                                                      List[Tuple[str, str]]]:
    """``(layers, skipped)``: every consumer conv of ``model`` whose input channels can be
    permuted without changing the function, and ``(name, reason)`` of the block convs
    that cannot (see module docstring)."""
    found, skipped = [], []
    for name, block in model.named_modules():
        recipe = _recipe(block)
        if recipe is None:
            continue
        for prod, norm, cons in recipe:
            modules = [getattr(block, attr, None) for attr in (prod, norm, cons)]
            cname = f'{name}.{cons}' if name else cons
            why = _pair_problem(block, *modules)
            if why:
                skipped.append((cname, why))
                continue
            norm_attr = getattr(block, f'{norm}_name', norm)
            prefix = f'{name}.' if name else ''
            found.append(PermutableLayer(cname, modules[2], prefix + prod, modules[0],
                                         prefix + norm_attr, modules[1]))
    return found, skipped


def layer_pattern(conv: nn.Module, n: Optional[int],
                  m: Optional[int]) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """``((n, m), None)`` the pattern to search ``conv``'s permutation for, or ``(None,
    why not)``: a sparse layer's own pattern (``nm_n``/``nm_m``), else ``(n, m)`` when
    given."""
    if isinstance(conv, NMSparseMixin):
        if not conv.nm_eligible:
            return None, f'left dense by its N:M method ({conv.nm_skip_reason})'
        return (conv.nm_n, conv.nm_m), None
    if n is None or m is None:
        return None, 'not an N:M sparse layer (and no pattern given)'
    if conv.in_channels % m:
        return None, f'{conv.in_channels} input channels are not divisible by M={m}'
    return (n, m), None


def _state(layer: NMSparseMixin) -> Dict[str, torch.Tensor]:
    # the method's declared, persistent state; its caches (non-persistent buffers) are
    # keyed on these tensors' versions and rebuild themselves when they change
    return {k: v for k, v in layer.nm_state_tensors().items() if k not in WEIGHT_NAMES}


def _fresh_state(layer: NMSparseMixin) -> Dict[str, torch.Tensor]:
    scratch = copy.deepcopy(layer)
    scratch._nm_init_state()
    return _state(scratch)


def state_is_initial(layer: nn.Module) -> bool:
    """Whether a sparse layer's method state is untouched (see module docstring); True
    for a dense or ineligible layer."""
    if not isinstance(layer, NMSparseMixin) or not layer.nm_eligible:
        return True
    if getattr(layer, 'nm_init_from_dense', False):
        return True
    own, fresh = _state(layer), _fresh_state(layer)
    return own.keys() == fresh.keys() and all(_same(own[k], fresh[k]) for k in own)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shape and values (NaN equal to NaN: some methods start from NaN)."""
    if a.shape != b.shape:
        return False
    b = b.to(a)
    if a.is_floating_point():
        return bool(torch.equal(a.isnan(), b.isnan()) and
                    torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return bool(torch.equal(a, b))


def _reset_state(layer: nn.Module) -> None:
    if not isinstance(layer, NMSparseMixin) or not layer.nm_eligible:
        return
    own = _state(layer)
    for key, value in _fresh_state(layer).items():
        if key not in own or own[key].shape != value.shape:
            raise PermutationError(f'{type(layer).__name__}: re-initialising the N:M state '
                                   f'changed {key!r}; cannot permute this layer in place')
        own[key].data.copy_(value.to(own[key]))


def check_state(model: nn.Module, layers: Iterable[PermutableLayer]) -> None:
    """Raise :class:`PermutationError` naming the sparse layers whose state is not
    initial (permuting them would break their masks)."""
    bad = sorted({name for lay in layers
                  for name, mod in ((lay.name, lay.consumer),
                                    (lay.producer_name, lay.producer))
                  if not state_is_initial(mod)})
    if bad:
        raise PermutationError(
            f'cannot permute channels: the N:M state of {len(bad)} sparse layer(s) is no '
            f'longer initial (a mask was computed or loaded): {", ".join(bad[:6])}'
            f'{" ..." if len(bad) > 6 else ""}. Permute before any mask is computed: from '
            'dense weights, before NMSparsityHook prunes (ChannelPermutationHook does).')


@torch.no_grad()
def apply_permutation(layer: PermutableLayer, permutation: torch.Tensor) -> None:
    """Reorder, in place, the producer's output channels, the BatchNorm's channels and the
    consumer's input channels by ``permutation`` (new channel k = old channel
    ``permutation[k]``); reset the sparse layers' (initial) state for the new weights."""
    perm = torch.as_tensor(permutation, dtype=torch.long)
    channels = layer.consumer.in_channels
    if perm.shape != (channels, ) or not torch.equal(perm.sort().values,
                                                    torch.arange(channels)):
        raise PermutationError(f'{layer.name}: not a permutation of its {channels} input '
                               'channels')
    perm = perm.to(layer.consumer.weight.device)
    prod, norm, cons = layer.producer, layer.norm, layer.consumer
    prod.weight.data.copy_(prod.weight.data.index_select(0, perm))
    if prod.bias is not None:
        prod.bias.data.copy_(prod.bias.data.index_select(0, perm))
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        tensor = getattr(norm, name, None)
        if tensor is not None:
            tensor.data.copy_(tensor.data.index_select(0, perm))
    cons.weight.data.copy_(cons.weight.data.index_select(1, perm))
    _reset_state(prod)
    _reset_state(cons)


def plan_permutations(model: nn.Module, n: Optional[int] = None, m: Optional[int] = None,
                      include: Optional[Iterable[str]] = None, time_limit: float = 10.0,
                      logger=None) -> Dict:
    """Search a permutation for every permutable layer of ``model`` (nothing is changed).

    Args:
        model (nn.Module): The model (a detector, a backbone ...).
        n, m (int, optional): Pattern for layers that are not N:M sparse layers (a dense
            model); a sparse layer always uses its own ``nm_n:nm_m``.
        include (list[str], optional): ``fnmatch`` patterns on consumer names.
        time_limit (float): Seconds of search per layer.
        logger (callable, optional): Called with one line per layer.

    Returns:
        dict: ``layers`` (list of ``(PermutableLayer, PermutationResult)``) and
        ``skipped`` (list of ``(name, reason)``).
    """
    found, skipped = find_permutable_layers(model)
    plans: List[Tuple[PermutableLayer, PermutationResult]] = []
    for layer in found:
        if include is not None and not matches(layer.name, list(include)):
            continue
        pattern, why = layer_pattern(layer.consumer, n, m)
        if pattern is None:
            skipped.append((layer.name, why))
            continue
        result = search_permutation(layer.consumer.weight, *pattern, time_limit=time_limit)
        plans.append((layer, result))
        if logger is not None:
            logger(f'{layer.name}: kept |w| {result.kept_before:.4g} -> '
                   f'{result.kept_after:.4g} ({100 * result.gain:+.2f}%, {result.moves} '
                   f'moves, {result.stopped})')
    return dict(layers=plans, skipped=skipped)


def plan_permutation_map(plan: Dict) -> Dict[str, torch.Tensor]:
    """``{consumer name: permutation}`` of the non-identity permutations of a plan."""
    return {layer.name: result.permutation for layer, result in plan['layers']
            if not result.identity}


def apply_permutations(model: nn.Module, permutations: Dict[str, torch.Tensor]) -> int:
    """Apply ``{consumer name: permutation}`` (:func:`plan_permutation_map`) to ``model``,
    or to another model with the same module names (e.g. an EMA copy); returns how many
    layers changed.

    Raises:
        PermutationError: A name is not a permutable layer of ``model``, or a sparse
            layer's N:M state is no longer initial (nothing is changed then).
    """
    found = {lay.name: lay for lay in find_permutable_layers(model)[0]}
    unknown = sorted(set(permutations) - set(found))
    if unknown:
        raise PermutationError(f'not permutable layers of this model: {unknown[:6]}')
    todo = [(found[name], perm) for name, perm in permutations.items()]
    check_state(model, [lay for lay, _ in todo])
    for layer, perm in todo:
        apply_permutation(layer, perm)
    return len(todo)


def apply_plan(model: nn.Module, plan: Dict) -> int:
    """:func:`apply_permutations` of a :func:`plan_permutations` result."""
    return apply_permutations(model, plan_permutation_map(plan))


def plan_summary(plan: Dict) -> Dict:
    """Plain-data report of a plan: per layer and in total, the magnitude kept before
    and after, the relative gain, and the skipped layers."""
    layers = []
    for layer, r in plan['layers']:
        layers.append(dict(name=layer.name, producer=layer.producer_name,
                           norm=layer.norm_name, shape=list(layer.consumer.weight.shape),
                           **r.to_dict()))
    before = sum(e['kept_before'] for e in layers)
    after = sum(e['kept_after'] for e in layers)
    total = sum(e['total'] for e in layers)
    return dict(
        layers=layers,
        skipped=[dict(name=n, reason=why) for n, why in plan['skipped']],
        summary=dict(layers=len(layers), permuted=sum(not e['identity'] for e in layers),
                     total=total, kept_before=before, kept_after=after,
                     gain=after / before - 1.0 if before else 0.0))


__all__ = [
    'BLOCK_RECIPES', 'PermutationError', 'PermutableLayer', 'find_permutable_layers',
    'layer_pattern', 'state_is_initial', 'check_state', 'apply_permutation',
    'plan_permutations', 'plan_permutation_map', 'apply_permutations', 'apply_plan',
    'plan_summary'
]
