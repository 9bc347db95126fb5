"""Multi-process training on machines without CUDA (gloo), through MMEngine's launchers.

mmengine 0.10.7 assumes CUDA for ``--launcher pytorch``/``slurm``: ``init_dist`` calls
``torch.cuda.set_device(local_rank)`` whatever the backend, and the Runner wraps the model
with ``device_ids=[local_rank]``, which DDP refuses for CPU modules. On a machine without
CUDA, :func:`setup_cpu_distributed` (called by ``tools/train.py`` / ``tools/test.py``)
switches the config to the gloo backend and to :class:`CPUDistributedDataParallel`, and
makes ``torch.cuda.set_device`` a no-op in that process. With CUDA it changes nothing.
"""
import torch
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS  # Runner.wrap_model looks it up in the root


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for CPU processes: drops the ``device_ids`` the Runner
    always passes."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def setup_cpu_distributed(cfg: Config) -> bool:
    """Adapt ``cfg`` for multi-process CPU training; returns True when it did.

    Only acts when ``cfg.launcher`` is not ``'none'`` and CUDA is unavailable.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type') in ('MMDistributedDataParallel', None):
        wrapper['type'] = 'CPUDistributedDataParallel'
    cfg.model_wrapper_cfg = wrapper
    torch.cuda.set_device = lambda device: None  # mmengine's init_dist calls it
    return True
