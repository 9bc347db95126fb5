"""Generate a small deterministic COCO-format dataset of synthetic shapes (circle, square,
triangle) with boxes and polygons.

``tools/make_demo_data.py`` (the paragraph above is its ``--help``): the bundled demo data.
"""
import argparse
import os.path as osp
import time
from typing import List, Optional

from ..datasets.demo_coco import VARIANTS, format_summary, make_demo_coco
from ._common import ToolError, parse_tool_args, tool_cli, tool_parser

#: Where each variant is written without ``--out``.
DEFAULT_OUT = dict(easy='data/demo_coco', hard='data/demo_coco_hard')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(__doc__, example='python tools/make_demo_data.py --out /tmp/tiny '
                         '--num-train 8 --num-val 4')
    parser.add_argument('--out', default=None, help='output folder (default: {easy}, with '
                        '--variant hard {hard})'.format(**DEFAULT_OUT))
    parser.add_argument('--variant', choices=VARIANTS, default='easy',
                        help='easy (default: the README demo\'s 3 shapes) or hard: 7 '
                        'classes of similar shapes, clutter, partial occlusion, a wider '
                        'spread of scales (configs/_base_/datasets/demo_coco_hard*.py)')
    parser.add_argument('--num-train', type=int, default=300,
                        help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=128,
                        help='square image side in pixels (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if a matching dataset exists')
    return parse_tool_args(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT[args.variant]
    if osp.exists(args.out) and not osp.isdir(args.out):
        raise ToolError(f'--out {args.out} is a file, not a folder')
    start = time.time()
    try:
        summary = make_demo_coco(args.out, num_train=args.num_train, num_val=args.num_val,
                                 img_size=args.img_size, seed=args.seed, force=args.force,
                                 variant=args.variant)
    except ValueError as err:  # the sizes
        raise ToolError(f'{err} (--num-train, --num-val, --img-size)') from err
    print(format_summary(summary))
    print(f'done in {time.time() - start:.1f} s')
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
