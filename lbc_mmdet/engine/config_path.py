"""Config paths (local files or ``package::relative/path.py`` of mmdet & co.) and config
errors a user can read: :func:`load_config` and :func:`readable_config_errors` turn what
MMEngine raises for a bad config file into one :class:`ConfigError` line."""
from __future__ import annotations

import contextlib
import os.path as osp
import re
from typing import Iterator, Optional

from mmengine.config import Config

from ..errors import LBCError

#: The first sentence of MMEngine's ``build_from_cfg`` error for an unregistered type.
_UNREGISTERED = re.compile(r'^(\S+) is not in the (\S+) registry\.')


class ConfigNotFoundError(LBCError, FileNotFoundError):
    """A config path that names no file."""


class ConfigError(LBCError, ValueError):
    """A config file that cannot be loaded or names a type nothing registered."""


def resolve_config_path(path: str) -> str:
    """Returns the file behind a config path.

    Accepts local files and external configs of an installed OpenMMLab
    package, e.g. ``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``
    (the same syntax as ``_base_`` entries).

    Args:
        path (str): Local path or ``scope::relative/path.py``.

    Returns:
        str: A path that ``Config.fromfile`` can read.

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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().strip('"\'')
    return text.splitlines()[0] if text else type(err).__name__


def load_config(path: str, what: str = 'config') -> Config:
    """``Config.fromfile`` of the file behind ``path`` (:func:`resolve_config_path`).

    Anything raised while the file (or one of its bases) is parsed and executed is the
    file's fault, so it becomes one readable line.

    Raises:
        ConfigNotFoundError: ``path``, or a base config it names, does not exist.
        ConfigError: A syntax error or any other error while loading the file.
    """
    filename = resolve_config_path(path)
    try:
        return Config.fromfile(filename)
    except FileNotFoundError as err:
        missing = osp.normpath(err.filename) if err.filename else _first_line(err)
        raise ConfigNotFoundError(f'{what} {path} names a file that does not exist: '
                                  f'{missing}') from err
    except SyntaxError as err:
        where = f' (line {err.lineno})' if err.lineno else ''
        raise ConfigError(f'{what} {path} has a syntax error{where}: {err.msg}') from err
    except Exception as err:  # noqa: BLE001  (the user's file ran: any error is its own)
        raise ConfigError(f'{what} {path} cannot be loaded: {type(err).__name__}: '
                          f'{_first_line(err)}') from err


def unregistered_type(err: BaseException) -> Optional[str]:
    """The readable form of MMEngine's ``KeyError`` for a config ``type`` that no
    registry holds, or None for any other error."""
    if not isinstance(err, KeyError):
        return None
    match = _UNREGISTERED.match(_first_line(err))
    if match is None:
        return None
    return (f'type {match.group(1)!r} is not registered ({match.group(2)} registry): check '
            'its spelling, or import the module that registers it (custom_imports)')


@contextlib.contextmanager
def readable_config_errors(config: str) -> Iterator[None]:
    """Re-raise MMEngine's "not in the registry" ``KeyError`` raised inside the block
    (building a Runner, a model or a dataset from ``config``) as a :class:`ConfigError`."""
    try:
        yield
    except KeyError as err:
        message = unregistered_type(err)
        if message is None:
            raise
        raise ConfigError(f'config {config}: {message}') from err
