"""Checkpoints that load with torch's safe (``weights_only=True``) unpickler.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``: only
tensors, plain containers and an allow-list of globals may be unpickled.
mmengine 0.10.7 checkpoints break that in one place: the message-hub state
pickles :class:`~mmengine.logging.HistoryBuffer` objects (numpy arrays inside,
which need ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``, ``_codecs.encode`` and -- via numpy's dtype reduction --
``builtins.getattr``), so ``Runner.resume`` fails with ``UnpicklingError``.

Allow-listing those globals is not an option: ``getattr`` lets a pickle reach
any attribute of any allowed object, i.e. arbitrary code. Instead, importing
this module (``import lbc_mmdet`` does it):

* patches :meth:`MessageHub.state_dict` to write plain data: each
  ``HistoryBuffer`` becomes ``{'type': 'HistoryBuffer', 'log_history': [...],
  'count_history': [...], 'max_length': n}`` and numpy scalars / arrays in
  ``runtime_info`` become python numbers / lists (recursively);
* patches :meth:`MessageHub.load_state_dict` to rebuild ``HistoryBuffer``
  objects from that format (the original format is still accepted);
* plain-ifies the whole checkpoint dict right before mmengine writes it
  (numpy values, ``ConfigDict`` and other dict/list subclasses that hooks or
  dataset metainfo may leave in ``meta``), see :func:`to_plain`;
* wraps mmengine's local-file checkpoint loader so that a checkpoint the safe
  unpickler refuses raises :class:`UnsafeCheckpointError` explaining the
  explicit opt-in, ``LBC_MMDET_ALLOW_UNSAFE_LOAD=1`` (``--unsafe-load`` on
  ``tools/train.py`` / ``tools/test.py``), which re-loads such *trusted* old
  checkpoints with ``weights_only=False``.

Safe loading is never disabled globally: no ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
and no ``weights_only=False`` unless the user opted in.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub, print_log

#: Environment variable that opts in to unsafe (full pickle) loading.
UNSAFE_LOAD_ENV = 'LBC_MMDET_ALLOW_UNSAFE_LOAD'
#: Marker of a plain-data ``HistoryBuffer`` in a message-hub state dict.
HISTORY_BUFFER_TYPE = 'HistoryBuffer'

_TRUE_STRINGS = ('1', 'true', 'yes', 'on')
_SCALAR_TYPES = (bool, int, float, complex, str, bytes)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs the full (unsafe) unpickler to load."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or corrupt (not a readable torch.save file)."""


def _corrupt_message(filename: str, err: BaseException) -> str:
    size = osp.getsize(filename) if osp.isfile(filename) else -1
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (f'Checkpoint {filename!r} ({size} bytes) is corrupt or truncated: it is not '
            'a complete torch.save file (an interrupted save or copy?). '
            f'torch.load said: {type(err).__name__}: {detail.split(". ")[0][:200]}. Resume from an '
            'earlier checkpoint, or delete this one (and `last_checkpoint` if it names '
            'it).')


# --------------------------------------------------------------------------
# plain data conversion
# --------------------------------------------------------------------------
def to_plain(obj: Any) -> Any:
    """Recursively converts ``obj`` to data torch's safe unpickler accepts.

    Numpy scalars become python numbers, numpy arrays (nested) lists,
    ``HistoryBuffer`` its plain dict (:func:`history_buffer_to_plain`),
    subclasses of ``dict`` (``ConfigDict`` ...), ``list``, ``tuple`` and of
    the scalar builtins their builtin base type. Tensors and anything unknown
    are returned unchanged (the safe loader will name an unknown class if it
    is not allowed).

    Containers whose content needs no change are returned as they are, so
    e.g. a model ``state_dict`` keeps its ``_metadata``; an ``OrderedDict``
    that has to be copied carries its ``_metadata`` over.

    Args:
        obj: Any object.

    Returns:
        The converted object (``obj`` itself when nothing had to change).
    """
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, HistoryBuffer):
        return history_buffer_to_plain(obj)
    for base in _SCALAR_TYPES:
        if isinstance(obj, base):
            return obj if type(obj) is base else base(obj)
    if isinstance(obj, dict):
        items = [(k, to_plain(v)) for k, v in obj.items()]
        exact = type(obj) in (dict, OrderedDict)
        if exact and all(new is old for (_, new), old in zip(items,
                                                             obj.values())):
            return obj
        if isinstance(obj, OrderedDict):
            out: dict = OrderedDict(items)
            if hasattr(obj, '_metadata'):
                out._metadata = obj._metadata  # type: ignore[attr-defined]
            return out
        return dict(items)
    if isinstance(obj, (list, tuple, set, frozenset)):
        base_type = next(t for t in (list, tuple, set, frozenset)
                         if isinstance(obj, t))
        values = [to_plain(v) for v in obj]
        if type(obj) is base_type and all(
                new is old for new, old in zip(values, obj)):
            return obj
        return base_type(values)
    return obj


def history_buffer_to_plain(buffer: HistoryBuffer) -> Dict[str, Any]:
    """Serialises a ``HistoryBuffer`` to python lists.

    Args:
        buffer: The buffer.

    Returns:
        ``{'type': 'HistoryBuffer', 'log_history': list,
        'count_history': list, 'max_length': int}``.
    """
    log_history, count_history = buffer.data
    return dict(
        type=HISTORY_BUFFER_TYPE,
        log_history=np.asarray(log_history).tolist(),
        count_history=np.asarray(count_history).tolist(),
        max_length=int(buffer.max_length))


def is_plain_history_buffer(obj: Any) -> bool:
    """Whether ``obj`` is the output of :func:`history_buffer_to_plain`."""
    return (isinstance(obj, dict) and obj.get('type') == HISTORY_BUFFER_TYPE
            and 'log_history' in obj and 'count_history' in obj)


def history_buffer_from_plain(data: Dict[str, Any]) -> HistoryBuffer:
    """Rebuilds a ``HistoryBuffer`` from :func:`history_buffer_to_plain`.

    Args:
        data: The plain dict.

    Returns:
        A new ``HistoryBuffer`` with the same history and ``max_length``.
    """
    return HistoryBuffer(
        list(data['log_history']),
        list(data['count_history']),
        max_length=int(data.get('max_length', 1000000)))


# --------------------------------------------------------------------------
# MessageHub patch
# --------------------------------------------------------------------------
def _original(fn: Callable) -> Callable:
    """The unpatched function behind one of our patches (or ``fn``)."""
    while getattr(fn, '_lbc_patch', False):
        fn = fn.__wrapped__  # type: ignore[attr-defined]
    return fn


_ORIG_STATE_DICT: Callable = _original(MessageHub.state_dict)
_ORIG_LOAD_STATE_DICT: Callable = _original(MessageHub.load_state_dict)


@functools.wraps(_ORIG_STATE_DICT)
def _plain_state_dict(self: MessageHub) -> dict:
    """``MessageHub.state_dict`` writing only safe-loadable plain data.

    ``HistoryBuffer`` objects become plain dicts and numpy values python
    numbers / lists (:func:`to_plain`); keys and order are mmengine's.
    """
    state = _ORIG_STATE_DICT(self)
    return dict(
        log_scalars=OrderedDict(
            (k, to_plain(v)) for k, v in state['log_scalars'].items()),
        runtime_info=OrderedDict(
            (k, to_plain(v)) for k, v in state['runtime_info'].items()),
        resumed_keys=OrderedDict(
            (k, bool(v)) for k, v in state['resumed_keys'].items()))


@functools.wraps(_ORIG_LOAD_STATE_DICT)
def _plain_load_state_dict(self: MessageHub, state_dict: Any) -> None:
    """``MessageHub.load_state_dict`` also accepting the plain format.

    Plain ``HistoryBuffer`` dicts in ``log_scalars`` are rebuilt first; the
    original format (``HistoryBuffer`` objects, or a ``MessageHub``) goes to
    mmengine's implementation unchanged.
    """
    if isinstance(state_dict, dict) and 'log_scalars' in state_dict:
        scalars = OrderedDict(
            (k, history_buffer_from_plain(v) if is_plain_history_buffer(v)
             else v) for k, v in state_dict['log_scalars'].items())
        state_dict = dict(state_dict, log_scalars=scalars)
    _ORIG_LOAD_STATE_DICT(self, state_dict)


_plain_state_dict._lbc_patch = True  # type: ignore[attr-defined]
_plain_load_state_dict._lbc_patch = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# saving: plain-ify the whole checkpoint
# --------------------------------------------------------------------------
def _wrap_save_checkpoint(save_fn: Callable) -> Callable:
    """Wraps mmengine's ``save_checkpoint`` to plain-ify the checkpoint."""

    @functools.wraps(save_fn)
    def save_checkpoint(checkpoint: dict, *args: Any, **kwargs: Any) -> Any:
        return save_fn(to_plain(checkpoint), *args, **kwargs)

    save_checkpoint._lbc_patch = True  # type: ignore[attr-defined]
    return save_checkpoint


# --------------------------------------------------------------------------
# loading: clear error, explicit unsafe opt-in
# --------------------------------------------------------------------------
def unsafe_load_allowed() -> bool:
    """Whether the user opted in to unsafe checkpoint loading.

    Returns:
        True when ``LBC_MMDET_ALLOW_UNSAFE_LOAD`` is ``1``/``true``/``yes``.
    """
    return os.environ.get(UNSAFE_LOAD_ENV, '').strip().lower() in _TRUE_STRINGS


def allow_unsafe_load(enabled: bool = True) -> None:
    """Opts in (or out) of unsafe loading for this process and its children.

    Only use it for checkpoints from a trusted source: unpickling them can run
    arbitrary code.

    Args:
        enabled: Opt in when True, opt out when False.
    """
    if enabled:
        os.environ[UNSAFE_LOAD_ENV] = '1'
    else:
        os.environ.pop(UNSAFE_LOAD_ENV, None)


def _refusal_reason(err: BaseException) -> str:
    """The informative line of torch's weights-only refusal message."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(err))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        match = re.search(r'WeightsUnpickler error:\s*(.*)', line)
        if match:
            # "Unsupported global: GLOBAL x.y was not an allowed global ..."
            return match.group(1).split(' Please use')[0].strip()
    for line in lines:
        if 'GLOBAL' in line or 'Unsupported' in line:
            return line
    return lines[0] if lines else type(err).__name__


def _unsafe_hint(filename: str, reason: BaseException) -> str:
    """Error message for a checkpoint the safe unpickler refused."""
    return (
        f'Refusing to load checkpoint {filename!r}: it contains objects that '
        'torch.load(weights_only=True) does not allow, so unpickling it could '
        'execute arbitrary code.\n'
        f'  torch said: {_refusal_reason(reason)}\n'
        'Checkpoints written by lbc_mmdet load safely. If this is an older '
        'mmengine/mmdet checkpoint from a source you TRUST, opt in to unsafe '
        'loading explicitly:\n'
        '  python tools/train.py ... --unsafe-load   (or tools/test.py ... '
        '--unsafe-load)\n'
        f'  or set the environment variable {UNSAFE_LOAD_ENV}=1')


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local checkpoint loader with safe loading by default.

    Loads with ``torch.load(weights_only=True)``. If the safe unpickler
    refuses the file, raises :class:`UnsafeCheckpointError` -- unless the user
    opted in (:func:`unsafe_load_allowed`), in which case the file is loaded
    with ``weights_only=False`` and a warning is logged.

    Args:
        filename: Local checkpoint path.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        UnsafeCheckpointError: If the file needs the unsafe unpickler and the
            user did not opt in.
        CorruptCheckpointError: If the file is truncated or corrupt.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
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
        # an empty file or random bytes
        raise CorruptCheckpointError(_corrupt_message(filename, err)) from err
    print_log(
        f'{UNSAFE_LOAD_ENV} is set: loading {filename} with '
        'torch.load(weights_only=False) (full pickle; trusted files only).',
        logger='current', level=30)
    return torch.load(filename, map_location=map_location, weights_only=False)


# --------------------------------------------------------------------------
# installation
# --------------------------------------------------------------------------
_INSTALLED = False


def install() -> None:
    """Installs the patches (idempotent; done on import of this module)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import mmengine.runner.checkpoint as mm_ckpt
    import mmengine.runner.runner as mm_runner

    MessageHub.state_dict = _plain_state_dict  # type: ignore[assignment]
    MessageHub.load_state_dict = _plain_load_state_dict  # type: ignore
    mm_runner.save_checkpoint = _wrap_save_checkpoint(
        _original(mm_runner.save_checkpoint))
    mm_ckpt.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    _INSTALLED = True


def uninstall() -> None:
    """Restores mmengine's original behaviour (for tests)."""
    global _INSTALLED
    import mmengine.runner.checkpoint as mm_ckpt
    import mmengine.runner.runner as mm_runner

    MessageHub.state_dict = _ORIG_STATE_DICT  # type: ignore[assignment]
    MessageHub.load_state_dict = _ORIG_LOAD_STATE_DICT  # type: ignore
    mm_runner.save_checkpoint = _original(mm_runner.save_checkpoint)
    mm_ckpt.CheckpointLoader.register_scheme(
        prefixes='', loader=mm_ckpt.load_from_local, force=True)
    _INSTALLED = False


install()

