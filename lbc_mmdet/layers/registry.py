"""The N:M method registry: one registration per sparse layer class.

A method is a mixin of :class:`~lbc_mmdet.layers.base.NMSparseMixin` that sets its
``nm_method`` key and ``nm_extra_state_names``. Its file declares how the method is shown
once (:func:`register_method`) and decorates each of its concrete layers with
:func:`register_nm_layer`; that is the whole wiring::

    register_method('lbc', display_name='LBC', plot_style=('o', 'tab:red'))

    @register_nm_layer
    class LBCConv2d(LBCMixin, NMSparseConv2d):
        ...

It registers the class into mmdet's ``MODELS`` (``conv_cfg=dict(type='LBCConv2d')``) and
into this table, from which conversion (``sparsify``), config validation, the hooks, the
suite's tables and plots and the benchmarks read everything they need. Nothing outside a
method's own files names it.

A name is registered once: another module registering a method key that is taken, or a
different class under a layer type name that is taken (in this table or in mmdet's
``MODELS``), is refused with a :class:`RegistrationError` naming both. Registering the
very same definition again (a module imported anew) replaces it.
"""
import sys
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


#: How a method registered without :func:`register_method` is drawn.
DEFAULT_PLOT_STYLE = ('x', 'gray')


class RegistrationError(ValueError):
    """A method key or layer type name is already registered by another definition."""


@dataclass
class NMMethod:
    """Everything registered for one method.

    Args:
        name (str): The registry key (configs, suites, ``--method``).
        display_name (str): How tables, log lines and plots name it.
        plot_style (tuple[str, str]): ``(marker, colour)`` in the suite's plots.
        module (str): The module that registered it (its own file).
        state_names (tuple[str, ...]): The layers' ``nm_extra_state_names``.
        layers (dict): ``'Conv2d'`` / ``'Linear'`` -> the registered class.
        variants (dict): Benchmark-only variants (:func:`register_variant`).
        variant_docs (dict): One line on each variant.
    """
    name: str
    display_name: str
    plot_style: Tuple[str, str]
    module: str
    state_names: Tuple[str, ...] = ()
    layers: Dict[str, type] = field(default_factory=dict)
    variants: Dict[str, Dict[str, type]] = field(default_factory=dict)
    variant_docs: Dict[str, str] = field(default_factory=dict)


_METHODS: Dict[str, NMMethod] = {}


def _definition(cls: type) -> Tuple[str, str]:
    """What identifies a class across imports of its module."""
    return cls.__module__, cls.__qualname__


def register_method(name: str, display_name: str = '',
                    plot_style: Tuple[str, str] = DEFAULT_PLOT_STYLE,
                    module: Optional[str] = None) -> NMMethod:
    """Declare a method and how it is shown, once, in the method's own file.

    Args:
        name (str): The method key (lower case; the mixin's ``nm_method``).
        display_name (str): Its name in tables, log lines and plot legends. Defaults to
            ``name``.
        plot_style (tuple[str, str]): ``(marker, colour)`` of its points in the suite's
            plots (matplotlib). Defaults to :data:`DEFAULT_PLOT_STYLE`.
        module (str, optional): The registering module; defaults to the caller's.

    Returns:
        NMMethod: The registry entry (its layers follow with :func:`register_nm_layer`).

    Raises:
        RegistrationError: ``name`` is already registered by another module.
    """
    if not name or name != name.lower() or name == DENSE:
        raise ValueError(f'N:M method key {name!r}: use a non-empty lower-case key other '
                         f'than {DENSE!r}')
    module = module or sys._getframe(1).f_globals.get('__name__', '')
    marker, colour = plot_style
    method = _METHODS.get(name)
    if method is not None and method.module != module:
        raise RegistrationError(
            f'N:M method {name!r} is already registered by {method.module}; '
            f'{module} cannot register it again: choose another method key')
    if method is None:
        method = _METHODS[name] = NMMethod(name=name, display_name=display_name or name,
                                           plot_style=(marker, colour), module=module)
    else:  # the same module imported anew: its new declaration
        method.display_name, method.plot_style = display_name or name, (marker, colour)
    return method


def dense_type_of(cls: type) -> str:
    """``'Conv2d'`` or ``'Linear'``: the dense module type ``cls`` extends."""
    for base in DENSE_TYPES:
        if issubclass(cls, base):
            return base.__name__
    raise TypeError(f'{cls.__name__} extends none of '
                    f'{[t.__name__ for t in DENSE_TYPES]}')


def register_nm_layer(cls: type) -> type:
    """Class decorator: register a concrete sparse layer of its method (see the module
    docstring).

    Args:
        cls (type): A concrete layer (its method's mixin + ``NMSparseConv2d`` or
            ``NMSparseLinear``).

    Returns:
        type: ``cls``.

    Raises:
        RegistrationError: Its method key is registered by another module, its method
            already has another layer of its kind, or its class name is taken in mmdet's
            ``MODELS`` by another class.
    """
    name = getattr(cls, 'nm_method', '')
    if not name or name == DENSE:
        raise ValueError(f'{cls.__name__}: set `nm_method` (the method key) on its mixin')
    kind = dense_type_of(cls)
    method = _METHODS.get(name)
    if method is None:
        method = register_method(name, module=cls.__module__)
    elif method.module != cls.__module__:
        raise RegistrationError(
            f'N:M method {name!r} is already registered by {method.module}; '
            f'{cls.__module__}.{cls.__qualname__} cannot register under the same key: '
            'choose another `nm_method`')
    existing = method.layers.get(kind)
    if existing is not None and _definition(existing) != _definition(cls):
        raise RegistrationError(
            f'N:M method {name!r} already has a {kind} layer, {existing.__qualname__}; '
            f'{cls.__qualname__} cannot replace it')
    taken = MODELS.module_dict.get(cls.__name__)
    if taken is not None and _definition(taken) != _definition(cls):
        raise RegistrationError(
            f'layer type {cls.__name__!r} is already registered in mmdet\'s MODELS by '
            f'{taken.__module__}.{taken.__qualname__}: rename {cls.__qualname__}')
    method.layers[kind] = cls
    method.state_names = tuple(getattr(cls, 'nm_extra_state_names', ()))
    # force only replaces the same definition (a module imported anew), checked above
    MODELS.register_module(module=cls, force=taken is not None)
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
    """How ``method`` is shown in tables: its registered ``display_name``, ``'Baseline'``
    for :data:`DENSE`, the key itself when unknown."""
    key = str(method).lower()
    if key == DENSE:
        return DENSE_DISPLAY[0]
    return _METHODS[key].display_name if key in _METHODS else str(method)


def plot_style(method: Optional[str]) -> Tuple[str, str]:
    """``(marker, colour)`` of ``method`` in plots (``('x', 'gray')`` when unknown)."""
    key = str(method).lower()
    if key == DENSE:
        return DENSE_DISPLAY[1]
    return _METHODS[key].plot_style if key in _METHODS else DEFAULT_PLOT_STYLE


def all_state_names() -> Tuple[str, ...]:
    """Every registered method's own state names (``scores``, ``mask`` ...)."""
    names = {n for m in _METHODS.values() for n in m.state_names}
    return tuple(sorted(names))
