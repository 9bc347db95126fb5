"""Suite files: the runs of a benchmark (read with MMEngine's ``Config`` or as YAML/JSON),
validated, and their ``--cfg-options``.

A suite file (every key but ``suite`` optional; ``docs/benchmark.md``)::

    suite = [
        dict(label='LBC 2:4', config='configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py',
             method='lbc', pattern='2:4', model='Faster R-CNN',
             cfg_options={'model.backbone.conv_cfg.n': 2},
             paper=dict(bbox_mAP=38.5)),      # the paper's COCO figure (x100), shown beside
        ...
    ]
    protocol = 'finetune'      # 'scratch' (default): every run from random initialisation;
                               # 'finetune': every run from the `pretrain` checkpoint
    pretrain = dict(config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
                    cfg_options={...}, work_dir='work_dirs/pretrain/frcnn')  # finetune
    seeds = [0, 1, 2]          # every run is trained once per seed
    baseline = 'Dense (continued)'   # the row differences are taken to (default: the
                                     # first dense run)
    comparisons = [('LBC 2:4', 'LBC 1:16')]   # more paired differences (A - B) to show
    cfg_options = {...}        # for every run (a run's own cfg_options win)
    title, note = '...', '...' # heading and paragraph of results.md
    work_root = 'work_dirs/suite/demo'   # default work root (--work-root wins)

In YAML the same keys sit at the top level (or the file is just the list of runs). A run's
``config`` is resolved from the current folder, else from the suite file's folder and its
parents (so a suite in ``configs/suites/`` names ``configs/demo/...`` as in the README).
"""
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import LBCError
from ..layers import DENSE
from ..utils import to_plain

RUN_KEYS = ('label', 'config', 'method', 'pattern', 'model', 'cfg_options', 'work_dir',
            'paper', 'evaluate_only')
SUITE_KEYS = ('suite', 'cfg_options', 'title', 'note', 'work_root', 'protocol', 'seeds',
              'pretrain', 'baseline', 'comparisons')
PRETRAIN_KEYS = ('config', 'cfg_options', 'work_dir', 'seed')
PROTOCOLS = ('scratch', 'finetune')


class SuiteError(LBCError, ValueError):
    """A malformed suite file (the message says which run and key)."""


# --------------------------------------------------------------------------- suite file
@dataclass
class SuiteRun:
    """One run (a row of the tables) of a suite (see the module docstring)."""
    label: str
    config: str
    method: str = DENSE
    pattern: str = '-'
    model: str = ''
    cfg_options: Dict[str, object] = field(default_factory=dict)
    work_dir: Optional[str] = None
    paper: Dict[str, float] = field(default_factory=dict)
    #: evaluate the pre-training's checkpoint with this run's config (``tools/test.py``:
    #: e.g. a one-shot pruning config whose calibration hook prunes before the test), no
    #: training; ``finetune`` suites only
    evaluate_only: bool = False

    @property
    def slug(self) -> str:
        return slugify(self.label)


@dataclass
class Pretrain:
    """The dense pre-training of a ``finetune`` suite (trained once, reused)."""
    config: str
    cfg_options: Dict[str, object] = field(default_factory=dict)
    work_dir: Optional[str] = None
    seed: int = 0
    label: str = 'Dense pre-training'


@dataclass
class Suite:
    """A loaded suite file."""
    path: str
    runs: List[SuiteRun]
    title: str = ''
    note: str = ''
    work_root: Optional[str] = None
    protocol: str = 'scratch'
    seeds: List[int] = field(default_factory=lambda: [0])
    pretrain: Optional[Pretrain] = None
    baseline: Optional[str] = None
    #: ``(label A, label B)`` pairs whose paired difference A - B results.md also shows
    comparisons: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return osp.splitext(osp.basename(self.path))[0]

    @property
    def baseline_label(self) -> Optional[str]:
        """The label of the row the others are compared with (None: no comparison)."""
        if self.baseline:
            return self.baseline
        return next((r.label for r in self.runs if r.method == DENSE), None)


def slugify(label: str) -> str:
    """``'LBC 2:4'`` -> ``'lbc_2of4'``, ``'SR-STE 2:8'`` -> ``'srste_2of8'``: a run's
    work-dir name.

    Args:
        label (str): A run's label.

    Returns:
        str: The slug (``'run'`` when nothing is left).
    """
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


def _options(value, where: str) -> Dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(f'{where}: `cfg_options` must be a dict')
    return flatten_options(value)


def _seeds(value, path: str) -> List[int]:
    seeds = [0] if value is None else value
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise SuiteError(f'{path}: `seeds` must be a non-empty list of distinct integers, '
                         f'got {value!r}')
    return list(seeds)


def _paper(value, where: str) -> Dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        raise SuiteError(f'{where}: `paper` must map metric names (bbox_mAP, segm_mAP) to '
                         f'numbers, got {value!r}')
    return {str(k): float(v) for k, v in value.items()}


def _pretrain(value, path: str, protocol: str) -> Optional[Pretrain]:
    if protocol != 'finetune':
        if value is not None:
            raise SuiteError(f'{path}: `pretrain` is only used by protocol=\'finetune\'')
        return None
    if not isinstance(value, dict) or not isinstance(value.get('config'), str):
        raise SuiteError(f'{path}: protocol=\'finetune\' needs `pretrain = dict(config='
                         '..., cfg_options=..., work_dir=...)` (the dense pre-training)')
    bad = [k for k in value if k not in PRETRAIN_KEYS]
    if bad:
        raise SuiteError(f'{path}: pretrain: unknown keys {bad}; allowed: '
                         f'{list(PRETRAIN_KEYS)}')
    pre = Pretrain(config=value['config'],
                   cfg_options=_options(value.get('cfg_options'), f'{path}: pretrain'),
                   work_dir=value.get('work_dir'), seed=int(value.get('seed', 0)))
    cfg_options_to_args(pre.cfg_options, f'{path}: pretrain')
    return pre


def load_suite(path: str) -> Suite:
    """Read and validate a suite file.

    Args:
        path (str): A ``.py``, ``.yaml``, ``.yml`` or ``.json`` suite file.

    Returns:
        Suite: The suite.

    Raises:
        SuiteError: No such file, or a malformed suite (the message says which run and
            key).
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
    protocol = str(data.get('protocol') or 'scratch')
    if protocol not in PROTOCOLS:
        raise SuiteError(f'{path}: `protocol` must be one of {list(PROTOCOLS)}, got '
                         f'{protocol!r}')
    common = _options(data.get('cfg_options'), path)
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
        merged = dict(common)
        merged.update(_options(entry.get('cfg_options'), where))
        method = str(entry.get('method') or DENSE).lower()
        run = SuiteRun(label=entry['label'].strip(), config=entry['config'],
                       method=method,
                       pattern=str(entry.get('pattern') or
                                   ('-' if method == DENSE else '?')),
                       model=str(entry.get('model') or ''), cfg_options=merged,
                       work_dir=entry.get('work_dir'),
                       paper=_paper(entry.get('paper'), where),
                       evaluate_only=entry.get('evaluate_only', False))
        if not isinstance(run.evaluate_only, bool):
            raise SuiteError(f'{where}: `evaluate_only` must be True or False')
        if run.evaluate_only and protocol != 'finetune':
            raise SuiteError(f'{where}: `evaluate_only` evaluates the pre-training\'s '
                             "checkpoint: it needs protocol='finetune'")
        cfg_options_to_args(run.cfg_options, where)  # fail early on unsupported values
        if run.slug in slugs:
            raise SuiteError(f'{where}: label {run.label!r} gives the same work dir name '
                             f'{run.slug!r} as {slugs[run.slug]!r}; labels must differ')
        slugs[run.slug] = run.label
        runs.append(run)
    suite = Suite(path=path, runs=runs, title=str(data.get('title') or ''),
                  note=str(data.get('note') or ''), work_root=data.get('work_root'),
                  protocol=protocol, seeds=_seeds(data.get('seeds'), path),
                  pretrain=_pretrain(data.get('pretrain'), path, protocol),
                  baseline=data.get('baseline'))
    if suite.baseline and suite.baseline not in slugs.values():
        raise SuiteError(f'{path}: `baseline` {suite.baseline!r} is not a label of the '
                         'suite')
    suite.comparisons = _comparisons(data.get('comparisons'), path, set(slugs.values()))
    return suite


def _comparisons(value, path: str, labels) -> List[Tuple[str, str]]:
    """``comparisons = [('LBC 2:4', 'LBC 1:16'), ...]``: pairs of labels of the suite."""
    out = []
    for pair in value or ():
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(p in labels for p in pair)):
            raise SuiteError(f'{path}: `comparisons` holds pairs of labels of the suite, '
                             f'got {pair!r}')
        out.append((pair[0], pair[1]))
    return out


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
    cannot be passed and raise ValueError).

    Args:
        options (dict): Options, nested dicts allowed (flattened to dotted keys).
        where (str): What the error messages name. Defaults to ``'cfg_options'``.

    Returns:
        list[str]: The ``key=value`` strings.
    """
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
    relative to the suite file's folder or one of its parents.

    Args:
        config (str): The config path as the suite gives it.
        suite_path (str, optional): The suite file. Defaults to None.

    Returns:
        str: A path that exists.
    """
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
