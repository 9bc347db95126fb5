"""Build a detector from a config and load a checkpoint into it, with clear errors."""
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..deploy.export import (
    NMExportError,
    compare_keys,
    export_sparse_state_dict,
    strip_sparse_layers,
)
from ..engine.config_path import load_config, readable_config_errors
from ..errors import LBCError
from ..layers import sparse_layers
from ..utils import strip_prefix


def build_model(config: str, cfg_options: Optional[dict] = None) -> Tuple[Config,
                                                                          nn.Module]:
    """``(cfg, model)`` of ``config`` (a file or ``mmdet::...``), no weights loaded and no
    ``init_weights`` (nothing is downloaded).

    Args:
        config (str): A config file or ``mmdet::...`` name.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        tuple[Config, nn.Module]: The loaded config and the model built from it.
    """
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    from mmdet.registry import MODELS
    with readable_config_errors(config):
        return cfg, MODELS.build(cfg.model)


def read_state_dict(checkpoint_path: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """``(checkpoint, state_dict)`` of a checkpoint file, loaded safely (``module.``
    stripped).

    Args:
        checkpoint_path (str): The checkpoint file.

    Returns:
        tuple[dict, dict[str, Tensor]]: The checkpoint dict and its state dict (the
        checkpoint itself when it has no ``state_dict``), ``module.`` prefixes stripped.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from ..engine.checkpoint import install_safe_checkpoints
    install_safe_checkpoints()
    if not osp.isfile(checkpoint_path):
        raise LBCError(f'checkpoint not found: {checkpoint_path}')
    checkpoint = _load_checkpoint(checkpoint_path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise LBCError(f'{checkpoint_path} is not a checkpoint dict')
    return checkpoint, strip_prefix(checkpoint.get('state_dict', checkpoint))


def load_checkpoint_strict(model: nn.Module, checkpoint_path: str, config: str) -> dict:
    """Load ``checkpoint_path`` into ``model`` with ``strict=True``; a mismatch raises an
    :class:`~lbc_mmdet.errors.LBCError` listing the keys (and a hint when only the sparse
    method's state differs).

    Args:
        model (nn.Module): The model to load into.
        checkpoint_path (str): The checkpoint file.
        config (str): The config ``model`` was built from (named in the errors).

    Returns:
        dict: The checkpoint dict.
    """
    checkpoint, state = read_state_dict(checkpoint_path)
    missing, unexpected = compare_keys(model, state)
    if missing or unexpected:
        lines = [f'checkpoint {checkpoint_path} does not match config {config}: '
                 f'{len(missing)} missing and {len(unexpected)} unexpected keys']
        for title, keys in (('missing', missing), ('unexpected', unexpected)):
            if keys:
                lines.append(f'  {title}: ' + ', '.join(keys[:8]) +
                             (f' ... (+{len(keys) - 8})' if len(keys) > 8 else ''))
        method_state = {f'{name}.{extra}' for name, layer in sparse_layers(model)
                        for extra in layer.nm_extra_state_names}
        if missing and set(missing) <= method_state and not unexpected:
            lines.append('  hint: only sparse-method state is missing: is the checkpoint '
                         'already exported (dense keys)? It needs no export.')
        else:
            lines.append('  hint: pass the config the checkpoint was trained with')
        raise LBCError('\n'.join(lines))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise LBCError(f'checkpoint {checkpoint_path} does not fit config {config}: '
                       f'{err}') from err
    return checkpoint


def load_dense_model(config: str, checkpoint: str,
                     cfg_options: Optional[dict] = None) -> nn.Module:
    """The dense model of ``config`` holding ``checkpoint``'s weights, in eval mode.

    ``config`` may be the dense config or the sparse one (its sparse layers are replaced
    by dense ones); ``checkpoint`` an exported checkpoint or a finished training
    checkpoint of the sparse config (exported in memory).

    Args:
        config (str): The dense or the sparse config (a file or ``mmdet::...``).
        checkpoint (str): An exported or a finished training checkpoint.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        nn.Module: The dense model with the checkpoint's weights, in eval mode.
    """
    _, model = build_model(config, cfg_options)
    _, state = read_state_dict(checkpoint)
    if sparse_layers(model):
        missing, unexpected = compare_keys(model, state)
        if not missing and not unexpected:  # a training checkpoint of this sparse config
            model.load_state_dict(state, strict=True)
            try:
                state, _ = export_sparse_state_dict(model)
            except NMExportError as err:
                raise LBCError(str(err)) from err
        strip_sparse_layers(model)
    missing, unexpected = compare_keys(model, state)
    if missing or unexpected:
        raise LBCError(f'checkpoint {checkpoint} does not match config {config}: '
                       f'missing {missing[:5]}, unexpected {unexpected[:5]} '
                       f'({len(missing)} / {len(unexpected)} in all)')
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
