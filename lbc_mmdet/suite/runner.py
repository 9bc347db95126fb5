"""Run a benchmark suite: train every (run, seed) with ``python -m lbc_mmdet.cli.train``, one after
the other (after the dense pre-training of a ``finetune`` suite), then write ``results.md`` /
``results.csv`` / ``results.png`` (:mod:`lbc_mmdet.suite.report`; the suite file format:
:mod:`lbc_mmdet.suite.spec`).

Each (run, seed) trains in ``<work_root>/<slug>/seed<seed>`` (``'LBC 2:4'`` -> ``lbc_2of4``; a run
may set ``work_dir``), with ``randomness.seed=<seed>`` and, under ``finetune``,
``load_from=<the pre-training's last checkpoint>``. Its output is streamed and tee'd to
``suite_train.log`` in its work dir, and its collected result saved as ``results.json`` there. A
(run, seed) whose ``results.json`` says ``done`` is skipped (``--force`` re-runs it); so is a
pre-training whose ``last_checkpoint`` and final evaluation exist."""
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from ..utils import atomic_write
from .bootstrap import DEFAULT_REPLICATES
from .commands import LAUNCHERS, TRAIN_MODULE, last_checkpoint, train_command  # noqa: F401
from .mask_figure import FIGURE_FILE as MASK_FIGURE_FILE
from .mask_figure import plot_mask_evolution
from .measure import add_statistics, paired_options
from .process import terminate as _terminate
from .report import format_duration, format_map, format_markdown, plot_results, write_csv
from .results import (
    RunResult,
    collect_metrics,
    collect_run,
    read_result,
    training_finished,
    write_result,
)
from .spec import Suite, SuiteError, SuiteRun, resolve_config

LOG_FILE = 'suite_train.log'


# --------------------------------------------------------------------------- running
def _stamp() -> str:
    return time.strftime('%H:%M:%S')


@dataclass
class Job:
    """One training of a suite: a run with a seed (``seed`` None: the pre-training)."""
    run: SuiteRun
    seed: Optional[int]

    @property
    def name(self) -> str:
        return self.run.label if self.seed is None else f'{self.run.label} (seed {self.seed})'


class SuiteRunner:
    """Train the (run, seed) jobs of a :class:`Suite` one after the other and collect
    the results.

    Args:
        suite (Suite): The loaded suite.
        work_root (str, optional): Root of the runs' work dirs (default: the suite's
            ``work_root``, else ``work_dirs/suite/<suite file name>``).
        launcher (str): ``'none'``, ``'pytorch'`` (``torch.distributed.run``) or ``'slurm'``
            (``srun``).
        gpus (int): GPUs per run for the distributed launchers.
        partition (str, optional): Slurm partition.
        only (Sequence[str], optional): Labels (or their slugs) to train; the others are
            only collected.
        seeds (Sequence[int], optional): Train only these of the suite's seeds.
        force (bool): Re-run jobs whose results exist (not the pre-training).
        resume (bool): Resume unfinished jobs from their last checkpoint.
        quiet (bool): Do not stream the training output (it is still written to the log).
        cfg_options (Dict[str, object], optional): Extra ``--cfg-options`` for every job and
            the pre-training (e.g. data paths), applied last.
        out (TextIO, optional): Where progress goes (default ``sys.stdout``).
        bootstrap_replicates (int): Replicates of the bootstrap over validation images.
    """

    def __init__(self,
                 suite: Suite,
                 work_root: Optional[str] = None,
                 launcher: str = 'none',
                 gpus: int = 1,
                 partition: Optional[str] = None,
                 only: Optional[Sequence[str]] = None,
                 seeds: Optional[Sequence[int]] = None,
                 force: bool = False,
                 resume: bool = False,
                 quiet: bool = False,
                 cfg_options: Optional[Dict[str, object]] = None,
                 python: str = sys.executable,
                 out: Optional[TextIO] = None,
                 bootstrap_replicates: int = DEFAULT_REPLICATES) -> None:
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
        self.extra_options = dict(cfg_options or {})
        self.python = python
        self.out = out or sys.stdout
        self.selected = self._select(only)
        unknown = sorted(set(seeds or ()) - set(suite.seeds))
        if unknown:
            raise SuiteError(f'--seeds: {unknown} are not seeds of the suite '
                             f'({suite.seeds})')
        self.seeds = list(seeds) if seeds else list(suite.seeds)
        self.bootstrap_replicates = bootstrap_replicates

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

    # ------------------------------------------------------------------ where, what
    def work_dir(self, run: SuiteRun, seed: Optional[int] = None) -> str:
        """``<work_root>/<slug>/seed<seed>`` (the run's own ``work_dir`` replaces the first part).

        Args:
            run (SuiteRun): The run.
            seed (int, optional): The seed; None: the run's own folder. Defaults to None.
        """
        base = osp.abspath(run.work_dir) if run.work_dir else osp.join(self.work_root,
                                                                       run.slug)
        return base if seed is None else osp.join(base, f'seed{seed}')

    @property
    def pretrain_run(self) -> Optional[SuiteRun]:
        pre = self.suite.pretrain
        if pre is None:
            return None
        return SuiteRun(label=pre.label, config=pre.config, cfg_options=pre.cfg_options,
                        work_dir=pre.work_dir or osp.join(self.work_root, 'pretrain'))

    def pretrain_checkpoint(self) -> Optional[str]:
        """The pre-training's checkpoint once it has finished (trained and evaluated)."""
        run = self.pretrain_run
        if run is None:
            return None
        wd = self.work_dir(run)
        ckpt = last_checkpoint(wd)
        return ckpt if ckpt and collect_metrics(wd) else None

    def jobs(self) -> List[Job]:
        """The selected runs, each once per seed."""
        return [Job(run, seed) for run in self.selected for seed in self.seeds]

    def options(self, job: Job) -> Dict[str, object]:
        """The job's ``--cfg-options``: the run's, then the seed, the pre-trained weights
        (``finetune``) and the runner's extra options."""
        opts = dict(job.run.cfg_options)
        if job.seed is None:  # the pre-training
            opts['randomness.seed'] = self.suite.pretrain.seed
        else:
            opts['randomness.seed'] = job.seed
            opts.update(paired_options(job.seed, self.work_dir(job.run, job.seed)))
            if self.suite.protocol == 'finetune' and not job.run.evaluate_only:
                ckpt = self.pretrain_checkpoint()
                opts['load_from'] = ckpt or '<pretrain-checkpoint>'
        opts.update(self.extra_options)
        return opts

    def is_complete(self, job: Job) -> bool:
        """Whether the job's results exist (``results.json`` with status ``done``, or a
        training finished outside the suite)."""
        wd = self.work_dir(job.run, job.seed)
        result = read_result(wd)
        if result is not None:
            return result.status == 'done'
        return training_finished(wd)

    def plan(self) -> List[Tuple[Job, str]]:
        """``(job, 'run' | 'skip')`` for the selected jobs."""
        return [(job, 'skip' if (not self.force and self.is_complete(job)) else 'run')
                for job in self.jobs()]

    def command(self, job: Job) -> Tuple[List[str], Dict[str, str]]:
        """The job's command line and extra environment (:func:`train_command`).

        Args:
            job (Job): The job.
        """
        wd = self.work_dir(job.run, job.seed)
        resume = self.resume and osp.isfile(osp.join(wd, 'last_checkpoint'))
        checkpoint = ((self.pretrain_checkpoint() or '<pretrain-checkpoint>')
                      if job.run.evaluate_only and job.seed is not None else None)
        return train_command(job.run, wd, self.launcher, self.gpus, self.python,
                             suite_path=self.suite.path, partition=self.partition,
                             resume=resume, options=self.options(job), checkpoint=checkpoint)

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

    def run_one(self, job: Job, index: int = 1, total: int = 1) -> RunResult:
        """Train one job, collect and save its result.

        Args:
            job (Job): The job.
            index (int), total (int): Its place in the plan, for the log. Default to 1.
        """
        run = job.run
        wd = self.work_dir(run, job.seed)
        os.makedirs(wd, exist_ok=True)
        cmd, env = self.command(job)
        log_path = osp.join(wd, LOG_FILE)
        self.say(f'({index}/{total}) {job.name}: start -> {wd}\n'
                 f'    {shlex.join(cmd)}\n    log: {log_path}')
        start = time.time()
        rc = self._stream(cmd, env, log_path)
        wall = time.time() - start
        result = collect_run(run.label, wd, model=run.model, method=run.method,
                             pattern=run.pattern, config=run.config)
        result.wall_time_s = wall
        result.returncode = rc
        result.log_file = log_path
        result.seed = job.seed
        result.paper = dict(run.paper)
        result.status = 'done' if rc == 0 and result.metrics else 'failed'
        self._add_bootstrap(job, result)
        write_result(result, wd)
        if result.status == 'done':
            self.say(f'({index}/{total}) {job.name}: done in {format_duration(wall)} '
                     f'(bbox mAP {format_map(result.metric("bbox_mAP"))})')
        else:
            why = f'exit code {rc}' if rc else 'no COCO metric found'
            self.say(f'({index}/{total}) {job.name}: FAILED after '
                     f'{format_duration(wall)} ({why}); see {log_path}')
        return result

    def ensure_pretrain(self) -> Optional[str]:
        """Train the dense pre-training of a ``finetune`` suite unless it exists; its
        checkpoint (None for ``scratch``)."""
        run = self.pretrain_run
        if run is None:
            return None
        ckpt = self.pretrain_checkpoint()
        if ckpt is not None:
            self.say(f'{run.label}: reusing {ckpt}')
            return ckpt
        result = self.run_one(Job(run, None), 0, 0)
        ckpt = self.pretrain_checkpoint()
        if result.status != 'done' or ckpt is None:
            raise SuiteError(f'{run.label} failed (no checkpoint and evaluation in '
                             f'{self.work_dir(run)}); see {result.log_file}')
        return ckpt

    # ------------------------------------------------------------------ suite
    def collect(self) -> List[RunResult]:
        """The results of every (run, seed) of the suite (selected or not), in suite
        order."""
        results = []
        for run in self.suite.runs:
            for seed in self.suite.seeds:
                wd = self.work_dir(run, seed)
                result = read_result(wd)
                if result is None:
                    result = collect_run(run.label, wd, model=run.model, method=run.method,
                                         pattern=run.pattern, config=run.config)
                # the suite file decides how the run is shown
                result.label, result.model = run.label, run.model
                result.method, result.pattern = run.method, run.pattern
                result.config, result.work_dir = run.config, wd
                result.seed, result.paper = seed, dict(run.paper)
                if result.status == 'done' and self._add_bootstrap(Job(run, seed), result):
                    write_result(result, wd)  # computed once, kept in results.json
                results.append(result)
        return results

    def _add_bootstrap(self, job: Job, result: RunResult) -> bool:
        """The bootstrap over validation images and the data order of a finished job,
        when missing (:func:`lbc_mmdet.suite.measure.add_statistics`)."""
        return add_statistics(result, job.run.config, self.suite.path, self.options(job),
                              self.bootstrap_replicates, lambda m: self.say(f'{job.name}: {m}'))

    def write_reports(self, results: Sequence[RunResult]) -> Dict[str, Optional[str]]:
        """Write ``results.md``, ``results.csv`` and ``results.png`` into the work root.

        Args:
            results (Sequence[RunResult]): The results (:meth:`collect`).
        """
        os.makedirs(self.work_root, exist_ok=True)
        title = self.suite.title or f'Benchmark suite: {self.suite.name}'
        md = osp.join(self.work_root, 'results.md')
        atomic_write(md, format_markdown(results, title=title, note=self.suite.note,
                                         baseline=self.suite.baseline_label,
                                         protocol=self.suite.protocol,
                                         seeds=self.suite.seeds,
                                         comparisons=self.suite.comparisons))
        csv_path = write_csv(results, osp.join(self.work_root, 'results.csv'),
                             baseline=self.suite.baseline_label)
        try:
            png = plot_results(results, osp.join(self.work_root, 'results.png'), title,
                               baseline=self.suite.baseline_label)
            masks = plot_mask_evolution(  # results.md links it (mask_evolution_section)
                results, osp.join(self.work_root, MASK_FIGURE_FILE), title)
        except ImportError as err:  # matplotlib missing: the tables still exist
            self.say(f'no plot ({err})')
            png = masks = None
        return dict(markdown=md, csv=csv_path, plot=png, mask_plot=masks)

    def dry_run(self) -> None:
        """Print what would run, write nothing."""
        plan = self.plan()
        self.say(f'dry run of {self.suite.path} ({self.suite.protocol}, seeds '
                 f'{self.seeds}): {len(plan)} jobs, work root {self.work_root}')
        pre = self.pretrain_run
        if pre is not None:
            ckpt = self.pretrain_checkpoint()
            if ckpt:
                self.say(f'{pre.label}: reuse {ckpt}')
            else:
                cmd, _ = self.command(Job(pre, None))
                self.say(f'{pre.label}: would run first\n    {shlex.join(cmd)}')
        for i, (job, action) in enumerate(plan, 1):
            wd = self.work_dir(job.run, job.seed)
            if action == 'skip':
                self.say(f'({i}/{len(plan)}) {job.name}: skip (results exist in {wd})')
                continue
            cmd, env = self.command(job)
            extra = ' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items()
                             if k != 'PYTHONUNBUFFERED')
            self.say(f'({i}/{len(plan)}) {job.name}: would run\n    '
                     f'{(extra + " ") if extra else ""}{shlex.join(cmd)}')

    def run(self) -> Tuple[List[RunResult], List[RunResult]]:
        """Train what needs it (the pre-training first), then write the reports.

        Returns:
            Tuple[List[RunResult], List[RunResult]]: (every job's result, the results of the
                jobs that failed in this call)
        """
        plan = self.plan()
        for job, _ in plan:  # fail before training anything on a missing config
            resolve_config(job.run.config, self.suite.path)
        todo = sum(1 for _, a in plan if a == 'run')
        self.say(f'{self.suite.path} ({self.suite.protocol}, seeds {self.seeds}): '
                 f'{len(plan)} jobs ({todo} to train, {len(plan) - todo} with results), '
                 f'work root {self.work_root}')
        start = time.time()
        if todo:
            self.ensure_pretrain()
        failed = []
        for i, (job, action) in enumerate(plan, 1):
            if action == 'skip':
                self.say(f'({i}/{len(plan)}) {job.name}: skip (results exist in '
                         f'{self.work_dir(job.run, job.seed)})')
                continue
            result = self.run_one(job, i, len(plan))
            if result.status != 'done':
                failed.append(result)
        results = self.collect()
        paths = self.write_reports(results)
        self.say(f'suite finished in {format_duration(time.time() - start)}; '
                 + ', '.join(f'{k}: {v}' for k, v in paths.items() if v))
        return results, failed

