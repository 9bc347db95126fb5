"""N:M sparse layers: one module per method, all sharing :mod:`.base`."""
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .lbc import LBCConv2d, LBCLinear
from .srste import SRSTEConv2d, SRSTELinear
from .asp import ASPConv2d, ASPLinear
from .bame import BAMEConv2d, BAMELinear

#: method name -> {dense module type: sparse layer class}. A new method registers here.
SPARSE_LAYERS = {
    'lbc': {'Conv2d': LBCConv2d, 'Linear': LBCLinear},
    'srste': {'Conv2d': SRSTEConv2d, 'Linear': SRSTELinear},
    'asp': {'Conv2d': ASPConv2d, 'Linear': ASPLinear},
    'bame': {'Conv2d': BAMEConv2d, 'Linear': BAMELinear},
}

__all__ = [
    'SPARSE_LAYERS', 
    'NMScheduleState', 'NMSparseMixin', 'NMSparseConv2d', 'NMSparseLinear',
    'LBCConv2d', 'LBCLinear',
    'SRSTEConv2d', 'SRSTELinear',
    'ASPConv2d', 'ASPLinear',
    'BAMEConv2d', 'BAMELinear'
]
