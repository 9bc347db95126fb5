"""MMEngine glue: hooks, safe and atomic checkpoints, config and dataset checks, CPU
distributed training. Importing it changes nothing in MMEngine; see
:func:`install_safe_checkpoints`."""
from .checkpoint import (
                         CorruptCheckpointError,
                         UnsafeCheckpointError,
                         allow_unsafe_load,
                         install_safe_checkpoints,
                         uninstall_safe_checkpoints,
)
from .config_path import (
                          ConfigError,
                          ConfigNotFoundError,
                          load_config,
                          readable_config_errors,
                          resolve_config_path,
)
from .cpu_dist import CPUDistributedDataParallel, setup_cpu_distributed
from .data_check import DatasetNotFoundError, check_dataset_paths
from .hooks import (
                    ChannelPermutationHook,
                    NMSparsityHook,
                    RNGStateHook,
                    SafeCheckpointHook,
                    TrainFlopsHook,
)
from .validate import SparsityConfigError, validate_sparsity_cfg

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'allow_unsafe_load',
    'install_safe_checkpoints',
    'uninstall_safe_checkpoints', 'ConfigError', 'ConfigNotFoundError', 'load_config',
    'readable_config_errors', 'resolve_config_path', 'CPUDistributedDataParallel',
    'setup_cpu_distributed', 'DatasetNotFoundError', 'check_dataset_paths',
    'ChannelPermutationHook', 'NMSparsityHook', 'RNGStateHook', 'SafeCheckpointHook',
    'TrainFlopsHook',
    'SparsityConfigError', 'validate_sparsity_cfg'
]
