"""Measure the |w| that top-N magnitude N:M pruning keeps, without and with an input-channel
permutation search (Pool & Yu 2021), on a trained model's backbone (per layer, per stage and
in total; the model is not changed) and/or on random matrices.

``tools/permutation_report.py`` (the paragraph above is its ``--help``).
"""
import argparse
import json
from typing import List, Optional, Tuple

from ..apis.permutation import DEFAULT_SHAPES, permutation_report, report_lines
from ..utils import atomic_write
from ._common import (
    ToolError,
    add_model_args,
    add_pattern_args,
    check_pattern_args,
    parse_tool_args,
    tool_cli,
    tool_parser,
)


def parse_shape(text: str) -> Tuple[int, ...]:
    """``'128x64'`` -> (128, 64): rows x columns (``O x I``), or ``OxIxKHxKW``."""
    try:
        shape = tuple(int(p) for p in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'bad shape {text!r} (use RxC or OxIxKHxKW)')
    if len(shape) not in (2, 4) or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f'bad shape {text!r} (use RxC or OxIxKHxKW)')
    return shape


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(__doc__, example='python tools/permutation_report.py '
        'configs/demo/faster_rcnn_r50_fpn_dense_demo.py work_dirs/dense/iter_400.pth '
        '--random --out work_dirs/permutation.json')
    add_model_args(parser, 'config of the model (dense or sparse); omit with --random',
                   'its checkpoint (dense, exported or a training checkpoint)', optional=True)
    add_pattern_args(parser)
    parser.add_argument('--include', nargs='+', default=['backbone.*'], metavar='PATTERN',
                        help='fnmatch patterns on module names (default: backbone.*)')
    parser.add_argument('--time-limit', type=float, default=10.0,
                        help='seconds of search per layer / matrix (default: 10)')
    parser.add_argument('--random', nargs='*', type=parse_shape, default=None,
                        metavar='SHAPE', help='also measure random Gaussian and uniform '
                        'matrices of these shapes (RxC; default: ' +
                        ' '.join('x'.join(map(str, s)) for s in DEFAULT_SHAPES) + ')')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='seeds of the random matrices (default: 0 1 2)')
    parser.add_argument('--out', default=None, help='write the report as JSON here')
    return parse_tool_args(parser, argv, cfg_options=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = check_pattern_args(parse_args(argv))
    if (args.config is None) != (args.checkpoint is None):
        raise ToolError('give both CONFIG and CHECKPOINT (or neither, with --random)')
    if args.config is None and args.random is None:
        raise ToolError('nothing to measure: give CONFIG CHECKPOINT and/or --random')
    shapes = () if args.random is None else (args.random or DEFAULT_SHAPES)
    for shape in shapes:
        if shape[1] % args.m:
            raise ToolError(f'shape {shape}: {shape[1]} columns not divisible by M={args.m}')
    report = permutation_report(args.config, args.checkpoint, args.n, args.m, args.include,
                                args.time_limit, shapes, args.seeds, args.cfg_options)
    print('\n'.join(report_lines(report)))
    if args.out:
        atomic_write(args.out, json.dumps(report, indent=2))
        print(f'wrote {args.out}')
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
