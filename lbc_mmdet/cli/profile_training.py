"""Train a config with timers on every part of the step and print where the time goes
(forward, weight side, backward, optimizer, hooks, evaluation, data loading). Measure alone:
other processes on the cores make the split wrong (the tool reports their CPU use).

``tools/profile_training.py`` (the paragraph above is its ``--help``): runs a config's
training (usually shortened with ``--cfg-options``) with :class:`RunProfiler`'s timers and
prints the split, with the load average and the other processes' CPU use; writes
``profile.json`` in the work dir.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import DictAction

from ..benchmark.cpu_use import CpuWatch
from ..benchmark.run_profile import RunProfiler
from ..benchmark.weight_side import weight_side_ms
from ..engine import readable_config_errors
from ..utils.io import atomic_write
from ._common import CFG_OPTIONS_HELP, parse_tool_args, run_tool, tool_logger, tool_parser
from ._config import build_runner, load_tool_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = tool_parser(__doc__, example='python tools/profile_training.py '
                    'configs/demo/faster_rcnn_r50_fpn_dense_demo.py --cfg-options '
                    'train_cfg.max_iters=40 train_cfg.val_interval=40')
    p.add_argument('config', help='train config file')
    p.add_argument('--work-dir', help='where the run and profile.json go (default: '
                   'work_dirs/profile/<config name>)')
    p.add_argument('--weight-side-reps', type=int, default=3,
                   help='repetitions of the weight side timed alone after the run '
                   '(forward + backward of every sparse layer\'s weight); 0 skips it')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    return parse_tool_args(p, argv)


def format_rows(rows, iterations: int, wall: float) -> str:
    lines = [f'{"part":<32} {"seconds":>9} {"share":>7} {"ms/iter":>9}']
    for row in rows:
        lines.append(f'{row["name"]:<32} {row["seconds"]:9.1f} {100 * row["share"]:6.1f}% '
                     f'{row["ms_per_iter"]:9.0f}')
    lines.append(f'{"training loop (wall)":<32} {wall:9.1f} {100.0:6.1f}% '
                 f'{1e3 * wall / max(iterations, 1):9.0f}  ({iterations} iterations)')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    work_dir = args.work_dir or osp.join(
        'work_dirs', 'profile', osp.splitext(osp.basename(args.config))[0])
    cfg = load_tool_config(args.config, 'train', 'none', args.cfg_options, work_dir)
    runner = build_runner(cfg)
    profiler = RunProfiler(runner).attach_on_train()
    load_start = os.getloadavg()
    watch = CpuWatch()
    with readable_config_errors(args.config):
        runner.train()
    cpu = watch.stop()
    load_end = os.getloadavg()
    rows = profiler.rows()
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    alone = {}
    if args.weight_side_reps > 0 and hasattr(model, 'backbone'):
        alone = weight_side_ms(model, reps=args.weight_side_reps)
    result = dict(config=args.config, iterations=profiler.iterations,
                  train_wall_s=profiler.train_wall, rows=rows,
                  weight_side_alone_ms=alone, cpu=cpu,
                  load_average_start=load_start[0], load_average_end=load_end[0])
    path = osp.join(runner.work_dir, 'profile.json')
    atomic_write(path, json.dumps(result, indent=1))
    logger = tool_logger('profile_training')
    text = format_rows(rows, profiler.iterations, profiler.train_wall)
    if alone:
        text += ('\nweight side timed alone, per step: forward+backward '
                 f'{alone["forward_weight_ms"]:.0f} ms, extra optimizer '
                 f'{alone["extra_optimizer_ms"]:.0f} ms (one pass over the weights '
                 f'{alone["weight_pass_ms"]:.0f} ms)')
    others = cpu.get('others_cores')
    text += (f'\nload average {load_start[0]:.2f} -> {load_end[0]:.2f}; other processes '
             f'{"n/a" if others is None else f"{others:.2f}"} cores on average'
             f'\nwritten: {path}')
    logger.info('\n' + text)
    return 0


def cli(argv: Optional[List[str]] = None) -> int:
    """``main`` with the tools' error handling."""
    return run_tool(main, argv)
