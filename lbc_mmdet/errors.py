"""The project's user-facing errors.

Every error a user can cause with an input (a config, a checkpoint, a dataset path, a
pattern) derives from :class:`LBCError`, so that the command-line tools print it as one
``error: ...`` line (exit status 2) instead of a traceback.
"""


class LBCError(Exception):
    """An error caused by the user's input; the message says what to change."""


class PatternError(LBCError, ValueError):
    """An invalid N:M pattern; ``field`` names the offending value (``'n'``, ``'m'`` or
    ``'n/m'``)."""

    def __init__(self, message: str, field: str = 'n/m'):
        super().__init__(message)
        self.field = field


class CheckpointMismatchError(LBCError, RuntimeError):
    """A checkpoint's state does not fit the model (another pattern, method or model)."""


class ModelError(LBCError, RuntimeError):
    """The model does not hold what a hook or tool needs (e.g. no N:M sparse layer)."""
