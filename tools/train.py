# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3.0 tools/train.py for lbc_mmdet: imports lbc_mmdet
# (registries, safe checkpoints), checks the dataset files up front, adds
# --unsafe-load and prints where the results are.
"""Train a detector (mmdet 3.x conventions).

Example:
    python tools/make_demo_data.py
    python tools/train.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py
"""
import argparse
import os
import os.path as osp
import sys

# Runnable as ``python tools/train.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402

import lbc_mmdet  # noqa: E402,F401  (registers lbc_mmdet's modules)
from lbc_mmdet.engine import (DatasetNotFoundError, setup_cpu_distributed,  # noqa: E402
                              SparsityConfigError, allow_unsafe_load,
                              check_dataset_paths, resolve_config_path,
                              validate_sparsity_cfg)
from lbc_mmdet.engine.checkpoint import UNSAFE_LOAD_ENV  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument(
        'config',
        help='train config file path, or an installed package\'s config '
        'such as mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow loading checkpoints that torch.load(weights_only=True) '
        'refuses (e.g. written by plain mmengine/mmdet) with the full, '
        'code-executing unpickler. Only for files from a trusted source. '
        f'Same as setting {UNSAFE_LOAD_ENV}=1.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)

    return args


def print_results(runner) -> None:
    """Prints where the logs, checkpoints and metrics of ``runner`` are."""
    last = osp.join(runner.work_dir, 'last_checkpoint')
    ckpt = None
    if osp.isfile(last):
        with open(last) as f:
            ckpt = f.read().strip()
    print(f'\nResults of {runner.experiment_name}:')
    print(f'  work dir:        {runner.work_dir}')
    print(f'  log:             {osp.join(runner.log_dir, runner.timestamp)}'
          '.log')
    print(f'  scalars (json):  '
          f'{osp.join(runner.log_dir, "vis_data", runner.timestamp)}.json')
    if ckpt:
        print(f'  last checkpoint: {ckpt}')


def main(argv=None):
    args = parse_args(argv)
    if args.unsafe_load:
        allow_unsafe_load()

    # Reduce the number of repeated compilations and improve
    # training speed.
    setup_cache_size_limit_of_dynamo()

    # load config
    try:
        cfg = Config.fromfile(resolve_config_path(args.config))
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    cfg.launcher = args.launcher
    # no CUDA: multi-process runs use gloo and a CPU DDP wrapper
    setup_cpu_distributed(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # fail before the Runner creates the work dir and log files (it does so
    # before building the model) when an N:M sparsity setting is invalid
    try:
        validate_sparsity_cfg(cfg)
    except SparsityConfigError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)

    # fail early, readably, when the dataset files are missing
    try:
        check_dataset_paths(cfg, phase='train')
    except DatasetNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(cfg.filename))[0])

    # enable automatic-mixed-precision training
    if args.amp is True:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    # enable automatically scaling LR
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # start training
    runner.train()
    if runner.rank == 0:
        print_results(runner)


if __name__ == '__main__':
    main()
