"""Run a benchmark suite: train every listed run with ``tools/train.py``, one after the
other, then collect the results into ``results.md`` / ``results.csv`` / ``results.png``.

A suite file is a python config (read with MMEngine's ``Config``) or a YAML/JSON file::

    suite = [
        dict(label='LBC 2:4', config='configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py',
             method='lbc', pattern='2:4', model='Faster R-CNN',
             cfg_options={'train_cfg.max_iters': 120}),
        ...
    ]
    # optional, for every run (a run's own cfg_options win):
    cfg_options = {'default_hooks.checkpoint.interval': 120}
    title = 'Demo suite'                 # heading of results.md
    note = 'Synthetic data, CPU.'        # paragraph under the heading
    work_root = 'work_dirs/suite/demo'   # default work root (--work-root wins)

In YAML the same keys sit at the top level (or the file is just the list of runs).

Each run trains in ``<work_root>/<slug>`` (``'LBC 2:4'`` -> ``lbc_2of4``; a run may set
``work_dir``), its output is streamed and tee'd to ``<work_dir>/suite_train.log``, and its
collected result is saved as ``<work_dir>/results.json``. A run whose ``results.json``
says ``done`` is skipped (``--force`` re-runs it), and so is a run trained outside the
suite whose work dir holds a ``train_flops.json`` (written when training ends) and COCO
metrics.
"""
import os
import os.path as osp
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .results import (RunResult, collect_run, format_duration, format_map,
                      format_markdown, format_ratio, plot_results, read_result,
                      training_finished, write_csv, write_result)

#: the repository root (``tools/train.py`` lives there)
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RUN_KEYS = ('label', 'config', 'method', 'pattern', 'model', 'cfg_options', 'work_dir')
SUITE_KEYS = ('suite', 'cfg_options', 'title', 'note', 'work_root')
LAUNCHERS = ('none', 'pytorch', 'slurm')
LOG_FILE = 'suite_train.log'


# --------------------------------------------------------------------------- suite file
@dataclass
class SuiteRun:
    """One run of a suite (see the module docstring)."""
    label: str
    config: str
    method: str = 'dense'
    pattern: str = '-'
    model: str = ''
    cfg_options: Dict[str, object] = field(default_factory=dict)
    work_dir: Optional[str] = None

    @property
    def slug(self) -> str:
        return slugify(self.label)


@dataclass
class Suite:
    """A loaded suite file."""
    path: str
    runs: List[SuiteRun]
    title: str = ''
    note: str = ''
    work_root: Optional[str] = None

    @property
    def name(self) -> str:
        return osp.splitext(osp.basename(self.path))[0]


def slugify(label: str) -> str:
    """``'LBC 2:4'`` -> ``'lbc_2of4'``, ``'SR-STE 2:8'`` -> ``'srste_2of8'``: a run's
    work-dir name."""
    s = re.sub(r'(\d)\s*:\s*(\d)', r'\1of\2', str(label).strip().lower())
    s = s.replace('-', '')
    s = re.sub(r'[^a-z0-9._-]+', '_', s).strip('_.')
    return s or 'run'


def _plain(value):
    """ConfigDict / tuples -> plain dicts and lists (recursively)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _read_suite_file(path: str) -> dict:
    ext = osp.splitext(path)[1].lower()
    if ext == '.py':
        from mmengine.config import Config
        cfg = Config.fromfile(path)
        return _plain({k: cfg[k] for k in cfg.keys()})
    if ext in ('.yaml', '.yml', '.json'):
        import yaml
        with open(path) as f:
            data = yaml.safe_load(f)
        return {'suite': data} if isinstance(data, list) else (data or {})
    raise ValueError(f'{path}: a suite file must be .py, .yaml, .yml or .json')


def load_suite(path: str) -> Suite:
    """Read and validate a suite file.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A malformed suite (the message says which run and key).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'suite file not found: {path}')
    data = _read_suite_file(path)
    if not isinstance(data, dict) or 'suite' not in data:
        raise ValueError(f'{path}: defines no `suite` (a list of dict(label=..., '
                         'config=..., method=..., pattern=..., model=...))')
    unknown = [k for k in data if k not in SUITE_KEYS and not k.startswith('_')]
    if unknown and osp.splitext(path)[1].lower() != '.py':
        raise ValueError(f'{path}: unknown top-level keys {unknown}; allowed: '
                         f'{list(SUITE_KEYS)}')
    entries = data['suite']
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(f'{path}: `suite` must be a non-empty list of runs')
    common = data.get('cfg_options') or {}
    if not isinstance(common, dict):
        raise ValueError(f'{path}: `cfg_options` must be a dict')
    runs, slugs = [], {}
    for i, entry in enumerate(entries):
        where = f'{path}: suite[{i}]'
        if not isinstance(entry, dict):
            raise ValueError(f'{where} must be a dict, got {type(entry).__name__}')
        bad = [k for k in entry if k not in RUN_KEYS]
        if bad:
            raise ValueError(f'{where}: unknown keys {bad}; allowed: {list(RUN_KEYS)}')
        for key in ('label', 'config'):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ValueError(f'{where}: `{key}` (a non-empty string) is required')
        opts = entry.get('cfg_options') or {}
        if not isinstance(opts, dict):
            raise ValueError(f'{where}: `cfg_options` must be a dict')
        merged = dict(flatten_options(common))
        merged.update(flatten_options(opts))
        method = str(entry.get('method') or 'dense').lower()
        run = SuiteRun(label=entry['label'].strip(), config=entry['config'],
                       method=method,
                       pattern=str(entry.get('pattern') or
                                   ('-' if method == 'dense' else '?')),
                       model=str(entry.get('model') or ''), cfg_options=merged,
                       work_dir=entry.get('work_dir'))
        cfg_options_to_args(run.cfg_options, where)  # fail early on unsupported values
        if run.slug in slugs:
            raise ValueError(f'{where}: label {run.label!r} gives the same work dir name '
                             f'{run.slug!r} as {slugs[run.slug]!r}; labels must differ')
        slugs[run.slug] = run.label
        runs.append(run)
    return Suite(path=path, runs=runs, title=str(data.get('title') or ''),
                 note=str(data.get('note') or ''), work_root=data.get('work_root'))


# --------------------------------------------------------------------------- cfg options
def flatten_options(options: dict, prefix: str = '') -> Dict[str, object]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (the keys ``--cfg-options`` takes)."""
    out: Dict[str, object] = {}
    for key, value in options.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out.update(flatten_options(value, name + '.'))
        else:
            out[name] = value
    return out


def format_option_value(value) -> str:
    """A python value as ``--cfg-options`` (MMEngine's ``DictAction``) parses it back."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        inner = ','.join(format_option_value(v) for v in value)
        if isinstance(value, tuple):
            return f'({inner},)' if len(value) == 1 else f'({inner})'
        return f'[{inner}]'
    raise ValueError(f'cannot pass {value!r} ({type(value).__name__}) through '
                     '--cfg-options; use dotted keys for dicts')


def cfg_options_to_args(options: Dict[str, object], where: str = 'cfg_options') -> List[str]:
    """``key=value`` strings for ``tools/train.py --cfg-options``; each is checked to parse
    back to the same value (strings with spaces or commas, or that look like numbers,
    cannot be passed and raise ValueError)."""
    from mmengine.config import DictAction
    args = []
    for key, value in flatten_options(options).items():
        text = format_option_value(value)
        back = DictAction._parse_iterable(text)
        if not _same(back, value):
            raise ValueError(f'{where}: {key}={value!r} would reach the config as '
                             f'{back!r} through --cfg-options; pass another value')
        args.append(f'{key}={text}')
    return args


def _same(a, b) -> bool:
    """``a == b`` with matching kinds (a bool is not an int, a string not a number)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- commands
def resolve_config(config: str, repo_root: str = REPO_ROOT) -> str:
    """A run's config path: as given if it exists (from the current dir), else relative
    to the repository root."""
    if osp.isfile(config):
        return config
    candidate = osp.join(repo_root, config)
    if osp.isfile(candidate):
        return candidate
    raise FileNotFoundError(f'config not found: {config} (looked in {os.getcwd()} and '
                            f'{repo_root})')


def train_command(run: SuiteRun,
                  work_dir: str,
                  launcher: str = 'none',
                  gpus: int = 1,
                  python: str = sys.executable,
                  repo_root: str = REPO_ROOT,
                  partition: Optional[str] = None,
                  resume: bool = False) -> Tuple[List[str], Dict[str, str]]:
    """The command (and extra environment) that trains ``run`` into ``work_dir``."""
    config = resolve_config(run.config, repo_root)
    tail = []
    opts = cfg_options_to_args(run.cfg_options, run.label)
    if resume:
        tail.append('--resume')
    if opts:
        tail += ['--cfg-options'] + opts
    tools = osp.join(repo_root, 'tools')
    env = {'PYTHONUNBUFFERED': '1'}
    if launcher == 'none':
        if gpus > 1:
            raise ValueError('--gpus > 1 needs --launcher pytorch (or slurm)')
        cmd = [python, osp.join(tools, 'train.py'), config, '--work-dir', work_dir] + tail
    elif launcher == 'pytorch':
        env['PYTHON'] = python
        cmd = ['bash', osp.join(tools, 'dist_train.sh'), config, str(gpus),
               '--work-dir', work_dir] + tail
    elif launcher == 'slurm':
        if not partition:
            raise ValueError('--launcher slurm needs --partition')
        env.update(PYTHON=python, GPUS=str(gpus))
        cmd = ['bash', osp.join(tools, 'slurm_train.sh'), partition, run.slug, config,
               work_dir] + tail
    else:
        raise ValueError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
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
        launcher: ``'none'``, ``'pytorch'`` (``tools/dist_train.sh``) or ``'slurm'``.
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
            raise ValueError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
        if gpus < 1:
            raise ValueError(f'--gpus must be >= 1, got {gpus}')
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
            raise ValueError(f'--only: unknown labels {unknown}; the suite has ' +
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
                             partition=self.partition, resume=resume)

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
            resolve_config(run.config)
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
