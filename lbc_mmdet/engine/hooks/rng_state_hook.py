"""``RNGStateHook``: resume continues the random streams where the checkpoint left them.

MMEngine re-seeds on resume, so the RoI samplers (``torch.randperm``) and anything else
drawing random numbers after a resume differ from an uninterrupted run, and so would the
scores LBC learns and the candidates it removes. This hook stores the python, numpy and
torch (CPU and CUDA) generator states in every checkpoint as plain data (loadable with
``weights_only=True``) and restores them right before the first iteration after a resume.

Data augmentation drawn while MMEngine skips the already-trained batches of an
iteration-based resume still consumes random numbers before that point, so the batch
fetched first after a resume may be augmented differently; everything from the first
training step on draws from the restored streams.
"""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

_KEY = 'rng_state'


def get_rng_state() -> Dict[str, Any]:
    """The generator states as plain python data and tensors."""
    np_state = np.random.get_state()
    state = dict(
        python=[random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        numpy=[np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
               float(np_state[4])],
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random generators' states with every checkpoint and restore them on
    resume (see module docstring)."""
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[_KEY] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get(_KEY)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
