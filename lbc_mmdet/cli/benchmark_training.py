"""Time a training step of each N:M method against the dense detector
(``tools/benchmark_training.py``)."""
import argparse
import os.path as osp
from typing import List, Optional

from ..benchmark.training import EVENT_GOAL_MS, benchmark_entries, run_training_benchmark
from ..engine.config_path import load_config, readable_config_errors
from ._common import ToolError, add_debug_arg, run_tool


def _goal(text: str):
    name, _, value = text.partition('=')
    entry, _, size = name.partition('@')
    try:
        return (entry, int(size)) if size else entry, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'bad goal {text!r} (use ENTRY=RATIO or ENTRY@SIZE=RATIO)') from None


def parse_args(argv: Optional[List[str]] = None, default_config: str = '') -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description='Training-step time (forward + backward + SGD) of the detector of a '
        'dense config, dense against every registered N:M method (and benchmark variant) '
        'at 2:4 on its backbone, round-robin, medians; plus saved-for-backward bytes, '
        'extra state bytes and the mask-update events. Writes results.json and '
        'results.md under --out.')
    p.add_argument('--config', default=default_config or None, required=not default_config,
                   help='the dense detector config (default: %(default)s)')
    p.add_argument('--methods', nargs='+', default=None,
                   help=f'entries to time (default: all: {" ".join(benchmark_entries())})')
    p.add_argument('--warmup', type=int, default=2, help='discarded rounds (default 2)')
    p.add_argument('--iters', type=int, default=5, help='timed rounds (default 5)')
    p.add_argument('--depth', type=int, default=50, choices=(18, 34, 50, 101),
                   help='ResNet depth (default 50; 18 for quick checks)')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--img-sizes', type=int, nargs='+', default=[128, 512],
                   help='input sizes (square), each timed (default: 128 512)')
    p.add_argument('--max-load', type=float, default=1.5,
                   help='a load average above this at the start marks the timings as not '
                   'trustworthy (default: %(default)s)')
    p.add_argument('--max-others', type=float, default=0.25,
                   help='CPU cores other processes (or the hypervisor\'s steal) may take on '
                   'average while it runs before the timings are marked not trustworthy '
                   '(default: %(default)s)')
    p.add_argument('--weight-side-reps', type=int, default=5,
                   help='repetitions of the weight-side timings that bound each method\'s '
                   'extra cost; 0 skips them (default: %(default)s)')
    p.add_argument('--removal-reps', type=int, default=3,
                   help='repetitions of the mask-update events (default 3)')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--goal', type=_goal, nargs='+', default=[], metavar='ENTRY=RATIO',
                   help='step-ratio goals to report, ENTRY=RATIO for any entry but '
                   f'dense (e.g. {benchmark_entries()[-1]}=1.05)')
    p.add_argument('--event-goal-ms', type=float, default=EVENT_GOAL_MS,
                   help='goal for a mask-update event (default: %(default)s ms)')
    p.add_argument('--out', default='work_dirs/benchmark_training')
    add_debug_arg(p)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None, default_config: str = '') -> int:
    args = parse_args(argv, default_config)
    load_config(args.config)  # a missing or broken config: one error line, now
    try:
        with readable_config_errors(args.config):
            result = run_training_benchmark(
                args.config, methods=args.methods, warmup=args.warmup, iters=args.iters,
                depth=args.depth, batch_size=args.batch_size, img_sizes=args.img_sizes,
                removal_reps=args.removal_reps, out=args.out, threads=args.threads,
                goals=dict(args.goal), event_goal_ms=args.event_goal_ms,
                max_load=args.max_load, max_others=args.max_others,
                weight_side_reps=args.weight_side_reps)
    except ValueError as err:
        raise ToolError(str(err)) from err
    print(result['markdown'])
    print(f'written: {osp.join(args.out, "results.json")}, '
          f'{osp.join(args.out, "results.md")}')
    return 0


def cli(argv: Optional[List[str]] = None, default_config: str = '') -> int:
    """``main`` with the tools' error handling."""
    return run_tool(lambda a: main(a, default_config), argv)
