"""Generate the bundled synthetic COCO shapes dataset (detection + masks).

Example:
    python tools/make_demo_data.py                      # data/demo_coco, 300/50 images
    python tools/make_demo_data.py --out /tmp/tiny --num-train 8 --num-val 4
"""
import argparse
import os.path as osp
import sys
import time

# Runnable as ``python tools/make_demo_data.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lbc_mmdet.datasets.demo_coco import (format_summary,  # noqa: E402
                                          make_demo_coco)


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The parsed namespace.
    """
    parser = argparse.ArgumentParser(
        description='Generate a small deterministic COCO-format dataset of '
        'synthetic shapes (circle, square, triangle) with boxes and polygons.')
    parser.add_argument('--out', default='data/demo_coco',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=300,
                        help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=50,
                        help='validation images (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=128,
                        help='square image side in pixels (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if a matching dataset exists')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Entry point."""
    args = parse_args(argv)
    start = time.time()
    summary = make_demo_coco(args.out, num_train=args.num_train,
                             num_val=args.num_val, img_size=args.img_size,
                             seed=args.seed, force=args.force)
    print(format_summary(summary))
    print(f'done in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
