"""Config paths: local files or ``package::relative/path.py`` of mmdet & co."""
from __future__ import annotations

import os.path as osp

from mmengine.config import Config

from ..errors import LBCError


class ConfigNotFoundError(LBCError, FileNotFoundError):
    """A config path that names no file."""


def resolve_config_path(path: str) -> str:
    """Returns the file behind a config path.

    Accepts local files and external configs of an installed OpenMMLab
    package, e.g. ``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``
    (the same syntax as ``_base_`` entries).

    Args:
        path: Local path or ``scope::relative/path.py``.

    Returns:
        A path that ``Config.fromfile`` can read.

    Raises:
        FileNotFoundError: If no such config exists.
    """
    if '::' not in path:
        if not osp.isfile(path):
            raise ConfigNotFoundError(f'config file not found: {path}')
        return path
    try:
        resolved, _ = Config._get_cfg_path(path, '')
    except (ValueError, KeyError, ModuleNotFoundError) as err:
        raise ConfigNotFoundError(f'cannot resolve config {path}: {err}') \
            from err
    if not resolved or not osp.isfile(resolved):
        raise ConfigNotFoundError(f'config {path} not found (looked at '
                                f'{resolved})')
    return resolved
