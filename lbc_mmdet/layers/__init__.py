"""N:M sparse layers: one module per method, all sharing :mod:`.base`."""
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .lbc import LBCConv2d, LBCLinear

#: method name -> {dense module type: sparse layer class}. A new method registers here.
SPARSE_LAYERS = {
    'lbc': {'Conv2d': LBCConv2d, 'Linear': LBCLinear},
}

__all__ = [
    'SPARSE_LAYERS', 
    'NMScheduleState', 'NMSparseMixin', 'NMSparseConv2d', 'NMSparseLinear',
    'LBCConv2d', 'LBCLinear'
]
