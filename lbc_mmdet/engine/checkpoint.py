"""Checkpoints that load with torch's safe (``weights_only=True``) unpickler, and that a
kill cannot truncate.

Nothing here changes MMEngine on import. :func:`install_safe_checkpoints` (called by the
tools, by :class:`~lbc_mmdet.engine.hooks.SafeCheckpointHook` when a config lists it, or by
a library user) does two explicit things, both undone by :func:`uninstall_safe_checkpoints`:

- registers :func:`load_from_local` as MMEngine's loader of local checkpoint files: safe
  loading, a clear :class:`CorruptCheckpointError` for a truncated or damaged file and
  :class:`UnsafeCheckpointError` for one the safe unpickler refuses (loaded only after the
  explicit opt-in ``LBC_MMDET_ALLOW_UNSAFE_LOAD=1``, ``--unsafe-load``);
- registers :class:`AtomicLocalBackend` as MMEngine's local file backend: every file
  MMEngine writes (checkpoints, ``last_checkpoint``) goes to a temporary file in the same
  folder and is renamed into place, so a kill leaves the old file or the new one.

The checkpoint's content is made plain data by ``SafeCheckpointHook`` (the message hub's
``HistoryBuffer`` objects would need ``builtins.getattr`` to unpickle, i.e. arbitrary code):
:func:`plain_checkpoint` before a save, :func:`restore_checkpoint` after a load.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import HistoryBuffer, print_log

from ..errors import LBCError
from ..utils import atomic_write, to_plain

#: Environment variable that opts in to unsafe (full pickle) loading.
UNSAFE_LOAD_ENV = 'LBC_MMDET_ALLOW_UNSAFE_LOAD'
#: Marker of a plain-data ``HistoryBuffer`` in a message-hub state dict.
HISTORY_BUFFER_TYPE = 'HistoryBuffer'
_TRUE_STRINGS = ('1', 'true', 'yes', 'on')


class UnsafeCheckpointError(LBCError, pickle.UnpicklingError):
    """A checkpoint needs the full (unsafe) unpickler to load."""


class CorruptCheckpointError(LBCError, RuntimeError):
    """A checkpoint file is truncated or corrupt (not a readable torch.save file)."""


# --------------------------------------------------------------------------- atomic files
# (the atomic writes themselves: :mod:`lbc_mmdet.utils.io`)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose writes are atomic (:func:`atomic_write`)."""

    def put(self, obj: bytes, filepath) -> None:  # noqa: D102
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:  # noqa: D102
        atomic_write(filepath, obj, encoding)


# --------------------------------------------------------------------------- plain data
def history_buffer_to_plain(buffer: HistoryBuffer) -> Dict[str, Any]:
    """``{'type': 'HistoryBuffer', 'log_history': [...], 'count_history': [...],
    'max_length': n}``."""
    log_history, count_history = buffer.data
    return dict(type=HISTORY_BUFFER_TYPE, log_history=to_plain(log_history),
                count_history=to_plain(count_history), max_length=int(buffer.max_length))


def is_plain_history_buffer(obj: Any) -> bool:
    """Whether ``obj`` is the output of :func:`history_buffer_to_plain`."""
    return (isinstance(obj, dict) and obj.get('type') == HISTORY_BUFFER_TYPE
            and 'log_history' in obj and 'count_history' in obj)


def history_buffer_from_plain(data: Dict[str, Any]) -> HistoryBuffer:
    """Inverse of :func:`history_buffer_to_plain`."""
    return HistoryBuffer(list(data['log_history']), list(data['count_history']),
                         max_length=int(data.get('max_length', 1000000)))


def _plain_fallback(obj: Any) -> Any:
    return history_buffer_to_plain(obj) if isinstance(obj, HistoryBuffer) else obj


def plain_checkpoint(checkpoint: dict) -> None:
    """Turn ``checkpoint`` into plain data in place, right before it is written: numpy
    values, ``HistoryBuffer`` objects (message hub), ``ConfigDict`` and other subclasses
    of the builtin containers (``meta``)."""
    for key in list(checkpoint):
        checkpoint[key] = to_plain(checkpoint[key], _plain_fallback)


def restore_checkpoint(checkpoint: dict) -> None:
    """Rebuild, in place, the ``HistoryBuffer`` objects :func:`plain_checkpoint` wrote, so
    that MMEngine's ``MessageHub.load_state_dict`` reads them."""
    hub = checkpoint.get('message_hub')
    if isinstance(hub, dict) and isinstance(hub.get('log_scalars'), dict):
        hub['log_scalars'] = OrderedDict(
            (k, history_buffer_from_plain(v) if is_plain_history_buffer(v) else v)
            for k, v in hub['log_scalars'].items())


# --------------------------------------------------------------------------- loading
def unsafe_load_allowed() -> bool:
    """Whether the user opted in to unsafe loading (``LBC_MMDET_ALLOW_UNSAFE_LOAD``)."""
    return os.environ.get(UNSAFE_LOAD_ENV, '').strip().lower() in _TRUE_STRINGS


def allow_unsafe_load(enabled: bool = True) -> None:
    """Opt in (or out) of unsafe loading for this process and its children. Only for
    checkpoints from a trusted source: unpickling them can run arbitrary code."""
    if enabled:
        os.environ[UNSAFE_LOAD_ENV] = '1'
    else:
        os.environ.pop(UNSAFE_LOAD_ENV, None)


def _corrupt_message(filename: str, err: BaseException) -> str:
    size = osp.getsize(filename) if osp.isfile(filename) else -1
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (f'Checkpoint {filename!r} ({size} bytes) is corrupt or truncated: it is not a '
            'complete torch.save file (an interrupted save or copy?); torch.load said: '
            f'{type(err).__name__}: {detail.split(". ")[0][:200]}. Resume from an earlier '
            'checkpoint, or delete this one (and `last_checkpoint` if it names it).')


def _refusal_reason(err: BaseException) -> str:
    """The informative line of torch's weights-only refusal message."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(err))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        match = re.search(r'WeightsUnpickler error:\s*(.*)', line)
        if match:
            return match.group(1).split(' Please use')[0].strip()
    for line in lines:
        if 'GLOBAL' in line or 'Unsupported' in line:
            return line
    return lines[0] if lines else type(err).__name__


def _unsafe_hint(filename: str, reason: BaseException) -> str:
    return (f'refusing to load checkpoint {filename!r}: it contains objects that '
            'torch.load(weights_only=True) does not allow, so unpickling it could execute '
            f'arbitrary code (torch said: {_refusal_reason(reason)}). Checkpoints written '
            'by lbc_mmdet load safely; for an older mmengine/mmdet checkpoint from a source '
            'you TRUST, opt in explicitly with --unsafe-load (tools/train.py, '
            f'tools/test.py) or {UNSAFE_LOAD_ENV}=1.')


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: No such file.
        CorruptCheckpointError: The file is truncated or corrupt.
        UnsafeCheckpointError: The safe unpickler refuses it and the user did not opt in
            (:func:`unsafe_load_allowed`); with the opt-in it is loaded with
            ``weights_only=False`` and a warning is logged.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # bytes that are no pickle at all, or a pickle cut short: not a refusal
        if any(k in str(err).lower() for k in ('unsupported operand', 'truncated',
                                               'ran out of input')):
            raise CorruptCheckpointError(_corrupt_message(filename, err)) from err
        if not unsafe_load_allowed():
            raise UnsafeCheckpointError(_unsafe_hint(filename, err)) from err
    except RuntimeError as err:
        # a truncated zip (no central directory) or damaged archive members; other
        # RuntimeErrors (e.g. CUDA tensors without CUDA) are not about the file
        if not any(k in str(err) for k in ('PytorchStreamReader', 'zip archive',
                                            'corrupted', 'invalid header')):
            raise
        raise CorruptCheckpointError(_corrupt_message(filename, err)) from err
    except (EOFError, KeyError, ValueError, UnicodeDecodeError,
            zipfile.BadZipFile) as err:
        raise CorruptCheckpointError(_corrupt_message(filename, err)) from err
    print_log(f'{UNSAFE_LOAD_ENV} is set: loading {filename} with '
              'torch.load(weights_only=False) (full pickle; trusted files only).',
              logger='current', level=30)
    return torch.load(filename, map_location=map_location, weights_only=False)


# --------------------------------------------------------------------------- installation
_INSTALLED = False


def safe_checkpoints_installed() -> bool:
    """Whether :func:`install_safe_checkpoints` is in effect."""
    return _INSTALLED


def _reset_local_backend_instances() -> None:
    from mmengine.fileio import io as mm_io
    for key in [k for k in mm_io.backend_instances if k.startswith(':')]:
        mm_io.backend_instances.pop(key)


def install_safe_checkpoints() -> None:
    """Register the safe loader and the atomic local file backend with MMEngine
    (idempotent; see the module docstring)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.fileio import register_backend
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    _reset_local_backend_instances()
    _INSTALLED = True


def uninstall_safe_checkpoints() -> None:
    """Restore MMEngine's own loader and local backend."""
    global _INSTALLED
    from mmengine.fileio import register_backend
    from mmengine.runner import checkpoint as mm_ckpt
    mm_ckpt.CheckpointLoader.register_scheme(prefixes='', loader=mm_ckpt.load_from_local,
                                             force=True)
    register_backend('local', LocalBackend, force=True, prefixes='')
    _reset_local_backend_instances()
    _INSTALLED = False
