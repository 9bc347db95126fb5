# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3.0 tools/test.py for lbc_mmdet: imports lbc_mmdet
# (registries, safe checkpoints), checks the dataset files up front, adds
# --unsafe-load and prints where the results are.
"""Test (and evaluate) a detector (mmdet 3.x conventions).

Example:
    python tools/test.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py \
        work_dirs/faster_rcnn_r50_fpn_dense_demo/iter_400.pth
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

# Runnable as ``python tools/test.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from mmengine import ConfigDict  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet.registry import RUNNERS  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402

import lbc_mmdet  # noqa: E402,F401  (registers lbc_mmdet's modules)
from lbc_mmdet.engine import (DatasetNotFoundError, setup_cpu_distributed,  # noqa: E402
                              allow_unsafe_load, check_dataset_paths,
                              resolve_config_path)
from lbc_mmdet.engine.checkpoint import UNSAFE_LOAD_ENV  # noqa: E402


# TODO: support fuse_conv_bn and format_only
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument(
        'config',
        help='test config file path, or an installed package\'s config '
        'such as mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow loading a checkpoint that torch.load(weights_only=True) '
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
    parser.add_argument('--tta', action='store_true')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def print_results(runner, metrics, args) -> None:
    """Prints the metrics and where the outputs of ``runner`` are."""
    print(f'\nTest results of {args.checkpoint}:')
    for key, value in (metrics or {}).items():
        print(f'  {key}: {value}')
    print(f'  work dir:       {runner.work_dir}')
    print(f'  log:            {osp.join(runner.log_dir, runner.timestamp)}.log')
    print(f'  metrics (json): {osp.join(runner.log_dir, runner.timestamp)}'
          '.json')
    if args.out:
        print(f'  predictions:    {args.out}')
    if args.show_dir:
        print(f'  painted images: {osp.join(runner.log_dir, args.show_dir)}')


def main(argv=None):
    args = parse_args(argv)
    if args.unsafe_load:
        allow_unsafe_load()

    # Reduce the number of repeated compilations and improve
    # testing speed.
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

    # fail early, readably, when the dataset files are missing
    try:
        check_dataset_paths(cfg, phase='test')
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

    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:

        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, '
                          'we will set it as default.')
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(
                    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, '
                          'we will set it as default.')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ],
                    [
                        dict(
                            type='PackDetInputs',
                            meta_keys=('img_id', 'img_path', 'ori_shape',
                                       'img_shape', 'scale_factor', 'flip',
                                       'flip_direction'))
                    ],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # add `DumpResults` dummy metric
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    # start testing
    metrics = runner.test()
    if runner.rank == 0:
        print_results(runner, metrics, args)


if __name__ == '__main__':
    main()
