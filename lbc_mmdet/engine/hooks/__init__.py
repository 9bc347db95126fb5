from .calibration_hook import CalibrationHook
from .channel_permutation_hook import ChannelPermutationHook
from .data_order_hook import DataOrderHook
from .nm_sparsity_hook import NMSparsityHook
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .train_flops_hook import TrainFlopsHook

__all__ = [
    'CalibrationHook', 'ChannelPermutationHook', 'DataOrderHook', 'NMSparsityHook',
    'RNGStateHook', 'SafeCheckpointHook', 'TrainFlopsHook'
]
