"""Load a config the way ``tools/train.py`` and ``tools/test.py`` do: mmdet's conventions,
plus early, readable checks and safe checkpoints."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..engine import (
    check_dataset_paths,
    install_safe_checkpoints,
    load_config,
    readable_config_errors,
    setup_cpu_distributed,
    validate_sparsity_cfg,
)

#: The hook that makes checkpoints plain data (``SafeCheckpointHook``).
SAFE_HOOK = 'SafeCheckpointHook'


def ensure_safe_checkpoint_hook(cfg: Config) -> None:
    """Add ``SafeCheckpointHook`` to ``cfg.custom_hooks`` unless a hook of that type is
    listed already (in ``custom_hooks`` or ``default_hooks``)."""
    hooks = list(cfg.get('custom_hooks') or [])
    listed = [h for h in hooks if isinstance(h, dict) and h.get('type') == SAFE_HOOK]
    listed += [h for h in (cfg.get('default_hooks') or {}).values()
               if isinstance(h, dict) and h.get('type') == SAFE_HOOK]
    if not listed:
        cfg.custom_hooks = hooks + [dict(type=SAFE_HOOK)]


def load_tool_config(config: str, phase: str, launcher: str = 'none',
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None) -> Config:
    """The config of ``config`` (a file or ``mmdet::...``) ready for a Runner.

    Merges ``cfg_options``, adapts multi-process runs to CPUs without CUDA, checks the
    N:M settings and the dataset files of ``phase`` (``'train'`` or ``'test'``) before
    anything is written, installs safe checkpoints and sets the work dir (CLI > config >
    ``work_dirs/<config name>``).

    Raises:
        LBCError: A missing or unreadable config, a missing dataset file, an invalid N:M
            setting.
    """
    install_safe_checkpoints()
    cfg = load_config(config)
    cfg.launcher = launcher
    setup_cpu_distributed(cfg)  # no CUDA: gloo and a CPU DDP wrapper
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    validate_sparsity_cfg(cfg)
    check_dataset_paths(cfg, phase=phase)
    ensure_safe_checkpoint_hook(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    return cfg


def build_runner(cfg: Config):
    """mmdet's way: the default Runner, or ``cfg.runner_type`` from the registry (a type
    no registry holds is a :class:`~lbc_mmdet.engine.ConfigError`)."""
    from mmdet.registry import RUNNERS
    from mmengine.runner import Runner
    with readable_config_errors(cfg.filename):
        return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
