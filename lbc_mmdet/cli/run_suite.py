"""Train a benchmark suite run after run and tabulate the results like the paper
(``tools/run_suite.py``; see ``docs/benchmark.md``).

Each run of SUITE_FILE is trained with ``python -m lbc_mmdet.cli.train`` (through
``torch.distributed.run`` with ``--launcher pytorch``, ``srun`` with ``slurm``) in its own
work dir under the work root; runs whose results exist are skipped. Then ``results.md``
(tables laid out like the paper's Tables 2 and 3), ``results.csv`` and ``results.png``
(mAP against the training-FLOPs ratio) are written into the work root. Every run trains
once per seed of the suite; a ``finetune`` suite first trains (or reuses) its dense
pre-training and starts every run from it.
"""
import argparse
import os.path as osp
import signal
import sys
from typing import List, Optional

from mmengine.config import DictAction

from ..engine.config_path import load_config
from ..layers import DENSE, method_names
from ..suite.runner import LAUNCHERS, SuiteRunner
from ..suite.spec import load_suite
from ._common import ToolError, parse_tool_args, tool_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train the runs of a benchmark suite one after the other and write '
        'results.md / results.csv / results.png (paper Tables 2 and 3 layout).',
        epilog='The suite file (python or yaml) lists the runs: suite = [dict(label='
        "'LABEL', config='configs/...', method=KEY, pattern='2:4', "
        "model='Faster R-CNN', cfg_options={...}), ...] with KEY one of "
        f"{', '.join([DENSE] + method_names())}. See configs/suites/.")
    parser.add_argument('suite', metavar='SUITE_FILE', help='the suite file (.py/.yaml)')
    parser.add_argument('--work-root', help='root of the runs\' work dirs and of the '
                        'results files (default: the suite\'s `work_root`, else '
                        'work_dirs/suite/<suite file name>)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='how each run is launched (default: %(default)s)')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run for --launcher pytorch/slurm (default: 1)')
    parser.add_argument('--partition', help='Slurm partition (--launcher slurm)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the plan and the commands; run and write nothing')
    parser.add_argument('--only', nargs='+', metavar='LABEL',
                        help="train only these runs (labels, or their work-dir names: "
                        "'ABC 2:4' -> abc_2of4); the tables still show every run that has "
                        'results')
    parser.add_argument('--seeds', nargs='+', type=int, metavar='SEED',
                        help="train only these of the suite's seeds (the tables show "
                        'every seed that has results)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='extra --cfg-options for every training of the suite, the '
                        'pre-training included (e.g. dataset paths)')
    parser.add_argument('--force', action='store_true',
                        help='re-train runs whose results already exist')
    parser.add_argument('--resume', action='store_true',
                        help='resume unfinished runs from their last checkpoint')
    parser.add_argument('--collect-only', action='store_true',
                        help='train nothing; write the results files from what exists')
    parser.add_argument('--quiet', action='store_true',
                        help='do not stream the training output (it still goes to '
                        '<work_dir>/suite_train.log)')
    return parse_tool_args(parser, argv)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which background jobs inherit ignored) stop the current
    # training command too: it runs in its own session
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    if args.suite.endswith('.py') and osp.isfile(args.suite):
        load_config(args.suite, what='suite file')  # a broken file: one error line
    suite = load_suite(args.suite)
    runner = SuiteRunner(suite, work_root=args.work_root, launcher=args.launcher,
                         gpus=args.gpus, partition=args.partition, only=args.only,
                         seeds=args.seeds, force=args.force, resume=args.resume,
                         quiet=args.quiet, cfg_options=args.cfg_options)
    if args.launcher == 'none' and args.gpus > 1:
        raise ToolError('--gpus > 1 needs --launcher pytorch (or slurm)')
    if args.dry_run:
        runner.dry_run()
        return 0
    if args.collect_only:
        results = runner.collect()
        paths = runner.write_reports(results)
        failed = []
    else:
        results, failed = runner.run()
        paths = None
    if paths is None:
        paths = dict(markdown=osp.join(runner.work_root, 'results.md'))
    with open(paths['markdown']) as f:
        print('\n' + f.read())
    if failed:
        print('failed runs: ' + ', '.join(r.label for r in failed), file=sys.stderr)
        return 1
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
