"""Small helpers shared across the package (plain python and torch, no MMEngine)."""
from .io import atomic_torch_save, atomic_write
from .modules import matches, replace_module, strip_prefix
from .plain import to_plain

__all__ = ['atomic_torch_save', 'atomic_write', 'matches', 'replace_module', 'strip_prefix',
           'to_plain']
