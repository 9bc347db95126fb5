from .nm_sparsity_hook import NMSparsityHook
from .rng_state_hook import RNGStateHook
from .train_flops_hook import TrainFlopsHook

__all__ = ['NMSparsityHook', 'RNGStateHook', 'TrainFlopsHook']
