"""Test (and evaluate) a detector, mmdet 3.x conventions (``tools/test.py``)."""
import argparse
import os
import os.path as osp
import warnings
from copy import deepcopy
from typing import List, Optional

from ..engine import allow_unsafe_load, readable_config_errors
from ..errors import LBCError
from ._common import tool_cli
from ._config import build_runner, load_tool_config
from .train import add_runner_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector (mmdet 3.x conventions).',
        epilog='example: python tools/test.py configs/demo/faster_rcnn_r50_fpn_dense_demo.py'
        ' work_dirs/faster_rcnn_r50_fpn_dense_demo/iter_400.pth')
    parser.add_argument('config', help='test config file, or an installed package\'s '
                        'config such as mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images are saved (in '
                        'work_dir/timestamp/show_dir)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    add_runner_args(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _apply_tta(cfg) -> None:
    """mmdet's default test-time augmentation (flip) where the config has none."""
    from mmengine import ConfigDict
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, we will set it as default.')
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, we will set it as default.')
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
        cfg.tta_pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=(
                'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                'flip_direction'))]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def print_results(runner, metrics, args) -> None:
    """The metrics and where the outputs of ``runner`` are."""
    print(f'\nTest results of {args.checkpoint}:')
    for key, value in (metrics or {}).items():
        print(f'  {key}: {value}')
    print(f'  work dir:       {runner.work_dir}')
    print(f'  log:            {osp.join(runner.log_dir, runner.timestamp)}.log')
    print(f'  metrics (json): {osp.join(runner.log_dir, runner.timestamp)}.json')
    if args.out:
        print(f'  predictions:    {args.out}')
    if args.show_dir:
        print(f'  painted images: {osp.join(runner.log_dir, args.show_dir)}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.unsafe_load:
        allow_unsafe_load()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise LBCError(f'--out must be a .pkl or .pickle file, got {args.out}')
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args.config, 'test', args.launcher, args.cfg_options,
                           args.work_dir)
    if not osp.isfile(args.checkpoint):
        raise LBCError(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        _apply_tta(cfg)
    runner = build_runner(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    with readable_config_errors(args.config):  # the dataset is built here
        metrics = runner.test()
    if runner.rank == 0:
        print_results(runner, metrics, args)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
