"""Small helpers shared across the package (plain python and torch, no MMEngine)."""
from .modules import matches, replace_module, strip_prefix
from .plain import to_plain

__all__ = ['matches', 'replace_module', 'strip_prefix', 'to_plain']
