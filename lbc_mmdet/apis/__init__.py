"""High-level functions behind the tools: build a model from a config, load checkpoints
strictly with clear errors, export a trained sparse checkpoint, export and check ONNX,
measure channel permutations."""
from .export import EXIT_REFUSED, export_checkpoint
from .models import build_model, load_checkpoint_strict, load_dense_model, read_state_dict
from .onnx_export import ONNXCheckError, export_onnx
from .permutation import permutation_report

__all__ = [
    'EXIT_REFUSED', 'export_checkpoint', 'build_model', 'load_checkpoint_strict',
    'load_dense_model', 'read_state_dict', 'ONNXCheckError', 'export_onnx',
    'permutation_report'
]
