"""Time a training step of each N:M method against the dense detector (CPU or GPU).

Example:
    python tools/benchmark_training.py --warmup 2 --iters 5 --out work_dirs/benchmark_training
"""
import argparse
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lbc_mmdet.benchmark.training import METHODS, run_training_benchmark  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Training-step time (forward+backward+SGD) of Faster R-CNN R50-FPN, '
        'dense vs LBC/SR-STE/ASP/BAME 2:4 (and LBC rebuilding its mask every forward), '
        'round-robin, medians; plus saved-for-backward bytes, extra state bytes and one '
        'LBC removal event. Writes results.json and results.md under --out.')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    p.add_argument('--warmup', type=int, default=2, help='discarded rounds (default 2)')
    p.add_argument('--iters', type=int, default=5, help='timed rounds (default 5)')
    p.add_argument('--depth', type=int, default=50, choices=(18, 34, 50, 101),
                   help='ResNet depth (default 50; 18 for quick checks)')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--img-size', type=int, default=128)
    p.add_argument('--removal-reps', type=int, default=3)
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--out', default='work_dirs/benchmark_training')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = run_training_benchmark(
        methods=args.methods, warmup=args.warmup, iters=args.iters, depth=args.depth,
        batch_size=args.batch_size, img_size=args.img_size,
        removal_reps=args.removal_reps, out=args.out, threads=args.threads)
    print(result['markdown'])
    print(f'written: {osp.join(args.out, "results.json")}, '
          f'{osp.join(args.out, "results.md")}')


if __name__ == '__main__':
    main()
