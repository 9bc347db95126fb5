"""Training-FLOPs accounting ("FLOPs (Train)"), plain torch and the sparse-layer protocol:
multiply-adds per layer (:mod:`.macs`), the counting conventions (:mod:`.conventions`) and
the per-iteration counter (:mod:`.counter`)."""
from .conventions import (
                          CONVENTIONS,
                          DENSE_DENSITIES,
                          PASSES,
                          check_convention,
                          check_densities,
                          dense_train_cost,
                          layer_densities,
                          layer_group,
                          train_cost,
)
from .counter import TrainFlopsCounter
from .macs import (
                          COUNTED_TYPES,
                          conv_macs,
                          is_counted,
                          layer_macs,
                          linear_macs,
                          transposed_conv_macs,
)

__all__ = [
    'CONVENTIONS', 'DENSE_DENSITIES', 'PASSES', 'check_convention', 'check_densities',
    'dense_train_cost', 'layer_densities', 'layer_group', 'train_cost',
    'TrainFlopsCounter', 'COUNTED_TYPES', 'conv_macs', 'is_counted', 'layer_macs',
    'linear_macs', 'transposed_conv_macs'
]
