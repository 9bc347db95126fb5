"""``SafeCheckpointHook``: checkpoints as plain data, loaded safely, written atomically."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..checkpoint import install_safe_checkpoints, plain_checkpoint, restore_checkpoint


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Make a Runner's checkpoints load under ``torch.load(weights_only=True)``.

    Building the hook installs the safe loader and the atomic file backend
    (:func:`~lbc_mmdet.engine.checkpoint.install_safe_checkpoints`); before every save it
    turns the checkpoint into plain data (last of all hooks, after the others added their
    state), after every load it rebuilds the message hub's ``HistoryBuffer`` objects.
    ``tools/train.py`` and ``tools/test.py`` add it to every config that lacks it; a
    second instance (a config listing it twice through its bases) stays idle.
    """
    priority = 'LOWEST'

    def __init__(self) -> None:
        install_safe_checkpoints()

    def _active(self, runner) -> bool:
        first = next(h for h in runner.hooks if isinstance(h, SafeCheckpointHook))
        return first is self

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._active(runner):
            plain_checkpoint(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._active(runner):
            restore_checkpoint(checkpoint)
