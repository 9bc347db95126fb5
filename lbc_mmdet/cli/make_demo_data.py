"""Generate the bundled synthetic COCO shapes dataset (``tools/make_demo_data.py``)."""
import argparse
import os.path as osp
import time
from typing import List, Optional

from ..datasets.demo_coco import format_summary, make_demo_coco
from ._common import ToolError, add_debug_arg, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a small deterministic COCO-format dataset of synthetic '
        'shapes (circle, square, triangle) with boxes and polygons.',
        epilog='example: python tools/make_demo_data.py --out /tmp/tiny --num-train 8 '
        '--num-val 4')
    parser.add_argument('--out', default='data/demo_coco',
                        help='output folder (default: %(default)s)')
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
    add_debug_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if osp.exists(args.out) and not osp.isdir(args.out):
        raise ToolError(f'--out {args.out} is a file, not a folder')
    start = time.time()
    try:
        summary = make_demo_coco(args.out, num_train=args.num_train, num_val=args.num_val,
                                 img_size=args.img_size, seed=args.seed, force=args.force)
    except ValueError as err:  # the sizes
        raise ToolError(f'{err} (--num-train, --num-val, --img-size)') from err
    print(format_summary(summary))
    print(f'done in {time.time() - start:.1f} s')
    return 0


def cli(argv: Optional[List[str]] = None) -> int:
    """``main`` with the tools' error handling."""
    return run_tool(main, argv)


if __name__ == '__main__':
    raise SystemExit(cli())
