"""Engine pieces: safe checkpoints, dataset checks, config paths.

Importing this package installs the safe-checkpoint patches
(:mod:`lbc_mmdet.engine.checkpoint`).
"""
from . import checkpoint  # noqa: F401  (installs the patches on import)
from .checkpoint import CorruptCheckpointError, UnsafeCheckpointError, allow_unsafe_load
from .config_path import resolve_config_path
from .cpu_dist import CPUDistributedDataParallel, setup_cpu_distributed
from .data_check import DatasetNotFoundError, check_dataset_paths
from .validate import SparsityConfigError, validate_sparsity_cfg

__all__ = [
    'UnsafeCheckpointError', 'allow_unsafe_load', 'DatasetNotFoundError',
    'check_dataset_paths', 'resolve_config_path', 'CorruptCheckpointError',
    'SparsityConfigError', 'validate_sparsity_cfg', 'CPUDistributedDataParallel',
    'setup_cpu_distributed'
]
