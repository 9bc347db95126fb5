"""Suite files: the list of runs of a benchmark (read with MMEngine's ``Config`` or as
YAML/JSON), validated, and their ``--cfg-options``.

A suite file::

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

In YAML the same keys sit at the top level (or the file is just the list of runs). A run's
``config`` is resolved from the current folder, else from the suite file's folder and its
parents (so a suite in ``configs/suites/`` names ``configs/demo/...`` as in the README).
"""
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import LBCError
from ..layers import DENSE
from ..utils import to_plain

RUN_KEYS = ('label', 'config', 'method', 'pattern', 'model', 'cfg_options', 'work_dir')
SUITE_KEYS = ('suite', 'cfg_options', 'title', 'note', 'work_root')


class SuiteError(LBCError, ValueError):
    """A malformed suite file (the message says which run and key)."""


# --------------------------------------------------------------------------- suite file
@dataclass
class SuiteRun:
    """One run of a suite (see the module docstring)."""
    label: str
    config: str
    method: str = DENSE
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


def _read_suite_file(path: str) -> dict:
    ext = osp.splitext(path)[1].lower()
    if ext == '.py':
        from mmengine.config import Config
        cfg = Config.fromfile(path)
        return to_plain({k: cfg[k] for k in cfg.keys()})
    if ext in ('.yaml', '.yml', '.json'):
        import yaml
        with open(path) as f:
            data = yaml.safe_load(f)
        return {'suite': data} if isinstance(data, list) else (data or {})
    raise SuiteError(f'{path}: a suite file must be .py, .yaml, .yml or .json')


def load_suite(path: str) -> Suite:
    """Read and validate a suite file.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A malformed suite (the message says which run and key).
    """
    if not osp.isfile(path):
        raise SuiteError(f'suite file not found: {path}')
    data = _read_suite_file(path)
    if not isinstance(data, dict) or 'suite' not in data:
        raise SuiteError(f'{path}: defines no `suite` (a list of dict(label=..., '
                         'config=..., method=..., pattern=..., model=...))')
    unknown = [k for k in data if k not in SUITE_KEYS and not k.startswith('_')]
    if unknown and osp.splitext(path)[1].lower() != '.py':
        raise SuiteError(f'{path}: unknown top-level keys {unknown}; allowed: '
                         f'{list(SUITE_KEYS)}')
    entries = data['suite']
    if not isinstance(entries, (list, tuple)) or not entries:
        raise SuiteError(f'{path}: `suite` must be a non-empty list of runs')
    common = data.get('cfg_options') or {}
    if not isinstance(common, dict):
        raise SuiteError(f'{path}: `cfg_options` must be a dict')
    runs, slugs = [], {}
    for i, entry in enumerate(entries):
        where = f'{path}: suite[{i}]'
        if not isinstance(entry, dict):
            raise SuiteError(f'{where} must be a dict, got {type(entry).__name__}')
        bad = [k for k in entry if k not in RUN_KEYS]
        if bad:
            raise SuiteError(f'{where}: unknown keys {bad}; allowed: {list(RUN_KEYS)}')
        for key in ('label', 'config'):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise SuiteError(f'{where}: `{key}` (a non-empty string) is required')
        opts = entry.get('cfg_options') or {}
        if not isinstance(opts, dict):
            raise SuiteError(f'{where}: `cfg_options` must be a dict')
        merged = dict(flatten_options(common))
        merged.update(flatten_options(opts))
        method = str(entry.get('method') or DENSE).lower()
        run = SuiteRun(label=entry['label'].strip(), config=entry['config'],
                       method=method,
                       pattern=str(entry.get('pattern') or
                                   ('-' if method == DENSE else '?')),
                       model=str(entry.get('model') or ''), cfg_options=merged,
                       work_dir=entry.get('work_dir'))
        cfg_options_to_args(run.cfg_options, where)  # fail early on unsupported values
        if run.slug in slugs:
            raise SuiteError(f'{where}: label {run.label!r} gives the same work dir name '
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
    raise SuiteError(f'cannot pass {value!r} ({type(value).__name__}) through '
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
            raise SuiteError(f'{where}: {key}={value!r} would reach the config as '
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




def resolve_config(config: str, suite_path: Optional[str] = None) -> str:
    """A run's config path: as given when it exists (from the current folder), else
    relative to the suite file's folder or one of its parents."""
    if osp.isfile(config):
        return config
    tried = [os.getcwd()]
    if suite_path:
        folder = osp.dirname(osp.abspath(suite_path))
        while True:
            candidate = osp.join(folder, config)
            tried.append(folder)
            if osp.isfile(candidate):
                return candidate
            parent = osp.dirname(folder)
            if parent == folder:
                break
            folder = parent
    raise SuiteError(f'config not found: {config} (looked in {", ".join(tried[:3])}'
                     + (' ...' if len(tried) > 3 else '') + ')')
