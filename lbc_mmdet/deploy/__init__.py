"""Deployment of trained N:M sparse models (pure torch + the sparse-layer protocol).

- :mod:`.export`: fold masks, drop the methods' state -> the dense model's state dict
  (``export_sparse_state_dict``), plus a report;
- :mod:`.verify`: check any checkpoint's weights for N:M (``verify_nm``);
- :mod:`.lowering`: which layers run as 2:4 semi-structured GEMMs and how (1x1 convs on
  channels-last activations, k x k convs through im2col);
- :mod:`.packing`: 2:4 values + metadata compression in PyTorch's layout, and back;
- :mod:`.backends`: which semi-structured backend runs on which GPU (cuSPARSELt, CUTLASS),
  the GEMM call order, cuSPARSELt tuning; :mod:`.latency`: the timing.
Command-line tools: ``tools/export.py``, ``tools/verify_nm.py``,
``tools/benchmark_latency.py`` (see ``docs/deployment.md``).
"""
from .export import (
                     NMExportError,
                     NonFiniteWeightsError,
                     compare_keys,
                     export_sparse_state_dict,
                     nonfinite_tensors,
                     strip_sparse_layers,
                     unfinished_layers,
)
from .lowering import (
                     GemmPlan,
                     LoweredConv2d,
                     im2col,
                     lower_convs,
                     plan_layer,
                     plan_model,
                     semi_structured_constraints,
                     semi_structured_support,
)
from .verify import DEFAULT_INCLUDE, VerifyResult, verify_nm

__all__ = [
    'NMExportError', 'NonFiniteWeightsError', 'compare_keys', 'export_sparse_state_dict',
    'nonfinite_tensors', 'strip_sparse_layers', 'unfinished_layers', 'GemmPlan',
    'LoweredConv2d', 'im2col', 'lower_convs',
    'plan_layer', 'plan_model', 'semi_structured_constraints', 'semi_structured_support',
    'DEFAULT_INCLUDE', 'VerifyResult', 'verify_nm'
]
