"""Train a detector, mmdet 3.x conventions (``tools/train.py``)."""
import argparse
import os
import os.path as osp
from typing import List, Optional

from ..engine import allow_unsafe_load, readable_config_errors
from ..engine.checkpoint import UNSAFE_LOAD_ENV
from ..errors import LBCError
from ._common import add_cfg_options_arg, add_debug_arg, tool_cli
from ._config import build_runner, load_tool_config


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share."""
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow loading checkpoints that torch.load(weights_only=True) '
                        'refuses (e.g. written by plain mmengine/mmdet) with the full, '
                        'code-executing unpickler; only for files from a trusted source '
                        f'(same as {UNSAFE_LOAD_ENV}=1)')
    add_cfg_options_arg(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.run passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_arg(parser)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a detector (mmdet 3.x conventions).',
        epilog='example: python tools/train.py '
        'configs/demo/faster_rcnn_r50_fpn_dense_demo.py (configs/demo/ holds every '
        "method's demo config)")
    parser.add_argument('config', help='train config file, or an installed package\'s '
                        'config such as mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path from the '
                        'latest checkpoint in the work dir')
    add_runner_args(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def print_results(runner) -> None:
    """Where the logs, checkpoints and metrics of ``runner`` are."""
    last = osp.join(runner.work_dir, 'last_checkpoint')
    ckpt = open(last).read().strip() if osp.isfile(last) else None
    print(f'\nResults of {runner.experiment_name}:')
    print(f'  work dir:        {runner.work_dir}')
    print(f'  log:             {osp.join(runner.log_dir, runner.timestamp)}.log')
    print(f'  scalars (json):  '
          f'{osp.join(runner.log_dir, "vis_data", runner.timestamp)}.json')
    if ckpt:
        print(f'  last checkpoint: {ckpt}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.unsafe_load:
        allow_unsafe_load()
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args.config, 'train', args.launcher, args.cfg_options,
                           args.work_dir)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if not ('auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr
                and 'base_batch_size' in cfg.auto_scale_lr):
            raise LBCError('--auto-scale-lr: the config has no "auto_scale_lr" with '
                           '"enable" and "base_batch_size"')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    runner = build_runner(cfg)
    with readable_config_errors(args.config):  # the datasets are built here
        runner.train()
    if runner.rank == 0:
        print_results(runner)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
