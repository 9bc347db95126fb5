"""Run a benchmark suite: train every listed run with ``python -m lbc_mmdet.cli.train``,
one after the other, then collect the results into ``results.md`` / ``results.csv`` /
``results.png`` (the suite file format: :mod:`lbc_mmdet.suite.spec`).

Each run trains in ``<work_root>/<slug>`` (``'LBC 2:4'`` -> ``lbc_2of4``; a run may set
``work_dir``), its output is streamed and tee'd to ``<work_dir>/suite_train.log``, and its
collected result is saved as ``<work_dir>/results.json``. A run whose ``results.json``
says ``done`` is skipped (``--force`` re-runs it), and so is a run trained outside the
suite whose work dir holds a ``train_flops.json`` (written when training ends) and COCO
metrics.
"""
import os
import os.path as osp
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .results import (
    RunResult,
    collect_run,
    format_duration,
    format_map,
    format_markdown,
    format_ratio,
    plot_results,
    read_result,
    training_finished,
    write_csv,
    write_result,
)
from .spec import Suite, SuiteError, SuiteRun, cfg_options_to_args, resolve_config

LAUNCHERS = ('none', 'pytorch', 'slurm')
LOG_FILE = 'suite_train.log'
#: the training entry point every run calls
TRAIN_MODULE = 'lbc_mmdet.cli.train'


# --------------------------------------------------------------------------- commands
def train_command(run: SuiteRun,
                  work_dir: str,
                  launcher: str = 'none',
                  gpus: int = 1,
                  python: str = sys.executable,
                  suite_path: Optional[str] = None,
                  partition: Optional[str] = None,
                  resume: bool = False) -> Tuple[List[str], Dict[str, str]]:
    """The command (and extra environment) that trains ``run`` into ``work_dir``."""
    config = resolve_config(run.config, suite_path)
    tail = ['--work-dir', work_dir]
    if resume:
        tail.append('--resume')
    opts = cfg_options_to_args(run.cfg_options, run.label)
    if opts:
        tail += ['--cfg-options'] + opts
    env = {'PYTHONUNBUFFERED': '1'}
    if launcher == 'none':
        if gpus > 1:
            raise SuiteError('--gpus > 1 needs --launcher pytorch (or slurm)')
        cmd = [python, '-m', TRAIN_MODULE, config] + tail
    elif launcher == 'pytorch':
        port = os.environ.get('PORT', '29500')
        cmd = [python, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}',
               f'--master_port={port}', '-m', TRAIN_MODULE, config, '--launcher',
               'pytorch'] + tail
    elif launcher == 'slurm':
        if not partition:
            raise SuiteError('--launcher slurm needs --partition')
        per_node = min(gpus, 8)
        cmd = ['srun', '-p', partition, f'--job-name={run.slug}', f'--gres=gpu:{per_node}',
               f'--ntasks={gpus}', f'--ntasks-per-node={per_node}',
               f'--cpus-per-task={os.environ.get("CPUS_PER_TASK", "5")}',
               '--kill-on-bad-exit=1', python, '-u', '-m', TRAIN_MODULE, config,
               '--launcher', 'slurm'] + tail
    else:
        raise SuiteError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
    return cmd, env


# --------------------------------------------------------------------------- running
def _stamp() -> str:
    return time.strftime('%H:%M:%S')


class SuiteRunner:
    """Train the runs of a :class:`Suite` one after the other and collect the results.

    Args:
        suite: The loaded suite.
        work_root: Root of the runs' work dirs (default: the suite's ``work_root``, else
            ``work_dirs/suite/<suite file name>``).
        launcher: ``'none'``, ``'pytorch'`` (``torch.distributed.run``) or ``'slurm'``
            (``srun``).
        gpus: GPUs per run for the distributed launchers.
        partition: Slurm partition.
        only: Labels (or their slugs) to train; the others are only collected.
        force: Re-run runs whose results exist.
        resume: Resume unfinished runs from their last checkpoint.
        quiet: Do not stream the training output (it is still written to the log).
        out: Where progress goes (default ``sys.stdout``).
    """

    def __init__(self,
                 suite: Suite,
                 work_root: Optional[str] = None,
                 launcher: str = 'none',
                 gpus: int = 1,
                 partition: Optional[str] = None,
                 only: Optional[Sequence[str]] = None,
                 force: bool = False,
                 resume: bool = False,
                 quiet: bool = False,
                 python: str = sys.executable,
                 out: Optional[TextIO] = None) -> None:
        if launcher not in LAUNCHERS:
            raise SuiteError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
        if gpus < 1:
            raise SuiteError(f'--gpus must be >= 1, got {gpus}')
        self.suite = suite
        self.work_root = osp.abspath(
            work_root or suite.work_root or osp.join('work_dirs', 'suite', suite.name))
        self.launcher = launcher
        self.gpus = gpus
        self.partition = partition
        self.force = force
        self.resume = resume
        self.quiet = quiet
        self.python = python
        self.out = out or sys.stdout
        self.selected = self._select(only)

    def _select(self, only: Optional[Sequence[str]]) -> List[SuiteRun]:
        if not only:
            return list(self.suite.runs)
        by_key = {}
        for run in self.suite.runs:
            by_key[run.label] = by_key[run.slug] = run
        unknown = [o for o in only if o not in by_key]
        if unknown:
            raise SuiteError(f'--only: unknown labels {unknown}; the suite has ' +
                             ', '.join(repr(r.label) for r in self.suite.runs))
        wanted = {id(by_key[o]) for o in only}
        return [r for r in self.suite.runs if id(r) in wanted]

    def say(self, msg: str) -> None:
        self.out.write(f'[suite {_stamp()}] {msg}\n')
        self.out.flush()

    def work_dir(self, run: SuiteRun) -> str:
        if run.work_dir:
            return osp.abspath(run.work_dir)
        return osp.join(self.work_root, run.slug)

    def is_complete(self, run: SuiteRun) -> bool:
        """Whether the run's results exist (``results.json`` with status ``done``, or a
        training finished outside the suite)."""
        wd = self.work_dir(run)
        result = read_result(wd)
        if result is not None:
            return result.status == 'done'
        return training_finished(wd)

    def plan(self) -> List[Tuple[SuiteRun, str]]:
        """``(run, 'run' | 'skip')`` for the selected runs."""
        return [(run, 'skip' if (not self.force and self.is_complete(run)) else 'run')
                for run in self.selected]

    def command(self, run: SuiteRun) -> Tuple[List[str], Dict[str, str]]:
        wd = self.work_dir(run)
        resume = self.resume and osp.isfile(osp.join(wd, 'last_checkpoint'))
        return train_command(run, wd, self.launcher, self.gpus, self.python,
                             suite_path=self.suite.path, partition=self.partition,
                             resume=resume)

    # ------------------------------------------------------------------ one run
    def _stream(self, cmd: List[str], env: Dict[str, str], log_path: str) -> int:
        full_env = dict(os.environ)
        full_env.update(env)
        with open(log_path, 'a', encoding='utf-8') as log:
            log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(cmd)}\n')
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=full_env, text=True, errors='replace', bufsize=1,
                                    start_new_session=True)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    if not self.quiet:
                        self.out.write(line)
                        self.out.flush()
                return proc.wait()
            except BaseException:
                # Ctrl-C (the child sits in its own session) or any error: stop it
                _terminate(proc)
                raise

    def run_one(self, run: SuiteRun, index: int = 1, total: int = 1) -> RunResult:
        """Train one run, collect and save its result."""
        wd = self.work_dir(run)
        os.makedirs(wd, exist_ok=True)
        cmd, env = self.command(run)
        log_path = osp.join(wd, LOG_FILE)
        self.say(f'({index}/{total}) {run.label}: start -> {wd}\n'
                 f'    {shlex.join(cmd)}\n    log: {log_path}')
        start = time.time()
        rc = self._stream(cmd, env, log_path)
        wall = time.time() - start
        result = collect_run(run.label, wd, model=run.model, method=run.method,
                             pattern=run.pattern, config=run.config)
        result.wall_time_s = wall
        result.returncode = rc
        result.log_file = log_path
        result.status = 'done' if rc == 0 and result.metrics else 'failed'
        write_result(result, wd)
        if result.status == 'done':
            self.say(f'({index}/{total}) {run.label}: done in {format_duration(wall)} '
                     f'(bbox mAP {format_map(result.metric("bbox_mAP"))}, '
                     f'FLOPs (Train) {format_ratio(result.flops_ratio)})')
        else:
            why = f'exit code {rc}' if rc else 'no COCO metric found'
            self.say(f'({index}/{total}) {run.label}: FAILED after '
                     f'{format_duration(wall)} ({why}); see {log_path}')
        return result

    # ------------------------------------------------------------------ suite
    def collect(self) -> List[RunResult]:
        """The results of every run of the suite (selected or not), in suite order."""
        results = []
        for run in self.suite.runs:
            wd = self.work_dir(run)
            result = read_result(wd)
            if result is None:
                result = collect_run(run.label, wd, model=run.model, method=run.method,
                                     pattern=run.pattern, config=run.config)
            # the suite file decides how the run is shown
            result.label, result.model = run.label, run.model
            result.method, result.pattern, result.config = run.method, run.pattern, run.config
            result.work_dir = wd
            results.append(result)
        return results

    def write_reports(self, results: Sequence[RunResult]) -> Dict[str, Optional[str]]:
        """Write ``results.md``, ``results.csv`` and ``results.png`` into the work root."""
        os.makedirs(self.work_root, exist_ok=True)
        title = self.suite.title or f'Benchmark suite: {self.suite.name}'
        md = osp.join(self.work_root, 'results.md')
        with open(md, 'w') as f:
            f.write(format_markdown(results, title=title, note=self.suite.note))
        csv_path = write_csv(results, osp.join(self.work_root, 'results.csv'))
        try:
            png = plot_results(results, osp.join(self.work_root, 'results.png'), title)
        except ImportError as err:  # matplotlib missing: the tables still exist
            self.say(f'no plot ({err})')
            png = None
        return dict(markdown=md, csv=csv_path, plot=png)

    def dry_run(self) -> None:
        """Print what would run, write nothing."""
        plan = self.plan()
        self.say(f'dry run of {self.suite.path}: {len(plan)} runs, work root '
                 f'{self.work_root}')
        for i, (run, action) in enumerate(plan, 1):
            wd = self.work_dir(run)
            if action == 'skip':
                self.say(f'({i}/{len(plan)}) {run.label}: skip (results exist in {wd})')
                continue
            cmd, env = self.command(run)
            extra = ' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items()
                             if k != 'PYTHONUNBUFFERED')
            self.say(f'({i}/{len(plan)}) {run.label}: would run\n    '
                     f'{(extra + " ") if extra else ""}{shlex.join(cmd)}')

    def run(self) -> Tuple[List[RunResult], List[RunResult]]:
        """Train the runs that need it, then write the reports.

        Returns:
            (every run's result, the results of the runs that failed in this call)
        """
        plan = self.plan()
        for run, _ in plan:  # fail before training anything on a missing config
            resolve_config(run.config, self.suite.path)
        todo = sum(1 for _, a in plan if a == 'run')
        self.say(f'{self.suite.path}: {len(plan)} runs ({todo} to train, '
                 f'{len(plan) - todo} with results), work root {self.work_root}')
        start = time.time()
        failed = []
        for i, (run, action) in enumerate(plan, 1):
            if action == 'skip':
                self.say(f'({i}/{len(plan)}) {run.label}: skip (results exist in '
                         f'{self.work_dir(run)})')
                continue
            result = self.run_one(run, i, len(plan))
            if result.status != 'done':
                failed.append(result)
        results = self.collect()
        paths = self.write_reports(results)
        self.say(f'suite finished in {format_duration(time.time() - start)}; '
                 + ', '.join(f'{k}: {v}' for k, v in paths.items() if v))
        return results, failed


def _terminate(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop a child started with ``start_new_session=True`` and its process group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
