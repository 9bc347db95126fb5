from .nm_sparsity_hook import NMSparsityHook

__all__ = ['NMSparsityHook']
