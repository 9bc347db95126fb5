"""lbc_mmdet: N:M sparse detectors and instance segmenters on MMDetection 3.x.

Importing the package (``custom_imports = dict(imports=['lbc_mmdet'])``) registers the
sparse layers, the ``NMSparsify`` model builder and ``NMSparsityHook`` into mmdet's
registries, and makes MMEngine checkpoints load under torch's safe (``weights_only``)
loader.
"""
from . import nm  # noqa: F401  (plain torch; no registry)
from .engine.hooks import NMSparsityHook
from .layers import (SPARSE_LAYERS, LBCConv2d, LBCLinear, NMScheduleState,
                     NMSparseMixin)
from .sparsify import build_sparsified, sparse_layers, sparsify

__version__ = '0.1.0'

__all__ = [
    'NMSparsityHook', 'SPARSE_LAYERS', 'LBCConv2d', 'LBCLinear', 'NMScheduleState',
    'NMSparseMixin', 'build_sparsified', 'sparse_layers', 'sparsify', '__version__'
]
