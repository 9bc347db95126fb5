"""The N:M method registry: one registration per sparse layer class.

A method is a mixin of :class:`~lbc_mmdet.layers.base.NMSparseMixin` that sets its
``nm_method`` key, ``nm_display_name``, ``nm_plot_style`` and ``nm_extra_state_names``;
decorating each of its concrete layers with :func:`register_nm_layer` is the whole wiring::

    @register_nm_layer
    class LBCConv2d(LBCMixin, NMSparseConv2d):
        ...

It registers the class into mmdet's ``MODELS`` (``conv_cfg=dict(type='LBCConv2d')``) and
into this table, from which conversion (``sparsify``), config validation, the hooks, the
suite's tables and plots and the benchmarks read everything they need. Nothing outside a
method's own files names it.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Type

import torch.nn as nn
from mmdet.registry import MODELS

#: The key of the dense baseline (no method) in suites and tables.
DENSE = 'dense'
#: How the dense baseline is shown.
DENSE_DISPLAY = ('Baseline', ('*', 'black'))
#: Dense module types a sparse layer can replace.
DENSE_TYPES: Tuple[Type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


@dataclass
class NMMethod:
    """Everything registered for one method."""
    name: str
    display_name: str
    plot_style: Tuple[str, str]
    state_names: Tuple[str, ...]
    layers: Dict[str, type] = field(default_factory=dict)  # 'Conv2d' / 'Linear' -> class
    variants: Dict[str, Dict[str, type]] = field(default_factory=dict)
    variant_docs: Dict[str, str] = field(default_factory=dict)


_METHODS: Dict[str, NMMethod] = {}


def dense_type_of(cls: type) -> str:
    """``'Conv2d'`` or ``'Linear'``: the dense module type ``cls`` extends."""
    for base in DENSE_TYPES:
        if issubclass(cls, base):
            return base.__name__
    raise TypeError(f'{cls.__name__} extends none of '
                    f'{[t.__name__ for t in DENSE_TYPES]}')


def register_nm_layer(cls: type) -> type:
    """Class decorator: register a concrete sparse layer of its method (see module
    docstring)."""
    name = getattr(cls, 'nm_method', '')
    if not name or name == DENSE:
        raise ValueError(f'{cls.__name__}: set `nm_method` (the method key) on its mixin')
    kind = dense_type_of(cls)
    method = _METHODS.get(name)
    if method is None:
        method = _METHODS[name] = NMMethod(
            name=name, display_name=getattr(cls, 'nm_display_name', '') or name,
            plot_style=tuple(getattr(cls, 'nm_plot_style', ('x', 'gray'))),
            state_names=tuple(getattr(cls, 'nm_extra_state_names', ())))
    existing = method.layers.get(kind)
    if existing is not None and existing is not cls and existing.__name__ != cls.__name__:
        raise ValueError(f'method {name!r} already has a {kind} layer: '
                         f'{existing.__name__}')
    method.layers[kind] = cls
    MODELS.register_module(module=cls, force=True)
    return cls


def register_variant(method: str, variant: str, layers: Dict[str, type],
                     doc: str = '') -> None:
    """Register a benchmark-only variant of ``method`` (e.g. another implementation of the
    same maths to time against), ``layers`` mapping ``'Conv2d'``/``'Linear'`` to classes."""
    get_method(method).variants[variant] = dict(layers)
    get_method(method).variant_docs[variant] = doc


def unregister_method(name: str) -> None:
    """Remove a method and its layers from the registries (tests)."""
    method = _METHODS.pop(name, None)
    if method is None:
        return
    for cls in method.layers.values():
        if MODELS._module_dict.get(cls.__name__) is cls:
            MODELS._module_dict.pop(cls.__name__)


def get_method(name: str) -> NMMethod:
    """The registered method ``name`` (case-insensitive).

    Raises:
        ValueError: Unknown method (the message lists the known ones).
    """
    method = _METHODS.get(str(name).lower())
    if method is None:
        raise ValueError(f'unknown N:M method {name!r}; known methods: {method_names()}')
    return method


def method_names() -> List[str]:
    """The registered methods' keys, sorted."""
    return sorted(_METHODS)


def layer_class(method: str, kind: str) -> type:
    """The sparse class of ``method`` for a dense module type (``'Conv2d'``/``'Linear'``)."""
    m = get_method(method)
    if kind not in m.layers:
        raise ValueError(f'N:M method {m.name!r} has no {kind} layer '
                         f'(it has {sorted(m.layers)})')
    return m.layers[kind]


def sparse_layer_types() -> Dict[str, type]:
    """Class name -> class of every registered sparse layer."""
    return {cls.__name__: cls for m in _METHODS.values() for cls in m.layers.values()}


def display_name(method: Optional[str]) -> str:
    """How ``method`` is shown in tables: its ``nm_display_name``, ``'Baseline'`` for
    :data:`DENSE`, the key itself when unknown."""
    key = str(method).lower()
    if key == DENSE:
        return DENSE_DISPLAY[0]
    return _METHODS[key].display_name if key in _METHODS else str(method)


def plot_style(method: Optional[str]) -> Tuple[str, str]:
    """``(marker, colour)`` of ``method`` in plots (``('x', 'gray')`` when unknown)."""
    key = str(method).lower()
    if key == DENSE:
        return DENSE_DISPLAY[1]
    return _METHODS[key].plot_style if key in _METHODS else ('x', 'gray')


def all_state_names() -> Tuple[str, ...]:
    """Every registered method's own state names (``scores``, ``mask`` ...)."""
    names = {n for m in _METHODS.values() for n in m.state_names}
    return tuple(sorted(names))
