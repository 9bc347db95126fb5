"""What every tool shares: one ``error:`` line for the user's mistakes, ``--debug``, the
parser's description and epilog, and the arguments several tools take (the model's config
and checkpoint, ``--n``/``--m``, ``--cfg-options``, input sizes)."""
import argparse
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import LBCError

#: Environment variable that shows tracebacks (same as ``--debug``).
DEBUG_ENV = 'LBC_MMDET_DEBUG'
#: Exit status of a user error (bad config, checkpoint, dataset, pattern).
EXIT_USER_ERROR = 2
#: Help of ``--cfg-options`` (mmengine's ``DictAction``).
CFG_OPTIONS_HELP = ('override settings of the config, key=value pairs (a list as '
                    'key="[a,b]" or key=a,b; nested lists/tuples as key="[(a,b),(c,d)]"; '
                    'no white space)')


class ToolError(LBCError):
    """A user-facing failure of a tool, with its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_USER_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


def tool_parser(doc: Optional[str], example: Optional[str] = None,
                exit_status: Optional[Dict[int, str]] = None, user_error: str = 'bad input',
                note: str = '') -> argparse.ArgumentParser:
    """The parser of a tool, its ``--help`` saying what the tool does, what its exit
    statuses mean and how it is called.

    Args:
        doc (str, optional): The tool module's docstring: its first paragraph is the
            description (the rest is for the reader of the code). None (``python -OO``)
            leaves the description out.
        example (str, optional): A command line, shown after ``example:`` at the end.
        exit_status (dict[int, str], optional): What the tool's own exit statuses mean,
            0 included, in the order given; :data:`EXIT_USER_ERROR` follows them. None
            lists no exit status.
        user_error (str): What :data:`EXIT_USER_ERROR` means for this tool. Defaults to
            ``'bad input'``.
        note (str): A sentence between the exit statuses and the example. Defaults to
            ``''``.

    Returns:
        argparse.ArgumentParser: The parser, without arguments yet.
    """
    description = (doc or '').strip().split('\n\n')[0] or None
    epilog = []
    if exit_status:
        meanings = {**exit_status, EXIT_USER_ERROR: user_error}
        epilog.append('exit status: ' + ', '.join(
            f'{code} {meaning}' for code, meaning in meanings.items()) + '.')
    epilog += [note] if note else []
    epilog += [f'example: {example}'] if example else []
    return argparse.ArgumentParser(description=description,
                                   epilog=' '.join(epilog) or None)


def add_model_args(parser: argparse.ArgumentParser, config: str, checkpoint: str,
                   optional: bool = False) -> argparse.ArgumentParser:
    """Add the positional arguments ``config`` and ``checkpoint``: the model a tool loads.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        config (str): Help of ``config`` (which config the checkpoint goes with).
        checkpoint (str): Help of ``checkpoint`` (which checkpoints the tool takes).
        optional (bool): Both may be left out (then None). Defaults to False.

    Returns:
        argparse.ArgumentParser: ``parser``.
    """
    extra = dict(nargs='?', default=None) if optional else {}
    parser.add_argument('config', help=config, **extra)
    parser.add_argument('checkpoint', help=checkpoint, **extra)
    return parser


def add_debug_arg(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (show the traceback of errors) to ``parser``."""
    parser.add_argument('--debug', action='store_true',
                        help=f'show the full traceback of errors (or set {DEBUG_ENV}=1)')
    return parser


def add_cfg_options_arg(parser: argparse.ArgumentParser,
                        help: str = CFG_OPTIONS_HELP) -> argparse.ArgumentParser:
    """Add ``--cfg-options`` (config overrides, mmengine's ``DictAction``) to ``parser``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        help (str): Its help text. Defaults to :data:`CFG_OPTIONS_HELP`.

    Returns:
        argparse.ArgumentParser: ``parser``.
    """
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help=help)
    return parser


def parse_tool_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                    cfg_options: bool = False) -> argparse.Namespace:
    """Add ``--cfg-options`` (:func:`add_cfg_options_arg`, if asked) and ``--debug``
    (:func:`add_debug_arg`), the last arguments of every tool, to ``parser`` and parse
    ``argv``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser, otherwise complete.
        argv (Sequence[str], optional): The arguments; None reads ``sys.argv``.
        cfg_options (bool): Add ``--cfg-options`` (a tool that loads a config).
            Defaults to False.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    if cfg_options:
        add_cfg_options_arg(parser)
    add_debug_arg(parser)
    return parser.parse_args(argv)


def parse_size(text: str) -> Tuple[int, int]:
    """An ``argparse`` type for an input size.

    Args:
        text (str): ``'800'`` (square) or ``'800x1344'`` (height x width).

    Returns:
        tuple[int, int]: ``(height, width)``, both positive.

    Raises:
        argparse.ArgumentTypeError: Not ``H`` or ``HxW`` with positive integers.
    """
    try:
        parts = [int(p) for p in text.lower().split('x')]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f'bad input size {text!r} (use H or HxW)')
    return parts[0], parts[1]


def add_pattern_args(parser: argparse.ArgumentParser, n: Optional[int] = 2,
                     m: Optional[int] = 4, what: str = '') -> argparse.ArgumentParser:
    """Add ``--n`` and ``--m`` (the N:M pattern) to ``parser``; check them with
    :func:`check_pattern_args`.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        n (int, optional): Default of ``--n``; None makes both arguments required.
            Defaults to 2.
        m (int, optional): Default of ``--m``. Defaults to 4.
        what (str): What the pattern is, appended to the help (e.g. ``'of the expected
            pattern for a dense config'``). Defaults to ``''``.

    Returns:
        argparse.ArgumentParser: ``parser``.
    """
    suffix = f' {what}' if what else ''
    for flag, default, meaning in (('--n', n, 'non-zeros kept per group (N)'),
                                   ('--m', m, 'group size (M)')):
        if n is None:
            parser.add_argument(flag, type=int, required=True, help=meaning + suffix)
        else:
            parser.add_argument(flag, type=int, default=default,
                                help=f'{meaning}{suffix} (default: %(default)s)')
    return parser


def check_pattern_args(args: argparse.Namespace) -> argparse.Namespace:
    """Refuse ``--n``/``--m`` unless ``0 < n < m``.

    Args:
        args (argparse.Namespace): Parsed arguments with ``n`` and ``m``.

    Returns:
        argparse.Namespace: ``args``.

    Raises:
        ToolError: One line naming both values.
    """
    if not 0 < args.n < args.m:
        raise ToolError(f'need 0 < n < m, got --n {args.n} --m {args.m}')
    return args


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


def tool_cli(main: Callable[[Optional[List[str]]], Optional[int]]
             ) -> Callable[[Optional[List[str]]], int]:
    """The entry point of a tool: its ``main`` run by :func:`run_tool`.

    Args:
        main (Callable): The tool's ``main(argv)``.

    Returns:
        Callable: ``cli(argv=None) -> int``, the exit status.
    """
    def cli(argv: Optional[List[str]] = None) -> int:
        return run_tool(main, argv)

    cli.__doc__ = f'``{main.__module__}.main`` with the tools\' error handling.'
    cli.__module__ = main.__module__
    return cli


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
