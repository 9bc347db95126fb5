"""What every tool shares: one ``error:`` line for the user's mistakes, ``--debug``."""
import argparse
import os
import sys
from typing import Callable, List, Optional, Sequence

from ..errors import LBCError

#: Environment variable that shows tracebacks (same as ``--debug``).
DEBUG_ENV = 'LBC_MMDET_DEBUG'
#: Exit status of a user error (bad config, checkpoint, dataset, pattern).
EXIT_USER_ERROR = 2


class ToolError(LBCError):
    """A user-facing failure of a tool, with its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_USER_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


def add_debug_arg(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (show the traceback of errors) to ``parser``."""
    parser.add_argument('--debug', action='store_true',
                        help=f'show the full traceback of errors (or set {DEBUG_ENV}=1)')
    return parser


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` on the command line or ``LBC_MMDET_DEBUG=1``."""
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '').strip().lower() in (
        '1', 'true', 'yes', 'on')


def format_error(err: BaseException) -> str:
    """``error: <first line>`` and the further lines of the message indented (an
    ``OSError`` about a path: ``error: <reason>: <path>``)."""
    if isinstance(err, OSError) and not isinstance(err, LBCError) and err.filename:
        return f'error: {err.strerror or type(err).__name__}: {err.filename}'
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return '\n'.join([f'error: {lines[0]}'] + [f'  {ln.strip()}' for ln in lines[1:]])


def tool_logger(name: str, log_level: str = 'INFO'):
    """The ``MMLogger`` of a tool, its console handlers writing to the *current*
    ``sys.stdout`` (an instance made by an earlier call in the same process, e.g. a test or
    a notebook, may hold a stream that has since been replaced or closed)."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(name, log_level=log_level)
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:  # not FileHandler
            handler.stream = sys.stdout  # not setStream: it flushes the old stream
    return logger


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]],
             argv: Optional[List[str]] = None) -> int:
    """Run a tool's ``main(argv)``: a user error (:class:`~lbc_mmdet.errors.LBCError`, or
    an ``OSError`` about a path: missing, not writable, a file where a folder is needed)
    prints one ``error:`` line (its details indented below it) and returns its exit
    status (2 unless the error says otherwise); ``--debug`` re-raises it. Ctrl-C returns
    130."""
    try:
        return int(main(argv) or 0)
    except (LBCError, OSError) as err:
        about_a_path = isinstance(err, OSError) and err.filename is not None
        user_error = isinstance(err, (LBCError, FileNotFoundError)) or about_a_path
        if debug_requested(argv) or not user_error:
            raise
        print(format_error(err), file=sys.stderr)
        return int(getattr(err, 'exit_code', EXIT_USER_ERROR))
    except KeyboardInterrupt:
        print('\ninterrupted', file=sys.stderr)
        return 130
