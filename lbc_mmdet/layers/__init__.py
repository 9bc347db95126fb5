"""N:M sparse layers: the shared protocol (:mod:`.base`), the method registry
(:mod:`.registry`) and one module per method, each registering itself on import.

Every module of this package is imported here (discovered, not listed), so a new method
is one new file; methods defined elsewhere register when their module is imported
(``custom_imports``).
"""
import importlib
import pkgutil

from .base import (
    DENSE_DENSITIES,
    NMScheduleState,
    NMSparseConv2d,
    NMSparseLinear,
    NMSparseMixin,
    set_nm_grad_scale,
    sparse_layers,
)
from .registry import (
    DENSE,
    NMMethod,
    RegistrationError,
    all_state_names,
    display_name,
    get_method,
    layer_class,
    method_names,
    plot_style,
    register_method,
    register_nm_layer,
    register_variant,
    sparse_layer_types,
    unregister_method,
)

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.name not in ('base', 'registry'):
        importlib.import_module(f'{__name__}.{_info.name}')

__all__ = [
    'DENSE_DENSITIES', 'NMScheduleState', 'NMSparseConv2d', 'NMSparseLinear',
    'NMSparseMixin', 'set_nm_grad_scale', 'sparse_layers', 'DENSE', 'NMMethod',
    'RegistrationError', 'all_state_names', 'display_name', 'get_method', 'layer_class',
    'method_names', 'plot_style', 'register_method', 'register_nm_layer', 'register_variant',
    'sparse_layer_types', 'unregister_method'
]
