"""The command lines that train one run of a suite (single process, ``torch.distributed
.run`` or ``srun``), and where a finished training left its checkpoint."""
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

from .spec import SuiteError, SuiteRun, cfg_options_to_args, resolve_config

LAUNCHERS = ('none', 'pytorch', 'slurm')
#: the training entry point every run calls
TRAIN_MODULE = 'lbc_mmdet.cli.train'
#: the entry point of a run that only evaluates (``evaluate_only``)
TEST_MODULE = 'lbc_mmdet.cli.test'


def train_command(run: SuiteRun,
                  work_dir: str,
                  launcher: str = 'none',
                  gpus: int = 1,
                  python: str = sys.executable,
                  suite_path: Optional[str] = None,
                  partition: Optional[str] = None,
                  resume: bool = False,
                  options: Optional[Dict[str, object]] = None,
                  checkpoint: Optional[str] = None
                  ) -> Tuple[List[str], Dict[str, str]]:
    """The command (and extra environment) that trains ``run`` into ``work_dir``, with
    ``options`` (default: the run's ``cfg_options``) as ``--cfg-options``; with
    ``checkpoint``, the command that only evaluates it with the run's config
    (``tools/test.py``).

    Args:
        run (SuiteRun): The run.
        work_dir (str): Its work dir.
        launcher (str): One of :data:`LAUNCHERS`. Defaults to ``'none'``.
        gpus (int): GPUs of the run (``'none'``: 1). Defaults to 1.
        python (str): The Python interpreter. Defaults to ``sys.executable``.
        suite_path (str, optional): The suite file (relative configs are found from its
            folder, :func:`resolve_config`). Defaults to None.
        partition (str, optional): Slurm partition (needed by ``'slurm'``). Defaults to None.
        resume (bool): Resume from the work dir's last checkpoint (training only). Defaults
            to False.
        options (dict, optional): The ``--cfg-options``. Defaults to None (the run's).
        checkpoint (str, optional): A checkpoint to evaluate instead of training. Defaults
            to None.

    Returns:
        tuple[list[str], dict[str, str]]: The command line and the environment it adds.
    """
    config = resolve_config(run.config, suite_path)
    module = TEST_MODULE if checkpoint else TRAIN_MODULE
    head = [config] + ([checkpoint] if checkpoint else [])
    tail = ['--work-dir', work_dir]
    if resume and not checkpoint:
        tail.append('--resume')
    options = dict(run.cfg_options if options is None else options)
    if checkpoint:
        options.update(evaluate_options(options))
    opts = cfg_options_to_args(options, run.label)
    if opts:
        tail += ['--cfg-options'] + opts
    env = {'PYTHONUNBUFFERED': '1'}
    if launcher == 'none':
        if gpus > 1:
            raise SuiteError('--gpus > 1 needs --launcher pytorch (or slurm)')
        cmd = [python, '-m', module] + head + tail
    elif launcher == 'pytorch':
        port = os.environ.get('PORT', '29500')
        cmd = [python, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
               f'--master_port={port}', '-m', module] + head + ['--launcher',
                                                                'pytorch'] + tail
    elif launcher == 'slurm':
        if not partition:
            raise SuiteError('--launcher slurm needs --partition')
        per_node = min(gpus, 8)
        cmd = ['srun', '-p', partition, f'--job-name={run.slug}', f'--gres=gpu:{per_node}',
               f'--ntasks={gpus}', f'--ntasks-per-node={per_node}',
               f'--cpus-per-task={os.environ.get("CPUS_PER_TASK", "5")}',
               '--kill-on-bad-exit=1', python, '-u', '-m', module] + head + [
                   '--launcher', 'slurm'] + tail
    else:
        raise SuiteError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
    return cmd, env


def evaluate_options(options: Dict[str, object]) -> Dict[str, object]:
    """What an ``evaluate_only`` run adds to its ``--cfg-options``: ``tools/test.py``'s
    evaluator keeps the predictions where the validation's would."""
    prefix = options.get('val_evaluator.outfile_prefix')
    return {'test_evaluator.outfile_prefix': prefix} if prefix else {}


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint MMEngine's ``last_checkpoint`` file names, if it exists."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    if ckpt and not osp.isabs(ckpt):
        ckpt = osp.join(work_dir, ckpt)
    return ckpt if ckpt and osp.isfile(ckpt) else None
