from .channel_permutation_hook import ChannelPermutationHook
from .nm_sparsity_hook import NMSparsityHook
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .train_flops_hook import TrainFlopsHook

__all__ = [
    'ChannelPermutationHook', 'NMSparsityHook', 'RNGStateHook', 'SafeCheckpointHook',
    'TrainFlopsHook'
]
