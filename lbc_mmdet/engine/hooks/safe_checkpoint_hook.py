"""``SafeCheckpointHook``: checkpoints as plain data, loaded safely, written atomically;
and silence for MMEngine's warnings about its own checkpoint code."""
import logging

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..checkpoint import install_safe_checkpoints, plain_checkpoint, restore_checkpoint

#: The starts of the two messages :class:`MMEngineSelfDeprecationFilter` drops.
MMENGINE_SELF_DEPRECATIONS = (
    '"FileClient" will be deprecated in future.',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


class MMEngineSelfDeprecationFilter(logging.Filter):
    """Drop exactly two WARNING records MMEngine 0.10.7 logs about *its own* API.

    MMEngine's ``CheckpointHook.before_train`` and ``save_checkpoint`` create a
    ``FileClient`` (kept "to avoid breaking backward compatibility") whose constructor
    logs ``"FileClient" will be deprecated in future...``, and the ``HardDiskBackend`` it
    builds logs ``"HardDiskBackend" is the alias of "LocalBackend"...``. Both are logged
    through ``print_log`` to the current ``MMLogger`` in every training, whatever the
    config says: MMEngine warns about code it calls itself, and nothing a user can change
    makes them go away. Every other record, warnings included, passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING
                    and record.getMessage().startswith(MMENGINE_SELF_DEPRECATIONS))


def silence_mmengine_self_deprecations(logger: logging.Logger) -> None:
    """Attach :class:`MMEngineSelfDeprecationFilter` to ``logger`` (idempotent)."""
    if not any(isinstance(f, MMEngineSelfDeprecationFilter) for f in logger.filters):
        logger.addFilter(MMEngineSelfDeprecationFilter())


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Make a Runner's checkpoints load under ``torch.load(weights_only=True)``.

    Building the hook installs the safe loader and the atomic file backend
    (:func:`~lbc_mmdet.engine.checkpoint.install_safe_checkpoints`); before every save it
    turns the checkpoint into plain data (last of all hooks, after the others added their
    state), after every load it rebuilds the message hub's ``HistoryBuffer`` objects.
    Before the run it attaches :class:`MMEngineSelfDeprecationFilter` to the Runner's
    logger: MMEngine's ``CheckpointHook`` and ``save_checkpoint`` warn that ``FileClient``
    and ``HardDiskBackend`` are deprecated while they are the ones using them, which no
    user can act upon; only those two messages are dropped.
    ``tools/train.py`` and ``tools/test.py`` add the hook to every config that lacks it; a
    second instance (a config listing it twice through its bases) stays idle.
    """
    priority = 'LOWEST'

    def __init__(self) -> None:
        install_safe_checkpoints()

    def _active(self, runner) -> bool:
        first = next(h for h in runner.hooks if isinstance(h, SafeCheckpointHook))
        return first is self

    def before_run(self, runner) -> None:
        if self._active(runner):
            silence_mmengine_self_deprecations(runner.logger)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._active(runner):
            plain_checkpoint(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._active(runner):
            restore_checkpoint(checkpoint)
