"""Prune a trained dense detector to N:M in one shot (no training): magnitude (top-N |w|),
wanda (top-N |w|*||x||) or sparsegpt (OBS mask and update of the kept weights), from K
calibration batches of the config's training set chosen by the seed. OUT is a checkpoint of
the dense model (stock tools/test.py, tools/verify_nm.py); the per-layer relative output
error on held-out batches is printed and written as JSON (OUT.json).

``tools/prune.py`` (the paragraph above is its ``--help``).
"""
import argparse
from typing import List, Optional

from ..apis.prune import prune_checkpoint
from ..nm import ONE_SHOT_CRITERIA
from ._common import (
    add_model_args,
    add_pattern_args,
    check_pattern_args,
    parse_tool_args,
    tool_cli,
    tool_logger,
    tool_parser,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(
        __doc__, exit_status={0: 'pruned'},
        user_error='bad input (missing file, config/checkpoint mismatch, bad option)',
        example='python tools/prune.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py '
        'work_dirs/DENSE/iter_400.pth --method sparsegpt --n 2 --m 4 --calib-batches 8 '
        '--seed 0 --out pruned.pth')
    add_model_args(parser, 'the dense config the checkpoint was trained with',
                   'the trained dense checkpoint (.pth)')
    parser.add_argument('--method', choices=sorted(ONE_SHOT_CRITERIA), default='sparsegpt',
                        help='pruning criterion (default: %(default)s)')
    add_pattern_args(parser)
    parser.add_argument('--calib-batches', type=int, default=8, metavar='K',
                        help='calibration batches (default: %(default)s)')
    parser.add_argument('--heldout-batches', type=int, default=2, metavar='H',
                        help='held-out batches for the error report, after the '
                        'calibration ones (default: %(default)s; 0: no report)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images per batch (default: the training dataloader\'s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='chooses the calibration batches (default: %(default)s)')
    parser.add_argument('--out', required=True, help='output checkpoint (.pth)')
    parser.add_argument('--damp', type=float, default=0.01,
                        help='sparsegpt: damping, a fraction of the mean diagonal of the '
                        'Hessian (default: %(default)s)')
    parser.add_argument('--block-size', type=int, default=128,
                        help='sparsegpt: columns per lazy-update block, a multiple of M '
                        '(default: %(default)s)')
    parser.add_argument('--include', nargs='+', default=['backbone.*'], metavar='PATTERN',
                        help='fnmatch patterns of module names to prune (default: '
                        '%(default)s)')
    parser.add_argument('--exclude', nargs='+', default=[], metavar='PATTERN',
                        help='module names to leave dense')
    parser.add_argument('--report-json', default=None,
                        help='JSON report path (default: OUT + ".json")')
    return parse_tool_args(parser, argv, cfg_options=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = check_pattern_args(parse_args(argv))
    logger = tool_logger('lbc_mmdet_prune')
    prune_checkpoint(args.config, args.checkpoint, args.out, method=args.method,
                     n=args.n, m=args.m, calib_batches=args.calib_batches, seed=args.seed,
                     heldout_batches=args.heldout_batches, damp=args.damp,
                     block_size=args.block_size, batch_size=args.batch_size,
                     include=args.include, exclude=args.exclude,
                     report_path=args.report_json, cfg_options=args.cfg_options,
                     logger=logger)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
